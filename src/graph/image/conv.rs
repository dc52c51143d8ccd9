//! The data movement of a convolution: im2col, its adjoint col2im, and the layouts between a
//! matmul's rows and NCHW images (see the module docs of [`super`]). Generic over the value
//! type: the step graphs run them on `f64` carriers, `lpsim bench train`'s native network on
//! `f32`. Zero is `T::default()`.

use super::{Planes, Window};

/// Where each entry of one example's window matrix (`[OH OW, C KH KW]`, row-major) reads
/// from in its image: the offset in the `C H W` values, or `None` in the padding. The same for
/// every example, so it is computed once per call.
fn gather_table(p: &Planes, w: &Window) -> Vec<Option<u32>> {
    let (oh, ow) = w.output(p).expect("checked when the graph was built");
    let mut table = Vec::with_capacity(oh * ow * p.channels * w.kh * w.kw);
    for oy in 0..oh {
        for ox in 0..ow {
            for c in 0..p.channels {
                for ky in 0..w.kh {
                    for kx in 0..w.kw {
                        let at = w.source(p, oy, ox, ky, kx).map(|i| c * p.positions() + i);
                        // Image sizes are checked against memory long before 2^32 values.
                        table.push(at.map(|i| i as u32));
                    }
                }
            }
        }
    }
    table
}

/// `x` (`rows` images `p`, NCHW) to the window matrix `out` (`[rows OH OW, C KH KW]`): row
/// `(b, oy, ox)`, column `(c, ky, kx)` holds `x[b, c, oy s + ky - pad, ox s + kx - pad]`, zero
/// in the padding.
pub fn im2col<T: Copy + Default>(x: &[T], rows: usize, p: &Planes, w: &Window, out: &mut [T]) {
    let table = gather_table(p, w);
    let per = table.len();
    for b in 0..rows {
        let img = &x[b * p.len()..(b + 1) * p.len()];
        let dst = &mut out[b * per..(b + 1) * per];
        for (o, t) in dst.iter_mut().zip(&table) {
            *o = t.map_or(T::default(), |i| img[i as usize]);
        }
    }
}

/// The adjoint of [`im2col`]: every window value of `cols` added into the image position it
/// was read from (`out`, zeroed first); padding positions dropped. Returns the adds: values
/// added to a position already written.
pub fn col2im<T: Copy + Default + std::ops::AddAssign>(
    cols: &[T],
    p: &Planes,
    w: &Window,
    out: &mut [T],
) -> u64 {
    let table = gather_table(p, w);
    let per = table.len();
    let rows = out.len() / p.len().max(1);
    out.fill(T::default());
    for b in 0..rows {
        let img = &mut out[b * p.len()..(b + 1) * p.len()];
        for (&v, t) in cols[b * per..(b + 1) * per].iter().zip(&table) {
            if let Some(i) = t {
                img[*i as usize] += v;
            }
        }
    }
    // Each read beyond a position's first is an add, the same count in every example.
    let mut reads = vec![0u64; p.len()];
    for &i in table.iter().flatten() {
        reads[i as usize] += 1;
    }
    let per_image: u64 = reads.iter().map(|&n| n.saturating_sub(1)).sum();
    per_image * rows as u64
}

/// `[rows P, F]` (a matmul's output, one row per position) to `[rows, F P]` (NCHW images).
pub fn to_channels<T: Copy>(x: &[T], rows: usize, positions: usize, out: &mut [T]) {
    let f = x.len() / (rows * positions).max(1);
    for b in 0..rows {
        for q in 0..positions {
            let src = &x[(b * positions + q) * f..(b * positions + q + 1) * f];
            for (c, &v) in src.iter().enumerate() {
                out[(b * f + c) * positions + q] = v;
            }
        }
    }
}

/// The inverse of [`to_channels`]: `[rows, F P]` to `[rows P, F]`.
pub fn from_channels<T: Copy>(x: &[T], rows: usize, positions: usize, out: &mut [T]) {
    let f = x.len() / (rows * positions).max(1);
    for b in 0..rows {
        for q in 0..positions {
            let dst = &mut out[(b * positions + q) * f..(b * positions + q + 1) * f];
            for (c, v) in dst.iter_mut().enumerate() {
                *v = x[(b * f + c) * positions + q];
            }
        }
    }
}
