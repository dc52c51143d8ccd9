//! What an edge of a step graph carries: a named tensor with its shape, number format,
//! rounding unit, memory level ([`Level`]) and role ([`Role`], the key of its range health).

use serde::Serialize;

use crate::format::Format;
use crate::round::Rounding;

/// Where a tensor lives: its reads and writes are counted at this memory level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Level {
    /// The outermost level (`arch.memory[0]`, DRAM): parameters, optimizer state and data.
    Outer,
    /// The innermost level (the last of `arch.memory`): intermediates of a step.
    Inner,
}

/// What a tensor is to the algorithm: the key under which its range health is reported
/// ([`crate::graph::RangeHealth`]). Not recoverable from a name or a format (on bf16 hardware activations and
/// gradients share one), so the step-graph builders set it. Full-precision (`fp32`)
/// intermediates have the role of what they hold, and are told apart from the low-precision
/// tensors of the same role by their format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Training data: features, targets and batch indices, and their conversions to the MAC.
    Data,
    /// Parameters: the stored weights (master copies, codes, centres) and their quantized copies.
    Weights,
    /// Forward values: pre-activations (logits, margins) and the values after a nonlinearity.
    Activations,
    /// Backward values: errors, weight gradients, weight-decayed gradients, cached full gradients.
    Gradients,
    /// A weight update before it is stored: `mu = w - lr d`, QSGLD's steps.
    Updates,
    /// A MAC accumulator's outputs, before they are rounded to the matmul's output format.
    /// Never a tensor's role: the executor judges every matmul's accumulator values under it.
    Accumulator,
}

impl Role {
    /// The role's name in reports (`data`, `weights`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Role::Data => "data",
            Role::Weights => "weights",
            Role::Activations => "activations",
            Role::Gradients => "gradients",
            Role::Updates => "updates",
            Role::Accumulator => "accumulator",
        }
    }

    /// Whether flushes to zero are judged for this role: not for the accumulator, whose exact
    /// sums are not computed ([`crate::format::bound_events`]).
    pub fn judges_flush(self) -> bool {
        self != Role::Accumulator
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor on an edge: name, shape, number format, the rounding unit that produced it, the
/// memory level where it lives, and its role.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorMeta {
    /// Unique name in its graph (also the key of feeds and results).
    pub name: String,
    /// Shape (row-major; matrices are `[rows, cols]`).
    pub shape: Vec<usize>,
    /// Number format of every element.
    pub format: Format,
    /// The rounding unit of the op's single output rounding.
    pub rounding: Rounding,
    /// Memory level.
    pub level: Level,
    /// What the tensor is (the key of its range health).
    pub role: Role,
}

impl TensorMeta {
    /// A tensor description.
    pub fn new(
        name: impl Into<String>,
        shape: &[usize],
        format: Format,
        rounding: Rounding,
        level: Level,
        role: Role,
    ) -> Self {
        TensorMeta {
            name: name.into(),
            shape: shape.to_vec(),
            format,
            rounding,
            level,
            role,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
