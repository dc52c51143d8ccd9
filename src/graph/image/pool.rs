//! Max and average pooling and their backward passes on NCHW batches (see [`super`]); max
//! pooling generic over the value type as the convolution's data movement.

use super::{Planes, Window};

/// Calls `f(b, c, o, window)` for every output `o` of channel `c` of example `b` with the
/// plane offsets its window reads (padding left out).
fn for_each_window(rows: usize, p: &Planes, w: &Window, mut f: impl FnMut(usize, usize, &[usize])) {
    let (oh, ow) = w.output(p).expect("checked when the graph was built");
    let mut idx = Vec::with_capacity(w.kh * w.kw);
    let mut windows: Vec<Vec<usize>> = Vec::with_capacity(oh * ow);
    for oy in 0..oh {
        for ox in 0..ow {
            idx.clear();
            for ky in 0..w.kh {
                for kx in 0..w.kw {
                    if let Some(i) = w.source(p, oy, ox, ky, kx) {
                        idx.push(i);
                    }
                }
            }
            windows.push(idx.clone());
        }
    }
    for b in 0..rows {
        for c in 0..p.channels {
            let plane = b * p.len() + c * p.positions();
            for (o, win) in windows.iter().enumerate() {
                let out = (b * p.channels + c) * oh * ow + o;
                f(plane, out, win);
            }
        }
    }
}

/// The first maximum (row-major order) of the window `win` of the plane at `plane`.
fn argmax<T: PartialOrd>(x: &[T], plane: usize, win: &[usize]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for &i in win {
        let j = plane + i;
        // `x[j] != x[j]`: a NaN never replaces the first value.
        #[allow(clippy::eq_op)]
        let nan = x[j] != x[j];
        match best {
            Some(k) if x[j] <= x[k] || nan => {}
            _ => best = Some(j),
        }
    }
    best
}

/// Max pooling of `rows` images into `out`; returns the comparisons (`window - 1` per output).
/// A window entirely in the padding (never with PyTorch's constraint `pad <= k / 2`) gives 0.
pub fn max_pool<T: Copy + Default + PartialOrd>(
    x: &[T],
    rows: usize,
    p: &Planes,
    w: &Window,
    out: &mut [T],
) -> u64 {
    let mut compares = 0;
    for_each_window(rows, p, w, |plane, o, win| {
        out[o] = argmax(x, plane, win).map_or(T::default(), |j| x[j]);
        compares += win.len().saturating_sub(1) as u64;
    });
    compares
}

/// Max pooling's backward: `err` (`[rows, C OH OW]`) sent to each window's first maximum of
/// `x` into `out` (`[rows, C H W]`, zeroed first); returns the adds (an error added to a
/// position that already holds one).
pub fn max_pool_backward<T: Copy + Default + PartialOrd + std::ops::AddAssign>(
    err: &[T],
    x: &[T],
    rows: usize,
    p: &Planes,
    w: &Window,
    out: &mut [T],
) -> u64 {
    out.fill(T::default());
    let mut hit = vec![false; out.len()];
    let mut adds = 0;
    for_each_window(rows, p, w, |plane, o, win| {
        if let Some(j) = argmax(x, plane, win) {
            if hit[j] {
                adds += 1;
            }
            hit[j] = true;
            out[j] += err[o];
        }
    });
    adds
}

/// Average pooling (padding counted as zeros: `sum / (KH KW)`); returns the adds
/// (`window - 1` per output).
pub fn avg_pool(x: &[f64], rows: usize, p: &Planes, w: &Window, out: &mut [f64]) -> u64 {
    let size = (w.kh * w.kw) as f64;
    let mut adds = 0;
    for_each_window(rows, p, w, |plane, o, win| {
        out[o] = win.iter().map(|&i| x[plane + i]).sum::<f64>() / size;
        adds += win.len().saturating_sub(1) as u64;
    });
    adds
}

/// Average pooling's backward: each error divided by `KH KW` and added to every position of
/// its window (`out` zeroed first); returns the adds where windows overlap.
pub fn avg_pool_backward(err: &[f64], rows: usize, p: &Planes, w: &Window, out: &mut [f64]) -> u64 {
    out.fill(0.0);
    let size = (w.kh * w.kw) as f64;
    let mut hit = vec![false; out.len()];
    let mut adds = 0;
    for_each_window(rows, p, w, |plane, o, win| {
        let g = err[o] / size;
        for &i in win {
            let j = plane + i;
            if hit[j] {
                adds += 1;
            }
            hit[j] = true;
            out[j] += g;
        }
    });
    adds
}
