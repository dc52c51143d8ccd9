//! Model specifications: the `model` section of a workload, checked field by field. The model
//! they describe (layers, loss, its step subgraphs and `f64` oracle) is built by
//! `model::Model::from_spec`, above this layer.

use serde::{Deserialize, Serialize};

use super::FieldError;

fn yes() -> bool {
    true
}

/// `model` of kind `linear`: least-squares linear regression `ŷ = xᵀw (+ b)`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearSpec {
    /// Whether there is an intercept `b` (default false: HALP's `w ∈ R^d`).
    #[serde(default)]
    pub bias: bool,
    /// L2 penalty / Gaussian prior precision per example, `>= 0`.
    #[serde(default)]
    pub l2: f64,
}

/// `model` of kind `logistic`: softmax regression over any number of classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticSpec {
    /// L2 penalty / Gaussian prior precision per example, `>= 0`.
    #[serde(default)]
    pub l2: f64,
    /// Whether each class has a bias (default true).
    #[serde(default = "yes")]
    pub bias: bool,
}

/// `model` of kind `mlp`: fully connected ReLU network with a softmax output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpSpec {
    /// Width of each hidden layer, input side first (at least one layer, each `>= 1`).
    pub hidden: Vec<usize>,
    /// L2 penalty / Gaussian prior precision per example, `>= 0`.
    #[serde(default)]
    pub l2: f64,
}

/// The `model` section of a workload, chosen by its `kind`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelSpec {
    /// Least-squares linear regression.
    Linear(LinearSpec),
    /// Softmax (multinomial logistic) regression.
    Logistic(LogisticSpec),
    /// Multi-layer perceptron.
    Mlp(MlpSpec),
    /// The sampling toy: θ itself is the parameter and the data's Gaussian target the density.
    Gaussian,
}

impl ModelSpec {
    /// The kinds a `model.kind` may name.
    pub const KINDS: &'static str = "linear, logistic, mlp, gaussian";

    /// The JSON name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSpec::Linear(_) => "linear",
            ModelSpec::Logistic(_) => "logistic",
            ModelSpec::Mlp(_) => "mlp",
            ModelSpec::Gaussian => "gaussian",
        }
    }

    /// Checks every field's range; the error names the field relative to `model`.
    pub fn validate(&self) -> Result<(), FieldError> {
        let l2 = match self {
            ModelSpec::Linear(s) => s.l2,
            ModelSpec::Logistic(s) => s.l2,
            ModelSpec::Mlp(s) => {
                if s.hidden.is_empty() {
                    return Err(FieldError::new(
                        "hidden",
                        "[]",
                        "must list at least one layer width",
                    ));
                }
                if let Some(i) = s.hidden.iter().position(|&h| h == 0) {
                    return Err(FieldError::new(
                        format!("hidden[{i}]"),
                        0,
                        "must be at least 1",
                    ));
                }
                s.l2
            }
            ModelSpec::Gaussian => 0.0,
        };
        if l2 >= 0.0 && l2.is_finite() {
            Ok(())
        } else {
            Err(FieldError::new("l2", l2, "must be finite and >= 0"))
        }
    }
}
