//! The learning algorithms (docs/algorithms.md): each builds step graphs ([`crate::graph`]) and runs
//! them from an outer loop in Rust (see ARCHITECTURE.md).
//!
//! - [`sgld`]: `sgd`, `lp-sgd`, `sgld`, `lp-sgld-f`, `lp-sgld-naive`, `lp-sgld-vc`, their cyclical
//!   `csgld` variants, and `qsgld` — one step graph per mini-batch, any [`Model`];
//! - [`svrg`]: `svrg`, `lp-svrg`, `halp`, and `lp-sgd` on a `delta` grid — linear models;
//!   [`svrg_nn`]: `svrg`, `lp-svrg` and `halp` on layered models (mlp, cnn), HALP's driver in
//!   [`halp_nn`] (the bit-centred layers are the layers' own, `model::centred`);
//! - [`qsgld`]: QSGLD's schedule (the variance-corrected quantizer and QSGLD's quantized step
//!   are rounding units, [`crate::arith::vc`] and [`crate::arith::quantize_step`]);
//! - [`samples`]: which samples are kept. The models' subgraphs and `f64` oracle are
//!   [`crate::model`]'s.
//!
//! "Full precision" means the architecture's full-precision unit (`full_precision`, fp32 by
//! default): the baselines `sgd`, `sgld`, `csgld` and `svrg` run entirely on it, storage and
//! arithmetic, so they are the same run on every architecture ([`Algo::datapath`]); the `lp-`
//! variants run on the architecture's low-precision MAC (`lp-sgld-f` with a master copy in the
//! full-precision format). Entry point: [`train`].

mod batches;
mod epochs;
pub mod halp_nn;
pub mod hyper;
pub mod qsgld;
pub mod samples;
pub mod sgld;
pub mod svrg;
pub mod svrg_nn;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, ArrayD};
use thiserror::Error;

use crate::arch::Architecture;
use crate::cost::{Datapath, Tally};
use crate::graph::{ExecError, GraphError, RangeHealth};
use crate::limits::{self, SizeError};
use crate::suggest::suggestion;

pub use crate::model::Model;
use crate::model::{ModelError, ModelKind};
pub use hyper::{range, Hyper, Range};

/// An algorithm, by its command-line name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algo {
    /// Mini-batch SGD in full precision (the full-precision unit).
    Sgd,
    /// SGD with weights stored in the architecture's weight format and rounding unit (or on a
    /// `delta` grid, HALP's LP-SGD, when `delta > 0`).
    LpSgd,
    /// SGLD in full precision (the full-precision unit).
    Sgld,
    /// SGLDLP-F: full-precision master copy, gradients at `Q_W(theta)` on the low-precision MAC
    /// (docs/algorithms.md).
    LpSgldF,
    /// Naive SGLDLP-L: `theta <- Q_W(theta - lr g + noise)` (1.1.2).
    LpSgldNaive,
    /// VC SGLDLP-L: `theta <- Q^vc(theta - lr g, 2 lr T / N)` (1.1.3).
    LpSgldVc,
    /// cSGLD: SGLD with the cyclical step size (1.4), in full precision.
    Csgld,
    /// Cyclical SGLDLP-F.
    LpCsgldF,
    /// Cyclical naive SGLDLP-L.
    LpCsgldNaive,
    /// Cyclical VC SGLDLP-L.
    LpCsgldVc,
    /// QSGLD (section 3).
    Qsgld,
    /// SVRG in full precision (the full-precision unit).
    Svrg,
    /// LP-SVRG: SVRG with the iterate in the weight format (or on a fixed `delta` grid of its
    /// integer codes), full gradients on the full-precision unit.
    LpSvrg,
    /// HALP: SVRG with bit centering (section 2.1): the offset in the weight format's codes,
    /// full gradients on the full-precision unit.
    Halp,
}

/// Every algorithm with its name.
pub const ALGOS: &[(&str, Algo)] = &[
    ("sgd", Algo::Sgd),
    ("lp-sgd", Algo::LpSgd),
    ("sgld", Algo::Sgld),
    ("lp-sgld-f", Algo::LpSgldF),
    ("lp-sgld-naive", Algo::LpSgldNaive),
    ("lp-sgld-vc", Algo::LpSgldVc),
    ("csgld", Algo::Csgld),
    ("lp-csgld-f", Algo::LpCsgldF),
    ("lp-csgld-naive", Algo::LpCsgldNaive),
    ("lp-csgld-vc", Algo::LpCsgldVc),
    ("qsgld", Algo::Qsgld),
    ("svrg", Algo::Svrg),
    ("lp-svrg", Algo::LpSvrg),
    ("halp", Algo::Halp),
];

impl FromStr for Algo {
    type Err = AlgoError;
    fn from_str(s: &str) -> Result<Self, AlgoError> {
        let t = s.trim().to_ascii_lowercase();
        ALGOS
            .iter()
            .find(|(n, _)| *n == t)
            .map(|&(_, a)| a)
            .ok_or_else(|| AlgoError::UnknownAlgo {
                name: s.to_string(),
                hint: suggestion(s, ALGOS.iter().map(|(n, _)| *n)),
                allowed: names(ALGOS.iter().map(|(n, _)| *n)),
            })
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = ALGOS
            .iter()
            .find(|(_, a)| a == self)
            .map(|(n, _)| *n)
            .unwrap_or("?");
        f.write_str(name)
    }
}

impl Algo {
    /// Whether the algorithm samples (keeps samples for Bayesian model averaging).
    pub fn is_sampler(self) -> bool {
        !matches!(
            self,
            Algo::Sgd | Algo::LpSgd | Algo::Svrg | Algo::LpSvrg | Algo::Halp
        )
    }

    /// Whether the algorithm uses the cyclical step size.
    pub fn is_cyclic(self) -> bool {
        matches!(
            self,
            Algo::Csgld | Algo::LpCsgldF | Algo::LpCsgldNaive | Algo::LpCsgldVc
        )
    }

    /// The datapath its steps run on: the full-precision unit for the full-precision algorithms
    /// (`sgd`, `sgld`, `csgld`, `svrg`: full precision in storage and arithmetic, so that a
    /// baseline is the real thing on every architecture), else the low-precision datapath. (The
    /// SVRG family's full gradients run on the full-precision unit whatever the algorithm.)
    pub fn datapath(self) -> Datapath {
        match self {
            Algo::Sgd | Algo::Sgld | Algo::Csgld | Algo::Svrg => Datapath::FullPrecision,
            _ => Datapath::LowPrecision,
        }
    }

    /// Whether it runs in the SVRG driver (given its hyperparameters).
    fn is_svrg_family(self, hyper: &Hyper) -> bool {
        matches!(self, Algo::Svrg | Algo::LpSvrg | Algo::Halp)
            || (self == Algo::LpSgd && hyper.get("delta") > 0.0)
    }
}

pub(crate) fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

/// Bytes per number the algorithms hold per parameter or activation: the `f64` carrier of the
/// value, its gradient, its rounded copy and the update or noise (a lower bound of what a step
/// allocates, enough to refuse the impossible before allocating).
const BYTES_PER_VALUE: u128 = 4 * 8;

/// Refuses a run whose model, mini-batch or kept chain cannot fit in memory, before anything
/// is allocated: the parameters (checked element counts of [`Model::param_shapes`]), a batch of
/// `batch` examples times every layer's width, and the Gaussian toy's chain of
/// `epochs x epoch_len` steps (after burn-in, thinned) times its coordinates.
fn check_memory(model: &Model, hyper: &Hyper) -> Result<(), AlgoError> {
    let shapes = model.param_shapes();
    let mut params = 0u128;
    for s in &shapes {
        params += limits::elements(format!("a {s:?} parameter tensor"), s)? as u128;
    }
    limits::check_bytes(
        format!("the model's {params} parameters (tensors {shapes:?})"),
        params * BYTES_PER_VALUE,
    )?;
    if model.kind() == ModelKind::Gaussian {
        let dim = model.outputs();
        let epoch_len = match hyper.count("epoch_len", 0)? {
            0 => 1000,
            e => e,
        };
        let steps = u128::from(hyper.count("epochs", 1)?) * u128::from(epoch_len);
        let kept = (steps as f64 * (1.0 - hyper.get("burn_in").clamp(0.0, 1.0))
            / hyper.get("thin").max(1.0)) as u128;
        limits::check_bytes(
            format!("the chain of {kept} kept steps x {dim} coordinates (epochs, epoch_len)"),
            kept * dim as u128 * 8,
        )?;
    } else {
        let batch = u128::from(hyper.count("batch", 1)?);
        let width: u128 = model.widths().iter().map(|&w| w as u128).sum();
        limits::check_bytes(
            format!(
                "hyperparameter batch = {batch}: a batch of {batch} examples x {width} activations"
            ),
            batch * width * BYTES_PER_VALUE,
        )?;
    }
    Ok(())
}

pub use crate::workload::{Augmentation, Targets};

/// A data set split.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainData {
    /// Training features, `N x d`.
    pub x_train: Array2<f64>,
    /// Training targets.
    pub y_train: Targets,
    /// Test features.
    pub x_test: Array2<f64>,
    /// Test targets.
    pub y_test: Targets,
    /// Random crop and flip of every training mini-batch, on the host (`data.augment` of an
    /// image data set; the mini-batch algorithms only).
    pub augment: Option<Augmentation>,
}

/// What one epoch produced (passed to the caller's callback).
#[derive(Clone, Debug)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Epochs planned (the run may stop early when it diverges).
    pub epochs: usize,
    /// Steps taken so far (the inner loop's steps: mini-batches, SVRG's inner iterations).
    pub steps: u64,
    /// Steps planned.
    pub steps_total: u64,
    /// Training objective in `f64` at the epoch's end ([`Model::train_loss`]).
    pub train_loss: f64,
    /// Hardware actions and the shape of the epoch's work, per datapath.
    pub tally: Tally,
    /// The parameters at the epoch's end (`f64` copies of their carriers), for metrics via
    /// [`Model::predict`].
    pub params: Vec<ArrayD<f64>>,
}

/// What a whole run produced.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// Final parameters.
    pub params: Vec<ArrayD<f64>>,
    /// Samples kept for Bayesian model averaging (samplers; empty otherwise).
    pub samples: Vec<Vec<ArrayD<f64>>>,
    /// The epoch whose loss became NaN or infinite (the run stopped there).
    pub diverged_at: Option<usize>,
    /// A Gaussian target's chain, the kept steps ([`samples`]): `kept steps x dim`.
    pub chain: Option<Array2<f64>>,
    /// Actions and work of the whole run, per datapath.
    pub tally: Tally,
    /// Hyperparameters the algorithm derived from the problem because they were left at 0
    /// (HALP's `mu`), by name: the values used.
    pub derived: BTreeMap<String, f64>,
    /// Range events of the whole run, per tensor role and format (the training data judged
    /// once, every step's roundings summed).
    pub range: RangeHealth,
}

/// A run that cannot be done.
#[derive(Debug, Error)]
pub enum AlgoError {
    /// No such algorithm.
    #[error("unknown algorithm `{name}`{hint}; allowed: {allowed}")]
    UnknownAlgo {
        /// The name given.
        name: String,
        /// A "did you mean" suggestion, or empty.
        hint: String,
        /// The names allowed.
        allowed: String,
    },
    /// No such hyperparameter for this algorithm.
    #[error("algorithm `{algo}` has no hyperparameter `{name}`{hint}; allowed: {allowed}")]
    UnknownHyper {
        /// The algorithm.
        algo: String,
        /// The name given.
        name: String,
        /// A "did you mean" suggestion, or empty.
        hint: String,
        /// The names allowed.
        allowed: String,
    },
    /// A hyperparameter out of range.
    #[error("hyperparameter `{name}` = {reason}")]
    BadHyper {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Data that do not fit the model.
    #[error("data: {0}")]
    Data(String),
    /// A model shape that cannot be built (a zero width, one class, a non-finite `l2`).
    #[error("model: {0}")]
    Model(String),
    /// A model, batch or chain too large for memory (checked before allocating).
    #[error(transparent)]
    Size(#[from] SizeError),
    /// An algorithm/model/architecture combination that is not supported.
    #[error("{0}")]
    Unsupported(String),
    /// A step graph that cannot be built (the cause is in the message, so not also a
    /// `source`: a chain printer would show it twice).
    #[error("step graph: {0}")]
    Graph(GraphError),
    /// A step graph that cannot run.
    #[error("step: {0}")]
    Exec(ExecError),
}

impl From<ModelError> for AlgoError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Spec(m) | ModelError::Shape(m) => AlgoError::Model(m),
            ModelError::Data(m) => AlgoError::Data(m),
            ModelError::Graph(g) => AlgoError::Graph(g),
            e @ ModelError::NotBitCentred { .. } => AlgoError::Unsupported(e.to_string()),
        }
    }
}

impl From<GraphError> for AlgoError {
    fn from(e: GraphError) -> Self {
        AlgoError::Graph(e)
    }
}

impl From<ExecError> for AlgoError {
    fn from(e: ExecError) -> Self {
        AlgoError::Exec(e)
    }
}

/// A step graph for inspection, with the values its per-step scalars (step size, noise scale,
/// QSGLD's resolution; fed with each step's data, see `sgld::NEG_LR`) take at the first step.
#[derive(Clone, Debug)]
pub struct StepGraph {
    /// The graph.
    pub graph: crate::graph::Graph,
    /// Each per-step scalar's name (`name[i]` for an element of a vector feed) and value at
    /// the first step (empty when the graph has none).
    pub scalars: Vec<(String, f64)>,
}

impl StepGraph {
    /// `graph` with the values of the per-step scalars it reads, taken from `values` (a driver's
    /// scalars at the first step; those the graph does not read are left out).
    pub(crate) fn new(graph: crate::graph::Graph, values: &[(&str, f64)]) -> Self {
        let used = graph.scalar_inputs();
        let scalars = values
            .iter()
            .filter(|(n, _)| used.contains(n))
            .map(|&(n, v)| (n.to_string(), v))
            .collect();
        StepGraph { graph, scalars }
    }
}

/// The step graph `algo` runs first for `model` on `arch` (the SVRG family's inner step), for
/// inspection and export: built by the same code as the run's, with `data`'s size `N` when a
/// data set is given (without one, the mini-batch driver draws a data set of one batch).
pub fn step_graph(
    algo: Algo,
    model: &Model,
    data: Option<&TrainData>,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<StepGraph, AlgoError> {
    // Without data only a Gaussian target can be checked (the graph then stands for one batch).
    if data.is_some() || !model.needs_data() {
        check_data(model, data)?;
    }
    check_memory(model, hyper)?;
    if algo.is_svrg_family(hyper) {
        svrg::example_graph(algo, model, arch, hyper)
    } else {
        sgld::example_graph(algo, model, data, arch, hyper)
    }
}

/// Check that `data` fit `model`.
fn check_data(model: &Model, data: Option<&TrainData>) -> Result<(), AlgoError> {
    if !model.needs_data() {
        if data.is_some() {
            return Err(AlgoError::Data(
                "a Gaussian target is sampled without training data".into(),
            ));
        }
        return Ok(());
    }
    let Some(data) = data else {
        return Err(AlgoError::Data("this model needs training data".into()));
    };
    let d = model.inputs();
    let classes = model.classes();
    for (x, y, split) in [
        (&data.x_train, &data.y_train, "train"),
        (&data.x_test, &data.y_test, "test"),
    ] {
        if x.ncols() != d || x.nrows() != y.len() {
            return Err(AlgoError::Data(format!(
                "{split}: x is {}x{}, {} targets; the model has d = {d}",
                x.nrows(),
                x.ncols(),
                y.len()
            )));
        }
        match (y, classes) {
            (Targets::Classes(c), Some(k)) => {
                if let Some(bad) = c.iter().find(|&&v| v >= k) {
                    return Err(AlgoError::Data(format!(
                        "{split}: class {bad} but the model has {k} classes"
                    )));
                }
            }
            (Targets::Values(_), None) => {}
            _ => {
                return Err(AlgoError::Data(format!(
                    "{split}: targets do not match the model (classes for classifiers, values \
                     for regression)"
                )))
            }
        }
    }
    if data.x_train.nrows() == 0 {
        return Err(AlgoError::Data("no training examples".into()));
    }
    Ok(())
}

/// Train `model` with `algo` on `arch`: every random draw keyed by `seed`; `on_epoch` sees each
/// epoch's statistics. `data` is `None` only for the Gaussian toy.
pub fn train(
    algo: Algo,
    model: &Model,
    data: Option<&TrainData>,
    arch: &Architecture,
    hyper: &Hyper,
    seed: u64,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    check_memory(model, hyper)?;
    check_data(model, data)?;
    if algo.is_svrg_family(hyper) {
        if data.is_some_and(|d| d.augment.is_some()) {
            // The inner steps' gradients are compared against the epoch's full pass over the
            // stored examples (and HALP's centre caches them per example): an augmented batch
            // would not be the examples that pass saw.
            return Err(AlgoError::Data(format!(
                "augment: `{algo}` compares each step's gradient with a full pass over the \
                 un-augmented training set, so it cannot train on augmented batches; remove \
                 data.augment or use a mini-batch algorithm (sgd, the sgld family, qsgld)"
            )));
        }
        svrg::train(algo, model, data, arch, hyper, seed, on_epoch)
    } else {
        sgld::train(algo, model, data, arch, hyper, seed, on_epoch)
    }
}
