//! Elementwise kernels of the vector unit: `x + y`, `x - y`, `x y`, `c x` and `a x + y`, each
//! result rounded to an output format with a rounding unit.
//!
//! Sums and products are rounded exactly once: a product is split exactly into `p + e`
//! (`e = fma(x, y, -p)`, Dekker/Kahan's TwoProduct) and `round(p + e)` goes through the same exact
//! two-term rounding as the MAC's adder ([`Adder`]). `axpy` is the unfused unit of a vector lane
//! without FMA: `round(round(a x) + y)`, two roundings, as such hardware computes it. The random
//! word of element `i` is `stream.bits(i)` (`a x` of axpy uses `stream.bits(n + i)` for a slice
//! of `n`), so results do not depend on the number of threads.

use rayon::prelude::*;

use crate::arith::mac::{AddEvent, Adder, EventTally, MacError};
use crate::arith::ActionCounts;
use crate::format::{alias, two_sum, Format};
use crate::round::{RandomStream, Rounding};
use crate::simd::multiversion;

/// The elements: `out[i] = op(x[i], y[i])` rounded by `unit`, with the range events. With
/// `native` (the unit is `fp32` nearest-even) a sum or product whose `f64` rounding `hi` is
/// finite and not tiny is rounded by the processor's `f64 -> f32` conversion of `hi + lo`
/// rounded to odd ([`to_odd`]; `lo` its TwoSum/TwoProduct error, so an exact result is `hi`
/// itself): the same value and the same overflow as the exact two-term rounding (`fp32`
/// nearest-even of an `f64` value is the conversion, and the conversion's infinity is exactly a
/// rounded magnitude above the largest value); zeros (IEEE sign rules) and non-finite results
/// take [`Adder::add`].
fn run(
    op: ElemOp,
    x: &[f64],
    y: &[f64],
    out: &mut [f64],
    unit: &Adder,
    stream: RandomStream,
    native: bool,
) -> EventTally {
    let n = x.len();
    let needs_y = !matches!(op, ElemOp::Scale(_));
    // A deterministic unit ignores the word: none is drawn.
    let stochastic = unit.rounding.is_stochastic();
    let word = |i: usize| if stochastic { stream.bits(i as u64) } else { 0 };
    // `a + b` rounded once.
    let add = |a: f64, b: f64, w: u32| {
        if native {
            let (hi, lo) = two_sum(a, b);
            if hi.is_finite() && hi.abs() >= NATIVE_MIN {
                // `hi + lo` rounded to odd at `f64` precision (`lo` only as a sticky bit),
                // then to `f32`: the one rounding of the exact sum (53 >= 24 + 2 bits).
                let r = to_odd(hi, lo) as f32;
                let event = if r.is_infinite() {
                    AddEvent::Overflow
                } else {
                    AddEvent::None
                };
                return (f64::from(r), event);
            }
        }
        unit.add(a, b, w)
    };
    let chunk = |(c, o): (usize, &mut [f64])| {
        // `fp32` nearest-even: one branch-free pass per op (the loop below matches the op and
        // tests each element); a chunk with a non-finite or tiny result is done again below.
        if native {
            let lo = c * CHUNK;
            let xs = &x[lo..lo + o.len()];
            let ys = if needs_y { &y[lo..lo + o.len()] } else { xs };
            let pass = match op {
                ElemOp::Add => Some(native_add(xs, ys, o)),
                ElemOp::Sub => Some(native_sub(xs, ys, o)),
                ElemOp::Mul => Some(native_mul(xs, ys, o)),
                ElemOp::Scale(k) => Some(native_scale(k, xs, o)),
                ElemOp::Axpy(_) => None,
            };
            if let Some((overflows, true)) = pass {
                return EventTally {
                    overflows,
                    ..EventTally::default()
                };
            }
        }
        let mut t = EventTally::default();
        for (j, slot) in o.iter_mut().enumerate() {
            let i = c * CHUNK + j;
            let yi = if needs_y { y[i] } else { 0.0 };
            let (v, e) = match op {
                ElemOp::Add => add(x[i], yi, word(i)),
                ElemOp::Sub => add(x[i], -yi, word(i)),
                ElemOp::Mul => {
                    let (p, e) = two_prod(x[i], yi);
                    add(p, e, word(i))
                }
                ElemOp::Scale(k) => {
                    let (p, e) = two_prod(k, x[i]);
                    add(p, e, word(i))
                }
                ElemOp::Axpy(a) => {
                    let (p, e) = two_prod(a, x[i]);
                    let (ax, e1) = add(p, e, stream.bits((n + i) as u64));
                    t.note(e1);
                    add(ax, yi, word(i))
                }
            };
            t.note(e);
            *slot = v;
        }
        t
    };
    // One chunk without the thread pool (the steps' vectors are mostly small).
    if out.len() <= CHUNK {
        return chunk((0, out));
    }
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .map(chunk)
        .reduce(EventTally::default, EventTally::plus)
}

/// The native `fp32` rounding of `op(x[i], y[i])` for every element, `exact(a, b)` giving the
/// result's `f64` rounding and its error (TwoSum or TwoProduct): [`run`]'s `native` branch
/// without branches, so it vectorizes. Returns the overflows and whether every `hi` was finite
/// and not tiny (else the values are not used: the caller rounds the chunk element by element).
#[inline(always)]
fn native_pass(
    x: &[f64],
    y: &[f64],
    out: &mut [f64],
    exact: impl Fn(f64, f64) -> (f64, f64),
) -> (u64, bool) {
    let (mut overflows, mut ok) = (0u64, true);
    for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
        let (hi, lo) = exact(a, b);
        ok &= hi.is_finite() & (hi.abs() >= NATIVE_MIN);
        let r = to_odd(hi, lo) as f32;
        overflows += u64::from(r.is_infinite());
        *o = f64::from(r);
    }
    (overflows, ok)
}

/// The exact sum `hi + lo` (`hi` its rounding to nearest, `lo` the error, `|lo| <= ulp(hi) / 2`,
/// `hi` finite) rounded to odd at `f64` precision: `hi` when `lo` is zero or `hi`'s last bit is
/// 1, else its neighbour toward `lo` (whose last bit is 1; away from zero is one up in the
/// magnitude's bits, toward zero one down). Rounding this to a format of at most 51 bits, to
/// nearest, is rounding the exact sum (Boldo and Melquiond, IEEE TC 2008): the odd last bit
/// keeps the information that the sum was not a midpoint. As selects, so loops of it vectorize.
#[inline(always)]
fn to_odd(hi: f64, lo: f64) -> f64 {
    let bits = hi.to_bits();
    let even = (lo != 0.0) & (bits & 1 == 0);
    let away = (lo > 0.0) == (hi > 0.0);
    let step: u64 = if away { 1 } else { u64::MAX };
    f64::from_bits(bits.wrapping_add(if even { step } else { 0 }))
}

fn native_add_portable(x: &[f64], y: &[f64], out: &mut [f64]) -> (u64, bool) {
    native_pass(x, y, out, two_sum)
}

fn native_sub_portable(x: &[f64], y: &[f64], out: &mut [f64]) -> (u64, bool) {
    native_pass(x, y, out, |a, b| two_sum(a, -b))
}

fn native_mul_portable(x: &[f64], y: &[f64], out: &mut [f64]) -> (u64, bool) {
    native_pass(x, y, out, two_prod_raw)
}

fn native_scale_portable(k: f64, x: &[f64], out: &mut [f64]) -> (u64, bool) {
    native_pass(x, x, out, |a, _| two_prod_raw(k, a))
}

multiversion!(native_add => native_add_portable, (x: &[f64], y: &[f64], out: &mut [f64]) -> (u64, bool));
multiversion!(native_sub => native_sub_portable, (x: &[f64], y: &[f64], out: &mut [f64]) -> (u64, bool));
multiversion!(native_mul => native_mul_portable, (x: &[f64], y: &[f64], out: &mut [f64]) -> (u64, bool));
multiversion!(native_scale => native_scale_portable, (k: f64, x: &[f64], out: &mut [f64]) -> (u64, bool));

/// The smallest magnitude the native path takes: far above the `f64` subnormals, where a
/// product's error term could be inexact, and below every `f32` value.
const NATIVE_MIN: f64 = 1e-250;

/// An elementwise operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ElemOp {
    /// `x + y`.
    Add,
    /// `x - y`.
    Sub,
    /// `x y`.
    Mul,
    /// `c x` (`y` unused).
    Scale(f64),
    /// `a x + y`, unfused.
    Axpy(f64),
}

/// The exact product `x y` as `p + e` (finite, no underflow of the error term assumed: the
/// error of a product of values of formats that fit `f64` is representable unless it is below
/// `2^-1074`, where it is lost only for results far below every format's range).
#[inline(always)]
fn two_prod(x: f64, y: f64) -> (f64, f64) {
    let (p, e) = two_prod_raw(x, y);
    if !p.is_finite() {
        return (p, 0.0);
    }
    (p, e)
}

/// TwoProduct without [`two_prod`]'s test: `x y` and `fma(x, y, -x y)`, exact where the
/// product is finite and not tiny, which the native pass checks on its result. No branch, so
/// a loop of it vectorizes.
#[inline(always)]
fn two_prod_raw(x: f64, y: f64) -> (f64, f64) {
    let p = x * y;
    (p, x.mul_add(y, -p))
}

/// The vector unit's rounding of one output format, built once (the executor prepares one per
/// node of a step graph): the exact two-term adder, and whether it is `fp32` nearest-even, whose
/// exact sums the processor's conversion rounds (`run`'s `native`).
#[derive(Clone, Copy, Debug)]
pub struct VectorRounding {
    unit: Adder,
    native: bool,
}

impl VectorRounding {
    /// The unit rounding to `format` with `rounding`, if the format has one (a float with a
    /// zero or a fixed-point format: not block formats nor QPyTorch's).
    pub fn new(format: Format, rounding: Rounding) -> Result<Self, MacError> {
        Ok(VectorRounding {
            unit: Adder::new("output", format, rounding)?,
            native: rounding == Rounding::NearestEven && Some(format) == alias("fp32"),
        })
    }

    /// Whether this is `fp32` nearest-even, which rounds exact and inexact results in one
    /// branch-free pass (so a caller need not first test whether a result is exact).
    pub fn is_native(&self) -> bool {
        self.native
    }

    /// [`elementwise`]'s values and range events, without its counts (the executor's are fixed
    /// per graph). `y` may be empty for [`ElemOp::Scale`]; the slices have the lengths
    /// [`elementwise`] checks.
    pub fn apply(
        &self,
        op: ElemOp,
        x: &[f64],
        y: &[f64],
        out: &mut [f64],
        stream: RandomStream,
    ) -> EventTally {
        run(op, x, y, out, &self.unit, stream, self.native)
    }
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Compute `out[i] = op(x[i], y[i])` rounded to `format` with `rounding`, in parallel, and
/// report the actions (adds or multiplies in the output format, random bits, range events).
/// `y` may be empty for [`ElemOp::Scale`].
pub fn elementwise(
    op: ElemOp,
    x: &[f64],
    y: &[f64],
    out: &mut [f64],
    format: Format,
    rounding: Rounding,
    stream: RandomStream,
) -> Result<ActionCounts, MacError> {
    let n = x.len();
    let needs_y = !matches!(op, ElemOp::Scale(_));
    if out.len() != n || (needs_y && y.len() != n) {
        return Err(MacError::Shape(format!(
            "elementwise: x has {n} elements, y {}, out {}",
            y.len(),
            out.len()
        )));
    }
    let tally = VectorRounding::new(format, rounding)?.apply(op, x, y, out, stream);
    let mut counts = ActionCounts::new();
    let n64 = n as u64;
    let roundings = match op {
        ElemOp::Add | ElemOp::Sub => {
            counts.record_add(&format, n64);
            n64
        }
        ElemOp::Mul | ElemOp::Scale(_) => {
            counts.record_mul(&format, &format, n64);
            n64
        }
        ElemOp::Axpy(_) => {
            counts.record_mul(&format, &format, n64);
            counts.record_add(&format, n64);
            2 * n64
        }
    };
    counts.random_bits += roundings * u64::from(rounding.random_bits());
    counts.overflows += tally.overflows;
    counts.saturations += tally.saturations;
    counts.wraps += tally.wraps;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    //! The native `fp32` path against the exact two-term rounding on the same elements.

    use super::*;
    use crate::format::parse;

    #[test]
    fn native_fp32_equals_the_exact_unit() {
        let s = RandomStream::new(1, 2);
        let unit = Adder::new("output", parse("fp32").unwrap(), Rounding::NearestEven).unwrap();
        // f32 values of every magnitude, near the largest value (sums overflow), zeros of both
        // signs, exact cancellations, tiny values (subnormal f32 results), NaN and infinities.
        let pick = |i: u64| -> f64 {
            let w = s.bits(i);
            let e = (w % 300) as i32 - 150;
            let m = 1.0 + f64::from(s.bits(i + 1_000_000) >> 8) / 16_777_216.0;
            let v = f64::from((m * 2f64.powi(e.clamp(-149, 127))) as f32);
            let v = if w & 1 == 1 { -v } else { v };
            match w % 41 {
                0 => 0.0,
                1 => -0.0,
                2 => f64::from(f32::MAX),
                3 => f64::from(f32::MIN_POSITIVE) * 0.75,
                4 => f64::NAN,
                5 => f64::INFINITY,
                _ => v,
            }
        };
        let n = 20_000;
        let mut x: Vec<f64> = (0..n).map(|i| pick(i as u64)).collect();
        let mut y: Vec<f64> = (0..n).map(|i| pick(i as u64 + 7_777_777)).collect();
        for i in (0..n).step_by(13) {
            y[i] = -x[i];
        }
        // `f32` midpoints (exact in `f64`) plus a value far below their last bit: the `f64` sum
        // rounds back to the midpoint with a nonzero error, which alone decides the `f32`
        // rounding (the rounding-to-odd case); and full 53-bit operands, whose products are
        // inexact in `f64`.
        for i in (5..n).step_by(17) {
            let m = f64::from(x[i] as f32);
            if m.is_finite() && m != 0.0 && m.abs() < f64::from(f32::MAX) / 2.0 {
                let half_ulp = m.abs() * 2f64.powi(-24);
                x[i] = m + half_ulp.copysign(m) * if i % 2 == 0 { 1.0 } else { 3.0 };
                y[i] = half_ulp * 2f64.powi(-40) * if i % 3 == 0 { 1.0 } else { -1.0 };
            }
        }
        for i in (3..n).step_by(19) {
            x[i] *= 1.0 + f64::from(s.bits(i as u64 + 99)) * 2f64.powi(-52);
            y[i] *= 1.0 - f64::from(s.bits(i as u64 + 77)) * 2f64.powi(-53);
        }
        for op in [
            ElemOp::Add,
            ElemOp::Sub,
            ElemOp::Mul,
            ElemOp::Scale(0.1),
            ElemOp::Scale(2.0),
            ElemOp::Axpy(0.3),
            ElemOp::Axpy(-1.0),
        ] {
            let (mut fast, mut exact) = (vec![0.0; n], vec![0.0; n]);
            let tf = run(op, &x, &y, &mut fast, &unit, s, true);
            let te = run(op, &x, &y, &mut exact, &unit, s, false);
            for i in 0..n {
                let same = fast[i].to_bits() == exact[i].to_bits()
                    || (fast[i].is_nan() && exact[i].is_nan());
                assert!(
                    same,
                    "{op:?} {} {}: {} vs {}",
                    x[i], y[i], fast[i], exact[i]
                );
            }
            assert_eq!(tf, te, "{op:?}");
            assert!(
                te.overflows > 0 || !matches!(op, ElemOp::Add),
                "the sums overflow somewhere"
            );
        }
        // Without zeros, NaNs, infinities and cancellations every chunk takes the branch-free
        // pass (checked), with the same values and overflows.
        let clean = |v: f64| if v.is_finite() && v != 0.0 { v } else { 1.5 };
        let x: Vec<f64> = x.iter().map(|&v| clean(v)).collect();
        let y: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| {
                if clean(b).abs() == a.abs() {
                    0.75
                } else {
                    clean(b)
                }
            })
            .collect();
        for op in [ElemOp::Add, ElemOp::Sub, ElemOp::Mul, ElemOp::Scale(0.1)] {
            let mut fast = vec![0.0; n];
            let (_, ok) = match op {
                ElemOp::Add => native_add(&x, &y, &mut fast),
                ElemOp::Sub => native_sub(&x, &y, &mut fast),
                ElemOp::Mul => native_mul(&x, &y, &mut fast),
                _ => native_scale(0.1, &x, &mut fast),
            };
            assert!(ok, "{op:?} takes the pass");
            let (mut pass, mut exact) = (vec![0.0; n], vec![0.0; n]);
            let tf = run(op, &x, &y, &mut pass, &unit, s, true);
            let te = run(op, &x, &y, &mut exact, &unit, s, false);
            assert_eq!(fast, pass);
            for i in 0..n {
                assert_eq!(
                    pass[i].to_bits(),
                    exact[i].to_bits(),
                    "{op:?} {} {}",
                    x[i],
                    y[i]
                );
            }
            assert_eq!(tf, te, "{op:?}");
        }
    }
}
