//! What a run is judged by at a glance: its primary metric (the workload's own figure of merit),
//! the error the Pareto fronts minimize, and whether the run learned at all.

use std::collections::BTreeMap;

/// The metrics a run can be judged by, in order of precedence: the first one a run has is its
/// primary metric. `test_accuracy` for classifiers, `optimality_gap` for regression (HALP's
/// `f(w) - f(w*)`), `var_error` for samplers of a known Gaussian (the mean over coordinates of
/// |`sample_var_i` - `target_var_i`|). Reports put it first, before the cost figures.
pub const PRIMARY_METRICS: [&str; 3] = ["test_accuracy", "optimality_gap", "var_error"];

/// The run's primary metric (see [`PRIMARY_METRICS`]) with its name; `None` when it has none.
pub fn primary_metric(metrics: &BTreeMap<String, f64>) -> Option<(&'static str, f64)> {
    PRIMARY_METRICS
        .iter()
        .find_map(|&m| metrics.get(m).map(|&v| (m, v)))
}

/// The error a run is ranked by, lower is better, with its name: `test_error` = 1 -
/// `test_accuracy` for classifiers, else `optimality_gap` for regression, else `variance_error` =
/// `var_error` for samplers of a known Gaussian: the primary metric turned into an error. `None`
/// when none applies. The sweep's Pareto plot puts it against energy; a run's energy plot draws
/// it per epoch.
pub fn error_metric(metrics: &BTreeMap<String, f64>) -> Option<(&'static str, f64)> {
    let (name, v) = primary_metric(metrics)?;
    Some(match name {
        "test_accuracy" => ("test_error", 1.0 - v),
        "optimality_gap" => ("optimality_gap", v),
        _ => ("variance_error", v),
    })
}

/// How far above chance a classifier must get to count as learning, as a fraction of the way
/// from chance accuracy `1/C` to perfect accuracy `1` (see [`at_chance`]).
pub const CHANCE_MARGIN: f64 = 0.1;

/// Whether a classifier's test accuracy over `classes` classes is at chance level: at most
/// `1/C + CHANCE_MARGIN * (1 - 1/C)`, i.e. it closes less than a tenth of the gap between
/// guessing and a perfect score (digits, `C = 10`: accuracy <= 0.19; iris, `C = 3`: <= 0.4;
/// two classes: <= 0.55). A model that predicts the uniform distribution (NLL = ln C) scores
/// about `1/C` and is caught; accuracy is the rule rather than the NLL because it is the metric the
/// reports rank by, and a confident but mostly right classifier may have an NLL above ln C.
/// A NaN accuracy is not at chance (it is a divergence, see [`Verdict`]).
pub fn at_chance(accuracy: f64, classes: usize) -> bool {
    let chance = 1.0 / classes.max(1) as f64;
    accuracy <= chance + CHANCE_MARGIN * (1.0 - chance)
}

/// Whether a run (or a configuration's mean over seeds) learned: the reports draw and rank only
/// the runs that did, and list the others apart; no run that did not learn is ever on a Pareto
/// front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It learned: a finite primary metric, above chance for a classifier.
    Learning,
    /// A classifier at chance level ([`at_chance`]).
    AtChance,
    /// The loss became NaN or infinite (the run stopped there), or the primary metric is not a
    /// finite number.
    Diverged,
}

impl Verdict {
    /// The verdict on a primary metric (see [`primary_metric`]) of a run or of a mean over runs;
    /// `diverged` is the run's own divergence flag, `classes` the classifier's number of classes
    /// (`None` when unknown or not a classifier: only divergence is then judged). Regression and
    /// sampling have no chance level: a finite error is judged by its size on the plots.
    pub fn judge(primary: Option<(&str, f64)>, classes: Option<usize>, diverged: bool) -> Verdict {
        match primary {
            _ if diverged => Verdict::Diverged,
            Some((_, v)) if !v.is_finite() => Verdict::Diverged,
            Some(("test_accuracy", a)) if classes.is_some_and(|c| at_chance(a, c)) => {
                Verdict::AtChance
            }
            _ => Verdict::Learning,
        }
    }

    /// Why a run that did not learn is set apart, for people (`""` for a learning run).
    pub fn reason(self) -> &'static str {
        match self {
            Verdict::Learning => "",
            Verdict::AtChance => "at chance",
            Verdict::Diverged => "diverged",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(kv: &[(&str, f64)]) -> BTreeMap<String, f64> {
        kv.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn chance_level_thresholds() {
        // Ten classes: chance 0.1, threshold 0.1 + 0.1 * 0.9 = 0.19.
        assert!(at_chance(0.1, 10));
        assert!(at_chance(0.19, 10));
        assert!(!at_chance(0.191, 10));
        // Three classes: 1/3 + 0.1 * 2/3 = 0.4; two classes: 0.55.
        assert!(at_chance(0.4, 3) && !at_chance(0.41, 3));
        assert!(at_chance(0.55, 2) && !at_chance(0.56, 2));
        assert!(!at_chance(f64::NAN, 10));
    }

    #[test]
    fn verdicts() {
        let acc = |a| Some(("test_accuracy", a));
        assert_eq!(Verdict::judge(acc(0.9), Some(10), false), Verdict::Learning);
        assert_eq!(
            Verdict::judge(acc(0.12), Some(10), false),
            Verdict::AtChance
        );
        // Unknown number of classes: only divergence is judged.
        assert_eq!(Verdict::judge(acc(0.12), None, false), Verdict::Learning);
        assert_eq!(Verdict::judge(acc(0.9), Some(10), true), Verdict::Diverged);
        assert_eq!(
            Verdict::judge(acc(f64::NAN), Some(10), false),
            Verdict::Diverged
        );
        let gap = Some(("optimality_gap", 5000.0));
        assert_eq!(Verdict::judge(gap, Some(10), false), Verdict::Learning);
        assert_eq!(
            Verdict::judge(Some(("optimality_gap", f64::INFINITY)), None, false),
            Verdict::Diverged
        );
        assert_eq!(Verdict::judge(None, None, false), Verdict::Learning);
    }

    #[test]
    fn primary_and_error_metrics_follow_the_precedence() {
        let m = metrics(&[
            ("test_nll", 0.3),
            ("test_accuracy", 0.9),
            ("var_error", 1.0),
        ]);
        assert_eq!(primary_metric(&m), Some(("test_accuracy", 0.9)));
        let (name, e) = error_metric(&m).unwrap();
        assert_eq!(name, "test_error");
        assert!((e - 0.1).abs() < 1e-12);
        let m = metrics(&[("var_error", 0.2), ("optimality_gap", 3.0)]);
        assert_eq!(primary_metric(&m), Some(("optimality_gap", 3.0)));
        let m = metrics(&[("var_error", 0.2)]);
        assert_eq!(error_metric(&m), Some(("variance_error", 0.2)));
        assert_eq!(primary_metric(&metrics(&[("train_loss", 1.0)])), None);
    }
}
