//! Range health of a rounding: how many values left the format's range, flushed to zero or
//! became NaN, judged by comparing each exact value with the value stored.
//!
//! Per element, with `x` the exact value and `s` the stored one (the categories are exclusive,
//! checked in this order):
//! - **NaN**: `x` is NaN (a format without NaN stores it as 0 or its largest value; it is still
//!   a NaN of the computation);
//! - **saturated**: `x` lies outside the format's finite range `[lo, hi]` (an infinite `x`
//!   included): the value was stored as `±max`, as an infinity, wrapped around, or as NaN by a
//!   format whose overflow is NaN (`e4m3fn`). For block formats the range is the block's: the
//!   element range times the block's shared scale, so an MX or bfp element clipped at its
//!   largest value counts (a `size=col` block is a column: until 2026-12 a column tensor was
//!   judged as one block against the whole tensor's scale, which missed a column's clipped
//!   maximum whenever another column held larger values);
//! - **NaN** again: `x` in range but `s` is NaN (every element of a block that holds a NaN or an
//!   infinity reads NaN);
//! - **flushed**: `x != 0` stored as `s == 0` (underflow: the value was below what the format
//!   resolves near zero, whether the rounding was nearest or a stochastic draw to zero).
//!
//! The bounds are computed once per call; the pass over the values is one comparison chain per
//! element, with no dispatch on the format inside the loop. Where every exact and stored value is
//! an `f32` value and the range ends are too, the same chain runs on `f32` lanes
//! ([`range_events_f32`], twice the lanes per vector): the same counts.

use crate::format::block_fast::{block_maxima, block_maxima_f32};
use crate::format::exact::pow2;
use crate::format::{BlockFormat, Element, Format};
use crate::simd::multiversion;

/// Range events over a set of rounded values, as exact counts (fractions are derived from them
/// when reported).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeCounts {
    /// Values judged.
    pub values: u64,
    /// Values outside the format's finite range (stored at `±max`, as an infinity, or wrapped).
    pub saturated: u64,
    /// Non-zero values stored as zero.
    pub flushed: u64,
    /// NaN values (exact or stored).
    pub nan: u64,
}

impl RangeCounts {
    /// Add `other`'s counts.
    pub fn merge(&mut self, other: &RangeCounts) {
        self.values += other.values;
        self.saturated += other.saturated;
        self.flushed += other.flushed;
        self.nan += other.nan;
    }

    /// Add `[saturated, flushed, nan]` of `values` values.
    fn add(&mut self, [saturated, flushed, nan]: [u64; 3], values: usize) {
        self.saturated += saturated;
        self.flushed += flushed;
        self.nan += nan;
        self.values += values as u64;
    }
}

/// A carrier the judgement runs on: `f64`, or `f32` where every exact and stored value is an
/// `f32` (the executor's `f32` rounding path), with twice the lanes per vector; with its
/// multiversioned passes.
trait Lane: Copy + PartialOrd {
    const ZERO: Self;
    fn nan(self) -> bool;
    /// A range end as this type, `None` where it is not exactly one.
    fn bound(v: f64) -> Option<Self>;
    /// The largest magnitude per block ([`block_maxima`]), as `f64`.
    fn maxima(b: &BlockFormat, x: &[Self], row_len: usize) -> (Vec<f64>, bool);
    /// [`tally_const_portable`] compiled per instruction set.
    fn tally_const(lo: Self, hi: Self, exact: &[Self], stored: &[Self]) -> [u64; 3];
    /// [`tally_cols_portable`] compiled per instruction set.
    fn tally_cols(lo: &[Self], hi: &[Self], exact: &[Self], stored: &[Self]) -> [u64; 3];
}

impl Lane for f64 {
    const ZERO: f64 = 0.0;
    #[inline(always)]
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn bound(v: f64) -> Option<f64> {
        Some(v)
    }
    fn maxima(b: &BlockFormat, x: &[f64], row_len: usize) -> (Vec<f64>, bool) {
        block_maxima(b, x, row_len)
    }
    fn tally_const(lo: f64, hi: f64, exact: &[f64], stored: &[f64]) -> [u64; 3] {
        tally_const(lo, hi, exact, stored)
    }
    fn tally_cols(lo: &[f64], hi: &[f64], exact: &[f64], stored: &[f64]) -> [u64; 3] {
        tally_cols(lo, hi, exact, stored)
    }
}

impl Lane for f32 {
    const ZERO: f32 = 0.0;
    #[inline(always)]
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn bound(v: f64) -> Option<f32> {
        let f = v as f32;
        (f64::from(f) == v).then_some(f)
    }
    fn maxima(b: &BlockFormat, x: &[f32], row_len: usize) -> (Vec<f64>, bool) {
        block_maxima_f32(b, x, row_len)
    }
    fn tally_const(lo: f32, hi: f32, exact: &[f32], stored: &[f32]) -> [u64; 3] {
        tally_const_f32(lo, hi, exact, stored)
    }
    fn tally_cols(lo: &[f32], hi: &[f32], exact: &[f32], stored: &[f32]) -> [u64; 3] {
        tally_cols_f32(lo, hi, exact, stored)
    }
}

/// The module docs' chain for one value `x` stored as `s` in `[lo, hi]`, as masks without
/// branches so loops of it vectorize: `[saturated, flushed, nan]`.
#[inline(always)]
fn judge<T: Lane>(lo: T, hi: T, x: T, s: T) -> [u64; 3] {
    // False for a NaN `x` as well.
    let inside = x >= lo && x <= hi;
    [
        u64::from(!inside & !x.nan()),
        u64::from(inside & (s == T::ZERO) & (x != T::ZERO)),
        u64::from(x.nan() | (inside & s.nan())),
    ]
}

/// [`judge`] on `f64` values, for passes that round and judge at once.
#[inline(always)]
pub(crate) fn judge_f64(lo: f64, hi: f64, x: f64, s: f64) -> [u64; 3] {
    judge(lo, hi, x, s)
}

/// The sums of [`judge`] over `exact` and `stored` with one range.
#[inline(always)]
fn tally_const_portable<T: Lane>(lo: T, hi: T, exact: &[T], stored: &[T]) -> [u64; 3] {
    let mut sum = [0u64; 3];
    for (&x, &s) in exact.iter().zip(stored) {
        let [a, b, c] = judge(lo, hi, x, s);
        sum = [sum[0] + a, sum[1] + b, sum[2] + c];
    }
    sum
}

/// The sums of [`judge`] over the rows of `exact` and `stored` (rows of `lo.len()`), element
/// `j` of a row in the range `[lo[j], hi[j]]` (column blocks).
#[inline(always)]
fn tally_cols_portable<T: Lane>(lo: &[T], hi: &[T], exact: &[T], stored: &[T]) -> [u64; 3] {
    let mut sum = [0u64; 3];
    let cols = lo.len();
    for (x, s) in exact.chunks(cols).zip(stored.chunks(cols)) {
        for (((&x, &s), &lo), &hi) in x.iter().zip(s).zip(lo).zip(hi) {
            let [a, b, c] = judge(lo, hi, x, s);
            sum = [sum[0] + a, sum[1] + b, sum[2] + c];
        }
    }
    sum
}

multiversion!(tally_const => tally_const_portable::<f64>, (lo: f64, hi: f64, exact: &[f64], stored: &[f64]) -> [u64; 3]);
multiversion!(tally_cols => tally_cols_portable::<f64>, (lo: &[f64], hi: &[f64], exact: &[f64], stored: &[f64]) -> [u64; 3]);
multiversion!(tally_const_f32 => tally_const_portable::<f32>, (lo: f32, hi: f32, exact: &[f32], stored: &[f32]) -> [u64; 3]);
multiversion!(tally_cols_f32 => tally_cols_portable::<f32>, (lo: &[f32], hi: &[f32], exact: &[f32], stored: &[f32]) -> [u64; 3]);

/// The finite range `[lo, hi]` of a float-like element: `±max`, or `[0, max]` when unsigned.
fn float_range(max: f64, signed: bool) -> (f64, f64) {
    (if signed { -max } else { 0.0 }, max)
}

/// [`element_range`] as `f32` values (`None` where an end is not one), for kernels that judge
/// on `f32` lanes.
pub(crate) fn element_range_f32(e: &Element) -> Option<(f32, f32)> {
    let (lo, hi) = element_range(e);
    Some((f32::bound(lo)?, f32::bound(hi)?))
}

/// The finite range of one element of a block format at scale 1.
fn element_range(e: &Element) -> (f64, f64) {
    match e {
        Element::Float(f) => float_range(f.limits().max, f.signed()),
        Element::Fixed(f) => (f.min_value(), f.max_value()),
    }
}

/// The finite range `[lo, hi]` of a scalar format (`None` for block formats, whose range is
/// per block).
fn scalar_range(format: &Format) -> Option<(f64, f64)> {
    Some(match format {
        Format::Float(f) => float_range(f.limits().max, f.signed()),
        Format::Fixed(f) => (f.min_value(), f.max_value()),
        Format::QTorch(q) => float_range(q.max_value(), true),
        Format::QFixed(q) => q.range(),
        Format::Block(_) => return None,
    })
}

/// The finite range of each block of `exact` with rows of `row_len`, as the quantizer forms
/// the blocks (for a block holding a NaN or an infinity, whose elements all read NaN, the range
/// of `f64`: its infinities count as saturated, its finite elements as NaN), in block order;
/// and whether the blocks are columns.
fn block_ranges(b: &BlockFormat, maxima: &[f64]) -> Vec<(f64, f64)> {
    let (lo, hi) = element_range(&b.element());
    maxima
        .iter()
        .map(|&m| match b.shared_exponent(std::iter::once(m)) {
            Some(s) => (lo * pow2(s), hi * pow2(s)),
            None => (-f64::MAX, f64::MAX),
        })
        .collect()
}

/// Range events of rounding `exact` to `stored` in `format` (see the module docs); `row_len`
/// is the row length that `size=row` block formats group by.
pub fn range_events(format: &Format, exact: &[f64], stored: &[f64], row_len: usize) -> RangeCounts {
    events(format, exact, stored, row_len).expect("every range end is an f64")
}

/// [`range_events`] of exact and stored values that are all `f32` values, judged on `f32`
/// lanes: the same counts, or `None` where a range end is not an `f32` value (a block holding
/// NaN or an infinity, whose range is `f64`'s), so the `f32` comparison could differ.
pub fn range_events_f32(
    format: &Format,
    exact: &[f32],
    stored: &[f32],
    row_len: usize,
) -> Option<RangeCounts> {
    events(format, exact, stored, row_len)
}

/// [`range_events`] on either carrier; `None` where a range end is not a value of it.
fn events<T: Lane>(
    format: &Format,
    exact: &[T],
    stored: &[T],
    row_len: usize,
) -> Option<RangeCounts> {
    assert_eq!(exact.len(), stored.len(), "exact and stored lengths differ");
    let mut c = RangeCounts::default();
    if let Format::Block(b) = format {
        let (maxima, col) = T::maxima(b, exact, row_len);
        let ranges = block_ranges(b, &maxima);
        let (mut lo, mut hi) = (
            Vec::with_capacity(ranges.len()),
            Vec::with_capacity(ranges.len()),
        );
        for (l, h) in ranges {
            lo.push(T::bound(l)?);
            hi.push(T::bound(h)?);
        }
        if col {
            c.add(T::tally_cols(&lo, &hi, exact, stored), exact.len());
        } else {
            let n = b.block_len(exact.len(), row_len);
            let blocks = exact.chunks(n).zip(stored.chunks(n));
            for (((x, s), &l), &h) in blocks.zip(&lo).zip(&hi) {
                c.add(T::tally_const(l, h, x, s), x.len());
            }
        }
    } else if let Some((lo, hi)) = scalar_range(format) {
        let (lo, hi) = (T::bound(lo)?, T::bound(hi)?);
        c.add(T::tally_const(lo, hi, exact, stored), exact.len());
    }
    Some(c)
}

/// Range events of values held in `format` whose exact values are unknown (a MAC
/// accumulator's outputs): NaN, and saturated when infinite or at an end of a signed scalar
/// format's finite range (where a saturating accumulator stops). Block formats are judged on
/// NaN only, their elements reach the block's largest value in normal use. `flushed` stays 0:
/// without the exact sum an underflow cannot be seen.
pub fn bound_events(format: &Format, stored: &[f64]) -> RangeCounts {
    let (lo, hi) = accumulator_bounds(format);
    bounded(stored.len(), tally_bounds(lo, hi, stored))
}

/// [`bound_events`] of `f32` values (a GEMM's outputs on the executor's `f32` carrier), judged
/// on `f32` lanes: the same counts, or `None` where a bound is not an `f32` value.
pub fn bound_events_f32(format: &Format, stored: &[f32]) -> Option<RangeCounts> {
    let (lo, hi) = accumulator_bounds(format);
    let tally = tally_bounds_f32(f32::bound(lo)?, f32::bound(hi)?, stored);
    Some(bounded(stored.len(), tally))
}

/// The counts of `values` values of which `saturated` sat at or past a bound and `nan` were
/// NaN (no value judged flushed: without the exact values an underflow cannot be seen).
fn bounded(values: usize, [saturated, nan]: [u64; 2]) -> RangeCounts {
    RangeCounts {
        values: values as u64,
        saturated,
        flushed: 0,
        nan,
    }
}

/// The bounds [`bound_events`] counts values at: a scalar format's finite range, of which only
/// a negative end is a bound a value can sit on by saturating (an unsigned format's 0 is an
/// ordinary value); for block formats the infinities.
fn accumulator_bounds(format: &Format) -> (f64, f64) {
    match scalar_range(format) {
        Some((lo, hi)) => (if lo < 0.0 { lo } else { f64::NEG_INFINITY }, hi),
        None => (f64::NEG_INFINITY, f64::INFINITY),
    }
}

/// [`range_events`] of values that are already values of their format, stored as they are
/// (`exact == stored`; the executor's zeroed operands, [`Format::closed_under_zeroing`]): none is
/// flushed and every finite one lies in its (block's) range, so only infinities (saturated) and
/// NaN count. One pass with no range, where the general judge recomputes block maxima.
pub fn held_events(stored: &[f64]) -> RangeCounts {
    bounded(
        stored.len(),
        tally_bounds(f64::NEG_INFINITY, f64::INFINITY, stored),
    )
}

/// [`held_events`] of `f32` values (the executor's `f32` carrier): the same counts.
pub fn held_events_f32(stored: &[f32]) -> RangeCounts {
    bounded(
        stored.len(),
        tally_bounds_f32(f32::NEG_INFINITY, f32::INFINITY, stored),
    )
}

/// `[saturated, nan]` of [`bound_events`]: NaNs, and the other values at or past a bound.
/// Without branches, so it vectorizes.
#[inline(always)]
fn tally_bounds_portable<T: Lane>(lo: T, hi: T, stored: &[T]) -> [u64; 2] {
    let mut sum = [0u64; 2];
    for &s in stored {
        let nan = s.nan();
        let bound = !nan & ((s >= hi) | (s <= lo));
        sum = [sum[0] + u64::from(bound), sum[1] + u64::from(nan)];
    }
    sum
}

multiversion!(tally_bounds => tally_bounds_portable::<f64>, (lo: f64, hi: f64, stored: &[f64]) -> [u64; 2]);
multiversion!(tally_bounds_f32 => tally_bounds_portable::<f32>, (lo: f32, hi: f32, stored: &[f32]) -> [u64; 2]);
