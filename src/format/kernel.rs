//! Vectorized `f32` slice kernels. Each returns `false` when it has no fast path for the
//! quantizer, and the caller takes the exact reference path; tests prove the two agree bit for bit.

use crate::format::Quantizer;

/// Try the fast path; `true` when `out` was written.
pub(crate) fn quantize_f32(
    _q: &Quantizer,
    _input: &[f32],
    _out: &mut [f32],
    _offset: u64,
    _row_len: usize,
) -> bool {
    false
}
