//! The executor's fast paths against its reference path (`graph::Path::Reference`: every
//! rounding through the exact `f64` quantizer), bit for bit, on a small MLP step (forward,
//! softmax error, weight gradient, an fp32 update, Gaussian noise, conversions, scale, sum,
//! bias): every tensor's bits, the action counts, the work and the range health, for the
//! shipped architectures' formats (fixed-point and float, bfp per row, per column, per 32 and
//! per tensor, MX, fp8) under several rounding units (stochastic with 8 and 32 bits, nearest,
//! toward zero). And the same step in rayon pools of 1 and 2 threads gives the same bits.

use std::collections::BTreeMap;
use std::path::Path as FsPath;

use lpsim::arch::Architecture;
use lpsim::format::{Format, Quantizer};
use lpsim::graph::{
    execute_on, Executor, Graph, GraphBuilder, Level, Op, Path, Role, StepResult, TensorMeta,
};
use lpsim::round::{RandomStream, Rounding};
use ndarray::{ArrayD, IxDyn};

fn arch(name: &str) -> Architecture {
    Architecture::load(FsPath::new(&format!("arch/{name}.json"))).expect("arch")
}

fn fmt(spec: &str) -> Format {
    spec.parse().expect("format")
}

/// Tensor formats and rounding units of the step besides the MAC operands.
struct Case {
    arch: &'static str,
    act: &'static str,
    grad: &'static str,
    weights: &'static str,
    extra: &'static str,
}

const CASES: &[Case] = &[
    Case {
        arch: "bfp8",
        act: "bfp:wl=8,size=row",
        grad: "bfp:wl=8,size=col",
        weights: "bfp:wl=8,size=col",
        extra: "fixed:wl=8,fl=4",
    },
    Case {
        arch: "bfp8-32",
        act: "bfp:wl=8,size=32",
        grad: "bfp:wl=8,size=32",
        weights: "bfp:wl=8,size=32",
        extra: "mxint8",
    },
    Case {
        arch: "int8",
        act: "bfp:wl=8,size=tensor",
        grad: "bfp:wl=8,size=tensor",
        weights: "bfp:wl=8,size=tensor",
        extra: "bfp:wl=6,size=col",
    },
    Case {
        arch: "bf16",
        act: "bf16",
        grad: "bf16",
        weights: "bf16",
        extra: "fp16",
    },
    Case {
        arch: "fp8",
        act: "e4m3fn",
        grad: "e5m2",
        weights: "e4m3fn",
        extra: "mx:elem=int8,size=col",
    },
    Case {
        arch: "mxfp8",
        act: "mxfp8",
        grad: "mxfp8_e5m2",
        weights: "mxfp8",
        extra: "e2m1fn",
    },
    Case {
        arch: "fp32",
        act: "fp32",
        grad: "fp32",
        weights: "fp32",
        extra: "bfp:wl=8,size=col",
    },
];

const MODES: [&str; 4] = ["sr:bits=8", "sr", "rne", "rtz"];

fn meta(name: &str, shape: &[usize], f: Format, r: Rounding, role: Role) -> TensorMeta {
    TensorMeta::new(name, shape, f, r, Level::Inner, role)
}

/// The step of a `d-h` layer with a softmax error on `batch` examples: forward, error, weight
/// gradient, an fp32 axpy update, noise into the weight format, and a few vector ops.
fn step(a: &Architecture, c: &Case, r: Rounding, batch: usize, d: usize, h: usize) -> Graph {
    let mac = a.formats.mac;
    let (x_f, w_f) = (mac.a, mac.b);
    let mut b = GraphBuilder::new(mac);
    let x = b
        .add(Op::Input, meta("x", &[batch, d], x_f, r, Role::Data), &[])
        .unwrap();
    let y = b
        .add(
            Op::Input,
            meta("y", &[batch, h], fmt("fp32"), r, Role::Data),
            &[],
        )
        .unwrap();
    let w = b
        .add(Op::Param, meta("w", &[d, h], w_f, r, Role::Weights), &[])
        .unwrap();
    let bias = b
        .add(
            Op::Param,
            meta("b", &[1, h], fmt(c.weights), r, Role::Weights),
            &[],
        )
        .unwrap();
    let mm = |ta, tb| Op::MatMul {
        transpose_a: ta,
        transpose_b: tb,
    };
    let act = |n: &str, shape: &[usize]| meta(n, shape, fmt(c.act), r, Role::Activations);
    let z = b
        .add(mm(false, false), act("z", &[batch, h]), &[x, w])
        .unwrap();
    let zb = b
        .add(Op::BiasAdd, act("zb", &[batch, h]), &[z, bias])
        .unwrap();
    let relu = b.add(Op::Relu, act("h", &[batch, h]), &[zb]).unwrap();
    let e = b
        .add(
            Op::SoftmaxXentGrad,
            meta("e", &[batch, h], w_f, r, Role::Gradients),
            &[relu, y],
        )
        .unwrap();
    let g = b
        .add(
            mm(true, false),
            meta("g", &[d, h], fmt(c.grad), r, Role::Gradients),
            &[x, e],
        )
        .unwrap();
    let mu = b
        .add(
            Op::Axpy { c: (-0.05).into() },
            meta(
                "mu",
                &[d, h],
                fmt("fp32"),
                Rounding::NearestEven,
                Role::Updates,
            ),
            &[w, g],
        )
        .unwrap();
    b.add(
        Op::GaussianNoise { std: 0.01.into() },
        meta("w.next", &[d, h], fmt(c.weights), r, Role::Weights),
        &[mu],
    )
    .unwrap();
    b.add(
        Op::Quantize,
        meta("hq", &[batch, h], x_f, r, Role::Activations),
        &[relu],
    )
    .unwrap();
    b.add(
        Op::Scale { c: 0.3.into() },
        meta("s", &[batch, h], fmt(c.extra), r, Role::Gradients),
        &[e],
    )
    .unwrap();
    b.add(
        Op::SumRows,
        meta("gb", &[1, h], fmt(c.grad), r, Role::Gradients),
        &[e],
    )
    .unwrap();
    let d_ = b
        .add(
            Op::Sub,
            meta("d", &[batch, h], fmt(c.extra), r, Role::Activations),
            &[zb, relu],
        )
        .unwrap();
    // A ReLU gradient of a tensor already in its format (stored unrounded by the fast path
    // where the format is closed under zeroing, rounded where a block holds NaN).
    b.add(
        Op::ReluGrad,
        meta("eg", &[batch, h], fmt(c.extra), r, Role::Gradients),
        &[d_, zb],
    )
    .unwrap();
    b.build(&["w.next", "hq", "s", "gb", "d", "g", "eg"])
        .unwrap()
}

/// Values of `f` (nearest-even from scaled normal draws).
fn values_of(f: Format, shape: &[usize], scale: f64, stream: u64) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let s = RandomStream::new(99, stream);
    let raw: Vec<f64> = (0..n).map(|i| scale * s.normal_f64(i as u64)).collect();
    let mut out = vec![0.0; n];
    let q = Quantizer::new(f, Rounding::NearestEven, 0, 0).unwrap();
    q.quantize_f64(&raw, &mut out, 0, *shape.last().unwrap());
    ArrayD::from_shape_vec(IxDyn(shape), out).unwrap()
}

fn feeds(
    a: &Architecture,
    c: &Case,
    batch: usize,
    d: usize,
    h: usize,
) -> BTreeMap<String, ArrayD<f64>> {
    let mac = a.formats.mac;
    let mut y = ArrayD::zeros(IxDyn(&[batch, h]));
    for i in 0..batch {
        y[[i, (i * 7) % h]] = 1.0;
    }
    BTreeMap::from([
        ("x".to_string(), values_of(mac.a, &[batch, d], 1.5, 1)),
        ("w".to_string(), values_of(mac.b, &[d, h], 0.3, 2)),
        ("b".to_string(), values_of(fmt(c.weights), &[1, h], 0.1, 3)),
        ("y".to_string(), y),
    ])
}

fn assert_same(fast: &StepResult, reference: &StepResult, what: &str) {
    assert_eq!(
        fast.values.keys().collect::<Vec<_>>(),
        reference.values.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (name, v) in &fast.values {
        let other = &reference.values[name];
        assert_eq!(v.shape(), other.shape(), "{what}: tensor {name}");
        if let Some((k, (a, b))) = v
            .iter()
            .zip(other.iter())
            .enumerate()
            .find(|(_, (a, b))| a.to_bits() != b.to_bits())
        {
            panic!("{what}: tensor {name}, element {k}: {a:e} against {b:e}");
        }
    }
    assert_eq!(fast.counts(), reference.counts(), "{what}: counts");
    assert_eq!(
        fast.scopes(),
        reference.scopes(),
        "{what}: counts and work per scope"
    );
    assert_eq!(fast.range, reference.range, "{what}: range health");
}

#[test]
fn fast_paths_give_the_reference_bits() {
    for c in CASES {
        let a = arch(c.arch);
        for mode in MODES {
            let r: Rounding = mode.parse().unwrap();
            let (batch, d, h) = (9, 12, 40);
            let g = step(&a, c, r, batch, d, h);
            let f = feeds(&a, c, batch, d, h);
            // The same with a NaN in one input row (rounded to the input's format), so NaN
            // reaches blocks of the ReLU gradient, whose zeroed elements must then read NaN.
            let mut with_nan = f.clone();
            let x = with_nan.get_mut("x").unwrap();
            x[[1, 3]] = f64::NAN;
            let raw: Vec<f64> = x.iter().copied().collect();
            let mut held = vec![0.0; raw.len()];
            Quantizer::new(a.formats.mac.a, Rounding::NearestEven, 0, 0)
                .unwrap()
                .quantize_f64(&raw, &mut held, 0, d);
            *x = ArrayD::from_shape_vec(IxDyn(&[batch, d]), held).unwrap();
            for (f, what) in [(&f, ""), (&with_nan, " with NaN")] {
                for step_no in [0, 5] {
                    let fast = execute_on(&g, &a, f, 7, step_no, Path::Fast).unwrap();
                    let reference = execute_on(&g, &a, f, 7, step_no, Path::Reference).unwrap();
                    assert_same(
                        &fast,
                        &reference,
                        &format!("{} {mode} step {step_no}{what}", c.arch),
                    );
                }
            }
        }
    }
}

#[test]
fn one_and_two_threads_give_the_same_bits() {
    for c in CASES {
        let a = arch(c.arch);
        let r: Rounding = "sr:bits=8".parse().unwrap();
        // Large enough for the kernels to split their work among threads.
        let (batch, d, h) = (64, 64, 256);
        let g = step(&a, c, r, batch, d, h);
        let f = feeds(&a, c, batch, d, h);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| execute_on(&g, &a, &f, 3, 1, Path::Fast).unwrap())
        };
        assert_same(&run(1), &run(2), &format!("{} 1 vs 2 threads", c.arch));
    }
}

/// A driver's [`Executor`], built once and run step after step, returns the graph's outputs
/// only, with the bits, counts (per scope and in total), work and range health of a fresh
/// `execute_on` of each step.
#[test]
fn an_executor_run_many_times_equals_execute() {
    for c in CASES {
        let a = arch(c.arch);
        let r: Rounding = "sr".parse().unwrap();
        let (batch, d, h) = (9, 12, 40);
        let g = step(&a, c, r, batch, d, h);
        let f = feeds(&a, c, batch, d, h);
        let exec = Executor::new(&g, &a);
        for step_no in [0, 5, 6] {
            let what = format!("{} step {step_no}", c.arch);
            let kept = exec.run(&f, 7, step_no).unwrap();
            let mut all = execute_on(&g, &a, &f, 7, step_no, Path::Fast).unwrap();
            let mut outputs: Vec<&String> = g.outputs().iter().collect();
            outputs.sort();
            assert_eq!(
                kept.values.keys().collect::<Vec<_>>(),
                outputs,
                "{what}: the outputs only"
            );
            all.values.retain(|name, _| g.outputs().contains(name));
            assert_same(&kept, &all, &what);
        }
    }
}
