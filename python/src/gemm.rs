//! `gemm`: the emulated MAC on NumPy matrices, as `lpsim gemm --a A.npy --b B.npy --out C.npy`.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use lpsim::arith::{gemm as emulated_gemm, MacConfig, Order};
use lpsim::format::{Format, Quantizer};
use lpsim::round::{RandomStream, Rounding};

use crate::convert::to_py;
use crate::format::parse;
use crate::{on_pool, FormatError, GemmError};

/// Round `x` to `f` with `rne` along its rows (block formats group along each row), as
/// `lpsim gemm` rounds its inputs (`cli/gemm.rs`, `quantize_rows`).
fn quantize_rows(x: &PyReadonlyArray2<'_, f64>, f: Format) -> PyResult<Array2<f32>> {
    let q = Quantizer::new(f, Rounding::NearestEven, 0, 0)
        .map_err(|e| FormatError::new_err(e.to_string()))?;
    let x = x.as_array();
    let x = x.as_standard_layout();
    let src = x.as_slice().unwrap_or_default();
    let mut out = vec![0.0f64; src.len()];
    q.par_quantize_f64(src, &mut out, x.ncols().max(1));
    Array2::from_shape_vec(x.raw_dim(), out.into_iter().map(|v| v as f32).collect())
        .map_err(|e| GemmError::new_err(e.to_string()))
}

/// `C = A B` on the emulated MAC. `a` (M x K) and `b` (K x N) are rounded to `a_format` and
/// `b_format` with nearest-even first (B's blocks along K); the random bits of stochastic
/// accumulation are keyed by `seed` (stream 3, as the CLI). Returns `(c, counts)`: C as float32
/// when the accumulator's values are float32 values, else float64, and the hardware actions
/// as a dict (the `counts` of `lpsim gemm --json`).
#[pyfunction]
#[pyo3(signature = (a, b, acc, a_format="fp32", b_format="fp32", product="exact", fused=false, acc_rounding="rne", order="sequential", seed=0, threads=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f64>,
    b: PyReadonlyArray2<'py, f64>,
    acc: &str,
    a_format: &str,
    b_format: &str,
    product: &str,
    fused: bool,
    acc_rounding: &str,
    order: &str,
    seed: u64,
    threads: Option<usize>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let gemm_err = |e: lpsim::arith::MacError| GemmError::new_err(e.to_string());
    let a_format = parse(a_format)?;
    let b_format = parse(b_format)?;
    let product = match product.trim() {
        "exact" => None,
        p => Some(parse(p)?),
    };
    let acc = parse(acc)?;
    let acc_rounding: Rounding = acc_rounding
        .parse()
        .map_err(|e: lpsim::round::RoundingError| FormatError::new_err(e.to_string()))?;
    let order: Order = order.parse().map_err(gemm_err)?;
    let cfg = MacConfig::new(a_format, b_format, product, fused, acc, acc_rounding, order)
        .map_err(gemm_err)?;
    for (name, f) in [("a_format", a_format), ("b_format", b_format)] {
        if !f.fits_f32() {
            return Err(GemmError::new_err(format!(
                "{name} {f}: gemm takes formats whose values are f32 values"
            )));
        }
    }
    let (m, k, n) = (a.shape()[0], a.shape()[1], b.shape()[1]);
    if m == 0 || k == 0 || n == 0 {
        return Err(GemmError::new_err(format!(
            "A is {m}x{k} and B is {}x{n}: every dimension must be at least 1",
            b.shape()[0]
        )));
    }
    let qa = quantize_rows(&a, a_format)?;
    // B's blocks run along K: quantize the rows of B^T.
    let bt = b.as_array().t().to_owned();
    let bt = numpy::PyArray2::from_owned_array(py, bt).readonly();
    let qb = quantize_rows(&bt, b_format)?.reversed_axes();
    let out = py
        .detach(|| {
            on_pool(threads, || {
                emulated_gemm(&cfg, qa.view(), qb.view(), RandomStream::new(seed, 3))
            })
        })?
        .map_err(gemm_err)?;
    let counts =
        serde_json::to_value(&out.counts).map_err(|e| GemmError::new_err(e.to_string()))?;
    let c = if acc.fits_f32() {
        out.c.mapv(|v| v as f32).into_pyarray(py).into_any()
    } else {
        out.c.into_pyarray(py).into_any()
    };
    Ok((c, to_py(py, &counts)?))
}
