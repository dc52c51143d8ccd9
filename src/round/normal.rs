//! Vectorized counter-based standard normal draws (`f32`), the executor's Gaussian noise.
//!
//! Draw `k` of a [`RandomStream`] is a pure function of `(seed, stream, k)`, so any chunking
//! and any thread count give the same values. Draws `2j` and `2j + 1` are the Box-Muller pair
//! of the stream's random words `2j` and `2j + 1` (cuRAND's `curand_normal2` does the same with
//! Philox words):
//!
//! - `u1 = (w_{2j} + 1/2) 2^-32`, computed in `f32` from the word's top 24 and low 8 bits, is in
//!   `(0, 1]` and resolves `2^-33` near zero, so the radius `r = sqrt(-2 ln u1)` reaches
//!   `sqrt(66 ln 2) = 6.76` (tails are cut at 6.76 standard deviations; the mass beyond is
//!   `1.4e-11`);
//! - `theta = 2 pi u2` with `u2` the top 24 bits of `w_{2j+1}`: the quadrant comes from the
//!   integer bits, the remaining angle `phi` in `[-pi/4, pi/4)` is exact;
//! - draw `2j` is `r cos(theta)`, draw `2j + 1` is `r sin(theta)`.
//!
//! Each draw therefore consumes 32 random bits (its own word; [`NORMAL_F32_BITS`]), against the
//! four words (128 bits) of [`RandomStream::normal_f64`]. `ln`, `sin` and `cos` are Cephes'
//! single-precision minimax polynomials (`logf`, `sinf`, `cosf`, about 1 ulp) written without
//! branches, so a loop of draws vectorizes; they use only `+`, `*` and `sqrt` (no fused
//! multiply-add is formed implicitly in Rust), so the values are the same on every instruction
//! set. This is a statistical generator for simulation: `tests/normal.rs` checks its moments,
//! tails and distribution (a Kolmogorov-Smirnov test) at fixed seeds.

use crate::round::RandomStream;
use crate::simd::multiversion;

/// Random bits one [`RandomStream::normals_f32`] draw consumes (one 32-bit word).
pub const NORMAL_F32_BITS: u64 = 32;

/// Cephes `logf`'s polynomial, highest degree first.
const LN_POLY: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_4e-1,
    -2.499_999_4e-1,
    3.333_333e-1,
];

/// `ln(u)` for a positive normal `f32` `u` (Cephes `logf`, without branches).
#[inline(always)]
fn ln(u: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = u.to_bits();
    // u = m 2^e with m in [0.5, 1).
    let e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < SQRT_HALF;
    let e = (e - i32::from(small)) as f32;
    let x = if small { m + m - 1.0 } else { m - 1.0 };
    let z = x * x;
    let p = LN_POLY.iter().fold(0.0f32, |p, &c| p * x + c);
    let y = p * x * z + -2.121_944_4e-4 * e + -0.5 * z;
    x + y + 0.693_359_4 * e
}

/// Draws `2j` and `2j + 1` of a stream (see the module docs) from the pair's words
/// `w1 = bits(2j)` and `w2 = bits(2j + 1)`: one radius, one sine and one cosine for both.
#[inline(always)]
fn pair(w1: u32, w2: u32) -> [f32; 2] {
    // u1 = (w1 + 1/2) 2^-32 in (0, 1].
    let u1 = ((w1 >> 8) as i32 as f32 + ((w1 & 0xff) as i32 as f32 + 0.5) * (1.0 / 256.0))
        * (1.0 / 16_777_216.0);
    let r = (-2.0 * ln(u1)).sqrt();
    // theta = 2 pi t for t = (w2 >> 8) 2^-24: the nearest quadrant q and the rest phi.
    let t = (w2 >> 8) as i32;
    let q = (t + (1 << 21)) >> 22;
    let phi = (t - (q << 22)) as f32 * (std::f32::consts::FRAC_PI_2 / 4_194_304.0);
    let z = phi * phi;
    let sin = ((-1.951_529_6e-4 * z + 8.332_161e-3) * z - 1.666_665_5e-1) * z * phi + phi;
    let cos = ((2.443_315_7e-5 * z - 1.388_731_6e-3) * z + 4.166_664_6e-2) * z * z - 0.5 * z + 1.0;
    // cos(q pi/2 + phi) (draw 2j) and sin(q pi/2 + phi) (draw 2j + 1) from the quadrant: an
    // odd quadrant swaps sine and cosine; the signs follow q's second bit.
    let odd = (q & 1) == 1;
    let (c, s) = if odd { (sin, cos) } else { (cos, sin) };
    let (nc, ns) = ((((q + 1) >> 1) & 1) as u32, ((q >> 1) & 1) as u32);
    [
        r * f32::from_bits(c.to_bits() ^ (nc << 31)),
        r * f32::from_bits(s.to_bits() ^ (ns << 31)),
    ]
}

/// Standard normal draw `k` of `s` (see the module docs).
#[inline(always)]
fn draw(s: &RandomStream, k: u64) -> f32 {
    let p = k & !1;
    pair(s.bits(p), s.bits(p | 1))[(k & 1) as usize]
}

/// `out[i]` = draw `start + i` of `s`: whole pairs at once, a draw of a pair cut by either end
/// on its own.
#[inline(always)]
fn fill_portable(s: &RandomStream, start: u64, out: &mut [f32]) {
    let s = *s;
    let skip = ((start & 1) as usize).min(out.len());
    let (head, rest) = out.split_at_mut(skip);
    if let [o] = head {
        *o = draw(&s, start);
    }
    let k = start + skip as u64;
    let done = k + (rest.len() / 2 * 2) as u64;
    let mut pairs = rest.chunks_exact_mut(2);
    for (j, o) in pairs.by_ref().enumerate() {
        let p = k + 2 * j as u64;
        let [a, b] = pair(s.bits(p), s.bits(p | 1));
        o[0] = a;
        o[1] = b;
    }
    if let [last] = pairs.into_remainder() {
        *last = draw(&s, done);
    }
}

multiversion!(fill => fill_portable, (s: &RandomStream, start: u64, out: &mut [f32]));

impl RandomStream {
    /// Standard normal draws `start..start + out.len()` of this stream, 32 random bits each:
    /// vectorized Box-Muller on the stream's words (see `round/normal.rs`).
    pub fn normals_f32(&self, start: u64, out: &mut [f32]) {
        fill(self, start, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole pairs and pairs cut by either end give each draw as computed alone (a draw is a
    /// pure function of its index, whatever the slice).
    #[test]
    fn fill_equals_draws_alone() {
        let s = RandomStream::new(8, 1);
        for (start, len) in [
            (0u64, 0usize),
            (0, 1),
            (1, 1),
            (3, 10),
            (4, 33),
            (7, 64),
            ((1 << 32) - 5, 20),
        ] {
            let mut z = vec![0f32; len];
            s.normals_f32(start, &mut z);
            for (i, &v) in z.iter().enumerate() {
                let want = draw(&s, start + i as u64);
                assert_eq!(v.to_bits(), want.to_bits(), "draw {}", start + i as u64);
            }
        }
    }

    /// The polynomials against the `f64` library functions, over the whole input range.
    #[test]
    fn ln_and_angles_are_accurate() {
        for i in 0..100_000u32 {
            let u = f32::from_bits(0x2f00_0000 + i * 0x1f9f);
            if u > 1.0 {
                break;
            }
            let want = f64::from(u).ln();
            let got = f64::from(ln(u));
            assert!(
                (got - want).abs() <= 2.5e-7 * want.abs().max(1e-3),
                "ln({u}) = {got}, want {want}"
            );
        }
        // Draws against Box-Muller in f64 on the same words.
        let s = RandomStream::new(3, 4);
        let mut z = vec![0f32; 4096];
        s.normals_f32(0, &mut z);
        for (k, &v) in z.iter().enumerate() {
            let k = k as u64;
            let (w1, w2) = (s.bits(k & !1), s.bits(k | 1));
            // The f32 u1 of the generator (its mapping of the word), widened.
            let u1 =
                f64::from(((w1 >> 8) as f32 + ((w1 & 0xff) as f32 + 0.5) / 256.0) / 16_777_216.0);
            let theta = std::f64::consts::TAU * f64::from(w2 >> 8) / 16_777_216.0;
            let r = (-2.0 * u1.ln()).sqrt();
            let want = if k % 2 == 0 {
                r * theta.cos()
            } else {
                r * theta.sin()
            };
            assert!(
                (f64::from(v) - want).abs() <= 2e-6 * (1.0 + want.abs()),
                "draw {k}: {v} vs {want}"
            );
        }
    }
}
