//! Issue 5: the variance-corrected quantizer, the Gaussian toy of docs/algorithms.md, HALP on the
//! HALP paper's Figure 1 settings, QSGLD's quantization error, determinism.

mod common;

use lpsim::algo::{step_graph, train, Algo, Hyper, Targets, TrainData};
use lpsim::arch::Architecture;
use lpsim::arith::vc::{vc_quantize, VcStreams};
use lpsim::format::Format;
use lpsim::graph::execute;
use lpsim::model::Model;
use lpsim::round::RandomStream;
use ndarray::{Array1, Array2, ArrayD};

/// `arch/fp32.json` with fields of `formats` replaced (`"rounding.weights"` names a nested one).
fn arch_with(edits: &[(&str, &str)]) -> Architecture {
    let text = std::fs::read_to_string("arch/fp32.json").expect("arch/fp32.json");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
    for (path, value) in edits {
        let mut node = &mut v["formats"];
        for key in path.split('.') {
            node = &mut node[key];
        }
        *node = serde_json::Value::String(value.to_string());
    }
    Architecture::from_json_str("test", &v.to_string()).expect("valid arch")
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (
        m,
        x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0),
    )
}

/// Mean and variance of `n` VC draws of `mu` with variance `v` on `format` (one row of `row`).
fn vc_stats(format: &str, mu: &[f64], v: f64, reps: usize) -> Vec<(f64, f64)> {
    let f: Format = format.parse().expect("format");
    let mut outs = vec![Vec::new(); mu.len()];
    for r in 0..reps {
        let mut out = vec![0.0; mu.len()];
        vc_quantize(
            &f,
            mu,
            &mut out,
            v,
            mu.len(),
            &VcStreams::new(7, 100 * r as u64),
        );
        for (o, x) in outs.iter_mut().zip(out) {
            o.push(x);
        }
    }
    outs.iter().map(|o| mean_var(o)).collect()
}

#[test]
fn vc_fixed_case_a_and_b_hit_mean_and_variance() {
    let d: f64 = 1.0 / 8.0;
    let n = 40_000;
    // Case A: v = 4e-3 > d^2/4 = 3.90625e-3 (the toy's setting). Case B: v = 3.85e-3 <= d^2/4
    // but above the rounding variance f(1-f) d^2 = 0.21 d^2 = 3.28e-3 of mu = 0.3 + d/5 (f = 0.3).
    for (v, mu) in [(4e-3, 0.3), (4e-3, -1.0 / 16.0), (3.85e-3, 0.3 + d / 5.0)] {
        let all: Vec<f64> = {
            let f: Format = "fixed:wl=8,fl=3".parse().expect("format");
            let mut out = vec![0.0; n];
            vc_quantize(&f, &vec![mu; n], &mut out, v, n, &VcStreams::new(3, 9));
            out
        };
        let (m, var) = mean_var(&all);
        // Standard errors: sqrt(v/n) for the mean, about v sqrt(2/n) (times ~1.2 for the
        // discrete distribution) for the variance; 4 sigma.
        assert!(
            (m - mu).abs() < 4.0 * (v / n as f64).sqrt(),
            "v={v} mu={mu}: mean {m}"
        );
        assert!(
            (var - v).abs() < 5.0 * v * (2.0 / n as f64).sqrt(),
            "v={v} mu={mu}: var {var}"
        );
    }
}

#[test]
fn vc_case_b_adds_nothing_when_rounding_variance_exceeds_v() {
    let f: Format = "fixed:wl=8,fl=3".parse().expect("format");
    let d = 0.125;
    let mu = 0.3; // frac = 0.4: rounding variance 0.24 d^2 = 3.75e-3
    let n = 20_000;
    let v = 1e-3;
    let mut out = vec![0.0; n];
    vc_quantize(&f, &vec![mu; n], &mut out, v, n, &VcStreams::new(1, 2));
    // Only the two neighbours: plain stochastic rounding, nothing added.
    assert!(
        out.iter().all(|&x| x == 0.25 || x == 0.375),
        "only neighbours"
    );
    let (m, var) = mean_var(&out);
    assert!((m - mu).abs() < 4.0 * (0.24 * d * d / n as f64).sqrt());
    assert!(
        (var - 0.24 * d * d).abs() < 0.06 * 0.24 * d * d,
        "var {var}"
    );
    assert!(var > 3.0 * v);
}

#[test]
fn vc_block_fp_case_a_and_b_hit_mean_and_variance() {
    // bfp wl=8 with one block per row of 32: an anchor of 1.5 fixes E = 0, so Delta = 2^-6.
    let d = 1.0 / 64.0;
    let mut mu = vec![0.3 + d / 3.0; 32];
    mu[0] = 1.5;
    let reps = 4000;
    for v in [2.0 * d * d, 0.2 * d * d] {
        let stats = vc_stats("bfp:wl=8,size=row", &mu, v, reps);
        // Pool elements 1..32 (same mu): 31 * reps draws.
        let n = (31 * reps) as f64;
        let m = stats[1..].iter().map(|s| s.0).sum::<f64>() / 31.0;
        let var = stats[1..].iter().map(|s| s.1).sum::<f64>() / 31.0;
        let target = if v > d * d / 4.0 {
            v
        } else {
            // Case B with v below the rounding variance f (1 - f) d^2: plain SR.
            let f = (mu[1] / d).fract();
            f * (1.0 - f) * d * d
        };
        assert!(
            (m - mu[1]).abs() < 4.0 * (target / n).sqrt(),
            "v={v}: mean {m}"
        );
        assert!(
            (var - target).abs() < 0.04 * target,
            "v={v}: var {var} vs {target}"
        );
    }
}

#[test]
fn vc_col_blocks_use_each_columns_grid() {
    // A [32, 2] matrix, bfp wl=8 per column: column 0's anchor 1.5 gives Delta 2^-6, column 1's
    // anchor 1.5 x 2^-6 gives Delta 2^-12. v below both Delta^2 / 4 and both rounding variances:
    // Case B, plain stochastic rounding on each column's own grid.
    let (d0, d1) = (2f64.powi(-6), 2f64.powi(-12));
    let (rows, cols) = (32, 2);
    let (m0, m1) = (0.3 + d0 / 3.0, (0.3 + d0 / 3.0) * d1 / d0);
    let mut mu = vec![0.0; rows * cols];
    for i in 0..rows {
        mu[i * cols] = if i == 0 { 1.5 } else { m0 };
        mu[i * cols + 1] = if i == 0 { 1.5 * d1 / d0 } else { m1 };
    }
    let f: Format = "bfp:wl=8,size=col".parse().expect("format");
    let v = 0.01 * d1 * d1;
    let mut draws = [Vec::new(), Vec::new()];
    for r in 0..2000u64 {
        let mut out = vec![0.0; mu.len()];
        vc_quantize(&f, &mu, &mut out, v, cols, &VcStreams::new(3, 10 * r));
        for i in 1..rows {
            for (j, d) in [d0, d1].into_iter().enumerate() {
                let o = out[i * cols + j];
                assert_eq!(
                    (o / d).fract(),
                    0.0,
                    "column {j}: {o:e} is not on its grid {d:e}"
                );
                draws[j].push(o);
            }
        }
    }
    for (j, (d, m)) in [(d0, m0), (d1, m1)].into_iter().enumerate() {
        let (mean, var) = mean_var(&draws[j]);
        let fr = (m / d).fract();
        let target = fr * (1.0 - fr) * d * d;
        let n = draws[j].len() as f64;
        assert!(
            (mean - m).abs() < 4.0 * (target / n).sqrt(),
            "column {j}: mean {mean}"
        );
        assert!(
            (var - target).abs() < 0.05 * target,
            "column {j}: var {var} vs {target}"
        );
    }
}

/// Gaussian toy on 8-bit fixed point (weights and gradients wl=8, fl=3, stochastic rounding):
/// returns (mean, var, standard error of var) over independent coordinates.
fn toy(algo: Algo, lr: f64) -> (f64, f64, f64) {
    let arch = arch_with(&[
        ("weights", "fixed:wl=8,fl=3"),
        ("gradients", "fixed:wl=8,fl=3"),
        ("rounding.weights", "sr"),
        ("rounding.gradients", "sr"),
    ]);
    toy_on(&arch, algo, lr, 24)
}

/// The Gaussian toy on `arch`: 256 independent coordinates, `epochs` x 1000 steps at `lr`, the
/// chain kept after 10% burn-in, every 10th step.
fn toy_on(arch: &Architecture, algo: Algo, lr: f64, epochs: usize) -> (f64, f64, f64) {
    let mut h = Hyper::new(algo);
    for (k, v) in [
        ("lr", lr),
        ("temperature", 1.0),
        ("decay", 0.0),
        ("epochs", epochs as f64),
        ("epoch_len", 1000.0),
        ("burn_in", 2400.0),
        ("thin", 10.0),
    ] {
        h.set(k, v).expect("hyper");
    }
    let dim = 256;
    let out = train(
        algo,
        &Model::standard_gaussian(dim).expect("model"),
        None,
        arch,
        &h,
        11,
        &mut |_| {},
    )
    .expect("train");
    let chain = out.chain.expect("chain");
    // Each coordinate is an independent chain. A chain's own sample variance is biased low by
    // about tau_int / length (tau_int ~ 2 / lr steps), so second moments are taken about the
    // grand mean, and standard errors from the spread across the independent chains.
    let means: Vec<f64> = (0..dim)
        .map(|j| chain.column(j).mean().expect("rows"))
        .collect();
    let (m, _) = mean_var(&means);
    let vars: Vec<f64> = (0..dim)
        .map(|j| {
            chain
                .column(j)
                .mapv(|x| (x - m).powi(2))
                .mean()
                .expect("rows")
        })
        .collect();
    let (v, vv) = mean_var(&vars);
    (m, v, (vv / dim as f64).sqrt())
}

#[test]
fn gaussian_toy_sgld_f_vc_recover_n01_naive_is_too_wide() {
    for algo in [Algo::Sgld, Algo::LpSgldF, Algo::LpSgldVc] {
        let (m, v, se) = toy(algo, 2e-3);
        assert!(m.abs() < 0.05, "{algo}: mean {m}");
        assert!(
            (v - 1.0).abs() < 4.0 * se + 0.02,
            "{algo}: var {v} (se {se})"
        );
    }
    let (_, wide, se) = toy(Algo::LpSgldNaive, 2e-3);
    assert!(wide > 1.3 && wide - 1.0 > 10.0 * se, "naive var {wide}");
    let (_, wider, _) = toy(Algo::LpSgldNaive, 5e-4);
    assert!(wider > wide + 0.5, "naive at lr 5e-4: {wider} vs {wide}");
    // At lr = 5e-4, v = 1e-3 < d^2/4: VC takes Case B and still recovers the variance.
    let (m, v, se) = toy(Algo::LpSgldVc, 5e-4);
    assert!(
        m.abs() < 0.1 && (v - 1.0).abs() < 4.0 * se + 0.02,
        "vc case B: {m}, {v}"
    );
}

#[test]
fn gaussian_toy_on_float_weights_vc_recovers_n01() {
    // Float weights, fp32 gradients (as the toy workload pins them), stochastic rounding for
    // the naive sampler's Q_W; 12 000 steps. e4m3fn at lr = 2e-3: v = 4e-3 is about the
    // rounding variance d^2/4 = 3.9e-3 of [1, 2) (d = 1/8); measured: VC 1.00, naive 1.43.
    let e4m3 = arch_with(&[("weights", "e4m3fn"), ("rounding.weights", "sr")]);
    let (m, v, se) = toy_on(&e4m3, Algo::LpSgldVc, 2e-3, 12);
    assert!(m.abs() < 0.05, "e4m3fn: mean {m}");
    assert!((v - 1.0).abs() < 0.05, "e4m3fn: var {v} (se {se})");
    let (_, wide, se) = toy_on(&e4m3, Algo::LpSgldNaive, 2e-3, 12);
    assert!(
        wide > 1.25 && wide - 1.0 > 5.0 * se,
        "e4m3fn naive var {wide} (se {se})"
    );
    // bf16 (d = 2^-7 in [1, 2)): its rounding variance matters only at lr ~ d^2 = 6e-5, where
    // a chain relaxes over ~1/lr = 1.6e4 steps: too slow to show naive SGLD too wide in a test
    // (measured at lr = 2e-3: naive 0.999, VC 0.997). This checks VC on bf16 end to end.
    let bf16 = arch_with(&[("weights", "bf16"), ("rounding.weights", "sr")]);
    let (m, v, se) = toy_on(&bf16, Algo::LpSgldVc, 2e-3, 12);
    assert!(m.abs() < 0.05, "bf16: mean {m}");
    assert!((v - 1.0).abs() < 0.05, "bf16: var {v} (se {se})");
}

/// make_regression-like data (100 features, 10 informative with coefficients 100 U(0,1),
/// 1000 examples, no noise) from the counter-based stream.
fn regression() -> TrainData {
    let (n, d) = (1000, 100);
    let s = RandomStream::new(5, 1);
    let x = Array2::from_shape_fn((n, d), |(i, j)| s.normal_f64((i * d + j) as u64));
    let c = RandomStream::new(5, 2);
    let w = Array1::from_shape_fn(d, |j| {
        if j < 10 {
            100.0 * c.uniform_f64(j as u64)
        } else {
            0.0
        }
    });
    let y = x.dot(&w);
    TrainData {
        x_train: x.clone(),
        y_train: Targets::Values(y.clone()),
        x_test: x,
        y_test: Targets::Values(y),
        augment: None,
    }
}

fn final_loss(algo: Algo, arch: &Architecture, set: &[(&str, f64)], data: &TrainData) -> f64 {
    let mut h = Hyper::new(algo);
    for (k, v) in set {
        h.set(k, *v).expect("hyper");
    }
    let mut last = f64::NAN;
    train(
        algo,
        &Model::linear(100, 0.0).expect("model"),
        Some(data),
        arch,
        &h,
        3,
        &mut |e| last = e.train_loss,
    )
    .expect("train");
    last
}

#[test]
fn halp_goes_orders_of_magnitude_below_the_low_precision_floor() {
    let data = regression();
    let int8 = common::int8_tensor();
    let fp32 = Architecture::load(std::path::Path::new("arch/fp32.json")).expect("arch");
    let lp_sgd = final_loss(
        Algo::LpSgd,
        &int8,
        &[
            ("lr", 2.5e-6),
            ("delta", 0.7),
            ("decay", 0.0),
            ("epoch_len", 2000.0),
            ("epochs", 2.0),
        ],
        &data,
    );
    // The SVRG family at halp-linreg's step size: 8-bit HALP with the problem's mu (0.47 here,
    // not the paper's 3) is unstable at the default 5e-3.
    let svrg_set = [("lr", 1e-3), ("epochs", 16.0)];
    let lp_svrg = final_loss(
        Algo::LpSvrg,
        &int8,
        &[svrg_set[0], svrg_set[1], ("delta", 0.7)],
        &data,
    );
    let halp = final_loss(Algo::Halp, &int8, &svrg_set, &data);
    let svrg = final_loss(Algo::Svrg, &fp32, &svrg_set, &data);
    eprintln!("lp-sgd {lp_sgd} lp-svrg {lp_svrg} halp {halp} svrg {svrg}");
    assert!(
        lp_svrg > 0.1 && lp_sgd > 0.1,
        "floors: lp-svrg {lp_svrg}, lp-sgd {lp_sgd}"
    );
    assert!(halp < 1e-3 * lp_svrg, "halp {halp} vs lp-svrg {lp_svrg}");
    assert!(svrg < 1e-3 * lp_svrg, "svrg {svrg}");
}

#[test]
fn qsgld_error_variance_is_one_over_12_q_squared() {
    let n = 100_000;
    let s = RandomStream::new(9, 9);
    let h: Vec<f64> = (0..n).map(|i| 0.01 * s.normal_f64(i as u64)).collect();
    for (q, nearest) in [(1e4, false), (1e4, true), (3e3, false)] {
        let mut out = vec![0.0; n];
        lpsim::arith::quantize_step(&h, &mut out, q, 0.0, nearest);
        let err: Vec<f64> = out.iter().zip(&h).map(|(a, b)| a - b).collect();
        let (m, v) = mean_var(&err);
        let target = 1.0 / (12.0 * q * q);
        assert!(
            (v / target - 1.0).abs() < 0.03,
            "q={q}: var {v} vs {target}"
        );
        let bias = if nearest { 0.0 } else { -0.5 / q };
        assert!((m - bias).abs() < 0.02 / q, "q={q}: mean {m}");
    }
}

fn digits_like() -> TrainData {
    let (n, d, k) = (96, 8, 3);
    let s = RandomStream::new(2, 3);
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        s.normal_f64((i * d + j) as u64) + (i % k == j % k) as u8 as f64
    });
    let y: Vec<usize> = (0..n).map(|i| i % k).collect();
    TrainData {
        x_train: x.clone(),
        y_train: Targets::Classes(y.clone().into()),
        x_test: x,
        y_test: Targets::Classes(y.into()),
        augment: None,
    }
}

#[test]
fn same_seed_is_bit_identical_on_1_and_4_threads() {
    let data = digits_like();
    let arch = Architecture::load(std::path::Path::new("arch/bfp8.json")).expect("arch");
    let model = Model::mlp(8, &[16], 3, 0.0).expect("model");
    let run = |threads: usize, algo: Algo| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| {
            let mut h = Hyper::new(algo);
            h.set("epochs", 3.0).expect("epochs");
            h.set("batch", 32.0).expect("batch");
            h.set("lr", 0.05).expect("lr");
            train(algo, &model, Some(&data), &arch, &h, 42, &mut |_| {}).expect("train")
        })
    };
    for algo in [Algo::LpSgldVc, Algo::LpSgldNaive, Algo::Qsgld] {
        let (a, b) = (run(1, algo), run(4, algo));
        assert_eq!(a.params, b.params, "{algo}");
        assert_eq!(a.tally, b.tally, "{algo}");
        assert!(a.params[0].iter().all(|v| v.is_finite()));
    }
}

#[test]
fn sampler_keeps_samples_and_learns() {
    let data = digits_like();
    let arch = Architecture::load(std::path::Path::new("arch/fp32.json")).expect("arch");
    let model = Model::logistic(8, 3, 1e-3).expect("model");
    let mut h = Hyper::new(Algo::Sgld);
    h.set("epochs", 30.0).expect("epochs");
    h.set("batch", 16.0).expect("batch");
    h.set("samples", 5.0).expect("samples");
    let mut losses = Vec::new();
    let out = train(Algo::Sgld, &model, Some(&data), &arch, &h, 1, &mut |e| {
        losses.push(e.train_loss)
    })
    .expect("train");
    assert_eq!(out.samples.len(), 5);
    assert!(losses[29] < 0.5 * losses[0].max((3f64).ln()), "{losses:?}");
}

/// An MLP `8 -> 6 -> 5 -> 3` with random parameters (biases non-zero, values of fp32).
fn mlp_with_params(l2: f64) -> (Model, Vec<ArrayD<f64>>) {
    let model = Model::mlp(8, &[6, 5], 3, l2).expect("mlp");
    let s = RandomStream::new(9, 4);
    let mut k = 0u64;
    let params = model
        .param_shapes()
        .iter()
        .map(|shape| {
            ArrayD::from_shape_fn(shape.as_slice(), |_| {
                k += 1;
                // Values of fp32, so the fp32 step graph sees exactly these parameters.
                f64::from((0.5 * s.normal_f64(k)) as f32)
            })
        })
        .collect();
    (model, params)
}

#[test]
fn mlp_step_graph_gradients_match_the_reference_gradient_on_fp32() {
    let data = digits_like();
    let n = data.x_train.nrows();
    let x = data.x_train.mapv(|v| f64::from(v as f32));
    let labels = match &data.y_train {
        Targets::Classes(c) => c.clone(),
        Targets::Values(_) => unreachable!("digits_like has classes"),
    };
    let (model, params) = mlp_with_params(0.05);
    let arch = Architecture::load(std::path::Path::new("arch/fp32.json")).expect("arch");
    let mut h = Hyper::new(Algo::Sgd);
    h.set("batch", n as f64).expect("batch");
    let graph = step_graph(Algo::Sgd, &model, None, &arch, &h)
        .expect("graph")
        .graph;
    let mut feeds = std::collections::BTreeMap::new();
    feeds.insert("x_all".to_string(), x.clone().into_dyn());
    let onehot = Array2::from_shape_fn((n, 3), |(i, k)| f64::from(u8::from(labels[i] == k)));
    feeds.insert("y_all".to_string(), onehot.into_dyn());
    let idx = Array2::from_shape_fn((n, 1), |(i, _)| i as f64);
    feeds.insert("idx".to_string(), idx.into_dyn());
    for (l, p) in params.iter().enumerate() {
        feeds.insert(format!("w{l}"), p.clone());
    }
    // The step size is a per-step scalar of the graph, fed with the step's data.
    let neg_lr = ndarray::arr1(&[-h.get("lr")]).into_dyn();
    feeds.insert(lpsim::algo::sgld::NEG_LR.to_string(), neg_lr);
    let res = execute(&graph, &arch, &feeds, 0, 0).expect("step");
    // `d{l}` is the gradient of the mean loss plus l2 times the tensor: the oracle's gradient.
    let (_, g) = model.loss_and_grad(&params, Some((x.view(), &data.y_train)));
    for (l, p) in params.iter().enumerate() {
        let d = &res.values[&format!("d{l}")];
        assert_eq!(d.shape(), p.shape(), "tensor {l}");
        let want = &g[l];
        let scale = want.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
        assert!(scale > 1e-3, "tensor {l} has a non-trivial gradient");
        for (a, b) in d.iter().zip(want.iter()) {
            // fp32 roundings of activations, errors and gradients: a few ulps of the scale.
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "tensor {l}: {a} vs {b} (scale {scale})"
            );
        }
    }
    assert_eq!(params.len(), g.len());
}
