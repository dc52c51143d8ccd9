//! What the executor computes once per graph and architecture rather than at every node of
//! every step (a HALP step on a linear model is ~14 nodes of ~100 values, so per-node fixed
//! costs were most of its time): each node's rounding units and flags, whether its value is
//! kept, and the step's counts and work that do not depend on the values.
//!
//! Fixed per graph: every vector operation, conversion, Gaussian noise draw and memory
//! transfer a node counts, its vector operations and GEMM shapes (the [`Work`]). Counted per
//! step, from the values: a GEMM kernel's actions (its overflows), the VC quantizer's draws and
//! events, an image op's own counts.

use std::sync::Arc;

use petgraph::graph::NodeIndex;
use petgraph::Direction;

use crate::arch::Architecture;
use crate::arith::{ActionCounts, VectorRounding};
use crate::cost::{Datapath, Gemm, Work};
use crate::format::{alias, BlockSize, Element, Format};
use crate::graph::step::ScopeWork;
use crate::graph::{Graph, Level, Op, TensorMeta};
use crate::round::{Rounding, NORMAL_F32_BITS};

/// One node's fixed facts.
#[derive(Clone, Debug)]
pub(super) struct NodePlan {
    /// The vector unit's exact-sum rounding to the output format, if the format has one.
    pub vector: Option<VectorRounding>,
    /// How the output is rounded on the fast path ([`crate::graph::rounding::round_to`]).
    pub route: Route,
    /// Whether the fast path stores the node's exact result unrounded: a ReLU or ReLU gradient
    /// whose value operand holds values of the output format (a computed node of that format
    /// and shape, not a feed or moved values), in a format closed under zeroing elements
    /// ([`Format::closed_under_zeroing`]), so rounding the result would give it back bit for
    /// bit. The executor still rounds blocks holding NaN.
    pub zeroes_held: bool,
    /// Whether the fast path leaves the output in `f32` where it rounds on the `f32` carrier
    /// anyway (`Quantizer::quantize_f64_narrowed`): the value is not kept and every reader
    /// takes `f32` values as they are ([`reads_f32`]), so no reader widens it again.
    pub narrow_out: bool,
    /// Whether the executor returns the node's value.
    pub keep: bool,
}

/// Which fast path rounds an output (the same bits as the reference either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// The `f64` fast paths only, where they beat the `f32` kernels or the values are not
    /// `f32` values: Gaussian noise added to a value, `fp32` nearest-even (a conversion),
    /// column blocks with a deterministic rounding (their `f32` path goes through `f64`
    /// anyway), and blocks of integer elements (bfp, MXINT8) with a deterministic rounding,
    /// which the `f32` kernels round through their general split (measured on 100 and 16384
    /// values: about 5.5 ns a value on `f32`, 1.6-2.2 ns on `f64`).
    F64,
    /// The vectorized `f32` kernels when every exact value is an `f32` value, else `f64`.
    F32First,
}

/// The executor's per-graph precomputation ([`crate::graph::exec::Executor`]).
#[derive(Clone, Debug)]
pub(super) struct Plan {
    /// By node index.
    pub nodes: Vec<NodePlan>,
    /// Per scope of the graph ([`Graph::scopes`]): the fixed counts and the whole work
    /// (shared by every step's result).
    pub scopes: Arc<[ScopeWork]>,
    /// The vector unit's format.
    pub vf: Format,
}

impl Plan {
    /// The plan of `graph` on `arch`, keeping the values of the nodes `keep` accepts.
    pub fn new(graph: &Graph, arch: &Architecture, keep: impl Fn(&TensorMeta) -> bool) -> Plan {
        let vf = match graph.datapath() {
            Datapath::LowPrecision => arch.compute.vector.format,
            Datapath::FullPrecision => arch.full_precision.format,
        };
        let fp32 = alias("fp32");
        let g = graph.inner();
        let mut nodes: Vec<NodePlan> = g
            .node_indices()
            .map(|i| {
                let out = &g[i].out;
                let deterministic = !out.rounding.is_stochastic();
                // Noise added to a value is almost never an `f32` value, so trying the `f32`
                // path first would cost a failed narrowing pass every step.
                let noisy = matches!(g[i].op, Op::GaussianNoise { .. });
                let f64_first = noisy
                    || match out.format {
                        Format::Block(b) => {
                            deterministic
                                && (b.size() == BlockSize::Col
                                    || matches!(b.element(), Element::Fixed(_)))
                        }
                        f => out.rounding == Rounding::NearestEven && Some(f) == fp32,
                    };
                let route = if f64_first {
                    Route::F64
                } else {
                    Route::F32First
                };
                let zeroes_held = matches!(g[i].op, Op::Relu | Op::ReluGrad) && {
                    let value = graph.node(graph.operand_slice(i)[0]);
                    out.format.closed_under_zeroing()
                        && value.out.format == out.format
                        && value.out.shape == out.shape
                        && !matches!(value.op, Op::Input | Op::Param)
                        && !value.op.moves_values()
                };
                NodePlan {
                    vector: VectorRounding::new(out.format, out.rounding).ok(),
                    route,
                    zeroes_held,
                    narrow_out: false,
                    keep: !matches!(g[i].op, Op::Input | Op::Param) && keep(out),
                }
            })
            .collect();
        // Readers are planned above, so their own flags decide whether they take `f32`.
        let narrow: Vec<bool> = g
            .node_indices()
            .map(|i| {
                let mut readers = g.neighbors_directed(i, Direction::Outgoing).peekable();
                !nodes[i.index()].keep
                    && readers.peek().is_some()
                    && readers.all(|r| reads_f32(graph, r, &nodes[r.index()]))
            })
            .collect();
        for (n, narrow) in nodes.iter_mut().zip(narrow) {
            n.narrow_out = narrow;
        }
        let mut scopes: Vec<ScopeWork> = graph
            .scopes()
            .iter()
            .map(|&scope| ScopeWork {
                scope,
                ..ScopeWork::default()
            })
            .collect();
        for &i in graph.order() {
            let ScopeWork { counts, work, .. } = &mut scopes[graph.scope_index(i)];
            fixed_counts(graph, arch, i, &vf, counts, work);
        }
        Plan {
            nodes,
            scopes: scopes.into(),
            vf,
        }
    }
}

/// Whether node `r` reads its operands on either carrier without widening `f32` values
/// (`graph/exec.rs`): a GEMM (which narrows `f64` operands), a ReLU gradient, a ReLU whose
/// result is held in `f32`, the elementwise loops where no exact-sum kernel rounds the result
/// (those read `f64`), `Axpy`, Gaussian noise, a row sum of rows, and `Quantize`.
fn reads_f32(graph: &Graph, r: NodeIndex, plan: &NodePlan) -> bool {
    match graph.node(r).op {
        Op::MatMul { .. }
        | Op::ReluGrad
        | Op::Axpy { .. }
        | Op::GaussianNoise { .. }
        | Op::Quantize => true,
        Op::Relu => plan.zeroes_held,
        Op::Add | Op::BiasAdd | Op::Sub | Op::Mul => plan.vector.is_none(),
        Op::SumRows => graph
            .operands(r)
            .first()
            .is_some_and(|&x| graph.node(x).out.shape.len() >= 2),
        _ => false,
    }
}

/// The counts and work of node `i` that do not depend on the values (see the module docs and
/// [`crate::graph::exec`]'s).
fn fixed_counts(
    graph: &Graph,
    arch: &Architecture,
    i: petgraph::graph::NodeIndex,
    vf: &Format,
    counts: &mut ActionCounts,
    work: &mut Work,
) {
    let node = graph.node(i);
    let out = &node.out;
    let n = out.len() as u64;
    let operand = |k: usize| &graph.node(graph.operand_slice(i)[k]).out;
    let mut quantize_out = true;
    match node.op {
        // Feeds only name tensors: they move nothing themselves.
        Op::Input | Op::Param => return,
        Op::MatMul {
            transpose_a,
            transpose_b,
        } => {
            let (a, b) = (&operand(0).shape, &operand(1).shape);
            let (m, k) = if transpose_a {
                (a[1], a[0])
            } else {
                (a[0], a[1])
            };
            let nn = if transpose_b { b[0] } else { b[1] };
            work.gemms.push(Gemm {
                m: m as u64,
                n: nn as u64,
                k: k as u64,
            });
            quantize_out = out.format != graph.mac().acc;
        }
        Op::Gather => quantize_out = false,
        Op::Add | Op::BiasAdd | Op::Sub => counts.record_add(vf, n),
        Op::Mul => counts.record_mul(vf, vf, n),
        Op::ReluGrad | Op::Relu | Op::Softmax | Op::SoftmaxXentGrad | Op::Quantize => {}
        Op::Axpy { .. } => counts.record_fma(vf, vf, vf, n),
        Op::Scale { .. } => counts.record_mul(vf, vf, n),
        Op::SumRows => counts.record_add(vf, operand(0).len() as u64),
        Op::GaussianNoise { .. } => {
            counts.record_add(vf, n);
            counts.random_bits += n * NORMAL_F32_BITS;
        }
        Op::VcQuantize { .. } => {
            // Written by the VC quantizer itself: no output conversion.
            counts.record_add(vf, n);
            work.vector_ops += n;
            record_traffic(arch, graph, i, counts);
            return;
        }
        Op::QsgldQuantize { .. } => counts.record_fma(vf, vf, vf, 2 * n),
        Op::Image(o) => quantize_out = !o.moves_values(),
    }
    if !matches!(node.op, Op::MatMul { .. }) && !node.op.moves_values() {
        work.vector_ops += n;
    }
    let native = out.format == *vf && out.rounding == Rounding::NearestEven;
    if quantize_out && (!native || matches!(node.op, Op::Quantize)) {
        counts.record_quantize(&out.format, out.rounding, n);
    }
    record_traffic(arch, graph, i, counts);
}

/// The memory level name of a tensor on `arch`.
fn level_name(arch: &Architecture, level: Level) -> &str {
    match level {
        Level::Outer => &arch.memory[0].name,
        Level::Inner => &arch.innermost().name,
    }
}

/// Bits of a tensor of `shape` in `format` (block formats: the shared scales included).
fn shape_bits(format: &Format, shape: &[usize]) -> u64 {
    let len: usize = shape.iter().product();
    let row = shape.last().copied().unwrap_or(1);
    (len as f64 * format.storage_bits(len, row)).ceil() as u64
}

/// Reads of node `i`'s operands and the write of its output.
fn record_traffic(
    arch: &Architecture,
    graph: &Graph,
    i: petgraph::graph::NodeIndex,
    counts: &mut ActionCounts,
) {
    let node = graph.node(i);
    for (slot, j) in graph.operand_slice(i).iter().copied().enumerate() {
        let t = &graph.node(j).out;
        let bits = match node.op {
            // A gather reads only the rows it picks (as many elements as it writes).
            Op::Gather if slot == 0 => shape_bits(&t.format, &node.out.shape),
            _ => shape_bits(&t.format, &t.shape),
        };
        counts.record_read(level_name(arch, t.level), bits);
    }
    let t = &node.out;
    if !matches!(node.op, Op::Image(o) if o.writes_nothing()) {
        counts.record_write(level_name(arch, t.level), shape_bits(&t.format, &t.shape));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{GraphBuilder, Role};
    use crate::round::Rounding;

    /// An update left in `f32` for the noise that reads it, not one the VC quantizer widens,
    /// not a kept output.
    #[test]
    fn outputs_stay_in_f32_only_for_readers_that_take_f32() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let arch = Architecture::load(&root.join("arch/bfp8.json")).expect("a shipped arch");
        let (fp32, w) = (alias("fp32").expect("fp32"), arch.formats.weights);
        let (rn, sr) = (Rounding::NearestEven, Rounding::Stochastic { bits: 8 });
        let meta = |name: &str, f: Format, r: Rounding| {
            TensorMeta::new(name, &[4, 3], f, r, Level::Inner, Role::Updates)
        };
        let mut b = GraphBuilder::new(arch.formats.mac);
        let p = b.add(Op::Param, meta("w", w, sr), &[]).expect("node");
        let g = b.add(Op::Input, meta("g", w, sr), &[]).expect("node");
        let axpy = Op::Axpy { c: (-0.1).into() };
        let mu = b.add(axpy, meta("mu", fp32, rn), &[p, g]).expect("node");
        let noise = Op::GaussianNoise { std: 0.1.into() };
        b.add(noise, meta("w.next", w, sr), &[mu]).expect("node");
        let mu_vc = b.add(axpy, meta("mu.vc", fp32, rn), &[p, g]).expect("node");
        let vc = Op::VcQuantize { v: 0.1.into() };
        b.add(vc, meta("w.vc", w, sr), &[mu_vc]).expect("node");
        let graph = b.build(&["w.next", "w.vc"]).expect("graph");
        let plan = Plan::new(&graph, &arch, |m| graph.outputs().contains(&m.name));
        let narrow = |name: &str| {
            let i = graph
                .inner()
                .node_indices()
                .find(|&i| graph.node(i).out.name == name);
            plan.nodes[i.expect("node").index()].narrow_out
        };
        assert!(narrow("mu"));
        assert!(!narrow("mu.vc"));
        assert!(!narrow("w.next"));
        assert!(!narrow("w.vc"));
    }
}
