//! The gradient check, for every layer type, every loss and every model kind:
//! - the `f64` oracle against central finite differences (of a random linear functional of a
//!   layer's output, of a loss, of a model's objective);
//! - the step graph on an all-`fp64` architecture (every format `fp64`, the MAC the fused `fp64`
//!   multiply-add, [`crate::arith::gemm_f64`]) against the oracle, to 1e-12 relative.
//!
//! The Gaussian potential's graph adds its `0.1 xi` noise, so there the check is on the
//! difference: mean 0 and standard deviation 0.1, within stated tolerances.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayD, IxDyn};
use serde_json::Value;

use super::batchnorm::BatchNorm;
use super::conv2d::Conv2d;
use super::flatten::Flatten;
use super::gaussian::{GaussianPotential, Parameter};
use super::kinds::{chain, dense};
use super::layer::{Init, Layer, Loss};
use super::linear::Linear;
use super::mse::Mse;
use super::pool::{Pool2d, PoolKind};
use super::relu::Relu;
use super::residual::ResidualAdd;
use super::softmax_xent::SoftmaxCrossEntropy;
use super::{Builder, Model, ModelKind, Source};
use crate::arch::Architecture;
use crate::cost::Datapath;
use crate::format::alias;
use crate::graph::image::{Planes, Window};
use crate::graph::{execute, Op, Role};
use crate::round::{RandomStream, Rounding};
use crate::workload::Targets;

/// `arch/fp32.json` with every `fp32` of the low-precision datapath (formats, MAC inputs and
/// accumulator, vector unit, batch normalization) made `fp64`; the full-precision unit stores
/// `fp32` at most and the check runs on the low-precision datapath.
pub(crate) fn fp64_arch() -> Architecture {
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
    // Batch normalization computes in full precision unless the architecture says otherwise.
    v["formats"]["batchnorm"] = "fp64".into();
    Architecture::from_json_str("fp64.json", &v.to_string()).expect("an fp64 architecture")
}

/// A random array of `shape`, away from zero so every path (ReLU on both sides) is exercised.
fn random(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let s = RandomStream::new(seed, 3);
    let mut i = 0;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        i += 1;
        0.7 * s.normal_f64(i)
    })
}

/// `max |a - b| / max |b|` over every tensor.
fn rel_error(a: &[ArrayD<f64>], b: &[ArrayD<f64>]) -> f64 {
    let scale = b.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(u, v)| (u - v).abs()))
        .fold(0f64, f64::max);
    diff / scale
}

/// Central differences (`h = 1e-6`) of `f` at every element of every tensor of `at`.
fn finite_differences(at: &[ArrayD<f64>], f: &dyn Fn(&[ArrayD<f64>]) -> f64) -> Vec<ArrayD<f64>> {
    let h = 1e-6;
    let mut out = Vec::new();
    for t in 0..at.len() {
        let mut g = ArrayD::zeros(at[t].raw_dim());
        for i in 0..at[t].len() {
            let (mut up, mut down) = (at.to_vec(), at.to_vec());
            up[t].as_slice_mut().expect("standard layout")[i] += h;
            down[t].as_slice_mut().expect("standard layout")[i] -= h;
            g.as_slice_mut().expect("standard layout")[i] = (f(&up) - f(&down)) / (2.0 * h);
        }
        out.push(g);
    }
    out
}

/// The oracle against finite differences: agree to 1e-6 relative (the differences' own
/// truncation and rounding error is about `h^2` and `eps / h`).
fn assert_close_to_differences(what: &str, oracle: &[ArrayD<f64>], fd: &[ArrayD<f64>]) {
    let e = rel_error(oracle, fd);
    assert!(e <= 1e-6, "{what}: oracle vs finite differences {e:e}");
}

const FP64: &str = "fp64";

/// Feeds `w{i}` of every parameter tensor, in `fp64`.
fn feed_params(b: &mut Builder, specs: &[super::ParamSpec]) -> Vec<petgraph::graph::NodeIndex> {
    let f = alias(FP64).expect("alias");
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            b.feed(
                Op::Param,
                &format!("w{i}"),
                &s.shape,
                f,
                Rounding::NearestEven,
                Role::Weights,
            )
            .expect("param")
        })
        .collect()
}

/// One layer on a batch of `rows` examples, an input of `input` values per example for each of
/// its inputs: the oracle's backward against differences of `sum(r * forward)` (a random `r`)
/// in every input and parameter, and the step graph's forward, parameter gradients and input
/// errors against the oracle.
fn check_layer(layer: &dyn Layer, rows: usize, input: usize) {
    check_layer_on(layer, rows, &[input]);
}

/// [`check_layer`] with one example's input shape `in_shape` (`[C, H, W]` for images).
fn check_layer_on(layer: &dyn Layer, rows: usize, in_shape: &[usize]) {
    let input: usize = in_shape.iter().product();
    let kind = layer.kind();
    let arity = layer.arity();
    let xs: Vec<ArrayD<f64>> = (0..arity)
        .map(|i| random(&[rows, input], 1 + i as u64))
        .collect();
    let specs = layer.params();
    let params: Vec<ArrayD<f64>> = specs
        .iter()
        .enumerate()
        .map(|(i, p)| random(&p.shape, 10 + i as u64))
        .collect();
    let out_shape = layer.output_shape(&vec![in_shape; arity]).expect("fits");
    // Batches are matrices: one example per row (NCHW within it for images).
    let shape = vec![rows, out_shape.iter().product()];
    let r = random(&shape, 9);
    // The oracle's backward against differences of sum(r * forward), in x and every parameter.
    let functional = |t: &[ArrayD<f64>]| {
        let p: Vec<&ArrayD<f64>> = t[arity..].iter().collect();
        let x: Vec<_> = t[..arity].iter().map(|a| a.view()).collect();
        (layer.forward(&p, &x) * &r).sum()
    };
    let mut at = xs.clone();
    at.extend(params.iter().cloned());
    let p: Vec<&ArrayD<f64>> = params.iter().collect();
    let views: Vec<_> = xs.iter().map(|a| a.view()).collect();
    let y = layer.forward(&p, &views);
    let need = vec![true; arity];
    let (dx, grads) = layer.backward(&p, &views, y.view(), r.view(), &need);
    let mut oracle: Vec<ArrayD<f64>> = dx.into_iter().map(|d| d.expect("asked for dx")).collect();
    oracle.extend(grads);
    let fd = finite_differences(&at, &functional);
    // A parameter-only layer has no input gradient (its `dx` is not asked for in a model).
    let skip = if kind == "parameter" { arity } else { 0 };
    assert_close_to_differences(kind, &oracle[skip..], &fd[skip..]);

    // The graph against the oracle.
    let arch = fp64_arch();
    let f = alias(FP64).expect("alias");
    let rn = Rounding::NearestEven;
    let mut b = Builder::on(Datapath::LowPrecision, &arch);
    let xn: Vec<_> = (0..arity)
        .map(|i| {
            b.feed(
                Op::Input,
                &format!("x{i}"),
                &[rows, input],
                f,
                rn,
                Role::Data,
            )
            .expect("x")
        })
        .collect();
    let pn = feed_params(&mut b, &specs);
    // The error arrives named as the model names it (a parameter layer's is its gradient).
    let err_name = layer.error_name();
    let en = b
        .feed(Op::Input, &err_name, &shape, f, rn, Role::Gradients)
        .expect("err");
    let yn = layer.build_forward(&mut b, &xn, &pn).expect("forward");
    let (dxn, gn) = layer
        .build_backward(&mut b, &xn, yn, en, &pn, &need)
        .expect("backward");
    let name = |b: &Builder, n: petgraph::graph::NodeIndex| b.b.meta(n).name.clone();
    let out_name = name(&b, yn);
    let dx_names: Vec<Option<String>> = dxn.iter().map(|d| d.map(|d| name(&b, d))).collect();
    let grad_names: Vec<String> = gn.iter().map(|&g| name(&b, g)).collect();
    for (n, s) in grad_names.iter().zip(&specs) {
        assert_eq!(
            n, &s.grad,
            "{kind}: the gradient node is named as its spec says"
        );
    }
    let mut names = vec![out_name.clone()];
    names.extend(dx_names.iter().flatten().cloned());
    names.extend(grad_names.iter().cloned());
    names.sort();
    names.dedup();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let g = b.b.build(&refs).expect("graph");
    let mut feeds: BTreeMap<String, ArrayD<f64>> = BTreeMap::new();
    for (i, x) in xs.iter().enumerate() {
        feeds.insert(format!("x{i}"), x.clone());
    }
    feeds.insert(err_name.clone(), r.clone());
    for (i, p) in params.iter().enumerate() {
        feeds.insert(format!("w{i}"), p.clone());
    }
    let res = execute(&g, &arch, &feeds, 0, 0).expect("execute");
    let get = |n: &str| {
        res.values
            .get(n)
            .cloned()
            .unwrap_or_else(|| feeds[n].clone())
    };
    let mut graph = vec![get(&out_name)];
    let mut exact = vec![y];
    if skip == 0 {
        for (i, d) in dx_names.iter().enumerate() {
            graph.push(get(d.as_ref().expect("every input's error")));
            exact.push(oracle[i].clone());
        }
    }
    for (g, o) in grad_names.iter().zip(&oracle[arity..]) {
        graph.push(get(g));
        exact.push(o.clone());
    }
    let e = rel_error(&graph, &exact);
    assert!(e <= 1e-12, "{kind}: graph vs oracle relative error {e:e}");
}

#[test]
fn linear_layer_with_and_without_bias() {
    for bias in [false, true] {
        let l = Linear {
            index: 0,
            fan_in: 5,
            fan_out: 3,
            bias,
            init: Init::Zeros,
        };
        check_layer(&l, 7, 5);
    }
}

fn planes(channels: usize, height: usize, width: usize) -> Planes {
    Planes {
        channels,
        height,
        width,
    }
}

fn window(k: usize, stride: usize, pad: usize) -> Window {
    Window {
        kh: k,
        kw: k,
        stride,
        pad,
    }
}

#[test]
fn conv2d_layer_strides_padding_and_bias() {
    for (k, stride, pad, bias) in [
        (3, 1, 1, true),
        (3, 2, 0, false),
        (2, 2, 1, true),
        (1, 1, 0, false),
    ] {
        let l = Conv2d {
            index: 0,
            input: planes(2, 5, 4),
            filters: 3,
            window: window(k, stride, pad),
            bias,
        };
        check_layer_on(&l, 3, &[2, 5, 4]);
    }
}

#[test]
fn pool_layers() {
    for kind in [PoolKind::Max, PoolKind::Avg] {
        // Non-overlapping, overlapping, padded, global.
        for w in [window(2, 2, 0), window(3, 1, 1), window(3, 2, 1)] {
            let l = Pool2d {
                kind,
                index: 0,
                input: planes(2, 5, 4),
                window: w,
            };
            check_layer_on(&l, 3, &[2, 5, 4]);
        }
        let global = Pool2d {
            kind,
            index: 0,
            input: planes(3, 4, 4),
            window: Window {
                kh: 4,
                kw: 4,
                stride: 1,
                pad: 0,
            },
        };
        check_layer_on(&global, 2, &[3, 4, 4]);
    }
}

#[test]
fn batchnorm_layer_on_images_and_features() {
    let images = BatchNorm {
        index: 0,
        channels: 3,
        positions: 6,
        frozen: None,
    };
    check_layer_on(&images, 4, &[3, 2, 3]);
    let features = BatchNorm {
        index: 0,
        channels: 5,
        positions: 1,
        frozen: None,
    };
    check_layer_on(&features, 6, &[5]);
}

#[test]
fn flatten_layer() {
    check_layer_on(&Flatten { index: 0 }, 3, &[2, 3, 2]);
}

#[test]
fn relu_layer() {
    check_layer(&Relu::after_dense(0), 6, 4);
}

#[test]
fn residual_add_layer() {
    check_layer(&ResidualAdd { index: 0 }, 5, 4);
}

#[test]
fn parameter_layer() {
    check_layer(&Parameter { dim: 4 }, 1, 0);
}

/// One loss: the oracle's gradient against differences of its value, and (for a
/// deterministic loss) the graph's error against the oracle's gradient.
fn check_loss(loss: &dyn Loss, out: ArrayD<f64>, y: Targets, y_matrix: Option<Array2<f64>>) {
    let kind = loss.kind();
    let (_, g) = loss.value_and_grad(out.view(), &y);
    let fd = finite_differences(std::slice::from_ref(&out), &|t| {
        loss.value_and_grad(t[0].view(), &y).0
    });
    assert_close_to_differences(kind, std::slice::from_ref(&g), &fd);
    let Some(ym) = y_matrix else { return };
    let arch = fp64_arch();
    let f = alias(FP64).expect("alias");
    let rn = Rounding::NearestEven;
    let mut b = Builder::on(Datapath::LowPrecision, &arch);
    let on = b
        .feed(Op::Input, "out", out.shape(), f, rn, Role::Activations)
        .expect("out");
    let yn = b
        .feed(Op::Input, "y", ym.shape(), f, rn, Role::Data)
        .expect("y");
    loss.build_error(&mut b, on, Some(yn), "err")
        .expect("error");
    let graph = b.b.build(&["err"]).expect("graph");
    let mut feeds: BTreeMap<String, ArrayD<f64>> = BTreeMap::new();
    feeds.insert("out".into(), out);
    feeds.insert("y".into(), ym.into_dyn());
    let res = execute(&graph, &arch, &feeds, 0, 0).expect("execute");
    let e = rel_error(&[res.values["err"].clone()], &[g]);
    assert!(e <= 1e-12, "{kind}: graph vs oracle relative error {e:e}");
}

#[test]
fn mse_loss() {
    let out = random(&[6, 1], 4);
    let t = Array1::from_shape_fn(6, |i| i as f64 * 0.3 - 0.5);
    let ym = t.clone().insert_axis(ndarray::Axis(1));
    check_loss(&Mse, out, Targets::Values(t), Some(ym));
}

#[test]
fn softmax_cross_entropy_loss() {
    let out = random(&[6, 3], 5);
    let c: Array1<usize> = (0..6).map(|i| i % 3).collect();
    let ym = Array2::from_shape_fn((6, 3), |(i, j)| f64::from(u8::from(c[i] == j)));
    check_loss(
        &SoftmaxCrossEntropy { classes: 3 },
        out,
        Targets::Classes(c),
        Some(ym),
    );
}

/// A correlated target `N(m, P^-1)` in 4 coordinates.
fn target() -> (Array1<f64>, Array2<f64>) {
    let mean = Array1::from(vec![1.0, -2.0, 0.5, 3.0]);
    let precision = ndarray::arr2(&[
        [2.0, 0.3, 0.0, 0.1],
        [0.3, 1.0, 0.2, 0.0],
        [0.0, 0.2, 1.5, 0.4],
        [0.1, 0.0, 0.4, 3.0],
    ]);
    (mean, precision)
}

#[test]
fn gaussian_potential_oracle() {
    let (mean, precision) = target();
    let g = GaussianPotential { mean, precision };
    check_loss(
        &g,
        random(&[1, 4], 6),
        Targets::Values(Array1::zeros(0)),
        None,
    );
}

/// Every model kind: the oracle's objective gradient against finite differences, the graph's
/// gradients against the oracle.
fn check_model(model: &Model, classes: Option<usize>) {
    let rows = 9;
    let x = random(&[rows, model.inputs()], 7)
        .into_dimensionality::<ndarray::Ix2>()
        .expect("matrix");
    let (targets, ym) = match classes {
        Some(k) => {
            let c: Array1<usize> = (0..rows).map(|i| i % k).collect();
            let ym = Array2::from_shape_fn((rows, k), |(i, j)| f64::from(u8::from(c[i] == j)));
            (Targets::Classes(c), ym)
        }
        None => {
            // Values that leave a residual at every example.
            let t: Array1<f64> = x.column(0).mapv(|v| 2.0 * v - 0.5);
            let ym = t.clone().insert_axis(ndarray::Axis(1));
            (Targets::Values(t), ym)
        }
    };
    let params: Vec<ArrayD<f64>> = model
        .param_shapes()
        .iter()
        .enumerate()
        .map(|(i, s)| random(s, 20 + i as u64))
        .collect();
    let data = Some((x.view(), &targets));
    let (_, oracle) = model.loss_and_grad(&params, data);
    let fd = finite_differences(&params, &|p| model.loss(p, data));
    assert_close_to_differences(model.kind().name(), &oracle, &fd);

    // The graph's gradients are of the mean loss; the L2 term is the algorithms' weight decay.
    let arch = fp64_arch();
    let f = alias(FP64).expect("alias");
    let rn = Rounding::NearestEven;
    let mut b = Builder::on(Datapath::LowPrecision, &arch);
    let xn = b
        .feed(Op::Input, "x", &[rows, model.inputs()], f, rn, Role::Data)
        .expect("x");
    let yn = b
        .feed(Op::Input, "y", ym.shape(), f, rn, Role::Data)
        .expect("y");
    let specs = model.params();
    let pn = feed_params(&mut b, &specs);
    let (_, grads) = model
        .gradients(&mut b, Some(xn), Some(yn), &pn)
        .expect("gradients");
    let names: Vec<String> = grads.iter().map(|&g| b.b.meta(g).name.clone()).collect();
    for (n, s) in names.iter().zip(&specs) {
        assert_eq!(n, &s.grad);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let g = b.b.build(&refs).expect("graph");
    let mut feeds: BTreeMap<String, ArrayD<f64>> = BTreeMap::new();
    feeds.insert("x".into(), x.clone().into_dyn());
    feeds.insert("y".into(), ym.into_dyn());
    for (i, p) in params.iter().enumerate() {
        feeds.insert(format!("w{i}"), p.clone());
    }
    let res = execute(&g, &arch, &feeds, 0, 0).expect("execute");
    let graph: Vec<ArrayD<f64>> = names.iter().map(|n| res.values[n].clone()).collect();
    let (_, no_l2) = Model::loss_and_grad(&without_l2(model), &params, data);
    let e = rel_error(&graph, &no_l2);
    assert!(
        e <= 1e-12,
        "{}: graph vs oracle relative error {e:e}",
        model.kind().name()
    );
}

/// The same model with `l2 = 0` (the graph's part of the gradient).
fn without_l2(model: &Model) -> Model {
    Model {
        l2: 0.0,
        ..model.clone()
    }
}

#[test]
fn linear_regression() {
    check_model(&Model::linear(5, 0.0).expect("model"), None);
    check_model(&Model::linear(5, 0.3).expect("model"), None);
}

#[test]
fn softmax_regression() {
    check_model(&Model::logistic(5, 3, 0.2).expect("model"), Some(3));
}

#[test]
fn relu_mlp_with_biases() {
    for hidden in [vec![4], vec![6, 4]] {
        check_model(&Model::mlp(5, &hidden, 3, 0.0).expect("model"), Some(3));
    }
    check_model(&Model::mlp(5, &[4], 3, 0.1).expect("model"), Some(3));
}

#[test]
fn gaussian_potential_graph() {
    // N(m, Sigma) with a full precision matrix: the graph's gradient is `P (theta - m)` plus
    // `0.1 xi`; over 4000 coordinates' worth of draws the noise has mean 0 (3 standard errors:
    // 0.1 * 3 / sqrt(4000) = 0.0047) and standard deviation 0.1 (within 5%).
    let (mean, precision) = target();
    let model = Model::gaussian(mean, precision).expect("model");
    let arch = fp64_arch();
    let mut b = Builder::on(Datapath::LowPrecision, &arch);
    let f = alias(FP64).expect("alias");
    let w = b
        .feed(
            Op::Param,
            "w0",
            &[1, 4],
            f,
            Rounding::NearestEven,
            Role::Weights,
        )
        .expect("feed");
    let (_, grads) = model.gradients(&mut b, None, None, &[w]).expect("gradient");
    let name = b.b.meta(grads[0]).name.clone();
    assert_eq!(name, model.params()[0].grad);
    let g = b.b.build(&[name.as_str()]).expect("graph");
    let theta = Array2::from_shape_vec((1, 4), vec![0.3, -1.0, 2.0, 2.5])
        .expect("shape")
        .into_dyn();
    let (_, exact) = model.loss_and_grad(std::slice::from_ref(&theta), None);
    let mut noise = Vec::new();
    for step in 0..1000 {
        let mut feeds: BTreeMap<String, ArrayD<f64>> = model
            .feeds()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        feeds.insert("w0".to_string(), theta.clone());
        let mut res = execute(&g, &arch, &feeds, 11, step).expect("execute");
        let grad = res.values.remove(&name).expect("gradient");
        noise.extend(grad.iter().zip(&exact[0]).map(|(a, b)| a - b));
    }
    let n = noise.len() as f64;
    let m = noise.iter().sum::<f64>() / n;
    let sd = (noise.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
    assert!(m.abs() < 0.0047, "noise mean {m}");
    assert!((sd - 0.1).abs() < 0.005, "noise sd {sd}");
}

/// A residual MLP: `x -> dense0 -> relu -> dense1 -> (+ relu's output) -> relu -> dense2`; the
/// ReLU's output is read twice, so its error is the sum of two (`errsum` on the graph).
pub(crate) fn residual_mlp() -> Model {
    residual(3, std::sync::Arc::new(SoftmaxCrossEntropy { classes: 3 }))
}

/// [`residual_mlp`] as a regressor: one output, least squares.
pub(crate) fn residual_regressor() -> Model {
    residual(1, std::sync::Arc::new(super::mse::Mse))
}

/// `x -> dense0 -> relu -> (+ dense0's output) -> dense1`: the ReLU's input is read twice (by
/// the ReLU and by the residual join), so its error is not the ReLU's alone.
pub(crate) fn shared_gate_input() -> Model {
    let layers: Vec<std::sync::Arc<dyn Layer>> = vec![
        dense(0, 5, 6, true, true),
        std::sync::Arc::new(Relu::after_dense(0)),
        std::sync::Arc::new(ResidualAdd { index: 0 }),
        dense(1, 6, 3, true, true),
    ];
    let mut sources = chain(layers.len());
    sources[2] = vec![Source::Layer(1), Source::Layer(0)];
    Model {
        kind: ModelKind::Mlp,
        inputs: 5,
        input_shape: vec![5],
        bias_feature: false,
        layers,
        sources,
        loss: std::sync::Arc::new(SoftmaxCrossEntropy { classes: 3 }),
        l2: 0.0,
    }
    .check()
    .expect("a valid graph of layers")
}

/// [`residual_mlp`]'s layers with `outputs` outputs and `loss`.
fn residual(outputs: usize, loss: std::sync::Arc<dyn Loss>) -> Model {
    let layers: Vec<std::sync::Arc<dyn Layer>> = vec![
        dense(0, 5, 6, true, true),
        std::sync::Arc::new(Relu::after_dense(0)),
        dense(1, 6, 6, true, true),
        std::sync::Arc::new(ResidualAdd { index: 0 }),
        std::sync::Arc::new(Relu::after_dense(1)),
        dense(2, 6, outputs, true, true),
    ];
    let mut sources = chain(layers.len());
    sources[3] = vec![Source::Layer(2), Source::Layer(1)];
    Model {
        kind: ModelKind::Mlp,
        inputs: 5,
        input_shape: vec![5],
        bias_feature: false,
        layers,
        sources,
        loss,
        l2: 0.0,
    }
    .check()
    .expect("a valid graph of layers")
}

#[test]
fn residual_mlp_sums_the_errors_of_a_shared_value() {
    check_model(&residual_mlp(), Some(3));
}

#[test]
fn a_graph_of_layers_is_checked() {
    let mut m = residual_mlp();
    m.sources[3] = vec![Source::Layer(4), Source::Layer(1)];
    let e = m.clone().check().unwrap_err().to_string();
    assert!(e.contains("reads only earlier layers"), "{e}");
    m.sources[3] = vec![Source::Layer(2)];
    let e = m.clone().check().unwrap_err().to_string();
    assert!(e.contains("takes 2 inputs, given 1"), "{e}");
    m.sources[3] = vec![Source::Layer(2), Source::Input];
    let e = m.check().unwrap_err().to_string();
    assert!(e.contains("the shortcut [5]"), "{e}");
}

/// A layer list from JSON (the workload's `model.layers`).
fn layers(json: &str) -> Vec<crate::workload::LayerSpec> {
    serde_json::from_str(json).expect("layer specs")
}

#[test]
fn lenet_style_cnn() {
    let l = layers(
        r#"[{"type": "conv", "filters": 3, "kernel": 3, "padding": 1}, {"type": "relu"},
            {"type": "maxpool", "kernel": 2}, {"type": "conv", "filters": 4, "kernel": 2},
            {"type": "relu"}, {"type": "avgpool", "kernel": 2, "stride": 1},
            {"type": "flatten"}, {"type": "linear", "out": 5}, {"type": "relu"}]"#,
    );
    let model = Model::cnn([2, 6, 6], &l, 3, 1e-3).expect("a cnn");
    assert_eq!(model.kind(), ModelKind::Cnn);
    check_model(&model, Some(3));
}

#[test]
fn resnet_blocks_with_batchnorm() {
    // An identity block, a block with a 1x1 projection (stride 2, more channels), global
    // average pooling: the block's input is read twice (the branch and the shortcut).
    let l = layers(
        r#"[{"type": "conv", "filters": 2, "kernel": 3, "padding": 1, "bias": false},
            {"type": "batchnorm"}, {"type": "relu"},
            {"type": "basic_block", "filters": 2},
            {"type": "basic_block", "filters": 3, "stride": 2},
            {"type": "global_avgpool"}, {"type": "flatten"}]"#,
    );
    let model = Model::cnn([1, 5, 5], &l, 3, 0.0).expect("a resnet");
    check_model(&model, Some(3));
}
