//! The `regression` data kind: scikit-learn's `make_regression` reproduced with lpsim's
//! counter-based streams (see [`RegressionSpec`]).

use ndarray::{Array1, Array2};

use super::{RegressionSpec, Table, Targets, STREAM_REG_NOISE, STREAM_REG_W, STREAM_REG_X};
use crate::round::RandomStream;

/// `make_regression` as documented on [`RegressionSpec`].
pub(super) fn make_regression(s: &RegressionSpec) -> Table {
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
    let shape = vec![s.features];
    Table {
        x,
        y: Targets::Values(y),
        n_classes: None,
        shape,
    }
}
