//! Fixed point (QPyTorch's `FixedPoint(wl, fl)`): a `wl`-bit two's-complement (or unsigned)
//! integer `n` standing for `n * 2^-fl`. Integers are fixed point with `fl = 0`.
//!
//! Rounding works on the magnitude like every other format, then the result is brought into
//! range by saturation (default) or two's-complement wrap-around. Fixed point has no NaN or
//! infinity: NaN converts to 0; infinities saturate, or wrap to 0 (as NumPy and ml_dtypes casts
//! to integers do). Words wider than 53 bits are carried in `f64`, so a carried value with more
//! than 53 significant bits is itself rounded to nearest-even; codes are exact.

use crate::format::exact::{exponent, pow2, significand, split};
use crate::round::{Discarded, RandomStream, Rounding};

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

    /// [`FixedFormat::quantize`] of every value of `input` into `out`, element `i` with the
    /// random word `stream.bits(offset + i)`, on `f64` arithmetic where it is exact (about 7x
    /// faster than the reference's 128-bit integers): for a finite nonzero `x` whose steps
    /// `t = |x| 2^fl` are a normal `f64` below 2^52, `t` is exact (a power-of-two scaling), so
    /// are its integer part `n = floor(t)` and fraction `f = t - n`, and the fraction's first 32
    /// bits and sticky bit are `floor(f 2^32)` and whether anything is left: the reference's
    /// `split`. Zero gives `+0` as in the reference; every other value (below the normal range,
    /// at least 2^52 steps, an infinity, NaN) goes through the reference. The same bits
    /// (`tests/fast_paths.rs`).
    pub(crate) fn quantize_slice(
        &self,
        input: &[f64],
        out: &mut [f64],
        rounding: Rounding,
        stream: RandomStream,
        offset: u64,
    ) {
        // One loop per rounding mode, the mode's test inlined (a match per value cost as much
        // as the rest of the rounding).
        let (i, o, s) = (input, out, stream);
        match rounding {
            Rounding::NearestEven => {
                self.quantize_slice_with(i, o, rounding, s, offset, |n, p, d, r| {
                    Rounding::NearestEven.round_up(n, p, d, r)
                })
            }
            Rounding::Stochastic { bits } => {
                self.quantize_slice_with(i, o, rounding, s, offset, move |n, p, d, r| {
                    Rounding::Stochastic { bits }.round_up(n, p, d, r)
                })
            }
            _ => self.quantize_slice_with(i, o, rounding, s, offset, |n, p, d, r| {
                rounding.round_up(n, p, d, r)
            }),
        }
    }

    /// [`FixedFormat::quantize_slice`] with the rounding unit's carry `up(negative, odd,
    /// discarded, random)`.
    #[inline(always)]
    fn quantize_slice_with(
        &self,
        input: &[f64],
        out: &mut [f64],
        rounding: Rounding,
        stream: RandomStream,
        offset: u64,
        up: impl Fn(bool, bool, Discarded, u32) -> bool,
    ) {
        let (scale, step) = (pow2(self.fl), self.step());
        let limit = pow2(52);
        // The range in steps, where `fit` changes nothing (clamped to `i64`: a wider range
        // holds every `n` below 2^52 anyway).
        let (lo, hi) = self.int_range();
        let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        let inside = clamp(lo)..=clamp(hi);
        for (i, (o, &x)) in out.iter_mut().zip(input).enumerate() {
            let random = stream.bits(offset + i as u64);
            let a = x.abs();
            let t = a * scale;
            if a == 0.0 {
                *o = 0.0;
                continue;
            }
            if !(f64::MIN_POSITIVE..limit).contains(&t) {
                *o = self.quantize(x, rounding, random);
                continue;
            }
            // Truncation is the floor of a positive value; below 2^52 it is exact in `i64`.
            let n = t as i64;
            let w = (t - n as f64) * pow2(32);
            let frac32 = w as u32;
            let d = Discarded {
                frac32,
                sticky: w != f64::from(frac32),
            };
            let negative = x < 0.0;
            let n = n + i64::from(up(negative, n & 1 == 1, d, random));
            let n = if negative { -n } else { n };
            *o = if inside.contains(&n) {
                n as f64 * step
            } else {
                steps_f64(self.fit(i128::from(n)).0) * step
            };
        }
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
