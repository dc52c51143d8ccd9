//! Slice quantization: a format, a rounding unit and a random stream applied to whole arrays.
//!
//! The match on the format and the mode happens once per slice; the per-element loops are in
//! `kernel.rs` (vectorized `f32` paths) or here (the exact `f64` reference path). Element `i` of
//! a slice that starts at global index `offset` draws the random word `stream.bits(offset + i)`,
//! so chunked and parallel runs give the same bits as one sequential pass.

use rayon::prelude::*;
use thiserror::Error;

use crate::format::range::judge_f64;
use crate::format::range_events_f32;
use crate::format::{alias, block_fast, kernel, BlockSize, Element, Format, RangeCounts};
use crate::round::{RandomStream, Rounding};
use crate::scratch;
use crate::simd::multiversion;

/// A quantizer that cannot be built or applied.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum QuantizeError {
    /// The format has no such rounding unit (QPyTorch's formats have only their "nearest" and
    /// `sr`).
    #[error("format `{format}` does not support rounding `{rounding}`: {allowed}")]
    Unsupported {
        /// The format spec.
        format: String,
        /// The rounding spec.
        rounding: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// The `f32` carrier cannot hold this format's values.
    #[error("format `{0}` does not fit in the f32 carrier; use f64 input")]
    NotF32(String),
}

/// Elements per parallel task: large enough to amortize scheduling, a multiple of every
/// power-of-two block size.
const CHUNK: usize = 1 << 16;

/// The largest mantissa width rounded through `f32` rounded to odd (`f32` has `24 >= m + 2`
/// significant bits).
const ODD_MAX_MAN: u32 = 22;
/// The normal `f32` range, where rounding to odd keeps 24 significant bits.
const ODD_MIN: f64 = f32::MIN_POSITIVE as f64;
const ODD_MAX: f64 = f32::MAX as f64;

/// `x` rounded to odd at `f32` precision: `x` when it is an `f32` value, else the one of its two
/// `f32` neighbours whose last bit is 1 (for `x` in the normal `f32` range). As selects, so a
/// loop of it vectorizes.
#[inline(always)]
fn to_odd_f32(x: f64) -> f32 {
    let f = x as f32;
    let back = f64::from(f);
    // The neighbour toward zero (one step down in magnitude when rounding went away from
    // zero), then the odd one of it and the next.
    let toward_zero = f.to_bits().wrapping_sub(u32::from(back.abs() > x.abs()));
    f32::from_bits(if back == x {
        f.to_bits()
    } else {
        toward_zero | 1
    })
}

/// Every value of `input` rounded to odd at `f32` precision into `narrow`; whether every value
/// is zero or in the normal `f32` range (else the narrowed values are not used).
#[inline(always)]
fn narrow_to_odd_portable(input: &[f64], narrow: &mut [f32]) -> bool {
    let mut inside = true;
    for (n, &x) in narrow.iter_mut().zip(input) {
        let a = x.abs();
        inside &= (a == 0.0) | (ODD_MIN..=ODD_MAX).contains(&a);
        *n = to_odd_f32(x);
    }
    inside
}

multiversion!(narrow_to_odd => narrow_to_odd_portable, (input: &[f64], narrow: &mut [f32]) -> bool);

/// `input` narrowed to `f32` (rounded to nearest) into `narrow`, and whether every value is the
/// `f64` of its narrowed value (a NaN is not). One branch-free pass, so it vectorizes (a test
/// that stops at the first miss does not); about half the cost of [`narrow_to_odd`].
#[inline(always)]
fn narrow_exact_portable(input: &[f64], narrow: &mut [f32]) -> bool {
    let mut exact = true;
    for (n, &x) in narrow.iter_mut().zip(input) {
        let f = x as f32;
        exact &= f64::from(f) == x;
        *n = f;
    }
    exact
}

multiversion!(narrow_exact => narrow_exact_portable, (input: &[f64], narrow: &mut [f32]) -> bool);

/// `fp32` nearest-even of `f64` values, the processor's own conversion (a NaN's bits are fixed
/// afterwards by the caller), judged in the same pass ([`judge_f64`] against `fp32`'s range),
/// with the converted values written through `put` (as `f64` or `f32`). Branch-free, so it
/// vectorizes.
#[inline(always)]
fn to_fp32_judged_into<O>(input: &[f64], out: &mut [O], put: impl Fn(f32) -> O) -> RangeCounts {
    let hi = f64::from(f32::MAX);
    let mut sum = [0u64; 3];
    for (o, &x) in out.iter_mut().zip(input) {
        let f = x as f32;
        *o = put(f);
        let [a, b, c] = judge_f64(-hi, hi, x, f64::from(f));
        sum = [sum[0] + a, sum[1] + b, sum[2] + c];
    }
    let [saturated, flushed, nan] = sum;
    RangeCounts {
        values: input.len() as u64,
        saturated,
        flushed,
        nan,
    }
}

/// [`to_fp32_judged_into`] writing `f64` values.
#[inline(always)]
fn to_fp32_judged_portable(input: &[f64], out: &mut [f64]) -> RangeCounts {
    to_fp32_judged_into(input, out, f64::from)
}

/// [`to_fp32_judged_into`] writing `f32` values.
#[inline(always)]
fn to_fp32_narrowed_judged_portable(input: &[f64], out: &mut [f32]) -> RangeCounts {
    to_fp32_judged_into(input, out, |f| f)
}

multiversion!(to_fp32_judged => to_fp32_judged_portable, (input: &[f64], out: &mut [f64]) -> RangeCounts);
multiversion!(to_fp32_narrowed_judged => to_fp32_narrowed_judged_portable, (input: &[f64], out: &mut [f32]) -> RangeCounts);

/// A format plus a rounding unit plus a random stream.
#[derive(Clone, Copy, Debug)]
pub struct Quantizer {
    format: Format,
    rounding: Rounding,
    stream: RandomStream,
}

impl Quantizer {
    /// A quantizer; `seed` and `stream` key the random bits of stochastic rounding.
    pub fn new(
        format: Format,
        rounding: Rounding,
        seed: u64,
        stream: u64,
    ) -> Result<Self, QuantizeError> {
        if let Err(allowed) = format.check_rounding(rounding) {
            return Err(QuantizeError::Unsupported {
                format: format.to_string(),
                rounding: rounding.to_string(),
                allowed,
            });
        }
        Ok(Quantizer {
            format,
            rounding,
            stream: RandomStream::new(seed, stream),
        })
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }
    /// The rounding unit.
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }
    /// The random stream.
    pub fn stream(&self) -> RandomStream {
        self.stream
    }

    /// Quantize `input` into `out` (`f64` carrier, the exact reference path). `offset` is the
    /// global index of `input[0]`; `row_len` is the row length for `size=row` and `size=col`
    /// block formats (a `size=col` slice must hold the whole tensor: its blocks interleave).
    pub fn quantize_f64(&self, input: &[f64], out: &mut [f64], offset: u64, row_len: usize) {
        assert_eq!(input.len(), out.len(), "input and output lengths differ");
        let (r, s) = (self.rounding, self.stream);
        let rand = |i: usize| s.bits(offset + i as u64);
        match self.format {
            Format::Float(f) => {
                let l = f.limits();
                for (i, (o, &x)) in out.iter_mut().zip(input).enumerate() {
                    *o = f.quantize_with(&l, x, r, rand(i));
                }
            }
            Format::Fixed(f) => {
                for (i, (o, &x)) in out.iter_mut().zip(input).enumerate() {
                    *o = f.quantize(x, r, rand(i));
                }
            }
            Format::QTorch(q) => {
                for (i, (o, &x)) in out.iter_mut().zip(input).enumerate() {
                    *o = f64::from(q.quantize_f32(x as f32, r, rand(i)));
                }
            }
            Format::QFixed(q) => {
                for (i, (o, &x)) in out.iter_mut().zip(input).enumerate() {
                    *o = f64::from(q.quantize_f32(x as f32, r, rand(i)));
                }
            }
            Format::Block(b) => b.for_each_block(input, out, row_len, |ib, ob, pos| {
                b.quantize_block(ib, ob, r, |i| rand(pos.index(i)));
            }),
        }
    }

    /// [`Quantizer::quantize_f64`] through the `f64` fast paths where the format has one,
    /// bit-identical to it; the reference otherwise. The fast paths: block formats with
    /// fixed-point elements, any grouping (`format/block_fast.rs`; a large tensor whose blocks
    /// the `f32` kernels take goes through `f32` rounded to odd, below); IEEE `fp32` with
    /// `rne`, which is the processor's own `f64 -> f32` conversion (round to nearest even,
    /// overflow to an infinity of the same sign, subnormals and signed zeros kept; a NaN goes
    /// through the reference, which fixes its bits); narrower floats and MX blocks of float
    /// elements through `f32` rounded to odd (`Quantizer::round_on_f32`).
    pub fn quantize_f64_fast(&self, input: &[f64], out: &mut [f64], offset: u64, row_len: usize) {
        self.quantize_f64_judged(input, out, offset, row_len);
    }

    /// [`Quantizer::quantize_f64_fast`], with the range events of the rounding
    /// ([`crate::format::range_events`] of `input` and `out`) where they were judged on the
    /// way (`None` where not: the caller judges): `fp32` nearest-even in its conversion pass,
    /// the `f32` route on the values rounded to odd (`Quantizer::round_on_f32`).
    pub fn quantize_f64_judged(
        &self,
        input: &[f64],
        out: &mut [f64],
        offset: u64,
        row_len: usize,
    ) -> Option<RangeCounts> {
        assert_eq!(input.len(), out.len(), "input and output lengths differ");
        match self.format {
            Format::Float(f) if self.is_fp32_nearest() => {
                let counts = to_fp32_judged(input, out);
                if counts.nan > 0 {
                    // The reference fixes a NaN's bits; the judgement reads only that it is one.
                    let l = f.limits();
                    for (o, &x) in out.iter_mut().zip(input).filter(|(_, x)| x.is_nan()) {
                        *o = f.quantize_with(&l, x, self.rounding, 0);
                    }
                }
                return Some(counts);
            }
            Format::Fixed(f) => {
                if !block_fast::quantize_fixed_f64(
                    &f,
                    self.rounding,
                    self.stream,
                    input,
                    out,
                    offset,
                ) {
                    self.quantize_f64(input, out, offset, row_len);
                }
                return None;
            }
            _ => {}
        }
        // Through `f32` rounded to odd where that is the one rounding and the faster path,
        // the rounded values widened; else the `f64` block path or the reference.
        if self.f32_route(input.len(), row_len) == Some(true) {
            let on_f32 = scratch::with_f32_pair(input.len(), |narrow, rounded| {
                let judged =
                    self.round_on_f32(input, [narrow, rounded], offset, row_len, [false, true])?;
                for (o, &v) in out.iter_mut().zip(rounded.iter()) {
                    *o = f64::from(v);
                }
                Some(judged)
            });
            if let Some(judged) = on_f32 {
                return judged;
            }
        }
        self.quantize_f64_blocks(input, out, offset, row_len);
        None
    }

    /// [`Quantizer::quantize_f64_judged`] on the `f32` carrier, with the rounded values written
    /// as `f32` values (every value of a format that fits `f32` is one, so the bits are the
    /// same): a reader that takes `f32` (a GEMM, a held ReLU) is spared a widening pass and the
    /// caller an `f64` buffer. `fp32` nearest-even is the conversion itself, judged on the way.
    /// Other formats that fit `f32`: with `exact_first`, values that are all `f32` values go
    /// to the `f32` kernels as they are (proven bit-identical to the reference on `f32` inputs;
    /// a cheap narrowing pass finds out, worth it where values usually are, such as a bias
    /// added to a matmul's `f32` output), else the values rounded to odd where that is the one
    /// rounding (`Quantizer::round_on_f32`). `None` where it declines (`out` then
    /// unspecified, the caller rounds on `f64`): a NaN in `fp32` (the reference fixes its
    /// bits), a value outside the normal `f32` range that is not an `f32` value, formats wider
    /// than `f32`, and blocks of integer elements where `f64` arithmetic is faster
    /// (`Quantizer::f32_route`). Else the range events ([`Quantizer::quantize_f32_counted`]).
    pub fn quantize_f64_narrowed(
        &self,
        input: &[f64],
        out: &mut [f32],
        offset: u64,
        row_len: usize,
        exact_first: bool,
    ) -> Option<Option<RangeCounts>> {
        assert_eq!(input.len(), out.len(), "input and output lengths differ");
        if self.is_fp32_nearest() {
            let counts = to_fp32_narrowed_judged(input, out);
            return (counts.nan == 0).then_some(Some(counts));
        }
        let odd = self.f32_route(input.len(), row_len)?;
        scratch::with_f32_pair(input.len(), |narrow, _| {
            self.round_on_f32(input, [narrow, out], offset, row_len, [exact_first, odd])
        })
    }

    /// Whether the quantizer is IEEE `fp32` with nearest-even, the processor's own conversion.
    fn is_fp32_nearest(&self) -> bool {
        self.rounding == Rounding::NearestEven && Some(self.format) == alias("fp32")
    }

    /// How `f64` values reach the `f32` kernels: `None` where they never do (formats wider than
    /// `f32`, QPyTorch's, and blocks of integer elements with a deterministic rounding, which
    /// the `f32` kernels round through their general split, 6-7 ns a value against 2.5 on
    /// `f64`); else whether values that are not `f32` values go through `f32` rounded to odd:
    /// where that is the one rounding ([`Quantizer::odd_is_one_rounding`]), and for integer
    /// blocks only where the kernels are faster (stochastic rounding, at least about 1000
    /// values, blocks of at least 32 in a row; measured on 64x256 and smaller tensors).
    fn f32_route(&self, len: usize, row_len: usize) -> Option<bool> {
        if !self.format.fits_f32() {
            return None;
        }
        let faster = match self.format {
            Format::Block(b) if matches!(b.element(), Element::Fixed(_)) => {
                if !self.rounding.is_stochastic() {
                    return None;
                }
                len >= 1024 && (b.size() == BlockSize::Col || b.block_len(len, row_len) >= 32)
            }
            _ => true,
        };
        Some(faster && self.odd_is_one_rounding())
    }

    /// `input` rounded on the `f32` kernels into `out` (`narrow` holds the values as the kernels
    /// read them): with `exact_first`, values that are all `f32` values as they are (a cheap
    /// pass finds out); else, with `odd`, the values rounded to odd, where the caller found
    /// with [`Quantizer::f32_route`] that this is the one rounding. Rounding to odd at a
    /// precision of at least `m + 2` bits and then to `m` bits with a nearest or directed mode
    /// is the one rounding of the exact value (Boldo and Melquiond, "Emulation of FMA and
    /// correctly rounded sums: proved algorithms using rounding to odd", IEEE TC 2008): the odd
    /// last bit is a sticky bit, a value of the grid or a midpoint between two values is an
    /// `f32` value and stays exact, and truncation never crosses an `f32` value, so the block
    /// maxima's exponents (MX scales) and every comparison with the format's largest value are
    /// kept. Blocks of fixed-point elements count as `m = wl`: an element is a count of the
    /// block's step below the block maximum, so relative to its own leading bit it keeps at
    /// most `wl` bits, and the same argument holds with the step in the place of the
    /// mantissa's last bit (a saturating element stays saturated). Stochastic rounding reads
    /// the top `bits` bits of the discarded fraction, of which `f32` holds at least `22 - m`
    /// exactly. The range events ([`Quantizer::quantize_f32_counted`]) are those of the `f64`
    /// values: every comparison the judgement makes (with a range end, whose significand is at
    /// most the format's, and with zero) has the same answer on a value and on its rounding to
    /// odd. `None` (`out` unspecified) where neither applies: the values are not all `f32`
    /// values, and rounded to odd a value is outside the normal `f32` range (zero aside), an
    /// infinity or a NaN.
    fn round_on_f32(
        &self,
        input: &[f64],
        [narrow, out]: [&mut [f32]; 2],
        offset: u64,
        row_len: usize,
        [exact_first, odd]: [bool; 2],
    ) -> Option<Option<RangeCounts>> {
        let exact = exact_first && narrow_exact(input, narrow);
        if !(exact || (odd && narrow_to_odd(input, narrow))) {
            return None;
        }
        self.quantize_f32_counted(narrow, out, offset, row_len).ok()
    }

    /// Whether rounding a value rounded to odd at `f32` precision is the one rounding of the
    /// value for this format and rounding unit (see [`Quantizer::round_on_f32`]): at most
    /// [`ODD_MAX_MAN`] mantissa bits (`m = wl` for integer block elements), and for stochastic
    /// rounding `bits <= 22 - m`.
    fn odd_is_one_rounding(&self) -> bool {
        let m = match self.format {
            Format::Float(f) if f.fits_f32() => f.man_bits(),
            Format::Block(b) => match b.element() {
                Element::Float(f) => f.man_bits(),
                Element::Fixed(f) => f.wl(),
            },
            _ => return false,
        };
        let sr_ok = match self.rounding {
            Rounding::Stochastic { bits } => bits + m <= 22,
            _ => true,
        };
        m <= ODD_MAX_MAN && sr_ok
    }

    /// The block fast path of [`Quantizer::quantize_f64_fast`] (integer elements), else the
    /// reference: the fallback of the `f32` carrier (which must not come back through `f32`).
    fn quantize_f64_blocks(&self, input: &[f64], out: &mut [f64], offset: u64, row_len: usize) {
        let fast = match self.format {
            Format::Block(b) => block_fast::quantize_blocks_f64(
                &b,
                self.rounding,
                self.stream,
                input,
                out,
                offset,
                row_len,
            ),
            _ => false,
        };
        if !fast {
            self.quantize_f64(input, out, offset, row_len);
        }
    }

    /// Quantize `input` into `out` in the `f32` carrier (the format must fit in `f32`).
    pub fn quantize_f32(
        &self,
        input: &[f32],
        out: &mut [f32],
        offset: u64,
        row_len: usize,
    ) -> Result<(), QuantizeError> {
        self.quantize_f32_judged(input, out, offset, row_len)
            .map(|_| ())
    }

    /// [`Quantizer::quantize_f32`], with the range events of the rounding
    /// ([`crate::format::range_events_f32`] of `input` and `out`) where the kernel judged them
    /// in its rounding pass (block formats with stochastic rounding, `format/kernel/scaled.rs`),
    /// `None` where it did not: the caller judges.
    pub fn quantize_f32_judged(
        &self,
        input: &[f32],
        out: &mut [f32],
        offset: u64,
        row_len: usize,
    ) -> Result<Option<RangeCounts>, QuantizeError> {
        if !self.format.fits_f32() {
            return Err(QuantizeError::NotF32(self.format.to_string()));
        }
        assert_eq!(input.len(), out.len(), "input and output lengths differ");
        if let Some(judged) = kernel::quantize_f32(self, input, out, offset, row_len) {
            return Ok(judged);
        }
        // Through f64 (the fast f64 paths, else the reference), in small pieces so no large
        // temporary is allocated.
        let step = match self.format {
            Format::Block(b) => b.block_len(input.len(), row_len),
            _ => 256,
        };
        let mut wide = vec![0.0f64; step];
        let mut res = vec![0.0f64; step];
        for (j, (ib, ob)) in input.chunks(step).zip(out.chunks_mut(step)).enumerate() {
            let n = ib.len();
            for (w, &x) in wide.iter_mut().zip(ib) {
                *w = f64::from(x);
            }
            self.quantize_f64_blocks(
                &wide[..n],
                &mut res[..n],
                offset + (j * step) as u64,
                row_len,
            );
            for (o, &v) in ob.iter_mut().zip(&res[..n]) {
                *o = v as f32;
            }
        }
        Ok(None)
    }

    /// [`Quantizer::quantize_f32_judged`] with the range events always judged: by the kernel on
    /// the way, else on the `f32` buffers ([`range_events_f32`]; `None` only where a range end
    /// is not an `f32` value).
    pub fn quantize_f32_counted(
        &self,
        input: &[f32],
        out: &mut [f32],
        offset: u64,
        row_len: usize,
    ) -> Result<Option<RangeCounts>, QuantizeError> {
        let judged = self.quantize_f32_judged(input, out, offset, row_len)?;
        Ok(judged.or_else(|| range_events_f32(&self.format, input, out, row_len)))
    }

    /// Parallel [`Quantizer::quantize_f32`] over chunks with rayon; bit-identical to it.
    pub fn par_quantize_f32(
        &self,
        input: &[f32],
        out: &mut [f32],
        row_len: usize,
    ) -> Result<(), QuantizeError> {
        let chunk = self.parallel_chunk(input.len(), row_len);
        input
            .par_chunks(chunk)
            .zip(out.par_chunks_mut(chunk))
            .enumerate()
            .try_for_each(|(j, (i, o))| self.quantize_f32(i, o, (j * chunk) as u64, row_len))
    }

    /// Parallel [`Quantizer::quantize_f64`] over chunks with rayon; bit-identical to it.
    pub fn par_quantize_f64(&self, input: &[f64], out: &mut [f64], row_len: usize) {
        let chunk = self.parallel_chunk(input.len(), row_len);
        input
            .par_chunks(chunk)
            .zip(out.par_chunks_mut(chunk))
            .enumerate()
            .for_each(|(j, (i, o))| self.quantize_f64(i, o, (j * chunk) as u64, row_len));
    }

    /// A chunk length that never splits a block.
    fn parallel_chunk(&self, len: usize, row_len: usize) -> usize {
        match self.format {
            Format::Block(b) => {
                let n = b.block_len(len, row_len);
                n * CHUNK.div_ceil(n)
            }
            _ => CHUNK,
        }
        .max(1)
    }
}
