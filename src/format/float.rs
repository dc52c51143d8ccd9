//! Custom binary floating point: `e` exponent bits, `m` mantissa bits, a bias, subnormals on or
//! flushed, and the special-value conventions of IEEE 754 and of the OCP 8-bit formats.
//!
//! Quantization rounds once, directly from the `f64` (or exactly widened `f32`) input: the value
//! is split on the grid of its target binade (`exact::split`) and a rounding unit decides the
//! last bit. Overflow, underflow, signed zero, NaN and infinity follow the format's options, and
//! for the named aliases they match what ml_dtypes' casts do.

use crate::format::exact::{exponent, pow2, split};
use crate::round::Rounding;

/// How a float format spends its top codes on special values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Special {
    /// IEEE 754: the all-ones exponent holds infinity (mantissa 0) and NaN (mantissa non-zero).
    Ieee,
    /// "Finite" OCP style (E4M3FN): no infinity; the all-ones code of either sign is NaN.
    Fn,
    /// "Finite, unsigned zero" (ml_dtypes' `fnuz`): no infinity, no negative zero; the code of
    /// negative zero is the only NaN.
    Fnuz,
    /// Every code is a finite number (OCP FP6/FP4): no infinity, no NaN; overflow saturates.
    None,
}

impl Special {
    /// The spelling used in format specs.
    pub fn name(self) -> &'static str {
        match self {
            Special::Ieee => "ieee",
            Special::Fn => "fn",
            Special::Fnuz => "fnuz",
            Special::None => "none",
        }
    }
}

/// A binary floating-point format. Build it with [`FloatFormat::new`], which validates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FloatFormat {
    exp_bits: u32,
    man_bits: u32,
    bias: i32,
    subnormals: bool,
    special: Special,
    saturate: bool,
    signed: bool,
    has_zero: bool,
}

/// Derived constants of a float format, computed once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FloatLimits {
    /// Exponent of the smallest normal number.
    pub emin: i32,
    /// Exponent of the largest finite number.
    pub emax: i32,
    /// The largest finite value.
    pub max: f64,
    /// The smallest positive value (subnormal when subnormals are on).
    pub min_positive: f64,
}

impl FloatFormat {
    /// A validated float format; `bias` defaults to `2^(e-1) - 1` when `None`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        exp_bits: u32,
        man_bits: u32,
        bias: Option<i32>,
        subnormals: bool,
        special: Special,
        saturate: bool,
        signed: bool,
        has_zero: bool,
    ) -> Result<Self, String> {
        if !(1..=11).contains(&exp_bits) {
            return Err(format!("e = {exp_bits}: must be 1..=11"));
        }
        if man_bits > 52 {
            return Err(format!("m = {man_bits}: must be 0..=52"));
        }
        if special == Special::Ieee && man_bits == 0 {
            return Err("special = ieee needs m >= 1 to encode NaN".into());
        }
        if special == Special::Ieee && exp_bits == 1 {
            return Err("special = ieee needs e >= 2 (e = 1 leaves no finite binade)".into());
        }
        if special == Special::Fnuz && !signed {
            return Err("special = fnuz needs a sign bit".into());
        }
        let bias = bias.unwrap_or((1 << (exp_bits - 1)) - 1);
        let f = FloatFormat {
            exp_bits,
            man_bits,
            bias,
            subnormals: subnormals && has_zero,
            special,
            saturate,
            signed,
            has_zero,
        };
        let l = f.limits();
        if l.emax > 1023 || l.emin - man_bits as i32 * i32::from(f.subnormals) < -1074 {
            return Err(format!(
                "bias = {bias}: the range 2^{}..2^{} must fit in f64 (2^-1074..2^1023)",
                l.emin - man_bits as i32 * i32::from(f.subnormals),
                l.emax
            ));
        }
        Ok(f)
    }

    /// Exponent field width.
    pub fn exp_bits(&self) -> u32 {
        self.exp_bits
    }
    /// Stored mantissa (trailing significand) width.
    pub fn man_bits(&self) -> u32 {
        self.man_bits
    }
    /// Exponent bias.
    pub fn bias(&self) -> i32 {
        self.bias
    }
    /// Whether subnormal numbers are kept (otherwise they flush to zero or the smallest normal).
    pub fn subnormals(&self) -> bool {
        self.subnormals
    }
    /// The special-value convention.
    pub fn special(&self) -> Special {
        self.special
    }
    /// Whether overflow saturates to the largest finite value.
    pub fn saturate(&self) -> bool {
        self.saturate
    }
    /// Whether the format has a sign bit.
    pub fn signed(&self) -> bool {
        self.signed
    }
    /// Whether the format has a zero (E8M0 has none: its code 0 is `2^-127`).
    pub fn has_zero(&self) -> bool {
        self.has_zero
    }
    /// Whether the format has infinities.
    pub fn has_inf(&self) -> bool {
        self.special == Special::Ieee
    }
    /// Whether the format has a NaN code.
    pub fn has_nan(&self) -> bool {
        self.special != Special::None
    }
    /// Total width in bits.
    pub fn bits(&self) -> u32 {
        u32::from(self.signed) + self.exp_bits + self.man_bits
    }

    fn all_ones_magnitude(&self) -> u64 {
        (1u64 << (self.exp_bits + self.man_bits)) - 1
    }

    /// Magnitude code of the largest finite value.
    fn max_magnitude_code(&self) -> u64 {
        match self.special {
            Special::Ieee => self.all_ones_magnitude() - (1u64 << self.man_bits),
            Special::Fn => self.all_ones_magnitude() - 1,
            Special::Fnuz | Special::None => self.all_ones_magnitude(),
        }
    }

    pub(crate) fn limits(&self) -> FloatLimits {
        let emin = if self.has_zero {
            1 - self.bias
        } else {
            -self.bias
        };
        let top = self.max_magnitude_code();
        let emax = (top >> self.man_bits) as i32 - self.bias;
        let mant = top & ((1u64 << self.man_bits) - 1);
        let max = ((1u64 << self.man_bits) | mant) as f64 * pow2(emax - self.man_bits as i32);
        let min_positive = if self.subnormals {
            pow2(emin - self.man_bits as i32)
        } else {
            pow2(emin)
        };
        FloatLimits {
            emin,
            emax,
            max,
            min_positive,
        }
    }

    /// Whether every value of the format is exactly an `f32` (so `f32` can carry it).
    pub fn fits_f32(&self) -> bool {
        let l = self.limits();
        self.man_bits <= 23 && l.emax <= 127 && l.min_positive >= f64::from(f32::from_bits(1))
    }

    /// The NaN this format produces for a NaN of the given sign, as a carrier value. Formats
    /// without NaN follow ml_dtypes: E2M1/E2M3/E3M2 map NaN to the zero of the opposite sign
    /// (an unsigned format's only zero is +0).
    pub(crate) fn nan_value(&self, negative: bool) -> f64 {
        match self.special {
            Special::None if negative || !self.signed => 0.0,
            Special::None => -0.0,
            Special::Ieee | Special::Fn if negative && self.signed => -f64::NAN,
            _ => f64::NAN,
        }
    }

    /// What an infinity of the given sign converts to.
    pub(crate) fn infinity_value(&self, l: &FloatLimits, negative: bool) -> f64 {
        let v = if self.saturate || self.special == Special::None {
            l.max
        } else if self.has_inf() {
            f64::INFINITY
        } else {
            return self.nan_value(negative);
        };
        if negative && self.signed {
            -v
        } else {
            v
        }
    }

    /// What a finite value whose rounded magnitude exceeds the largest finite one converts to.
    pub(crate) fn overflow_value(
        &self,
        l: &FloatLimits,
        negative: bool,
        rounding: Rounding,
    ) -> f64 {
        if rounding.overflow_to_max(negative) {
            let v = l.max;
            return if negative && self.signed { -v } else { v };
        }
        self.infinity_value(l, negative)
    }

    /// Quantize one value: round `x` once to this format under `rounding`; `random` is the
    /// element's random word (used only by stochastic rounding).
    pub fn quantize(&self, x: f64, rounding: Rounding, random: u32) -> f64 {
        let l = self.limits();
        self.quantize_with(&l, x, rounding, random)
    }

    #[inline]
    pub(crate) fn quantize_with(
        &self,
        l: &FloatLimits,
        x: f64,
        rounding: Rounding,
        random: u32,
    ) -> f64 {
        let negative = x.is_sign_negative();
        if x.is_nan() {
            return self.nan_value(negative);
        }
        if !self.signed && negative && x != 0.0 {
            // A negative value has no code in an unsigned format: it converts as a NaN does
            // (to the NaN, or to +0 in a format without one).
            return self.nan_value(true);
        }
        let signed = |v: f64| if negative && self.signed { -v } else { v };
        if x == 0.0 {
            return if !self.has_zero {
                f64::NAN
            } else if self.special == Special::Fnuz || !self.signed {
                0.0
            } else {
                x
            };
        }
        if x.is_infinite() {
            return self.infinity_value(l, negative);
        }
        let a = x.abs();
        let e = exponent(a);
        let m = self.man_bits as i32;
        let k = if e >= l.emin {
            e - m
        } else if self.subnormals {
            l.emin - m
        } else {
            l.emin
        };
        let (n, d) = split(a, k);
        let n = n + u64::from(rounding.round_up(negative, n & 1 == 1, d, random));
        let v = n as f64 * pow2(k);
        if v > l.max {
            return self.overflow_value(l, negative, rounding);
        }
        if v == 0.0 {
            return if !self.has_zero {
                l.min_positive
            } else if self.special == Special::Fnuz {
                0.0
            } else {
                signed(0.0)
            };
        }
        signed(v)
    }

    /// The bit pattern of a representable value (NaN gives the format's NaN code of that sign).
    /// A value that is not representable is first rounded to nearest-even.
    pub fn encode(&self, v: f64) -> u64 {
        // An infinity is a value of an IEEE format even when conversion saturates (sat=on maps
        // infinite inputs to the largest finite value, but the infinity codes still decode).
        let v = if v.is_infinite() && self.has_inf() {
            v
        } else {
            self.quantize(v, Rounding::NearestEven, 0)
        };
        let sign_bit = if self.signed {
            u64::from(v.is_sign_negative()) << (self.exp_bits + self.man_bits)
        } else {
            0
        };
        let m = self.man_bits;
        if v.is_nan() {
            return match self.special {
                Special::Ieee => {
                    sign_bit | self.all_ones_magnitude() ^ ((1u64 << m.saturating_sub(1)) - 1)
                }
                Special::Fn => sign_bit | self.all_ones_magnitude(),
                Special::Fnuz => 1u64 << (self.exp_bits + self.man_bits),
                Special::None => unreachable!("formats without NaN never produce one"),
            };
        }
        if v.is_infinite() {
            return sign_bit | (((1u64 << self.exp_bits) - 1) << m);
        }
        let a = v.abs();
        if a == 0.0 {
            return sign_bit;
        }
        let l = self.limits();
        let e = exponent(a);
        let magnitude = if e < l.emin {
            // Subnormal: exponent code 0, mantissa counts quanta of 2^(emin - m).
            split(a, l.emin - m as i32).0
        } else {
            let code = (e - l.emin + i32::from(self.has_zero)) as u64;
            (code << m) | (split(a, e - m as i32).0 & ((1u64 << m) - 1))
        };
        sign_bit | magnitude
    }

    /// The value of a bit pattern (bits above the format's width are ignored).
    pub fn decode(&self, code: u64) -> f64 {
        let width = self.exp_bits + self.man_bits;
        let magnitude = code & ((1u64 << width) - 1);
        let negative = self.signed && (code >> width) & 1 == 1;
        let sign = |v: f64| if negative { -v } else { v };
        let m = self.man_bits;
        let exp_code = magnitude >> m;
        let mant = magnitude & ((1u64 << m) - 1);
        let all_ones_exp = (1u64 << self.exp_bits) - 1;
        match self.special {
            Special::Ieee if exp_code == all_ones_exp => {
                return if mant == 0 {
                    sign(f64::INFINITY)
                } else {
                    sign(f64::NAN)
                };
            }
            Special::Fn if magnitude == self.all_ones_magnitude() => return sign(f64::NAN),
            Special::Fnuz if negative && magnitude == 0 => return f64::NAN,
            _ => {}
        }
        let l = self.limits();
        let v = if exp_code == 0 && self.has_zero {
            mant as f64 * pow2(l.emin - m as i32)
        } else {
            let e = exp_code as i32 + l.emin - i32::from(self.has_zero);
            ((1u64 << m) | mant) as f64 * pow2(e - m as i32)
        };
        sign(v)
    }
}
