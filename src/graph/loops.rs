//! The executor's exact `f64` computations of the elementwise ops, gathers and noise as loops
//! over contiguous slices: `ndarray`'s iterators over `IxDyn` arrays step index by index, which
//! made these ops cost more than the roundings after them. Every function computes exactly
//! what the op's documentation says, element by element in `f64` (no reassociation), so the
//! values are those of the `Zip`s they replace.

use ndarray::{ArrayD, IxDyn};

/// `x` as a contiguous slice in standard (row-major) order, copied only when it is not one (a
/// borrowed slice costs no `IxDyn` view, which `as_standard_layout` builds every call).
pub(super) fn standard(x: &ArrayD<f64>) -> std::borrow::Cow<'_, [f64]> {
    match x.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(x.iter().copied().collect()),
    }
}

/// An array of `shape` from its values in standard order.
pub(super) fn array(shape: &[usize], values: Vec<f64>) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), values).expect("as many values as the shape holds")
}

/// Rows `rows` of `data` (`[N, ...]`), in that order: `[rows.len(), ...]`. The rows are
/// checked against `N` by the caller.
pub(super) fn gather_rows(data: &ArrayD<f64>, rows: &[usize]) -> ArrayD<f64> {
    let src = standard(data);
    let width: usize = data.shape()[1..].iter().product();
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&src[r * width..(r + 1) * width]);
    }
    let mut shape = data.shape().to_vec();
    shape[0] = rows.len();
    array(&shape, out)
}

/// `f(x, y)` elementwise, or with `broadcast` `f(x, y[col])` for the row `y` added to every
/// row of `x` (a bias).
pub(super) fn binary(
    x: &ArrayD<f64>,
    y: &ArrayD<f64>,
    broadcast: bool,
    f: impl Fn(f64, f64) -> f64,
) -> ArrayD<f64> {
    let (xs, ys) = (standard(x), standard(y));
    let out = if broadcast {
        let width = ys.len().max(1);
        xs.chunks(width)
            .flat_map(|row| row.iter().zip(ys.iter()).map(|(&a, &b)| f(a, b)))
            .collect()
    } else {
        xs.iter().zip(ys.iter()).map(|(&a, &b)| f(a, b)).collect()
    };
    array(x.shape(), out)
}

/// `x + std z` for the standard normal draws `z` (one per element in standard order).
pub(super) fn add_noise(x: &ArrayD<f64>, std: f64, z: &[f32]) -> ArrayD<f64> {
    let xs = standard(x);
    let out = xs
        .iter()
        .zip(z)
        .map(|(&a, &z)| a + std * f64::from(z))
        .collect();
    array(x.shape(), out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Axis};

    /// The loops equal `ndarray`'s `select`, broadcasting `Zip` and iteration, on standard and
    /// transposed inputs.
    #[test]
    fn loops_equal_ndarray() {
        let x = Array2::from_shape_fn((5, 3), |(i, j)| (i * 3 + j) as f64 * 0.7 - 4.0).into_dyn();
        let xt = x.t().as_standard_layout().into_owned().reversed_axes();
        assert_eq!(xt, x);
        assert!(xt.as_slice().is_none());
        for input in [&x, &xt] {
            let rows = [4, 0, 0, 2];
            assert_eq!(gather_rows(input, &rows), x.select(Axis(0), &rows));
            let bias = Array2::from_shape_fn((1, 3), |(_, j)| j as f64 - 1.5).into_dyn();
            let expect = ndarray::Zip::from(&x)
                .and(&bias.broadcast(x.raw_dim()).unwrap())
                .map_collect(|&a, &b| a + b);
            assert_eq!(binary(input, &bias, true, |a, b| a + b), expect);
            let expect = ndarray::Zip::from(&x)
                .and(&x)
                .map_collect(|&a, &b| a * b - 1.0);
            assert_eq!(binary(input, &x, false, |a, b| a * b - 1.0), expect);
            let z: Vec<f32> = (0..15).map(|i| i as f32 * 0.25).collect();
            let expect = ndarray::Zip::from(&x)
                .and(&ArrayD::from_shape_vec(IxDyn(&[5, 3]), z.clone()).unwrap())
                .map_collect(|&a, &z| a + 0.5 * f64::from(z));
            assert_eq!(add_noise(input, 0.5, &z), expect);
        }
    }
}
