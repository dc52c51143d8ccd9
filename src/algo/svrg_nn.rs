//! The SVRG family on layered models (every model kind but the linear ones, which
//! [`super::svrg`] drives with a single code vector, and the Gaussian toy): `svrg`, `lp-svrg`
//! and `halp` (De Sa et al. 2018, docs/algorithms.md; the authors' `HazyResearch/halp`),
//! dispatched from [`super::svrg`]; HALP's driver is [`super::halp_nn`], its bit-centred
//! layers are the layers' own (`model::centred`). Parameters are `ArrayD` tensors of any shape
//! (a dense layer's matrices, a convolution's filters).
//!
//! Every epoch starts with a full-precision pass over the whole training set at the snapshot
//! (centre) `w~` (`Setup::full_feeds`): the full gradient `g~ = (1/N) sum_i grad f_i(w~)`, by the
//! model's own gradient subgraph ([`Model::gradients`]). Then `T` inner steps (`epoch_len`, by
//! default `2 N / batch`, HALP's T) on mini-batches drawn uniformly with replacement:
//!
//! - `svrg` (`fp32` weights) and `lp-svrg` (weights in the architecture's weight format, stored
//!   by its rounding unit): `w <- w - lr (grad f_i(w) - grad f_i(w~) + g~)`, both batch gradients
//!   on the architecture's datapath (activations and gradients in its formats), the update on the
//!   vector unit rounded once into the weights' format. The snapshot's batch gradient is the same
//!   subgraph run first in the same step: the same tensor names draw the same random words
//!   (common random numbers), so at `w = w~` the two gradients are bit-identical and the
//!   variance-reduced gradient is exactly `g~` on any rounding unit. It is handed to the step
//!   graph at the inner memory level (it never leaves the chip). The authors' `svrg.py` also
//!   evaluates the closure twice per step.
//! - `halp`: bit-centred layers, in [`super::halp_nn`].
//!
//! Deviations from the authors' code, and why: one full pass of the whole training set (the
//! authors sum per-mini-batch gradients and divide by the number of mini-batches: the same mean
//! when the batch divides `N`); mini-batches drawn with replacement (the authors' loader
//! shuffles); no momentum and no weight decay (the layered models' L2 term is left out of the
//! SVRG family's steps; lpsim has no momentum anywhere).
//!
//! Not supported on layered models: a fixed `delta` grid (`lp-sgd`/`lp-svrg` with `delta > 0`); the
//! Gaussian toy for the whole family (`no_training_set`).

use std::collections::BTreeMap;

use ndarray::ArrayD;
use petgraph::graph::NodeIndex;

use crate::algo::halp_nn;
use crate::algo::sgld::{data_format_on, init_params, picked_rows, Batches, Run};
use crate::algo::{Algo, AlgoError, EpochStats, Hyper, StepGraph, TrainData, TrainOutcome};
use crate::arch::Architecture;
use crate::cost::Datapath;
use crate::format::Format;
use crate::graph::{Executor, Graph, Level, Op, Role, StepResult, TensorMeta};
use crate::model::{fp32, Builder, GradientPass, Model};
use crate::round::Rounding;

/// The refusal of the SVRG driver on a model without a training set (the Gaussian toy).
pub(crate) fn no_training_set(algo: Algo) -> AlgoError {
    AlgoError::Unsupported(match algo {
        Algo::LpSgd => "`lp-sgd` with `delta` > 0 (HALP's LP-SGD on a delta grid) needs a \
                        training set; on a sampling target set delta = 0"
            .into(),
        _ => format!(
            "`{algo}` needs a training set: SVRG's full gradient is a sum over examples, and a \
             sampling target has none"
        ),
    })
}

/// The full-precision unit, where the full passes (the epoch's full gradient, HALP's centre
/// caches) run.
pub(crate) const FULL: Datapath = Datapath::FullPrecision;

/// A feed's format and rounding.
pub(crate) type Store = (Format, Rounding);

/// A builder holding the mini-batch gradient subgraph of `model` on `rows` examples (feeds `x`,
/// `y` and `w{l}` stored as `store`): the parameter nodes and the pass (its gradients, and the
/// values and errors HALP caches).
pub(crate) fn gradient_part<'a>(
    model: &Model,
    (arch, datapath): (&'a Architecture, Datapath),
    rows: usize,
    store: Store,
) -> Result<(Builder<'a>, Vec<NodeIndex>, GradientPass), AlgoError> {
    let shapes = model.param_shapes();
    let rn = Rounding::NearestEven;
    let mut b = Builder::on(datapath, arch);
    let (d, t) = (model.inputs(), model.outputs());
    // The features as stored: in the input format of the datapath the graph runs on.
    let (df, dr) = data_format_on(datapath, arch);
    let x = b.feed(Op::Input, "x", &[rows, d], df, dr, Role::Data)?;
    // Rows picked from the stored set re-block where blocks span rows (as the mini-batch driver).
    let x = picked_rows(&mut b, x)?;
    let y = b.feed(Op::Input, "y", &[rows, t], fp32(), rn, Role::Data)?;
    let mut w = Vec::new();
    for (l, s) in shapes.iter().enumerate() {
        w.push(b.feed(
            Op::Param,
            &format!("w{l}"),
            s,
            store.0,
            store.1,
            Role::Weights,
        )?);
    }
    let pass = model.gradient_pass(&mut b, Some(x), Some(y), &w)?;
    Ok((b, w, pass))
}

/// The gradient graph of `model` on `rows` examples (outputs: the gradients).
pub(crate) fn gradient_graph(
    model: &Model,
    arch: (&Architecture, Datapath),
    rows: usize,
    store: Store,
) -> Result<Graph, AlgoError> {
    let (b, _, pass) = gradient_part(model, arch, rows, store)?;
    let outputs: Vec<String> = pass
        .grads
        .iter()
        .map(|&i| b.b.meta(i).name.clone())
        .collect();
    let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
    Ok(b.b.build(&names)?)
}

/// SVRG's inner step on a layered model: the batch gradient at `w{l}`, the snapshot's `g0.{l}` (same
/// batch, inner level) and `g~` (`gt{l}`) make `vr{l} = grad - g0 + gt`; output
/// `w{l}.next = w - lr vr`, rounded into `store`.
fn svrg_step_graph(
    model: &Model,
    arch: (&Architecture, Datapath),
    rows: usize,
    store: Store,
    lr: f64,
) -> Result<Graph, AlgoError> {
    let rn = Rounding::NearestEven;
    let (mut b, w, pass) = gradient_part(model, arch, rows, store)?;
    let g = pass.grads;
    let mut outputs = Vec::new();
    for (l, (&p, &gi)) in w.iter().zip(&g).enumerate() {
        let m = b.b.meta(gi).clone();
        let g0 = TensorMeta::new(
            format!("g0.{l}"),
            &m.shape,
            m.format,
            m.rounding,
            Level::Inner,
            Role::Gradients,
        );
        let g0 = b.b.add(Op::Input, g0, &[])?;
        let gt = b.feed(
            Op::Param,
            &format!("gt{l}"),
            &m.shape,
            fp32(),
            rn,
            Role::Gradients,
        )?;
        let d = b.f32op(Op::Sub, &format!("dg{l}"), Role::Gradients, &[gi, g0])?;
        let v = b.f32op(Op::Add, &format!("vr{l}"), Role::Gradients, &[d, gt])?;
        let next = format!("w{l}.next");
        b.op(
            Op::Axpy { c: (-lr).into() },
            &next,
            store.0,
            store.1,
            Role::Weights,
            &[p, v],
        )?;
        outputs.push(next);
    }
    let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
    Ok(b.b.build(&names)?)
}

/// The storage of `svrg` (`fp32`) and `lp-svrg` (the weight format, its rounding unit) weights;
/// a fixed `delta` grid is refused, and with it `bits` (the width of a grid's codes), which would
/// otherwise have no effect.
fn storage(algo: Algo, arch: &Architecture, hyper: &Hyper) -> Result<Store, AlgoError> {
    match algo {
        Algo::Svrg => Ok((arch.full_precision.format, Rounding::NearestEven)),
        Algo::LpSvrg if hyper.get("delta") == 0.0 && hyper.get("bits") != 0.0 => {
            Err(AlgoError::BadHyper {
                name: "bits".into(),
                reason: format!(
                    "{}: `lp-svrg` on a layered model keeps its weights in the architecture's \
                     weight format; `bits` sizes a fixed delta grid's codes, which runs on linear \
                     models only (set bits = 0)",
                    hyper.get("bits")
                ),
            })
        }
        Algo::LpSvrg if hyper.get("delta") == 0.0 => {
            Ok((arch.formats.weights, arch.formats.rounding.weights))
        }
        _ => Err(AlgoError::Unsupported(format!(
            "`{algo}` with `delta` = {} (a fixed delta grid) runs on linear models only; on an \
             layered model (mlp, ...) set delta = 0 to keep the weights in the architecture's weight format",
            hyper.get("delta")
        ))),
    }
}

/// The inner-step graph of `algo` on a layered model (for `lpsim graph`).
pub(crate) fn example_graph(
    algo: Algo,
    model: &Model,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<StepGraph, AlgoError> {
    if algo == Algo::Halp {
        return halp_nn::example_graph(model, arch, hyper);
    }
    let batch = hyper.count("batch", 1)? as usize;
    let store = storage(algo, arch, hyper)?;
    let on = (arch, algo.datapath());
    Ok(StepGraph {
        graph: svrg_step_graph(model, on, batch, store, hyper.get("lr"))?,
        scalars: Vec::new(),
    })
}

/// Take tensor `name` of a step.
pub(crate) fn take(res: &mut StepResult, name: &str) -> ArrayD<f64> {
    res.values
        .remove(name)
        .unwrap_or_else(|| panic!("the step graph has a tensor `{name}`"))
}

/// The driver's common set-up: epochs, batches, steps per epoch, the run's bookkeeping.
pub(crate) struct Setup<'a> {
    /// Epochs (outer iterations).
    pub epochs: usize,
    /// Rows per mini-batch.
    pub batch: usize,
    /// The training set and the mini-batch sampler.
    pub batches: Batches,
    /// Inner steps per epoch (HALP's T).
    pub epoch_len: u64,
    /// Step size.
    pub lr: f64,
    /// The data, for the epoch's training loss.
    pub data: &'a TrainData,
}

impl<'a> Setup<'a> {
    fn new(
        model: &Model,
        data: Option<&'a TrainData>,
        hyper: &Hyper,
        seed: u64,
        (arch, datapath): (&Architecture, Datapath),
    ) -> Result<Self, AlgoError> {
        let data = data.ok_or_else(|| AlgoError::Data("this model needs training data".into()))?;
        let batch = hyper.count("batch", 1)? as usize;
        let batches = Batches::new(data, model, batch, seed, data_format_on(datapath, arch))?;
        let epoch_len = match hyper.count("epoch_len", 0)? {
            0 => (2 * batches.n).div_ceil(batch) as u64,
            e => e,
        };
        Ok(Setup {
            epochs: hyper.count("epochs", 1)? as usize,
            batch,
            batches,
            epoch_len,
            lr: hyper.get("lr"),
            data,
        })
    }

    /// The whole training set and `params` as the feeds of a full pass.
    pub fn full_feeds(&self, params: &[ArrayD<f64>]) -> BTreeMap<String, ArrayD<f64>> {
        let (x, y) = self.batches.all();
        let mut f = BTreeMap::new();
        f.insert("x".to_string(), x.clone().into_dyn());
        f.insert("y".to_string(), y.clone().into_dyn());
        for (l, p) in params.iter().enumerate() {
            f.insert(format!("w{l}"), p.clone());
        }
        f
    }
}

/// Run `svrg`, `lp-svrg` or `halp` on a layered model (see the module docs).
pub(crate) fn train(
    algo: Algo,
    model: &Model,
    data: Option<&TrainData>,
    arch: &Architecture,
    hyper: &Hyper,
    seed: u64,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    let setup = Setup::new(model, data, hyper, seed, (arch, algo.datapath()))?;
    if algo == Algo::Halp {
        halp_nn::train(model, arch, hyper, seed, setup, on_epoch)
    } else {
        let store = storage(algo, arch, hyper)?;
        train_svrg(algo, model, arch, seed, store, setup, on_epoch)
    }
}

/// `svrg` and `lp-svrg`.
fn train_svrg(
    algo: Algo,
    model: &Model,
    arch: &Architecture,
    seed: u64,
    store: Store,
    s: Setup,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    let rn = Rounding::NearestEven;
    let full_store = (arch.full_precision.format, rn);
    let full = gradient_graph(model, (arch, FULL), s.batches.n, full_store)?;
    let on = (arch, algo.datapath());
    let snapshot = gradient_graph(model, on, s.batch, store)?;
    let step = svrg_step_graph(model, on, s.batch, store, s.lr)?;
    let (full_exec, snapshot, step) = (
        Executor::new(&full, arch),
        Executor::new(&snapshot, arch),
        Executor::new(&step, arch),
    );
    // The gradient node of each parameter tensor, named once (read every step).
    let grads: Vec<String> = model.params().into_iter().map(|p| p.grad).collect();
    let mut w = init_params(model, store.0, store.1, seed);
    let mut run = Run::new(s.epochs, s.epoch_len);
    run.range.merge(&s.batches.data_health(s.data));
    let mut feeds = BTreeMap::new();
    for epoch in 1..=s.epochs {
        let mut res = full_exec.run(&s.full_feeds(&w), seed, (epoch as u64) << 40)?;
        run.add(&res);
        for (l, name) in grads.iter().enumerate() {
            feeds.insert(format!("gt{l}"), take(&mut res, name));
        }
        let centre = w.clone();
        for t in 0..s.epoch_len {
            let n = (epoch as u64 - 1) * s.epoch_len + t;
            s.batches.feed_rows(&s.batches.indices(n), &mut feeds);
            for (l, p) in centre.iter().enumerate() {
                feeds.insert(format!("w{l}"), p.clone());
            }
            let mut g0 = snapshot.run(&feeds, seed, n)?;
            run.add(&g0);
            for (l, (p, name)) in w.iter().zip(&grads).enumerate() {
                let g = take(&mut g0, name);
                feeds.insert(format!("g0.{l}"), g);
                feeds.insert(format!("w{l}"), p.clone());
            }
            let mut res = step.run(&feeds, seed, n)?;
            for (l, p) in w.iter_mut().enumerate() {
                *p = take(&mut res, &format!("w{l}.next"));
            }
            run.add(&res);
        }
        let l = model.train_loss(&w, Some((s.data.x_train.view(), &s.data.y_train)));
        if run.end_epoch(epoch, &w, l, on_epoch) {
            break;
        }
    }
    Ok(run.finish(w, None))
}

#[cfg(test)]
pub(crate) mod tests;
