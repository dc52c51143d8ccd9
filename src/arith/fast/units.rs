//! The per-add units of the tiled GEMM fast paths: how one multiply-add of each accumulator
//! kind is computed and rounded in registers (`fp32` fused or not, narrow floats in `f64` and in
//! `f32` lanes, stochastic `fp32`), bit for bit as the general path.

use super::*;
use std::borrow::Cow;

/// Round-to-nearest-even into a float format of at most 24 significant bits with subnormals,
/// IEEE or `fn` specials and a sign, branch-free on `f64` bits.
#[derive(Clone, Copy, Debug)]
pub(super) struct RneUnit {
    /// Bits dropped from an `f64` significand in the normal range: `52 - m`.
    pub(super) drop: u32,
    /// Bit pattern of the smallest normal `2^emin`.
    pub(super) min_normal_bits: u64,
    /// `1.5 * 2^(emin - m + 52)`: adding and subtracting it rounds to the subnormal grid.
    pub(super) magic: f64,
    /// The largest finite value.
    pub(super) max: f64,
    /// What a positive overflow becomes (infinity, NaN or the largest value).
    pub(super) overflow: f64,
    /// The NaN a NaN of either sign becomes.
    pub(super) nan: [f64; 2],
}

impl RneUnit {
    pub(super) fn new(f: &FloatFormat) -> Option<Self> {
        let ok = f.man_bits() <= 23
            && f.fits_f32()
            && f.subnormals()
            && f.signed()
            && f.has_zero()
            && matches!(f.special(), Special::Ieee | Special::Fn);
        if !ok {
            return None;
        }
        let max = f.quantize(f64::MAX, Rounding::TowardZero, 0);
        let emin = 1 - f.bias();
        let m = f.man_bits() as i32;
        Some(RneUnit {
            drop: 52 - f.man_bits(),
            min_normal_bits: 2f64.powi(emin).to_bits(),
            magic: 1.5 * 2f64.powi(emin - m + 52),
            max,
            overflow: f.quantize(f64::INFINITY, Rounding::NearestEven, 0),
            nan: [
                f.quantize(f64::NAN, Rounding::NearestEven, 0),
                f.quantize(-f64::NAN, Rounding::NearestEven, 0),
            ],
        })
    }

    /// Round `s` (already rounded to odd at 53 bits, or exact) to nearest-even; the flag says
    /// whether a finite `s` overflowed.
    #[inline(always)]
    pub(super) fn round(&self, s: f64) -> (f64, bool) {
        let bits = s.to_bits();
        let sign = bits & (1 << 63);
        let mag = bits & !(1 << 63);
        let half = 1u64 << (self.drop - 1);
        let lsb = (mag >> self.drop) & 1;
        let rn = (mag + (half - 1) + lsb) & !((half << 1) - 1);
        let normal = f64::from_bits(rn | sign);
        let sub = ((s + self.magic) - self.magic).copysign(s);
        let r = if mag < self.min_normal_bits {
            sub
        } else {
            normal
        };
        let over = s.is_finite() && r.abs() > self.max;
        let r = if over { self.overflow.copysign(s) } else { r };
        let r = if s.is_nan() {
            self.nan[usize::from(sign != 0)]
        } else if s.is_infinite() {
            self.overflow.copysign(s)
        } else {
            r
        };
        (r, over)
    }

    /// `round(x + y)` exactly once: TwoSum, round to odd at 53 bits, then [`RneUnit::round`].
    #[inline(always)]
    pub(super) fn add(&self, x: f64, y: f64) -> (f64, bool) {
        let (hi, lo) = two_sum(x, y);
        let bits = hi.to_bits();
        let inexact = lo != 0.0 && hi.is_finite() && bits & 1 == 0;
        let up = (lo > 0.0) == (hi > 0.0);
        let step = if up { 1u64 } else { u64::MAX };
        let s = f64::from_bits(bits.wrapping_add(if inexact { step } else { 0 }));
        self.round(s)
    }
}

/// A carrier of accumulator values and of the inputs the tiles read: `f32`, or `f64` for the
/// units whose sums need it.
pub(super) trait Carrier: Copy + Send + Sync + Default {
    /// An input as this carrier.
    fn input(x: f32) -> Self;
    /// A whole operand as this carrier: `f32` operands are borrowed as they are (a copy of
    /// every operand of every GEMM was a tenth of a small GEMM's time).
    fn inputs(src: &[f32]) -> Cow<'_, [Self]>;
}

impl Carrier for f32 {
    fn input(x: f32) -> f32 {
        x
    }
    fn inputs(src: &[f32]) -> Cow<'_, [f32]> {
        Cow::Borrowed(src)
    }
}

impl Carrier for f64 {
    fn input(x: f32) -> f64 {
        f64::from(x)
    }
    fn inputs(src: &[f32]) -> Cow<'_, [f64]> {
        Cow::Owned(src.iter().map(|&v| f64::from(v)).collect())
    }
}

/// A per-add unit for the vectorized driver: how to round `acc + a b` and `x + y`.
pub(super) trait Unit: Copy + Send + Sync {
    /// The carrier of accumulator values.
    type T: Carrier;
    /// Whether the unit rounds stochastically (the tiles then draw each rounding's word).
    const STOCHASTIC: bool = false;
    /// `acc + a b` unrounded and whether that is the exact sum, for a stochastic unit: the
    /// uncounted pass skips the random words and the rounding unit for a group of lanes whose
    /// sums are all exact (a sum that needs no rounding rounds to itself in every mode).
    fn mac_exact(&self, acc: Self::T, _a: Self::T, _b: Self::T) -> (Self::T, bool) {
        (acc, false)
    }
    /// `round(acc + p)` for the product `p` of `a` and `b` (random word `w`), and whether it
    /// overflowed.
    fn mac(&self, acc: Self::T, a: Self::T, b: Self::T, w: u32) -> (Self::T, bool);
    /// `round(x + y)` of two partial sums (random word `w`), and whether it overflowed.
    fn add(&self, x: Self::T, y: Self::T, w: u32) -> (Self::T, bool);
    /// [`Unit::mac`] where an overflow may have happened: exact in every case.
    fn mac_checked(&self, acc: Self::T, a: Self::T, b: Self::T, w: u32) -> (Self::T, bool) {
        self.mac(acc, a, b, w)
    }
    /// [`Unit::add`] where an overflow may have happened: exact in every case.
    fn add_checked(&self, x: Self::T, y: Self::T, w: u32) -> (Self::T, bool) {
        self.add(x, y, w)
    }
    /// To the `f64` output carrier.
    fn output(x: Self::T) -> f64;
    /// Whether an overflow leaves a non-finite value that every later step keeps non-finite
    /// (infinity or NaN, not saturation), so a finite result proves no overflow happened.
    fn sticky_overflow(&self) -> bool;
}

/// `fp32` accumulator, `rne`, exact product (fused or not): `f32` FMA.
#[derive(Clone, Copy)]
pub(super) struct F32Fma;
/// `fp32` accumulator and `fp32` product, `rne`, unfused: `f32` multiply, `f32` add.
#[derive(Clone, Copy)]
pub(super) struct F32MulAdd;
/// A narrow float accumulator with `rne` (and a product exact or in a narrow float).
#[derive(Clone, Copy)]
pub(super) struct Narrow {
    pub(super) acc: RneUnit,
    pub(super) product: Option<RneUnit>,
}

#[inline(always)]
pub(super) fn f32_add(x: f32, y: f32) -> (f32, bool) {
    let r = x + y;
    (r, r.is_infinite() && x.is_finite() && y.is_finite())
}

impl Unit for F32Fma {
    type T = f32;
    #[inline(always)]
    fn mac(&self, acc: f32, a: f32, b: f32, _w: u32) -> (f32, bool) {
        let r = a.mul_add(b, acc);
        // The product of two f32 values is finite in f64, so an infinite result from a finite
        // accumulator is an overflow.
        (
            r,
            r.is_infinite() && acc.is_finite() && a.is_finite() && b.is_finite(),
        )
    }
    #[inline(always)]
    fn add(&self, x: f32, y: f32, _w: u32) -> (f32, bool) {
        f32_add(x, y)
    }
    fn output(x: f32) -> f64 {
        f64::from(x)
    }
    fn sticky_overflow(&self) -> bool {
        true
    }
}

impl Unit for F32MulAdd {
    type T = f32;
    #[inline(always)]
    fn mac(&self, acc: f32, a: f32, b: f32, _w: u32) -> (f32, bool) {
        f32_add(acc, a * b)
    }
    #[inline(always)]
    fn add(&self, x: f32, y: f32, _w: u32) -> (f32, bool) {
        f32_add(x, y)
    }
    fn output(x: f32) -> f64 {
        f64::from(x)
    }
    fn sticky_overflow(&self) -> bool {
        true
    }
}

impl Narrow {
    /// The product as the MAC forms it: exact, or rounded to the product format.
    #[inline(always)]
    pub(super) fn product(&self, a: f64, b: f64) -> f64 {
        match self.product {
            None => a * b,
            Some(p) => p.round(a * b).0,
        }
    }
}

impl Unit for Narrow {
    type T = f64;
    #[inline(always)]
    fn mac(&self, acc: f64, a: f64, b: f64, _w: u32) -> (f64, bool) {
        self.acc.add(acc, self.product(a, b))
    }
    #[inline(always)]
    fn add(&self, x: f64, y: f64, _w: u32) -> (f64, bool) {
        self.acc.add(x, y)
    }
    fn output(x: f64) -> f64 {
        x
    }
    fn sticky_overflow(&self) -> bool {
        !self.acc.overflow.is_finite()
    }
}

/// Whether every product of an `a` and a `b` is exact in `f32`: at most 24 significant bits,
/// no smaller than the smallest subnormal, far from the largest finite value.
pub(super) fn products_exact_in_f32(a: &FloatFormat, b: &FloatFormat) -> bool {
    let (la, lb) = (a.limits(), b.limits());
    a.man_bits() + b.man_bits() + 2 <= 24
        && la.min_positive * lb.min_positive >= f64::from(f32::from_bits(1))
        && la.max * lb.max < f64::from(f32::MAX) / 2.0
}

/// [`two_sum`] in `f32`: `(hi, lo)` with `hi = fl(x + y)` and `hi + lo = x + y` exactly when
/// the sum is finite (`lo` is NaN when anything is not).
#[inline(always)]
pub(super) fn two_sum_f32(x: f32, y: f32) -> (f32, f32) {
    let hi = x + y;
    let z = hi - x;
    (hi, (x - (hi - z)) + (y - z))
}

/// `(hi, magnitude, sign)`: `hi = fl(x + y)`, and the bits of the exact sum rounded to odd at 24
/// bits, as magnitude and sign bit (exact when `hi` is finite). Rounding to odd works on the
/// magnitude: an inexact `hi` moves one step toward the error term (down when it has the other
/// sign) and the last bit is set, which lands on the odd neighbour of the exact sum.
#[inline(always)]
pub(super) fn sum_to_odd(x: f32, y: f32) -> (f32, u32, u32) {
    let (hi, lo) = two_sum_f32(x, y);
    let (hb, lb) = (hi.to_bits(), lo.to_bits());
    // All ones when lo has the other sign than hi.
    let other_sign = ((hb ^ lb) as i32 >> 31) as u32;
    let mag = hb & 0x7fff_ffff;
    let odd = if lo != 0.0 {
        mag.wrapping_add(other_sign) | 1
    } else {
        mag
    };
    (hi, odd, hb & 0x8000_0000)
}

/// A narrow float accumulator with `rne`, a sticky overflow (infinity or NaN) and at most 22
/// significant bits, fed exact products that are exact in `f32`: the `f32` version of
/// [`Narrow`], twice as many lanes. `x + y` is split exactly by TwoSum in `f32`, rounded to odd at
/// 24 bits, then to nearest-even at the target (exact since 24 >= target bits + 2, Boldo and
/// Melquiond 2008). A finite sum that rounds to a non-finite value is an overflow, which is the
/// general path's rule for formats whose overflow is infinity or NaN.
#[derive(Clone, Copy)]
pub(super) struct NarrowF32 {
    pub(super) acc: RneF32,
}

impl NarrowF32 {
    pub(super) fn new(cfg: &MacConfig) -> Option<Self> {
        let (Format::Float(acc), Format::Float(a), Format::Float(b), None) =
            (cfg.acc, cfg.a, cfg.b, cfg.product)
        else {
            return None;
        };
        let sticky = !acc.saturate() && acc.man_bits() <= 21;
        (products_exact_in_f32(&a, &b) && sticky).then_some(NarrowF32 {
            acc: RneF32::new(&acc)?,
        })
    }

    /// `round(x + y)` exactly when no value on the way is non-finite, and a non-finite value
    /// otherwise ([`Unit::sticky_overflow`]): the first, uncounted pass.
    #[inline(always)]
    pub(super) fn sum_fast(&self, x: f32, y: f32) -> f32 {
        let (_, odd, sign) = sum_to_odd(x, y);
        f32::from_bits(self.acc.round_magnitude_sticky(odd) | sign)
    }

    /// `round(x + y)` in every case, and whether a finite sum overflowed: the counted pass.
    #[inline(always)]
    pub(super) fn sum(&self, x: f32, y: f32) -> (f32, bool) {
        let (hi, odd, sign) = sum_to_odd(x, y);
        let s = if hi.is_finite() {
            f32::from_bits(odd | sign)
        } else {
            hi
        };
        let r = self.acc.round(s);
        (r, s.is_finite() && !r.is_finite())
    }
}

impl Unit for NarrowF32 {
    type T = f32;
    #[inline(always)]
    fn mac(&self, acc: f32, a: f32, b: f32, _w: u32) -> (f32, bool) {
        (self.sum_fast(acc, a * b), false)
    }
    #[inline(always)]
    fn add(&self, x: f32, y: f32, _w: u32) -> (f32, bool) {
        (self.sum_fast(x, y), false)
    }
    fn mac_checked(&self, acc: f32, a: f32, b: f32, _w: u32) -> (f32, bool) {
        self.sum(acc, a * b)
    }
    fn add_checked(&self, x: f32, y: f32, _w: u32) -> (f32, bool) {
        self.sum(x, y)
    }
    fn output(x: f32) -> f64 {
        f64::from(x)
    }
    fn sticky_overflow(&self) -> bool {
        true
    }
}

/// An `fp32` accumulator with stochastic rounding (any number of random bits), fed exact products
/// that are exact in `f32`. TwoSum gives the exact sum `hi + lo`; its two `fp32` neighbours are
/// `hi` and the next value toward `lo`, and the first 32 bits of the discarded fraction follow
/// exactly from the bits of `hi` and `lo` ([`SrF32::sum`]), so the rounding unit sees exactly
/// what the general path gives it. A sum whose nearest value overflows is left infinite, which
/// sends its tile to the exact checked steps.
#[derive(Clone, Copy)]
pub(super) struct SrF32 {
    /// Random bits per rounding.
    pub(super) bits: u32,
    pub(super) adder: crate::arith::Adder,
}

impl SrF32 {
    pub(super) fn new(cfg: &MacConfig) -> Option<Self> {
        let fp32 = crate::format::alias("fp32")?;
        let (Format::Float(a), Format::Float(b), None) = (cfg.a, cfg.b, cfg.product) else {
            return None;
        };
        (products_exact_in_f32(&a, &b) && cfg.acc == fp32 && cfg.acc_rounding.is_stochastic())
            .then_some(SrF32 {
                bits: cfg.acc_rounding.random_bits(),
                adder: cfg.adder().ok()?,
            })
    }

    /// `x + y` rounded stochastically with random word `w`, in 32-bit lanes only. TwoSum gives
    /// the exact sum `hi + lo`. With `lo` of `hi`'s sign the toward-zero neighbour is `hi` and the
    /// discarded fraction is `|lo| / G` for the step `G` above `|hi|`; otherwise it is the value
    /// one step below `hi` in magnitude and the fraction is `1 - |lo| / G'` for the step `G'`
    /// below `|hi|` (half the step above when `|hi|` is a power of two). `G` is a power of two
    /// and `|lo| <= G / 2`, so `|lo| 2^32 / G` is the significand of `lo` placed at the top of a
    /// word and shifted right by an exponent difference: its floor and whether it dropped bits
    /// give the first 32 bits of the fraction exactly. A nonzero `lo` means `hi` is normal (sums
    /// below the smallest normal are exact); a subnormal `lo` (possible only when an operand is
    /// below `2^-102`, so that it has bits below `2^-126`) returns NaN, which sends the tile to
    /// the exact checked steps.
    #[inline(always)]
    pub(super) fn sum(&self, x: f32, y: f32, w: u32) -> f32 {
        const EXP: u32 = 0x7f80_0000;
        const MAN: u32 = 0x007f_ffff;
        let (hi, lo) = two_sum_f32(x, y);
        let (hb, lb) = (hi.to_bits(), lo.to_bits());
        let beyond = (hb ^ lb) >> 31 == 0;
        let toward_zero = if beyond { hb } else { hb.wrapping_sub(1) };
        let (hi_exp, lo_exp) = (hb & EXP, lb & EXP);
        let finer = !beyond && hb & MAN == 0 && hi_exp > 1 << 23;
        // |lo| 2^32 / G = (lo's significand at bits 8..=31) >> right, with right >= 0 for a
        // normal lo because |lo| <= G / 2.
        let top = ((lb & MAN) << 8) | 0x8000_0000;
        let right = (hi_exp.wrapping_sub(lo_exp) >> 23)
            .wrapping_sub(24)
            .wrapping_sub(u32::from(finer));
        // Shifts of 32 or more leave nothing (x86's variable shifts do the same, so these
        // compile to one instruction each).
        let floor = top.checked_shr(right).unwrap_or(0);
        let dropped = floor.checked_shl(right).unwrap_or(0) != top;
        let frac = if beyond {
            floor
        } else {
            0u32.wrapping_sub(floor).wrapping_sub(u32::from(dropped))
        };
        // Stochastic rounding reads only the first 32 bits of the fraction.
        let carry = crate::round::stochastic_carry(frac, w, self.bits);
        let r = f32::from_bits(toward_zero.wrapping_add(u32::from(carry)));
        if lo == 0.0 || !hi.is_finite() {
            hi
        } else if lo_exp == 0 {
            f32::NAN
        } else {
            r
        }
    }
}

impl Unit for SrF32 {
    type T = f32;
    const STOCHASTIC: bool = true;
    #[inline(always)]
    fn mac_exact(&self, acc: f32, a: f32, b: f32) -> (f32, bool) {
        // The error term is NaN when anything is not finite, so never "exact" then.
        let (hi, lo) = two_sum_f32(acc, a * b);
        (hi, lo == 0.0)
    }
    #[inline(always)]
    fn mac(&self, acc: f32, a: f32, b: f32, w: u32) -> (f32, bool) {
        (self.sum(acc, a * b, w), false)
    }
    #[inline(always)]
    fn add(&self, x: f32, y: f32, w: u32) -> (f32, bool) {
        (self.sum(x, y, w), false)
    }
    fn mac_checked(&self, acc: f32, a: f32, b: f32, w: u32) -> (f32, bool) {
        self.add_checked(acc, a * b, w)
    }
    fn add_checked(&self, x: f32, y: f32, w: u32) -> (f32, bool) {
        let (v, e) = self.adder.add(f64::from(x), f64::from(y), w);
        (v as f32, e == crate::arith::AddEvent::Overflow)
    }
    fn output(x: f32) -> f64 {
        f64::from(x)
    }
    fn sticky_overflow(&self) -> bool {
        true
    }
}
