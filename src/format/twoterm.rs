//! Rounding an exact sum of two `f64` values once (the adder of an emulated accumulator).
//!
//! `x + y` is first split without error into `hi + lo` with Knuth's TwoSum (`hi = fl(x + y)`,
//! `|lo| <= ulp(hi) / 2`), then the pair is rounded once onto the target grid: the magnitude is
//! split into an integer count of quanta plus the first 32 bits of the discarded fraction and a
//! sticky bit, exactly as [`split`] does for one value, with `lo` folded in by the rules of
//! [`split_pair`]. The rounding unit then decides the last bit ([`Rounding::round_up`]), so every
//! mode (stochastic included) sees the same discarded fraction as if the exact sum had been
//! given to [`FloatFormat::quantize`] or [`FixedFormat::quantize_event`] directly.
//!
//! An exact zero sum follows IEEE 754 section 6.3: `x + y` with both zeros of one sign keeps that
//! sign; any other exact zero (cancellation) is `+0`, or `-0` when rounding down.

use crate::format::exact::{exponent, pow2, significand, split};
use crate::format::{FixedFormat, FloatFormat, RangeEvent};
use crate::round::{Discarded, Rounding};

/// Knuth's TwoSum: `(hi, lo)` with `hi = fl(x + y)` (round to nearest) and `hi + lo = x + y`
/// exactly, for finite `x`, `y` whose sum does not overflow.
#[inline(always)]
pub fn two_sum(x: f64, y: f64) -> (f64, f64) {
    let hi = x + y;
    let yv = hi - x;
    let xv = hi - yv;
    (hi, (x - xv) + (y - yv))
}

/// The sign of an exact zero sum `x + y` (IEEE 754 section 6.3).
#[inline]
fn zero_sum(x: f64, y: f64, rounding: Rounding) -> f64 {
    if x == 0.0 && y == 0.0 && x.is_sign_negative() == y.is_sign_negative() {
        x
    } else if rounding == Rounding::Down {
        -0.0
    } else {
        0.0
    }
}

/// Split the magnitude `a + t` (with `a = |hi| > 0` and `t = lo` carried to `hi`'s sign, so
/// `|t| <= ulp(a) / 2`) on the grid of step `2^k`: the count of whole quanta modulo `2^64`, the
/// discarded fraction, and whether the count reached `2^64` (only fixed point asks for that).
///
/// Either `lo` lies wholly below the last bit of `a` on the grid (`k` at or above `a`'s last bit),
/// and then `t`'s bits extend `a`'s discarded fraction; or `a` is a whole number of quanta and
/// `t` alone has a fraction. A negative `t` borrows one quantum when `a`'s fraction is zero.
#[inline]
fn split_pair(a: f64, t: f64, k: i32) -> (u64, Discarded, bool) {
    let (m, e0) = significand(a);
    let huge = exponent(a) - k >= 63;
    let (na, da) = if huge {
        // a >= 2^63 quanta: a is a whole number of quanta; keep its count modulo 2^64.
        let shift = (e0 - k) as u32;
        (if shift >= 64 { 0 } else { m << shift }, Discarded::EXACT)
    } else {
        split(a, k)
    };
    if t == 0.0 {
        return (na, da, huge);
    }
    let (nt, dt) = split(t.abs(), k);
    if t > 0.0 {
        let d = Discarded {
            frac32: da.frac32 | dt.frac32,
            sticky: da.sticky || dt.sticky,
        };
        return (na.wrapping_add(nt), d, huge);
    }
    let borrow = u32::from(dt.sticky && !da.sticky);
    let (frac, under) = da.frac32.overflowing_sub(dt.frac32);
    let (frac, under2) = frac.overflowing_sub(borrow);
    let n = na.wrapping_sub(nt).wrapping_sub(u64::from(under || under2));
    let d = Discarded {
        frac32: frac,
        sticky: da.sticky || dt.sticky,
    };
    (n, d, huge)
}

impl FloatFormat {
    /// Round the exact sum `x + y` once to this format under `rounding` (`random`: the word of
    /// stochastic rounding). Returns the value and whether the exact sum overflowed the range.
    pub fn quantize_sum(&self, x: f64, y: f64, rounding: Rounding, random: u32) -> (f64, bool) {
        let l = self.limits();
        let hi = x + y;
        if !hi.is_finite() {
            if x.is_finite() && y.is_finite() {
                // The exact sum is beyond f64, hence beyond every format's range.
                return (self.overflow_value(&l, hi < 0.0, rounding), true);
            }
            return (self.quantize_with(&l, hi, rounding, random), false);
        }
        if hi == 0.0 {
            return (
                self.quantize_with(&l, zero_sum(x, y, rounding), rounding, 0),
                false,
            );
        }
        let (hi, lo) = two_sum(x, y);
        let negative = hi < 0.0;
        if negative && !self.signed() {
            return (self.quantize_with(&l, hi, rounding, random), false);
        }
        let a = hi.abs();
        let t = if negative { -lo } else { lo };
        // The binade of a + t: one lower when a is a power of two and t pulls it down.
        let (m_a, _) = significand(a);
        let e = exponent(a) - i32::from(t < 0.0 && m_a.is_power_of_two());
        let m = self.man_bits() as i32;
        let k = if e >= l.emin {
            e - m
        } else if self.subnormals() {
            l.emin - m
        } else {
            l.emin
        };
        let (n, d, _) = split_pair(a, t, k);
        let n = n + u64::from(rounding.round_up(negative, n & 1 == 1, d, random));
        // n * 2^k is on the grid (n <= 2^53): requantizing it is exact and applies the format's
        // overflow, zero and sign rules with the same rounding direction.
        let v = n as f64 * pow2(k);
        let overflow = v > l.max;
        let signed = if negative { -v } else { v };
        (self.quantize_with(&l, signed, rounding, random), overflow)
    }
}

impl FixedFormat {
    /// Round the exact sum `x + y` once to the grid under `rounding`, then saturate or wrap,
    /// reporting which (`random`: the word of stochastic rounding).
    pub fn quantize_sum_event(
        &self,
        x: f64,
        y: f64,
        rounding: Rounding,
        random: u32,
    ) -> (f64, RangeEvent) {
        let hi = x + y;
        if !hi.is_finite() || hi == 0.0 {
            return self.quantize_event(hi, rounding, random);
        }
        let (hi, lo) = two_sum(x, y);
        let negative = hi < 0.0;
        let t = if negative { -lo } else { lo };
        let (n, d, huge) = split_pair(hi.abs(), t, -self.fl());
        let n = n.wrapping_add(u64::from(rounding.round_up(
            negative,
            n & 1 == 1,
            d,
            random,
        )));
        // A count that reached 2^64 is out of range for every width; 2^70 keeps it so while
        // leaving the low 64 bits for wrap-around.
        let n = i128::from(n) | if huge { 1i128 << 70 } else { 0 };
        let (n, event) = self.fit(if negative { -n } else { n });
        (n as f64 * self.step(), event)
    }
}
