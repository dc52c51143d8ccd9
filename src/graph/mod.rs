//! The dataflow IR (see ARCHITECTURE.md): one step of an algorithm is a `petgraph` graph whose
//! nodes are ops and whose edges carry named tensors with a shape, a number format, a rounding
//! unit, the memory level where they live and their [`Role`] (the key of their range health,
//! [`RangeHealth`]).
//!
//! Semantics shared by every op: the op computes its result exactly in `f64` on the carrier
//! values of its inputs (or, for [`Op::MatMul`], on the architecture's MAC datapath through
//! [`crate::arith::gemm`]) and then rounds it ONCE to its output tensor's format with its output
//! rounding unit. An op's output tensor is described by the node's [`TensorMeta`]; an edge
//! carries the output tensor of its source node into an operand slot of its target node.
//!
//! [`GraphBuilder`] checks arities, shapes and formats and rejects cycles
//! (`petgraph::algo::toposort`), with errors that name the node; [`exec::execute`] runs a
//! checked [`Graph`]; [`export`] prints it as DOT or JSON.

pub mod exec;
pub mod export;
mod health;
pub mod image;
mod loops;
mod matmul;
mod op;
mod plan;
mod rounding;
mod step;
mod tensor;
mod value;

use std::collections::BTreeSet;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use thiserror::Error;

use crate::arith::MacConfig;
use crate::cost::{Datapath, Scope};
use crate::format::{Element, Format};

pub use exec::{execute, execute_on, ExecError, Executor, Path};
pub use health::{RangeEntry, RangeHealth};
pub use op::{Op, Scalar};
pub use step::{ScopeWork, StepResult};
pub use tensor::{Level, Role, TensorMeta};

/// A node: an op, the tensor it produces, and the scope its work is counted under.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// Its output tensor.
    pub out: TensorMeta,
    /// The layer (or algorithm part) and pass it works for ([`GraphBuilder::set_scope`]).
    pub scope: Scope,
}

/// A graph that cannot be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GraphError {
    /// Two nodes produce tensors of the same name.
    #[error("node `{0}`: another node already produces a tensor of this name")]
    DuplicateName(String),
    /// The edges form a cycle through this node.
    #[error("node `{0}`: the graph has a cycle through this node")]
    Cycle(String),
    /// Wrong operands.
    #[error(
        "node `{node}` ({op}): expects {expected} operand(s) in slots 0..{expected}, got {got}"
    )]
    Arity {
        /// The node's tensor name.
        node: String,
        /// The op.
        op: &'static str,
        /// Operands it takes.
        expected: usize,
        /// What was connected.
        got: String,
    },
    /// Operand or output shapes that do not fit the op.
    #[error("node `{node}` ({op}): shape error: {detail}")]
    Shape {
        /// The node's tensor name.
        node: String,
        /// The op.
        op: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// An operand or output format the op cannot take.
    #[error("node `{node}` ({op}): format error: {detail}")]
    Format {
        /// The node's tensor name.
        node: String,
        /// The op.
        op: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// An output name that no node produces.
    #[error("output `{0}`: no node produces a tensor of this name")]
    UnknownOutput(String),
}

/// A checked step graph: nodes in a `DiGraph` whose edge weights are operand slots, the
/// datapath it runs on and that datapath's MAC configuration, a topological order, and the
/// names of its outputs.
#[derive(Clone, Debug)]
pub struct Graph {
    graph: DiGraph<Node, usize>,
    mac: MacConfig,
    datapath: Datapath,
    order: Vec<NodeIndex>,
    outputs: Vec<String>,
    /// Each node's operands in slot order, by node index (found once: the executor asks for
    /// them at every node of every step).
    operands: Vec<Vec<NodeIndex>>,
    /// The distinct scopes of the nodes, in order of first appearance.
    scopes: Vec<Scope>,
    /// Each node's scope as a position in `scopes`, by node index (the executor's counters
    /// per scope are indexed by it).
    scope_of: Vec<usize>,
}

impl Graph {
    /// The underlying `petgraph` graph (edge weight = operand slot).
    pub fn inner(&self) -> &DiGraph<Node, usize> {
        &self.graph
    }
    /// The MAC configuration the matmuls run on.
    pub fn mac(&self) -> &MacConfig {
        &self.mac
    }
    /// The unit the step runs on (its matmuls, vector operations and their pricing).
    pub fn datapath(&self) -> Datapath {
        self.datapath
    }
    /// Nodes in execution (topological) order.
    pub fn order(&self) -> &[NodeIndex] {
        &self.order
    }
    /// The names of the tensors the step returns (its new state and observables).
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }
    /// The names of the per-step scalars the graph's ops read ([`Scalar::Input`]), sorted.
    pub fn scalar_inputs(&self) -> BTreeSet<&'static str> {
        let mut names = BTreeSet::new();
        for n in self.graph.node_weights() {
            names.extend(n.op.scalars().into_iter().filter_map(|s| match s {
                Scalar::Input(name) | Scalar::Element(name, _) => Some(name),
                Scalar::Const(_) => None,
            }));
        }
        names
    }
    /// The node at `i`.
    pub fn node(&self, i: NodeIndex) -> &Node {
        &self.graph[i]
    }
    /// The operand nodes of `i`, in slot order (valid for a built graph).
    pub fn operands(&self, i: NodeIndex) -> Vec<NodeIndex> {
        self.operand_slice(i).to_vec()
    }
    /// The distinct scopes of the graph's nodes (the positions [`Graph::scope_index`] gives).
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }
    /// The position of node `i`'s scope in [`Graph::scopes`].
    pub fn scope_index(&self, i: NodeIndex) -> usize {
        self.scope_of[i.index()]
    }
    /// [`Graph::operands`] without a copy.
    pub(crate) fn operand_slice(&self, i: NodeIndex) -> &[NodeIndex] {
        &self.operands[i.index()]
    }
    /// The feeds the step needs: the tensors of every `Input` and `Param` node.
    pub fn feeds(&self) -> Vec<&TensorMeta> {
        self.order
            .iter()
            .map(|&i| &self.graph[i])
            .filter(|n| matches!(n.op, Op::Input | Op::Param))
            .map(|n| &n.out)
            .collect()
    }
}

fn operands(g: &DiGraph<Node, usize>, i: NodeIndex) -> Vec<NodeIndex> {
    let mut e: Vec<(usize, NodeIndex)> = g
        .edges_directed(i, Direction::Incoming)
        .map(|e| (*e.weight(), e.source()))
        .collect();
    e.sort_by_key(|&(s, _)| s);
    e.into_iter().map(|(_, n)| n).collect()
}

/// Whether every value of `x` is exactly a value of the MAC input format `mac`
/// ([`Format::contains`]: e.g. `b`-bit integer codes in a `bfp` block of `b`-bit elements,
/// narrow floats and integers of up to 24 significant bits in `fp32`). This is the rule
/// [`Op::MatMul`] operands obey: the MAC reads them without a conversion.
pub fn fits_within(x: &Format, mac: &Format) -> bool {
    mac.contains(x)
}

/// Builds a [`Graph`]: add nodes, connect operand slots, then [`GraphBuilder::build`] checks
/// everything.
#[derive(Clone, Debug)]
pub struct GraphBuilder {
    graph: DiGraph<Node, usize>,
    mac: MacConfig,
    datapath: Datapath,
    names: BTreeSet<String>,
    scope: Scope,
}

impl GraphBuilder {
    /// An empty graph for the low-precision datapath, whose matmuls will run on `mac`.
    pub fn new(mac: MacConfig) -> Self {
        Self::on(Datapath::LowPrecision, mac)
    }

    /// An empty graph for `datapath`, whose matmuls will run on `mac` (that datapath's MAC).
    pub fn on(datapath: Datapath, mac: MacConfig) -> Self {
        GraphBuilder {
            graph: DiGraph::new(),
            mac,
            datapath,
            names: BTreeSet::new(),
            scope: Scope::default(),
        }
    }

    /// The scope of the nodes added from now on (a new builder's is [`Scope::update`]: the
    /// algorithm's own work); returns the scope it replaces, for the caller to restore.
    pub fn set_scope(&mut self, scope: Scope) -> Scope {
        std::mem::replace(&mut self.scope, scope)
    }

    /// Add a node producing `out` (not yet connected).
    pub fn add_node(&mut self, op: Op, out: TensorMeta) -> Result<NodeIndex, GraphError> {
        if !self.names.insert(out.name.clone()) {
            return Err(GraphError::DuplicateName(out.name));
        }
        let scope = self.scope;
        Ok(self.graph.add_node(Node { op, out, scope }))
    }

    /// Feed the output of `src` into operand `slot` of `dst`.
    pub fn connect(&mut self, src: NodeIndex, dst: NodeIndex, slot: usize) {
        self.graph.add_edge(src, dst, slot);
    }

    /// Add a node and connect `inputs` to its slots `0, 1, ...`.
    pub fn add(
        &mut self,
        op: Op,
        out: TensorMeta,
        inputs: &[NodeIndex],
    ) -> Result<NodeIndex, GraphError> {
        let n = self.add_node(op, out)?;
        for (slot, &i) in inputs.iter().enumerate() {
            self.connect(i, n, slot);
        }
        Ok(n)
    }

    /// The output tensor of node `i`.
    pub fn meta(&self, i: NodeIndex) -> &TensorMeta {
        &self.graph[i].out
    }

    /// The datapath the graph runs on.
    pub fn datapath(&self) -> Datapath {
        self.datapath
    }

    /// The node producing the tensor `name`, if one does (a layer's backward pass reads what
    /// its forward pass computed, e.g. a convolution's window matrix).
    pub fn find(&self, name: &str) -> Option<NodeIndex> {
        if !self.names.contains(name) {
            return None;
        }
        self.graph
            .node_indices()
            .find(|&i| self.graph[i].out.name == name)
    }

    /// Check the graph and fix its execution order; `outputs` names the tensors the step returns.
    pub fn build(self, outputs: &[&str]) -> Result<Graph, GraphError> {
        let order = petgraph::algo::toposort(&self.graph, None)
            .map_err(|c| GraphError::Cycle(self.graph[c.node_id()].out.name.clone()))?;
        for &i in &order {
            self.check(i)?;
        }
        for o in outputs {
            if !self.names.contains(*o) {
                return Err(GraphError::UnknownOutput(o.to_string()));
            }
        }
        let operands = self
            .graph
            .node_indices()
            .map(|i| operands(&self.graph, i))
            .collect();
        let mut scopes: Vec<Scope> = Vec::new();
        let scope_of = self
            .graph
            .node_weights()
            .map(|n| match scopes.iter().position(|s| *s == n.scope) {
                Some(k) => k,
                None => {
                    scopes.push(n.scope);
                    scopes.len() - 1
                }
            })
            .collect();
        Ok(Graph {
            graph: self.graph,
            mac: self.mac,
            datapath: self.datapath,
            order,
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            operands,
            scopes,
            scope_of,
        })
    }

    /// Check one node's operands, shapes and formats.
    fn check(&self, i: NodeIndex) -> Result<(), GraphError> {
        let node = &self.graph[i];
        let (name, op) = (node.out.name.clone(), node.op.name());
        let mut slots: Vec<usize> = self
            .graph
            .edges_directed(i, Direction::Incoming)
            .map(|e| *e.weight())
            .collect();
        slots.sort_unstable();
        if slots != (0..node.op.arity()).collect::<Vec<_>>() {
            return Err(GraphError::Arity {
                node: name,
                op,
                expected: node.op.arity(),
                got: format!("slots {slots:?}"),
            });
        }
        let ins: Vec<&TensorMeta> = operands(&self.graph, i)
            .into_iter()
            .map(|j| &self.graph[j].out)
            .collect();
        let out = &node.out;
        let shape_err = |detail: String| GraphError::Shape {
            node: name.clone(),
            op,
            detail,
        };
        let format_err = |detail: String| GraphError::Format {
            node: name.clone(),
            op,
            detail,
        };
        let same = |a: &TensorMeta, b: &TensorMeta| {
            if a.shape == b.shape {
                Ok(())
            } else {
                Err(shape_err(format!(
                    "`{}` is {:?} but `{}` is {:?}",
                    a.name, a.shape, b.name, b.shape
                )))
            }
        };
        match node.op {
            Op::Input | Op::Param => {}
            Op::MatMul {
                transpose_a,
                transpose_b,
            } => {
                let (a, b) = (ins[0], ins[1]);
                if a.shape.len() != 2 || b.shape.len() != 2 {
                    return Err(shape_err(format!(
                        "operands must be matrices; `{}` is {:?}, `{}` is {:?}",
                        a.name, a.shape, b.name, b.shape
                    )));
                }
                let (m, k) = if transpose_a {
                    (a.shape[1], a.shape[0])
                } else {
                    (a.shape[0], a.shape[1])
                };
                let (k2, n) = if transpose_b {
                    (b.shape[1], b.shape[0])
                } else {
                    (b.shape[0], b.shape[1])
                };
                if k != k2 {
                    return Err(shape_err(format!(
                        "inner dimensions differ: `{}` gives K = {k}, `{}` gives K = {k2}",
                        a.name, b.name
                    )));
                }
                if out.shape != [m, n] {
                    return Err(shape_err(format!(
                        "output is {:?} but the product is [{m}, {n}]",
                        out.shape
                    )));
                }
                for (t, f, role) in [(a, self.mac.a, "a"), (b, self.mac.b, "b")] {
                    if !fits_within(&t.format, &f) {
                        return Err(format_err(format!(
                            "operand `{}` is `{}`, not a value of the MAC's {role} format `{f}`; \
                             quantize it first",
                            t.name, t.format
                        )));
                    }
                }
            }
            Op::Gather => {
                let (data, idx) = (ins[0], ins[1]);
                if data.shape.len() != 2
                    || idx.shape.len() != 2
                    || idx.shape[1] != 1
                    || out.shape != [idx.shape[0], data.shape[1]]
                {
                    return Err(shape_err(format!(
                        "data {:?} must be [N, d], the index {:?} [B, 1] and the output [B, d], \
                         got {:?}",
                        data.shape, idx.shape, out.shape
                    )));
                }
                if out.format != data.format {
                    return Err(format_err(format!(
                        "a gather copies values: the output format `{}` must be the data's `{}`",
                        out.format, data.format
                    )));
                }
            }
            Op::Add | Op::Sub | Op::Mul | Op::Axpy { .. } | Op::ReluGrad => {
                same(ins[0], ins[1])?;
                same(ins[0], out)?;
            }
            Op::SoftmaxXentGrad => {
                same(ins[0], ins[1])?;
                same(ins[0], out)?;
                if out.shape.len() != 2 {
                    return Err(shape_err(format!(
                        "logits must be a matrix, got {:?}",
                        out.shape
                    )));
                }
            }
            Op::Softmax => {
                same(ins[0], out)?;
                if out.shape.len() != 2 {
                    return Err(shape_err(format!("needs a matrix, got {:?}", out.shape)));
                }
            }
            Op::BiasAdd => {
                let (x, b) = (&ins[0].shape, &ins[1].shape);
                if x.len() != 2 || *b != [1, x[1]] || out.shape != *x {
                    return Err(shape_err(format!(
                        "input {x:?} must be a matrix [m, n], the bias {b:?} [1, n] and the \
                         output [m, n], got {:?}",
                        out.shape
                    )));
                }
            }
            Op::SumRows => {
                let s = &ins[0].shape;
                if s.len() != 2 || out.shape != [1, s[1]] {
                    return Err(shape_err(format!(
                        "input {s:?} must be a matrix [m, n] and the output [1, n], got {:?}",
                        out.shape
                    )));
                }
            }
            Op::VcQuantize { v } => {
                same(ins[0], out)?;
                // Its draws need a zero on the grid (the uniform region around it).
                let zero = match out.format {
                    Format::Float(f) => f.has_zero(),
                    Format::Block(b) => match b.element() {
                        Element::Float(f) => f.has_zero(),
                        Element::Fixed(_) => true,
                    },
                    Format::Fixed(_) | Format::QTorch(_) => true,
                    Format::QFixed(_) => {
                        return Err(format_err(format!(
                            "the variance-corrected quantizer has no QPyTorch counterpart for \
                             `{}`: its grid is QPyTorch's fixed point; use `fixed:` instead",
                            out.format
                        )))
                    }
                };
                if !zero {
                    return Err(format_err(format!(
                        "the variance-corrected quantizer needs a format with a zero; `{}` has \
                         none (only powers of two)",
                        out.format
                    )));
                }
                // A per-step `v` is checked when it is fed.
                if let Scalar::Const(v) = v {
                    if !(v.is_finite() && v >= 0.0) {
                        return Err(format_err(format!("v = {v}: must be finite and >= 0")));
                    }
                }
            }
            Op::QsgldQuantize { q, .. } => {
                same(ins[0], out)?;
                if let Scalar::Const(q) = q {
                    if !(q.is_finite() && q > 0.0) {
                        return Err(format_err(format!("Q_p = {q}: must be finite and > 0")));
                    }
                }
            }
            Op::Scale { .. } | Op::Relu | Op::Quantize | Op::GaussianNoise { .. } => {
                same(ins[0], out)?
            }
            Op::Image(o) => {
                let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape.as_slice()).collect();
                let s = o.output_shape(&shapes).map_err(&shape_err)?;
                if out.shape != s {
                    return Err(shape_err(format!(
                        "output is {:?} but the op gives {s:?}",
                        out.shape
                    )));
                }
                if o.moves_values() && out.format != ins[0].format {
                    return Err(format_err(format!(
                        "{} moves values: the output format `{}` must be the input's `{}`",
                        o.name(),
                        out.format,
                        ins[0].format
                    )));
                }
            }
        }
        Ok(())
    }
}
