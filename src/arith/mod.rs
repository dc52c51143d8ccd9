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
pub use gemm::{dot, gemm, gemm_f64, gemm_general, gemv, GemmOutput, KernelPath};
pub use mac::{AccFormat, AddEvent, Adder, EventTally, MacConfig, MacError, Order};
pub use qstep::quantize_step;

/// Multiply-adds (or elements) below which a kernel does not split its work among threads:
/// handing a task to another thread and waiting for it costs more than a few microseconds of
/// work, and the algorithms' small steps call the kernels thousands of times.
const PAR_GRAIN: usize = 1 << 16;

/// How many rows of `work_per_row` each a parallel task takes at least (see [`PAR_GRAIN`]).
fn min_rows(work_per_row: usize) -> usize {
    (PAR_GRAIN / work_per_row.max(1)).max(1)
}
