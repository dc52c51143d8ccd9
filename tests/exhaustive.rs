//! Exhaustive checks of every code of every format of 16 bits or fewer (all scalar aliases of
//! at most 16 bits, generic float/fixed/qtorch formats, and the element formats of block
//! formats): decode then encode gives the code back (NaN codes decode to NaN and re-encode to the
//! format's canonical NaN code of that sign), quantizing a decoded value is the identity in every
//! deterministic mode (and in stochastic rounding, whatever the random word), and decode is
//! strictly increasing over the codes ordered by value (sign-magnitude order for floats, two's
//! complement order for fixed point), with only `-0 == +0` tied.

mod common;

use common::{block_aliases, fmt, same, DET_MODES};
use lpsim::format::{BlockFormat, Element};
use lpsim::{Format, Rounding};

const SCALAR_ALIASES: &[&str] = &[
    "bf16", "fp16", "e5m2", "e4m3fn", "e4m3fnuz", "e5m2fnuz", "e3m2fn", "e2m3fn", "e2m1fn",
    "e8m0fnu", "int4", "int8", "int16", "uint8",
];

const GENERIC: &[&str] = &[
    "float:e=3,m=4,special=fn",
    "float:e=4,m=3,sub=off",
    "float:e=4,m=3,special=fnuz",
    "float:e=5,m=2,special=none,sat=on",
    "float:e=4,m=2,bias=3",
    "float:e=6,m=9,bias=40,sat=on",
    "float:e=3,m=3,signed=off,special=fn",
    "float:e=4,m=0,special=fn,zero=off,signed=off",
    "float:e=2,m=5,special=none,sub=off",
    "float:e=8,m=7,special=fn",
    "fixed:wl=6,fl=2,signed=off",
    "fixed:wl=8,fl=-2",
    "fixed:wl=5,fl=7",
    "fixed:wl=12,fl=4,sat=off",
    "fixed:wl=8,fl=3,symmetric=on",
    "fixed:wl=16,fl=20,signed=off",
    "qtorch:e=5,m=2",
    "qtorch:e=4,m=3",
    "qtorch:e=8,m=7",
];

/// Stochastic modes applied to exact values (any random word must leave them alone).
const SR_MODES: [Rounding; 2] = [
    Rounding::Stochastic { bits: 32 },
    Rounding::Stochastic { bits: 3 },
];

/// Codes that are not values of the format: the subnormal codes of a float format whose
/// subnormals are off (they decode to the subnormal value but the format flushes it), and the
/// most negative code of a symmetric fixed-point format, and the QPyTorch codes listed below.
fn excluded(f: &Format, code: u64) -> bool {
    match f {
        Format::Float(x) if !x.subnormals() && x.has_zero() => {
            let m = x.man_bits();
            let mag = code & ((1u64 << (x.exp_bits() + m)) - 1);
            mag >> m == 0 && mag != 0
        }
        Format::Fixed(x) if x.symmetric() => code == 1u64 << (x.wl() - 1),
        // QPyTorch never rounds to -0 (its subnormal path gives +0): the code of -0 is not a
        // value. Its top exponent code is a binade (e < 8) or f32's infinities and NaN (e = 8).
        Format::QTorch(q) => code == 1u64 << (q.exp_bits() + q.man_bits()),
        _ => false,
    }
}

/// The canonical NaN code of a float layout for a NaN of the given sign.
fn canonical_nan(f: &lpsim::format::FloatFormat, negative: bool) -> u64 {
    use lpsim::format::Special;
    let width = f.exp_bits() + f.man_bits();
    let sign = if negative && f.signed() {
        1u64 << width
    } else {
        0
    };
    match f.special() {
        Special::Ieee => {
            sign | ((1u64 << f.exp_bits()) - 1) << f.man_bits() | 1u64 << (f.man_bits() - 1)
        }
        Special::Fn => sign | ((1u64 << width) - 1),
        Special::Fnuz => 1u64 << width,
        Special::None => panic!("no NaN"),
    }
}

/// Codes in increasing order of value.
fn codes_by_value(f: &Format) -> Vec<u64> {
    let bits = f.bits();
    match f {
        Format::Fixed(x) if x.signed() => {
            let half = 1u64 << (bits - 1);
            (half..2 * half).chain(0..half).collect()
        }
        Format::Fixed(_) => (0..1u64 << bits).collect(),
        _ => {
            let signed = match f {
                Format::Float(x) => x.signed(),
                _ => true,
            };
            if signed {
                let half = 1u64 << (bits - 1);
                (half..2 * half).rev().chain(0..half).collect()
            } else {
                (0..1u64 << bits).collect()
            }
        }
    }
}

fn modes(f: &Format) -> Vec<Rounding> {
    match f {
        // QPyTorch's "nearest" and its 32-bit "stochastic".
        Format::QTorch(_) => vec![Rounding::NearestAway, SR_MODES[0]],
        _ => DET_MODES.into_iter().chain(SR_MODES).collect(),
    }
}

fn check_format(spec: &str) {
    let f = fmt(spec);
    assert!(f.bits() <= 16, "{spec}: {} bits", f.bits());
    let modes = modes(&f);
    let mut nan_codes = 0;
    for code in 0..1u64 << f.bits() {
        if excluded(&f, code) {
            continue;
        }
        let v = f.decode(code).unwrap();
        let back = f.encode(v).unwrap();
        if v.is_nan() {
            nan_codes += 1;
            let layout = match f {
                Format::Float(x) => x,
                // QPyTorch's e = 8 keeps f32's NaN codes.
                Format::QTorch(q) => q.layout(),
                _ => panic!("{spec}: code {code:#x} decodes to NaN"),
            };
            let canon = canonical_nan(&layout, v.is_sign_negative());
            assert_eq!(
                back, canon,
                "{spec}: NaN code {code:#x} re-encodes to {back:#x}"
            );
            assert!(
                f.decode(canon).unwrap().is_nan(),
                "{spec}: canonical NaN {canon:#x}"
            );
        } else {
            assert_eq!(
                back, code,
                "{spec}: code {code:#x} = {v:e} re-encodes to {back:#x}"
            );
        }
        if v.is_infinite() && matches!(f, Format::Float(x) if x.saturate()) {
            // By design a saturating format converts infinite inputs to its largest finite
            // value; its infinity codes only decode (checked in `saturating_ieee_infinity`).
            continue;
        }
        for (i, &r) in modes.iter().enumerate() {
            for random in [
                0u32,
                0x8000_0000,
                u32::MAX,
                0x1234_5679u32.wrapping_mul(code as u32 + i as u32),
            ] {
                let q = f.quantize_scalar(v, r, random).unwrap();
                assert!(
                    same(q, v),
                    "{spec}: code {code:#x} = {v:e} quantizes to {q:e} under {r} (random {random:#x})"
                );
                if !r.is_stochastic() {
                    break;
                }
            }
        }
    }
    // NaN codes: exactly where the convention puts them.
    let layout = match f {
        Format::Float(x) => Some(x),
        Format::QTorch(q) => Some(q.layout()),
        _ => None,
    };
    let expect_nan = match layout {
        Some(x) => {
            use lpsim::format::Special;
            let per_sign = match x.special() {
                Special::Ieee => (1u64 << x.man_bits()) - 1,
                Special::Fn => 1,
                Special::Fnuz => 0,
                Special::None => 0,
            };
            per_sign * if x.signed() { 2 } else { 1 } + u64::from(x.special() == Special::Fnuz)
        }
        None => 0,
    };
    assert_eq!(nan_codes, expect_nan, "{spec}: NaN codes");

    // Monotone over codes in value order.
    let mut prev: Option<(u64, f64)> = None;
    for code in codes_by_value(&f) {
        if excluded(&f, code) {
            continue;
        }
        let v = f.decode(code).unwrap();
        if v.is_nan() {
            continue;
        }
        if let Some((pc, pv)) = prev {
            let zero_pair = pv == 0.0 && v == 0.0 && pv.is_sign_negative() && !v.is_sign_negative();
            assert!(
                v > pv || zero_pair,
                "{spec}: code {code:#x} = {v:e} does not exceed code {pc:#x} = {pv:e}"
            );
        }
        prev = Some((code, v));
    }
}

#[test]
fn exhaustive_scalar_aliases() {
    for spec in SCALAR_ALIASES {
        check_format(spec);
    }
}

#[test]
fn exhaustive_generic_formats() {
    for spec in GENERIC {
        check_format(spec);
    }
}

#[test]
fn canonical_nan_codes_of_aliases() {
    // The code a NaN encodes to, per alias and sign (ml_dtypes' conventions).
    let table: &[(&str, u64, u64)] = &[
        ("bf16", 0x7fc0, 0xffc0),
        ("fp16", 0x7e00, 0xfe00),
        ("e5m2", 0x7e, 0xfe),
        ("e4m3fn", 0x7f, 0xff),
        ("e4m3fnuz", 0x80, 0x80),
        ("e5m2fnuz", 0x80, 0x80),
        ("e8m0fnu", 0xff, 0xff),
    ];
    for &(spec, pos, neg) in table {
        let f = fmt(spec);
        assert_eq!(f.encode(f64::NAN).unwrap(), pos, "{spec} +NaN");
        assert_eq!(f.encode(-f64::NAN).unwrap(), neg, "{spec} -NaN");
        // A NaN with a payload encodes to the same canonical code.
        assert_eq!(
            f.encode(f64::from_bits(0x7ff0_0000_0000_0001)).unwrap(),
            pos,
            "{spec} sNaN"
        );
        for code in 0..1u64 << f.bits() {
            let v = f.decode(code).unwrap();
            if v.is_nan() {
                let want = if v.is_sign_negative() { neg } else { pos };
                assert_eq!(f.encode(v).unwrap(), want, "{spec} NaN code {code:#x}");
            }
        }
    }
}

#[test]
fn subnormal_codes_of_sub_off_formats_flush() {
    // The codes excluded above are not values: quantizing their decoded value moves it.
    for spec in [
        "float:e=4,m=3,sub=off",
        "float:e=2,m=5,special=none,sub=off",
    ] {
        let f = fmt(spec);
        let Format::Float(x) = f else { unreachable!() };
        let min_normal = f.decode(1u64 << x.man_bits()).unwrap();
        for mant in 1..1u64 << x.man_bits() {
            let v = f.decode(mant).unwrap();
            let q = f.quantize_scalar(v, Rounding::NearestEven, 0).unwrap();
            assert!(q == 0.0 || q == min_normal, "{spec}: {v:e} -> {q:e}");
            let up = f.quantize_scalar(v, Rounding::Up, 0).unwrap();
            assert_eq!(up, min_normal, "{spec}: up({v:e})");
            let down = f.quantize_scalar(v, Rounding::Down, 0).unwrap();
            assert_eq!(down.to_bits(), 0f64.to_bits(), "{spec}: down({v:e})");
        }
    }
}

/// Every element code of a block format, at several scales, round-trips through
/// `decode_element` / `encode_element`, and a block built from decoded elements (with the
/// largest element present, so the shared exponent is the scale) quantizes to itself.
#[test]
fn exhaustive_block_elements() {
    let others = [
        "bfp:wl=8,size=16",
        "bfp:wl=4,size=8",
        "mx:elem=e2m1fn,size=4",
    ];
    for spec in block_aliases().into_iter().chain(others) {
        let Format::Block(b) = fmt(spec) else {
            panic!("{spec} is not a block format")
        };
        let element = b.element();
        let elem_format = match element {
            Element::Float(x) => Format::Float(x),
            Element::Fixed(x) => Format::Fixed(x),
        };
        let nbits = b.bits();
        let codes: Vec<u64> = (0..1u64 << nbits)
            .filter(|&c| !excluded(&elem_format, c))
            .filter(|&c| element.decode(c).is_finite())
            .collect();
        for scale_code in [0u8, 1, 100, 127, 130, 200, 254] {
            for &c in &codes {
                let v = b.decode_element(c, scale_code);
                assert_eq!(
                    b.encode_element(v, scale_code),
                    c,
                    "{spec}: element {c:#x} at scale {scale_code:#x} = {v:e}"
                );
            }
            check_block_identity(spec, &b, &codes, scale_code);
        }
        // The NaN scale: every element reads NaN.
        assert!(b.decode_element(0, lpsim::format::SCALE_NAN_CODE).is_nan());
    }
}

fn check_block_identity(spec: &str, b: &BlockFormat, codes: &[u64], scale_code: u8) {
    let element = b.element();
    let max_code = *codes
        .iter()
        .max_by(|&&a, &&c| element.decode(a).abs().total_cmp(&element.decode(c).abs()))
        .unwrap();
    // Blocks of 8 elements, each holding the largest element, cycling through all codes.
    for chunk in codes.chunks(7) {
        let mut block: Vec<f64> = chunk
            .iter()
            .map(|&c| b.decode_element(c, scale_code))
            .collect();
        block.push(b.decode_element(max_code, scale_code));
        let s = b.shared_exponent(block.iter().copied()).unwrap();
        if s + 127 != i32::from(scale_code) {
            // The clamped shared-exponent range cannot express this scale for this element
            // format (e.g. a scale below 2^-127 + emax); nothing to check.
            continue;
        }
        for mode in DET_MODES {
            let mut out = vec![0.0; block.len()];
            let got = b.quantize_block(&block, &mut out, mode, |i| i as u32);
            assert_eq!(got, scale_code, "{spec}: scale");
            for (x, o) in block.iter().zip(&out) {
                assert!(
                    same(*x, *o),
                    "{spec}: {x:e} -> {o:e} under {mode} at scale {scale_code:#x}"
                );
            }
        }
    }
}

#[test]
fn saturating_ieee_infinity() {
    let f = fmt("float:e=6,m=9,bias=40,sat=on");
    let Format::Float(x) = f else { unreachable!() };
    let inf_code = ((1u64 << x.exp_bits()) - 1) << x.man_bits();
    assert_eq!(f.decode(inf_code).unwrap(), f64::INFINITY);
    assert_eq!(f.encode(f64::INFINITY).unwrap(), inf_code);
    assert_eq!(f.encode(f64::NEG_INFINITY).unwrap(), inf_code | 1 << 15);
    let max = f.decode(inf_code - 1).unwrap();
    for mode in DET_MODES {
        assert_eq!(
            f.quantize_scalar(f64::INFINITY, mode, 0).unwrap(),
            max,
            "{mode}"
        );
        assert_eq!(
            f.quantize_scalar(f64::NEG_INFINITY, mode, 0).unwrap(),
            -max,
            "{mode}"
        );
    }
}
