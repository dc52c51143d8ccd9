//! The vector unit's elementwise kernels against an exact reference: on inputs whose sums and
//! products are exact in `f64`, each result must equal the format's single rounding of the exact
//! value (with the same random word), for every mode; axpy is two such roundings. Also the
//! action counts, determinism across thread counts, and the errors.
use lpsim::arith::{elementwise, ActionKey, ElemOp};
use lpsim::{Format, RandomStream, Rounding};

/// f32 values with exponents in [-12, 12] and both signs: sums and products are exact in f64.
fn inputs(n: usize, seed: u64) -> Vec<f64> {
    let s = RandomStream::new(seed, 9);
    (0..n as u64)
        .map(|i| {
            let m = (s.uniform_f64(i) - 0.5) * 2.0;
            let e = (s.bits(n as u64 + i) % 25) as i32 - 12;
            f64::from((m * 2f64.powi(e)) as f32)
        })
        .collect()
}

const FORMATS: [&str; 6] = [
    "bf16",
    "fp16",
    "e4m3fn",
    "fixed:wl=8,fl=4",
    "int8",
    "float:e=4,m=3,sat=on",
];
const MODES: [&str; 8] = ["rne", "rna", "rtz", "up", "down", "odd", "sr", "sr:bits=4"];

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn every_op_rounds_the_exact_result_once() {
    let n = 4000;
    let (x, y) = (inputs(n, 1), inputs(n, 2));
    let stream = RandomStream::new(5, 6);
    for spec in FORMATS {
        let f: Format = spec.parse().unwrap();
        for mode in MODES {
            let r: Rounding = mode.parse().unwrap();
            let q = |v: f64, w: u32| f.quantize_scalar(v, r, w).unwrap();
            let word = |i: usize| stream.bits(i as u64);
            for (op, exact) in [
                (
                    ElemOp::Add,
                    &(|a: f64, b: f64| a + b) as &dyn Fn(f64, f64) -> f64,
                ),
                (ElemOp::Sub, &|a, b| a - b),
                (ElemOp::Mul, &|a, b| a * b),
                (ElemOp::Scale(0.375), &|a, _| 0.375 * a),
            ] {
                let mut out = vec![0.0; n];
                elementwise(op, &x, &y, &mut out, f, r, stream).unwrap();
                for i in 0..n {
                    let want = q(exact(x[i], y[i]), word(i));
                    assert!(
                        same(out[i], want),
                        "{spec} {mode} {op:?}: {} {} -> {} want {}",
                        x[i],
                        y[i],
                        out[i],
                        want
                    );
                }
            }
            let mut out = vec![0.0; n];
            elementwise(ElemOp::Axpy(-1.5), &x, &y, &mut out, f, r, stream).unwrap();
            for i in 0..n {
                let ax = q(-1.5 * x[i], stream.bits((n + i) as u64));
                let want = q(ax + y[i], word(i));
                assert!(same(out[i], want), "{spec} {mode} axpy {i}");
            }
        }
    }
}

#[test]
fn counts_and_thread_independence() {
    let n = 50_000;
    let (x, y) = (inputs(n, 3), inputs(n, 4));
    let f: Format = "e4m3fn".parse().unwrap();
    let r: Rounding = "sr:bits=8".parse().unwrap();
    let stream = RandomStream::new(1, 1);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut out = vec![0.0; n];
            let c = elementwise(ElemOp::Axpy(3.0), &x, &y, &mut out, f, r, stream).unwrap();
            (out, c)
        })
    };
    let (a, ca) = run(1);
    let (b, cb) = run(4);
    assert!(a.iter().zip(&b).all(|(p, q)| same(*p, *q)));
    assert_eq!(ca, cb);
    let e4m3fn: Format = "e4m3fn".parse().expect("e4m3fn");
    let (mul, add) = (
        ActionKey::Mul {
            a: e4m3fn,
            b: e4m3fn,
        },
        ActionKey::Add { f: e4m3fn },
    );
    assert_eq!(ca.get(&mul), n as u64);
    assert_eq!(ca.get(&add), n as u64);
    assert_eq!(ca.random_bits, 2 * n as u64 * 8);
}

#[test]
fn bad_operands_are_errors() {
    let f: Format = "mxfp8".parse().unwrap();
    let r = Rounding::NearestEven;
    let s = RandomStream::new(0, 0);
    let mut out = vec![0.0; 2];
    let e = elementwise(ElemOp::Add, &[1.0, 2.0], &[1.0, 2.0], &mut out, f, r, s).unwrap_err();
    assert!(e.to_string().contains("float or fixed"), "{e}");
    let bf16: Format = "bf16".parse().unwrap();
    let e = elementwise(ElemOp::Add, &[1.0, 2.0], &[1.0], &mut out, bf16, r, s).unwrap_err();
    assert!(e.to_string().contains("shapes"), "{e}");
}
