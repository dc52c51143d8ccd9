//! The files a sweep writes from its outcomes: `results.csv`, `results.json`, `report.md` and
//! the plots. Everything here is a pure function of the outcomes in grid order, so the same
//! sweep writes the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{RunOutcome, RunSpec};
use crate::report::plot::{Chart, Series, Style};
use crate::report::{
    cell, error_metric, has_marker, human, pareto_front, replace_own_file, slug, to_json_pretty,
    write_svg, ReportError, RunReport,
};

/// Name of the CSV table of a sweep (one row per run).
pub const RESULTS_CSV: &str = "results.csv";
/// Name of the JSON results of a sweep.
pub const RESULTS_JSON: &str = "results.json";
/// Name of the Markdown report of a sweep.
pub const SWEEP_MD: &str = "report.md";

/// The first columns of `results.csv`; also how lpsim recognizes its own CSV before replacing it.
const CSV_HEAD: [&str; 4] = ["workload", "algo", "arch", "seed"];

/// Cost figures of every run, as CSV columns, in this order.
const COST_COLUMNS: [&str; 5] = ["energy_pj", "cycles", "stall_cycles", "time_s", "area_mm2"];

/// Write every result file of the sweep into `out`; returns their paths.
pub(crate) fn write_results(
    out: &Path,
    name: &str,
    outcomes: &[RunOutcome],
) -> Result<Vec<PathBuf>, ReportError> {
    let mut files = Vec::new();

    let csv_path = out.join(RESULTS_CSV);
    let head = CSV_HEAD.join(",");
    replace_own_file(&csv_path, csv(outcomes).as_bytes(), |old| {
        old.starts_with(head.as_bytes())
    })?;
    files.push(csv_path);

    let json_path = out.join(RESULTS_JSON);
    let json = to_json_pretty(&json_path, &results_json(name, outcomes))?;
    replace_own_file(&json_path, json.as_bytes(), |old| {
        serde_json::from_slice::<serde_json::Value>(old)
            .is_ok_and(|v| v.get("generator").and_then(|g| g.as_str()) == Some(GENERATOR))
    })?;
    files.push(json_path);

    let groups = groups(outcomes);
    let mut md = markdown_head(name, outcomes);
    for (workload, gs) in by_workload(&groups) {
        let plots = workload_plots(&gs, &workload);
        let mut drawn = Vec::new();
        for (file, chart) in plots {
            let path = out.join(&file);
            write_svg(&path, &chart)?;
            files.push(path);
            drawn.push(file);
        }
        workload_markdown(&mut md, &workload, &gs, &drawn);
    }
    let md_path = out.join(SWEEP_MD);
    replace_own_file(&md_path, md.as_bytes(), has_marker)?;
    files.push(md_path);
    Ok(files)
}

/// `s` as one CSV field (quoted when it holds a comma, quote or line break).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The range-health columns of each role, in this order: the fraction of its values that
/// saturated, flushed to zero, or were NaN.
const RANGE_COLUMNS: [&str; 3] = ["sat", "ftz", "nan"];

/// A range-health figure of `role` in a report (`column` is one of [`RANGE_COLUMNS`]): the
/// largest fraction among the formats the role was stored in (so the column exceeds
/// [`crate::report::SATURATION_WARNING`] exactly when the run warns about the role); `None`
/// when the run has no such role or the figure is not judged (the accumulator's flushes).
fn range_figure(r: &RunReport, role: &str, column: &str) -> Option<f64> {
    r.range_health
        .iter()
        .filter(|h| h.role == role)
        .filter_map(|h| match column {
            "sat" => Some(h.saturated_fraction()),
            "ftz" => h.flushed_fraction(),
            _ => Some(h.nan_fraction()),
        })
        .reduce(f64::max)
}

/// The CSV table: the swept fields, status, every final metric, every cost figure and energy
/// breakdown entry (`energy_pj.<component>`) found in any run, and per tensor role its
/// range-health fractions (`sat_<role>`, `ftz_<role>`, `nan_<role>`, see [`range_figure`]);
/// empty cells where a run has none.
fn csv(outcomes: &[RunOutcome]) -> String {
    let set_keys: BTreeSet<&String> = outcomes.iter().flat_map(|o| o.spec.set.keys()).collect();
    let reports = || outcomes.iter().filter_map(|o| o.result.as_ref().ok());
    let metrics: BTreeSet<&String> = reports().flat_map(|r| r.metrics.keys()).collect();
    let parts: BTreeSet<&String> = reports().flat_map(|r| r.cost.breakdown.keys()).collect();
    let roles: BTreeSet<&String> = reports()
        .flat_map(|r| r.range_health.iter().map(|h| &h.role))
        .collect();

    let mut header: Vec<String> = CSV_HEAD.iter().map(|s| s.to_string()).collect();
    header.extend(set_keys.iter().map(|k| format!("set.{k}")));
    header.extend(
        [
            "workload_path",
            "arch_path",
            "hash",
            "status",
            "diverged_at_epoch",
            "error",
            "weight_bits",
        ]
        .map(String::from),
    );
    header.extend(metrics.iter().map(|m| m.to_string()));
    header.extend(COST_COLUMNS.map(String::from));
    header.extend(parts.iter().map(|p| format!("energy_pj.{p}")));
    for role in &roles {
        header.extend(RANGE_COLUMNS.map(|c| format!("{c}_{role}")));
    }

    let mut out = header
        .iter()
        .map(|h| csv_field(h))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for o in outcomes {
        let s = &o.spec;
        let report = o.result.as_ref().ok();
        let num = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v}"));
        let mut row: Vec<String> = vec![
            s.workload_name(),
            s.algo.clone(),
            s.arch_name(),
            s.seed.to_string(),
        ];
        row.extend(
            set_keys
                .iter()
                .map(|k| s.set.get(*k).cloned().unwrap_or_default()),
        );
        row.push(s.workload_path.display().to_string());
        row.push(s.arch_path.display().to_string());
        row.push(o.hash.clone());
        row.push(o.status().to_string());
        row.push(
            report
                .and_then(|r| r.diverged_at_epoch)
                .map_or(String::new(), |e| e.to_string()),
        );
        row.push(o.result.as_ref().err().cloned().unwrap_or_default());
        row.push(
            report
                .and_then(|r| r.config.weight_bits())
                .map_or(String::new(), |b| b.to_string()),
        );
        row.extend(
            metrics
                .iter()
                .map(|m| num(report.and_then(|r| r.metrics.get(*m).copied()))),
        );
        row.extend(
            COST_COLUMNS
                .iter()
                .map(|c| num(report.map(|r| cost_figure(r, c)))),
        );
        row.extend(
            parts
                .iter()
                .map(|p| num(report.and_then(|r| r.cost.breakdown.get(*p).copied()))),
        );
        for role in &roles {
            row.extend(RANGE_COLUMNS.map(|c| num(report.and_then(|r| range_figure(r, role, c)))));
        }
        out.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

/// One of [`COST_COLUMNS`] of a report.
fn cost_figure(r: &RunReport, column: &str) -> f64 {
    let c = &r.cost;
    match column {
        "energy_pj" => c.energy_pj,
        "cycles" => c.cycles,
        "stall_cycles" => c.stall_cycles,
        "time_s" => c.time_s,
        _ => c.area_mm2,
    }
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

/// The runs of one configuration (workload, algorithm, architecture, `set` values) over seeds.
struct Group<'a> {
    workload: String,
    algo: &'a str,
    arch: String,
    set: &'a BTreeMap<String, String>,
    runs: Vec<&'a RunOutcome>,
}

impl Group<'_> {
    /// `algo/arch` plus the `set` values: the group's name in tables and on plots.
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

    /// The name and mean of the group's error metric (see [`error_metric`]).
    fn error(&self) -> Option<(&'static str, f64)> {
        let name = self.good().find_map(|r| error_metric(&r.metrics))?.0;
        let (mean, _) = self.stats(|r| {
            error_metric(&r.metrics)
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| v)
        })?;
        Some((name, mean))
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

/// The outcomes grouped by configuration, groups in order of first appearance in the grid.
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
            None => groups.push(Group {
                workload: s.workload_name(),
                algo: &s.algo,
                arch: s.arch_name(),
                set: &s.set,
                runs: vec![o],
            }),
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

/// Mean energy of a group's good runs, pJ.
fn energy(g: &Group) -> Option<f64> {
    g.stats(|r| Some(r.cost.energy_pj)).map(|s| s.0)
}

/// Indices (into `gs`) of the groups on the Pareto front of mean energy and mean error.
fn front(gs: &[&Group]) -> Vec<usize> {
    let pts: Vec<(f64, f64)> = gs
        .iter()
        .map(|g| match (energy(g), g.error()) {
            (Some(e), Some((_, err))) => (e, err),
            _ => (f64::NAN, f64::NAN),
        })
        .collect();
    pareto_front(&pts)
}

/// The plots of one workload, with their file names: error against energy with the Pareto front
/// (when the runs have an error metric), and accuracy (or the error metric) against weight bits.
fn workload_plots(gs: &[&Group], workload: &str) -> Vec<(String, Chart)> {
    let mut plots = Vec::new();
    let Some(err_name) = gs.iter().find_map(|g| g.error()).map(|e| e.0) else {
        return plots;
    };
    let algos: Vec<&str> = {
        let mut a: Vec<&str> = Vec::new();
        for g in gs {
            if !a.contains(&g.algo) {
                a.push(g.algo);
            }
        }
        a
    };
    let point = |g: &Group| Some((energy(g)?, g.error()?.1));

    let mut series: Vec<Series> = algos
        .iter()
        .map(|&algo| Series {
            label: algo.to_string(),
            points: gs
                .iter()
                .filter(|g| g.algo == algo)
                .filter_map(|g| point(g))
                .collect(),
            style: Style::Points,
        })
        .collect();
    series.push(Series {
        label: "Pareto front".into(),
        points: front(gs).iter().filter_map(|&i| point(gs[i])).collect(),
        style: Style::Front,
    });
    let pareto = Chart {
        title: format!("{workload}: {err_name} against training energy"),
        x_label: "training energy (pJ, log scale)".into(),
        y_label: format!("{err_name} (mean over seeds)"),
        log_x: true,
        series,
        labels: gs
            .iter()
            .filter_map(|g| point(g).map(|(x, y)| (x, y, g.label())))
            .collect(),
        ..Chart::default()
    };
    if pareto.has_points() {
        plots.push((format!("pareto-{}.svg", slug(workload)), pareto));
    }

    let has_acc = gs
        .iter()
        .any(|g| g.good().any(|r| r.metrics.contains_key("test_accuracy")));
    let y_name = if has_acc { "test_accuracy" } else { err_name };
    let y = |g: &Group| -> Option<f64> {
        if has_acc {
            g.stats(|r| r.metrics.get("test_accuracy").copied())
                .map(|s| s.0)
        } else {
            g.error().map(|e| e.1)
        }
    };
    let bits_series: Vec<Series> = algos
        .iter()
        .map(|&algo| {
            let mut points: Vec<(f64, f64)> = gs
                .iter()
                .filter(|g| g.algo == algo)
                .filter_map(|g| {
                    let bits = g.good().find_map(|r| r.config.weight_bits())?;
                    Some((f64::from(bits), y(g)?))
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            Series {
                label: algo.to_string(),
                points,
                style: Style::LinePoints,
            }
        })
        .collect();
    let bits = Chart {
        title: format!("{workload}: {y_name} against weight bit width"),
        x_label: "bits per weight".into(),
        y_label: format!("{y_name} (mean over seeds)"),
        series: bits_series,
        ..Chart::default()
    };
    if bits.has_points() {
        plots.push((format!("bits-{}.svg", slug(workload)), bits));
    }
    plots
}

/// The head of the sweep's Markdown report: counts, then the diverged and failed runs, then the
/// combinations skipped as incompatible (apart: they are not failures).
fn markdown_head(name: &str, outcomes: &[RunOutcome]) -> String {
    let mut md = String::new();
    let count = |s: &str| outcomes.iter().filter(|o| o.status() == s).count();
    let _ = writeln!(md, "{}\n", crate::report::MARKER_LINE);
    let _ = writeln!(md, "# Sweep {name}\n");
    let _ = writeln!(
        md,
        "{} runs: {} ok, {} diverged, {} failed, {} skipped as incompatible. Every run is a row \
         of `{RESULTS_CSV}`; full reports are in `{RESULTS_JSON}`.\n",
        outcomes.len(),
        count("ok"),
        count("diverged"),
        count("failed"),
        count(super::SKIPPED_INCOMPATIBLE)
    );
    let _ = writeln!(
        md,
        "Baseline rows (`sgd`, `sgld`, `csgld`, `svrg`) are full precision in storage and \
         arithmetic: they run on the architecture's full-precision unit (`full_precision`, an \
         fp32 MAC unless the file says otherwise), so a baseline is the same run on every \
         architecture, priced on that unit. The `lp-` algorithms, `qsgld` and HALP run on the \
         architecture's low-precision MAC; the full gradients of `lp-svrg` and `halp` run on the \
         full-precision unit (energy component `full_precision`).\n"
    );
    let diverged: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            let r = o.result.as_ref().ok()?;
            r.diverged_at_epoch
                .map(|e| format!("- {} — diverged at epoch {e}", o.spec.label()))
        })
        .collect();
    if !diverged.is_empty() {
        let _ = writeln!(md, "## Diverged runs\n\n{}\n", diverged.join("\n"));
    }
    let errors = |incompatible: bool| -> Vec<String> {
        outcomes
            .iter()
            .filter(|o| o.incompatible == incompatible)
            .filter_map(|o| {
                let e = o.result.as_ref().err()?;
                Some(format!("- {} — {}", o.spec.label(), e.replace('\n', " ")))
            })
            .collect()
    };
    let failed = errors(false);
    if !failed.is_empty() {
        let _ = writeln!(md, "## Failed runs\n\n{}\n", failed.join("\n"));
    }
    let skipped = errors(true);
    if !skipped.is_empty() {
        let _ = writeln!(
            md,
            "## Skipped: incompatible combinations\n\nThese algorithms cannot run on this model \
             or architecture; the reason is given for each.\n\n{}\n",
            skipped.join("\n")
        );
    }
    let warnings: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|r| (o, r.range_warnings())))
        .flat_map(|(o, ws)| {
            ws.into_iter()
                .map(move |w| format!("- {} — {w}", o.spec.label()))
        })
        .collect();
    if !warnings.is_empty() {
        let _ = writeln!(
            md,
            "## Range warnings\n\nRuns in which a tensor role saturated more than {}% of its \
             values (each run's `report.md` has its range-health table):\n\n{}\n",
            100.0 * crate::report::SATURATION_WARNING,
            warnings.join("\n")
        );
    }
    md
}

/// `mean ± std` (just the mean for one value), or empty.
fn mean_pm(s: Option<(f64, f64)>, n: usize) -> String {
    match s {
        Some((m, _)) if n <= 1 => human(m),
        Some((m, sd)) => format!("{} ± {}", human(m), human(sd)),
        None => String::new(),
    }
}

/// One workload's section: the table of configurations, the Pareto front, the plots.
fn workload_markdown(md: &mut String, workload: &str, gs: &[&Group], plots: &[String]) {
    let metrics: BTreeSet<&String> = gs
        .iter()
        .flat_map(|g| g.good().flat_map(|r| r.metrics.keys()))
        .collect();
    let _ = writeln!(md, "## {workload}\n");
    let _ = write!(md, "| algorithm | architecture | set | ok runs |");
    for m in &metrics {
        let _ = write!(md, " {} |", cell(m));
    }
    let _ = writeln!(md, " energy (pJ) | cycles | diverged |");
    let _ = writeln!(md, "|{}", "---|".repeat(metrics.len() + 7));
    for g in gs {
        let n = g.good().count();
        let set: Vec<String> = g.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = write!(
            md,
            "| {} | {} | {} | {n}/{} |",
            cell(g.algo),
            cell(&g.arch),
            cell(&set.join(" ")),
            g.runs.len()
        );
        for m in &metrics {
            let _ = write!(
                md,
                " {} |",
                mean_pm(g.stats(|r| r.metrics.get(*m).copied()), n)
            );
        }
        let diverged = g.runs.iter().filter(|o| o.status() == "diverged").count();
        let _ = writeln!(
            md,
            " {} | {} | {diverged} |",
            mean_pm(g.stats(|r| Some(r.cost.energy_pj)), n),
            mean_pm(g.stats(|r| Some(r.cost.cycles)), n)
        );
    }
    let front = front(gs);
    if let (false, Some((err_name, _))) = (front.is_empty(), gs.iter().find_map(|g| g.error())) {
        let _ = writeln!(
            md,
            "\nBest {err_name} for the energy (the Pareto front, cheapest first; means over \
             seeds):\n\n| configuration | {err_name} | energy (pJ) |\n|---|---|---|"
        );
        for &i in &front {
            let g = gs[i];
            if let (Some(e), Some((_, err))) = (energy(g), g.error()) {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    cell(&g.label()),
                    human(err),
                    human(e)
                );
            }
        }
    }
    let _ = writeln!(md);
    for p in plots {
        let _ = writeln!(md, "![{p}]({p})\n");
    }
}
