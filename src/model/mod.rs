//! Models as layers with a loss at the end: one implementation for the step
//! graphs the algorithms run and the `f64` oracle the metrics, the exact optimum and the tests
//! use.
//!
//! A [`Model`] is built from a workload's `model` section ([`Model::from_spec`]) or directly
//! ([`Model::mlp`], ...). A model's layers form a graph: each reads the model's input or
//! earlier layers' outputs ([`Source`]), so a residual block is a [`residual::ResidualAdd`]
//! reading its branch and its shortcut, and a value read by several layers gets the sum of
//! their errors. Every layer type is one file implementing [`Layer`] (`linear.rs`, `relu.rs`,
//! `residual.rs`, `gaussian.rs`'s [`gaussian::Parameter`]), every loss one file implementing
//! [`Loss`] (`mse.rs`, `softmax_xent.rs`, `gaussian.rs`); the model kinds a workload can name
//! are assembled in [`Model::from_spec`]. Tensors are `ArrayD` with the examples first, so a
//! layer on images is a new file, not a new design.
//!
//! The kinds:
//! - `linear`: one [`linear::Linear`] layer to 1 output, [`mse::Mse`] (least squares, HALP's
//!   `f_i`);
//! - `logistic`: one `Linear` layer to `K` logits, [`softmax_xent::SoftmaxCrossEntropy`];
//! - `mlp`: `Linear` layers with a bias each and a [`relu::Relu`] between them, then `K`
//!   logits and softmax cross-entropy;
//! - `gaussian`: a sampling target: a [`gaussian::Parameter`] layer (the output is `theta`) and
//!   the [`gaussian::GaussianPotential`].
//!
//! The objective is the mean loss over the batch plus `(l2 / 2) ||theta||^2` over *all*
//! parameters (biases included, as the LP-SGLD code's weight decay); as a Bayesian prior for `N`
//! training examples and the posterior `exp(-N objective)` this is `theta ~ N(0, 1 / (N l2))`.
//!
//! Bias of linear and logistic regression: a weight on a constant input feature `1` appended
//! to the data ([`Model::inputs_of`]), not a separate tensor: HALP's formulation (`w in R^d`),
//! which keeps the SVRG family's bit-centred iterate one code vector. The MLP's layers carry
//! their bias as a tensor of their own, added on the vector unit.

pub mod batchnorm;
pub mod builder;
pub mod centred;
mod cnn;
pub mod conv2d;
pub mod flatten;
pub mod gaussian;
#[cfg(test)]
pub(crate) mod gradcheck;
mod kinds;
pub mod layer;
pub mod linear;
pub mod mse;
mod oracle;
pub mod pool;
pub mod relu;
pub mod residual;
pub mod softmax_xent;

use std::sync::Arc;

use ndarray::{concatenate, Array2, ArrayD, Axis, IxDyn};
use petgraph::graph::NodeIndex;
use thiserror::Error;

pub use builder::{fp32, Builder};
pub use layer::{Init, Layer, Loss, ParamSpec};

use crate::cost::{Part, Pass, Scope};
use crate::graph::exec::stream_id;
use crate::graph::GraphError;
use crate::round::RandomStream;

/// A model that cannot be built, or a step graph of it that cannot.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A model that does not fit its data or has a field out of range.
    #[error("model: {0}")]
    Spec(String),
    /// A layer given an input of the wrong shape.
    #[error("model: {0}")]
    Shape(String),
    /// Data a model needs and was not given.
    #[error("data: {0}")]
    Data(String),
    /// A step graph that cannot be built (the cause is in the message).
    #[error("step graph: {0}")]
    Graph(GraphError),
    /// A layer or loss type without a bit-centred form (HALP's inner step, [`centred`]).
    #[error("`halp`: {what} type `{kind}` has no bit-centred form; types with one: {have}")]
    NotBitCentred {
        /// `layer` or `loss`.
        what: &'static str,
        /// The type's name ([`Layer::kind`], [`Loss::kind`]).
        kind: &'static str,
        /// The types that have one, for the message.
        have: &'static str,
    },
}

impl From<GraphError> for ModelError {
    fn from(e: GraphError) -> Self {
        ModelError::Graph(e)
    }
}

/// The kind of model a workload names (`model.kind`): what the algorithms dispatch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Least-squares linear regression.
    Linear,
    /// Softmax (multinomial logistic) regression.
    Logistic,
    /// A ReLU multi-layer perceptron.
    Mlp,
    /// A convolutional network on images (`model.kind = cnn`: convolutions, pooling, batch
    /// normalization, residual blocks, dense layers).
    Cnn,
    /// A Gaussian sampling target.
    Gaussian,
}

impl ModelKind {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Linear => "linear",
            ModelKind::Logistic => "logistic",
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
            ModelKind::Gaussian => "gaussian",
        }
    }
}

/// A model bound to its input and output sizes: layers, a loss and the L2 coefficient (see the
/// module docs).
#[derive(Clone, Debug)]
pub struct Model {
    kind: ModelKind,
    inputs: usize,
    /// One example's shape at the input (`[inputs]`, or `[C, H, W]` for images stored one
    /// example per row in NCHW order).
    input_shape: Vec<usize>,
    bias_feature: bool,
    layers: Vec<Arc<dyn Layer>>,
    /// Where each layer's inputs come from (layers only ever read earlier layers: the order of
    /// `layers` is a topological order).
    sources: Vec<Vec<Source>>,
    loss: Arc<dyn Loss>,
    l2: f64,
}

/// Where a layer's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The model's input (the batch of examples).
    Input,
    /// The output of an earlier layer, by its position.
    Layer(usize),
}

impl Source {
    /// Position among the values a forward pass holds: 0 the input, `k + 1` layer `k`'s output.
    fn value(self) -> usize {
        match self {
            Source::Input => 0,
            Source::Layer(k) => k + 1,
        }
    }
}

impl Model {
    /// The kind.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// Features per example the model reads (a constant feature included; 0 for a Gaussian
    /// target).
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// One example's shape at the input: `[features]`, or `[C, H, W]` for a `cnn`.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Whether the last input feature is the constant `1` of a bias ([`Model::inputs_of`]).
    pub fn bias_feature(&self) -> bool {
        self.bias_feature
    }

    /// The data's features as the model reads them: with a column of ones appended when the
    /// model's bias is a constant feature.
    pub fn inputs_of(&self, x: &Array2<f64>) -> Array2<f64> {
        if !self.bias_feature {
            return x.clone();
        }
        let ones = Array2::<f64>::ones((x.nrows(), 1));
        concatenate(Axis(1), &[x.view(), ones.view()]).expect("same number of rows")
    }

    /// Classes of a classifier (`None` for real values and a Gaussian target).
    pub fn classes(&self) -> Option<usize> {
        self.loss.classes()
    }

    /// One example's shape at the model's input and at every layer's output, input first, or
    /// why a layer does not accept its inputs.
    fn shapes(&self) -> Result<Vec<Vec<usize>>, ModelError> {
        let mut shapes = vec![self.input_shape.clone()];
        for (layer, sources) in self.layers.iter().zip(&self.sources) {
            let inputs: Vec<&[usize]> = sources
                .iter()
                .map(|s| shapes[s.value()].as_slice())
                .collect();
            let out = layer.output_shape(&inputs)?;
            shapes.push(out);
        }
        Ok(shapes)
    }

    /// Values per example of the model's input and of every layer's output, input first
    /// (the activations a batch holds per example).
    pub fn widths(&self) -> Vec<usize> {
        // Every constructor checks the shapes ([`Model::check`]).
        self.shapes()
            .unwrap_or_default()
            .iter()
            .map(|s| s.iter().product())
            .collect()
    }

    /// Checks that every layer reads earlier values only, with as many inputs as it takes, of
    /// shapes it accepts.
    fn check(self) -> Result<Self, ModelError> {
        for (k, (layer, sources)) in self.layers.iter().zip(&self.sources).enumerate() {
            if sources.len() != layer.arity() {
                return Err(ModelError::Spec(format!(
                    "layer {k} ({}) takes {} inputs, given {}",
                    layer.kind(),
                    layer.arity(),
                    sources.len()
                )));
            }
            if let Some(s) = sources
                .iter()
                .find(|s| matches!(s, Source::Layer(j) if *j >= k))
            {
                return Err(ModelError::Spec(format!(
                    "layer {k} ({}) reads {s:?}: a layer reads only earlier layers",
                    layer.kind()
                )));
            }
        }
        self.shapes()?;
        Ok(self)
    }

    /// Outputs per example: classes, 1 for regression, the coordinates of a Gaussian target.
    pub fn outputs(&self) -> usize {
        self.widths().last().copied().unwrap_or(0)
    }

    /// The L2 coefficient of the objective (the SGLD family's weight decay).
    pub fn l2(&self) -> f64 {
        self.l2
    }

    /// Whether it trains on a data set (a Gaussian target does not).
    pub fn needs_data(&self) -> bool {
        self.loss.needs_data()
    }

    /// The parameter tensors in order (layer by layer; a dense layer's weight, then its bias).
    /// Tensor `l` is fed to a step graph as `w{l}`.
    pub fn params(&self) -> Vec<ParamSpec> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// The shapes of [`Model::params`].
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.params().into_iter().map(|p| p.shape).collect()
    }

    /// Total number of parameters.
    pub fn n_params(&self) -> usize {
        self.params().iter().map(ParamSpec::len).sum()
    }

    /// The constant feeds the model's step subgraph reads (a Gaussian target's mean and
    /// precision), by name.
    pub fn feeds(&self) -> Vec<(&'static str, ArrayD<f64>)> {
        self.loss.feeds()
    }

    /// Initial parameters in `f64` ([`ParamSpec::init`]): zeros, or He's `N(0, 2 / fan_in)`
    /// drawn from [`RandomStream`] `(seed, ParamSpec::stream)` at the element's index.
    pub fn init_params(&self, seed: u64) -> Vec<ArrayD<f64>> {
        self.params()
            .iter()
            .map(|p| {
                let mut a = ArrayD::<f64>::zeros(IxDyn(&p.shape));
                if p.init == Init::Ones {
                    a.fill(1.0);
                }
                if let Init::He { fan_in } = p.init {
                    let s = RandomStream::new(seed, stream_id(&p.stream, 0, 0));
                    let sd = (2.0 / fan_in as f64).sqrt();
                    for (i, v) in a.iter_mut().enumerate() {
                        *v = sd * s.normal_f64(i as u64);
                    }
                }
                a
            })
            .collect()
    }

    /// Each layer's slice of `params`.
    fn split<'p, T>(&self, params: &'p [T]) -> Vec<&'p [T]> {
        let mut at = 0;
        self.layers
            .iter()
            .map(|l| {
                let n = l.params().len();
                at += n;
                &params[at - n..at]
            })
            .collect()
    }

    /// Each layer's name in cost reports, in model order: [`Part::Layer`] with the layer's
    /// kind and its number among the model's layers of that kind (`dense0`, `relu0`,
    /// `dense1`, ...). Named here, not by the layer types, so every layer type gets a stable,
    /// readable name.
    pub fn layer_parts(&self) -> Vec<Part> {
        let mut seen: Vec<&'static str> = Vec::new();
        self.layers
            .iter()
            .enumerate()
            .map(|(position, layer)| {
                let kind = layer.kind();
                let index = seen.iter().filter(|&&k| k == kind).count();
                seen.push(kind);
                Part::Layer {
                    position,
                    kind,
                    index,
                }
            })
            .collect()
    }

    /// The loss's name in cost reports ([`Part::Loss`]: its kind).
    pub fn loss_part(&self) -> Part {
        Part::Loss(self.loss.kind())
    }

    /// Adds the gradient subgraph of the mean loss on the batch `x` with targets `y` (`None`
    /// for a Gaussian target) at `params` (one node per parameter tensor, in the order of
    /// [`Model::params`]) to `b`: returns the model's output node and the gradient node of each
    /// parameter tensor (named [`ParamSpec::grad`]), in the gradients format. The L2 term is
    /// the algorithms' (weight decay), not part of this subgraph. Each layer's nodes are in its
    /// scope ([`Model::layer_parts`], forward or backward), the loss's error in the loss's
    /// (backward); the builder's scope is restored afterwards.
    pub fn gradients(
        &self,
        b: &mut Builder,
        x: Option<NodeIndex>,
        y: Option<NodeIndex>,
        params: &[NodeIndex],
    ) -> Result<(NodeIndex, Vec<NodeIndex>), ModelError> {
        let pass = self.gradient_pass(b, x, y, params)?;
        Ok((pass.out, pass.grads))
    }

    /// [`Model::gradients`] with every value's node and error node ([`GradientPass`]): what HALP's
    /// full pass caches for its bit-centred layers ([`centred`]).
    pub fn gradient_pass(
        &self,
        b: &mut Builder,
        x: Option<NodeIndex>,
        y: Option<NodeIndex>,
        params: &[NodeIndex],
    ) -> Result<GradientPass, ModelError> {
        let x = match x {
            Some(x) => x,
            None if !self.needs_data() => params[0],
            None => return Err(ModelError::Data("this model needs training data".into())),
        };
        let outer = b.set_scope(Scope::default());
        let built = self.build_gradients(b, x, y, params);
        b.set_scope(outer);
        built
    }

    /// [`Model::gradients`] once `x` is known, each part in its scope.
    fn build_gradients(
        &self,
        b: &mut Builder,
        x: NodeIndex,
        y: Option<NodeIndex>,
        params: &[NodeIndex],
    ) -> Result<GradientPass, ModelError> {
        let parts = self.layer_parts();
        let split = self.split(params);
        let mut values = vec![x];
        for (k, ((layer, sources), p)) in self
            .layers
            .iter()
            .zip(&self.sources)
            .zip(&split)
            .enumerate()
        {
            b.set_scope(Scope::new(parts[k], Pass::Forward));
            let inputs: Vec<NodeIndex> = sources.iter().map(|s| values[s.value()]).collect();
            let next = layer.build_forward(b, &inputs, p)?;
            values.push(next);
        }
        let out = values[values.len() - 1];
        let last = self.layers.last().expect("a model has a layer");
        b.set_scope(Scope::new(self.loss_part(), Pass::Backward));
        let err = self.loss.build_error(b, out, y, &last.error_name())?;
        // The error node of every value; a value read by several layers sums their errors on
        // the vector unit (`errsum{v}.{i}`, in the gradients format).
        let mut errs: Vec<Option<NodeIndex>> = vec![None; values.len()];
        errs[values.len() - 1] = Some(err);
        let mut sums = vec![0usize; values.len()];
        let mut grads: Vec<Vec<NodeIndex>> = vec![Vec::new(); self.layers.len()];
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let Some(err) = errs[k + 1] else {
                return Err(ModelError::Spec(format!(
                    "layer {k} ({}) does not reach the loss: its parameters would get no gradient",
                    layer.kind()
                )));
            };
            let sources = &self.sources[k];
            let inputs: Vec<NodeIndex> = sources.iter().map(|s| values[s.value()]).collect();
            let need: Vec<bool> = sources.iter().map(|s| *s != Source::Input).collect();
            // The sums of errors of a value read twice are in the scope of the layer whose
            // error completes them.
            b.set_scope(Scope::new(parts[k], Pass::Backward));
            let (dx, g) = layer.build_backward(b, &inputs, values[k + 1], err, split[k], &need)?;
            grads[k] = g;
            for (s, d) in sources.iter().zip(dx) {
                let (Some(d), Source::Layer(_)) = (d, s) else {
                    continue;
                };
                let v = s.value();
                errs[v] = Some(match errs[v] {
                    Some(sum) => {
                        let (f, r, role) = b.grad();
                        let name = format!("errsum{v}.{}", sums[v]);
                        sums[v] += 1;
                        b.op(crate::graph::Op::Add, &name, f, r, role, &[sum, d])?
                    }
                    None => d,
                });
            }
        }
        Ok(GradientPass {
            out,
            grads: grads.into_iter().flatten().collect(),
            values,
            errors: errs,
        })
    }
}

/// A gradient subgraph as [`Model::gradient_pass`] built it.
#[derive(Clone, Debug)]
pub struct GradientPass {
    /// The model's output node.
    pub out: NodeIndex,
    /// The gradient node of each parameter tensor, in the order of [`Model::params`].
    pub grads: Vec<NodeIndex>,
    /// Every value's node: the input, then each layer's output ([`Source`]'s numbering).
    pub values: Vec<NodeIndex>,
    /// Every value's error node (the loss's gradient with respect to it, summed over the
    /// layers reading it); `None` for the input.
    pub errors: Vec<Option<NodeIndex>>,
}
