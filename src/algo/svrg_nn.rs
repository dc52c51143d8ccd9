//! The SVRG family on layered models (every model kind but the linear ones, which
//! [`super::svrg`] drives with a single code vector, and the Gaussian toy): `svrg`, `lp-svrg`
//! and `halp` (De Sa et al. 2018, docs/algorithms.md; the authors' `HazyResearch/halp`),
//! dispatched from [`super::svrg`]; HALP's driver is [`super::halp_nn`], its bit-centred
//! layers are the layers' own (`model::centred`). Parameters are `ArrayD` tensors of any shape
//! (a dense layer's matrices, a convolution's filters).
//!
//! Every epoch starts with a full-precision pass over the whole training set at the snapshot
//! (centre) `w~` ([`full_precision`]): the full gradient `g~ = (1/N) sum_i grad f_i(w~)`, by the
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
//! Gaussian toy for the whole family ([`no_training_set`]).

use std::collections::BTreeMap;

use ndarray::ArrayD;
use petgraph::graph::NodeIndex;

use crate::algo::halp_nn;
use crate::algo::sgld::{data_format_on, init_params, picked_rows, Batches, Run};
use crate::algo::{Algo, AlgoError, EpochStats, Hyper, StepGraph, TrainData, TrainOutcome};
use crate::arch::Architecture;
use crate::cost::Datapath;
use crate::format::Format;
use crate::graph::{execute, Graph, Level, Op, Role, StepResult, TensorMeta};
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
    // The gradient node of each parameter tensor, named once (read every step).
    let grads: Vec<String> = model.params().into_iter().map(|p| p.grad).collect();
    let mut w = init_params(model, store.0, store.1, seed);
    let mut run = Run::new(s.epochs, s.epoch_len);
    run.range.merge(&s.batches.data_health(s.data));
    let mut feeds = BTreeMap::new();
    for epoch in 1..=s.epochs {
        let mut res = execute(&full, arch, &s.full_feeds(&w), seed, (epoch as u64) << 40)?;
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
            let mut g0 = execute(&snapshot, arch, &feeds, seed, n)?;
            run.add(&g0);
            for (l, (p, name)) in w.iter().zip(&grads).enumerate() {
                let g = take(&mut g0, name);
                feeds.insert(format!("g0.{l}"), g);
                feeds.insert(format!("w{l}"), p.clone());
            }
            let mut res = execute(&step, arch, &feeds, seed, n)?;
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
pub(crate) mod tests {
    use super::*;
    use crate::round::RandomStream;
    use ndarray::{Array2, Axis};

    pub(crate) const RN: Rounding = Rounding::NearestEven;

    pub(crate) fn arch(name: &str) -> Architecture {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        Architecture::load(&root.join(format!("arch/{name}.json"))).expect("a shipped arch")
    }

    pub(crate) fn mlp(hidden: &[usize]) -> Model {
        Model::mlp(5, hidden, 3, 0.0).unwrap()
    }

    /// `n x 5` normal features (`fp32` values) and one-hot targets of classes `i % 3`.
    pub(crate) fn data(n: usize) -> (Array2<f64>, Array2<f64>) {
        let s = RandomStream::new(7, 1);
        let x = Array2::from_shape_fn((n, 5), |(i, j)| {
            f64::from(s.normal_f64((i * 5 + j) as u64) as f32)
        });
        let y = Array2::from_shape_fn((n, 3), |(i, j)| f64::from(u8::from(i % 3 == j)));
        (x, y)
    }

    /// The gradient of the mean loss of `model` with parameters `p` on `x` with one-hot
    /// targets `y`: the model's `f64` oracle (checked against finite differences in
    /// `model::gradcheck`).
    pub(crate) fn reference(
        model: &Model,
        p: &[ArrayD<f64>],
        x: &Array2<f64>,
        y: &Array2<f64>,
    ) -> Vec<ArrayD<f64>> {
        let classes = y
            .rows()
            .into_iter()
            .map(|r| r.iter().position(|&v| v == 1.0).unwrap())
            .collect();
        let t = crate::workload::Targets::Classes(classes);
        model.loss_and_grad(p, Some((x.view(), &t))).1
    }

    /// `init_params` of `model` in `format` with every bias set to multiples of `1/32` in
    /// `[-1/8, 1/8]` (exact in every shipped weight format), so that tests exercise the bias
    /// rather than its zero start.
    pub(crate) fn params_with_biases(model: &Model, store: Store, seed: u64) -> Vec<ArrayD<f64>> {
        let s = RandomStream::new(seed, 77);
        let mut p = init_params(model, store.0, store.1, seed);
        for (l, t) in p.iter_mut().enumerate() {
            if model.params()[l].bias {
                // Biases are rows `[1, out]`: element `j` of the row.
                let mut j = 0;
                *t = ArrayD::from_shape_fn(t.raw_dim(), |_| {
                    let u = s.uniform_f64((l * 100 + j) as u64);
                    j += 1;
                    ((u * 9.0).floor() - 4.0) / 32.0
                });
            }
        }
        assert!(p.iter().any(|t| t.iter().any(|&v| v != 0.0)));
        p
    }

    pub(crate) fn max_abs(a: &ArrayD<f64>) -> f64 {
        a.iter().fold(0.0, |m, v| m.max(v.abs()))
    }

    fn feeds(pairs: Vec<(String, ArrayD<f64>)>) -> BTreeMap<String, ArrayD<f64>> {
        pairs.into_iter().collect()
    }

    fn weights(w: &[ArrayD<f64>]) -> Vec<(String, ArrayD<f64>)> {
        (0..w.len())
            .map(|l| (format!("w{l}"), w[l].clone()))
            .collect()
    }

    /// The data's rows `idx` as feeds `x`, `y`.
    fn batch(x: &Array2<f64>, y: &Array2<f64>, idx: &[usize]) -> Vec<(String, ArrayD<f64>)> {
        vec![
            ("x".into(), x.select(Axis(0), idx).into_dyn()),
            ("y".into(), y.select(Axis(0), idx).into_dyn()),
        ]
    }

    /// An MLP and a residual MLP (a value read twice), both on 5 features and 3 classes.
    fn models() -> [Model; 2] {
        [mlp(&[4]), crate::model::gradcheck::residual_mlp()]
    }

    #[test]
    fn the_variance_reduced_gradient_at_the_snapshot_is_the_full_gradient() {
        let (x, y) = data(12);
        let idx = [3, 7, 7, 0];
        let lr = 0.1;
        // bfp8 rounds every tensor stochastically: the two batch gradients still cancel.
        for (model, name) in models()
            .iter()
            .flat_map(|m| ["fp32", "bf16", "bfp8"].map(|n| (m, n)))
        {
            let arch = arch(name);
            let store = (arch.formats.weights, arch.formats.rounding.weights);
            let w = params_with_biases(model, store, 1);
            let n = w.len();
            let full = gradient_graph(model, (&arch, FULL), 12, (fp32(), RN)).unwrap();
            let mut f = batch(&x, &y, &(0..12).collect::<Vec<_>>());
            f.extend(weights(&w));
            let mut res = execute(&full, &arch, &feeds(f), 0, 0).unwrap();
            let gt: Vec<_> = (0..n)
                .map(|l| take(&mut res, &model.params()[l].grad))
                .collect();
            // The full gradient is the mean over all 12 examples, to fp32 accuracy.
            for (g, r) in gt.iter().zip(reference(model, &w, &x, &y)) {
                assert!(
                    max_abs(&(g - &r)) <= 1e-6 * max_abs(&r),
                    "{name}: {g} vs {r}"
                );
            }
            let snap = gradient_graph(model, (&arch, Datapath::LowPrecision), 4, store).unwrap();
            let mut f = batch(&x, &y, &idx);
            f.extend(weights(&w));
            let mut g0 = execute(&snap, &arch, &feeds(f.clone()), 0, 5).unwrap();
            for (l, g) in gt.iter().enumerate() {
                f.push((format!("g0.{l}"), take(&mut g0, &model.params()[l].grad)));
                f.push((format!("gt{l}"), g.clone()));
            }
            let step =
                svrg_step_graph(model, (&arch, Datapath::LowPrecision), 4, store, lr).unwrap();
            let mut res = execute(&step, &arch, &feeds(f), 0, 5).unwrap();
            for (l, g) in gt.iter().enumerate() {
                assert_eq!(&take(&mut res, &format!("vr{l}")), g, "{name}: tensor {l}");
            }
            if name == "fp32" {
                for (l, g) in gt.iter().enumerate() {
                    let expect = (&w[l] - &(lr * g)).mapv(|v| f64::from(v as f32));
                    assert_eq!(take(&mut res, &format!("w{l}.next")), expect, "tensor {l}");
                }
            }
        }
    }

    #[test]
    fn the_variance_reduced_gradient_away_from_the_snapshot_matches_f64() {
        let (x, y) = data(12);
        let idx = [3, 7, 7, 0];
        let (xb, yb) = (x.select(Axis(0), &idx), y.select(Axis(0), &idx));
        let arch = arch("fp32");
        let store = (fp32(), RN);
        for model in &models() {
            let centre = params_with_biases(model, store, 1);
            let s = RandomStream::new(9, 9);
            let w: Vec<ArrayD<f64>> = centre
                .iter()
                .enumerate()
                .map(|(l, c)| {
                    let mut i = 0;
                    c + &ArrayD::from_shape_fn(c.raw_dim(), |_| {
                        i += 1;
                        0.05 * s.normal_f64((l * 1000 + i) as u64)
                    })
                })
                .map(|p| p.mapv(|v| f64::from(v as f32)))
                .collect();
            let gt = reference(model, &centre, &x, &y);
            let mut f = batch(&x, &y, &idx);
            f.extend(weights(&centre));
            let snap = gradient_graph(model, (&arch, Datapath::LowPrecision), 4, store).unwrap();
            let mut g0 = execute(&snap, &arch, &feeds(f.clone()), 0, 1).unwrap();
            let mut f = batch(&x, &y, &idx);
            f.extend(weights(&w));
            for (l, g) in gt.iter().enumerate() {
                f.push((format!("g0.{l}"), take(&mut g0, &model.params()[l].grad)));
                f.push((format!("gt{l}"), g.mapv(|v| f64::from(v as f32))));
            }
            let step =
                svrg_step_graph(model, (&arch, Datapath::LowPrecision), 4, store, 0.1).unwrap();
            let mut res = execute(&step, &arch, &feeds(f), 0, 1).unwrap();
            let (gw, gc) = (
                reference(model, &w, &xb, &yb),
                reference(model, &centre, &xb, &yb),
            );
            for l in 0..w.len() {
                let expect = &(&gw[l] - &gc[l]) + &gt[l];
                let got = take(&mut res, &format!("vr{l}"));
                assert!(
                    max_abs(&(&got - &expect)) <= 1e-6 * max_abs(&expect),
                    "tensor {l}: {got} vs {expect}"
                );
            }
        }
    }

    #[test]
    fn every_shipped_architecture_builds_the_inner_steps_and_refusals_say_why() {
        let model = mlp(&[4]);
        for name in ["fp32", "bf16", "fp8", "int8", "bfp8", "mxfp8"] {
            let arch = arch(name);
            for algo in [Algo::Svrg, Algo::LpSvrg, Algo::Halp] {
                let g = example_graph(algo, &model, &arch, &Hyper::new(algo));
                assert!(g.is_ok(), "{algo} on {name}: {g:?}");
            }
        }
        let unsupported = |r: Result<StepGraph, AlgoError>| match r {
            Err(AlgoError::Unsupported(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let mut h = Hyper::new(Algo::Halp);
        h.set("bits", 8.0).unwrap();
        let m = unsupported(example_graph(Algo::Halp, &model, &arch("fp8"), &h));
        assert!(m.contains("fixed:wl=8,fl=0") && m.contains("e4m3fn"), "{m}");
        for algo in [Algo::LpSvrg, Algo::LpSgd] {
            let mut h = Hyper::new(algo);
            h.set("delta", 0.7).unwrap();
            let m = unsupported(example_graph(algo, &model, &arch("fp32"), &h));
            assert!(
                m.contains("delta") && m.contains("linear models only"),
                "{m}"
            );
        }
    }

    /// FNV-1a over `text`'s bytes: a fingerprint of a run's results.
    fn fnv(text: &str) -> u64 {
        text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// A run's fingerprints: its final parameters' bits, and its counts and work (GEMMs in
    /// order of their shapes, with the range events).
    pub(crate) fn fingerprint(o: &TrainOutcome) -> (u64, u64) {
        let bits: Vec<u64> = o.params.iter().flatten().map(|v| v.to_bits()).collect();
        let t = &o.tally;
        let mut gemms: Vec<String> = [&t.low_work, &t.full_work]
            .iter()
            .flat_map(|w| w.gemms.iter().map(|g| format!("{g:?}")))
            .collect();
        gemms.sort();
        let work = format!(
            "{:?} {:?} {gemms:?} {} {} {:?}",
            t.low, t.full, t.low_work.vector_ops, t.full_work.vector_ops, o.range
        );
        (fnv(&format!("{bits:?}")), fnv(&work))
    }

    /// svrg, lp-svrg and halp on a two-hidden-layer MLP, on a rounding unit that is stochastic
    /// everywhere (bfp8) and on others: the parameters, counts and work as the MLP-only drivers
    /// of commit accb5b7 produced them (recorded before the drivers took any layered model).
    #[test]
    fn mlp_runs_are_those_of_the_mlp_only_drivers() {
        let model = mlp(&[6, 4]);
        let (x, _) = data(24);
        let classes: Vec<usize> = (0..24).map(|i| i % 3).collect();
        let t = crate::workload::Targets::Classes(classes.into());
        let d = TrainData {
            x_train: x.clone(),
            y_train: t.clone(),
            x_test: x,
            y_test: t,
            augment: None,
        };
        let mut got = Vec::new();
        for name in ["fp32", "bf16", "bfp8", "int8"] {
            for algo in [Algo::Svrg, Algo::LpSvrg, Algo::Halp] {
                let mut h = Hyper::new(algo);
                for (k, v) in [("epochs", 2.0), ("batch", 4.0), ("lr", 0.05)] {
                    h.set(k, v).unwrap();
                }
                if algo == Algo::Halp {
                    h.set("mu", 3.0).unwrap();
                }
                let o = crate::algo::train(algo, &model, Some(&d), &arch(name), &h, 3, &mut |_| {})
                    .unwrap();
                got.push((name, algo.to_string(), fingerprint(&o)));
            }
        }
        let expect = [
            ("fp32", "svrg", (12954489119814425073, 5225861712489583181)),
            (
                "fp32",
                "lp-svrg",
                (12954489119814425073, 6623317324035216524),
            ),
            ("fp32", "halp", (11755671976918875849, 2058837590703928989)),
            ("bf16", "svrg", (12954489119814425073, 5225861712489583181)),
            (
                "bf16",
                "lp-svrg",
                (6357102889194222722, 14646944898784708574),
            ),
            ("bf16", "halp", (14438306267911604731, 231034908614960262)),
            ("bfp8", "svrg", (12954489119814425073, 5225861712489583181)),
            (
                "bfp8",
                "lp-svrg",
                (13454143925081883334, 3363470505450509007),
            ),
            ("bfp8", "halp", (2865879652492695827, 18084341827251983857)),
            ("int8", "svrg", (12954489119814425073, 5225861712489583181)),
            (
                "int8",
                "lp-svrg",
                (6408706258172643647, 8303087145460361421),
            ),
            ("int8", "halp", (17254655800323694024, 9980751570229162251)),
        ];
        for ((name, algo, f), (e_name, e_algo, e)) in got.iter().zip(expect) {
            assert_eq!((*name, algo.as_str()), (e_name, e_algo));
            assert_eq!(*f, e, "{algo} on {name}: (parameters, counts) fingerprints");
        }
    }

    #[test]
    fn the_gaussian_toy_is_refused_for_the_whole_family() {
        let toy = Model::standard_gaussian(2).unwrap();
        for algo in [Algo::Svrg, Algo::LpSvrg, Algo::Halp] {
            let h = Hyper::new(algo);
            let r = crate::algo::train(algo, &toy, None, &arch("fp32"), &h, 0, &mut |_| {});
            match r {
                Err(AlgoError::Unsupported(m)) => {
                    assert!(m.contains("needs a training set"), "{m}")
                }
                other => panic!("{algo}: {:?}", other.map(|o| o.params)),
            }
            let g = crate::algo::step_graph(algo, &toy, None, &arch("fp32"), &h);
            assert!(matches!(g, Err(AlgoError::Unsupported(_))), "{algo}");
        }
        let mut h = Hyper::new(Algo::LpSgd);
        h.set("delta", 0.7).unwrap();
        let r = crate::algo::train(Algo::LpSgd, &toy, None, &arch("fp32"), &h, 0, &mut |_| {});
        assert!(
            matches!(&r, Err(AlgoError::Unsupported(m)) if m.contains("delta = 0")),
            "{:?}",
            r.map(|o| o.params)
        );
    }
}
