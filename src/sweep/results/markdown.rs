//! `report.md` of a sweep: counts and the runs that diverged, failed or were skipped, then per
//! workload a numbered table of configurations (identity, the primary metric, the cost, the other
//! metrics), their energy per layer and per pass, the Pareto front, the configurations that did not learn, and the plots; last, every
//! run's range warnings (a count of them up front).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{front, Group, RunOutcome, RESULTS_CSV, RESULTS_JSON};
use crate::cost::Pass;
use crate::report::{cell, human, LayerCost, RunReport, Verdict, CHANCE_MARGIN};

/// The head of the sweep's Markdown report: counts, then the diverged and failed runs, then the
/// combinations skipped as incompatible (apart: they are not failures).
pub(super) fn head(name: &str, outcomes: &[RunOutcome]) -> String {
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
        count(crate::sweep::SKIPPED_INCOMPATIBLE)
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
    let warned = range_warnings(outcomes).len();
    if warned > 0 {
        let _ = writeln!(
            md,
            "Range warnings (a tensor role saturated more than {}% of its values): {warned}, \
             listed at the end under [Range warnings](#range-warnings).\n",
            100.0 * crate::report::SATURATION_WARNING
        );
    }
    md
}

/// Every run's range warnings, one line each.
fn range_warnings(outcomes: &[RunOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|r| (o, r.range_warnings())))
        .flat_map(|(o, ws)| {
            ws.into_iter()
                .map(move |w| format!("- {} — {w}", o.spec.label()))
        })
        .collect()
}

/// The tail of the sweep's Markdown report: the range warnings of every run, after the results
/// (they can be many, and the tables come first).
pub(super) fn tail(md: &mut String, outcomes: &[RunOutcome]) {
    let warnings = range_warnings(outcomes);
    if !warnings.is_empty() {
        let _ = writeln!(
            md,
            "## Range warnings\n\nRuns in which a tensor role saturated more than {}% of its \
             values (each run's `report.md` has its range-health table):\n\n{}\n",
            100.0 * crate::report::SATURATION_WARNING,
            warnings.join("\n")
        );
    }
}

/// `mean ± std` (just the mean for one value or when all values are equal), or empty.
fn mean_pm(s: Option<(f64, f64)>, n: usize) -> String {
    match s {
        Some((m, sd)) if n <= 1 || sd == 0.0 => human(m),
        Some((m, sd)) => format!("{} ± {}", human(m), human(sd)),
        None => String::new(),
    }
}

/// One workload's section: the numbered table of configurations (the number is the point's on
/// the Pareto plot), the Pareto front, the configurations that did not learn, the plots.
pub(super) fn workload(md: &mut String, workload: &str, gs: &[&Group], plots: &[String]) {
    let primary = gs.iter().find_map(|g| g.primary()).map(|p| p.0);
    let metrics: BTreeSet<&String> = gs
        .iter()
        .flat_map(|g| g.good().flat_map(|r| r.metrics.keys()))
        .filter(|m| Some(m.as_str()) != primary)
        .collect();
    let _ = writeln!(md, "## {workload}\n");
    let _ = write!(md, "| # | algorithm | architecture | set |");
    if let Some(p) = primary {
        let _ = write!(md, " {} |", cell(p));
    }
    let _ = write!(md, " energy (pJ) | cycles | area (mm²) |");
    for m in &metrics {
        let _ = write!(md, " {} |", cell(m));
    }
    let _ = writeln!(md, " ok runs | diverged | not learning |");
    let cols = 4 + usize::from(primary.is_some()) + 3 + metrics.len() + 3;
    let _ = writeln!(md, "|{}", "---|".repeat(cols));
    for g in gs {
        let n = g.good().count();
        let set: Vec<String> = g.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = write!(
            md,
            "| {} | {} | {} | {} |",
            g.number,
            cell(g.algo),
            cell(&g.arch),
            cell(&set.join(" "))
        );
        let metric = |m: &str| mean_pm(g.stats(|r| r.metrics.get(m).copied()), n);
        if let Some(p) = primary {
            let _ = write!(md, " {} |", metric(p));
        }
        let _ = write!(
            md,
            " {} | {} | {} |",
            mean_pm(g.stats(|r| Some(r.cost.energy_pj)), n),
            mean_pm(g.stats(|r| Some(r.cost.cycles)), n),
            mean_pm(g.stats(|r| Some(r.cost.area_mm2)), n)
        );
        for m in &metrics {
            let _ = write!(md, " {} |", metric(m));
        }
        let diverged = g.runs.iter().filter(|o| o.status() == "diverged").count();
        let verdict = g.verdict().map_or("", Verdict::reason);
        let _ = writeln!(md, " {n}/{} | {diverged} | {verdict} |", g.runs.len());
    }
    layer_tables(md, gs);
    let front = front(gs);
    if let (false, Some((err_name, _))) = (front.is_empty(), gs.iter().find_map(|g| g.error())) {
        let _ = writeln!(
            md,
            "\nBest {err_name} for the energy (the Pareto front, cheapest first; means over \
             seeds; only configurations that learned):\n\n\
             | # | configuration | {err_name} | energy (pJ) |\n|---|---|---|---|"
        );
        for &i in &front {
            let g = gs[i];
            if let (Some(e), Some((_, err))) = (g.energy(), g.error()) {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    g.number,
                    cell(&g.label()),
                    human(err),
                    human(e)
                );
            }
        }
    }
    let apart: Vec<String> = gs
        .iter()
        .filter_map(|g| Some((g, g.verdict().filter(|v| *v != Verdict::Learning)?)))
        .map(|(g, v)| format!("- {} {} — {}", g.number, g.label(), why(g, v)))
        .collect();
    if !apart.is_empty() {
        let _ = writeln!(
            md,
            "\nNot learning (left out of the plots and of the Pareto front):\n\n{}",
            apart.join("\n")
        );
    }
    let _ = writeln!(md);
    for p in plots {
        let _ = writeln!(md, "![{p}]({p})\n");
        if p.starts_with("pareto-") {
            let _ = writeln!(
                md,
                "Points are numbered as in the table's `#` column; the key beside the plot \
                 names them.\n"
            );
        }
    }
}

/// The energy of each configuration per layer (its passes summed) and per pass (its layers
/// summed; the passes some run has), means over the seeds that did not diverge; nothing when no run has a breakdown.
fn layer_tables(md: &mut String, gs: &[&Group]) {
    let mut layers: Vec<&str> = Vec::new();
    for c in gs
        .iter()
        .flat_map(|g| g.good())
        .flat_map(|r| &r.cost.by_layer)
    {
        if !layers.contains(&c.layer.as_str()) {
            layers.push(&c.layer);
        }
    }
    if layers.is_empty() {
        return;
    }
    let energy = |r: &RunReport, keep: &dyn Fn(&LayerCost) -> bool| -> f64 {
        r.cost
            .by_layer
            .iter()
            .filter(|c| keep(c))
            .fold(0.0, |sum, c| sum + c.energy_pj)
    };
    let passes: Vec<Pass> = Pass::ALL
        .into_iter()
        .filter(|p| {
            gs.iter()
                .flat_map(|g| g.good())
                .any(|r| r.cost.by_layer.iter().any(|c| c.pass == *p))
        })
        .collect();
    let _ = writeln!(
        md,
        "
Energy per layer and per pass (pJ, means over seeds; each run's `report.md` and          `layers.svg` have its full breakdown, `results.csv` its `layer.*` columns):
"
    );
    let _ = write!(md, "| # |");
    for l in &layers {
        let _ = write!(md, " {} |", cell(l));
    }
    for p in &passes {
        let _ = write!(md, " {p} |");
    }
    let _ = writeln!(md, "\n|{}", "---|".repeat(1 + layers.len() + passes.len()));
    for g in gs {
        let n = g.good().count();
        let _ = write!(md, "| {} |", g.number);
        for l in &layers {
            let s = g.stats(|r| Some(energy(r, &|c| c.layer == *l)));
            let _ = write!(md, " {} |", mean_pm(s, n));
        }
        for &p in &passes {
            let s = g.stats(|r| Some(energy(r, &|c| c.pass == p)));
            let _ = write!(md, " {} |", mean_pm(s, n));
        }
        let _ = writeln!(md);
    }
}

/// Why a configuration is set apart: `diverged`, or its mean accuracy against the chance level.
fn why(g: &Group, v: Verdict) -> String {
    match (v, g.primary(), g.classes()) {
        (Verdict::AtChance, Some((name, value)), Some(c)) => {
            let chance = 1.0 / c as f64;
            format!(
                "at chance: {name} {} with {c} classes (chance {}, learning above {})",
                human(value),
                human(chance),
                human(chance + CHANCE_MARGIN * (1.0 - chance))
            )
        }
        _ => v.reason().to_string(),
    }
}
