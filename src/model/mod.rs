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

pub mod builder;
pub mod gaussian;
#[cfg(test)]
mod gradcheck;
pub mod layer;
pub mod linear;
pub mod mse;
pub mod relu;
pub mod residual;
pub mod softmax_xent;

use std::sync::Arc;

use ndarray::{concatenate, Array1, Array2, ArrayD, ArrayView2, Axis, Ix2, IxDyn};
use petgraph::graph::NodeIndex;
use thiserror::Error;

pub use builder::{fp32, Builder};
pub use layer::{Init, Layer, Loss, ParamSpec};

use crate::graph::exec::stream_id;
use crate::graph::GraphError;
use crate::round::RandomStream;
use crate::workload::{ModelSpec, Targets};

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

/// Each layer reading the one before it (the first, the model's input).
fn chain(n: usize) -> Vec<Vec<Source>> {
    (0..n)
        .map(|k| {
            vec![if k == 0 {
                Source::Input
            } else {
                Source::Layer(k - 1)
            }]
        })
        .collect()
}

fn check_l2(l2: f64) -> Result<(), ModelError> {
    if l2.is_finite() && l2 >= 0.0 {
        Ok(())
    } else {
        Err(ModelError::Spec(format!(
            "l2 = {l2}: must be finite and >= 0"
        )))
    }
}

fn check_features(d: usize) -> Result<(), ModelError> {
    if d < 1 {
        return Err(ModelError::Spec(format!(
            "{d} input features: must be at least 1"
        )));
    }
    Ok(())
}

fn check_classes(k: usize) -> Result<(), ModelError> {
    if k < 2 {
        return Err(ModelError::Spec(format!("{k} classes: must be at least 2")));
    }
    Ok(())
}

/// A dense layer with `index`; weights start at zero for a convex model, at He's for an MLP.
fn dense(index: usize, fan_in: usize, fan_out: usize, bias: bool, he: bool) -> Arc<dyn Layer> {
    Arc::new(linear::Linear {
        index,
        fan_in,
        fan_out,
        bias,
        init: if he { Init::He { fan_in } } else { Init::Zeros },
    })
}

impl Model {
    /// Linear regression `y = x w` on `features` inputs (no bias: see [`Model::from_spec`]).
    pub fn linear(features: usize, l2: f64) -> Result<Self, ModelError> {
        check_features(features)?;
        check_l2(l2)?;
        Ok(Model {
            kind: ModelKind::Linear,
            inputs: features,
            bias_feature: false,
            layers: vec![dense(0, features, 1, false, false)],
            sources: chain(1),
            loss: Arc::new(mse::Mse),
            l2,
        })
    }

    /// Softmax regression on `features` inputs to `classes` classes (no bias).
    pub fn logistic(features: usize, classes: usize, l2: f64) -> Result<Self, ModelError> {
        check_features(features)?;
        check_classes(classes)?;
        check_l2(l2)?;
        Ok(Model {
            kind: ModelKind::Logistic,
            inputs: features,
            bias_feature: false,
            layers: vec![dense(0, features, classes, false, false)],
            sources: chain(1),
            loss: Arc::new(softmax_xent::SoftmaxCrossEntropy { classes }),
            l2,
        })
    }

    /// A ReLU MLP `features -> hidden... -> classes` with a bias in every layer (no hidden
    /// layer: softmax regression with a bias tensor; a workload's `mlp` names at least one).
    pub fn mlp(
        features: usize,
        hidden: &[usize],
        classes: usize,
        l2: f64,
    ) -> Result<Self, ModelError> {
        check_features(features)?;
        check_classes(classes)?;
        check_l2(l2)?;
        if let Some(i) = hidden.iter().position(|&h| h < 1) {
            return Err(ModelError::Spec(format!(
                "hidden[{i}] = 0: each hidden width must be at least 1"
            )));
        }
        let mut widths = vec![features];
        widths.extend(hidden);
        widths.push(classes);
        let mut layers = Vec::new();
        for (i, w) in widths.windows(2).enumerate() {
            if i > 0 {
                layers.push(Arc::new(relu::Relu { index: i - 1 }) as Arc<dyn Layer>);
            }
            layers.push(dense(i, w[0], w[1], true, true));
        }
        Model {
            kind: ModelKind::Mlp,
            inputs: features,
            bias_feature: false,
            sources: chain(layers.len()),
            layers,
            loss: Arc::new(softmax_xent::SoftmaxCrossEntropy { classes }),
            l2,
        }
        .check()
    }

    /// The sampling target `N(mean, precision^-1)`.
    pub fn gaussian(mean: Array1<f64>, precision: Array2<f64>) -> Result<Self, ModelError> {
        let dim = mean.len();
        if dim < 1 {
            return Err(ModelError::Spec(format!(
                "{dim} coordinates: must be at least 1"
            )));
        }
        if precision.dim() != (dim, dim) {
            return Err(ModelError::Spec(format!(
                "a Gaussian target in {dim} coordinates needs a {dim} x {dim} precision, got {:?}",
                precision.dim()
            )));
        }
        Ok(Model {
            kind: ModelKind::Gaussian,
            inputs: 0,
            bias_feature: false,
            layers: vec![Arc::new(gaussian::Parameter { dim })],
            sources: chain(1),
            loss: Arc::new(gaussian::GaussianPotential { mean, precision }),
            l2: 0.0,
        })
    }

    /// `N(0, I)` in `dim` coordinates (LP-SGLD's Gaussian toy).
    pub fn standard_gaussian(dim: usize) -> Result<Self, ModelError> {
        Self::gaussian(Array1::zeros(dim), Array2::eye(dim))
    }

    /// The model a workload's `model` section names, for data with `features` inputs and
    /// `classes` classes (`None`: real-valued targets). Linear regression needs real targets,
    /// logistic regression and the MLP classes; a `bias` of linear or logistic regression is a
    /// constant input feature (see the module docs). A Gaussian target is built from its data
    /// ([`Model::gaussian`]).
    pub fn from_spec(
        spec: &ModelSpec,
        features: usize,
        classes: Option<usize>,
    ) -> Result<Self, ModelError> {
        let (model, bias) = match (spec, classes) {
            (ModelSpec::Linear(s), None) => {
                (Self::linear(features + usize::from(s.bias), s.l2)?, s.bias)
            }
            (ModelSpec::Logistic(s), Some(k)) => (
                Self::logistic(features + usize::from(s.bias), k, s.l2)?,
                s.bias,
            ),
            (ModelSpec::Mlp(s), Some(k)) => (Self::mlp(features, &s.hidden, k, s.l2)?, false),
            (ModelSpec::Linear(_), Some(_)) => {
                return Err(ModelError::Spec(
                    "linear (least squares) needs real-valued targets, not classes".into(),
                ))
            }
            (ModelSpec::Logistic(_) | ModelSpec::Mlp(_), None) => {
                return Err(ModelError::Spec(format!(
                    "{} needs class labels, not real-valued targets",
                    spec.kind()
                )))
            }
            (ModelSpec::Gaussian, _) => {
                return Err(ModelError::Spec(
                    "model.kind = gaussian samples data.kind = gaussian, not a data set".into(),
                ))
            }
        };
        Ok(Model {
            bias_feature: bias,
            ..model
        })
    }

    /// The kind.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// Features per example the model reads (a constant feature included; 0 for a Gaussian
    /// target).
    pub fn inputs(&self) -> usize {
        self.inputs
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
        let mut shapes = vec![vec![self.inputs]];
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

    /// The layers, input side first.
    pub fn layers(&self) -> &[Arc<dyn Layer>] {
        &self.layers
    }

    /// The loss.
    pub fn loss_fn(&self) -> &dyn Loss {
        self.loss.as_ref()
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

    /// The model's input and every layer's output, in `f64` (`x` is ignored by a Gaussian
    /// target); indexed by [`Source::value`].
    fn forward_all(&self, params: &[ArrayD<f64>], x: Option<ArrayView2<f64>>) -> Vec<ArrayD<f64>> {
        assert_eq!(
            params.len(),
            self.params().len(),
            "one array per parameter tensor"
        );
        let input = x.map_or_else(
            || ArrayD::zeros(IxDyn(&[1, 0])),
            |x| x.to_owned().into_dyn(),
        );
        let mut values = vec![input];
        for ((layer, sources), p) in self
            .layers
            .iter()
            .zip(&self.sources)
            .zip(self.split(params))
        {
            let p: Vec<&ArrayD<f64>> = p.iter().collect();
            let inputs: Vec<_> = sources.iter().map(|s| values[s.value()].view()).collect();
            let next = layer.forward(&p, &inputs);
            values.push(next);
        }
        values
    }

    /// What the model predicts on `x` in `f64`: class probabilities (`N x C`), values (`N x 1`),
    /// or a Gaussian target's parameters themselves.
    pub fn predict(&self, params: &[ArrayD<f64>], x: ArrayView2<f64>) -> Array2<f64> {
        let out = self.forward_all(params, Some(x)).pop().expect("an output");
        self.loss
            .predict(out)
            .into_dimensionality::<Ix2>()
            .expect("models predict matrices")
    }

    /// The objective at `params` on `data` (features and targets; `None` for a Gaussian
    /// target): the mean loss plus `(l2 / 2) ||theta||^2`.
    pub fn loss(&self, params: &[ArrayD<f64>], data: Option<(ArrayView2<f64>, &Targets)>) -> f64 {
        let no_targets = Targets::Values(Array1::zeros(0));
        let (x, y) = match data {
            Some((x, y)) => (Some(x), y),
            None => (None, &no_targets),
        };
        // The forward pass only: the drivers evaluate this after every epoch.
        let values = self.forward_all(params, x);
        let (value, _) = self.loss.value_and_grad(values[values.len() - 1].view(), y);
        value + 0.5 * self.l2 * self.penalty(params)
    }

    /// `||theta||^2` over every parameter tensor (0 without an L2 term).
    fn penalty(&self, params: &[ArrayD<f64>]) -> f64 {
        if self.l2 == 0.0 {
            return 0.0;
        }
        params
            .iter()
            .map(|p| p.iter().map(|v| v * v).sum::<f64>())
            .sum()
    }

    /// The objective and its gradient with respect to each parameter tensor, by
    /// backpropagation through the layers' `f64` oracles.
    pub fn loss_and_grad(
        &self,
        params: &[ArrayD<f64>],
        data: Option<(ArrayView2<f64>, &Targets)>,
    ) -> (f64, Vec<ArrayD<f64>>) {
        let no_targets = Targets::Values(Array1::zeros(0));
        let (x, y) = match data {
            Some((x, y)) => (Some(x), y),
            None => (None, &no_targets),
        };
        let values = self.forward_all(params, x);
        let (value, err) = self.loss.value_and_grad(values[values.len() - 1].view(), y);
        let split = self.split(params);
        // The error of every value, summed over the layers that read it.
        let mut errs: Vec<Option<ArrayD<f64>>> = vec![None; values.len()];
        errs[values.len() - 1] = Some(err);
        let mut grads: Vec<Vec<ArrayD<f64>>> = vec![Vec::new(); self.layers.len()];
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let p: Vec<&ArrayD<f64>> = split[k].iter().collect();
            let Some(err) = errs[k + 1].take() else {
                // No path from this layer to the loss: its parameters do not matter.
                grads[k] = layer
                    .params()
                    .iter()
                    .map(|s| ArrayD::zeros(IxDyn(&s.shape)))
                    .collect();
                continue;
            };
            let sources = &self.sources[k];
            let inputs: Vec<_> = sources.iter().map(|s| values[s.value()].view()).collect();
            let need: Vec<bool> = sources.iter().map(|s| *s != Source::Input).collect();
            let (dx, g) = layer.backward(&p, &inputs, values[k + 1].view(), err.view(), &need);
            grads[k] = g;
            for (s, d) in sources.iter().zip(dx) {
                if let (Some(d), Source::Layer(_)) = (d, s) {
                    let e = &mut errs[s.value()];
                    *e = Some(match e.take() {
                        Some(sum) => sum + d,
                        None => d,
                    });
                }
            }
        }
        let mut grads: Vec<ArrayD<f64>> = grads.into_iter().flatten().collect();
        if self.l2 > 0.0 {
            for (g, p) in grads.iter_mut().zip(params) {
                g.scaled_add(self.l2, p);
            }
        }
        (value + 0.5 * self.l2 * self.penalty(params), grads)
    }

    /// The training loss the drivers report after every epoch: the objective, per coordinate
    /// for a Gaussian target (`U / dim`, comparable across dimensions).
    pub fn train_loss(
        &self,
        params: &[ArrayD<f64>],
        data: Option<(ArrayView2<f64>, &Targets)>,
    ) -> f64 {
        let l = self.loss(params, data);
        match self.kind {
            ModelKind::Gaussian => l / self.outputs().max(1) as f64,
            _ => l,
        }
    }

    /// Adds the gradient subgraph of the mean loss on the batch `x` with targets `y` (`None`
    /// for a Gaussian target) at `params` (one node per parameter tensor, in the order of
    /// [`Model::params`]) to `b`: returns the model's output node and the gradient node of each
    /// parameter tensor (named [`ParamSpec::grad`]), in the gradients format. The L2 term is
    /// the algorithms' (weight decay), not part of this subgraph.
    pub fn gradients(
        &self,
        b: &mut Builder,
        x: Option<NodeIndex>,
        y: Option<NodeIndex>,
        params: &[NodeIndex],
    ) -> Result<(NodeIndex, Vec<NodeIndex>), ModelError> {
        let x = match x {
            Some(x) => x,
            None if !self.needs_data() => params[0],
            None => return Err(ModelError::Data("this model needs training data".into())),
        };
        let split = self.split(params);
        let mut values = vec![x];
        for ((layer, sources), p) in self.layers.iter().zip(&self.sources).zip(&split) {
            let inputs: Vec<NodeIndex> = sources.iter().map(|s| values[s.value()]).collect();
            let next = layer.build_forward(b, &inputs, p)?;
            values.push(next);
        }
        let out = values[values.len() - 1];
        let last = self.layers.last().expect("a model has a layer");
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
        Ok((out, grads.into_iter().flatten().collect()))
    }
}
