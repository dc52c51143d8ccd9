//! LP-SGLD's variance-corrected quantizer `Q^vc(mu, v, Delta)` (ALGORITHMS.md 1.2; Zhang, Wilson
//! and De Sa, ICML 2022; `gaussian/gaussian.py::Q_vc` and `bnn/optim.py::Q_vc`), per element:
//!
//! With `v0 = Delta^2 / 4`:
//! - **Case A** (`v > v0`): `x = mu + sqrt(v - v0) xi`; `q = Q_nearest(x)` (clamped); `r = x - q`,
//!   `a = |r|`; draw `s = +Delta` w.p. `p1 = (v0 + a^2 + a Delta) / (2 Delta^2)`, `-Delta` w.p.
//!   `p2 = (v0 + a^2 - a Delta) / (2 Delta^2)`, else 0 (one uniform `u`: `u < p1`, then
//!   `u < p1 + p2`); `theta = q + sign(r) s` (`sign(0) = 0`). Mean `mu`, variance exactly `v`.
//! - **Case B** (`v <= v0`): `q = Q_stochastic(mu)`, `r = mu - q`, `p = |r| / Delta`,
//!   `var_s = (1 - p) r^2 + p (Delta - |r|)^2`; if `v > var_s` add `+-Delta` each w.p.
//!   `(v - var_s) / (2 Delta^2)` (`u < p1`: `+`, `p1 <= u < 2 p1`: `-`), else nothing.
//! - Both cases clamp to the format's range.
//!
//! Nearest rounding is QPyTorch's `round()` (half away from zero, `rna`); stochastic rounding is
//! lpsim's `sr` (32 random bits). Random numbers: `xi` from the `normal` stream, the rounding
//! word from the `round` stream, `u` from the `choice` stream, each indexed by element — the
//! reference's per-element order (xi, rounding uniform, u) becomes three independent streams.
//!
//! Block floating point (`bfp`, after `bnn/optim.py::fp_Q_vc`): per block, `Delta_mu` from the
//! block of `mu` chooses the case and `v0` (the reference takes it from the current weights `p`;
//! the op sees `mu = p - lr d`, whose block exponent is the same unless `max |p|` crosses a power
//! of two). Case A blocks: `x = mu + sqrt(v - v0) xi`, then `Delta_x` is recomputed from the block
//! of `x` (as the reference does) and used for the nearest rounding, the categorical draw (with
//! `Delta_x^2 / 4` in `p1, p2`, which keeps them probabilities) and the clamp to
//! `+-(2^(wl-1) - 1) Delta_x`. Case B blocks use `Delta_mu`: `q` is the bfp stochastic rounding of
//! the block of `mu` (the reference would take `Delta` from `x`, which is undefined when
//! `v < v0`).

use crate::arith::ActionCounts;
use crate::format::{Element, Format};
use crate::graph::exec::{NORMAL_BITS, UNIFORM_BITS};
use crate::round::{RandomStream, Rounding};

/// The three random streams of the quantizer.
#[derive(Clone, Copy, Debug)]
pub struct VcStreams {
    /// Gaussian `xi` (Case A).
    pub normal: RandomStream,
    /// The stochastic-rounding word (Case B).
    pub round: RandomStream,
    /// The categorical uniform `u`.
    pub choice: RandomStream,
}

impl VcStreams {
    /// Streams derived from one stream id (`id`, `id + 1`, `id + 2`).
    pub fn new(seed: u64, id: u64) -> Self {
        VcStreams {
            normal: RandomStream::new(seed, id),
            round: RandomStream::new(seed, id.wrapping_add(1)),
            choice: RandomStream::new(seed, id.wrapping_add(2)),
        }
    }
}

/// How many elements took each case (for action counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcTally {
    /// Elements in Case A.
    pub case_a: u64,
    /// Elements in Case B.
    pub case_b: u64,
}

impl VcTally {
    /// Record the quantizer's actions: Case A is a nearest rounding (`rna`) plus a Gaussian and
    /// a uniform draw; Case B a stochastic rounding (32 bits) plus a uniform draw.
    pub fn record(&self, format: &Format, counts: &mut ActionCounts) {
        counts.record_quantize(format, Rounding::NearestAway, self.case_a);
        counts.record_quantize(format, Rounding::Stochastic { bits: 32 }, self.case_b);
        counts.random_bits +=
            self.case_a * (NORMAL_BITS + UNIFORM_BITS) + self.case_b * UNIFORM_BITS;
    }
}

/// `sign(r) s` of Case A's categorical draw on grid step `d` with `v0` in the probabilities.
fn case_a_offset(r: f64, d: f64, v0: f64, u: f64) -> f64 {
    let a = r.abs();
    let p1 = (v0 + a * a + a * d) / (2.0 * d * d);
    let p2 = (v0 + a * a - a * d) / (2.0 * d * d);
    let s = if u < p1 {
        d
    } else if u < p1 + p2 {
        -d
    } else {
        0.0
    };
    if r > 0.0 {
        s
    } else if r < 0.0 {
        -s
    } else {
        0.0
    }
}

/// Case B's extra offset for `mu` rounded stochastically to `q` on grid step `d`.
fn case_b_offset(mu: f64, q: f64, d: f64, v: f64, u: f64) -> f64 {
    let r = mu - q;
    let p = r.abs() / d;
    let var_s = (1.0 - p) * r * r + p * (d - r.abs()).powi(2);
    if v > var_s {
        let p1 = (v - var_s) / (2.0 * d * d);
        if u < p1 {
            d
        } else if u < 2.0 * p1 {
            -d
        } else {
            0.0
        }
    } else {
        0.0
    }
}

/// Apply `Q^vc(mu, v)` elementwise onto `format`'s grid (fixed point or bfp; other formats get
/// NaN). `row_len` groups `size=row` and `size=col` blocks. Element `i` draws from the streams
/// at index `i`.
pub fn vc_quantize(
    format: &Format,
    mu: &[f64],
    out: &mut [f64],
    v: f64,
    row_len: usize,
    s: &VcStreams,
) -> VcTally {
    let mut tally = VcTally::default();
    let sr = Rounding::Stochastic { bits: 32 };
    match format {
        Format::Fixed(f) => {
            let d = f.step();
            let v0 = d * d / 4.0;
            let (lo, hi) = (f.min_value(), f.max_value());
            for (i, (o, &m)) in out.iter_mut().zip(mu).enumerate() {
                let k = i as u64;
                let theta = if v > v0 {
                    tally.case_a += 1;
                    let x = m + (v - v0).sqrt() * s.normal.normal_f64(k);
                    let q = f.quantize(x, Rounding::NearestAway, 0);
                    q + case_a_offset(x - q, d, v0, s.choice.uniform_f64(k))
                } else {
                    tally.case_b += 1;
                    let q = f.quantize(m, sr, s.round.bits(k));
                    q + case_b_offset(m, q, d, v, s.choice.uniform_f64(k))
                };
                *o = theta.clamp(lo, hi);
            }
        }
        Format::Block(b) => {
            let Element::Fixed(e) = b.element() else {
                out.fill(f64::NAN);
                return tally;
            };
            let imax = e.int_range().1 as f64;
            let step_of = |exp: i32| e.step() * 2f64.powi(exp);
            b.for_each_block(mu, out, row_len, |mb, ob, pos| {
                let at = |i: usize| pos.index(i) as u64;
                let Some(em) = b.shared_exponent(mb.iter().copied()) else {
                    ob.fill(f64::NAN);
                    return;
                };
                let dm = step_of(em);
                let v0 = dm * dm / 4.0;
                if v > v0 {
                    tally.case_a += mb.len() as u64;
                    let x: Vec<f64> = mb
                        .iter()
                        .enumerate()
                        .map(|(i, &m)| m + (v - v0).sqrt() * s.normal.normal_f64(at(i)))
                        .collect();
                    let Some(ex) = b.shared_exponent(x.iter().copied()) else {
                        ob.fill(f64::NAN);
                        return;
                    };
                    let d = step_of(ex);
                    let lim = imax * d;
                    for (i, (o, &xi)) in ob.iter_mut().zip(&x).enumerate() {
                        let q = ((xi / d).round() * d).clamp(-lim, lim);
                        let u = s.choice.uniform_f64(at(i));
                        *o = (q + case_a_offset(xi - q, d, d * d / 4.0, u)).clamp(-lim, lim);
                    }
                } else {
                    tally.case_b += mb.len() as u64;
                    b.quantize_block(mb, ob, sr, |i| s.round.bits(at(i)));
                    let lim = imax * dm;
                    for (i, (o, &m)) in ob.iter_mut().zip(mb).enumerate() {
                        let u = s.choice.uniform_f64(at(i));
                        *o = (*o + case_b_offset(m, *o, dm, v, u)).clamp(-lim, lim);
                    }
                }
            });
        }
        _ => out.fill(f64::NAN),
    }
    tally
}
