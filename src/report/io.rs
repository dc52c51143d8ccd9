//! Writing report files safely: every file goes through a temporary file renamed into place (a
//! failed or interrupted run never leaves half a file), and a file lpsim is about to replace must
//! be one lpsim wrote (a user's own file of the same name is never overwritten silently).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// Why a report file could not be written.
#[derive(Debug, Error)]
pub enum ReportError {
    /// A file or directory operation failed.
    #[error("{}: cannot {action}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was attempted (`create`, `write`, `read`, ...).
        action: &'static str,
        /// The OS error.
        error: std::io::Error,
    },
    /// A file of the name lpsim writes exists but was not written by lpsim.
    #[error(
        "{}: exists and was not written by lpsim; move it away or choose another output directory",
        path.display()
    )]
    NotOurs {
        /// The file left untouched.
        path: PathBuf,
    },
    /// A user-named output file exists and lpsim cannot tell that it wrote it.
    #[error(
        "{}: exists and is not a file lpsim wrote; pass --force to replace it, or choose another \
         name",
        path.display()
    )]
    Exists {
        /// The file left untouched.
        path: PathBuf,
    },
    /// An output file that is also an input of the same command.
    #[error(
        "{}: is also the input {}; writing the output there would destroy the input",
        path.display(),
        input.display()
    )]
    OverwritesInput {
        /// The output asked for.
        path: PathBuf,
        /// The input it names (as given).
        input: PathBuf,
    },
    /// A plot could not be drawn.
    #[error("{}: cannot draw the plot: {detail}", path.display())]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// The plotting library's message.
        detail: String,
    },
    /// A report could not be turned into JSON.
    #[error("{}: cannot encode as JSON: {error}", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The encoder's error.
        error: serde_json::Error,
    },
}

impl ReportError {
    /// An I/O error on `path` while doing `action`.
    pub(crate) fn io(path: &Path, action: &'static str, error: std::io::Error) -> Self {
        ReportError::Io {
            path: path.to_path_buf(),
            action,
            error,
        }
    }
}

/// Distinguishes the temporary files of concurrent writers in one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write `path` through a temporary file in the same directory renamed into place, so a failed
/// or interrupted write never leaves half a file. `write` produces the content; its error is
/// returned as is (the temporary file is removed).
pub fn write_atomically<E: From<ReportError>>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| ReportError::io(path, "create", e))?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        w.flush().map_err(|e| ReportError::io(path, "write", e))?;
        w.get_ref()
            .sync_all()
            .map_err(|e| ReportError::io(path, "write", e))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        E::from(ReportError::io(path, "write", e))
    })
}

/// Whether a user-named output file `path` (`lpsim quantize --output`, `lpsim gemm --out`)
/// may be written: it must not be the same file as any of `inputs` (compared by canonical
/// path, so `./x` and `x` or a symbolic link are caught, even with `force`), and an existing
/// file there must be one `is_ours` recognizes as lpsim's unless `force` is given
/// ([`ReportError::Exists`]).
pub fn check_output(
    path: &Path,
    inputs: &[&Path],
    force: bool,
    is_ours: impl Fn(&[u8]) -> bool,
) -> Result<(), ReportError> {
    if let Some(input) = inputs.iter().find(|i| same_file(path, i)) {
        return Err(ReportError::OverwritesInput {
            path: path.to_path_buf(),
            input: input.to_path_buf(),
        });
    }
    if force {
        return Ok(());
    }
    check_ours(path, is_ours).map_err(|e| match e {
        ReportError::NotOurs { path } => ReportError::Exists { path },
        e => e,
    })
}

/// Write a user-named output file atomically with `write` after [`check_output`].
pub fn write_output<E: From<ReportError>>(
    path: &Path,
    inputs: &[&Path],
    force: bool,
    is_ours: impl Fn(&[u8]) -> bool,
    write: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    check_output(path, inputs, force, is_ours)?;
    write_atomically(path, write)
}

/// Whether `a` and `b` name the same file: their canonical paths are equal (a path that does
/// not exist yet is its canonical parent directory plus its name).
fn same_file(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| {
        p.canonicalize().ok().or_else(|| {
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
            Some(
                parent
                    .unwrap_or(Path::new("."))
                    .canonicalize()
                    .ok()?
                    .join(p.file_name()?),
            )
        })
    };
    matches!((canonical(a), canonical(b)), (Some(x), Some(y)) if x == y)
}

/// Replace `path` with `bytes` atomically, unless a file is there that `is_ours` (given the
/// existing content) does not recognize as lpsim's own: then [`ReportError::NotOurs`].
pub(crate) fn replace_own_file(
    path: &Path,
    bytes: &[u8],
    is_ours: impl Fn(&[u8]) -> bool,
) -> Result<(), ReportError> {
    check_ours(path, is_ours)?;
    write_atomically(path, |w| {
        w.write_all(bytes)
            .map_err(|e| ReportError::io(path, "write", e))
    })
}

/// Remove `path` if it exists and is lpsim's own (a plot a previous run drew and this one does
/// not); leave anything else alone.
pub(crate) fn remove_own_file(
    path: &Path,
    is_ours: impl Fn(&[u8]) -> bool,
) -> Result<(), ReportError> {
    match std::fs::read(path) {
        Ok(old) if is_ours(&old) => {
            std::fs::remove_file(path).map_err(|e| ReportError::io(path, "remove", e))
        }
        _ => Ok(()),
    }
}

/// Ok when `path` does not exist or holds a file `is_ours` recognizes.
fn check_ours(path: &Path, is_ours: impl Fn(&[u8]) -> bool) -> Result<(), ReportError> {
    match std::fs::read(path) {
        Ok(old) if is_ours(&old) => Ok(()),
        Ok(_) => Err(ReportError::NotOurs {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ReportError::io(path, "read", e)),
    }
}

/// Create `dir` and its parents if needed.
pub(crate) fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, "create the directory", e))
}

/// The first line of every Markdown file and a comment in every SVG lpsim writes: how lpsim
/// recognizes its own files before replacing them.
pub(crate) const MARKER: &str = "<!-- generated by lpsim; replaced on the next run -->";

/// Whether `bytes` (an existing Markdown or SVG file) carries lpsim's [`MARKER`].
pub(crate) fn has_marker(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    String::from_utf8_lossy(head).contains(MARKER)
}
