//! Native fast paths of [`crate::arith::gemm`], each equal bit for bit to the general path
//! (`tests/mac_fast.rs` checks them on random shapes):
//!
//! - exact integer: a fixed-point accumulator whose grid holds every product and that cannot
//!   overflow for this `K` and these inputs (bound `K max|a| max|b|`) never rounds, so the sum
//!   is exact in any order. Inputs are scaled to integers and multiplied with `ndarray`'s `f32`
//!   GEMM when the bound is below `2^24` (`f64` GEMM below `2^53`): every partial sum of any
//!   order is then an exactly representable integer.
//! - native `f32`: an `fp32` accumulator with `rne` and an exact product (fused or not) is one
//!   `f32` fused multiply-add per step; with an `fp32` product it is an `f32` multiply and add.
//! - narrow float: a float accumulator (and product) of at most 24 significant bits with `rne`:
//!   `x + y` is split exactly by TwoSum, rounded to odd at 53 bits, then rounded to nearest-even
//!   at the target: correct because round-to-odd at `p >= q + 2` bits followed by
//!   round-to-nearest at `q` bits equals one round-to-nearest (Boldo and Melquiond, "Emulation
//!   of FMA and correctly rounded sums: proved algorithms using rounding to odd", IEEE TC 2008).
//!   Vectorized across output columns; with products exact in `f32` and a narrow format whose
//!   overflow is infinity or NaN, the same in `f32` lanes (`NarrowF32`).
//! - stochastic `fp32`: TwoSum in `f32`, then the first 32 bits of the discarded fraction from
//!   the bits of the error term, all in 32-bit lanes (`SrF32`).
//! - `Order::Native`: `ndarray`'s `f32` GEMM, then one rounding per output.
//!
//! The sequential and chunked paths run register tiles of `TR x TC` outputs, every `k` in
//! order. Each tile first runs an uncounted pass whose steps may skip what only matters once a
//! value is non-finite or out of their range, as long as any such case leaves a non-finite
//! output; tiles with a non-finite output run again with the exact, counted steps.

use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::arith::gemm::KernelPath;
use crate::arith::mac::{AccFormat, EventTally, MacConfig, Order};
use crate::format::kernel::RneF32;
use crate::format::{two_sum, FloatFormat, Format, Special};
use crate::round::{RandomStream, Rounding};
use crate::simd::multiversion;

/// Try every fast path in turn; `None` when none applies.
pub(crate) fn try_gemm(
    cfg: &MacConfig,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    stream: &RandomStream,
) -> Option<(Array2<f64>, KernelPath, EventTally)> {
    if cfg.order == Order::Native {
        return Some(native_order(cfg, a, b, stream));
    }
    if let Some(c) = exact_integer(cfg, a, b) {
        return Some((c, KernelPath::ExactInteger, EventTally::default()));
    }
    per_add(cfg, a, b, stream)
}

/// `A B` with `ndarray`'s optimized `f32` GEMM, rows split over the rayon threads: the native
/// baseline the emulated GEMMs are measured against.
pub fn native_f32_gemm(a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> Array2<f32> {
    let (m, n) = (a.nrows(), b.ncols());
    let mut c = Array2::<f32>::zeros((m, n));
    let tasks = rayon::current_num_threads().min(m * n * a.ncols() / super::PAR_GRAIN);
    let rows = m.div_ceil(tasks.max(1)).max(1);
    c.axis_chunks_iter_mut(Axis(0), rows)
        .into_par_iter()
        .enumerate()
        .for_each(|(t, mut blk)| {
            let start = t * rows;
            let end = start + blk.nrows();
            ndarray::linalg::general_mat_mul(1.0, &a.slice(s![start..end, ..]), b, 0.0, &mut blk);
        });
    c
}

fn native_order(
    cfg: &MacConfig,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    stream: &RandomStream,
) -> (Array2<f64>, KernelPath, EventTally) {
    let adder = cfg.adder().expect("validated by the caller");
    let (k, n) = (a.ncols(), b.ncols());
    let c32 = native_f32_gemm(a, b);
    let mut c = Array2::<f64>::zeros(c32.raw_dim());
    let tally = c
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(c32.axis_iter(Axis(0)))
        .with_min_len(super::min_rows(n))
        .enumerate()
        .map(|(i, (mut row, src))| {
            let mut tally = EventTally::default();
            for (j, (o, &x)) in row.iter_mut().zip(src).enumerate() {
                let word = stream.bits(MacConfig::random_index((i * n + j) as u64, k, 0));
                let (v, e) = adder.round(f64::from(x), word);
                tally.note(e);
                *o = v;
            }
            tally
        })
        .reduce(EventTally::default, EventTally::plus);
    (c, KernelPath::Native, tally)
}

/// The exponent of the smallest quantum of a scalar input format: every value is an integer
/// multiple of `2^q`.
fn quantum_exponent(f: &Format) -> Option<i32> {
    match f {
        Format::Fixed(x) => Some(-x.fl()),
        Format::Float(x) => {
            // The smallest positive value is 2^(emin - m) with subnormals, 2^emin without;
            // every value is a multiple of the subnormal quantum either way.
            let emin = 1 - x.bias() - i32::from(!x.has_zero());
            Some(emin - x.man_bits() as i32)
        }
        _ => None,
    }
}

/// Scale `x` by `2^-q` to integers, as `T`; `None` unless every value is an integer (exactly
/// representable in `T`, so below `2^24` for `f32`). Returns the scaled matrix and its largest
/// magnitude.
fn to_integers<T: ndarray::LinalgScalar + Copy + Send + Sync>(
    x: &ArrayView2<f32>,
    q: i32,
    cast: impl Fn(f64) -> T + Sync + Send,
    limit: f64,
) -> Option<(Array2<T>, f64)> {
    let scale = 2f64.powi(-q);
    // One parallel pass checks and measures, a second converts (both cheap next to the GEMM).
    let max = x
        .view()
        .into_par_iter()
        .with_min_len(super::PAR_GRAIN)
        .map(|&v| {
            let s = f64::from(v) * scale;
            if s.is_finite() && s.fract() == 0.0 {
                s.abs()
            } else {
                f64::INFINITY
            }
        })
        .reduce(|| 0.0, f64::max);
    if max >= limit {
        return None;
    }
    let convert = |&v: &f32| cast(f64::from(v) * scale);
    let y = if x.len() < super::PAR_GRAIN {
        x.map(convert)
    } else {
        ndarray::Zip::from(x).par_map_collect(convert)
    };
    Some((y, max))
}

fn exact_integer(cfg: &MacConfig, a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> Option<Array2<f64>> {
    let Format::Fixed(acc) = cfg.acc else {
        return None;
    };
    if !acc.signed() {
        return None;
    }
    let (qa, qb) = (quantum_exponent(&cfg.a)?, quantum_exponent(&cfg.b)?);
    let q = qa + qb;
    if q < -acc.fl() || !(-1000..=1000).contains(&q) {
        return None;
    }
    let k = a.ncols() as f64;
    // Every partial sum of any order is an integer of magnitude at most `K max|a| max|b|`
    // (units 2^q): it must fit the accumulator (no overflow, so no wrap or saturation) and the
    // native type of the GEMM (so no rounding).
    let fits = |ma: f64, mb: f64, native: f64| {
        let bound = ma * mb * k;
        let (_, hi) = acc.int_range();
        let product_ok = match cfg.product {
            None => true,
            Some(Format::Fixed(p)) => {
                q >= -p.fl() && ma * mb * 2f64.powi(q + p.fl()) <= p.int_range().1 as f64
            }
            Some(_) => false,
        };
        product_ok && bound < native && bound * 2f64.powi(q + acc.fl()) <= hi as f64
    };
    let scale = 2f64.powi(q);
    let f32_limit = (1u64 << 24) as f64;
    if let (Some((ia, ma)), Some((ib, mb))) = (
        to_integers(a, qa, |v| v as f32, f32_limit),
        to_integers(b, qb, |v| v as f32, f32_limit),
    ) {
        if fits(ma, mb, f32_limit) {
            return Some(
                native_f32_gemm(&ia.view(), &ib.view()).mapv(|v| f64::from(v) * scale + 0.0),
            );
        }
    }
    let f64_limit = (1u64 << 53) as f64;
    let (ia, ma) = to_integers(a, qa, |v| v, f64_limit)?;
    let (ib, mb) = to_integers(b, qb, |v| v, f64_limit)?;
    fits(ma, mb, f64_limit).then(|| ia.dot(&ib).mapv(|v| v * scale + 0.0))
}

/// Round-to-nearest-even into a float format of at most 24 significant bits with subnormals,
/// IEEE or `fn` specials and a sign, branch-free on `f64` bits.
#[derive(Clone, Copy, Debug)]
struct RneUnit {
    /// Bits dropped from an `f64` significand in the normal range: `52 - m`.
    drop: u32,
    /// Bit pattern of the smallest normal `2^emin`.
    min_normal_bits: u64,
    /// `1.5 * 2^(emin - m + 52)`: adding and subtracting it rounds to the subnormal grid.
    magic: f64,
    /// The largest finite value.
    max: f64,
    /// What a positive overflow becomes (infinity, NaN or the largest value).
    overflow: f64,
    /// The NaN a NaN of either sign becomes.
    nan: [f64; 2],
}

impl RneUnit {
    fn new(f: &FloatFormat) -> Option<Self> {
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
    fn round(&self, s: f64) -> (f64, bool) {
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
    fn add(&self, x: f64, y: f64) -> (f64, bool) {
        let (hi, lo) = two_sum(x, y);
        let bits = hi.to_bits();
        let inexact = lo != 0.0 && hi.is_finite() && bits & 1 == 0;
        let up = (lo > 0.0) == (hi > 0.0);
        let step = if up { 1u64 } else { u64::MAX };
        let s = f64::from_bits(bits.wrapping_add(if inexact { step } else { 0 }));
        self.round(s)
    }
}

/// A per-add unit for the vectorized driver: how to round `acc + a b` and `x + y`.
trait Unit: Copy + Send + Sync {
    /// The carrier of accumulator values.
    type T: Copy + Send + Sync + Default;
    /// Convert an input.
    fn input(x: f32) -> Self::T;
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
struct F32Fma;
/// `fp32` accumulator and `fp32` product, `rne`, unfused: `f32` multiply, `f32` add.
#[derive(Clone, Copy)]
struct F32MulAdd;
/// A narrow float accumulator with `rne` (and a product exact or in a narrow float).
#[derive(Clone, Copy)]
struct Narrow {
    acc: RneUnit,
    product: Option<RneUnit>,
}

#[inline(always)]
fn f32_add(x: f32, y: f32) -> (f32, bool) {
    let r = x + y;
    (r, r.is_infinite() && x.is_finite() && y.is_finite())
}

impl Unit for F32Fma {
    type T = f32;
    fn input(x: f32) -> f32 {
        x
    }
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
    fn input(x: f32) -> f32 {
        x
    }
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
    fn product(&self, a: f64, b: f64) -> f64 {
        match self.product {
            None => a * b,
            Some(p) => p.round(a * b).0,
        }
    }
}

impl Unit for Narrow {
    type T = f64;
    fn input(x: f32) -> f64 {
        f64::from(x)
    }
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

fn per_add(
    cfg: &MacConfig,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    stream: &RandomStream,
) -> Option<(Array2<f64>, KernelPath, EventTally)> {
    // The tiles step random-word indices by 32-bit offsets.
    let offsets_fit = MacConfig::random_slots(a.ncols()) <= u64::from(u32::MAX);
    if let (Order::Sequential | Order::Chunk(_), Some(unit), true) =
        (cfg.order, SrF32::new(cfg), offsets_fit)
    {
        let (c, overflows) = rows(unit, cfg.order, a, b, stream, tile_sr_f32);
        let tally = EventTally {
            overflows,
            ..EventTally::default()
        };
        return Some((c, KernelPath::StochasticF32, tally));
    }
    if cfg.acc_rounding != Rounding::NearestEven {
        return None;
    }
    let AccFormat::Float(acc) = cfg.adder().ok()?.format else {
        return None;
    };
    let fp32 = crate::format::alias("fp32");
    let (c, overflows, path) = match cfg.order {
        Order::Sequential | Order::Chunk(_) if Some(cfg.acc) == fp32 && cfg.product.is_none() => {
            let (c, o) = rows(F32Fma, cfg.order, a, b, stream, tile_f32_fma);
            (c, o, KernelPath::NativeF32)
        }
        Order::Sequential | Order::Chunk(_) if Some(cfg.acc) == fp32 && cfg.product == fp32 => {
            let (c, o) = rows(F32MulAdd, cfg.order, a, b, stream, tile_f32_mul_add);
            (c, o, KernelPath::NativeF32)
        }
        Order::Sequential | Order::Chunk(_) if NarrowF32::new(cfg).is_some() => {
            let unit = NarrowF32::new(cfg)?;
            let (c, o) = rows(unit, cfg.order, a, b, stream, tile_narrow_f32);
            (c, o, KernelPath::NarrowFloat)
        }
        _ => {
            let product = match cfg.product {
                None => None,
                Some(Format::Float(p)) => Some(RneUnit::new(&p)?),
                Some(_) => return None,
            };
            let unit = Narrow {
                acc: RneUnit::new(&acc)?,
                product,
            };
            let (c, o) = if cfg.order == Order::Pairwise {
                pairwise_rows(unit, a, b)
            } else {
                rows(unit, cfg.order, a, b, stream, tile_narrow)
            };
            (c, o, KernelPath::NarrowFloat)
        }
    };
    let tally = EventTally {
        overflows,
        ..EventTally::default()
    };
    Some((c, path, tally))
}

/// Whether every product of an `a` and a `b` is exact in `f32`: at most 24 significant bits,
/// no smaller than the smallest subnormal, far from the largest finite value.
fn products_exact_in_f32(a: &FloatFormat, b: &FloatFormat) -> bool {
    let (la, lb) = (a.limits(), b.limits());
    a.man_bits() + b.man_bits() + 2 <= 24
        && la.min_positive * lb.min_positive >= f64::from(f32::from_bits(1))
        && la.max * lb.max < f64::from(f32::MAX) / 2.0
}

/// [`two_sum`] in `f32`: `(hi, lo)` with `hi = fl(x + y)` and `hi + lo = x + y` exactly when
/// the sum is finite (`lo` is NaN when anything is not).
#[inline(always)]
fn two_sum_f32(x: f32, y: f32) -> (f32, f32) {
    let hi = x + y;
    let z = hi - x;
    (hi, (x - (hi - z)) + (y - z))
}

/// `(hi, magnitude, sign)`: `hi = fl(x + y)`, and the bits of the exact sum rounded to odd at 24
/// bits, as magnitude and sign bit (exact when `hi` is finite). Rounding to odd works on the
/// magnitude: an inexact `hi` moves one step toward the error term (down when it has the other
/// sign) and the last bit is set, which lands on the odd neighbour of the exact sum.
#[inline(always)]
fn sum_to_odd(x: f32, y: f32) -> (f32, u32, u32) {
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
struct NarrowF32 {
    acc: RneF32,
}

impl NarrowF32 {
    fn new(cfg: &MacConfig) -> Option<Self> {
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
    fn sum_fast(&self, x: f32, y: f32) -> f32 {
        let (_, odd, sign) = sum_to_odd(x, y);
        f32::from_bits(self.acc.round_magnitude_sticky(odd) | sign)
    }

    /// `round(x + y)` in every case, and whether a finite sum overflowed: the counted pass.
    #[inline(always)]
    fn sum(&self, x: f32, y: f32) -> (f32, bool) {
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
    fn input(x: f32) -> f32 {
        x
    }
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
struct SrF32 {
    /// Random bits per rounding.
    bits: u32,
    adder: crate::arith::Adder,
}

impl SrF32 {
    fn new(cfg: &MacConfig) -> Option<Self> {
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
    fn sum(&self, x: f32, y: f32, w: u32) -> f32 {
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
    fn input(x: f32) -> f32 {
        x
    }
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

/// Output rows per register tile.
const TR: usize = 4;
/// Output columns per register tile.
const TC: usize = 32;
/// Lanes a stochastic tile checks for exact sums at once (one AVX-512 vector of `f32`); divides
/// [`TC`].
const EXACT_GROUP: usize = 16;

/// Tile width of a GEMM with one output column (a matrix-vector product: a tile of [`TC`]
/// lanes would compute 31 padded ones).
const TC_ONE: usize = 1;
/// Tile width of a GEMM with at most 16 output columns (a classifier's ten).
const TC_NARROW: usize = 16;

/// The `W` values of a row of `B` from `j0`, read as an array of fixed size: vector loads, where
/// a slice copy may become a `memcpy` call that makes the tile spill its accumulators around it.
/// Rows are padded with zeros to a whole number of tiles ([`Job::ldb`]), so every read is full:
/// a zero column multiplies to zero and never overflows, so padded lanes change nothing kept.
#[inline(always)]
fn load_tile_row<T: Copy + Default, const W: usize>(row: &[T], j0: usize) -> [T; W] {
    let mut t = [T::default(); W];
    if let Some(full) = row.get(j0..j0 + W) {
        t.copy_from_slice(full);
    }
    t
}

/// The tile width of an output `n` columns wide: [`TC_ONE`], [`TC_NARROW`] or [`TC`].
fn tile_width(n: usize) -> usize {
    match n {
        TC_ONE => TC_ONE,
        n if n <= TC_NARROW => TC_NARROW,
        _ => TC,
    }
}

/// What every tile of one GEMM shares.
struct Job<'a, T> {
    /// Chunk length (`usize::MAX` for sequential order).
    chunk: usize,
    /// The block's rows of `A` (`K` each).
    a: &'a [T],
    /// `K`.
    k: usize,
    /// `B`, `K x N`, row-major, each row padded with zeros to `ldb` values.
    bt: &'a [T],
    /// `N`.
    n: usize,
    /// The stride of `bt`'s rows: `N` rounded up to a whole number of tiles ([`tile_width`]).
    ldb: usize,
    /// Global index of the block's first row (for the random words).
    row0: usize,
    /// The random stream of stochastic accumulator rounding.
    stream: RandomStream,
}

impl<T> Job<'_, T> {
    /// Where the random words of the outputs of a tile start ([`MacConfig::random_index`]):
    /// per output the low half of its first index, the high-half key
    /// ([`RandomStream::high_key`]) and how a carry into the high half changes it, each kind in
    /// its own array so the tile loads them as vectors. Stepping to word `r` is then a 32-bit
    /// add and a mask (`r` fits 32 bits, checked by [`per_add`]).
    #[inline(always)]
    fn first_words<const W: usize>(&self, j0: usize) -> [[[u32; W]; TR]; 3] {
        let [mut lo, mut key, mut delta] = [[[0u32; W]; TR]; 3];
        for (r, ((lo, key), delta)) in lo.iter_mut().zip(&mut key).zip(&mut delta).enumerate() {
            for (j, ((lo, key), delta)) in lo.iter_mut().zip(key).zip(delta).enumerate() {
                let o = ((self.row0 + r) * self.n + j0 + j) as u64;
                let index = MacConfig::random_index(o, self.k, 0);
                let hi = (index >> 32) as u32;
                *lo = index as u32;
                *key = self.stream.high_key(hi);
                *delta = *key ^ self.stream.high_key(hi.wrapping_add(1));
            }
        }
        [lo, key, delta]
    }
}

/// The random word of rounding `r` of an output whose words start at low half `lo` with
/// high-half key `key`, and `key ^ carry_delta` after a carry ([`Job::first_words`]).
#[inline(always)]
fn word(stream: &RandomStream, lo: u32, key: u32, carry_delta: u32, r: u32) -> u32 {
    let at = lo.wrapping_add(r);
    // A mask rather than a select of two arrays, which the compiler may turn into a gather.
    let carried = 0u32.wrapping_sub(u32::from(at < lo));
    stream.bits_keyed(at, key ^ (carry_delta & carried))
}

/// One `TR x W` tile of outputs (columns from `j0`) in sequential or chunked order: every `k`
/// in order updates the whole tile, so each output still sees exactly `acc = round(acc + p_k)`
/// for `k = 0..K` (chunked: inside each chunk from `+0`, then `round(total + chunk)`). With
/// `COUNT` the overflow events are counted with the exact checked steps; without, the checks
/// compile away.
#[inline(always)]
fn tile<U: Unit, const COUNT: bool, const W: usize>(
    unit: &U,
    job: &Job<'_, U::T>,
    rows: usize,
    j0: usize,
) -> ([[U::T; W]; TR], u64) {
    let (k, chunk) = (job.k, job.chunk);
    // Lanes checked for exact sums together (a whole narrow tile).
    let group = W.min(EXACT_GROUP);
    let mut over = [[0u32; W]; TR];
    let mut acc = [[U::T::default(); W]; TR];
    let [lo, key, carry_delta] = if U::STOCHASTIC {
        job.first_words(j0)
    } else {
        [[[0; W]; TR]; 3]
    };
    // The random word of rounding `slot` of tile output (r, j); none for deterministic units.
    let word_of = |r: usize, j: usize, slot: usize| {
        if U::STOCHASTIC {
            word(
                &job.stream,
                lo[r][j],
                key[r][j],
                carry_delta[r][j],
                slot as u32,
            )
        } else {
            0
        }
    };
    let mut kk = 0;
    while kk < k {
        let end = k.min(kk.saturating_add(chunk));
        let mut part = [[U::T::default(); W]; TR];
        for t in kk..end {
            let b = load_tile_row::<_, W>(&job.bt[t * job.ldb..(t + 1) * job.ldb], j0);
            for r in 0..TR {
                let x = if r < rows {
                    job.a[r * k + t]
                } else {
                    U::T::default()
                };
                for g in (0..W).step_by(group) {
                    if U::STOCHASTIC && !COUNT {
                        let mut sums = [U::T::default(); EXACT_GROUP];
                        let mut exact = true;
                        for (l, s) in sums[..group].iter_mut().enumerate() {
                            let (v, e) = unit.mac_exact(part[r][g + l], x, b[g + l]);
                            *s = v;
                            exact &= e;
                        }
                        if exact {
                            part[r][g..g + group].copy_from_slice(&sums[..group]);
                            continue;
                        }
                    }
                    for j in g..g + group {
                        let w = word_of(r, j, t);
                        let (v, o) = if COUNT {
                            unit.mac_checked(part[r][j], x, b[j], w)
                        } else {
                            unit.mac(part[r][j], x, b[j], w)
                        };
                        part[r][j] = v;
                        if COUNT {
                            over[r][j] += u32::from(o);
                        }
                    }
                }
            }
        }
        if chunk == usize::MAX {
            acc = part;
        } else {
            let slot = k + kk / chunk;
            for r in 0..TR {
                for j in 0..W {
                    let w = word_of(r, j, slot);
                    let (v, o) = if COUNT {
                        unit.add_checked(acc[r][j], part[r][j], w)
                    } else {
                        unit.add(acc[r][j], part[r][j], w)
                    };
                    acc[r][j] = v;
                    if COUNT {
                        over[r][j] += u32::from(o);
                    }
                }
            }
        }
        kk = end;
    }
    (acc, over.iter().flatten().map(|&o| u64::from(o)).sum())
}

/// One block of up to `TR` output rows, register-tiled. Overflows are rare, so each tile first
/// runs without counting them; where the unit's overflow is sticky (infinity or NaN stays) a tile
/// whose outputs are all finite had none, and only the others run again, counting.
/// Returns the overflow events.
/// Tiles [`TC`] columns wide, or as narrow as the output (the same values: each output's
/// sums and random words do not depend on the tile).
#[inline(always)]
fn tile_rows<U: Unit>(unit: &U, job: &Job<'_, U::T>, out: &mut [f64]) -> u64 {
    match tile_width(job.n) {
        TC_ONE => tile_cols::<U, TC_ONE>(unit, job, out),
        TC_NARROW => tile_cols::<U, TC_NARROW>(unit, job, out),
        _ => tile_cols::<U, TC>(unit, job, out),
    }
}

/// [`tile_rows`] with tiles `W` columns wide.
#[inline(always)]
fn tile_cols<U: Unit, const W: usize>(unit: &U, job: &Job<'_, U::T>, out: &mut [f64]) -> u64 {
    let n = job.n;
    let rows = out.len() / n.max(1);
    let mut events = 0;
    for j0 in (0..n).step_by(W) {
        let w = W.min(n - j0);
        let (mut acc, _) = tile::<U, false, W>(unit, job, rows, j0);
        // Branch-free (a short-circuiting `all` does not vectorize and cost a third of a
        // 4 x 32 tile over K = 64).
        let clean = unit.sticky_overflow()
            && acc[..rows].iter().fold(true, |ok, row| {
                ok & row[..w]
                    .iter()
                    .fold(true, |ok, &v| ok & U::output(v).is_finite())
            });
        if !clean {
            let (counted, e) = tile::<U, true, W>(unit, job, rows, j0);
            acc = counted;
            events += e;
        }
        for (r, row) in acc.iter().enumerate().take(rows) {
            for (o, &v) in out[r * n + j0..r * n + j0 + w].iter_mut().zip(row) {
                *o = U::output(v);
            }
        }
    }
    events
}

/// A multiversioned [`tile_rows`] for one unit.
type TileRows<U> = fn(&U, &Job<'_, <U as Unit>::T>, &mut [f64]) -> u64;

/// Sequential or chunked order over all rows, `TR` rows per parallel task, each task compiled
/// for the widest instruction set available.
fn rows<U: Unit>(
    unit: U,
    order: Order,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    stream: &RandomStream,
    block: TileRows<U>,
) -> (Array2<f64>, u64) {
    let (k, n) = (a.ncols(), b.ncols());
    // Through a slice: an iterator over a 2-D array steps index by index.
    let at: Vec<U::T> = a
        .as_standard_layout()
        .as_slice()
        .expect("standard layout")
        .iter()
        .map(|&v| U::input(v))
        .collect();
    let mut c = Array2::<f64>::zeros((a.nrows(), n));
    if n == 0 {
        return (c, 0);
    }
    // `B`'s rows padded to whole tiles, so that every tile row is one full load; through a
    // slice where `B` is one (a row view per row costs more than a short row's copy).
    let ldb = n.div_ceil(tile_width(n)) * tile_width(n);
    let mut bt = vec![U::T::default(); k * ldb];
    let widen = |dst: &mut [U::T], src: &[f32]| {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = U::input(v);
        }
    };
    match b.as_slice() {
        Some(src) if ldb == n => widen(&mut bt, src),
        Some(src) => {
            for (dst, row) in bt.chunks_exact_mut(ldb).zip(src.chunks_exact(n)) {
                widen(dst, row);
            }
        }
        None => {
            for (dst, row) in bt.chunks_exact_mut(ldb).zip(b.outer_iter()) {
                for (d, &v) in dst.iter_mut().zip(row.iter()) {
                    *d = U::input(v);
                }
            }
        }
    }
    let chunk = match order {
        Order::Chunk(c) => c,
        _ => usize::MAX,
    };
    let over = c
        .as_slice_mut()
        .expect("a new array is contiguous")
        .par_chunks_mut(TR * n)
        .zip(at.par_chunks(TR * k.max(1)))
        .with_min_len(super::min_rows(TR * n * k))
        .enumerate()
        .map(|(blk, (out, ai))| {
            let job = Job {
                chunk,
                a: ai,
                k,
                bt: &bt,
                n,
                ldb,
                row0: blk * TR,
                stream: *stream,
            };
            block(&unit, &job, out)
        })
        .sum();
    (c, over)
}

multiversion!(tile_f32_fma => tile_rows::<F32Fma>, (unit: &F32Fma, job: &Job<'_, f32>, out: &mut [f64]) -> u64);
multiversion!(tile_f32_mul_add => tile_rows::<F32MulAdd>, (unit: &F32MulAdd, job: &Job<'_, f32>, out: &mut [f64]) -> u64);
multiversion!(tile_narrow_f32 => tile_rows::<NarrowF32>, (unit: &NarrowF32, job: &Job<'_, f32>, out: &mut [f64]) -> u64);
multiversion!(tile_sr_f32 => tile_rows::<SrF32>, (unit: &SrF32, job: &Job<'_, f32>, out: &mut [f64]) -> u64);
multiversion!(tile_narrow => tile_rows::<Narrow>, (unit: &Narrow, job: &Job<'_, f64>, out: &mut [f64]) -> u64);

/// Pairwise order for a narrow float accumulator: the tree's levels, vectorized across columns.
fn pairwise_rows(unit: Narrow, a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> (Array2<f64>, u64) {
    let bt = b.mapv(f64::from).as_standard_layout().into_owned();
    let mut c = Array2::<f64>::zeros((a.nrows(), b.ncols()));
    let over = c
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(a.axis_iter(Axis(0)))
        .with_min_len(super::min_rows(b.ncols() * a.ncols()))
        .map(|(mut out, ai)| {
            let out = out.as_slice_mut().expect("standard layout");
            pairwise_row(&unit, &ai, &bt, out)
        })
        .sum();
    (c, over)
}

/// One output row of [`pairwise_rows`]: the products of row `ai` of `A` with `B`, then the
/// levels of the tree, each level one vectorizable pass over the columns. Returns the overflow
/// events.
#[inline(always)]
fn pairwise_row_portable(
    unit: &Narrow,
    ai: &ndarray::ArrayView1<f32>,
    bt: &Array2<f64>,
    out: &mut [f64],
) -> u64 {
    let (k, n) = (ai.len(), bt.ncols());
    let mut buf = vec![0.0f64; k * n];
    for (kk, (row, &x)) in buf.chunks_mut(n.max(1)).zip(ai).enumerate() {
        for (p, &y) in row.iter_mut().zip(bt.row(kk)) {
            *p = unit.product(f64::from(x), y);
        }
    }
    let mut over = 0u64;
    if k == 1 {
        for p in buf.iter_mut() {
            let (v, o) = unit.acc.round(*p);
            *p = v;
            over += u64::from(o);
        }
    }
    let mut len = k;
    while len > 1 {
        let half = len / 2;
        for t in 0..half {
            let (lo, hi) = buf.split_at_mut((2 * t) * n);
            let (pair, _) = hi.split_at_mut(2 * n);
            let (x, y) = pair.split_at_mut(n);
            for (xv, &yv) in x.iter_mut().zip(y.iter()) {
                let (v, o) = unit.acc.add(*xv, yv);
                *xv = v;
                over += u64::from(o);
            }
            if t > 0 {
                lo[t * n..(t + 1) * n].copy_from_slice(x);
            }
        }
        if len % 2 == 1 {
            buf.copy_within((len - 1) * n..len * n, half * n);
        }
        len = len.div_ceil(2);
    }
    if k > 0 {
        out.copy_from_slice(&buf[..n]);
    }
    over
}

multiversion!(pairwise_row => pairwise_row_portable, (unit: &Narrow, ai: &ndarray::ArrayView1<f32>, bt: &Array2<f64>, out: &mut [f64]) -> u64);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unit(rounding: &str) -> SrF32 {
        let cfg = MacConfig::new(
            crate::format::alias("e4m3fn").expect("e4m3fn"),
            crate::format::alias("e4m3fn").expect("e4m3fn"),
            None,
            false,
            crate::format::alias("fp32").expect("fp32"),
            rounding.parse().expect("a rounding"),
            Order::Sequential,
        )
        .expect("a valid configuration");
        SrF32::new(&cfg).expect("the stochastic f32 unit applies")
    }

    /// A finite `f32` near `x` in scale: `x 2^-gap` with another significand and maybe the
    /// other sign, so sums hit every case of the fraction (same and opposite signs, powers of
    /// two, exponent gaps past 32 bits, subnormals).
    fn near(x: f32, gap: u32, sig: u32, negate: bool) -> f32 {
        let exp = ((x.to_bits() >> 23) & 0xff).saturating_sub(gap);
        let v = f32::from_bits((exp << 23) | (sig & 0x7f_ffff));
        if negate {
            -v
        } else {
            v
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// The 32-bit-lane stochastic sum equals the general adder's exact rounding.
        #[test]
        fn sr_sum_equals_general_adder(
            xb in any::<u32>(),
            power_of_two in any::<bool>(),
            gap in 0u32..60,
            sig in any::<u32>(),
            negate in any::<bool>(),
            w in any::<u32>(),
            bits in prop::sample::select(vec!["sr", "sr:bits=8", "sr:bits=3", "sr:bits=1"]),
        ) {
            let x = f32::from_bits(if power_of_two { xb & 0xff80_0000 } else { xb });
            prop_assume!(x.is_finite());
            let y = near(x, gap, sig, negate);
            let u = unit(bits);
            let fast = u.sum(x, y, w);
            let (general, _) = u.adder.add(f64::from(x), f64::from(y), w);
            // Non-finite results send the tile to the general adder: allowed for an overflow
            // and, as NaN, when an operand below 2^-102 may leave a subnormal rounding error.
            let redone = (fast.is_infinite() && general.abs() >= f64::from(f32::MAX))
                || (fast.is_nan() && x.abs().min(y.abs()) < 2f32.powi(-102));
            prop_assert!(
                f64::from(fast).to_bits() == general.to_bits() || redone,
                "{x:e} + {y:e} (word {w:#x}, {bits}): fast {fast:e}, general {general:e}"
            );
        }

        /// The uncounted narrow-float sum equals the counted one when that is finite and did
        /// not overflow, and is non-finite otherwise.
        #[test]
        fn narrow_fast_sum_equals_checked(
            xb in any::<u32>(),
            power_of_two in any::<bool>(),
            gap in 0u32..40,
            sig in any::<u32>(),
            negate in any::<bool>(),
            acc in prop::sample::select(vec!["fp16", "bf16", "e5m2", "e4m3fn", "float:e=8,m=12"]),
        ) {
            let x = f32::from_bits(if power_of_two { xb & 0xff80_0000 } else { xb });
            let y = near(x, gap, sig, negate);
            let f: Format = acc.parse().expect("a format");
            let Format::Float(f) = f else { unreachable!("float accumulators") };
            let u = NarrowF32 { acc: RneF32::new(&f).expect("the fast nearest-even path applies") };
            let (checked, over) = u.sum(x, y);
            let fast = u.sum_fast(x, y);
            // Past 2^(105 + m) the rounding constant overflows and the fast sum hands the
            // value to the counted pass.
            let huge = x.abs().max(y.abs()) >= 2f32.powi(104 + f.man_bits() as i32);
            if checked.is_finite() && !over && x.is_finite() && y.is_finite() {
                prop_assert!(
                    fast.to_bits() == checked.to_bits() || (huge && !fast.is_finite()),
                    "{:e} + {:e} in {}: {:e}, counted {:e}", x, y, acc, fast, checked
                );
            } else {
                prop_assert!(!fast.is_finite(), "{:e} + {:e} in {}: {:e}", x, y, acc, fast);
            }
        }
    }
}
