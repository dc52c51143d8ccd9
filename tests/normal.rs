//! The executor's Gaussian noise generator (`RandomStream::normals_f32`, `src/round/normal.rs`)
//! at fixed seeds, with tolerances of five standard errors unless stated: moments, tails, the
//! distribution against the normal CDF (Kolmogorov-Smirnov), independence of neighbours and of
//! streams, and values that depend only on the draw's index (any chunking, any thread count).

use lpsim::round::RandomStream;
use rayon::prelude::*;

const N: usize = 1 << 20;

fn draws(seed: u64, stream: u64, n: usize) -> Vec<f64> {
    let mut z = vec![0f32; n];
    RandomStream::new(seed, stream).normals_f32(0, &mut z);
    z.into_iter().map(f64::from).collect()
}

/// The standard normal CDF, through `erfc` (Numerical Recipes' `erfcc`, fractional error below
/// 1.2e-7: far below the KS test's resolution of 1e-3).
fn phi(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ];
    let s = poly.iter().rev().fold(0.0, |acc, &c| acc * t + c);
    let erfc = t * (-z * z + s).exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

#[test]
fn moments_match_the_standard_normal() {
    for seed in [1u64, 2, 3] {
        let z = draws(seed, 17, N);
        let n = N as f64;
        let mean = z.iter().sum::<f64>() / n;
        let m = |p: i32| z.iter().map(|x| (x - mean).powi(p)).sum::<f64>() / n;
        let (var, skew, kurt) = (m(2), m(3) / m(2).powf(1.5), m(4) / (m(2) * m(2)) - 3.0);
        assert!(mean.abs() < 5.0 / n.sqrt(), "seed {seed}: mean {mean}");
        assert!(
            (var - 1.0).abs() < 5.0 * (2.0 / n).sqrt(),
            "seed {seed}: var {var}"
        );
        assert!(
            skew.abs() < 5.0 * (6.0 / n).sqrt(),
            "seed {seed}: skew {skew}"
        );
        assert!(
            kurt.abs() < 5.0 * (24.0 / n).sqrt(),
            "seed {seed}: kurtosis {kurt}"
        );
    }
}

#[test]
fn tails_have_the_normal_mass_and_stop_at_the_documented_cut() {
    let z = draws(4, 5, 4 * N);
    let n = z.len() as f64;
    for (cut, p) in [
        (2.0, 0.045_500_26),
        (3.0, 0.002_699_80),
        (4.0, 6.334_248e-5),
    ] {
        let seen = z.iter().filter(|x| x.abs() > cut).count() as f64;
        let want = n * p;
        assert!(
            (seen - want).abs() < 5.0 * want.sqrt(),
            "|z| > {cut}: {seen} draws, {want:.1} expected"
        );
    }
    // Both signs of the far tail are reached, none past the cut sqrt(66 ln 2) = 6.76.
    let max = z.iter().copied().fold(f64::MIN, f64::max);
    let min = z.iter().copied().fold(f64::MAX, f64::min);
    assert!(max > 4.0 && min < -4.0, "range [{min}, {max}]");
    assert!(
        max.max(-min) <= (66.0 * 2f64.ln()).sqrt(),
        "range [{min}, {max}]"
    );
}

#[test]
fn kolmogorov_smirnov_against_the_normal_cdf() {
    for seed in [7u64, 8] {
        let mut z = draws(seed, 1, N);
        z.sort_by(f64::total_cmp);
        let n = N as f64;
        let d = z
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = phi(x);
                (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
            })
            .fold(0.0, f64::max);
        // The 0.1% critical value of the KS statistic.
        assert!(d < 1.95 / n.sqrt(), "seed {seed}: D = {d}");
    }
    // The test can fail: a uniform on [-sqrt 3, sqrt 3] (mean 0, variance 1) is far off.
    let mut u: Vec<f64> = (0..N)
        .map(|i| (2.0 * (i as f64 + 0.5) / N as f64 - 1.0) * 3f64.sqrt())
        .collect();
    u.sort_by(f64::total_cmp);
    let d = u
        .iter()
        .enumerate()
        .map(|(i, &x)| (phi(x) - i as f64 / N as f64).abs())
        .fold(0.0, f64::max);
    assert!(d > 0.03, "D = {d}");
}

#[test]
fn neighbours_and_streams_are_uncorrelated() {
    let z = draws(9, 3, N);
    let other = draws(9, 4, N);
    let corr =
        |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / a.len() as f64;
    let n = N as f64;
    // The two draws of a Box-Muller pair, draws one pair apart, the same index of two streams.
    let even: Vec<f64> = z.iter().step_by(2).copied().collect();
    let odd: Vec<f64> = z.iter().skip(1).step_by(2).copied().collect();
    let tol = 5.0 / (n / 2.0).sqrt();
    assert!(corr(&even, &odd).abs() < tol, "pair");
    assert!(corr(&z[..N - 2], &z[2..]).abs() < 5.0 / n.sqrt(), "lag 2");
    assert!(corr(&z[..N - 1], &z[1..]).abs() < 5.0 / n.sqrt(), "lag 1");
    assert!(corr(&z, &other).abs() < 5.0 / n.sqrt(), "streams");
    // The pair's squares are uncorrelated too (dependence a linear test misses).
    let sq = |v: &[f64]| v.iter().map(|x| x * x - 1.0).collect::<Vec<_>>();
    assert!(
        corr(&sq(&even), &sq(&odd)).abs() < 5.0 * 2.0 / (n / 2.0).sqrt(),
        "pair squares"
    );
}

#[test]
fn a_draw_depends_only_on_its_index() {
    let s = RandomStream::new(5, 6);
    let whole = draws(5, 6, 10_001);
    // Pieces starting at odd and even indices.
    let mut pieces = vec![0f32; 10_001];
    for (start, end) in [(0, 3), (3, 1000), (1000, 1001), (1001, 10_001)] {
        s.normals_f32(start as u64, &mut pieces[start..end]);
    }
    let pieces: Vec<f64> = pieces.into_iter().map(f64::from).collect();
    assert_eq!(whole, pieces);
    // Rayon pools of one and two threads, chunks of 97.
    let in_pool = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut z = vec![0f32; 10_001];
            z.par_chunks_mut(97)
                .enumerate()
                .for_each(|(j, c)| s.normals_f32((j * 97) as u64, c));
            z.into_iter().map(f64::from).collect::<Vec<_>>()
        })
    };
    assert_eq!(in_pool(1), whole);
    assert_eq!(in_pool(2), whole);
    // Far indices (past 2^32) work and differ from the near ones.
    let mut far = vec![0f32; 64];
    s.normals_f32((1u64 << 32) - 7, &mut far);
    assert!(far.iter().all(|x| x.is_finite()));
    assert_ne!(
        far.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
        whole[..64].to_vec()
    );
}
