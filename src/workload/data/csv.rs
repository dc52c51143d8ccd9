//! The CSV reader of `data` kind `csv` (the `csv` crate: quoting, a byte-order mark; plain or
//! gzip), with scikit-learn's header line recognised and checked.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flate2::bufread::GzDecoder;
use ndarray::{Array1, Array2};

use super::{
    class_index, finish_classes, ClassBound, CsvSpec, DataError, Header, Table, Targets, Task,
};

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

/// A file as last read: its path, the spec it was read with and its bytes.
#[derive(PartialEq)]
struct Read {
    path: PathBuf,
    spec: CsvSpec,
    bytes: Vec<u8>,
}

/// The tables read most recently in this process: a sweep runs many workloads on one data set,
/// and parsing the digits (2 ms) was an eighth of each of the quickstart's small runs. A file
/// whose bytes are those of a kept one (compared whole, so an edited file is always parsed
/// again) is not parsed again; files of more than [`RECENT_MAX_BYTES`] are not kept.
static RECENT: Mutex<Vec<(Read, Table)>> = Mutex::new(Vec::new());
/// Tables kept in [`RECENT`].
const RECENT_MAX: usize = 4;
/// The largest file kept in [`RECENT`] (its table is larger still).
const RECENT_MAX_BYTES: u64 = 16 << 20;

/// Reads a CSV table as documented on [`CsvSpec`] (a table this process parsed recently from
/// the same bytes is copied from [`RECENT`] instead).
pub(super) fn read_csv(path: &Path, spec: &CsvSpec) -> Result<Table, DataError> {
    let io_err = |error| DataError::Io {
        path: path.to_path_buf(),
        error,
    };
    let small = std::fs::metadata(path).is_ok_and(|m| m.len() <= RECENT_MAX_BYTES);
    if !small {
        let raw = BufReader::new(File::open(path).map_err(io_err)?);
        return parse_csv(path, spec, raw);
    }
    let key = Read {
        path: path.to_path_buf(),
        spec: spec.clone(),
        bytes: std::fs::read(path).map_err(io_err)?,
    };
    // A poisoned lock only means another run panicked while holding it; the list is valid.
    let recent = || RECENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, table)) = recent().iter().find(|(k, _)| *k == key) {
        return Ok(table.clone());
    }
    let table = parse_csv(path, spec, &key.bytes[..])?;
    let mut recent = recent();
    if recent.len() >= RECENT_MAX {
        recent.remove(0);
    }
    recent.push((key, table.clone()));
    Ok(table)
}

/// [`read_csv`] from the file's bytes `raw` (plain or gzip).
fn parse_csv<R: BufRead>(path: &Path, spec: &CsvSpec, mut raw: R) -> Result<Table, DataError> {
    let io_err = |error| DataError::Io {
        path: path.to_path_buf(),
        error,
    };
    let csv_err = |line, reason| DataError::Csv {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let gzipped = raw.fill_buf().map_err(io_err)?.starts_with(&[0x1f, 0x8b]);
    let input: Box<dyn BufRead + '_> = if gzipped {
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
    let shape = vec![x.ncols()];
    Ok(Table {
        x,
        y,
        n_classes,
        shape,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file read again is parsed again when its bytes changed, even to the same length (as
    /// an edit within one modification-time tick), and copied when they did not.
    #[test]
    fn an_edited_file_is_parsed_again() {
        let dir = std::env::temp_dir().join(format!("lpsim-csv-recent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv");
        let spec: CsvSpec = serde_json::from_str(r#"{"path": "t.csv"}"#).unwrap();
        std::fs::write(&path, "1.0,2.0,0\n3.0,4.0,1\n").unwrap();
        let first = read_csv(&path, &spec).unwrap();
        assert_eq!(first.x.as_slice().unwrap(), [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(read_csv(&path, &spec).unwrap().x, first.x);
        std::fs::write(&path, "5.0,6.0,0\n7.0,8.0,1\n").unwrap();
        let edited = read_csv(&path, &spec).unwrap();
        assert_eq!(edited.x.as_slice().unwrap(), [5.0, 6.0, 7.0, 8.0]);
        // The spec is part of what was read: another label column, another table.
        let first_label: CsvSpec =
            serde_json::from_str(r#"{"path": "t.csv", "label_column": 0}"#).unwrap();
        let other = read_csv(&path, &first_label).unwrap();
        assert_eq!(other.x.as_slice().unwrap(), [6.0, 0.0, 8.0, 1.0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
