//! The plots of one workload of a sweep.
//!
//! - `pareto-<workload>.svg`: the error against training energy, one numbered point per
//!   configuration that learned (mean over seeds; numbers as in the report's table), colored by
//!   algorithm, the Pareto front as a black line; energy on a log axis fitted to the data, the
//!   error on a log axis when it spans a factor of 10 or more. The key beside the plot names every
//!   number and lists apart the configurations that did not learn (not drawn).
//! - `bits-<workload>.svg`: `test_accuracy` (or the error) per architecture, the architectures as
//!   slots along the x axis ordered by the bits of their weight format (`int8 (8)`), one colored
//!   series per algorithm (and `set` values), each series at its own offset within a slot so no two series
//!   share an x position.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{front, Group};
use crate::report::plot::{Chart, Scale, Series, Style};
use crate::report::slug;

/// Half the width of a slot of the bit-width plot that an architecture's points spread over.
const SLOT_SPREAD: f64 = 0.3;

/// The algorithms of `gs`, in order of first appearance.
fn algos<'a>(gs: &[&Group<'a>]) -> Vec<&'a str> {
    let mut a: Vec<&str> = Vec::new();
    for g in gs {
        if !a.contains(&g.algo) {
            a.push(g.algo);
        }
    }
    a
}

/// The key lines of the configurations not drawn, or none: every configuration that did not
/// learn, with why.
fn not_drawn(gs: &[&Group]) -> Vec<String> {
    let lines: Vec<String> = gs
        .iter()
        .filter_map(|g| {
            let v = g.verdict()?;
            (!g.learned()).then(|| format!("{}  {}: {}", g.number, g.label(), v.reason()))
        })
        .collect();
    if lines.is_empty() {
        lines
    } else {
        std::iter::once("Not learning (not drawn):".to_string())
            .chain(lines)
            .collect()
    }
}

/// The plots of one workload, with their file names.
pub(super) fn workload_plots(gs: &[&Group], workload: &str) -> Vec<(String, Chart)> {
    let mut plots = Vec::new();
    let Some(err_name) = gs.iter().find_map(|g| g.error()).map(|e| e.0) else {
        return plots;
    };
    let algos = algos(gs);
    if let Some(chart) = pareto(gs, workload, err_name, &algos) {
        plots.push((format!("pareto-{}.svg", slug(workload)), chart));
    }
    if let Some(chart) = bits(gs, workload, err_name) {
        plots.push((format!("bits-{}.svg", slug(workload)), chart));
    }
    plots
}

/// The error against energy with the Pareto front; `None` when no configuration has a point.
fn pareto(gs: &[&Group], workload: &str, err_name: &str, algos: &[&str]) -> Option<Chart> {
    let front = front(gs);
    let mut series: Vec<Series> = algos
        .iter()
        .map(|&algo| Series {
            label: algo.to_string(),
            points: gs
                .iter()
                .filter(|g| g.algo == algo)
                .filter_map(|g| g.pareto_point())
                .collect(),
            style: Style::Points,
        })
        .collect();
    series.push(Series {
        label: "Pareto front".into(),
        points: front.iter().filter_map(|&i| gs[i].pareto_point()).collect(),
        style: Style::Front,
    });
    let drawn: Vec<(&Group, (f64, f64))> = gs
        .iter()
        .filter_map(|g| Some((*g, g.pareto_point()?)))
        .collect();
    let mut key = vec!["Configurations (mean over seeds):".to_string()];
    key.extend(drawn.iter().map(|(g, _)| {
        let on_front = front.iter().any(|&i| gs[i].number == g.number);
        let mark = if on_front { "  [front]" } else { "" };
        format!("{}  {}{mark}", g.number, g.label())
    }));
    let apart = not_drawn(gs);
    if !apart.is_empty() {
        key.push(String::new());
        key.extend(apart);
    }
    let chart = Chart {
        title: format!("{workload}: {err_name} against training energy"),
        x_label: "training energy (pJ, log scale)".into(),
        y_label: format!("{err_name} (mean over seeds)"),
        x_scale: Scale::Log,
        y_scale: Scale::fit(drawn.iter().map(|d| d.1 .1)),
        series,
        labels: drawn
            .iter()
            .map(|(g, (x, y))| (*x, *y, g.number.to_string()))
            .collect(),
        key,
    };
    chart.has_points().then_some(chart)
}

/// The accuracy (or the error) per architecture slot; `None` when no configuration has a point.
fn bits(gs: &[&Group], workload: &str, err_name: &str) -> Option<Chart> {
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
    let bits_of = |g: &Group| g.good().find_map(|r| r.config.weight_bits());
    // The slots: (bits, architecture), by bits, then in order of appearance.
    let mut slots: Vec<(u32, &str)> = Vec::new();
    for g in gs.iter().filter(|g| g.learned()) {
        if let Some(b) = bits_of(g) {
            if !slots.contains(&(b, g.arch.as_str())) {
                slots.push((b, g.arch.as_str()));
            }
        }
    }
    slots.sort_by_key(|s| s.0);
    // One series per algorithm and `set` values, in order of appearance.
    let mut variants: Vec<(&str, &BTreeMap<String, String>)> = Vec::new();
    for g in gs {
        if !variants.contains(&(g.algo, g.set)) {
            variants.push((g.algo, g.set));
        }
    }
    let n = variants.len() as f64;
    let series: Vec<Series> = variants
        .iter()
        .enumerate()
        .map(|(j, &(algo, set))| {
            // Series j sits at its own offset in every slot, in [-SLOT_SPREAD, SLOT_SPREAD].
            let offset = if n > 1.0 {
                SLOT_SPREAD * (2.0 * j as f64 / (n - 1.0) - 1.0)
            } else {
                0.0
            };
            let points = gs
                .iter()
                .filter(|g| g.algo == algo && g.set == set && g.learned())
                .filter_map(|g| {
                    let b = bits_of(g)?;
                    let slot = slots.iter().position(|s| *s == (b, g.arch.as_str()))?;
                    Some((slot as f64 + offset, y(g)?))
                })
                .collect();
            let mut label = algo.to_string();
            for (k, v) in set {
                let _ = write!(label, " {k}={v}");
            }
            Series {
                label,
                points,
                style: Style::Points,
            }
        })
        .collect();
    let chart = Chart {
        title: format!("{workload}: {y_name} against weight bit width"),
        x_label: "architecture (bits per weight)".into(),
        y_label: format!("{y_name} (mean over seeds)"),
        x_scale: Scale::Categories(slots.iter().map(|(b, a)| format!("{a} ({b})")).collect()),
        y_scale: Scale::Linear,
        series,
        labels: Vec::new(),
        key: not_drawn(gs),
    };
    chart.has_points().then_some(chart)
}
