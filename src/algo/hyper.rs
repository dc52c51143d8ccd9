//! Named hyperparameters: each algorithm's defaults with their sources, overrides, and the one
//! table of allowed ranges (`range`), checked when a value is set.

use std::collections::BTreeMap;

use crate::algo::{names, Algo, AlgoError};
use crate::suggest::suggestion;

/// The values a hyperparameter may take (see [`range`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Range {
    /// A number greater than 0 (step sizes, scales).
    Positive,
    /// A number of at least 0 (temperatures, grid spacings where 0 means "off").
    NonNegative,
    /// A number greater than the bound (QSGLD's `base > 1`).
    Above(f64),
    /// A fraction in `[0, 1]` (`inclusive`) or `[0, 1)`.
    Fraction {
        /// Whether 1 itself is allowed.
        inclusive: bool,
    },
    /// A whole number in `min..=max` (counts; `0..=1` for switches).
    Whole {
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
    },
}

/// The largest count a hyperparameter takes: 2^53, the last whole number exact in `f64`.
const MAX_WHOLE: u64 = 1 << 53;

/// The range of hyperparameter `name`, one table for every algorithm (the defaults are in
/// [`Hyper::defaults`]); `None` for a name with no range beyond being finite.
pub fn range(name: &str) -> Option<Range> {
    let whole = |min, max| Range::Whole { min, max };
    Some(match name {
        "lr" | "eta" => Range::Positive,
        // HALP's mu: 0 = derived from the problem.
        "temperature" | "delta" | "kappa" | "mu" => Range::NonNegative,
        "base" => Range::Above(1.0),
        "rho" => Range::Fraction { inclusive: true },
        "epochs" | "batch" | "thin" | "cycles" => whole(1, MAX_WHOLE),
        // Burn-in counts epochs (steps for a Gaussian target), like `samples`.
        "epoch_len" | "samples" | "save_per_cycle" | "burn_in" => whole(0, MAX_WHOLE),
        "decay" | "nearest" | "switch" => whole(0, 1),
        "bits" => whole(0, 64),
        _ => return None,
    })
}

impl Range {
    /// `None` if `v` is in the range, else what is allowed.
    fn refuse(self, v: f64) -> Option<String> {
        let (ok, allowed) = match self {
            Range::Positive => (v > 0.0, "must be greater than 0".to_string()),
            Range::NonNegative => (v >= 0.0, "must be at least 0".to_string()),
            Range::Above(b) => (v > b, format!("must be greater than {b}")),
            Range::Fraction { inclusive: true } => {
                ((0.0..=1.0).contains(&v), "must be in [0, 1]".to_string())
            }
            Range::Fraction { inclusive: false } => {
                ((0.0..1.0).contains(&v), "must be in [0, 1)".to_string())
            }
            Range::Whole { min, max } => (
                v.fract() == 0.0 && v >= min as f64 && v <= max as f64,
                if max == 1 {
                    format!("must be {min} or 1")
                } else {
                    format!("must be a whole number in {min}..={max}")
                },
            ),
        };
        (!ok).then_some(allowed)
    }
}

/// Named hyperparameters: defaults per algorithm (with their sources, see [`Hyper::defaults`])
/// plus overrides; unknown names are rejected with the allowed list.
#[derive(Clone, Debug, PartialEq)]
pub struct Hyper {
    algo: Algo,
    values: BTreeMap<&'static str, f64>,
}

impl Hyper {
    /// The defaults of `algo` as `(name, value, source)`.
    ///
    /// Common: `lr` (SGLD family: 0.5, LP-SGLD `bnn/*.sh` lr_init; SVRG family: 5e-3, HALP Fig. 1;
    /// `sgd`/`lp-sgd`: 0.5, the LP-SGLD scripts' SGD baseline), `epochs` (20, chosen for CPU runs;
    /// LP-SGLD uses 245), `batch` (128, LP-SGLD; 1 for the SVRG family, HALP's per-example
    /// steps; 100 for QSGLD, its Fashion-MNIST code), `epoch_len` (steps per epoch; 0 = one pass,
    /// `N / batch`, or `2 N / batch` for the SVRG family = HALP's T; 1000 for the Gaussian toy).
    /// Samplers: `temperature` (1e-3, LP-SGLD `--temperature`; not QSGLD, whose noise is its
    /// quantization), `decay` (1 = LP-SGLD's `decay` schedule, 0 = constant). Which samples are
    /// kept ([`crate::algo::samples::SampleSchedule`]): `burn_in` (0) epochs, or steps for the Gaussian target,
    /// are discarded; then every `thin`-th (1) is kept, at most the last `samples` (0 = no limit;
    /// LP-SGLD's `num_savemodel` = 50 last epochs is `burn_in` = epochs - 50); the workload's
    /// `train.burn_in` and `train.thin` set the first two. Cyclical: `cycles` (7) and
    /// `save_per_cycle` (5), LP-SGLD `train_bfp_cyclic.sh`. QSGLD, from the authors' NeurIPS
    /// 2023 code (`config_quantization.yaml`, [`crate::algo::qsgld`]): `eta` 524288, `base` 2, `kappa` 2,
    /// `rho` 0.2 (`warmp_up_period`); `switch` 0 = the paper's `sigmoid(x)`, 1 = the code's
    /// default `(tanh(x) + 1) / 2`; `nearest` 0 (floor, the reference's non-debug path; 1 = its
    /// debug path's nearest). LP grids: `delta` (0 = the architecture's weight format; HALP's
    /// 8-bit LP-SGD/LP-SVRG use 0.7), `bits` (0 = the weight format's bits), `mu` (0 = the
    /// strong-convexity constant of the problem, [`crate::algo::svrg::strong_convexity`]; HALP Fig. 1 picks 3
    /// by hand).
    pub fn defaults(algo: Algo) -> Vec<(&'static str, f64, &'static str)> {
        let mut d: Vec<(&'static str, f64, &'static str)> = vec![
            ("epochs", 20.0, "chosen for CPU runs (LP-SGLD: 245)"),
            (
                "epoch_len",
                0.0,
                "0 = one pass N/batch (SVRG family 2N/batch, HALP T)",
            ),
        ];
        let svrg = matches!(algo, Algo::Svrg | Algo::LpSvrg | Algo::Halp);
        let lr = if svrg { 5e-3 } else { 0.5 };
        d.push((
            "lr",
            lr,
            "LP-SGLD bnn lr_init 0.5; SVRG/HALP 5e-3 (HALP Fig. 1)",
        ));
        let batch = match algo {
            Algo::Qsgld => 100.0,
            _ if svrg => 1.0,
            _ => 128.0,
        };
        d.push((
            "batch",
            batch,
            "LP-SGLD 128; HALP per-example; QSGLD code 100",
        ));
        if algo.is_sampler() && algo != Algo::Qsgld {
            d.push(("temperature", 1e-3, "LP-SGLD --temperature"));
        }
        if algo.is_sampler() {
            d.push((
                "burn_in",
                0.0,
                "workload train.burn_in: epochs (Gaussian target: steps) before samples are kept",
            ));
            d.push((
                "thin",
                1.0,
                "workload train.thin: keep every thin-th sample after burn_in",
            ));
            d.push((
                "samples",
                0.0,
                "0 = all kept; else the last ones (LP-SGLD num_savemodel 50 = burn_in epochs - 50)",
            ));
        }
        if !svrg {
            d.push(("decay", 1.0, "LP-SGLD lr_type decay (1) or constant (0)"));
        }
        if algo.is_cyclic() {
            d.push(("cycles", 7.0, "LP-SGLD train_bfp_cyclic.sh M = 7"));
            d.push(("save_per_cycle", 5.0, "LP-SGLD 35 samples / 7 cycles"));
        }
        if algo == Algo::Qsgld {
            let config = "authors' config_quantization.yaml (NeurIPS 2023 code)";
            d.push(("eta", 524_288.0, config));
            d.push(("base", 2.0, config));
            d.push(("kappa", 2.0, config));
            d.push((
                "rho",
                0.2,
                "authors' config_quantization.yaml warmp_up_period",
            ));
            d.push((
                "switch",
                0.0,
                "0 = sigmoid(x) (paper; code's test path), 1 = (tanh(x)+1)/2 (code's default)",
            ));
            d.push((
                "nearest",
                0.0,
                "0 = floor (reference non-debug path), 1 = nearest (debug path)",
            ));
        }
        if matches!(algo, Algo::LpSgd | Algo::LpSvrg | Algo::Halp) {
            d.push(("bits", 0.0, "0 = the weight format's bits"));
        }
        if matches!(algo, Algo::LpSgd | Algo::LpSvrg) {
            d.push(("delta", 0.0, "0 = arch weight format; HALP 8-bit: 0.7"));
        }
        if algo == Algo::Halp {
            d.push((
                "mu",
                0.0,
                "0 = from the problem: least squares lambda_min(X^T X / N), logistic and MLP \
                 l2 (an MLP with l2 = 0 needs a value; HALP Fig. 1 picks 3 by hand)",
            ));
        }
        d
    }

    /// The defaults of `algo`.
    pub fn new(algo: Algo) -> Self {
        Hyper {
            algo,
            values: Self::defaults(algo)
                .into_iter()
                .map(|(n, v, _)| (n, v))
                .collect(),
        }
    }

    /// Override one hyperparameter: it must be one of the algorithm's, finite, and in its
    /// [`range`].
    pub fn set(&mut self, name: &str, value: f64) -> Result<&mut Self, AlgoError> {
        let key = self
            .values
            .keys()
            .copied()
            .find(|k| *k == name)
            .ok_or_else(|| AlgoError::UnknownHyper {
                algo: self.algo.to_string(),
                name: name.to_string(),
                hint: suggestion(name, self.values.keys()),
                allowed: names(self.values.keys().copied()),
            })?;
        if !value.is_finite() {
            return Err(AlgoError::BadHyper {
                name: name.to_string(),
                reason: format!("{value} is not finite"),
            });
        }
        if let Some(allowed) = range(name).and_then(|r| r.refuse(value)) {
            return Err(AlgoError::BadHyper {
                name: name.to_string(),
                reason: format!("{value}: {allowed}"),
            });
        }
        self.values.insert(key, value);
        Ok(self)
    }

    /// The value of `name` (0 for a name the algorithm does not have).
    pub fn get(&self, name: &str) -> f64 {
        self.values.get(name).copied().unwrap_or(0.0)
    }

    /// Every hyperparameter as used (for the run report).
    pub fn values(&self) -> BTreeMap<String, f64> {
        self.values
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    /// A switch: `name` must be 0 (off) or 1 (on); a name the algorithm does not have is off.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, AlgoError> {
        match self.get(name) {
            0.0 => Ok(false),
            1.0 => Ok(true),
            v => Err(AlgoError::BadHyper {
                name: name.to_string(),
                reason: format!("{v}: must be 0 or 1"),
            }),
        }
    }

    /// A whole number >= `min`.
    pub(crate) fn count(&self, name: &str, min: u64) -> Result<u64, AlgoError> {
        let v = self.get(name);
        if v.fract() != 0.0 || v < min as f64 {
            return Err(AlgoError::BadHyper {
                name: name.to_string(),
                reason: format!("{v}: must be a whole number >= {min}"),
            });
        }
        Ok(v as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::ALGOS;

    #[test]
    fn every_default_is_in_its_range() {
        for &(name, algo) in ALGOS {
            for (h, v, _) in Hyper::defaults(algo) {
                let refused = range(h).and_then(|r| r.refuse(v));
                assert_eq!(refused, None, "{name}: default {h} = {v}");
            }
        }
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let cases: &[(Algo, &str, f64)] = &[
            (Algo::Sgld, "lr", -0.1),
            (Algo::Sgld, "lr", 0.0),
            (Algo::Sgld, "temperature", -1.0),
            (Algo::Halp, "mu", -3.0),
            (Algo::LpSgd, "delta", -0.7),
            (Algo::Sgld, "batch", 0.0),
            (Algo::Sgld, "batch", 2.5),
            (Algo::Sgld, "epochs", 1e300),
            (Algo::Sgld, "burn_in", 0.5),
            (Algo::Qsgld, "base", 1.0),
            (Algo::Qsgld, "nearest", 2.0),
            (Algo::Halp, "bits", 65.0),
        ];
        for &(algo, name, v) in cases {
            let e = Hyper::new(algo).set(name, v).map(|_| ()).unwrap_err();
            assert!(
                matches!(&e, AlgoError::BadHyper { name: n, .. } if n == name),
                "{algo} {name} = {v}: {e}"
            );
        }
        // The edges that are allowed.
        let mut h = Hyper::new(Algo::Sgld);
        h.set("temperature", 0.0).unwrap();
        h.set("burn_in", 0.0).unwrap();
        Hyper::new(Algo::LpSgd).set("delta", 0.0).unwrap();
        // HALP's mu = 0 asks for the problem's strong-convexity constant.
        Hyper::new(Algo::Halp).set("mu", 0.0).unwrap();
    }
}
