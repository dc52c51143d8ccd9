//! A fast path for block formats with fixed-point elements (bfp, MXINT8) on `f64` carriers, any
//! block grouping (`size=col` included) and any rounding unit, bit-identical to the reference
//! ([`BlockFormat::quantize_block`] through [`BlockFormat::for_each_block`]).
//!
//! The reference copies each column of a `size=col` tensor out and back and rounds every
//! element through the general split (`exact::split`, `i128` counts). Here the shared exponents
//! are found in one pass over the tensor in memory order (a column's maximum is a running
//! maximum per column, row after row), and the elements are rounded in a second pass in memory
//! order, so element `k` of the tensor draws the random word `stream.bits(offset + k)` from a
//! contiguous run, as the reference's `pos.index(i)` does. Per element, with `y = x 2^-s` the
//! same product the reference forms:
//! - `t = |y| 2^fl` is exact (a power-of-two scaling of a value far from the `f64` limits, checked),
//!   `n = floor(t)` and the fraction `t - n` are exact (`t < 2^62`), and the fraction's first 32
//!   bits and its sticky bit are read off `frac 2^32`, also exact: the same `Discarded` as
//!   `exact::split`, so the one decision rule ([`Rounding::round_up`]) gives the same carry;
//! - the signed count is clamped to the element's integer range (elements of a block saturate),
//!   and the value is rebuilt with the reference's two multiplications (`count 2^-fl`, then
//!   `2^s`), so even a result that rounds in the carrier rounds the same way.
//!
//! A block holding a NaN or an infinity, or an element whose scaled value leaves the range where
//! the above is exact, make the whole call decline (`false`, nothing
//! written); the caller then takes the reference path.
//!
//! Scalar fixed point (saturating, at most 62 bits) takes the same path as one block of scale
//! 1 ([`quantize_fixed_f64`]): the reference's [`FixedFormat::quantize`] rounds the same way
//! through `exact::split`.

use crate::format::exact::pow2;
use crate::format::{BlockFormat, BlockKind, BlockSize, Element, FixedFormat};
use crate::round::{Discarded, RandomStream, Rounding};
use crate::simd::multiversion;

/// The largest `t = |y| 2^fl` handled: counts stay far inside `i64` and `t - floor(t)` is exact.
const T_MAX: f64 = (1u64 << 62) as f64;
/// Below this (and non-zero) `t` could be an inexact subnormal: declined.
const T_MIN: f64 = 1.0e-250;

/// The largest magnitude of each block of `input` (rows of `row_len`), a NaN or an infinity
/// where the block holds one, in block order; and whether the blocks are columns (block `k %
/// blocks` holds element `k`; else block `k / block_len`). One pass in memory order: a column's
/// maximum is a running maximum per column, row after row.
pub(crate) fn block_maxima(b: &BlockFormat, input: &[f64], row_len: usize) -> (Vec<f64>, bool) {
    let fill = |maxima: &mut [u64], n| maxima_bits(input, maxima, n);
    maxima_with(b, input.len(), row_len, fill, f64::from_bits)
}

/// [`block_maxima`] of `f32` values (the maxima widened to `f64`, exactly).
pub(crate) fn block_maxima_f32(b: &BlockFormat, input: &[f32], row_len: usize) -> (Vec<f64>, bool) {
    let fill = |maxima: &mut [u32], n| maxima_bits_f32(input, maxima, n);
    maxima_with(b, input.len(), row_len, fill, |m| {
        f64::from(f32::from_bits(m))
    })
}

/// The blocks of a tensor of `len` values: `fill` writes each block's largest magnitude bits
/// (`n` the block length, 0 for columns), `widen` reads them as an `f64`.
fn maxima_with<B: Copy + Default>(
    b: &BlockFormat,
    len: usize,
    row_len: usize,
    fill: impl FnOnce(&mut [B], usize),
    widen: impl Fn(B) -> f64,
) -> (Vec<f64>, bool) {
    let (blocks, col) = (b.block_count(len, row_len), b.size() == BlockSize::Col);
    let mut maxima = vec![B::default(); blocks];
    fill(&mut maxima, if col { 0 } else { b.block_len(len, row_len) });
    (maxima.into_iter().map(widen).collect(), col)
}

/// [`block_maxima`] on magnitude bit patterns, whose integer order is the order of the
/// magnitudes with every NaN above infinity: an integer maximum, which vectorizes (a
/// floating-point one would drop NaNs, and its reduction could not be reordered). `n == 0`:
/// columns, `maxima.len()` of them.
#[inline(always)]
fn maxima_bits_portable<T: Copy, B: Copy + Ord + Default>(
    input: &[T],
    maxima: &mut [B],
    n: usize,
    magnitude: impl Fn(T) -> B,
) {
    if n == 0 {
        for row in input.chunks(maxima.len()) {
            for (m, &x) in maxima.iter_mut().zip(row) {
                *m = (*m).max(magnitude(x));
            }
        }
    } else {
        for (m, block) in maxima.iter_mut().zip(input.chunks(n)) {
            *m = block.iter().fold(B::default(), |m, &x| m.max(magnitude(x)));
        }
    }
}

/// [`maxima_bits_portable`] on `f64` bit patterns.
#[inline(always)]
fn maxima_bits_f64(input: &[f64], maxima: &mut [u64], n: usize) {
    maxima_bits_portable(input, maxima, n, |x: f64| x.to_bits() & !(1u64 << 63));
}

/// [`maxima_bits_portable`] on `f32` bit patterns.
#[inline(always)]
fn maxima_bits_f32_portable(input: &[f32], maxima: &mut [u32], n: usize) {
    maxima_bits_portable(input, maxima, n, |x: f32| x.to_bits() & !(1u32 << 31));
}

multiversion!(maxima_bits => maxima_bits_f64, (input: &[f64], maxima: &mut [u64], n: usize));
multiversion!(pub(crate) maxima_bits_f32 => maxima_bits_f32_portable, (input: &[f32], maxima: &mut [u32], n: usize));

/// Quantize `input` (a whole tensor, or a piece of whole blocks starting at global index
/// `offset`, rows of `row_len`) to the block format `b` with `rounding` and `stream`; `false`
/// (nothing written) when the fast path does not apply.
pub(crate) fn quantize_blocks_f64(
    b: &BlockFormat,
    rounding: Rounding,
    stream: RandomStream,
    input: &[f64],
    out: &mut [f64],
    offset: u64,
    row_len: usize,
) -> bool {
    let Element::Fixed(f) = b.element() else {
        return false;
    };
    // QPyTorch's block rounding has its own f32 arithmetic (the reference path).
    if b.kind() == BlockKind::QBfp {
        return false;
    }
    let Some(plan) = Plan::fixed(&f, rounding, stream, offset).filter(|_| !input.is_empty()) else {
        return false;
    };
    let len = input.len();
    let (maxima, col) = block_maxima(b, input, row_len);
    // Per block: `2^-s` (the reference's `up`) and `2^s` (`down`) of its shared exponent (the
    // reference's: the block maximum's, clamped; its elements then saturate, or leave the
    // checked range and decline).
    let mut scale = Vec::with_capacity(maxima.len());
    for &m in &maxima {
        match b.shared_exponent(std::iter::once(m)) {
            Some(s) => scale.push((pow2(-s), pow2(s))),
            None => return false,
        }
    }
    // Column blocks in memory order with a scale per column (`0`), but a single column as one
    // block (the same elements, scale and words, without a row's setup per element).
    let n = match (col, scale.len()) {
        (true, 1) => len,
        (true, _) => 0,
        _ => b.block_len(len, row_len),
    };
    run(&plan, input, out, &scale, n)
}

/// Scalar fixed point on the same shortcut, as one block of scale 1 (the reference's
/// [`FixedFormat::quantize`] without its 128-bit integers, branch-free so it vectorizes):
/// `false` (nothing usable written) for a wrapping format, words over 62 bits, or a value the
/// shortcut is not exact for (a NaN, an infinity, at least 2^62 steps, below 10^-250 of a
/// step), which the caller then rounds with the reference.
pub(crate) fn quantize_fixed_f64(
    f: &FixedFormat,
    rounding: Rounding,
    stream: RandomStream,
    input: &[f64],
    out: &mut [f64],
    offset: u64,
) -> bool {
    match Plan::fixed(f, rounding, stream, offset) {
        Some(plan) if !input.is_empty() => run(&plan, input, out, &[(1.0, 1.0)], input.len()),
        _ => false,
    }
}

/// The element grid (`2^fl`, the step `2^-fl`, the integer range of a count), the rounding
/// unit and its stream, and the global index of the first element.
#[derive(Clone, Copy)]
struct Plan {
    fl: f64,
    step: f64,
    lo: i64,
    hi: i64,
    rounding: Rounding,
    stream: RandomStream,
    offset: u64,
}

impl Plan {
    /// The plan of fixed-point elements `f`: `None` for a wrapping format or words over 62
    /// bits, which the shortcut does not take.
    fn fixed(
        f: &FixedFormat,
        rounding: Rounding,
        stream: RandomStream,
        offset: u64,
    ) -> Option<Plan> {
        if !f.saturate() || f.wl() > 62 {
            return None;
        }
        let (lo, hi) = f.int_range();
        Some(Plan {
            fl: pow2(f.fl()),
            step: f.step(),
            lo: lo as i64,
            hi: hi as i64,
            rounding,
            stream,
            offset,
        })
    }

    /// The carrier value of `x` in a block with scale `(up, down)`, and whether the shortcut
    /// is exact for it (else the value is not used). Without branches, so a row vectorizes.
    #[inline(always)]
    fn element(
        &self,
        x: f64,
        (up, down): (f64, f64),
        random: u32,
        round_up: impl Fn(bool, bool, Discarded, u32) -> bool,
    ) -> (f64, bool) {
        let y = x * up;
        let negative = y < 0.0;
        let t = y.abs() * self.fl;
        let exact = (t < T_MAX) & ((t >= T_MIN) | (t == 0.0));
        // In range `t < 2^62`, so the conversions are exact floors (out of range they saturate,
        // and the value is discarded).
        let whole = t as i64;
        let frac = (t - whole as f64) * 4_294_967_296.0;
        let frac32 = frac as i64;
        let d = Discarded {
            frac32: frac32 as u32,
            sticky: frac32 as f64 != frac,
        };
        let count = whole + i64::from(round_up(negative, whole & 1 == 1, d, random));
        let signed = if negative { -count } else { count };
        (
            (signed.clamp(self.lo, self.hi) as f64) * self.step * down,
            exact,
        )
    }

    /// Round one run of elements whose first has the global index `first`, each with its
    /// scale; whether every element was exact.
    #[inline(always)]
    fn row(
        &self,
        input: &[f64],
        out: &mut [f64],
        scale: impl Iterator<Item = (f64, f64)>,
        words: impl Fn(usize) -> u32,
        round_up: impl Fn(bool, bool, Discarded, u32) -> bool + Copy,
    ) -> bool {
        let mut exact = true;
        for (i, ((o, &x), s)) in out.iter_mut().zip(input).zip(scale).enumerate() {
            let (v, ok) = self.element(x, s, words(i), round_up);
            *o = v;
            exact &= ok;
        }
        exact
    }

    /// [`Plan::row`] with the random words of `stream` from index `first` (in 32-bit lanes
    /// when the low half of the index does not wrap inside the run), or none.
    #[inline(always)]
    fn row_drawing(
        &self,
        input: &[f64],
        out: &mut [f64],
        scale: impl Iterator<Item = (f64, f64)>,
        draw: Option<(RandomStream, u64)>,
        round_up: impl Fn(bool, bool, Discarded, u32) -> bool + Copy,
    ) -> bool {
        let Some((stream, first)) = draw else {
            return self.row(input, out, scale, |_| 0, round_up);
        };
        let lo = first as u32;
        if u32::MAX - lo >= input.len().saturating_sub(1) as u32 && input.len() <= 1 << 31 {
            let key = stream.high_key((first >> 32) as u32);
            let words = move |i: usize| stream.bits_keyed(lo.wrapping_add(i as u32), key);
            self.row(input, out, scale, words, round_up)
        } else {
            let words = move |i: usize| stream.bits(first + i as u64);
            self.row(input, out, scale, words, round_up)
        }
    }
}

/// The element pass in memory order: element `k` is in block `k % blocks` (columns, `n == 0`)
/// or `k / n`; whether every element was exact.
#[inline(always)]
fn run_portable(
    plan: &Plan,
    input: &[f64],
    out: &mut [f64],
    scale: &[(f64, f64)],
    n: usize,
) -> bool {
    let (rounding, stream, offset) = (plan.rounding, plan.stream, plan.offset);
    macro_rules! pass {
        ($mode:expr) => {{
            let mode = $mode;
            let rule = move |neg, odd, d, w| Rounding::round_up(mode, neg, odd, d, w);
            let draw = |first: u64| mode.is_stochastic().then_some((stream, first));
            let mut exact = true;
            if n == 0 {
                let cols = scale.len();
                for (r, (ir, or)) in input.chunks(cols).zip(out.chunks_mut(cols)).enumerate() {
                    let first = offset + (r * cols) as u64;
                    let s = scale.iter().copied();
                    exact &= plan.row_drawing(ir, or, s, draw(first), rule);
                }
            } else {
                for (j, ((ib, ob), &s)) in input
                    .chunks(n)
                    .zip(out.chunks_mut(n))
                    .zip(scale)
                    .enumerate()
                {
                    let first = offset + (j * n) as u64;
                    let s = std::iter::repeat(s);
                    exact &= plan.row_drawing(ib, ob, s, draw(first), rule);
                }
            }
            exact
        }};
    }
    match rounding {
        Rounding::NearestEven => pass!(Rounding::NearestEven),
        Rounding::NearestAway => pass!(Rounding::NearestAway),
        Rounding::TowardZero => pass!(Rounding::TowardZero),
        Rounding::Up => pass!(Rounding::Up),
        Rounding::Down => pass!(Rounding::Down),
        Rounding::Odd => pass!(Rounding::Odd),
        Rounding::Stochastic { bits } => pass!(Rounding::Stochastic { bits }),
    }
}

multiversion!(run => run_portable, (plan: &Plan, input: &[f64], out: &mut [f64], scale: &[(f64, f64)], n: usize) -> bool);

#[cfg(test)]
mod tests {
    //! Which tensors the fast path takes (its values are checked against the reference in
    //! `tests/fast_paths.rs`).

    use super::*;
    use crate::format::{parse, Format};

    fn takes(spec: &str, x: &[f64], row: usize) -> bool {
        let Ok(Format::Block(b)) = parse(spec) else {
            panic!("{spec} is a block format")
        };
        let stream = RandomStream::new(1, 2);
        let mut out = vec![0.0; x.len()];
        let r = Rounding::Stochastic { bits: 8 };
        quantize_blocks_f64(&b, r, stream, x, &mut out, 0, row)
    }

    #[test]
    fn takes_ordinary_tensors_and_declines_specials() {
        let x: Vec<f64> = (0..96).map(|i| (f64::from(i) - 40.0) * 0.013).collect();
        for spec in [
            "bfp:wl=8,size=col",
            "bfp:wl=8,size=row",
            "mxint8",
            "bfp:wl=4,size=5",
        ] {
            assert!(takes(spec, &x, 12), "{spec}");
            let mut bad = x.clone();
            bad[30] = f64::NAN;
            assert!(!takes(spec, &bad, 12), "{spec} with a NaN");
            bad[30] = f64::INFINITY;
            assert!(!takes(spec, &bad, 12), "{spec} with an infinity");
        }
        assert!(
            !takes("mxfp8", &x, 12),
            "float elements have no f64 fast path"
        );
    }
}
