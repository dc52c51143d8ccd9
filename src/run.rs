//! One run: a workload x an algorithm x an architecture x a seed -> a [`RunReport`].
//!
//! This is where the layers meet: the workload gives the data, the model and the training
//! budget; the architecture (with the workload's `arch_overrides` and any `--set arch.<path>`
//! applied) gives the datapath; the algorithm trains on it, reporting each epoch's action counts;
//! the cost model prices them; the workload's metrics score the parameters.
//!
//! Hyperparameters are resolved in this order, later wins: the algorithm's defaults
//! (`lpsim::algo::Hyper`), the workload's training budget (`epochs`, `batch_size`, `burn_in`,
//! `thin`, `steps`; `burn_in` and `thin` count epochs, or steps for a Gaussian target), the
//! workload's `hyper` map (a name the algorithm does not have is skipped, so one workload serves
//! every algorithm; `ALGO.name` applies to that algorithm only), then `--set` (which must name a
//! hyperparameter of this algorithm or an `arch.` field).

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array1, Array2};
use thiserror::Error;

use crate::algo::{self, Algo, AlgoError, Hyper, TrainData};
use crate::arch::{override_value, ArchError, Architecture};
use crate::cost::{self, CostError, Datapath};
use crate::graph::RangeHealth;
use crate::model::{Model, ModelKind};
use crate::report::{ChainMoments, CostSummary, EpochRecord, RangeRecord, RunConfig, RunReport};
use crate::sweep::{RunFailure, RunSpec};
use crate::workload::{
    linalg::LinalgError, metrics, Budget, DataError, GaussianTarget, Problem, Targets, Workload,
    WorkloadError,
};

/// Why a run could not be done (a run that diverges is not an error: it is reported).
#[derive(Debug, Error)]
pub enum RunError {
    /// The workload file.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// The workload's data.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The architecture file or an override of it.
    #[error(transparent)]
    Arch(#[from] ArchError),
    /// The algorithm, a hyperparameter, or the training itself.
    #[error(transparent)]
    Algo(#[from] AlgoError),
    /// Pricing the counts.
    #[error(transparent)]
    Cost(#[from] CostError),
    /// The exact least-squares optimum of a regression workload (the cause is in the message).
    #[error("least-squares optimum: {0}")]
    Optimum(LinalgError),
    /// A `--set` that names nothing.
    #[error("--set {key}={value}: {reason}")]
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

impl RunFailure for RunError {
    /// An algorithm that the model or the architecture cannot carry
    /// ([`AlgoError::Unsupported`]) is incompatible: the same spec fails the same way every time.
    fn incompatible(&self) -> bool {
        matches!(self, RunError::Algo(AlgoError::Unsupported(_)))
    }
}

/// Every hyperparameter name any algorithm has.
fn all_hyper_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = algo::ALGOS
        .iter()
        .flat_map(|&(_, a)| Hyper::defaults(a).into_iter().map(|(n, _, _)| n))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn has(algo: Algo, name: &str) -> bool {
    Hyper::defaults(algo).iter().any(|(n, _, _)| *n == name)
}

/// The hyperparameters of this run (see the module docs for the order).
fn resolve_hyper(
    algo: Algo,
    wl: &Workload,
    set: &BTreeMap<String, String>,
) -> Result<Hyper, RunError> {
    let mut h = Hyper::new(algo);
    let put = |h: &mut Hyper, name: &str, v: f64| -> Result<(), RunError> {
        if has(algo, name) {
            h.set(name, v)?;
        }
        Ok(())
    };
    match wl.budget {
        Budget::Epochs {
            epochs,
            batch_size,
            burn_in,
            thin,
        } => {
            put(&mut h, "epochs", epochs as f64)?;
            put(&mut h, "batch", batch_size as f64)?;
            put(&mut h, "burn_in", burn_in as f64)?;
            put(&mut h, "thin", thin as f64)?;
        }
        Budget::Steps {
            steps,
            burn_in,
            thin,
        } => {
            // Reporting intervals ("epochs") over the chain: the largest count up to ten that
            // divides `steps`, so that exactly `steps` steps run.
            let intervals = (1..=10usize.min(steps.max(1)))
                .rev()
                .find(|k| steps % k == 0)
                .unwrap_or(1);
            put(&mut h, "epochs", intervals as f64)?;
            put(&mut h, "epoch_len", (steps / intervals) as f64)?;
            put(&mut h, "burn_in", burn_in as f64)?;
            put(&mut h, "thin", thin as f64)?;
        }
    }
    let prefix = format!("{algo}.");
    for (name, &v) in &wl.hyper {
        let (scoped, name) = match name.strip_prefix(&prefix) {
            Some(n) => (true, n),
            None if name.contains('.') => continue,
            None => (false, name.as_str()),
        };
        if scoped || has(algo, name) {
            h.set(name, v)?;
        } else if !all_hyper_names().contains(&name) {
            return Err(RunError::Workload(WorkloadError::Invalid {
                file: wl.file.clone(),
                json_path: format!("hyper.{name}"),
                value: v.to_string(),
                allowed: format!(
                    "no algorithm has this hyperparameter{} (see `lpsim run --help`)",
                    crate::suggest::suggestion(name, all_hyper_names())
                ),
            }));
        }
    }
    for (key, value) in set.iter().filter(|(k, _)| !k.starts_with("arch.")) {
        let v: f64 = value.parse().map_err(|_| RunError::Set {
            key: key.clone(),
            value: value.clone(),
            reason: "must be a number".into(),
        })?;
        h.set(key, v)?;
    }
    Ok(h)
}

/// Test metrics of class probabilities.
fn classification_metrics(
    probs: &Array2<f64>,
    labels: &Array1<usize>,
    out: &mut BTreeMap<String, f64>,
    prefix: &str,
) {
    if labels.is_empty() {
        return;
    }
    out.insert(
        format!("{prefix}test_accuracy"),
        metrics::accuracy(probs.view(), labels.view()),
    );
    out.insert(
        format!("{prefix}test_nll"),
        metrics::nll(probs.view(), labels.view()),
    );
    out.insert(
        format!("{prefix}ece"),
        metrics::ece(probs.view(), labels.view(), metrics::ECE_BINS),
    );
}

/// The formats and rounding units the run used, by role, for the report: those of the datapath
/// `algo` steps on (a full-precision baseline uses `full_precision.format` for every role and the
/// full-precision MAC, whatever the architecture's low-precision formats), which one that is
/// (`datapath`), and the full-precision unit (the SVRG family's full gradients).
fn formats_of(arch: &Architecture, algo: Algo) -> BTreeMap<String, String> {
    let f = &arch.formats;
    let fp = &arch.full_precision;
    let rne = crate::round::Rounding::NearestEven;
    let (roles, mac, datapath) = match algo.datapath() {
        Datapath::FullPrecision => (
            [(fp.format, rne); 5],
            fp.mac,
            "full-precision unit (full_precision)",
        ),
        Datapath::LowPrecision => (
            [
                (f.input, f.rounding.input),
                (f.weights, f.rounding.weights),
                (f.activations, f.rounding.activations),
                (f.gradients, f.rounding.gradients),
                (f.updates, f.rounding.updates),
            ],
            f.mac,
            "low-precision MAC (formats.mac)",
        ),
    };
    let mut m = BTreeMap::new();
    for (role, (fmt, r)) in ["input", "weights", "activations", "gradients", "updates"]
        .into_iter()
        .zip(roles)
    {
        m.insert(role.to_string(), fmt.to_string());
        m.insert(format!("rounding.{role}"), r.to_string());
    }
    m.insert("mac.a".into(), mac.a.to_string());
    m.insert("mac.b".into(), mac.b.to_string());
    m.insert(
        "mac.product".into(),
        mac.product.map_or("exact".to_string(), |p| p.to_string()),
    );
    m.insert("mac.fused".into(), mac.fused.to_string());
    m.insert("mac.accumulator".into(), mac.acc.to_string());
    m.insert("mac.acc_rounding".into(), mac.acc_rounding.to_string());
    m.insert("mac.order".into(), mac.order.to_string());
    m.insert("datapath".into(), datapath.to_string());
    m.insert("full_precision".into(), fp.format.to_string());
    m.insert(
        "full_precision.mac".into(),
        format!("{} x {} + {}", fp.mac.a, fp.mac.b, fp.mac.acc),
    );
    m
}

/// A run resolved but not started: the workload, the architecture with its overrides, the
/// algorithm with its hyperparameters, and the model and data as the algorithm sees them.
pub struct Prepared {
    /// The workload.
    pub workload: Workload,
    /// The architecture, overrides applied.
    pub arch: Architecture,
    /// The algorithm.
    pub algo: Algo,
    /// Its hyperparameters, resolved.
    pub hyper: Hyper,
    /// The model the algorithm trains.
    pub model: Model,
    problem: Problem,
    /// The data as the algorithm trains on them (`None` for a Gaussian target).
    pub data: Option<TrainData>,
}

/// Resolve a run (see the module docs for the order of overrides).
pub fn prepare(spec: &RunSpec) -> Result<Prepared, RunError> {
    let wl = Workload::load(&spec.workload_path)?;
    let mut overrides = wl.arch_overrides.clone();
    for (k, v) in &spec.set {
        if let Some(path) = k.strip_prefix("arch.") {
            overrides.insert(path.to_string(), override_value(v));
        }
    }
    let arch = Architecture::load_with_overrides(&spec.arch_path, &overrides)?;
    let algo: Algo = spec.algo.parse()?;
    let hyper = resolve_hyper(algo, &wl, &spec.set)?;
    let problem = wl.load_data()?;
    let (model, data) = match &problem {
        Problem::Supervised(ds) => {
            let model =
                Model::from_spec(&wl.model, &ds.shape, ds.n_classes).map_err(AlgoError::from)?;
            let data = TrainData {
                x_train: model.inputs_of(&ds.x_train),
                y_train: ds.y_train.clone(),
                x_test: model.inputs_of(&ds.x_test),
                y_test: ds.y_test.clone(),
            };
            (model, Some(data))
        }
        Problem::Sampling(t) => (
            Model::gaussian(t.mean.clone(), t.precision.clone()).map_err(AlgoError::from)?,
            None,
        ),
    };
    Ok(Prepared {
        workload: wl,
        arch,
        algo,
        hyper,
        model,
        problem,
        data,
    })
}

/// Run one configuration and report it.
pub fn run_one(spec: &RunSpec) -> Result<RunReport, RunError> {
    run_one_with(spec, &mut |_| {})
}

/// Where a run is after an epoch, for a progress display (`lpsim run`).
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// 1-based epoch just finished.
    pub epoch: usize,
    /// Epochs planned.
    pub epochs: usize,
    /// Steps taken so far.
    pub steps: u64,
    /// Steps planned.
    pub steps_total: u64,
    /// The epoch's record: its metrics (`train_loss` first among them), energy and cycles
    /// so far.
    pub record: &'a EpochRecord,
}

/// [`run_one`], calling `on_epoch` after every epoch with the run's progress.
pub fn run_one_with(
    spec: &RunSpec,
    on_epoch: &mut dyn FnMut(Progress<'_>),
) -> Result<RunReport, RunError> {
    let Prepared {
        workload: wl,
        arch,
        algo,
        hyper,
        model,
        problem,
        data,
    } = prepare(spec)?;
    let target = match &problem {
        Problem::Sampling(t) => Some(t),
        Problem::Supervised(_) => None,
    };
    // Regression is scored against the exact least-squares optimum (computed once, in f64).
    let optimum = match (&data, model.kind()) {
        (Some(d), ModelKind::Linear) => match &d.y_train {
            Targets::Values(y) => {
                let w = metrics::least_squares_optimum(d.x_train.view(), y.view(), model.l2())
                    .map_err(RunError::Optimum)?;
                let w = w.insert_axis(ndarray::Axis(1)).into_dyn();
                Some(model.loss(&[w], Some((d.x_train.view(), &d.y_train))))
            }
            Targets::Classes(_) => None,
        },
        _ => None,
    };

    let mut epochs = Vec::new();
    let mut pricing: Option<CostError> = None;
    let dataset = match &problem {
        Problem::Supervised(ds) => Some(ds),
        Problem::Sampling(_) => None,
    };
    let outcome = algo::train(
        algo,
        &model,
        data.as_ref(),
        &arch,
        &hyper,
        spec.seed,
        &mut |s| {
            let mut m = BTreeMap::new();
            m.insert("train_loss".to_string(), s.train_loss);
            if let Some(opt) = optimum {
                m.insert("optimality_gap".to_string(), s.train_loss - opt);
            }
            if let (Some(ds), Some(d)) = (dataset, data.as_ref()) {
                if let Targets::Classes(labels) = &ds.y_test {
                    let eval = model.for_evaluation(&s.params, d.x_train.view());
                    let probs = eval.predict(&s.params, d.x_test.view());
                    classification_metrics(&probs, labels, &mut m, "");
                }
            }
            let (energy_pj, cycles) = match cost::price_tally(&arch, &s.tally) {
                Ok(c) => (c.energy_pj, c.total_cycles as f64),
                Err(e) => {
                    pricing.get_or_insert(e);
                    (f64::NAN, f64::NAN)
                }
            };
            let record = EpochRecord {
                epoch: s.epoch,
                metrics: m,
                energy_pj,
                cycles,
            };
            on_epoch(Progress {
                epoch: s.epoch,
                epochs: s.epochs,
                steps: s.steps,
                steps_total: s.steps_total,
                record: &record,
            });
            epochs.push(record);
        },
    )?;
    if let Some(e) = pricing {
        return Err(e.into());
    }

    let mut metrics = epochs.last().map(|e| e.metrics.clone()).unwrap_or_default();
    if let (Some(ds), Some(d)) = (dataset, data.as_ref()) {
        if let Targets::Classes(labels) = &ds.y_test {
            let mut avg = metrics::ModelAverage::default();
            for sample in &outcome.samples {
                let eval = model.for_evaluation(sample, d.x_train.view());
                avg.add(eval.predict(sample, d.x_test.view()).view());
            }
            if let Some(p) = avg.mean() {
                // Samplers are scored by their Bayesian model average; the last iterate's
                // figures stay under `last_`.
                for k in ["test_accuracy", "test_nll", "ece"] {
                    if let Some(v) = metrics.get(k).copied() {
                        metrics.insert(format!("last_{k}"), v);
                    }
                }
                classification_metrics(&p, labels, &mut metrics, "");
                metrics.insert("bma_samples".into(), avg.count() as f64);
            }
        }
    }
    let chain = match (target, &outcome.chain) {
        (Some(t), Some(chain)) => {
            // A chain at temperature T samples N(m, T Sigma); QSGLD has no temperature.
            let temperature = if has(algo, "temperature") {
                hyper.get("temperature")
            } else {
                1.0
            };
            let c = chain_moments(t, chain, temperature);
            chain_metrics(&c, &mut metrics);
            Some(c)
        }
        _ => None,
    };

    let total = cost::price_tally(&arch, &outcome.tally)?;
    let cost = CostSummary {
        energy_pj: total.energy_pj,
        cycles: total.total_cycles as f64,
        stall_cycles: total.stall_cycles as f64,
        time_s: total.time_ns * 1e-9,
        area_mm2: total.area_mm2,
        breakdown: total.breakdown.clone(),
    };
    Ok(RunReport {
        config: RunConfig {
            workload: wl.name.clone(),
            algo: algo.to_string(),
            arch: arch.name.clone(),
            seed: spec.seed,
            set: spec.set.clone(),
            hyper: {
                // Values the algorithm derived from the problem replace the 0 that asked for
                // them, so the report records every value as used.
                let mut h = hyper.values();
                h.extend(outcome.derived.clone());
                h
            },
            formats: formats_of(&arch, algo),
        },
        epochs,
        metrics,
        cost,
        diverged_at_epoch: outcome.diverged_at,
        range_health: range_records(&outcome.range),
        chain,
        classes: dataset.and_then(|ds| ds.n_classes),
    })
}

/// The run's range health as report records, ordered by role, then format.
fn range_records(health: &RangeHealth) -> Vec<RangeRecord> {
    let mut entries: Vec<_> = health
        .entries()
        .iter()
        .map(|e| (e.role, e.format.to_string(), e.counts))
        .collect();
    entries.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    entries
        .into_iter()
        .map(|(role, format, c)| RangeRecord {
            role: role.to_string(),
            format,
            values: c.values,
            saturated: c.saturated,
            flushed: role.judges_flush().then_some(c.flushed),
            nan: c.nan,
        })
        .collect()
}

/// The chain's moments per coordinate beside the target's `N(m, T Sigma)`.
fn chain_moments(target: &GaussianTarget, chain: &Array2<f64>, temperature: f64) -> ChainMoments {
    let mut mom = metrics::Moments::new(chain.ncols());
    for row in chain.rows() {
        mom.push(row);
    }
    ChainMoments {
        samples: mom.count(),
        sample_mean: mom.mean().to_vec(),
        target_mean: target.mean.to_vec(),
        sample_var: mom.variance().to_vec(),
        target_var: target.variance().mapv(|v| temperature * v).to_vec(),
    }
}

/// The scalar figures of a chain: the means over coordinates of its moments and the target's
/// (`sample_mean`, `sample_var`, `target_mean`, `target_var`: for the toy's identical
/// coordinates, the pooled estimates), and the mean absolute errors per coordinate
/// `mean_error` = mean |`mean_i` - `m_i`| and `var_error` = mean |`var_i` - `target_var_i`|.
fn chain_metrics(c: &ChainMoments, metrics: &mut BTreeMap<String, f64>) {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mean_abs_diff = |a: &[f64], b: &[f64]| {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
    };
    metrics.insert("sample_mean".into(), mean(&c.sample_mean));
    metrics.insert("sample_var".into(), mean(&c.sample_var));
    metrics.insert("target_mean".into(), mean(&c.target_mean));
    metrics.insert("target_var".into(), mean(&c.target_var));
    metrics.insert(
        "mean_error".into(),
        mean_abs_diff(&c.sample_mean, &c.target_mean),
    );
    metrics.insert(
        "var_error".into(),
        mean_abs_diff(&c.sample_var, &c.target_var),
    );
}

/// Run one configuration given by paths.
pub fn run_paths(
    workload: &Path,
    algo: &str,
    arch: &Path,
    seed: u64,
    set: BTreeMap<String, String>,
) -> Result<RunReport, RunError> {
    run_one(&RunSpec {
        workload_path: workload.to_path_buf(),
        algo: algo.to_string(),
        arch_path: arch.to_path_buf(),
        seed,
        set,
    })
}
