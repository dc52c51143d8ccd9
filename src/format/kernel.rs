//! Vectorized `f32` slice kernels for float, saturating fixed-point and block formats.
//!
//! Every such format is, for one value, a grid: steps of `2^k` where `k` is the larger of the
//! value's binade minus the mantissa width and the format's smallest step (`emin - m` for floats,
//! `-fl` for fixed point). The kernel works on the `f32` bit pattern: it splits the significand at
//! the grid with shifts, asks the shared rounding rule ([`Rounding::round_up`]) for the last bit,
//! rebuilds the value with one exact multiply by `2^k`, and selects overflow and special results.
//! There are no branches per element, so the compiler vectorizes the loop; it is compiled once for
//! AVX-512 and once for AVX2 and picked at run time. The nearest-even loops write a large output
//! whole cache lines at a time with non-temporal stores, as `memcpy` does, so the output is not
//! read into the cache before it is overwritten; MX blocks go through a small buffer to get there,
//! and prefetch their input. A kernel returns `false` when it has no fast path and the caller takes
//! the exact `f64` reference path; `tests/quantizer.rs` proves the two paths agree bit for bit.

use crate::format::{BlockFormat, Element, FixedFormat, FloatFormat, Format, Quantizer, Special};
use crate::round::{Discarded, RandomStream, Rounding};
use crate::simd::{multiversion, prefetch, Isa, LINE};

/// One grid and its range rules, in the `f32` domain.
#[derive(Clone, Copy, Debug)]
struct Grid {
    /// Mantissa bits (a fixed-point grid uses a width larger than any binade, 255).
    m: i32,
    /// Exponent of the smallest step.
    kmin: i32,
    /// Largest magnitude of a positive / negative result.
    max_pos: f32,
    max_neg: f32,
    /// Results for overflow, NaN and infinity inputs, by sign: `[positive, negative]`.
    overflow: [u32; 2],
    nan: [u32; 2],
    inf: [u32; 2],
    /// Whether a zero result drops its sign (fnuz floats, fixed point).
    unsigned_zero: bool,
}

impl Grid {
    fn float(f: &FloatFormat, r: Rounding) -> Option<Grid> {
        if !(f.fits_f32() && f.subnormals() && f.signed() && f.has_zero()) {
            return None;
        }
        let l = f.limits();
        let bits = |v: f64| (v as f32).to_bits();
        Some(Grid {
            m: f.man_bits() as i32,
            kmin: l.emin - f.man_bits() as i32,
            max_pos: l.max as f32,
            max_neg: l.max as f32,
            overflow: [
                bits(f.overflow_value(&l, false, r)),
                bits(f.overflow_value(&l, true, r)),
            ],
            nan: [bits(f.nan_value(false)), bits(f.nan_value(true))],
            inf: [
                bits(f.infinity_value(&l, false)),
                bits(f.infinity_value(&l, true)),
            ],
            unsigned_zero: f.special() == Special::Fnuz,
        })
    }

    fn fixed(f: &FixedFormat) -> Option<Grid> {
        if !(f.fits_f32() && f.saturate()) {
            return None;
        }
        let (max_pos, min) = (f.max_value() as f32, f.min_value() as f32);
        // `abs` keeps an unsigned format's limit at +0 (the limits compare as bit patterns).
        let max_neg = min.abs();
        let zero = 0.0f32.to_bits();
        Some(Grid {
            m: 255,
            kmin: -f.fl(),
            max_pos,
            max_neg,
            overflow: [max_pos.to_bits(), min.to_bits()],
            nan: [zero, zero],
            inf: [max_pos.to_bits(), min.to_bits()],
            unsigned_zero: true,
        })
    }

    /// This grid scaled by `2^s` (a block's shared scale); `None` when the scaled grid leaves
    /// the range where `f32` subnormal inputs are handled exactly.
    fn scaled(&self, s: i32) -> Option<Grid> {
        let kmin = self.kmin + s;
        if kmin < -149 || (self.m < 255 && kmin < -126 - self.m) {
            return None;
        }
        let up = pow2f(s);
        let (max_pos, max_neg) = (self.max_pos * up, self.max_neg * up);
        Some(Grid {
            kmin,
            max_pos,
            max_neg,
            overflow: [max_pos.to_bits(), (-max_neg).to_bits()],
            ..*self
        })
    }
}

/// The negative or positive entry of a `[positive, negative]` pair, with masks rather than a
/// select, which the compiler would turn into a per-lane gather from the grid.
#[inline(always)]
fn pick(negative: bool, pair: [u32; 2]) -> u32 {
    let mask = 0u32.wrapping_sub(u32::from(negative));
    pair[0] ^ ((pair[0] ^ pair[1]) & mask)
}

impl Grid {
    /// Whether every negative result is its positive mirror with the sign bit set (overflow,
    /// infinity and NaN results included) and zeros keep their sign: true of IEEE and `fn`
    /// floats, not of `fnuz`, of formats without NaN, or of fixed point.
    fn mirrored(&self) -> bool {
        let sign = 0x8000_0000;
        self.max_pos == self.max_neg
            && !self.unsigned_zero
            && [self.overflow, self.inf, self.nan]
                .iter()
                .all(|[p, n]| p & sign == 0 && *n == p | sign)
    }

    /// Whether [`element_rne`] applies: a float grid whose nearest-even rounding point is inside
    /// the `f32` significand and whose subnormal step and "magic" constant are normal `f32`s.
    fn has_fast_rne(&self) -> bool {
        self.m < 23 && self.kmin + self.m >= -126 && self.kmin + 23 <= 127
    }
}

/// `2^k` for `k` in `-149..=127`.
#[inline(always)]
fn pow2f(k: i32) -> f32 {
    if k >= -126 {
        f32::from_bits(((k + 127) as u32) << 23)
    } else {
        f32::from_bits(1u32 << (k + 149).clamp(0, 22))
    }
}

/// Quantize one `f32` bit pattern on grid `g`.
#[inline(always)]
fn element(g: &Grid, r: Rounding, x: u32, random: u32) -> u32 {
    let sign = x & 0x8000_0000;
    let negative = sign != 0;
    let abs = x & 0x7fff_ffff;
    let field = (abs >> 23) as i32;
    // The value is sig * 2^eff exactly (subnormal inputs have no implicit bit).
    let eff = field.max(1) - 150;
    let sig = if field == 0 {
        abs
    } else {
        (abs & 0x007f_ffff) | 0x0080_0000
    };
    let k = (eff + 23 - g.m).max(g.kmin).max(eff);
    // Split at the grid with 32-bit shifts only: `sig` has at most 24 bits, so the first 32
    // fraction bits are `sig << (32 - s)` up to s = 32 and `sig >> (s - 32)` beyond, where the
    // bits shifted out are the sticky bit.
    let s = (k - eff).min(63) as u32;
    let n = sig >> s.min(31);
    let (near, far) = (s <= 32, s > 32);
    let below = (s.max(32) - 32).min(31);
    let frac32 = if near && s > 0 {
        sig << ((32 - s) & 31)
    } else if far {
        sig >> below
    } else {
        0
    };
    let d = Discarded {
        frac32,
        sticky: far && sig & ((1u32 << below) - 1) != 0,
    };
    let n = n + u32::from(r.round_up(negative, n & 1 == 1, d, random));
    let v = n as f32 * pow2f(k);
    finish(g, x, v.to_bits())
}

/// The result of input `x` whose magnitude rounded to `q` (an `f32` bit pattern, possibly
/// infinity): overflow, the sign, a zero's sign, and infinity and NaN inputs, all as selects.
#[inline(always)]
fn finish(g: &Grid, x: u32, q: u32) -> u32 {
    let sign = x & 0x8000_0000;
    let negative = sign != 0;
    let abs = x & 0x7fff_ffff;
    // Positive floats order as their bit patterns, so the limit compares as an integer.
    let limit = pick(negative, [g.max_pos.to_bits(), g.max_neg.to_bits()]);
    let mut out = if q > limit {
        pick(negative, g.overflow)
    } else {
        q | sign
    };
    if g.unsigned_zero && out & 0x7fff_ffff == 0 {
        out = 0;
    }
    if abs == 0x7f80_0000 {
        out = pick(negative, g.inf);
    }
    if abs > 0x7f80_0000 {
        out = pick(negative, g.nan);
    }
    out
}

/// Round-to-nearest-even of an `f32` into a float format, for other kernels (the narrow-float
/// accumulator of `arith`): the same rule as this module's nearest-even path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RneF32(Grid);

impl RneF32 {
    /// `None` unless the format has the fast, mirrored nearest-even path (fits `f32`,
    /// subnormals, signed, a zero, at most 22 mantissa bits, a smallest step at or above
    /// `2^-149`, IEEE or `fn` specials).
    pub(crate) fn new(f: &FloatFormat) -> Option<Self> {
        let g = Grid::float(f, Rounding::NearestEven)?;
        (g.has_fast_rne() && g.mirrored()).then_some(RneF32(g))
    }

    /// `x` rounded to nearest-even, with the format's overflow, NaN and infinity rules.
    #[inline(always)]
    pub(crate) fn round(&self, x: f32) -> f32 {
        f32::from_bits(element_rne_mirrored(&self.0, x.to_bits()))
    }

    /// The bits of a magnitude (`f32` bits without the sign) rounded to nearest-even, exact for
    /// finite values, for a format of at most 21 mantissa bits whose overflow is non-finite;
    /// infinity, NaN, and magnitudes so large that the rounding constant overflows give a
    /// non-finite value, which is all a caller needs when it redoes any non-finite result
    /// exactly. One rule covers normal and subnormal results: with `E` the larger of the
    /// exponent of `abs` and the format's smallest normal exponent, `c = 1.5 2^(E + 23 - m)` has
    /// a step of `2^(E - m)` and `abs < c / 3`, so `(abs + c) - c` is `abs` rounded to that step
    /// by the processor's own round-to-nearest-even.
    #[inline(always)]
    pub(crate) fn round_magnitude_sticky(&self, abs: u32) -> u32 {
        let g = &self.0;
        let min_normal = pow2f(g.kmin + g.m).to_bits();
        let scale = f32::from_bits((abs & 0x7f80_0000).max(min_normal));
        let c = scale * (1.5 * pow2f(23 - g.m));
        let x = f32::from_bits(abs);
        let q = ((x + c) - c).to_bits();
        if q > g.max_pos.to_bits() {
            g.overflow[0]
        } else {
            q
        }
    }
}

/// Round-to-nearest-even on a float grid, the most common conversion, in fewer operations:
/// in the normal range the rounding point is a fixed bit of the `f32` pattern, so adding
/// `half - 1 + lsb` and masking rounds (a carry correctly bumps the exponent); below the smallest
/// normal the step is `2^kmin` for every value, and `(|x| + 2^(kmin+23)) - 2^(kmin+23)` rounds
/// to it with the processor's own round-to-nearest-even, exactly.
#[inline(always)]
fn element_rne(g: &Grid, x: u32) -> u32 {
    finish(g, x, rne_magnitude(g, x & 0x7fff_ffff))
}

/// The nearest-even rounding of a magnitude `abs` (bits) on the float grid `g`, before range
/// rules.
#[inline(always)]
fn rne_magnitude(g: &Grid, abs: u32) -> u32 {
    let shift = (23 - g.m) as u32;
    let drop = (1u32 << shift) - 1;
    let normal = abs.wrapping_add((drop >> 1) + ((abs >> shift) & 1)) & !drop;
    let magic = pow2f(g.kmin + 23);
    let tiny = ((f32::from_bits(abs) + magic) - magic).to_bits();
    let min_normal = pow2f(g.kmin + g.m).to_bits();
    if abs < min_normal {
        tiny
    } else {
        normal
    }
}

/// [`element_rne`] for a grid whose negative results mirror the positive ones
/// ([`Grid::mirrored`]): the sign is OR-ed back instead of selected, a few operations fewer.
#[inline(always)]
fn element_rne_mirrored(g: &Grid, x: u32) -> u32 {
    let sign = x & 0x8000_0000;
    let abs = x & 0x7fff_ffff;
    let q = rne_magnitude(g, abs);
    let m = if q > g.max_pos.to_bits() {
        g.overflow[0]
    } else {
        q
    };
    let m = if abs == 0x7f80_0000 { g.inf[0] } else { m };
    let m = if abs > 0x7f80_0000 { g.nan[0] } else { m };
    m | sign
}

#[inline(always)]
fn run_mode(
    g: &Grid,
    r: Rounding,
    stream: RandomStream,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
) {
    if r.is_stochastic() {
        // Random-word indices in 32-bit lanes: the slice is cut where the low half of the
        // index wraps, and each piece shares one high-half key.
        let mut done = 0;
        while done < input.len() {
            let index = offset + done as u64;
            let lo = index as u32;
            let key = stream.high_key((index >> 32) as u32);
            let until_wrap = (1u64 << 32) - u64::from(lo);
            let len = (input.len() - done).min(usize::try_from(until_wrap).unwrap_or(usize::MAX));
            let (ins, outs) = (&input[done..done + len], &mut out[done..done + len]);
            for (i, (o, x)) in outs.iter_mut().zip(ins).enumerate() {
                let word = stream.bits_keyed(lo.wrapping_add(i as u32), key);
                *o = f32::from_bits(element(g, r, x.to_bits(), word));
            }
            done += len;
        }
    } else {
        for (o, x) in out.iter_mut().zip(input) {
            *o = f32::from_bits(element(g, r, x.to_bits(), 0));
        }
    }
}

/// Outputs of at least this many elements (1 MiB) are written with non-temporal stores: they
/// do not fit in the cache anyway, and a plain store would first read each output line in
/// (what `memcpy` avoids for large copies the same way). Smaller outputs keep plain stores so
/// the result stays in the cache for whoever reads it next.
const STREAM_MIN: usize = 1 << 18;

/// `out[i] = f(input[i])` on the bit patterns; a large output is written with [`map_lines`].
#[inline(always)]
fn map_streaming<I: Isa>(input: &[f32], out: &mut [f32], f: impl Fn(u32) -> u32 + Copy) {
    if out.len() < STREAM_MIN {
        return map_plain(input, out, f);
    }
    let done = map_lines::<I>(input, out, f);
    map_plain(&input[done..], &mut out[done..], f);
    I::store_fence();
}

/// `out[i] = f(input[i])` on the bit patterns, with plain stores.
#[inline(always)]
fn map_plain(input: &[f32], out: &mut [f32], f: impl Fn(u32) -> u32) {
    for (o, x) in out.iter_mut().zip(input) {
        *o = f32::from_bits(f(x.to_bits()));
    }
}

/// [`map_plain`] for all of `out` but a last partial cache line: plain stores up to the first
/// line boundary, then whole lines with non-temporal stores, so no output line is read before
/// it is written. Returns how many elements were written; the caller writes the rest and issues
/// the store fence.
#[inline(always)]
fn map_lines<I: Isa>(input: &[f32], out: &mut [f32], f: impl Fn(u32) -> u32 + Copy) -> usize {
    let head = out.as_ptr().align_offset(4 * LINE).min(out.len());
    let (out_head, out_rest) = out.split_at_mut(head);
    let (in_head, in_rest) = input.split_at(head);
    map_plain(in_head, out_head, f);
    let mut lines = 0;
    for (o, x) in out_rest
        .chunks_exact_mut(LINE)
        .zip(in_rest.chunks_exact(LINE))
    {
        let mut v = [0.0f32; LINE];
        for (v, x) in v.iter_mut().zip(x) {
            *v = f32::from_bits(f(x.to_bits()));
        }
        // SAFETY: `o` is LINE writable floats starting at a line boundary (the head ends at
        // one, every chunk is one line), and `I` is the instruction set this body runs on.
        unsafe { I::stream_line(o.as_mut_ptr(), &v) };
        lines += 1;
    }
    head + lines * LINE
}

/// One loop per mode: the mode is a constant inside each arm, so the rounding rule is inlined
/// and the loop vectorizes (the match happens once per slice, not per element).
#[inline(always)]
fn run_portable<I: Isa>(
    g: &Grid,
    r: Rounding,
    stream: RandomStream,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
) {
    match r {
        // The closures own a copy of the grid, so its fields stay in registers.
        Rounding::NearestEven if g.has_fast_rne() && g.mirrored() => {
            let g = *g;
            map_streaming::<I>(input, out, move |x| element_rne_mirrored(&g, x))
        }
        Rounding::NearestEven if g.has_fast_rne() => {
            let g = *g;
            map_streaming::<I>(input, out, move |x| element_rne(&g, x))
        }
        Rounding::NearestEven => run_mode(g, Rounding::NearestEven, stream, input, out, offset),
        Rounding::NearestAway => run_mode(g, Rounding::NearestAway, stream, input, out, offset),
        Rounding::TowardZero => run_mode(g, Rounding::TowardZero, stream, input, out, offset),
        Rounding::Up => run_mode(g, Rounding::Up, stream, input, out, offset),
        Rounding::Down => run_mode(g, Rounding::Down, stream, input, out, offset),
        Rounding::Odd => run_mode(g, Rounding::Odd, stream, input, out, offset),
        Rounding::Stochastic { bits } => {
            run_mode(g, Rounding::Stochastic { bits }, stream, input, out, offset)
        }
    }
}

multiversion!(run => run_portable::<isa>, (g: &Grid, r: Rounding, stream: RandomStream, input: &[f32], out: &mut [f32], offset: u64));
multiversion!(run_blocks => run_blocks_portable::<isa>, (q: &Quantizer, b: &BlockFormat, base: Grid, input: &[f32], out: &mut [f32], offset: u64, n: usize));

/// The block length with a nearest-even path held in registers: the OCP MX block.
const RNE_BLOCK: usize = 32;

/// Elements of a large block-format output quantized into a small buffer, then streamed out
/// with [`map_lines`] (blocks need not start on cache lines, so they are not streamed
/// directly); a whole number of blocks, and few, so reading the input and streaming the output
/// interleave (measured: 4 blocks beat 1, 2, 8, 16 and 64).
const TILE: usize = 4 * RNE_BLOCK;

/// How far ahead of the current block [`rne_blocks`] prefetches its input, in elements (4 KiB;
/// measured better than 2 and 8 KiB).
const PREFETCH_AHEAD: usize = 1024;

/// Quantize each block of a block format with its scaled grid.
#[inline(always)]
fn run_blocks_portable<I: Isa>(
    q: &Quantizer,
    b: &BlockFormat,
    base: Grid,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
    n: usize,
) {
    let mirrored_rne = base.has_fast_rne() && base.mirrored();
    if q.rounding() == Rounding::NearestEven && n == RNE_BLOCK && mirrored_rne {
        if out.len() < STREAM_MIN {
            return rne_blocks::<I>(q, b, base, input, out, offset);
        }
        // Tile by tile into `buf[LINE..]`; the elements after the last whole output line wait
        // in `buf[LINE - carry..LINE]` and lead the next tile's lines, so every line but the
        // first and the last is streamed whole.
        let mut buf = [0.0f32; LINE + TILE];
        let (mut carry, mut at) = (0, 0);
        for it in input.chunks(TILE) {
            let n = it.len();
            rne_blocks::<I>(q, b, base, it, &mut buf[LINE..LINE + n], offset + at as u64);
            let window = &buf[LINE - carry..LINE + n];
            let done = map_lines::<I>(window, &mut out[at - carry..at + n], |x| x);
            carry = window.len() - done;
            buf.copy_within(LINE + n - carry..LINE + n, LINE - carry);
            at += n;
        }
        out[at - carry..].copy_from_slice(&buf[LINE - carry..LINE]);
        return I::store_fence();
    }
    if let (Rounding::Stochastic { bits }, RNE_BLOCK) = (q.rounding(), n) {
        return sr_blocks::<I>(q, b, base, bits, input, out, offset);
    }
    for (j, (ib, ob)) in input.chunks(n).zip(out.chunks_mut(n)).enumerate() {
        block::<I>(q, b, base, ib, ob, offset + (j * n) as u64);
    }
}

/// Stochastic rounding of blocks of [`RNE_BLOCK`] elements: the mode is fixed for the slice and
/// each full block is a loop of constant length (whole vectors, no per-block dispatch); the
/// blocks it does not cover (a scale outside the fast range, NaN or infinity, a short last
/// block) go through [`block`].
#[inline(always)]
fn sr_blocks<I: Isa>(
    q: &Quantizer,
    b: &BlockFormat,
    base: Grid,
    bits: u32,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
) {
    let (r, stream) = (Rounding::Stochastic { bits }, q.stream());
    let mut ins = input.chunks_exact(RNE_BLOCK);
    let mut outs = out.chunks_exact_mut(RNE_BLOCK);
    for (j, (ib, ob)) in (&mut ins).zip(&mut outs).enumerate() {
        let start = offset + (j * RNE_BLOCK) as u64;
        let amax = abs_max_bits(ib);
        let g = (amax < 0x7f80_0000)
            .then(|| base.scaled(shared_exponent_f32(b, amax)))
            .flatten();
        match (g, <&[f32; RNE_BLOCK]>::try_from(ib)) {
            // Random-word indices in 32-bit lanes when the block's low halves do not wrap.
            (Some(g), Ok(ib)) if (start as u32).checked_add(RNE_BLOCK as u32).is_some() => {
                let (lo, key) = (start as u32, stream.high_key((start >> 32) as u32));
                for (i, (o, x)) in ob.iter_mut().zip(ib).enumerate() {
                    let word = stream.bits_keyed(lo + i as u32, key);
                    *o = f32::from_bits(element(&g, r, x.to_bits(), word));
                }
            }
            _ => block::<I>(q, b, base, ib, ob, start),
        }
    }
    let done = input.len() - ins.remainder().len();
    if done < input.len() {
        let start = offset + done as u64;
        block::<I>(q, b, base, &input[done..], &mut out[done..], start);
    }
}

/// Nearest-even blocks of [`RNE_BLOCK`] elements on a mirrored grid (`base`): the block
/// maximum, the scale and the rounding of each full block stay in registers, without the
/// general per-block dispatch (the block length is a constant, so each block is two or four
/// whole vectors); the blocks it does not cover (a scale outside the fast range, NaN or
/// infinity, a short last block) go through [`block`].
#[inline(always)]
fn rne_blocks<I: Isa>(
    q: &Quantizer,
    b: &BlockFormat,
    base: Grid,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
) {
    let mut ins = input.chunks_exact(RNE_BLOCK);
    let mut outs = out.chunks_exact_mut(RNE_BLOCK);
    for (j, (ib, ob)) in (&mut ins).zip(&mut outs).enumerate() {
        // The block maximum needs the whole block before any rounding, a dependency the
        // processor's out-of-order window does not look far enough past to keep the memory
        // busy; asking for the input a few kilobytes ahead does.
        for line in (0..RNE_BLOCK).step_by(LINE) {
            prefetch(ib.as_ptr().wrapping_add(PREFETCH_AHEAD + line));
        }
        let amax = abs_max_bits(ib);
        let g = (amax < 0x7f80_0000)
            .then(|| base.scaled(shared_exponent_f32(b, amax)))
            .flatten()
            .filter(Grid::has_fast_rne);
        // A scaled mirrored grid is mirrored: this is the loop `run_portable` would pick.
        match g {
            Some(g) => map_plain(ib, ob, |x| element_rne_mirrored(&g, x)),
            None => block::<I>(q, b, base, ib, ob, offset + (j * RNE_BLOCK) as u64),
        }
    }
    let (ib, ob) = (ins.remainder(), outs.into_remainder());
    if !ib.is_empty() {
        let start = offset + (input.len() - ib.len()) as u64;
        block::<I>(q, b, base, ib, ob, start);
    }
}

/// The largest magnitude of a block, as `f32` bits (a NaN compares above infinity).
#[inline(always)]
fn abs_max_bits(block: &[f32]) -> u32 {
    block
        .iter()
        .fold(0u32, |m, x| m.max(x.to_bits() & 0x7fff_ffff))
}

/// Quantize one block with its scaled grid; a block whose scaled grid has no fast path goes
/// through the exact reference path.
#[inline(always)]
fn block<I: Isa>(
    q: &Quantizer,
    b: &BlockFormat,
    base: Grid,
    ib: &[f32],
    ob: &mut [f32],
    start: u64,
) {
    let (r, stream) = (q.rounding(), q.stream());
    let amax = abs_max_bits(ib);
    if amax >= 0x7f80_0000 {
        return ob.fill(f32::NAN);
    }
    match base.scaled(shared_exponent_f32(b, amax)) {
        Some(g) => run_portable::<I>(&g, r, stream, ib, ob, start),
        None => {
            let wide: Vec<f64> = ib.iter().map(|&x| f64::from(x)).collect();
            let mut res = vec![0.0; wide.len()];
            b.quantize_block(&wide, &mut res, r, |i| stream.bits(start + i as u64));
            for (o, v) in ob.iter_mut().zip(res) {
                *o = v as f32;
            }
        }
    }
}

/// [`BlockFormat::shared_exponent`] of a block whose largest magnitude has the finite `f32` bit
/// pattern `amax`, from the bits (the hot loop's version of the same rule).
#[inline(always)]
fn shared_exponent_f32(b: &BlockFormat, amax: u32) -> i32 {
    let (lo, hi) = crate::format::SCALE_EXP_RANGE;
    if amax == 0 {
        return lo;
    }
    // floor(log2): the exponent field, or the leading bit of a subnormal.
    let e = if amax >= 0x0080_0000 {
        (amax >> 23) as i32 - 127
    } else {
        31 - amax.leading_zeros() as i32 - 149
    };
    (e - b.emax_elem()).clamp(lo, hi)
}

/// Try the fast path; `true` when `out` was written.
pub(crate) fn quantize_f32(
    q: &Quantizer,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
    row_len: usize,
) -> bool {
    let r = q.rounding();
    match q.format() {
        Format::Float(f) => match Grid::float(&f, r) {
            Some(g) => run(&g, r, q.stream(), input, out, offset),
            None => return false,
        },
        Format::Fixed(f) => match Grid::fixed(&f) {
            Some(g) => run(&g, r, q.stream(), input, out, offset),
            None => return false,
        },
        Format::Block(b) => {
            let base = match b.element() {
                Element::Float(f) => Grid::float(&f, r),
                Element::Fixed(f) => Grid::fixed(&f),
            };
            match base {
                Some(g) => {
                    let n = b.block_len(input.len(), row_len);
                    run_blocks(q, &b, g, input, out, offset, n)
                }
                None => return false,
            }
        }
        Format::QTorch(_) => return false,
    }
    true
}
