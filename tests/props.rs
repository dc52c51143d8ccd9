//! Property tests (proptest, fixed seed via the default deterministic config) for every format
//! kind (float with generic parameters, fixed with negative `fl` and `fl > wl`, bfp, mx, qtorch)
//! and every deterministic rounding mode, checked against the definitions rather than against
//! another implementation:
//! - the result is representable: re-quantizing it in any mode is the identity, and it survives
//!   `encode`/`decode`; quantizing is idempotent;
//! - monotonicity: `x <= y` implies `q(x) <= q(y)` (where both are numbers);
//! - the result is one of the two neighbours `down(x) <= x <= up(x)` with nothing representable
//!   strictly between them; nearest modes pick the nearer one, ties to even (`rne`) or away
//!   (`rna`); `odd` picks the odd code when inexact; `rtz` never increases the magnitude, `up`
//!   is `>= x`, `down` is `<= x`;
//! - sign symmetry: `q(-x) = -q(x)` for the symmetric modes, `up(-x) = -down(x)`;
//! - overflow, underflow, subnormals, signed zero, NaN and infinity follow the options
//!   (`sat`, `special=ieee|fn|fnuz|none`, `sub`), and f64 inputs are rounded once (cases where
//!   rounding through f32 first gives a different answer).

mod common;

use common::{block_aliases, fmt, next_up, same, DET_MODES};
use lpsim::format::{BlockSize, Element, FormatInfo, Special};
use lpsim::round::RandomStream;
use lpsim::{Format, Quantizer, Rounding};
use proptest::prelude::*;

/// A random float format spec (generic parameters).
fn float_spec() -> impl Strategy<Value = Format> {
    (
        2u32..=8,
        0u32..=10,
        0usize..4,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        -3i32..=3,
    )
        .prop_filter_map(
            "invalid float format",
            |(e, m, sp, sub, sat, signed, dbias)| {
                let special = ["ieee", "fn", "fnuz", "none"][sp];
                let bias = (1i32 << (e - 1)) - 1 + dbias;
                let spec = format!(
                    "float:e={e},m={m},bias={bias},special={special},sub={},sat={},signed={}",
                    on(sub),
                    on(sat),
                    on(signed)
                );
                spec.parse::<Format>().ok()
            },
        )
}

/// A random fixed-point format spec, including negative `fl` and `fl > wl`.
fn fixed_spec() -> impl Strategy<Value = Format> {
    (
        1u32..=24,
        -8i32..=30,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_filter_map(
            "invalid fixed format",
            |(wl, fl, signed, sat, symmetric)| {
                format!(
                    "fixed:wl={wl},fl={fl},signed={},sat={},symmetric={}",
                    on(signed),
                    on(sat),
                    on(symmetric)
                )
                .parse::<Format>()
                .ok()
            },
        )
}

fn alias_spec() -> impl Strategy<Value = Format> {
    prop::sample::select(vec![
        "bf16", "fp16", "e5m2", "e4m3fn", "e4m3fnuz", "e5m2fnuz", "e3m2fn", "e2m3fn", "e2m1fn",
        "e8m0fnu", "int4", "int8", "int16", "uint8", "tf32", "fp32",
    ])
    .prop_map(fmt)
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Quantize with a deterministic mode.
fn q(f: &Format, x: f64, mode: Rounding) -> f64 {
    f.quantize_scalar(x, mode, 0).unwrap()
}

/// An input that exercises the format: a representable value, a point next to a midpoint
/// between two neighbours, a log-uniform value around the range, or raw bits.
fn input(f: &Format, sel: u8, a: u64, b: u64) -> f64 {
    let bits = f.bits().min(24);
    let code = a & ((1u64 << bits) - 1);
    let v = f.decode(code).unwrap();
    let (max, min_pos) = range(f);
    match sel % 6 {
        0 => f64::from_bits(a),
        1 => v,
        2 | 3 => {
            if !v.is_finite() {
                return v;
            }
            let w = q(f, next_up(v), Rounding::Up);
            if !w.is_finite() || w <= v {
                return v * 1.5;
            }
            let mid = v / 2.0 + w / 2.0;
            let k = (b % 7) as i64 - 3;
            if mid == 0.0 {
                return mid;
            }
            f64::from_bits((mid.to_bits() as i64 + k) as u64)
        }
        4 => {
            let lo = min_pos.log2() - 3.0;
            let hi = max.log2() + 3.0;
            let t = (b >> 11) as f64 / (1u64 << 53) as f64;
            let m = (lo + t * (hi - lo)).exp2();
            if a & 1 == 1 {
                -m
            } else {
                m
            }
        }
        _ => {
            // A value times (1 + small): inside one step.
            let t = (b >> 11) as f64 / (1u64 << 53) as f64;
            v * (1.0 + t * 2f64.powi(-(f.bits() as i32)))
        }
    }
}

/// Largest finite and smallest positive values of a scalar format.
fn range(f: &Format) -> (f64, f64) {
    let r = lpsim::format::FormatInfo::of(f);
    (r.max, r.min_subnormal)
}

/// Whether the format has distinct codes for -0 and +0 that quantization produces.
fn has_neg_zero(f: &Format) -> bool {
    match f {
        Format::Float(x) => x.signed() && x.has_zero() && x.special() != Special::Fnuz,
        _ => false,
    }
}

/// The parity of the integer significand of a neighbour `v` of `x` on the grid `x` was rounded
/// on (for ties to even and round-to-odd). Usually the last bit of the code; with no mantissa
/// bits the lower neighbour is the implicit 1 (odd) and the upper one 2 (even); below the smallest normal with subnormals off
/// the grid step is the smallest normal, so it counts as 1 (odd) and zero as even.
fn odd_code(f: &Format, v: f64, x: f64) -> bool {
    match f {
        Format::Fixed(fx) => ((v / fx.step()) as i128) & 1 == 1,
        // m = 0: on the grid of x's binade the lower neighbour is 1 (odd) and the upper 2.
        Format::Float(fl) if fl.man_bits() == 0 && x.abs() >= FormatInfo::of(f).min_normal => {
            v != 0.0 && v.abs() <= x.abs()
        }
        Format::Float(fl) if !fl.subnormals() && x.abs() < FormatInfo::of(f).min_normal => v != 0.0,
        _ => f.encode(v).unwrap() & 1 == 1,
    }
}

/// Check every property of one scalar format at the inputs `x` and `y`.
fn scalar_properties(f: &Format, x: f64, y: f64) -> Result<(), TestCaseError> {
    let modes: Vec<Rounding> = match f {
        Format::QTorch(_) => vec![Rounding::NearestAway],
        _ => DET_MODES.to_vec(),
    };
    let saturating_fixed = matches!(f, Format::Fixed(x) if x.saturate());
    let wrapping_fixed = matches!(f, Format::Fixed(x) if !x.saturate());
    for &mode in &modes {
        let qx = q(f, x, mode);
        // Representable and idempotent. QPyTorch's bit arithmetic turns NaN into a `-0` it has no
        // code for (documented in `format::qtorch`), so that one output is left out here; the
        // qtorch property below checks it is the only `-0`.
        let qtorch_nan = matches!(f, Format::QTorch(_)) && x.is_nan();
        if !qx.is_nan() && !qtorch_nan {
            for &m2 in &modes {
                prop_assert!(
                    same(q(f, qx, m2), qx),
                    "{f}: {x:e} -> {qx:e} not fixed by {m2}"
                );
            }
            let back = f.decode(f.encode(qx).unwrap()).unwrap();
            prop_assert!(same(back, qx), "{f}: {qx:e} encodes/decodes to {back:e}");
        }
        // Monotone.
        if !wrapping_fixed {
            let qy = q(f, y, mode);
            if !qx.is_nan() && !qy.is_nan() && !x.is_nan() && !y.is_nan() {
                let (lo, hi, qlo, qhi) = if x <= y {
                    (x, y, qx, qy)
                } else {
                    (y, x, qy, qx)
                };
                prop_assert!(qlo <= qhi, "{f} {mode}: {lo:e}->{qlo:e} > {hi:e}->{qhi:e}");
            }
        }
    }
    if !x.is_finite() || matches!(f, Format::QTorch(_)) {
        return qtorch_checks(f, x);
    }
    let (max, _) = range(f);
    let (_, min_pos) = range(f);
    let min_value = match f {
        Format::Fixed(fx) => fx.min_value(),
        // No zero (e8m0fnu): everything below the smallest value becomes the smallest value.
        Format::Float(fl) if !fl.has_zero() => min_pos,
        Format::Float(fl) if !fl.signed() => 0.0,
        _ => -max,
    };
    // Inside the range, the result is a neighbour chosen by the mode's rule.
    let down = q(f, x, Rounding::Down);
    let up = q(f, x, Rounding::Up);
    let in_range = x >= min_value && x <= max;
    if in_range && !down.is_nan() && !up.is_nan() && !wrapping_fixed
        || (in_range && saturating_fixed)
    {
        prop_assert!(down <= x && x <= up, "{f}: down {down:e} x {x:e} up {up:e}");
        if down != up {
            // Nothing representable strictly between the neighbours.
            let next = q(f, next_up(down), Rounding::Up);
            prop_assert!(next == up, "{f}: {down:e} .. {up:e} has {next:e} between");
        } else {
            prop_assert!(down == x, "{f}: exact {x:e} but neighbours {down:e}");
        }
        let mid = down / 2.0 + up / 2.0;
        let rne = q(f, x, Rounding::NearestEven);
        let rna = q(f, x, Rounding::NearestAway);
        let rtz = q(f, x, Rounding::TowardZero);
        let odd = q(f, x, Rounding::Odd);
        let away = if x < 0.0 { down } else { up };
        let toward = if x < 0.0 { up } else { down };
        prop_assert!(
            same(rtz, toward) || rtz == toward,
            "{f}: rtz {x:e} -> {rtz:e}"
        );
        prop_assert!(rtz.abs() <= x.abs(), "{f}: rtz grew {x:e} -> {rtz:e}");
        if down == up {
            prop_assert!(rne == x && rna == x && odd == x, "{f}: exact {x:e} moved");
        } else {
            let nearer = if x < mid { down } else { up };
            if x != mid {
                prop_assert!(
                    rne == nearer && rna == nearer,
                    "{f}: {x:e} rne {rne:e} rna {rna:e}, nearer {nearer:e}"
                );
            } else {
                let even = if odd_code(f, down, x) { up } else { down };
                prop_assert!(rne == even, "{f}: tie {x:e} rne {rne:e}, even {even:e}");
                prop_assert!(rna == away, "{f}: tie {x:e} rna {rna:e}, away {away:e}");
            }
            let odd_one = if odd_code(f, down, x) { down } else { up };
            prop_assert!(
                odd == odd_one,
                "{f}: odd {x:e} -> {odd:e}, want {odd_one:e}"
            );
            // Within half a unit in the last place.
            prop_assert!((rne - x).abs() <= (up - down) / 2.0, "{f}: rne error");
        }
        // Sign symmetry (the mirrored input also in range).
        let symmetric_range = -x >= min_value && -x <= max;
        if symmetric_range && f.quantize_scalar(-x, Rounding::NearestEven, 0).is_some() {
            for mode in [
                Rounding::NearestEven,
                Rounding::NearestAway,
                Rounding::TowardZero,
                Rounding::Odd,
            ] {
                let a = q(f, x, mode);
                let b = q(f, -x, mode);
                if !a.is_nan() && !b.is_nan() {
                    prop_assert!(a == -b, "{f} {mode}: q({x:e}) = {a:e}, q(-x) = {b:e}");
                    if has_neg_zero(f) {
                        prop_assert!(same(a, -b), "{f} {mode}: signed zero of {x:e}");
                    }
                }
            }
            let (u, d) = (q(f, -x, Rounding::Up), q(f, x, Rounding::Down));
            if !u.is_nan() && !d.is_nan() {
                prop_assert!(u == -d, "{f}: up(-{x:e}) = {u:e}, down(x) = {d:e}");
            }
        }
    } else {
        // Directed modes still go the right way where the result is a number.
        let u = q(f, x, Rounding::Up);
        let d = q(f, x, Rounding::Down);
        let z = q(f, x, Rounding::TowardZero);
        if !wrapping_fixed {
            if !u.is_nan() && u != max {
                prop_assert!(u >= x || u == min_value, "{f}: up {x:e} -> {u:e}");
            }
            if !d.is_nan() && d != min_value {
                prop_assert!(d <= x || d == max, "{f}: down {x:e} -> {d:e}");
            }
            if !z.is_nan() {
                prop_assert!(
                    z.abs() <= x.abs() || z == min_value.abs().min(max),
                    "{f}: rtz {x:e} -> {z:e}"
                );
            }
        }
    }
    Ok(())
}

/// QPyTorch specifics: f64 input rounds to f32 first; no -0 (but from NaN when m = 0, a quirk
/// of its bit arithmetic); no inf and no NaN below e = 8, saturation at `(2 - 2^-m) 2^(2^(e-1))`.
fn qtorch_checks(f: &Format, x: f64) -> Result<(), TestCaseError> {
    if let Format::QTorch(qt) = f {
        let a = q(f, x, Rounding::NearestAway);
        if qt.exp_bits() < 8 {
            prop_assert!(a.is_finite(), "{f}: {x:e} -> {a:e}");
            prop_assert!(
                a.abs() <= qt.max_value(),
                "{f}: {x:e} -> {a:e} beyond {:e}",
                qt.max_value()
            );
            if (x as f32).abs() >= qt.max_value() as f32 {
                prop_assert!(
                    a.abs() == qt.max_value(),
                    "{f}: {x:e} -> {a:e} does not saturate"
                );
            }
        }
        prop_assert!(
            !(a == 0.0 && a.is_sign_negative()) || x.is_nan(),
            "{f}: -0 from {x:e}"
        );
        let b = f64::from(qt.quantize_f32(x as f32, Rounding::NearestAway, 0));
        prop_assert!(same(a, b), "{f}: f64 path {a:e} vs f32 path {b:e}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn prop_generic_float(f in float_spec(), s1: u8, a: u64, b: u64, s2: u8, c: u64, d: u64) {
        let x = input(&f, s1, a, b);
        let y = input(&f, s2, c, d);
        scalar_properties(&f, x, y)?;
    }

    #[test]
    fn prop_generic_fixed(f in fixed_spec(), s1: u8, a: u64, b: u64, s2: u8, c: u64, d: u64) {
        let x = input(&f, s1, a, b);
        let y = input(&f, s2, c, d);
        scalar_properties(&f, x, y)?;
    }

    #[test]
    fn prop_aliases(f in alias_spec(), s1: u8, a: u64, b: u64, s2: u8, c: u64, d: u64) {
        let x = input(&f, s1, a, b);
        let y = input(&f, s2, c, d);
        scalar_properties(&f, x, y)?;
    }

    #[test]
    fn prop_qtorch(e in 2u32..=8, m in 0u32..=10, s1: u8, a: u64, b: u64, s2: u8, c: u64, d: u64) {
        prop_assume!((e, m) != (8, 0), "refused: no code layout");
        let f = fmt(&format!("qtorch:e={e},m={m}"));
        let x = input(&f, s1, a, b);
        let y = input(&f, s2, c, d);
        scalar_properties(&f, x, y)?;
    }
}

/// Overflow, underflow, signed zero, NaN and infinity under every combination of `special`,
/// `sat` and `sub`, for a generic e4m3 / e5m2 layout.
#[test]
fn options_overflow_underflow_specials() {
    for (e, m) in [(4u32, 3u32), (5, 2), (3, 4)] {
        for special in ["ieee", "fn", "fnuz", "none"] {
            for sat in [false, true] {
                for sub in [false, true] {
                    let spec = format!(
                        "float:e={e},m={m},special={special},sat={},sub={}",
                        on(sat),
                        on(sub)
                    );
                    let f = fmt(&spec);
                    let info = FormatInfo::of(&f);
                    let (max, min_normal) = (info.max, info.min_normal);
                    let step = max * 2f64.powi(-(m as i32)) / 2.0; // ulp of the top binade / 2 * 2
                    let beyond = max + step; // past the rounding threshold max + ulp/2
                    let ties_down = max + step / 2.0 * 0.999; // below the threshold
                    let rne = |x: f64| q(&f, x, Rounding::NearestEven);
                    // Overflow.
                    let over = rne(beyond);
                    let expect_over = if sat || special == "none" {
                        max
                    } else if special == "ieee" {
                        f64::INFINITY
                    } else {
                        f64::NAN
                    };
                    assert!(same(over, expect_over), "{spec}: {beyond:e} -> {over:e}");
                    assert_eq!(rne(ties_down), max, "{spec}: just below the threshold");
                    assert_eq!(
                        q(&f, beyond, Rounding::TowardZero),
                        max,
                        "{spec}: rtz overflow"
                    );
                    assert_eq!(q(&f, -beyond, Rounding::Up), -max, "{spec}: up overflow");
                    // Infinity in.
                    let inf = rne(f64::INFINITY);
                    let expect_inf = if sat || special == "none" {
                        max
                    } else if special == "ieee" {
                        f64::INFINITY
                    } else {
                        f64::NAN
                    };
                    assert!(same(inf, expect_inf), "{spec}: inf -> {inf:e}");
                    let neg_inf = rne(f64::NEG_INFINITY);
                    if special == "fnuz" && expect_inf.is_nan() {
                        assert!(neg_inf.is_nan(), "{spec}: -inf -> the one NaN");
                    } else {
                        assert!(same(neg_inf, -expect_inf), "{spec}: -inf -> {neg_inf:e}");
                    }
                    // NaN in: a NaN with the input's sign (fnuz: its only NaN; none: the zero
                    // of the opposite sign, as ml_dtypes does for its fn formats without NaN).
                    for neg in [false, true] {
                        let x = if neg { -f64::NAN } else { f64::NAN };
                        let r = rne(x);
                        match special {
                            "none" => assert!(r == 0.0 && r.is_sign_negative() != neg, "{spec}"),
                            "fnuz" => assert!(r.is_nan(), "{spec}"),
                            _ => assert!(r.is_nan() && r.is_sign_negative() == neg, "{spec}"),
                        }
                    }
                    // Signed zero and underflow.
                    let tiny = info.min_subnormal / 4.0;
                    for x in [0.0, tiny] {
                        let r = rne(-x);
                        assert_eq!(r, 0.0, "{spec}: -{x:e}");
                        assert_eq!(
                            r.is_sign_negative(),
                            special != "fnuz",
                            "{spec}: sign of -{x:e}"
                        );
                        assert!(rne(x) == 0.0 && rne(x).is_sign_positive(), "{spec}: {x:e}");
                    }
                    // Subnormals.
                    let half_normal = min_normal / 2.0;
                    let r = rne(half_normal);
                    if sub {
                        assert_eq!(r, half_normal, "{spec}: subnormal kept");
                    } else {
                        // A tie between 0 and the smallest normal: even is 0.
                        assert_eq!(r, 0.0, "{spec}: subnormal flushed");
                        assert_eq!(q(&f, half_normal * 1.01, Rounding::NearestEven), min_normal);
                        assert_eq!(q(&f, half_normal, Rounding::Up), min_normal);
                    }
                }
            }
        }
    }
}

/// Unsigned floats have one zero, +0: every special input lands on a representable value
/// that quantizes to itself (a positive NaN once became -0 in a format without NaN).
#[test]
fn unsigned_floats_map_specials_to_representable_values() {
    for special in ["ieee", "fn", "none"] {
        for sat in [false, true] {
            let spec = format!("float:e=3,m=1,special={special},signed=off,sat={}", on(sat));
            let f = fmt(&spec);
            for x in [
                f64::NAN,
                -f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                -0.0,
                -1.0,
            ] {
                for mode in DET_MODES {
                    let r = q(&f, x, mode);
                    assert!(
                        !(r == 0.0 && r.is_sign_negative()),
                        "{spec} {mode}: {x:e} -> -0"
                    );
                    assert!(
                        same(q(&f, r, mode), r),
                        "{spec} {mode}: {x:e} -> {r:e} not fixed"
                    );
                }
            }
        }
    }
}

/// Fixed point: saturation versus two's-complement wrap-around, NaN and infinities.
#[test]
fn options_fixed_range() {
    let sat = fmt("fixed:wl=8,fl=2");
    let wrap = fmt("fixed:wl=8,fl=2,sat=off");
    let sym = fmt("fixed:wl=8,fl=2,symmetric=on");
    let uns = fmt("fixed:wl=8,fl=2,signed=off");
    let r = Rounding::NearestEven;
    assert_eq!(sat.quantize_scalar(100.0, r, 0), Some(31.75));
    assert_eq!(sat.quantize_scalar(-100.0, r, 0), Some(-32.0));
    assert_eq!(sym.quantize_scalar(-100.0, r, 0), Some(-31.75));
    assert_eq!(uns.quantize_scalar(-3.0, r, 0), Some(0.0));
    assert_eq!(uns.quantize_scalar(100.0, r, 0), Some(63.75));
    // Wrap: 32.0 is code 128 = -128 steps = -32.0; 40.25 -> 161 - 256 = -95 steps.
    assert_eq!(wrap.quantize_scalar(32.0, r, 0), Some(-32.0));
    assert_eq!(wrap.quantize_scalar(40.25, r, 0), Some(-23.75));
    assert_eq!(wrap.quantize_scalar(-32.25, r, 0), Some(31.75));
    for f in [&sat, &wrap, &sym, &uns] {
        assert_eq!(
            f.quantize_scalar(f64::NAN, r, 0),
            Some(0.0),
            "{f}: NaN -> 0"
        );
    }
    assert_eq!(sat.quantize_scalar(f64::INFINITY, r, 0), Some(31.75));
    assert_eq!(sat.quantize_scalar(f64::NEG_INFINITY, r, 0), Some(-32.0));
    assert_eq!(wrap.quantize_scalar(f64::INFINITY, r, 0), Some(0.0));
    // Negative fl: steps of 4; fl > wl: all values below 2^(wl-fl).
    let coarse = fmt("fixed:wl=4,fl=-2");
    assert_eq!(coarse.quantize_scalar(6.0, r, 0), Some(8.0)); // tie 1.5 steps -> 2 (even)
    assert_eq!(coarse.quantize_scalar(100.0, r, 0), Some(28.0));
    let fine = fmt("fixed:wl=4,fl=6");
    assert_eq!(fine.quantize_scalar(1.0, r, 0), Some(7.0 / 64.0));
    assert_eq!(fine.quantize_scalar(3.0 / 128.0, r, 0), Some(2.0 / 64.0)); // tie 1.5 -> 2
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// f64 inputs round once: `x` is a midpoint between two neighbours moved by less than half
    /// an f32 ulp, so `f32(x)` is the exact tie and rounding through f32 would pick the even
    /// neighbour; lpsim must pick the nearer one.
    #[test]
    fn prop_f64_rounds_once(
        name in prop::sample::select(vec!["bf16", "fp16", "e5m2", "e4m3fn", "e2m1fn", "e3m2fn",
            "float:e=5,m=7", "float:e=3,m=1,special=fn"]),
        code: u64, above: bool, t in 1u32..1000,
    ) {
        let f = fmt(name);
        let v = f.decode(code % (1u64 << (f.bits() - 1))).unwrap();
        prop_assume!(v.is_finite() && v >= 0.0);
        let w = q(&f, next_up(v), Rounding::Up);
        prop_assume!(w.is_finite() && w > v);
        let mid = (v + w) / 2.0;
        // Less than half an f32 ulp of mid (2^-24 relative), more than an f64 ulp.
        let delta = mid * f64::from(t) * 2f64.powi(-36);
        let x = if above { mid + delta } else { mid - delta };
        prop_assert_eq!(f64::from(x as f32), mid);
        let direct = q(&f, x, Rounding::NearestEven);
        prop_assert_eq!(direct, if above { w } else { v }, "{}: {:e}", name, x);
        // Through f32 the tie goes to the even neighbour: one of the two directions differs.
        let through = q(&f, mid, Rounding::NearestEven);
        prop_assert!(through == v || through == w);
        // Directed and odd modes see the inexactness too.
        prop_assert_eq!(q(&f, x, Rounding::Odd), if f.encode(v).unwrap() & 1 == 1 { v } else { w });
    }
}

fn block_spec() -> impl Strategy<Value = Format> {
    let mut specs = block_aliases();
    specs.extend([
        "bfp:wl=8,size=8",
        "bfp:wl=4,size=5",
        "bfp:wl=16,size=3",
        "mx:elem=e4m3fn,size=4",
    ]);
    prop::sample::select(specs).prop_map(fmt)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Block formats (bfp, mx): the scale is `floor(log2 max|x|) - emax_elem` clamped to E8M0;
    /// each element is the element format's quantization of `x / 2^S`, times `2^S`; elements are
    /// representable (encode/decode at the block's scale), re-quantizing the block is the
    /// identity, monotone within a block, and directed modes go the right way unless the element
    /// saturated at its largest value.
    #[test]
    fn prop_block(f in block_spec(), exps in prop::collection::vec(-12i32..12, 1..12),
                  sig in prop::collection::vec(any::<u64>(), 12), base in -140i32..140) {
        let Format::Block(b) = f else { unreachable!() };
        let x: Vec<f64> = exps.iter().zip(&sig).map(|(&e, &s)| {
            let m = 1.0 + (s >> 12) as f64 / (1u64 << 52) as f64;
            let v = m * 2f64.powi(base + e);
            if s & 1 == 1 { -v } else { v }
        }).collect();
        let elem = match b.element() {
            Element::Float(x) => Format::Float(x),
            Element::Fixed(x) => Format::Fixed(x),
        };
        let elem_max = FormatInfo::of(&elem).max;
        let amax = x.iter().fold(0f64, |a, v| a.max(v.abs()));
        let s_expect = (amax.log2().floor() as i32 - b.emax_elem()).clamp(-127, 127);
        for mode in DET_MODES {
            let mut out = vec![0.0; x.len()];
            let scale = b.quantize_block(&x, &mut out, mode, |_| 0);
            prop_assert_eq!(i32::from(scale) - 127, s_expect, "{}: scale", f);
            let s = 2f64.powi(s_expect);
            for (i, (&xi, &oi)) in x.iter().zip(&out).enumerate() {
                let want = elem.quantize_scalar(xi / s, mode, 0).unwrap() * s;
                prop_assert!(same(oi, want), "{} {}: x[{}] = {:e} -> {:e}, want {:e}", f, mode, i, xi, oi, want);
                prop_assert!(same(b.decode_element(b.encode_element(oi, scale), scale), oi));
                let saturated = oi.abs() == elem_max * s;
                match mode {
                    Rounding::TowardZero => prop_assert!(oi.abs() <= xi.abs()),
                    Rounding::Up => prop_assert!(oi >= xi || saturated),
                    Rounding::Down => prop_assert!(oi <= xi || saturated),
                    _ => {}
                }
                for (&xj, &oj) in x.iter().zip(&out) {
                    if xi <= xj {
                        prop_assert!(oi <= oj, "{} {}: not monotone", f, mode);
                    }
                }
            }
            let mut again = vec![0.0; x.len()];
            let scale2 = b.quantize_block(&out, &mut again, mode, |_| 0);
            if out.iter().any(|&v| v != 0.0) {
                prop_assert_eq!(scale2, scale, "{} {}: scale of the quantized block", f, mode);
            }
            for (o, a) in out.iter().zip(&again) {
                prop_assert!(same(*o, *a), "{} {}: not idempotent {:e} -> {:e}", f, mode, o, a);
            }
        }
    }
}

/// Every block size spells the same after `Display` (a count, `row`, `col`, `tensor`) and parses
/// back to the same format.
#[test]
fn block_specs_round_trip() {
    for spec in [
        "bfp:wl=8,size=16",
        "bfp:wl=8,size=row",
        "bfp:wl=8,size=col",
        "bfp:wl=5,size=tensor",
        "qbfp:wl=8,size=16",
        "qbfp:wl=22,size=col",
        "mx:elem=e2m1fn,size=col",
        "mx:elem=int8,size=row",
        "mx:elem=e5m2,size=tensor",
    ] {
        let f = fmt(spec);
        assert_eq!(f.to_string(), spec);
        assert_eq!(fmt(&f.to_string()), f, "{spec}");
    }
    let Format::Block(b) = fmt("bfp:wl=8,size=col") else {
        panic!("bfp is a block format")
    };
    assert_eq!(b.size(), BlockSize::Col);
    assert!("bfp:wl=8,size=cols".parse::<Format>().is_err());
}

/// A `[rows, cols]` matrix of values spread over 24 binades, with a column scale so that the
/// columns' shared exponents differ.
fn matrix(rows: usize, cols: usize, sig: &[u64]) -> Vec<f64> {
    (0..rows * cols)
        .map(|k| {
            let s = sig[k % sig.len()].rotate_left(k as u32);
            let m = 1.0 + (s >> 12) as f64 / (1u64 << 52) as f64;
            let v = m * 2f64.powi((s % 24) as i32 - 12 + 3 * (k % cols) as i32);
            if s & (1 << 11) != 0 {
                -v
            } else {
                v
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// `size=col` blocks are the columns: quantizing a matrix per column equals quantizing its
    /// transpose per row (deterministic modes), the stochastic modes draw element `(i, j)`'s word
    /// at its row-major index `i cols + j`, and the tensor stores one 8-bit scale per column.
    #[test]
    fn prop_col_blocks_are_columns(
        spec in prop::sample::select(vec!["bfp:wl=8", "bfp:wl=4", "mx:elem=e4m3fn", "mx:elem=int8"]),
        rows in 1usize..7, cols in 1usize..7,
        sig in prop::collection::vec(any::<u64>(), 8),
    ) {
        let col = fmt(&format!("{spec},size=col"));
        let row = fmt(&format!("{spec},size=row"));
        let Format::Block(b) = col else { unreachable!() };
        let x = matrix(rows, cols, &sig);
        let xt: Vec<f64> = (0..rows * cols).map(|k| x[(k % rows) * cols + k / rows]).collect();
        let modes = DET_MODES.into_iter().chain([Rounding::Stochastic { bits: 8 }]);
        for mode in modes {
            let qc = Quantizer::new(col, mode, 5, 9).unwrap();
            let mut out = vec![0.0; x.len()];
            qc.quantize_f64(&x, &mut out, 0, cols);
            let mut par = vec![0.0; x.len()];
            qc.par_quantize_f64(&x, &mut par, cols);
            prop_assert!(out.iter().zip(&par).all(|(a, b)| same(*a, *b)), "{} {}: parallel", col, mode);
            if mode.is_stochastic() {
                let words = RandomStream::new(5, 9);
                for j in 0..cols {
                    let column: Vec<f64> = (0..rows).map(|i| x[i * cols + j]).collect();
                    let mut want = vec![0.0; rows];
                    b.quantize_block(&column, &mut want, mode, |i| words.bits((i * cols + j) as u64));
                    for i in 0..rows {
                        prop_assert!(same(out[i * cols + j], want[i]), "{} {}: ({}, {})", col, mode, i, j);
                    }
                }
            } else {
                let qr = Quantizer::new(row, mode, 5, 9).unwrap();
                let mut outt = vec![0.0; x.len()];
                qr.quantize_f64(&xt, &mut outt, 0, rows);
                for i in 0..rows {
                    for j in 0..cols {
                        prop_assert!(same(out[i * cols + j], outt[j * rows + i]), "{} {}: ({}, {})", col, mode, i, j);
                    }
                }
            }
        }
        prop_assert_eq!(b.block_count(x.len(), cols), cols);
        let bits = col.storage_bits(x.len(), cols);
        prop_assert!((bits - (f64::from(b.bits()) + 8.0 / rows as f64)).abs() < 1e-12);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// Where a format says rows picked from its tensors stay values of it
    /// (`Format::rows_stay_values`, which lets a mini-batch gathered from stored data skip the
    /// re-blocking), re-quantizing the picked rows in any deterministic mode changes nothing.
    #[test]
    fn prop_picked_rows_stay_values(
        spec in prop::sample::select(vec![
            "bfp:wl=8,size=col", "bfp:wl=8,size=tensor", "bfp:wl=8,size=row", "bfp:wl=6,size=4",
            "mx:elem=int8,size=col", "mx:elem=e4m3fn,size=8", "e4m3fn", "fixed:wl=8,fl=6",
        ]),
        rows in 1usize..7, picks in prop::collection::vec(any::<usize>(), 1..6),
        sig in prop::collection::vec(any::<u64>(), 8),
    ) {
        let f = fmt(spec);
        let cols = 8;
        prop_assert!(f.rows_stay_values(cols), "{}", spec);
        let x = matrix(rows, cols, &sig);
        let mut stored = vec![0.0; x.len()];
        Quantizer::new(f, Rounding::NearestEven, 0, 0).unwrap().quantize_f64(&x, &mut stored, 0, cols);
        let batch: Vec<f64> = picks.iter().flat_map(|&p| {
            let r = p % rows;
            stored[r * cols..(r + 1) * cols].to_vec()
        }).collect();
        for mode in DET_MODES {
            let mut again = vec![0.0; batch.len()];
            Quantizer::new(f, mode, 0, 0).unwrap().quantize_f64(&batch, &mut again, 0, cols);
            prop_assert!(batch.iter().zip(&again).all(|(a, b)| same(*a, *b)), "{} {}", spec, mode);
        }
    }
}

/// The formats whose picked rows need re-blocking say so: blocks spanning rows, and float
/// elements under a column or tensor scale (`1.875 x 2^7` in `e4m3fn` has no place one binade
/// up, where a smaller block maximum puts it).
#[test]
fn picked_rows_of_spanning_or_float_blocks_are_refused() {
    for (spec, cols) in [
        ("bfp:wl=8,size=3", 8),
        ("mxfp8", 16),
        ("mx:elem=e4m3fn,size=col", 8),
    ] {
        assert!(!fmt(spec).rows_stay_values(cols), "{spec}");
    }
    // The e4m3fn column: 1.75 x 2^8 = 448 sets the scale; 240 = 1.875 x 2^7 is an element.
    let f = fmt("mx:elem=e4m3fn,size=col");
    let q = Quantizer::new(f, Rounding::NearestEven, 0, 0).unwrap();
    let mut stored = vec![0.0; 2];
    q.quantize_f64(&[448.0, 240.0], &mut stored, 0, 1);
    assert_eq!(stored, [448.0, 240.0]);
    let mut again = [0.0];
    q.quantize_f64(&stored[1..], &mut again, 0, 1);
    assert_ne!(
        again[0], 240.0,
        "240 alone gets scale 2^-1 and saturates at 448 x 2^-1 = 224"
    );
}
