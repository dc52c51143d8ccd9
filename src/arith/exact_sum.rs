//! An exact (Kulisch-style) accumulator for sums of products of `f32` values, the reference
//! `lpsim gemm` measures errors against.
//!
//! Every product of two `f32` values is `M 2^e` with `|M| < 2^48` and `e >= -350`, below
//! `2^256`; a 768-bit two's-complement fixed-point word with its last bit at `2^-400` holds any
//! sum of up to `2^100` of them exactly. [`ExactSum::round_to_odd`] reads the sum back as the
//! `f64` rounded to odd, from which one further rounding to any format of at most 51
//! significant bits is the correctly rounded exact sum (Boldo and Melquiond, IEEE TC 2008).

const WORDS: usize = 12;
const LSB: i32 = -400;

/// An exact sum of finite `f64` values in `2^-400 .. 2^360` (the products of `f32` values).
#[derive(Clone, Debug, Default)]
pub struct ExactSum {
    words: [u64; WORDS],
    /// Whether a value outside the exact range (or not finite) was added; the sum is then NaN.
    invalid: bool,
}

impl ExactSum {
    /// Zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `x` exactly.
    pub fn add(&mut self, x: f64) {
        if x == 0.0 {
            return;
        }
        let bits = x.to_bits();
        let field = ((bits >> 52) & 0x7ff) as i32;
        if field == 0x7ff {
            self.invalid = true;
            return;
        }
        let frac = bits & ((1u64 << 52) - 1);
        let (m, e) = if field == 0 {
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), field - 1075)
        };
        let offset = e - LSB;
        if offset < 0 || offset > 64 * (WORDS as i32 - 2) {
            self.invalid = true;
            return;
        }
        let (w, s) = ((offset / 64) as usize, (offset % 64) as u32);
        let wide = u128::from(m) << s;
        let parts = [wide as u64, (wide >> 64) as u64];
        if x > 0.0 {
            let mut carry = false;
            for (i, word) in self.words.iter_mut().enumerate().skip(w) {
                let add = parts.get(i - w).copied().unwrap_or(0);
                let (v, c1) = word.overflowing_add(add);
                let (v, c2) = v.overflowing_add(u64::from(carry));
                *word = v;
                carry = c1 || c2;
            }
        } else {
            let mut borrow = false;
            for (i, word) in self.words.iter_mut().enumerate().skip(w) {
                let sub = parts.get(i - w).copied().unwrap_or(0);
                let (v, b1) = word.overflowing_sub(sub);
                let (v, b2) = v.overflowing_sub(u64::from(borrow));
                *word = v;
                borrow = b1 || b2;
            }
        }
    }

    /// The sum rounded to odd at 53 bits (exact when it fits), `+0` for an exact zero.
    pub fn round_to_odd(&self) -> f64 {
        if self.invalid {
            return f64::NAN;
        }
        let negative = self.words[WORDS - 1] >> 63 == 1;
        let mut mag = self.words;
        if negative {
            let mut carry = true;
            for w in mag.iter_mut() {
                let (v, c) = (!*w).overflowing_add(u64::from(carry));
                *w = v;
                carry = c;
            }
        }
        let Some(top) = (0..WORDS).rev().find(|&i| mag[i] != 0) else {
            return 0.0;
        };
        let msb = top as i32 * 64 + 63 - mag[top].leading_zeros() as i32;
        // The 53 bits from msb down, and whether anything below them is set.
        let low = msb - 52;
        let bit = |i: i32| i >= 0 && (mag[(i / 64) as usize] >> (i % 64)) & 1 == 1;
        let mut m = 0u64;
        for i in (low..=msb).rev() {
            m = (m << 1) | u64::from(bit(i));
        }
        let sticky = (0..low.max(0)).any(bit);
        let m = m | u64::from(sticky);
        let v = m as f64 * 2f64.powi(low + LSB);
        if negative {
            -v
        } else {
            v
        }
    }
}
