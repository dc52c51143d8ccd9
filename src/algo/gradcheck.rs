//! The gradient check: central finite differences of the `f64` oracle's loss
//! (`workload::Model::loss_and_grad`, the model the metrics use) check the oracle, and for every
//! model kind the step graph's gradients on an all-`fp64` architecture (every format `fp64`, the
//! MAC the fused `fp64` multiply-add, [`crate::arith::gemm_f64`]) equal the oracle's to 1e-12
//! relative. The Gaussian target's graph adds its `0.1 xi` noise, so there the check is on the
//! difference: mean 0 and standard deviation 0.1, within stated tolerances.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayD};
use serde_json::Value;

use crate::algo::model::Builder;
use crate::algo::svrg_nn::tests::data;
use crate::algo::svrg_nn::{gradient_graph, Store};
use crate::algo::ModelShape;
use crate::arch::Architecture;
use crate::cost::Datapath;
use crate::format::alias;
use crate::graph::{execute, Op, Role};
use crate::round::{RandomStream, Rounding};
use crate::workload::{LinearSpec, LogisticSpec, MlpSpec, Model, ModelSpec, Targets};

/// `arch/fp32.json` with every `fp32` of the low-precision datapath (formats, MAC inputs and
/// accumulator, vector unit) made `fp64`; the full-precision unit stores `fp32` at most and the
/// check runs on the low-precision datapath.
fn fp64_arch() -> Architecture {
    fn swap(v: &mut Value) {
        match v {
            Value::String(s) if s == "fp32" => *s = "fp64".into(),
            Value::Array(a) => a.iter_mut().for_each(swap),
            Value::Object(m) => m.values_mut().for_each(swap),
            _ => {}
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("arch/fp32.json")).expect("shipped arch");
    let mut v: Value = serde_json::from_str(&text).expect("JSON");
    swap(&mut v);
    v["formats"]["mac"] = serde_json::json!({"a": "fp64", "b": "fp64", "product": "exact",
        "fused": true, "accumulator": "fp64", "acc_rounding": "rne", "order": "sequential"});
    v["full_precision"] = serde_json::json!({"format": "fp32"});
    Architecture::from_json_str("fp64.json", &v.to_string()).expect("an fp64 architecture")
}

const FP64: fn() -> Store = || (alias("fp64").expect("alias"), Rounding::NearestEven);

/// The oracle's flat parameters as the graph's tensors (`[in, out]` weights, `[1, out]` biases,
/// in the order of the layout).
fn tensors(model: &Model, p: &Array1<f64>) -> Vec<Array2<f64>> {
    model
        .layout()
        .iter()
        .map(|t| {
            let (r, c) = match t.shape[..] {
                [r, c] => (r, c),
                [c] => (1, c),
                _ => unreachable!("dense layers only"),
            };
            Array2::from_shape_vec(
                (r, c),
                p.slice(ndarray::s![t.offset..t.offset + t.len()]).to_vec(),
            )
            .expect("shape")
        })
        .collect()
}

/// Parameters away from zero so every path (ReLU on both sides, every bias) is exercised.
fn params(model: &Model, seed: u64) -> Array1<f64> {
    let s = RandomStream::new(seed, 3);
    Array1::from_shape_fn(model.n_params(), |i| 0.7 * s.normal_f64(i as u64))
}

/// The graph's gradients of `shape` at `p` on `x`, `y` (one-hot or values), on the fp64 unit.
fn graph_gradients(
    shape: &ModelShape,
    p: &[Array2<f64>],
    x: &Array2<f64>,
    y: &Array2<f64>,
) -> Vec<Array2<f64>> {
    let arch = fp64_arch();
    let g = gradient_graph(
        shape,
        (&arch, Datapath::LowPrecision),
        x.nrows(),
        FP64(),
        None,
    )
    .expect("graph");
    let mut feeds: BTreeMap<String, ArrayD<f64>> = BTreeMap::new();
    feeds.insert("x".into(), x.clone().into_dyn());
    feeds.insert("y".into(), y.clone().into_dyn());
    for (l, w) in p.iter().enumerate() {
        feeds.insert(format!("w{l}"), w.clone().into_dyn());
    }
    let mut res = execute(&g, &arch, &feeds, 0, 0).expect("execute");
    (0..p.len())
        .map(|l| {
            let name = crate::algo::model::grad_name(shape, l);
            res.values
                .remove(&name)
                .unwrap_or_else(|| panic!("no output {name}"))
                .into_dimensionality()
                .expect("matrix")
        })
        .collect()
}

/// `max |a - b| / max |b|` over every tensor.
fn rel_error(a: &[Array2<f64>], b: &[Array2<f64>]) -> f64 {
    let scale = b.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(u, v)| (u - v).abs()))
        .fold(0f64, f64::max);
    diff / scale
}

/// The oracle's gradient against central differences of its loss, `h = 1e-6`: agree to 1e-6
/// relative (the differences' own truncation and rounding error is about `h^2` and `eps / h`).
fn check_oracle(model: &Model, p: &Array1<f64>, x: &Array2<f64>, y: &Targets) {
    let (_, g) = model.loss_and_grad(p.view(), x.view(), y);
    let h = 1e-6;
    let scale = g.iter().fold(0f64, |m, v| m.max(v.abs()));
    for i in 0..p.len() {
        let (mut up, mut down) = (p.clone(), p.clone());
        up[i] += h;
        down[i] -= h;
        let fd =
            (model.loss(up.view(), x.view(), y) - model.loss(down.view(), x.view(), y)) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() <= 1e-6 * scale,
            "parameter {i}: finite difference {fd}, oracle {}",
            g[i]
        );
    }
}

/// One model kind: the oracle against finite differences, the graph against the oracle.
fn check(spec: ModelSpec, shape: ModelShape, classes: Option<usize>) {
    let (x, onehot) = data(9);
    let model = spec.build(x.ncols(), classes).expect("model");
    let p = params(&model, 5);
    let (targets, y) = match classes {
        Some(_) => {
            let c: Vec<usize> = (0..x.nrows()).map(|i| i % 3).collect();
            (Targets::Classes(c.into()), onehot)
        }
        None => {
            // Values that leave a residual at every example.
            let t: Array1<f64> = x.column(0).mapv(|v| 2.0 * v - 0.5);
            let y = t.clone().insert_axis(ndarray::Axis(1));
            (Targets::Values(t), y)
        }
    };
    check_oracle(&model, &p, &x, &targets);
    let (_, g) = model.loss_and_grad(p.view(), x.view(), &targets);
    let oracle = tensors(&model, &g);
    let graph = graph_gradients(&shape, &tensors(&model, &p), &x, &y);
    let e = rel_error(&graph, &oracle);
    assert!(
        e <= 1e-12,
        "{}: graph vs oracle relative error {e:e}",
        spec.kind()
    );
}

#[test]
fn linear_regression() {
    check(
        ModelSpec::Linear(LinearSpec {
            bias: false,
            l2: 0.0,
        }),
        ModelShape::Linear { d: 5 },
        None,
    );
}

#[test]
fn softmax_regression() {
    check(
        ModelSpec::Logistic(LogisticSpec {
            l2: 0.0,
            bias: false,
        }),
        ModelShape::Logistic {
            d: 5,
            classes: 3,
            l2: 0.0,
        },
        Some(3),
    );
}

#[test]
fn relu_mlp_with_biases() {
    for hidden in [vec![4], vec![6, 4]] {
        check(
            ModelSpec::Mlp(MlpSpec {
                hidden: hidden.clone(),
                l2: 0.0,
            }),
            ModelShape::Mlp {
                d: 5,
                hidden,
                classes: 3,
                l2: 0.0,
            },
            Some(3),
        );
    }
}

#[test]
fn gaussian_potential() {
    // N(m, Sigma) with a full precision matrix: the graph's gradient is `P (theta - m)` plus
    // `0.1 xi`; over 4000 coordinates' worth of draws the noise has mean 0 (3 standard errors:
    // 0.1 * 3 / sqrt(4000) = 0.0047) and standard deviation 0.1 (within 5%).
    let dim = 4;
    let mean = Array1::from(vec![1.0, -2.0, 0.5, 3.0]);
    let precision = ndarray::arr2(&[
        [2.0, 0.3, 0.0, 0.1],
        [0.3, 1.0, 0.2, 0.0],
        [0.0, 0.2, 1.5, 0.4],
        [0.1, 0.0, 0.4, 3.0],
    ]);
    let shape = ModelShape::Gaussian {
        dim,
        mean: mean.clone(),
        precision: precision.clone(),
    };
    let arch = fp64_arch();
    let mut b = Builder::on(Datapath::LowPrecision, &arch);
    let (f, r) = FP64();
    let w = b
        .feed(Op::Param, "w0", &[1, dim], f, r, Role::Weights)
        .expect("feed");
    let (_, grads) = b.gradients(&shape, None, None, &[w]).expect("gradient");
    let name = b.b.meta(grads[0]).name.clone();
    let g = b.b.build(&[name.as_str()]).expect("graph");
    let theta = Array2::from_shape_vec((1, dim), vec![0.3, -1.0, 2.0, 2.5]).expect("shape");
    let exact = (&theta.row(0) - &mean).dot(&precision);
    let mut noise = Vec::new();
    for step in 0..1000 {
        let mut feeds: BTreeMap<String, ArrayD<f64>> = crate::algo::gaussian::feeds(&shape)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        feeds.insert("w0".to_string(), theta.clone().into_dyn());
        let mut res = execute(&g, &arch, &feeds, 11, step).expect("execute");
        let grad = res.values.remove(&name).expect("gradient");
        noise.extend(grad.iter().zip(&exact).map(|(a, b)| a - b));
    }
    let n = noise.len() as f64;
    let m = noise.iter().sum::<f64>() / n;
    let sd = (noise.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
    assert!(m.abs() < 0.0047, "noise mean {m}");
    assert!((sd - 0.1).abs() < 0.005, "noise sd {sd}");
}
