//! HALP's two graphs on a layered model: the epoch's full pass at the centre (the full gradient
//! `g~`, the rows the bit-centred layers cache, the centre's copies in the MAC's B format) and
//! the bit-centred inner step (the layers' own bit-centred forms, `model::centred`, then the
//! update of the codes).

use std::collections::BTreeMap;

use ndarray::ArrayD;

use super::codes::Codes;
use crate::algo::sgld::{data_format, picked_rows};
use crate::algo::svrg_nn::{gradient_part, FULL};
use crate::algo::AlgoError;
use crate::arch::Architecture;
use crate::graph::{Graph, Op, Role, Scalar};
use crate::model::centred::{param_key, CentreReads, CentredParam, Centring, PassNames};
use crate::model::{Builder, Model};
use crate::round::Rounding;

pub use crate::model::centred::DELTA;

/// Per-epoch vector feed: `-lr / delta` of each parameter tensor (the step in code units).
pub const NEG_LR_OVER_DELTA: &str = "neg_lr_over_delta";

/// Feed the scales `deltas` (one per parameter tensor) and the step size `lr` as the inner
/// step's [`DELTA`] and [`NEG_LR_OVER_DELTA`].
pub(super) fn feed_deltas(deltas: &[f64], lr: f64, feeds: &mut BTreeMap<String, ArrayD<f64>>) {
    let steps: Vec<f64> = deltas.iter().map(|d| -lr / d).collect();
    feeds.insert(DELTA.into(), ndarray::arr1(deltas).into_dyn());
    feeds.insert(NEG_LR_OVER_DELTA.into(), ndarray::arr1(&steps).into_dyn());
}

/// HALP's graphs for a run.
pub(super) struct Graphs {
    /// The full pass over the training set at the centre, on the full-precision unit: outputs
    /// the gradients and the centre's MAC copies; every value it computed is in its result.
    pub full: Graph,
    /// The bit-centred inner step: outputs `k{key}.next`.
    pub step: Graph,
    /// What the step reads from the full pass.
    pub reads: CentreReads,
}

/// The full pass over `n` examples and the bit-centred step over `rows` of `model` on `arch`,
/// with offset codes `codes` and the cached gradients counting `c = N / B` times.
pub(super) fn graphs(
    model: &Model,
    arch: &Architecture,
    (n, rows): (usize, usize),
    codes: &Codes,
    c: f64,
) -> Result<Graphs, AlgoError> {
    let full_store = (arch.full_precision.format, Rounding::NearestEven);
    let (mut fb, w, pass) = gradient_part(model, (arch, FULL), n, full_store)?;
    let name = |i| fb.b.meta(i).name.clone();
    let names: Vec<PassNames> = pass
        .values
        .iter()
        .zip(&pass.errors)
        .map(|(&v, e)| (name(v), e.map(name)))
        .collect();
    let mut outputs: Vec<String> = pass.grads.iter().map(|&g| name(g)).collect();
    let (step, reads) = step_graph(model, arch, rows, codes, c, names)?;
    let (mb, rw) = (arch.formats.mac.b, arch.formats.rounding.weights);
    for (feed, p) in &reads.copies {
        fb.op(Op::Quantize, feed, mb, rw, Role::Weights, &[w[*p]])?;
        outputs.push(feed.clone());
    }
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    Ok(Graphs {
        full: fb.b.build(&outputs)?,
        step,
        reads,
    })
}

/// HALP's bit-centred inner step of `model` over `rows` examples (see the module docs of
/// [`super`]), reading the full pass whose values and errors are named `pass`. Feeds: `x`, `y`,
/// per parameter tensor `k{key}` (codes), `gt{key}` (`g~`) and, for a tensor a layer
/// multiplies on the MAC, `wc{key}` (its centre in the MAC's B format, the authors'
/// `weight_lp`); `wt{key}` (its centre in full precision) for a layer that asks for it
/// (batch normalization); the cached rows the layers read; the per-epoch scalars [`DELTA`] and
/// [`NEG_LR_OVER_DELTA`]. The update, per tensor: `h = diff + g~`,
/// `k.next = Q(k - (lr / delta) h)` (stochastic rounding onto the codes).
fn step_graph(
    model: &Model,
    arch: &Architecture,
    rows: usize,
    codes: &Codes,
    c: f64,
    pass: Vec<PassNames>,
) -> Result<(Graph, CentreReads), AlgoError> {
    let rn = Rounding::NearestEven;
    let (cf, cr) = (codes.format, codes.rounding);
    let mut b = Builder::new(arch);
    let fpf = b.full();
    let (df, dr) = data_format(arch);
    let x = b.feed(Op::Input, "x", &[rows, model.inputs()], df, dr, Role::Data)?;
    let x = picked_rows(&mut b, x)?;
    let y = b.feed(
        Op::Input,
        "y",
        &[rows, model.outputs()],
        fpf,
        rn,
        Role::Data,
    )?;
    let specs = model.params();
    let mut params = Vec::with_capacity(specs.len());
    let mut gt = Vec::with_capacity(specs.len());
    for (p, spec) in specs.iter().enumerate() {
        let key = param_key(spec).to_string();
        let k = b.feed(
            Op::Param,
            &format!("k{key}"),
            &spec.shape,
            cf,
            cr,
            Role::Weights,
        )?;
        let g = format!("gt{key}");
        gt.push(b.feed(Op::Param, &g, &spec.shape, fpf, rn, Role::Gradients)?);
        params.push(CentredParam {
            index: p,
            codes: k,
            key,
        });
    }
    let (diffs, reads) = {
        // The centres' MAC copies (`wc{key}`) are made as the layers ask for them: every
        // multiplier's, not batch normalization's scale, which never enters the MAC.
        let mut cx = Centring::new(&mut b, c, cr, pass, x);
        let diffs = model.centred_gradients(&mut cx, Some(y), &params)?;
        (diffs, cx.reads())
    };
    let mut outputs = Vec::with_capacity(params.len());
    for ((p, &diff), &g) in params.iter().zip(&diffs).zip(&gt) {
        let h = b.f32op(Op::Add, &format!("h{}", p.key), Role::Gradients, &[diff, g])?;
        let next = format!("k{}.next", p.key);
        let step = Op::Axpy {
            c: Scalar::Element(NEG_LR_OVER_DELTA, p.index),
        };
        b.op(step, &next, cf, cr, Role::Weights, &[p.codes, h])?;
        outputs.push(next);
    }
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    Ok((b.b.build(&outputs)?, reads))
}
