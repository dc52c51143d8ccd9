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

fn one() -> usize {
    1
}

/// `model` of kind `cnn`: a convolutional network on images, its layers in order, then a dense
/// layer to the classes (added; the layers must end flat: `flatten`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnSpec {
    /// One example's shape `[C, H, W]`: optional for image data (its own shape), required for
    /// a table, whose features are read as an NCHW image (the 8x8 digits: `[1, 8, 8]`).
    #[serde(default)]
    pub input: Option<Vec<usize>>,
    /// The layers, input side first.
    pub layers: Vec<LayerSpec>,
    /// L2 penalty / Gaussian prior precision per example, `>= 0`.
    #[serde(default)]
    pub l2: f64,
}

/// A convolution's or a pool's fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    /// Output channels.
    pub filters: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride (default 1).
    #[serde(default = "one")]
    pub stride: usize,
    /// Zero padding on each side (default 0).
    #[serde(default)]
    pub padding: usize,
    /// A bias per filter (default true).
    #[serde(default = "yes")]
    pub bias: bool,
}

/// A pool's fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Square window size.
    pub kernel: usize,
    /// Stride (default: the kernel size, PyTorch's).
    #[serde(default)]
    pub stride: Option<usize>,
    /// Padding on each side (default 0; at most half the kernel).
    #[serde(default)]
    pub padding: usize,
}

/// A dense layer's fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseSpec {
    /// Outputs.
    pub out: usize,
}

/// A ResNet basic block's fields (He et al. 2016): `conv3x3(stride)-BN-ReLU-conv3x3-BN` plus
/// the shortcut (the identity, or `conv1x1(stride)-BN` when the shape changes), then a ReLU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    /// Output channels.
    pub filters: usize,
    /// The first convolution's stride (default 1).
    #[serde(default = "one")]
    pub stride: usize,
}

/// One layer of a `cnn` model, by its `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// A 2-D convolution.
    Conv(ConvSpec),
    /// A ReLU.
    Relu,
    /// Max pooling.
    Maxpool(PoolSpec),
    /// Average pooling.
    Avgpool(PoolSpec),
    /// Average over each channel's whole image (`[C, H, W] -> [C, 1, 1]`).
    GlobalAvgpool,
    /// Batch normalization per channel.
    Batchnorm,
    /// `[C, H, W] -> [C H W]`.
    Flatten,
    /// A dense layer with a bias (no activation: add a `relu`).
    Linear(DenseSpec),
    /// A ResNet basic block.
    BasicBlock(BlockSpec),
}

impl LayerSpec {
    /// The layer types a `type` may name.
    pub const TYPES: &'static str =
        "conv, relu, maxpool, avgpool, global_avgpool, batchnorm, flatten, linear, basic_block";

    /// Checks the layer's fields; the error names the field relative to the layer.
    fn validate(&self) -> Result<(), FieldError> {
        let at_least_one = |field: &str, v: usize| {
            if v == 0 {
                Err(FieldError::new(field, 0, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        match self {
            LayerSpec::Conv(c) => {
                at_least_one("filters", c.filters)?;
                at_least_one("kernel", c.kernel)?;
                at_least_one("stride", c.stride)?;
                if c.padding >= c.kernel {
                    return Err(FieldError::new(
                        "padding",
                        c.padding,
                        format!("must be below the kernel size {}", c.kernel),
                    ));
                }
            }
            LayerSpec::Maxpool(p) | LayerSpec::Avgpool(p) => {
                at_least_one("kernel", p.kernel)?;
                if let Some(s) = p.stride {
                    at_least_one("stride", s)?;
                }
                if 2 * p.padding > p.kernel {
                    return Err(FieldError::new(
                        "padding",
                        p.padding,
                        format!("must be at most half the kernel size {}", p.kernel),
                    ));
                }
            }
            LayerSpec::Linear(d) => at_least_one("out", d.out)?,
            LayerSpec::BasicBlock(b) => {
                at_least_one("filters", b.filters)?;
                at_least_one("stride", b.stride)?;
            }
            LayerSpec::Relu
            | LayerSpec::GlobalAvgpool
            | LayerSpec::Batchnorm
            | LayerSpec::Flatten => {}
        }
        Ok(())
    }
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
    /// Convolutional network.
    Cnn(CnnSpec),
    /// The sampling toy: θ itself is the parameter and the data's Gaussian target the density.
    Gaussian,
}

impl ModelSpec {
    /// The kinds a `model.kind` may name.
    pub const KINDS: &'static str = "linear, logistic, mlp, cnn, gaussian";

    /// The JSON name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSpec::Linear(_) => "linear",
            ModelSpec::Logistic(_) => "logistic",
            ModelSpec::Mlp(_) => "mlp",
            ModelSpec::Cnn(_) => "cnn",
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
            ModelSpec::Cnn(s) => {
                if s.layers.is_empty() {
                    return Err(FieldError::new(
                        "layers",
                        "[]",
                        "must list at least one layer",
                    ));
                }
                if let Some(shape) = &s.input {
                    if shape.len() != 3 || shape.contains(&0) {
                        return Err(FieldError::new(
                            "input",
                            format!("{shape:?}"),
                            "must be [C, H, W], each at least 1",
                        ));
                    }
                }
                for (i, l) in s.layers.iter().enumerate() {
                    l.validate().map_err(|e| FieldError {
                        field: format!("layers[{i}].{}", e.field),
                        ..e
                    })?;
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
