//! `results.csv`: one row per run, in grid order. The columns, in this order (documented for
//! users in `workloads/SWEEP.md`):
//!
//! 1. what identifies the run: `workload,algo,arch,seed`, then `set.<key>` per swept key;
//! 2. how it ended: `status` (`ok`, `diverged`, `failed`, `skipped: incompatible`) and
//!    `at_chance` (`true` when a classifier's accuracy is at chance level, see
//!    [`crate::report::at_chance`]; empty when not judged: not a classifier, the number of
//!    classes unknown, or the run diverged or failed);
//! 3. the primary metrics ([`PRIMARY_METRICS`] that any run has: `test_accuracy`,
//!    `optimality_gap`, `var_error`);
//! 4. the cost: [`COST_COLUMNS`];
//! 5. the other final metrics, in name order;
//! 6. details: `energy_pj.<component>` per breakdown entry, the cost per layer and pass
//!    `layer.<layer>.<pass>.<figure>` ([`LAYER_FIGURES`]; layers and passes in the order the
//!    runs report them, first appearance first), `host_elements`, `host_bytes` (the host's
//!    augmentation, when some run did any), `weight_bits`, `diverged_at_epoch`,
//!    per tensor role `sat_<role>`, `ftz_<role>`, `nan_<role>` ([`range_figure`]), `error`,
//!    `hash`, `workload_path`, `arch_path`.

use std::collections::BTreeSet;

use super::RunOutcome;
use crate::cost::Pass;
use crate::report::{LayerCost, RunReport, Verdict, PRIMARY_METRICS};

/// The first columns of `results.csv`; also how lpsim recognizes its own CSV before replacing it.
const CSV_HEAD: [&str; 4] = ["workload", "algo", "arch", "seed"];

/// Cost figures of every run, as CSV columns, in this order.
const COST_COLUMNS: [&str; 5] = ["energy_pj", "cycles", "stall_cycles", "time_s", "area_mm2"];

/// The figures of each layer and pass, as the last part of their CSV columns, in this order.
const LAYER_FIGURES: [&str; 6] = [
    "energy_pj",
    "cycles",
    "macs",
    "read_bits",
    "write_bits",
    "random_bits",
];

/// One of [`LAYER_FIGURES`] of a layer's row.
fn layer_figure(c: &LayerCost, figure: &str) -> f64 {
    match figure {
        "energy_pj" => c.energy_pj,
        "cycles" => c.cycles as f64,
        "macs" => c.macs as f64,
        "read_bits" => c.read_bits as f64,
        "write_bits" => c.write_bits as f64,
        _ => c.random_bits as f64,
    }
}

/// The range-health columns of each role, in this order: the fraction of its values that
/// saturated, flushed to zero, or were NaN.
const RANGE_COLUMNS: [&str; 3] = ["sat", "ftz", "nan"];

/// Whether an existing `results.csv` is one lpsim wrote (it starts with [`CSV_HEAD`]).
pub(super) fn is_ours(old: &[u8]) -> bool {
    old.starts_with(CSV_HEAD.join(",").as_bytes())
}

/// `s` as one CSV field (quoted when it holds a comma, quote or line break).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

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

/// The `at_chance` cell of a run: judged only for a classifier that finished (did not diverge)
/// and whose number of classes is known.
fn at_chance(r: &RunReport) -> String {
    match (
        r.classes,
        r.metrics.contains_key("test_accuracy"),
        r.verdict(),
    ) {
        (_, _, Verdict::Diverged) | (None, _, _) | (_, false, _) => String::new(),
        (_, _, v) => (v == Verdict::AtChance).to_string(),
    }
}

/// The CSV table (see the module docs for the columns); empty cells where a run has no value.
pub(super) fn csv(outcomes: &[RunOutcome]) -> String {
    let set_keys: BTreeSet<&String> = outcomes.iter().flat_map(|o| o.spec.set.keys()).collect();
    let reports = || outcomes.iter().filter_map(|o| o.result.as_ref().ok());
    let metrics: BTreeSet<&String> = reports().flat_map(|r| r.metrics.keys()).collect();
    let primary: Vec<&str> = PRIMARY_METRICS
        .into_iter()
        .filter(|p| metrics.iter().any(|m| m == p))
        .collect();
    let others: Vec<&String> = metrics
        .iter()
        .copied()
        .filter(|m| !primary.contains(&m.as_str()))
        .collect();
    let parts: BTreeSet<&String> = reports().flat_map(|r| r.cost.breakdown.keys()).collect();
    let mut layers: Vec<(&str, Pass)> = Vec::new();
    for c in reports().flat_map(|r| &r.cost.by_layer) {
        if !layers.contains(&(c.layer.as_str(), c.pass)) {
            layers.push((&c.layer, c.pass));
        }
    }
    let roles: BTreeSet<&String> = reports()
        .flat_map(|r| r.range_health.iter().map(|h| &h.role))
        .collect();

    let mut header: Vec<String> = CSV_HEAD.iter().map(|s| s.to_string()).collect();
    header.extend(set_keys.iter().map(|k| format!("set.{k}")));
    header.extend(["status", "at_chance"].map(String::from));
    header.extend(primary.iter().map(|m| m.to_string()));
    header.extend(COST_COLUMNS.map(String::from));
    header.extend(others.iter().map(|m| m.to_string()));
    header.extend(parts.iter().map(|p| format!("energy_pj.{p}")));
    for (layer, pass) in &layers {
        header.extend(LAYER_FIGURES.map(|f| format!("layer.{layer}.{pass}.{f}")));
    }
    // The host's work, when some run did any (augmentation).
    let host = reports().any(|r| r.cost.host.elements > 0);
    if host {
        header.extend(["host_elements", "host_bytes"].map(String::from));
    }
    header.extend(["weight_bits", "diverged_at_epoch"].map(String::from));
    for role in &roles {
        header.extend(RANGE_COLUMNS.map(|c| format!("{c}_{role}")));
    }
    header.extend(["error", "hash", "workload_path", "arch_path"].map(String::from));

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
        let metric = |m: &str| num(report.and_then(|r| r.metrics.get(m).copied()));
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
        row.push(o.status().to_string());
        row.push(report.map_or(String::new(), at_chance));
        row.extend(primary.iter().map(|m| metric(m)));
        row.extend(
            COST_COLUMNS
                .iter()
                .map(|c| num(report.map(|r| cost_figure(r, c)))),
        );
        row.extend(others.iter().map(|m| metric(m)));
        row.extend(
            parts
                .iter()
                .map(|p| num(report.and_then(|r| r.cost.breakdown.get(*p).copied()))),
        );
        for (layer, pass) in &layers {
            let row_of = report.and_then(|r| {
                r.cost
                    .by_layer
                    .iter()
                    .find(|c| c.layer == *layer && c.pass == *pass)
            });
            row.extend(LAYER_FIGURES.map(|f| num(row_of.map(|c| layer_figure(c, f)))));
        }
        if host {
            row.push(num(report.map(|r| r.cost.host.elements as f64)));
            row.push(num(report.map(|r| r.cost.host.bytes as f64)));
        }
        row.push(
            report
                .and_then(|r| r.config.weight_bits())
                .map_or(String::new(), |b| b.to_string()),
        );
        row.push(
            report
                .and_then(|r| r.diverged_at_epoch)
                .map_or(String::new(), |e| e.to_string()),
        );
        for role in &roles {
            row.extend(RANGE_COLUMNS.map(|c| num(report.and_then(|r| range_figure(r, role, c)))));
        }
        row.push(o.result.as_ref().err().cloned().unwrap_or_default());
        row.push(o.hash.clone());
        row.push(s.workload_path.display().to_string());
        row.push(s.arch_path.display().to_string());
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
