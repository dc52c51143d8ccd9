//! `RunReport`: everything one run (workload x algorithm x architecture x seed) produced, in the
//! shape `report.json` stores it. The algorithm drivers fill it; the writers and the sweep read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::nonfinite;
use super::verdict::{primary_metric, Verdict};
use crate::cost::{HostWork, Pass, ScopeCost};

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
    #[serde(with = "nonfinite::map")]
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
    #[serde(with = "nonfinite::map")]
    pub metrics: BTreeMap<String, f64>,
    /// Energy spent in this epoch, pJ.
    #[serde(with = "nonfinite")]
    pub energy_pj: f64,
    /// Cycles spent in this epoch.
    #[serde(with = "nonfinite")]
    pub cycles: f64,
}

/// The priced cost of a whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostSummary {
    /// Total energy, pJ.
    #[serde(with = "nonfinite")]
    pub energy_pj: f64,
    /// Total cycles (compute + stall).
    #[serde(with = "nonfinite")]
    pub cycles: f64,
    /// Stall cycles (memory levels that could not keep up).
    #[serde(with = "nonfinite")]
    pub stall_cycles: f64,
    /// Time at the architecture's clock, seconds.
    #[serde(with = "nonfinite")]
    pub time_s: f64,
    /// Area of the accelerator, mm^2.
    #[serde(with = "nonfinite")]
    pub area_mm2: f64,
    /// Energy by component or action kind, pJ.
    #[serde(with = "nonfinite::map")]
    pub breakdown: BTreeMap<String, f64>,
    /// The same cost per layer and pass (the data movement, the model's layers in order, the
    /// loss, the algorithm's update; forward, backward, update), adding up to the totals:
    /// exactly for the integer counts, to rounding for energy (`lpsim::cost::price_scopes`).
    /// Empty in reports written before lpsim recorded it.
    #[serde(default)]
    pub by_layer: Vec<LayerCost>,
    /// Work done on the host, beside the accelerator and not priced: the training batches'
    /// augmentation (zero without one, and in reports written before lpsim counted it).
    #[serde(default)]
    pub host: HostWork,
}

/// The cost of one layer (or the data movement, the loss, the update) in one pass over a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerCost {
    /// The layer's name (`dense0`, `relu0`, ...; `data`, the loss's kind, `update`).
    pub layer: String,
    /// The pass.
    pub pass: Pass,
    /// Energy, pJ.
    #[serde(with = "nonfinite")]
    pub energy_pj: f64,
    /// Its share of the run's cycles (compute and stalls).
    pub cycles: u64,
    /// Multiply-accumulates on the arrays.
    pub macs: u64,
    /// Bits read, summed over memory levels.
    pub read_bits: u64,
    /// Bits written, summed over memory levels.
    pub write_bits: u64,
    /// Random bits drawn.
    pub random_bits: u64,
}

impl LayerCost {
    /// A layer's cost as reports write it.
    pub fn of(c: &ScopeCost) -> Self {
        LayerCost {
            layer: c.scope.part.to_string(),
            pass: c.scope.pass,
            energy_pj: c.energy_pj,
            cycles: c.cycles,
            macs: c.macs,
            read_bits: c.read_bits,
            write_bits: c.write_bits,
            random_bits: c.random_bits,
        }
    }
}

/// The range health of one tensor role stored in one format over a whole run: how many of its
/// values saturated (left the format's finite range: stored at `±max`, as an infinity, or
/// wrapped), flushed to zero (non-zero, stored as zero) or were NaN, as exact counts. Every
/// rounding of the run is judged (`lpsim::format::range_events`); the training data once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRecord {
    /// The tensor role: `data`, `weights`, `activations`, `gradients`, `updates`, or
    /// `accumulator` (every matmul's accumulator values, judged against the accumulator format).
    pub role: String,
    /// The format the values were stored in (a role stored in several formats has a record per
    /// format, e.g. an `fp32` master copy beside low-precision weights).
    pub format: String,
    /// Values judged (every element of every rounding, summed over the run's steps).
    pub values: u64,
    /// Values outside the format's finite range.
    pub saturated: u64,
    /// Non-zero values stored as zero; absent for the accumulator, whose exact sums are not
    /// computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flushed: Option<u64>,
    /// NaN values.
    pub nan: u64,
}

/// A role saturating more than this fraction of its values gets a warning line
/// ([`RunReport::range_warnings`]).
pub const SATURATION_WARNING: f64 = 0.01;

impl RangeRecord {
    /// `count / values` (0 for no values).
    fn fraction(&self, count: u64) -> f64 {
        if self.values == 0 {
            0.0
        } else {
            count as f64 / self.values as f64
        }
    }

    /// The fraction of values that saturated.
    pub fn saturated_fraction(&self) -> f64 {
        self.fraction(self.saturated)
    }

    /// The fraction of values flushed to zero (`None` where not judged).
    pub fn flushed_fraction(&self) -> Option<f64> {
        self.flushed.map(|f| self.fraction(f))
    }

    /// The fraction of values that were NaN.
    pub fn nan_fraction(&self) -> f64 {
        self.fraction(self.nan)
    }
}

/// Everything one run produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// What was run.
    pub config: RunConfig,
    /// Per-epoch curves.
    pub epochs: Vec<EpochRecord>,
    /// Final metrics: at least `test_accuracy`, `test_nll`, `ece`, `train_loss` where they apply;
    /// for a Gaussian target the means over coordinates `sample_mean`, `sample_var`,
    /// `target_mean`, `target_var` and the mean absolute errors per coordinate `mean_error`,
    /// `var_error` (see [`ChainMoments`]); `optimality_gap` for regression.
    #[serde(with = "nonfinite::map")]
    pub metrics: BTreeMap<String, f64>,
    /// Cost of the whole run.
    pub cost: CostSummary,
    /// The epoch at which the loss became NaN or infinite, if it did (the run stops there).
    pub diverged_at_epoch: Option<usize>,
    /// Range health per tensor role and format, over the whole run (ordered by role, then
    /// format).
    pub range_health: Vec<RangeRecord>,
    /// A Gaussian target's chain, coordinate by coordinate, beside the target (`None` for other
    /// workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainMoments>,
    /// The number of classes of a classification workload (`None` for regression and sampling,
    /// and in reports written before lpsim recorded it): sets the chance level of
    /// [`RunReport::verdict`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
}

impl RunReport {
    /// Whether the run learned: diverged (its own flag, or a non-finite primary metric), at
    /// chance (a classifier within [`super::CHANCE_MARGIN`] of guessing) or learning.
    pub fn verdict(&self) -> Verdict {
        Verdict::judge(
            primary_metric(&self.metrics),
            self.classes,
            self.diverged_at_epoch.is_some(),
        )
    }

    /// One line per role and format that saturated more than [`SATURATION_WARNING`] of its
    /// values, e.g. `WARNING: activations saturated 12.3% of values (format fixed:wl=8,fl=6)`.
    pub fn range_warnings(&self) -> Vec<String> {
        self.range_health
            .iter()
            .filter(|r| r.saturated_fraction() > SATURATION_WARNING)
            .map(|r| {
                format!(
                    "WARNING: {} saturated {:.1}% of values (format {})",
                    r.role,
                    100.0 * r.saturated_fraction(),
                    r.format
                )
            })
            .collect()
    }
}

/// The moments of a sampler's chain per coordinate and those of its target `N(m, T Sigma)` at
/// the run's temperature `T` (1 for QSGLD, which has none).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainMoments {
    /// Rows of the chain kept (after burn-in and thinning).
    pub samples: usize,
    /// Sample mean per coordinate.
    #[serde(with = "nonfinite::vec")]
    pub sample_mean: Vec<f64>,
    /// The target's mean `m`.
    #[serde(with = "nonfinite::vec")]
    pub target_mean: Vec<f64>,
    /// Sample (population) variance per coordinate.
    #[serde(with = "nonfinite::vec")]
    pub sample_var: Vec<f64>,
    /// The target's variances `T diag(Sigma)`.
    #[serde(with = "nonfinite::vec")]
    pub target_var: Vec<f64>,
}

impl RunConfig {
    /// Bits per element of the weight format (`formats["weights"]`), the x axis of the
    /// accuracy-against-bit-width plot; `None` when the run has no weight format or it does not
    /// parse.
    pub fn weight_bits(&self) -> Option<u32> {
        self.formats
            .get("weights")
            .and_then(|s| s.parse::<crate::Format>().ok())
            .map(|f| f.bits())
    }
}
