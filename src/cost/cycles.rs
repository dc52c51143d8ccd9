//! Compute cycles of a GEMM on a systolic array: SCALE-Sim v3.0.0's closed form
//! (`compute/systolic_compute_{os,ws,is}.py`, COSTMODEL.md section D).
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
    /// Multiply-accumulates: `M N K`.
    pub fn macs(&self) -> u64 {
        self.m * self.n * self.k
    }
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
/// dimension takes no cycles.
pub fn gemm_cycles(array: &Array, gemm: Gemm) -> GemmCycles {
    let (r, c) = (array.rows, array.cols);
    let Gemm { m, n, k } = gemm;
    let (sr, sc, t, per_fold) = match array.dataflow {
        Dataflow::Os => (m, n, k, k + r + c - 2),
        Dataflow::Ws => (k, n, m, 2 * r + c + m - 2),
        Dataflow::Is => (k, m, n, 2 * r + c + n - 2),
    };
    let folds = ceil_div(sr, r) * ceil_div(sc, c);
    if folds == 0 || t == 0 {
        return GemmCycles {
            folds: 0,
            per_fold,
            cycles: 0,
            mapping_efficiency: 0.0,
        };
    }
    GemmCycles {
        folds,
        per_fold,
        cycles: folds * per_fold - 1,
        mapping_efficiency: (sr * sc) as f64 / (folds * r * c) as f64,
    }
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
                assert_eq!(gemm_cycles(&a, Gemm { m, n, k }).cycles, w);
            }
        }
    }
}
