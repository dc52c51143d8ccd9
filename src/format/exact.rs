//! Exact decomposition of binary floating-point values, shared by every format.
//!
//! A positive finite `f64` is `M * 2^e0` with an integer `M < 2^53`. Quantizing to a grid of
//! step `2^k` splits it into an integer count `n` of steps and a discarded fraction, without any
//! intermediate rounding, so every format rounds each value exactly once.

use crate::round::Discarded;

/// `2^k` as an `f64`, for `k` in `-1074..=1023` (exact: normal or subnormal power of two).
#[inline]
pub(crate) fn pow2(k: i32) -> f64 {
    debug_assert!((-1074..=1023).contains(&k), "2^{k} is outside f64");
    if k >= -1022 {
        f64::from_bits(((k + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (k + 1074))
    }
}

/// The integer significand and the exponent of its last bit: `a = m * 2^e0`.
#[inline]
pub(crate) fn significand(a: f64) -> (u64, i32) {
    let bits = a.to_bits() & !(1u64 << 63);
    let field = (bits >> 52) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    if field == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), field - 1075)
    }
}

/// `floor(log2(a))` for a positive finite `a` (subnormals included).
#[inline]
pub(crate) fn exponent(a: f64) -> i32 {
    let (m, e0) = significand(a);
    63 - m.leading_zeros() as i32 + e0
}

/// Split a positive finite `a` on the grid of step `2^k`: `a = (n + f) 2^k` with `0 <= f < 1`.
/// The caller guarantees `n < 2^64`.
#[inline]
pub(crate) fn split(a: f64, k: i32) -> (u64, Discarded) {
    let (m, e0) = significand(a);
    let shift = k - e0;
    if shift <= 0 {
        return (m << (-shift) as u32, Discarded::EXACT);
    }
    let shift = shift as u32;
    // Place the significand with 32 guard bits so the first 32 fraction bits are exact.
    let wide = u128::from(m) << 32;
    if shift >= 120 {
        // Smaller than 2^-67 quanta: no fraction bit within the first 32 is set.
        return (
            0,
            Discarded {
                frac32: 0,
                sticky: m != 0,
            },
        );
    }
    // shift + 32 may reach 128 (for shift in 96..120): then no whole quantum remains.
    let n = wide.checked_shr(shift + 32).unwrap_or(0) as u64;
    let frac32 = (wide >> shift) as u32;
    let sticky = wide & ((1u128 << shift) - 1) != 0;
    (n, Discarded { frac32, sticky })
}
