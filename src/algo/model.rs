//! Models: their step subgraphs (forward on the MAC datapath, backward, gradients) and their
//! `f64` loss and predictions for metrics.
//!
//! Formats on the low-precision datapath (from the architecture): operands of a matmul are
//! converted to the MAC's input formats when they are not already values of them (a visible
//! `quantize` node, with the activations' rounding for the A side and the stored tensor's
//! rounding for the B side); matmul outputs of the forward pass are activations
//! (`formats.activations`), the backward pass's errors and weight gradients are gradients
//! (`formats.gradients`): the weight gradient leaving its matmul is `Q_G(grad)`.
//!
//! On the full-precision unit (`Builder::full_precision`) every tensor, stored or computed, is
//! in `full_precision.format` with `rne`, and the matmuls run on `full_precision.mac`: nothing is
//! converted to a low-precision format.
//!
//! Every tensor gets a [`Role`] where it is built (the key of its range health): the forward
//! values are activations, the backward values gradients, and a conversion to a MAC format
//! keeps the role of what it converts.

use ndarray::{Array2, ArrayView2};
use petgraph::graph::NodeIndex;

use crate::algo::{AlgoError, ModelShape, Targets};
use crate::arch::Architecture;
use crate::arith::MacConfig;
use crate::cost::Datapath;
use crate::format::{alias, Format};
use crate::graph::{fits_within, GraphBuilder, Level, Op, Role, TensorMeta};
use crate::round::Rounding;

/// `fp32`, the default full-precision format.
pub fn fp32() -> Format {
    alias("fp32").expect("fp32 is a built-in alias")
}

/// The formats and rounding units a datapath gives each role.
#[derive(Clone, Copy, Debug)]
struct Roles {
    mac: MacConfig,
    activations: (Format, Rounding),
    gradients: (Format, Rounding),
    weight_rounding: Rounding,
}

/// A step-graph builder with the architecture's formats at hand, for one datapath.
pub(crate) struct Builder<'a> {
    pub b: GraphBuilder,
    pub arch: &'a Architecture,
    roles: Roles,
    /// Conversions to MAC formats already made, by (node, A side).
    converted: Vec<((NodeIndex, bool), NodeIndex)>,
}

impl<'a> Builder<'a> {
    /// A graph on the low-precision datapath (the architecture's formats and MAC).
    pub fn new(arch: &'a Architecture) -> Self {
        let f = &arch.formats;
        let r = &f.rounding;
        Self::with(
            arch,
            Datapath::LowPrecision,
            Roles {
                mac: f.mac,
                activations: (f.activations, r.activations),
                gradients: (f.gradients, r.gradients),
                weight_rounding: r.weights,
            },
        )
    }

    /// A graph on the full-precision unit: every role in `full_precision.format`, `rne`.
    pub fn full_precision(arch: &'a Architecture) -> Self {
        let full = (arch.full_precision.format, Rounding::NearestEven);
        Self::with(
            arch,
            Datapath::FullPrecision,
            Roles {
                mac: arch.full_precision.mac,
                activations: full,
                gradients: full,
                weight_rounding: Rounding::NearestEven,
            },
        )
    }

    /// The builder for `datapath`.
    pub fn on(datapath: Datapath, arch: &'a Architecture) -> Self {
        match datapath {
            Datapath::LowPrecision => Self::new(arch),
            Datapath::FullPrecision => Self::full_precision(arch),
        }
    }

    fn with(arch: &'a Architecture, datapath: Datapath, roles: Roles) -> Self {
        Builder {
            b: GraphBuilder::on(datapath, roles.mac),
            arch,
            roles,
            converted: Vec::new(),
        }
    }

    /// The full-precision format (`full_precision.format`): master copies, centres, cached
    /// full-precision values and the vector unit's full-precision results.
    pub fn full(&self) -> Format {
        self.arch.full_precision.format
    }

    /// Add a node producing `name` in `format`/`rounding` with `role` (its shape follows from
    /// the op) at the inner level, or at the outer level for a step's new state (names ending in
    /// `.next`).
    pub fn op(
        &mut self,
        op: Op,
        name: &str,
        format: Format,
        rounding: Rounding,
        role: Role,
        inputs: &[NodeIndex],
    ) -> Result<NodeIndex, AlgoError> {
        let shape = match op {
            Op::MatMul {
                transpose_a,
                transpose_b,
            } => {
                let (a, b) = (self.shape(inputs[0]), self.shape(inputs[1]));
                let m = if transpose_a { a[1] } else { a[0] };
                let n = if transpose_b { b[0] } else { b[1] };
                vec![m, n]
            }
            Op::SumRows => vec![1, self.shape(inputs[0])[1]],
            Op::Gather => vec![self.shape(inputs[1])[0], self.shape(inputs[0])[1]],
            _ => self.shape(inputs[0]),
        };
        // A step's new state (`*.next`) goes back to the outer level, with the parameters.
        let level = if name.ends_with(".next") {
            Level::Outer
        } else {
            Level::Inner
        };
        let meta = TensorMeta::new(name, &shape, format, rounding, level, role);
        Ok(self.b.add(op, meta, inputs)?)
    }

    /// A full-precision vector-unit op (`full_precision.format`, `fp32` unless the architecture
    /// says otherwise; `rne`).
    pub fn f32op(
        &mut self,
        op: Op,
        name: &str,
        role: Role,
        inputs: &[NodeIndex],
    ) -> Result<NodeIndex, AlgoError> {
        let full = self.full();
        self.op(op, name, full, Rounding::NearestEven, role, inputs)
    }

    /// A feed (`Input` or `Param`) at the outer level.
    pub fn feed(
        &mut self,
        op: Op,
        name: &str,
        shape: &[usize],
        format: Format,
        rounding: Rounding,
        role: Role,
    ) -> Result<NodeIndex, AlgoError> {
        let meta = TensorMeta::new(name, shape, format, rounding, Level::Outer, role);
        Ok(self.b.add(op, meta, &[])?)
    }

    fn shape(&self, i: NodeIndex) -> Vec<usize> {
        self.b.meta(i).shape.clone()
    }

    /// Node `i` as a MAC operand (`a_side`: the A input, else B): itself if its format is within
    /// the MAC's, else a conversion with `rounding` (with `i`'s role).
    pub fn mac_operand(
        &mut self,
        i: NodeIndex,
        a_side: bool,
        rounding: Rounding,
    ) -> Result<NodeIndex, AlgoError> {
        let mac = self.roles.mac;
        let target = if a_side { mac.a } else { mac.b };
        let m = self.b.meta(i);
        if fits_within(&m.format, &target) {
            return Ok(i);
        }
        if let Some(&(_, q)) = self.converted.iter().find(|(k, _)| *k == (i, a_side)) {
            return Ok(q);
        }
        let name = format!("{}@mac.{}", m.name, if a_side { "a" } else { "b" });
        let role = m.role;
        let q = self.op(Op::Quantize, &name, target, rounding, role, &[i])?;
        self.converted.push(((i, a_side), q));
        Ok(q)
    }

    /// `op(A) op(B)` into `out` (format, rounding, role), converting operands to the MAC formats
    /// first.
    pub fn matmul(
        &mut self,
        name: &str,
        a: (NodeIndex, bool),
        b: (NodeIndex, bool),
        out: (Format, Rounding, Role),
        b_rounding: Rounding,
    ) -> Result<NodeIndex, AlgoError> {
        let ra = self.roles.activations.1;
        let aq = self.mac_operand(a.0, true, ra)?;
        let bq = self.mac_operand(b.0, false, b_rounding)?;
        self.op(
            Op::MatMul {
                transpose_a: a.1,
                transpose_b: b.1,
            },
            name,
            out.0,
            out.1,
            out.2,
            &[aq, bq],
        )
    }

    fn act(&self) -> (Format, Rounding, Role) {
        let (f, r) = self.roles.activations;
        (f, r, Role::Activations)
    }

    fn grad(&self) -> (Format, Rounding, Role) {
        let (f, r) = self.roles.gradients;
        (f, r, Role::Gradients)
    }

    /// The gradient subgraph of the mean loss of `model` on the batch `x` (`B x d`) with targets
    /// `y` at `weights` (one node per parameter tensor, in the order of [`param_shapes`]):
    /// returns the model output node (logits, predictions) and the gradient node of each
    /// parameter tensor, in the gradients format. An MLP layer is `z = a W + b`: the matmul
    /// rounds `a W` to the activations format, the vector unit adds the bias row
    /// ([`Op::BiasAdd`], rounded to the activations format again); the bias gradient is the
    /// column sums of the layer's error ([`Op::SumRows`]).
    pub fn gradients(
        &mut self,
        model: &ModelShape,
        x: Option<NodeIndex>,
        y: Option<NodeIndex>,
        weights: &[NodeIndex],
    ) -> Result<(NodeIndex, Vec<NodeIndex>), AlgoError> {
        let (gf, gr, gradient) = self.grad();
        let rw = self.roles.weight_rounding;
        if let ModelShape::Gaussian {
            mean, precision, ..
        } = model
        {
            let g = crate::algo::gaussian::gradient(self, weights[0], mean, precision)?;
            return Ok((weights[0], vec![g]));
        }
        let (x, y) = match (x, y) {
            (Some(x), Some(y)) => (x, y),
            _ => return Err(AlgoError::Data("this model needs training data".into())),
        };
        let ra = self.roles.activations.1;
        let xq = self.mac_operand(x, true, ra)?;
        let layers = dense_layers(model, weights);
        let n = layers.len();
        let mut acts = vec![xq];
        let mut pre = Vec::new();
        for (l, &(w, bias)) in layers.iter().enumerate() {
            let (af, ar, act) = self.act();
            let mut z = self.matmul(
                &format!("z{l}"),
                (acts[l], false),
                (w, false),
                (af, ar, act),
                rw,
            )?;
            if let Some(bias) = bias {
                z = self.op(Op::BiasAdd, &format!("zb{l}"), af, ar, act, &[z, bias])?;
            }
            pre.push(z);
            if l + 1 < n {
                let h = self.op(Op::Relu, &format!("h{l}"), af, ar, act, &[z])?;
                let hq = self.mac_operand(h, true, ar)?;
                acts.push(hq);
            }
        }
        let out = pre[n - 1];
        let mut err = match model {
            ModelShape::Linear { .. } => {
                let r = self.op(Op::Sub, "resid", gf, gr, gradient, &[out, y])?;
                let b = self.b.meta(x).shape[0].max(1) as f64;
                self.op(
                    Op::Scale {
                        c: (1.0 / b).into(),
                    },
                    "err1",
                    gf,
                    gr,
                    gradient,
                    &[r],
                )?
            }
            _ => self.op(
                Op::SoftmaxXentGrad,
                &format!("err{n}"),
                gf,
                gr,
                gradient,
                &[out, y],
            )?,
        };
        // One gradient per parameter tensor, in the order of `weights`.
        let mut grads = Vec::with_capacity(weights.len());
        for l in (0..n).rev() {
            let (w, bias) = layers[l];
            if bias.is_some() {
                // The bias gradient is the column sums of the layer's error (the mean loss's
                // `1 / B` is already in the error).
                grads.push(self.op(Op::SumRows, &format!("gradb{l}"), gf, gr, gradient, &[err])?);
            }
            grads.push(self.matmul(
                &format!("grad{l}"),
                (acts[l], true),
                (err, false),
                (gf, gr, gradient),
                gr,
            )?);
            if l > 0 {
                let gh = self.matmul(
                    &format!("gh{l}"),
                    (err, false),
                    (w, true),
                    (gf, gr, gradient),
                    rw,
                )?;
                err = self.op(
                    Op::ReluGrad,
                    &format!("err{l}"),
                    gf,
                    gr,
                    gradient,
                    &[gh, pre[l - 1]],
                )?;
            }
        }
        grads.reverse();
        Ok((out, grads))
    }
}

/// The dense layers of `model` as `(weight, bias)` pairs of the parameter tensors `params` (in
/// the order of [`param_shapes`]): an MLP has a bias in every layer, linear and logistic
/// regression none.
fn dense_layers<T: Copy>(model: &ModelShape, params: &[T]) -> Vec<(T, Option<T>)> {
    match model {
        ModelShape::Mlp { .. } => params
            .chunks(2)
            .map(|p| (p[0], p.get(1).copied()))
            .collect(),
        _ => params.iter().map(|&w| (w, None)).collect(),
    }
}

/// Whether parameter tensor `l` of `model` is a bias (the MLP's odd tensors), which starts at
/// zero; weights start at He's `N(0, 2 / fan_in)` for an MLP.
pub fn is_bias(model: &ModelShape, l: usize) -> bool {
    matches!(model, ModelShape::Mlp { .. }) && l % 2 == 1
}

/// The name [`Builder::gradients`] gives the gradient of parameter tensor `l` of `model`:
/// `grad{i}` for layer `i`'s weight, `gradb{i}` for its bias.
pub fn grad_name(model: &ModelShape, l: usize) -> String {
    match model {
        ModelShape::Mlp { .. } if is_bias(model, l) => format!("gradb{}", l / 2),
        ModelShape::Mlp { .. } => format!("grad{}", l / 2),
        _ => format!("grad{l}"),
    }
}

/// Shapes of the parameter tensors of `model` (tensor `l` is fed to a step graph as `w{l}`):
/// one weight `in x out` for linear and logistic regression; for an MLP, layer `i`'s weight
/// `in x out` (tensor `2 i`) then its bias `1 x out` (tensor `2 i + 1`), as the workload's
/// reference model lays out `dense{i}.weight`, `dense{i}.bias`.
pub fn param_shapes(model: &ModelShape) -> Vec<[usize; 2]> {
    match model {
        ModelShape::Linear { d } => vec![[*d, 1]],
        ModelShape::Logistic { d, classes, .. } => vec![[*d, *classes]],
        ModelShape::Mlp {
            d, hidden, classes, ..
        } => {
            let mut dims = vec![*d];
            dims.extend(hidden);
            dims.push(*classes);
            dims.windows(2)
                .flat_map(|w| [[w[0], w[1]], [1, w[1]]])
                .collect()
        }
        ModelShape::Gaussian { dim, .. } => vec![[1, *dim]],
    }
}

/// The model's output on `x` in `f64`: class probabilities (`N x C`) or predicted values
/// (`N x 1`); for the Gaussian toy, the parameters themselves.
pub fn predict(model: &ModelShape, params: &[Array2<f64>], x: ArrayView2<f64>) -> Array2<f64> {
    if let ModelShape::Gaussian { .. } = model {
        return params[0].clone();
    }
    let layers = dense_layers(model, &params.iter().collect::<Vec<_>>());
    let mut a = x.to_owned();
    for (l, (w, bias)) in layers.iter().enumerate() {
        a = a.dot(*w);
        if let Some(b) = bias {
            a += *b;
        }
        if l + 1 < layers.len() {
            a.mapv_inplace(|v| v.max(0.0));
        }
    }
    if let ModelShape::Linear { .. } = model {
        return a;
    }
    crate::workload::model::softmax_rows(&mut a);
    a
}

/// The training objective in `f64`: mean squared error / 2 (linear), mean cross-entropy plus
/// `l2/2 ||theta||^2` over every parameter tensor (logistic, MLP), `mean(theta^2) / 2`
/// (Gaussian toy).
pub fn loss(model: &ModelShape, params: &[Array2<f64>], x: ArrayView2<f64>, y: &Targets) -> f64 {
    let p = predict(model, params, x);
    match (model, y) {
        (
            ModelShape::Gaussian {
                mean, precision, ..
            },
            _,
        ) => crate::algo::gaussian::potential_per_coordinate(mean, precision, p.row(0)),
        (_, Targets::Values(t)) => {
            let n = t.len().max(1) as f64;
            p.column(0)
                .iter()
                .zip(t)
                .map(|(a, b)| (a - b).powi(2) / 2.0)
                .sum::<f64>()
                / n
        }
        (_, Targets::Classes(c)) => {
            let n = c.len().max(1) as f64;
            let nll = c
                .iter()
                .enumerate()
                .map(|(i, &k)| -p[[i, k]].max(f64::MIN_POSITIVE).ln())
                .sum::<f64>()
                / n;
            let l2 = match model {
                ModelShape::Logistic { l2, .. } | ModelShape::Mlp { l2, .. } => {
                    l2 / 2.0 * params.iter().map(|w| w.mapv(|v| v * v).sum()).sum::<f64>()
                }
                _ => 0.0,
            };
            nll + l2
        }
    }
}
