//! `lpsim._native`: the Python extension module of lpsim (pyo3 + numpy).
//!
//! The pure-Python package `lpsim` (`python/lpsim/__init__.py`) re-exports these functions with
//! its argument handling (an `axis` moved last, `Format` objects as specs); every number is
//! computed by the `lpsim` crate itself, so the results are the CLI's bit for bit. Kernels run
//! with the GIL released on a rayon pool (`threads`), and the results do not depend on the
//! number of threads (random draws are keyed by seed and element index).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

mod convert;
mod format;
mod gemm;
mod quantize;
mod reports;

create_exception!(
    lpsim,
    LpsimError,
    PyValueError,
    "Base class of every error lpsim raises; its message is the library's."
);
create_exception!(
    lpsim,
    FormatError,
    LpsimError,
    "A format or rounding spec that does not parse, or a format that cannot do what is asked."
);
create_exception!(
    lpsim,
    GemmError,
    LpsimError,
    "A MAC configuration or GEMM operands that the emulated GEMM refuses."
);
create_exception!(
    lpsim,
    ArchError,
    LpsimError,
    "An architecture file or an override of it that does not validate."
);
create_exception!(
    lpsim,
    CostError,
    LpsimError,
    "Work that cannot be priced on an architecture."
);
create_exception!(
    lpsim,
    RunError,
    LpsimError,
    "A run that cannot be prepared or fails (workload, data, algorithm, hyperparameters)."
);
create_exception!(
    lpsim,
    SweepError,
    LpsimError,
    "A sweep spec that does not validate, or a sweep that cannot write its results."
);

/// The rayon pool for `threads` (`None`: one thread per core, rayon's default), built once per
/// count and kept, so repeated calls do not pay for starting threads.
pub(crate) fn pool(threads: Option<usize>) -> PyResult<Arc<rayon::ThreadPool>> {
    static POOLS: Mutex<Option<HashMap<usize, Arc<rayon::ThreadPool>>>> = Mutex::new(None);
    if threads == Some(0) {
        return Err(PyValueError::new_err(
            "threads=0: give at least 1 thread, or None for all cores",
        ));
    }
    // Key 0 is rayon's default size.
    let n = threads.unwrap_or(0);
    let mut guard = POOLS
        .lock()
        .map_err(|_| PyValueError::new_err("the thread-pool cache is poisoned"))?;
    let pools = guard.get_or_insert_with(HashMap::new);
    if let Some(p) = pools.get(&n) {
        return Ok(p.clone());
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| PyValueError::new_err(format!("cannot start {n} threads: {e}")))?;
    let p = Arc::new(p);
    pools.insert(n, p.clone());
    Ok(p)
}

/// Run `f` on a worker of the pool for `threads`, as `lpsim run` does: the library's many small
/// parallel kernels then split their work among the workers instead of each being handed over
/// from the caller's thread and waited for.
pub(crate) fn on_pool<R: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> R + Send,
) -> PyResult<R> {
    Ok(pool(threads)?.install(f))
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("LpsimError", py.get_type::<LpsimError>())?;
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("GemmError", py.get_type::<GemmError>())?;
    m.add("ArchError", py.get_type::<ArchError>())?;
    m.add("CostError", py.get_type::<CostError>())?;
    m.add("RunError", py.get_type::<RunError>())?;
    m.add("SweepError", py.get_type::<SweepError>())?;
    m.add_class::<format::Format>()?;
    m.add_function(wrap_pyfunction!(format::formats, m)?)?;
    m.add_function(wrap_pyfunction!(quantize::quantize, m)?)?;
    m.add_function(wrap_pyfunction!(quantize::kernel_seconds, m)?)?;
    m.add_function(wrap_pyfunction!(gemm::gemm, m)?)?;
    m.add_function(wrap_pyfunction!(reports::cost, m)?)?;
    m.add_function(wrap_pyfunction!(reports::run, m)?)?;
    m.add_function(wrap_pyfunction!(reports::sweep, m)?)?;
    m.add_function(wrap_pyfunction!(reports::from_json, m)?)?;
    Ok(())
}
