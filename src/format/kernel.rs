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

use crate::format::{
    BlockFormat, BlockKind, BlockSize, Element, FixedFormat, FloatFormat, Format, Quantizer,
    RangeCounts, Special,
};
use crate::round::{uncounted_bits, Discarded, RandomStream, Rounding};
use crate::simd::{multiversion, prefetch, Isa, LINE};

mod scaled;

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
        pow2f_normal(k)
    } else {
        f32::from_bits(1u32 << (k + 149).clamp(0, 22))
    }
}

/// `2^k` for `k` in `-126..=127`: a bare exponent field.
#[inline(always)]
fn pow2f_normal(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
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
    finish_any::<true>(g, x, q)
}

/// [`finish`], without the infinity and NaN selects unless `SPECIALS` (for inputs known to be
/// finite, such as a block whose maximum is).
#[inline(always)]
fn finish_any<const SPECIALS: bool>(g: &Grid, x: u32, q: u32) -> u32 {
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
    if SPECIALS && abs == 0x7f80_0000 {
        out = pick(negative, g.inf);
    }
    if SPECIALS && abs > 0x7f80_0000 {
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
    finish_mirrored(g, x, rne_magnitude(g, x & 0x7fff_ffff))
}

/// [`finish`] for a mirrored grid ([`Grid::mirrored`]): the sign is OR-ed back instead of
/// selected.
#[inline(always)]
fn finish_mirrored(g: &Grid, x: u32, q: u32) -> u32 {
    finish_mirrored_any::<true>(g, x, q)
}

/// [`finish_mirrored`], without the infinity and NaN selects unless `SPECIALS`.
#[inline(always)]
fn finish_mirrored_any<const SPECIALS: bool>(g: &Grid, x: u32, q: u32) -> u32 {
    let abs = x & 0x7fff_ffff;
    let m = if q > g.max_pos.to_bits() {
        g.overflow[0]
    } else {
        q
    };
    let m = if SPECIALS && abs == 0x7f80_0000 {
        g.inf[0]
    } else {
        m
    };
    let m = if SPECIALS && abs > 0x7f80_0000 {
        g.nan[0]
    } else {
        m
    };
    m | (x & 0x8000_0000)
}

/// Stochastic rounding (`sr` or `sr:bits=N`) on a grid in fewer operations than [`element`]:
/// no per-element shift counts, one path for every magnitude.
///
/// The rule is [`crate::round::stochastic_carry`]: with `r` the random word's counted top bits
/// and `f` the discarded fraction, round up when `f 2^32 + r >= 2^32`.
/// - Where the grid's step is a fixed bit of the `f32` pattern (a float grid's normal range),
///   `f 2^32 = d 2^(m+9)` for the `23 - m` low bits `d`, so the carry happens exactly when
///   `d + (r >> (m + 9))` reaches `2^(23 - m)`: adding `r >> (m + 9)` to the pattern and
///   clearing the low bits rounds (a carry correctly bumps the exponent).
/// - Where the step is the fixed `2^kmin` (below a float grid's smallest normal `2^(kmin+m)`,
///   or everywhere on a fixed grid, with `m` chosen so that `2^(kmin+m)` exceeds its range),
///   adding `M = 2^(kmin+m)` moves `|x|` into the binade where the step is again bit `23 - m`.
///   The sum `s` rounds, but its error `e = |x| - (s - M)` is exact (Fast2Sum), and
///   `e' = e 2^(32 - kmin)` lies within `±2^(m+8)`. Then `f 2^32 + r` is
///   `(d + (r >> (m+9))) 2^(m+9) + (r_low + e')` with `r_low` the low `m + 9` bits of `r`, so
///   the carry is that of the first pass corrected by `floor((r_low + e') / 2^(m+9))`, which is
///   `-1`, `0` or `1` and decided by two exact comparisons (`r_low < 2^24` is an exact `f32`).
///   A correction of `-1` on a sum with `d = 0` steps down to the lower neighbour, which is the
///   right answer there: the exact sum was just below `s`. `M` is subtracted back exactly.
#[derive(Clone, Copy, Debug)]
struct SrGrid {
    grid: Grid,
    /// The random bits that count: the top `N` of 32.
    random_mask: u32,
    /// `m + 9` and the `23 - m` low bits cleared.
    shift: u32,
    drop: u32,
    /// Bits of the smallest magnitude whose step is a bit of its own pattern (`u32::MAX` on a
    /// fixed grid).
    min_normal: u32,
    /// `M = 2^(kmin + m)`, `2^(m + 9)` and `2^(32 - kmin)` as two factors (it can exceed the
    /// `f32` range).
    offset: f32,
    unit: f32,
    scale: [f32; 2],
}

impl SrGrid {
    /// `None` where the shortcuts do not hold: the low `m + 9` random bits must be an exact
    /// `f32` (`m <= 15`), a float grid needs [`Grid::has_fast_rne`], a fixed grid a range
    /// below `2^(kmin + 15)`.
    fn new(g: &Grid, bits: u32) -> Option<SrGrid> {
        let float = g.m < 255;
        let m = if float {
            g.m
        } else {
            // The smallest width whose binade holds every magnitude of the grid.
            let top = g.max_pos.max(g.max_neg);
            (0..=15).find(|&m| top < pow2f(g.kmin + m))?
        };
        let fits = m <= 15 && g.kmin + m >= -126 && g.kmin + m <= 126 && g.kmin >= -149;
        if !fits || (float && !g.has_fast_rne()) || !(1..=32).contains(&bits) {
            return None;
        }
        let up = 32 - g.kmin;
        let half = up / 2;
        Some(SrGrid {
            grid: *g,
            random_mask: !uncounted_bits(bits),
            shift: (m + 9) as u32,
            drop: (1u32 << (23 - m)) - 1,
            min_normal: if float {
                pow2f(g.kmin + m).to_bits()
            } else {
                u32::MAX
            },
            offset: pow2f(g.kmin + m),
            unit: pow2f(m + 9),
            scale: [pow2f(half), pow2f(up - half)],
        })
    }

    /// The magnitude bits of `|x|` (bits `abs`) rounded with the random word, before range
    /// rules.
    #[inline(always)]
    fn magnitude(&self, abs: u32, random: u32) -> u32 {
        let r = random & self.random_mask;
        let a = f32::from_bits(abs);
        let offset = if abs < self.min_normal {
            self.offset
        } else {
            0.0
        };
        let s = a + offset;
        let e = (a - (s - offset)) * self.scale[0] * self.scale[1];
        let low = (r & ((1u32 << self.shift) - 1)) as i32 as f32;
        let correction = if e >= self.unit - low {
            1u32
        } else if e >= -low {
            0
        } else {
            u32::MAX
        };
        let add = (r >> self.shift).wrapping_add(correction);
        let q = f32::from_bits(s.to_bits().wrapping_add(add) & !self.drop);
        (q - offset).to_bits()
    }

    /// Quantize one `f32` bit pattern with its random word; `MIRRORED` is [`Grid::mirrored`]
    /// and `SPECIALS` whether the input may be infinity or NaN, constants so each loop holds
    /// only the operations its grid and input need.
    #[inline(always)]
    fn element<const MIRRORED: bool, const SPECIALS: bool>(&self, x: u32, random: u32) -> u32 {
        let q = self.magnitude(x & 0x7fff_ffff, random);
        if MIRRORED {
            finish_mirrored_any::<SPECIALS>(&self.grid, x, q)
        } else {
            finish_any::<SPECIALS>(&self.grid, x, q)
        }
    }

    /// `out[i]` is `input[i]` rounded with the random word of element `offset + i`.
    #[inline(always)]
    fn run<I: Isa>(&self, stream: RandomStream, input: &[f32], out: &mut [f32], offset: u64) {
        let c = *self;
        if c.grid.mirrored() {
            map_random::<I>(stream, input, out, offset, move |x, w| {
                c.element::<true, true>(x, w)
            })
        } else {
            map_random::<I>(stream, input, out, offset, move |x, w| {
                c.element::<false, true>(x, w)
            })
        }
    }
}

/// `out[i] = f(input[i], word)` on the bit patterns, with the random word of element
/// `offset + i`; a large output is written with [`map_lines`].
#[inline(always)]
fn map_random<I: Isa>(
    stream: RandomStream,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
    f: impl Fn(u32, u32) -> u32 + Copy,
) {
    // Random-word indices in 32-bit lanes: the slice is cut where the low half of the index
    // wraps, and each piece shares one high-half key.
    let mut done = 0;
    while done < input.len() {
        let index = offset + done as u64;
        let lo = index as u32;
        let key = stream.high_key((index >> 32) as u32);
        let until_wrap = (1u64 << 32) - u64::from(lo);
        let len = (input.len() - done).min(usize::try_from(until_wrap).unwrap_or(usize::MAX));
        let (ins, outs) = (&input[done..done + len], &mut out[done..done + len]);
        map_streaming::<I>(ins, outs, move |x, i| {
            f(x, stream.bits_keyed(lo.wrapping_add(i), key))
        });
        done += len;
    }
}

/// Any mode through the general split ([`element`]), for grids and modes without a shortcut.
#[inline(always)]
fn run_mode<I: Isa>(
    g: &Grid,
    r: Rounding,
    stream: RandomStream,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
) {
    let g = *g;
    if r.is_stochastic() {
        map_random::<I>(stream, input, out, offset, move |x, w| element(&g, r, x, w));
    } else {
        map_streaming::<I>(input, out, move |x, _| element(&g, r, x, 0));
    }
}

/// Outputs of at least this many elements (1 MiB) are written with non-temporal stores: they
/// do not fit in the cache anyway, and a plain store would first read each output line in
/// (what `memcpy` avoids for large copies the same way). Smaller outputs keep plain stores so
/// the result stays in the cache for whoever reads it next.
const STREAM_MIN: usize = 1 << 18;

/// `out[i] = f(input[i], i)` on the bit patterns (the index wraps at 2^32); a large output is
/// written with [`map_lines`].
#[inline(always)]
fn map_streaming<I: Isa>(input: &[f32], out: &mut [f32], f: impl Fn(u32, u32) -> u32 + Copy) {
    if out.len() < STREAM_MIN {
        return map_plain(input, out, 0, f);
    }
    let done = map_lines::<I>(input, out, true, f);
    map_plain(&input[done..], &mut out[done..], done as u32, f);
    I::store_fence();
}

/// `out[i] = f(input[i], first + i)` on the bit patterns, with plain stores.
#[inline(always)]
fn map_plain(input: &[f32], out: &mut [f32], first: u32, f: impl Fn(u32, u32) -> u32) {
    for (i, (o, x)) in out.iter_mut().zip(input).enumerate() {
        *o = f32::from_bits(f(x.to_bits(), first.wrapping_add(i as u32)));
    }
}

/// [`map_plain`] for all of `out` but a last partial cache line: plain stores up to the first
/// line boundary, then whole lines with non-temporal stores, so no output line is read before
/// it is written. Returns how many elements were written; the caller writes the rest and issues
/// the store fence.
#[inline(always)]
fn map_lines<I: Isa>(
    input: &[f32],
    out: &mut [f32],
    prefetch_input: bool,
    f: impl Fn(u32, u32) -> u32 + Copy,
) -> usize {
    let head = out.as_ptr().align_offset(4 * LINE).min(out.len());
    let (out_head, out_rest) = out.split_at_mut(head);
    let (in_head, in_rest) = input.split_at(head);
    map_plain(in_head, out_head, 0, f);
    let mut at = head as u32;
    for (o, x) in out_rest
        .chunks_exact_mut(LINE)
        .zip(in_rest.chunks_exact(LINE))
    {
        if prefetch_input {
            prefetch(x.as_ptr().wrapping_add(PREFETCH_AHEAD));
        }
        let mut v = [0.0f32; LINE];
        for (k, (v, x)) in v.iter_mut().zip(x).enumerate() {
            *v = f32::from_bits(f(x.to_bits(), at.wrapping_add(k as u32)));
        }
        // SAFETY: `o` is LINE writable floats starting at a line boundary (the head ends at
        // one, every chunk is one line), and `I` is the instruction set this body runs on.
        unsafe { I::stream_line(o.as_mut_ptr(), &v) };
        at = at.wrapping_add(LINE as u32);
    }
    head + (out.len() - head) / LINE * LINE
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
            map_streaming::<I>(input, out, move |x, _| element_rne_mirrored(&g, x))
        }
        Rounding::NearestEven if g.has_fast_rne() => {
            let g = *g;
            map_streaming::<I>(input, out, move |x, _| element_rne(&g, x))
        }
        Rounding::NearestEven => {
            run_mode::<I>(g, Rounding::NearestEven, stream, input, out, offset)
        }
        Rounding::NearestAway => {
            run_mode::<I>(g, Rounding::NearestAway, stream, input, out, offset)
        }
        Rounding::TowardZero => run_mode::<I>(g, Rounding::TowardZero, stream, input, out, offset),
        Rounding::Up => run_mode::<I>(g, Rounding::Up, stream, input, out, offset),
        Rounding::Down => run_mode::<I>(g, Rounding::Down, stream, input, out, offset),
        Rounding::Odd => run_mode::<I>(g, Rounding::Odd, stream, input, out, offset),
        Rounding::Stochastic { bits } => match SrGrid::new(g, bits) {
            Some(c) => c.run::<I>(stream, input, out, offset),
            None => run_mode::<I>(g, Rounding::Stochastic { bits }, stream, input, out, offset),
        },
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

/// How far ahead the streaming loops prefetch their input, in elements (32 KiB; measured
/// better than 2, 4, 8, 16, 64 and 128 KiB on one thread: this machine's memory needs many
/// lines in flight, more than the hardware prefetcher asks for).
const PREFETCH_AHEAD: usize = 8192;

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
    let rne = RneBlock::new(&base, b.emax_elem()).filter(|_| q.rounding() == Rounding::NearestEven);
    if let (Some(rne_block), RNE_BLOCK) = (rne, n) {
        if out.len() < STREAM_MIN {
            return scaled_blocks::<I>(q, b, base, input, out, offset, rne_block);
        }
        // Tile by tile into `buf[LINE..]`; the elements after the last whole output line wait
        // in `buf[LINE - carry..LINE]` and lead the next tile's lines, so every line but the
        // first and the last is streamed whole.
        let mut buf = [0.0f32; LINE + TILE];
        let (mut carry, mut at) = (0, 0);
        for it in input.chunks(TILE) {
            let n = it.len();
            let o = &mut buf[LINE..LINE + n];
            scaled_blocks::<I>(q, b, base, it, o, offset + at as u64, rne_block);
            let window = &buf[LINE - carry..LINE + n];
            let done = map_lines::<I>(window, &mut out[at - carry..at + n], false, |x, _| x);
            carry = window.len() - done;
            // The carry moves back by `n`; after a full tile the whole last line is moved (a
            // copy of constant length, inlined, not a call).
            if n == TILE {
                buf.copy_within(TILE..TILE + LINE, 0);
            } else {
                buf.copy_within(LINE + n - carry..LINE + n, LINE - carry);
            }
            at += n;
        }
        out[at - carry..].copy_from_slice(&buf[LINE - carry..LINE]);
        return I::store_fence();
    }
    let sr = match q.rounding() {
        Rounding::Stochastic { bits } if base.kmin >= SCALED_KMIN_SR => SrGrid::new(&base, bits),
        _ => None,
    };
    if let (Some(c), RNE_BLOCK) = (sr, n) {
        let sr_block = SrBlock {
            grid: c,
            stream: q.stream(),
            mirrored: base.mirrored(),
            emax: b.emax_elem(),
        };
        return scaled_blocks::<I>(q, b, base, input, out, offset, sr_block);
    }
    for (j, (ib, ob)) in input.chunks(n).zip(out.chunks_mut(n)).enumerate() {
        block::<I>(q, b, base, ib, ob, offset + (j * n) as u64);
    }
}

/// The rounding of one full block for [`scaled_blocks`].
trait BlockRound: Copy {
    /// Round `input` into `out` for the finite block maximum `amax` (`f32` bits), with the
    /// random word of element `start + i` where the mode needs one; `false` (nothing written)
    /// when this block is outside the range where the shortcut is exact.
    fn round(&self, input: &[f32; RNE_BLOCK], out: &mut [f32], amax: u32, start: u64) -> bool;
}

/// Nearest-even blocks on a mirrored float element grid, rounded on the block's scaled grid
/// without scaling the elements: with `E` the larger of an element's exponent and the scaled
/// smallest normal exponent `emin + s`, `c = 1.5 2^(E + 23 - m)` has the step `2^(E - m)` and
/// is more than three times `|x|`, so `(|x| + c) - c` is `|x|` rounded to nearest-even on the
/// grid by the processor's own rounding (normal and subnormal steps alike; as
/// [`RneF32::round_magnitude_sticky`]). Exact while `2^(emin + s)` is a normal `f32` and `c`
/// stays finite for the block's largest exponent, `s + emax`; inside that range the shared
/// exponent is not clamped, so it comes straight from the exponent field of the block maximum,
/// and scaling a normal `f32` by `2^s` adds `s` to its exponent field.
#[derive(Clone, Copy)]
struct RneBlock {
    /// `1.5 2^(23 - m)`.
    factor: f32,
    /// The exponent fields of a block maximum for which the rule is exact: `lo` and `hi - lo`.
    fields: (u32, u32),
    /// `(emax + 127) << 23`: subtracted from a maximum's exponent bits, `s << 23`.
    emax_bits: u32,
    /// Bits of the unscaled smallest normal, largest magnitude and overflow result, and a mask
    /// that keeps the scale off an overflow result that is infinity or NaN.
    min_normal: u32,
    max: u32,
    overflow: u32,
    overflow_scales: u32,
}

impl RneBlock {
    /// For blocks whose element grid is `g` and whose element format's largest exponent is
    /// `emax` (the shared exponent is `floor(log2 max|x|) - emax`).
    fn new(g: &Grid, emax: i32) -> Option<RneBlock> {
        let emin = g.kmin + g.m;
        let fits = g.m <= 20
            && g.has_fast_rne()
            && g.mirrored()
            && (g.max_pos.to_bits() >> 23) as i32 - 127 == emax;
        let (s_lo, s_hi) = (-126 - emin, 104 - emax + g.m);
        let field = |s: i32| (s + emax + 127) as u32;
        fits.then_some(RneBlock {
            factor: 1.5 * pow2f(23 - g.m),
            fields: (field(s_lo), field(s_hi) - field(s_lo)),
            emax_bits: field(0) << 23,
            min_normal: ((emin + 127) as u32) << 23,
            max: g.max_pos.to_bits(),
            overflow: g.overflow[0],
            overflow_scales: if g.overflow[0] < 0x7f80_0000 {
                u32::MAX
            } else {
                0
            },
        })
    }
}

impl BlockRound for RneBlock {
    #[inline(always)]
    fn round(&self, input: &[f32; RNE_BLOCK], out: &mut [f32], amax: u32, _: u64) -> bool {
        if amax == 0 {
            // Zeros round to themselves, signs kept.
            out.copy_from_slice(input);
            return true;
        }
        if (amax >> 23).wrapping_sub(self.fields.0) > self.fields.1 {
            return false;
        }
        let shift = (amax & 0x7f80_0000).wrapping_sub(self.emax_bits);
        let min_normal = self.min_normal.wrapping_add(shift);
        let max = self.max.wrapping_add(shift);
        let overflow = self.overflow.wrapping_add(shift & self.overflow_scales);
        for (o, x) in out.iter_mut().zip(input) {
            let x = x.to_bits();
            let abs = x & 0x7fff_ffff;
            let c = f32::from_bits((abs & 0x7f80_0000).max(min_normal)) * self.factor;
            let q = ((f32::from_bits(abs) + c) - c).to_bits();
            let q = if q > max { overflow } else { q };
            *o = f32::from_bits(q | (x & 0x8000_0000));
        }
        true
    }
}

/// Stochastic blocks on an element grid with an [`SrGrid`]: the elements are multiplied by
/// `2^-s` (exact where it matters, see [`SCALED_KMIN_SR`]), rounded on the element grid, and
/// multiplied back by `2^s` (one rounding of the exact value into the `f32` carrier, as the
/// reference's cast).
#[derive(Clone, Copy)]
struct SrBlock {
    grid: SrGrid,
    stream: RandomStream,
    mirrored: bool,
    /// The element format's largest exponent.
    emax: i32,
}

impl BlockRound for SrBlock {
    #[inline(always)]
    fn round(&self, input: &[f32; RNE_BLOCK], out: &mut [f32], amax: u32, start: u64) -> bool {
        // A normal maximum whose scale and inverse are normal `f32`s, the usual case: both
        // are exponent fields, and the shared exponent needs no clamp.
        let s = (amax >> 23) as i32 - 127 - self.emax;
        let (down, up) = if amax >= 0x0080_0000 && (-126..=126).contains(&s) {
            (pow2f_normal(-s), pow2f_normal(s))
        } else {
            let s = shared_exponent_f32(self.emax, amax);
            (pow2f(-s), pow2f(s))
        };
        let (lo, key) = (start as u32, self.stream.high_key((start >> 32) as u32));
        for (i, (o, x)) in out.iter_mut().zip(input).enumerate() {
            let y = (x * down).to_bits();
            let word = self.stream.bits_keyed(lo.wrapping_add(i as u32), key);
            let q = if self.mirrored {
                self.grid.element::<true, false>(y, word)
            } else {
                self.grid.element::<false, false>(y, word)
            };
            *o = f32::from_bits(q) * up;
        }
        true
    }
}

/// The smallest step of an element grid for which stochastic rounding of `x 2^-s` computed in
/// `f32` equals rounding the exact value: the product is exact unless it falls below
/// `2^-126`, and any value that small has a zero 32-bit fraction on a grid with a step at or
/// above `2^-93`.
const SCALED_KMIN_SR: i32 = -93;

/// Blocks of [`RNE_BLOCK`] elements, each full block rounded by `round` with the block's shared
/// exponent. The block maximum and the scale stay in registers and the block length is a
/// constant, so each block is whole vectors; blocks `round` declines, blocks holding infinity
/// or NaN, a block whose element indices cross a multiple of 2^32 and a short last block go
/// through [`block`].
#[inline(always)]
fn scaled_blocks<I: Isa>(
    q: &Quantizer,
    b: &BlockFormat,
    base: Grid,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
    round: impl BlockRound,
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
        let start = offset + (j * RNE_BLOCK) as u64;
        let amax = abs_max_bits(ib);
        // Random-word indices go in 32-bit lanes only where the low half does not wrap.
        let no_wrap = u32::MAX - start as u32 >= RNE_BLOCK as u32 - 1;
        match <&[f32; RNE_BLOCK]>::try_from(ib) {
            Ok(full) if amax < 0x7f80_0000 && no_wrap && round.round(full, ob, amax, start) => {}
            _ => block::<I>(q, b, base, ib, ob, start),
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
    match base.scaled(shared_exponent_f32(b.emax_elem(), amax)) {
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
/// pattern `amax`, for an element format whose largest exponent is `emax`, from the bits (the
/// hot loop's version of the same rule).
#[inline(always)]
fn shared_exponent_f32(emax: i32, amax: u32) -> i32 {
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
    (e - emax).clamp(lo, hi)
}

/// Try the fast path: `None` when it does not apply (nothing written), else the range events
/// of the rounding where the kernel judged them on the way (`Some(None)` where it did not; the
/// caller then judges, [`crate::format::range_events_f32`]).
pub(crate) fn quantize_f32(
    q: &Quantizer,
    input: &[f32],
    out: &mut [f32],
    offset: u64,
    row_len: usize,
) -> Option<Option<RangeCounts>> {
    let r = q.rounding();
    match q.format() {
        Format::Float(f) => run(&Grid::float(&f, r)?, r, q.stream(), input, out, offset),
        Format::Fixed(f) => run(&Grid::fixed(&f)?, r, q.stream(), input, out, offset),
        // QPyTorch's block rounding has its own f32 arithmetic (the reference path).
        Format::Block(b) if b.kind() == BlockKind::QBfp => return None,
        // Column blocks interleave: rounded in memory order with a scale per column (stochastic
        // rounding, `kernel/scaled.rs`); other modes take the `f64` paths.
        Format::Block(b) if b.size() == BlockSize::Col => {
            return scaled::quantize_scaled(q, &b, input, out, offset, row_len)
        }
        Format::Block(b) => {
            let base = match b.element() {
                Element::Float(f) => Grid::float(&f, r),
                Element::Fixed(f) => Grid::fixed(&f),
            }?;
            let n = b.block_len(input.len(), row_len);
            // Stochastic runs other than the MX block's (which `SrBlock` tiles) with one scale
            // each, judged on the way, where the scaled kernel takes them.
            if n != RNE_BLOCK {
                if let Some(judged) = scaled::quantize_scaled(q, &b, input, out, offset, row_len) {
                    return Some(judged);
                }
            }
            run_blocks(q, &b, base, input, out, offset, n)
        }
        // QPyTorch's float formats: branch-free, vectorized (the format takes only its
        // "nearest" and "stochastic").
        Format::QTorch(f)
            if matches!(r, Rounding::NearestAway | Rounding::Stochastic { bits: 32 }) =>
        {
            f.quantize_slice(r, q.stream(), offset, input, out)
        }
        Format::QTorch(_) | Format::QFixed(_) => return None,
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    //! The stochastic shortcut ([`SrGrid`]) against the general split ([`element`], which
    //! `tests/quantizer.rs` proves against the exact reference) on the same random words: the
    //! same bits for every `f32` pattern tried, specials included.

    use rayon::prelude::*;

    use super::*;

    const SPECS: [&str; 8] = [
        "bf16",
        "fp16",
        "e4m3fn",
        "e5m2",
        "float:e=3,m=4,special=fn",
        "fixed:wl=8,fl=6",
        "fixed:wl=12,fl=4,signed=off",
        "fixed:wl=8,fl=-2",
    ];

    fn grid(spec: &str, r: Rounding) -> Grid {
        match spec.parse::<Format>() {
            Ok(Format::Float(f)) => Grid::float(&f, r),
            Ok(Format::Fixed(f)) => Grid::fixed(&f),
            _ => None,
        }
        .unwrap_or_else(|| panic!("{spec} has no f32 grid"))
    }

    /// Every `stride`-th pattern of `start..end`, all three stochastic widths.
    fn check(start: u64, end: u64, stride: u64) {
        let stream = RandomStream::new(7, 1);
        for spec in SPECS {
            for bits in [32, 8, 1] {
                let r = Rounding::Stochastic { bits };
                let g = grid(spec, r);
                let c = SrGrid::new(&g, bits).unwrap_or_else(|| panic!("{spec}: no shortcut"));
                let count = (end - start).div_ceil(stride) as usize;
                let first_bad = (0..count)
                    .into_par_iter()
                    .map(|k| start + k as u64 * stride)
                    .find_first(|&i| {
                        let (x, word) = (i as u32, stream.bits(i));
                        let fast = if g.mirrored() {
                            c.element::<true, true>(x, word)
                        } else {
                            c.element::<false, true>(x, word)
                        };
                        fast != element(&g, r, x, word)
                    });
                assert_eq!(first_bad, None, "{spec} {r}: pattern {first_bad:#x?}");
            }
        }
    }

    #[test]
    fn sr_shortcut_equals_general_split_sampled() {
        check(0, 1 << 32, 4093);
        // Every pattern near the boundaries the shortcut treats apart: f32 subnormals and the
        // smallest normal, fp16's and e4m3fn's smallest normals, 1.0, and infinity and NaN.
        for centre in [
            0x0000_0000u64,
            0x0080_0000,
            0x3880_0000,
            0x3c80_0000,
            0x3f80_0000,
        ] {
            check(centre.saturating_sub(1 << 15), centre + (1 << 15), 1);
        }
        check(0x7f7f_8000, 0x7f80_8000, 1);
    }

    /// About 16 minutes on two cores: `cargo test --release --lib -- --ignored every_f32`.
    #[test]
    #[ignore]
    fn sr_shortcut_equals_general_split_every_f32() {
        check(0, 1 << 32, 1);
    }
}
