//! The step-graph builder the layers and the algorithms add ops with: the formats and rounding
//! units of one datapath at hand, by tensor role.
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

use petgraph::graph::NodeIndex;

use super::ModelError;
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
pub struct Builder<'a> {
    /// The graph under construction.
    pub b: GraphBuilder,
    /// The architecture whose formats the roles take.
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
    ) -> Result<NodeIndex, ModelError> {
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
            Op::Image(o) => {
                let shapes: Vec<Vec<usize>> = inputs.iter().map(|&i| self.shape(i)).collect();
                let shapes: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
                o.output_shape(&shapes)
                    .map_err(|e| ModelError::Shape(format!("`{name}`: {e}")))?
            }
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
    ) -> Result<NodeIndex, ModelError> {
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
    ) -> Result<NodeIndex, ModelError> {
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
    ) -> Result<NodeIndex, ModelError> {
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
    ) -> Result<NodeIndex, ModelError> {
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

    /// The format batch normalization computes and stores in: the architecture's
    /// `formats.batchnorm` on the low-precision datapath (default `full_precision.format`), the
    /// full-precision format on the full-precision unit.
    pub fn batchnorm_format(&self) -> Format {
        match self.b.datapath() {
            Datapath::LowPrecision => self.arch.formats.batchnorm.unwrap_or(self.full()),
            Datapath::FullPrecision => self.full(),
        }
    }

    /// The activations' format, rounding and role (forward values).
    pub fn act(&self) -> (Format, Rounding, Role) {
        let (f, r) = self.roles.activations;
        (f, r, Role::Activations)
    }

    /// The rounding unit of the stored weights when they enter the MAC (a conversion of a
    /// weight tensor to the MAC's B format).
    pub fn weight_rounding(&self) -> Rounding {
        self.roles.weight_rounding
    }

    /// The gradients' format, rounding and role (backward values, weight gradients).
    pub fn grad(&self) -> (Format, Rounding, Role) {
        let (f, r) = self.roles.gradients;
        (f, r, Role::Gradients)
    }
}
