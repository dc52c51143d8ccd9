//! Architecture descriptions: one JSON file per accelerator (schema in `arch/README.md`),
//! validated into an [`Architecture`] with errors that name the file, the JSON path and what is
//! allowed, e.g. `arch/x.json: compute.array.rows = 0: must be at least 1`.

mod overrides;
mod schema;
mod validate;

pub use overrides::override_value;

pub use schema::{
    Architecture, Array, Compute, Dataflow, Formats, FullPrecision, MemoryKind, MemoryLevel, Rng,
    RngKind, StoreRounding, Table, Technology, Vector, TABLES,
};
pub(crate) use validate::{Node, Obj};

use std::path::Path;

use thiserror::Error;

/// Why an architecture file was rejected.
#[derive(Debug, Error)]
pub enum ArchError {
    /// The file could not be read.
    #[error("{file}: cannot read: {error}")]
    Io {
        /// The path given.
        file: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{file}: not valid JSON: {error}")]
    Json {
        /// The path given.
        file: String,
        /// The parser's error, with line and column.
        error: serde_json::Error,
    },
    /// A field is missing, of the wrong type, unknown, out of range or not a valid spec.
    #[error("{file}: {detail}")]
    Invalid {
        /// The path given.
        file: String,
        /// `json.path = value: what is allowed`, or `json.path: what is wrong`.
        detail: String,
    },
}

impl Architecture {
    /// Read and validate an architecture file.
    pub fn load(path: &Path) -> Result<Self, ArchError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ArchError::Io {
            file: file.clone(),
            error,
        })?;
        Self::from_json_str(&file, &text)
    }

    /// Validate an architecture given as JSON text; `file` names it in errors.
    pub fn from_json_str(file: &str, text: &str) -> Result<Self, ArchError> {
        let value: serde_json::Value =
            crate::json::parse_strict(text).map_err(|error| ArchError::Json {
                file: file.to_string(),
                error,
            })?;
        Self::from_value(file, &value)
    }
}
