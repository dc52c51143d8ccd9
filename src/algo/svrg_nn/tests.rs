//! The SVRG family on layered models: the variance-reduced gradient against `f64`, the MLP
//! runs against the MLP-only drivers' fingerprints, shared fixtures for `halp_nn`'s tests.

use super::*;
use crate::graph::execute;
use crate::round::RandomStream;
use ndarray::{Array2, Axis};

pub(crate) const RN: Rounding = Rounding::NearestEven;

pub(crate) fn arch(name: &str) -> Architecture {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    Architecture::load(&root.join(format!("arch/{name}.json"))).expect("a shipped arch")
}

pub(crate) fn mlp(hidden: &[usize]) -> Model {
    Model::mlp(5, hidden, 3, 0.0).unwrap()
}

/// `n x 5` normal features (`fp32` values) and one-hot targets of classes `i % 3`.
pub(crate) fn data(n: usize) -> (Array2<f64>, Array2<f64>) {
    let s = RandomStream::new(7, 1);
    let x = Array2::from_shape_fn((n, 5), |(i, j)| {
        f64::from(s.normal_f64((i * 5 + j) as u64) as f32)
    });
    let y = Array2::from_shape_fn((n, 3), |(i, j)| f64::from(u8::from(i % 3 == j)));
    (x, y)
}

/// The gradient of the mean loss of `model` with parameters `p` on `x` with one-hot
/// targets `y`: the model's `f64` oracle (checked against finite differences in
/// `model::gradcheck`).
pub(crate) fn reference(
    model: &Model,
    p: &[ArrayD<f64>],
    x: &Array2<f64>,
    y: &Array2<f64>,
) -> Vec<ArrayD<f64>> {
    let classes = y
        .rows()
        .into_iter()
        .map(|r| r.iter().position(|&v| v == 1.0).unwrap())
        .collect();
    let t = crate::workload::Targets::Classes(classes);
    model.loss_and_grad(p, Some((x.view(), &t))).1
}

/// `init_params` of `model` in `format` with every bias set to multiples of `1/32` in
/// `[-1/8, 1/8]` (exact in every shipped weight format), so that tests exercise the bias
/// rather than its zero start.
pub(crate) fn params_with_biases(model: &Model, store: Store, seed: u64) -> Vec<ArrayD<f64>> {
    let s = RandomStream::new(seed, 77);
    let mut p = init_params(model, store.0, store.1, seed);
    for (l, t) in p.iter_mut().enumerate() {
        if model.params()[l].bias {
            // Biases are rows `[1, out]`: element `j` of the row.
            let mut j = 0;
            *t = ArrayD::from_shape_fn(t.raw_dim(), |_| {
                let u = s.uniform_f64((l * 100 + j) as u64);
                j += 1;
                ((u * 9.0).floor() - 4.0) / 32.0
            });
        }
    }
    assert!(p.iter().any(|t| t.iter().any(|&v| v != 0.0)));
    p
}

pub(crate) fn max_abs(a: &ArrayD<f64>) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn feeds(pairs: Vec<(String, ArrayD<f64>)>) -> BTreeMap<String, ArrayD<f64>> {
    pairs.into_iter().collect()
}

fn weights(w: &[ArrayD<f64>]) -> Vec<(String, ArrayD<f64>)> {
    (0..w.len())
        .map(|l| (format!("w{l}"), w[l].clone()))
        .collect()
}

/// The data's rows `idx` as feeds `x`, `y`.
fn batch(x: &Array2<f64>, y: &Array2<f64>, idx: &[usize]) -> Vec<(String, ArrayD<f64>)> {
    vec![
        ("x".into(), x.select(Axis(0), idx).into_dyn()),
        ("y".into(), y.select(Axis(0), idx).into_dyn()),
    ]
}

/// An MLP and a residual MLP (a value read twice), both on 5 features and 3 classes.
fn models() -> [Model; 2] {
    [mlp(&[4]), crate::model::gradcheck::residual_mlp()]
}

#[test]
fn the_variance_reduced_gradient_at_the_snapshot_is_the_full_gradient() {
    let (x, y) = data(12);
    let idx = [3, 7, 7, 0];
    let lr = 0.1;
    // bfp8 rounds every tensor stochastically: the two batch gradients still cancel.
    for (model, name) in models()
        .iter()
        .flat_map(|m| ["fp32", "bf16", "bfp8"].map(|n| (m, n)))
    {
        let arch = arch(name);
        let store = (arch.formats.weights, arch.formats.rounding.weights);
        let w = params_with_biases(model, store, 1);
        let n = w.len();
        let full = gradient_graph(model, (&arch, FULL), 12, (fp32(), RN)).unwrap();
        let mut f = batch(&x, &y, &(0..12).collect::<Vec<_>>());
        f.extend(weights(&w));
        let mut res = execute(&full, &arch, &feeds(f), 0, 0).unwrap();
        let gt: Vec<_> = (0..n)
            .map(|l| take(&mut res, &model.params()[l].grad))
            .collect();
        // The full gradient is the mean over all 12 examples, to fp32 accuracy.
        for (g, r) in gt.iter().zip(reference(model, &w, &x, &y)) {
            assert!(
                max_abs(&(g - &r)) <= 1e-6 * max_abs(&r),
                "{name}: {g} vs {r}"
            );
        }
        let snap = gradient_graph(model, (&arch, Datapath::LowPrecision), 4, store).unwrap();
        let mut f = batch(&x, &y, &idx);
        f.extend(weights(&w));
        let mut g0 = execute(&snap, &arch, &feeds(f.clone()), 0, 5).unwrap();
        for (l, g) in gt.iter().enumerate() {
            f.push((format!("g0.{l}"), take(&mut g0, &model.params()[l].grad)));
            f.push((format!("gt{l}"), g.clone()));
        }
        let step = svrg_step_graph(model, (&arch, Datapath::LowPrecision), 4, store, lr).unwrap();
        let mut res = execute(&step, &arch, &feeds(f), 0, 5).unwrap();
        for (l, g) in gt.iter().enumerate() {
            assert_eq!(&take(&mut res, &format!("vr{l}")), g, "{name}: tensor {l}");
        }
        if name == "fp32" {
            for (l, g) in gt.iter().enumerate() {
                let expect = (&w[l] - &(lr * g)).mapv(|v| f64::from(v as f32));
                assert_eq!(take(&mut res, &format!("w{l}.next")), expect, "tensor {l}");
            }
        }
    }
}

#[test]
fn the_variance_reduced_gradient_away_from_the_snapshot_matches_f64() {
    let (x, y) = data(12);
    let idx = [3, 7, 7, 0];
    let (xb, yb) = (x.select(Axis(0), &idx), y.select(Axis(0), &idx));
    let arch = arch("fp32");
    let store = (fp32(), RN);
    for model in &models() {
        let centre = params_with_biases(model, store, 1);
        let s = RandomStream::new(9, 9);
        let w: Vec<ArrayD<f64>> = centre
            .iter()
            .enumerate()
            .map(|(l, c)| {
                let mut i = 0;
                c + &ArrayD::from_shape_fn(c.raw_dim(), |_| {
                    i += 1;
                    0.05 * s.normal_f64((l * 1000 + i) as u64)
                })
            })
            .map(|p| p.mapv(|v| f64::from(v as f32)))
            .collect();
        let gt = reference(model, &centre, &x, &y);
        let mut f = batch(&x, &y, &idx);
        f.extend(weights(&centre));
        let snap = gradient_graph(model, (&arch, Datapath::LowPrecision), 4, store).unwrap();
        let mut g0 = execute(&snap, &arch, &feeds(f.clone()), 0, 1).unwrap();
        let mut f = batch(&x, &y, &idx);
        f.extend(weights(&w));
        for (l, g) in gt.iter().enumerate() {
            f.push((format!("g0.{l}"), take(&mut g0, &model.params()[l].grad)));
            f.push((format!("gt{l}"), g.mapv(|v| f64::from(v as f32))));
        }
        let step = svrg_step_graph(model, (&arch, Datapath::LowPrecision), 4, store, 0.1).unwrap();
        let mut res = execute(&step, &arch, &feeds(f), 0, 1).unwrap();
        let (gw, gc) = (
            reference(model, &w, &xb, &yb),
            reference(model, &centre, &xb, &yb),
        );
        for l in 0..w.len() {
            let expect = &(&gw[l] - &gc[l]) + &gt[l];
            let got = take(&mut res, &format!("vr{l}"));
            assert!(
                max_abs(&(&got - &expect)) <= 1e-6 * max_abs(&expect),
                "tensor {l}: {got} vs {expect}"
            );
        }
    }
}

#[test]
fn every_shipped_architecture_builds_the_inner_steps_and_refusals_say_why() {
    let model = mlp(&[4]);
    for name in ["fp32", "bf16", "fp8", "int8", "bfp8", "mxfp8"] {
        let arch = arch(name);
        for algo in [Algo::Svrg, Algo::LpSvrg, Algo::Halp] {
            let g = example_graph(algo, &model, &arch, &Hyper::new(algo));
            assert!(g.is_ok(), "{algo} on {name}: {g:?}");
        }
    }
    let unsupported = |r: Result<StepGraph, AlgoError>| match r {
        Err(AlgoError::Unsupported(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let mut h = Hyper::new(Algo::Halp);
    h.set("bits", 8.0).unwrap();
    let m = unsupported(example_graph(Algo::Halp, &model, &arch("fp8"), &h));
    assert!(m.contains("fixed:wl=8,fl=0") && m.contains("e4m3fn"), "{m}");
    for algo in [Algo::LpSvrg, Algo::LpSgd] {
        let mut h = Hyper::new(algo);
        h.set("delta", 0.7).unwrap();
        let m = unsupported(example_graph(algo, &model, &arch("fp32"), &h));
        assert!(
            m.contains("delta") && m.contains("linear models only"),
            "{m}"
        );
    }
}

/// FNV-1a over `text`'s bytes: a fingerprint of a run's results.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A run's fingerprints: its final parameters' bits, and its counts and work (GEMMs in
/// order of their shapes, with the range events).
pub(crate) fn fingerprint(o: &TrainOutcome) -> (u64, u64) {
    let bits: Vec<u64> = o.params.iter().flatten().map(|v| v.to_bits()).collect();
    let t = &o.tally;
    let mut gemms: Vec<String> = [&t.low_work, &t.full_work]
        .iter()
        .flat_map(|w| w.gemms.iter().map(|g| format!("{g:?}")))
        .collect();
    gemms.sort();
    let work = format!(
        "{:?} {:?} {gemms:?} {} {} {:?}",
        t.low, t.full, t.low_work.vector_ops, t.full_work.vector_ops, o.range
    );
    (fnv(&format!("{bits:?}")), fnv(&work))
}

/// svrg, lp-svrg and halp on a two-hidden-layer MLP, on a rounding unit that is stochastic
/// everywhere (bfp8) and on others: the parameters, counts and work as the MLP-only drivers
/// of commit accb5b7 produced them (recorded before the drivers took any layered model).
#[test]
fn mlp_runs_are_those_of_the_mlp_only_drivers() {
    let model = mlp(&[6, 4]);
    let (x, _) = data(24);
    let classes: Vec<usize> = (0..24).map(|i| i % 3).collect();
    let t = crate::workload::Targets::Classes(classes.into());
    let d = TrainData {
        x_train: x.clone(),
        y_train: t.clone(),
        x_test: x,
        y_test: t,
        augment: None,
    };
    let mut got = Vec::new();
    for name in ["fp32", "bf16", "bfp8", "int8"] {
        for algo in [Algo::Svrg, Algo::LpSvrg, Algo::Halp] {
            let mut h = Hyper::new(algo);
            for (k, v) in [("epochs", 2.0), ("batch", 4.0), ("lr", 0.05)] {
                h.set(k, v).unwrap();
            }
            if algo == Algo::Halp {
                h.set("mu", 3.0).unwrap();
            }
            let o = crate::algo::train(algo, &model, Some(&d), &arch(name), &h, 3, &mut |_| {})
                .unwrap();
            got.push((name, algo.to_string(), fingerprint(&o)));
        }
    }
    let expect = [
        ("fp32", "svrg", (12954489119814425073, 5225861712489583181)),
        (
            "fp32",
            "lp-svrg",
            (12954489119814425073, 6623317324035216524),
        ),
        ("fp32", "halp", (11755671976918875849, 2058837590703928989)),
        ("bf16", "svrg", (12954489119814425073, 5225861712489583181)),
        (
            "bf16",
            "lp-svrg",
            (6357102889194222722, 14646944898784708574),
        ),
        ("bf16", "halp", (14438306267911604731, 231034908614960262)),
        ("bfp8", "svrg", (12954489119814425073, 5225861712489583181)),
        (
            "bfp8",
            "lp-svrg",
            (13454143925081883334, 3363470505450509007),
        ),
        ("bfp8", "halp", (2865879652492695827, 18084341827251983857)),
        ("int8", "svrg", (12954489119814425073, 5225861712489583181)),
        (
            "int8",
            "lp-svrg",
            (6408706258172643647, 8303087145460361421),
        ),
        ("int8", "halp", (17254655800323694024, 9980751570229162251)),
    ];
    for ((name, algo, f), (e_name, e_algo, e)) in got.iter().zip(expect) {
        assert_eq!((*name, algo.as_str()), (e_name, e_algo));
        assert_eq!(*f, e, "{algo} on {name}: (parameters, counts) fingerprints");
    }
}

#[test]
fn the_gaussian_toy_is_refused_for_the_whole_family() {
    let toy = Model::standard_gaussian(2).unwrap();
    for algo in [Algo::Svrg, Algo::LpSvrg, Algo::Halp] {
        let h = Hyper::new(algo);
        let r = crate::algo::train(algo, &toy, None, &arch("fp32"), &h, 0, &mut |_| {});
        match r {
            Err(AlgoError::Unsupported(m)) => {
                assert!(m.contains("needs a training set"), "{m}")
            }
            other => panic!("{algo}: {:?}", other.map(|o| o.params)),
        }
        let g = crate::algo::step_graph(algo, &toy, None, &arch("fp32"), &h);
        assert!(matches!(g, Err(AlgoError::Unsupported(_))), "{algo}");
    }
    let mut h = Hyper::new(Algo::LpSgd);
    h.set("delta", 0.7).unwrap();
    let r = crate::algo::train(Algo::LpSgd, &toy, None, &arch("fp32"), &h, 0, &mut |_| {});
    assert!(
        matches!(&r, Err(AlgoError::Unsupported(m)) if m.contains("delta = 0")),
        "{:?}",
        r.map(|o| o.params)
    );
}
