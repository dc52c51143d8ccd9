//! Stochastic rounding, checked against its definition: every output is one of the two
//! neighbours of the input; over 10^5 draws (different element indices of one stream) the mean
//! is within 5 standard errors of the input for `sr`, and of the expectation quantized to
//! multiples of 2^-N for `sr:bits=N` (which is measurably biased away from the input); and the
//! same seed gives bit-identical results with 1 and 4 rayon threads, for float, fixed and block
//! formats, through both `par_quantize_f32` and `par_quantize_f64`.

mod common;

use common::{fmt, Gen};
use lpsim::{Format, Quantizer, RandomStream, Rounding};

fn neighbours(f: &Format, x: f64) -> (f64, f64) {
    (
        f.quantize_scalar(x, Rounding::Down, 0).unwrap(),
        f.quantize_scalar(x, Rounding::Up, 0).unwrap(),
    )
}

#[test]
fn sr_output_is_a_neighbour() {
    let stream = RandomStream::new(7, 3);
    for spec in [
        "bf16",
        "fp16",
        "e4m3fn",
        "e5m2",
        "e2m1fn",
        "float:e=4,m=3,sub=off",
        "fixed:wl=8,fl=4",
        "fixed:wl=6,fl=-1,signed=off",
        "int8",
    ] {
        let f = fmt(spec);
        let info = lpsim::format::FormatInfo::of(&f);
        let mut g = Gen(99);
        for i in 0..20_000u64 {
            let x = g.log_uniform(
                info.min_subnormal.log2() as i32 - 2,
                info.max.log2() as i32 + 1,
            );
            if x.abs() > info.max || (x < 0.0 && spec.contains("signed=off")) {
                continue;
            }
            let (lo, hi) = neighbours(&f, x);
            for bits in [32, 8, 1] {
                let r = Rounding::Stochastic { bits };
                let q = f.quantize_scalar(x, r, stream.bits(i)).unwrap();
                assert!(
                    q.to_bits() == lo.to_bits() || q.to_bits() == hi.to_bits(),
                    "{spec} {r}: {x:e} -> {q:e}, neighbours {lo:e} {hi:e}"
                );
            }
        }
    }
}

/// Mean of `n` stochastic roundings of `x` (element indices 0..n of stream (seed, 0)).
fn mean_of(f: Format, x: f64, r: Rounding, seed: u64, n: usize) -> f64 {
    let q = Quantizer::new(f, r, seed, 0).unwrap();
    let input = vec![x; n];
    let mut out = vec![0.0; n];
    q.quantize_f64(&input, &mut out, 0, n);
    out.iter().sum::<f64>() / n as f64
}

#[test]
fn sr_is_unbiased_within_5_standard_errors() {
    const N: usize = 100_000;
    let cases: &[(&str, f64)] = &[
        ("bf16", 1.0 + 0.3 * 2f64.powi(-7)),
        ("fp16", -std::f64::consts::PI),
        ("e4m3fn", 0.1),
        ("e2m1fn", 2.7),
        ("e5m2", 1e-6), // subnormal range
        ("fixed:wl=8,fl=4", 1.0 / 3.0),
        ("int8", -7.9),
        ("float:e=3,m=4,special=fn", 0.77),
    ];
    for (k, &(spec, x)) in cases.iter().enumerate() {
        let f = fmt(spec);
        let (lo, hi) = neighbours(&f, x);
        assert!(lo < x && x < hi, "{spec}: {x:e} must be inexact");
        let p = (x - lo) / (hi - lo);
        let se = (hi - lo) * (p * (1.0 - p) / N as f64).sqrt();
        let mean = mean_of(f, x, Rounding::Stochastic { bits: 32 }, 1000 + k as u64, N);
        assert!(
            (mean - x).abs() < 5.0 * se,
            "{spec}: mean {mean:e} vs {x:e}, {:.2} standard errors",
            (mean - x).abs() / se
        );
    }
}

#[test]
fn sr_bits_n_follows_the_quantized_expectation() {
    const N: usize = 100_000;
    // x at 0.3 of the way between neighbours: with N random bits the round-up probability is
    // floor(0.3 * 2^N) / 2^N.
    for (spec, bits) in [
        ("bf16", 2u32),
        ("fp16", 3),
        ("e4m3fn", 1),
        ("fixed:wl=8,fl=4", 4),
    ] {
        let f = fmt(spec);
        let (lo, hi) = neighbours(&f, 1.0 + 1e-9);
        let x = lo + 0.3 * (hi - lo);
        let pq = (0.3 * f64::from(1u32 << bits)).floor() / f64::from(1u32 << bits);
        let expect = lo + pq * (hi - lo);
        let se = (hi - lo) * (pq * (1.0 - pq) / N as f64).sqrt().max(1e-12);
        let mean = mean_of(f, x, Rounding::Stochastic { bits }, 5, N);
        assert!(
            (mean - expect).abs() < 5.0 * se,
            "{spec} sr:bits={bits}: mean {mean:e}, expectation {expect:e}"
        );
        // And the bias against x itself is visible.
        assert!(
            (mean - x).abs() > 5.0 * se,
            "{spec} sr:bits={bits}: bias not seen"
        );
    }
    // bits=1 with a fraction below one half never rounds up.
    let f = fmt("bf16");
    let x = 1.0 + 0.49 * 2f64.powi(-7);
    assert_eq!(
        mean_of(f, x, Rounding::Stochastic { bits: 1 }, 9, 10_000),
        1.0
    );
}

fn with_threads<T: Send>(k: usize, op: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(k)
        .build()
        .unwrap()
        .install(op)
}

#[test]
fn same_seed_same_bits_for_1_and_4_threads() {
    const LEN: usize = 300_001; // not a multiple of any chunk or block
    let mut g = Gen(2024);
    let input64: Vec<f64> = (0..LEN).map(|_| g.log_uniform(-12, 10)).collect();
    let input32: Vec<f32> = input64.iter().map(|&x| x as f32).collect();
    for spec in [
        "bf16",
        "e4m3fn",
        "fixed:wl=8,fl=4",
        "fixed:wl=40,fl=30",
        "mxfp8",
        "mxint8",
        "bfp:wl=8,size=16",
        "bfp:wl=6,size=tensor",
    ] {
        let f = fmt(spec);
        for r in [
            Rounding::Stochastic { bits: 32 },
            Rounding::Stochastic { bits: 5 },
        ] {
            let q = Quantizer::new(f, r, 12345, 6).unwrap();
            let run64 = |k| {
                with_threads(k, || {
                    let mut out = vec![0.0f64; LEN];
                    q.par_quantize_f64(&input64, &mut out, LEN);
                    out
                })
            };
            let (a, b) = (run64(1), run64(4));
            let mut seq = vec![0.0f64; LEN];
            q.quantize_f64(&input64, &mut seq, 0, LEN);
            assert!(
                a.iter()
                    .zip(&b)
                    .zip(&seq)
                    .all(|((x, y), z)| x.to_bits() == y.to_bits() && x.to_bits() == z.to_bits()),
                "{spec} {r}: par_quantize_f64 differs between 1 and 4 threads or from sequential"
            );
            if f.fits_f32() {
                let run32 = |k| {
                    with_threads(k, || {
                        let mut out = vec![0.0f32; LEN];
                        q.par_quantize_f32(&input32, &mut out, LEN).unwrap();
                        out
                    })
                };
                let (a, b) = (run32(1), run32(4));
                assert!(
                    a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{spec} {r}: par_quantize_f32 differs between 1 and 4 threads"
                );
            }
            // A different seed changes some results (the bits are really used).
            let other = Quantizer::new(f, r, 54321, 6).unwrap();
            let mut c = vec![0.0f64; LEN];
            other.quantize_f64(&input64, &mut c, 0, LEN);
            assert!(
                seq.iter().zip(&c).any(|(x, y)| x.to_bits() != y.to_bits()),
                "{spec} {r}: the seed has no effect"
            );
        }
    }
}

proptest::proptest! {
    /// The carry of `sr:bits=N` is the carry out of adding the top `N` bits of the fraction and
    /// of the random word (the definition, computed here with a 64-bit sum).
    #[test]
    fn stochastic_carry_is_the_carry_of_the_top_bits(
        frac in proptest::prelude::any::<u32>(),
        random in proptest::prelude::any::<u32>(),
        bits in 1u32..=32,
    ) {
        let drop = 32 - bits;
        let sum = u64::from(frac >> drop) + u64::from(random >> drop);
        proptest::prop_assert_eq!(
            lpsim::round::stochastic_carry(frac, random, bits),
            sum >> bits != 0
        );
    }
}
