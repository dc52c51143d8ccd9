//! SVRG, LP-SVRG, HALP and HALP's LP-SGD (De Sa et al. 2018; docs/algorithms.md) for linear
//! models (`Linear`, `Logistic`), whose gradients are `X^T phi'(X w)` with `phi'` the residual
//! (`X w - y`) or the softmax error (`softmax(X w) - Y`), averaged over the batch.
//!
//! Datapaths: `svrg` runs all its work on the full-precision unit (`full_precision`), so it is
//! the full-precision baseline on every architecture. The others step a low-precision iterate
//! on the architecture's low-precision datapath, and the variance-reduced ones (LP-SVRG, HALP)
//! take their once-per-epoch full gradient on the full-precision unit, as the paper's outer loop.
//!
//! The low-precision iterate is `v` in a code format `C`, with `w = w~ + s v` (HALP: the
//! bit-centred offset `z = s v` around the centre `w~`), `w = s v` (LP-SVRG and LP-SGD with a
//! grid spacing `delta > 0`) or `w = v` (LP-SVRG with `delta = 0`: the weight format itself).
//! `C` follows the architecture's weight format `W` ([`codes`]):
//! - fixed point `fixed(wl, fl)`: `v = k 2^-fl` with `k` a `b`-bit integer (`b <= wl`, default
//!   `wl`), `C = fixed(b, fl)`, and `s = delta 2^fl`, so `w = delta k` as in the paper;
//! - a block format with integer elements (bfp, MXINT8): `v = k`, symmetric `b`-bit integers
//!   (`b <= wl`; exact values of every block of `wl`-bit elements), `s = delta`;
//! - a float format (or MX with float elements): `v` in `W` itself, as the authors' fp16 code
//!   keeps its offset in fp16, scaled by `s = delta` so that the offset's range is that of `L`
//!   below (the code has no `delta`: fp16's exponent scales; the scale here keeps the paper's
//!   re-scaling on every format). A fixed grid (`delta > 0`) needs integer codes and is refused
//!   on float weights.
//!
//! `C` must be held by the MAC's `b` input ([`crate::format::Format::contains`]): the codes are
//! B operands read without a conversion, so `x^T z = s (x^T v)` is an integer (or `W`) dot
//! product scaled on the vector unit; the data are A operands in the MAC's `a` format.
//!
//! Per epoch, on the full-precision unit: the cached margins `a = X w~` and the full gradient
//! `g~ = X^T phi'(a) / N` at the centre `w~` (the current iterate for LP-SVRG); HALP re-scales
//! `delta = ||g~ + l2 w~|| / (mu L)`, with `L` the codes' largest magnitude (`2^(b-1) - 1` for
//! integers, see [`Codes::levels`] for floats) and `mu` the strong-convexity constant
//! ([`strong_convexity`]), and re-centres `v = 0`. Then `T` inner steps on a mini-batch `i`, on
//! the low-precision datapath: margins `m = a_i + s x_i v` (HALP), `s x_i v` or `x_i v`;
//! `h = x_i^T (phi'(m) - phi'(a_i)) + g~ + l2 w` (LP-SGD: `x_i^T phi'(m) + l2 w`), the error
//! difference entering the MAC in its `b` format with the gradients' rounding unit; the update
//! `u = Q_U((lr / s) h)` in `formats.updates` with `rounding.updates` (the authors' code computes
//! its update `move` in the low-precision format), then `v <- Q_C(v - u)` with stochastic
//! rounding, saturating (`Q_(delta,b)`; the weights' rounding unit if it is stochastic, else
//! `sr`). HALP ends the epoch with `w~ <- w~ + s v` on the full-precision unit (option I).
//! SVRG: the same steps on the full-precision unit with `w` in `full_precision.format` and
//! `w <- w - lr h`.

use std::collections::BTreeMap;

use ndarray::{Array, Array2, Axis, Dimension};
use petgraph::graph::NodeIndex;

use crate::algo::sgld::{data_format_on, init_params, picked_rows, Batches, Run};
use crate::algo::svrg_nn;
use crate::algo::{Algo, AlgoError, EpochStats, Hyper, StepGraph, TrainData, TrainOutcome};
use crate::arch::Architecture;
use crate::cost::{Datapath, Pass, Scope};
use crate::format::{Format, Quantizer};
use crate::graph::{execute, fits_within, Executor, Graph, Op, Role, Scalar, StepResult};
use crate::model::{Builder, Model, ModelKind};
use crate::round::Rounding;

mod scale;

pub use scale::{codes, strong_convexity, Codes};

/// `phi'(m)` for targets `y` over a batch of `rows`, in the full-precision format.
fn phi(
    b: &mut Builder,
    model: &Model,
    m: NodeIndex,
    y: NodeIndex,
    name: &str,
    rows: usize,
) -> Result<NodeIndex, AlgoError> {
    match model.kind() {
        ModelKind::Linear => {
            let r = b.f32op(Op::Sub, &format!("{name}.resid"), Role::Gradients, &[m, y])?;
            let scale = Op::Scale {
                c: (1.0 / rows as f64).into(),
            };
            Ok(b.f32op(scale, name, Role::Gradients, &[r])?)
        }
        _ => Ok(b.f32op(Op::SoftmaxXentGrad, name, Role::Gradients, &[m, y])?),
    }
}

/// The scope of the one dense layer of a linear or logistic model in `pass`: the SVRG family
/// builds its products itself (for its codes and centre) but counts them under the model's
/// names, as the model's own subgraph would.
fn model_scope(model: &Model, pass: Pass) -> Scope {
    let layer = model.layer_parts().first().copied().unwrap_or_default();
    Scope::new(layer, pass)
}

/// The full-gradient graph at the centre `wc` over all `n` examples, on the full-precision
/// unit: outputs `a` (margins) and `gt` (the data part of the full gradient).
fn full_graph(
    model: &Model,
    arch: &Architecture,
    io: (usize, [usize; 2], usize, (Format, Rounding)),
) -> Result<Graph, AlgoError> {
    let (n, shape, t, data) = io;
    let mut b = Builder::full_precision(arch);
    let rn = Rounding::NearestEven;
    let full = b.full();
    let x = b.feed(Op::Input, "x", &[n, shape[0]], data.0, data.1, Role::Data)?;
    let y = b.feed(Op::Input, "y", &[n, t], full, rn, Role::Data)?;
    let wc = b.feed(Op::Param, "wc", &shape, full, rn, Role::Weights)?;
    let dense = model_scope(model, Pass::Forward);
    b.set_scope(dense);
    let a = b.matmul(
        "a",
        (x, false),
        (wc, false),
        (full, rn, Role::Activations),
        rn,
    )?;
    b.set_scope(Scope::new(model.loss_part(), Pass::Backward));
    let e = phi(&mut b, model, a, y, "e", n)?;
    b.set_scope(Scope::new(dense.part, Pass::Backward));
    b.matmul("gt", (x, true), (e, false), (full, rn, Role::Gradients), rn)?;
    Ok(b.b.build(&["a", "gt"])?)
}

/// How the iterate is represented and stepped.
struct Repr {
    datapath: Datapath,
    /// The stepped values `v` and their rounding.
    code: Format,
    rounding: Rounding,
    /// The update `u` before it is applied (low-precision datapath: `formats.updates`).
    update: Option<(Format, Rounding)>,
    variance_reduced: bool,
    centred: bool,
    /// `w = scale v` (or `w~ + scale v`): the margins are scaled on the vector unit.
    scaled: bool,
    /// `ulp` and `levels` of the codes (1 and 0 when `v` is `w` itself).
    ulp: f64,
    levels: f64,
}

/// The stochastic rounding of the codes: the weights' unit if it is stochastic, else `sr`.
pub(crate) fn code_rounding(arch: &Architecture) -> Rounding {
    match arch.formats.rounding.weights {
        r @ Rounding::Stochastic { .. } => r,
        _ => Rounding::Stochastic { bits: 32 },
    }
}

/// The iterate's representation of `algo` on `arch` and its initial scale (see the module docs).
fn representation(
    algo: Algo,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<(Repr, f64), AlgoError> {
    let unsupported = |reason: String| AlgoError::Unsupported(format!("`{algo}`: {reason}"));
    let delta = hyper.get("delta");
    if delta < 0.0 {
        return Err(AlgoError::BadHyper {
            name: "delta".into(),
            reason: format!("{delta}: must be >= 0 (0 = the weight format itself)"),
        });
    }
    let bits = hyper.count("bits", 0)?;
    let f = &arch.formats;
    let low = |code: Format, rounding: Rounding, scaled: bool, codes: Option<Codes>| Repr {
        datapath: Datapath::LowPrecision,
        code,
        rounding,
        update: Some((f.updates, f.rounding.updates)),
        variance_reduced: algo != Algo::LpSgd,
        centred: algo == Algo::Halp,
        scaled,
        ulp: codes.map_or(1.0, |c| c.ulp),
        levels: codes.map_or(0.0, |c| c.levels),
    };
    let (repr, scale) = if algo == Algo::Svrg {
        let repr = Repr {
            datapath: Datapath::FullPrecision,
            code: arch.full_precision.format,
            rounding: Rounding::NearestEven,
            update: None,
            variance_reduced: true,
            centred: false,
            scaled: false,
            ulp: 1.0,
            levels: 0.0,
        };
        (repr, 1.0)
    } else if algo == Algo::Halp || delta > 0.0 {
        let c = codes(f.weights, bits).map_err(unsupported)?;
        if algo != Algo::Halp && !matches!(c.format, Format::Fixed(_)) {
            return Err(unsupported(format!(
                "delta = {delta} sets a fixed grid of integer codes, but the weight format `{}` \
                 is a float format; use delta = 0 to keep the iterate in it",
                f.weights
            )));
        }
        let scale = if algo == Algo::Halp {
            1.0
        } else {
            delta / c.ulp
        };
        (low(c.format, code_rounding(arch), true, Some(c)), scale)
    } else {
        if bits != 0 {
            return Err(AlgoError::BadHyper {
                name: "bits".into(),
                reason: format!(
                    "{bits}: applies to a delta grid (delta > 0); with delta = 0 the iterate is \
                     in the weight format `{}`",
                    f.weights
                ),
            });
        }
        (low(f.weights, f.rounding.weights, false, None), 1.0)
    };
    if repr.datapath == Datapath::LowPrecision && !fits_within(&repr.code, &f.mac.b) {
        return Err(unsupported(format!(
            "the iterate's values `{}` (from the weight format `{}`) are not values of the MAC's \
             b input `{}`, which must read them as they are; give formats.weights a format the \
             MAC reads",
            repr.code, f.weights, f.mac.b
        )));
    }
    Ok((repr, scale))
}

// The inner step's per-epoch scalars (the code scale `delta / ulp` changes when HALP re-centres),
// fed with each step's data so that the graph is built once per run.
/// Per-epoch scalar of the SVRG family's inner step: the codes' scale.
pub const SCALE: &str = "scale";
/// Per-epoch scalar: `l2` times the scale (the L2 term on the codes).
pub const L2_SCALE: &str = "l2_scale";
/// Per-epoch scalar: `lr` over the scale (the update in code units, rounded on its own).
pub const LR_OVER_SCALE: &str = "lr_over_scale";
/// Per-epoch scalar: `-lr` over the scale (the fused update in code units).
pub const NEG_LR_OVER_SCALE: &str = "neg_lr_over_scale";

/// The values of the inner step's scalars at code scale `scale`.
fn inner_scalars(scale: f64, lr: f64, l2: f64) -> [(&'static str, f64); 4] {
    [
        (SCALE, scale),
        (L2_SCALE, l2 * scale),
        (LR_OVER_SCALE, lr / scale),
        (NEG_LR_OVER_SCALE, -lr / scale),
    ]
}

/// The inner-step graph (see the module docs); output `k.next`. The scale-dependent factors
/// are per-step scalars ([`SCALE`] ...), so one graph serves the whole run.
fn inner_graph(
    model: &Model,
    arch: &Architecture,
    r: &Repr,
    io: (usize, [usize; 2], usize, (Format, Rounding)),
    l2: f64,
) -> Result<Graph, AlgoError> {
    let (rows, shape, t, data) = io;
    let rn = Rounding::NearestEven;
    let mut b = Builder::on(r.datapath, arch);
    let full = b.full();
    let x = b.feed(
        Op::Input,
        "x",
        &[rows, shape[0]],
        data.0,
        data.1,
        Role::Data,
    )?;
    let x = picked_rows(&mut b, x)?;
    let y = b.feed(Op::Input, "y", &[rows, t], full, rn, Role::Data)?;
    let k = b.feed(Op::Param, "k", &shape, r.code, r.rounding, Role::Weights)?;
    let cached = if r.variance_reduced {
        Some((
            b.feed(Op::Input, "a", &[rows, t], full, rn, Role::Activations)?,
            b.feed(Op::Param, "gt", &shape, full, rn, Role::Gradients)?,
        ))
    } else {
        None
    };
    let dense = model_scope(model, Pass::Forward);
    b.set_scope(dense);
    let mut m = b.matmul(
        "m0",
        (x, false),
        (k, false),
        (full, rn, Role::Activations),
        r.rounding,
    )?;
    if r.scaled {
        let c = Scalar::Input(SCALE);
        m = b.f32op(Op::Scale { c }, "m1", Role::Activations, &[m])?;
    }
    let centre = match (r.centred, cached) {
        (true, Some((a, _))) => {
            m = b.f32op(Op::Add, "m", Role::Activations, &[a, m])?;
            Some(b.feed(Op::Param, "wc", &shape, full, rn, Role::Weights)?)
        }
        _ => None,
    };
    b.set_scope(Scope::new(model.loss_part(), Pass::Backward));
    let mut e = phi(&mut b, model, m, y, "e1", rows)?;
    if let Some((a, _)) = cached {
        let e0 = phi(&mut b, model, a, y, "e0", rows)?;
        e = b.f32op(Op::Sub, "de", Role::Gradients, &[e, e0])?;
    }
    let gr = match r.datapath {
        Datapath::LowPrecision => arch.formats.rounding.gradients,
        Datapath::FullPrecision => rn,
    };
    b.set_scope(Scope::new(dense.part, Pass::Backward));
    let mut h = b.matmul("gd", (x, true), (e, false), (full, rn, Role::Gradients), gr)?;
    b.set_scope(Scope::update());
    if let Some((_, gt)) = cached {
        h = b.f32op(Op::Add, "h", Role::Gradients, &[h, gt])?;
    }
    if l2 > 0.0 {
        h = b.f32op(
            Op::Axpy {
                c: Scalar::Input(L2_SCALE),
            },
            "h.l2",
            Role::Gradients,
            &[h, k],
        )?;
        if let Some(c) = centre {
            h = b.f32op(Op::Axpy { c: l2.into() }, "h.l2c", Role::Gradients, &[h, c])?;
        }
    }
    match r.update {
        Some((uf, ur)) => {
            let u = b.op(
                Op::Scale {
                    c: Scalar::Input(LR_OVER_SCALE),
                },
                "u",
                uf,
                ur,
                Role::Updates,
                &[h],
            )?;
            b.op(
                Op::Sub,
                "k.next",
                r.code,
                r.rounding,
                Role::Weights,
                &[k, u],
            )?;
        }
        None => {
            b.op(
                Op::Axpy {
                    c: Scalar::Input(NEG_LR_OVER_SCALE),
                },
                "k.next",
                r.code,
                r.rounding,
                Role::Weights,
                &[k, h],
            )?;
        }
    }
    Ok(b.b.build(&["k.next"])?)
}

/// The parameter shape, L2 constant and targets per example of a linear model.
fn linear_shape(algo: Algo, model: &Model) -> Result<([usize; 2], f64, usize), AlgoError> {
    match model.kind() {
        ModelKind::Linear | ModelKind::Logistic => {
            let (d, t) = (model.inputs(), model.outputs());
            Ok(([d, t], model.l2(), t))
        }
        _ => Err(AlgoError::Unsupported(format!(
            "`{algo}` runs on linear models (linear, logistic) only"
        ))),
    }
}

/// The inner-step graph of `algo` (for `lpsim graph`), its scalars at the initial scale
/// (HALP: 1).
pub fn example_graph(
    algo: Algo,
    model: &Model,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<StepGraph, AlgoError> {
    match model.kind() {
        ModelKind::Linear | ModelKind::Logistic => {}
        ModelKind::Gaussian => return Err(svrg_nn::no_training_set(algo)),
        // Every layered kind.
        _ => return svrg_nn::example_graph(algo, model, arch, hyper),
    }
    let (shape, l2, t) = linear_shape(algo, model)?;
    let (repr, scale) = representation(algo, arch, hyper)?;
    let batch = hyper.count("batch", 1)? as usize;
    let io = (batch, shape, t, data_format_on(repr.datapath, arch));
    let graph = inner_graph(model, arch, &repr, io, l2)?;
    Ok(StepGraph::new(
        graph,
        &inner_scalars(scale, hyper.get("lr"), l2),
    ))
}

/// `a` rounded to nearest-even in `format` (a conversion the driver makes between datapaths:
/// the iterate of LP-SVRG as the centre of its full gradient).
fn rounded(a: &Array2<f64>, format: Format) -> Array2<f64> {
    let q = Quantizer::new(format, Rounding::NearestEven, 0, 0)
        .expect("every format has round-to-nearest-even");
    let src = a.as_standard_layout();
    let mut out = Array2::<f64>::zeros(a.raw_dim());
    q.quantize_f64(
        src.as_slice().expect("standard layout"),
        out.as_slice_mut().expect("fresh array"),
        0,
        a.ncols(),
    );
    out
}

/// A named output of an executed step as a matrix.
fn take(res: &mut StepResult, name: &str) -> Array2<f64> {
    res.values
        .remove(name)
        .expect("a graph output")
        .into_dimensionality()
        .expect("outputs are matrices")
}

/// Run the SVRG-family driver (see the module docs). HALP's `mu`, when derived from the problem,
/// is returned in the outcome's `derived` hyperparameters.
pub(crate) fn train(
    algo: Algo,
    model: &Model,
    data: Option<&TrainData>,
    arch: &Architecture,
    hyper: &Hyper,
    seed: u64,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    match model.kind() {
        ModelKind::Linear | ModelKind::Logistic => {}
        ModelKind::Gaussian => return Err(svrg_nn::no_training_set(algo)),
        // Every layered kind.
        _ => return svrg_nn::train(algo, model, data, arch, hyper, seed, on_epoch),
    }
    let (shape, l2, _) = linear_shape(algo, model)?;
    let data = data.ok_or_else(|| AlgoError::Data("this model needs training data".into()))?;
    let epochs = hyper.count("epochs", 1)? as usize;
    let batch = hyper.count("batch", 1)? as usize;
    let (repr, mut scale) = representation(algo, arch, hyper)?;
    let stored = data_format_on(repr.datapath, arch);
    let batches = Batches::new(data, model, batch, seed, stored)?;
    let n = batches.n;
    let t = batches.all().1.ncols();
    let epoch_len = match hyper.count("epoch_len", 0)? {
        0 => (2 * n).div_ceil(batch) as u64,
        e => e,
    };
    let lr = hyper.get("lr");
    let mut derived = BTreeMap::new();
    let mu = match hyper.get("mu") {
        _ if algo != Algo::Halp => 0.0,
        m if m < 0.0 => {
            return Err(AlgoError::BadHyper {
                name: "mu".into(),
                reason: format!("{m}: must be > 0 (0 = from the problem)"),
            })
        }
        0.0 => {
            let mu = strong_convexity(model, &data.x_train)?;
            derived.insert("mu".to_string(), mu);
            mu
        }
        m => m,
    };
    let mut codes: Array2<f64> = init_params(model, repr.code, repr.rounding, seed)
        .remove(0)
        .into_dimensionality()
        .expect("a linear model's weight is a matrix");
    let mut centre = Array2::<f64>::zeros((shape[0], shape[1]));
    let full = full_graph(model, arch, (n, shape, t, stored))?;
    let (xall, yall) = batches.all();
    let mut run = Run::new(epochs, epoch_len);
    run.range.merge(&batches.data_health(data));
    let mut feeds = BTreeMap::new();
    let to_full = |a: &Array2<f64>| rounded(a, arch.full_precision.format);
    let g = inner_graph(model, arch, &repr, (batch, shape, t, stored), l2)?;
    let (full_exec, inner) = (Executor::new(&full, arch), Executor::new(&g, arch));
    // The full pass's data, fed once for every epoch.
    let mut f = BTreeMap::new();
    f.insert("x".to_string(), xall.clone().into_dyn());
    f.insert("y".to_string(), yall.clone().into_dyn());
    for epoch in 1..=epochs {
        let mut cached = None;
        if repr.variance_reduced {
            let wc = if repr.centred {
                centre.clone()
            } else {
                to_full(&codes.mapv(|c| c * scale))
            };
            f.insert("wc".to_string(), wc.into_dyn());
            let mut res = full_exec.run(&f, seed, (epoch as u64) << 40)?;
            run.add(&res);
            let a = take(&mut res, "a");
            let gt = take(&mut res, "gt");
            if repr.centred {
                let norm = gt
                    .iter()
                    .zip(&centre)
                    .map(|(g, c)| (g + l2 * c).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let delta = norm / (mu * repr.levels);
                scale = (delta / repr.ulp).max(f64::MIN_POSITIVE);
                codes.fill(0.0);
            }
            cached = Some((a, gt));
        }
        for (name, v) in inner_scalars(scale, lr, l2) {
            feeds.insert(name.to_string(), ndarray::arr1(&[v]).into_dyn());
        }
        if let Some((_, gt)) = &cached {
            feeds.insert("gt".to_string(), gt.clone().into_dyn());
        }
        if repr.centred {
            feeds.insert("wc".to_string(), centre.clone().into_dyn());
        }
        for s in 0..epoch_len {
            let step = (epoch as u64 - 1) * epoch_len + s;
            let idx = batches.indices(step);
            batches.feed_rows(&idx, &mut feeds);
            if let Some((a, _)) = &cached {
                feeds.insert("a".to_string(), a.select(Axis(0), &idx).into_dyn());
            }
            // Moved in and back out (`k.next`), not copied.
            feeds.insert("k".to_string(), std::mem::take(&mut codes).into_dyn());
            let mut res = inner.run(&feeds, seed, step)?;
            codes = take(&mut res, "k.next");
            run.add(&res);
        }
        let w = if repr.centred {
            let state = (&centre, &codes, repr.code);
            centre = recentre(arch, state, scale, (seed, epoch), &mut run)?;
            codes.fill(0.0);
            centre.clone()
        } else {
            codes.mapv(|c| c * scale)
        };
        let params = [w.into_dyn()];
        let l = model.train_loss(&params, Some((data.x_train.view(), &data.y_train)));
        if run.end_epoch(epoch, &params, l, on_epoch) {
            break;
        }
    }
    let params = if repr.centred {
        vec![centre.into_dyn()]
    } else {
        vec![codes.mapv(|c| c * scale).into_dyn()]
    };
    let mut outcome = run.finish(params, None);
    outcome.derived = derived;
    Ok(outcome)
}

/// HALP's end of epoch: `w~ <- w~ + s v` on the full-precision unit (a one-node graph, so it is
/// counted).
pub(crate) fn recentre<D: Dimension>(
    arch: &Architecture,
    (centre, codes, code): (&Array<f64, D>, &Array<f64, D>, Format),
    scale: f64,
    (seed, epoch): (u64, usize),
    run: &mut Run,
) -> Result<Array<f64, D>, AlgoError> {
    let shape = centre.shape();
    let rn = Rounding::NearestEven;
    let mut b = Builder::full_precision(arch);
    let full = b.full();
    let c = b.feed(Op::Param, "wc", shape, full, rn, Role::Weights)?;
    let k = b.feed(Op::Param, "k", shape, code, rn, Role::Weights)?;
    b.f32op(
        Op::Axpy { c: scale.into() },
        "wc.next",
        Role::Weights,
        &[c, k],
    )?;
    let g = b.b.build(&["wc.next"])?;
    let mut f = BTreeMap::new();
    f.insert("wc".to_string(), centre.clone().into_dyn());
    f.insert("k".to_string(), codes.clone().into_dyn());
    let mut res = execute(&g, arch, &f, seed, ((epoch as u64) << 40) + 1)?;
    run.add(&res);
    Ok(res
        .values
        .remove("wc.next")
        .expect("a graph output")
        .into_dimensionality()
        .expect("the centre's shape"))
}
