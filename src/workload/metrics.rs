//! Metrics of a run, computed in `f64` from predicted probabilities or samples: accuracy,
//! negative log-likelihood, expected calibration error, the Bayesian model average over kept
//! samples, chain moments for the Gaussian toy and the exact least-squares optimum for the
//! regression optimality gap.
//!
//! Metrics over an empty set of examples are NaN (a workload with `test_fraction = 0` has no
//! test metrics).

use ndarray::{concatenate, Array1, Array2, ArrayView1, ArrayView2, Axis};
use thiserror::Error;

use super::linalg::{self, LinalgError};
use super::model::{Model, ModelSpec};

/// Number of equal-width confidence bins of the expected calibration error (Guo et al. 2017).
pub const ECE_BINS: usize = 15;

/// Probabilities below this are clamped in the NLL so a confident mistake costs
/// `−ln(f64::MIN_POSITIVE) ≈ 708` rather than infinity.
const MIN_PROB: f64 = f64::MIN_POSITIVE;

/// The predicted class of a row: the index of its largest probability (the first on ties).
fn argmax(row: ArrayView1<f64>) -> (usize, f64) {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, &p) in row.iter().enumerate() {
        if p > best.1 {
            best = (i, p);
        }
    }
    best
}

/// Fraction of examples whose most probable class is the label.
pub fn accuracy(probs: ArrayView2<f64>, labels: ArrayView1<usize>) -> f64 {
    let hits = probs
        .rows()
        .into_iter()
        .zip(labels)
        .filter(|(row, &y)| argmax(*row).0 == y)
        .count();
    hits as f64 / labels.len() as f64
}

/// Mean negative log-likelihood `−(1/n) Σ ln p_i[y_i]` (natural log, nats per example), each
/// probability clamped below at `f64::MIN_POSITIVE`.
pub fn nll(probs: ArrayView2<f64>, labels: ArrayView1<usize>) -> f64 {
    let sum: f64 = probs
        .rows()
        .into_iter()
        .zip(labels)
        .map(|(row, &y)| -row[y].max(MIN_PROB).ln())
        .sum();
    sum / labels.len() as f64
}

/// Expected calibration error with `bins` equal-width confidence bins (Guo, Pleiss, Sun,
/// Weinberger, "On Calibration of Modern Neural Networks", ICML 2017, eq. 3):
/// `ECE = Σ_m (|B_m| / n) · |acc(B_m) − conf(B_m)|`, where the confidence of an example is its
/// largest probability, its prediction the argmax, and bin `m` holds confidences in
/// `(m/bins, (m+1)/bins]` (as in the paper's code; a confidence of exactly 0 goes to bin 0).
pub fn ece(probs: ArrayView2<f64>, labels: ArrayView1<usize>, bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut count = vec![0usize; bins];
    let mut correct = vec![0usize; bins];
    let mut conf_sum = vec![0.0f64; bins];
    for (row, &y) in probs.rows().into_iter().zip(labels) {
        let (pred, conf) = argmax(row);
        let edge = |m: usize| m as f64 / bins as f64;
        let mut m = ((conf * bins as f64).ceil() as usize)
            .saturating_sub(1)
            .min(bins - 1);
        while m > 0 && conf <= edge(m) {
            m -= 1;
        }
        while m + 1 < bins && conf > edge(m + 1) {
            m += 1;
        }
        count[m] += 1;
        conf_sum[m] += conf;
        correct[m] += usize::from(pred == y);
    }
    let n = labels.len() as f64;
    (0..bins)
        .filter(|&m| count[m] > 0)
        .map(|m| {
            let c = count[m] as f64;
            (c / n) * (correct[m] as f64 / c - conf_sum[m] / c).abs()
        })
        .sum()
}

/// The Bayesian model average `p̄ = (1/S) Σ_s p(y | x, θ_s)` of the predicted probabilities of
/// the samples `θ_s` kept after burn-in, accumulated one sample at a time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelAverage {
    sum: Option<Array2<f64>>,
    count: usize,
}

impl ModelAverage {
    /// An empty average.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample's probabilities (`n x K`, the same shape every time).
    ///
    /// Panics if the shape differs from the first sample's (a programming error).
    pub fn add(&mut self, probs: ArrayView2<f64>) {
        match &mut self.sum {
            Some(s) => {
                assert_eq!(
                    s.dim(),
                    probs.dim(),
                    "every sample predicts the same examples"
                );
                *s += &probs;
            }
            None => self.sum = Some(probs.to_owned()),
        }
        self.count += 1;
    }

    /// Number of samples added.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The average probabilities, `None` before the first sample.
    pub fn mean(&self) -> Option<Array2<f64>> {
        self.sum.as_ref().map(|s| s / self.count as f64)
    }
}

/// Running mean and variance of a chain's samples, per coordinate (Welford 1962), for the
/// Gaussian toy's `sample_mean` and `sample_var`. The variance is the population variance
/// (divide by the count, NumPy's default `ddof = 0`).
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    count: usize,
    mean: Array1<f64>,
    m2: Array1<f64>,
}

impl Moments {
    /// No samples yet, in `dimension` coordinates.
    pub fn new(dimension: usize) -> Self {
        Moments {
            count: 0,
            mean: Array1::zeros(dimension),
            m2: Array1::zeros(dimension),
        }
    }

    /// Adds one sample.
    pub fn push(&mut self, theta: ArrayView1<f64>) {
        self.count += 1;
        let n = self.count as f64;
        for ((m, s), &x) in self.mean.iter_mut().zip(self.m2.iter_mut()).zip(theta) {
            let d = x - *m;
            *m += d / n;
            *s += d * (x - *m);
        }
    }

    /// Number of samples.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Sample mean per coordinate (NaN with no samples).
    pub fn mean(&self) -> Array1<f64> {
        if self.count == 0 {
            return self.mean.mapv(|_| f64::NAN);
        }
        self.mean.clone()
    }

    /// Population variance per coordinate (NaN with no samples).
    pub fn variance(&self) -> Array1<f64> {
        self.m2.mapv(|s| s / self.count as f64)
    }
}

/// Why the least-squares optimum could not be computed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum OptimumError {
    /// The model is not linear regression.
    #[error("the least-squares optimum needs a linear model, not {0}")]
    NotLinear(&'static str),
    /// The factorization failed (the cause is in the message, so not also a `source`).
    #[error("least-squares optimum: {0}")]
    Linalg(LinalgError),
}

impl From<LinalgError> for OptimumError {
    fn from(e: LinalgError) -> Self {
        OptimumError::Linalg(e)
    }
}

/// The exact minimizer of a linear model's objective and its value, in `f64`.
#[derive(Clone, Debug, PartialEq)]
pub struct LeastSquaresOptimum {
    /// Optimal flat parameters, in the model's layout (weights, then the bias if any).
    pub params: Array1<f64>,
    /// The objective at the optimum.
    pub loss: f64,
}

impl LeastSquaresOptimum {
    /// The optimality gap `loss − loss*` that the HALP experiments plot.
    pub fn gap(&self, loss: f64) -> f64 {
        loss - self.loss
    }
}

/// The minimizer of `(1/2n) ‖X w + b − y‖² + (l2/2) ‖θ‖²` for a linear model, computed as the
/// least-squares solution of the stacked system `[A; √(n·l2) I] θ = [y; 0]` (with `A = [X, 1]`
/// when the model has a bias) by Householder QR, then its objective evaluated with
/// [`Model::loss`].
pub fn least_squares_optimum(
    model: &Model,
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
) -> Result<LeastSquaresOptimum, OptimumError> {
    let bias = match model.spec() {
        ModelSpec::Linear(s) => s.bias,
        other => return Err(OptimumError::NotLinear(other.kind())),
    };
    let n = x.nrows();
    let mut a = if bias {
        concatenate(Axis(1), &[x, Array2::ones((n, 1)).view()])
            .map_err(|e| OptimumError::Linalg(LinalgError::Shape(e.to_string())))?
    } else {
        x.to_owned()
    };
    let mut b = y.to_owned();
    let p = a.ncols();
    if model.l2() > 0.0 {
        let ridge = Array2::eye(p) * (n as f64 * model.l2()).sqrt();
        a = concatenate(Axis(0), &[a.view(), ridge.view()])
            .map_err(|e| OptimumError::Linalg(LinalgError::Shape(e.to_string())))?;
        b = concatenate(Axis(0), &[b.view(), Array1::zeros(p).view()])
            .map_err(|e| OptimumError::Linalg(LinalgError::Shape(e.to_string())))?;
    }
    let params = linalg::least_squares(a.view(), b.view())?;
    let loss = model.loss(
        params.view(),
        x,
        &super::data::Targets::Values(y.to_owned()),
    );
    Ok(LeastSquaresOptimum { params, loss })
}
