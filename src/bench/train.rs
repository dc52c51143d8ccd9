//! `lpsim bench train`: the wall time of an emulated training epoch of each algorithm on each
//! architecture, against a native `f32` epoch of the same MLP measured in the same run (see
//! ARCHITECTURE.md). Speed is measured, never asserted in tests.
//!
//! The emulated epoch is the library's own ([`crate::run::prepare`], then [`crate::algo::train`]
//! with the workload's model widened to the bench's hidden width): the time between two epoch
//! callbacks, so it includes everything the driver does per epoch, the `f64` training-set loss
//! it reports included. That evaluation is a metric, not training (a NumPy or PyTorch training
//! epoch computes no loss over the whole training set), so it is timed again on its own, on
//! the epoch's parameters inside the callback (outside the epoch's timing), and the training
//! epoch is the epoch minus it (`train_epoch_ms`). The first epoch (graph building, the data
//! rounded to the input format) is a warm-up and is not timed; the figures are medians over the
//! `epochs` epochs after it.
//!
//! The native epoch ([`NativeMlp`]) trains the same ReLU MLP on the same training split with
//! plain SGD in `f32` (ndarray's `dot`, no emulation, no `l2`): `ceil(N / batch)` steps of
//! `batch` examples drawn uniformly with replacement, as the mini-batch driver draws them. One
//! native epoch runs after each emulated epoch (from the driver's epoch callback, outside the
//! emulated epoch's timing), the first as a warm-up, so each ratio compares two epochs taken
//! moments apart on the same pool: on a shared machine the speed drifts. ndarray's `f32` GEMM is
//! single-threaded at these sizes, so the native epoch uses one thread whatever the pool.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array1, Array2, ArrayD, ArrayView2, Axis};
use serde::Serialize;
use thiserror::Error;

use super::native_cnn::NativeCnn;
use crate::algo::{self, Algo, AlgoError, Hyper, Targets};
use crate::bench::median;
use crate::model::{Model, ModelKind};
use crate::round::RandomStream;
use crate::run::{prepare, Prepared, RunError};
use crate::sweep::RunSpec;
use crate::workload::ModelSpec;

/// The algorithm families the bench times by default, one representative each: `sgd` (the
/// full-precision baseline), `lp-sgd`, the LP-SGLD samplers `lp-sgld-naive` and `lp-sgld-vc`,
/// `qsgld`, and `lp-svrg` for the SVRG family (HALP's LP-SVRG; `halp` itself runs with
/// `--algos halp`).
pub const TRAIN_ALGOS: &[&str] = &[
    "sgd",
    "lp-sgd",
    "lp-sgld-naive",
    "lp-sgld-vc",
    "qsgld",
    "lp-svrg",
];

/// The architectures the bench times by default.
pub const TRAIN_ARCHS: &[&str] = &[
    "arch/fp32.json",
    "arch/bf16.json",
    "arch/bfp8.json",
    "arch/fp8.json",
];

/// What `lpsim bench train` measures.
#[derive(Clone, Debug)]
pub struct TrainBench {
    /// The workload: a classification data set with an MLP model (its hidden widths are
    /// replaced by [`TrainBench::hidden`]).
    pub workload: PathBuf,
    /// Algorithm names.
    pub algos: Vec<String>,
    /// Architecture files.
    pub archs: Vec<PathBuf>,
    /// Timed epochs per run, after one warm-up epoch.
    pub epochs: usize,
    /// The MLP's one hidden width (the bench model is `d-hidden-classes`).
    pub hidden: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Seed of the runs and of the native model.
    pub seed: u64,
}

/// One algorithm on one architecture with one pool size.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TrainRow {
    /// Algorithm name.
    pub algo: String,
    /// Architecture name.
    pub arch: String,
    /// Worker threads of the pool.
    pub threads: usize,
    /// The MLP's widths, e.g. `64-256-10`, or a convolutional workload's name.
    pub model: String,
    /// Examples per step.
    pub batch: usize,
    /// Median wall time of an emulated epoch, ms.
    pub ms_per_epoch: f64,
    /// Median wall time of a native `f32` epoch, ms.
    pub native_ms_per_epoch: f64,
    /// The median over the timed epochs of `epoch_ms[i] / native_epoch_ms[i]`: how many native
    /// epochs one emulated epoch costs, each emulated epoch against the native one run right
    /// after it (a drift of the machine's speed moves both sides of a pair alike).
    pub times_native: f64,
    /// Median of `train_epoch_ms`: the emulated epoch without the driver's training-set loss,
    /// ms.
    pub train_ms_per_epoch: f64,
    /// The median over the timed epochs of `train_epoch_ms[i] / native_epoch_ms[i]`.
    pub train_times_native: f64,
    /// Wall time of each timed emulated epoch (epochs 2, 3, ...), ms.
    pub epoch_ms: Vec<f64>,
    /// Each timed emulated epoch minus its `f64` training-set loss (the same evaluation, on the
    /// epoch's parameters, timed again in the epoch callback), ms.
    pub train_epoch_ms: Vec<f64>,
    /// Wall time of the native epoch run right after each timed emulated epoch, ms.
    pub native_epoch_ms: Vec<f64>,
    /// Steps per emulated epoch (the native epoch takes `ceil(N / batch)`, as the mini-batch
    /// driver; the SVRG family's epoch is `2 N / batch` inner steps plus a full gradient).
    pub steps_per_epoch: u64,
    /// Median wall time of the `f64` training-set loss the driver evaluates after every epoch
    /// (part of `ms_per_epoch`, not of `train_ms_per_epoch`), ms.
    pub loss_eval_ms: f64,
    /// The emulated run's training loss after its last epoch (a sanity check: a run that went
    /// wrong is not a speed figure).
    pub train_loss: f64,
}

/// Why the bench cannot run.
#[derive(Debug, Error)]
pub enum TrainBenchError {
    /// An algorithm name that names none.
    #[error(transparent)]
    Algo(#[from] AlgoError),
    /// Preparing or running a configuration.
    #[error("{algo} on {arch}: {cause}")]
    Run {
        /// Algorithm name.
        algo: String,
        /// Architecture file.
        arch: String,
        /// The cause (boxed: a run error is large).
        cause: Box<RunError>,
    },
    /// The workload does not train an MLP or CNN classifier.
    #[error(
        "workload {0}: bench train needs a classification workload with model.kind = mlp or cnn"
    )]
    NotMlp(String),
    /// A CNN the native network does not cover.
    #[error("workload {workload}: {cause}")]
    Native {
        /// The workload file.
        workload: String,
        /// What it does not cover.
        cause: String,
    },
    /// A run diverged, so its epochs are not comparable.
    #[error(
        "{algo} on {arch} diverged at epoch {epoch} (its loss is not finite), so its epochs \
         cannot be timed; pick its hyperparameters in the workload's `hyper` map"
    )]
    Diverged {
        /// Algorithm name.
        algo: String,
        /// Architecture name.
        arch: String,
        /// The epoch (1-based).
        epoch: usize,
    },
}

/// A ReLU MLP with one hidden layer trained natively in `f32` with plain SGD on softmax
/// cross-entropy: the reference epoch of `lpsim bench train`. Parameters are laid out as the
/// library's ([`Model::params`]): `w0` (`d x h`), `b0` (`1 x h`), `w1` (`h x C`),
/// `b1` (`1 x C`).
#[derive(Clone, Debug)]
pub struct NativeMlp {
    w0: Array2<f32>,
    b0: Array1<f32>,
    w1: Array2<f32>,
    b1: Array1<f32>,
    draws: RandomStream,
    step: u64,
}

impl NativeMlp {
    /// He-initialized weights (normal, variance `2 / fan_in`, seeded), zero biases.
    pub fn new(d: usize, hidden: usize, classes: usize, seed: u64) -> Self {
        let init = |rows: usize, cols: usize, stream: u64| {
            let s = RandomStream::new(seed, stream);
            let scale = (2.0 / rows as f64).sqrt();
            Array2::from_shape_fn((rows, cols), |(r, c)| {
                (s.normal_f64((r * cols + c) as u64) * scale) as f32
            })
        };
        NativeMlp {
            w0: init(d, hidden, 1),
            b0: Array1::zeros(hidden),
            w1: init(hidden, classes, 2),
            b1: Array1::zeros(classes),
            draws: RandomStream::new(seed, 3),
            step: 0,
        }
    }

    /// Class probabilities of `x` and the hidden pre-activations.
    fn forward(&self, x: ArrayView2<f32>) -> (Array2<f32>, Array2<f32>) {
        let z = x.dot(&self.w0) + &self.b0;
        let h = z.mapv(|v| v.max(0.0));
        let mut p = h.dot(&self.w1) + &self.b1;
        softmax_rows(&mut p);
        (p, z)
    }

    /// One epoch of `ceil(N / batch)` SGD steps with step size `lr`, each on `batch` rows of
    /// `x` drawn uniformly with replacement; returns the mean of the steps' batch losses.
    pub fn epoch(&mut self, x: &Array2<f32>, labels: &[usize], batch: usize, lr: f32) -> f32 {
        let n = x.nrows();
        let steps = n.div_ceil(batch.max(1));
        let mut total = 0.0;
        for _ in 0..steps {
            let idx = draw_batch(&self.draws, self.step, batch, n);
            self.step += 1;
            let xb = x.select(Axis(0), &idx);
            let (mut g, z) = self.forward(xb.view());
            total += xent_grad(&mut g, &idx, labels);
            g /= batch as f32;
            let h = z.mapv(|v| v.max(0.0));
            let mut dh = g.dot(&self.w1.t());
            dh.zip_mut_with(&z, |d, &zv| {
                if zv <= 0.0 {
                    *d = 0.0;
                }
            });
            self.w1.scaled_add(-lr, &h.t().dot(&g));
            self.b1.scaled_add(-lr, &g.sum_axis(Axis(0)));
            self.w0.scaled_add(-lr, &xb.t().dot(&dh));
            self.b0.scaled_add(-lr, &dh.sum_axis(Axis(0)));
        }
        total / (steps * batch) as f32
    }

    /// The parameters as `f64` tensors in the library's layout, for [`Model::loss`].
    pub fn params_f64(&self) -> Vec<ArrayD<f64>> {
        let row = |b: &Array1<f32>| b.mapv(f64::from).insert_axis(Axis(0)).into_dyn();
        vec![
            self.w0.mapv(f64::from).into_dyn(),
            row(&self.b0),
            self.w1.mapv(f64::from).into_dyn(),
            row(&self.b1),
        ]
    }
}

/// Row-wise softmax in place (the maximum subtracted).
pub(crate) fn softmax_rows(p: &mut Array2<f32>) {
    for mut row in p.rows_mut() {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
    }
}

/// Class probabilities `p` of the examples `idx` to `p - onehot(labels[idx])`, the gradient of
/// the summed cross-entropy with respect to the logits; returns that sum.
pub(crate) fn xent_grad(p: &mut Array2<f32>, idx: &[usize], labels: &[usize]) -> f32 {
    let mut total = 0.0;
    for (mut row, &i) in p.rows_mut().into_iter().zip(idx) {
        let k = labels[i];
        total -= row[k].max(f32::MIN_POSITIVE).ln();
        row[k] -= 1.0;
    }
    total
}

/// `batch` example indices below `n` drawn uniformly with replacement for step `step`, as the
/// mini-batch driver draws its batches.
pub(crate) fn draw_batch(draws: &RandomStream, step: u64, batch: usize, n: usize) -> Vec<usize> {
    (0..batch)
        .map(|j| {
            let u = draws.uniform_f64(step * batch as u64 + j as u64);
            ((u * n as f64) as usize).min(n - 1)
        })
        .collect()
}

/// The training split of a prepared MLP classification run, in `f32`, with its labels.
pub fn native_data(p: &Prepared) -> Option<(Array2<f32>, Vec<usize>)> {
    let d = p.data.as_ref()?;
    let Targets::Classes(labels) = &d.y_train else {
        return None;
    };
    Some((d.x_train.mapv(|v| v as f32), labels.to_vec()))
}

/// Resolve one configuration: the workload's run with `epochs + 1` epochs of `batch`, samples
/// kept from the first epoch (a sampler's burn-in must be below its epochs), and the model's
/// hidden widths replaced by `[hidden]`; checked as the driver checks it.
fn prepare_one(cfg: &TrainBench, algo: &str, arch: &Path) -> Result<Prepared, TrainBenchError> {
    let wrap = |cause| TrainBenchError::Run {
        algo: algo.to_string(),
        arch: arch.display().to_string(),
        cause: Box::new(cause),
    };
    let parsed: Algo = algo.parse().map_err(|e| wrap(RunError::Algo(e)))?;
    let mut set = std::collections::BTreeMap::new();
    set.insert("epochs".to_string(), (cfg.epochs.max(1) + 1).to_string());
    set.insert("batch".to_string(), cfg.batch.to_string());
    if Hyper::defaults(parsed)
        .iter()
        .any(|(n, _, _)| *n == "burn_in")
    {
        set.insert("burn_in".to_string(), "0".to_string());
    }
    let mut p = prepare(&RunSpec {
        workload_path: cfg.workload.clone(),
        algo: algo.to_string(),
        arch_path: arch.to_path_buf(),
        seed: cfg.seed,
        set,
    })
    .map_err(wrap)?;
    let classifier = native_data(&p).is_some();
    let m = &p.model;
    match m.classes() {
        Some(classes) if classifier && m.kind() == ModelKind::Mlp => {
            p.model = Model::mlp(m.inputs(), &[cfg.hidden], classes, m.l2())
                .map_err(|e| wrap(AlgoError::from(e).into()))?;
        }
        // A convolutional network is timed as the workload gives it.
        Some(_) if classifier && m.kind() == ModelKind::Cnn => {}
        _ => return Err(TrainBenchError::NotMlp(cfg.workload.display().to_string())),
    }
    // The driver's own checks (the model, the data, memory for the widened model and the
    // batch), before anything is allocated or timed.
    algo::step_graph(p.algo, &p.model, p.data.as_ref(), &p.arch, &p.hyper)
        .map_err(|e| wrap(e.into()))?;
    Ok(p)
}

/// The native `f32` network of a run: the bench's MLP, or the workload's CNN.
enum NativeNet {
    Mlp(Box<NativeMlp>),
    Cnn(NativeCnn),
}

impl NativeNet {
    fn epoch(&mut self, x: &Array2<f32>, labels: &[usize], batch: usize, lr: f32) -> f32 {
        match self {
            NativeNet::Mlp(m) => m.epoch(x, labels, batch, lr),
            NativeNet::Cnn(c) => c.epoch(x, labels, batch, lr),
        }
    }
}

/// The native network of a prepared run (`d` inputs, `classes` classes) and the model's name
/// in the report.
fn native_net(
    cfg: &TrainBench,
    p: &Prepared,
    d: usize,
    classes: usize,
) -> Result<(NativeNet, String), TrainBenchError> {
    let ModelSpec::Cnn(spec) = &p.workload.model else {
        let mlp = NativeMlp::new(d, cfg.hidden, classes, cfg.seed);
        return Ok((
            NativeNet::Mlp(Box::new(mlp)),
            format!("{d}-{}-{classes}", cfg.hidden),
        ));
    };
    let [c, h, w] = p.model.input_shape()[..] else {
        return Err(TrainBenchError::NotMlp(cfg.workload.display().to_string()));
    };
    let cnn = NativeCnn::new(spec, [c, h, w], &p.model, cfg.seed).map_err(|cause| {
        TrainBenchError::Native {
            workload: cfg.workload.display().to_string(),
            cause,
        }
    })?;
    Ok((NativeNet::Cnn(cnn), p.workload.name.clone()))
}

/// Time every algorithm on every architecture on the current rayon pool (run it inside a pool
/// of the wanted size), their epochs alternating with native ones (see the module docs). Every
/// configuration is resolved before any is timed, so a bad name fails at once.
pub fn bench_train(cfg: &TrainBench) -> Result<Vec<TrainRow>, TrainBenchError> {
    for algo in &cfg.algos {
        algo.parse::<Algo>()?;
    }
    let mut runs = Vec::new();
    for algo in &cfg.algos {
        for arch in &cfg.archs {
            runs.push(prepare_one(cfg, algo, arch)?);
        }
    }
    let threads = rayon::current_num_threads();
    let mut rows = Vec::new();
    for p in &runs {
        let data = native_data(p)
            .ok_or_else(|| TrainBenchError::NotMlp(cfg.workload.display().to_string()))?;
        let (d, classes) = match p.model.classes() {
            Some(classes) => (p.model.inputs(), classes),
            None => return Err(TrainBenchError::NotMlp(cfg.workload.display().to_string())),
        };
        let (mut native, model) = native_net(cfg, p, d, classes)?;
        let lr = p.hyper.get("lr") as f32;
        let mut native_epoch = || {
            let t = Instant::now();
            std::hint::black_box(native.epoch(&data.0, &data.1, cfg.batch, lr));
            t.elapsed().as_secs_f64()
        };

        // Emulated and native epochs alternate: the native one runs inside the callback,
        // between two emulated epochs, outside their timing; so does the loss evaluation timed
        // again.
        let train = p.data.as_ref().expect("checked by native_data");
        let (mut epoch_s, mut native_s, mut loss_s) = (Vec::new(), Vec::new(), Vec::new());
        let mut started = Instant::now();
        let mut steps = 0;
        let mut last_loss = f64::NAN;
        let outcome = algo::train(
            p.algo,
            &p.model,
            p.data.as_ref(),
            &p.arch,
            &p.hyper,
            cfg.seed,
            &mut |s| {
                let elapsed = started.elapsed().as_secs_f64();
                let native = native_epoch();
                let t = Instant::now();
                let data = Some((train.x_train.view(), &train.y_train));
                std::hint::black_box(p.model.train_loss(&s.params, data));
                let loss = t.elapsed().as_secs_f64();
                // Epoch 1 (the driver's setup included) and the first native epoch warm up.
                if s.epoch > 1 {
                    epoch_s.push(elapsed);
                    native_s.push(native);
                    loss_s.push(loss);
                }
                steps = s.steps / s.epoch as u64;
                last_loss = s.train_loss;
                started = Instant::now();
            },
        )
        .map_err(|e| TrainBenchError::Run {
            algo: p.algo.to_string(),
            arch: p.arch.name.clone(),
            cause: Box::new(e.into()),
        })?;
        if let Some(epoch) = outcome.diverged_at {
            return Err(TrainBenchError::Diverged {
                algo: p.algo.to_string(),
                arch: p.arch.name.clone(),
                epoch,
            });
        }
        let ms = |v: &[f64]| v.iter().map(|s| s * 1e3).collect::<Vec<_>>();
        let (epoch_ms, native_ms, loss_ms) = (ms(&epoch_s), ms(&native_s), ms(&loss_s));
        let train_ms: Vec<f64> = epoch_ms.iter().zip(&loss_ms).map(|(e, l)| e - l).collect();
        let ratios =
            |v: &[f64]| -> Vec<f64> { v.iter().zip(&native_ms).map(|(e, n)| e / n).collect() };
        rows.push(TrainRow {
            algo: p.algo.to_string(),
            arch: p.arch.name.clone(),
            threads,
            model,
            batch: cfg.batch,
            ms_per_epoch: median(&mut epoch_ms.clone()),
            native_ms_per_epoch: median(&mut native_ms.clone()),
            times_native: median(&mut ratios(&epoch_ms)),
            train_ms_per_epoch: median(&mut train_ms.clone()),
            train_times_native: median(&mut ratios(&train_ms)),
            epoch_ms,
            train_epoch_ms: train_ms,
            native_epoch_ms: native_ms,
            steps_per_epoch: steps,
            loss_eval_ms: median(&mut loss_ms.clone()),
            train_loss: last_loss,
        });
    }
    Ok(rows)
}
