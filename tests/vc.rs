//! Issue 11: the variance-corrected quantizer on float and MX grids. Mean and variance of the
//! draws at many positions (binade interiors and edges, zero, subnormals, near the largest
//! value) against `mu` and `v` with tolerances from the sample's own standard errors; every
//! draw a value of the format; signed zero, overflow and saturation as the format converts.

use lpsim::arith::vc::{vc_quantize, VcStreams, VcTally};
use lpsim::format::Format;
use lpsim::round::Rounding;

/// Sample mean and variance with their standard errors (the variance's from the fourth
/// central moment, `sqrt((m4 - var^2) / n)`).
struct Stats {
    mean: f64,
    var: f64,
    se_mean: f64,
    se_var: f64,
}

fn stats(x: &[f64]) -> Stats {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let m4 = x.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n;
    Stats {
        mean,
        var,
        se_mean: (var / n).sqrt(),
        se_var: ((m4 - var * var) / n).sqrt(),
    }
}

/// `n` independent draws of `Q^vc(mu, v)` onto a scalar format (one call, element `i` on the
/// streams' index `i`).
fn draws(format: &Format, mu: f64, v: f64, n: usize, seed: u64) -> (Vec<f64>, VcTally) {
    let mut out = vec![0.0; n];
    let t = vc_quantize(
        format,
        &vec![mu; n],
        &mut out,
        v,
        n,
        &VcStreams::new(seed, 5),
    );
    (out, t)
}

/// Asserts mean `mu` and variance `v` within 5 standard errors, few fallbacks, and that every
/// draw is a value of the format.
fn assert_moments(spec: &str, format: &Format, mu: f64, v: f64, seed: u64) {
    let n = 200_000;
    let (out, t) = draws(format, mu, v, n, seed);
    assert_eq!(t.case_a + t.case_b, n as u64);
    for &x in &out {
        assert_eq!(
            format.quantize_scalar(x, Rounding::NearestEven, 0),
            Some(x),
            "{spec}: {x} drawn for mu = {mu} is not a value"
        );
    }
    let s = stats(&out);
    let what = format!(
        "{spec} mu = {mu:e}, v = {v:e} (A {}, B {}, fallback {}): mean {:e}, var {:e}",
        t.case_a, t.case_b, t.fallback, s.mean, s.var
    );
    assert!((s.mean - mu).abs() <= 5.0 * s.se_mean, "{what}");
    assert!((s.var - v).abs() <= 5.0 * s.se_var, "{what}");
    // Case A leaves the covered region with probability below Phi(-4) = 3.2e-5.
    assert!(t.fallback as f64 <= 1e-4 * n as f64, "{what}");
}

#[test]
fn float_draws_have_mean_mu_and_variance_v_at_binade_edges_zero_subnormals_and_near_max() {
    // (spec, mantissa bits, smallest normal exponent, a value in the top binade and a variance
    // there: the top binade's step squared, or 0.3 of it for e5m2, whose top binade has four
    // values, 32768 to 57344).
    let formats = [
        ("e4m3fn", 3, -6, 300.0, 1024.0),
        ("bf16", 7, -126, 2e38, 2f64.powi(240)),
        ("e5m2", 2, -14, 33000.0, 0.3 * 8192.0 * 8192.0),
        ("float:e=5,m=4", 4, -14, 40000.0, 2048.0 * 2048.0),
        // QPyTorch's top binade is [256, 512) (largest value 480), step 32.
        ("qtorch:e=4,m=3", 3, -6, 300.0, 1024.0),
    ];
    let mut seed = 0;
    for (spec, m, emin, big, top_v) in formats {
        let f: Format = spec.parse().expect("format");
        // Steps: d in [1, 2), 2d in [2, 4); ds the subnormal step.
        let d = 2f64.powi(-m);
        let ds = 2f64.powi(emin - m);
        let points = [
            // Binade interior: Case B (v above the rounding variance 0.09 d^2) and Case A.
            (1.0 + 2.1 * d, 0.12 * d * d),
            (1.0 + 2.3 * d, 3.0 * d * d),
            (1.0 + 2.3 * d, 40.0 * d * d),
            // Just below the power of two 2: q can land on 2, whose gaps are d below, 2d above.
            (2.0 - d / 3.0, 0.24 * d * d),
            (2.0 - d / 3.0, 0.9 * d * d),
            (2.0 - d / 3.0, 5.0 * d * d),
            (2.0 - 1e-9, 0.5 * d * d),
            // On the power of two, and just above it (step 2d).
            (2.0, 0.2 * d * d),
            (2.0, 2.0 * d * d),
            (2.0, 10.0 * d * d),
            (2.0 + 2.0 * d / 3.0, 0.24 * 4.0 * d * d),
            (2.0 + 2.0 * d / 3.0, 3.0 * 4.0 * d * d),
            // Negative side.
            (-(2.0 - d / 3.0), 0.9 * d * d),
            (-2.0, 0.2 * d * d),
            // Zero and subnormals (Case B above the rounding variance 0.21 ds^2, and Case A).
            (0.0, 0.3 * d * d),
            (3.3 * ds, 0.24 * ds * ds),
            (-3.3 * ds, 3.0 * ds * ds),
            (2f64.powi(emin), 2.0 * ds * ds),
            // In the top binade, four or more standard deviations below the largest value.
            (big, top_v),
            (-big, top_v),
        ];
        for (mu, v) in points {
            seed += 1;
            assert_moments(spec, &f, mu, v, seed);
        }
    }
}

#[test]
fn below_its_rounding_variance_case_b_is_plain_stochastic_rounding() {
    // e4m3fn at 1 + 0.4 d (d = 1/8): stochastic rounding alone has variance 0.24 d^2 > v.
    let f: Format = "e4m3fn".parse().expect("format");
    let d = 0.125;
    let mu = 1.0 + 0.4 * d;
    let (out, t) = draws(&f, mu, 0.05 * d * d, 100_000, 1);
    assert_eq!(t.case_b, 100_000);
    assert!(
        out.iter().all(|&x| x == 1.0 || x == 1.0 + d),
        "neighbours only"
    );
    let s = stats(&out);
    assert!((s.mean - mu).abs() <= 5.0 * s.se_mean, "{}", s.mean);
    assert!((s.var - 0.24 * d * d).abs() <= 5.0 * s.se_var, "{}", s.var);
}

#[test]
fn a_format_that_flushes_subnormals_draws_on_multiples_of_its_smallest_normal() {
    // float:e=4,m=3,sub=off: nothing between 0 and 2^-6. Near it the local grid is the multiples
    // of 2^-6 (coarser than the format's 2^-9 steps in [2^-6, 2^-5)); the moments stay exact.
    let f: Format = "float:e=4,m=3,sub=off".parse().expect("format");
    let e = 2f64.powi(-6);
    for (k, (mu, v)) in [
        (0.0, 0.3 * e * e),
        (1.3 * e, 3.0 * e * e),
        (-0.4 * e, 0.25 * e * e),
    ]
    .into_iter()
    .enumerate()
    {
        assert_moments("sub=off", &f, mu, v, 100 + k as u64);
        let (out, _) = draws(&f, mu, v, 10_000, 200 + k as u64);
        assert!(
            out.iter().all(|&x| x == 0.0 || x.abs() >= e),
            "no subnormals"
        );
    }
}

#[test]
fn zeros_keep_the_sign_the_format_gives_them() {
    // v = 0: Case B is plain stochastic rounding. -2^-135 rounds to -0 or -2^-133 in bf16 (its
    // subnormal step); bf16 keeps the sign of zero, e4m3fnuz has no -0.
    let bf16: Format = "bf16".parse().expect("format");
    let (out, _) = draws(&bf16, -0.25 * 2f64.powi(-133), 0.0, 1000, 2);
    assert!(out.contains(&0.0));
    assert!(out.iter().all(|&x| x.is_sign_negative()), "bf16 keeps -0");
    let (out, _) = draws(&bf16, -0.0, 0.0, 10, 2);
    assert!(out.iter().all(|&x| x == 0.0 && x.is_sign_negative()));
    let fnuz: Format = "e4m3fnuz".parse().expect("format");
    let (out, _) = draws(&fnuz, -0.0, 0.0, 10, 2);
    assert!(
        out.iter().all(|&x| x == 0.0 && x.is_sign_positive()),
        "no -0"
    );
    // Case B from -ds / 4 (ds = 2^-133): q = -0 or -ds, and the top-up from -ds to zero (a sum
    // of opposite values, +0 in IEEE arithmetic) is -0 too.
    let ds = 2f64.powi(-133);
    let (out, t) = draws(&bf16, -0.25 * ds, 0.24 * ds * ds, 10_000, 3);
    assert_eq!(t.case_b, 10_000);
    assert!(out.contains(&ds), "a top-up past zero");
    assert!(out
        .iter()
        .filter(|&&x| x == 0.0)
        .all(|x| x.is_sign_negative()));
}

#[test]
fn at_the_largest_value_draws_convert_as_the_format_does() {
    // mu = 448 (e4m3fn's largest value, top step 32), v = 32^2: draws past 448 overflow. e4m3fn
    // does not saturate and has no infinity: they are NaN. With sat=on they stay at 448, which
    // pulls the mean below mu; bf16 overflows to infinity.
    let n = 20_000;
    let e4m3: Format = "e4m3fn".parse().expect("format");
    let (out, _) = draws(&e4m3, 448.0, 1024.0, n, 4);
    let nan = out.iter().filter(|x| x.is_nan()).count();
    assert!(nan > n / 10 && nan < n * 9 / 10, "{nan} NaN");
    assert!(out.iter().filter(|x| !x.is_nan()).all(|&x| x <= 448.0));
    let sat: Format = "float:e=4,m=3,special=fn,sat=on".parse().expect("format");
    let (out, _) = draws(&sat, 448.0, 1024.0, n, 4);
    assert!(out.iter().all(|&x| x.is_finite() && x <= 448.0));
    assert!(out.contains(&448.0));
    let s = stats(&out);
    assert!(
        s.mean < 448.0 - 5.0 * s.se_mean,
        "saturation: mean {}",
        s.mean
    );
    let bf16: Format = "bf16".parse().expect("format");
    let max = f64::from(half::bf16::MAX);
    let step = 2f64.powi(120);
    let (out, _) = draws(&bf16, max, step * step, n, 5);
    assert!(out.contains(&f64::INFINITY));
    assert!(out.iter().all(|&x| x == f64::INFINITY || x <= max));
    // Non-finite inputs convert.
    let mut o = [0.0; 3];
    vc_quantize(
        &bf16,
        &[f64::NAN, f64::NEG_INFINITY, 1e300],
        &mut o,
        1e-4,
        3,
        &VcStreams::new(1, 1),
    );
    assert!(o[0].is_nan() && o[1] == f64::NEG_INFINITY && o[2] == f64::INFINITY);
}

/// Pooled draws of elements `1..32` of a 32-element block whose element 0 is `anchor`.
fn block_draws(format: &Format, anchor: f64, mu: f64, v: f64, reps: usize, seed: u64) -> Vec<f64> {
    let mut block = vec![mu; 32];
    block[0] = anchor;
    let mut pooled = Vec::new();
    for r in 0..reps {
        let mut out = vec![0.0; 32];
        vc_quantize(
            format,
            &block,
            &mut out,
            v,
            32,
            &VcStreams::new(seed, 1000 * r as u64),
        );
        // Each output block is a block of the format: quantizing it again changes nothing.
        let q =
            lpsim::format::Quantizer::new(*format, Rounding::NearestEven, 0, 0).expect("quantizer");
        let mut again = vec![0.0; 32];
        q.quantize_f64(&out, &mut again, 0, 32);
        assert_eq!(again, out, "{format}: a block of the format");
        pooled.extend_from_slice(&out[1..]);
    }
    pooled
}

#[test]
fn mx_blocks_draw_on_the_element_grid_scaled_by_the_block_scale() {
    // The anchor fixes the block scale: 1.5 * 2^(emax_elem + s) gives the scale 2^s (its
    // significand 1.5 is below the elements' largest, so it never saturates), and its own draws
    // stay on it. The others sit at `unit` = 2^s, where the element grid's step is `d`, and at
    // the power of two 2 unit. MXINT8's elements are fixed (8, 6): one step 2^-6 at scale 1,
    // largest 127/64, so its points sit at unit = 1/2.
    let cases = [
        ("mxfp8", 1.5 * 2f64.powi(8 - 3), 0.125, 2f64.powi(-6)),
        ("mx:elem=e5m2", 1.5 * 2f64.powi(15 + 2), 4.0, 1.0),
        ("mxfp6", 1.5 * 16.0, 1.0, 0.25),
        ("mxfp4", 1.5 * 4.0 * 2.0, 2.0, 1.0),
        ("mxint8", 1.5, 0.5, 2f64.powi(-6)),
    ];
    let mut seed = 50;
    for (spec, anchor, unit, d) in cases {
        let f: Format = spec.parse().expect("format");
        for (mu, v) in [
            (1.3 * unit, 0.3 * d * d),
            (1.3 * unit, 4.0 * d * d),
            (2.0 * unit - d / 3.0, 0.9 * d * d),
            (2.0 * unit, 0.2 * d * d),
            (-0.3 * unit, 2.0 * d * d),
        ] {
            seed += 1;
            let out = block_draws(&f, anchor, mu, v, 6000, seed);
            let st = stats(&out);
            let what = format!(
                "{spec} mu = {mu}, v = {v}: mean {}, var {}",
                st.mean, st.var
            );
            assert!((st.mean - mu).abs() <= 5.0 * st.se_mean, "{what}");
            assert!((st.var - v).abs() <= 5.0 * st.se_var, "{what}");
        }
    }
}
