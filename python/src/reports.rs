//! `cost`, `run`, `sweep` and `from_json`: the CLI's reports as Python objects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use serde::Serialize;

use lpsim::arch::{override_value, Architecture};
use lpsim::cost::{price_gemm_list, Gemm};
use lpsim::report::{slug, write_run, REPORTS_ROOT};
use lpsim::run::{run_one, RunError as LibRunError};
use lpsim::sweep::{run_sweep, Mode, ProgressMode, RunSpec, SweepSpec, RESULTS_JSON};

use crate::convert::{set_text, to_py};
use crate::{on_pool, ArchError, CostError, LpsimError, RunError, SweepError};

/// A serializable report as Python objects.
fn to_python<'py>(py: Python<'py>, v: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(v).map_err(|e| LpsimError::new_err(e.to_string()))?;
    to_py(py, &v)
}

/// JSON text (a report the CLI printed or wrote) as the Python objects this module returns:
/// the same conversion, so a CLI report and the function's compare equal.
#[pyfunction]
pub(crate) fn from_json<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| LpsimError::new_err(e.to_string()))?;
    to_py(py, &v)
}

/// `--set` overrides from a dict of Python values, keys as given.
fn overrides(
    set: Option<BTreeMap<String, Bound<'_, PyAny>>>,
) -> PyResult<BTreeMap<String, String>> {
    set.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| Ok((k, set_text(&v)?)))
        .collect()
}

/// Price GEMMs `(m, n, k)` on the architecture file `arch`, with `set` overriding its fields by
/// dotted JSON path (an `arch.` prefix is dropped, as `lpsim cost --set`). Returns what
/// `lpsim cost --json` prints: `{"total": report, "gemms": [{"m", "n", "k", "report"}]}`.
#[pyfunction]
#[pyo3(signature = (arch, gemms, set=None))]
pub(crate) fn cost<'py>(
    py: Python<'py>,
    arch: PathBuf,
    gemms: Vec<(u64, u64, u64)>,
    set: Option<BTreeMap<String, Bound<'py, PyAny>>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut values = BTreeMap::new();
    for (path, value) in overrides(set)? {
        let path = path.strip_prefix("arch.").unwrap_or(&path).to_string();
        if values
            .insert(path.clone(), override_value(&value))
            .is_some()
        {
            return Err(ArchError::new_err(format!(
                "set {path} is given twice (with and without the arch. prefix)"
            )));
        }
    }
    let arch = Architecture::load_with_overrides(&arch, &values)
        .map_err(|e| ArchError::new_err(e.to_string()))?;
    let mut list = Vec::with_capacity(gemms.len());
    for &(m, n, k) in &gemms {
        if m == 0 || n == 0 || k == 0 {
            return Err(CostError::new_err(format!(
                "gemm ({m}, {n}, {k}): every dimension must be at least 1"
            )));
        }
        list.push(Gemm { m, n, k });
    }
    if list.is_empty() {
        return Err(CostError::new_err("give at least one gemm (m, n, k)"));
    }
    let cost_err = |e: lpsim::cost::CostError| CostError::new_err(e.to_string());
    let priced = price_gemm_list(&arch, &list).map_err(cost_err)?;
    to_python(py, &priced)
}

/// A library run error as the Python exception of its cause.
fn run_error(e: LibRunError) -> PyErr {
    match e {
        LibRunError::Arch(a) => ArchError::new_err(a.to_string()),
        other => RunError::new_err(other.to_string()),
    }
}

/// One run, as `lpsim run --json` prints its report; `out` also writes the report's files
/// there (`report.json`, `report.md`, plots), as the CLI does.
#[pyfunction]
#[pyo3(signature = (workload, algo, arch, seed=0, set=None, threads=None, out=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<'py>(
    py: Python<'py>,
    workload: PathBuf,
    algo: String,
    arch: PathBuf,
    seed: u64,
    set: Option<BTreeMap<String, Bound<'py, PyAny>>>,
    threads: Option<usize>,
    out: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let spec = RunSpec {
        workload_path: workload,
        algo,
        arch_path: arch,
        seed,
        set: overrides(set)?,
    };
    let report = py
        .detach(|| on_pool(threads, || run_one(&spec)))?
        .map_err(run_error)?;
    if let Some(dir) = out {
        write_run(&dir, &report).map_err(|e| RunError::new_err(e.to_string()))?;
    }
    to_python(py, &report)
}

/// A sweep as `lpsim sweep SPEC [--out DIR] [--jobs N]`: runs what is not stored in `out`
/// (default: the spec's `out`, else `reports/<name>`), writes the results there, and returns
/// `{"ran", "reused", "failed", "incompatible", "out", "results"}` with `results` the content
/// of `results.json`. Failed runs are counted, not raised (the CLI exits non-zero for them).
#[pyfunction]
#[pyo3(signature = (spec, out=None, jobs=0))]
pub(crate) fn sweep<'py>(
    py: Python<'py>,
    spec: PathBuf,
    out: Option<PathBuf>,
    jobs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let sweep_err = |e: lpsim::sweep::SweepError| SweepError::new_err(e.to_string());
    let spec = SweepSpec::load(&spec).map_err(sweep_err)?;
    let out = out
        .or_else(|| spec.out.clone())
        .unwrap_or_else(|| Path::new(REPORTS_ROOT).join(slug(&spec.name)));
    let summary = py
        .detach(|| run_sweep(&spec, &out, jobs, &run_one, ProgressMode::Quiet, Mode::All))
        .map_err(sweep_err)?;
    let results = std::fs::read_to_string(out.join(RESULTS_JSON))
        .map_err(|e| SweepError::new_err(format!("{}: {e}", out.join(RESULTS_JSON).display())))?;
    let d = pyo3::types::PyDict::new(py);
    d.set_item("ran", summary.ran)?;
    d.set_item("reused", summary.reused)?;
    d.set_item("failed", summary.failed)?;
    d.set_item("incompatible", summary.incompatible)?;
    d.set_item("out", out.display().to_string())?;
    d.set_item("results", from_json(py, &results)?)?;
    Ok(d.into_any())
}
