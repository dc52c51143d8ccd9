//! The executor's `f64` fast paths (`Quantizer::quantize_f64_fast`: fixed point on `f64`
//! arithmetic, block formats with fixed-point elements in any grouping, `fp32` nearest-even as a cast, narrower floats and MX
//! through `f32` rounded to odd, stochastic rounding at the limit of the bits `f32` keeps:
//! 12 bits on fp16, 19 on e4m3) against the exact `f64`
//! reference (`Quantizer::quantize_f64`), bit for bit: random values of every magnitude (tiny,
//! huge, subnormal, values next to grid points and midpoints), zeros of both signs, blocks of
//! zeros, blocks holding NaN or an infinity (the fast path declines, the reference decides),
//! every rounding mode with the same random words, offsets and several row lengths.

mod common;

use common::{fmt, Gen, DET_MODES};
use lpsim::format::{held_events, range_events, RangeCounts};
use lpsim::{Quantizer, Rounding};

const MODES_SR: [Rounding; 5] = [
    Rounding::Stochastic { bits: 32 },
    Rounding::Stochastic { bits: 8 },
    Rounding::Stochastic { bits: 1 },
    Rounding::Stochastic { bits: 12 },
    Rounding::Stochastic { bits: 19 },
];

const SPECS: &[&str] = &[
    "fixed:wl=8,fl=3",
    "fixed:wl=8,fl=0,symmetric=on",
    "fixed:wl=16,fl=12,sat=off",
    "fixed:wl=8,fl=4,signed=off",
    "fixed:wl=32,fl=-4",
    "fixed:wl=64,fl=30,sat=off",
    "fixed:wl=24,fl=40",
    "bfp:wl=8,size=col",
    "bfp:wl=8,size=row",
    "bfp:wl=8,size=tensor",
    "bfp:wl=8,size=32",
    "bfp:wl=4,size=7",
    "bfp:wl=16,size=col",
    "bfp:wl=2,size=col",
    "mxint8",
    "mx:elem=int8,size=col",
    "mx:elem=e2m1fn,size=col",
    "mx:elem=e4m3fn,size=col",
    "mxfp8",
    "mx:elem=e2m1fn,size=5",
    "mxfp6_e2m3",
    "fp32",
    "bf16",
    "fp16",
    "e4m3fn",
    "e5m2",
    "e4m3fnuz",
    "e2m1fn",
    "float:e=5,m=2,special=none,sat=on",
    "float:e=4,m=3,sub=off",
    "float:e=8,m=20,sub=off",
    "float:e=3,m=3,signed=off,special=fn",
    "tf32",
];

/// Values of `rows x cols`: log-uniform over a wide range around `scale`, with exact grid
/// points, points next to them and midpoints (values of `x.5 2^k`), zeros, with `tiny` a column
/// below the normal `f32` range, and with `specials` NaNs and an infinity in column 1.
fn values(rows: usize, cols: usize, seed: u64, scale: i32, specials: bool, tiny: bool) -> Vec<f64> {
    let mut g = Gen(seed);
    let mut v: Vec<f64> = (0..rows * cols)
        .map(|_| match g.next_u64() % 8 {
            0 => 0.0,
            1 => -0.0,
            // A multiple of a small power of two (a grid point or a midpoint at most scales).
            2 => (g.next_u64() % 512) as f64 * 2f64.powi(scale - 9) - 2f64.powi(scale - 1),
            3 => {
                let x = g.log_uniform(scale - 8, scale + 1);
                f64::from_bits(x.to_bits() + 1)
            }
            4 => g.log_uniform(scale - 60, scale - 20),
            _ => g.log_uniform(scale - 12, scale + 1),
        })
        .collect();
    // A column of zeros, and a tiny column (scale at the bottom of the E8M0 range).
    for r in 0..rows {
        v[r * cols] = 0.0;
        if cols > 2 && tiny {
            v[r * cols + 2] = g.log_uniform(-140, -128);
        }
    }
    if specials && cols > 1 && rows > 2 {
        v[cols + 1] = f64::NAN;
        v[2 * cols + 1] = f64::NEG_INFINITY;
        if rows > 3 {
            // A NaN with a sign and a payload, whose bits the reference fixes.
            v[3 * cols + 1] = -f64::from_bits(f64::NAN.to_bits() | 0x1234 << 32);
        }
    }
    v
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The fast path's bits against the reference's; where a kernel judged the range events on
/// the way, they must be the judge's on the `f64` values ([`range_events`]). The same for the
/// results left in `f32` (`quantize_f64_narrowed`, with and without trying `f32` values as they
/// are first). Returns the counts judged on the way, if any.
fn check(
    spec: &str,
    rounding: Rounding,
    x: &[f64],
    row: usize,
    offset: u64,
) -> Option<RangeCounts> {
    let q = Quantizer::new(fmt(spec), rounding, 11, 23).unwrap();
    let (mut fast, mut reference) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let judged = q.quantize_f64_judged(x, &mut fast, offset, row);
    q.quantize_f64(x, &mut reference, offset, row);
    let events = range_events(&q.format(), x, &reference, row);
    let what = format!("{spec} {rounding} row {row} offset {offset}");
    if let Some(counts) = judged {
        assert_eq!(counts, events, "{what}: range events judged on the way");
    }
    same_bits(&what, x, &fast, &reference);
    for exact_first in [true, false] {
        let mut narrow = vec![0.0f32; x.len()];
        if let Some(counts) = q.quantize_f64_narrowed(x, &mut narrow, offset, row, exact_first) {
            assert!(q.format().fits_f32(), "{spec}");
            if let Some(counts) = counts {
                assert_eq!(counts, events, "{what}: range events of the f32 result");
            }
            let wide: Vec<f64> = narrow.iter().map(|&v| f64::from(v)).collect();
            same_bits(&what, x, &wide, &reference);
            if !exact_first {
                NARROWED.with(|n| n.borrow_mut().insert(spec.to_string()));
            }
        }
    }
    judged
}

thread_local! {
    /// The formats `quantize_f64_narrowed` took through `f32` rounded to odd in this thread's
    /// checks (not trying `f32` values as they are first, which it does for any format that
    /// fits `f32`).
    static NARROWED: std::cell::RefCell<std::collections::BTreeSet<String>> =
        const { std::cell::RefCell::new(std::collections::BTreeSet::new()) };
}

/// Every element of `fast` has the bits of `reference`'s.
fn same_bits(what: &str, x: &[f64], fast: &[f64], reference: &[f64]) {
    for (k, (a, b)) in fast.iter().zip(reference).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{what}: element {k} = {:e}: fast {a:e}, reference {b:e}",
            x[k]
        );
    }
}

#[test]
fn f64_fast_paths_equal_the_reference() {
    let modes: Vec<Rounding> = DET_MODES.iter().chain(&MODES_SR).copied().collect();
    // The counts judged on the way, per format.
    let mut judged = std::collections::BTreeMap::<&str, RangeCounts>::new();
    for spec in SPECS {
        for &r in &modes {
            for (rows, cols) in [(9, 7), (64, 33), (1, 40), (40, 1)] {
                for (seed, scale) in [(1, 0), (2, -20), (3, 30), (4, 120), (5, -125)] {
                    let x = values(rows, cols, seed, scale, false, false);
                    let mut counts = vec![check(spec, r, &x, cols, 0)];
                    counts.push(check(spec, r, &x, cols, 1_000_003));
                    let x = values(rows, cols, seed, scale, false, true);
                    counts.push(check(spec, r, &x, cols, 3));
                    let x = values(rows, cols, seed, scale, true, true);
                    counts.push(check(spec, r, &x, cols, 7));
                    for c in counts.iter().flatten() {
                        judged.entry(spec).or_default().merge(c);
                    }
                }
            }
        }
    }
    // The stochastic block kernels and the `fp32` conversion judged on the way, on values
    // that saturate and flush (and, for `fp32`, are NaN), so the counts compared above were
    // not all zeros.
    for spec in [
        "bfp:wl=8,size=col",
        "bfp:wl=8,size=row",
        "bfp:wl=8,size=tensor",
        "mx:elem=e4m3fn,size=col",
        "fp32",
    ] {
        let c = judged.get(spec).copied().unwrap_or_default();
        assert!(
            c.saturated > 0 && c.flushed > 0 && (spec != "fp32" || c.nan > 0),
            "{spec}: judged on the way {c:?}"
        );
    }
    // The formats rounded on the `f32` carrier were left there too, and no other.
    let narrowed = NARROWED.with(|n| n.borrow().clone());
    for spec in [
        "fp32",
        "bf16",
        "e4m3fn",
        "mxfp8",
        "bfp:wl=8,size=col",
        "bfp:wl=8,size=row",
    ] {
        assert!(narrowed.contains(spec), "{spec} never left in f32");
    }
    for spec in ["fixed:wl=8,fl=3", "bfp:wl=4,size=7", "fixed:wl=24,fl=40"] {
        assert!(!narrowed.contains(spec), "{spec} left in f32");
    }
}

/// Near the top of `f64`, where shared exponents clamp and scaled elements would leave the
/// fast path's exact range: the reference decides, so the bits still agree.
#[test]
fn f64_fast_paths_decline_at_the_edges() {
    for spec in SPECS {
        for r in [Rounding::NearestEven, Rounding::Stochastic { bits: 8 }] {
            let x: Vec<f64> = (0..48)
                .map(|i| match i % 4 {
                    0 => f64::MAX / f64::from(i + 1),
                    1 => 2f64.powi(-1070 + i),
                    2 => -1e300,
                    _ => 3.0,
                })
                .collect();
            check(spec, r, &x, 6, 0);
            check(spec, r, &x, 8, 5);
        }
    }
}

/// Whole tensors of values of the `f32` carrier rounded through `quantize_f32` (whose column
/// blocks go through the `f64` fast path) equal the reference.
#[test]
fn f32_carrier_column_blocks_equal_the_reference() {
    for spec in ["bfp:wl=8,size=col", "mx:elem=int8,size=col"] {
        for r in [Rounding::NearestEven, Rounding::Stochastic { bits: 8 }] {
            let x64: Vec<f64> = values(64, 256, 9, -3, false, true)
                .iter()
                .map(|&v| f64::from(v as f32))
                .collect();
            let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
            let q = Quantizer::new(fmt(spec), r, 3, 4).unwrap();
            let (mut o32, mut o64) = (vec![0f32; x32.len()], vec![0.0; x64.len()]);
            q.quantize_f32(&x32, &mut o32, 0, 256).unwrap();
            q.quantize_f64(&x64, &mut o64, 0, 256);
            let wide: Vec<f64> = o32.iter().map(|&v| f64::from(v)).collect();
            assert_eq!(bits(&wide), bits(&o64), "{spec} {r}");
        }
    }
}

/// QPyTorch's formats (their own `f32` arithmetic) with the roundings they take: the fast entry
/// point leaves them to the reference, so the bits agree (`qbfp` has fixed-point elements and
/// must not take the `bfp` block path).
#[test]
fn qpytorch_formats_take_the_reference() {
    let cases = [
        ("qbfp:wl=8,size=col", Rounding::NearestAway),
        ("qbfp:wl=6,size=row", Rounding::NearestAway),
        ("qbfp:wl=8,size=tensor", Rounding::Stochastic { bits: 32 }),
        ("qtorch:e=4,m=3", Rounding::NearestAway),
        ("qtorch:e=5,m=2", Rounding::Stochastic { bits: 32 }),
        ("qfixed:wl=8,fl=3", Rounding::NearestEven),
        ("qfixed:wl=8,fl=3,clamp=off", Rounding::NearestEven),
    ];
    // Ties of 8-bit elements in a block whose largest value is 1 (grid step 2^-6): QPyTorch
    // rounds them toward +inf, `rna` away from zero.
    let step = 2f64.powi(-6);
    let ties = [
        1.0,
        -1.5 * step,
        1.5 * step,
        -0.5 * step,
        0.5 * step,
        -2.5 * step,
        0.75,
        -1.0,
    ];
    check(
        "qbfp:wl=8,size=tensor",
        Rounding::NearestAway,
        &ties,
        ties.len(),
        0,
    );
    for (spec, r) in cases {
        for (rows, cols) in [(9, 7), (40, 1)] {
            for (seed, scale) in [(1, 0), (2, -20), (3, 30)] {
                let x = values(rows, cols, seed, scale, true, true);
                check(spec, r, &x, cols, 0);
            }
        }
    }
}

/// `Format::closed_under_zeroing`, which lets the executor store a ReLU's (or its gradient's)
/// result unrounded when its operand already holds values of the output format: for every
/// format that claims it, values of the format with elements zeroed (as `max(v, 0)` and as a
/// mask writing `+0`) round to themselves, bit for bit, under every rounding mode, and
/// `held_events` counts their range events as `range_events` does. Blocks holding NaN are left
/// out (the executor rounds those); scalar formats keep their NaN and infinity.
#[test]
fn zeroed_values_of_closed_formats_round_to_themselves() {
    let modes: Vec<Rounding> = DET_MODES.iter().chain(&MODES_SR).copied().collect();
    let mut checked = 0;
    for spec in SPECS
        .iter()
        .chain(&["fixed:wl=4,fl=2,signed=off", "mx:elem=int8,size=3"])
    {
        let f = fmt(spec);
        if !f.closed_under_zeroing() {
            continue;
        }
        checked += 1;
        for (rows, cols) in [(9, 7), (64, 33), (40, 1)] {
            for (seed, scale) in [(1, 0), (2, -20), (4, 120), (5, -125)] {
                let x = values(rows, cols, seed, scale, !f.is_block(), true);
                for &first in &[Rounding::NearestEven, Rounding::Stochastic { bits: 8 }] {
                    let q = Quantizer::new(f, first, 1, 2).unwrap();
                    let mut held = vec![0.0; x.len()];
                    q.quantize_f64(&x, &mut held, 0, cols);
                    let mut g = Gen(seed ^ 0x5eed);
                    let masked: Vec<f64> = held
                        .iter()
                        .map(|&v| if g.next_u64() % 3 == 0 { 0.0 } else { v })
                        .collect();
                    let relu: Vec<f64> = held.iter().map(|&v| v.max(0.0)).collect();
                    for zeroed in [&masked, &relu] {
                        // Judged as stored, the one-pass count equals the general judge.
                        assert_eq!(
                            held_events(zeroed),
                            range_events(&f, zeroed, zeroed, cols),
                            "{spec} held by {first}"
                        );
                        for &r in &modes {
                            let q = Quantizer::new(f, r, 7, 9).unwrap();
                            let mut again = vec![0.0; x.len()];
                            q.quantize_f64(zeroed, &mut again, 5, cols);
                            assert_eq!(bits(&again), bits(zeroed), "{spec} held by {first}, {r}");
                        }
                    }
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} formats claim closure");
}
