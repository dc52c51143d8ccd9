//! Export a step graph: Graphviz DOT (each edge labelled `name [shape] format`) and JSON.

use petgraph::dot::{Config, Dot};
use serde::Serialize;

use crate::graph::{Graph, Level, Op, Role};

/// The graph as Graphviz DOT: nodes show the op and its output tensor, edges the tensor they
/// carry as `name [shape] format`.
pub fn to_dot(graph: &Graph) -> String {
    let g = graph.inner();
    let dot = Dot::with_attr_getters(
        g,
        &[Config::EdgeNoLabel, Config::NodeNoLabel],
        &|g, e| {
            let t = &g[petgraph::visit::EdgeRef::source(&e)].out;
            format!(
                "label=\"{} {:?} {}\"",
                escape(&t.name),
                t.shape,
                escape(&t.format.to_string())
            )
        },
        &|_, (_, n)| {
            let shape = match n.op {
                Op::Input | Op::Param => "box",
                _ => "ellipse",
            };
            format!(
                "label=\"{}\\n{}\" shape={shape}",
                escape(n.op.name()),
                escape(&n.out.name)
            )
        },
    );
    format!("{dot:?}")
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One node in the JSON export.
#[derive(Serialize)]
struct JsonNode<'a> {
    id: usize,
    op: &'a Op,
    name: &'a str,
    shape: &'a [usize],
    format: String,
    rounding: String,
    level: Level,
    role: Role,
    inputs: Vec<usize>,
}

/// The graph as JSON: `{"datapath": ..., "mac": ..., "nodes": [{id, op, name, shape, format,
/// rounding, level, role, inputs}], "outputs": [...], "scalars": {...}}`, nodes in execution
/// order, `inputs` in operand order; an op's per-step scalar shows as its name, and `scalars`
/// gives each one's value at the step the graph is shown for (`values`).
pub fn to_json(graph: &Graph, values: &[(String, f64)]) -> serde_json::Value {
    let nodes: Vec<JsonNode> = graph
        .order()
        .iter()
        .map(|&i| {
            let n = graph.node(i);
            JsonNode {
                id: i.index(),
                op: &n.op,
                name: &n.out.name,
                shape: &n.out.shape,
                format: n.out.format.to_string(),
                rounding: n.out.rounding.to_string(),
                level: n.out.level,
                role: n.out.role,
                inputs: graph.operands(i).iter().map(|j| j.index()).collect(),
            }
        })
        .collect();
    let mac = graph.mac();
    serde_json::json!({
        "datapath": graph.datapath(),
        "mac": {
            "a": mac.a.to_string(),
            "b": mac.b.to_string(),
            "accumulator": mac.acc.to_string(),
            "acc_rounding": mac.acc_rounding.to_string(),
            "order": mac.order.to_string(),
        },
        "nodes": nodes,
        "outputs": graph.outputs(),
        "scalars": values
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect::<serde_json::Map<_, _>>(),
    })
}
