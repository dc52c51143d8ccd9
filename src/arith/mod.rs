//! Emulated arithmetic units and the kernels built on them (DESIGN.md decision 5), and the
//! action counts every kernel reports for the cost model (decision 6).

mod counts;

pub use counts::{ActionCounts, Traffic};
