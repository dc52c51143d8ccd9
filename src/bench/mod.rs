//! The emulator's own speed, measured against the native operation in the same run
//! (see ARCHITECTURE.md). Speed is reported, never asserted in tests.

mod gemm;
mod native_cnn;
mod quantize;
mod train;

pub use gemm::{bench_gemm, GemmRow};
pub use quantize::{bench_quantize, QUANTIZE_CASES};
pub use train::{
    bench_train, native_data, NativeMlp, TrainBench, TrainBenchError, TrainRow, TRAIN_ALGOS,
    TRAIN_ARCHS,
};

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

/// A kernel timed in pairs with the native operation it is compared against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paired {
    /// Median wall time of the kernel, in seconds.
    pub secs: f64,
    /// Median over the pairs of native time / kernel time.
    pub ratio: f64,
}

/// Time `kernel` and `native` alternately, `reps` pairs after one warm-up run of each, and
/// take the median of the per-pair ratios: on a shared machine the native operation's speed
/// drifts (a memory-bound copy most of all), and a ratio of two runs taken moments apart
/// follows the kernel's own speed, where a ratio to one native figure measured earlier in the
/// run would follow the drift.
pub fn paired_seconds(reps: usize, mut native: impl FnMut(), mut kernel: impl FnMut()) -> Paired {
    native();
    kernel();
    let (mut secs, mut ratios): (Vec<f64>, Vec<f64>) = (0..reps.max(1))
        .map(|_| {
            let n = time(&mut native);
            let k = time(&mut kernel);
            (k, n / k)
        })
        .unzip();
    Paired {
        secs: median(&mut secs),
        ratio: median(&mut ratios),
    }
}

/// Wall time of one run of `f`, in seconds.
fn time(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median wall time in seconds of `reps` runs of `f`, after one warm-up run.
pub fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps.max(1)).map(|_| time(&mut f)).collect();
    median(&mut times)
}
