//! `data` of kind `gaussian`: the target density `N(mean, covariance)` of the samplers, checked
//! (shapes, symmetry, positive definiteness) and with its precision.

use ndarray::{Array1, Array2, ArrayView1};

use super::super::linalg::{self, LinalgError};
use super::super::FieldError;
use super::GaussianSpec;
use crate::limits;

impl GaussianSpec {
    /// The target density, after checking the shapes, symmetry and positive definiteness.
    pub fn target(&self) -> Result<GaussianTarget, FieldError> {
        let d = self.dimension;
        if d < 1 {
            return Err(FieldError::new("dimension", d, "must be at least 1"));
        }
        // The dense covariance, its Cholesky factor and the precision: 3 d x d matrices.
        limits::check_array(format!("a dense {d} x {d} covariance"), &[d, d], 24)
            .map_err(|e| FieldError::new("dimension", d, e.to_string()))?;
        let mean = match &self.mean {
            None => Array1::zeros(d),
            Some(m) if m.len() == d && m.iter().all(|v| v.is_finite()) => Array1::from(m.clone()),
            Some(m) => {
                return Err(FieldError::new(
                    "mean",
                    format!("{m:?}"),
                    format!("must be {d} finite numbers (dimension)"),
                ))
            }
        };
        let covariance = match &self.covariance {
            // The identity is its own precision: no O(d^3) factorization for the default.
            None => {
                return Ok(GaussianTarget {
                    mean,
                    covariance: Array2::eye(d),
                    precision: Array2::eye(d),
                })
            }
            Some(rows) => {
                let shape_ok = rows.len() == d && rows.iter().all(|r| r.len() == d);
                if !shape_ok {
                    return Err(FieldError::new(
                        "covariance",
                        format!("{rows:?}"),
                        format!("must be {d} rows of {d} numbers (dimension)"),
                    ));
                }
                Array2::from_shape_fn((d, d), |(i, j)| rows[i][j])
            }
        };
        for i in 0..d {
            for j in 0..i {
                let (a, b) = (covariance[[i, j]], covariance[[j, i]]);
                if a != b {
                    return Err(FieldError::new(
                        format!("covariance[{i}][{j}]"),
                        a,
                        format!("must equal covariance[{j}][{i}] = {b} (symmetric)"),
                    ));
                }
            }
        }
        GaussianTarget::new(mean, covariance).map_err(|e| {
            let why = match e {
                LinalgError::NotPositiveDefinite { pivot, value } => {
                    format!(" (Cholesky pivot {pivot} is {value})")
                }
                _ => String::new(),
            };
            FieldError::new(
                "covariance",
                format!("{:?}", self.covariance.as_deref().unwrap_or_default()),
                format!("must be positive definite{why}"),
            )
        })
    }
}

/// The Gaussian target density `N(m, Σ)` of the sampling toy, with potential
/// `U(θ) = ½ (θ − m)ᵀ Σ⁻¹ (θ − m)` so that `exp(−U)` is the density up to a constant.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianTarget {
    /// Mean `m`.
    pub mean: Array1<f64>,
    /// Covariance `Σ`.
    pub covariance: Array2<f64>,
    /// Precision `Σ⁻¹` (from the Cholesky factor of `Σ`).
    pub precision: Array2<f64>,
}

impl GaussianTarget {
    /// The target with this mean and covariance; fails if `Σ` is not positive definite.
    pub fn new(mean: Array1<f64>, covariance: Array2<f64>) -> Result<Self, LinalgError> {
        if mean.len() != covariance.nrows() {
            return Err(LinalgError::Shape(format!(
                "mean of length {} with a {} x {} covariance",
                mean.len(),
                covariance.nrows(),
                covariance.ncols()
            )));
        }
        let l = linalg::cholesky(covariance.view())?;
        let precision = linalg::cholesky_inverse(l.view());
        Ok(GaussianTarget {
            mean,
            covariance,
            precision,
        })
    }

    /// Dimension of θ.
    pub fn dimension(&self) -> usize {
        self.mean.len()
    }

    /// The potential `U(θ) = ½ (θ − m)ᵀ Σ⁻¹ (θ − m)`.
    pub fn potential(&self, theta: ArrayView1<f64>) -> f64 {
        let d = &theta - &self.mean;
        0.5 * d.dot(&self.precision.dot(&d))
    }

    /// The exact gradient `∇U(θ) = Σ⁻¹ (θ − m)`; the toy's noisy gradient adds noise to it.
    pub fn grad(&self, theta: ArrayView1<f64>) -> Array1<f64> {
        self.precision.dot(&(&theta - &self.mean))
    }

    /// The marginal variances `diag(Σ)`, the targets of `sample_var`.
    pub fn variance(&self) -> Array1<f64> {
        self.covariance.diag().to_owned()
    }
}
