//! Issue 11: the full-precision unit next to the low-precision datapath. Baselines (`sgd`,
//! `sgld`, `csgld`, `svrg`) are the same full-precision run on every architecture; the `lp-`
//! variants run on the architecture's MAC; the SVRG family runs on every architecture with its
//! iterate in the weight format's codes; every field of `full_precision` and `formats.updates`
//! takes effect; full-precision work is priced apart; HALP's `mu` comes from the problem.
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use lpsim::algo::svrg::{codes, strong_convexity};
use lpsim::algo::{train, Algo, Hyper, Targets, TrainData, TrainOutcome};
use lpsim::arch::Architecture;
use lpsim::arith::{ActionCounts, ActionKey};
use lpsim::cost::{price, price_tally, Work};
use lpsim::format::Format;
use lpsim::model::Model;
use lpsim::round::{RandomStream, Rounding};
use ndarray::{Array1, Array2};

/// The key of the fused multiply-adds `t x t + acc`.
fn fma(t: &str, acc: &str) -> ActionKey {
    let (t, acc) = (common::fmt(t), common::fmt(acc));
    ActionKey::Fma { a: t, b: t, acc }
}

fn shipped() -> Vec<(String, Architecture)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("arch");
    let mut out: Vec<(String, Architecture)> = std::fs::read_dir(&dir)
        .expect("arch/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .map(|p| {
            let a = Architecture::load(&p).unwrap_or_else(|e| panic!("{e}"));
            (p.display().to_string(), a)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Three Gaussian classes in 8 features, shifted per class.
fn classes() -> TrainData {
    let (n, d, k) = (96, 8, 3);
    let s = RandomStream::new(4, 1);
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

/// Least squares with 20 features and 200 examples (no noise; coefficients up to 10).
fn regression() -> TrainData {
    let (n, d) = (200, 20);
    let s = RandomStream::new(6, 1);
    let x = Array2::from_shape_fn((n, d), |(i, j)| s.normal_f64((i * d + j) as u64));
    let w = Array1::from_shape_fn(d, |j| if j < 4 { 10.0 - j as f64 } else { 0.0 });
    let y = x.dot(&w);
    TrainData {
        x_train: x.clone(),
        y_train: Targets::Values(y.clone()),
        x_test: x,
        y_test: Targets::Values(y),
        augment: None,
    }
}

fn logistic() -> Model {
    Model::logistic(8, 3, 1e-2).unwrap()
}

fn fit(
    algo: Algo,
    model: &Model,
    data: &TrainData,
    arch: &Architecture,
    set: &[(&str, f64)],
) -> Result<TrainOutcome, String> {
    let mut h = Hyper::new(algo);
    for (k, v) in set {
        h.set(k, *v).map_err(|e| e.to_string())?;
    }
    train(algo, model, Some(data), arch, &h, 7, &mut |_| {}).map_err(|e| e.to_string())
}

#[test]
fn baselines_are_the_same_full_precision_run_on_every_architecture() {
    let data = classes();
    let mut archs = shipped();
    archs.push(("int8 tensor".into(), common::int8_tensor()));
    let set = [("epochs", 2.0), ("batch", 16.0), ("lr", 0.05)];
    for algo in [Algo::Sgd, Algo::Sgld, Algo::Csgld, Algo::Svrg] {
        let set = if algo == Algo::Svrg {
            &[set[0], set[1], ("lr", 0.01), ("epoch_len", 6.0)][..]
        } else if algo == Algo::Csgld {
            // One cycle over the two epochs, so its sampling window holds an epoch.
            &[set[0], set[1], set[2], ("cycles", 1.0)][..]
        } else {
            &set[..]
        };
        let runs: Vec<TrainOutcome> = archs
            .iter()
            .map(|(name, a)| fit(algo, &logistic(), &data, a, set).expect(name))
            .collect();
        let reference = &runs[0];
        assert_eq!(reference.tally.low, ActionCounts::default(), "{algo}");
        assert_eq!(reference.tally.low_work, Work::default(), "{algo}");
        assert!(reference.tally.full.get(&fma("fp32", "fp32")) > 0);
        let energy = |a: &Architecture, o: &TrainOutcome| {
            price_tally(a, &o.tally).expect("priced").energy_pj
        };
        for ((name, a), run) in archs.iter().zip(&runs) {
            assert_eq!(run.params, reference.params, "{algo} on {name}");
            assert_eq!(run.tally, reference.tally, "{algo} on {name}");
            assert_eq!(
                energy(a, run),
                energy(&archs[0].1, reference),
                "{algo} on {name}"
            );
        }
    }
}

#[test]
fn lp_variants_run_on_the_architecture_mac() {
    let data = classes();
    let bf16 = Architecture::load(Path::new("arch/bf16.json")).expect("arch");
    let set = [("epochs", 1.0), ("batch", 16.0), ("lr", 0.05)];
    for algo in [Algo::LpSgd, Algo::LpSgldF, Algo::LpSgldNaive] {
        let o = fit(algo, &logistic(), &data, &bf16, &set).expect("runs");
        assert_eq!(o.tally.full, ActionCounts::default(), "{algo}");
        assert!(o.tally.low.get(&fma("bf16", "fp32")) > 0, "{algo}");
    }
    // lp-sgld-f keeps an fp32 master copy and takes its gradient at Q_W(theta) in bf16.
    let f = fit(Algo::LpSgldF, &logistic(), &data, &bf16, &set).expect("runs");
    let bf16_rne = ActionKey::Quantize {
        f: common::fmt("bf16"),
        r: Rounding::NearestEven,
    };
    assert!(f.tally.low.get(&bf16_rne) > 0);
    let bf: Format = "bf16".parse().expect("bf16");
    let off_grid = |v: f64| bf.quantize_scalar(v, lpsim::Rounding::NearestEven, 0) != Some(v);
    assert!(f.params[0].iter().any(|&v| off_grid(v)), "an fp32 master");
}

#[test]
fn full_precision_format_and_mac_take_effect() {
    let data = classes();
    let set = [("epochs", 1.0), ("batch", 16.0), ("lr", 0.05)];
    let fp32 = common::arch_with("arch/int8.json", &[]);
    let bf16 = common::arch_with(
        "arch/int8.json",
        &[
            ("full_precision.format", "bf16"),
            ("full_precision.mac.a", "bf16"),
            ("full_precision.mac.b", "bf16"),
            ("full_precision.mac.fused", "true"),
            ("full_precision.mac.accumulator", "fp32"),
        ],
    );
    let a = fit(Algo::Sgd, &logistic(), &data, &fp32, &set).expect("runs");
    let b = fit(Algo::Sgd, &logistic(), &data, &bf16, &set).expect("runs");
    assert!(b.tally.full.get(&fma("bf16", "fp32")) > 0);
    assert_eq!(b.tally.full.get(&fma("fp32", "fp32")), 0);
    assert_ne!(a.params, b.params);
    let bf: Format = "bf16".parse().expect("bf16");
    for &v in b.params[0].iter() {
        assert_eq!(
            bf.quantize_scalar(v, lpsim::Rounding::NearestEven, 0),
            Some(v)
        );
    }
}

/// HALP's tally on a small least-squares problem on the int8-tensor machine.
fn halp_tally(arch: &Architecture) -> TrainOutcome {
    let set = [("epochs", 2.0), ("lr", 2e-3), ("epoch_len", 100.0)];
    fit(
        Algo::Halp,
        &Model::linear(20, 0.0).unwrap(),
        &regression(),
        arch,
        &set,
    )
    .expect("halp")
}

#[test]
fn full_precision_work_is_priced_apart() {
    let int8 = common::int8_tensor();
    let o = halp_tally(&int8);
    // The full gradients (1 x 200 x 20 twice per epoch) and the re-centring are full precision.
    assert_eq!(o.tally.full_work.gemms.len(), 4);
    assert_eq!(o.tally.low_work.gemms.len(), 2 * 100 * 2);
    assert!(o.tally.full.get(&fma("fp32", "fp32")) > 0);
    let t = "bfp:wl=8,size=tensor";
    assert!(o.tally.low.get(&fma(t, "fp32")) > 0);
    let total = price_tally(&int8, &o.tally).expect("priced");
    let low = price(&int8, &o.tally.low, &o.tally.low_work).expect("priced");
    let fp = total.breakdown["full_precision"];
    assert!(fp > 0.0);
    assert_eq!(total.breakdown["compute"], low.breakdown["compute"]);
    assert!(total.total_cycles > low.total_cycles);
    assert!(
        (total.energy_pj - low.energy_pj - fp).abs() > 0.0,
        "memory is shared"
    );

    // Its MACs are priced by their own key: an override moves only the full-precision part.
    let dear = common::arch_with(
        "arch/int8.json",
        &[
            common::INT8_TENSOR[0],
            common::INT8_TENSOR[1],
            common::INT8_TENSOR[2],
            common::INT8_TENSOR[3],
            common::INT8_TENSOR[4],
            common::INT8_TENSOR[5],
            common::INT8_TENSOR[6],
            common::INT8_TENSOR[7],
            // The file's own override of the int8 MAC stays; the full-precision MAC's is added.
            (
                "energy.overrides",
                r#"{"fma:fp32 x fp32 + fp32": 100.0,
                    "fma:bfp:wl=8,size=tensor x bfp:wl=8,size=tensor + fp32": 0.3}"#,
            ),
        ],
    );
    let priced = price_tally(&dear, &o.tally).expect("priced");
    assert_eq!(priced.breakdown["compute"], total.breakdown["compute"]);
    let fmas = o.tally.full.get(&fma("fp32", "fp32")) as f64;
    assert!(priced.breakdown["full_precision"] > fp + 90.0 * fmas);

    // Its own array sets its cycles; the low-precision array's cycles do not move.
    let small = common::arch_with(
        "arch/int8.json",
        &[
            common::INT8_TENSOR[0],
            common::INT8_TENSOR[1],
            common::INT8_TENSOR[2],
            common::INT8_TENSOR[3],
            common::INT8_TENSOR[4],
            common::INT8_TENSOR[5],
            common::INT8_TENSOR[6],
            common::INT8_TENSOR[7],
            (
                "full_precision.array",
                r#"{"rows": 4, "cols": 4, "dataflow": "ws"}"#,
            ),
        ],
    );
    let o2 = halp_tally(&small);
    assert_eq!(o2.tally, o.tally, "the array changes cost, not values");
    let p2 = price_tally(&small, &o.tally).expect("priced");
    assert!(p2.cycles > total.cycles);
    assert_eq!(p2.energy_pj, total.energy_pj);
    let low2 = price(&small, &o.tally.low, &o.tally.low_work).expect("priced");
    assert_eq!(low2.cycles, low.cycles);
}

#[test]
fn area_has_a_full_precision_array_unless_it_is_the_array() {
    let area = |file: &str| {
        lpsim::cost::area::area_mm2(&Architecture::load(Path::new(file)).expect("arch"))
    };
    assert!(!area("arch/fp32.json").contains_key("full_precision"));
    let int8 = area("arch/int8.json");
    let fp32 = area("arch/fp32.json");
    // The int8 chip carries an fp32 array as large as the fp32 chip's.
    assert_eq!(int8["full_precision"], fp32["array"]);
}

#[test]
fn updates_format_is_where_the_svrg_family_forms_its_update() {
    let data = regression();
    let model = Model::linear(20, 0.0).unwrap();
    let set = [("epochs", 2.0), ("lr", 2e-3), ("epoch_len", 100.0)];
    let with = |updates: &str| {
        let mut o: Vec<(&str, &str)> = common::INT8_TENSOR.to_vec();
        o[3] = ("formats.updates", updates);
        common::arch_with("arch/int8.json", &o)
    };
    for algo in [Algo::Halp, Algo::LpSvrg] {
        let a = fit(algo, &model, &data, &with("fp32"), &set).expect("runs");
        let b = fit(algo, &model, &data, &with("fixed:wl=8,fl=2"), &set).expect("runs");
        let updates = common::fmt("fixed:wl=8,fl=2");
        let to_updates = |c: &ActionCounts| -> Vec<Rounding> {
            c.actions
                .keys()
                .filter_map(|k| match *k {
                    ActionKey::Quantize { f, r } if f == updates => Some(r),
                    _ => None,
                })
                .collect()
        };
        assert!(to_updates(&a.tally.low).is_empty(), "{algo}");
        assert_eq!(
            to_updates(&b.tally.low),
            [Rounding::Stochastic { bits: 8 }],
            "{algo}: {:?}",
            b.tally.low
        );
        assert_ne!(a.params, b.params, "{algo}");
    }
}

#[test]
fn codes_follow_the_weight_format() {
    let f = |s: &str| -> Format { s.parse().expect("format") };
    let c = codes(f("fixed:wl=8,fl=6"), 0).expect("codes");
    assert_eq!(
        (c.format, c.ulp, c.levels),
        (f("fixed:wl=8,fl=6"), 1.0 / 64.0, 127.0)
    );
    let c = codes(f("fixed:wl=8,fl=6"), 4).expect("codes");
    assert_eq!((c.format, c.levels), (f("fixed:wl=4,fl=6"), 7.0));
    let c = codes(f("bfp:wl=8,size=tensor"), 0).expect("codes");
    assert_eq!(
        (c.format, c.ulp, c.levels),
        (f("fixed:wl=8,fl=0,symmetric=true"), 1.0, 127.0)
    );
    assert_eq!(codes(f("mxint8"), 0).expect("codes").levels, 127.0);
    let c = codes(f("bf16"), 0).expect("codes");
    assert_eq!((c.format, c.levels), (f("bf16"), 32767.0));
    assert_eq!(codes(f("e4m3fn"), 0).expect("codes").levels, 112.0);
    for (w, bits, why) in [
        ("fixed:wl=8,fl=6", 9, "2..=8 bits"),
        ("uint8", 0, "unsigned"),
        ("bf16", 8, "float format"),
    ] {
        let e = codes(f(w), bits).expect_err(w);
        assert!(e.contains(why), "{w}: {e}");
    }
    // On every shipped architecture the MAC reads the codes of its weight format.
    for (name, a) in shipped() {
        let c = codes(a.formats.weights, 0).expect(&name);
        assert!(a.formats.mac.b.contains(&c.format), "{name}: {}", c.format);
    }
}

#[test]
fn mu_is_the_problem_strong_convexity() {
    // Orthogonal columns: X^T X / N = diag(4, 1, 9) / 4.
    let x = ndarray::array![
        [2.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 3.0],
        [0.0, 0.0, 0.0]
    ];
    let mu = strong_convexity(&Model::linear(3, 0.0).unwrap(), &x).expect("mu");
    assert!((mu - 0.25).abs() < 1e-14, "{mu}");
    // A random design against inverse iteration on X^T X / N (independent of the Jacobi solver).
    let data = regression();
    let x = &data.x_train;
    let mu = strong_convexity(&Model::linear(20, 0.0).unwrap(), x).expect("mu");
    let gram = x.t().dot(x) / x.nrows() as f64;
    let l = lpsim::workload::linalg::cholesky(gram.view()).expect("spd");
    let mut v = Array1::from_elem(20, 1.0);
    let mut rayleigh = 0.0;
    for _ in 0..500 {
        let w = lpsim::workload::linalg::cholesky_solve(l.view(), v.view());
        v = &w / w.dot(&w).sqrt();
        rayleigh = v.dot(&gram.dot(&v));
    }
    assert!(
        (mu - rayleigh).abs() < 1e-9 * rayleigh,
        "{mu} vs {rayleigh}"
    );
    // Logistic: l2 is the bound; without l2 the user must give mu.
    assert_eq!(strong_convexity(&logistic(), x).expect("mu"), 1e-2);
    let no_l2 = Model::logistic(8, 3, 0.0).unwrap();
    let e = fit(Algo::Halp, &no_l2, &classes(), &common::int8_tensor(), &[]).expect_err("mu");
    assert!(e.contains("set mu > 0"), "{e}");
    // The run records the value it derived, and the user's value wins.
    let o = fit(
        Algo::Halp,
        &Model::linear(20, 0.0).unwrap(),
        &data,
        &common::int8_tensor(),
        &[("epochs", 1.0), ("epoch_len", 10.0)],
    )
    .expect("runs");
    assert_eq!(o.derived, BTreeMap::from([("mu".to_string(), mu)]));
    let o = fit(
        Algo::Halp,
        &Model::linear(20, 0.0).unwrap(),
        &data,
        &common::int8_tensor(),
        &[("epochs", 1.0), ("epoch_len", 10.0), ("mu", 3.0)],
    )
    .expect("runs");
    assert!(o.derived.is_empty());
}

#[test]
fn impossible_combinations_are_refused_in_one_line() {
    let data = regression();
    let model = Model::linear(20, 0.0).unwrap();
    /// An algorithm, where it runs, its hyperparameters, and what the error must say.
    type Case<'a> = (Algo, Architecture, &'a [(&'a str, f64)], &'a str);
    let cases: [Case; 4] = [
        (
            Algo::Halp,
            common::arch_with("arch/int8.json", &[("formats.weights", "fixed:wl=8,fl=0")]),
            &[],
            "not values of the MAC's b input `bfp:wl=8,size=tensor`",
        ),
        (
            Algo::LpSvrg,
            Architecture::load(Path::new("arch/bf16.json")).expect("arch"),
            &[("delta", 0.7)],
            "is a float format; use delta = 0",
        ),
        (
            Algo::Halp,
            Architecture::load(Path::new("arch/bfp8.json")).expect("arch"),
            &[("bits", 9.0)],
            "holds integer codes of 2..=8 bits",
        ),
        (
            Algo::LpSvrg,
            Architecture::load(Path::new("arch/int8.json")).expect("arch"),
            &[("bits", 4.0)],
            "applies to a delta grid",
        ),
    ];
    for (algo, arch, set, want) in cases {
        let e = fit(algo, &model, &data, &arch, set).expect_err(want);
        assert!(e.contains(want), "{algo}: {e}");
        assert!(!e.contains('\n') && !e.contains("node"), "{e}");
    }
}
