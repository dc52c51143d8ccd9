//! Fixed point (QPyTorch's `FixedPoint(wl, fl)`): a `wl`-bit two's-complement (or unsigned)
//! integer `n` standing for `n * 2^-fl`. Integers are fixed point with `fl = 0`.
//!
//! Rounding works on the magnitude like every other format, then the result is brought into
//! range by saturation (default) or two's-complement wrap-around. Fixed point has no NaN or
//! infinity: NaN converts to 0; infinities saturate, or wrap to 0 (as NumPy and ml_dtypes casts
//! to integers do). Words wider than 53 bits are carried in `f64`, so a carried value with more
//! than 53 significant bits is itself rounded to nearest-even; codes are exact.

use crate::format::exact::{exponent, pow2, significand, split};
use crate::round::Rounding;

/// A fixed-point format. Build it with [`FixedFormat::new`], which validates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FixedFormat {
    wl: u32,
    fl: i32,
    signed: bool,
    saturate: bool,
    symmetric: bool,
}

/// How a value left the representable range, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeEvent {
    /// In range.
    None,
    /// Clamped to the nearest end of the range.
    Saturated,
    /// Wrapped around modulo `2^wl`.
    Wrapped,
}

impl FixedFormat {
    /// A validated fixed-point format: `wl` in 1..=64 bits (sign included), any `fl` that keeps
    /// the grid inside `f64`; `symmetric` drops the most negative code (range `+-(2^(wl-1)-1)`).
    pub fn new(
        wl: u32,
        fl: i32,
        signed: bool,
        saturate: bool,
        symmetric: bool,
    ) -> Result<Self, String> {
        if !(1..=64).contains(&wl) {
            return Err(format!("wl = {wl}: must be 1..=64"));
        }
        if signed && wl < 2 && symmetric {
            return Err("a symmetric signed format needs wl >= 2".into());
        }
        if fl > 1074 || i64::from(wl) - i64::from(fl) > 1023 {
            return Err(format!(
                "fl = {fl}: the grid 2^-fl and the range 2^(wl-fl) must fit in f64 (fl in {}..=1074)",
                i64::from(wl) - 1023
            ));
        }
        Ok(FixedFormat {
            wl,
            fl,
            signed,
            saturate,
            symmetric: symmetric && signed,
        })
    }

    /// Word length in bits, sign included.
    pub fn wl(&self) -> u32 {
        self.wl
    }
    /// Fractional length: the grid step is `2^-fl`.
    pub fn fl(&self) -> i32 {
        self.fl
    }
    /// Two's complement (true) or unsigned.
    pub fn signed(&self) -> bool {
        self.signed
    }
    /// Saturating (true) or wrapping overflow.
    pub fn saturate(&self) -> bool {
        self.saturate
    }
    /// Whether the most negative code is excluded.
    pub fn symmetric(&self) -> bool {
        self.symmetric
    }
    /// Total width in bits.
    pub fn bits(&self) -> u32 {
        self.wl
    }
    /// The grid step `2^-fl`.
    pub fn step(&self) -> f64 {
        pow2(-self.fl)
    }

    /// The smallest and largest integer codes as signed integers.
    pub fn int_range(&self) -> (i128, i128) {
        if self.signed {
            let half = 1i128 << (self.wl - 1);
            (if self.symmetric { 1 - half } else { -half }, half - 1)
        } else {
            (0, (1i128 << self.wl) - 1)
        }
    }

    /// The smallest representable value.
    pub fn min_value(&self) -> f64 {
        steps_f64(self.int_range().0) * self.step()
    }
    /// The largest representable value.
    pub fn max_value(&self) -> f64 {
        steps_f64(self.int_range().1) * self.step()
    }

    /// Whether `f32` carries every value exactly.
    pub fn fits_f32(&self) -> bool {
        self.wl - u32::from(self.signed) <= 24
            && self.fl <= 149
            && i64::from(self.wl) - i64::from(self.fl) <= 127
    }

    /// Round `x` to the integer count of steps, before range handling.
    #[inline]
    fn round_int(&self, x: f64, rounding: Rounding, random: u32) -> i128 {
        let negative = x < 0.0;
        let a = x.abs();
        if a == 0.0 || x.is_nan() {
            return 0;
        }
        if a.is_infinite() {
            return if negative { i128::MIN } else { i128::MAX };
        }
        let k = -self.fl;
        let n: i128 = if exponent(a) - k >= 64 {
            // At least 2^64 steps: out of range for any width; keep the low bits for wrapping.
            let (m, e0) = significand(a);
            let shift = e0 - k;
            let low = if shift >= 64 {
                0
            } else {
                i128::from(m << shift)
            };
            (1i128 << 70) | low
        } else {
            let (n, d) = split(a, k);
            i128::from(n) + i128::from(rounding.round_up(negative, n & 1 == 1, d, random))
        };
        if negative {
            -n
        } else {
            n
        }
    }

    /// Bring an integer count of steps into range; report what happened.
    #[inline]
    pub(crate) fn fit(&self, n: i128) -> (i128, RangeEvent) {
        let (lo, hi) = self.int_range();
        if (lo..=hi).contains(&n) {
            return (n, RangeEvent::None);
        }
        if self.saturate {
            return (n.clamp(lo, hi), RangeEvent::Saturated);
        }
        if n == i128::MIN || n == i128::MAX {
            // An infinity is a multiple of every modulus: it wraps to 0, as NumPy casts do.
            return (0, RangeEvent::Wrapped);
        }
        let modulus = 1i128 << self.wl;
        let mut w = n.rem_euclid(modulus);
        if self.signed && w >= modulus / 2 {
            w -= modulus;
        }
        (w, RangeEvent::Wrapped)
    }

    /// Quantize one value and say whether it saturated or wrapped.
    #[inline]
    pub fn quantize_event(&self, x: f64, rounding: Rounding, random: u32) -> (f64, RangeEvent) {
        let (n, event) = self.fit(self.round_int(x, rounding, random));
        (steps_f64(n) * self.step(), event)
    }

    /// Quantize one value: round `x` once to the grid under `rounding`, then saturate or wrap.
    #[inline]
    pub fn quantize(&self, x: f64, rounding: Rounding, random: u32) -> f64 {
        self.quantize_event(x, rounding, random).0
    }

    /// The two's-complement (or unsigned) bit pattern of a representable value.
    pub fn encode(&self, v: f64) -> u64 {
        let (n, _) = self.fit(self.round_int(v, Rounding::NearestEven, 0));
        let mask = if self.wl == 64 {
            u64::MAX
        } else {
            (1u64 << self.wl) - 1
        };
        (n as u64) & mask
    }

    /// The value of a bit pattern (bits above `wl` are ignored).
    pub fn decode(&self, code: u64) -> f64 {
        let shift = 64 - self.wl;
        let n: i128 = if self.signed {
            i128::from(((code << shift) as i64) >> shift)
        } else {
            i128::from((code << shift) >> shift)
        };
        steps_f64(n) * self.step()
    }
}

/// `n as f64`, through `i64` when it fits: the same value (both casts round to nearest, ties to
/// even), without the software `i128` conversion on the hot path. (The wide case is kept out of
/// line: inlined, the compiler folds both branches back into the `i128` conversion.)
#[inline]
fn steps_f64(n: i128) -> f64 {
    match i64::try_from(n) {
        Ok(v) => v as f64,
        Err(_) => wide_steps_f64(n),
    }
}

#[cold]
#[inline(never)]
fn wide_steps_f64(n: i128) -> f64 {
    n as f64
}
