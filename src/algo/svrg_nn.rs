//! The SVRG family on neural networks ([`ModelShape::Mlp`]): `svrg`, `lp-svrg` and `halp`
//! (De Sa et al. 2018, ALGORITHMS.md 2), dispatched from [`super::svrg`]. HALP's bit-centred
//! layers follow the authors' code (`HazyResearch/halp`: `halp/optim/bit_center_svrg.py`,
//! `bit_center_sgd.py`, `halp/layers/linear_layer.py`, `relu_layer.py`, `cross_entropy.py`).
//!
//! Every epoch starts with a full-precision pass over the whole training set at the snapshot
//! (centre) `w~` ([`full_precision`]): the full gradient `g~ = (1/N) sum_i grad f_i(w~)`, by the
//! model's own gradient subgraph ([`Builder::gradients`]). Then `T` inner steps (`epoch_len`, by
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
//! - `halp`: every weight matrix is a full-precision centre `W~_l` plus an offset
//!   `Z_l = delta_l K_l`, with codes `K_l` ([`offset_codes`]) and the layer's own scale
//!   `delta_l = ||g~_l|| / (mu levels)`, re-scaled and re-centred (`K_l = 0`) every epoch and
//!   folded back (`W~_l <- W~_l + delta_l K_l` in `fp32`, option I) at its end. The full pass
//!   also caches, per training example, the centre's pre-activations `z~_l`, activations `a~_l`
//!   and the backward pass's gradients with respect to them (`g~z_l`, `g~h_l`), all in `fp32`,
//!   and the centre's copy `Wc_l` in the MAC's B format (the authors' `weight_lp`). The inner
//!   step computes the gradient *difference* `grad f_i(w~ + z) - grad f_i(w~)` with bit-centred
//!   layers, so every matmul multiplies an offset (or an offset's gradient) on the
//!   architecture's MAC: with `s_l = z~_l + dz_l` the pre-activation at `w` and `c = N / B` (the
//!   cache holds gradients of the mean over `N`, the step's are over the batch's `B` rows),
//!   - linear, forward: `dz_l = da_l Wc_l + delta_l (a_l K_l)` (`a_0 = x`, `da_0 = 0`);
//!   - ReLU, forward: `a_{l+1} = relu(s_l)` in `fp32`, `da_{l+1} = a_{l+1} - a~_{l+1}`;
//!   - cross-entropy: `dg_L = softmaxgrad(s_L) - softmaxgrad(z~_L)`;
//!   - linear, backward: `dW_l = a_l^T dg_l + c da_l^T g~z_l` and
//!     `dgh_{l-1} = dg_l Wc_l^T + delta_l ((c g~z_l + dg_l) K_l^T)`;
//!   - ReLU, backward: `dg_{l-1} = dgh_{l-1} [s > 0] + c (g~h_{l-1} [s > 0] - g~z_{l-1})`;
//!   - update: `K_l <- Q(K_l - (lr / delta_l) (dW_l + g~_l))`, stochastic rounding onto the
//!     codes (the authors' `delta -= lr g_delta + lr g~`).
//!
//!   Offsets of activations (`da`, `dz`) are stored in the architecture's activation format, of
//!   gradients (`dg`, `dgh`, `dW`) in its gradient format (the authors keep both in fp16);
//!   sums with the centre run on the vector unit in `fp32`. At `K = 0` every difference is
//!   exactly zero, so the first step's direction is exactly `g~`.
//!
//! Deviations from the authors' code, and why:
//! - one full pass of the whole training set (the authors sum per-mini-batch gradients and divide
//!   by the number of mini-batches: the same mean when the batch divides `N`);
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
//! - `delta_l` per weight matrix from its own part of `g~` (the paper's single `delta` is for a
//!   vector; the authors' fp16 offsets scale per element by their exponent);
//! - no momentum and no weight decay (the MLP has no L2 term; lpsim has no momentum anywhere).
//!
//! Not supported on MLPs: a fixed `delta` grid (`lp-sgd`/`lp-svrg` with `delta > 0`); the
//! Gaussian toy for the whole family ([`no_training_set`]).

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayD, Axis};
use petgraph::graph::NodeIndex;

use crate::algo::model::{fp32, param_shapes, Builder};
use crate::algo::sgld::{init_params, Batches, Run};
use crate::algo::svrg::{code_rounding, recentre};
use crate::algo::{loss, Algo, AlgoError, EpochStats, Hyper, ModelShape, TrainData, TrainOutcome};
use crate::arch::{Architecture, StoreRounding};
use crate::format::{FixedFormat, Format};
use crate::graph::{execute, fits_within, Graph, Level, Op, StepResult, TensorMeta};
use crate::round::Rounding;

/// The refusal of the SVRG family on a model without a training set (the Gaussian toy).
pub(crate) fn no_training_set(algo: Algo) -> AlgoError {
    AlgoError::Unsupported(format!(
        "`{algo}` needs a training set: SVRG's full gradient is a sum over examples, and a \
         sampling target has none"
    ))
}

/// The datapath of the full-precision passes (the full gradient, HALP's centre caches): `arch`
/// with an `fp32` MAC (exact products, `fp32` accumulator) and `fp32` tensors, all rounded to
/// nearest even; the vector unit and memories are the architecture's.
///
/// A stand-in for the architecture's own full-precision path: everything full precision in this
/// module runs on the architecture this returns.
fn full_precision(arch: &Architecture) -> Architecture {
    let mut fp = arch.clone();
    let rn = Rounding::NearestEven;
    let f = &mut fp.formats;
    f.weights = fp32();
    f.activations = fp32();
    f.gradients = fp32();
    f.updates = fp32();
    f.rounding = StoreRounding {
        weights: rn,
        activations: rn,
        gradients: rn,
        updates: rn,
    };
    f.mac.a = fp32();
    f.mac.b = fp32();
    f.mac.product = None;
    f.mac.fused = true;
    f.mac.acc = fp32();
    f.mac.acc_rounding = rn;
    fp
}

/// Whether every value of `format` is exact as the MAC's B operand, so codes can be multiplied
/// without a conversion. A stand-in for the architecture's own exactness rule.
fn exact_on_mac(format: &Format, arch: &Architecture) -> bool {
    fits_within(format, &arch.formats.mac.b)
}

/// HALP's offset codes: their format and rounding, and the code value `levels` that the offset
/// bound `||g~_l|| / mu` maps to (`delta_l = ||g~_l|| / (mu levels)`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Codes {
    format: Format,
    rounding: Rounding,
    levels: f64,
}

/// The offset codes on `arch` (stochastic rounding: the weights' unit if it is stochastic, else
/// `sr`). `bits = b > 0`: the paper's `b`-bit integers (`levels = 2^(b-1) - 1`), refused unless
/// the MAC takes them exactly. `bits = 0`: integers as wide as the weight format (at most 24
/// bits), as on linear models, where the MAC takes them exactly; otherwise the weight format
/// itself, as the authors keep the offset in the datapath's own fp16 (`levels`: the format's
/// largest value for fixed point; 1 for floats and block formats, whose exponent resolves the
/// smaller offsets).
fn offset_codes(arch: &Architecture, hyper: &Hyper) -> Result<Codes, AlgoError> {
    let bits = hyper.count("bits", 0)? as u32;
    let b = match bits {
        0 => arch.formats.weights.bits().min(24),
        b => b,
    };
    let fixed =
        FixedFormat::new(b, 0, true, true, false).map_err(|reason| AlgoError::BadHyper {
            name: "bits".into(),
            reason: format!("{b}: {reason}"),
        })?;
    let rounding = code_rounding(arch);
    let levels = |f: &FixedFormat| f.max_value().max(f.step());
    if exact_on_mac(&Format::Fixed(fixed), arch) {
        return Ok(Codes {
            format: Format::Fixed(fixed),
            rounding,
            levels: levels(&fixed),
        });
    }
    let weights = arch.formats.weights;
    if bits > 0 || !exact_on_mac(&weights, arch) {
        let ints = Format::Fixed(fixed);
        let tried = if bits > 0 {
            format!("`{ints}`")
        } else {
            format!("`{ints}` and the weight format `{weights}`")
        };
        return Err(AlgoError::Unsupported(format!(
            "`halp`: the offset codes ({tried}) are not values of the MAC's b format `{}`; \
             use `bits` = 0 (the weight format) or an architecture whose MAC takes them",
            arch.formats.mac.b
        )));
    }
    Ok(Codes {
        format: weights,
        rounding,
        levels: match weights {
            Format::Fixed(f) => levels(&f),
            _ => 1.0,
        },
    })
}

/// The layer widths `[d, hidden.., classes]` of an MLP whose parameters are one weight matrix per
/// layer, chained (HALP's bit-centred layers take exactly that).
fn widths(model: &ModelShape) -> Result<Vec<usize>, AlgoError> {
    let shapes = param_shapes(model);
    let chained = shapes.windows(2).all(|p| p[0][1] == p[1][0]);
    if shapes.is_empty() || !chained {
        return Err(AlgoError::Unsupported(format!(
            "`halp` on an MLP: the bit-centred layers take one weight matrix per layer; this \
             model's parameters are {shapes:?}"
        )));
    }
    let mut w = vec![shapes[0][0]];
    w.extend(shapes.iter().map(|s| s[1]));
    Ok(w)
}

/// A feed's format and rounding.
type Store = (Format, Rounding);

/// A builder holding the mini-batch gradient subgraph of `model` on `rows` examples (feeds `x`,
/// `y` and `w{l}` stored as `store`): the weight nodes and their gradients.
fn gradient_part<'a>(
    model: &ModelShape,
    arch: &'a Architecture,
    rows: usize,
    store: Store,
) -> Result<(Builder<'a>, Vec<NodeIndex>, Vec<NodeIndex>), AlgoError> {
    let shapes = param_shapes(model);
    let rn = Rounding::NearestEven;
    let mut b = Builder::new(arch);
    let (d, t) = (shapes[0][0], shapes[shapes.len() - 1][1]);
    let x = b.feed(Op::Input, "x", &[rows, d], fp32(), rn)?;
    let y = b.feed(Op::Input, "y", &[rows, t], fp32(), rn)?;
    let mut w = Vec::new();
    for (l, s) in shapes.iter().enumerate() {
        w.push(b.feed(Op::Param, &format!("w{l}"), s, store.0, store.1)?);
    }
    let (_, g) = b.gradients(model, Some(x), Some(y), &w)?;
    Ok((b, w, g))
}

/// The gradient graph of `model` on `rows` examples (outputs: the gradients), plus for HALP the
/// centre's copy `wc{l}` in the MAC's B format of `lp` (the run's architecture).
fn gradient_graph(
    model: &ModelShape,
    arch: &Architecture,
    rows: usize,
    store: Store,
    lp: Option<&Architecture>,
) -> Result<Graph, AlgoError> {
    let (mut b, w, g) = gradient_part(model, arch, rows, store)?;
    let mut outputs: Vec<String> = g.iter().map(|&i| b.b.meta(i).name.clone()).collect();
    if let Some(lp) = lp {
        let (mb, rw) = (lp.formats.mac.b, lp.formats.rounding.weights);
        for (l, &p) in w.iter().enumerate() {
            let name = format!("wc{l}");
            b.op(Op::Quantize, &name, mb, rw, &[p])?;
            outputs.push(name);
        }
    }
    let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
    Ok(b.b.build(&names)?)
}

/// SVRG's inner step on an MLP: the batch gradient at `w{l}`, the snapshot's `g0.{l}` (same
/// batch, inner level) and `g~` (`gt{l}`) make `vr{l} = grad - g0 + gt`; output
/// `w{l}.next = w - lr vr`, rounded into `store`.
fn svrg_step_graph(
    model: &ModelShape,
    arch: &Architecture,
    rows: usize,
    store: Store,
    lr: f64,
) -> Result<Graph, AlgoError> {
    let rn = Rounding::NearestEven;
    let (mut b, w, g) = gradient_part(model, arch, rows, store)?;
    let mut outputs = Vec::new();
    for (l, (&p, &gi)) in w.iter().zip(&g).enumerate() {
        let m = b.b.meta(gi).clone();
        let g0 = TensorMeta::new(
            format!("g0.{l}"),
            &m.shape,
            m.format,
            m.rounding,
            Level::Inner,
        );
        let g0 = b.b.add(Op::Input, g0, &[])?;
        let gt = b.feed(Op::Param, &format!("gt{l}"), &m.shape, fp32(), rn)?;
        let d = b.f32op(Op::Sub, &format!("dg{l}"), &[gi, g0])?;
        let v = b.f32op(Op::Add, &format!("vr{l}"), &[d, gt])?;
        let next = format!("w{l}.next");
        b.op(Op::Axpy { c: -lr }, &next, store.0, store.1, &[p, v])?;
        outputs.push(next);
    }
    let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
    Ok(b.b.build(&names)?)
}

/// Constants of HALP's inner step: per-layer scales, step size, and `c = N / B`.
struct HalpConsts<'a> {
    deltas: &'a [f64],
    lr: f64,
    c: f64,
}

/// HALP's bit-centred inner step on an MLP of `widths` over `rows` examples (see the module
/// docs). Feeds: `x`, `y`, per layer `k{l}` (codes), `wc{l}` (centre, MAC B format), `gt{l}`
/// (`g~`), and the centre's cached rows `cz{l}` (pre-activations), `ca{l}` (activations,
/// `l >= 1`), `cg{l}`, `ch{l}` (gradients with respect to `z_l` and `a_{l+1}`, `l < L - 1`).
/// Outputs `k{l}.next`.
fn halp_graph(
    arch: &Architecture,
    widths: &[usize],
    rows: usize,
    codes: &Codes,
    k: &HalpConsts,
) -> Result<Graph, AlgoError> {
    let rn = Rounding::NearestEven;
    let f = &arch.formats;
    let act = (f.activations, f.rounding.activations);
    let (gf, gr) = (f.gradients, f.rounding.gradients);
    let (cf, cr) = (codes.format, codes.rounding);
    let rw = f.rounding.weights;
    let layers = widths.len() - 1;
    let mut b = Builder::new(arch);
    let input = |b: &mut Builder, name: String, cols: usize| {
        b.feed(Op::Input, &name, &[rows, cols], fp32(), rn)
    };
    let x = input(&mut b, "x".into(), widths[0])?;
    let y = input(&mut b, "y".into(), widths[layers])?;
    let (mut kk, mut wc, mut gt) = (Vec::new(), Vec::new(), Vec::new());
    for l in 0..layers {
        let s = [widths[l], widths[l + 1]];
        kk.push(b.feed(Op::Param, &format!("k{l}"), &s, cf, cr)?);
        wc.push(b.feed(Op::Param, &format!("wc{l}"), &s, f.mac.b, rw)?);
        gt.push(b.feed(Op::Param, &format!("gt{l}"), &s, fp32(), rn)?);
    }
    // Forward: full activations `a` (fp32), their offsets `da`, pre-activations `s` at w.
    let (mut a, mut da, mut s, mut cz) = (vec![x], vec![None], Vec::new(), Vec::new());
    for l in 0..layers {
        if l > 0 {
            let ca = input(&mut b, format!("ca{l}"), widths[l])?;
            let al = b.f32op(Op::Relu, &format!("a{l}"), &[s[l - 1]])?;
            a.push(al);
            da.push(Some(b.op(
                Op::Sub,
                &format!("da{l}"),
                act.0,
                act.1,
                &[al, ca],
            )?));
        }
        let m = b.matmul(
            &format!("m{l}"),
            (a[l], false),
            (kk[l], false),
            (fp32(), rn),
            cr,
        )?;
        let dz = match da[l] {
            Some(d) => {
                let p = b.matmul(
                    &format!("p{l}"),
                    (d, false),
                    (wc[l], false),
                    (fp32(), rn),
                    rw,
                )?;
                b.op(
                    Op::Axpy { c: k.deltas[l] },
                    &format!("dz{l}"),
                    act.0,
                    act.1,
                    &[p, m],
                )?
            }
            None => b.op(
                Op::Scale { c: k.deltas[l] },
                &format!("dz{l}"),
                act.0,
                act.1,
                &[m],
            )?,
        };
        let czl = input(&mut b, format!("cz{l}"), widths[l + 1])?;
        s.push(b.f32op(Op::Add, &format!("s{l}"), &[czl, dz])?);
        cz.push(czl);
    }
    // Backward: gradient offsets `dg` with respect to the pre-activations; the centre's gradient
    // at the batch's scale is `coef x centre`.
    let last = layers - 1;
    let e = b.f32op(Op::SoftmaxXentGrad, "e", &[s[last], y])?;
    let e0 = b.f32op(Op::SoftmaxXentGrad, "e0", &[cz[last], y])?;
    let mut dg = b.op(Op::Sub, &format!("dg{last}"), gf, gr, &[e, e0])?;
    let (mut centre, mut coef) = (e0, 1.0);
    let mut outputs = Vec::new();
    for l in (0..layers).rev() {
        let dw = match da[l] {
            None => b.matmul(&format!("dw{l}"), (a[l], true), (dg, false), (gf, gr), gr)?,
            Some(d) => {
                let u = b.matmul(
                    &format!("dwa{l}"),
                    (a[l], true),
                    (dg, false),
                    (fp32(), rn),
                    gr,
                )?;
                let v = b.matmul(
                    &format!("dwb{l}"),
                    (d, true),
                    (centre, false),
                    (fp32(), rn),
                    gr,
                )?;
                b.op(Op::Axpy { c: coef }, &format!("dw{l}"), gf, gr, &[u, v])?
            }
        };
        let h = b.f32op(Op::Add, &format!("h{l}"), &[dw, gt[l]])?;
        let next = format!("k{l}.next");
        let step = Op::Axpy {
            c: -k.lr / k.deltas[l],
        };
        b.op(step, &next, cf, cr, &[kk[l], h])?;
        outputs.push(next);
        if l == 0 {
            break;
        }
        let full = b.f32op(Op::Axpy { c: coef }, &format!("gz{l}"), &[dg, centre])?;
        let q = b.matmul(
            &format!("q{l}"),
            (dg, false),
            (wc[l], true),
            (fp32(), rn),
            rw,
        )?;
        let r = b.matmul(
            &format!("r{l}"),
            (full, false),
            (kk[l], true),
            (fp32(), rn),
            cr,
        )?;
        let j = l - 1;
        let dgh = b.op(
            Op::Axpy { c: k.deltas[l] },
            &format!("dgh{j}"),
            gf,
            gr,
            &[q, r],
        )?;
        let ch = input(&mut b, format!("ch{j}"), widths[l])?;
        let cg = input(&mut b, format!("cg{j}"), widths[l])?;
        let t = b.op(Op::ReluGrad, &format!("t{j}"), gf, gr, &[dgh, s[j]])?;
        let v = b.f32op(Op::ReluGrad, &format!("v{j}"), &[ch, s[j]])?;
        let u = b.f32op(Op::Sub, &format!("u{j}"), &[v, cg])?;
        dg = b.op(Op::Axpy { c: k.c }, &format!("dg{j}"), gf, gr, &[t, u])?;
        (centre, coef) = (cg, k.c);
    }
    let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
    Ok(b.b.build(&names)?)
}

/// The storage of `svrg` (`fp32`) and `lp-svrg` (the weight format, its rounding unit) weights;
/// a fixed `delta` grid is refused.
fn storage(algo: Algo, arch: &Architecture, hyper: &Hyper) -> Result<Store, AlgoError> {
    match algo {
        Algo::Svrg => Ok((fp32(), Rounding::NearestEven)),
        Algo::LpSvrg if hyper.get("delta") == 0.0 => {
            Ok((arch.formats.weights, arch.formats.rounding.weights))
        }
        _ => Err(AlgoError::Unsupported(format!(
            "`{algo}` with `delta` = {} (a fixed delta grid) runs on linear models only; on an \
             MLP set delta = 0 to keep the weights in the architecture's weight format",
            hyper.get("delta")
        ))),
    }
}

/// The inner-step graph of `algo` on an MLP (for `lpsim graph`): HALP's at `delta_l = 1` and
/// `c = 1`, the SVRG step otherwise.
pub(crate) fn example_graph(
    algo: Algo,
    model: &ModelShape,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<Graph, AlgoError> {
    let batch = hyper.count("batch", 1)? as usize;
    if algo == Algo::Halp {
        let w = widths(model)?;
        let deltas = vec![1.0; w.len() - 1];
        let consts = HalpConsts {
            deltas: &deltas,
            lr: hyper.get("lr"),
            c: 1.0,
        };
        return halp_graph(arch, &w, batch, &offset_codes(arch, hyper)?, &consts);
    }
    let store = storage(algo, arch, hyper)?;
    svrg_step_graph(model, arch, batch, store, hyper.get("lr"))
}

/// Take tensor `name` of a step as a matrix.
fn take(res: &mut StepResult, name: &str) -> Array2<f64> {
    res.values
        .remove(name)
        .unwrap_or_else(|| panic!("the step graph has a tensor `{name}`"))
        .into_dimensionality()
        .expect("a matrix")
}

/// The driver's common set-up: epochs, batches, steps per epoch, the run's bookkeeping.
struct Setup<'a> {
    epochs: usize,
    batch: usize,
    batches: Batches,
    epoch_len: u64,
    lr: f64,
    data: &'a TrainData,
}

impl<'a> Setup<'a> {
    fn new(
        model: &ModelShape,
        data: Option<&'a TrainData>,
        hyper: &Hyper,
        seed: u64,
    ) -> Result<Self, AlgoError> {
        let data = data.ok_or_else(|| AlgoError::Data("this model needs training data".into()))?;
        let batch = hyper.count("batch", 1)? as usize;
        let batches = Batches::new(data, model, batch, seed);
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
    fn full_feeds(&self, params: &[Array2<f64>]) -> BTreeMap<String, ArrayD<f64>> {
        let (x, y) = self.batches.all();
        let mut f = BTreeMap::new();
        f.insert("x".to_string(), x.clone().into_dyn());
        f.insert("y".to_string(), y.clone().into_dyn());
        for (l, p) in params.iter().enumerate() {
            f.insert(format!("w{l}"), p.clone().into_dyn());
        }
        f
    }
}

/// Run `svrg`, `lp-svrg` or `halp` on an MLP (see the module docs).
pub(crate) fn train(
    algo: Algo,
    model: &ModelShape,
    data: Option<&TrainData>,
    arch: &Architecture,
    hyper: &Hyper,
    seed: u64,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    let setup = Setup::new(model, data, hyper, seed)?;
    if algo == Algo::Halp {
        train_halp(model, arch, hyper, seed, setup, on_epoch)
    } else {
        let store = storage(algo, arch, hyper)?;
        train_svrg(algo, model, arch, hyper, seed, store, setup, on_epoch)
    }
}

/// `svrg` and `lp-svrg`.
#[allow(clippy::too_many_arguments)]
fn train_svrg(
    algo: Algo,
    model: &ModelShape,
    arch: &Architecture,
    hyper: &Hyper,
    seed: u64,
    store: Store,
    s: Setup,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    let rn = Rounding::NearestEven;
    let fp = full_precision(arch);
    let full = gradient_graph(model, &fp, s.batches.n, (fp32(), rn), None)?;
    let snapshot = gradient_graph(model, arch, s.batch, store, None)?;
    let step = svrg_step_graph(model, arch, s.batch, store, s.lr)?;
    let layers = param_shapes(model).len();
    let mut w = init_params(model, store.0, store.1, seed);
    let mut run = Run::new(algo, hyper, s.epochs);
    let mut feeds = BTreeMap::new();
    for epoch in 1..=s.epochs {
        let mut res = execute(&full, &fp, &s.full_feeds(&w), seed, (epoch as u64) << 40)?;
        run.add(&res.counts, std::mem::take(&mut res.work));
        for l in 0..layers {
            feeds.insert(
                format!("gt{l}"),
                take(&mut res, &format!("grad{l}")).into_dyn(),
            );
        }
        let centre = w.clone();
        for t in 0..s.epoch_len {
            let n = (epoch as u64 - 1) * s.epoch_len + t;
            s.batches.feed_rows(&s.batches.indices(n), &mut feeds);
            for (l, p) in centre.iter().enumerate() {
                feeds.insert(format!("w{l}"), p.clone().into_dyn());
            }
            let mut g0 = execute(&snapshot, arch, &feeds, seed, n)?;
            run.add(&g0.counts, std::mem::take(&mut g0.work));
            for (l, p) in w.iter().enumerate() {
                let g = take(&mut g0, &format!("grad{l}"));
                feeds.insert(format!("g0.{l}"), g.into_dyn());
                feeds.insert(format!("w{l}"), p.clone().into_dyn());
            }
            let mut res = execute(&step, arch, &feeds, seed, n)?;
            for (l, p) in w.iter_mut().enumerate() {
                *p = take(&mut res, &format!("w{l}.next"));
            }
            run.add(&res.counts, res.work);
        }
        let l = loss(model, &w, s.data.x_train.view(), &s.data.y_train);
        if run.end_epoch(epoch, &w, l, on_epoch) {
            break;
        }
    }
    Ok(run.finish(w, None))
}

/// What HALP's full pass gives an epoch: the step's constant feeds (`gt{l}`, `wc{l}`), the
/// centre's cached tensors by feed name (one row per training example), and the scales.
struct Centre {
    feeds: BTreeMap<String, ArrayD<f64>>,
    cache: Vec<(String, Array2<f64>)>,
    deltas: Vec<f64>,
}

/// Take HALP's epoch constants from the full pass `res` of a `layers`-layer MLP:
/// `delta_l = ||g~_l|| / bound` with `bound = mu levels`.
fn centre_pass(res: &mut StepResult, layers: usize, bound: f64) -> Centre {
    let mut feeds = BTreeMap::new();
    let mut cache = Vec::new();
    let mut deltas = Vec::new();
    for l in 0..layers {
        let gt = take(res, &format!("grad{l}"));
        let norm = gt.iter().map(|v| v * v).sum::<f64>().sqrt();
        deltas.push((norm / bound).max(f64::MIN_POSITIVE));
        feeds.insert(format!("gt{l}"), gt.into_dyn());
        feeds.insert(format!("wc{l}"), take(res, &format!("wc{l}")).into_dyn());
        // The centre's tensors by the names `Builder::gradients` gives them: `z{l}`
        // pre-activations, `h{l}` activations, `err{l + 1}` and `gh{l + 1}` the gradients with
        // respect to `z{l}` and `h{l}`.
        cache.push((format!("cz{l}"), take(res, &format!("z{l}"))));
        if l + 1 < layers {
            cache.push((format!("ca{}", l + 1), take(res, &format!("h{l}"))));
            cache.push((format!("cg{l}"), take(res, &format!("err{}", l + 1))));
            cache.push((format!("ch{l}"), take(res, &format!("gh{}", l + 1))));
        }
    }
    Centre {
        feeds,
        cache,
        deltas,
    }
}

/// `halp` with bit-centred layers.
fn train_halp(
    model: &ModelShape,
    arch: &Architecture,
    hyper: &Hyper,
    seed: u64,
    s: Setup,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    let rn = Rounding::NearestEven;
    let widths = widths(model)?;
    let layers = widths.len() - 1;
    let codes = offset_codes(arch, hyper)?;
    let fp = full_precision(arch);
    let full = gradient_graph(model, &fp, s.batches.n, (fp32(), rn), Some(arch))?;
    let mut centre = init_params(model, fp32(), rn, seed);
    let mut run = Run::new(Algo::Halp, hyper, s.epochs);
    let c = s.batches.n as f64 / s.batch as f64;
    for epoch in 1..=s.epochs {
        let mut res = execute(
            &full,
            &fp,
            &s.full_feeds(&centre),
            seed,
            (epoch as u64) << 40,
        )?;
        run.add(&res.counts, std::mem::take(&mut res.work));
        let Centre {
            mut feeds,
            cache,
            deltas,
        } = centre_pass(&mut res, layers, hyper.get("mu") * codes.levels);
        let consts = HalpConsts {
            deltas: &deltas,
            lr: s.lr,
            c,
        };
        let graph = halp_graph(arch, &widths, s.batch, &codes, &consts)?;
        let mut k: Vec<Array2<f64>> = centre.iter().map(|w| Array2::zeros(w.dim())).collect();
        for t in 0..s.epoch_len {
            let n = (epoch as u64 - 1) * s.epoch_len + t;
            let idx = s.batches.indices(n);
            s.batches.feed_rows(&idx, &mut feeds);
            for (name, rows) in &cache {
                feeds.insert(name.clone(), rows.select(Axis(0), &idx).into_dyn());
            }
            for (l, kl) in k.iter().enumerate() {
                feeds.insert(format!("k{l}"), kl.clone().into_dyn());
            }
            let mut res = execute(&graph, arch, &feeds, seed, n)?;
            for (l, kl) in k.iter_mut().enumerate() {
                *kl = take(&mut res, &format!("k{l}.next"));
            }
            run.add(&res.counts, res.work);
        }
        for l in 0..layers {
            centre[l] = recentre(arch, &centre[l], &k[l], deltas[l], seed, epoch, &mut run)?;
        }
        let l = loss(model, &centre, s.data.x_train.view(), &s.data.y_train);
        if run.end_epoch(epoch, &centre, l, on_epoch) {
            break;
        }
    }
    Ok(run.finish(centre, None))
}
