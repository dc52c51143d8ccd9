//! Bit-for-bit compatibility with QPyTorch 0.3.0's CPU quantizers (`qtorch/quant/quant_cpu/`,
//! checked against the installed package by `tests/qtorch.rs`): `float_quantize` (the
//! `qtorch:` format, [`QTorchFloat`]), `fixed_point_quantize` (`qfixed:`, [`QTorchFixed`]) and
//! `block_quantize` (`qbfp:`, a [`BlockFormat`](crate::format::BlockFormat) of kind `QBfp`
//! whose blocks are rounded by [`quantize_block`]).
//!
//! All three work on `f32` (QPyTorch tensors are `f32`; `f64` inputs are first rounded to
//! `f32`) with QPyTorch's own arithmetic, quirks included, so that lpsim is a drop-in for a
//! QPyTorch run; the standard `float:`, `fixed:` and `bfp:` formats round exactly once and keep
//! their own rules. Every difference is listed in `docs/formats.md` (QPyTorch compatibility).
//! QPyTorch has two modes, "nearest" and "stochastic": lpsim accepts for each format the mode
//! its "nearest" is on exact ties (`rna` for `qtorch:` and `qbfp:`, `rne` for `qfixed:`) and
//! `sr` (32 random bits, as QPyTorch draws) for "stochastic".
//!
//! Where QPyTorch's arithmetic makes a NaN out of non-NaN operands (`inf - inf` in `qbfp`), the
//! result is x86's default NaN (sign bit set), written out here so it does not depend on the
//! machine lpsim runs on.

use crate::format::exact::pow2;
use crate::format::{FixedFormat, FloatFormat, Special, SCALE_NAN_CODE};
use crate::round::{RandomStream, Rounding};

/// x86's default NaN (`0xffc0_0000`): what SSE returns for `inf - inf`, as QPyTorch runs.
const X86_DEFAULT_NAN: u32 = 0xffc0_0000;

/// QPyTorch's `round_bitwise`: keep `man_bits` bits of the `f32` fraction field, adding half a
/// unit of the last kept bit (nearest) or the low bits of a random word (stochastic) before
/// truncating the pattern. On a sign-magnitude pattern ties go away from zero.
#[inline(always)]
fn round_bitwise(target: u32, man_bits: u32, rounding: Rounding, random: u32) -> u32 {
    let drop = 23 - man_bits;
    let mask = (1u32 << drop) - 1;
    let add = match rounding {
        Rounding::Stochastic { .. } => random & mask,
        _ => 1u32 << (drop - 1),
    };
    target.wrapping_add(add) & !mask
}

/// The largest fraction field with `man_bits` kept bits (QPyTorch's `max_man`).
#[inline(always)]
fn max_man(man_bits: u32) -> u32 {
    ((1u32 << 23) - 1) >> (23 - man_bits) << (23 - man_bits)
}

/// Whether a rounding mode is QPyTorch's "stochastic": `sr` with 32 random bits.
fn is_full_sr(rounding: Rounding) -> bool {
    rounding == Rounding::Stochastic { bits: 32 }
}

/// QPyTorch's float format `(exp, man)`: `float_quantize(x, exp, man, rounding)`.
///
/// QPyTorch works on the `f32` bit pattern:
/// - "nearest" adds half a unit below the kept mantissa and truncates, so ties go away from
///   zero (`rna`); "stochastic" adds the low `23 - M` bits of a random word and truncates;
/// - no exponent code is reserved: the largest binade is `2^(2^(E-1))` (one above IEEE's), so
///   the largest finite value is `(2 - 2^-M) 2^(2^(E-1))` (480 for `E = 4, M = 3`), and
///   anything rounding above it, infinities and NaN included, saturates to it with the input's
///   sign bit. With `E = 8` that binade is `f32`'s own and nothing is clipped: infinities stay,
///   NaN stays NaN, and values rounding past `f32`'s largest become infinite;
/// - below the smallest normal `2^emin`, the value is shifted by `sign * 2^emin` with an `f32`
///   add (rounding to nearest-even), rounded bitwise, and shifted back, which also turns `-0`
///   into `+0`: there is no negative zero.
///
/// Differences from the standard `float:e=E,m=M` format, all reproduced on purpose: the larger
/// range and no inf/NaN (`E < 8`), no `-0`, ties away from zero, a double rounding for subnormal
/// inputs with bits below `2^(emin-23)`, `f64` inputs first rounded to `f32`, and with `M = 0`
/// the bit arithmetic turns NaN into `-0` (and `-NaN` into `+0`) for `E < 8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QTorchFloat {
    exp_bits: u32,
    man_bits: u32,
}

impl QTorchFloat {
    /// `exp` in 2..=8 and `man` in 0..=22 (QPyTorch's bit arithmetic is undefined at `man =
    /// 23`, and `exp = 1` has no normal binade), except `exp = 8, man = 0`: its values
    /// (powers of two and infinities, no NaN) have no code layout in lpsim.
    pub fn new(exp_bits: u32, man_bits: u32) -> Result<Self, String> {
        if !(2..=8).contains(&exp_bits) {
            return Err(format!("e = {exp_bits}: must be 2..=8 for qtorch"));
        }
        if man_bits > 22 {
            return Err(format!("m = {man_bits}: must be 0..=22 for qtorch"));
        }
        if exp_bits == 8 && man_bits == 0 {
            return Err(
                "e = 8 with m = 0: QPyTorch keeps infinities but turns NaN into -0 \
                        there, a value set with no code layout; use m >= 1"
                    .into(),
            );
        }
        Ok(QTorchFloat { exp_bits, man_bits })
    }

    /// Exponent bits.
    pub fn exp_bits(&self) -> u32 {
        self.exp_bits
    }
    /// Mantissa bits.
    pub fn man_bits(&self) -> u32 {
        self.man_bits
    }
    /// Width in bits of the IEEE-style layout used for codes.
    pub fn bits(&self) -> u32 {
        1 + self.exp_bits + self.man_bits
    }

    /// The sign/exponent/mantissa layout whose codes these values use: every exponent code is
    /// a binade (`special=none`, saturating) for `E < 8`; `f32`'s own layout (IEEE specials)
    /// for `E = 8`.
    pub fn layout(&self) -> FloatFormat {
        let (special, saturate) = if self.exp_bits == 8 {
            (Special::Ieee, false)
        } else {
            (Special::None, true)
        };
        FloatFormat::new(
            self.exp_bits,
            self.man_bits,
            None,
            true,
            special,
            saturate,
            true,
            true,
        )
        .expect("qtorch parameters are within the float limits")
    }

    /// The largest finite value, `(2 - 2^-M) 2^(2^(E-1))` (`E < 8`) or `f32`'s with `M` bits.
    pub fn max_value(&self) -> f64 {
        self.layout().limits().max
    }

    /// Quantize one `f32` exactly as QPyTorch's CPU `float_quantize` does.
    #[inline]
    pub fn quantize_f32(&self, x: f32, rounding: Rounding, random: u32) -> f32 {
        let min_exp = 2 - (1i32 << (self.exp_bits - 1));
        let target = x.to_bits();
        let target_exp = ((target << 1) >> 24) as i32 - 127;
        if target_exp < min_exp {
            let shift = f32::from_bits((((127 + min_exp) as u32) << 23) | (target & 0x8000_0000));
            let val = x + shift;
            let q = round_bitwise(val.to_bits(), self.man_bits, rounding, random);
            return f32::from_bits(q) - shift;
        }
        let q = round_bitwise(target, self.man_bits, rounding, random);
        f32::from_bits(self.clip_exponent(target, q))
    }

    /// [`QTorchFloat::quantize_f32`] over a slice, element `i` with the random word
    /// `stream.bits(offset + i)` (for QPyTorch's "stochastic"; "nearest" reads none): both paths
    /// computed and one selected per element, without branches, so that the loop vectorizes
    /// (the same bits as the scalar function: `tests` below, on sampled and, ignored by
    /// default, all `f32` inputs). `rounding` is `rna` or `sr` with 32 bits (what the format
    /// accepts).
    pub(crate) fn quantize_slice(
        &self,
        rounding: Rounding,
        stream: RandomStream,
        offset: u64,
        input: &[f32],
        out: &mut [f32],
    ) {
        let sr = matches!(rounding, Rounding::Stochastic { .. });
        // Words are keyed by the index's high half once per run of equal high halves.
        let mut at = 0;
        while at < input.len() {
            let index = offset + at as u64;
            let room = (1u64 << 32) - (index & 0xffff_ffff);
            let n = (input.len() - at).min(room.min(usize::MAX as u64) as usize);
            let words = Words {
                stream,
                high: stream.high_key((index >> 32) as u32),
                low: index as u32,
                sr,
            };
            slice(*self, words, &input[at..at + n], &mut out[at..at + n]);
            at += n;
        }
    }

    /// QPyTorch's `clip_exponent`: saturate above the largest binade `2^(2^(E-1))` (no lower
    /// clip: values below the smallest normal took the subnormal path).
    #[inline(always)]
    fn clip_exponent(&self, old: u32, q: u32) -> u32 {
        if q == 0 {
            return q;
        }
        let exp_store = (q << 1) >> 24;
        let max_store = (1u32 << (self.exp_bits - 1)) + 127;
        if exp_store > max_store {
            (old & 0x8000_0000) | (max_store << 23) | max_man(self.man_bits)
        } else {
            q
        }
    }
}

/// QPyTorch's fixed point: `fixed_point_quantize(x, wl, fl, clamp, symmetric, rounding)` on
/// the CPU.
///
/// The value is scaled by `2^fl` in `f32` (`ldexp`: huge values overflow to infinity), rounded
/// as `nearbyint((s + r) - 0.5)` where `s + r` is an `f32` add (`r = 0.5` for "nearest", a
/// uniform `f32` in `[0, 1)` for "stochastic") and the subtraction is in `f64`, scaled back in
/// `f32`, then, with `clamp`, limited to `[t_min, t_max]` computed in `f32`:
/// `t_min = -2^(wl-fl-1)` (plus `2^-fl` when `symmetric`), `t_max = 2^(wl-fl-1) - 2^-fl`
/// (rounded to `f32`: `2^31` for `wl = 32, fl = 0`; with `wl = 25` the symmetric lower bound
/// `-(2^24 - 1)` steps is one of the odd counts below, so it moves when quantized again).
///
/// What follows, reproduced on purpose (the standard `fixed:` format rounds once and has no
/// NaN, infinity or `-0`):
/// - "nearest" is ties-to-even except where the `f32` add rounds: scaled values just below
///   `n + 0.5` are exact, but odd integers in `[2^23, 2^24)` move up by one (`8388609 ->
///   8388610`, `-8388609 -> -8388608`);
/// - a negative value rounding to zero gives `-0`, while `-0` itself gives `+0`;
/// - NaN stays NaN (the clamp's comparisons are false), infinities clamp to the range ends;
/// - without `clamp` nothing limits the range: the result is the `f32` value on the grid
///   `2^-fl`, infinities stay infinite and values whose scaled form overflows `f32` become
///   infinite. `wl` then has no effect on the values (QPyTorch ignores it too); it still sets
///   the width lpsim prices.
///
/// QPyTorch's CUDA kernel (read, not run) rounds "nearest" with `round` instead (ties away from
/// zero, no `f32` add); lpsim follows the CPU kernel, which is the one the reference vectors
/// come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QTorchFixed {
    wl: u32,
    fl: i32,
    clamp: bool,
    symmetric: bool,
}

impl QTorchFixed {
    /// `wl` in 1..=64, and `fl` with the grid `2^-fl` and the range `2^(wl-fl-1)` inside `f32`
    /// (`wl - 128 <= fl <= 149`).
    pub fn new(wl: u32, fl: i32, clamp: bool, symmetric: bool) -> Result<Self, String> {
        if !(1..=64).contains(&wl) {
            return Err(format!("wl = {wl}: must be 1..=64"));
        }
        let lo = wl as i32 - 128;
        if !(lo..=149).contains(&fl) {
            return Err(format!(
                "fl = {fl}: the grid 2^-fl and the range 2^(wl-fl-1) must be f32 values \
                 (fl in {lo}..=149)"
            ));
        }
        Ok(QTorchFixed {
            wl,
            fl,
            clamp,
            symmetric,
        })
    }

    /// Word length (QPyTorch's `wl`).
    pub fn wl(&self) -> u32 {
        self.wl
    }
    /// Fractional length: the grid step is `2^-fl`.
    pub fn fl(&self) -> i32 {
        self.fl
    }
    /// Whether values are clamped to the range (QPyTorch's `clamp`).
    pub fn clamp(&self) -> bool {
        self.clamp
    }
    /// Whether the most negative value is dropped (QPyTorch's `symmetric`).
    pub fn symmetric(&self) -> bool {
        self.symmetric
    }
    /// Width in bits (`wl`).
    pub fn bits(&self) -> u32 {
        self.wl
    }
    /// The grid step `2^-fl`.
    pub fn step(&self) -> f64 {
        pow2(-self.fl)
    }

    /// QPyTorch's `fixed_min_max`: the clamp bounds as it computes them in `f32`.
    pub fn bounds(&self) -> (f32, f32) {
        let top = -(pow2(self.wl as i32 - self.fl - 1) as f32);
        let t_max = (f64::from(-top) - self.step()) as f32;
        let t_min = if self.symmetric {
            (f64::from(top) + self.step()) as f32
        } else {
            top
        };
        (t_min, t_max)
    }

    /// The finite range of the values: the clamp bounds, or all of `f32` without `clamp`.
    pub fn range(&self) -> (f64, f64) {
        if self.clamp {
            let (lo, hi) = self.bounds();
            (f64::from(lo), f64::from(hi))
        } else {
            (-f64::from(f32::MAX), f64::from(f32::MAX))
        }
    }

    /// The standard fixed-point format with the same grid and word (saturating), whose codes
    /// these values use when they are clamped (`None` without `clamp`: no word holds them).
    pub fn layout(&self) -> Option<FixedFormat> {
        if !self.clamp {
            return None;
        }
        FixedFormat::new(self.wl, self.fl, true, true, self.symmetric).ok()
    }

    /// Quantize one `f32` exactly as QPyTorch's CPU `fixed_point_quantize` does.
    #[inline]
    pub fn quantize_f32(&self, x: f32, rounding: Rounding, random: u32) -> f32 {
        let r = match rounding {
            // `torch.rand_like`: 24 random bits scaled to [0, 1).
            Rounding::Stochastic { .. } => (random >> 8) as f32 * (1.0 / 16_777_216.0),
            _ => 0.5,
        };
        let s = ldexp(x, self.fl);
        let n = (f64::from(s + r) - 0.5).round_ties_even() as f32;
        let o = ldexp(n, -self.fl);
        if !self.clamp {
            return o;
        }
        let (t_min, t_max) = self.bounds();
        if o > t_max {
            t_max
        } else if o < t_min {
            t_min
        } else {
            o
        }
    }
}

/// C's `ldexp` on an `f32`: `x 2^k` rounded once to `f32` (exact in `f64` for `|k| <= 300`).
#[inline(always)]
fn ldexp(x: f32, k: i32) -> f32 {
    (f64::from(x) * pow2(k)) as f32
}

/// Whether a rounding mode is one of QPyTorch's for a format whose "nearest" is `nearest`.
pub(crate) fn supports(nearest: Rounding, rounding: Rounding) -> bool {
    rounding == nearest || is_full_sr(rounding)
}

/// One block of QPyTorch's CPU `block_quantize(x, wl, dim)` (`qbfp:wl=W`): `out[i]` gets the
/// value of `block[i]` (rounded to `f32` first), `random(i)` the random word of element `i`.
/// Returns the block's scale code: the `f32` exponent field of its largest magnitude (`0xff`
/// when that is NaN or infinite).
///
/// With `e` the exponent of the block's largest magnitude (as `f32` bits: 0 below `2^-126`),
/// QPyTorch adds the offset `b = 6 * 2^e` in `f32` (rounding to nearest-even on the grid
/// `2^(e-21)`), keeps `wl` fraction bits of the sum (grid `2^(e+2-wl)`) bitwise, subtracts `b`
/// and clips what left the binade `2^e` to `+-(2 - 2^-(wl-2)) 2^e`. So, unlike `bfp:`:
/// - "nearest" rounds twice, first on the `f32` grid of the offset sum, and its ties go up
///   (toward +infinity: the sum is positive), so `-0.125 -> 0` where `bfp` gives `-0.25`;
/// - `-0` becomes `+0`;
/// - a block whose largest magnitude is below `2^-126` has no offset: each element keeps the
///   top `wl` bits of its own fraction field (grid `2^(-126-wl)`);
/// - a block whose largest magnitude is at least `2^126` overflows the offset to infinity:
///   every finite element becomes `inf - inf`, a negative NaN, which the clip turns into
///   `-(2 - 2^-(wl-2)) 2^e`;
/// - a block holding an infinity or NaN reads NaN everywhere, as in `bfp` (a NaN element keeps
///   its own NaN, the others get the negative default NaN).
pub(crate) fn quantize_block(
    wl: u32,
    block: &[f64],
    out: &mut [f64],
    rounding: Rounding,
    random: impl Fn(usize) -> u32,
) -> u8 {
    // `torch.max(abs(x))`: NaN wins.
    let mut amax = 0.0f32;
    for &x in block {
        let a = (x as f32).abs();
        if a.is_nan() || a > amax {
            amax = a;
            if a.is_nan() {
                break;
            }
        }
    }
    let max_exp = (amax.to_bits() << 1) >> 24 << 23;
    let base = f32::from_bits(max_exp) * 6.0;
    let clip = max_exp | max_man(wl - 2);
    for (i, (o, &x)) in out.iter_mut().zip(block).enumerate() {
        let x = x as f32;
        let rebased = x86_add(x, base);
        let q = round_bitwise(rebased.to_bits(), wl, rounding, random(i));
        let bits = x86_add(f32::from_bits(q), -base).to_bits();
        let clipped = if (bits << 1) >> 24 << 23 > max_exp {
            (bits & 0x8000_0000) | clip
        } else {
            bits
        };
        *o = f64::from(f32::from_bits(clipped));
    }
    if amax.is_finite() {
        (max_exp >> 23) as u8
    } else {
        SCALE_NAN_CODE
    }
}

/// `a + b` in `f32` with x86's NaN rules: a NaN operand propagates (the first one), and a NaN
/// made of two non-NaN operands (`inf - inf`) is the default NaN, negative.
#[inline(always)]
fn x86_add(a: f32, b: f32) -> f32 {
    let s = a + b;
    if !s.is_nan() {
        s
    } else if a.is_nan() {
        f32::from_bits(a.to_bits() | 0x0040_0000)
    } else if b.is_nan() {
        f32::from_bits(b.to_bits() | 0x0040_0000)
    } else {
        f32::from_bits(X86_DEFAULT_NAN)
    }
}

/// The quiet bit of an `f32` NaN.
const QUIET: u32 = 0x0040_0000;

/// Where a slice's random words come from: `stream.bits_keyed(low + i, high)` for element `i`
/// (all within one high half of the index), or none (`sr` false: QPyTorch's "nearest").
#[derive(Clone, Copy)]
struct Words {
    stream: RandomStream,
    high: u32,
    low: u32,
    sr: bool,
}

/// The body of [`QTorchFloat::quantize_slice`], compiled per instruction set.
#[inline(always)]
fn slice_portable(q: QTorchFloat, words: Words, input: &[f32], out: &mut [f32]) {
    let min_exp = 2 - (1i32 << (q.exp_bits - 1));
    let drop = 23 - q.man_bits;
    let low_bits = (1u32 << drop) - 1;
    let keep = !low_bits;
    let half = 1u32 << (drop - 1);
    let max_store = (1u32 << (q.exp_bits - 1)) + 127;
    let saturated = (max_store << 23) | max_man(q.man_bits);
    // The smallest normal binade's biased exponent: the subnormal path's shift.
    let small = ((127 + min_exp) as u32) << 23;
    for (i, (o, &x)) in out.iter_mut().zip(input).enumerate() {
        let add = if words.sr {
            let w = words
                .stream
                .bits_keyed(words.low.wrapping_add(i as u32), words.high);
            w & low_bits
        } else {
            half
        };
        // A signalling NaN quieted, as every other path sees it (through an `f64` carrier).
        let t = if x.is_nan() {
            x.to_bits() | QUIET
        } else {
            x.to_bits()
        };
        let sign = t & 0x8000_0000;
        let below = (((t << 1) >> 24) as i32 - 127) < min_exp;
        let shift = f32::from_bits(small | sign);
        let sub = f32::from_bits((x + shift).to_bits().wrapping_add(add) & keep) - shift;
        let r = t.wrapping_add(add) & keep;
        let clip = r != 0 && (r << 1) >> 24 > max_store;
        let normal = if clip { sign | saturated } else { r };
        *o = if below { sub } else { f32::from_bits(normal) };
    }
}

crate::simd::multiversion!(slice => slice_portable, (q: QTorchFloat, words: Words, input: &[f32], out: &mut [f32]));

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (E, M) the formats allow (E 2..=8, M 0..=22, but (8, 0)).
    fn all_formats() -> Vec<(u32, u32)> {
        (2..=8)
            .flat_map(|e| (0..=22).map(move |m| (e, m)))
            .collect()
    }

    /// The vectorized slice against the scalar function on the `f32` bit patterns
    /// `0, step, 2 step, ...` for `formats`, with "nearest" and "stochastic" (element `k` of
    /// the slice with the word `bits(offset + k)`); the bits must agree, NaN patterns included.
    fn check_nearest(step: usize, formats: &[(u32, u32)]) {
        let stream = RandomStream::new(7, 3);
        let sr = Rounding::Stochastic { bits: 32 };
        let mut input = Vec::with_capacity(1 << 16);
        let mut out = vec![0f32; 1 << 16];
        for &(e, m) in formats {
            {
                let Ok(q) = QTorchFloat::new(e, m) else {
                    continue;
                };
                let mut bits = 0u64;
                while bits < 1 << 32 {
                    input.clear();
                    while input.len() < 1 << 16 && bits < 1 << 32 {
                        input.push(f32::from_bits(bits as u32));
                        bits += step as u64;
                    }
                    let n = input.len();
                    let na = Rounding::NearestAway;
                    q.quantize_slice(na, stream, 0, &input, &mut out[..n]);
                    // The scalar function on what an `f64` carrier makes of the input (a
                    // signalling NaN quieted), as the slice sees it.
                    let quiet = |x: f32| {
                        if x.is_nan() {
                            f32::from_bits(x.to_bits() | QUIET)
                        } else {
                            x
                        }
                    };
                    for (x, y) in input.iter().zip(&out) {
                        let want = q.quantize_f32(quiet(*x), na, 0);
                        assert_eq!(y.to_bits(), want.to_bits(), "e={e} m={m} x={x:e}");
                    }
                    // An offset whose run of indices crosses a high half of 2^32.
                    let offset = (1u64 << 32) - 1000 + bits;
                    q.quantize_slice(sr, stream, offset, &input, &mut out[..n]);
                    for (k, (x, y)) in input.iter().zip(&out).enumerate() {
                        let want = q.quantize_f32(quiet(*x), sr, stream.bits(offset + k as u64));
                        assert_eq!(y.to_bits(), want.to_bits(), "sr e={e} m={m} x={x:e}");
                    }
                }
            }
        }
    }

    /// A stride prime to every power of two: 65 000 patterns per format, every exponent and
    /// sign, low and high mantissas.
    #[test]
    fn vectorized_nearest_equals_the_scalar_function_sampled() {
        check_nearest(65_521, &all_formats());
    }

    /// Every `f32` bit pattern for formats of every kind of range: bf16-like (no clip),
    /// e5m2/e4m3-like (clipped), the narrowest exponent, no mantissa, the widest mantissa.
    /// About 2.5 minutes (both modes): run with `--ignored`.
    #[test]
    #[ignore]
    fn vectorized_nearest_equals_the_scalar_function_everywhere() {
        check_nearest(1, &[(8, 7), (5, 2), (4, 3), (2, 0), (8, 22), (6, 10)]);
    }
}
