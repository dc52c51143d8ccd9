//! Compute cycles of a GEMM on a systolic array: SCALE-Sim v3.0.0's closed form
//! (`compute/systolic_compute_{os,ws,is}.py`, docs/cost-model.md).
//!
//! For an `R x C` array and a GEMM `(M, N, K)` (A is `M x K`, B is `K x N`):
//!
//! | dataflow | rows (Sr) | cols (Sc) | streamed (T) | cycles per fold |
//! |---|---|---|---|---|
//! | os | M | N | K | T + R + C - 2 |
//! | ws | K | N | M | 2R + C + T - 2 |
//! | is | K | M | N | 2R + C + T - 2 |
//!
//! `folds = ceil(Sr/R) x ceil(Sc/C)`; every fold costs the full latency and folds do not
//! overlap. SCALE-Sim's printed "Total Cycles" is `folds x per_fold - 1` (the index of the last
//! cycle counted from 0); [`GemmCycles::cycles`] is that figure, so it matches SCALE-Sim exactly.

use serde::Serialize;

use crate::arch::{Array, Dataflow};
use crate::cost::CostError;

/// A GEMM shape: `C (M x N) = A (M x K) x B (K x N)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Gemm {
    /// Rows of A and C.
    pub m: u64,
    /// Columns of B and C.
    pub n: u64,
    /// The reduction dimension.
    pub k: u64,
}

impl Gemm {
    /// Multiply-accumulates: `M N K`, or [`CostError::Overflow`] when that exceeds 64 bits.
    pub fn macs(&self) -> Result<u64, CostError> {
        self.m
            .checked_mul(self.n)
            .and_then(|mn| mn.checked_mul(self.k))
            .ok_or_else(|| self.overflow("M N K multiply-accumulates"))
    }

    /// The error for a figure of this GEMM that does not fit in 64 bits.
    pub(crate) fn overflow(&self, what: &str) -> CostError {
        CostError::Overflow(format!(
            "{what} of GEMM {}x{}x{} (M,N,K)",
            self.m, self.n, self.k
        ))
    }
}

/// `a + b`, `a x b`, ... on counts, `None` on overflow: the figures of the cost model are
/// computed with checked arithmetic so that a huge size is an error, never a wrapped number.
pub(crate) fn checked(terms: &[u64], op: fn(u64, u64) -> Option<u64>) -> Option<u64> {
    terms
        .split_first()
        .and_then(|(first, rest)| rest.iter().try_fold(*first, |acc, &t| op(acc, t)))
}

/// The mapping of one GEMM on the array and its compute cycles.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GemmCycles {
    /// Folds of the array over the GEMM.
    pub folds: u64,
    /// Cycles of one fold (fill + stream + drain).
    pub per_fold: u64,
    /// SCALE-Sim's compute cycles: `folds x per_fold - 1`.
    pub cycles: u64,
    /// Mean over folds of the fraction of PEs mapped (SCALE-Sim's mapping efficiency, 0..=1).
    pub mapping_efficiency: f64,
}

/// `ceil(a / b)` for `b >= 1`.
pub(crate) fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

/// SCALE-Sim's compute cycles for `gemm` on `array` (see the module docs). A GEMM with a zero
/// dimension takes no cycles; one whose cycles do not fit in 64 bits is
/// [`CostError::Overflow`].
pub fn gemm_cycles(array: &Array, gemm: Gemm) -> Result<GemmCycles, CostError> {
    let (r, c) = (array.rows, array.cols);
    let Gemm { m, n, k } = gemm;
    let add = |terms: &[u64]| checked(terms, u64::checked_add);
    let (sr, sc, t, fill) = match array.dataflow {
        Dataflow::Os => (m, n, k, add(&[k, r, c])),
        Dataflow::Ws => (k, n, m, add(&[r, r, c, m])),
        Dataflow::Is => (k, m, n, add(&[r, r, c, n])),
    };
    let overflow = || gemm.overflow(&format!("the cycles on a {r}x{c} array"));
    // Every term is >= 1 for rows, cols >= 1, so the sum is >= 2.
    let per_fold = fill.ok_or_else(overflow)?.saturating_sub(2);
    let folds = ceil_div(sr, r)
        .checked_mul(ceil_div(sc, c))
        .ok_or_else(overflow)?;
    if folds == 0 || t == 0 {
        return Ok(GemmCycles {
            folds: 0,
            per_fold,
            cycles: 0,
            mapping_efficiency: 0.0,
        });
    }
    Ok(GemmCycles {
        folds,
        per_fold,
        cycles: folds.checked_mul(per_fold).ok_or_else(overflow)? - 1,
        mapping_efficiency: (sr as f64 * sc as f64) / (folds as f64 * r as f64 * c as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costmodel_examples() {
        let cases = [
            ((64, 64, 64), [503, 631, 631]),
            ((128, 256, 512), [18367, 28415, 22399]),
        ];
        for ((m, n, k), want) in cases {
            for (df, w) in [Dataflow::Os, Dataflow::Ws, Dataflow::Is]
                .into_iter()
                .zip(want)
            {
                let a = Array {
                    rows: 32,
                    cols: 32,
                    dataflow: df,
                };
                assert_eq!(gemm_cycles(&a, Gemm { m, n, k }).unwrap().cycles, w);
            }
        }
    }

    #[test]
    fn overflow_is_an_error() {
        let a = Array {
            rows: 1 << 63,
            cols: 32,
            dataflow: Dataflow::Ws,
        };
        assert!(matches!(
            gemm_cycles(&a, Gemm { m: 1, n: 1, k: 1 }),
            Err(CostError::Overflow(_))
        ));
        let g = Gemm {
            m: 1 << 32,
            n: 1 << 32,
            k: 1,
        };
        assert!(g.macs().is_err());
    }
}
