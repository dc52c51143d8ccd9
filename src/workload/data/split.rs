//! The seeded train/test split of a table and the standardization fitted on the training set
//! (per feature, or per channel for images).

use ndarray::{Array1, Array2, Axis};

use super::{images, DataError, Dataset, Split, Standardization, Targets, STREAM_SPLIT};
use crate::round::RandomStream;

/// All examples before the split.
#[derive(Clone)]
pub(super) struct Table {
    pub(super) x: Array2<f64>,
    pub(super) y: Targets,
    pub(super) n_classes: Option<usize>,
    /// One example's shape (see [`Dataset::shape`]).
    pub(super) shape: Vec<usize>,
}

impl Table {
    /// The whole table as the training set and `test` as the test set (a data set with a
    /// held-out test file), standardized with training statistics.
    pub(super) fn with_test(self, test: Table, split: &Split) -> Dataset {
        let (mut x_train, mut x_test) = (self.x, test.x);
        let standardization = split
            .standardize
            .then(|| standardize(&mut x_train, &mut x_test, &self.shape));
        Dataset {
            x_train,
            y_train: self.y,
            x_test,
            y_test: test.y,
            n_classes: self.n_classes,
            standardization,
            shape: self.shape,
        }
    }

    /// Permutes the rows with `split.seed`, holds out the first `ceil(test_fraction · n)` (the
    /// rounding of scikit-learn's `train_test_split`) and standardizes with training statistics.
    pub(super) fn into_dataset(self, split: &Split) -> Result<Dataset, DataError> {
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
        let standardization = split
            .standardize
            .then(|| standardize(&mut x_train, &mut x_test, &self.shape));
        Ok(Dataset {
            x_train,
            y_train: self.y.select(train_rows),
            x_test,
            y_test: self.y.select(test_rows),
            n_classes: self.n_classes,
            standardization,
            shape: self.shape,
        })
    }
}

/// Fits the standardization on `x_train` (per feature for a table, per channel for images of
/// `shape` `[C, H, W]`) and applies it to both sets.
fn standardize(
    x_train: &mut Array2<f64>,
    x_test: &mut Array2<f64>,
    shape: &[usize],
) -> Standardization {
    let s = if shape.len() == 3 {
        let (mean, scale) = images::channel_statistics(x_train, shape);
        Standardization { mean, scale }
    } else {
        fit_standardization(x_train)
    };
    for x in [x_train, x_test] {
        for mut row in x.rows_mut() {
            row -= &s.mean;
            row /= &s.scale;
        }
    }
    s
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
