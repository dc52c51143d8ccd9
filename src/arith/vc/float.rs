//! `Q^vc` on the grid of a float format (`float:`, QPyTorch's `qtorch:`, the elements of an MX
//! block): the local grids, the choice of the step `Delta`, and one element's draw. The rule is
//! stated in the parent module's docs.

use crate::format::exact::{exponent, pow2, split};
use crate::format::{FloatFormat, QTorchFloat};
use crate::round::Rounding;

use super::{three_point, top_up};

/// How far Case A's Gaussian stage is covered by the local grid, in standard deviations of
/// `sqrt(v)`: the three-point draw is exact while `x` stays within this reach (beyond it with
/// probability below `Phi(-4) = 3.2e-5`).
const REACH: f64 = 4.0;

/// The grids of a float format, by the exponents of their steps: the format's binade `e` has the
/// step `2^(e - m)`, every step lies in `2^kmin ..= 2^ktop`, and the *local grid* `L(k)` is the
/// format's grid with every step below `2^k` raised to `2^k`: the multiples of `2^k` up to
/// `2^(k + m + 1)` (all of them values of the format), then the format's own points. `L(k)`
/// continues past the largest finite value with the top binade's step; a value drawn there
/// converts as the format's nearest rounding does (overflow, saturation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FloatGrid {
    /// Stored mantissa bits `m`.
    m: i32,
    /// `log2` of the smallest step: `emin - m` with subnormals, `emin` without (a format that
    /// flushes subnormals has only `0` and `2^emin` below `2^emin`).
    kmin: i32,
    /// `log2` of the top binade's step, `emax - m`.
    ktop: i32,
}

/// How an element goes through `Q^vc`, decided on the grid of `mu`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Plan {
    /// Case A: `x = mu + sqrt(v - v0) xi` is drawn onto `L(k)` with `v0 = 4^k / 4`.
    A {
        /// The Gaussian stage's value.
        x: f64,
        /// The exponent of `Delta`.
        k: i32,
    },
    /// Case B: stochastic rounding of `mu` plus the missing variance.
    B,
    /// `mu` is not finite or beyond the format's range by more than a binade: it converts as
    /// the format's nearest rounding does, with no draw.
    Convert,
}

impl FloatGrid {
    /// The grids of a float format, or `None` for a format without a zero (E8M0).
    pub fn of_float(f: &FloatFormat) -> Option<Self> {
        if !f.has_zero() {
            return None;
        }
        let l = f.limits();
        let m = f.man_bits() as i32;
        Some(FloatGrid {
            m,
            kmin: if f.subnormals() { l.emin - m } else { l.emin },
            ktop: l.emax - m,
        })
    }

    /// QPyTorch's float `(e, m)`: the grids of its code layout (IEEE bias, subnormals, the
    /// largest binade `2^(2^(e-1))` for `e < 8`, `f32`'s for `e = 8`).
    pub fn of_qtorch(q: &QTorchFloat) -> Self {
        Self::of_float(&q.layout()).expect("a QPyTorch float has a zero")
    }

    /// The grids of the same format scaled by `2^s` (an MX element grid in a block of scale `s`).
    pub fn scaled(self, s: i32) -> Self {
        FloatGrid {
            kmin: self.kmin + s,
            ktop: self.ktop + s,
            ..self
        }
    }

    /// Whether the magnitude `a` is drawn on the grids: not from `2^(ktop + m + 2)` on (beyond
    /// the largest finite value by at least a binade, where values only convert, and too large
    /// to split on a fine grid), nor infinite or NaN.
    fn drawable(&self, a: f64) -> bool {
        a < pow2(self.ktop + self.m + 2)
    }

    /// The exponent of the step of `L(k)` at the magnitude `a` (the step of the interval
    /// `[a, next point)` for a point `a`).
    fn step_exp(&self, k: i32, a: f64) -> i32 {
        if a == 0.0 {
            return k;
        }
        (exponent(a) - self.m).clamp(k, self.ktop)
    }

    /// The gaps of `L(k)` below and above its point `q`.
    fn gaps(&self, k: i32, q: f64) -> (f64, f64) {
        let a = q.abs();
        if a == 0.0 {
            return (pow2(k), pow2(k));
        }
        let outward = self.step_exp(k, a);
        // Just below a power of two the step is half of the one above it.
        let pow2_point = a == pow2(exponent(a));
        let inward = (exponent(a) - self.m - i32::from(pow2_point)).clamp(k, self.ktop);
        let (inward, outward) = (pow2(inward), pow2(outward));
        if q > 0.0 {
            (inward, outward)
        } else {
            (outward, inward)
        }
    }

    /// The exponent of the format's step at `mu` (`Delta_0 = 2^k0`).
    fn k0(&self, a: f64) -> i32 {
        if a == 0.0 {
            self.kmin
        } else {
            (exponent(a) - self.m).clamp(self.kmin, self.ktop)
        }
    }

    /// Decide the case of `mu` for the target variance `v`; `normal` draws Case A's `xi`.
    ///
    /// `Delta = 2^k` is the finest step whose uniform region covers `|mu| + REACH sqrt(v)`,
    /// `2^(k + m + 1) >= |mu| + REACH sqrt(v)`, but no finer than the format's step at `mu` and
    /// no coarser than the top binade's. Case A when `v > Delta^2 / 4`, else Case B.
    pub fn plan(&self, mu: f64, v: f64, normal: impl FnOnce() -> f64) -> Plan {
        let a = mu.abs();
        if !self.drawable(a) {
            return Plan::Convert;
        }
        let ceil_log2 = |y: f64| exponent(y) + i32::from(y != pow2(exponent(y)));
        let k_reach = ceil_log2(a + REACH * v.sqrt()) - self.m - 1;
        let k = k_reach.min(self.ktop).max(self.k0(a));
        let d = pow2(k);
        if v <= d * d / 4.0 {
            return Plan::B;
        }
        Plan::A {
            x: mu + (v - d * d / 4.0).sqrt() * normal(),
            k,
        }
    }

    /// Case A's draw of `x` onto `L(k)` with `v0 = 4^k / 4`, given the uniform `u`: the
    /// three-point distribution about the nearest point `q` (`rna`) with mean `x` and variance
    /// `v0`, or, where none exists (the grid around `x` is too coarse), stochastic rounding of
    /// `x` between its neighbours. Returns the value and whether it fell back.
    pub fn finish_a(&self, k: i32, x: f64, u: f64) -> (f64, bool) {
        let a = x.abs();
        if !self.drawable(a) {
            return (x, false);
        }
        let ke = self.step_exp(k, a);
        let (n, frac) = split(a, ke);
        let step = pow2(ke);
        let negative = x.is_sign_negative();
        let up = Rounding::NearestAway.round_up(negative, n & 1 == 1, frac, 0);
        let sign = |m: f64| if negative { -m } else { m };
        let q = sign((n + u64::from(up)) as f64 * step);
        let (below, above) = self.gaps(k, q);
        let d = pow2(k);
        match three_point(x - q, below, above, d * d / 4.0, u) {
            Some(offset) => (signed_sum(q, offset, x), false),
            None => {
                // Stochastic rounding between the neighbours: mean x, the least variance a
                // grid this coarse allows (more than v0 here).
                let (lo, hi) = (n as f64 * step, (n + 1) as f64 * step);
                let p_hi = (a - lo) / (hi - lo);
                (sign(if u < p_hi { hi } else { lo }), true)
            }
        }
    }

    /// Case B's draw: `q` is lpsim's 32-bit stochastic rounding of `mu` (random word `bits`) on
    /// the format's grid at `mu` (`L(k0)`); if `v` exceeds its variance `f (1 - f) Delta_0^2`,
    /// the rest `w` is added as a zero-mean step (given `u`) to the nearest pair of points
    /// `q - A`, `q + B` of `L(k0)` (the `j`-th below and above, `j` the smallest with
    /// `A B >= w`, so the step's probabilities `w / (B (A + B))`, `w / (A (A + B))` sum to at
    /// most 1; `j = 1` whenever `v <= Delta_0^2 / 4`, the reference's Case B).
    pub fn finish_b(&self, mu: f64, v: f64, bits: u32, u: f64) -> f64 {
        let a = mu.abs();
        if !self.drawable(a) {
            return mu;
        }
        let k0 = self.k0(a);
        let (n, frac) = split(a, k0);
        let negative = mu.is_sign_negative();
        let up = Rounding::Stochastic { bits: 32 }.round_up(negative, n & 1 == 1, frac, bits);
        let mag = (n + u64::from(up)) as f64 * pow2(k0);
        let q = if negative { -mag } else { mag };
        let r = (mu - q).abs();
        let w = v - r * (pow2(k0) - r);
        let (mut below, mut above) = self.gaps(k0, q);
        while below * above < w {
            below += self.gaps(k0, q - below).0;
            above += self.gaps(k0, q + above).1;
        }
        signed_sum(q, top_up(w, below, above, u), mu)
    }
}

/// `q + offset`, where a zero result takes the sign of `like` (a sum of opposite values is `+0`
/// in IEEE arithmetic; the draw's zero is the zero of the value it came from).
fn signed_sum(q: f64, offset: f64, like: f64) -> f64 {
    let t = q + offset;
    if t == 0.0 {
        0.0f64.copysign(like)
    } else {
        t
    }
}
