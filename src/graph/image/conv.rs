//! The data movement of a convolution: im2col, its adjoint col2im, and the layouts between a
//! matmul's rows and NCHW images (see the module docs of [`super`]).

use super::{Planes, Window};

/// `x` (`rows` images `p`, NCHW) to the window matrix `out` (`[rows OH OW, C KH KW]`): row
/// `(b, oy, ox)`, column `(c, ky, kx)` holds `x[b, c, oy s + ky - pad, ox s + kx - pad]`, zero
/// in the padding.
pub fn im2col(x: &[f64], rows: usize, p: &Planes, w: &Window, out: &mut [f64]) {
    let (oh, ow) = w.output(p).expect("checked when the graph was built");
    let k = p.channels * w.kh * w.kw;
    let mut r = 0;
    for b in 0..rows {
        let img = &x[b * p.len()..(b + 1) * p.len()];
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &mut out[r * k..(r + 1) * k];
                let mut col = 0;
                for c in 0..p.channels {
                    let plane = &img[c * p.positions()..(c + 1) * p.positions()];
                    for ky in 0..w.kh {
                        for kx in 0..w.kw {
                            row[col] = w.source(p, oy, ox, ky, kx).map_or(0.0, |i| plane[i]);
                            col += 1;
                        }
                    }
                }
                r += 1;
            }
        }
    }
}

/// The adjoint of [`im2col`]: every window value of `cols` added into the image position it
/// was read from (`out`, zeroed first); padding positions dropped. Returns the adds: values
/// added to a position already written.
pub fn col2im(cols: &[f64], p: &Planes, w: &Window, out: &mut [f64]) -> u64 {
    let (oh, ow) = w.output(p).expect("checked when the graph was built");
    let k = p.channels * w.kh * w.kw;
    let rows = out.len() / p.len().max(1);
    out.fill(0.0);
    // How often each position of one image is read: the same for every example.
    let mut reads = vec![0u64; p.positions()];
    for oy in 0..oh {
        for ox in 0..ow {
            for ky in 0..w.kh {
                for kx in 0..w.kw {
                    if let Some(i) = w.source(p, oy, ox, ky, kx) {
                        reads[i] += 1;
                    }
                }
            }
        }
    }
    let mut r = 0;
    for b in 0..rows {
        let img = &mut out[b * p.len()..(b + 1) * p.len()];
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &cols[r * k..(r + 1) * k];
                let mut col = 0;
                for c in 0..p.channels {
                    let plane = &mut img[c * p.positions()..(c + 1) * p.positions()];
                    for ky in 0..w.kh {
                        for kx in 0..w.kw {
                            if let Some(i) = w.source(p, oy, ox, ky, kx) {
                                plane[i] += row[col];
                            }
                            col += 1;
                        }
                    }
                }
                r += 1;
            }
        }
    }
    let per_image: u64 = reads.iter().map(|&n| n.saturating_sub(1)).sum();
    per_image * (p.channels * rows) as u64
}

/// `[rows P, F]` (a matmul's output, one row per position) to `[rows, F P]` (NCHW images).
pub fn to_channels(x: &[f64], rows: usize, positions: usize, out: &mut [f64]) {
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
pub fn from_channels(x: &[f64], rows: usize, positions: usize, out: &mut [f64]) {
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
