//! Every fast path of `gemm` against the general path, bit for bit, on random shapes; and
//! determinism across thread counts (stochastic accumulator rounding included).

use lpsim::arith::{gemm, gemm_general, KernelPath, MacConfig};
use lpsim::format::{Format, Quantizer};
use lpsim::round::{RandomStream, Rounding};
use ndarray::Array2;
use proptest::prelude::*;

fn random(m: usize, n: usize, f: &Format, seed: u64, scale: f64) -> Array2<f32> {
    let s = RandomStream::new(seed, 1);
    let raw: Vec<f32> = (0..m * n)
        .map(|i| (s.normal_f64(i as u64) * scale) as f32)
        .collect();
    let q = Quantizer::new(*f, Rounding::NearestEven, 0, 0).unwrap();
    let mut out = vec![0.0f32; raw.len()];
    q.quantize_f32(&raw, &mut out, 0, n).unwrap();
    Array2::from_shape_vec((m, n), out).unwrap()
}

fn cfg(a: &str, product: Option<&str>, fused: bool, acc: &str, r: &str, order: &str) -> MacConfig {
    MacConfig::new(
        a.parse().unwrap(),
        a.parse().unwrap(),
        product.map(|p| p.parse().unwrap()),
        fused,
        acc.parse().unwrap(),
        r.parse().unwrap(),
        order.parse().unwrap(),
    )
    .unwrap()
}

/// (config, the fast path it must take, input scale)
fn cases() -> Vec<(MacConfig, KernelPath, f64)> {
    use KernelPath::*;
    let mut v = Vec::new();
    for order in ["sequential", "pairwise", "chunk=4"] {
        v.push((
            cfg("int8", None, false, "int32", "rne", order),
            ExactInteger,
            60.0,
        ));
        v.push((
            cfg("int8", None, true, "fixed:wl=24,fl=0,sat=on", "sr", order),
            ExactInteger,
            60.0,
        ));
        v.push((
            cfg(
                "fixed:wl=8,fl=4",
                None,
                false,
                "fixed:wl=32,fl=10",
                "rtz",
                order,
            ),
            ExactInteger,
            2.0,
        ));
        v.push((
            cfg("e4m3fn", None, false, "fixed:wl=48,fl=20", "rne", order),
            ExactInteger,
            50.0,
        ));
        v.push((
            cfg("bf16", None, false, "fp16", "rne", order),
            NarrowFloat,
            1.0,
        ));
        v.push((
            cfg("e4m3fn", None, true, "fp16", "rne", order),
            NarrowFloat,
            100.0,
        ));
        v.push((
            cfg("bf16", Some("bf16"), false, "float:e=8,m=12", "rne", order),
            NarrowFloat,
            1e3,
        ));
        v.push((
            cfg("fp16", None, false, "e5m2", "rne", order),
            NarrowFloat,
            30.0,
        ));
        v.push((
            cfg("e4m3fn", None, false, "e4m3fn", "rne", order),
            NarrowFloat,
            10.0,
        ));
        v.push((
            cfg("fp16", None, false, "fp16", "rne", order),
            NarrowFloat,
            1e-6,
        ));
    }
    for order in ["sequential", "chunk=3"] {
        v.push((
            cfg("bf16", None, false, "fp32", "rne", order),
            NativeF32,
            1.0,
        ));
        v.push((
            cfg("fp32", None, true, "fp32", "rne", order),
            NativeF32,
            1e18,
        ));
        v.push((
            cfg("fp32", Some("fp32"), false, "fp32", "rne", order),
            NativeF32,
            1e-20,
        ));
    }
    for order in ["sequential", "chunk=5"] {
        v.push((
            cfg("e4m3fn", None, false, "fp32", "sr", order),
            StochasticF32,
            100.0,
        ));
        v.push((
            cfg("fp16", None, true, "fp32", "sr:bits=8", order),
            StochasticF32,
            1e-3,
        ));
        v.push((
            cfg("e5m2", None, false, "fp32", "sr:bits=3", order),
            StochasticF32,
            1e4,
        ));
    }
    v.push((
        cfg("bf16", None, false, "fp32", "rne", "pairwise"),
        NarrowFloat,
        1.0,
    ));
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn fast_paths_equal_general(m in 1usize..6, k in 0usize..40, n in 1usize..19, seed in 0u64..1000) {
        for (c, path, scale) in cases() {
            let a = random(m, k, &c.a, seed, scale);
            let b = random(k, n, &c.b, seed + 1, scale);
            let stream = RandomStream::new(seed, 3);
            let fast = gemm(&c, a.view(), b.view(), stream).unwrap();
            let general = gemm_general(&c, a.view(), b.view(), stream).unwrap();
            prop_assert_eq!(fast.path, path, "{:?}", c);
            for (x, y) in fast.c.iter().zip(general.c.iter()) {
                prop_assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                    "{:?}: fast {:e} != general {:e}", c, x, y);
            }
            prop_assert_eq!(&fast.counts, &general.counts, "{:?}", c);
            // A column-major `A` (a transposed view, read in place by the tiles) and a
            // column-major `B` give the same bits and counts.
            let column_major = |x: &Array2<f32>| x.t().as_standard_layout().into_owned();
            let (a_cm, b_cm) = (column_major(&a), column_major(&b));
            prop_assert!(m == 1 || k < 2 || a_cm.t().as_slice().is_none());
            let viewed = gemm(&c, a_cm.t(), b_cm.t(), stream).unwrap();
            prop_assert_eq!(viewed.path, path, "{:?}", c);
            for (x, y) in viewed.c.iter().zip(fast.c.iter()) {
                prop_assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                    "{:?}: column-major {:e} != row-major {:e}", c, x, y);
            }
            prop_assert_eq!(viewed.counts, fast.counts, "{:?}", c);
        }
    }
}

/// Sums of products near 1 and near 2^-140 leave subnormal rounding errors, which the fast
/// stochastic tiles hand to the general adder: the results still match it bit for bit.
#[test]
fn stochastic_fast_path_with_subnormal_rounding_errors() {
    let c = cfg(
        "float:e=7,m=2,bias=72",
        None,
        false,
        "fp32",
        "sr",
        "sequential",
    );
    for seed in 0..8 {
        let big = random(5, 30, &c.a, seed, 1.0);
        let tiny = random(5, 30, &c.a, seed + 100, 2f64.powi(-70));
        // Columns alternate between the two scales, so every sum mixes them.
        let a = Array2::from_shape_fn((5, 30), |(i, j)| {
            if j % 2 == 0 {
                big[[i, j]]
            } else {
                tiny[[i, j]]
            }
        });
        let b = a.t().to_owned();
        let stream = RandomStream::new(seed, 3);
        let fast = gemm(&c, a.view(), b.view(), stream).unwrap();
        let general = gemm_general(&c, a.view(), b.view(), stream).unwrap();
        assert_eq!(fast.path, KernelPath::StochasticF32);
        assert!(fast
            .c
            .iter()
            .zip(general.c.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

#[test]
fn deterministic_across_thread_counts() {
    let configs = [
        cfg("e4m3fn", None, false, "fp32", "sr", "sequential"),
        cfg("e4m3fn", None, false, "float:e=8,m=6", "sr", "sequential"),
        cfg("bf16", None, true, "fp16", "sr:bits=8", "pairwise"),
        cfg("bf16", None, false, "bf16", "sr", "chunk=8"),
        cfg("e4m3fn", None, false, "fp16", "rne", "chunk=32"),
        cfg("int8", None, false, "int32", "rne", "sequential"),
    ];
    for c in configs {
        // 3.6M multiply-adds: split into 3-4 tasks at the kernels' grain (2^20).
        let a = random(301, 97, &c.a, 1, 3.0);
        let b = random(97, 123, &c.b, 2, 3.0);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| gemm(&c, a.view(), b.view(), RandomStream::new(42, 0)).unwrap())
        };
        let one = run(1);
        let four = run(4);
        assert!(
            one.c
                .iter()
                .zip(four.c.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{c:?}"
        );
        assert_eq!(one.counts, four.counts);
        // Another seed changes stochastic results.
        if c.acc_rounding.is_stochastic() && c.acc.bits() < 32 {
            let other = gemm(&c, a.view(), b.view(), RandomStream::new(43, 0)).unwrap();
            assert!(one.c != other.c, "{c:?}");
        }
    }
}
