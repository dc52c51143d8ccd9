//! What a piece of a step's work is for: a [`Scope`] is a part of the model or of the algorithm
//! ([`Part`]: a layer, the loss, the data movement, the update) and a [`Pass`] (forward,
//! backward, update). Every node of a step graph carries one (set where the node is built: the
//! model's layers by [`Part::Layer`] in the model, the drivers' own ops as [`Part::Data`] or
//! [`Part::Update`]); the executor counts each node's actions under its scope, and the cost
//! model prices the run per scope ([`super::price_scopes`]). Written as text (`dense0`,
//! `forward`) only in reports.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which pass of a training step a piece of work belongs to.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// The forward pass: a layer's output from its inputs, and the mini-batch it reads.
    Forward,
    /// The backward pass: the loss's error, a layer's parameter gradients and input errors.
    Backward,
    /// The algorithm's update of its state: weight decay, the step, noise, rounding the new
    /// weights, full gradients and bit-centring bookkeeping.
    #[default]
    Update,
}

impl Pass {
    /// Every pass, in report order.
    pub const ALL: [Pass; 3] = [Pass::Forward, Pass::Backward, Pass::Update];

    /// The pass's name in reports: `forward`, `backward`, `update`.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::Backward => "backward",
            Pass::Update => "update",
        }
    }
}

impl fmt::Display for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The part of the model or of the algorithm a piece of work is for. Ordered as reports list
/// them: the data, the layers in model order, the loss, the update.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// The driver's data movement: the mini-batch gathered from the training set.
    Data,
    /// A layer of the model, named by the model (`{kind}{index}`, e.g. `dense0`, `relu1`).
    Layer {
        /// Its position among the model's layers (the report order).
        position: usize,
        /// Its type's name (the layer's `kind`: `dense`, `relu`, ...).
        kind: &'static str,
        /// Its number among the model's layers of this type, from 0.
        index: usize,
    },
    /// The model's loss, named by its type (`softmax_xent`, `mse`, `gaussian`).
    Loss(&'static str),
    /// The algorithm's own work outside any layer (weight decay, the update, noise, the new
    /// state's rounding, full-gradient sums): the default of every node, so no work is ever
    /// left out of the breakdown.
    #[default]
    Update,
}

impl fmt::Display for Part {
    /// The part's name in reports: `data`, `dense0`, `softmax_xent`, `update`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Data => f.write_str("data"),
            Part::Layer { kind, index, .. } => write!(f, "{kind}{index}"),
            Part::Loss(kind) => f.write_str(kind),
            Part::Update => f.write_str("update"),
        }
    }
}

/// A part and a pass: the key a step's work is counted and priced under.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    /// What the work is for.
    pub part: Part,
    /// Which pass.
    pub pass: Pass,
}

impl Scope {
    /// `part` in `pass`.
    pub fn new(part: Part, pass: Pass) -> Self {
        Scope { part, pass }
    }

    /// The driver's data movement ([`Part::Data`], forward).
    pub fn data() -> Self {
        Scope::new(Part::Data, Pass::Forward)
    }

    /// The algorithm's update ([`Part::Update`], [`Pass::Update`]): the default.
    pub fn update() -> Self {
        Scope::default()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.part, self.pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_named_and_ordered_as_reports_list_them() {
        let dense1 = Part::Layer {
            position: 2,
            kind: "dense",
            index: 1,
        };
        let relu0 = Part::Layer {
            position: 1,
            kind: "relu",
            index: 0,
        };
        assert_eq!(dense1.to_string(), "dense1");
        assert_eq!(Part::Loss("softmax_xent").to_string(), "softmax_xent");
        let mut parts = [Part::Update, dense1, Part::Loss("mse"), relu0, Part::Data];
        parts.sort();
        let names: Vec<String> = parts.iter().map(Part::to_string).collect();
        assert_eq!(names, ["data", "relu0", "dense1", "mse", "update"]);
        assert_eq!(
            Scope::new(relu0, Pass::Backward).to_string(),
            "relu0/backward"
        );
        assert_eq!(Scope::default(), Scope::update());
    }
}
