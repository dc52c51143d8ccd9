//! The emulator's own speed, measured against the native operation in the same run
//! (DESIGN.md decision 9). Speed is reported, never asserted in tests.

mod gemm;
mod quantize;

pub use gemm::{bench_gemm, GemmRow};
pub use quantize::{bench_quantize, QUANTIZE_CASES};

use std::time::Instant;

use serde::Serialize;

/// One measured kernel.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BenchRow {
    /// What ran, e.g. `bf16/rne`.
    pub name: String,
    /// Elements processed per second (median over the repetitions).
    pub elements_per_s: f64,
    /// `elements_per_s` divided by the native baseline's, measured in the same run.
    pub ratio_to_native: f64,
}

/// Median wall time in seconds of `reps` runs of `f`, after one warm-up run.
pub fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
