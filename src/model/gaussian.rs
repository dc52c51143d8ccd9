//! The Gaussian potential: a target `N(m, Sigma)` for the samplers, `U(theta) = (theta - m)^T
//! P (theta - m) / 2` with the precision `P = Sigma^-1`, as a [`Loss`] of the model's only
//! layer, a [`Parameter`] (the model's output is `theta` itself); plus the constant tensors
//! its subgraph reads.
//!
//! The noisy gradient is `P (theta - m) + 0.1 xi` (LP-SGLD's toy, `gaussian/gaussian.py`, has
//! `theta + 0.1 xi` for `N(0, 1)`), built from the ops it needs so that each is counted and
//! priced: `theta - m` on the vector unit when `m != 0`; then `p * (theta - m)` on the vector unit
//! for a diagonal `P != I`, or `(theta - m)^T P` on the MAC for a full one (`P` is symmetric);
//! then the noise, rounded by `Q_G` into the gradients format. For `N(0, I)` only the noise
//! node remains: the toy's graph. The `f64` oracle is the exact `U` and `P (theta - m)`.

use ndarray::{Array1, Array2, ArrayD, ArrayViewD, Axis, Ix2};
use petgraph::graph::NodeIndex;

use super::layer::{Init, Layer, Loss, ParamSpec};
use super::{fp32, Builder, ModelError};
use crate::graph::{Op, Role};
use crate::round::Rounding;
use crate::workload::Targets;

/// The feed holding the target's mean, `[1, dim]`.
pub const MEAN: &str = "target_mean";
/// The feed holding the target's precision: its diagonal `[1, dim]`, or the whole `[dim, dim]`.
pub const PRECISION: &str = "target_precision";

/// How the precision enters the gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Precision {
    /// `P = I`: nothing to multiply.
    Identity,
    /// Diagonal: an elementwise product.
    Diagonal,
    /// Anything else: a matrix product.
    Full,
}

fn precision_kind(p: &Array2<f64>) -> Precision {
    let off_diagonal_zero = p.indexed_iter().all(|((i, j), &v)| i == j || v == 0.0);
    if !off_diagonal_zero {
        Precision::Full
    } else if p.diag().iter().all(|&v| v == 1.0) {
        Precision::Identity
    } else {
        Precision::Diagonal
    }
}

/// `f64` values rounded to `fp32`, the format the constant feeds are declared in.
fn as_fp32(a: &Array2<f64>) -> ArrayD<f64> {
    a.mapv(|v| f64::from(v as f32)).into_dyn()
}

/// The layer whose output is its parameter `theta` (`[1, dim]`), whatever its input: the
/// "model" of a sampling target. Its parameter's gradient is the error arriving at its output.
#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    /// Coordinates.
    pub dim: usize,
}

impl Layer for Parameter {
    fn kind(&self) -> &'static str {
        "parameter"
    }

    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec {
            name: "theta".into(),
            shape: vec![1, self.dim],
            init: Init::Zeros,
            bias: false,
            grad: "grad0".into(),
            stream: "init/w0".into(),
        }]
    }

    fn output_shape(&self, _inputs: &[&[usize]]) -> Result<Vec<usize>, ModelError> {
        Ok(vec![self.dim])
    }

    fn forward(&self, params: &[&ArrayD<f64>], _x: &[ArrayViewD<f64>]) -> ArrayD<f64> {
        params[0].clone()
    }

    fn backward(
        &self,
        _params: &[&ArrayD<f64>],
        x: &[ArrayViewD<f64>],
        _y: ArrayViewD<f64>,
        dy: ArrayViewD<f64>,
        need_dx: &[bool],
    ) -> (Vec<Option<ArrayD<f64>>>, Vec<ArrayD<f64>>) {
        // The output does not depend on the input.
        let dx = need_dx[0].then(|| ArrayD::zeros(x[0].raw_dim()));
        (vec![dx], vec![dy.to_owned()])
    }

    fn build_forward(
        &self,
        _b: &mut Builder,
        _x: &[NodeIndex],
        params: &[NodeIndex],
    ) -> Result<NodeIndex, ModelError> {
        Ok(params[0])
    }

    fn build_backward(
        &self,
        _b: &mut Builder,
        _x: &[NodeIndex],
        _y: NodeIndex,
        err: NodeIndex,
        _params: &[NodeIndex],
        _need_dx: &[bool],
    ) -> Result<(Vec<Option<NodeIndex>>, Vec<NodeIndex>), ModelError> {
        Ok((vec![None], vec![err]))
    }

    fn error_name(&self) -> String {
        "grad0".into()
    }
}

/// The potential of `N(mean, precision^-1)` (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianPotential {
    /// The target's mean (`dim`).
    pub mean: Array1<f64>,
    /// The target's precision `Sigma^-1` (`dim x dim`, symmetric positive definite).
    pub precision: Array2<f64>,
}

impl Loss for GaussianPotential {
    fn kind(&self) -> &'static str {
        "gaussian"
    }

    fn needs_data(&self) -> bool {
        false
    }

    fn classes(&self) -> Option<usize> {
        None
    }

    /// `U(theta)` and `P (theta - m)` (the noise-free gradient).
    fn value_and_grad(&self, out: ArrayViewD<f64>, _y: &Targets) -> (f64, ArrayD<f64>) {
        let theta = out
            .into_dimensionality::<Ix2>()
            .expect("theta is a row [1, dim]");
        let c = &theta.row(0) - &self.mean;
        let force = self.precision.dot(&c);
        let u = c.dot(&force) / 2.0;
        (u, force.insert_axis(Axis(0)).into_dyn())
    }

    fn predict(&self, out: ArrayD<f64>) -> ArrayD<f64> {
        out
    }

    /// The constant feeds its subgraph reads (none for `N(0, I)`).
    fn feeds(&self) -> Vec<(&'static str, ArrayD<f64>)> {
        let (mean, precision) = (&self.mean, &self.precision);
        let mut out = Vec::new();
        if mean.iter().any(|&v| v != 0.0) {
            let row = mean.clone().insert_axis(Axis(0));
            out.push((MEAN, as_fp32(&row)));
        }
        match precision_kind(precision) {
            Precision::Identity => {}
            Precision::Diagonal => {
                let diag = precision.diag().to_owned().insert_axis(Axis(0));
                out.push((PRECISION, as_fp32(&diag)));
            }
            Precision::Full => out.push((PRECISION, as_fp32(precision))),
        }
        out
    }

    fn build_error(
        &self,
        b: &mut Builder,
        theta: NodeIndex,
        _y: Option<NodeIndex>,
        name: &str,
    ) -> Result<NodeIndex, ModelError> {
        let (gf, gr, gradients) = b.grad();
        let dim = self.mean.len();
        let rne = Rounding::NearestEven;
        let mut x = theta;
        if self.mean.iter().any(|&v| v != 0.0) {
            let m = b.feed(Op::Input, MEAN, &[1, dim], fp32(), rne, Role::Data)?;
            x = b.f32op(Op::Sub, "centred", gradients, &[x, m])?;
        }
        match precision_kind(&self.precision) {
            Precision::Identity => {}
            Precision::Diagonal => {
                let p = b.feed(Op::Input, PRECISION, &[1, dim], fp32(), rne, Role::Data)?;
                x = b.f32op(Op::Mul, "force", gradients, &[x, p])?;
            }
            Precision::Full => {
                let p = b.feed(Op::Input, PRECISION, &[dim, dim], fp32(), rne, Role::Data)?;
                // The constant P converts to the MAC's B format by nearest rounding.
                x = b.matmul("force", (x, false), (p, false), (gf, gr, gradients), rne)?;
            }
        }
        b.op(
            Op::GaussianNoise { std: 0.1.into() },
            name,
            gf,
            gr,
            gradients,
            &[x],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_precision_picks_the_cheapest_product() {
        assert_eq!(precision_kind(&Array2::eye(3)), Precision::Identity);
        let d = Array2::from_diag(&ndarray::arr1(&[0.25, 1.0]));
        assert_eq!(precision_kind(&d), Precision::Diagonal);
        let f = ndarray::arr2(&[[1.0, 0.5], [0.5, 1.0]]);
        assert_eq!(precision_kind(&f), Precision::Full);
    }

    fn potential(mean: &[f64], precision: Array2<f64>, theta: &[f64]) -> (f64, Vec<f64>) {
        let g = GaussianPotential {
            mean: Array1::from(mean.to_vec()),
            precision,
        };
        let t = Array2::from_shape_vec((1, theta.len()), theta.to_vec()).unwrap();
        let (u, grad) = g.value_and_grad(t.into_dyn().view(), &Targets::Values(Array1::zeros(0)));
        (u, grad.iter().copied().collect())
    }

    #[test]
    fn potential_of_the_toy_is_half_the_square() {
        let (u, g) = potential(&[0.0; 3], Array2::eye(3), &[1.0, -2.0, 3.0]);
        assert_eq!(u, (1.0 + 4.0 + 9.0) / 2.0);
        assert_eq!(g, [1.0, -2.0, 3.0]);
        // N([3, 0], diag(4, 1)): U = (t0 - 3)^2 / 8 + t1^2 / 2.
        let p = Array2::from_diag(&ndarray::arr1(&[0.25, 1.0]));
        let (u, g) = potential(&[3.0, 0.0], p, &[5.0, 1.0]);
        assert_eq!(u, 4.0 / 8.0 + 0.5);
        assert_eq!(g, [0.5, 1.0]);
    }
}
