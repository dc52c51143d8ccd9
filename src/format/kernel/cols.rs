//! Column blocks (`size=col`: one shared scale per column of a row-major tensor) on the `f32`
//! carrier with stochastic rounding, in memory order.
//!
//! The column maxima come from one pass over the rows (a running maximum of magnitude bits per
//! column); each element is then rounded as [`SrBlock`] rounds the elements of a 32-element
//! block, with its column's scale: `x 2^-s` (exact where it matters, see [`SCALED_KMIN_SR`]),
//! the element grid's [`SrGrid`] with the random word of the element's index in the tensor,
//! and `2^s` back. Rows are consecutive indices, so the random words come in 32-bit lanes. The
//! kernel declines (`false`, nothing written) where `SrBlock` would: a column maximum that is
//! subnormal, infinite or NaN, a shared exponent whose scale or inverse is not a normal `f32`,
//! indices that cross a multiple of 2^32; an all-zero column rounds to zeros at any scale.

use super::*;

/// Round `input` (a whole tensor with rows of `row_len`) to the column-block format `b`; see
/// the module docs.
pub(super) fn quantize_cols(
    q: &Quantizer,
    b: &BlockFormat,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
    row_len: usize,
) -> bool {
    let Rounding::Stochastic { bits } = q.rounding() else {
        return false;
    };
    let base = match b.element() {
        Element::Float(f) => Grid::float(&f, q.rounding()),
        Element::Fixed(f) => Grid::fixed(&f),
    };
    let Some(grid) = base
        .filter(|g| g.kmin >= SCALED_KMIN_SR)
        .and_then(|g| SrGrid::new(&g, bits))
    else {
        return false;
    };
    let len = input.len() as u64;
    if len == 0 || (offset >> 32) != ((offset + len - 1) >> 32) {
        return false;
    }
    let cols = b.block_count(input.len(), row_len);
    let mut amax = vec![0u32; cols];
    for row in input.chunks(cols) {
        for (m, x) in amax.iter_mut().zip(row) {
            *m = (*m).max(x.to_bits() & 0x7fff_ffff);
        }
    }
    let (mut down, mut up) = (Vec::with_capacity(cols), Vec::with_capacity(cols));
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
            return false;
        }
    }
    let stream = q.stream();
    let words = Words {
        grid,
        mirrored: grid.grid.mirrored(),
        stream,
        key: stream.high_key((offset >> 32) as u32),
        first: offset as u32,
    };
    run_cols(&words, input, out, &down, &up);
    true
}

/// The element grid's stochastic rounding and where the random words start: element `k` of the
/// tensor draws the word of index `first + k`, whose high half has the key `key`.
#[derive(Clone, Copy)]
struct Words {
    grid: SrGrid,
    mirrored: bool,
    stream: RandomStream,
    key: u32,
    first: u32,
}

/// The element pass: row after row, element `i` of a row with its column's scales.
#[inline(always)]
fn run_cols_portable(w: &Words, input: &[f32], out: &mut [f32], down: &[f32], up: &[f32]) {
    let Words {
        grid,
        mirrored,
        stream,
        key,
        first,
    } = *w;
    let cols = down.len();
    for (r, (ir, or)) in input.chunks(cols).zip(out.chunks_mut(cols)).enumerate() {
        let lo = first.wrapping_add((r * cols) as u32);
        for (i, (((o, x), d), u)) in or.iter_mut().zip(ir).zip(down).zip(up).enumerate() {
            let y = (x * d).to_bits();
            let word = stream.bits_keyed(lo.wrapping_add(i as u32), key);
            let q = if mirrored {
                grid.element::<true, false>(y, word)
            } else {
                grid.element::<false, false>(y, word)
            };
            *o = f32::from_bits(q) * u;
        }
    }
}

multiversion!(run_cols => run_cols_portable, (w: &Words, input: &[f32], out: &mut [f32], down: &[f32], up: &[f32]));
