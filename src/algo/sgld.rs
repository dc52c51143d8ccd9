//! The mini-batch driver of `sgd`, `lp-sgd`, `sgld`, `lp-sgld-{f,naive,vc}`, the `csgld` variants
//! and `qsgld` (ALGORITHMS.md 1.1, 1.3, 1.4, 3.2): one step graph per mini-batch.
//!
//! Per parameter tensor `p` with weight gradient `g = Q_G(grad of the mean loss)` (the weight
//! gradient matmul's output rounding) and `d = g + l2 p` (weight decay in `fp32`, after gradient
//! quantization, as `bnn/optim.py`), with `lr` the scheduled step size and `N` the training-set
//! size (1 for the Gaussian toy):
//! - `sgd`: `p <- p - lr d` in `fp32`; `lp-sgd`: the same rounded to the weight format;
//! - `sgld`: `p <- p - lr d + sqrt(2 lr T / N) xi` in `fp32`;
//! - `sgd`, `sgld` and `csgld` build their whole step on the full-precision unit (`fp32` above
//!   is `full_precision.format`, the matmuls `full_precision.mac`); the others on the
//!   low-precision datapath, where `fp32` is the vector unit's full-precision result format;
//! - `lp-sgld-f`: the same on an `fp32` master copy `m`, the gradient taken at `Q_W(m)`;
//! - `lp-sgld-naive`: `p <- Q_W(p - lr d + sqrt(2 lr T / N) xi)`;
//! - `lp-sgld-vc`: `p <- Q^vc(p - lr d, v = 2 lr T / N)` (`mu` in `fp32`, not quantized);
//! - `qsgld`: `h = lr d`, `p <- p - floor(Q_p (h + r)) / Q_p` in `fp32`.
//!
//! Mini-batches are drawn uniformly with replacement from the counter-based stream (chosen; the
//! reference code shuffles per epoch). Schedules, evaluated every step with `t = step / total`:
//! `decay` (factor 1 up to t = 0.5, linear to 0.01 at t = 0.9, then 0.01) and the cyclical
//! `0.5 (cos(pi (k mod c) / c) + 1)`, `c = floor(total / cycles)`.

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayD, Axis};

use crate::algo::model::{fp32, param_shapes, Builder};
use crate::algo::qsgld::Schedule;
use crate::algo::{
    loss, Algo, AlgoError, EpochStats, Hyper, ModelShape, Targets, TrainData, TrainOutcome,
};
use crate::arch::Architecture;
use crate::cost::Tally;
use crate::format::{Format, Quantizer};
use crate::graph::exec::stream_id;
use crate::graph::{execute, Graph, Op, StepResult};
use crate::round::{RandomStream, Rounding};

/// How a step updates the weights.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Update {
    Descent,
    Sgld,
    SgldF,
    Naive,
    Vc,
    Qsgld,
}

impl Update {
    fn of(algo: Algo) -> Update {
        match algo {
            Algo::Sgd | Algo::LpSgd | Algo::Svrg | Algo::LpSvrg | Algo::Halp => Update::Descent,
            Algo::Sgld | Algo::Csgld => Update::Sgld,
            Algo::LpSgldF | Algo::LpCsgldF => Update::SgldF,
            Algo::LpSgldNaive | Algo::LpCsgldNaive => Update::Naive,
            Algo::LpSgldVc | Algo::LpCsgldVc => Update::Vc,
            Algo::Qsgld => Update::Qsgld,
        }
    }
}

/// The step-size factor at `step` of `total` (decay or cyclical schedule).
pub(crate) fn lr_factor(algo: Algo, hyper: &Hyper, step: u64, total: u64) -> f64 {
    if algo.is_cyclic() {
        let c = (total / hyper.get("cycles").max(1.0) as u64).max(1);
        return 0.5 * ((std::f64::consts::PI * (step % c) as f64 / c as f64).cos() + 1.0);
    }
    if hyper.get("decay") == 0.0 {
        return 1.0;
    }
    let t = step as f64 / total.max(1) as f64;
    if t <= 0.5 {
        1.0
    } else if t <= 0.9 {
        1.0 - 0.99 * (t - 0.5) / 0.4
    } else {
        0.01
    }
}

/// Mini-batch sampling and the data in the `fp32` carrier.
pub(crate) struct Batches {
    x: Array2<f64>,
    y: Array2<f64>,
    stream: RandomStream,
    /// Examples.
    pub n: usize,
    /// Batch size.
    pub batch: usize,
}

impl Batches {
    /// The training split, rounded to `fp32` (the format data are stored in), targets one-hot
    /// (`N x C`) or a column (`N x 1`).
    pub fn new(data: &TrainData, model: &ModelShape, batch: usize, seed: u64) -> Self {
        Batches {
            x: data.x_train.mapv(|v| f64::from(v as f32)),
            y: targets_matrix(&data.y_train, model),
            stream: RandomStream::new(seed, stream_id("batch", 0, 0)),
            n: data.x_train.nrows(),
            batch,
        }
    }

    /// The example indices of step `step` (uniform, with replacement).
    pub fn indices(&self, step: u64) -> Vec<usize> {
        (0..self.batch)
            .map(|j| {
                let u = self.stream.uniform_f64(step * self.batch as u64 + j as u64);
                ((u * self.n as f64) as usize).min(self.n - 1)
            })
            .collect()
    }

    /// Features and targets of `idx` as feeds `x`, `y` (the SVRG family's inner steps, whose
    /// graphs take the rows directly).
    pub fn feed_rows(&self, idx: &[usize], feeds: &mut BTreeMap<String, ArrayD<f64>>) {
        feeds.insert("x".into(), self.x.select(Axis(0), idx).into_dyn());
        feeds.insert("y".into(), self.y.select(Axis(0), idx).into_dyn());
    }

    /// The whole training set as feeds `x_all`, `y_all` (once per run) and the indices of one
    /// step as feed `idx` (every step); the step graph gathers the batch.
    pub fn feed(&self, idx: &[usize], feeds: &mut BTreeMap<String, ArrayD<f64>>) {
        if !feeds.contains_key("x_all") {
            feeds.insert("x_all".into(), self.x.clone().into_dyn());
            feeds.insert("y_all".into(), self.y.clone().into_dyn());
        }
        let column = ndarray::Array2::from_shape_fn((idx.len(), 1), |(r, _)| idx[r] as f64);
        feeds.insert("idx".into(), column.into_dyn());
    }

    /// All features (`N x d`) and targets.
    pub fn all(&self) -> (&Array2<f64>, &Array2<f64>) {
        (&self.x, &self.y)
    }
}

/// One-hot class targets or a column of values, in `f64`.
fn targets_matrix(y: &Targets, model: &ModelShape) -> Array2<f64> {
    match (y, model) {
        (
            Targets::Classes(c),
            ModelShape::Logistic { classes, .. } | ModelShape::Mlp { classes, .. },
        ) => {
            let mut m = Array2::zeros((c.len(), *classes));
            for (i, &k) in c.iter().enumerate() {
                m[[i, k]] = 1.0;
            }
            m
        }
        (Targets::Values(v), _) => v.mapv(|t| f64::from(t as f32)).insert_axis(Axis(1)),
        (Targets::Classes(c), _) => Array2::zeros((c.len(), 1)),
    }
}

/// Initial parameters: zeros, except MLP weights `N(0, 2 / fan_in)` (He), rounded to `format`.
pub(crate) fn init_params(
    model: &ModelShape,
    format: Format,
    rounding: Rounding,
    seed: u64,
) -> Vec<Array2<f64>> {
    param_shapes(model)
        .iter()
        .enumerate()
        .map(|(l, &[r, c])| {
            if !matches!(model, ModelShape::Mlp { .. }) {
                return Array2::zeros((r, c));
            }
            let name = format!("init/w{l}");
            let s = RandomStream::new(seed, stream_id(&name, 0, 0));
            let std = (2.0 / r as f64).sqrt();
            let raw: Vec<f64> = (0..r * c).map(|i| std * s.normal_f64(i as u64)).collect();
            let mut out = vec![0.0; raw.len()];
            // fp32 and the weight formats accept every rounding unit the architecture names.
            if let Ok(q) = Quantizer::new(format, rounding, seed, stream_id(&name, 0, 1)) {
                q.quantize_f64(&raw, &mut out, 0, c);
            }
            Array2::from_shape_vec((r, c), out).expect("r x c elements")
        })
        .collect()
}

/// Per-epoch bookkeeping shared by the drivers: counts, samples, divergence.
pub(crate) struct Run<'a> {
    algo: Algo,
    hyper: &'a Hyper,
    epochs: usize,
    pub tally: Tally,
    epoch_tally: Tally,
    samples: Vec<Vec<Array2<f64>>>,
    pub diverged_at: Option<usize>,
}

impl<'a> Run<'a> {
    pub fn new(algo: Algo, hyper: &'a Hyper, epochs: usize) -> Self {
        Run {
            algo,
            hyper,
            epochs,
            tally: Tally::default(),
            epoch_tally: Tally::default(),
            samples: Vec::new(),
            diverged_at: None,
        }
    }

    /// Add one step's actions, on the datapath that did them.
    pub fn add(&mut self, step: &StepResult) {
        self.epoch_tally
            .add(step.datapath, &step.counts, &step.work);
    }

    /// Close epoch `epoch` (1-based) with parameters `params`: report it, keep a sample, and
    /// say whether the run diverged.
    pub fn end_epoch(
        &mut self,
        epoch: usize,
        params: &[Array2<f64>],
        train_loss: f64,
        on_epoch: &mut dyn FnMut(EpochStats),
    ) -> bool {
        let tally = std::mem::take(&mut self.epoch_tally);
        self.tally.merge(&tally);
        if self.algo.is_sampler() && self.keep_sample(epoch) {
            self.samples.push(params.to_vec());
        }
        on_epoch(EpochStats {
            epoch,
            train_loss,
            tally,
            params: params.to_vec(),
        });
        if !train_loss.is_finite() || params.iter().any(|p| p.iter().any(|v| !v.is_finite())) {
            self.diverged_at = Some(epoch);
        }
        self.diverged_at.is_some()
    }

    /// Whether the parameters after `epoch` are a sample: the last `samples` epochs, or (cyclical)
    /// the last `save_per_cycle` epochs of each cycle.
    fn keep_sample(&self, epoch: usize) -> bool {
        if self.algo.is_cyclic() {
            let per = (self.epochs / self.hyper.get("cycles").max(1.0) as usize).max(1);
            let save = self.hyper.get("save_per_cycle") as usize;
            (epoch - 1) % per + save >= per
        } else {
            epoch + (self.hyper.get("samples") as usize) > self.epochs
        }
    }

    /// The outcome with the final parameters.
    pub fn finish(self, params: Vec<Array2<f64>>, chain: Option<Array2<f64>>) -> TrainOutcome {
        TrainOutcome {
            params,
            samples: self.samples,
            diverged_at: self.diverged_at,
            chain,
            tally: self.tally,
            derived: BTreeMap::new(),
        }
    }
}

/// Constants of one step graph.
struct StepConsts {
    lr: f64,
    noise_var: f64,
    qsgld: (f64, f64, bool),
}

/// The storage format and rounding of the stepped parameters: the weight format for the
/// low-precision stores, else the full-precision format (the full-precision algorithms, the
/// master copy of `lp-sgld-f`, QSGLD's iterate).
fn storage(update: Update, algo: Algo, arch: &Architecture) -> (Format, Rounding) {
    match (update, algo) {
        (Update::Naive | Update::Vc, _) | (Update::Descent, Algo::LpSgd) => {
            (arch.formats.weights, arch.formats.rounding.weights)
        }
        _ => (arch.full_precision.format, Rounding::NearestEven),
    }
}

/// The data tensors of a mini-batch step: batch rows, training examples, features, targets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchShape {
    rows: usize,
    n: usize,
    d: usize,
    t: usize,
}

/// The format of gather indices: 32-bit integers.
fn index_format() -> Format {
    crate::format::alias("int32").expect("int32 is a built-in alias")
}

/// The step graph of one mini-batch (`batch = None` for the Gaussian toy).
fn step_graph(
    algo: Algo,
    model: &ModelShape,
    arch: &Architecture,
    batch: Option<BatchShape>,
    c: &StepConsts,
) -> Result<Graph, AlgoError> {
    let update = Update::of(algo);
    let (sf, sr) = storage(update, algo, arch);
    let (wf, wr) = (arch.formats.weights, arch.formats.rounding.weights);
    let mut b = Builder::on(algo.datapath(), arch);
    let (x, y) = match batch {
        Some(io) => {
            // The training set stays in DRAM; each step gathers its mini-batch by index.
            let idx = b.feed(
                Op::Input,
                "idx",
                &[io.rows, 1],
                index_format(),
                Rounding::NearestEven,
            )?;
            let x_all = b.feed(
                Op::Input,
                "x_all",
                &[io.n, io.d],
                fp32(),
                Rounding::NearestEven,
            )?;
            let y_all = b.feed(
                Op::Input,
                "y_all",
                &[io.n, io.t],
                fp32(),
                Rounding::NearestEven,
            )?;
            (
                Some(b.op(
                    Op::Gather,
                    "x",
                    fp32(),
                    Rounding::NearestEven,
                    &[x_all, idx],
                )?),
                Some(b.op(
                    Op::Gather,
                    "y",
                    fp32(),
                    Rounding::NearestEven,
                    &[y_all, idx],
                )?),
            )
        }
        None => (None, None),
    };
    let shapes = param_shapes(model);
    let mut params = Vec::new();
    let mut fwd = Vec::new();
    for (l, s) in shapes.iter().enumerate() {
        let p = b.feed(Op::Param, &format!("w{l}"), s, sf, sr)?;
        params.push(p);
        fwd.push(if update == Update::SgldF {
            b.op(Op::Quantize, &format!("qw{l}"), wf, wr, &[p])?
        } else {
            p
        });
    }
    let (out, grads) = b.gradients(model, x, y, &fwd)?;
    let l2 = match model {
        ModelShape::Logistic { l2, .. } => *l2,
        _ => 0.0,
    };
    let std = c.noise_var.sqrt();
    let mut outputs = vec![b.b.meta(out).name.clone()];
    for (l, (&p, &g)) in params.iter().zip(&grads).enumerate() {
        let d = if l2 > 0.0 {
            b.f32op(Op::Axpy { c: l2 }, &format!("d{l}"), &[g, p])?
        } else {
            g
        };
        let next = format!("w{l}.next");
        let step = Op::Axpy { c: -c.lr };
        match update {
            Update::Descent => {
                b.op(step, &next, sf, sr, &[p, d])?;
            }
            Update::Sgld | Update::SgldF | Update::Naive => {
                let mu = b.f32op(step, &format!("mu{l}"), &[p, d])?;
                b.op(Op::GaussianNoise { std }, &next, sf, sr, &[mu])?;
            }
            Update::Vc => {
                let mu = b.f32op(step, &format!("mu{l}"), &[p, d])?;
                b.op(Op::VcQuantize { v: c.noise_var }, &next, sf, sr, &[mu])?;
            }
            Update::Qsgld => {
                let (q, cc, nearest) = c.qsgld;
                let h = b.f32op(Op::Scale { c: c.lr }, &format!("step{l}"), &[d])?;
                let hq = b.f32op(
                    Op::QsgldQuantize { q, c: cc, nearest },
                    &format!("qstep{l}"),
                    &[h],
                )?;
                b.f32op(Op::Sub, &next, &[p, hq])?;
            }
        }
        outputs.push(next);
    }
    let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
    Ok(b.b.build(&names)?)
}

/// The step graph of `algo` at step 0 with the default schedule (for `lpsim graph`).
pub fn example_graph(
    algo: Algo,
    model: &ModelShape,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<Graph, AlgoError> {
    let batch = hyper.count("batch", 1)? as usize;
    let shapes = param_shapes(model);
    // Without a data set the data tensor is drawn with as many rows as a batch.
    let io = match model {
        ModelShape::Gaussian { .. } => None,
        _ => Some(BatchShape {
            rows: batch,
            n: batch,
            d: shapes[0][0],
            t: shapes[shapes.len() - 1][1],
        }),
    };
    let lr = hyper.get("lr");
    let consts = StepConsts {
        lr,
        noise_var: 2.0 * lr * hyper.get("temperature"),
        qsgld: (hyper.get("eta"), 0.0, hyper.get("nearest") != 0.0),
    };
    step_graph(algo, model, arch, io, &consts)
}

/// Run the mini-batch driver (see the module docs).
pub(crate) fn train(
    algo: Algo,
    model: &ModelShape,
    data: Option<&TrainData>,
    arch: &Architecture,
    hyper: &Hyper,
    seed: u64,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    let update = Update::of(algo);
    let epochs = hyper.count("epochs", 1)? as usize;
    let batch = hyper.count("batch", 1)? as usize;
    let batches = data.map(|d| Batches::new(d, model, batch, seed));
    let n_data = batches.as_ref().map_or(1, |b| b.n);
    let epoch_len = match hyper.count("epoch_len", 0)? {
        0 if batches.is_none() => 1000,
        0 => n_data.div_ceil(batch) as u64,
        e => e,
    };
    let total = epochs as u64 * epoch_len;
    let (sf, sr) = storage(update, algo, arch);
    let mut params = init_params(model, sf, sr, seed);
    let shapes = param_shapes(model);
    let io = batches.as_ref().map(|b| BatchShape {
        rows: batch,
        n: b.n,
        d: shapes[0][0],
        t: b.all().1.ncols(),
    });
    let schedule = Schedule {
        eta: hyper.get("eta"),
        base: hyper.get("base"),
        kappa: hyper.get("kappa"),
        rho: hyper.get("rho"),
        total_epochs: epochs as f64,
        batches_per_epoch: epoch_len as f64,
    };
    if update == Update::Qsgld && !(schedule.eta > 0.0 && schedule.base > 1.0) {
        return Err(AlgoError::BadHyper {
            name: "eta, base".into(),
            reason: format!(
                "{}, {}: need eta > 0 and base > 1",
                schedule.eta, schedule.base
            ),
        });
    }
    let temperature = hyper.get("temperature");
    let burn = (hyper.get("burn_in").clamp(0.0, 1.0) * total as f64) as u64;
    let thin = hyper.get("thin").max(1.0) as u64;
    let mut chain: Vec<f64> = Vec::new();
    let mut run = Run::new(algo, hyper, epochs);
    let mut feeds = BTreeMap::new();
    for step in 0..total {
        let lr = hyper.get("lr") * lr_factor(algo, hyper, step, total);
        let t_e = schedule.epoch_time(step);
        let consts = StepConsts {
            lr,
            noise_var: 2.0 * lr * temperature / n_data as f64,
            qsgld: (
                schedule.resolution(t_e),
                lr * schedule.switch(t_e),
                hyper.get("nearest") != 0.0,
            ),
        };
        let graph = step_graph(algo, model, arch, io, &consts)?;
        if let Some(b) = &batches {
            b.feed(&b.indices(step), &mut feeds);
        }
        for (l, p) in params.iter().enumerate() {
            feeds.insert(format!("w{l}"), p.clone().into_dyn());
        }
        let mut res = execute(&graph, arch, &feeds, seed, step)?;
        for (l, p) in params.iter_mut().enumerate() {
            let v = res
                .values
                .remove(&format!("w{l}.next"))
                .expect("the step graph outputs every parameter");
            *p = v.into_dimensionality().expect("parameters are matrices");
        }
        run.add(&res);
        if matches!(model, ModelShape::Gaussian { .. }) && step >= burn && (step - burn) % thin == 0
        {
            chain.extend(params[0].iter());
        }
        if (step + 1) % epoch_len == 0 {
            let epoch = ((step + 1) / epoch_len) as usize;
            let l = match data {
                Some(d) => loss(model, &params, d.x_train.view(), &d.y_train),
                None => params[0].mapv(|v| v * v / 2.0).mean().unwrap_or(0.0),
            };
            if run.end_epoch(epoch, &params, l, on_epoch) {
                break;
            }
        }
    }
    let chain = match model {
        ModelShape::Gaussian { dim } => {
            Some(Array2::from_shape_vec((chain.len() / dim, *dim), chain).expect("whole rows"))
        }
        _ => None,
    };
    Ok(run.finish(params, chain))
}
