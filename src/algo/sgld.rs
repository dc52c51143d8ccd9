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

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayD, Axis};
use petgraph::graph::NodeIndex;

pub(crate) use crate::algo::epochs::Run;
use crate::algo::model::{fp32, is_bias, param_shapes, Builder};
use crate::algo::qsgld::{Schedule, Switch};
use crate::algo::samples::SampleSchedule;
use crate::algo::{
    loss, Algo, AlgoError, EpochStats, Hyper, ModelShape, Targets, TrainData, TrainOutcome,
};
use crate::arch::Architecture;
use crate::cost::Datapath;
use crate::format::{range_events, Format, Quantizer};
use crate::graph::exec::stream_id;
use crate::graph::{execute, Graph, Op, RangeHealth, Role};
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

/// The format and rounding unit the training features are stored in for work on `datapath`:
/// on the low-precision datapath the architecture's `formats.input` (by default its
/// activations' format) with `formats.rounding.input`; on the full-precision unit its format
/// (`full_precision.format`) with `rne`. The one place the drivers take it from.
pub(crate) fn data_format_on(datapath: Datapath, arch: &Architecture) -> (Format, Rounding) {
    match datapath {
        Datapath::LowPrecision => (arch.formats.input, arch.formats.rounding.input),
        Datapath::FullPrecision => (arch.full_precision.format, Rounding::NearestEven),
    }
}

/// [`data_format_on`] the low-precision datapath.
pub(crate) fn data_format(arch: &Architecture) -> (Format, Rounding) {
    data_format_on(Datapath::LowPrecision, arch)
}

/// Mini-batch sampling and the data as stored.
pub(crate) struct Batches {
    x: Array2<f64>,
    y: Array2<f64>,
    stream: RandomStream,
    /// The features' format and the rounding unit that produced them.
    pub format: (Format, Rounding),
    /// Examples.
    pub n: usize,
    /// Batch size.
    pub batch: usize,
}

impl Batches {
    /// The training split with its features rounded once to `format` (the `N x d` matrix is one
    /// tensor: block formats block it as a whole, rows of `d`; stochastic rounding draws from
    /// the stream `data/x`), targets one-hot (`N x C`) or a column (`N x 1`) in `fp32` (one-hot
    /// targets are exact in any format; regression targets are not features and stay `fp32`).
    /// The conversion is done before training, off the accelerator, so it is not counted.
    pub fn new(
        data: &TrainData,
        model: &ModelShape,
        batch: usize,
        seed: u64,
        format: (Format, Rounding),
    ) -> Result<Self, AlgoError> {
        let q = Quantizer::new(format.0, format.1, seed, stream_id("data/x", 0, 0))
            .map_err(|e| AlgoError::Data(format!("the training features: {e}")))?;
        let x = data.x_train.as_standard_layout();
        let mut stored = vec![0.0; x.len()];
        q.par_quantize_f64(
            x.as_slice().expect("standard layout"),
            &mut stored,
            x.ncols(),
        );
        Ok(Batches {
            x: Array2::from_shape_vec(x.raw_dim(), stored).expect("same shape"),
            y: targets_matrix(&data.y_train, model),
            stream: RandomStream::new(seed, stream_id("batch", 0, 0)),
            format,
            n: data.x_train.nrows(),
            batch,
        })
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

    /// The range events of storing `data`'s training features in their stored format (the
    /// architecture's input format) and its regression targets in `fp32`, under
    /// [`Role::Data`]: judged once per run, as the data are stored once.
    pub fn data_health(&self, data: &TrainData) -> RangeHealth {
        let mut health = RangeHealth::default();
        let mut judge = |f: Format, exact: ndarray::ArrayView2<f64>, stored: &Array2<f64>| {
            let row = stored.ncols();
            let (exact, stored) = (exact.as_standard_layout(), stored.as_standard_layout());
            let counts = range_events(
                &f,
                exact.as_slice().expect("standard layout"),
                stored.as_slice().expect("standard layout"),
                row,
            );
            health.record(Role::Data, f, counts);
        };
        judge(self.format.0, data.x_train.view(), &self.x);
        if let Targets::Values(v) = &data.y_train {
            judge(fp32(), v.view().insert_axis(Axis(1)), &self.y);
        }
        health
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

/// Initial parameters: zeros, except MLP weights `N(0, 2 / fan_in)` (He; biases zero), rounded
/// to `format`. Layer `i`'s weight draws from the stream `init/w{i}`.
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
            if !matches!(model, ModelShape::Mlp { .. }) || is_bias(model, l) {
                return Array2::zeros((r, c));
            }
            let name = format!("init/w{}", l / 2);
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

/// The data tensors of a mini-batch step: batch rows, training examples, features, targets,
/// and the features' stored format and rounding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchShape {
    rows: usize,
    n: usize,
    d: usize,
    t: usize,
    data: (Format, Rounding),
}

/// Picked rows `x` of stored features as a value of their format: themselves, or re-blocked by a
/// `quantize` node (`x.blocks`) when the format's blocks span rows or would not survive the
/// pick (see [`Format::rows_stay_values`]).
pub(crate) fn picked_rows(b: &mut Builder, x: NodeIndex) -> Result<NodeIndex, AlgoError> {
    let m = b.b.meta(x);
    let (format, rounding, role) = (m.format, m.rounding, m.role);
    if format.rows_stay_values(m.shape[1]) {
        return Ok(x);
    }
    let name = format!("{}.blocks", m.name);
    b.op(Op::Quantize, &name, format, rounding, role, &[x])
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
                Role::Data,
            )?;
            let x_all = b.feed(
                Op::Input,
                "x_all",
                &[io.n, io.d],
                io.data.0,
                io.data.1,
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
            let x = b.op(
                Op::Gather,
                "x",
                io.data.0,
                io.data.1,
                Role::Data,
                &[x_all, idx],
            )?;
            (
                Some(picked_rows(&mut b, x)?),
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
    let shapes = param_shapes(model);
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
    let (out, grads) = b.gradients(model, x, y, &fwd)?;
    let l2 = match model {
        ModelShape::Logistic { l2, .. } | ModelShape::Mlp { l2, .. } => *l2,
        _ => 0.0,
    };
    let std = c.noise_var.sqrt();
    let mut outputs = vec![b.b.meta(out).name.clone()];
    for (l, (&p, &g)) in params.iter().zip(&grads).enumerate() {
        let d = if l2 > 0.0 {
            b.f32op(
                Op::Axpy { c: l2 },
                &format!("d{l}"),
                Role::Gradients,
                &[g, p],
            )?
        } else {
            g
        };
        let next = format!("w{l}.next");
        let step = Op::Axpy { c: -c.lr };
        match update {
            Update::Descent => {
                b.op(step, &next, sf, sr, Role::Weights, &[p, d])?;
            }
            Update::Sgld | Update::SgldF | Update::Naive => {
                let mu = b.f32op(step, &format!("mu{l}"), Role::Updates, &[p, d])?;
                b.op(
                    Op::GaussianNoise { std },
                    &next,
                    sf,
                    sr,
                    Role::Weights,
                    &[mu],
                )?;
            }
            Update::Vc => {
                let mu = b.f32op(step, &format!("mu{l}"), Role::Updates, &[p, d])?;
                let vc = Op::VcQuantize { v: c.noise_var };
                b.op(vc, &next, sf, sr, Role::Weights, &[mu])?;
            }
            Update::Qsgld => {
                // The authors' QtSGD: h = -lr g, p <- p + floor(Q_p (h + r)) / Q_p.
                let (q, cc, nearest) = c.qsgld;
                let h = b.f32op(
                    Op::Scale { c: -c.lr },
                    &format!("step{l}"),
                    Role::Updates,
                    &[d],
                )?;
                let hq = b.f32op(
                    Op::QsgldQuantize { q, c: cc, nearest },
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
    model: &'a ModelShape,
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
        model: &'a ModelShape,
        data: Option<&TrainData>,
        arch: &'a Architecture,
        hyper: &'a Hyper,
    ) -> Result<Self, AlgoError> {
        if matches!(model, ModelShape::Gaussian { .. }) && !algo.is_sampler() {
            return Err(AlgoError::Unsupported(format!(
                "`{algo}` does not sample: a Gaussian target needs a sampler (sgld, lp-sgld-f, \
                 lp-sgld-naive, lp-sgld-vc, the csgld variants or qsgld)"
            )));
        }
        let epochs = hyper.count("epochs", 1)? as usize;
        let batch = hyper.count("batch", 1)? as usize;
        let shapes = param_shapes(model);
        let io = match model {
            ModelShape::Gaussian { .. } => None,
            _ => Some(BatchShape {
                rows: batch,
                n: data.map_or(batch, |d| d.x_train.nrows()),
                d: shapes[0][0],
                t: shapes[shapes.len() - 1][1],
                data: data_format_on(algo.datapath(), arch),
            }),
        };
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

    /// The constants of step `step`: the scheduled step size, the noise variance
    /// `2 lr T / N`, QSGLD's `Q_p` and `lr s(t_e)`.
    fn consts(&self, step: u64) -> StepConsts {
        let lr = self.hyper.get("lr") * lr_factor(self.algo, self.hyper, step, self.total);
        let t_e = self.schedule.epoch_time(step);
        StepConsts {
            lr,
            noise_var: 2.0 * lr * self.hyper.get("temperature") / self.n_data as f64,
            qsgld: (
                self.schedule.resolution(t_e),
                lr * self.schedule.switch(t_e),
                self.nearest,
            ),
        }
    }

    /// The step graph of step `step`.
    fn graph(&self, step: u64) -> Result<Graph, AlgoError> {
        step_graph(
            self.algo,
            self.model,
            self.arch,
            self.io,
            &self.consts(step),
        )
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

/// The step graph of `algo`'s first step on `model` (for `lpsim graph`), built as [`train`]
/// builds it: with `data`, its `N` and size; without, a data set of one batch.
pub fn example_graph(
    algo: Algo,
    model: &ModelShape,
    data: Option<&TrainData>,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<Graph, AlgoError> {
    Setup::new(algo, model, data, arch, hyper)?.graph(0)
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
    let setup = Setup::new(algo, model, data, arch, hyper)?;
    let batches = data
        .map(|d| {
            let format = data_format_on(algo.datapath(), arch);
            Batches::new(d, model, setup.batch, seed, format)
        })
        .transpose()?;
    let (sf, sr) = storage(Update::of(algo), algo, arch);
    let mut params = init_params(model, sf, sr, seed);
    let mut run = Run::new();
    // The Gaussian target keeps steps of its chain; the others keep epochs' parameters.
    let mut chain_steps = Vec::new();
    match (&setup.samples, &setup.io) {
        (Some(s), None) => chain_steps = s.kept(),
        (Some(s), Some(_)) => run.kept = s.kept(),
        (None, _) => {}
    }
    let mut chain: Vec<f64> = Vec::new();
    if let (Some(b), Some(d)) = (&batches, data) {
        run.range.merge(&b.data_health(d));
    }
    let mut next_kept = 0;
    let mut feeds: BTreeMap<String, _> = crate::algo::gaussian::feeds(model)
        .into_iter()
        .map(|(name, v)| (name.to_string(), v))
        .collect();
    for step in 0..setup.total {
        let graph = setup.graph(step)?;
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
        if chain_steps.get(next_kept) == Some(&(step + 1)) {
            chain.extend(params[0].iter());
            next_kept += 1;
        }
        if (step + 1) % setup.epoch_len == 0 {
            let epoch = ((step + 1) / setup.epoch_len) as usize;
            let l = match data {
                Some(d) => loss(model, &params, d.x_train.view(), &d.y_train),
                None => match model {
                    ModelShape::Gaussian {
                        mean, precision, ..
                    } => crate::algo::gaussian::potential_per_coordinate(
                        mean,
                        precision,
                        params[0].row(0),
                    ),
                    _ => f64::NAN,
                },
            };
            if run.end_epoch(epoch, &params, l, on_epoch) {
                break;
            }
        }
    }
    let chain = match model {
        ModelShape::Gaussian { dim, .. } => {
            Some(Array2::from_shape_vec((chain.len() / dim, *dim), chain).expect("whole rows"))
        }
        _ => None,
    };
    Ok(run.finish(params, chain))
}
