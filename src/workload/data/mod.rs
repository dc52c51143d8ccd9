//! Data sets of a workload: the JSON specs of the `data` section, the loaders (CSV, `.npy`),
//! the synthetic generators (scikit-learn-style regression, a Gaussian target density) and the
//! deterministic train/test split with training-set standardization.
//!
//! Every random draw comes from [`crate::round::RandomStream`] keyed by the spec's seed, so a data set is a pure
//! function of its JSON (see ARCHITECTURE.md).

mod augment;
mod csv;
mod gaussian;
mod images;
mod npy_table;
mod regression;
mod split;

pub use augment::{Augment, Augmentation, MAX_CROP_PADDING};
pub use gaussian::GaussianTarget;
pub use images::{ImageFormat, ImagesSpec};
use regression::make_regression;
use split::Table;

use std::io;

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::FieldError;
use crate::limits;
use crate::npy::NpyError;

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
/// The draws come from [`crate::round::RandomStream`] keyed by `seed`, so the numbers differ from NumPy's
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
    /// Labelled images (`.npy`, IDX, CIFAR-10).
    Images(ImagesSpec),
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
    pub const KINDS: &'static str = "csv, npy, images, regression, gaussian";

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
            DataSpec::Images(s) => s.validate(),
        }
    }

    /// The task the data set poses: `None` for a Gaussian target (nothing to predict).
    pub fn task(&self) -> Option<Task> {
        match self {
            DataSpec::Csv(s) => Some(s.task),
            DataSpec::Npy(s) => Some(s.task),
            DataSpec::Regression(_) => Some(Task::Regression),
            DataSpec::Gaussian(_) => None,
            DataSpec::Images(_) => Some(Task::Classification),
        }
    }

    /// Reads or generates the data. Relative file paths are resolved with [`resolve_path`]
    /// against `workload_file`.
    pub fn load(&self, workload_file: &Path) -> Result<Problem, DataError> {
        let (table, split) = match self {
            DataSpec::Csv(s) => (
                csv::read_csv(&resolve_path(&s.path, workload_file), s)?,
                Split {
                    test_fraction: s.test_fraction,
                    seed: s.split_seed,
                    standardize: s.standardize,
                },
            ),
            DataSpec::Npy(s) => (
                npy_table::read_npy_table(workload_file, s)?,
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
            DataSpec::Images(s) => {
                let (train, test) = images::read_images(s, workload_file)?;
                let split = Split {
                    test_fraction: s.test_fraction(),
                    seed: s.split_seed,
                    standardize: s.standardize,
                };
                return match test {
                    Some(test) => Ok(Problem::Supervised(train.with_test(test, &split))),
                    None => train.into_dataset(&split).map(Problem::Supervised),
                };
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
    /// The shape of one example: `[n_features]` for a table, `[C, H, W]` for an image (its
    /// row holds the channels, rows and columns in that order).
    pub shape: Vec<usize>,
}

impl Dataset {
    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.x_train.ncols()
    }

    /// `augment` bound to this data set's images: their shape, and black (a pixel `0`) as
    /// stored, per channel (after the standardization, if any); `None` unless every example is
    /// an image `[C, H, W]`.
    pub fn augmentation(&self, augment: Augment) -> Option<Augmentation> {
        let &[c, h, w] = self.shape.as_slice() else {
            return None;
        };
        let black = (0..c)
            .map(|ch| match &self.standardization {
                Some(s) => {
                    let f = ch * h * w;
                    -s.mean[f] / s.scale[f]
                }
                None => 0.0,
            })
            .collect();
        Some(Augmentation {
            augment,
            shape: [c, h, w],
            black,
        })
    }

    /// The training examples `rows` (a minibatch), features and labels.
    pub fn batch(&self, rows: &[usize]) -> (Array2<f64>, Targets) {
        (
            self.x_train.select(Axis(0), rows),
            self.y_train.select(rows),
        )
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
