//! The reader of `data` kind `npy`: a 2-D feature array and a 1-D label array.

use std::path::Path;

use ndarray::{Array1, Array2};

use super::{
    class_index, finish_classes, resolve_path, ClassBound, DataError, NpySpec, Table, Targets, Task,
};
use crate::npy::{self, Dtype};

pub(super) fn read_npy_table(workload_file: &Path, spec: &NpySpec) -> Result<Table, DataError> {
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
    let shape = vec![x.ncols()];
    Ok(Table {
        x,
        y,
        n_classes,
        shape,
    })
}
