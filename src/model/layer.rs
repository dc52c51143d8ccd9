//! What a layer and a loss are: the two traits every model part implements, and the
//! description of a parameter tensor.
//!
//! A layer maps a batch (first axis: examples) to a batch. It has two faces that must agree:
//! - an `f64` **oracle** ([`Layer::forward`], [`Layer::backward`]): the exact computation the
//!   metrics, the exact optimum and the gradient check use;
//! - **subgraph builders** ([`Layer::build_forward`], [`Layer::build_backward`]): the same
//!   computation as step-graph ops on the low-precision datapath, each tensor in its role's
//!   format ([`Builder`]), so that every operation is emulated, counted and priced.
//!
//! `tests` in `model::gradcheck` hold every layer type to this: the oracle's backward equals
//! central differences of its forward, and the graph on an all-`fp64` architecture equals the
//! oracle to 1e-12 relative.

use std::fmt::Debug;

use ndarray::{ArrayD, ArrayViewD};
use petgraph::graph::NodeIndex;

use super::centred::{
    not_bit_centred, CentredGrad, CentredOut, CentredParam, Centring, ValueId, ValueNames,
};
use super::{Builder, ModelError};
use crate::workload::Targets;

/// How a parameter tensor starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros (biases; linear and logistic regression, whose convex objective needs no
    /// symmetry breaking).
    Zeros,
    /// All ones (a batch normalization's scale).
    Ones,
    /// He et al. (2015), for a ReLU network: `N(0, 2 / fan_in)`.
    He {
        /// Inputs feeding each output unit.
        fan_in: usize,
    },
}

/// One parameter tensor of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Name in reports and layouts, e.g. `dense0.weight`.
    pub name: String,
    /// Shape (a bias is a row, `[1, out]`).
    pub shape: Vec<usize>,
    /// How it starts.
    pub init: Init,
    /// Whether it is a bias (an additive offset, not a multiplier): the SVRG family's
    /// re-scaling and HALP's bit centring treat the two apart.
    pub bias: bool,
    /// The name of its gradient node in the step graph (`grad{i}`, `gradb{i}`).
    pub grad: String,
    /// The random stream its initial values draw from (`init/w{i}`).
    pub stream: String,
}

impl ParamSpec {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A layer: a map from one or more batches (its inputs, e.g. a residual add's two) to a batch,
/// with its own parameters (see the module docs).
///
/// Node and parameter names are fixed by the layer (`z{i}`, `h{i}`, `grad{i}`, ...) so that the
/// random streams, keyed by tensor name, do not depend on how a graph was assembled.
pub trait Layer: Debug + Send + Sync {
    /// The layer type's name (`dense`, `relu`, ...): the model names each layer after it, with
    /// its number among the model's layers of the type (`dense0`, `relu1`: the layer's scope in
    /// cost reports, see `Model::layer_parts`).
    fn kind(&self) -> &'static str;

    /// How many inputs it takes (1 unless it joins branches).
    fn arity(&self) -> usize {
        1
    }

    /// Its parameter tensors, in the order the model lays them out.
    fn params(&self) -> Vec<ParamSpec>;

    /// The shape of one example's output for one example's input shapes, or why the inputs do
    /// not fit.
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, ModelError>;

    /// `f64` forward pass of batches `x` (examples first) with parameters `params`.
    fn forward(&self, params: &[&ArrayD<f64>], x: &[ArrayViewD<f64>]) -> ArrayD<f64>;

    /// `f64` backward pass: given the forward inputs `x`, output `y` and the loss's gradient
    /// `dy` with respect to `y`, the gradients of the parameters (in [`Layer::params`] order)
    /// and, for each input `i` with `need_dx[i]`, the gradient with respect to it.
    fn backward(
        &self,
        params: &[&ArrayD<f64>],
        x: &[ArrayViewD<f64>],
        y: ArrayViewD<f64>,
        dy: ArrayViewD<f64>,
        need_dx: &[bool],
    ) -> (Vec<Option<ArrayD<f64>>>, Vec<ArrayD<f64>>);

    /// Adds the forward pass to a step graph: the output node of input nodes `x`.
    fn build_forward(
        &self,
        b: &mut Builder,
        x: &[NodeIndex],
        params: &[NodeIndex],
    ) -> Result<NodeIndex, ModelError>;

    /// Adds the backward pass: given the forward inputs `x`, output `y` and the error `err`
    /// (the loss's gradient with respect to `y`), the gradient node of each parameter (named
    /// [`ParamSpec::grad`]) and, for each input `i` with `need_dx[i]`, its error.
    fn build_backward(
        &self,
        b: &mut Builder,
        x: &[NodeIndex],
        y: NodeIndex,
        err: NodeIndex,
        params: &[NodeIndex],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<NodeIndex>>, Vec<NodeIndex>), ModelError>;

    /// Whether the layer's forward pass depends on the batch as a whole (batch normalization):
    /// then evaluation runs [`Layer::for_evaluation`]'s form of it.
    fn uses_batch_statistics(&self) -> bool {
        false
    }

    /// The layer as evaluation runs it, given its inputs over the whole training set: a batch
    /// normalization with the training set's statistics; `None` (the default) when evaluation
    /// runs the layer as training does.
    fn for_evaluation(&self, _inputs: &[ArrayViewD<f64>]) -> Option<std::sync::Arc<dyn Layer>> {
        None
    }

    /// The name of the error node arriving at this layer's output when it is the model's last
    /// layer (the loss's gradient): `err{n}` after `n` dense layers; a layer whose output is
    /// its parameter names it after that parameter's gradient.
    fn error_name(&self) -> String;

    /// HALP's bit-centred forward pass ([`super::centred`]): the output's offset (or its value
    /// at `w`) from the inputs `x` (values of `cx`) and the parameters' codes, and the names of
    /// its output's nodes. A layer type without one refuses
    /// ([`ModelError::NotBitCentred`]).
    fn centred_forward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        params: &[CentredParam],
    ) -> Result<(CentredOut, ValueNames), ModelError> {
        let _ = (cx, x, params);
        Err(not_bit_centred("layer", self.kind()))
    }

    /// HALP's bit-centred backward pass: given the gradient `err` arriving at the output `y`,
    /// the offsets of the parameters' gradients (in [`Layer::params`] order, gradients format)
    /// and, for each input `i` with `need_dx[i]`, of its gradient.
    fn centred_backward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        y: ValueId,
        err: CentredGrad,
        params: &[CentredParam],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<CentredGrad>>, Vec<NodeIndex>), ModelError> {
        let _ = (cx, x, y, err, params, need_dx);
        Err(not_bit_centred("layer", self.kind()))
    }
}

/// The loss at the end of a model: the mean over the batch of a per-example loss of the last
/// layer's output (or, for a sampling target, a potential of the parameters themselves).
pub trait Loss: Debug + Send + Sync {
    /// The loss type's name (`mse`, `softmax_xent`, `gaussian`).
    fn kind(&self) -> &'static str;

    /// Whether the model needs a data set (a Gaussian target does not).
    fn needs_data(&self) -> bool {
        true
    }

    /// Number of classes for a classifier (the width of one-hot targets); `None` for real
    /// values.
    fn classes(&self) -> Option<usize>;

    /// `f64` mean loss of outputs `out` against `y`, and its gradient with respect to `out`.
    fn value_and_grad(&self, out: ArrayViewD<f64>, y: &Targets) -> (f64, ArrayD<f64>);

    /// What the model predicts from outputs `out` (class probabilities, values).
    fn predict(&self, out: ArrayD<f64>) -> ArrayD<f64>;

    /// Constant tensors its subgraph reads, by feed name (none by default).
    fn feeds(&self) -> Vec<(&'static str, ArrayD<f64>)> {
        Vec::new()
    }

    /// Adds the loss's gradient with respect to output node `out` (targets node `y`, `None`
    /// without data) to a step graph, named `name`.
    fn build_error(
        &self,
        b: &mut Builder,
        out: NodeIndex,
        y: Option<NodeIndex>,
        name: &str,
    ) -> Result<NodeIndex, ModelError>;

    /// HALP's bit-centred error ([`super::centred`]): the offset of the loss's gradient with
    /// respect to the model's output `out` (a value of `cx`) and the centre's gradient it is
    /// an offset of. A loss type without one refuses ([`ModelError::NotBitCentred`]).
    fn centred_error(
        &self,
        cx: &mut Centring,
        out: ValueId,
        y: Option<NodeIndex>,
    ) -> Result<CentredGrad, ModelError> {
        let _ = (cx, out, y);
        Err(not_bit_centred("loss", self.kind()))
    }
}
