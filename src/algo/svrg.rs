//! SVRG, LP-SVRG, HALP and HALP's LP-SGD (De Sa et al. 2018; ALGORITHMS.md 2.1) for linear
//! models (`Linear`, `Logistic`; MLPs run in [`svrg_nn`]), whose gradients are `X^T phi'(X w)`
//! with `phi'` the residual (`X w - y`) or the softmax error (`softmax(X w) - Y`), averaged over
//! the batch.
//!
//! The low-precision variable is a tensor of `b`-bit integer codes `k` (format
//! `fixed:wl=b,fl=0`, stochastic rounding, saturating) with a scale `delta`, so `w = delta k`
//! (LP-SVRG, LP-SGD with `delta > 0`) or `w = w~ + delta k` (HALP's offset `z = delta k`).
//! With `delta = 0` LP-SVRG keeps `w` in the architecture's weight format instead (`k = w`,
//! scale 1); SVRG keeps `w` in `fp32`. The codes are B operands of the MAC (an `fp32` MAC holds
//! integers of up to 24 bits exactly), so `x^T z = delta (x^T k)` is an integer dot product
//! scaled on the vector unit, as the paper describes.
//!
//! Per epoch (full precision, `fp32` on the MAC): the cached margins `a = X w~` and the full
//! gradient `g~ = X^T phi'(a) / N` at the centre `w~` (the current iterate for SVRG and LP-SVRG);
//! HALP re-scales `delta = ||g~|| / (mu (2^(b-1) - 1))` and re-centres `k = 0`. Then `T` inner
//! steps on a mini-batch `i` with margins `m = a_i + delta x_i k` (HALP), `delta x_i k` or
//! `x_i w`:
//! `k <- Q(k - (lr / delta) (x_i^T (phi'(m) - phi'(a_i)) + g~ + l2 w))` (LP-SGD: no `- phi'(a_i)`
//! and no `g~`). HALP ends the epoch with `w~ <- w~ + delta k` (in `fp32`, option I).
//! The features `x` are fed as stored, in the architecture's input format
//! ([`crate::algo::sgld::data_format`]).

use std::collections::BTreeMap;

use ndarray::Array2;
use petgraph::graph::NodeIndex;

use crate::algo::model::{fp32, fp32_as, Builder};
use crate::algo::sgld::{data_format, init_params, picked_rows, Batches, Run};
use crate::algo::svrg_nn;
use crate::algo::{loss, Algo, AlgoError, EpochStats, Hyper, ModelShape, TrainData, TrainOutcome};
use crate::arch::Architecture;
use crate::format::{FixedFormat, Format};
use crate::graph::{execute, fits_within, Graph, Op, Role};
use crate::round::Rounding;

/// `phi'(m)` for targets `y` over a batch of `rows`, in `fp32`.
fn phi(
    b: &mut Builder,
    model: &ModelShape,
    m: NodeIndex,
    y: NodeIndex,
    name: &str,
    rows: usize,
) -> Result<NodeIndex, AlgoError> {
    match model {
        ModelShape::Linear { .. } => {
            let r = b.f32op(Op::Sub, &format!("{name}.resid"), Role::Gradients, &[m, y])?;
            b.f32op(
                Op::Scale {
                    c: 1.0 / rows as f64,
                },
                name,
                Role::Gradients,
                &[r],
            )
        }
        _ => b.f32op(Op::SoftmaxXentGrad, name, Role::Gradients, &[m, y]),
    }
}

/// The full-gradient graph at the centre `wc` over all `n` examples: outputs `a` (margins) and
/// `gt` (the data part of the full gradient).
fn full_graph(
    model: &ModelShape,
    arch: &Architecture,
    io: (usize, [usize; 2], usize, (Format, Rounding)),
) -> Result<Graph, AlgoError> {
    let (n, shape, t, data) = io;
    let mut b = Builder::new(arch);
    let x = b.feed(Op::Input, "x", &[n, shape[0]], data.0, data.1, Role::Data)?;
    let rn = Rounding::NearestEven;
    let y = b.feed(Op::Input, "y", &[n, t], fp32(), rn, Role::Data)?;
    let wc = b.feed(Op::Param, "wc", &shape, fp32(), rn, Role::Weights)?;
    let a = b.matmul("a", (x, false), (wc, false), fp32_as(Role::Activations), rn)?;
    let e = phi(&mut b, model, a, y, "e", n)?;
    b.matmul("gt", (x, true), (e, false), fp32_as(Role::Gradients), rn)?;
    Ok(b.b.build(&["a", "gt"])?)
}

/// How the iterate is represented.
struct Repr {
    code: Format,
    rounding: Rounding,
    variance_reduced: bool,
    centred: bool,
    /// Whether `w` is `scale x codes` (a delta grid), so margins are scaled on the vector unit.
    scaled: bool,
}

/// The inner-step graph (see the module docs); output `k.next`. `io`: batch rows, parameter
/// shape, targets, and the features' stored format and rounding.
fn inner_graph(
    model: &ModelShape,
    arch: &Architecture,
    r: &Repr,
    io: (usize, [usize; 2], usize, (Format, Rounding)),
    scale: f64,
    lr: f64,
    l2: f64,
) -> Result<Graph, AlgoError> {
    let (rows, shape, t, data) = io;
    let rn = Rounding::NearestEven;
    let mut b = Builder::new(arch);
    let x = b.feed(
        Op::Input,
        "x",
        &[rows, shape[0]],
        data.0,
        data.1,
        Role::Data,
    )?;
    let x = picked_rows(&mut b, x)?;
    let y = b.feed(Op::Input, "y", &[rows, t], fp32(), rn, Role::Data)?;
    let k = b.feed(Op::Param, "k", &shape, r.code, r.rounding, Role::Weights)?;
    let cached = if r.variance_reduced {
        Some((
            b.feed(Op::Input, "a", &[rows, t], fp32(), rn, Role::Activations)?,
            b.feed(Op::Param, "gt", &shape, fp32(), rn, Role::Gradients)?,
        ))
    } else {
        None
    };
    let mut m = b.matmul(
        "m0",
        (x, false),
        (k, false),
        fp32_as(Role::Activations),
        r.rounding,
    )?;
    if r.scaled {
        m = b.f32op(Op::Scale { c: scale }, "m1", Role::Activations, &[m])?;
    }
    let centre = if r.centred {
        let (a, _) = cached.expect("HALP is variance reduced");
        m = b.f32op(Op::Add, "m", Role::Activations, &[a, m])?;
        Some(b.feed(Op::Param, "wc", &shape, fp32(), rn, Role::Weights)?)
    } else {
        None
    };
    let mut e = phi(&mut b, model, m, y, "e1", rows)?;
    if let Some((a, _)) = cached {
        let e0 = phi(&mut b, model, a, y, "e0", rows)?;
        e = b.f32op(Op::Sub, "de", Role::Gradients, &[e, e0])?;
    }
    let mut h = b.matmul("gd", (x, true), (e, false), fp32_as(Role::Gradients), rn)?;
    if let Some((_, gt)) = cached {
        h = b.f32op(Op::Add, "h", Role::Gradients, &[h, gt])?;
    }
    if l2 > 0.0 {
        h = b.f32op(Op::Axpy { c: l2 * scale }, "h.l2", Role::Gradients, &[h, k])?;
        if let Some(c) = centre {
            h = b.f32op(Op::Axpy { c: l2 }, "h.l2c", Role::Gradients, &[h, c])?;
        }
    }
    b.op(
        Op::Axpy { c: -lr / scale },
        "k.next",
        r.code,
        r.rounding,
        Role::Weights,
        &[k, h],
    )?;
    Ok(b.b.build(&["k.next"])?)
}

/// The stochastic rounding of the codes: the weights' unit if it is stochastic, else `sr`.
pub(crate) fn code_rounding(arch: &Architecture) -> Rounding {
    match arch.formats.rounding.weights {
        r @ Rounding::Stochastic { .. } => r,
        _ => Rounding::Stochastic { bits: 32 },
    }
}

/// The iterate's representation of `algo`, the bits `b` and the initial scale (see the module
/// docs).
fn representation(
    algo: Algo,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<(Repr, u32, f64), AlgoError> {
    let delta = hyper.get("delta");
    let bits = match hyper.count("bits", 0)? {
        0 => arch.formats.weights.bits().min(24),
        b => b as u32,
    };
    let grid = algo == Algo::Halp || delta > 0.0;
    let repr = if algo == Algo::Svrg {
        Repr {
            code: fp32(),
            rounding: Rounding::NearestEven,
            variance_reduced: true,
            centred: false,
            scaled: false,
        }
    } else if grid {
        let code =
            FixedFormat::new(bits, 0, true, true, false).map_err(|reason| AlgoError::BadHyper {
                name: "bits".into(),
                reason: format!("{bits}: {reason}"),
            })?;
        Repr {
            code: Format::Fixed(code),
            rounding: code_rounding(arch),
            variance_reduced: algo != Algo::LpSgd,
            centred: algo == Algo::Halp,
            scaled: true,
        }
    } else {
        Repr {
            code: arch.formats.weights,
            rounding: arch.formats.rounding.weights,
            variance_reduced: true,
            centred: false,
            scaled: false,
        }
    };
    if !fits_within(&repr.code, &arch.formats.mac.b) {
        return Err(AlgoError::Unsupported(format!(
            "`{algo}`: the iterate's format `{}` is not a value of the MAC's b format `{}`; \
             use an architecture whose MAC takes it (e.g. an fp32 MAC) or fewer `bits`",
            repr.code, arch.formats.mac.b
        )));
    }
    let scale = if grid && algo != Algo::Halp {
        delta
    } else {
        1.0
    };
    Ok((repr, bits, scale))
}

/// The inner-step graph of `algo` (for `lpsim graph`), at the initial scale (HALP: 1).
pub fn example_graph(
    algo: Algo,
    model: &ModelShape,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<Graph, AlgoError> {
    let (shape, l2, t) = match model {
        ModelShape::Linear { d } => ([*d, 1], 0.0, 1),
        ModelShape::Logistic { d, classes, l2 } => ([*d, *classes], *l2, *classes),
        ModelShape::Mlp { .. } => return svrg_nn::example_graph(algo, model, arch, hyper),
        ModelShape::Gaussian { .. } => return Err(svrg_nn::no_training_set(algo)),
    };
    let (repr, _, scale) = representation(algo, arch, hyper)?;
    let batch = hyper.count("batch", 1)? as usize;
    inner_graph(
        model,
        arch,
        &repr,
        (batch, shape, t, data_format(arch)),
        scale,
        hyper.get("lr"),
        l2,
    )
}

/// Run the SVRG-family driver (see the module docs).
pub(crate) fn train(
    algo: Algo,
    model: &ModelShape,
    data: Option<&TrainData>,
    arch: &Architecture,
    hyper: &Hyper,
    seed: u64,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    let (shape, l2) = match model {
        ModelShape::Linear { d } => ([*d, 1], 0.0),
        ModelShape::Logistic { d, classes, l2 } => ([*d, *classes], *l2),
        ModelShape::Mlp { .. } => {
            return svrg_nn::train(algo, model, data, arch, hyper, seed, on_epoch)
        }
        ModelShape::Gaussian { .. } => return Err(svrg_nn::no_training_set(algo)),
    };
    let data = data.ok_or_else(|| AlgoError::Data("this model needs training data".into()))?;
    let epochs = hyper.count("epochs", 1)? as usize;
    let batch = hyper.count("batch", 1)? as usize;
    let batches = Batches::new(data, model, batch, seed, data_format(arch))?;
    let n = batches.n;
    let t = batches.all().1.ncols();
    let epoch_len = match hyper.count("epoch_len", 0)? {
        0 => (2 * n).div_ceil(batch) as u64,
        e => e,
    };
    let lr = hyper.get("lr");
    let (repr, bits, mut scale) = representation(algo, arch, hyper)?;
    let mut codes = init_params(model, repr.code, repr.rounding, seed).remove(0);
    let mut centre = Array2::<f64>::zeros((shape[0], shape[1]));
    let full = full_graph(model, arch, (n, shape, t, batches.format))?;
    let (xall, yall) = batches.all();
    let mut run = Run::new();
    run.range.merge(&batches.data_health(data));
    let mut feeds = BTreeMap::new();
    let f32v = |a: &Array2<f64>| a.mapv(|v| f64::from(v as f32));
    for epoch in 1..=epochs {
        let mut cached = None;
        if repr.variance_reduced {
            let wc = if repr.centred {
                centre.clone()
            } else {
                f32v(&codes.mapv(|c| c * scale))
            };
            let mut f = BTreeMap::new();
            f.insert("x".to_string(), xall.clone().into_dyn());
            f.insert("y".to_string(), yall.clone().into_dyn());
            f.insert("wc".to_string(), wc.clone().into_dyn());
            let mut res = execute(&full, arch, &f, seed, (epoch as u64) << 40)?;
            run.add(&res.counts, std::mem::take(&mut res.work), &res.range);
            let take = |res: &mut crate::graph::StepResult, k: &str| -> Array2<f64> {
                res.values
                    .remove(k)
                    .expect("graph output")
                    .into_dimensionality()
                    .expect("matrix")
            };
            let a = take(&mut res, "a");
            let gt = take(&mut res, "gt");
            if repr.centred {
                let norm = gt
                    .iter()
                    .zip(&centre)
                    .map(|(g, c)| (g + l2 * c).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let levels = (2f64.powi(bits as i32 - 1) - 1.0).max(1.0);
                scale = (norm / (hyper.get("mu") * levels)).max(f64::MIN_POSITIVE);
                codes.fill(0.0);
            }
            cached = Some((a, gt));
        }
        let io = (batch, shape, t, batches.format);
        let g = inner_graph(model, arch, &repr, io, scale, lr, l2)?;
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
                feeds.insert("a".to_string(), a.select(ndarray::Axis(0), &idx).into_dyn());
            }
            feeds.insert("k".to_string(), codes.clone().into_dyn());
            let mut res = execute(&g, arch, &feeds, seed, step)?;
            codes = res
                .values
                .remove("k.next")
                .expect("graph output")
                .into_dimensionality()
                .expect("matrix");
            run.add(&res.counts, res.work, &res.range);
        }
        let w = if repr.centred {
            centre = recentre(arch, &centre, &codes, scale, seed, epoch, &mut run)?;
            codes.fill(0.0);
            centre.clone()
        } else {
            codes.mapv(|c| c * scale)
        };
        let params = vec![w];
        let l = loss(model, &params, data.x_train.view(), &data.y_train);
        if run.end_epoch(epoch, &params, l, on_epoch) {
            break;
        }
    }
    let params = if repr.centred {
        vec![centre]
    } else {
        vec![codes.mapv(|c| c * scale)]
    };
    Ok(run.finish(params, None))
}

/// HALP's end of epoch: `w~ <- w~ + delta k` in `fp32` (a one-node graph, so it is counted).
pub(crate) fn recentre(
    arch: &Architecture,
    centre: &Array2<f64>,
    codes: &Array2<f64>,
    scale: f64,
    seed: u64,
    epoch: usize,
    run: &mut Run,
) -> Result<Array2<f64>, AlgoError> {
    let shape = [centre.nrows(), centre.ncols()];
    let rn = Rounding::NearestEven;
    let mut b = Builder::new(arch);
    let c = b.feed(Op::Param, "wc", &shape, fp32(), rn, Role::Weights)?;
    let k = b.feed(Op::Param, "k", &shape, fp32(), rn, Role::Weights)?;
    b.f32op(Op::Axpy { c: scale }, "wc.next", Role::Weights, &[c, k])?;
    let g = b.b.build(&["wc.next"])?;
    let mut f = BTreeMap::new();
    f.insert("wc".to_string(), centre.clone().into_dyn());
    f.insert("k".to_string(), codes.clone().into_dyn());
    let mut res = execute(&g, arch, &f, seed, ((epoch as u64) << 40) + 1)?;
    run.add(&res.counts, res.work, &res.range);
    Ok(res
        .values
        .remove("wc.next")
        .expect("graph output")
        .into_dimensionality()
        .expect("matrix"))
}
