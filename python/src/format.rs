//! `Format` (a parsed spec: facts, codes) and `formats()` (the table of `lpsim formats`).

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use lpsim::format::{alias, FormatInfo, ALIASES};

use crate::convert::to_py;
use crate::FormatError;

/// A number format parsed from a spec string (an alias such as ``"bf16"`` or a form such as
/// ``"float:e=4,m=3"``, ``"fixed:wl=8,fl=6"``, ``"bfp:wl=8,size=32"``, ``"mx:elem=e4m3fn"``).
///
/// ``str(f)`` is the canonical spec (it parses back to the same format); ``f.info()`` gives the
/// row of ``lpsim formats``; ``f.encode(values)`` and ``f.decode(codes)`` convert between values
/// and the format's bit patterns (scalar formats only). Raises ``FormatError`` on a bad spec.
#[pyclass(module = "lpsim", frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Format {
    pub(crate) inner: lpsim::Format,
}

/// Parse a spec into a library format, raising `FormatError` with the library's message.
pub(crate) fn parse(spec: &str) -> PyResult<lpsim::Format> {
    spec.parse()
        .map_err(|e: lpsim::FormatError| FormatError::new_err(e.to_string()))
}

#[pymethods]
impl Format {
    #[new]
    fn new(spec: &str) -> PyResult<Self> {
        Ok(Format {
            inner: parse(spec)?,
        })
    }

    /// The canonical spec string (parses back to the same format).
    #[getter]
    fn spec(&self) -> String {
        self.inner.to_string()
    }

    /// The family: ``"float"``, ``"fixed"``, ``"bfp"``, ``"mx"`` or ``"qtorch"``.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    /// Bits per element (block formats: the element's, without the shared 8-bit scale).
    #[getter]
    fn bits(&self) -> u32 {
        self.inner.bits()
    }

    /// Whether one shared scale covers a block of elements (bfp, MX).
    #[getter]
    fn is_block(&self) -> bool {
        self.inner.is_block()
    }

    /// Whether every value is a float32 value (float32 input then gives float32 output).
    #[getter]
    fn fits_f32(&self) -> bool {
        self.inner.fits_f32()
    }

    /// The facts of ``lpsim formats`` as a dict: name, kind, bits, exp_bits, man_bits, bias, fl,
    /// block, max, min_normal, min_subnormal, epsilon, specials (``None`` where not applicable).
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        info_dict(py, &FormatInfo::of(&self.inner))
    }

    /// The bit patterns of ``values`` (any shape) as an unsigned integer array of the smallest
    /// width that holds ``bits`` (uint8, uint16, uint32 or uint64). A value that is not
    /// representable is first rounded to nearest-even (as the library's encoder does); NaN gives
    /// the format's NaN code. Block formats raise ``FormatError`` (a code depends on the block's
    /// shared scale: quantize, then read the scale from the values).
    fn encode<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let np = py.import("numpy")?;
        let v = np.call_method1("asarray", (values, "float64"))?;
        let v = v.extract::<PyReadonlyArrayDyn<'py, f64>>()?;
        let f = self.inner;
        let codes = v
            .as_array()
            .map(|&x| f.encode(x))
            .into_iter()
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| block_codes(&f))?;
        let arr = ArrayD::from_shape_vec(IxDyn(v.shape()), codes)
            .map_err(|e| FormatError::new_err(e.to_string()))?
            .into_pyarray(py);
        arr.call_method1("astype", (code_dtype(f.bits()),))
    }

    /// The values (float64, any shape) of the bit patterns ``codes`` (a non-negative integer
    /// array). A code with bits beyond the format's width raises ``FormatError``; block formats
    /// raise ``FormatError``.
    fn decode<'py>(
        &self,
        py: Python<'py>,
        codes: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let np = py.import("numpy")?;
        let c = np.call_method1("asarray", (codes,))?;
        let kind: String = c.getattr("dtype")?.getattr("kind")?.extract()?;
        if kind != "u" && kind != "i" {
            return Err(PyTypeError::new_err(format!(
                "decode takes an integer array of codes, not dtype {}",
                c.getattr("dtype")?
            )));
        }
        if kind == "i" && c.getattr("size")?.extract::<usize>()? > 0 {
            let min: i64 = c.call_method0("min")?.extract()?;
            if min < 0 {
                return Err(FormatError::new_err(format!(
                    "code {min} is negative: codes are unsigned bit patterns"
                )));
            }
        }
        let c = c.call_method1("astype", ("uint64",))?;
        let c = c.extract::<PyReadonlyArrayDyn<'py, u64>>()?;
        let f = self.inner;
        let bits = f.bits();
        let mut values = Vec::with_capacity(c.len());
        for &code in c.as_array().iter() {
            if bits < 64 && code >> bits != 0 {
                return Err(FormatError::new_err(format!(
                    "code {code:#x} has more than the {bits} bits of format `{f}`"
                )));
            }
            values.push(f.decode(code).ok_or_else(|| block_codes(&f))?);
        }
        Ok(ArrayD::from_shape_vec(IxDyn(c.shape()), values)
            .map_err(|e| FormatError::new_err(e.to_string()))?
            .into_pyarray(py)
            .into_any())
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self) -> String {
        format!("lpsim.Format({:?})", self.inner.to_string())
    }
}

/// The error for codes of a block format.
fn block_codes(f: &lpsim::Format) -> PyErr {
    FormatError::new_err(format!(
        "format `{f}` is a block format: an element's code depends on its block's shared scale"
    ))
}

/// The NumPy dtype of codes of `bits` bits.
fn code_dtype(bits: u32) -> &'static str {
    match bits {
        0..=8 => "uint8",
        9..=16 => "uint16",
        17..=32 => "uint32",
        _ => "uint64",
    }
}

fn info_dict<'py>(py: Python<'py>, info: &FormatInfo) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(info).map_err(|e| FormatError::new_err(e.to_string()))?;
    to_py(py, &v)
}

/// The built-in formats (every alias) as a list of dicts, the rows of ``lpsim formats --json``.
#[pyfunction]
pub(crate) fn formats(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let list = PyList::empty(py);
    for f in ALIASES.iter().filter_map(|a| alias(a)) {
        list.append(info_dict(py, &FormatInfo::of(&f))?)?;
    }
    Ok(list)
}
