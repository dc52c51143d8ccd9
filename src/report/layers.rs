//! A run's cost per layer and pass ([`super::LayerCost`], `report.json`'s `cost.by_layer`) on a
//! page: the `report.md` table and `layers.svg`, the energy per layer as bars split by pass.

use std::fmt::Write as _;

use super::plot::Bars;
use super::run::{LayerCost, RunReport};
use super::write::{cell, human};
use crate::cost::Pass;

/// Name of the bar chart of a run's energy per layer.
pub const LAYERS_SVG: &str = "layers.svg";

/// The layers of `rows` in report order (each once).
pub(crate) fn layer_names(rows: &[LayerCost]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.layer.as_str()) {
            names.push(&r.layer);
        }
    }
    names
}

/// The energy per layer, split by pass; `None` for a report without a breakdown.
pub(crate) fn layer_chart(r: &RunReport, what: &str) -> Option<Bars> {
    let rows = &r.cost.by_layer;
    let names = layer_names(rows);
    let energy = |layer: &str, pass: Pass| -> f64 {
        rows.iter()
            .filter(|c| c.layer == layer && c.pass == pass)
            .map(|c| c.energy_pj)
            .fold(0.0, |s, c| s + c)
    };
    let bars = Bars {
        title: format!("Energy per layer: {what}"),
        x_label: "energy (pJ)".into(),
        categories: names.iter().map(|n| n.to_string()).collect(),
        segments: Pass::ALL
            .iter()
            .filter(|&&p| rows.iter().any(|c| c.pass == p))
            .map(|&p| {
                (
                    p.name().to_string(),
                    names.iter().map(|n| energy(n, p)).collect(),
                )
            })
            .collect(),
        value_label: Some(|v| format!("{} pJ", human(v))),
    };
    bars.has_bars().then_some(bars)
}

/// The `report.md` section: one row per layer and pass with its share of the run's energy,
/// then the totals (the parts add up to them: exactly the integer counts, the energy to
/// rounding).
pub(crate) fn layer_markdown(w: &mut String, r: &RunReport) {
    let rows = &r.cost.by_layer;
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "\n## Cost per layer and pass\n\n`data` is the mini-batch moved in, `update` the \
         algorithm's own work outside the layers (weight decay, the step, noise, rounding the \
         new weights, full gradients); cycles include each part's share of the vector unit and \
         of the stalls.\n\n\
         | layer | pass | energy (pJ) | share | cycles | MACs | bits read | bits written | \
         random bits |\n|---|---|---|---|---|---|---|---|---|"
    );
    let total = r.cost.energy_pj;
    let share = |pj: f64| {
        if total > 0.0 {
            format!("{:.1} %", 100.0 * pj / total)
        } else {
            "-".into()
        }
    };
    let mut sum = LayerCost::default();
    for c in rows {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&c.layer),
            c.pass,
            human(c.energy_pj),
            share(c.energy_pj),
            c.cycles,
            c.macs,
            c.read_bits,
            c.write_bits,
            c.random_bits
        );
        sum.energy_pj += c.energy_pj;
        sum.cycles = sum.cycles.saturating_add(c.cycles);
        sum.macs = sum.macs.saturating_add(c.macs);
        sum.read_bits = sum.read_bits.saturating_add(c.read_bits);
        sum.write_bits = sum.write_bits.saturating_add(c.write_bits);
        sum.random_bits = sum.random_bits.saturating_add(c.random_bits);
    }
    let _ = writeln!(
        w,
        "| **total** | | {} | {} | {} | {} | {} | {} | {} |",
        human(sum.energy_pj),
        share(sum.energy_pj),
        sum.cycles,
        sum.macs,
        sum.read_bits,
        sum.write_bits,
        sum.random_bits
    );
}
