//! The general MAC path against an exact reference written here: every sum is formed exactly
//! as a big integer (values are multiples of 2^-1200) and rounded once, for sequential,
//! pairwise and chunked orders, fused and unfused, float and fixed accumulators, with overflow,
//! saturation, wrap-around, subnormal and cancellation cases; and the action counts the kernel
//! reports (the counting model the cost model prices) against the roundings the reference does.

use std::cell::Cell;

use lpsim::arith::{gemm_general, ActionKey, MacConfig, Order};
use lpsim::format::{FixedFormat, FloatFormat, Format};
use lpsim::round::{Discarded, RandomStream, Rounding};
use ndarray::Array2;
use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive, Zero};

const E0: i32 = -1200;

/// `x` as an integer count of 2^E0.
fn big(x: f64) -> BigInt {
    if x == 0.0 {
        return BigInt::zero();
    }
    let bits = x.to_bits();
    let field = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if field == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), field - 1075)
    };
    let v = BigInt::from(m) << ((e - E0) as usize);
    if x < 0.0 {
        -v
    } else {
        v
    }
}

/// Split a positive count of 2^E0 on the grid 2^k: (n, discarded).
fn split(a: &BigInt, k: i32) -> (BigInt, Discarded) {
    let shift = (k - E0) as usize;
    let n = a >> shift;
    let rem: BigInt = a - (&n << shift);
    let scaled: BigInt = rem << 32usize;
    let frac = &scaled >> shift;
    let sticky = !(scaled - (&frac << shift)).is_zero();
    (
        n,
        Discarded {
            frac32: frac.to_u32().unwrap(),
            sticky,
        },
    )
}

fn pow2(k: i32) -> f64 {
    2f64.powi(k)
}

/// Round the exact value v (count of 2^E0, non-zero) once to a float format.
fn round_float(f: &FloatFormat, v: &BigInt, r: Rounding, word: u32) -> f64 {
    let negative = v.is_negative();
    let a = v.abs();
    let e = a.bits() as i32 - 1 + E0;
    let emin = 1 - f.bias();
    let m = f.man_bits() as i32;
    let k = if e >= emin {
        e - m
    } else if f.subnormals() {
        emin - m
    } else {
        emin
    };
    let (n, d) = split(&a, k);
    let n = n.to_u64().unwrap();
    let n = n + u64::from(r.round_up(negative, n & 1 == 1, d, word));
    let x = n as f64 * pow2(k);
    f.quantize(if negative { -x } else { x }, r, 0)
}

/// Round the exact value v once to a fixed format (magnitudes below 2^53 quanta).
fn round_fixed(f: &FixedFormat, v: &BigInt, r: Rounding, word: u32) -> f64 {
    let negative = v.is_negative();
    let (n, d) = split(&v.abs(), -f.fl());
    let n = n.to_u64().unwrap();
    let n = n + u64::from(r.round_up(negative, n & 1 == 1, d, word));
    let x = n as f64 * pow2(-f.fl());
    f.quantize(if negative { -x } else { x }, r, 0)
}

/// The reference adder: `x + y` exactly, rounded once; exact zeros per IEEE 754 section 6.3.
fn ref_add(acc: &Format, r: Rounding, x: f64, y: f64, word: u32) -> f64 {
    if !x.is_finite() || !y.is_finite() {
        return acc.quantize_scalar(x + y, r, word).unwrap();
    }
    let s = big(x) + big(y);
    if s.is_zero() {
        let z = if x == 0.0 && y == 0.0 && x.is_sign_negative() == y.is_sign_negative() {
            x
        } else if r == Rounding::Down {
            -0.0
        } else {
            0.0
        };
        return acc.quantize_scalar(z, r, 0).unwrap();
    }
    match acc {
        Format::Float(f) => round_float(f, &s, r, word),
        Format::Fixed(f) => round_fixed(f, &s, r, word),
        _ => unreachable!(),
    }
}

/// The reference MAC sum of output `o`; `roundings` counts the roundings into the accumulator
/// format it performs.
fn ref_dot(
    cfg: &MacConfig,
    a: &[f32],
    b: &[f32],
    stream: &RandomStream,
    o: u64,
    roundings: &Cell<u64>,
) -> f64 {
    let k = a.len();
    let word = |r: usize| stream.bits(MacConfig::random_index(o, k, r as u64));
    let p: Vec<f64> = (0..k)
        .map(|i| cfg.product(f64::from(a[i]), f64::from(b[i])))
        .collect();
    let add = |x: f64, y: f64, r: usize| {
        roundings.set(roundings.get() + 1);
        ref_add(&cfg.acc, cfg.acc_rounding, x, y, word(r))
    };
    match cfg.order {
        Order::Sequential => (0..k).fold(0.0, |acc, i| add(acc, p[i], i)),
        Order::Chunk(c) => {
            let mut total = 0.0;
            for (ci, start) in (0..k).step_by(c).enumerate() {
                let chunk = (start..(start + c).min(k)).fold(0.0, |acc, i| add(acc, p[i], i));
                total = add(total, chunk, k + ci);
            }
            total
        }
        Order::Pairwise => {
            if k == 0 {
                return 0.0;
            }
            if k == 1 {
                if p[0] == 0.0 {
                    roundings.set(roundings.get() + 1);
                    return cfg.acc.quantize_scalar(p[0], cfg.acc_rounding, 0).unwrap();
                }
                return add(p[0], 0.0, 0);
            }
            let mut level = p;
            let mut r = 0;
            while level.len() > 1 {
                let mut next = Vec::new();
                for pair in level.chunks(2) {
                    if pair.len() == 2 {
                        next.push(add(pair[0], pair[1], r));
                        r += 1;
                    } else {
                        next.push(pair[0]);
                    }
                }
                level = next;
            }
            level[0]
        }
        Order::Native => unreachable!(),
    }
}

/// A small deterministic generator of test values.
struct Gen(RandomStream, u64);

impl Gen {
    fn next(&mut self) -> f64 {
        self.1 += 1;
        self.0.uniform_f64(self.1)
    }
    /// A value of format `f`: sign, a scale 2^e with e in `erange`, quantized.
    fn value(&mut self, f: &Format, erange: (i32, i32)) -> f32 {
        let u = self.next();
        let e = erange.0 + (self.next() * f64::from(erange.1 - erange.0 + 1)) as i32;
        let s = if self.next() < 0.5 { -1.0 } else { 1.0 };
        let zero = self.next() < 0.05;
        let x = if zero { 0.0 } else { s * (1.0 + u) * pow2(e) };
        f.quantize_scalar(x, Rounding::NearestEven, 0).unwrap() as f32
    }
}

fn check(cfg: &MacConfig, m: usize, k: usize, n: usize, erange: (i32, i32), seed: u64) {
    let mut g = Gen(RandomStream::new(seed, 99), 0);
    let a = Array2::from_shape_fn((m, k), |_| g.value(&cfg.a, erange));
    let b = Array2::from_shape_fn((k, n), |_| g.value(&cfg.b, erange));
    let stream = RandomStream::new(seed, 7);
    let out = gemm_general(cfg, a.view(), b.view(), stream).unwrap();
    let roundings = Cell::new(0);
    for i in 0..m {
        for j in 0..n {
            let ai: Vec<f32> = a.row(i).to_vec();
            let bj: Vec<f32> = b.column(j).to_vec();
            let want = ref_dot(cfg, &ai, &bj, &stream, (i * n + j) as u64, &roundings);
            let got = out.c[[i, j]];
            assert!(
                want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()),
                "{cfg:?} K={k} output ({i},{j}): general {got:e} ({:x}) != exact {want:e} ({:x})",
                got.to_bits(),
                want.to_bits()
            );
        }
    }
    // The counting model (`MacConfig::counts`, what `lpsim cost` prices) against what this
    // reference did: every product formed (and rounded to the product format), every rounding
    // into the accumulator (an add, an fma or a single-product rounding), 2^b random bits each.
    let c = &out.counts;
    let products = (m * n * k) as u64;
    let acc_rounding = |key: &ActionKey| match *key {
        ActionKey::Add { f } => f == cfg.acc,
        ActionKey::Fma { .. } => true,
        ActionKey::Quantize { f, r } => f == cfg.acc && r == cfg.acc_rounding,
        ActionKey::Mul { .. } => false,
    };
    let sum = |keep: &dyn Fn(&ActionKey) -> bool| -> u64 {
        c.actions
            .iter()
            .filter(|(key, _)| keep(key))
            .map(|(_, n)| n)
            .sum()
    };
    assert_ne!(
        cfg.product,
        Some(cfg.acc),
        "a product rounding would count as the adder's"
    );
    assert_eq!(sum(&acc_rounding), roundings.get(), "{cfg:?} K={k}");
    let formed = |key: &ActionKey| matches!(key, ActionKey::Mul { .. } | ActionKey::Fma { .. });
    assert_eq!(sum(&formed), products, "{cfg:?} K={k}");
    if let Some(p) = cfg.product {
        let rounded = ActionKey::Quantize {
            f: p,
            r: Rounding::NearestEven,
        };
        assert_eq!(c.get(&rounded), products, "{cfg:?} K={k}");
    }
    let bits = u64::from(cfg.acc_rounding.random_bits());
    assert_eq!(c.random_bits, roundings.get() * bits, "{cfg:?} K={k}");
}

fn f(s: &str) -> Format {
    s.parse().unwrap()
}

const ROUNDINGS: &[&str] = &["rne", "rna", "rtz", "up", "down", "odd", "sr", "sr:bits=5"];
const ORDERS: &[&str] = &["sequential", "pairwise", "chunk=3", "chunk=1"];

fn sweep(inputs: &str, product: Option<&str>, fused: bool, acc: &str, erange: (i32, i32)) {
    for (ri, r) in ROUNDINGS.iter().enumerate() {
        for (oi, o) in ORDERS.iter().enumerate() {
            let cfg = MacConfig::new(
                f(inputs),
                f(inputs),
                product.map(f),
                fused,
                f(acc),
                r.parse().unwrap(),
                o.parse().unwrap(),
            )
            .unwrap();
            for (ki, k) in [0usize, 1, 2, 5, 17].into_iter().enumerate() {
                check(&cfg, 2, k, 3, erange, (ri * 100 + oi * 10 + ki) as u64);
            }
        }
    }
}

#[test]
fn float_accumulators_round_every_add_once() {
    sweep("bf16", None, true, "fp16", (-8, 4));
    sweep("bf16", None, false, "float:e=8,m=12", (-30, 30));
    sweep("fp32", None, false, "fp32", (-20, 20));
    sweep("e4m3fn", Some("fp16"), false, "bf16", (-9, 8));
}

#[test]
fn float_overflow_subnormals_and_cancellation() {
    // e5m2-range accumulator overflows; tiny values land in fp16 subnormals.
    sweep("e4m3fn", None, true, "e5m2", (0, 8));
    sweep("fp16", None, true, "fp16", (-20, -8));
    sweep("e4m3fn", None, false, "e4m3fn", (2, 8));
    sweep("bf16", None, false, "float:e=4,m=3,sat=on", (-2, 4));
    sweep("bf16", None, false, "float:e=5,m=4,sub=off", (-12, -4));
    // Cancellation: one exponent for all, so sums cancel often.
    sweep("e4m3fn", None, true, "fp16", (0, 0));
}

#[test]
fn fixed_accumulators_saturate_and_wrap() {
    sweep("fixed:wl=8,fl=4", None, false, "fixed:wl=12,fl=3", (-3, 2));
    sweep(
        "fixed:wl=8,fl=4",
        None,
        true,
        "fixed:wl=10,fl=5,sat=off",
        (-3, 2),
    );
    sweep("int8", None, false, "int16", (0, 6));
    sweep("int8", None, false, "fixed:wl=12,fl=0,sat=on", (3, 6));
    sweep("e4m3fn", None, false, "fixed:wl=16,fl=6", (-9, 6));
    sweep(
        "bf16",
        Some("fixed:wl=10,fl=4"),
        false,
        "fixed:wl=14,fl=2,sat=off",
        (-5, 4),
    );
}

#[test]
fn adder_rounds_two_term_sums_once() {
    let mut g = Gen(RandomStream::new(5, 5), 0);
    for acc in ["fp16", "float:e=8,m=12", "fp32", "bf16", "fixed:wl=16,fl=4"] {
        let acc = f(acc);
        for r in ROUNDINGS {
            let r: Rounding = r.parse().unwrap();
            for i in 0..20000u32 {
                let ex = (g.next() * 40.0) as i32 - 20;
                let x = g.value(&acc, (ex, ex + 2)) as f64;
                let gap = (g.next() * 60.0) as i32;
                let y = f64::from(g.value(&f("fp32"), (ex - gap, ex - gap + 1)))
                    * f64::from(g.value(&f("fp32"), (0, 0)));
                let want = ref_add(&acc, r, x, y, i.wrapping_mul(2654435761));
                let cfg =
                    MacConfig::new(f("fp32"), f("fp32"), None, false, acc, r, Order::Sequential)
                        .unwrap();
                let (got, _) = cfg.adder().unwrap().add(x, y, i.wrapping_mul(2654435761));
                assert!(
                    want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()),
                    "{acc} {r}: {x:e} + {y:e} ({:x} + {:x}): got {got:e}, want {want:e}",
                    x.to_bits(),
                    y.to_bits()
                );
            }
        }
    }
}

/// The shipped int8 architecture's accumulator stands in for int32: every product of two
/// per-tensor scaled int8 operands is an integer number of units (the product of the two
/// scales), and fp32 holds those sums exactly while they stay below 2^24 units. With every
/// product at the full 127 x 127 = 16129 units that is K <= 1040 (1040 x 16129 < 2^24); at
/// K = 1041 the odd sum 16,790,289 needs 25 bits and fp32 rounds it, which int32 would not.
/// Random codes at K = 1040 are summed exactly whatever their signs.
#[test]
fn int8_accumulator_is_exact_below_two_to_the_24_units() {
    let arch = lpsim::arch::Architecture::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/arch/int8.json"
    )))
    .expect("arch");
    let mac = arch.formats.mac;
    // Elements of scale 2^-6 (block exponent 0) times elements of scale 2^-9: unit 2^-15.
    let dot = |a: &[f32], b: &[f32]| {
        let a = Array2::from_shape_vec((1, a.len()), a.to_vec()).unwrap();
        let b = Array2::from_shape_vec((b.len(), 1), b.to_vec()).unwrap();
        lpsim::arith::gemm(&mac, a.view(), b.view(), RandomStream::new(0, 0))
            .expect("gemm")
            .c[[0, 0]]
    };
    let unit = pow2(-15);
    for (k, exact) in [(1040usize, true), (1041, false)] {
        let (a, b) = (vec![127.0 / 64.0; k], vec![127.0 / 512.0; k]);
        let c = dot(&a, &b);
        assert_eq!(c == (k as f64 * 16129.0) * unit, exact, "K = {k}: {c}");
    }
    let mut g = 12345u64;
    let mut code = || {
        g = g
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((g >> 33) % 255) as i64 - 127
    };
    for _ in 0..20 {
        let (ka, kb): (Vec<i64>, Vec<i64>) = (0..1040).map(|_| (code(), code())).unzip();
        let a: Vec<f32> = ka.iter().map(|&x| x as f32 / 64.0).collect();
        let b: Vec<f32> = kb.iter().map(|&x| x as f32 / 512.0).collect();
        let want: i64 = ka.iter().zip(&kb).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), want as f64 * unit);
    }
}

/// The fused fp64 multiply-add on f64 inputs (`gemm_f64`): on f32-valued inputs it is the
/// general path's fused sequential fp64 MAC bit for bit (products exact, every add rounded
/// once); on f64 inputs each step rounds `acc + a b` once (the product is not rounded first);
/// any other MAC is refused.
#[test]
fn the_fused_fp64_multiply_add_takes_f64_inputs() {
    use lpsim::arith::{gemm_f64, KernelPath};
    let fp64 = f("fp64");
    let cfg = MacConfig::new(
        fp64,
        fp64,
        None,
        true,
        fp64,
        Rounding::NearestEven,
        Order::Sequential,
    )
    .unwrap();
    assert!(cfg.is_f64_fma());
    let mut g = Gen(RandomStream::new(5, 99), 0);
    let a = Array2::from_shape_fn((3, 17), |_| g.value(&f("fp32"), (-30, 30)));
    let b = Array2::from_shape_fn((17, 4), |_| g.value(&f("fp32"), (-30, 30)));
    let general = gemm_general(&cfg, a.view(), b.view(), RandomStream::new(0, 0)).unwrap();
    let (a64, b64) = (a.mapv(f64::from), b.mapv(f64::from));
    let fma = gemm_f64(&cfg, a64.view(), b64.view()).unwrap();
    assert_eq!(fma.path, KernelPath::F64Fma);
    let bits = |c: &Array2<f64>| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&fma.c), bits(&general.c));
    assert_eq!(fma.counts, general.counts);

    // (1 + 2^-30)(1 - 2^-30) = 1 - 2^-60: a rounded product would be 1 and the sum 0.
    let e = pow2(-30);
    let a = ndarray::array![[1.0, 1.0 + e]];
    let b = ndarray::array![[-1.0], [1.0 - e]];
    let c = gemm_f64(&cfg, a.view(), b.view()).unwrap().c;
    assert_eq!(c[[0, 0]], -pow2(-60));

    // fp64 inputs with anything but the fused sequential rne fp64 accumulator are refused.
    for (acc, order) in [("fp32", "sequential"), ("fp64", "pairwise")] {
        let e = MacConfig::new(
            fp64,
            fp64,
            None,
            true,
            f(acc),
            Rounding::NearestEven,
            order.parse().unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("fused fp64 FMA"), "{e}");
    }
}
