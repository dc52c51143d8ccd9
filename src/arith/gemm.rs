//! Emulated GEMM, GEMV and dot products following a [`MacConfig`] exactly.
//!
//! [`gemm`] picks the fastest path proven equal to the general one (see `fast/`) and falls
//! back to [`gemm_general`], which sums every output with `dot_general`. Both parallelize over
//! output rows with rayon; random words depend only on positions ([`MacConfig::random_index`]),
//! so results are bit-identical for any number of threads.
//!
//! Inputs are `f32` carrier values that are already values of their formats (quantize them
//! first, e.g. with [`crate::format::Quantizer`]); outputs are accumulator values in an `f64`
//! carrier (exact for every accumulator format that fits `f64`).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;

use crate::arith::dot::dot_general;
use crate::arith::fast;
use crate::arith::mac::{EventTally, MacConfig, MacError};
use crate::arith::ActionCounts;
use crate::round::RandomStream;

/// Which kernel computed a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// The general order-exact path (`dot_general` per output).
    General,
    /// Exact integer arithmetic (any order is exact: no rounding, no overflow possible).
    ExactInteger,
    /// Native `f32` arithmetic (`fp32` accumulator, `rne`).
    NativeF32,
    /// Per-add round-to-nearest-even into a narrow float, vectorized across output columns.
    NarrowFloat,
    /// Per-add stochastic rounding into `fp32` from an exact TwoSum, vectorized across columns.
    StochasticF32,
    /// `ndarray`'s `f32` GEMM, then one rounding (`Order::Native`).
    Native,
    /// The hardware's fused `f64` multiply-add, sequential ([`gemm_f64`]).
    F64Fma,
}

/// The result of a GEMM: `C` (accumulator values), the actions, and the path taken.
#[derive(Clone, Debug)]
pub struct GemmOutput {
    /// `C = A B` as the MAC computes it (`M x N`, accumulator values in an `f64` carrier).
    pub c: Array2<f64>,
    /// The hardware actions performed.
    pub counts: ActionCounts,
    /// The kernel that ran.
    pub path: KernelPath,
}

fn check_shapes<T>(a: &ArrayView2<T>, b: &ArrayView2<T>) -> Result<(), MacError> {
    if a.ncols() != b.nrows() {
        return Err(MacError::Shape(format!(
            "A is {}x{} but B is {}x{}",
            a.nrows(),
            a.ncols(),
            b.nrows(),
            b.ncols()
        )));
    }
    Ok(())
}

/// The actions of a kernel computing `outputs` sums of `k` products: the configuration's closed
/// form ([`MacConfig::counts`], what the cost model prices) plus the range events it saw.
fn kernel_counts(cfg: &MacConfig, outputs: usize, k: usize, tally: EventTally) -> ActionCounts {
    let mut c = cfg.counts(outputs as u64, k as u64);
    c.overflows += tally.overflows;
    c.saturations += tally.saturations;
    c.wraps += tally.wraps;
    c
}

/// `C = A B` on `f64` inputs under a MAC that is the fused `f64` multiply-add
/// ([`MacConfig::is_f64_fma`]): every output `acc <- a_k.mul_add(b_k, acc)` for `k` in order
/// from `acc = 0`, the sequential fused MAC of the general path, for inputs beyond `f32` (an
/// all-`fp64` architecture). Any other configuration is refused: its products and sums need the
/// `f32` inputs of [`gemm`].
pub fn gemm_f64(
    cfg: &MacConfig,
    a: ArrayView2<f64>,
    b: ArrayView2<f64>,
) -> Result<GemmOutput, MacError> {
    cfg.validate()?;
    if !cfg.is_f64_fma() {
        return Err(MacError::Format {
            role: "accumulator",
            format: cfg.acc.to_string(),
            reason: "f64 inputs need the fused fp64 multiply-add (accumulator fp64, rne, \
                     sequential)",
        });
    }
    check_shapes(&a, &b)?;
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let bt = b.t().as_standard_layout().into_owned();
    let mut c = Array2::<f64>::zeros((m, n));
    let mut tally = EventTally::default();
    for (i, mut row) in c.axis_iter_mut(Axis(0)).enumerate() {
        let ai = a.row(i);
        for (j, out) in row.iter_mut().enumerate() {
            let mut acc = 0.0f64;
            for (&x, &y) in ai.iter().zip(bt.row(j)) {
                let next = x.mul_add(y, acc);
                // An overflow: finite operands whose rounded sum is not finite.
                if !next.is_finite() && acc.is_finite() && x.is_finite() && y.is_finite() {
                    tally.overflows += 1;
                }
                acc = next;
            }
            *out = acc;
        }
    }
    Ok(GemmOutput {
        c,
        counts: kernel_counts(cfg, m * n, k, tally),
        path: KernelPath::F64Fma,
    })
}

/// `C = A B` under `cfg`, by the fastest path proven equal to [`gemm_general`]. `stream` keys
/// the random words of stochastic accumulator rounding.
pub fn gemm(
    cfg: &MacConfig,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    stream: RandomStream,
) -> Result<GemmOutput, MacError> {
    cfg.validate()?;
    check_shapes(&a, &b)?;
    if let Some((c, path, tally)) = fast::try_gemm(cfg, &a, &b, &stream) {
        let counts = kernel_counts(cfg, a.nrows() * b.ncols(), a.ncols(), tally);
        return Ok(GemmOutput { c, counts, path });
    }
    gemm_general(cfg, a, b, stream)
}

/// [`gemm`] with `C` in `f32`, where the kernel [`gemm`] runs writes `f32` values (the per-add
/// units with `f32` lanes, whose accumulators are `f32` values): the same values and counts,
/// for a caller that keeps them on the `f32` carrier (the executor). `None` where [`gemm`]
/// takes another path: the caller runs [`gemm`].
pub(crate) fn gemm_f32(
    cfg: &MacConfig,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    stream: RandomStream,
) -> Result<Option<(Array2<f32>, ActionCounts)>, MacError> {
    cfg.validate()?;
    check_shapes(&a, &b)?;
    Ok(
        fast::try_gemm_f32(cfg, &a, &b, &stream).map(|(c, _, tally)| {
            let counts = kernel_counts(cfg, a.nrows() * b.ncols(), a.ncols(), tally);
            (c, counts)
        }),
    )
}

/// `C = A B` under `cfg` by the general order-exact path only (the reference of the fast
/// paths; `Order::Native` is computed as `Order::Sequential` here).
pub fn gemm_general(
    cfg: &MacConfig,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    stream: RandomStream,
) -> Result<GemmOutput, MacError> {
    cfg.validate()?;
    check_shapes(&a, &b)?;
    let adder = cfg.adder()?;
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let a = a.as_standard_layout().into_owned();
    let bt = b.t().as_standard_layout().into_owned();
    let mut c = Array2::<f64>::zeros((m, n));
    let tally = c
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .with_min_len(super::min_rows(n * k))
        .enumerate()
        .map(|(i, mut row)| {
            let mut tally = EventTally::default();
            let mut scratch = Vec::with_capacity(k);
            let ai = a.row(i);
            let ai = ai.as_slice().expect("standard layout");
            for (j, out) in row.iter_mut().enumerate() {
                let bj = bt.row(j);
                let bj = bj.as_slice().expect("standard layout");
                let o = (i * n + j) as u64;
                *out = dot_general(cfg, &adder, ai, bj, &stream, o, &mut scratch, &mut tally);
            }
            tally
        })
        .reduce(EventTally::default, EventTally::plus);
    let counts = kernel_counts(cfg, m * n, k, tally);
    Ok(GemmOutput {
        c,
        counts,
        path: KernelPath::General,
    })
}

/// `y = A x` under `cfg` (a GEMM with one column; output `i` is output number `i`).
pub fn gemv(
    cfg: &MacConfig,
    a: ArrayView2<f32>,
    x: ArrayView1<f32>,
    stream: RandomStream,
) -> Result<(Array1<f64>, ActionCounts), MacError> {
    let out = gemm(cfg, a, x.insert_axis(Axis(1)), stream)?;
    let y = out.c.index_axis_move(Axis(1), 0);
    Ok((y, out.counts))
}

/// `a . b` under `cfg` (a GEMM of one row by one column; output number 0).
pub fn dot(
    cfg: &MacConfig,
    a: ArrayView1<f32>,
    b: ArrayView1<f32>,
    stream: RandomStream,
) -> Result<(f64, ActionCounts), MacError> {
    if a.len() != b.len() {
        return Err(MacError::Shape(format!(
            "vectors of lengths {} and {}",
            a.len(),
            b.len()
        )));
    }
    let out = gemm(cfg, a.insert_axis(Axis(0)), b.insert_axis(Axis(1)), stream)?;
    Ok((out.c[[0, 0]], out.counts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::Order;
    use crate::format::alias;
    use crate::{Quantizer, Rounding};

    fn mac(acc: &str, product: Option<&str>, rounding: &str, order: Order) -> MacConfig {
        let f = |s: &str| alias(s).unwrap_or_else(|| s.parse().expect("a format"));
        MacConfig::new(
            f("e4m3fn"),
            f("e4m3fn"),
            product.map(f),
            product.is_none(),
            f(acc),
            rounding.parse().expect("a rounding"),
            order,
        )
        .expect("a valid configuration")
    }

    /// Where the kernel writes `f32` values, `gemm_f32` gives `gemm`'s values and counts; it
    /// declines every other path. `e4m3fn` operands of mixed magnitudes, some sums overflowing
    /// `fp16`.
    #[test]
    fn f32_outputs_are_the_f64_outputs() {
        let s = RandomStream::new(3, 4);
        let (m, k, n) = (9, 70, 37);
        // Values of e4m3fn (rounded to nearest, clipped at 448).
        let e4m3 = Quantizer::new(
            alias("e4m3fn").expect("e4m3fn"),
            Rounding::NearestEven,
            0,
            0,
        )
        .expect("a quantizer");
        let value = |i: u64, scale: f64| {
            let mut v = [0.0];
            e4m3.quantize_f64(&[s.normal_f64(i) * scale], &mut v, 0, 1);
            v[0] as f32
        };
        let a = Array2::from_shape_fn((m, k), |(i, j)| value((i * k + j) as u64, 300.0));
        let b = Array2::from_shape_fn((k, n), |(i, j)| value((1 << 20) + (i * n + j) as u64, 40.0));
        let taken = [
            mac("fp32", None, "rne", Order::Sequential),
            mac("fp32", Some("fp32"), "rne", Order::Chunk(16)),
            mac("fp16", None, "rne", Order::Sequential),
            mac("bf16", None, "rne", Order::Chunk(8)),
            mac("fp32", None, "sr:bits=8", Order::Sequential),
        ];
        for cfg in &taken {
            let (c32, counts) = gemm_f32(cfg, a.view(), b.view(), s)
                .expect("valid")
                .unwrap_or_else(|| panic!("{cfg:?}: no f32-lane kernel"));
            let wide = gemm(cfg, a.view(), b.view(), s).expect("valid");
            let bits = |v: &Array2<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&c32.mapv(f64::from)), bits(&wide.c), "{cfg:?}");
            assert_eq!(counts, wide.counts, "{cfg:?}");
        }
        let fp16 = mac("fp16", None, "rne", Order::Sequential);
        let overflows = gemm_f32(&fp16, a.view(), b.view(), s).unwrap().unwrap().1;
        assert!(overflows.overflows > 0, "some fp16 sums overflow");
        for cfg in [
            mac("fp32", None, "rne", Order::Native),
            mac("fp16", None, "rne", Order::Pairwise),
            mac("fixed:wl=32,fl=8", None, "rne", Order::Sequential),
        ] {
            assert!(
                gemm_f32(&cfg, a.view(), b.view(), s).unwrap().is_none(),
                "{cfg:?}"
            );
        }
    }
}
