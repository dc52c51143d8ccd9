//! `quantize`: NumPy arrays through `lpsim::Quantizer`, read in place, written by the rayon
//! kernels with the GIL released.

use std::borrow::Cow;
use std::time::Instant;

use numpy::ndarray::ArrayViewD;
use numpy::{
    PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use lpsim::format::QuantizeError;
use lpsim::{Format, Quantizer, Rounding};

use crate::{on_pool, FormatError};

/// The quantizer of `format` and `rounding` with `seed` (stream 0, as `lpsim quantize`).
pub(crate) fn quantizer(format: &str, rounding: &str, seed: u64) -> PyResult<Quantizer> {
    let f: Format = format
        .parse()
        .map_err(|e: lpsim::FormatError| FormatError::new_err(e.to_string()))?;
    let r: Rounding = rounding
        .parse()
        .map_err(|e: lpsim::round::RoundingError| FormatError::new_err(e.to_string()))?;
    Quantizer::new(f, r, seed, 0).map_err(|e| FormatError::new_err(e.to_string()))
}

/// The elements of `a` in C order: borrowed when `a` is C-contiguous (no copy), else copied.
fn c_order<'a, T: Copy>(a: &'a ArrayViewD<'a, T>) -> Cow<'a, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

/// The row length of the blocks: the last axis (the Python layer moved the chosen axis there).
fn row_len(shape: &[usize]) -> usize {
    shape.last().copied().unwrap_or(1).max(1)
}

/// Quantize `x` (float32 or float64, any shape and strides) to `format` with `rounding`; rows
/// for block formats run along the last axis. float32 input gives float32 output when the
/// format's values are float32 values, else float64. `out` (optional) receives the result and
/// must have `x`'s shape and the result's dtype.
#[pyfunction]
#[pyo3(signature = (x, format, rounding="rne", seed=0, threads=None, out=None))]
pub(crate) fn quantize<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    format: &str,
    rounding: &str,
    seed: u64,
    threads: Option<usize>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let q = quantizer(format, rounding, seed)?;
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'py, f32>>() {
        if q.format().fits_f32() {
            return run_carrier(py, &q, a.as_array(), threads, out);
        }
        // A format wider than f32 (fp64, wide fixed point): the f64 carrier, as the CLI.
        let wide = a.as_array().mapv(f64::from);
        return run_carrier(py, &q, wide.view(), threads, out);
    }
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'py, f64>>() {
        return run_carrier(py, &q, a.as_array(), threads, out);
    }
    let dtype = x
        .getattr("dtype")
        .map(|d| d.to_string())
        .unwrap_or_else(|_| x.get_type().to_string());
    Err(PyTypeError::new_err(format!(
        "quantize takes a float32 or float64 NumPy array, not {dtype}"
    )))
}

/// Check a given `out` against the input's shape.
fn check_out(shape: &[usize], out_shape: &[usize]) -> PyResult<()> {
    if shape != out_shape {
        return Err(PyValueError::new_err(format!(
            "out has shape {out_shape:?}, the input {shape:?}"
        )));
    }
    Ok(())
}

/// An element type of the kernels and of NumPy arrays: `f32` or `f64`.
trait Carrier: numpy::Element + Copy + Default + Send + Sync {
    /// The NumPy dtype's name, for errors.
    const DTYPE: &'static str;
    /// The library's parallel kernel on this carrier.
    fn kernel(
        q: &Quantizer,
        src: &[Self],
        dst: &mut [Self],
        rows: usize,
    ) -> Result<(), QuantizeError>;
}

impl Carrier for f32 {
    const DTYPE: &'static str = "float32";
    fn kernel(
        q: &Quantizer,
        src: &[f32],
        dst: &mut [f32],
        rows: usize,
    ) -> Result<(), QuantizeError> {
        q.par_quantize_f32(src, dst, rows)
    }
}

impl Carrier for f64 {
    const DTYPE: &'static str = "float64";
    fn kernel(
        q: &Quantizer,
        src: &[f64],
        dst: &mut [f64],
        rows: usize,
    ) -> Result<(), QuantizeError> {
        q.par_quantize_f64(src, dst, rows);
        Ok(())
    }
}

/// Quantize `view` into a new array, or into `out`, with the GIL released.
fn run_carrier<'py, T: Carrier>(
    py: Python<'py>,
    q: &Quantizer,
    view: ArrayViewD<'_, T>,
    threads: Option<usize>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let shape = view.shape().to_vec();
    let rows = row_len(&shape);
    let input = c_order(&view);
    let run = |dst: &mut [T]| -> PyResult<()> {
        let src: &[T] = &input;
        py.detach(|| on_pool(threads, || T::kernel(q, src, dst, rows)))?
            .map_err(|e| FormatError::new_err(e.to_string()))
    };
    let Some(o) = out else {
        // SAFETY: every element is written by the kernel before Python sees the array.
        let arr = unsafe { PyArrayDyn::<T>::new(py, shape, false) };
        // SAFETY: the array was just created here and no other reference to it exists.
        let dst =
            unsafe { arr.as_slice_mut() }.map_err(|e| PyValueError::new_err(e.to_string()))?;
        run(dst)?;
        return Ok(arr.into_any());
    };
    let wrong = || {
        PyTypeError::new_err(format!(
            "out must be a writeable {} array (the result's dtype), distinct from x",
            T::DTYPE
        ))
    };
    let mut w: PyReadwriteArrayDyn<'py, T> = o
        .cast::<PyArrayDyn<T>>()
        .map_err(|_| wrong())?
        .try_readwrite()
        .map_err(|_| wrong())?;
    check_out(&shape, w.shape())?;
    // A C-contiguous `out` is written in place; numpy's `as_slice_mut` also accepts Fortran
    // order, whose memory order is not the elements' C order: that goes through a copy.
    let c_contiguous = w.is_c_contiguous();
    match w.as_slice_mut().ok().filter(|_| c_contiguous) {
        Some(dst) => run(dst)?,
        None => {
            let mut tmp = vec![T::default(); input.len()];
            run(&mut tmp)?;
            w.as_array_mut()
                .iter_mut()
                .zip(&tmp)
                .for_each(|(d, &v)| *d = v);
        }
    }
    Ok(o.clone())
}

/// Seconds one call of the library's parallel `f32` kernel takes on `x` (C-contiguous float32,
/// rows along the last axis) into a buffer allocated and touched before the clock starts, on
/// the pool for `threads`: the Rust kernel's own time, for the benchmark script's ratio.
#[pyfunction]
#[pyo3(signature = (x, format, rounding="rne", seed=0, threads=None))]
pub(crate) fn kernel_seconds(
    py: Python<'_>,
    x: PyReadonlyArrayDyn<'_, f32>,
    format: &str,
    rounding: &str,
    seed: u64,
    threads: Option<usize>,
) -> PyResult<f64> {
    let q = quantizer(format, rounding, seed)?;
    let rows = row_len(x.shape());
    let src = x
        .as_slice()
        .ok()
        .filter(|_| x.is_c_contiguous())
        .ok_or_else(|| PyValueError::new_err("kernel_seconds takes a C-contiguous array"))?;
    // Non-zero, so the pages are written (touched) now, not on the kernel's first store.
    let mut dst = vec![1.0f32; src.len()];
    let secs = py.detach(|| {
        on_pool(threads, || {
            let t = Instant::now();
            q.par_quantize_f32(src, &mut dst, rows)
                .map(|()| t.elapsed())
        })
    })?;
    Ok(secs
        .map_err(|e| FormatError::new_err(e.to_string()))?
        .as_secs_f64())
}
