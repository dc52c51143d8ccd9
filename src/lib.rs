//! lpsim: bit-accurate emulation of low-precision number formats, rounding units and
//! accumulators, a cycle/energy cost model, and low-precision learning algorithms.
//!
//! See `ARCHITECTURE.md` for the map of the modules and the data path.

pub mod algo;
pub mod arch;
pub mod arith;
pub mod bench;
pub mod cli;
pub mod cost;
pub mod format;
pub mod graph;
pub mod json;
pub mod limits;
pub mod model;
pub mod npy;
pub mod report;
pub mod round;
pub mod run;
mod scratch;
mod simd;
mod suggest;
pub mod sweep;
pub mod workload;

pub use format::{Format, FormatError, Quantizer};
pub use round::{RandomStream, Rounding};
