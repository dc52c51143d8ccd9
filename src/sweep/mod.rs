//! Sweeps: a grid of runs (workloads x algorithms x architectures x `--set` values x seeds), run
//! in parallel, each deterministic, stored as it finishes and reused when the sweep runs again,
//! summarized in one report.
//!
//! # The spec (`SPEC.json`)
//!
//! Documented for users in `workloads/SWEEP.md`.
//!
//! ```json
//! {
//!   "name": "quickstart",
//!   "workloads": ["workloads/digits-logistic.json"],
//!   "algos": ["sgd", "lp-sgld-vc"],
//!   "archs": ["arch/*.json"],
//!   "seeds": [0, 1],
//!   "set": {"lr": [0.05, 0.1]},
//!   "out": "reports/quickstart"
//! }
//! ```
//!
//! | key | required | meaning |
//! |---|---|---|
//! | `name` | yes | the sweep's name; the default output directory is `reports/<name>` |
//! | `workloads` | yes | workload files; the file name may be a pattern with `*` and `?` |
//! | `algos` | yes | algorithm names as `lpsim run --algo` takes them |
//! | `archs` | yes | architecture files; the file name may be a pattern with `*` and `?` |
//! | `seeds` | no, `[0]` | whole numbers |
//! | `set` | no | `key: [values...]` (strings, numbers or booleans): the grid takes every combination |
//! | `out` | no | output directory (`--out` wins over it) |
//!
//! Relative paths and patterns are resolved against the current directory; a pattern's matches
//! are sorted by name, and a file named twice is run once.
//!
//! # Order, identity and resumption
//!
//! The grid's order is fixed ([`SweepSpec::runs`]): workloads, algorithms, architectures, `set`
//! combinations, seeds (innermost). Each run is named by [`RunSpec::hash`], which covers the spec
//! and the *contents* of its workload and architecture files: editing a file reruns its runs.
//! A finished run is written at once, atomically, to `<out>/runs/<hash>.json`; a later sweep
//! reuses every stored run whose file parses and matches, so an interrupted sweep loses nothing
//! finished. Failed runs are not stored (the next sweep tries them again). A run whose
//! combination is impossible (an algorithm the model or architecture cannot carry, see
//! [`RunFailure`]) is recorded as `skipped: incompatible`, listed apart in the report and not
//! counted as a failure; it is not stored either, since the check is made before any training
//! and costs nothing to repeat.
//!
//! # Output
//!
//! `<out>/results.csv` (one row per run in grid order), `results.json`, `report.md` and SVG plots
//! (per workload: error against energy with the Pareto front; accuracy against weight bits); see
//! [`run_sweep`]. The same sweep gives byte-identical files: there are no timestamps and numbers
//! are written in Rust's shortest round-trip form.
//!
//! # Beyond one machine
//!
//! A run that fails leaves a failure record `runs/<hash>.failed.json` (its error), removed when
//! the run later succeeds. [`Mode::Shard`] runs only one shard's runs ([`shard`]) and writes
//! nothing else, so any number of shards can run at once against one output directory on a
//! shared file system (every file is written atomically and named by its run's hash; there is
//! no shared index). [`Mode::Merge`] writes the results from the stored runs and failure records,
//! running only the runs that have neither: the same files, byte for byte, as a sweep on one
//! machine. [`slurm`] writes the job-array and merge scripts.

mod progress;
mod results;
pub mod shard;
pub mod slurm;
mod spec;

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::arch::ArchError;
use crate::report::{create_dir, to_json_pretty, write_atomically, ReportError, RunReport};

pub use progress::{plan_line, ProgressMode};
pub use results::{RESULTS_CSV, RESULTS_JSON, SWEEP_MD};
pub use shard::Shard;
pub use spec::{Grid, RunSpec, SweepSpec};

use progress::Progress;

/// Which part of a sweep this process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every run not stored as finished (failed runs are retried), then the results files.
    All,
    /// Only the runs of one shard not stored as finished (failed runs are retried); no results
    /// files.
    Shard(Shard),
    /// The results files from the stored runs: finished runs, and failed runs reported with
    /// their recorded error; only runs with neither are run.
    Merge,
}

/// Why a sweep could not run or could not write its results. (A run that fails is not a sweep
/// error: it gets a row with its error and the sweep goes on.)
#[derive(Debug, Error)]
pub enum SweepError {
    /// A spec, workload or architecture file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The spec is not JSON.
    #[error("{file}: not valid JSON: {error}")]
    Json {
        /// The spec file.
        file: String,
        /// The parser's error, with line and column.
        error: serde_json::Error,
    },
    /// A field of the spec is missing, of the wrong type, unknown or matches no file.
    #[error("{file}: {detail}")]
    Invalid {
        /// The spec file.
        file: String,
        /// `json.path = value: what is wrong`.
        detail: String,
    },
    /// A result file could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The worker threads could not be started.
    #[error("cannot start {jobs} worker threads: {error}")]
    Pool {
        /// Threads asked for.
        jobs: usize,
        /// Rayon's error.
        error: rayon::ThreadPoolBuildError,
    },
}

impl From<ArchError> for SweepError {
    /// The spec is checked with the JSON walker architecture files use; its errors map one to one.
    fn from(e: ArchError) -> Self {
        match e {
            ArchError::Io { file, error } => SweepError::Read {
                path: file.into(),
                error,
            },
            ArchError::Json { file, error } => SweepError::Json { file, error },
            ArchError::Invalid { file, detail } => SweepError::Invalid { file, detail },
        }
    }
}

/// An error of one run as the sweep sees it: its message, and whether the combination can never
/// run (an algorithm that the model or the architecture cannot carry). Incompatible runs are
/// listed apart as `skipped: incompatible`, not as failures to retry.
pub trait RunFailure: Display {
    /// Whether the run is impossible by construction (the same spec fails the same way every
    /// time, before any training), rather than failed.
    fn incompatible(&self) -> bool {
        false
    }
}

/// A plain message is a failure (runners in tests and tools).
impl RunFailure for String {}

/// The `status` of a run that cannot be done on its architecture or model.
pub const SKIPPED_INCOMPATIBLE: &str = "skipped: incompatible";

/// What happened to one run of the sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutcome {
    /// The run.
    pub spec: RunSpec,
    /// Its [`RunSpec::hash`].
    pub hash: String,
    /// The report, or why the run failed (the runner's error, or its panic message).
    pub result: Result<RunReport, String>,
    /// Whether the error says the combination is impossible ([`RunFailure::incompatible`]).
    pub incompatible: bool,
    /// Whether the report was taken from an earlier sweep instead of running.
    pub reused: bool,
}

impl RunOutcome {
    /// `ok`, `diverged`, `failed` or `skipped: incompatible`: the `status` column of
    /// `results.csv`.
    pub fn status(&self) -> &'static str {
        match &self.result {
            Ok(r) if r.diverged_at_epoch.is_some() => "diverged",
            Ok(_) => "ok",
            Err(_) if self.incompatible => SKIPPED_INCOMPATIBLE,
            Err(_) => "failed",
        }
    }

    /// Whether the run failed and should be retried (not an incompatible combination).
    pub fn failed(&self) -> bool {
        self.result.is_err() && !self.incompatible
    }
}

/// The outcome of a whole sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSummary {
    /// Every run, in grid order.
    pub outcomes: Vec<RunOutcome>,
    /// Runs executed by this sweep.
    pub ran: usize,
    /// Runs reused from an earlier sweep.
    pub reused: usize,
    /// Runs that failed (incompatible combinations not included).
    pub failed: usize,
    /// Runs skipped because the combination is impossible ([`RunFailure::incompatible`]).
    pub incompatible: usize,
    /// The result files written (CSV, JSON, Markdown, plots).
    pub files: Vec<PathBuf>,
}

/// A finished run as stored in `runs/<hash>.json`.
#[derive(Serialize, Deserialize)]
struct StoredRun {
    hash: String,
    spec: RunSpec,
    report: RunReport,
}

/// A failed run as recorded in `runs/<hash>.failed.json`.
#[derive(Serialize, Deserialize)]
struct StoredFailure {
    hash: String,
    spec: RunSpec,
    error: String,
}

/// Directory of the stored runs inside a sweep's output directory.
pub const RUNS_DIR: &str = "runs";

/// Run the sweep `spec` into `out`: expand the grid, reuse every run stored in `out/runs/`,
/// run the others with `runner` on `jobs` threads (0: one per core), store each finished run
/// atomically as soon as it finishes, then write `results.csv`, `results.json`, `report.md` and
/// the plots. A run whose runner returns an error or panics is recorded as failed and the sweep
/// goes on. Progress goes to standard error as `progress` says. `mode` picks the part of the
/// sweep this process does ([`Mode`]).
pub fn run_sweep<E: RunFailure>(
    spec: &SweepSpec,
    out: &Path,
    jobs: usize,
    runner: &(dyn Fn(&RunSpec) -> Result<RunReport, E> + Sync),
    progress: ProgressMode,
    mode: Mode,
) -> Result<SweepSummary, SweepError> {
    let SweepPlan {
        runs: planned,
        mut stored,
        failed,
    } = plan_sweep(spec, out)?;
    let runs_dir = out.join(RUNS_DIR);
    create_dir(&runs_dir)?;
    // Each run's estimated cost: the shards' partition and the order runs start in.
    let cost = shard::estimates(&planned);
    // The runs this process is responsible for, in grid order.
    let mine: Vec<usize> = match mode {
        Mode::Shard(s) => {
            let shards = shard::assign(&planned, &cost, s.count);
            (0..planned.len())
                .filter(|&i| shards[i] == s.index)
                .collect()
        }
        Mode::All | Mode::Merge => (0..planned.len()).collect(),
    };
    if mode == Mode::Merge {
        stored.extend(failed);
    }
    stored.retain(|i, _| mine.binary_search(i).is_ok());
    let reused = stored.len();
    // The longest runs start first and every run is a task of its own, so the last workers
    // are not left with a queue of long runs (results are placed in grid order regardless).
    let mut pending: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|i| !stored.contains_key(i))
        .collect();
    pending.sort_by(|&a, &b| cost[b].total_cmp(&cost[a]).then(a.cmp(&b)));
    let mut done = stored;

    let shown = Progress::start(progress, planned.len(), reused);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|error| SweepError::Pool { jobs, error })?;
    let finished: Vec<Result<(usize, RunOutcome), ReportError>> = pool.install(|| {
        pending
            .par_iter()
            .with_max_len(1)
            .map(|&i| {
                let (spec, hash) = &planned[i];
                let outcome = run_one(&runs_dir, spec, hash, runner, &shown)?;
                Ok((i, outcome))
            })
            .collect()
    });
    shown.finish();
    for f in finished {
        let (i, outcome) = f?;
        done.insert(i, outcome);
    }
    let outcomes: Vec<RunOutcome> = mine.iter().filter_map(|i| done.remove(i)).collect();
    let files = match mode {
        // A shard writes its runs only: the results are the merge's.
        Mode::Shard(_) => Vec::new(),
        Mode::All | Mode::Merge => results::write_results(out, &spec.name, &outcomes)?,
    };
    let failed = outcomes.iter().filter(|o| o.failed()).count();
    let incompatible = outcomes.iter().filter(|o| o.incompatible).count();
    Ok(SweepSummary {
        ran: outcomes.len() - reused,
        reused,
        failed,
        incompatible,
        outcomes,
        files,
    })
}

/// A sweep's runs before any of them runs: what `lpsim sweep --dry-run` prints.
#[derive(Clone, Debug)]
pub struct SweepPlan {
    /// Every run in grid order, with its hash.
    pub runs: Vec<(RunSpec, String)>,
    /// The runs an earlier sweep into the same directory finished, by their index in `runs`.
    pub stored: HashMap<usize, RunOutcome>,
    /// The runs an earlier sweep recorded as failed (and none has finished since), by index.
    pub failed: HashMap<usize, RunOutcome>,
}

/// Plan the sweep `spec` into `out` without running or writing anything: expand the grid, hash
/// every run, and find the runs already stored in `out/runs/`. Linear in the number of runs:
/// each file is digested once and the stored runs are listed once, so only runs that are
/// stored are read.
pub fn plan_sweep(spec: &SweepSpec, out: &Path) -> Result<SweepPlan, SweepError> {
    let runs = spec.hashed_runs()?;
    let runs_dir = out.join(RUNS_DIR);
    let present: HashSet<std::ffi::OsString> = std::fs::read_dir(&runs_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect()
        })
        .unwrap_or_default();
    let stored: HashMap<usize, RunOutcome> = runs
        .iter()
        .enumerate()
        .filter(|(_, (_, hash))| present.contains(stored_path(Path::new(""), hash).as_os_str()))
        .filter_map(|(i, (spec, hash))| Some((i, load_stored(&runs_dir, spec, hash)?)))
        .collect();
    let failed = runs
        .iter()
        .enumerate()
        .filter(|(i, (_, hash))| {
            !stored.contains_key(i)
                && present.contains(failure_path(Path::new(""), hash).as_os_str())
        })
        .filter_map(|(i, (spec, hash))| Some((i, load_failure(&runs_dir, spec, hash)?)))
        .collect();
    Ok(SweepPlan {
        runs,
        stored,
        failed,
    })
}

/// The recorded failure of `spec` if `runs/<hash>.failed.json` exists, parses and is this run.
fn load_failure(runs_dir: &Path, spec: &RunSpec, hash: &str) -> Option<RunOutcome> {
    let bytes = std::fs::read(failure_path(runs_dir, hash)).ok()?;
    let record: StoredFailure = serde_json::from_slice(&bytes).ok()?;
    let matches = record.hash == hash && record.spec == *spec;
    matches.then_some(RunOutcome {
        spec: record.spec,
        hash: record.hash,
        result: Err(record.error),
        incompatible: false,
        reused: true,
    })
}

fn failure_path(runs_dir: &Path, hash: &str) -> PathBuf {
    runs_dir.join(format!("{hash}.failed.json"))
}

/// The stored outcome of `spec` if `runs/<hash>.json` exists, parses and is this run.
fn load_stored(runs_dir: &Path, spec: &RunSpec, hash: &str) -> Option<RunOutcome> {
    let bytes = std::fs::read(stored_path(runs_dir, hash)).ok()?;
    let stored: StoredRun = serde_json::from_slice(&bytes).ok()?;
    let matches = stored.hash == hash && stored.spec == *spec;
    matches.then_some(RunOutcome {
        spec: stored.spec,
        hash: stored.hash,
        result: Ok(stored.report),
        incompatible: false,
        reused: true,
    })
}

fn stored_path(runs_dir: &Path, hash: &str) -> PathBuf {
    runs_dir.join(format!("{hash}.json"))
}

/// Write `value` as JSON to `path` atomically. `runs/` is lpsim's own directory: a file there
/// that does not parse is a record cut short, replaced without asking.
fn store(path: &Path, value: &impl Serialize) -> Result<(), ReportError> {
    let json = to_json_pretty(path, value)?;
    write_atomically(path, |w| {
        w.write_all(json.as_bytes())
            .map_err(|e| ReportError::io(path, "write", e))
    })
}

/// Run one spec, store it if it finished, and report progress. Only a failure to store is an
/// error of the sweep.
fn run_one<E: RunFailure>(
    runs_dir: &Path,
    spec: &RunSpec,
    hash: &str,
    runner: &(dyn Fn(&RunSpec) -> Result<RunReport, E> + Sync),
    shown: &Progress,
) -> Result<RunOutcome, ReportError> {
    let start = Instant::now();
    let mut incompatible = false;
    let result = match catch_unwind(AssertUnwindSafe(|| runner(spec))) {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => {
            incompatible = e.incompatible();
            Err(e.to_string())
        }
        Err(panic) => Err(format!("panicked: {}", panic_message(&*panic))),
    };
    if let Ok(report) = &result {
        let path = stored_path(runs_dir, hash);
        let stored = StoredRun {
            hash: hash.to_string(),
            spec: spec.clone(),
            report: report.clone(),
        };
        store(&path, &stored)?;
        // An earlier failure of this run is history now.
        let _ = std::fs::remove_file(failure_path(runs_dir, hash));
    } else if let (Err(error), false) = (&result, incompatible) {
        let path = failure_path(runs_dir, hash);
        let record = StoredFailure {
            hash: hash.to_string(),
            spec: spec.clone(),
            error: error.clone(),
        };
        store(&path, &record)?;
    }
    let status = match &result {
        Ok(r) => match r.diverged_at_epoch {
            Some(e) => format!("diverged at epoch {e}"),
            None => "done".to_string(),
        },
        Err(e) if incompatible => format!("{SKIPPED_INCOMPATIBLE}: {e}"),
        Err(e) => format!("failed: {e}"),
    };
    shown.finished(&spec.label(), &status, start.elapsed());
    Ok(RunOutcome {
        spec: spec.clone(),
        hash: hash.to_string(),
        result,
        incompatible,
        reused: false,
    })
}

/// The message of a panic payload (`&str` or `String`), or a placeholder.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}
