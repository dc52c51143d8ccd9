//! The library's reports (serde JSON values) as Python objects, and Python override values as
//! the text `--set` takes.

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};
use serde_json::Value;

/// A JSON value as Python: objects as dicts (keys in the report's order), strings, booleans,
/// `null` as `None`; an array whose elements are all numbers (or `null`, the JSON of a NaN) as a
/// NumPy array: `int64` when every element is an integer that fits, else `float64` with `null`
/// as NaN. Other arrays are lists. `lpsim.from_json` applies the same rule to the text the CLI
/// prints, so the two compare equal.
pub(crate) fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => match numeric(items) {
            Some(Numeric::Int(v)) => PyArray1::from_vec(py, v).into_any(),
            Some(Numeric::Float(v)) => PyArray1::from_vec(py, v).into_any(),
            None => {
                let list = PyList::empty(py);
                for item in items {
                    list.append(to_py(py, item)?)?;
                }
                list.into_any()
            }
        },
        Value::Object(map) => {
            let d = PyDict::new(py);
            for (k, item) in map {
                d.set_item(k, to_py(py, item)?)?;
            }
            d.into_any()
        }
    })
}

/// A non-empty array of numbers as integers or floats.
enum Numeric {
    Int(Vec<i64>),
    Float(Vec<f64>),
}

fn numeric(items: &[Value]) -> Option<Numeric> {
    if items.is_empty() || !items.iter().all(|v| v.is_number() || v.is_null()) {
        return None;
    }
    if !items.iter().any(Value::is_number) {
        return None;
    }
    if let Some(ints) = items.iter().map(Value::as_i64).collect::<Option<Vec<_>>>() {
        return Some(Numeric::Int(ints));
    }
    Some(Numeric::Float(
        items
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN))
            .collect(),
    ))
}

/// A Python override value as the text of `--set KEY=VALUE`: strings as they are, booleans as
/// `true`/`false`, numbers by `str()` (which round-trips floats).
pub(crate) fn set_text(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.to_string());
    }
    if let Ok(s) = v.cast::<PyString>() {
        return s.extract();
    }
    v.str()?.extract()
}
