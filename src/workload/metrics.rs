//! Metrics of a run, computed in `f64` from predicted probabilities or samples: accuracy,
//! negative log-likelihood, expected calibration error, the Bayesian model average over kept
//! samples, chain moments for the Gaussian toy and the exact least-squares optimum for the
//! regression optimality gap.
//!
//! Metrics over an empty set of examples are NaN (a workload with `test_fraction = 0` has no
//! test metrics).

use ndarray::{concatenate, Array1, Array2, ArrayView1, ArrayView2, Axis};

use super::linalg::{self, LinalgError};

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

/// The minimizer `w` of `(1/2n) ||X w - y||^2 + (l2/2) ||w||^2` in `f64` (linear regression,
/// `X` the features as the model reads them, a bias's constant column included), computed as
/// the least-squares solution of the stacked system `[X; sqrt(n l2) I] w = [y; 0]` by
/// Householder QR.
pub fn least_squares_optimum(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    l2: f64,
) -> Result<Array1<f64>, LinalgError> {
    let n = x.nrows();
    let p = x.ncols();
    let (mut a, mut b) = (x.to_owned(), y.to_owned());
    if l2 > 0.0 {
        let ridge = Array2::eye(p) * (n as f64 * l2).sqrt();
        a = concatenate(Axis(0), &[a.view(), ridge.view()])
            .map_err(|e| LinalgError::Shape(e.to_string()))?;
        b = concatenate(Axis(0), &[b.view(), Array1::zeros(p).view()])
            .map_err(|e| LinalgError::Shape(e.to_string()))?;
    }
    linalg::least_squares(a.view(), b.view())
}
