//! LP-SGLD's variance-corrected quantizer `Q^vc(mu, v, Delta)` (docs/algorithms.md; Zhang, Wilson
//! and De Sa, ICML 2022; `gaussian/gaussian.py::Q_vc` and `bnn/optim.py::Q_vc`), per element:
//!
//! With `v0 = Delta^2 / 4`:
//! - **Case A** (`v > v0`): `x = mu + sqrt(v - v0) xi`; `q = Q_nearest(x)` (clamped); `r = x - q`,
//!   `a = |r|`; draw `s = +Delta` w.p. `p1 = (v0 + a^2 + a Delta) / (2 Delta^2)`, `-Delta` w.p.
//!   `p2 = (v0 + a^2 - a Delta) / (2 Delta^2)`, else 0 (one uniform `u`: `u < p1`, then
//!   `u < p1 + p2`); `theta = q + sign(r) s`. Mean `mu`, variance exactly `v`.
//! - **Case B** (`v <= v0`): `q = Q_stochastic(mu)`, `r = mu - q`, `p = |r| / Delta`,
//!   `var_s = (1 - p) r^2 + p (Delta - |r|)^2`; if `v > var_s` add `+-Delta` each w.p.
//!   `(v - var_s) / (2 Delta^2)` (`u < p1`: `+`, `p1 <= u < 2 p1`: `-`), else nothing.
//! - Both cases clamp to the format's range.
//!
//! Nearest rounding is QPyTorch's `round()` (half away from zero, `rna`); stochastic rounding is
//! lpsim's `sr` (32 random bits). Random numbers: `xi` from the `normal` stream, the rounding
//! word from the `round` stream, `u` from the `choice` stream, each indexed by element — the
//! reference's per-element order (xi, rounding uniform, u) becomes three independent streams.
//! One deviation: when `r` is exactly 0 the reference's `sign(0) = 0` returns `q`, whose
//! conditional variance is 0, not `v0`; lpsim draws the three-point distribution below for
//! `r = 0` too (`x` is continuous, so this is a probability-zero event in either code).
//!
//! # Unequal gaps
//!
//! Both cases are draws onto the neighbours of a grid point `q`. On a grid whose gaps below and
//! above `q` are `a` and `b` (a float grid at a power of two: `b = 2 a` on the positive side),
//! the three-point distribution on `{q - a, q, q + b}` with mean `q + r` and variance `v0` has
//! `b p+ - a p- = r` and `b^2 p+ + a^2 p- = v0 + r^2`, so
//!
//! `p+ = (v0 + r^2 + r a) / (b (a + b))`, `p- = (v0 + r^2 - r b) / (a (a + b))`.
//!
//! With `a = b = Delta` and `r = +-|r|` these are the reference's `p1`, `p2`. They are
//! probabilities iff `p+ >= 0` (for `r < 0`: `v0 >= |r| (a - |r|)`, the variance of stochastic
//! rounding of `q + r` between `q - a` and `q`), `p- >= 0` (for `r > 0`: `v0 >= r (b - r)`) and
//! `p+ + p- = (v0 + r^2 + r (a - b)) / (a b) <= 1`. For nearest rounding (`-a/2 <= r <= b/2`) on
//! a uniform grid this is `Delta^2 / 4 <= v0 <= 3 Delta^2 / 4`; the reference takes the lower
//! end. Case B's top-up of variance `w` is the same with `r = 0`: `+b` w.p. `w / (b (a + b))`,
//! `-a` w.p. `w / (a (a + b))`, probabilities iff `w <= a b`.
//!
//! # Fixed point, bfp, MXINT8
//!
//! Fixed point is the reference's `Q_vc` with `Delta` the format's step. Block floating point
//! (`bfp`, and MXINT8 whose elements are integers, after `bnn/optim.py::fp_Q_vc`): per block,
//! `Delta_mu` from the block of `mu` chooses the case and `v0` (the reference takes it from the
//! current weights `p`; the op sees `mu = p - lr d`, whose block exponent is the same unless
//! `max |p|` crosses a power of two). Case A blocks: `x = mu + sqrt(v - v0) xi`, then `Delta_x`
//! is recomputed from the block of `x` (as the reference does) and used for the nearest
//! rounding, the categorical draw (with `Delta_x^2 / 4` in `p1, p2`, which keeps them
//! probabilities) and the clamp to `+-(2^(wl-1) - 1) Delta_x`. Case B blocks use `Delta_mu`: `q`
//! is the bfp stochastic rounding of the block of `mu` (the reference would take `Delta` from
//! `x`, which is undefined when `v < v0`). Where the clamp acts (a draw past the range), the
//! value is the clamp's.
//!
//! # Float formats
//!
//! Any float with a zero (`float:`, the aliases bf16, fp16, e5m2, e4m3fn, ..., and QPyTorch's
//! `qtorch:`; E8M0 has no zero and is refused). The reference's float path (`fp_Q_vc` with
//! `FL = MAN - floor(log2 |mu|)`, used by no script) recomputes `Delta` from `x` and steps
//! `+-Delta_x` from `q` even where `q` is in another binade, which leaves the grid at binade
//! edges; lpsim keeps every draw on the grid and the moments exact:
//!
//! - The *local grid* `L(k)` is the format's grid with every step below `2^k` raised to `2^k`:
//!   the multiples of `2^k` up to `2^(k + m + 1)` (`m` mantissa bits; all of them values of the
//!   format, subnormals included), then the format's own binades, whose steps double at each
//!   power of two. `Delta_0 = 2^k0` is the format's step at `mu` (the subnormal step below the
//!   smallest normal; a format that flushes subnormals has only `0` and `2^emin` there, so its
//!   local grids never go below `2^emin`, coarser than the format in its lowest `m + 1`
//!   binades).
//! - `Delta = 2^k` is the finest step `>= Delta_0` whose uniform region covers
//!   `|mu| + 4 sqrt(v)`: `2^(k + m + 1) >= |mu| + 4 sqrt(v)`, at most the top binade's step.
//!   **Case A** when `v > Delta^2 / 4`: `x = mu + sqrt(v - v0) xi`, `q` the nearest point of
//!   `L(k)` (`rna`), and the three-point draw with `L(k)`'s gaps at `q` and `v0 = Delta^2 / 4`.
//!   Inside the uniform region `a = b = Delta`; at its edge `q = +-2^(k + m + 1)` the outward
//!   gap is `2 Delta`, and for `x` up to the edge (`-Delta/2 <= r <= 0`) the probabilities hold
//!   (`v0 = a^2 / 4`, `p- >= 0`, `p+ + p- <= 1/2`): there the unequal gaps keep the draw exact.
//!   Past the edge the format's grid is coarser: where no distribution on it has mean `x` and
//!   variance `v0` (some `p < 0`), `x` is rounded stochastically between its neighbours (mean
//!   exact, conditional variance `f (1 - f) gap^2 > v0`; counted as [`VcTally::fallback`]). `x`
//!   gets there with probability below `Phi(-4) = 3.2e-5`, unless `Delta` is capped at the top
//!   binade. So Case A has mean `mu` and variance `v` up to that tail.
//! - **Case B** otherwise (`v <= Delta^2 / 4`): `q` is the stochastic rounding of `mu` on the
//!   format's grid (`L(k0)`), and the missing variance `w = v - var_s`, if positive, is the
//!   zero-mean top-up onto `q - A`, `q + B`, the nearest pair of points of `L(k0)` around `q`
//!   with `A B >= w` (the neighbours whenever `v <= Delta_0^2 / 4`, the reference's Case B;
//!   farther ones when the coverage rule moved a `v` above that to Case B). Exact whenever
//!   `v >= var_s`; otherwise, as in the reference, the variance is `var_s > v`.
//! - Range: `L(k)` continues past the largest finite value with the top binade's step, and every
//!   drawn value converts as the format's nearest (`rna`) conversion does: to infinity or NaN
//!   when it overflows (bf16, e4m3fn), to the largest value where the format saturates (`sat=on`,
//!   OCP FP6/FP4, MX elements, QPyTorch), which moves the mean inward there, as the fixed-point
//!   clamp does. A zero keeps the sign of `x` (Case A) or `mu` (Case B) where the format has
//!   `-0`; an unsigned format converts negative draws as it converts any negative value.
//!
//! # MX with float elements
//!
//! Per block (32 elements for the `mx*` aliases), following the bfp order: each element's case
//! and `Delta` are decided on the element grid scaled by the scale of the block of `mu`; the
//! output block's scale is recomputed from the block of the values about to be drawn (`x` in
//! Case A, `mu` in Case B); every element is then drawn on the element grid scaled by it (Case A
//! keeping its `Delta` relative to the scale, so `v0` changes with the scale, as in bfp) and
//! converted by the element format, which saturates. With an unchanged scale the draws are
//! exact as above. MX's scale rule `floor(log2 max |x|) - emax_elem` leaves the block's largest
//! element above the element's largest value when its significand is above it (above 1.75 for
//! E4M3): it saturates, in this quantizer as in plain MX conversion.
//!
//! # Actions
//!
//! [`VcTally::record`]: Case A is a nearest rounding into the format plus a Gaussian and a
//! uniform draw, Case B a 32-bit stochastic rounding plus a uniform draw, for every kind of
//! format; the three-point draw, the top-up and the fallback all use that one uniform. A `mu`
//! that is not finite, or a binade or more past the range, only converts (counted as Case B).

mod float;

use crate::arith::ActionCounts;
use crate::format::exact::pow2;
use crate::format::{BlockFormat, Element, FixedFormat, Format};
use crate::round::{RandomStream, Rounding, NORMAL_BITS, UNIFORM_BITS};
use float::{FloatGrid, Plan};

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
    /// Case A elements of a float grid whose `x` landed where the grid is too coarse for a
    /// draw of variance `v0` and were rounded stochastically instead (mean still exact, variance
    /// above `v`; see the module docs). Not an action: the same uniform decides.
    pub fallback: u64,
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

/// The variance `f (1 - f) Delta^2` that stochastic rounding of `mu` to `q` (residual
/// `r = mu - q`) on a grid of step `d` injected, as the reference writes it:
/// `(1 - p) r^2 + p (d - |r|)^2` with `p = |r| / d`.
fn sr_variance(r: f64, d: f64) -> f64 {
    let p = r.abs() / d;
    (1.0 - p) * r * r + p * (d - r.abs()).powi(2)
}

/// The probabilities `(p+, p-)` of the three-point distribution on `{q - a, q, q + b}` (`a`, `b`
/// the grid's gaps below and above `q`) with mean `q + r` and variance `v0`, or `None` when they
/// are not probabilities (no such distribution on these points; see the module docs).
fn three_point_probs(r: f64, a: f64, b: f64, v0: f64) -> Option<(f64, f64)> {
    // p+ = (v0 + r^2 + r a) / (b (a + b)), p- = (v0 + r^2 - r b) / (a (a + b)), written with
    // |r| so that a = b = Delta gives the reference's p1 and p2 bit for bit.
    let m = r.abs();
    let (up, down) = if r < 0.0 {
        (
            (v0 + r * r - m * a) / (b * (a + b)),
            (v0 + r * r + m * b) / (a * (a + b)),
        )
    } else {
        (
            (v0 + r * r + m * a) / (b * (a + b)),
            (v0 + r * r - m * b) / (a * (a + b)),
        )
    };
    (up >= 0.0 && down >= 0.0 && up + down <= 1.0).then_some((up, down))
}

/// Case A's categorical offset from [`three_point_probs`], drawn with one uniform `u` (the step
/// toward `r` first, as the reference's `u < p1`, `u < p1 + p2`), or `None` when no such
/// distribution exists.
fn three_point(r: f64, a: f64, b: f64, v0: f64, u: f64) -> Option<f64> {
    let (up, down) = three_point_probs(r, a, b, v0)?;
    let (first, p_first, second, p_second) = if r < 0.0 {
        (-a, down, b, up)
    } else {
        (b, up, -a, down)
    };
    Some(if u < p_first {
        first
    } else if u < p_first + p_second {
        second
    } else {
        0.0
    })
}

/// Case B's extra zero-mean offset of variance `w` (nothing when `w <= 0`) onto the points
/// `q - a` and `q + b`: `+b` w.p. `w / (b (a + b))`, `-a` w.p. `w / (a (a + b))` (one uniform
/// `u`: `+` first). The caller guarantees `w <= a b`, so the probabilities sum to at most 1.
fn top_up(w: f64, a: f64, b: f64, u: f64) -> f64 {
    if w <= 0.0 {
        return 0.0;
    }
    let up = w / (b * (a + b));
    let down = w / (a * (a + b));
    if u < up {
        b
    } else if u < up + down {
        -a
    } else {
        0.0
    }
}

/// Apply `Q^vc(mu, v)` elementwise onto `format`'s grid (see the module docs for each kind of
/// format; a float format without a zero, E8M0, gets NaN, as does every element when `v` is not
/// finite and `>= 0`). `row_len` groups `size=row` blocks. Element `i` draws from the streams at
/// index `i`.
pub fn vc_quantize(
    format: &Format,
    mu: &[f64],
    out: &mut [f64],
    v: f64,
    row_len: usize,
    s: &VcStreams,
) -> VcTally {
    let mut tally = VcTally::default();
    if !(v.is_finite() && v >= 0.0) {
        out.fill(f64::NAN);
        return tally;
    }
    let sr = Rounding::Stochastic { bits: 32 };
    match format {
        Format::Fixed(f) => {
            let d = f.step();
            let v0 = d * d / 4.0;
            let (lo, hi) = (f.min_value(), f.max_value());
            for (i, (o, &m)) in out.iter_mut().zip(mu).enumerate() {
                let k = i as u64;
                let u = s.choice.uniform_f64(k);
                let theta = if v > v0 {
                    tally.case_a += 1;
                    let x = m + (v - v0).sqrt() * s.normal.normal_f64(k);
                    let q = f.quantize(x, Rounding::NearestAway, 0);
                    // No draw exists only past the range, where q was clamped: keep q.
                    q + three_point(x - q, d, d, v0, u).unwrap_or(0.0)
                } else {
                    tally.case_b += 1;
                    let q = f.quantize(m, sr, s.round.bits(k));
                    q + top_up(v - sr_variance(m - q, d), d, d, u)
                };
                *o = theta.clamp(lo, hi);
            }
        }
        Format::Block(b) => match b.element() {
            Element::Fixed(e) => block_fixed(b, &e, row_len, mu, out, v, s, &mut tally),
            Element::Float(e) => match FloatGrid::of_float(&e) {
                Some(grid) => {
                    let convert = |t: f64| e.quantize(t, Rounding::NearestAway, 0);
                    block_float(b, grid, convert, row_len, mu, out, v, s, &mut tally)
                }
                None => out.fill(f64::NAN),
            },
        },
        Format::Float(f) => match FloatGrid::of_float(f) {
            Some(grid) => {
                let convert = |t: f64| f.quantize(t, Rounding::NearestAway, 0);
                scalar_float(grid, convert, mu, out, v, s, &mut tally)
            }
            None => out.fill(f64::NAN),
        },
        Format::QTorch(q) => {
            let convert = |t: f64| f64::from(q.quantize_f32(t as f32, Rounding::NearestAway, 0));
            scalar_float(FloatGrid::of_qtorch(q), convert, mu, out, v, s, &mut tally)
        }
    }
    tally
}

/// Block floating point with integer elements (bfp, MXINT8), after the reference's `fp_Q_vc`.
#[allow(clippy::too_many_arguments)]
fn block_fixed(
    b: &BlockFormat,
    e: &FixedFormat,
    row_len: usize,
    mu: &[f64],
    out: &mut [f64],
    v: f64,
    s: &VcStreams,
    tally: &mut VcTally,
) {
    let sr = Rounding::Stochastic { bits: 32 };
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
                let offset = three_point(xi - q, d, d, d * d / 4.0, u).unwrap_or(0.0);
                *o = (q + offset).clamp(-lim, lim);
            }
        } else {
            tally.case_b += mb.len() as u64;
            b.quantize_block(mb, ob, sr, |i| s.round.bits(at(i)));
            let lim = imax * dm;
            for (i, (o, &m)) in ob.iter_mut().zip(mb).enumerate() {
                let u = s.choice.uniform_f64(at(i));
                *o = (*o + top_up(v - sr_variance(m - *o, dm), dm, dm, u)).clamp(-lim, lim);
            }
        }
    });
}

/// One element of a float grid through its plan; `convert` applies the format's range rules.
#[allow(clippy::too_many_arguments)]
fn finish(
    grid: &FloatGrid,
    plan: Plan,
    mu: f64,
    v: f64,
    k: u64,
    s: &VcStreams,
    tally: &mut VcTally,
    convert: impl Fn(f64) -> f64,
) -> f64 {
    let u = || s.choice.uniform_f64(k);
    convert(match plan {
        Plan::A { x, k: step } => {
            tally.case_a += 1;
            let (theta, fell_back) = grid.finish_a(step, x, u());
            tally.fallback += u64::from(fell_back);
            theta
        }
        Plan::B => {
            tally.case_b += 1;
            grid.finish_b(mu, v, s.round.bits(k), u())
        }
        Plan::Convert => {
            tally.case_b += 1;
            mu
        }
    })
}

/// A scalar float format (`float:`, `qtorch:`): each element on its own local grid.
fn scalar_float(
    grid: FloatGrid,
    convert: impl Fn(f64) -> f64 + Copy,
    mu: &[f64],
    out: &mut [f64],
    v: f64,
    s: &VcStreams,
    tally: &mut VcTally,
) {
    for (i, (o, &m)) in out.iter_mut().zip(mu).enumerate() {
        let k = i as u64;
        let plan = grid.plan(m, v, || s.normal.normal_f64(k));
        *o = finish(&grid, plan, m, v, k, s, tally, convert);
    }
}

/// MX with float elements: per block, the cases and `Delta` of each element are decided on the
/// element grid scaled by the block of `mu`'s scale; the output block's scale is that of the
/// block of the values about to be drawn (`x` in Case A, `mu` in Case B), as bfp recomputes its
/// scale from `x`; every element is drawn on the element grid scaled by it (Case A keeping its
/// step relative to the scale), then converted by the element format (saturating).
#[allow(clippy::too_many_arguments)]
fn block_float(
    b: &BlockFormat,
    grid: FloatGrid,
    convert: impl Fn(f64) -> f64,
    row_len: usize,
    mu: &[f64],
    out: &mut [f64],
    v: f64,
    s: &VcStreams,
    tally: &mut VcTally,
) {
    b.for_each_block(mu, out, row_len, |mb, ob, pos| {
        let at = |i: usize| pos.index(i) as u64;
        let Some(s_mu) = b.shared_exponent(mb.iter().copied()) else {
            ob.fill(f64::NAN);
            return;
        };
        let g_mu = grid.scaled(s_mu);
        let plans: Vec<Plan> = mb
            .iter()
            .enumerate()
            .map(|(i, &m)| g_mu.plan(m, v, || s.normal.normal_f64(at(i))))
            .collect();
        let drawn = plans.iter().zip(mb).map(|(p, &m)| match p {
            Plan::A { x, .. } => *x,
            _ => m,
        });
        let Some(s_out) = b.shared_exponent(drawn) else {
            ob.fill(f64::NAN);
            return;
        };
        let (g_out, shift) = (grid.scaled(s_out), s_out - s_mu);
        let (up, down) = (pow2(-s_out), pow2(s_out));
        for (i, ((o, &m), plan)) in ob.iter_mut().zip(mb).zip(plans).enumerate() {
            let plan = match plan {
                Plan::A { x, k } => Plan::A { x, k: k + shift },
                other => other,
            };
            let k = at(i);
            *o = finish(&g_out, plan, m, v, k, s, tally, |t| convert(t * up) * down);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::three_point_probs;

    /// Mean and variance of the offset: `b p+ - a p-` and `b^2 p+ + a^2 p- - mean^2`.
    fn moments(a: f64, b: f64, (up, down): (f64, f64)) -> (f64, f64) {
        let mean = b * up - a * down;
        (mean, b * b * up + a * a * down - mean * mean)
    }

    #[test]
    fn three_point_probabilities_hold_where_the_module_docs_say() {
        let d = 0.125;
        let v0 = d * d / 4.0;
        for i in 0..=64 {
            let t = f64::from(i) / 64.0;
            // Uniform grid, nearest rounding: r in [-d/2, d/2], v0 = d^2/4 (the reference).
            let r = (t - 0.5) * d;
            let p = three_point_probs(r, d, d, v0).expect("uniform grid");
            let (mean, var) = moments(d, d, p);
            assert!(
                (mean - r).abs() < 1e-15 && (var - v0).abs() < 1e-15,
                "r = {r}"
            );
            // The edge of the uniform region: gaps d inward, 2d outward, x up to the edge.
            let r = -t * d / 2.0;
            for (a, b, r) in [(d, 2.0 * d, r), (2.0 * d, d, -r)] {
                let p = three_point_probs(r, a, b, v0).expect("edge");
                assert!(p.0 + p.1 <= 0.5 + 1e-15);
                let (mean, var) = moments(a, b, p);
                assert!(
                    (mean - r).abs() < 1e-15 && (var - v0).abs() < 1e-15,
                    "r = {r}"
                );
            }
        }
        // Past the edge the outward gap's rounding variance exceeds v0: no distribution.
        assert!(three_point_probs(0.5 * d, d, 2.0 * d, v0).is_none());
        assert!(three_point_probs(0.1 * d, d, 2.0 * d, v0).is_some());
        // On a grid whose gaps are 2d, a point halfway needs variance d^2 > v0.
        assert!(three_point_probs(d, 2.0 * d, 2.0 * d, v0).is_none());
    }
}
