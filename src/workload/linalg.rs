//! Small dense linear algebra in `f64` for the workload layer: Cholesky factorization (to check
//! and invert a target covariance), Householder-QR least squares (the exact optimum of a linear
//! regression workload) and the eigenvalues of a symmetric matrix (HALP's strong-convexity
//! constant). Problems here are at most a few hundred unknowns, so plain loops suffice
//! and no BLAS/LAPACK dependency is needed.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use thiserror::Error;

/// Why a dense factorization failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum LinalgError {
    /// Cholesky found a non-positive pivot: the matrix is not symmetric positive definite.
    #[error("matrix is not positive definite (pivot {pivot} is {value:e})")]
    NotPositiveDefinite {
        /// 0-based index of the failing pivot.
        pivot: usize,
        /// The value under the square root.
        value: f64,
    },
    /// QR found a (numerically) zero column: the least-squares problem has no unique solution.
    #[error("design matrix is rank deficient (column {column} is a combination of the others)")]
    RankDeficient {
        /// 0-based index of the column.
        column: usize,
    },
    /// Shapes that do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

/// The lower-triangular Cholesky factor `L` with `A = L Lᵀ` (Cholesky–Banachiewicz, row by row).
///
/// Only the lower triangle of `a` is read. Fails if `a` is not square or a pivot is not
/// strictly positive.
pub fn cholesky(a: ArrayView2<f64>) -> Result<Array2<f64>, LinalgError> {
    let n = a.nrows();
    if a.ncols() != n {
        return Err(LinalgError::Shape(format!(
            "{} x {} is not square",
            a.nrows(),
            a.ncols()
        )));
    }
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[[i, j]];
            for k in 0..j {
                s -= l[[i, k]] * l[[j, k]];
            }
            if i == j {
                if s.is_nan() || s <= 0.0 {
                    return Err(LinalgError::NotPositiveDefinite { pivot: i, value: s });
                }
                l[[i, i]] = s.sqrt();
            } else {
                l[[i, j]] = s / l[[j, j]];
            }
        }
    }
    Ok(l)
}

/// Solves `L Lᵀ x = b` given the Cholesky factor `L` (forward then back substitution).
pub fn cholesky_solve(l: ArrayView2<f64>, b: ArrayView1<f64>) -> Array1<f64> {
    let n = l.nrows();
    let mut y = b.to_owned();
    for i in 0..n {
        let mut s = y[i];
        for k in 0..i {
            s -= l[[i, k]] * y[k];
        }
        y[i] = s / l[[i, i]];
    }
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in i + 1..n {
            s -= l[[k, i]] * y[k];
        }
        y[i] = s / l[[i, i]];
    }
    y
}

/// The inverse of a symmetric positive definite matrix from its Cholesky factor, column by column.
pub fn cholesky_inverse(l: ArrayView2<f64>) -> Array2<f64> {
    let n = l.nrows();
    let mut inv = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        let mut e = Array1::<f64>::zeros(n);
        e[j] = 1.0;
        inv.column_mut(j).assign(&cholesky_solve(l, e.view()));
    }
    inv
}

/// The minimizer of `‖A x − b‖₂` for a tall `A` (m ≥ n) of full column rank, by Householder QR
/// (Golub & Van Loan, *Matrix Computations*, algorithm 5.3.2). QR works on `A` itself, so its
/// error grows with κ(A), not κ(A)² as the normal equations `AᵀA x = Aᵀb` would.
pub fn least_squares(a: ArrayView2<f64>, b: ArrayView1<f64>) -> Result<Array1<f64>, LinalgError> {
    let (m, n) = a.dim();
    if b.len() != m {
        return Err(LinalgError::Shape(format!(
            "{m} x {n} matrix with a right-hand side of length {}",
            b.len()
        )));
    }
    if m < n {
        return Err(LinalgError::Shape(format!(
            "{m} x {n}: fewer rows than unknowns"
        )));
    }
    let mut r = a.to_owned();
    let mut qtb = b.to_owned();
    let scale = r.iter().fold(0.0_f64, |s, v| s.max(v.abs()));
    for k in 0..n {
        let norm = r
            .column(k)
            .slice(ndarray::s![k..])
            .mapv(|v| v * v)
            .sum()
            .sqrt();
        if norm <= scale * f64::EPSILON * (m as f64) {
            return Err(LinalgError::RankDeficient { column: k });
        }
        // Householder vector v = x + sign(x0) ‖x‖ e0, applied as H = I − 2 v vᵀ / (vᵀv).
        let alpha = if r[[k, k]] >= 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..m).map(|i| r[[i, k]]).collect();
        v[0] -= alpha;
        let vtv: f64 = v.iter().map(|x| x * x).sum();
        for j in k..n {
            let dot: f64 = v.iter().enumerate().map(|(i, vi)| vi * r[[k + i, j]]).sum();
            let f = 2.0 * dot / vtv;
            for (i, vi) in v.iter().enumerate() {
                r[[k + i, j]] -= f * vi;
            }
        }
        let dot: f64 = v.iter().enumerate().map(|(i, vi)| vi * qtb[k + i]).sum();
        let f = 2.0 * dot / vtv;
        for (i, vi) in v.iter().enumerate() {
            qtb[k + i] -= f * vi;
        }
    }
    let mut x = Array1::<f64>::zeros(n);
    for i in (0..n).rev() {
        let mut s = qtb[i];
        for j in i + 1..n {
            s -= r[[i, j]] * x[j];
        }
        x[i] = s / r[[i, i]];
    }
    Ok(x)
}

/// The eigenvalues of the symmetric matrix `a`, ascending, by the cyclic Jacobi method: sweeps
/// of plane rotations that zero each off-diagonal element in turn, until the off-diagonal mass
/// is below `1e-15` of the matrix's (quadratic convergence; a dozen sweeps for a few hundred
/// unknowns). Only the upper triangle of `a` is read. Fails if `a` is not square.
pub fn symmetric_eigenvalues(a: ArrayView2<f64>) -> Result<Vec<f64>, LinalgError> {
    let n = a.nrows();
    if a.ncols() != n {
        return Err(LinalgError::Shape(format!(
            "{} x {} is not square",
            a.nrows(),
            a.ncols()
        )));
    }
    let mut m = Array2::from_shape_fn((n, n), |(i, j)| a[[i.min(j), i.max(j)]]);
    let total: f64 = m.iter().map(|v| v * v).sum();
    let off = |m: &Array2<f64>| -> f64 {
        let mut s = 0.0;
        for i in 0..n {
            for j in i + 1..n {
                s += 2.0 * m[[i, j]] * m[[i, j]];
            }
        }
        s
    };
    for _ in 0..100 {
        if off(&m) <= 1e-30 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[[p, q]];
                if apq == 0.0 {
                    continue;
                }
                // The rotation angle that zeroes (p, q): t = tan(theta), the smaller root.
                let theta = (m[[q, q]] - m[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[[k, p]], m[[k, q]]);
                    m[[k, p]] = c * mkp - s * mkq;
                    m[[k, q]] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[[p, k]], m[[q, k]]);
                    m[[p, k]] = c * mpk - s * mqk;
                    m[[q, k]] = s * mpk + c * mqk;
                }
            }
        }
    }
    let mut eig: Vec<f64> = (0..n).map(|i| m[[i, i]]).collect();
    eig.sort_by(f64::total_cmp);
    Ok(eig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn cholesky_solves_and_inverts() {
        let a = array![[4.0, 2.0, 0.4], [2.0, 5.0, 1.0], [0.4, 1.0, 3.0]];
        let l = cholesky(a.view()).expect("spd");
        let rebuilt = l.dot(&l.t());
        assert!((&rebuilt - &a).iter().all(|d| d.abs() < 1e-12));
        let inv = cholesky_inverse(l.view());
        let eye = a.dot(&inv);
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((eye[[i, j]] - want).abs() < 1e-12);
            }
        }
        let bad = array![[1.0, 2.0], [2.0, 1.0]];
        assert!(matches!(
            cholesky(bad.view()),
            Err(LinalgError::NotPositiveDefinite { pivot: 1, .. })
        ));
    }

    #[test]
    fn least_squares_matches_a_hand_fit() {
        // Fit y = c0 + c1 t through (0,1), (1,3), (2,4): c1 = 1.5, c0 = 7/6.
        let a = array![[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]];
        let b = array![1.0, 3.0, 4.0];
        let x = least_squares(a.view(), b.view()).expect("full rank");
        assert!((x[0] - 7.0 / 6.0).abs() < 1e-14);
        assert!((x[1] - 1.5).abs() < 1e-14);
        let rank1 = array![[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]];
        assert!(matches!(
            least_squares(rank1.view(), b.view()),
            Err(LinalgError::RankDeficient { column: 1 })
        ));
    }

    #[test]
    fn jacobi_eigenvalues_match_known_spectra() {
        // 2 x 2: [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let e = symmetric_eigenvalues(array![[2.0, 1.0], [1.0, 2.0]].view()).expect("square");
        assert!(
            (e[0] - 1.0).abs() < 1e-14 && (e[1] - 3.0).abs() < 1e-14,
            "{e:?}"
        );
        // Q diag(d) Q^T with Q a product of Householder reflections: the spectrum is d.
        let n = 12;
        let d: Vec<f64> = (0..n).map(|i| 0.1 + (i * i) as f64).collect();
        let mut q = Array2::<f64>::eye(n);
        for r in 0..3 {
            let v: Array1<f64> = (0..n).map(|i| ((i * 7 + r * 3) % 5) as f64 - 1.7).collect();
            let h = Array2::<f64>::eye(n)
                - 2.0 / v.dot(&v)
                    * v.view()
                        .insert_axis(ndarray::Axis(1))
                        .dot(&v.view().insert_axis(ndarray::Axis(0)));
            q = q.dot(&h);
        }
        let a = q
            .dot(&Array2::from_diag(&Array1::from(d.clone())))
            .dot(&q.t());
        let e = symmetric_eigenvalues(a.view()).expect("square");
        for (got, want) in e.iter().zip(&d) {
            assert!((got - want).abs() < 1e-10, "{got} vs {want}");
        }
        assert!(symmetric_eigenvalues(Array2::<f64>::zeros((2, 3)).view()).is_err());
    }
}
