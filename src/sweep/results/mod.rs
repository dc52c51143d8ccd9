//! The files a sweep writes from its outcomes: `results.csv` ([`csv`]), `results.json`,
//! `report.md` ([`markdown`]) and the plots ([`plots`]). Everything here is a pure function of
//! the outcomes in grid order, so the same sweep writes the same bytes.
//!
//! Runs are aggregated per configuration ([`Group`]: workload, algorithm, architecture, `set`
//! values) over the seeds; each configuration has a number within its workload, the same in the
//! report's table, on the Pareto plot and in the plot's key. A configuration that did not learn
//! (its runs diverged, or a classifier's mean accuracy is at chance level:
//! [`crate::report::Verdict`]) is listed apart and never drawn or put on a Pareto front.

mod csv;
mod markdown;
mod plots;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{RunOutcome, RunSpec};
use crate::report::{
    error_metric, has_marker, pareto_front, primary_metric, replace_own_file, to_json_pretty,
    write_svg, ReportError, RunReport, Verdict,
};

/// Name of the CSV table of a sweep (one row per run).
pub const RESULTS_CSV: &str = "results.csv";
/// Name of the JSON results of a sweep.
pub const RESULTS_JSON: &str = "results.json";
/// Name of the Markdown report of a sweep.
pub const SWEEP_MD: &str = "report.md";

/// Write every result file of the sweep into `out`; returns their paths.
pub(crate) fn write_results(
    out: &Path,
    name: &str,
    outcomes: &[RunOutcome],
) -> Result<Vec<PathBuf>, ReportError> {
    let mut files = Vec::new();

    let csv_path = out.join(RESULTS_CSV);
    replace_own_file(&csv_path, csv::csv(outcomes).as_bytes(), csv::is_ours)?;
    files.push(csv_path);

    let json_path = out.join(RESULTS_JSON);
    let json = to_json_pretty(&json_path, &results_json(name, outcomes))?;
    replace_own_file(&json_path, json.as_bytes(), |old| {
        serde_json::from_slice::<serde_json::Value>(old)
            .is_ok_and(|v| v.get("generator").and_then(|g| g.as_str()) == Some(GENERATOR))
    })?;
    files.push(json_path);

    let groups = groups(outcomes);
    let mut md = markdown::head(name, outcomes);
    for (workload, gs) in by_workload(&groups) {
        let mut drawn = Vec::new();
        for (file, chart) in plots::workload_plots(&gs, &workload) {
            let path = out.join(&file);
            write_svg(&path, &chart)?;
            files.push(path);
            drawn.push(file);
        }
        markdown::workload(&mut md, &workload, &gs, &drawn);
    }
    markdown::tail(&mut md, outcomes);
    let md_path = out.join(SWEEP_MD);
    replace_own_file(&md_path, md.as_bytes(), has_marker)?;
    files.push(md_path);
    Ok(files)
}

/// `generator` of `results.json`: how lpsim recognizes its own file.
const GENERATOR: &str = "lpsim";

/// `results.json`: the sweep's name and every run with its full report.
#[derive(Serialize)]
struct ResultsJson<'a> {
    generator: &'static str,
    name: &'a str,
    runs: Vec<RunEntry<'a>>,
}

#[derive(Serialize)]
struct RunEntry<'a> {
    hash: &'a str,
    status: &'static str,
    spec: &'a RunSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a RunReport>,
}

fn results_json<'a>(name: &'a str, outcomes: &'a [RunOutcome]) -> ResultsJson<'a> {
    ResultsJson {
        generator: GENERATOR,
        name,
        runs: outcomes
            .iter()
            .map(|o| RunEntry {
                hash: &o.hash,
                status: o.status(),
                spec: &o.spec,
                error: o.result.as_ref().err().map(String::as_str),
                report: o.result.as_ref().ok(),
            })
            .collect(),
    }
}

/// A function that finds a named figure in a run's metrics ([`primary_metric`],
/// [`error_metric`]).
type MetricPicker = fn(&BTreeMap<String, f64>) -> Option<(&'static str, f64)>;

/// The runs of one configuration (workload, algorithm, architecture, `set` values) over seeds.
struct Group<'a> {
    /// 1-based, in grid order within the workload: the configuration's number in the report's
    /// table and on its plots.
    number: usize,
    workload: String,
    algo: &'a str,
    arch: String,
    set: &'a BTreeMap<String, String>,
    runs: Vec<&'a RunOutcome>,
}

impl Group<'_> {
    /// `algo/arch` plus the `set` values: the group's name in tables and keys.
    fn label(&self) -> String {
        let mut s = format!("{}/{}", self.algo, self.arch);
        for (k, v) in self.set {
            let _ = write!(s, " {k}={v}");
        }
        s
    }

    /// Reports of the runs that finished without diverging: the ones aggregated.
    fn good(&self) -> impl Iterator<Item = &RunReport> {
        self.runs
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .filter(|r| r.diverged_at_epoch.is_none())
    }

    /// Mean and sample standard deviation of `f` over the good runs that have it.
    fn stats(&self, f: impl Fn(&RunReport) -> Option<f64>) -> Option<(f64, f64)> {
        let xs: Vec<f64> = self.good().filter_map(f).collect();
        mean_std(&xs)
    }

    /// The name and mean of the group's primary metric (see [`primary_metric`]).
    fn primary(&self) -> Option<(&'static str, f64)> {
        self.mean_of(primary_metric)
    }

    /// The name and mean of the group's error metric (see [`error_metric`]).
    fn error(&self) -> Option<(&'static str, f64)> {
        self.mean_of(error_metric)
    }

    /// The name a picker finds in the good runs, and its mean over the runs that have it.
    fn mean_of(&self, pick: MetricPicker) -> Option<(&'static str, f64)> {
        let name = self.good().find_map(|r| pick(&r.metrics))?.0;
        let (mean, _) =
            self.stats(|r| pick(&r.metrics).filter(|(n, _)| *n == name).map(|(_, v)| v))?;
        Some((name, mean))
    }

    /// Whether the configuration learned, judged on the mean of its primary metric over the
    /// seeds that did not diverge ([`Verdict::judge`]); diverged when every run that finished
    /// diverged. `None` when no run finished (failed or skipped runs are reported apart).
    fn verdict(&self) -> Option<Verdict> {
        let reports: Vec<&RunReport> = self
            .runs
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .collect();
        let classes = reports.iter().find_map(|r| r.classes);
        (!reports.is_empty())
            .then(|| Verdict::judge(self.primary(), classes, self.good().next().is_none()))
    }

    /// Whether the configuration learned (see [`Group::verdict`]): only these are drawn.
    fn learned(&self) -> bool {
        self.verdict() == Some(Verdict::Learning)
    }

    /// The number of classes its classifier runs report.
    fn classes(&self) -> Option<usize> {
        self.runs
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .find_map(|r| r.classes)
    }

    /// Mean energy of the good runs, pJ.
    fn energy(&self) -> Option<f64> {
        self.stats(|r| Some(r.cost.energy_pj)).map(|s| s.0)
    }

    /// The point on the Pareto plot: (mean energy, mean error), for a configuration that learned.
    fn pareto_point(&self) -> Option<(f64, f64)> {
        if !self.learned() {
            return None;
        }
        Some((self.energy()?, self.error()?.1))
    }
}

/// Mean and sample standard deviation (0 for one value); `None` for no values.
fn mean_std(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((mean, var.sqrt()))
}

/// The outcomes grouped by configuration, groups in order of first appearance in the grid,
/// numbered from 1 within each workload.
fn groups(outcomes: &[RunOutcome]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group> = Vec::new();
    for o in outcomes {
        let s = &o.spec;
        let same = |g: &Group| {
            g.runs[0].spec.workload_path == s.workload_path
                && g.algo == s.algo
                && g.runs[0].spec.arch_path == s.arch_path
                && *g.set == s.set
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => g.runs.push(o),
            None => {
                let workload = s.workload_name();
                let number = 1 + groups.iter().filter(|g| g.workload == workload).count();
                groups.push(Group {
                    number,
                    workload,
                    algo: &s.algo,
                    arch: s.arch_name(),
                    set: &s.set,
                    runs: vec![o],
                })
            }
        }
    }
    groups
}

/// The groups of each workload, workloads in grid order.
fn by_workload<'g, 'a>(groups: &'g [Group<'a>]) -> Vec<(String, Vec<&'g Group<'a>>)> {
    let mut out: Vec<(String, Vec<&Group>)> = Vec::new();
    for g in groups {
        match out.iter_mut().find(|(w, _)| *w == g.workload) {
            Some((_, gs)) => gs.push(g),
            None => out.push((g.workload.clone(), vec![g])),
        }
    }
    out
}

/// Indices (into `gs`) of the groups on the Pareto front of mean energy and mean error: only
/// configurations that learned take part ([`Group::pareto_point`]).
fn front(gs: &[&Group]) -> Vec<usize> {
    let pts: Vec<(f64, f64)> = gs
        .iter()
        .map(|g| g.pareto_point().unwrap_or((f64::NAN, f64::NAN)))
        .collect();
    pareto_front(&pts)
}
