//! Value-set inclusion between formats: whether every value of one format is exactly a value of
//! another ([`Format::contains`]). A MAC input takes an operand without a conversion exactly when
//! its format contains the operand's (`graph::fits_within`), so the rule must be exact: never
//! permissive (a value that is not representable would be silently changed by the MAC) and
//! complete for the cases the algorithms rely on (integer codes in fixed point, block formats
//! and floats).
//!
//! Rules, with `x` the operand's format and `t` the container:
//! - equal formats; anything whose values are all `f32` values in a float that holds every `f32`;
//! - fixed in fixed: `x`'s grid `2^-fl` is a multiple of `t`'s and its range lies inside `t`'s;
//! - fixed in float: every integer up to `x`'s largest magnitude fits the significand, the grid
//!   step is at least the float's smallest positive value (its smallest normal without
//!   subnormals) and the largest magnitude is at most the float's largest;
//! - float in float: no more mantissa bits, no larger range, no finer bottom of the grid, and
//!   the special values (infinity, NaN, sign, zero, `-0`) the operand has exist in the container;
//! - fixed in a block format (bfp, MX): for every block maximum the operand can produce, the
//!   block's element grid (set by the shared exponent) divides `x`'s grid and the scaled element
//!   range covers the block. For `bfp:wl=w` (and MXINT8) this holds for symmetric `b`-bit
//!   integers exactly when `b <= w`: the most negative code `-2^(b-1)` raises the shared
//!   exponent by one and doubles the grid step;
//!   `qbfp` (the same grid, QPyTorch's rounding) follows the same rule for blocks whose largest
//!   magnitude is below `2^126`; at `2^126` its `f32` offset overflows and the block is lost, so
//!   an operand reaching it is not contained;
//! - QPyTorch floats (`qtorch`) are contained where the layout they are coded in is (their
//!   largest binade is `2^(2^(e-1))`, one above IEEE's); QPyTorch's fixed point (`qfixed`, with
//!   NaN, `-0` and, unclamped, any `f32`) only by floats holding every `f32`. As containers both
//!   hold only themselves. Anything else: not contained.

use crate::format::exact::{exponent, pow2};
use crate::format::{
    BlockFormat, BlockKind, Element, FixedFormat, FloatFormat, Format, Special, SCALE_EXP_RANGE,
};

impl Format {
    /// Whether every value of `x` is exactly a value of `self` (see the module docs).
    pub fn contains(&self, x: &Format) -> bool {
        if self == x {
            return true;
        }
        if let Format::Float(t) = self {
            if x.fits_f32() && holds_every_f32(t) {
                return true;
            }
        }
        match (self, x) {
            (Format::Fixed(t), Format::Fixed(x)) => fixed_in_fixed(x, t),
            (Format::Float(t), Format::Fixed(x)) => fixed_in_float(x, t),
            (Format::Float(t), Format::Float(x)) => float_in_float(x, t),
            (Format::Float(t), Format::QTorch(q)) => float_in_float(&q.layout(), t),
            (Format::Block(t), Format::Fixed(x)) => {
                fixed_in_block(x, t)
                    && (t.kind() != BlockKind::QBfp || exponent(max_magnitude(x)) < 126)
            }
            _ => false,
        }
    }
}

/// Whether `t` holds every `f32` value (`fp32` itself, `fp64`).
fn holds_every_f32(t: &FloatFormat) -> bool {
    let fp32 = FloatFormat::new(8, 23, None, true, Special::Ieee, false, true, true)
        .expect("fp32 is a valid float");
    float_in_float(&fp32, t)
}

/// The largest magnitude of a fixed-point format.
fn max_magnitude(x: &FixedFormat) -> f64 {
    x.min_value().abs().max(x.max_value())
}

fn fixed_in_fixed(x: &FixedFormat, t: &FixedFormat) -> bool {
    x.fl() <= t.fl() && x.min_value() >= t.min_value() && x.max_value() <= t.max_value()
}

fn fixed_in_float(x: &FixedFormat, t: &FloatFormat) -> bool {
    let l = t.limits();
    let (lo, hi) = x.int_range();
    let n = lo.unsigned_abs().max(hi.unsigned_abs());
    if n == 0 {
        return t.has_zero();
    }
    let bottom = if t.subnormals() {
        l.min_positive
    } else {
        pow2(l.emin)
    };
    (lo >= 0 || t.signed())
        && t.has_zero()
        // Every integer up to 2^p is exact in a p-bit significand; 2^p + 1 is not.
        && n <= 1u128 << (t.man_bits() + 1)
        && x.step() >= bottom
        && max_magnitude(x) <= l.max
}

fn float_in_float(x: &FloatFormat, t: &FloatFormat) -> bool {
    let (lx, lt) = (x.limits(), t.limits());
    // The finest step of `x` is that of its smallest binade, `2^(emin - m)`.
    let x_quantum = pow2(lx.emin - x.man_bits() as i32);
    let bottom_ok = if t.subnormals() {
        x_quantum >= lt.min_positive
    } else {
        lx.min_positive >= pow2(lt.emin)
    };
    x.man_bits() <= t.man_bits()
        && lx.max <= lt.max
        && bottom_ok
        && (!x.has_inf() || t.has_inf())
        && (!x.has_nan() || t.has_nan())
        && (!x.signed() || t.signed())
        && (!x.has_zero() || t.has_zero())
        && (!negative_zero(x) || negative_zero(t))
}

/// Whether a float has `-0` (signed, with a zero, and not `fnuz`).
fn negative_zero(f: &FloatFormat) -> bool {
    f.signed() && f.has_zero() && f.special() != Special::Fnuz
}

/// Fixed point in a block format: for every exponent `e` the largest element of a block can
/// have, the shared exponent `S` it sets must give an element grid on which every value the
/// block can hold lies (the smallest, `2^-fl`, always can) and a scaled range that covers the
/// block's largest value.
fn fixed_in_block(x: &FixedFormat, t: &BlockFormat) -> bool {
    let top = max_magnitude(x);
    if top == 0.0 {
        return true;
    }
    let fl = x.fl();
    let step = pow2(-fl);
    let (lo, hi) = SCALE_EXP_RANGE;
    (-fl..=exponent(top)).all(|e| {
        let s = (e - t.emax_elem()).clamp(lo, hi);
        // The largest value of `x` whose top bit is `2^e`.
        let block_max = top.min(pow2(e + 1) - step);
        match t.element() {
            // One grid `2^(S - fl_e)` for the whole block.
            Element::Fixed(el) => s - el.fl() <= -fl && block_max <= el.max_value() * pow2(s),
            // The grid step grows with each element's binade `b`: `2^(max(b, emin + S) - m)`.
            // The values of binade `b` in the block need bits down to `2^-fl` unless `2^b` is
            // the only one.
            Element::Float(el) => {
                let l = el.limits();
                let m = el.man_bits() as i32;
                let grid = (-fl..=e).all(|b| {
                    let lowest = if b > -fl && pow2(b) + step <= block_max {
                        -fl
                    } else {
                        b
                    };
                    b.max(l.emin + s) - m <= lowest
                });
                let bottom = el.subnormals() || -fl >= l.emin + s;
                grid && bottom && block_max <= l.max * pow2(s)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Format {
        s.parse().expect("format")
    }

    fn sym(b: u32) -> Format {
        Format::Fixed(FixedFormat::new(b, 0, true, true, true).expect("valid"))
    }

    #[test]
    fn fixed_in_fixed_needs_grid_and_range() {
        assert!(f("fixed:wl=8,fl=6").contains(&f("fixed:wl=6,fl=6")));
        assert!(f("fixed:wl=8,fl=6").contains(&f("fixed:wl=6,fl=4")));
        assert!(!f("fixed:wl=8,fl=6").contains(&f("fixed:wl=8,fl=0")));
        assert!(!f("fixed:wl=8,fl=0").contains(&f("fixed:wl=8,fl=6")));
        assert!(f("int32").contains(&f("int8")));
        assert!(!f("int8").contains(&f("int32")));
        assert!(!f("uint8").contains(&f("int8")));
    }

    #[test]
    fn fixed_in_float_needs_significand_and_range() {
        assert!(f("bf16").contains(&f("int8")));
        assert!(f("bf16").contains(&f("fixed:wl=9,fl=0")));
        assert!(!f("bf16").contains(&f("fixed:wl=10,fl=0")));
        assert!(f("fp32").contains(&f("fixed:wl=25,fl=3")));
        assert!(!f("fp32").contains(&f("fixed:wl=26,fl=3")));
        // e4m3fn: 4 significant bits, so 5-bit signed integers (|n| <= 16), not 6-bit ones.
        assert!(f("e4m3fn").contains(&f("fixed:wl=5,fl=0")));
        assert!(!f("e4m3fn").contains(&f("fixed:wl=6,fl=0")));
        // fixed(8,6) values are k/64 with |k| <= 128: 8 significant bits are too many for fp8.
        assert!(!f("e5m2").contains(&f("fixed:wl=8,fl=6")));
    }

    #[test]
    fn float_in_float() {
        assert!(f("fp32").contains(&f("bf16")));
        assert!(f("fp32").contains(&f("fp16")));
        assert!(!f("bf16").contains(&f("fp16")));
        assert!(!f("fp16").contains(&f("bf16")));
        assert!(f("fp16").contains(&f("e5m2")));
        assert!(!f("e5m2").contains(&f("e4m3fn")));
        assert!(f("fp64").contains(&f("fp32")));
        assert!(!f("fp32").contains(&f("fp64")));
    }

    #[test]
    fn integers_in_block_formats() {
        for size in ["32", "tensor", "row"] {
            let bfp = f(&format!("bfp:wl=8,size={size}"));
            assert!(bfp.contains(&sym(8)), "{size}");
            assert!(bfp.contains(&sym(5)), "{size}");
            assert!(!bfp.contains(&sym(9)), "{size}");
            // -128 needs a larger shared exponent, which leaves odd integers off the grid.
            assert!(!bfp.contains(&f("int8")), "{size}");
        }
        assert!(f("mxint8").contains(&sym(8)));
        // MXFP8: a block whose largest value is 15 gets the scale 2^-5, and 15 x 2^5 = 480 is
        // beyond e4m3's 448; 7 x 2^6 = 448 is not.
        assert!(f("mxfp8").contains(&sym(4)));
        assert!(!f("mxfp8").contains(&sym(5)));
        assert!(!f("bfp:wl=8,size=32").contains(&f("bf16")));
        // qbfp: the rule of bfp below 2^126; the offset 6 * 2^e overflows f32 from there on.
        assert!(f("qbfp:wl=8,size=32").contains(&sym(8)));
        assert!(!f("qbfp:wl=8,size=32").contains(&f("int8")));
        let huge = Format::Fixed(FixedFormat::new(4, -124, true, true, true).expect("valid"));
        assert!(f("bfp:wl=8,size=32").contains(&huge));
        assert!(!f("qbfp:wl=8,size=32").contains(&huge));
        let Format::Block(b) = f("qbfp:wl=8,size=32") else {
            unreachable!("a block format")
        };
        let (block, mut out) = ([7.0 * 2f64.powi(124), 2f64.powi(124)], [0.0; 2]);
        b.quantize_block(&block, &mut out, crate::round::Rounding::NearestAway, |_| 0);
        assert_ne!(out, block, "QPyTorch loses a block reaching 2^126");
    }

    #[test]
    fn qtorch_formats() {
        // QPyTorch's e5m2 reaches 114688, past fp16's 65504; its e4m3 (480) fits fp16.
        assert!(!f("fp16").contains(&f("qtorch:e=5,m=2")));
        assert!(f("fp16").contains(&f("qtorch:e=4,m=3")));
        assert!(f("fp32").contains(&f("qtorch:e=8,m=7")));
        assert!(!f("bf16").contains(&f("qtorch:e=8,m=8")));
        // qfixed holds NaN and -0 (unclamped: any f32): only f32-complete floats contain it.
        for q in ["qfixed:wl=8,fl=4", "qfixed:wl=8,fl=4,clamp=off"] {
            assert!(f("fp32").contains(&f(q)), "{q}");
            assert!(f("fp64").contains(&f(q)), "{q}");
            assert!(!f("bf16").contains(&f(q)), "{q}");
            assert!(!f("fixed:wl=16,fl=8").contains(&f(q)), "{q}");
        }
        assert!(!f("qfixed:wl=8,fl=4").contains(&f("fixed:wl=8,fl=4")));
        assert!(!f("qtorch:e=4,m=3").contains(&f("e4m3fn")));
    }

    /// The rule against brute force: every pair of values of a small fixed format, as one
    /// block (so every block maximum occurs), round-trips through the block quantizer exactly
    /// when the rule says the format is contained.
    #[test]
    fn block_rule_matches_the_quantizer() {
        use crate::round::Rounding;
        for t in [
            "bfp:wl=6,size=tensor",
            "bfp:wl=4,size=tensor",
            "qbfp:wl=6,size=tensor",
            "qbfp:wl=3,size=tensor",
            "mxint8",
            "mxfp8",
            "mxfp6",
        ] {
            let t = f(t);
            let Format::Block(bt) = t else {
                unreachable!("a block format")
            };
            for wl in 2..=6u32 {
                for fl in -2..=4 {
                    for symmetric in [false, true] {
                        let x = FixedFormat::new(wl, fl, true, true, symmetric).expect("valid");
                        let (lo, hi) = x.int_range();
                        let mut exact = true;
                        for a in lo..=hi {
                            for b in lo..=hi {
                                let block = [a as f64 * x.step(), b as f64 * x.step()];
                                let mut out = [0.0; 2];
                                bt.quantize_block(&block, &mut out, Rounding::NearestEven, |_| 0);
                                exact &= out == block;
                            }
                        }
                        assert_eq!(
                            t.contains(&Format::Fixed(x)),
                            exact,
                            "{t} contains {}",
                            Format::Fixed(x)
                        );
                    }
                }
            }
        }
    }

    /// Scalar formats against brute force: every value of `x` (every code of a float, every
    /// integer of a fixed format) quantized to `t` with `rne` comes back unchanged exactly when
    /// the rule says `t` contains `x`.
    #[test]
    fn scalar_rules_match_the_quantizers() {
        use crate::round::Rounding;
        let floats = [
            "e2m1fn", "e3m2fn", "e2m3fn", "e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz", "fp16", "bf16",
        ];
        let fixed = [
            "fixed:wl=5,fl=0",
            "fixed:wl=4,fl=2",
            "fixed:wl=6,fl=-3",
            "fixed:wl=8,fl=6",
            "int8",
            "uint8",
            "fixed:wl=9,fl=0",
            "fixed:wl=12,fl=20",
            // QPyTorch's floats: the largest binade 2^(2^(e-1)) (e5m2: 114688, past fp16's
            // largest value), no -0 and no inf/NaN below e = 8.
            "qtorch:e=4,m=3",
            "qtorch:e=5,m=2",
            "qtorch:e=3,m=1",
            "qtorch:e=2,m=2",
        ];
        let values = |x: &Format| -> Vec<f64> {
            match x {
                Format::Fixed(fx) => {
                    let (lo, hi) = fx.int_range();
                    (lo..=hi).map(|n| n as f64 * fx.step()).collect()
                }
                _ => (0..1u64 << x.bits())
                    .filter_map(|c| x.decode(c))
                    .filter(|v| v.is_finite())
                    .collect(),
            }
        };
        for t in floats.iter().chain(&fixed[..4]) {
            let t = f(t);
            for x in floats.iter().chain(&fixed) {
                let x = f(x);
                let exact = values(&x).iter().all(|&v| {
                    let q = t
                        .quantize_scalar(v, Rounding::NearestEven, 0)
                        .expect("scalar");
                    q == v && q.is_sign_negative() == v.is_sign_negative()
                });
                // Infinities and NaN of `x` need the same in `t`; the brute force above covers
                // finite values only, so compare on formats without those or with both.
                let specials_ok = match (x, t) {
                    (Format::Float(a), Format::Float(b)) => {
                        (!a.has_inf() || b.has_inf()) && (!a.has_nan() || b.has_nan())
                    }
                    (Format::Float(a), _) => !a.has_inf() && !a.has_nan(),
                    _ => true,
                };
                assert_eq!(t.contains(&x), exact && specials_ok, "{t} contains {x}");
            }
        }
    }
}
