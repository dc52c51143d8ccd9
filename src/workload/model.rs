//! Model specifications (`model` section of a workload) and `f64` reference implementations of
//! their forward pass, loss and gradient.
//!
//! The low-precision computation of a model lives in the algorithms' dataflow graphs; the
//! reference implementations here are the exact baseline those graphs are tested against, and
//! what the exact least-squares optimum and the metrics are computed with.
//!
//! Every supervised model is a stack of dense layers `z = a W + b` (`W` stored `in x out`,
//! row-major) with ReLU between layers:
//!
//! - `linear`: one layer to 1 output, loss `½ (ŷ − y)²` (least squares, as HALP's `f_i`);
//! - `logistic`: one layer to `K` logits, softmax cross-entropy (multinomial logistic regression);
//! - `mlp`: hidden layers with ReLU, then `K` logits, softmax cross-entropy.
//!
//! The objective is the mean loss over the examples plus `(l2 / 2) ‖θ‖²` over *all* parameters
//! (biases included, as the LP-SGLD code's weight decay). As a Bayesian prior for `N` training
//! examples and the posterior `exp(−N · objective)` this is `θ ~ N(0, 1 / (N · l2))`.

use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::data::Targets;
use super::FieldError;
use crate::round::RandomStream;

/// Stream id of the initial weights (keyed by the run seed).
const STREAM_INIT: u64 = 0x696e_6974; // "init"

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

/// A model that cannot be built for the data it is given.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("model: {0}")]
pub struct ModelError(pub String);

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

    /// The model for `n_inputs` features and `n_classes` classes (`None`: real-valued targets).
    /// Linear regression needs real targets; logistic and MLP need classes; the Gaussian toy has
    /// no data model (use [`super::data::GaussianTarget`]).
    pub fn build(&self, n_inputs: usize, n_classes: Option<usize>) -> Result<Model, ModelError> {
        if n_inputs == 0 {
            return Err(ModelError("needs at least one input feature".into()));
        }
        let (widths, bias, l2, head) = match (self, n_classes) {
            (ModelSpec::Linear(s), None) => (vec![n_inputs, 1], s.bias, s.l2, Head::Squared),
            (ModelSpec::Logistic(s), Some(k)) => (vec![n_inputs, k], s.bias, s.l2, Head::Softmax),
            (ModelSpec::Mlp(s), Some(k)) => {
                let mut w = vec![n_inputs];
                w.extend(&s.hidden);
                w.push(k);
                (w, true, s.l2, Head::Softmax)
            }
            (ModelSpec::Linear(_), Some(_)) => {
                return Err(ModelError(
                    "linear (least squares) needs real-valued targets, not classes".into(),
                ))
            }
            (ModelSpec::Logistic(_) | ModelSpec::Mlp(_), None) => {
                return Err(ModelError(format!(
                    "{} needs class labels, not real-valued targets",
                    self.kind()
                )))
            }
            (ModelSpec::Gaussian, _) => {
                return Err(ModelError(
                    "gaussian has no data model; sample the data's GaussianTarget".into(),
                ))
            }
        };
        let mut layers = Vec::new();
        let mut layout = Vec::new();
        let mut offset = 0;
        for (i, pair) in widths.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            layout.push(ParamTensor {
                name: format!("dense{i}.weight"),
                shape: vec![fan_in, fan_out],
                offset,
            });
            let weight = offset;
            offset += fan_in * fan_out;
            let b = bias.then(|| {
                layout.push(ParamTensor {
                    name: format!("dense{i}.bias"),
                    shape: vec![fan_out],
                    offset,
                });
                offset += fan_out;
                offset - fan_out
            });
            layers.push(Dense {
                fan_in,
                fan_out,
                weight,
                bias: b,
            });
        }
        Ok(Model {
            spec: self.clone(),
            layers,
            layout,
            n_params: offset,
            l2,
            head,
        })
    }
}

/// One named parameter tensor inside the flat parameter vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamTensor {
    /// `dense{i}.weight` (`in x out`, row-major) or `dense{i}.bias` (`out`).
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Index of the first element in the flat vector.
    pub offset: usize,
}

impl ParamTensor {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Head {
    Squared,
    Softmax,
}

#[derive(Clone, Debug, PartialEq)]
struct Dense {
    fan_in: usize,
    fan_out: usize,
    weight: usize,
    bias: Option<usize>,
}

/// A model bound to its input and output sizes, with its parameters in one flat `f64` vector
/// laid out as [`Model::layout`] says.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    spec: ModelSpec,
    layers: Vec<Dense>,
    layout: Vec<ParamTensor>,
    n_params: usize,
    l2: f64,
    head: Head,
}

impl Model {
    /// The specification it was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Total number of parameters.
    pub fn n_params(&self) -> usize {
        self.n_params
    }

    /// The parameter tensors in order (layer by layer, weight then bias).
    pub fn layout(&self) -> &[ParamTensor] {
        &self.layout
    }

    /// The L2 coefficient of the objective.
    pub fn l2(&self) -> f64 {
        self.l2
    }

    /// Number of outputs: classes, or 1 for regression.
    pub fn n_outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.fan_out)
    }

    /// Initial parameters: zeros for linear and logistic regression (a convex objective needs no
    /// symmetry breaking); for an MLP, weights `~ N(0, 2 / fan_in)` (He et al. 2015, for ReLU)
    /// drawn from [`RandomStream`] `(seed, "init")` at the element's flat index, biases zero.
    pub fn init_params(&self, seed: u64) -> Array1<f64> {
        let mut p = Array1::<f64>::zeros(self.n_params);
        if let ModelSpec::Mlp(_) = self.spec {
            let rng = RandomStream::new(seed, STREAM_INIT);
            for l in &self.layers {
                let sd = (2.0 / l.fan_in as f64).sqrt();
                for k in l.weight..l.weight + l.fan_in * l.fan_out {
                    p[k] = sd * rng.normal_f64(k as u64);
                }
            }
        }
        p
    }

    fn check(&self, params: &ArrayView1<f64>, x: &ArrayView2<f64>) {
        assert_eq!(
            params.len(),
            self.n_params,
            "parameter vector length does not match the model"
        );
        assert_eq!(
            x.ncols(),
            self.layers[0].fan_in,
            "feature count does not match the model"
        );
    }

    fn weight<'a>(&self, p: &'a Array1<f64>, l: &Dense) -> ArrayView2<'a, f64> {
        p.slice(s![l.weight..l.weight + l.fan_in * l.fan_out])
            .into_shape_with_order((l.fan_in, l.fan_out))
            .expect("a contiguous slice of the layout's length")
    }

    /// The post-activation of every layer, input first, raw outputs (logits or predictions) last.
    fn forward(&self, p: &Array1<f64>, x: ArrayView2<f64>) -> Vec<Array2<f64>> {
        let mut acts = vec![x.to_owned()];
        for (i, l) in self.layers.iter().enumerate() {
            let a = acts.last().expect("the input is always there");
            let mut z = a.dot(&self.weight(p, l));
            if let Some(b) = l.bias {
                z += &p.slice(s![b..b + l.fan_out]);
            }
            if i + 1 < self.layers.len() {
                z.mapv_inplace(|v| v.max(0.0));
            }
            acts.push(z);
        }
        acts
    }

    /// Raw outputs for each example: logits (`n x K`) or predictions (`n x 1`).
    ///
    /// Panics if `params` or `x` do not have the model's sizes (a programming error).
    pub fn outputs(&self, params: ArrayView1<f64>, x: ArrayView2<f64>) -> Array2<f64> {
        self.check(&params, &x);
        let p = params.to_owned();
        self.forward(&p, x).pop().expect("at least one layer")
    }

    /// Class probabilities `softmax(logits)` (`n x K`) for a classifier; the predictions
    /// (`n x 1`) for linear regression.
    pub fn predict(&self, params: ArrayView1<f64>, x: ArrayView2<f64>) -> Array2<f64> {
        let mut out = self.outputs(params, x);
        if self.head == Head::Softmax {
            softmax_rows(&mut out);
        }
        out
    }

    /// The objective (mean loss plus `(l2/2)‖θ‖²`) without its gradient.
    pub fn loss(&self, params: ArrayView1<f64>, x: ArrayView2<f64>, y: &Targets) -> f64 {
        self.loss_and_grad(params, x, y).0
    }

    /// The objective and its gradient with respect to the flat parameters, by backpropagation:
    /// the output error is `(ŷ − y) / n` for least squares and `(softmax(z) − onehot(y)) / n` for
    /// cross-entropy; ReLU passes the error where its output is positive.
    ///
    /// Panics if the sizes do not match the model or the targets are of the wrong kind for it
    /// (a programming error: [`ModelSpec::build`] has already checked the data).
    pub fn loss_and_grad(
        &self,
        params: ArrayView1<f64>,
        x: ArrayView2<f64>,
        y: &Targets,
    ) -> (f64, Array1<f64>) {
        self.check(&params, &x);
        assert_eq!(y.len(), x.nrows(), "one label per example");
        let p = params.to_owned();
        let mut acts = self.forward(&p, x);
        let n = x.nrows().max(1) as f64;
        let mut out = acts.pop().expect("at least one layer");
        let loss = match (self.head, y) {
            (Head::Squared, Targets::Values(t)) => {
                let mut sum = 0.0;
                for (o, &t) in out.column_mut(0).iter_mut().zip(t) {
                    let r = *o - t;
                    sum += 0.5 * r * r;
                    *o = r / n;
                }
                sum / n
            }
            (Head::Softmax, Targets::Classes(c)) => {
                let mut sum = 0.0;
                for (mut row, &c) in out.rows_mut().into_iter().zip(c) {
                    let m = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                    let lse = m + row.mapv(|v| (v - m).exp()).sum().ln();
                    sum += lse - row[c];
                    row.mapv_inplace(|v| (v - lse).exp() / n);
                    row[c] -= 1.0 / n;
                }
                sum / n
            }
            _ => panic!("targets of the wrong kind for a {} model", self.spec.kind()),
        };
        let mut grad = p.mapv(|v| self.l2 * v);
        let mut delta = out;
        for (i, l) in self.layers.iter().enumerate().rev() {
            let a = &acts[i];
            let gw = a.t().dot(&delta);
            let g = grad.slice_mut(s![l.weight..l.weight + l.fan_in * l.fan_out]);
            // `gw.iter()` walks row-major, the layout's order for an `in x out` weight.
            for (g, v) in g.into_iter().zip(gw.iter()) {
                *g += v;
            }
            if let Some(b) = l.bias {
                let mut gb = grad.slice_mut(s![b..b + l.fan_out]);
                gb += &delta.sum_axis(Axis(0));
            }
            if i > 0 {
                let mut back = delta.dot(&self.weight(&p, l).t());
                back.zip_mut_with(a, |d, &act| {
                    if act <= 0.0 {
                        *d = 0.0;
                    }
                });
                delta = back;
            }
        }
        let penalty = 0.5 * self.l2 * p.dot(&p);
        (loss + penalty, grad)
    }
}

/// Replaces each row by its softmax, `exp(z − max z) / Σ exp(z − max z)`.
pub fn softmax_rows(z: &mut Array2<f64>) {
    for mut row in z.rows_mut() {
        let m = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - m).exp());
        let s = row.sum();
        row /= s;
    }
}
