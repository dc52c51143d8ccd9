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

mod tiles;
mod units;

use tiles::*;
use units::*;

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
    per_add::<f64>(cfg, a, b, stream).or_else(|| per_add_wide(cfg, a, b, stream))
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

/// The per-add paths of the units with `f32` lanes, outputs written in `O` (`f32` only for
/// these units: their accumulators are `f32` values); `None` where none applies.
fn per_add<O: Tiles>(
    cfg: &MacConfig,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    stream: &RandomStream,
) -> Option<(Array2<O>, KernelPath, EventTally)> {
    if !matches!(cfg.order, Order::Sequential | Order::Chunk(_)) {
        return None;
    }
    // The tiles step random-word indices by 32-bit offsets.
    let offsets_fit = MacConfig::random_slots(a.ncols()) <= u64::from(u32::MAX);
    if let (Some(unit), true) = (SrF32::new(cfg), offsets_fit) {
        let (c, overflows) = rows(unit, cfg.order, a, b, stream, O::SR_F32);
        return Some((c, KernelPath::StochasticF32, overflows_tally(overflows)));
    }
    if cfg.acc_rounding != Rounding::NearestEven {
        return None;
    }
    let AccFormat::Float(_) = cfg.adder().ok()?.format else {
        return None;
    };
    let fp32 = crate::format::alias("fp32");
    let (c, overflows, path) = if Some(cfg.acc) == fp32 && cfg.product.is_none() {
        let (c, o) = rows(F32Fma, cfg.order, a, b, stream, O::F32_FMA);
        (c, o, KernelPath::NativeF32)
    } else if Some(cfg.acc) == fp32 && cfg.product == fp32 {
        let (c, o) = rows(F32MulAdd, cfg.order, a, b, stream, O::F32_MUL_ADD);
        (c, o, KernelPath::NativeF32)
    } else {
        let unit = NarrowF32::new(cfg)?;
        let (c, o) = rows(unit, cfg.order, a, b, stream, O::NARROW_F32);
        (c, o, KernelPath::NarrowFloat)
    };
    Some((c, path, overflows_tally(overflows)))
}

/// The per-add path of the narrow float unit on `f64` lanes (any order, pairwise included),
/// for accumulators the `f32`-lane units do not take.
fn per_add_wide(
    cfg: &MacConfig,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    stream: &RandomStream,
) -> Option<(Array2<f64>, KernelPath, EventTally)> {
    if cfg.acc_rounding != Rounding::NearestEven {
        return None;
    }
    let AccFormat::Float(acc) = cfg.adder().ok()?.format else {
        return None;
    };
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
    Some((c, KernelPath::NarrowFloat, overflows_tally(o)))
}

/// A tally of `overflows` overflow events only.
fn overflows_tally(overflows: u64) -> EventTally {
    EventTally {
        overflows,
        ..EventTally::default()
    }
}

/// [`try_gemm`] with the outputs in `f32`, where the path it takes writes `f32` values (the
/// per-add units with `f32` lanes): the same values. `None` where [`try_gemm`] would take
/// another path: native order, or the narrow unit on `f64` lanes (exact integers need a
/// fixed-point accumulator, which `per_add` declines: every `f32`-lane unit sums in a float).
pub(crate) fn try_gemm_f32(
    cfg: &MacConfig,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    stream: &RandomStream,
) -> Option<(Array2<f32>, KernelPath, EventTally)> {
    if cfg.order == Order::Native {
        return None;
    }
    per_add::<f32>(cfg, a, b, stream)
}

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
