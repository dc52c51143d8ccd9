//! Data sets of a workload: the JSON specs of the `data` section, the loaders (CSV, `.npy`),
//! the synthetic generators (scikit-learn-style regression, a Gaussian target density) and the
//! deterministic train/test split with training-set standardization.
//!
//! Every random draw comes from [`RandomStream`] keyed by the spec's seed, so a data set is a pure
//! function of its JSON (see ARCHITECTURE.md).

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;
use ndarray::{Array1, Array2, ArrayView1, Axis};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::linalg::{self, LinalgError};
use super::FieldError;
use crate::limits;
use crate::npy::{self, Dtype, NpyError};
use crate::round::RandomStream;

/// Stream id of the train/test permutation (keyed by `split_seed`).
const STREAM_SPLIT: u64 = 0x0073_706c_6974; // "split"
/// Stream id of the regression design matrix X (keyed by the regression `seed`).
const STREAM_REG_X: u64 = 0x0072_6567_5f78; // "reg_x"
/// Stream id of the regression ground-truth weights.
const STREAM_REG_W: u64 = 0x0072_6567_5f77; // "reg_w"
/// Stream id of the regression label noise.
const STREAM_REG_NOISE: u64 = 0x0072_6567_5f6e; // "reg_n"

/// A data set that could not be read or built. Messages name the file and, for text files, the
/// 1-based line.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file as resolved.
        path: PathBuf,
        /// The operating system's error (in the message, so not also a `source`).
        error: io::Error,
    },
    /// A malformed line of a CSV file.
    #[error("{}:{line}: {reason}", path.display())]
    Csv {
        /// The file as resolved.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A file whose content as a whole does not fit (wrong dtype or shape, no rows, ...).
    #[error("{}: {reason}", path.display())]
    Content {
        /// The file as resolved.
        path: PathBuf,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A `.npy` file that is malformed or too large (the error names the file).
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// The data set is fine but the split asked for cannot be made.
    #[error("data: {0}")]
    Split(String),
}

/// Whether labels are class indices or real-valued targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Integer class indices `0..n_classes`.
    #[default]
    Classification,
    /// Real-valued targets.
    Regression,
}

/// Whether the first line of a CSV file is a header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Header {
    /// A header if any field of the first non-blank line is not a number.
    #[default]
    Auto,
    /// The first non-blank line is a header.
    Present,
    /// Every line is data.
    Absent,
}

fn default_label_column() -> i64 {
    -1
}

fn default_test_fraction() -> f64 {
    0.2
}

fn default_informative() -> usize {
    10
}

/// `data` of kind `csv`: a comma-separated table, plain or gzip-compressed (detected by the gzip
/// magic bytes `1f 8b`), one example per line, the label in one column.
///
/// A header line is recognised as in scikit-learn's bundled data (`n_samples,n_features,class
/// names...`, e.g. `iris.csv`): its counts are then checked against the rows and the class names
/// give the number of classes. Any other header is skipped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSpec {
    /// The file; a relative path is looked up next to the workload file, then in its ancestors.
    pub path: PathBuf,
    /// Column of the label, 0-based; negative counts from the end (`-1`, the default, is the last).
    #[serde(default = "default_label_column")]
    pub label_column: i64,
    /// Header line handling (`auto`, `present`, `absent`).
    #[serde(default)]
    pub header: Header,
    /// Class labels or real-valued targets.
    #[serde(default)]
    pub task: Task,
    /// Number of classes; labels must be below it. Default: from a scikit-learn header, else the
    /// largest label plus one.
    #[serde(default)]
    pub n_classes: Option<usize>,
    /// Fraction of the examples held out for testing, in `[0, 1)`.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Scale every feature to zero mean and unit variance with training-set statistics.
    #[serde(default)]
    pub standardize: bool,
    /// Seed of the train/test permutation.
    #[serde(default)]
    pub split_seed: u64,
}

/// `data` of kind `npy`: a 2-D feature array and a 1-D label array in NumPy `.npy` files
/// (features float32/float64; labels any integer or float dtype).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpySpec {
    /// Features, `n_samples x n_features`.
    pub features: PathBuf,
    /// Labels, `n_samples`.
    pub labels: PathBuf,
    /// Class labels or real-valued targets.
    #[serde(default)]
    pub task: Task,
    /// Number of classes (default: the largest label plus one).
    #[serde(default)]
    pub n_classes: Option<usize>,
    /// Fraction of the examples held out for testing, in `[0, 1)`.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Scale every feature with training-set statistics.
    #[serde(default)]
    pub standardize: bool,
    /// Seed of the train/test permutation.
    #[serde(default)]
    pub split_seed: u64,
}

/// `data` of kind `regression`: a synthetic linear regression problem built the way
/// scikit-learn's `make_regression` builds it (with `shuffle=False`, one target):
///
/// - `X[i, j] ~ N(0, 1)`;
/// - ground truth `w[j] = 100 · U[0, 1)` for the first `informative` features, `0` for the rest;
/// - `y = X w + bias + noise · N(0, 1)`.
///
/// The draws come from [`RandomStream`] keyed by `seed`, so the numbers differ from NumPy's
/// but the distribution is the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressionSpec {
    /// Number of examples.
    pub samples: usize,
    /// Number of features.
    pub features: usize,
    /// Number of features with a non-zero true weight (scikit-learn's default: 10).
    #[serde(default = "default_informative")]
    pub informative: usize,
    /// Standard deviation of the Gaussian noise added to the targets.
    #[serde(default)]
    pub noise: f64,
    /// Constant added to every target.
    #[serde(default)]
    pub bias: f64,
    /// Seed of X, the weights and the noise.
    #[serde(default)]
    pub seed: u64,
    /// Fraction of the examples held out for testing, in `[0, 1)`.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Scale every feature with training-set statistics.
    #[serde(default)]
    pub standardize: bool,
    /// Seed of the train/test permutation.
    #[serde(default)]
    pub split_seed: u64,
}

/// `data` of kind `gaussian`: a target density `N(mean, covariance)` for the samplers; there are
/// no examples. The LP-SGLD paper's toy is `N(0, 1)` in one dimension (docs/algorithms.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianSpec {
    /// Dimension of the parameter vector.
    pub dimension: usize,
    /// Mean (default zeros).
    #[serde(default)]
    pub mean: Option<Vec<f64>>,
    /// Covariance, symmetric positive definite, as rows (default identity).
    #[serde(default)]
    pub covariance: Option<Vec<Vec<f64>>>,
}

/// The `data` section of a workload, chosen by its `kind`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataSpec {
    /// A CSV table.
    Csv(CsvSpec),
    /// `.npy` features and labels.
    Npy(NpySpec),
    /// Synthetic linear regression.
    Regression(RegressionSpec),
    /// A Gaussian target density.
    Gaussian(GaussianSpec),
}

/// How a table is cut into training and test sets.
struct Split {
    test_fraction: f64,
    seed: u64,
    standardize: bool,
}

fn check_split(test_fraction: f64) -> Result<(), FieldError> {
    if (0.0..1.0).contains(&test_fraction) {
        Ok(())
    } else {
        Err(FieldError::new(
            "test_fraction",
            test_fraction,
            "must be in [0, 1)",
        ))
    }
}

fn check_classes(task: Task, n_classes: Option<usize>) -> Result<(), FieldError> {
    match (task, n_classes) {
        (Task::Classification, Some(k)) if k < 2 => {
            Err(FieldError::new("n_classes", k, "must be at least 2"))
        }
        (Task::Regression, Some(k)) => Err(FieldError::new(
            "n_classes",
            k,
            "only for task = classification",
        )),
        _ => Ok(()),
    }
}

impl DataSpec {
    /// The kinds a `data.kind` may name.
    pub const KINDS: &'static str = "csv, npy, regression, gaussian";

    /// Checks every field's range; the error names the field relative to `data`.
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            DataSpec::Csv(s) => {
                check_classes(s.task, s.n_classes)?;
                check_split(s.test_fraction)
            }
            DataSpec::Npy(s) => {
                check_classes(s.task, s.n_classes)?;
                check_split(s.test_fraction)
            }
            DataSpec::Regression(s) => {
                if s.samples < 2 {
                    return Err(FieldError::new("samples", s.samples, "must be at least 2"));
                }
                if s.features < 1 {
                    return Err(FieldError::new(
                        "features",
                        s.features,
                        "must be at least 1",
                    ));
                }
                if s.informative > s.features {
                    return Err(FieldError::new(
                        "informative",
                        s.informative,
                        format!("must be 0..={} (features)", s.features),
                    ));
                }
                if !(s.noise >= 0.0 && s.noise.is_finite()) {
                    return Err(FieldError::new("noise", s.noise, "must be finite and >= 0"));
                }
                // X, its train/test copies and the algorithms' carrier copy: 4 f64 per entry.
                limits::check_array(
                    format!("a {} x {} design matrix", s.samples, s.features),
                    &[s.samples, s.features],
                    32,
                )
                .map_err(|e| {
                    // Name the larger of the two: the one to reduce.
                    let (field, v) = if s.features > s.samples {
                        ("features", s.features)
                    } else {
                        ("samples", s.samples)
                    };
                    FieldError::new(field, v, e.to_string())
                })?;
                check_split(s.test_fraction)
            }
            DataSpec::Gaussian(s) => s.target().map(|_| ()),
        }
    }

    /// The task the data set poses: `None` for a Gaussian target (nothing to predict).
    pub fn task(&self) -> Option<Task> {
        match self {
            DataSpec::Csv(s) => Some(s.task),
            DataSpec::Npy(s) => Some(s.task),
            DataSpec::Regression(_) => Some(Task::Regression),
            DataSpec::Gaussian(_) => None,
        }
    }

    /// Reads or generates the data. Relative file paths are resolved with [`resolve_path`]
    /// against `workload_file`.
    pub fn load(&self, workload_file: &Path) -> Result<Problem, DataError> {
        let (table, split) = match self {
            DataSpec::Csv(s) => (
                read_csv(&resolve_path(&s.path, workload_file), s)?,
                Split {
                    test_fraction: s.test_fraction,
                    seed: s.split_seed,
                    standardize: s.standardize,
                },
            ),
            DataSpec::Npy(s) => (
                read_npy_table(workload_file, s)?,
                Split {
                    test_fraction: s.test_fraction,
                    seed: s.split_seed,
                    standardize: s.standardize,
                },
            ),
            DataSpec::Regression(s) => (
                make_regression(s),
                Split {
                    test_fraction: s.test_fraction,
                    seed: s.split_seed,
                    standardize: s.standardize,
                },
            ),
            DataSpec::Gaussian(s) => {
                return s
                    .target()
                    .map(Problem::Sampling)
                    .map_err(|e| DataError::Split(e.to_string()))
            }
        };
        table.into_dataset(&split).map(Problem::Supervised)
    }
}

/// Resolves a data path named in a workload: an absolute path as is; a relative path is tried
/// next to the workload file, then in each ancestor directory of it (so both `data/x.csv` and
/// `workloads/data/x.csv` work from `workloads/w.json` run in the project root), then in the
/// current directory. When none exists the path as written is returned, so the error names it.
pub fn resolve_path(path: &Path, workload_file: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let dir = workload_file.parent().unwrap_or(Path::new(""));
    dir.ancestors()
        .map(|d| d.join(path))
        .chain(std::iter::once(path.to_path_buf()))
        .find(|p| p.exists())
        .unwrap_or_else(|| path.to_path_buf())
}

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

/// Labels of a set of examples.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Class indices in `0..n_classes`.
    Classes(Array1<usize>),
    /// Real-valued regression targets.
    Values(Array1<f64>),
}

impl Targets {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Values(v) => v.len(),
        }
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels of the examples `rows`, in that order (for minibatches).
    pub fn select(&self, rows: &[usize]) -> Targets {
        match self {
            Targets::Classes(c) => Targets::Classes(c.select(Axis(0), rows)),
            Targets::Values(v) => Targets::Values(v.select(Axis(0), rows)),
        }
    }
}

/// Per-feature affine map `x' = (x − mean) / scale` fitted on the training set only, as
/// scikit-learn's `StandardScaler`: `scale` is the population standard deviation (ddof = 0), or
/// 1 for a constant feature (such as the always-blank corner pixels of `digits`).
#[derive(Clone, Debug, PartialEq)]
pub struct Standardization {
    /// Training-set mean of each feature.
    pub mean: Array1<f64>,
    /// Training-set standard deviation of each feature (1 where it is 0).
    pub scale: Array1<f64>,
}

/// A supervised data set split into training and test examples.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Training features, `n_train x n_features`.
    pub x_train: Array2<f64>,
    /// Training labels.
    pub y_train: Targets,
    /// Test features, `n_test x n_features` (`n_test` may be 0).
    pub x_test: Array2<f64>,
    /// Test labels.
    pub y_test: Targets,
    /// Number of classes for classification, `None` for regression.
    pub n_classes: Option<usize>,
    /// The standardization applied to both sets, if the spec asked for it.
    pub standardization: Option<Standardization>,
}

impl Dataset {
    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.x_train.ncols()
    }

    /// The training examples `rows` (a minibatch), features and labels.
    pub fn batch(&self, rows: &[usize]) -> (Array2<f64>, Targets) {
        (
            self.x_train.select(Axis(0), rows),
            self.y_train.select(rows),
        )
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

/// What a workload's data turn into.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// Examples to learn from.
    Supervised(Dataset),
    /// A density to sample from.
    Sampling(GaussianTarget),
}

/// All examples before the split.
struct Table {
    x: Array2<f64>,
    y: Targets,
    n_classes: Option<usize>,
}

impl Table {
    /// Permutes the rows with `split.seed`, holds out the first `ceil(test_fraction · n)` (the
    /// rounding of scikit-learn's `train_test_split`) and standardizes with training statistics.
    fn into_dataset(self, split: &Split) -> Result<Dataset, DataError> {
        let n = self.x.nrows();
        let n_test = (split.test_fraction * n as f64).ceil() as usize;
        if n_test >= n {
            return Err(DataError::Split(format!(
                "test_fraction = {} of {n} examples leaves no training examples",
                split.test_fraction
            )));
        }
        let order = permutation(n, split.seed);
        let (test_rows, train_rows) = order.split_at(n_test);
        let mut x_train = self.x.select(Axis(0), train_rows);
        let mut x_test = self.x.select(Axis(0), test_rows);
        let standardization = split.standardize.then(|| {
            let s = fit_standardization(&x_train);
            for x in [&mut x_train, &mut x_test] {
                for mut row in x.rows_mut() {
                    row -= &s.mean;
                    row /= &s.scale;
                }
            }
            s
        });
        Ok(Dataset {
            x_train,
            y_train: self.y.select(train_rows),
            x_test,
            y_test: self.y.select(test_rows),
            n_classes: self.n_classes,
            standardization,
        })
    }
}

/// A uniformly random permutation of `0..n` (Fisher–Yates, from the last position down, with
/// `j = ⌊u · (i + 1)⌋` for the uniform `u` of element `i` of the split stream).
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let rng = RandomStream::new(seed, STREAM_SPLIT);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = ((rng.uniform_f64(i as u64) * (i + 1) as f64) as usize).min(i);
        order.swap(i, j);
    }
    order
}

fn fit_standardization(x: &Array2<f64>) -> Standardization {
    let n = x.nrows() as f64;
    let mean = x.sum_axis(Axis(0)) / n;
    let mut var = Array1::<f64>::zeros(x.ncols());
    for row in x.rows() {
        let d = &row - &mean;
        var += &(&d * &d);
    }
    let scale = var.mapv(|v| {
        let s = (v / n).sqrt();
        if s > 0.0 {
            s
        } else {
            1.0
        }
    });
    Standardization { mean, scale }
}

/// `make_regression` as documented on [`RegressionSpec`].
fn make_regression(s: &RegressionSpec) -> Table {
    let rx = RandomStream::new(s.seed, STREAM_REG_X);
    let rw = RandomStream::new(s.seed, STREAM_REG_W);
    let rn = RandomStream::new(s.seed, STREAM_REG_NOISE);
    let x = Array2::from_shape_fn((s.samples, s.features), |(i, j)| {
        rx.normal_f64((i * s.features + j) as u64)
    });
    let w = Array1::from_shape_fn(s.features, |j| {
        if j < s.informative {
            100.0 * rw.uniform_f64(j as u64)
        } else {
            0.0
        }
    });
    let mut y = x.dot(&w) + s.bias;
    if s.noise > 0.0 {
        for (i, v) in y.iter_mut().enumerate() {
            *v += s.noise * rn.normal_f64(i as u64);
        }
    }
    Table {
        x,
        y: Targets::Values(y),
        n_classes: None,
    }
}

/// Where the number of classes came from, for error messages.
struct ClassBound {
    n: usize,
    source: String,
}

/// Checks that `v` is a class index below the bound; the reason on failure.
fn class_index(v: f64, text: &str, bound: Option<&ClassBound>) -> Result<usize, String> {
    if !(v >= 0.0 && v.fract() == 0.0 && v < u32::MAX as f64) {
        return Err(format!(
            "label `{text}` is not a class index (a whole number >= 0)"
        ));
    }
    let c = v as usize;
    match bound {
        Some(b) if c >= b.n => Err(format!(
            "label {c} is out of range: {} classes ({}) allow 0..={}",
            b.n,
            b.source,
            b.n - 1
        )),
        _ => Ok(c),
    }
}

/// Classes from the labels seen, at least two.
fn finish_classes(
    labels: Vec<usize>,
    bound: Option<ClassBound>,
    path: &Path,
) -> Result<(Targets, Option<usize>), DataError> {
    let n = match bound {
        Some(b) => b.n,
        None => labels.iter().max().map_or(0, |m| m + 1),
    };
    if n < 2 {
        return Err(DataError::Content {
            path: path.to_path_buf(),
            reason: format!("{n} class(es) found; classification needs at least 2"),
        });
    }
    Ok((Targets::Classes(Array1::from(labels)), Some(n)))
}

/// The counts of a scikit-learn header line `n_samples,n_features,class names...`.
struct SkHeader {
    line: usize,
    samples: usize,
    features: usize,
    classes: usize,
}

fn parse_header(fields: &[&str], line: usize) -> Option<SkHeader> {
    let samples = fields.first()?.parse().ok()?;
    let features = fields.get(1)?.parse().ok()?;
    Some(SkHeader {
        line,
        samples,
        features,
        classes: fields.len().saturating_sub(2),
    })
}

/// Reads a CSV table as documented on [`CsvSpec`].
fn read_csv(path: &Path, spec: &CsvSpec) -> Result<Table, DataError> {
    let io_err = |error| DataError::Io {
        path: path.to_path_buf(),
        error,
    };
    let csv_err = |line, reason| DataError::Csv {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut raw = BufReader::new(File::open(path).map_err(io_err)?);
    let gzipped = raw.fill_buf().map_err(io_err)?.starts_with(&[0x1f, 0x8b]);
    let input: Box<dyn BufRead> = if gzipped {
        Box::new(BufReader::new(GzDecoder::new(raw)))
    } else {
        Box::new(raw)
    };
    // The `csv` crate: RFC 4180 quoting, a UTF-8 byte-order mark skipped, empty lines skipped;
    // field counts are checked here (flexible) so that the message can say against what. A
    // record's own position is where the previous one ended (before any blank lines), so a
    // record's line is taken as the reader's line after it minus one; the appended newline
    // makes that hold for a last line without one too. (A record spanning lines through a
    // quoted newline is named by its last line.)
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(io::Read::chain(input, &b"\n"[..]));
    let mut record = csv::StringRecord::new();
    let line_of_record =
        |r: &csv::Reader<_>| (r.position().line() as usize).saturating_sub(1).max(1);

    let mut header: Option<SkHeader> = None;
    let mut seen_first = false;
    // (field count, line that fixed it, label column index)
    let mut shape: Option<(usize, usize, usize)> = None;
    let mut bound: Option<ClassBound> = None;
    let mut features: Vec<f64> = Vec::new();
    let mut classes: Vec<usize> = Vec::new();
    let mut values: Vec<f64> = Vec::new();
    let mut rows = 0usize;

    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let (line, reason) = match e.kind() {
                    csv::ErrorKind::Utf8 { err, .. } => (
                        line_of_record(&reader),
                        format!("field {} is not valid UTF-8", err.field() + 1),
                    ),
                    csv::ErrorKind::Io(io) => (
                        reader.position().line() as usize,
                        format!("cannot read: {io}"),
                    ),
                    _ => (reader.position().line() as usize, e.to_string()),
                };
                return Err(csv_err(line, reason));
            }
        }
        let lineno = line_of_record(&reader);
        // A line of spaces is one empty field after trimming: blank, skipped.
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        let fields: Vec<&str> = record.iter().collect();
        if !seen_first {
            seen_first = true;
            let is_header = match spec.header {
                Header::Present => true,
                Header::Absent => false,
                Header::Auto => fields.iter().any(|f| f.parse::<f64>().is_err()),
            };
            if is_header {
                header = parse_header(&fields, lineno);
                continue;
            }
        }
        let (ncols, first, label) = match shape {
            Some(fixed) => fixed,
            None => {
                let n = match &header {
                    Some(h) => h.features + 1,
                    None => fields.len(),
                };
                if n < 2 {
                    return Err(csv_err(
                        lineno,
                        format!(
                            "rows of {n} field(s): need at least one feature and the label \
                             (comma-separated)"
                        ),
                    ));
                }
                let label = if spec.label_column < 0 {
                    n as i64 + spec.label_column
                } else {
                    spec.label_column
                };
                if label < 0 || label >= n as i64 {
                    return Err(csv_err(
                        lineno,
                        format!(
                            "label_column = {} is out of range for rows of {n} fields (allowed {}..={})",
                            spec.label_column,
                            -(n as i64),
                            n as i64 - 1
                        ),
                    ));
                }
                bound = class_bound(spec, &header)
                    .map_err(|r| csv_err(header.as_ref().map_or(lineno, |h| h.line), r))?;
                shape = Some((n, lineno, label as usize));
                (n, lineno, label as usize)
            }
        };
        if fields.len() != ncols {
            let why = match &header {
                Some(h) => format!(
                    "the header on line {} says {} features plus the label",
                    h.line, h.features
                ),
                None => format!("as on line {first}"),
            };
            return Err(csv_err(
                lineno,
                format!(
                    "expected {ncols} comma-separated fields ({why}), found {}",
                    fields.len()
                ),
            ));
        }
        for (k, f) in fields.iter().enumerate() {
            let v: f64 = match f.parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                _ => {
                    return Err(csv_err(
                        lineno,
                        format!("field {} (`{f}`) is not a finite number", k + 1),
                    ))
                }
            };
            if k != label {
                features.push(v);
            } else if spec.task == Task::Classification {
                classes.push(class_index(v, f, bound.as_ref()).map_err(|r| csv_err(lineno, r))?);
            } else {
                values.push(v);
            }
        }
        rows += 1;
    }

    let Some((ncols, _, _)) = shape else {
        return Err(DataError::Content {
            path: path.to_path_buf(),
            reason: "no data rows".into(),
        });
    };
    if let Some(h) = &header {
        if h.samples != rows {
            return Err(csv_err(
                h.line,
                format!(
                    "the header says {} samples but the file has {rows} data rows",
                    h.samples
                ),
            ));
        }
    }
    let x =
        Array2::from_shape_vec((rows, ncols - 1), features).map_err(|e| DataError::Content {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let (y, n_classes) = match spec.task {
        Task::Classification => finish_classes(classes, bound, path)?,
        Task::Regression => (Targets::Values(Array1::from(values)), None),
    };
    Ok(Table { x, y, n_classes })
}

/// The class count given by the spec and/or a scikit-learn header; they must agree.
fn class_bound(spec: &CsvSpec, header: &Option<SkHeader>) -> Result<Option<ClassBound>, String> {
    if spec.task == Task::Regression {
        return Ok(None);
    }
    let from_header = header.as_ref().filter(|h| h.classes > 0);
    match (spec.n_classes, from_header) {
        (Some(k), Some(h)) if k != h.classes => Err(format!(
            "the header names {} classes but data.n_classes = {k}",
            h.classes
        )),
        (Some(k), _) => Ok(Some(ClassBound {
            n: k,
            source: "data.n_classes".into(),
        })),
        (None, Some(h)) => Ok(Some(ClassBound {
            n: h.classes,
            source: format!("from the header on line {}", h.line),
        })),
        (None, None) => Ok(None),
    }
}

fn read_npy_table(workload_file: &Path, spec: &NpySpec) -> Result<Table, DataError> {
    let fpath = resolve_path(&spec.features, workload_file);
    let lpath = resolve_path(&spec.labels, workload_file);
    let content = |p: &Path, reason: String| DataError::Content {
        path: p.to_path_buf(),
        reason,
    };
    let features = npy::read(&fpath)?;
    let x: Array2<f64> = match (features.dtype, &features.shape[..]) {
        (Dtype::Float { .. }, &[rows, cols]) => {
            Array2::from_shape_vec((rows, cols), features.values)
                .map_err(|e| content(&fpath, e.to_string()))?
        }
        (dtype, shape) => {
            return Err(content(
                &fpath,
                format!(
                    "a {}-D {} array: expected a 2-D float32 or float64 .npy array",
                    shape.len(),
                    dtype.name()
                ),
            ))
        }
    };
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(content(
            &fpath,
            format!("element {i} (row-major) is not finite"),
        ));
    }
    let labels = npy::read(&lpath)?;
    let y: Array1<f64> = match (labels.dtype, &labels.shape[..]) {
        (Dtype::Float { .. } | Dtype::Int { .. }, &[_]) => Array1::from(labels.values),
        (dtype, shape) => {
            return Err(content(
                &lpath,
                format!(
                    "a {}-D {} array: expected a 1-D integer or float .npy array",
                    shape.len(),
                    dtype.name()
                ),
            ))
        }
    };
    if y.len() != x.nrows() {
        return Err(content(
            &lpath,
            format!(
                "{} labels for {} feature rows in {}",
                y.len(),
                x.nrows(),
                fpath.display()
            ),
        ));
    }
    let (y, n_classes) = match spec.task {
        Task::Classification => {
            let bound = spec.n_classes.map(|n| ClassBound {
                n,
                source: "data.n_classes".into(),
            });
            let labels = y
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    class_index(v, &v.to_string(), bound.as_ref())
                        .map_err(|r| content(&lpath, format!("element {i}: {r}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            finish_classes(labels, bound, &lpath)?
        }
        Task::Regression => {
            if let Some(i) = y.iter().position(|v| !v.is_finite()) {
                return Err(content(&lpath, format!("element {i} is not finite")));
            }
            (Targets::Values(y), None)
        }
    };
    Ok(Table { x, y, n_classes })
}
