//! Block formats with stochastic rounding on the `f32` carrier, one scale per block, in memory
//! order, judged on the way: column blocks (`size=col`: one shared scale per column of a
//! row-major tensor) and runs (`size=row`, `size=tensor` and any block length but the MX
//! block's, which [`SrBlock`] tiles: consecutive elements).
//!
//! The block maxima come from one pass ([`maxima_bits_f32`]: a running maximum of magnitude
//! bits per column, or one per run); each element is then rounded as [`SrBlock`] rounds the
//! elements of a 32-element block, with its block's scale: `x 2^-s` (exact where it matters,
//! see [`SCALED_KMIN_SR`]), the element grid's [`SrGrid`] with the random word of the element's
//! index in the tensor, and `2^s` back. Consecutive elements have consecutive indices, so the
//! random words come in 32-bit lanes. The kernel declines (`None`, nothing written) where
//! `SrBlock` would: a block maximum that is subnormal, infinite or NaN, a shared exponent
//! whose scale or inverse is not a normal `f32`, indices that cross a multiple of 2^32; an
//! all-zero block rounds to zeros at any scale.
//!
//! **Range events on the way.** With `y = x 2^-s` the scaled value and `o` the stored one, the
//! judgement of [`crate::format::range_events_f32`] is, per element: saturated where `y` lies
//! outside the element's range `[lo, hi]`, else flushed where `o == 0` and `x != 0` (the
//! block's range is the element's times `2^s`, and `x` is finite: blocks holding infinities or
//! NaN are declined). None is NaN: a value in range rounds to a value of the grid no larger in
//! magnitude than the element's largest, itself a value of the grid, so it is never stored as
//! an overflow (the only way a finite value becomes NaN, in `e4m3fn`). Comparing `y` with the
//! element's bounds is comparing `x` with the block's: scaling by a power of two is exact, or,
//! for a `y` below `2^-126`, rounds a value far inside the range. So the kernel counts them in
//! the rounding pass instead of a second pass over both buffers, where the element's bounds
//! are `f32` values (else it leaves the judging to the caller).

use super::*;
use crate::format::block_fast::maxima_bits_f32;
use crate::format::range::element_range_f32;
use crate::format::RangeCounts;

/// Round `input` (a whole tensor with rows of `row_len`, or whole blocks of it starting at
/// element `offset`) to the block format `b` with one scale per block; see the module docs.
/// `None` where the kernel declines (nothing written), else the range events it judged
/// (`None` where it did not judge).
pub(super) fn quantize_scaled(
    q: &Quantizer,
    b: &BlockFormat,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
    row_len: usize,
) -> Option<Option<RangeCounts>> {
    let Rounding::Stochastic { bits } = q.rounding() else {
        return None;
    };
    let base = match b.element() {
        Element::Float(f) => Grid::float(&f, q.rounding()),
        Element::Fixed(f) => Grid::fixed(&f),
    };
    let grid = base
        .filter(|g| g.kmin >= SCALED_KMIN_SR)
        .and_then(|g| SrGrid::new(&g, bits))?;
    let len = input.len() as u64;
    if len == 0 || (offset >> 32) != ((offset + len - 1) >> 32) {
        return None;
    }
    let col = b.size() == BlockSize::Col;
    let blocks = b.block_count(input.len(), row_len);
    let n = if col {
        0
    } else {
        b.block_len(input.len(), row_len)
    };
    let mut amax = vec![0u32; blocks];
    maxima_bits_f32(input, &mut amax, n);
    let (mut down, mut up) = (Vec::with_capacity(blocks), Vec::with_capacity(blocks));
    for &m in &amax {
        let s = (m >> 23) as i32 - 127 - b.emax_elem();
        if m == 0 {
            // Zeros round to zeros whatever the scale.
            down.push(1.0);
            up.push(1.0);
        } else if (0x0080_0000..0x7f80_0000).contains(&m) && (-126..=126).contains(&s) {
            down.push(pow2f_normal(-s));
            up.push(pow2f_normal(s));
        } else {
            return None;
        }
    }
    let stream = q.stream();
    let bounds = element_range_f32(&b.element());
    let (lo, hi) = bounds.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
    let words = Words {
        grid,
        mirrored: grid.grid.mirrored(),
        stream,
        key: stream.high_key((offset >> 32) as u32),
        first: offset as u32,
        lo,
        hi,
    };
    let [saturated, flushed] = if col {
        run_cols(&words, input, out, &down, &up)
    } else {
        run_runs(&words, input, out, n, &down, &up)
    };
    Some(bounds.map(|_| RangeCounts {
        values: len,
        saturated,
        flushed,
        nan: 0,
    }))
}

/// The element grid's stochastic rounding, where the random words start (element `k` of the
/// tensor draws the word of index `first + k`, whose high half has the key `key`), and the
/// element's range `[lo, hi]` the range events are judged against.
#[derive(Clone, Copy)]
struct Words {
    grid: SrGrid,
    mirrored: bool,
    stream: RandomStream,
    key: u32,
    first: u32,
    lo: f32,
    hi: f32,
}

impl Words {
    /// Element `x` with the random word of index `lo` and its block's scales: the stored
    /// value, and `[saturated, flushed]` of its judgement (see the module docs).
    #[inline(always)]
    fn round(&self, x: f32, lo: u32, down: f32, up: f32) -> (f32, [u32; 2]) {
        let y = x * down;
        let word = self.stream.bits_keyed(lo, self.key);
        let q = if self.mirrored {
            self.grid.element::<true, false>(y.to_bits(), word)
        } else {
            self.grid.element::<false, false>(y.to_bits(), word)
        };
        let o = f32::from_bits(q) * up;
        let inside = y >= self.lo && y <= self.hi;
        let judged = [
            u32::from(!inside),
            u32::from(inside & (o == 0.0) & (x != 0.0)),
        ];
        (o, judged)
    }
}

/// Add a row's `[saturated, flushed]` to the tensor's.
#[inline(always)]
fn add(sum: &mut [u64; 2], row: [u32; 2]) {
    for (s, r) in sum.iter_mut().zip(row) {
        *s += u64::from(r);
    }
}

/// The element pass of column blocks: row after row, element `i` of a row with its column's
/// scales. Narrow tensors are taken [`ROW_GROUP`] elements of whole rows at a time, with the
/// scales repeated to match, so the inner loop is long enough to fill vectors (a row of ten
/// columns is not). Counts are summed per group in `u32` lanes (a group is far shorter than
/// 2^32).
#[inline(always)]
fn run_cols_portable(
    w: &Words,
    input: &[f32],
    out: &mut [f32],
    down: &[f32],
    up: &[f32],
) -> [u64; 2] {
    let cols = down.len();
    let rows = (ROW_GROUP / cols).max(1);
    let (down, up) = (down.repeat(rows), up.repeat(rows));
    let group = rows * cols;
    let mut sum = [0u64; 2];
    for (r, (ir, or)) in input.chunks(group).zip(out.chunks_mut(group)).enumerate() {
        let lo = w.first.wrapping_add((r * group) as u32);
        let mut row = [0u32; 2];
        for (i, (((o, &x), &d), &u)) in or.iter_mut().zip(ir).zip(&down).zip(&up).enumerate() {
            let (v, [a, b]) = w.round(x, lo.wrapping_add(i as u32), d, u);
            *o = v;
            row = [row[0] + a, row[1] + b];
        }
        add(&mut sum, row);
    }
    sum
}

/// The fewest elements of whole rows [`run_cols`] takes at a time (a few vectors' worth).
const ROW_GROUP: usize = 128;

/// The element pass of runs of `n` consecutive elements, block `j` with the scales `down[j]`
/// and `up[j]`.
#[inline(always)]
fn run_runs_portable(
    w: &Words,
    input: &[f32],
    out: &mut [f32],
    n: usize,
    down: &[f32],
    up: &[f32],
) -> [u64; 2] {
    let mut sum = [0u64; 2];
    let blocks = input
        .chunks(n)
        .zip(out.chunks_mut(n))
        .zip(down.iter().zip(up));
    for (j, ((ib, ob), (&d, &u))) in blocks.enumerate() {
        let lo = w.first.wrapping_add((j * n) as u32);
        let mut row = [0u32; 2];
        for (i, (o, &x)) in ob.iter_mut().zip(ib).enumerate() {
            let (v, [a, b]) = w.round(x, lo.wrapping_add(i as u32), d, u);
            *o = v;
            row = [row[0] + a, row[1] + b];
        }
        add(&mut sum, row);
    }
    sum
}

multiversion!(run_cols => run_cols_portable, (w: &Words, input: &[f32], out: &mut [f32], down: &[f32], up: &[f32]) -> [u64; 2]);
multiversion!(run_runs => run_runs_portable, (w: &Words, input: &[f32], out: &mut [f32], n: usize, down: &[f32], up: &[f32]) -> [u64; 2]);
