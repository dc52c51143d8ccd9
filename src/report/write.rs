//! The files of one run: `report.json` (everything, pretty, keys in a stable order),
//! `report.md` (for people: warnings first, then the primary metric and the cost at a glance,
//! configuration, metrics, range health, cost and curves) and SVG plots of the per-epoch curves. `lpsim run` writes them into
//! [`run_dir`]; only these files are replaced, anything else in the directory is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::io::{create_dir, has_marker, remove_own_file, replace_own_file, ReportError, MARKER};
use super::layers::{layer_chart, layer_markdown, LAYERS_SVG};
use super::plot::{Chart, Scale, Series, Style};
use super::run::{EpochRecord, RunReport};
use super::verdict::{error_metric, primary_metric, Verdict, CHANCE_MARGIN};
use crate::cost::HostWork;

/// Name of the JSON report of a run.
pub const RUN_JSON: &str = "report.json";
/// Name of the Markdown report of a run.
pub const RUN_MD: &str = "report.md";
/// Names of the plots a run may have (each drawn only when the run has its data; `layers.svg`
/// is the energy per layer and pass, `report::layers`).
pub const RUN_PLOTS: [&str; 5] = [
    "loss.svg",
    "accuracy.svg",
    "gap.svg",
    "energy.svg",
    LAYERS_SVG,
];

/// The directory under which `lpsim run` and `lpsim sweep` put their reports by default.
pub const REPORTS_ROOT: &str = "reports";

/// Where `lpsim run` writes a run by default: `<root>/<workload>-<algo>-<arch>` (`root` is
/// [`REPORTS_ROOT`] for the command), each name reduced to letters, digits, `.`, `_` and `-` so that
/// it is one safe path component.
pub fn run_dir(root: &Path, workload: &str, algo: &str, arch: &str) -> PathBuf {
    root.join(format!("{}-{}-{}", slug(workload), slug(algo), slug(arch)))
}

/// `s` with every character outside `[A-Za-z0-9._-]` replaced by `_` (never empty, never `..`).
pub fn slug(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() || t.chars().all(|c| c == '.') {
        "_".repeat(t.len().max(1))
    } else {
        t
    }
}

/// Write the report of one run into `dir` (created if needed): `report.json`, `report.md` and
/// the plots that apply ([`RUN_PLOTS`]). Every file is written atomically; an existing file of
/// one of these names that lpsim did not write is an error ([`ReportError::NotOurs`]), and a
/// plot a previous run left that this run has no data for is removed. Returns the paths written.
pub fn write_run(dir: &Path, report: &RunReport) -> Result<Vec<PathBuf>, ReportError> {
    create_dir(dir)?;
    let mut written = Vec::new();

    let json_path = dir.join(RUN_JSON);
    let json = to_json_pretty(&json_path, report)?;
    replace_own_file(&json_path, json.as_bytes(), |old| {
        serde_json::from_slice::<RunReport>(old).is_ok()
    })?;
    written.push(json_path);

    let charts = run_charts(report);
    let layers = layer_chart(report, &run_title(report));
    let mut plots: Vec<&str> = Vec::new();
    for name in RUN_PLOTS {
        let path = dir.join(name);
        let svg = match (name, &layers) {
            (LAYERS_SVG, Some(bars)) => Some(bars.to_svg()),
            _ => charts
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, chart)| chart.to_svg()),
        };
        match svg {
            Some(svg) => {
                write_svg_text(&path, svg)?;
                written.push(path);
                plots.push(name);
            }
            None => remove_own_file(&path, has_marker)?,
        }
    }

    let md_path = dir.join(RUN_MD);
    replace_own_file(
        &md_path,
        run_markdown(report, &plots).as_bytes(),
        has_marker,
    )?;
    written.push(md_path);
    Ok(written)
}

/// `value` as pretty JSON with a final newline (struct fields in declaration order, maps sorted).
pub(crate) fn to_json_pretty<T: serde::Serialize>(
    path: &Path,
    value: &T,
) -> Result<String, ReportError> {
    let mut s = serde_json::to_string_pretty(value).map_err(|error| ReportError::Json {
        path: path.to_path_buf(),
        error,
    })?;
    s.push('\n');
    Ok(s)
}

/// Draw `chart` into `path` (atomically, replacing only an lpsim plot).
pub(crate) fn write_svg(path: &Path, chart: &Chart) -> Result<(), ReportError> {
    write_svg_text(path, chart.to_svg())
}

/// Write a drawn plot (or the reason it could not be drawn) into `path`, as [`write_svg`].
fn write_svg_text(path: &Path, svg: Result<String, String>) -> Result<(), ReportError> {
    let svg = svg.map_err(|detail| ReportError::Plot {
        path: path.to_path_buf(),
        detail,
    })?;
    replace_own_file(path, svg.as_bytes(), has_marker)
}

/// What a run's plots say it is: `workload / algo / arch / seed N`.
fn run_title(report: &RunReport) -> String {
    let c = &report.config;
    format!("{} / {} / {} / seed {}", c.workload, c.algo, c.arch, c.seed)
}

/// The per-epoch curve of metric `name`, if any epoch has it.
fn curve(report: &RunReport, name: &str) -> Option<Vec<(f64, f64)>> {
    let pts: Vec<(f64, f64)> = report
        .epochs
        .iter()
        .filter_map(|e| e.metrics.get(name).map(|&v| (e.epoch as f64, v)))
        .collect();
    (!pts.is_empty()).then_some(pts)
}

/// The plots of a run that has data for them, with their file names.
fn run_charts(report: &RunReport) -> Vec<(&'static str, Chart)> {
    let what = run_title(report);
    let per_epoch = |title: &str, metric: &str, log_y: bool| {
        curve(report, metric).map(|points| Chart {
            title: format!("{title}: {what}"),
            x_label: "epoch".into(),
            y_label: metric.into(),
            y_scale: if log_y { Scale::Log } else { Scale::Linear },
            series: vec![Series {
                label: metric.into(),
                points,
                style: Style::LinePoints,
            }],
            ..Chart::default()
        })
    };
    let mut charts = Vec::new();
    let candidates = [
        ("loss.svg", per_epoch("Training loss", "train_loss", false)),
        (
            "accuracy.svg",
            per_epoch("Test accuracy", "test_accuracy", false),
        ),
        (
            "gap.svg",
            per_epoch("Optimality gap", "optimality_gap", true),
        ),
        ("energy.svg", energy_chart(report, &what)),
    ];
    for (name, chart) in candidates {
        if let Some(chart) = chart.filter(Chart::has_points) {
            charts.push((name, chart));
        }
    }
    charts
}

/// The run's error metric (see [`error_metric`]) against the energy spent so far, per epoch.
fn energy_chart(report: &RunReport, what: &str) -> Option<Chart> {
    let mut spent = 0.0;
    let mut name = None;
    let mut points = Vec::new();
    for e in &report.epochs {
        spent += e.energy_pj;
        if let Some((n, v)) = error_metric(&e.metrics) {
            name = Some(n);
            points.push((spent, v));
        }
    }
    let name = name?;
    Some(Chart {
        title: format!("{name} against energy: {what}"),
        x_label: "cumulative energy (pJ)".into(),
        y_label: name.into(),
        series: vec![Series {
            label: name.into(),
            points,
            style: Style::LinePoints,
        }],
        ..Chart::default()
    })
}

/// A number for people: 4 significant digits, scientific notation when very large or small.
pub(crate) fn human(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || !x.is_finite() {
        format!("{x}")
    } else if (1e-3..1e6).contains(&a) {
        let digits = (3 - a.log10().floor() as i32).max(0) as usize;
        format!("{x:.digits$}")
    } else {
        format!("{x:.3e}")
    }
}

/// A fraction as a percentage for people (`0 %` only when exactly zero).
pub(crate) fn percent(f: f64) -> String {
    format!("{} %", human(100.0 * f))
}

/// `s` safe inside a Markdown table cell.
pub(crate) fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `metrics` with `primary` (when given) first, then the others in name order.
fn primary_first<'m>(
    metrics: &'m BTreeMap<String, f64>,
    primary: Option<&'m str>,
) -> impl Iterator<Item = (&'m str, f64)> {
    let first = primary.and_then(|p| metrics.get_key_value(p));
    first
        .into_iter()
        .chain(
            metrics
                .iter()
                .filter(move |(k, _)| Some(k.as_str()) != primary),
        )
        .map(|(k, v)| (k.as_str(), *v))
}

/// The Markdown report of one run; `plots` are the plot files written beside it: the title,
/// divergence, chance-level and range warnings, then a one-line result (the primary metric, then
/// energy, cycles, time and area), the configuration, the final metrics (primary first), range
/// health, the chain, the full cost, the cost per layer and pass and the per-epoch table (primary metric, cost, the rest).
fn run_markdown(r: &RunReport, plots: &[&str]) -> String {
    let c = &r.config;
    let mut md = String::new();
    let w = &mut md;
    // Writing to a String cannot fail.
    let _ = writeln!(w, "{MARKER}\n");
    let _ = writeln!(
        w,
        "# {} · {} · {} · seed {}\n",
        c.workload, c.algo, c.arch, c.seed
    );
    if let Some(e) = r.diverged_at_epoch {
        let _ = writeln!(
            w,
            "**Diverged at epoch {e}**: the loss became NaN or infinite and the run stopped there.\n"
        );
    }
    if r.verdict() == Verdict::AtChance {
        if let (Some((name, v)), Some(c)) = (primary_metric(&r.metrics), r.classes) {
            let _ = writeln!(
                w,
                "**At chance level**: {name} {} with {c} classes (chance {}; a run counts as \
                 learning above {}, a tenth of the way from chance to 1).\n",
                human(v),
                human(1.0 / c as f64),
                human(1.0 / c as f64 + CHANCE_MARGIN * (1.0 - 1.0 / c as f64))
            );
        }
    }
    for line in r.range_warnings() {
        let _ = writeln!(w, "**{line}**\n");
    }
    // At a glance: the primary metric, then the cost.
    let primary = primary_metric(&r.metrics);
    let k = &r.cost;
    let _ = write!(w, "## Result\n\n|");
    if let Some((name, _)) = primary {
        let _ = write!(w, " {name} |");
    }
    let _ = writeln!(
        w,
        " energy (pJ) | cycles | time (s) | area (mm²) |\n|{}",
        "---|".repeat(4 + usize::from(primary.is_some()))
    );
    let _ = write!(w, "|");
    if let Some((_, v)) = primary {
        let _ = write!(w, " {} |", human(v));
    }
    let _ = writeln!(
        w,
        " {} | {} | {} | {} |\n",
        human(k.energy_pj),
        human(k.cycles),
        human(k.time_s),
        human(k.area_mm2)
    );
    let _ = writeln!(w, "## Configuration\n\n| field | value |\n|---|---|");
    let set: Vec<String> = c.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for (k, v) in [
        ("workload", c.workload.clone()),
        ("algorithm", c.algo.clone()),
        ("architecture", c.arch.clone()),
        ("seed", c.seed.to_string()),
        ("--set", set.join(", ")),
    ] {
        let _ = writeln!(w, "| {k} | {} |", cell(&v));
    }
    if !c.hyper.is_empty() {
        let _ = writeln!(w, "\n| hyperparameter | value |\n|---|---|");
        for (k, v) in &c.hyper {
            let _ = writeln!(w, "| {} | {v} |", cell(k));
        }
    }
    if !c.formats.is_empty() {
        let _ = writeln!(w, "\n| role | format |\n|---|---|");
        for (k, v) in &c.formats {
            let _ = writeln!(w, "| {} | `{}` |", cell(k), cell(v));
        }
    }
    let _ = writeln!(w, "\n## Final metrics\n\n| metric | value |\n|---|---|");
    for (k, v) in primary_first(&r.metrics, primary.map(|p| p.0)) {
        let _ = writeln!(w, "| {} | {} |", cell(k), human(v));
    }
    if !r.range_health.is_empty() {
        let _ = writeln!(
            w,
            "\n## Range health\n\nEvery rounding of the run, by tensor role and the format it was \
             stored in: values outside the format's range (saturated), non-zero values stored as \
             zero (flushed; not judged for the accumulator) and NaN.\n\n\
             | role | format | values | saturated | flushed | NaN |\n|---|---|---|---|---|---|"
        );
        for h in &r.range_health {
            let flushed = h.flushed_fraction().map_or("-".to_string(), percent);
            let _ = writeln!(
                w,
                "| {} | `{}` | {} | {} | {flushed} | {} |",
                cell(&h.role),
                cell(&h.format),
                h.values,
                percent(h.saturated_fraction()),
                percent(h.nan_fraction())
            );
        }
    }
    if let Some(ch) = &r.chain {
        let _ = writeln!(
            w,
            "\n## Chain per coordinate\n\n{} samples kept.\n\n\
             | coordinate | sample mean | target mean | sample variance | target variance |\n\
             |---|---|---|---|---|",
            ch.samples
        );
        for i in 0..ch.sample_mean.len() {
            let at = |v: &[f64]| v.get(i).map_or(String::new(), |x| human(*x));
            let _ = writeln!(
                w,
                "| {i} | {} | {} | {} | {} |",
                at(&ch.sample_mean),
                at(&ch.target_mean),
                at(&ch.sample_var),
                at(&ch.target_var)
            );
        }
    }
    let _ = writeln!(
        w,
        "\n## Cost of the whole run\n\n| figure | value |\n|---|---|"
    );
    let _ = writeln!(w, "| energy | {} pJ |", human(k.energy_pj));
    let _ = writeln!(w, "| cycles | {} |", human(k.cycles));
    let _ = writeln!(w, "| of which stall cycles | {} |", human(k.stall_cycles));
    let _ = writeln!(w, "| time | {} s |", human(k.time_s));
    let _ = writeln!(w, "| area | {} mm² |", human(k.area_mm2));
    if k.host != HostWork::default() {
        // The host's work is counted, not priced: the architecture is the accelerator's.
        let _ = writeln!(
            w,
            "| host: values augmented (not priced) | {} |\n| host: bytes moved (not priced) | {} |",
            k.host.elements, k.host.bytes
        );
    }
    if !k.breakdown.is_empty() {
        let _ = writeln!(w, "\n| energy by component | pJ | share |\n|---|---|---|");
        for (name, pj) in &k.breakdown {
            let share = if k.energy_pj > 0.0 {
                format!("{:.1} %", pj / k.energy_pj * 100.0)
            } else {
                "-".into()
            };
            let _ = writeln!(w, "| {} | {} | {share} |", cell(name), human(*pj));
        }
    }
    layer_markdown(w, r);
    if !r.epochs.is_empty() {
        // The primary metric, the cost, then the other metrics in name order.
        let lead = primary
            .map(|p| p.0)
            .filter(|p| r.epochs.iter().any(|e| e.metrics.contains_key(*p)));
        let names: BTreeSet<&str> = r
            .epochs
            .iter()
            .flat_map(|e| e.metrics.keys())
            .map(String::as_str)
            .filter(|n| Some(*n) != lead)
            .collect();
        let _ = write!(w, "\n## Per epoch\n\n| epoch |");
        if let Some(p) = lead {
            let _ = write!(w, " {p} |");
        }
        let _ = write!(w, " energy (pJ) | cycles |");
        for n in &names {
            let _ = write!(w, " {} |", cell(n));
        }
        let cols = names.len() + 3 + usize::from(lead.is_some());
        let _ = writeln!(w, "\n|{}", "---|".repeat(cols));
        let value =
            |e: &EpochRecord, n: &str| e.metrics.get(n).map_or(String::new(), |v| human(*v));
        for e in &r.epochs {
            let _ = write!(w, "| {} |", e.epoch);
            if let Some(p) = lead {
                let _ = write!(w, " {} |", value(e, p));
            }
            let _ = write!(w, " {} | {} |", human(e.energy_pj), human(e.cycles));
            for n in &names {
                let _ = write!(w, " {} |", value(e, n));
            }
            let _ = writeln!(w);
        }
    }
    if !plots.is_empty() {
        let _ = writeln!(w, "\n## Plots\n");
        for p in plots {
            let _ = writeln!(w, "![{p}]({p})\n");
        }
    }
    md
}
