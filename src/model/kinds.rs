//! The model kinds a workload can name, assembled from the layer and loss files: linear and
//! logistic regression, the ReLU MLP, the Gaussian sampling target (see the `model` module docs),
//! each checked as it is built.

use std::sync::Arc;

use ndarray::{Array1, Array2};

use super::layer::{Init, Layer};
use super::{gaussian, linear, mse, relu, softmax_xent, Model, ModelError, ModelKind, Source};
use crate::workload::ModelSpec;

/// Each layer reading the one before it (the first, the model's input).
pub(super) fn chain(n: usize) -> Vec<Vec<Source>> {
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

pub(super) fn check_l2(l2: f64) -> Result<(), ModelError> {
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

pub(super) fn check_classes(k: usize) -> Result<(), ModelError> {
    if k < 2 {
        return Err(ModelError::Spec(format!("{k} classes: must be at least 2")));
    }
    Ok(())
}

/// A dense layer with `index`; weights start at zero for a convex model, at He's for an MLP.
pub(super) fn dense(
    index: usize,
    fan_in: usize,
    fan_out: usize,
    bias: bool,
    he: bool,
) -> Arc<dyn Layer> {
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
            input_shape: vec![features],
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
            input_shape: vec![features],
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
                layers.push(Arc::new(relu::Relu::after_dense(i - 1)) as Arc<dyn Layer>);
            }
            layers.push(dense(i, w[0], w[1], true, true));
        }
        Model {
            kind: ModelKind::Mlp,
            inputs: features,
            input_shape: vec![features],
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
            input_shape: vec![0],
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

    /// The model a workload's `model` section names, for data of one example's `shape` (`[n]`
    /// features, or `[C, H, W]` images) and
    /// `classes` classes (`None`: real-valued targets). Linear regression needs real targets,
    /// logistic regression and the MLP classes; a `bias` of linear or logistic regression is a
    /// constant input feature (see the module docs). A Gaussian target is built from its data
    /// ([`Model::gaussian`]).
    pub fn from_spec(
        spec: &ModelSpec,
        shape: &[usize],
        classes: Option<usize>,
    ) -> Result<Self, ModelError> {
        let features: usize = shape.iter().product();
        let (model, bias) = match (spec, classes) {
            (ModelSpec::Linear(s), None) => {
                (Self::linear(features + usize::from(s.bias), s.l2)?, s.bias)
            }
            (ModelSpec::Logistic(s), Some(k)) => (
                Self::logistic(features + usize::from(s.bias), k, s.l2)?,
                s.bias,
            ),
            (ModelSpec::Mlp(s), Some(k)) => (Self::mlp(features, &s.hidden, k, s.l2)?, false),
            (ModelSpec::Cnn(s), Some(k)) => (Self::from_cnn_spec(s, shape, k)?, false),
            (ModelSpec::Linear(_), Some(_)) => {
                return Err(ModelError::Spec(
                    "linear (least squares) needs real-valued targets, not classes".into(),
                ))
            }
            (ModelSpec::Logistic(_) | ModelSpec::Mlp(_) | ModelSpec::Cnn(_), None) => {
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
}
