//! HALP on layered models with bit-centred layers (De Sa et al. 2018, docs/algorithms.md),
//! following the authors' code (`HazyResearch/halp`: `halp/optim/bit_center_svrg.py`,
//! `bit_center_sgd.py`, `halp/layers/bit_center_layer.py` and the layer files); the epoch's full
//! pass and the driver's set-up are [`super::svrg_nn`]'s, each layer type's bit-centred forward
//! and backward are in its own file (`model::centred`: the layer trait's `centred_forward`,
//! `centred_backward`; a layer type without one is refused, naming it).
//!
//! Every parameter tensor `p` is a full-precision centre `W~_p` plus an offset `Z_p = delta_p K_p`,
//! with codes `K_p` (`codes::offset_codes`) and its own scale `delta_p = ||g~_p|| / (mu levels)`
//! (weights and biases alike: the authors' `bias_delta`). Scales are re-set and offsets
//! re-centred (`K_p = 0`) every epoch and folded back (`W~_p <- W~_p + delta_p K_p` in `fp32`,
//! option I) at its end. The epoch's full-precision pass (the full gradient `g~`) also caches,
//! per training example, the centre's values and gradients the bit-centred layers read (all in
//! `fp32`), and the centre's copy `Wc_p` of every multiplier in the MAC's B format (the authors'
//! `weight_lp`). The inner step computes the gradient *difference*
//! `grad f_B(w~ + z) - grad f_B(w~)` with the bit-centred layers, so every matmul multiplies an
//! offset (or an offset's gradient) on the architecture's MAC, with `c = N / B` (the cache holds
//! gradients of the mean over `N`, the step's are over the batch's `B` rows). On an MLP:
//! - linear, forward: `dz_l = da_l Wc_l + delta_l (a_l K_l) + delta_b,l kb_l` (`a_0 = x`,
//!   `da_0 = 0`; the bias offset added to every row on the vector unit, [`Op::BiasAdd`]);
//! - ReLU, forward: `a_{l+1} = relu(s_l)` in `fp32` (`s_l = z~_l + dz_l`),
//!   `da_{l+1} = a_{l+1} - a~_{l+1}`;
//! - cross-entropy: `dg_L = softmaxgrad(s_L) - softmaxgrad(z~_L)`;
//! - linear, backward: `dW_l = a_l^T dg_l + c da_l^T g~z_l`, `db_l = sum_rows(dg_l)` (the
//!   authors' `grad_output.sum(0)`, [`Op::SumRows`]) and
//!   `dgh_{l-1} = dg_l Wc_l^T + delta_l ((c g~z_l + dg_l) K_l^T)`;
//! - ReLU, backward: `dg_{l-1} = dgh_{l-1} [s > 0] + c (g~h_{l-1} [s > 0] - g~z_{l-1})`;
//! - update: `K_p <- Q(K_p - (lr / delta_p) (diff_p + g~_p))`, stochastic rounding onto the codes
//!   (the authors' `delta -= lr g_delta + lr g~`).
//!
//! Offsets of activations are stored in the architecture's activation format, of gradients in
//! its gradient format (the authors keep both in fp16); sums with the centre run on the vector
//! unit in `fp32`. At `K = 0` every difference is exactly zero, so the first step's direction is
//! exactly `g~`.
//!
//! Deviations from the authors' code, and why:
//! - the centre caches are `fp32` (the authors cast them to fp16): the centre is then exact and
//!   the bit-centred products carry only the offset's rounding; cached rows are looked up by
//!   example index, since lpsim's batches are drawn with replacement (the authors rely on the
//!   loader visiting the examples in the same order in both passes);
//! - the linear layer's input gradient is grouped `dg Wc^T + (g~ + dg) Z^T` instead of
//!   `dg (Wc + Z)^T + g~ Z^T` (the same value): the offset stays integer codes on the MAC's B
//!   side, scaled by `delta` on the vector unit, as in the forward pass;
//! - the ReLU's backward is rearranged from `(g~h + dgh) [s > 0] - g~z` (the same value) so that
//!   no full-size gradient is rounded before the difference is taken (`c` is not a power of two),
//!   and the logits' centre gradient is recomputed from the cached logits (`B x C` softmaxes)
//!   rather than read at the cache's `1/N` scale: both keep the difference exactly zero at the
//!   centre;
//! - the ReLU masks are `z > 0` on both sides (the executor's `relu_grad`; the authors'
//!   bit-centred ReLU uses `>= 0` on both, PyTorch's full-precision ReLU `> 0`);
//! - `delta` per parameter tensor from its own part of `g~` (the paper's single `delta` is for a
//!   vector; the authors' fp16 offsets scale per element by their exponent);
//! - batch normalization (the authors' `batch_norm_layer.py`, each side on the mini-batch's own
//!   statistics, with the centre's parameters `wt{key}` in full precision) gives an offset the
//!   next layer adds to the full pass's cached centre, normalized with the full pass's
//!   statistics (the authors' cache comes from the inner loop's own batches): under batch
//!   statistics the gradient difference is their approximation, exactly zero at the centre
//!   (`model::batchnorm`);
//! - the full pass, the batches, momentum and weight decay as in [`super::svrg_nn`].

mod codes;
mod step;

use std::collections::BTreeMap;

use ndarray::{ArrayD, Axis};

use crate::algo::sgld::{init_params, Run};
use crate::algo::svrg::recentre;
use crate::algo::svrg_nn::{take, Setup};
use crate::algo::{AlgoError, EpochStats, Hyper, StepGraph, TrainOutcome};
use crate::arch::Architecture;
#[cfg(doc)]
use crate::graph::Op;
use crate::graph::{execute, Executor, StepResult};
use crate::model::centred::{param_key, CentreReads};
use crate::model::Model;
use crate::round::Rounding;

use codes::offset_codes;
use step::{feed_deltas, graphs};
pub use step::{DELTA, NEG_LR_OVER_DELTA};

/// HALP's inner-step graph on a layered model (for `lpsim graph`), with `c = 1` and its scalars
/// at every `delta = 1`.
pub(crate) fn example_graph(
    model: &Model,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<StepGraph, AlgoError> {
    let batch = hyper.count("batch", 1)? as usize;
    let g = graphs(
        model,
        arch,
        (batch, batch),
        &offset_codes(arch, hyper)?,
        1.0,
    )?;
    let lr = hyper.get("lr");
    let scalars = (0..model.params().len())
        .flat_map(|p| {
            [
                (format!("{DELTA}[{p}]"), 1.0),
                (format!("{NEG_LR_OVER_DELTA}[{p}]"), -lr),
            ]
        })
        .collect();
    Ok(StepGraph {
        graph: g.step,
        scalars,
    })
}

/// What HALP's full pass gives an epoch: the step's constant feeds (`gt{key}`, `wc{key}`,
/// `wt{key}`), the centre's cached tensors by feed name (one row per training example), and the
/// scales.
struct Centre {
    feeds: BTreeMap<String, ArrayD<f64>>,
    cache: Vec<(String, ArrayD<f64>)>,
    deltas: Vec<f64>,
}

/// Take HALP's epoch constants from the full pass `res` of `model` at `centre`, as the step
/// `reads` them: per parameter tensor `p` `delta_p = ||g~_p|| / bound` with `bound = mu levels`.
fn centre_pass(
    res: &mut StepResult,
    model: &Model,
    (centre, reads): (&[ArrayD<f64>], &CentreReads),
    bound: f64,
) -> Centre {
    let mut feeds = BTreeMap::new();
    let mut deltas = Vec::new();
    for spec in model.params() {
        let gt = take(res, &spec.grad);
        let norm = gt.iter().map(|v| v * v).sum::<f64>().sqrt();
        deltas.push((norm / bound).max(f64::MIN_POSITIVE));
        feeds.insert(format!("gt{}", param_key(&spec)), gt);
    }
    for (feed, _) in &reads.copies {
        feeds.insert(feed.clone(), take(res, feed));
    }
    for (feed, p) in &reads.params {
        feeds.insert(feed.clone(), centre[*p].clone());
    }
    let cache = reads
        .caches
        .iter()
        .map(|(feed, source)| {
            // A flatten's value is its input's node: two feeds may read one tensor.
            let rows = res.values.get(source).cloned();
            (
                feed.clone(),
                rows.expect("the full pass computes every cached tensor"),
            )
        })
        .collect();
    Centre {
        feeds,
        cache,
        deltas,
    }
}

/// HALP's `mu` on a layered model: the value given, else the objective's strong convexity from
/// its L2 term (`model.l2`, as for logistic regression). A model without an L2 term has no
/// strong convexity to derive `mu` from (its loss is not convex), and `mu = 0` would make every
/// scale `delta = ||g|| / (mu levels)` infinite: refused, asking for a value.
fn layered_mu(model: &Model, given: f64) -> Result<f64, AlgoError> {
    match (given, model.l2()) {
        (m, _) if m > 0.0 => Ok(m),
        (_, l2) if l2 > 0.0 => Ok(l2),
        _ => Err(AlgoError::BadHyper {
            name: "mu".into(),
            reason: format!(
                "0 (from the problem): a `{}` model without an L2 term (model.l2 = 0) has no \
                 strong convexity to derive it from; set mu (e.g. --set mu=3, the HALP paper's \
                 hand-picked value) or model.l2",
                model.kind().name()
            ),
        }),
    }
}

/// Run `halp` with bit-centred layers on a layered model (see the module docs).
pub(crate) fn train(
    model: &Model,
    arch: &Architecture,
    hyper: &Hyper,
    seed: u64,
    s: Setup,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    let codes = offset_codes(arch, hyper)?;
    let mu = layered_mu(model, hyper.get("mu"))?;
    let c = s.batches.n as f64 / s.batch as f64;
    let g = graphs(model, arch, (s.batches.n, s.batch), &codes, c)?;
    let full = arch.full_precision.format;
    let mut centre = init_params(model, full, Rounding::NearestEven, seed);
    let keys: Vec<String> = model.params().iter().map(param_key).collect();
    let mut run = Run::new(s.epochs, s.epoch_len);
    run.range.merge(&s.batches.data_health(s.data));
    let step = Executor::new(&g.step, arch);
    for epoch in 1..=s.epochs {
        let feeds = s.full_feeds(&centre);
        let mut res = execute(&g.full, arch, &feeds, seed, (epoch as u64) << 40)?;
        run.add(&res);
        let Centre {
            mut feeds,
            cache,
            deltas,
        } = centre_pass(&mut res, model, (&centre, &g.reads), mu * codes.levels);
        feed_deltas(&deltas, s.lr, &mut feeds);
        let mut k: Vec<ArrayD<f64>> = centre.iter().map(|w| ArrayD::zeros(w.raw_dim())).collect();
        for t in 0..s.epoch_len {
            let n = (epoch as u64 - 1) * s.epoch_len + t;
            let idx = s.batches.indices(n);
            s.batches.feed_rows(&idx, &mut feeds);
            for (name, rows) in &cache {
                feeds.insert(name.clone(), rows.select(Axis(0), &idx));
            }
            for (key, kp) in keys.iter().zip(&k) {
                feeds.insert(format!("k{key}"), kp.clone());
            }
            let mut res = step.run(&feeds, seed, n)?;
            for (key, kp) in keys.iter().zip(k.iter_mut()) {
                *kp = take(&mut res, &format!("k{key}.next"));
            }
            run.add(&res);
        }
        for (p, c) in centre.iter_mut().enumerate() {
            *c = recentre(
                arch,
                (c, &k[p], codes.format),
                deltas[p],
                (seed, epoch),
                &mut run,
            )?;
        }
        let l = model.train_loss(&centre, Some((s.data.x_train.view(), &s.data.y_train)));
        if run.end_epoch(epoch, &centre, l, on_epoch) {
            break;
        }
    }
    let mut outcome = run.finish(centre, None);
    if hyper.get("mu") == 0.0 {
        outcome.derived.insert("mu".to_string(), mu);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests;
