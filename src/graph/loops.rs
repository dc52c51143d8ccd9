//! The executor's exact `f64` computations of the elementwise ops, gathers and noise as loops
//! over contiguous slices: `ndarray`'s iterators over `IxDyn` arrays step index by index, which
//! made these ops cost more than the roundings after them. Every function computes exactly
//! what the op's documentation says, element by element in `f64` (no reassociation), so the
//! values are those of the `Zip`s they replace. [`exact`] tells when such a result is already
//! the exact sum or product, so rounding it is the vector unit's exact rounding.

use ndarray::{ArrayD, IxDyn};

use super::value::{on_slice, Slice};
use crate::arith::ElemOp;

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

/// Rows `rows` of `data` (rows of `width` values in standard order), in that order. The rows
/// are checked against the number of rows by the caller.
pub(super) fn gather_rows(data: &[f64], width: usize, rows: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&data[r * width..(r + 1) * width]);
    }
    out
}

/// `f(x, y)` elementwise, or with `broadcast` `f(x, y[col])` for the row `y` added to every
/// row of `x` (a bias), on either carrier (each element widened to `f64` as it is read, exactly).
pub(super) fn binary<A: Copy + Into<f64>, B: Copy + Into<f64>>(
    xs: &[A],
    ys: &[B],
    broadcast: bool,
    f: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    if broadcast {
        // Row by row into one allocation (a `flat_map` collects element by element).
        let width = ys.len().max(1);
        let mut out = Vec::with_capacity(xs.len());
        for row in xs.chunks(width) {
            out.extend(
                row.iter()
                    .zip(ys.iter())
                    .map(|(&a, &b)| f(a.into(), b.into())),
            );
        }
        out
    } else {
        xs.iter()
            .zip(ys.iter())
            .map(|(&a, &b)| f(a.into(), b.into()))
            .collect()
    }
}

/// The ReLU of `f32` values, computed as the `f64` loop computes it (`max(x, 0)` in `f64`) and
/// narrowed back, which is exact: the result is `x` or a zero.
pub(super) fn relu_f32(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&a| f64::from(a).max(0.0) as f32).collect()
}

/// The ReLU gradient of `f32` values `g` for the pre-activation `z` on either carrier: `g`
/// where `z > 0`, else `+0`, as [`binary`]'s loop of the op computes it in `f64`.
pub(super) fn relu_grad_f32(g: &[f32], z: Slice<'_>) -> Vec<f32> {
    fn masked<Z: Copy + Into<f64>>(g: &[f32], z: &[Z]) -> Vec<f32> {
        g.iter()
            .zip(z)
            .map(|(&g, &z)| if z.into() > 0.0 { g } else { 0.0 })
            .collect()
    }
    on_slice!(z, |z| masked(g, z))
}

/// Whether every result `s` of [`binary`] (or of a scale, `c x`) is the exact value of
/// `op(x, y)`, every value finite: then rounding `s` once is the vector unit's rounding of the
/// exact result ([`crate::arith::VectorRounding`]), with the same random word, so the executor
/// may round `s` on the fast paths. A sum is exact when TwoSum's error is zero; a product when
/// the factors' significant bits fit `f64`'s 53 and it did not underflow (a sufficient test:
/// products of 8-bit values pass, `0.1 x 0.3` does not). Branch-free, so it
/// vectorizes; a result that is not exact leaves the exact-sum kernels to round it.
pub(super) fn exact(op: ElemOp, xs: &[f64], ys: &[f64], broadcast: bool, ss: &[f64]) -> bool {
    let ys = match op {
        ElemOp::Scale(_) => &[][..],
        _ => ys,
    };
    let width = if broadcast {
        ys.len().max(1)
    } else {
        xs.len().max(1)
    };
    let mut ok = true;
    for (row, out) in xs.chunks(width).zip(ss.chunks(width)) {
        ok &= match op {
            ElemOp::Add => row
                .iter()
                .zip(ys.iter())
                .zip(out)
                .fold(true, |ok, ((&a, &b), &s)| ok & sum_exact(a, b, s)),
            ElemOp::Sub => row
                .iter()
                .zip(ys.iter())
                .zip(out)
                .fold(true, |ok, ((&a, &b), &s)| ok & sum_exact(a, -b, s)),
            ElemOp::Mul => row
                .iter()
                .zip(ys.iter())
                .zip(out)
                .fold(true, |ok, ((&a, &b), &s)| ok & product_exact(a, b, s)),
            ElemOp::Scale(c) => row
                .iter()
                .zip(out)
                .fold(true, |ok, (&a, &s)| ok & product_exact(c, a, s)),
            ElemOp::Axpy(_) => false,
        };
        if !broadcast && !ok {
            break;
        }
    }
    ok && !xs.is_empty()
}

/// `s = a + b` is exact (TwoSum's error term is zero) and finite.
#[inline(always)]
fn sum_exact(a: f64, b: f64, s: f64) -> bool {
    let bb = s - a;
    let err = (a - (s - bb)) + (b - bb);
    (err == 0.0) & s.is_finite() & a.is_finite() & b.is_finite() & not_minus_zero(s)
}

/// `s = a b` is exact: a zero factor, or the factors' significant bits fit 53 and `s` is a
/// finite normal number.
#[inline(always)]
fn product_exact(a: f64, b: f64, s: f64) -> bool {
    // Bits from the leading (implicit) one to the last set bit; a subnormal counts as wider
    // than it is, which only makes the test stricter.
    let bits = |v: f64| 53 - ((v.to_bits() & ((1u64 << 52) - 1)) | (1u64 << 52)).trailing_zeros();
    let zero = (a == 0.0) | (b == 0.0);
    let fits = (bits(a) + bits(b) <= 53) & (s.abs() >= f64::MIN_POSITIVE) & s.is_finite();
    (zero & a.is_finite() & b.is_finite() & not_minus_zero(s)) | fits
}

/// `s` is not `-0`: the exact-sum kernels give a zero result the sign `+` (`-0.5 x 0 = +0`),
/// where `f64` arithmetic keeps IEEE's `-0`, so such a result is left to them.
#[inline(always)]
fn not_minus_zero(s: f64) -> bool {
    (s != 0.0) | s.is_sign_positive()
}

/// `x + std z` in `f64` for the standard normal draws `z` (one per element in standard order);
/// `x` on either carrier, each element widened exactly.
pub(super) fn add_noise(xs: Slice<'_>, std: f64, z: &[f32]) -> Vec<f64> {
    fn add<A: Copy + Into<f64>>(xs: &[A], std: f64, z: &[f32]) -> Vec<f64> {
        xs.iter()
            .zip(z)
            .map(|(&a, &z)| a.into() + std * f64::from(z))
            .collect()
    }
    on_slice!(xs, |x| add(x, std, z))
}

/// The sum of the rows of `x` (rows of `width` values), each column added in row order from
/// `+0`: the bits of ndarray's `sum_axis(Axis(0))` on a standard-layout array of two or more
/// axes, which adds whole rows in order (a 1-D array it sums in its own unrolled order). On a
/// 64x256 tensor (one thread): 9.0 us through an `IxDyn` view and `sum_axis`, 2.4 us here.
/// Either carrier is read, each element widened exactly.
pub(super) fn sum_rows(x: Slice<'_>, width: usize) -> Vec<f64> {
    fn rows<A: Copy + Into<f64>>(x: &[A], width: usize) -> Vec<f64> {
        let mut acc = vec![0.0; width];
        if width > 0 {
            for row in x.chunks_exact(width) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v.into();
                }
            }
        }
        acc
    }
    on_slice!(x, |x| rows(x, width))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Axis};

    /// `sum_rows` gives ndarray's `sum_axis(Axis(0))` bit for bit on arrays of two and three
    /// axes (widths of one included), with signed zeros, cancellations and mixed magnitudes.
    #[test]
    fn sum_rows_equals_ndarray_sum_axis() {
        let s = crate::round::RandomStream::new(4, 2);
        for shape in [
            vec![7, 5],
            vec![64, 1],
            vec![1, 9],
            vec![0, 3],
            vec![5, 0],
            vec![4, 3, 2],
        ] {
            let n: usize = shape.iter().product();
            let values: Vec<f64> = (0..n as u64)
                .map(|i| match i % 5 {
                    0 => -0.0,
                    1 => 1e16,
                    2 => -1e16,
                    _ => s.normal_f64(i) * 2f64.powi((i % 40) as i32 - 20),
                })
                .collect();
            let x =
                ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), values.clone()).unwrap();
            let want: Vec<u64> = x.sum_axis(Axis(0)).iter().map(|v| v.to_bits()).collect();
            let width = shape[1..].iter().product();
            let got: Vec<u64> = sum_rows(Slice::Wide(&values), width)
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(got, want, "{shape:?}");
        }
    }

    /// `exact` accepts sums and products of low-precision values and refuses inexact,
    /// infinite, NaN and underflowing results; where it accepts, rounding the `f64` result
    /// once equals the vector unit's exact-sum rounding bit for bit (same random words), for
    /// fixed point and floats, nearest and stochastic.
    #[test]
    fn exact_results_round_as_the_exact_sum_kernels() {
        use crate::arith::VectorRounding;
        use crate::format::{parse, Quantizer};
        use crate::round::RandomStream;
        let check = |op, x: &[f64], y: &[f64]| {
            let s = match op {
                ElemOp::Add => binary(x, y, false, |p, q| p + q),
                ElemOp::Sub => binary(x, y, false, |p, q| p - q),
                ElemOp::Scale(c) => x.iter().map(|&p| c * p).collect(),
                _ => binary(x, y, false, |p, q| p * q),
            };
            exact(op, x, y, false, &s)
        };
        assert!(check(
            ElemOp::Add,
            &[1.5, -0.25, 3.0],
            &[0.125, 1.0 / 1024.0, -3.0]
        ));
        assert!(!check(ElemOp::Add, &[0.1], &[0.2]));
        assert!(!check(ElemOp::Add, &[f64::MAX], &[f64::MAX]), "overflow");
        assert!(!check(ElemOp::Sub, &[f64::NAN], &[1.0]));
        assert!(check(
            ElemOp::Mul,
            &[1.5, 0.0, -96.0],
            &[-0.75, 1e300, 0.0625]
        ));
        assert!(!check(ElemOp::Mul, &[0.1], &[0.3]));
        assert!(!check(ElemOp::Mul, &[1e-200], &[1e-200]), "underflow");
        assert!(!check(ElemOp::Scale(0.1), &[0.3], &[]));
        assert!(check(ElemOp::Scale(-0.5), &[3.0, 7.0], &[]));
        // A broadcast row: exact in every row.
        let (x, row) = ([1.0, 2.0, 3.0, 4.0], [0.5, 0.25]);
        let s = binary(&x, &row, true, |p, q| p + q);
        assert_eq!(s, [1.5, 2.25, 3.5, 4.25]);
        assert!(exact(ElemOp::Add, &x, &row, true, &s));

        let s = RandomStream::new(3, 8);
        let values = |k: u64| -> Vec<f64> {
            (0..512)
                .map(
                    |i| match f64::from((s.normal_f64(k * 1000 + i) * 8.0) as i8) / 16.0 {
                        // Signed zeros too.
                        0.0 if i % 2 == 1 => -0.0,
                        v => v,
                    },
                )
                .collect()
        };
        let (x, y) = (values(1), values(2));
        for spec in [
            "fixed:wl=8,fl=3",
            "fixed:wl=6,fl=2",
            "bf16",
            "e4m3fn",
            "fp32",
        ] {
            for rounding in ["rne", "sr", "sr:bits=8", "rtz"] {
                let format = parse(spec).unwrap();
                let Ok(unit) = VectorRounding::new(format, rounding.parse().unwrap()) else {
                    continue;
                };
                for op in [ElemOp::Add, ElemOp::Sub, ElemOp::Mul] {
                    let sum: Vec<f64> = x
                        .iter()
                        .zip(&y)
                        .map(|(&p, &q)| match op {
                            ElemOp::Add => p + q,
                            ElemOp::Sub => p - q,
                            _ => p * q,
                        })
                        .collect();
                    let mut kernel = vec![0.0; x.len()];
                    unit.apply(op, &x, &y, &mut kernel, RandomStream::new(5, 6));
                    let q = Quantizer::new(format, rounding.parse().unwrap(), 5, 6).unwrap();
                    let mut once = vec![0.0; x.len()];
                    q.quantize_f64(&sum, &mut once, 0, x.len());
                    // Element by element: every result `exact` accepts rounds the same (the
                    // random word of element `i` is the same in both).
                    let mut accepted = 0;
                    for i in 0..x.len() {
                        if exact(op, &[x[i]], &[y[i]], false, &[sum[i]]) {
                            accepted += 1;
                            assert_eq!(
                                kernel[i].to_bits(),
                                once[i].to_bits(),
                                "{spec} {rounding} {op:?} {} {}",
                                x[i],
                                y[i]
                            );
                        }
                    }
                    assert!(accepted > 400, "{spec} {rounding} {op:?}: {accepted}");
                }
            }
        }
    }

    /// The loops equal `ndarray`'s `select`, broadcasting `Zip` and iteration, on standard and
    /// transposed inputs.
    #[test]
    fn loops_equal_ndarray() {
        let x = Array2::from_shape_fn((5, 3), |(i, j)| (i * 3 + j) as f64 * 0.7 - 4.0).into_dyn();
        let xt = x.t().as_standard_layout().into_owned().reversed_axes();
        assert_eq!(xt, x);
        assert!(xt.as_slice().is_none());
        let flat = |a: ArrayD<f64>| a.iter().copied().collect::<Vec<f64>>();
        for input in [&x, &xt] {
            let values = standard(input);
            let rows = [4, 0, 0, 2];
            assert_eq!(
                gather_rows(&values, 3, &rows),
                flat(x.select(Axis(0), &rows))
            );
            let bias = Array2::from_shape_fn((1, 3), |(_, j)| j as f64 - 1.5).into_dyn();
            let expect = ndarray::Zip::from(&x)
                .and(&bias.broadcast(x.raw_dim()).unwrap())
                .map_collect(|&a, &b| a + b);
            let row = standard(&bias);
            assert_eq!(binary(&values, &row, true, |a, b| a + b), flat(expect));
            let expect = ndarray::Zip::from(&x)
                .and(&x)
                .map_collect(|&a, &b| a * b - 1.0);
            assert_eq!(
                binary(&values, &values, false, |a, b| a * b - 1.0),
                flat(expect)
            );
            let z: Vec<f32> = (0..15).map(|i| i as f32 * 0.25).collect();
            let expect = ndarray::Zip::from(&x)
                .and(&ArrayD::from_shape_vec(IxDyn(&[5, 3]), z.clone()).unwrap())
                .map_collect(|&a, &z| a + 0.5 * f64::from(z));
            assert_eq!(add_noise(Slice::Wide(&values), 0.5, &z), flat(expect));
            // On the `f32` carrier, each value widened exactly.
            let narrow: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            let expect: Vec<f64> = narrow
                .iter()
                .zip(&z)
                .map(|(&a, &z)| f64::from(a) + 0.5 * f64::from(z))
                .collect();
            assert_eq!(add_noise(Slice::Narrow(&narrow), 0.5, &z), expect);
        }
    }
}
