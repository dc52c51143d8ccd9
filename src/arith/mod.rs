//! Emulated arithmetic units and the kernels built on them (see ARCHITECTURE.md), and the
//! action counts every kernel reports for the cost model (decision 6).
//!
//! - [`MacConfig`]: what a MAC unit is (input, product and accumulator formats, fused or not,
//!   the accumulator's rounding unit, the accumulation [`Order`]);
//! - [`gemm`], [`gemv`], [`dot`]: kernels following a MAC configuration exactly, with native
//!   fast paths proven equal to [`gemm_general`] by tests.

mod counts;
mod dot;
mod elementwise;
mod exact_sum;
mod fast;
mod gemm;
mod mac;
mod qstep;
pub mod vc;

pub use counts::{ActionCounts, ActionKey, Traffic, KEY_KINDS};
pub use elementwise::{elementwise, ElemOp, VectorRounding};
pub use exact_sum::ExactSum;
pub use fast::native_f32_gemm;
pub(crate) use gemm::gemm_f32;
pub use gemm::{dot, gemm, gemm_f64, gemm_general, gemv, GemmOutput, KernelPath};
pub use mac::{AccFormat, AddEvent, Adder, EventTally, MacConfig, MacError, Order};
pub use qstep::quantize_step;

/// Multiply-adds (or elements) below which a kernel does not split its work among threads:
/// handing a task to another thread and waiting for it costs more than a few microseconds of
/// work, and the algorithms' small steps call the kernels thousands of times. Measured
/// (2026-12-05, `lpsim bench train --threads 1,2` on a 2-core VM): at `2^16` (about 3 us of
/// the per-add kernel per task) two threads made the MLP's epochs 10-30 % slower than one;
/// at `2^18` still 5-22 %; at `2^20` (about 40 us a task) the same as one thread. (On that VM
/// a second thread does not speed up even a `256^3` GEMM, so only the overhead could be
/// measured there.) A GEMM of `256^3` still splits into 16 tasks.
const PAR_GRAIN: usize = 1 << 20;

/// How many rows of `work_per_row` each a parallel task takes at least (see [`PAR_GRAIN`]).
fn min_rows(work_per_row: usize) -> usize {
    (PAR_GRAIN / work_per_row.max(1)).max(1)
}
