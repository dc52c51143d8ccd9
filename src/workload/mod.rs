//! Workloads: what a run learns or samples. A workload JSON (`workloads/*.json`, schema in
//! `workloads/README.md`) names the data, the model, the training budget, optional pinned number
//! formats (`arch_overrides`) and optional algorithm hyperparameters (`hyper`).
//!
//! [`Workload::load`] parses and validates a file; every error names the file, the JSON path and
//! what is allowed (see ARCHITECTURE.md). [`Workload::load_data`] then reads or generates the
//! data ([`data`]), the model layer's `Model::from_spec` binds the model to it ([`model`] is the
//! spec), and [`metrics`] scores the predictions.

pub mod data;
pub mod linalg;
pub mod metrics;
pub mod model;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

pub use data::{
    Augment, Augmentation, CsvSpec, DataError, DataSpec, Dataset, GaussianSpec, GaussianTarget,
    Header, ImageFormat, ImagesSpec, NpySpec, Problem, RegressionSpec, Standardization, Targets,
    Task,
};
pub use metrics::{ModelAverage, Moments, ECE_BINS};
pub use model::{
    BlockSpec, CnnSpec, ConvSpec, DenseSpec, LayerSpec, LinearSpec, LogisticSpec, MlpSpec,
    ModelSpec, PoolSpec,
};

/// A field outside its allowed range, named relative to its section (`test_fraction`,
/// `hidden[0]`); [`Workload`] prefixes the section and the file.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{field} = {value}: {allowed}")]
pub struct FieldError {
    /// Dotted path of the field within its section.
    pub field: String,
    /// The value given, as text.
    pub value: String,
    /// What is allowed.
    pub allowed: String,
}

impl FieldError {
    /// A field error from its parts.
    pub fn new(field: impl Into<String>, value: impl Display, allowed: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// A workload file that cannot be used.
#[derive(Debug, Error)]
pub enum WorkloadError {
    /// The file could not be read.
    #[error("{}: {error}", file.display())]
    Io {
        /// The workload file.
        file: PathBuf,
        /// The operating system's error (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// Not valid JSON.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Syntax {
        /// The workload file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// Valid JSON of the wrong shape: a missing or unknown field, a value of the wrong type.
    #[error("{}: {json_path}: {message}", file.display())]
    Schema {
        /// The workload file.
        file: PathBuf,
        /// Where in the document (`data.test_fraction`, `model.hidden[1]`).
        json_path: String,
        /// What is wrong.
        message: String,
    },
    /// A value outside its allowed range.
    #[error("{}: {json_path} = {value}: {allowed}", file.display())]
    Invalid {
        /// The workload file.
        file: PathBuf,
        /// Where in the document.
        json_path: String,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// The data could not be read or built (the error names the data file and line).
    #[error(transparent)]
    Data(#[from] DataError),
}

fn one() -> usize {
    1
}

/// The `train` section: how long to train or sample, and which samples to keep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Passes over the training set (supervised workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Examples per minibatch (supervised workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Iterations of the chain (Gaussian workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Epochs (supervised) or steps (Gaussian) discarded before samples are kept.
    #[serde(default)]
    pub burn_in: usize,
    /// Keep every `thin`-th epoch's (or step's) sample after burn-in.
    #[serde(default = "one")]
    pub thin: usize,
}

/// The validated training budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Minibatch training: `epochs` passes of `ceil(n_train / batch_size)` steps; the sampling
    /// algorithms keep the parameters at the end of every `thin`-th epoch after `burn_in` epochs.
    Epochs {
        /// Passes over the training set, `>= 1`.
        epochs: usize,
        /// Examples per step, `>= 1`.
        batch_size: usize,
        /// Epochs before samples are kept, `< epochs`.
        burn_in: usize,
        /// Keep every `thin`-th epoch, `>= 1`.
        thin: usize,
    },
    /// A chain of `steps` iterations; samples after `burn_in` steps, every `thin`-th, are kept.
    Steps {
        /// Iterations, `>= 1`.
        steps: usize,
        /// Steps before samples are kept, `< steps`.
        burn_in: usize,
        /// Keep every `thin`-th step, `>= 1`.
        thin: usize,
    },
}

/// The top level of the file, with `data` and `model` kept as JSON until their `kind` is read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    name: String,
    #[serde(default)]
    description: Option<String>,
    data: Value,
    model: Value,
    train: TrainSpec,
    #[serde(default)]
    arch_overrides: BTreeMap<String, Value>,
    #[serde(default)]
    hyper: BTreeMap<String, f64>,
}

/// A parsed and validated workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workload {
    /// Short name, used in reports and file names (`[A-Za-z0-9._-]+`).
    pub name: String,
    /// One line saying what the workload is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the examples come from.
    pub data: DataSpec,
    /// What is trained or sampled.
    pub model: ModelSpec,
    /// The budget as written.
    pub train: TrainSpec,
    /// Number formats (and other architecture fields) the workload is studied in: dotted path
    /// (as `--set arch.<path>`) to JSON value, applied over the architecture's by the arch layer.
    pub arch_overrides: BTreeMap<String, Value>,
    /// Algorithm hyperparameters the workload asks for (`lr`, `temperature`, ...), name to number.
    pub hyper: BTreeMap<String, f64>,
    /// The budget, validated.
    #[serde(skip)]
    pub budget: Budget,
    /// The file it was read from; relative data paths are resolved against it.
    #[serde(skip)]
    pub file: PathBuf,
}

/// `prefix` joined with a serde_path_to_error path (`.` for the root).
fn join_path(prefix: &str, path: &str) -> String {
    match (prefix, path) {
        (p, ".") | (p, "") => p.to_string(),
        ("", q) => q.to_string(),
        (p, q) if q.starts_with('[') => format!("{p}{q}"),
        (p, q) => format!("{p}.{q}"),
    }
}

impl Workload {
    /// Reads, parses and validates a workload file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, WorkloadError> {
        let file = path.as_ref();
        let text = std::fs::read_to_string(file).map_err(|error| WorkloadError::Io {
            file: file.to_path_buf(),
            error,
        })?;
        Self::from_json_str(&text, file)
    }

    /// Parses and validates workload JSON; `file` names it in errors and anchors data paths.
    pub fn from_json_str(text: &str, file: &Path) -> Result<Self, WorkloadError> {
        let file_buf = file.to_path_buf();
        let value: Value = crate::json::parse_strict(text).map_err(|e| {
            let mut message = e.to_string();
            // serde_json appends " at line L column C"; the error puts them in front instead.
            if let Some(at) = message.rfind(" at line ") {
                message.truncate(at);
            }
            WorkloadError::Syntax {
                file: file_buf.clone(),
                line: e.line(),
                column: e.column(),
                message,
            }
        })?;
        let raw: RawWorkload = typed(file, "", value)?;
        let data = match kind_of(file, "data", &raw.data, DataSpec::KINDS)? {
            "csv" => DataSpec::Csv(typed(file, "data", without_kind(raw.data))?),
            "npy" => DataSpec::Npy(typed(file, "data", without_kind(raw.data))?),
            "regression" => DataSpec::Regression(typed(file, "data", without_kind(raw.data))?),
            "images" => DataSpec::Images(typed(file, "data", without_kind(raw.data))?),
            _ => DataSpec::Gaussian(typed(file, "data", without_kind(raw.data))?),
        };
        let model = match kind_of(file, "model", &raw.model, ModelSpec::KINDS)? {
            "linear" => ModelSpec::Linear(typed(file, "model", without_kind(raw.model))?),
            "logistic" => ModelSpec::Logistic(typed(file, "model", without_kind(raw.model))?),
            "mlp" => ModelSpec::Mlp(typed(file, "model", without_kind(raw.model))?),
            "cnn" => ModelSpec::Cnn(typed(file, "model", without_kind(raw.model))?),
            _ => {
                typed::<NoFields>(file, "model", without_kind(raw.model))?;
                ModelSpec::Gaussian
            }
        };
        let invalid = |json_path: String, value: String, allowed: String| WorkloadError::Invalid {
            file: file_buf.clone(),
            json_path,
            value,
            allowed,
        };
        let in_section = |section: &str, e: FieldError| {
            invalid(format!("{section}.{}", e.field), e.value, e.allowed)
        };
        data.validate().map_err(|e| in_section("data", e))?;
        model.validate().map_err(|e| in_section("model", e))?;
        if raw.name.is_empty()
            || !raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(invalid(
                "name".into(),
                format!("{:?}", raw.name),
                "must be non-empty letters, digits, `.`, `_` or `-`".into(),
            ));
        }
        check_pairing(&data, &model).map_err(|e| in_section("model", e))?;
        let budget = budget(&data, &raw.train).map_err(|e| in_section("train", e))?;
        for key in raw.arch_overrides.keys() {
            let ok = key.split('.').all(|seg| {
                !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if !ok {
                return Err(invalid(
                    format!("arch_overrides.{key:?}"),
                    "(key)".into(),
                    "keys are dotted paths of the architecture JSON, such as `formats.weights`"
                        .into(),
                ));
            }
        }
        if raw.hyper.keys().any(String::is_empty) {
            return Err(invalid(
                "hyper".into(),
                "\"\"".into(),
                "hyperparameter names must be non-empty".into(),
            ));
        }
        Ok(Workload {
            name: raw.name,
            description: raw.description,
            data,
            model,
            train: raw.train,
            arch_overrides: raw.arch_overrides,
            hyper: raw.hyper,
            budget,
            file: file_buf,
        })
    }

    /// Reads or generates the data set (or Gaussian target) the workload names.
    pub fn load_data(&self) -> Result<Problem, WorkloadError> {
        Ok(self.data.load(&self.file)?)
    }
}

/// The Gaussian model has no fields besides its kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

/// The `kind` of a tagged section, checked against the allowed kinds.
fn kind_of<'a>(
    file: &Path,
    section: &str,
    value: &'a Value,
    kinds: &str,
) -> Result<&'a str, WorkloadError> {
    let schema = |json_path: String, message: String| WorkloadError::Schema {
        file: file.to_path_buf(),
        json_path,
        message,
    };
    let object = value.as_object().ok_or_else(|| {
        schema(
            section.into(),
            format!("expected an object with a `kind` ({kinds})"),
        )
    })?;
    let kind = object
        .get("kind")
        .ok_or_else(|| schema(section.into(), format!("missing field `kind` ({kinds})")))?;
    match kind.as_str() {
        Some(k) if kinds.split(", ").any(|allowed| allowed == k) => Ok(k),
        _ => Err(WorkloadError::Invalid {
            file: file.to_path_buf(),
            json_path: format!("{section}.kind"),
            value: kind.to_string(),
            allowed: format!(
                "must be one of {kinds}{}",
                crate::suggest::suggestion(kind.as_str().unwrap_or(""), kinds.split(", "))
            ),
        }),
    }
}

fn without_kind(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.remove("kind");
    }
    value
}

/// Deserializes `value` as `T`, an error naming the JSON path under `prefix`.
fn typed<T: DeserializeOwned>(file: &Path, prefix: &str, value: Value) -> Result<T, WorkloadError> {
    serde_path_to_error::deserialize(value).map_err(|e| WorkloadError::Schema {
        file: file.to_path_buf(),
        json_path: join_path(prefix, &e.path().to_string()),
        message: e.into_inner().to_string(),
    })
}

/// The model must suit the data: Gaussian with Gaussian, linear with real targets, logistic and
/// MLP with classes.
fn check_pairing(data: &DataSpec, model: &ModelSpec) -> Result<(), FieldError> {
    let needs = match (model, data.task()) {
        (ModelSpec::Gaussian, None) => return Ok(()),
        (ModelSpec::Gaussian, Some(_)) => "data.kind = gaussian",
        (_, None) => {
            "a data set with labels (data.kind = gaussian is only for model.kind = gaussian)"
        }
        (ModelSpec::Linear(_), Some(Task::Regression)) => return Ok(()),
        (ModelSpec::Linear(_), Some(Task::Classification)) => {
            "real-valued targets (data.kind = regression, or task = regression)"
        }
        (_, Some(Task::Classification)) => return Ok(()),
        (_, Some(Task::Regression)) => "class labels (task = classification)",
    };
    Err(FieldError::new(
        "kind",
        model.kind(),
        format!("needs {needs}"),
    ))
}

/// The budget the `train` section gives for this data.
fn budget(data: &DataSpec, t: &TrainSpec) -> Result<Budget, FieldError> {
    if t.thin < 1 {
        return Err(FieldError::new("thin", t.thin, "must be at least 1"));
    }
    let at_least_one = |name: &str, v: Option<usize>, why: &str| match v {
        Some(v) if v >= 1 => Ok(v),
        Some(v) => Err(FieldError::new(name, v, "must be at least 1")),
        None => Err(FieldError::new(
            name,
            "(missing)",
            format!("required {why}"),
        )),
    };
    let absent = |name: &str, v: Option<usize>, why: &str| match v {
        Some(v) => Err(FieldError::new(name, v, format!("not allowed {why}"))),
        None => Ok(()),
    };
    let (length, budget) = if let DataSpec::Gaussian(_) = data {
        let why = "for data.kind = gaussian (use steps)";
        absent("epochs", t.epochs, why)?;
        absent("batch_size", t.batch_size, why)?;
        let steps = at_least_one("steps", t.steps, "for data.kind = gaussian")?;
        (
            ("steps", steps),
            Budget::Steps {
                steps,
                burn_in: t.burn_in,
                thin: t.thin,
            },
        )
    } else {
        absent(
            "steps",
            t.steps,
            "for data sets (use epochs and batch_size)",
        )?;
        let epochs = at_least_one("epochs", t.epochs, "for data sets")?;
        let batch_size = at_least_one("batch_size", t.batch_size, "for data sets")?;
        (
            ("epochs", epochs),
            Budget::Epochs {
                epochs,
                batch_size,
                burn_in: t.burn_in,
                thin: t.thin,
            },
        )
    };
    if t.burn_in >= length.1 {
        return Err(FieldError::new(
            "burn_in",
            t.burn_in,
            format!("must be below {} = {}", length.0, length.1),
        ));
    }
    Ok(budget)
}
