//! `RunReport`: everything one run (workload x algorithm x architecture x seed) produced, in the
//! shape `report.json` stores it. The algorithm drivers fill it; the writers and the sweep read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What was run: enough to run it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Workload name (from its JSON).
    pub workload: String,
    /// Algorithm name (`sgd`, `lp-sgld-vc`, `halp`, ...).
    pub algo: String,
    /// Architecture name (from its JSON).
    pub arch: String,
    /// Seed of every random draw of the run.
    pub seed: u64,
    /// The `--set key=value` overrides as given.
    pub set: BTreeMap<String, String>,
    /// Every hyperparameter as finally used (defaults, workload, then `--set`).
    pub hyper: BTreeMap<String, f64>,
    /// The number formats and rounding units the run used, by role (`weights`, `mac.accumulator`, ...).
    pub formats: BTreeMap<String, String>,
}

/// Metrics and cost after one epoch (or one reporting interval of a sampler).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Metric name -> value (`train_loss`, `test_accuracy`, `optimality_gap`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Energy spent in this epoch, pJ.
    pub energy_pj: f64,
    /// Cycles spent in this epoch.
    pub cycles: f64,
}

/// The priced cost of a whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostSummary {
    /// Total energy, pJ.
    pub energy_pj: f64,
    /// Total cycles (compute + stall).
    pub cycles: f64,
    /// Stall cycles (memory levels that could not keep up).
    pub stall_cycles: f64,
    /// Time at the architecture's clock, seconds.
    pub time_s: f64,
    /// Area of the accelerator, mm^2.
    pub area_mm2: f64,
    /// Energy by component or action kind, pJ.
    pub breakdown: BTreeMap<String, f64>,
}

/// Everything one run produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// What was run.
    pub config: RunConfig,
    /// Per-epoch curves.
    pub epochs: Vec<EpochRecord>,
    /// Final metrics: at least `test_accuracy`, `test_nll`, `ece`, `train_loss` where they apply;
    /// `sample_mean`, `sample_var` (and `target_mean`, `target_var`) for the Gaussian toy;
    /// `optimality_gap` for regression.
    pub metrics: BTreeMap<String, f64>,
    /// Cost of the whole run.
    pub cost: CostSummary,
    /// The epoch at which the loss became NaN or infinite, if it did (the run stops there).
    pub diverged_at_epoch: Option<usize>,
}
