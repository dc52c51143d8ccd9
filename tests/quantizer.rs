//! The `Quantizer` slice paths agree with each other bit for bit: for every format that fits
//! the f32 carrier and every rounding mode (stochastic included, same seed), `quantize_f32`
//! equals `quantize_f64` on the same inputs, for any offset and split of the slice, and the
//! parallel versions equal the sequential ones. This is what proves the vectorized f32 fast
//! path (`src/format/kernel.rs`) against the exact f64 reference path. Also: formats that do not
//! fit f32 are refused, and QPyTorch formats accept only `rna` and `sr`.

mod common;

use common::{block_aliases, fmt, next_down_f32, next_up_f32, Gen, DET_MODES};
use lpsim::format::{QuantizeError, ALIASES};
use lpsim::{Format, Quantizer, Rounding};

const MODES_SR: [Rounding; 3] = [
    Rounding::Stochastic { bits: 32 },
    Rounding::Stochastic { bits: 8 },
    Rounding::Stochastic { bits: 1 },
];

const EXTRA: &[&str] = &[
    "float:e=3,m=4,special=fn",
    "float:e=4,m=3,sub=off",
    "float:e=5,m=2,special=none,sat=on",
    "float:e=4,m=3,special=fnuz,sat=on",
    "float:e=8,m=23,sat=on",
    "float:e=8,m=20,sub=off",
    "float:e=6,m=9,bias=40",
    "float:e=3,m=3,signed=off,special=fn",
    "float:e=4,m=0,special=fn,zero=off,signed=off",
    "fixed:wl=6,fl=2,signed=off",
    "fixed:wl=8,fl=-2",
    "fixed:wl=12,fl=4,sat=off",
    "fixed:wl=8,fl=3,symmetric=on",
    "fixed:wl=24,fl=10",
    "fixed:wl=16,fl=30",
    "qtorch:e=5,m=2",
    "qtorch:e=8,m=7",
    "qtorch:e=4,m=10",
    "qfixed:wl=8,fl=4",
    "qfixed:wl=12,fl=-3,clamp=off,symmetric=on",
    "qbfp:wl=8,size=16",
    "qbfp:wl=5,size=row",
    "qbfp:wl=6,size=col",
    "bfp:wl=8,size=16",
    "bfp:wl=4,size=7",
    "bfp:wl=8,size=row",
    "bfp:wl=6,size=tensor",
    "bfp:wl=8,size=col",
    "mx:elem=e2m1fn,size=col",
    "mx:elem=e2m1fn,size=5",
    "mx:elem=int8,size=32",
];

/// Inputs: random f32 bit patterns, log-uniform values over (and past) the format's range,
/// points next to values and midpoints, and the special values.
fn inputs(f: &Format, n: usize, seed: u64) -> Vec<f32> {
    let info = lpsim::format::FormatInfo::of(f);
    let lo = info.min_subnormal.log2().max(-149.0) as i32 - 3;
    let hi = (info.max.log2() as i32 + 3).min(127);
    let mut g = Gen(seed);
    let mut v: Vec<f32> = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::MAX,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        info.max as f32,
        -(info.max as f32),
        info.min_subnormal as f32,
        (info.min_subnormal / 2.0) as f32,
    ];
    while v.len() < n {
        let x = match g.next_u64() % 4 {
            0 => f32::from_bits(g.next_u32()),
            1 => g.log_uniform(lo, hi) as f32,
            _ => {
                // Next to a value or a midpoint of the format.
                let a = g.log_uniform(lo, hi);
                let (d, u) = match f {
                    Format::Block(_) => (a, a),
                    _ => (
                        f.quantize_scalar(a, Rounding::Down, 0).unwrap(),
                        f.quantize_scalar(a, Rounding::Up, 0).unwrap(),
                    ),
                };
                let m = if d.is_finite() && u.is_finite() {
                    ((d + u) / 2.0) as f32
                } else {
                    a as f32
                };
                match g.next_u64() % 3 {
                    0 => m,
                    1 => next_up_f32(m),
                    _ => next_down_f32(m),
                }
            }
        };
        v.push(x);
    }
    v
}

/// The first element where `quantize_f32` and `quantize_f64` of `x32` (one row, element
/// indices from `offset`) differ.
fn first_difference(q: &Quantizer, x32: &[f32], offset: u64) -> Option<usize> {
    let n = x32.len();
    let x64: Vec<f64> = x32.iter().map(|&x| f64::from(x)).collect();
    let mut o64 = vec![0.0; n];
    q.quantize_f64(&x64, &mut o64, offset, n);
    let mut o32 = vec![0.0f32; n];
    q.quantize_f32(x32, &mut o32, offset, n).unwrap();
    o32.iter()
        .zip(&o64)
        .position(|(a, b)| !same32(*a, *b as f32))
}

fn same32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits()
        || (a.is_nan() && b.is_nan() && a.is_sign_negative() == b.is_sign_negative())
}

fn check_format(spec: &str) {
    let f = fmt(spec);
    assert!(f.fits_f32(), "{spec} should fit f32");
    let x32 = inputs(&f, 20_000, 7);
    let x64: Vec<f64> = x32.iter().map(|&x| f64::from(x)).collect();
    let row = 100; // rows of 100 for size=row and size=col; 20_000 is a multiple
    for mode in DET_MODES.into_iter().chain(MODES_SR) {
        let q = match Quantizer::new(f, mode, 31337, 2) {
            Ok(q) => q,
            Err(QuantizeError::Unsupported { .. }) if f.check_rounding(mode).is_err() => continue,
            Err(e) => panic!("{spec} {mode}: {e}"),
        };
        let mut o64 = vec![0.0f64; x64.len()];
        q.quantize_f64(&x64, &mut o64, 0, row);
        let mut o32 = vec![0.0f32; x32.len()];
        q.quantize_f32(&x32, &mut o32, 0, row).unwrap();
        let bad: Vec<String> = x32
            .iter()
            .zip(&o32)
            .zip(&o64)
            .filter(|((_, a), b)| {
                !same32(**a, **b as f32) || f64::from(**a).to_bits() != b.to_bits() && !b.is_nan()
            })
            .take(10)
            .map(|((x, a), b)| {
                format!(
                    "{spec} {mode}: x {:#010x} ({x:e}) f32 path {a:e}, f64 path {b:e}",
                    x.to_bits()
                )
            })
            .collect();
        assert!(bad.is_empty(), "{}", bad.join("\n"));

        // Pieces with offsets give the same bits (split on a block boundary for block formats).
        let cut = match f {
            Format::Block(b) => {
                let n = b.block_len(x32.len(), row);
                if n >= x32.len() {
                    0
                } else {
                    n * (7_777 / n).max(1)
                }
            }
            _ => 7_777,
        };
        if cut > 0 {
            let mut p32 = vec![0.0f32; x32.len()];
            let (a, b) = p32.split_at_mut(cut);
            q.quantize_f32(&x32[..cut], a, 0, row).unwrap();
            q.quantize_f32(&x32[cut..], b, cut as u64, row).unwrap();
            assert!(
                p32.iter().zip(&o32).all(|(a, b)| same32(*a, *b)),
                "{spec} {mode}: split f32"
            );
            let mut p64 = vec![0.0f64; x64.len()];
            let (a, b) = p64.split_at_mut(cut);
            q.quantize_f64(&x64[..cut], a, 0, row);
            q.quantize_f64(&x64[cut..], b, cut as u64, row);
            assert!(
                p64.iter()
                    .zip(&o64)
                    .all(|(a, b)| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan()),
                "{spec} {mode}: split f64"
            );
        }
        // Parallel equals sequential.
        let mut par32 = vec![0.0f32; x32.len()];
        q.par_quantize_f32(&x32, &mut par32, row).unwrap();
        assert!(
            par32.iter().zip(&o32).all(|(a, b)| same32(*a, *b)),
            "{spec} {mode}: par f32"
        );
        let mut par64 = vec![0.0f64; x64.len()];
        q.par_quantize_f64(&x64, &mut par64, row);
        assert!(
            par64
                .iter()
                .zip(&o64)
                .all(|(a, b)| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan()),
            "{spec} {mode}: par f64"
        );
    }
}

#[test]
fn f32_path_equals_f64_path_aliases() {
    let mut n = 0;
    for name in ALIASES {
        let f = fmt(name);
        if f.fits_f32() {
            check_format(name);
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} aliases fit f32");
}

#[test]
fn f32_path_equals_f64_path_generic() {
    for spec in EXTRA {
        check_format(spec);
    }
}

#[test]
fn large_slices_cross_parallel_chunks() {
    // Longer than one parallel chunk (2^16) so the chunk offsets matter.
    for spec in ["bf16", "e4m3fn", "mxfp4", "fixed:wl=8,fl=4"] {
        let f = fmt(spec);
        let x32 = inputs(&f, 200_003, 3);
        let x64: Vec<f64> = x32.iter().map(|&x| f64::from(x)).collect();
        let q = Quantizer::new(f, Rounding::Stochastic { bits: 32 }, 1, 0).unwrap();
        let mut o64 = vec![0.0; x64.len()];
        q.quantize_f64(&x64, &mut o64, 0, x64.len());
        let mut o32 = vec![0.0f32; x32.len()];
        q.par_quantize_f32(&x32, &mut o32, x32.len()).unwrap();
        assert!(
            o32.iter().zip(&o64).all(|(a, b)| same32(*a, *b as f32)),
            "{spec}"
        );
    }
}

#[test]
fn streamed_outputs_equal_the_reference() {
    // Outputs of at least 2^18 elements are written with non-temporal stores a cache line at a
    // time, after a head up to the first 64-byte boundary and before a tail: shifting the start
    // by a few elements moves both, and the length leaves a partial line (and a partial block).
    let n = (1 << 18) + 1_013;
    for spec in [
        "bf16",
        "e4m3fn",
        "e5m2",
        "e4m3fnuz",
        "mxfp8",
        "mxfp4",
        "bfp:wl=8,size=32",
    ] {
        let f = fmt(spec);
        let x32 = inputs(&f, n + 8, 11);
        let mut buf = vec![0.0f32; n + 8];
        for shift in [0, 1, 3, 6] {
            let x32 = &x32[shift..shift + n];
            let x64: Vec<f64> = x32.iter().map(|&x| f64::from(x)).collect();
            for mode in [Rounding::NearestEven, Rounding::Stochastic { bits: 8 }] {
                let q = Quantizer::new(f, mode, 5, 1).unwrap();
                let mut o64 = vec![0.0; n];
                q.quantize_f64(&x64, &mut o64, 0, n);
                let o32 = &mut buf[shift..shift + n];
                o32.fill(12_345.0); // not a result, so an element left unwritten shows
                q.quantize_f32(x32, o32, 0, n).unwrap();
                let bad = o32
                    .iter()
                    .zip(&o64)
                    .position(|(a, b)| !same32(*a, *b as f32));
                assert!(bad.is_none(), "{spec} {mode} shift {shift}: index {bad:?}");
            }
        }
    }
}

#[test]
fn refusals() {
    for spec in ["fp64", "int32", "fixed:wl=30,fl=0", "float:e=11,m=10"] {
        let f = fmt(spec);
        assert!(!f.fits_f32(), "{spec}");
        let q = Quantizer::new(f, Rounding::NearestEven, 0, 0).unwrap();
        let mut out = [0f32; 2];
        assert!(
            matches!(
                q.quantize_f32(&[1.0, 2.0], &mut out, 0, 2),
                Err(QuantizeError::NotF32(_))
            ),
            "{spec}"
        );
    }
    let qt = fmt("qtorch:e=5,m=2");
    for mode in [
        Rounding::NearestEven,
        Rounding::TowardZero,
        Rounding::Up,
        Rounding::Down,
        Rounding::Odd,
    ] {
        assert!(matches!(
            Quantizer::new(qt, mode, 0, 0),
            Err(QuantizeError::Unsupported { .. })
        ));
    }
    assert!(Quantizer::new(qt, Rounding::NearestAway, 0, 0).is_ok());
    assert!(Quantizer::new(qt, Rounding::Stochastic { bits: 32 }, 0, 0).is_ok());
    // QPyTorch draws whole random words: fewer random bits are refused, not ignored.
    assert!(Quantizer::new(qt, Rounding::Stochastic { bits: 4 }, 0, 0).is_err());
}

#[test]
fn stochastic_words_across_the_32_bit_index_boundary() {
    // The kernels step random-word indices in 32-bit halves; a slice whose element indices
    // cross 2^32 must still draw word `offset + i` for element `i`, as the reference does.
    let n = 32 * 40 + 7;
    for spec in [
        "bf16",
        "e4m3fn",
        "fixed:wl=8,fl=6",
        "bfp:wl=8,size=32",
        "mxfp8",
    ] {
        let f = fmt(spec);
        let x32 = inputs(&f, n, 3);
        for offset in [(1u64 << 32) - 300, (1u64 << 32) - 16, (5u64 << 32) - 1] {
            for mode in [
                Rounding::Stochastic { bits: 32 },
                Rounding::Stochastic { bits: 5 },
            ] {
                let q = Quantizer::new(f, mode, 9, 2).unwrap();
                let bad = first_difference(&q, &x32, offset);
                assert!(
                    bad.is_none(),
                    "{spec} {mode} offset {offset}: index {bad:?}"
                );
            }
        }
    }
}

/// The hardest inputs for stochastic rounding: for element `i` with random word `r` (its
/// counted top bits), the input whose discarded fraction is exactly `1 - r 2^-32` must round
/// up (`frac 2^32 + r` reaches `2^32`), and the `f32` just below it must round down. Built
/// for every index where that input is an `f32`, above a base `b` on the grid with step `2^k`,
/// below the smallest normal (fixed step), in the normal range, at the top of a binade, and on
/// fixed-point grids (the 16-bit one is beyond the kernel's shortcut, so it checks the general
/// path); each case goes through the `f32` kernel and the `f64` reference.
#[test]
fn stochastic_carry_boundaries() {
    let p = |k: i32| 2f64.powi(k);
    // (format, [(base, step)])
    let cases: Vec<(&str, Vec<(f64, f64)>)> = vec![
        (
            "e4m3fn",
            vec![
                (0.0, p(-9)),
                (3.0 * p(-9), p(-9)),
                (1.0, p(-3)),
                (15.0 * p(-4), p(-4)),
                (p(-6), p(-9)),
            ],
        ),
        (
            "e5m2",
            vec![(0.0, p(-16)), (p(-16), p(-16)), (0.75, p(-3)), (7.0, p(0))],
        ),
        (
            "bf16",
            vec![
                (0.0, p(-133)),
                (5.0 * p(-133), p(-133)),
                (1.0, p(-7)),
                (255.0 * p(-10), p(-10)),
            ],
        ),
        (
            "fp16",
            vec![
                (0.0, p(-24)),
                (7.0 * p(-24), p(-24)),
                (2047.0 * p(-11), p(-11)),
                (3.0, p(-9)),
            ],
        ),
        (
            "float:e=3,m=4,special=fn",
            vec![(0.0, p(-6)), (p(-3), p(-6))],
        ),
        (
            "fixed:wl=8,fl=6",
            vec![(0.0, p(-6)), (5.0 * p(-6), p(-6)), (1.5, p(-6))],
        ),
        (
            "fixed:wl=16,fl=8,signed=off",
            vec![(0.0, p(-8)), (3.0 * p(-8), p(-8)), (100.0, p(-8))],
        ),
    ];
    let mut hits = 0;
    for (spec, grids) in &cases {
        let f = fmt(spec);
        for bits in [32, 8] {
            let mode = Rounding::Stochastic { bits };
            let q = Quantizer::new(f, mode, 5, 1).unwrap();
            let stream = q.stream();
            let keep = !(u32::MAX.checked_shr(bits).unwrap_or(0));
            let mut found = 0;
            for &(base, step) in grids {
                for i in 0..1u64 << 20 {
                    let r = stream.bits(i) & keep;
                    let x = base + f64::from(r.wrapping_neg()) * step * p(-32);
                    if r == 0 || f64::from(x as f32) != x {
                        continue;
                    }
                    let sign: f32 = if i % 2 == 0 || spec.contains("signed=off") {
                        1.0
                    } else {
                        -1.0
                    };
                    let below = next_down_f32(x as f32);
                    for (input, want) in [(x as f32, base + step), (below, base)] {
                        let mut o32 = [0.0f32];
                        q.quantize_f32(&[sign * input], &mut o32, i, 1).unwrap();
                        let mut o64 = [0.0f64];
                        q.quantize_f64(&[f64::from(sign * input)], &mut o64, i, 1);
                        assert!(
                            f64::from(o32[0]) == f64::from(sign) * want
                                && o64[0] == f64::from(sign) * want,
                            "{spec} {mode} index {i} word {r:#010x}: {:e} gave {:e} (f32 path), \
                             {:e} (f64 path), want {:e}",
                            sign * input,
                            o32[0],
                            o64[0],
                            f64::from(sign) * want
                        );
                    }
                    found += 1;
                }
            }
            // Fine grids leave few f32 inputs at the exact boundary (fp16 with 32 random bits:
            // one index in 2^19 above 1), so the count is per format and mode.
            assert!(found >= 16, "{spec} {mode}: only {found} cases");
            hits += found;
        }
    }
    assert!(hits > 1000, "{hits}");
}

/// Block formats with blocks at every scale an `f32` can hold: each block's largest magnitude
/// is `2^e` (or just below the next power of two) for `e` from -149 to 127, its other elements
/// spread over 40 binades below it (subnormal `f32`s included), plus all-zero blocks. The block
/// kernels' shortcuts each cover a range of shared exponents and hand the rest to the general
/// path; either way the `f32` path must equal the exact `f64` reference bit for bit.
#[test]
fn block_formats_at_every_scale() {
    let mut g = Gen(11);
    let mut x32 = Vec::new();
    for e in -149..=127 {
        for top in [1.0f64, 1.999_999] {
            let amax = 2f64.powi(e) * top;
            x32.push(if e % 2 == 0 { amax } else { -amax } as f32);
            for _ in 1..32 {
                let v = amax * 2f64.powf(-40.0 * (g.next_u64() % 1000) as f64 / 1000.0);
                let sign = if g.next_u64() % 2 == 0 { 1.0 } else { -1.0 };
                x32.push((sign * v) as f32);
            }
        }
    }
    x32.extend([0.0f32; 64]);
    for spec in block_aliases()
        .into_iter()
        .chain(["bfp:wl=8,size=32", "bfp:wl=4,size=32"])
    {
        let f = fmt(spec);
        for mode in [Rounding::NearestEven].into_iter().chain(MODES_SR) {
            let q = Quantizer::new(f, mode, 3, 0).unwrap();
            let bad = first_difference(&q, &x32, 0);
            assert!(
                bad.is_none(),
                "{spec} {mode}: element {bad:?} of {}",
                x32.len()
            );
        }
    }
}
