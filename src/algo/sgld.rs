//! The mini-batch driver of `sgd`, `lp-sgd`, `sgld`, `lp-sgld-{f,naive,vc}`, the `csgld` variants
//! and `qsgld` (docs/algorithms.md): one step graph per mini-batch.
//!
//! Per parameter tensor `p` with weight gradient `g = Q_G(grad of the mean loss)` (the weight
//! gradient matmul's output rounding) and `d = g + l2 p` (weight decay in `fp32`, after gradient
//! quantization, as `bnn/optim.py`), with `lr` the scheduled step size and `N` the training-set
//! size (1 for a Gaussian target):
//! - `sgd`: `p <- p - lr d` in `fp32`; `lp-sgd`: the same rounded to the weight format;
//! - `sgld`: `p <- p - lr d + sqrt(2 lr T / N) xi` in `fp32`;
//! - `sgd`, `sgld` and `csgld` build their whole step on the full-precision unit (`fp32` above
//!   is `full_precision.format`, the matmuls `full_precision.mac`); the others on the
//!   low-precision datapath, where `fp32` is the vector unit's full-precision result format;
//! - `lp-sgld-f`: the same on an `fp32` master copy `m`, the gradient taken at `Q_W(m)`;
//! - `lp-sgld-naive`: `p <- Q_W(p - lr d + sqrt(2 lr T / N) xi)`;
//! - `lp-sgld-vc`: `p <- Q^vc(p - lr d, v = 2 lr T / N)` (`mu` in `fp32`, not quantized);
//! - `qsgld`: `h = -lr d`, `p <- p + floor(Q_p (h + r)) / Q_p` in `fp32` (the authors' `QtSGD`,
//!   [`crate::arith::quantize_step`]).
//!
//! Mini-batches are drawn uniformly with replacement from the counter-based stream (chosen; the
//! reference code shuffles per epoch). Schedules, evaluated every step with `t = step / total`:
//! `decay` (factor 1 up to t = 0.5, linear to 0.01 at t = 0.9, then 0.01) and the cyclical
//! `0.5 (cos(pi (k mod c) / c) + 1)`, `c = floor(total / cycles)`. The samplers keep the
//! parameters of the epochs [`crate::algo::samples`] picks (a Gaussian target: the chain's
//! steps). Every step's graph, and the one `lpsim graph` prints, comes from one `Setup`.

use std::collections::{BTreeMap, BTreeSet};

use ndarray::{Array2, ArrayD, Axis};

pub(crate) use crate::algo::batches::{
    augmented_rows, data_format, data_format_on, picked_rows, Batches,
};
pub(crate) use crate::algo::epochs::Run;
use crate::algo::qsgld::{Schedule, Switch};
use crate::algo::samples::SampleSchedule;
use crate::algo::{Algo, AlgoError, EpochStats, Hyper, StepGraph, TrainData, TrainOutcome};
use crate::arch::Architecture;
use crate::cost::Scope;
use crate::format::{Format, Quantizer};
use crate::graph::exec::stream_id;
use crate::graph::{Executor, Graph, Op, Role, Scalar};
use crate::model::{fp32, Builder, Init, Model, ModelKind};
use crate::round::Rounding;

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
        // `cycles` is checked (a whole number >= 1) when the run is set up.
        let c = cycle_len(hyper, total).unwrap_or(1);
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

/// Initial parameters ([`Model::init_params`]: zeros, or He's `N(0, 2 / fan_in)` from the
/// stream `init/w{i}`), rounded to `format` with `rounding` (stream `init/w{i}`, element 1).
pub(crate) fn init_params(
    model: &Model,
    format: Format,
    rounding: Rounding,
    seed: u64,
) -> Vec<ArrayD<f64>> {
    model
        .init_params(seed)
        .into_iter()
        .zip(model.params())
        .map(|(raw, spec)| {
            if spec.init == Init::Zeros {
                return raw;
            }
            let row = raw.len_of(Axis(raw.ndim() - 1));
            let mut out = raw.clone();
            // fp32 and the weight formats accept every rounding unit the architecture names.
            if let Ok(q) = Quantizer::new(format, rounding, seed, stream_id(&spec.stream, 0, 1)) {
                let src = raw.as_slice().expect("a fresh array is contiguous");
                q.quantize_f64(src, out.as_slice_mut().expect("contiguous"), 0, row);
            }
            out
        })
        .collect()
}

// The per-step scalars of the step graph, fed as one-element arrays with each step's data: the
// graph is built once per run.
/// Per-step scalar: `-lr`, the scheduled step size negated (the update's `Axpy` factor).
pub const NEG_LR: &str = "neg_lr";
/// Per-step scalar: the Langevin noise's standard deviation `sqrt(2 lr T / N)`.
pub const NOISE_STD: &str = "noise_std";
/// Per-step scalar: the Langevin noise's variance `2 lr T / N` (the VC quantizer's target).
pub const NOISE_VAR: &str = "noise_var";
/// Per-step scalar: QSGLD's resolution `Q_p`.
pub const QSGLD_Q: &str = "qsgld_q";
/// Per-step scalar: QSGLD's compensation coefficient `lr s(t_e)`.
pub const QSGLD_C: &str = "qsgld_c";

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

/// The data tensors of a mini-batch step: batch rows, training examples, features, targets,
/// and the features' stored format and rounding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchShape {
    rows: usize,
    n: usize,
    d: usize,
    t: usize,
    data: (Format, Rounding),
    /// Whether the host augments the batch's features (fed as `x`, not gathered).
    augmented: bool,
}

/// The format of gather indices: 32-bit integers.
fn index_format() -> Format {
    crate::format::alias("int32").expect("int32 is a built-in alias")
}

/// The step graph of one mini-batch (`batch = None` for the Gaussian toy).
fn step_graph(
    algo: Algo,
    model: &Model,
    arch: &Architecture,
    batch: Option<BatchShape>,
    nearest: bool,
) -> Result<Graph, AlgoError> {
    let update = Update::of(algo);
    let (sf, sr) = storage(update, algo, arch);
    let (wf, wr) = (arch.formats.weights, arch.formats.rounding.weights);
    let mut b = Builder::on(algo.datapath(), arch);
    // The mini-batch's gathers are the data movement; the rest outside the model's layers
    // (weight decay, the update) the algorithm's.
    b.set_scope(Scope::data());
    let (x, y) = match batch {
        Some(io) => {
            // The training set stays in DRAM; each step gathers its mini-batch by index.
            let idx = b.feed(
                Op::Input,
                "idx",
                &[io.rows, 1],
                index_format(),
                Rounding::NearestEven,
                Role::Data,
            )?;
            let y_all = b.feed(
                Op::Input,
                "y_all",
                &[io.n, io.t],
                fp32(),
                Rounding::NearestEven,
                Role::Data,
            )?;
            let x = if io.augmented {
                // The host gathers and augments the batch: its rows arrive as they are.
                let x = b.feed(
                    Op::Input,
                    "x",
                    &[io.rows, io.d],
                    io.data.0,
                    io.data.1,
                    Role::Data,
                )?;
                augmented_rows(&mut b, x)?
            } else {
                let x_all = b.feed(
                    Op::Input,
                    "x_all",
                    &[io.n, io.d],
                    io.data.0,
                    io.data.1,
                    Role::Data,
                )?;
                let x = b.op(
                    Op::Gather,
                    "x",
                    io.data.0,
                    io.data.1,
                    Role::Data,
                    &[x_all, idx],
                )?;
                picked_rows(&mut b, x)?
            };
            (
                Some(x),
                Some(b.op(
                    Op::Gather,
                    "y",
                    fp32(),
                    Rounding::NearestEven,
                    Role::Data,
                    &[y_all, idx],
                )?),
            )
        }
        None => (None, None),
    };
    b.set_scope(Scope::update());
    let shapes = model.param_shapes();
    let mut params = Vec::new();
    let mut fwd = Vec::new();
    for (l, s) in shapes.iter().enumerate() {
        let p = b.feed(Op::Param, &format!("w{l}"), s, sf, sr, Role::Weights)?;
        params.push(p);
        fwd.push(if update == Update::SgldF {
            b.op(Op::Quantize, &format!("qw{l}"), wf, wr, Role::Weights, &[p])?
        } else {
            p
        });
    }
    let (out, grads) = model.gradients(&mut b, x, y, &fwd)?;
    let l2 = model.l2();
    let mut outputs = vec![b.b.meta(out).name.clone()];
    for (l, (&p, &g)) in params.iter().zip(&grads).enumerate() {
        let d = if l2 > 0.0 {
            b.f32op(
                Op::Axpy { c: l2.into() },
                &format!("d{l}"),
                Role::Gradients,
                &[g, p],
            )?
        } else {
            g
        };
        let next = format!("w{l}.next");
        let step = Op::Axpy {
            c: Scalar::Input(NEG_LR),
        };
        match update {
            Update::Descent => {
                b.op(step, &next, sf, sr, Role::Weights, &[p, d])?;
            }
            Update::Sgld | Update::SgldF | Update::Naive => {
                let mu = b.f32op(step, &format!("mu{l}"), Role::Updates, &[p, d])?;
                b.op(
                    Op::GaussianNoise {
                        std: Scalar::Input(NOISE_STD),
                    },
                    &next,
                    sf,
                    sr,
                    Role::Weights,
                    &[mu],
                )?;
            }
            Update::Vc => {
                let mu = b.f32op(step, &format!("mu{l}"), Role::Updates, &[p, d])?;
                let vc = Op::VcQuantize {
                    v: Scalar::Input(NOISE_VAR),
                };
                b.op(vc, &next, sf, sr, Role::Weights, &[mu])?;
            }
            Update::Qsgld => {
                // The authors' QtSGD: h = -lr g, p <- p + floor(Q_p (h + r)) / Q_p.
                let h = b.f32op(
                    Op::Scale {
                        c: Scalar::Input(NEG_LR),
                    },
                    &format!("step{l}"),
                    Role::Updates,
                    &[d],
                )?;
                let hq = b.f32op(
                    Op::QsgldQuantize {
                        q: Scalar::Input(QSGLD_Q),
                        c: Scalar::Input(QSGLD_C),
                        nearest,
                    },
                    &format!("qstep{l}"),
                    Role::Updates,
                    &[h],
                )?;
                b.f32op(Op::Add, &next, Role::Weights, &[p, hq])?;
            }
        }
        outputs.push(next);
    }
    let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
    Ok(b.b.build(&names)?)
}

/// The length in steps of one cycle of the cyclical step size: `floor(total / cycles)`.
fn cycle_len(hyper: &Hyper, total: u64) -> Result<u64, AlgoError> {
    Ok((total / hyper.count("cycles", 1)?).max(1))
}

/// Everything a run of the mini-batch driver fixes before its first step: its length, the shape
/// of its data, its schedules. [`train`] and [`example_graph`] both build their step graphs with
/// [`Setup::graph`], so the graph `lpsim graph` prints is the run's first step, constants
/// included.
struct Setup<'a> {
    algo: Algo,
    model: &'a Model,
    arch: &'a Architecture,
    hyper: &'a Hyper,
    epochs: usize,
    batch: usize,
    epoch_len: u64,
    total: u64,
    /// Training examples `N` in the noise variance `2 lr T / N` (1 for the Gaussian target).
    n_data: usize,
    io: Option<BatchShape>,
    schedule: Schedule,
    nearest: bool,
    /// Which samples a sampler keeps (`None` for the other algorithms): epochs, or steps of
    /// the Gaussian target's chain.
    samples: Option<SampleSchedule>,
}

impl<'a> Setup<'a> {
    /// The setup of `algo` on `model`; `data` is the training set (`None` for the Gaussian
    /// target, or for a graph drawn without a data set: then the data tensor has one batch of
    /// rows and `N` = `batch`).
    fn new(
        algo: Algo,
        model: &'a Model,
        data: Option<&TrainData>,
        arch: &'a Architecture,
        hyper: &'a Hyper,
    ) -> Result<Self, AlgoError> {
        if !model.needs_data() && !algo.is_sampler() {
            return Err(AlgoError::Unsupported(format!(
                "`{algo}` does not sample: a Gaussian target needs a sampler (sgld, lp-sgld-f, \
                 lp-sgld-naive, lp-sgld-vc, the csgld variants or qsgld)"
            )));
        }
        let epochs = hyper.count("epochs", 1)? as usize;
        let batch = hyper.count("batch", 1)? as usize;
        let io = model.needs_data().then(|| BatchShape {
            rows: batch,
            n: data.map_or(batch, |d| d.x_train.nrows()),
            d: model.inputs(),
            t: model.outputs(),
            data: data_format_on(algo.datapath(), arch),
            augmented: data.is_some_and(|d| d.augment.is_some()),
        });
        let n_data = io.map_or(1, |io| io.n);
        let epoch_len = match hyper.count("epoch_len", 0)? {
            0 if io.is_none() => 1000,
            0 => n_data.div_ceil(batch) as u64,
            e => e,
        };
        let switch = if hyper.flag("switch")? {
            Switch::Tanh
        } else {
            Switch::Sigmoid
        };
        let schedule = Schedule {
            eta: hyper.get("eta"),
            base: hyper.get("base"),
            kappa: hyper.get("kappa"),
            rho: hyper.get("rho"),
            switch,
            total_epochs: epochs as f64,
            batches_per_epoch: epoch_len as f64,
        };
        if Update::of(algo) == Update::Qsgld && !(schedule.eta > 0.0 && schedule.base > 1.0) {
            return Err(AlgoError::BadHyper {
                name: "eta, base".into(),
                reason: format!(
                    "{}, {}: need eta > 0 and base > 1",
                    schedule.eta, schedule.base
                ),
            });
        }
        hyper.flag("decay")?;
        let mut setup = Setup {
            algo,
            model,
            arch,
            hyper,
            epochs,
            batch,
            epoch_len,
            total: epochs as u64 * epoch_len,
            n_data,
            io,
            schedule,
            nearest: hyper.flag("nearest")?,
            samples: None,
        };
        setup.samples = setup.sample_schedule()?;
        Ok(setup)
    }

    /// The per-step scalars of step `step` (see [`NEG_LR`]), fed as one-element arrays: the
    /// scheduled step size, the noise variance `2 lr T / N` and its square root, QSGLD's `Q_p`
    /// and `lr s(t_e)`.
    fn scalars(&self, step: u64) -> [(&'static str, f64); 5] {
        let lr = self.hyper.get("lr") * lr_factor(self.algo, self.hyper, step, self.total);
        let t_e = self.schedule.epoch_time(step);
        let noise_var = 2.0 * lr * self.hyper.get("temperature") / self.n_data as f64;
        [
            (NEG_LR, -lr),
            (NOISE_STD, noise_var.sqrt()),
            (NOISE_VAR, noise_var),
            (QSGLD_Q, self.schedule.resolution(t_e)),
            (QSGLD_C, lr * self.schedule.switch(t_e)),
        ]
    }

    /// Feed step `step`'s scalars.
    fn feed_scalars(
        &self,
        step: u64,
        used: &BTreeSet<&str>,
        feeds: &mut BTreeMap<String, ArrayD<f64>>,
    ) {
        // Only those the step graph reads (two of the five for SGLD).
        for (name, v) in self
            .scalars(step)
            .into_iter()
            .filter(|(n, _)| used.contains(n))
        {
            // Written in place after the first step (no key or array allocated per step).
            match feeds.get_mut(name) {
                Some(fed) => fed.fill(v),
                None => {
                    feeds.insert(name.to_string(), ndarray::arr1(&[v]).into_dyn());
                }
            }
        }
    }

    /// The step graph, built once per run: every per-step value is a scalar input.
    fn graph(&self) -> Result<Graph, AlgoError> {
        step_graph(self.algo, self.model, self.arch, self.io, self.nearest)
    }

    /// The sample schedule of [`Setup::samples`], checked.
    fn sample_schedule(&self) -> Result<Option<SampleSchedule>, AlgoError> {
        if !self.algo.is_sampler() {
            return Ok(None);
        }
        let h = self.hyper;
        let (units, unit_len) = match self.io {
            None => (self.total, 1),
            Some(_) => (self.epochs as u64, self.epoch_len),
        };
        let cycle = if self.algo.is_cyclic() {
            Some((cycle_len(h, self.total)?, h.count("save_per_cycle", 1)?))
        } else {
            None
        };
        SampleSchedule::new(
            units,
            unit_len,
            h.count("burn_in", 0)?,
            h.count("thin", 1)?,
            h.count("samples", 0)?,
            cycle,
        )
        .map(Some)
    }
}

/// The step graph of `algo` on `model` (for `lpsim graph`), built as `train` builds it: with
/// `data`, its `N` and size; without, a data set of one batch. The per-step scalars are given
/// at the first step.
pub fn example_graph(
    algo: Algo,
    model: &Model,
    data: Option<&TrainData>,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<StepGraph, AlgoError> {
    let setup = Setup::new(algo, model, data, arch, hyper)?;
    let graph = setup.graph()?;
    Ok(StepGraph::new(graph, &setup.scalars(0)))
}

/// Run the mini-batch driver (see the module docs).
pub(crate) fn train(
    algo: Algo,
    model: &Model,
    data: Option<&TrainData>,
    arch: &Architecture,
    hyper: &Hyper,
    seed: u64,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    let setup = Setup::new(algo, model, data, arch, hyper)?;
    let batches = data
        .map(|d| {
            let format = data_format_on(algo.datapath(), arch);
            Batches::new(d, model, setup.batch, seed, format)
        })
        .transpose()?;
    let (sf, sr) = storage(Update::of(algo), algo, arch);
    let params = init_params(model, sf, sr, seed);
    let mut run = Run::new((setup.total / setup.epoch_len) as usize, setup.epoch_len);
    // The Gaussian target keeps steps of its chain; the others keep epochs' parameters.
    let mut chain_steps = Vec::new();
    match (&setup.samples, &setup.io) {
        (Some(s), None) => chain_steps = s.kept(),
        (Some(s), Some(_)) => run.kept = s.kept(),
        (None, _) => {}
    }
    // Reserved whole: grown by doubling, the chain (23 MB for the quickstart's toy) was
    // reallocated and its fresh pages zeroed by the kernel again and again.
    let mut chain: Vec<f64> = Vec::with_capacity(chain_steps.len() * model.outputs());
    if let (Some(b), Some(d)) = (&batches, data) {
        run.range.merge(&b.data_health(d));
    }
    let mut next_kept = 0;
    let mut feeds: BTreeMap<String, _> = model
        .feeds()
        .into_iter()
        .map(|(name, v)| (name.to_string(), v))
        .collect();
    // The parameters live in the feeds (`w{l}`), each step's `w{l}.next` moved in: no copy of
    // the weights and no name formatted per step.
    let names: Vec<(String, String)> = (0..params.len())
        .map(|l| (format!("w{l}"), format!("w{l}.next")))
        .collect();
    for ((name, _), p) in names.iter().zip(params) {
        feeds.insert(name.clone(), p);
    }
    let current = |feeds: &BTreeMap<String, ArrayD<f64>>| -> Vec<ArrayD<f64>> {
        names.iter().map(|(name, _)| feeds[name].clone()).collect()
    };
    let graph = setup.graph()?;
    let exec = Executor::new(&graph, arch);
    let used = graph.scalar_inputs();
    for step in 0..setup.total {
        setup.feed_scalars(step, &used, &mut feeds);
        if let Some(b) = &batches {
            let host = b.feed(&b.indices(step), step, &mut feeds);
            run.add_host(&host);
        }
        let mut res = exec.run(&feeds, seed, step)?;
        for (name, next) in &names {
            let v = res
                .values
                .remove(next)
                .expect("the step graph outputs every parameter");
            *feeds.get_mut(name).expect("fed above") = v;
        }
        run.add(&res);
        if chain_steps.get(next_kept) == Some(&(step + 1)) {
            let theta = &feeds[&names[0].0];
            match theta.as_slice() {
                Some(values) => chain.extend_from_slice(values),
                None => chain.extend(theta.iter()),
            }
            next_kept += 1;
        }
        if (step + 1) % setup.epoch_len == 0 {
            let epoch = ((step + 1) / setup.epoch_len) as usize;
            let params = current(&feeds);
            let l = model.train_loss(&params, data.map(|d| (d.x_train.view(), &d.y_train)));
            if run.end_epoch(epoch, &params, l, on_epoch) {
                break;
            }
        }
    }
    let params = current(&feeds);
    let chain = (model.kind() == ModelKind::Gaussian).then(|| {
        let dim = model.outputs();
        Array2::from_shape_vec((chain.len() / dim, dim), chain).expect("whole rows")
    });
    Ok(run.finish(params, chain))
}
