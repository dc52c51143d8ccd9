//! Bit-for-bit compatibility with QPyTorch's `float_quantize(x, exp=E, man=M, rounding)`.
//!
//! QPyTorch (`qtorch/quant/quant_cuda/float_kernel.cu`, with subnormal support since PR #43)
//! works on the `f32` bit pattern:
//! - "nearest" adds half a unit below the kept mantissa and truncates, so ties go away from
//!   zero (`rna`); "stochastic" adds the low `23 - M` bits of a random word and truncates;
//! - the largest exponent is the IEEE one, `2^(E-1) - 1`, and anything rounding above the
//!   largest finite value (including infinities and NaN) saturates to it with the input's sign
//!   bit: there is no infinity and no NaN;
//! - below the smallest normal `2^emin`, the value is shifted by `sign * 2^emin` with an `f32`
//!   add (rounding to nearest-even), rounded bitwise, and shifted back, which also turns `-0`
//!   into `+0`: there is no negative zero.
//!
//! Differences from the standard `float:e=E,m=M` format, all reproduced here on purpose:
//! no inf/NaN, no `-0`, ties away from zero, a double rounding for subnormal inputs with bits
//! below `2^(emin-23)`, and `f64` inputs are first rounded to `f32` (QPyTorch tensors are `f32`).
//! Only `rna` and `sr` exist in QPyTorch; other modes are rejected.

use crate::format::{FloatFormat, Special};
use crate::round::Rounding;

/// QPyTorch's float format `(exp, man)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QTorchFloat {
    exp_bits: u32,
    man_bits: u32,
}

impl QTorchFloat {
    /// `exp` in 1..=8 and `man` in 0..=23, as QPyTorch accepts.
    pub fn new(exp_bits: u32, man_bits: u32) -> Result<Self, String> {
        if !(2..=8).contains(&exp_bits) {
            return Err(format!("e = {exp_bits}: must be 2..=8 for qtorch"));
        }
        if man_bits > 22 {
            return Err(format!("m = {man_bits}: must be 0..=22 for qtorch"));
        }
        Ok(QTorchFloat { exp_bits, man_bits })
    }

    /// Exponent bits.
    pub fn exp_bits(&self) -> u32 {
        self.exp_bits
    }
    /// Mantissa bits.
    pub fn man_bits(&self) -> u32 {
        self.man_bits
    }
    /// Width in bits of the IEEE-style layout used for codes.
    pub fn bits(&self) -> u32 {
        1 + self.exp_bits + self.man_bits
    }

    /// The sign/exponent/mantissa layout whose codes these values use (QPyTorch's range stops at
    /// the IEEE largest finite value, so the top exponent code never occurs).
    pub fn layout(&self) -> FloatFormat {
        FloatFormat::new(
            self.exp_bits,
            self.man_bits,
            None,
            true,
            Special::None,
            true,
            true,
            true,
        )
        .expect("qtorch parameters are within the float limits")
    }

    /// Whether QPyTorch has this rounding mode.
    pub fn supports(rounding: Rounding) -> bool {
        matches!(
            rounding,
            Rounding::NearestAway | Rounding::Stochastic { .. }
        )
    }

    #[inline(always)]
    fn round_bitwise(&self, target: u32, rounding: Rounding, random: u32) -> u32 {
        let drop = 23 - self.man_bits;
        let mask = (1u32 << drop) - 1;
        let add = match rounding {
            Rounding::Stochastic { .. } => random & mask,
            _ => 1u32 << (drop - 1),
        };
        target.wrapping_add(add) & !mask
    }

    /// Quantize one `f32` exactly as QPyTorch does.
    #[inline]
    pub fn quantize_f32(&self, x: f32, rounding: Rounding, random: u32) -> f32 {
        let bias = (1i32 << (self.exp_bits - 1)) - 1;
        let min_exp = 1 - bias;
        let target = x.to_bits();
        let target_exp = ((target << 1) >> 24) as i32 - 127;
        if target_exp < min_exp {
            let shift = f32::from_bits((((127 + min_exp) as u32) << 23) | (target & 0x8000_0000));
            let val = x + shift;
            let q = self.round_bitwise(val.to_bits(), rounding, random);
            return f32::from_bits(q) - shift;
        }
        let q = self.round_bitwise(target, rounding, random);
        f32::from_bits(self.clip_exponent(target, q))
    }

    /// QPyTorch's `clip_exponent`: saturate above the largest binade, flush or lift below it.
    #[inline(always)]
    fn clip_exponent(&self, old: u32, q: u32) -> u32 {
        let bias = (1u32 << (self.exp_bits - 1)) - 1;
        let exp_store = (q << 1) >> 24;
        let max_store = bias + 127;
        let min_store = 127 - bias;
        let sign = old & 0x8000_0000;
        if exp_store > max_store {
            let max_man = ((u32::MAX << 9) >> 9 >> (23 - self.man_bits)) << (23 - self.man_bits);
            sign | (max_store << 23) | max_man
        } else if exp_store < min_store {
            if (q << 1) >> 1 > (min_store - 1) << 23 {
                sign | (min_store << 23)
            } else {
                0
            }
        } else {
            q
        }
    }
}
