//! Convolutional networks: the convolution, pooling and batch normalization forward passes
//! (the `f64` oracle the step graphs are checked against, to 1e-12, in `model::gradcheck`)
//! against direct loops written from the definitions (PyTorch's `Conv2d`, `MaxPool2d`,
//! `AvgPool2d` with `count_include_pad=True`, `BatchNorm2d` in training mode), on random
//! shapes, strides and padding; layer lists that do not fit refused; evaluation with batch
//! normalization on the training set's statistics.

use lpsim::graph::image::{Planes, Window};
use lpsim::model::batchnorm::BatchNorm;
use lpsim::model::conv2d::Conv2d;
use lpsim::model::pool::{Pool2d, PoolKind};
use lpsim::model::{Layer, Model};
use lpsim::workload::LayerSpec;
use ndarray::{Array2, ArrayD, IxDyn};
use proptest::prelude::*;

/// Deterministic pseudo-random values in [-1, 1) from a seed.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn out_size(n: usize, k: usize, stride: usize, pad: usize) -> usize {
    (n + 2 * pad - k) / stride + 1
}

/// Reads `x[b, c, y, x]` with zero padding (`y`, `x` in padded coordinates).
fn at(x: &[f64], p: &Planes, b: usize, c: usize, y: isize, xx: isize) -> Option<f64> {
    let (h, w) = (p.height as isize, p.width as isize);
    (y >= 0 && y < h && xx >= 0 && xx < w)
        .then(|| x[((b * p.channels + c) * p.height + y as usize) * p.width + xx as usize])
}

/// A layer list from JSON (the workload's `model.layers`).
fn layers(json: &str) -> Vec<LayerSpec> {
    serde_json::from_str(json).expect("layer specs")
}

/// A matrix of `rows x cols` values from a seed.
fn matrix(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    Array2::from_shape_vec((rows, cols), values(rows * cols, seed)).unwrap()
}

#[test]
fn cnn_specs_that_do_not_fit_are_refused() {
    let e = |json: &str, input: [usize; 3]| {
        Model::cnn(input, &layers(json), 3, 0.0)
            .expect_err("refused")
            .to_string()
    };
    let s = e(
        r#"[{"type": "conv", "filters": 2, "kernel": 3}]"#,
        [1, 4, 4],
    );
    assert!(s.contains("end them with"), "{s}");
    let s = e(
        r#"[{"type": "conv", "filters": 2, "kernel": 5}, {"type": "flatten"}]"#,
        [1, 4, 4],
    );
    assert!(s.contains("layers[0]") && s.contains("does not fit"), "{s}");
    let s = e(r#"[{"type": "linear", "out": 4}]"#, [1, 4, 4]);
    assert!(s.contains("add {\"type\": \"flatten\"}"), "{s}");
    let s = e(
        r#"[{"type": "flatten"}, {"type": "maxpool", "kernel": 2}]"#,
        [1, 4, 4],
    );
    assert!(s.contains("layers[1]") && s.contains("needs images"), "{s}");
}

#[test]
fn evaluation_uses_the_training_sets_batch_statistics() {
    let l = layers(
        r#"[{"type": "conv", "filters": 2, "kernel": 3, "padding": 1}, {"type": "batchnorm"},
            {"type": "relu"}, {"type": "flatten"}]"#,
    );
    let model = Model::cnn([1, 3, 3], &l, 3, 0.0).expect("a cnn");
    let params: Vec<ArrayD<f64>> = model
        .param_shapes()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n = s.iter().product();
            ArrayD::from_shape_vec(IxDyn(s), values(n, 30 + i as u64)).unwrap()
        })
        .collect();
    let x_train = matrix(12, 9, 31);
    let x_test = matrix(4, 9, 32);
    let eval = model.for_evaluation(&params, x_train.view());
    // On the training set, evaluation equals training's forward pass (the same statistics).
    let a = eval.predict(&params, x_train.view());
    let b = model.predict(&params, x_train.view());
    assert!((&a - &b).iter().all(|d| d.abs() < 1e-12), "{a} vs {b}");
    // Evaluation does not depend on the batch: one example at a time gives the same.
    let whole = eval.predict(&params, x_test.view());
    for i in 0..4 {
        let one = eval.predict(&params, x_test.slice(ndarray::s![i..i + 1, ..]));
        let d = (&one.row(0) - &whole.row(i)).mapv(f64::abs).sum();
        assert!(d < 1e-12, "example {i}: {d}");
    }
    // Training-mode prediction of one example would normalize it to the shift alone.
    let single = model.predict(&params, x_test.slice(ndarray::s![0..1, ..]));
    assert!((&single.row(0) - &whole.row(0)).mapv(f64::abs).sum() > 1e-3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv2d_equals_the_direct_loops(
        batch in 1usize..3, channels in 1usize..4, filters in 1usize..4,
        height in 1usize..8, width in 1usize..8, k in 1usize..4, stride in 1usize..4,
        pad in 0usize..3, bias: bool, seed: u64,
    ) {
        prop_assume!(pad < k && height + 2 * pad >= k && width + 2 * pad >= k);
        let p = Planes { channels, height, width };
        let window = Window { kh: k, kw: k, stride, pad };
        let layer = Conv2d { index: 0, input: p, filters, window, bias };
        let x = values(batch * p.len(), seed);
        let kk = channels * k * k;
        let w = values(kk * filters, seed ^ 1);
        let bvals = values(filters, seed ^ 2);
        let xa = ArrayD::from_shape_vec(IxDyn(&[batch, p.len()]), x.clone()).unwrap();
        let wa = ArrayD::from_shape_vec(IxDyn(&[kk, filters]), w.clone()).unwrap();
        let ba = ArrayD::from_shape_vec(IxDyn(&[1, filters]), bvals.clone()).unwrap();
        let params: Vec<&ArrayD<f64>> = if bias { vec![&wa, &ba] } else { vec![&wa] };
        let y = layer.forward(&params, &[xa.view()]);
        let (oh, ow) = (out_size(height, k, stride, pad), out_size(width, k, stride, pad));
        prop_assert_eq!(y.shape(), &[batch, filters * oh * ow]);
        let y = y.as_slice().unwrap();
        for b in 0..batch {
            for f in 0..filters {
                for oy in 0..oh {
                    for ox in 0..ow {
                        // weight[f, c, ky, kx] is W[(c k + ky) k + kx, f].
                        let mut sum = if bias { bvals[f] } else { 0.0 };
                        for c in 0..channels {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let yy = (oy * stride + ky) as isize - pad as isize;
                                    let xx = (ox * stride + kx) as isize - pad as isize;
                                    if let Some(v) = at(&x, &p, b, c, yy, xx) {
                                        sum += v * w[((c * k + ky) * k + kx) * filters + f];
                                    }
                                }
                            }
                        }
                        let got = y[((b * filters + f) * oh + oy) * ow + ox];
                        prop_assert!((got - sum).abs() <= 1e-12 * (1.0 + sum.abs()),
                            "y[{b},{f},{oy},{ox}] = {got}, direct {sum}");
                    }
                }
            }
        }
    }

    #[test]
    fn pools_equal_the_direct_loops(
        batch in 1usize..3, channels in 1usize..3, height in 1usize..8, width in 1usize..8,
        k in 1usize..4, stride in 1usize..4, pad in 0usize..2, seed: u64,
    ) {
        prop_assume!(2 * pad <= k && height + 2 * pad >= k && width + 2 * pad >= k);
        let p = Planes { channels, height, width };
        let window = Window { kh: k, kw: k, stride, pad };
        let x = values(batch * p.len(), seed);
        let xa = ArrayD::from_shape_vec(IxDyn(&[batch, p.len()]), x.clone()).unwrap();
        let (oh, ow) = (out_size(height, k, stride, pad), out_size(width, k, stride, pad));
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let layer = Pool2d { kind, index: 0, input: p, window };
            let y = layer.forward(&[], &[xa.view()]);
            let y = y.as_slice().unwrap();
            for b in 0..batch {
                for c in 0..channels {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut seen = Vec::new();
                            for ky in 0..k {
                                for kx in 0..k {
                                    let yy = (oy * stride + ky) as isize - pad as isize;
                                    let xx = (ox * stride + kx) as isize - pad as isize;
                                    seen.push(at(&x, &p, b, c, yy, xx));
                                }
                            }
                            let want = match kind {
                                PoolKind::Max => seen.iter().flatten().copied()
                                    .fold(f64::NEG_INFINITY, f64::max),
                                PoolKind::Avg => seen.iter().map(|v| v.unwrap_or(0.0))
                                    .sum::<f64>() / (k * k) as f64,
                            };
                            let got = y[((b * channels + c) * oh + oy) * ow + ox];
                            prop_assert!((got - want).abs() <= 1e-12,
                                "{kind:?} y[{b},{c},{oy},{ox}] = {got}, direct {want}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn batchnorm_equals_the_definition(
        batch in 1usize..4, channels in 1usize..4, positions in 1usize..6, seed: u64,
    ) {
        let layer = BatchNorm { index: 0, channels, positions, frozen: None };
        let n = batch * channels * positions;
        let x = values(n, seed);
        let g = values(channels, seed ^ 1);
        let bb = values(channels, seed ^ 2);
        let xa = ArrayD::from_shape_vec(IxDyn(&[batch, channels * positions]), x.clone()).unwrap();
        let ga = ArrayD::from_shape_vec(IxDyn(&[1, channels]), g.clone()).unwrap();
        let ba = ArrayD::from_shape_vec(IxDyn(&[1, channels]), bb.clone()).unwrap();
        let y = layer.forward(&[&ga, &ba], &[xa.view()]);
        let y = y.as_slice().unwrap();
        for c in 0..channels {
            let idx: Vec<usize> = (0..batch)
                .flat_map(|b| (0..positions).map(move |q| (b * channels + c) * positions + q))
                .collect();
            let m = idx.len() as f64;
            let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / m;
            let var = idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / m;
            for &i in &idx {
                let want = g[c] * (x[i] - mean) / (var + 1e-5).sqrt() + bb[c];
                prop_assert!((y[i] - want).abs() <= 1e-12 * (1.0 + want.abs()),
                    "channel {c}: {} vs {want}", y[i]);
            }
        }
    }
}
