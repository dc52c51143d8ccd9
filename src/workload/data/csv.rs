//! The CSV reader of `data` kind `csv` (the `csv` crate: quoting, a byte-order mark; plain or
//! gzip), with scikit-learn's header line recognised and checked.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

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

/// Reads a CSV table as documented on [`CsvSpec`].
pub(super) fn read_csv(path: &Path, spec: &CsvSpec) -> Result<Table, DataError> {
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
