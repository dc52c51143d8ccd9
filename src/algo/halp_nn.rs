//! HALP on neural networks ([`ModelKind::Mlp`]) with bit-centred layers (De Sa et al. 2018,
//! docs/algorithms.md), following the authors' code (`HazyResearch/halp`:
//! `halp/optim/bit_center_svrg.py`, `bit_center_sgd.py`, `halp/layers/bit_center_layer.py`,
//! `linear_layer.py`, `relu_layer.py`, `cross_entropy.py`); the epoch's full pass and the
//! driver's set-up are [`super::svrg_nn`]'s.
//!
//! Every weight matrix is a full-precision centre `W~_l` plus an offset `Z_l = delta_l K_l`,
//! with codes `K_l` ([`offset_codes`]) and its own scale `delta_l = ||g~_l|| / (mu levels)`;
//! every bias row likewise a centre `b~_l` plus `delta_b,l kb_l` with
//! `delta_b,l = ||g~_b,l|| / (mu levels)` (the authors' `bias_delta`). Scales are re-set and
//! offsets re-centred (`K_l = 0`, `kb_l = 0`) every epoch and folded back
//! (`W~_l <- W~_l + delta_l K_l`, `b~_l <- b~_l + delta_b,l kb_l` in `fp32`, option I) at its
//! end. The epoch's full-precision pass (the full gradient `g~`) also caches, per training
//! example, the centre's pre-activations `z~_l` (after the bias), activations `a~_l` and the
//! backward pass's gradients with respect to them (`g~z_l`, `g~h_l`), all in `fp32`, and the
//! centre's copy `Wc_l` in the MAC's B format (the authors' `weight_lp`). The inner
//! step computes the gradient *difference* `grad f_i(w~ + z) - grad f_i(w~)` with bit-centred
//! layers, so every matmul multiplies an offset (or an offset's gradient) on the
//! architecture's MAC: with `s_l = z~_l + dz_l` the pre-activation at `w` and `c = N / B` (the
//! cache holds gradients of the mean over `N`, the step's are over the batch's `B` rows),
//! - linear, forward: `dz_l = da_l Wc_l + delta_l (a_l K_l) + delta_b,l kb_l` (`a_0 = x`,
//!   `da_0 = 0`; the bias offset added to every row on the vector unit, [`Op::BiasAdd`]);
//! - ReLU, forward: `a_{l+1} = relu(s_l)` in `fp32`, `da_{l+1} = a_{l+1} - a~_{l+1}`;
//! - cross-entropy: `dg_L = softmaxgrad(s_L) - softmaxgrad(z~_L)`;
//! - linear, backward: `dW_l = a_l^T dg_l + c da_l^T g~z_l`, `db_l = sum_rows(dg_l)` (the
//!   authors' `grad_output.sum(0)`, [`Op::SumRows`]) and
//!   `dgh_{l-1} = dg_l Wc_l^T + delta_l ((c g~z_l + dg_l) K_l^T)`;
//! - ReLU, backward: `dg_{l-1} = dgh_{l-1} [s > 0] + c (g~h_{l-1} [s > 0] - g~z_{l-1})`;
//! - update: `K_l <- Q(K_l - (lr / delta_l) (dW_l + g~_l))` and
//!   `kb_l <- Q(kb_l - (lr / delta_b,l) (db_l + g~_b,l))`, stochastic rounding onto the codes
//!   (the authors' `delta -= lr g_delta + lr g~`).
//!
//! Offsets of activations (`da`, `dz`) are stored in the architecture's activation format, of
//! gradients (`dg`, `dgh`, `dW`, `db`) in its gradient format (the authors keep both in fp16);
//! sums with the centre run on the vector unit in `fp32`. At `K = 0` every difference is
//! exactly zero, so the first step's direction is exactly `g~`.
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
//! - `delta` per weight matrix and per bias row from its own part of `g~` (the paper's single
//!   `delta` is for a vector; the authors' fp16 offsets scale per element by their exponent);
//! - the full pass, the batches, momentum and weight decay as in [`super::svrg_nn`].

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayD, Axis};

use crate::algo::epochs::{matrices, tensors};
use crate::algo::sgld::{data_format, init_params, picked_rows, Run};
use crate::algo::svrg::{code_rounding, recentre};
use crate::algo::svrg_nn::{gradient_graph, take, Setup, FULL};
use crate::algo::{AlgoError, EpochStats, Hyper, StepGraph, TrainOutcome};
use crate::arch::Architecture;
use crate::format::{FixedFormat, Format};
use crate::graph::{execute, fits_within, Graph, Op, Role, Scalar, StepResult};
use crate::model::{Builder, Model, ModelKind};
use crate::round::Rounding;

/// Whether every value of `format` is exact as the MAC's B operand, so codes can be multiplied
/// without a conversion (`fits_within`: exact value-set inclusion, `format::contains`).
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

/// The layer widths `[d, hidden.., classes]` of an MLP whose parameters are, per layer, a weight
/// matrix `[in, out]` then a bias `[1, out]`, chained (HALP's bit-centred layers take exactly
/// that).
fn widths(model: &Model) -> Result<Vec<usize>, AlgoError> {
    let shapes = model.param_shapes();
    let layers: Vec<&[Vec<usize>]> = shapes.chunks(2).collect();
    let dense = model.kind() == ModelKind::Mlp
        && !layers.is_empty()
        && layers
            .iter()
            .all(|p| p.len() == 2 && p[0].len() == 2 && p[1] == [1, p[0][1]])
        && layers.windows(2).all(|p| p[0][0][1] == p[1][0][0]);
    if !dense {
        return Err(AlgoError::Unsupported(format!(
            "`halp` on an MLP: the bit-centred layers take a weight matrix and a bias row per \
             layer; this model's parameters are {shapes:?}"
        )));
    }
    let mut w = vec![shapes[0][0]];
    w.extend(layers.iter().map(|p| p[0][1]));
    Ok(w)
}

/// The name of parameter tensor `p`'s `prefix` quantity in HALP's step (MLP parameter order):
/// `{prefix}{i}` for layer `i`'s weight, `{prefix}b{i}` for its bias, as the model names the
/// gradients `grad{i}`, `gradb{i}`.
fn tensor_name(prefix: &str, p: usize) -> String {
    if p % 2 == 1 {
        format!("{prefix}b{}", p / 2)
    } else {
        format!("{prefix}{}", p / 2)
    }
}

// The inner step's per-epoch scalars, fed as vectors over the parameter tensors (layer `i`'s
// weight `2 i`, its bias `2 i + 1`) so that the graph is built once per run.
/// Per-epoch vector feed of HALP on an MLP: each parameter tensor's scale `delta`.
pub const DELTA: &str = "delta";
/// Per-epoch vector feed: `-lr / delta` of each parameter tensor (the step in code units).
pub const NEG_LR_OVER_DELTA: &str = "neg_lr_over_delta";

/// Feed the scales `deltas` (one per parameter tensor) and the step size `lr` as the inner
/// step's [`DELTA`] and [`NEG_LR_OVER_DELTA`].
fn feed_deltas(deltas: &[f64], lr: f64, feeds: &mut BTreeMap<String, ArrayD<f64>>) {
    let steps: Vec<f64> = deltas.iter().map(|d| -lr / d).collect();
    feeds.insert(DELTA.into(), ndarray::arr1(deltas).into_dyn());
    feeds.insert(NEG_LR_OVER_DELTA.into(), ndarray::arr1(&steps).into_dyn());
}

/// HALP's bit-centred inner step on an MLP of `widths` over `rows` examples (see the module
/// docs). Feeds: `x`, `y`, per layer `k{l}` and `kb{l}` (the weight's and the bias's codes),
/// `wc{l}` (centre, MAC B format), `gt{l}` and `gtb{l}` (`g~`), and the centre's cached rows
/// `cz{l}` (pre-activations, after the bias), `ca{l}` (activations, `l >= 1`), `cg{l}`,
/// `ch{l}` (gradients with respect to `z_l` and `a_{l+1}`, `l < L - 1`). Outputs `k{l}.next`
/// and `kb{l}.next`.
fn halp_graph(
    arch: &Architecture,
    widths: &[usize],
    rows: usize,
    codes: &Codes,
    c: f64,
) -> Result<Graph, AlgoError> {
    let rn = Rounding::NearestEven;
    let f = &arch.formats;
    let act = (f.activations, f.rounding.activations);
    let (gf, gr) = (f.gradients, f.rounding.gradients);
    let (cf, cr) = (codes.format, codes.rounding);
    let rw = f.rounding.weights;
    let layers = widths.len() - 1;
    let mut b = Builder::new(arch);
    // Cached centre values and the vector unit's exact intermediates: the full-precision format.
    let fpf = b.full();
    let input = |b: &mut Builder, name: String, cols: usize, role: Role| {
        b.feed(Op::Input, &name, &[rows, cols], fpf, rn, role)
    };
    let (df, dr) = data_format(arch);
    let x = b.feed(Op::Input, "x", &[rows, widths[0]], df, dr, Role::Data)?;
    let x = picked_rows(&mut b, x)?;
    let y = input(&mut b, "y".into(), widths[layers], Role::Data)?;
    // Codes and full gradients in parameter order (weight, bias of every layer).
    let (mut kk, mut wc, mut gt) = (Vec::new(), Vec::new(), Vec::new());
    for p in 0..2 * layers {
        let l = p / 2;
        let s = if p % 2 == 1 {
            [1, widths[l + 1]]
        } else {
            wc.push(b.feed(
                Op::Param,
                &format!("wc{l}"),
                &[widths[l], widths[l + 1]],
                f.mac.b,
                rw,
                Role::Weights,
            )?);
            [widths[l], widths[l + 1]]
        };
        kk.push(b.feed(Op::Param, &tensor_name("k", p), &s, cf, cr, Role::Weights)?);
        gt.push(b.feed(
            Op::Param,
            &tensor_name("gt", p),
            &s,
            fpf,
            rn,
            Role::Gradients,
        )?);
    }
    // Forward: full activations `a` (fp32), their offsets `da`, pre-activations `s` at w.
    let (mut a, mut da, mut s, mut cz) = (vec![x], vec![None], Vec::new(), Vec::new());
    for l in 0..layers {
        if l > 0 {
            let ca = input(&mut b, format!("ca{l}"), widths[l], Role::Activations)?;
            let al = b.f32op(Op::Relu, &format!("a{l}"), Role::Activations, &[s[l - 1]])?;
            a.push(al);
            da.push(Some(b.op(
                Op::Sub,
                &format!("da{l}"),
                act.0,
                act.1,
                Role::Activations,
                &[al, ca],
            )?));
        }
        let m = b.matmul(
            &format!("m{l}"),
            (a[l], false),
            (kk[2 * l], false),
            (fpf, rn, Role::Activations),
            cr,
        )?;
        let dzw = match da[l] {
            Some(d) => {
                let p = b.matmul(
                    &format!("p{l}"),
                    (d, false),
                    (wc[l], false),
                    (fpf, rn, Role::Activations),
                    rw,
                )?;
                b.f32op(
                    Op::Axpy {
                        c: Scalar::Element(DELTA, 2 * l),
                    },
                    &format!("dzw{l}"),
                    Role::Activations,
                    &[p, m],
                )?
            }
            None => b.f32op(
                Op::Scale {
                    c: Scalar::Element(DELTA, 2 * l),
                },
                &format!("dzw{l}"),
                Role::Activations,
                &[m],
            )?,
        };
        // The bias's offset `delta_b kb` added to every row on the vector unit; `dz` is rounded
        // into the activation format once.
        let bz = b.f32op(
            Op::Scale {
                c: Scalar::Element(DELTA, 2 * l + 1),
            },
            &format!("bz{l}"),
            Role::Weights,
            &[kk[2 * l + 1]],
        )?;
        let dz = b.op(
            Op::BiasAdd,
            &format!("dz{l}"),
            act.0,
            act.1,
            Role::Activations,
            &[dzw, bz],
        )?;
        let czl = input(&mut b, format!("cz{l}"), widths[l + 1], Role::Activations)?;
        s.push(b.f32op(Op::Add, &format!("s{l}"), Role::Activations, &[czl, dz])?);
        cz.push(czl);
    }
    // Backward: gradient offsets `dg` with respect to the pre-activations; the centre's gradient
    // at the batch's scale is `coef x centre`.
    let last = layers - 1;
    let e = b.f32op(Op::SoftmaxXentGrad, "e", Role::Gradients, &[s[last], y])?;
    let e0 = b.f32op(Op::SoftmaxXentGrad, "e0", Role::Gradients, &[cz[last], y])?;
    let mut dg = b.op(
        Op::Sub,
        &format!("dg{last}"),
        gf,
        gr,
        Role::Gradients,
        &[e, e0],
    )?;
    let (mut centre, mut coef) = (e0, 1.0);
    let mut outputs = Vec::new();
    for l in (0..layers).rev() {
        let dw = match da[l] {
            None => b.matmul(
                &format!("dw{l}"),
                (a[l], true),
                (dg, false),
                (gf, gr, Role::Gradients),
                gr,
            )?,
            Some(d) => {
                let u = b.matmul(
                    &format!("dwa{l}"),
                    (a[l], true),
                    (dg, false),
                    (fpf, rn, Role::Gradients),
                    gr,
                )?;
                let v = b.matmul(
                    &format!("dwb{l}"),
                    (d, true),
                    (centre, false),
                    (fpf, rn, Role::Gradients),
                    gr,
                )?;
                b.op(
                    Op::Axpy { c: coef.into() },
                    &format!("dw{l}"),
                    gf,
                    gr,
                    Role::Gradients,
                    &[u, v],
                )?
            }
        };
        // The bias's gradient difference: the column sums of the layer's gradient offset.
        let db = b.op(
            Op::SumRows,
            &format!("db{l}"),
            gf,
            gr,
            Role::Gradients,
            &[dg],
        )?;
        for (p, diff) in [(2 * l, dw), (2 * l + 1, db)] {
            let h = b.f32op(
                Op::Add,
                &tensor_name("h", p),
                Role::Gradients,
                &[diff, gt[p]],
            )?;
            let next = format!("{}.next", tensor_name("k", p));
            let step = Op::Axpy {
                c: Scalar::Element(NEG_LR_OVER_DELTA, p),
            };
            b.op(step, &next, cf, cr, Role::Weights, &[kk[p], h])?;
            outputs.push(next);
        }
        if l == 0 {
            break;
        }
        let full = b.f32op(
            Op::Axpy { c: coef.into() },
            &format!("gz{l}"),
            Role::Gradients,
            &[dg, centre],
        )?;
        let q = b.matmul(
            &format!("q{l}"),
            (dg, false),
            (wc[l], true),
            (fpf, rn, Role::Gradients),
            rw,
        )?;
        let r = b.matmul(
            &format!("r{l}"),
            (full, false),
            (kk[2 * l], true),
            (fpf, rn, Role::Gradients),
            cr,
        )?;
        let j = l - 1;
        let dgh = b.op(
            Op::Axpy {
                c: Scalar::Element(DELTA, 2 * l),
            },
            &format!("dgh{j}"),
            gf,
            gr,
            Role::Gradients,
            &[q, r],
        )?;
        let ch = input(&mut b, format!("ch{j}"), widths[l], Role::Gradients)?;
        let cg = input(&mut b, format!("cg{j}"), widths[l], Role::Gradients)?;
        let t = b.op(
            Op::ReluGrad,
            &format!("t{j}"),
            gf,
            gr,
            Role::Gradients,
            &[dgh, s[j]],
        )?;
        let v = b.f32op(Op::ReluGrad, &format!("v{j}"), Role::Gradients, &[ch, s[j]])?;
        let u = b.f32op(Op::Sub, &format!("u{j}"), Role::Gradients, &[v, cg])?;
        dg = b.op(
            Op::Axpy { c: c.into() },
            &format!("dg{j}"),
            gf,
            gr,
            Role::Gradients,
            &[t, u],
        )?;
        (centre, coef) = (cg, c);
    }
    let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
    Ok(b.b.build(&names)?)
}

/// HALP's inner-step graph on an MLP (for `lpsim graph`), with `c = 1` and its scalars at every
/// `delta = 1`.
pub(crate) fn example_graph(
    model: &Model,
    arch: &Architecture,
    hyper: &Hyper,
) -> Result<StepGraph, AlgoError> {
    let w = widths(model)?;
    let batch = hyper.count("batch", 1)? as usize;
    let graph = halp_graph(arch, &w, batch, &offset_codes(arch, hyper)?, 1.0)?;
    let tensors = 2 * (w.len() - 1);
    let lr = hyper.get("lr");
    let scalars = (0..tensors)
        .flat_map(|p| {
            [
                (format!("{DELTA}[{p}]"), 1.0),
                (format!("{NEG_LR_OVER_DELTA}[{p}]"), -lr),
            ]
        })
        .collect();
    Ok(StepGraph { graph, scalars })
}

/// What HALP's full pass gives an epoch: the step's constant feeds (`gt{l}`, `wc{l}`), the
/// centre's cached tensors by feed name (one row per training example), and the scales.
struct Centre {
    feeds: BTreeMap<String, ArrayD<f64>>,
    cache: Vec<(String, Array2<f64>)>,
    deltas: Vec<f64>,
}

/// Take HALP's epoch constants from the full pass `res` of the MLP `model`: per parameter
/// tensor `p` (weights and biases) `delta_p = ||g~_p|| / bound` with `bound = mu levels`.
fn centre_pass(res: &mut StepResult, model: &Model, bound: f64) -> Centre {
    let specs = model.params();
    let params = specs.len();
    let layers = params / 2;
    let mut feeds = BTreeMap::new();
    let mut cache = Vec::new();
    let mut deltas = Vec::new();
    for (p, spec) in specs.iter().enumerate() {
        let gt = take(res, &spec.grad);
        let norm = gt.iter().map(|v| v * v).sum::<f64>().sqrt();
        deltas.push((norm / bound).max(f64::MIN_POSITIVE));
        feeds.insert(tensor_name("gt", p), gt.into_dyn());
    }
    for l in 0..layers {
        feeds.insert(format!("wc{l}"), take(res, &format!("wc{l}")).into_dyn());
        // The centre's tensors by the names `Builder::gradients` gives them: `zb{l}`
        // pre-activations (after the bias), `h{l}` activations, `err{l + 1}` and `gh{l + 1}`
        // the gradients with respect to `zb{l}` and `h{l}`.
        cache.push((format!("cz{l}"), take(res, &format!("zb{l}"))));
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

/// HALP's `mu` on an MLP: the value given, else the objective's strong convexity from its L2
/// term (`model.l2`, as for logistic regression). An MLP without an L2 term has no strong
/// convexity to derive `mu` from (its loss is not convex), and `mu = 0` would make every scale
/// `delta = ||g|| / (mu levels)` infinite: refused, asking for a value.
fn mlp_mu(model: &Model, given: f64) -> Result<f64, AlgoError> {
    match (given, model.l2()) {
        (m, _) if m > 0.0 => Ok(m),
        (_, l2) if l2 > 0.0 => Ok(l2),
        _ => Err(AlgoError::BadHyper {
            name: "mu".into(),
            reason: "0 (from the problem): an MLP without an L2 term (model.l2 = 0) has no \
                     strong convexity to derive it from; set mu (e.g. --set mu=3, the HALP \
                     paper's hand-picked value) or model.l2"
                .into(),
        }),
    }
}

/// Run `halp` with bit-centred layers on an MLP (see the module docs).
pub(crate) fn train(
    model: &Model,
    arch: &Architecture,
    hyper: &Hyper,
    seed: u64,
    s: Setup,
    on_epoch: &mut dyn FnMut(EpochStats),
) -> Result<TrainOutcome, AlgoError> {
    let rn = Rounding::NearestEven;
    let widths = widths(model)?;
    let codes = offset_codes(arch, hyper)?;
    let mu = mlp_mu(model, hyper.get("mu"))?;
    let full_store = (arch.full_precision.format, rn);
    let full = gradient_graph(model, (arch, FULL), s.batches.n, full_store, Some(arch))?;
    let mut centre = matrices(init_params(model, full_store.0, rn, seed));
    let mut run = Run::new(s.epochs, s.epoch_len);
    run.range.merge(&s.batches.data_health(s.data));
    let c = s.batches.n as f64 / s.batch as f64;
    let graph = halp_graph(arch, &widths, s.batch, &codes, c)?;
    for epoch in 1..=s.epochs {
        let mut res = execute(
            &full,
            arch,
            &s.full_feeds(&centre),
            seed,
            (epoch as u64) << 40,
        )?;
        run.add(&res);
        let Centre {
            mut feeds,
            cache,
            deltas,
        } = centre_pass(&mut res, model, mu * codes.levels);
        feed_deltas(&deltas, s.lr, &mut feeds);
        let mut k: Vec<Array2<f64>> = centre.iter().map(|w| Array2::zeros(w.dim())).collect();
        for t in 0..s.epoch_len {
            let n = (epoch as u64 - 1) * s.epoch_len + t;
            let idx = s.batches.indices(n);
            s.batches.feed_rows(&idx, &mut feeds);
            for (name, rows) in &cache {
                feeds.insert(name.clone(), rows.select(Axis(0), &idx).into_dyn());
            }
            for (p, kp) in k.iter().enumerate() {
                feeds.insert(tensor_name("k", p), kp.clone().into_dyn());
            }
            let mut res = execute(&graph, arch, &feeds, seed, n)?;
            for (p, kp) in k.iter_mut().enumerate() {
                *kp = take(&mut res, &format!("{}.next", tensor_name("k", p)));
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
        let l = model.train_loss(
            &tensors(&centre),
            Some((s.data.x_train.view(), &s.data.y_train)),
        );
        if run.end_epoch(epoch, &tensors(&centre), l, on_epoch) {
            break;
        }
    }
    let mut outcome = run.finish(tensors(&centre), None);
    if hyper.get("mu") == 0.0 {
        outcome.derived.insert("mu".to_string(), mu);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::svrg_nn::tests::{
        arch, data, feeds, max_abs, mlp, params_with_biases, reference, weights, RN,
    };
    use crate::model::fp32;
    use crate::round::RandomStream;

    #[test]
    fn mu_is_given_or_the_l2_term_else_refused() {
        let with_l2 = Model::mlp(5, &[4], 3, 5e-4).unwrap();
        assert_eq!(mlp_mu(&with_l2, 3.0).unwrap(), 3.0);
        assert_eq!(mlp_mu(&with_l2, 0.0).unwrap(), 5e-4);
        let e = mlp_mu(&mlp(&[4]), 0.0).unwrap_err().to_string();
        assert!(e.contains("mu") && e.contains("model.l2 = 0"), "{e}");
        assert_eq!(mlp_mu(&mlp(&[4]), 0.25).unwrap(), 0.25);
    }

    /// The step's gradient difference of parameter tensor `p`: `dw{i}` (weight), `db{i}` (bias).
    fn diff_name(p: usize) -> String {
        let i = p / 2;
        if p % 2 == 1 {
            format!("db{i}")
        } else {
            format!("dw{i}")
        }
    }

    /// Codes of parameter tensor `p` with shape `[rows, cols]`.
    type CodeFn<'a> = &'a dyn Fn(usize, &[usize; 2]) -> Array2<f64>;

    /// The full pass, the epoch's constants and the bit-centred step of HALP on `arch`, for
    /// codes `k` (zero if `None`): the step's tensors, the scales and the centre's gradient.
    fn halp_step(
        arch: &Architecture,
        model: &Model,
        centre: &[Array2<f64>],
        k: Option<CodeFn>,
    ) -> (StepResult, Vec<f64>, Vec<Array2<f64>>) {
        let (x, y) = data(12);
        let idx = [1, 4, 4, 9, 11];
        let full = gradient_graph(model, (arch, FULL), 12, (fp32(), RN), Some(arch)).unwrap();
        let mut f = vec![("x".into(), x.clone()), ("y".into(), y.clone())];
        f.extend(weights(centre));
        let mut res = execute(&full, arch, &feeds(f), 0, 0).unwrap();
        let w = widths(model).unwrap();
        let codes = offset_codes(arch, &Hyper::new(crate::algo::Algo::Halp)).unwrap();
        let mut c = centre_pass(&mut res, model, 3.0 * codes.levels);
        let gt: Vec<_> = (0..centre.len())
            .map(|p| {
                c.feeds[&tensor_name("gt", p)]
                    .clone()
                    .into_dimensionality()
                    .unwrap()
            })
            .collect();
        let g = halp_graph(arch, &w, 5, &codes, 12.0 / 5.0).unwrap();
        feed_deltas(&c.deltas, 0.1, &mut c.feeds);
        c.feeds
            .insert("x".into(), x.select(Axis(0), &idx).into_dyn());
        c.feeds
            .insert("y".into(), y.select(Axis(0), &idx).into_dyn());
        for (name, rows) in &c.cache {
            c.feeds
                .insert(name.clone(), rows.select(Axis(0), &idx).into_dyn());
        }
        for (p, s) in model.param_shapes().iter().enumerate() {
            let kp = k.map_or_else(|| Array2::zeros((s[0], s[1])), |k| k(p, &[s[0], s[1]]));
            c.feeds.insert(tensor_name("k", p), kp.into_dyn());
        }
        (execute(&g, arch, &c.feeds, 0, 3).unwrap(), c.deltas, gt)
    }

    #[test]
    fn widths_take_a_weight_and_a_bias_per_layer_and_refuse_other_models() {
        assert_eq!(widths(&mlp(&[6, 4])).unwrap(), vec![5, 6, 4, 3]);
        assert_eq!(widths(&mlp(&[])).unwrap(), vec![5, 3]);
        let logistic = Model::logistic(5, 3, 0.0).unwrap();
        match widths(&logistic) {
            Err(AlgoError::Unsupported(m)) => {
                assert!(
                    m.contains("a weight matrix and a bias row per layer"),
                    "{m}"
                )
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn halp_bit_centred_difference_is_zero_at_the_centre_on_any_datapath() {
        let model = mlp(&[6, 4]);
        for name in ["fp32", "bf16", "fp8", "int8", "bfp8", "mxfp8"] {
            let arch = arch(name);
            let centre = params_with_biases(&model, (fp32(), RN), 2);
            let (mut res, _, gt) = halp_step(&arch, &model, &centre, None);
            for (p, g) in gt.iter().enumerate() {
                let diff = take(&mut res, &diff_name(p));
                assert!(diff.iter().all(|&v| v == 0.0), "{name}: tensor {p}: {diff}");
                assert_eq!(
                    &take(&mut res, &tensor_name("h", p)),
                    g,
                    "{name}: tensor {p}"
                );
            }
        }
    }

    #[test]
    fn halp_bit_centred_difference_matches_f64() {
        // Two hidden layers: the ReLU's bit-centred backward between hidden layers is exercised.
        let model = mlp(&[6, 4]);
        let (x, y) = data(12);
        let idx = [1, 4, 4, 9, 11];
        let (xb, yb) = (x.select(Axis(0), &idx), y.select(Axis(0), &idx));
        let arch = arch("fp32");
        let centre = params_with_biases(&model, (fp32(), RN), 2);
        let s = RandomStream::new(5, 5);
        // Codes up to 2^21 of the 24-bit grid's 2^23 - 1: offsets up to a quarter of the bound.
        let code = |p: usize, sh: &[usize; 2]| {
            Array2::from_shape_fn((sh[0], sh[1]), |(i, j)| {
                let u = s.uniform_f64((p * 1000 + i * 10 + j) as u64);
                ((2.0 * u - 1.0) * 2f64.powi(21)).round()
            })
        };
        let (mut res, deltas, _) = halp_step(&arch, &model, &centre, Some(&code));
        // The codes fed (the same draws again: the step's results hold what it computed).
        let w: Vec<Array2<f64>> = (0..centre.len())
            .map(|p| {
                let sh = centre[p].dim();
                &centre[p] + &(deltas[p] * &code(p, &[sh.0, sh.1]))
            })
            .collect();
        let (gw, gc) = (reference(&w, &xb, &yb), reference(&centre, &xb, &yb));
        // Measured: relative errors of 1.2e-7 to 7e-7 for differences of 6 to 21 % of the
        // gradient (weights and biases).
        for p in 0..centre.len() {
            let expect = &gw[p] - &gc[p];
            let got = take(&mut res, &diff_name(p));
            let err = max_abs(&(&got - &expect)) / max_abs(&expect);
            let size = max_abs(&expect) / max_abs(&gc[p]);
            assert!(
                err < 1e-4,
                "tensor {p}: relative error {err:e}: {got} vs {expect}"
            );
            assert!(size > 1e-3, "a real offset");
        }
    }
}
