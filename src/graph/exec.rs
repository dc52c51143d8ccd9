//! The executor: runs a checked [`Graph`] in topological order and counts the hardware actions
//! of the step (see ARCHITECTURE.md). Values are `f64`, or `f32` where a rounding on the `f32`
//! kernels produced them (`graph/value.rs`): the same values either way.
//!
//! Per node:
//! - [`Op::MatMul`]: `arith::gemm` with the graph's MAC configuration (`graph/matmul.rs`; its
//!   actions as counted by the kernel, one [`crate::cost::Gemm`] in the [`crate::cost::Work`]);
//!   the accumulator values are then rounded to the output format, counted as a conversion
//!   unless the output format is the accumulator's.
//! - every other op: computed in `f64`, rounded once to the output format ("the vector unit").
//!   Counted: `output elements` vector operations; the arithmetic on the vector unit's format
//!   (`compute.vector.format` on the low-precision datapath, `full_precision.format` on the
//!   full-precision unit, see [`Graph::datapath`])
//!   by kind (`add` for add/sub/noise/sum, `mul` for mul/scale, `fma` for axpy); a conversion
//!   `quantize[F/R]` of every output element unless the output is the vector format with `rne`
//!   (the unit's own rounding); and the random bits drawn (stochastic rounding: as the rounding
//!   unit says; Gaussian noise: 32 bits per draw, the one word each draw of
//!   `RandomStream::normals_f32` consumes (a Box-Muller pair per two words); the VC quantizer:
//!   see [`crate::arith::vc`]).
//! - [`Op::GaussianNoise`]: `x + std z` in `f64` with `z` the vectorized `f32` standard normal
//!   draws of `RandomStream::normals_f32` (until 2026-12 the per-element `f64` Box-Muller of
//!   `normal_f64`, four words per draw: the noise values, and so every noisy run, changed with
//!   the generator), then rounded once.
//! - memory traffic: every operand read and the output written, `len x storage_bits` of its
//!   format, at its tensor's level (`Outer` = `arch.memory[0]`, `Inner` = the innermost level).
//!   `Input`/`Param` nodes only name tensors: they move nothing themselves.
//! - range health ([`RangeHealth`]): every output is judged against its format under its
//!   tensor's role, comparing the value before the output rounding with the value stored
//!   ([`range_events`]; a matmul whose output is the accumulator's format is judged with the
//!   two equal, which still counts its infinities and NaNs; the VC quantizer on its input `mu`);
//!   every matmul's accumulator values are also judged against the accumulator format under
//!   [`crate::graph::Role::Accumulator`] ([`crate::format::bound_events`]). `Input`, `Param`
//!   and `Gather` (a copy) are not judged: their values were judged where they were produced.
//!
//! Scopes: every count and every piece of work of a node goes to its scope's counters
//! ([`Graph::scope_index`]), and the step's totals are their sum ([`StepResult::scopes`]).
//! What does not depend on the values (every count above but a GEMM kernel's, the VC
//! quantizer's and an image op's, and all the work) is counted once per graph by the
//! executor's plan (`graph/plan.rs`); a step adds only the kernels' counts
//! ([`StepResult::parts`]).
//!
//! Random streams: the draws of node `name` at step `step` for purpose `k` come from
//! `RandomStream::new(seed, stream_id(name, step, k))`, indexed by element, so results depend
//! only on `(seed, tensor, step, element)` and never on the number of threads.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use ndarray::{ArrayD, Axis, IxDyn};
use thiserror::Error;

use crate::arch::Architecture;
use crate::arith::{ActionCounts, ElemOp, MacError};
use crate::format::{held_events, held_events_f32, range_events, range_events_f32, QuantizeError};
use crate::graph::loops;
use crate::graph::matmul::matmul;
use crate::graph::plan::Plan;
use crate::graph::rounding::{round_exact, round_to};
use crate::graph::step::StepResult;
use crate::graph::value::{on_slices, Value};
use crate::graph::{Graph, Op, RangeHealth, Scalar, TensorMeta};
use crate::round::RandomStream;

/// A step that cannot run.
#[derive(Debug, Error, PartialEq)]
pub enum ExecError {
    /// A feed the graph needs was not given.
    #[error("feed `{0}`: missing (the graph has an input or param of this name)")]
    MissingFeed(String),
    /// A feed of the wrong shape.
    #[error("feed `{name}`: shape {got:?}, the graph expects {expected:?}")]
    FeedShape {
        /// The feed.
        name: String,
        /// Its shape.
        got: Vec<usize>,
        /// The declared shape.
        expected: Vec<usize>,
    },
    /// The MAC rejected a matmul.
    #[error("node `{node}`: {error}")]
    Mac {
        /// The node.
        node: String,
        /// The kernel's error.
        error: MacError,
    },
    /// A gather index outside the data.
    #[error("node `{node}`: index {index} is outside the data's {rows} rows")]
    Index {
        /// The node.
        node: String,
        /// The index.
        index: usize,
        /// Rows of the data.
        rows: usize,
    },
    /// A per-step scalar fed with the wrong shape or out of its op's range.
    #[error("node `{node}`: scalar `{name}` = {value}: {allowed}")]
    Scalar {
        /// The node.
        node: String,
        /// The feed's name.
        name: &'static str,
        /// What was fed.
        value: String,
        /// What the op takes.
        allowed: &'static str,
    },
    /// A rounding unit the output format does not support.
    #[error("node `{node}`: {error}")]
    Quantize {
        /// The node.
        node: String,
        /// The quantizer's error.
        error: QuantizeError,
    },
}

/// The stream id of purpose `purpose` of tensor `name` at step `step` (FNV-1a of the name,
/// mixed with the step and purpose).
pub fn stream_id(name: &str, step: u64, purpose: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ step
        .wrapping_mul(8)
        .wrapping_add(purpose)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The value of `s` for node `node`: a constant, its one-element feed, or an element of its
/// vector feed, finite and `ok`.
fn scalar(
    s: Scalar,
    feeds: &BTreeMap<String, ArrayD<f64>>,
    node: &str,
    ok: impl Fn(f64) -> bool,
    allowed: &'static str,
) -> Result<f64, ExecError> {
    let (name, index) = match s {
        Scalar::Const(v) => return Ok(v),
        Scalar::Input(name) => (name, None),
        Scalar::Element(name, i) => (name, Some(i)),
    };
    let fed = feeds
        .get(name)
        .ok_or_else(|| ExecError::MissingFeed(name.to_string()))?;
    let value = match (fed.as_slice_memory_order(), index) {
        (Some(&[v]), None) => Some(v),
        (Some(all), Some(i)) if fed.ndim() == 1 => all.get(i).copied(),
        _ => None,
    };
    match value {
        Some(v) if v.is_finite() && ok(v) => Ok(v),
        _ => Err(ExecError::Scalar {
            node: node.to_string(),
            name,
            value: format!("{fed}"),
            allowed,
        }),
    }
}

/// Run `graph` on `arch` with the given feeds (every `Input` and `Param` by name; values must
/// already be values of their declared formats), drawing random numbers keyed by
/// `(seed, tensor, step, element)`, on the fast paths ([`Path::Fast`]), returning every tensor
/// the step computed. A driver running a graph many times builds an [`Executor`] once.
pub fn execute(
    graph: &Graph,
    arch: &Architecture,
    feeds: &BTreeMap<String, ArrayD<f64>>,
    seed: u64,
    step: u64,
) -> Result<StepResult, ExecError> {
    execute_on(graph, arch, feeds, seed, step, Path::Fast)
}

/// How the executor rounds an op's result to its output format: the results are the same bits
/// either way (`tests/exec_paths.rs` runs both on small models), only the speed differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// The vectorized `f32` kernels when every exact value is an `f32` value, the `f64` fast
    /// paths (`Quantizer::quantize_f64_fast`), else the reference.
    Fast,
    /// The exact `f64` reference quantizer (`Quantizer::quantize_f64`) for every rounding the
    /// vector unit's exact-sum kernels do not do.
    Reference,
}

/// [`execute`] on the given rounding [`Path`].
pub fn execute_on(
    graph: &Graph,
    arch: &Architecture,
    feeds: &BTreeMap<String, ArrayD<f64>>,
    seed: u64,
    step: u64,
    path: Path,
) -> Result<StepResult, ExecError> {
    Executor::keeping_all(graph, arch).run_on(feeds, seed, step, path)
}

/// A graph ready to run step after step on one architecture: what does not change between
/// steps (each node's rounding units, the step's fixed counts and work, which values are
/// returned) is found once (`graph/plan.rs`). The same results as [`execute`] for the values
/// it keeps.
#[derive(Clone, Debug)]
pub struct Executor<'g> {
    graph: &'g Graph,
    plan: Plan,
}

impl<'g> Executor<'g> {
    /// An executor returning the graph's outputs ([`Graph::outputs`]) only.
    pub fn new(graph: &'g Graph, arch: &'g Architecture) -> Self {
        let outputs = graph.outputs();
        let plan = Plan::new(graph, arch, |t| outputs.contains(&t.name));
        Executor { graph, plan }
    }

    /// An executor returning every tensor the step computes.
    pub fn keeping_all(graph: &'g Graph, arch: &'g Architecture) -> Self {
        let plan = Plan::new(graph, arch, |_| true);
        Executor { graph, plan }
    }

    /// Run one step (see [`execute`]) on the fast paths.
    pub fn run(
        &self,
        feeds: &BTreeMap<String, ArrayD<f64>>,
        seed: u64,
        step: u64,
    ) -> Result<StepResult, ExecError> {
        self.run_on(feeds, seed, step, Path::Fast)
    }

    /// Run one step on the given rounding [`Path`].
    pub fn run_on(
        &self,
        feeds: &BTreeMap<String, ArrayD<f64>>,
        seed: u64,
        step: u64,
        path: Path,
    ) -> Result<StepResult, ExecError> {
        run_step(self, feeds, seed, step, path)
    }
}

/// The step loop of [`Executor::run_on`]. Values are slices in standard order (a node's shape
/// is its tensor's, fixed by the graph), so a node builds no `ndarray` array; the kept outputs
/// become arrays at the end.
fn run_step(
    exec: &Executor<'_>,
    feeds: &BTreeMap<String, ArrayD<f64>>,
    seed: u64,
    step: u64,
    path: Path,
) -> Result<StepResult, ExecError> {
    let (graph, plan) = (exec.graph, &exec.plan);
    let g = graph.inner();
    // Feeds are borrowed (copied only when not in standard order), computed tensors owned; a
    // rounding on the `f32` kernels leaves its values in `f32` (`graph/value.rs`).
    let mut values: Vec<Option<Value<'_>>> = vec![None; g.node_count()];
    // The kernels' counts, per scope (the rest is fixed per graph).
    let mut kernels = vec![ActionCounts::new(); plan.scopes.len()];
    let mut range = RangeHealth::default();
    for &i in graph.order() {
        let node = &g[i];
        let np = &plan.nodes[i.index()];
        // Everything this node counts goes under its scope, and into the total.
        let counts = &mut kernels[graph.scope_index(i)];
        let out = &node.out;
        let name = &out.name;
        let ops = graph.operand_slice(i);
        let val = |k: usize| -> &Value<'_> {
            values[ops[k].index()].as_ref().expect("topological order")
        };
        // An operand as `f64` (an `f32` value widened).
        let arg = |k: usize| val(k).wide();
        let shape = |k: usize| -> &[usize] { &g[ops[k]].out.shape };
        // Rows of an operand: its values after the first axis.
        let width = |k: usize| -> usize { shape(k)[1..].iter().product() };
        let stream = |purpose: u64| stream_id(name, step, purpose);
        let mut quantize_out = true;
        // Sums and products rounded exactly once by the vector unit's kernels, where the output
        // format has them; otherwise the `f64` value below is rounded.
        let mut rounded: Option<Vec<f64>> = None;
        // A ReLU (gradient) of an `f32` value whose result is held ([`NodePlan::zeroes_held`])
        // stays in `f32`.
        let held_f32 = np.zeroes_held && path == Path::Fast;
        let exact: Value<'_> = match node.op {
            Op::Input | Op::Param => {
                let v = feeds
                    .get(name)
                    .ok_or_else(|| ExecError::MissingFeed(name.clone()))?;
                if v.shape() != out.shape.as_slice() {
                    return Err(ExecError::FeedShape {
                        name: name.clone(),
                        got: v.shape().to_vec(),
                        expected: out.shape.clone(),
                    });
                }
                values[i.index()] = Some(Value::Wide(loops::standard(v)));
                continue;
            }
            Op::MatMul {
                transpose_a,
                transpose_b,
            } => {
                let mac = graph.mac();
                quantize_out = out.format != mac.acc;
                matmul(
                    mac,
                    (val(0), shape(0), transpose_a),
                    (val(1), shape(1), transpose_b),
                    RandomStream::new(seed, stream(0)),
                    path,
                    counts,
                    &mut range,
                )
                .map_err(|error| ExecError::Mac {
                    node: name.clone(),
                    error,
                })?
            }
            Op::Gather => {
                let n = shape(0)[0];
                let rows: Vec<usize> = arg(1).iter().map(|&v| v as usize).collect();
                if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
                    return Err(ExecError::Index {
                        node: name.clone(),
                        index: bad,
                        rows: n,
                    });
                }
                quantize_out = false;
                Value::Wide(Cow::Owned(loops::gather_rows(&arg(0), width(0), &rows)))
            }
            Op::ReluGrad if held_f32 && matches!(val(0), Value::Narrow(_)) => {
                let Value::Narrow(g) = val(0) else {
                    unreachable!("matched above")
                };
                // `g` where `z > 0`, else 0: the `f64` loop's values, in `f32`.
                Value::Narrow(loops::relu_grad_f32(g, val(1).slice()))
            }
            Op::Add | Op::BiasAdd | Op::Sub | Op::Mul | Op::ReluGrad => {
                // A bias row is added to every row (checked [1, n] against [m, n]).
                let bias = node.op == Op::BiasAdd;
                let op = match node.op {
                    Op::Add | Op::BiasAdd => Some(ElemOp::Add),
                    Op::Sub => Some(ElemOp::Sub),
                    Op::Mul => Some(ElemOp::Mul),
                    _ => None,
                };
                // One monomorphized loop per op and pair of carriers (a `fn` pointer would be
                // called per element).
                let s = on_slices!(val(0).slice(), val(1).slice(), |x, y| match node.op {
                    Op::Add | Op::BiasAdd => loops::binary(x, y, bias, |a, b| a + b),
                    Op::Sub => loops::binary(x, y, bias, |a, b| a - b),
                    Op::Mul => loops::binary(x, y, bias, |a, b| a * b),
                    _ => loops::binary(x, y, bias, |g, z| if z > 0.0 { g } else { 0.0 }),
                });
                // The exact-sum kernels only where the `f64` result is not already exact (or
                // where they are the native pass, as fast for either).
                rounded = match (op, &np.vector) {
                    (Some(op), Some(unit)) => {
                        let (x, y) = (arg(0), arg(1));
                        (unit.is_native() || !loops::exact(op, &x, &y, bias, &s))
                            .then(|| round_exact(op, &x, &y, bias, unit, seed, stream(0)))
                    }
                    _ => None,
                };
                Value::Wide(Cow::Owned(s))
            }
            Op::Axpy { c } => {
                let c = scalar(c, feeds, name, |_| true, "a number")?;
                let s = on_slices!(val(0).slice(), val(1).slice(), |x, y| {
                    loops::binary(x, y, false, |a, b| a + c * b)
                });
                Value::Wide(Cow::Owned(s))
            }
            Op::Scale { c } => {
                let c = scalar(c, feeds, name, |_| true, "a number")?;
                let x = arg(0);
                let s: Vec<f64> = x.iter().map(|&a| c * a).collect();
                let op = ElemOp::Scale(c);
                rounded = match &np.vector {
                    Some(unit) if unit.is_native() || !loops::exact(op, &x, &x, false, &s) => {
                        Some(round_exact(op, &x, &x, false, unit, seed, stream(0)))
                    }
                    _ => None,
                };
                Value::Wide(Cow::Owned(s))
            }
            Op::Relu => match val(0) {
                Value::Narrow(x) if held_f32 => Value::Narrow(loops::relu_f32(x)),
                v => Value::Wide(Cow::Owned(v.wide().iter().map(|&a| a.max(0.0)).collect())),
            },
            Op::Softmax => {
                let mut s = arg(0).into_owned();
                for row in s.chunks_mut(width(0).max(1)) {
                    softmax_row(row);
                }
                Value::Wide(Cow::Owned(s))
            }
            Op::SoftmaxXentGrad => {
                let mut s = arg(0).into_owned();
                let batch = out.shape[0].max(1) as f64;
                let w = width(0).max(1);
                for (r, y) in s.chunks_mut(w).zip(arg(1).chunks(w)) {
                    softmax_row(r);
                    for (p, &t) in r.iter_mut().zip(y) {
                        *p = (*p - t) / batch;
                    }
                }
                Value::Wide(Cow::Owned(s))
            }
            Op::SumRows if shape(0).len() >= 2 => {
                Value::Wide(Cow::Owned(loops::sum_rows(val(0).slice(), width(0))))
            }
            Op::SumRows => {
                // ndarray's `sum_axis`, whose order of additions the results keep (a 1-D
                // operand is summed in its unrolled order; `loops::sum_rows` is its row order).
                let x = arg(0);
                let x = ndarray::ArrayViewD::from_shape(IxDyn(shape(0)), &x[..])
                    .expect("checked shape");
                Value::Wide(Cow::Owned(x.sum_axis(Axis(0)).iter().copied().collect()))
            }
            Op::Quantize => match val(0) {
                Value::Wide(v) => Value::Wide(Cow::Borrowed(v)),
                Value::Narrow(v) => Value::Narrow(v.clone()),
            },
            Op::GaussianNoise { std } => {
                let std = scalar(std, feeds, name, |v| v >= 0.0, "a finite number >= 0")?;
                Value::Wide(Cow::Owned(crate::scratch::with_f32_pair(
                    out.len(),
                    |z, _| {
                        RandomStream::new(seed, stream(1)).normals_f32(0, z);
                        loops::add_noise(val(0).slice(), std, z)
                    },
                )))
            }
            Op::VcQuantize { v } => {
                let v = scalar(v, feeds, name, |v| v >= 0.0, "a finite number >= 0")?;
                let mu = arg(0);
                let mut res = vec![0.0; out.len()];
                let streams = crate::arith::vc::VcStreams::new(seed, stream(1));
                let row = out.shape.last().copied().unwrap_or(1);
                let tally =
                    crate::arith::vc::vc_quantize(&out.format, &mu, &mut res, v, row, &streams);
                tally.record(&out.format, counts);
                judge(&mut range, out, &mu, &res);
                values[i.index()] = Some(Value::Wide(Cow::Owned(res)));
                continue;
            }
            Op::QsgldQuantize { q, c, nearest } => {
                let q = scalar(q, feeds, name, |q| q > 0.0, "a finite number > 0")?;
                let c = scalar(c, feeds, name, |_| true, "a number")?;
                let mut res = vec![0.0; out.len()];
                crate::arith::quantize_step(&arg(0), &mut res, q, c, nearest);
                Value::Wide(Cow::Owned(res))
            }
            Op::Image(o) => {
                let wide: Vec<Cow<'_, [f64]>> = (0..o.arity()).map(arg).collect();
                let slices: Vec<&[f64]> = wide.iter().map(|v| &v[..]).collect();
                let mut res = vec![0.0; out.len()];
                // Batch normalization computes in its own format (`formats.batchnorm`).
                let f = if o.own_format() { out.format } else { plan.vf };
                let rows = shape(0)[0];
                o.apply(&slices, rows, &mut res, counts, &f);
                quantize_out = !o.moves_values();
                Value::Wide(Cow::Owned(res))
            }
        };
        // A zeroed operand of a closed format is its own rounding (see `NodePlan::zeroes_held`),
        // unless a block holds NaN: judged as stored, rounded only then.
        let held = (quantize_out && np.zeroes_held && path == Path::Fast)
            .then(|| match &exact {
                Value::Wide(v) => held_events(v),
                Value::Narrow(v) => held_events_f32(v),
            })
            .filter(|counts| counts.nan == 0 || !out.format.is_block());
        let value = if let Some(counts) = held {
            range.record(out.role, out.format, counts);
            exact.into_owned()
        } else if quantize_out {
            let (v, judged) = match rounded {
                Some(v) => (Value::Wide(Cow::Owned(v)), None),
                None => round_to(out, np, &exact, seed, stream(0), path)?,
            };
            match judged {
                Some(counts) => range.record(out.role, out.format, counts),
                None => judge(&mut range, out, &exact.wide(), &v.wide()),
            }
            v
        } else {
            if !node.op.moves_values() {
                // Judged as stored, on `f32` lanes for `f32` values (a matmul's output in the
                // accumulator's format) where the range ends are `f32` values.
                let row = out.shape.last().copied().unwrap_or(1);
                let on_f32 = match &exact {
                    Value::Narrow(v) => range_events_f32(&out.format, v, v, row),
                    Value::Wide(_) => None,
                };
                match on_f32 {
                    Some(counts) => range.record(out.role, out.format, counts),
                    None => {
                        let exact = exact.wide();
                        judge(&mut range, out, &exact, &exact);
                    }
                }
            }
            exact.into_owned()
        };
        values[i.index()] = Some(value);
    }
    let values = graph
        .order()
        .iter()
        .filter(|&&i| plan.nodes[i.index()].keep)
        .filter_map(|&i| match values[i.index()].take() {
            // Feeds (borrowed) are not returned.
            Some(Value::Wide(Cow::Borrowed(_))) | None => None,
            Some(v) => Some((
                g[i].out.name.clone(),
                loops::array(&g[i].out.shape, v.into_wide()),
            )),
        })
        .collect();
    Ok(StepResult {
        values,
        fixed: Arc::clone(&plan.scopes),
        kernels,
        range,
        datapath: graph.datapath(),
    })
}

/// Record the range events of storing `exact` as `stored` in `out`'s format under its role.
fn judge(range: &mut RangeHealth, out: &TensorMeta, exact: &[f64], stored: &[f64]) {
    let row = out.shape.last().copied().unwrap_or(1);
    let counts = range_events(&out.format, exact, stored, row);
    range.record(out.role, out.format, counts);
}

/// Softmax of one row in `f64`: `exp(x - max) / sum`.
fn softmax_row(r: &mut [f64]) {
    let m = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for x in r.iter_mut() {
        *x = (*x - m).exp();
        s += *x;
    }
    for x in r.iter_mut() {
        *x /= s;
    }
}
