//! A Gaussian target `N(m, Sigma)` as the samplers see it ([`ModelShape::Gaussian`]): the
//! gradient subgraph of its potential `U = (theta - m)^T P (theta - m) / 2`, `P = Sigma^-1`,
//! the constant tensors that subgraph reads, and the potential in `f64`.
//!
//! The noisy gradient is `P (theta - m) + 0.1 xi` (LP-SGLD's toy, `gaussian/gaussian.py`, has
//! `theta + 0.1 xi` for `N(0, 1)`), built from the ops it needs so that each is counted and
//! priced: `theta - m` on the vector unit when `m != 0`; then `p * (theta - m)` on the vector unit
//! for a diagonal `P != I`, or `(theta - m)^T P` on the MAC for a full one (`P` is symmetric);
//! then the noise, rounded by `Q_G` into the gradients format. For `N(0, I)` only the noise
//! node remains: the toy's graph.

use ndarray::{Array1, Array2, ArrayD, ArrayView1};
use petgraph::graph::NodeIndex;

use crate::algo::model::{fp32, Builder};
use crate::algo::{AlgoError, ModelShape};
use crate::graph::{Op, Role};
use crate::round::Rounding;

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

/// The gradient node `P (theta - m) + 0.1 xi` of `theta` (`[1, dim]`), in the gradients
/// format with its rounding (see the module docs).
pub(crate) fn gradient(
    b: &mut Builder,
    theta: NodeIndex,
    mean: &Array1<f64>,
    precision: &Array2<f64>,
) -> Result<NodeIndex, AlgoError> {
    let (gf, gr) = (b.arch.formats.gradients, b.arch.formats.rounding.gradients);
    let dim = mean.len();
    let rne = Rounding::NearestEven;
    let mut x = theta;
    if mean.iter().any(|&v| v != 0.0) {
        let m = b.feed(Op::Input, MEAN, &[1, dim], fp32(), rne, Role::Data)?;
        x = b.f32op(Op::Sub, "centred", Role::Gradients, &[x, m])?;
    }
    match precision_kind(precision) {
        Precision::Identity => {}
        Precision::Diagonal => {
            let p = b.feed(Op::Input, PRECISION, &[1, dim], fp32(), rne, Role::Data)?;
            x = b.f32op(Op::Mul, "force", Role::Gradients, &[x, p])?;
        }
        Precision::Full => {
            let p = b.feed(Op::Input, PRECISION, &[dim, dim], fp32(), rne, Role::Data)?;
            // The constant P converts to the MAC's B format by nearest rounding.
            x = b.matmul(
                "force",
                (x, false),
                (p, false),
                (gf, gr, Role::Gradients),
                rne,
            )?;
        }
    }
    b.op(
        Op::GaussianNoise { std: 0.1.into() },
        "grad0",
        gf,
        gr,
        Role::Gradients,
        &[x],
    )
}

/// The constant feeds [`gradient`]'s subgraph reads for `model` (none for `N(0, I)` or a model
/// that is not a Gaussian target).
pub(crate) fn feeds(model: &ModelShape) -> Vec<(&'static str, ArrayD<f64>)> {
    let ModelShape::Gaussian {
        mean, precision, ..
    } = model
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if mean.iter().any(|&v| v != 0.0) {
        let row = mean.clone().insert_axis(ndarray::Axis(0));
        out.push((MEAN, as_fp32(&row)));
    }
    match precision_kind(precision) {
        Precision::Identity => {}
        Precision::Diagonal => {
            let diag = precision.diag().to_owned().insert_axis(ndarray::Axis(0));
            out.push((PRECISION, as_fp32(&diag)));
        }
        Precision::Full => out.push((PRECISION, as_fp32(precision))),
    }
    out
}

/// The potential per coordinate `U(theta) / dim` (for `N(0, I)`, `mean(theta^2) / 2`): a
/// Gaussian target's training loss.
pub fn potential_per_coordinate(
    mean: &Array1<f64>,
    precision: &Array2<f64>,
    theta: ArrayView1<f64>,
) -> f64 {
    let c = &theta - mean;
    c.dot(&precision.dot(&c)) / 2.0 / c.len().max(1) as f64
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

    #[test]
    fn potential_of_the_toy_is_half_the_mean_square() {
        let t = ndarray::arr1(&[1.0, -2.0, 3.0]);
        let u = potential_per_coordinate(&Array1::zeros(3), &Array2::eye(3), t.view());
        assert_eq!(u, (1.0 + 4.0 + 9.0) / 2.0 / 3.0);
        // N([3, 0], diag(4, 1)): U = (t0 - 3)^2 / 8 + t1^2 / 2.
        let p = Array2::from_diag(&ndarray::arr1(&[0.25, 1.0]));
        let u = potential_per_coordinate(
            &ndarray::arr1(&[3.0, 0.0]),
            &p,
            ndarray::arr1(&[5.0, 1.0]).view(),
        );
        assert_eq!(u, (4.0 / 8.0 + 0.5) / 2.0);
    }
}
