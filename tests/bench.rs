//! The bench's plumbing (`lpsim bench`): each kernel run follows a native run, after one warm-up
//! of each, so a ratio compares two runs taken moments apart; `lpsim bench train`'s native `f32`
//! epoch really trains (its loss, evaluated by the library's `f64` reference, falls on digits),
//! and its JSON has one row per algorithm x architecture x pool size whose figures are the
//! medians of its per-epoch times. Speed is measured by the bench, never asserted in tests.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use lpsim::bench::{native_data, paired_seconds, NativeMlp, TRAIN_ALGOS};
use lpsim::model::Model;
use lpsim::run::prepare;
use lpsim::sweep::RunSpec;
use serde_json::Value;

#[test]
fn kernel_and_native_runs_alternate() {
    let log = RefCell::new(Vec::new());
    let timed = paired_seconds(
        3,
        || log.borrow_mut().push('n'),
        || log.borrow_mut().push('k'),
    );
    assert_eq!(log.into_inner(), ['n', 'k', 'n', 'k', 'n', 'k', 'n', 'k']);
    assert!(timed.secs >= 0.0);
}

#[test]
fn zero_repetitions_still_time_one_pair() {
    let count = RefCell::new(0);
    paired_seconds(0, || (), || *count.borrow_mut() += 1);
    assert_eq!(
        count.into_inner(),
        2,
        "one warm-up and one timed kernel run"
    );
}

fn lpsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lpsim"))
        .args(args)
        .output()
        .expect("run lpsim")
}

/// The JSON rows of a successful `lpsim bench train` run.
fn bench_train(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["bench", "train", "--json"];
    all.extend(args);
    let out = lpsim(&all);
    assert!(
        out.status.success(),
        "lpsim {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    v.as_array().expect("an array of rows").clone()
}

/// The bench's median: the upper middle of the sorted values.
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

#[test]
fn native_epoch_trains_on_digits() {
    let p = prepare(&RunSpec {
        workload_path: "workloads/digits-mlp.json".into(),
        algo: "sgd".into(),
        arch_path: "arch/fp32.json".into(),
        seed: 0,
        set: BTreeMap::new(),
    })
    .unwrap();
    let (x, labels) = native_data(&p).expect("digits is a classification data set");
    assert_eq!((x.nrows(), x.ncols()), (1437, 64), "80% of the 1797 digits");
    let hidden = 32;
    let model = Model::mlp(64, &[hidden], 10, 0.0).unwrap();
    let data = p.data.as_ref().unwrap();
    // The library's f64 reference scores the native parameters (an independent forward pass).
    let loss = |m: &NativeMlp| {
        let params = m.params_f64();
        let shapes: Vec<Vec<usize>> = params.iter().map(|a| a.shape().to_vec()).collect();
        assert_eq!(shapes, model.param_shapes(), "the library's layout");
        model.loss(&params, Some((data.x_train.view(), &data.y_train)))
    };
    let mut m = NativeMlp::new(64, hidden, 10, 0);
    let mut losses = vec![loss(&m)];
    let mut batch_losses = Vec::new();
    for _ in 0..4 {
        batch_losses.push(m.epoch(&x, &labels, 64, 0.2));
        losses.push(loss(&m));
    }
    for w in losses.windows(2) {
        assert!(w[1] < w[0], "the loss falls every epoch: {losses:?}");
    }
    assert!(
        losses[4] < 0.25 * losses[0] && losses[4] < 0.3,
        "four epochs of SGD fit digits: {losses:?}"
    );
    // The mean batch loss of an epoch lies between the full losses before and after it, give
    // or take the batches' sampling noise (4 epochs of 1472 draws: within 25%).
    for (k, b) in batch_losses.iter().enumerate() {
        let (lo, hi) = (losses[k + 1] as f32, losses[k] as f32);
        assert!(
            *b > 0.75 * lo && *b < 1.25 * hi,
            "epoch {}: batch loss {b} vs full {lo}..{hi}",
            k + 1
        );
    }
    let probs = model.predict(&m.params_f64(), data.x_test.view());
    let lpsim::algo::Targets::Classes(test) = &data.y_test else {
        panic!("classes")
    };
    let right = probs
        .rows()
        .into_iter()
        .zip(test)
        .filter(|(r, &k)| r.iter().all(|&v| v <= r[k]))
        .count();
    assert!(
        right as f64 > 0.9 * test.len() as f64,
        "{right} of {} test digits right",
        test.len()
    );
}

#[test]
fn train_bench_has_every_algorithm_architecture_and_pool() {
    let rows = bench_train(&["--epochs", "3", "--hidden", "8", "--threads", "1,2"]);
    let archs = ["fp32", "bf16", "bfp8", "fp8"];
    let mut seen = BTreeSet::new();
    for r in &rows {
        let key = (
            r["algo"].as_str().unwrap().to_string(),
            r["arch"].as_str().unwrap().to_string(),
            r["threads"].as_u64().unwrap(),
        );
        assert!(seen.insert(key.clone()), "{key:?} twice");
        assert_eq!(r["model"], "64-8-10", "--hidden sets the hidden width");
        assert_eq!(r["batch"], 64);
        let (epochs, native) = (floats(&r["epoch_ms"]), floats(&r["native_epoch_ms"]));
        assert_eq!((epochs.len(), native.len()), (3, 3), "{key:?}: --epochs 3");
        assert!(
            epochs.iter().chain(&native).all(|&t| t > 0.0),
            "{key:?}: positive times"
        );
        assert_eq!(r["ms_per_epoch"].as_f64().unwrap(), median(&epochs));
        assert_eq!(r["native_ms_per_epoch"].as_f64().unwrap(), median(&native));
        let ratios: Vec<f64> = epochs.iter().zip(&native).map(|(e, n)| e / n).collect();
        assert_eq!(r["times_native"].as_f64().unwrap(), median(&ratios));
        // One pass of ceil(1437 / 64) steps; the SVRG family's 2N / batch inner steps.
        let steps = if key.0 == "lp-svrg" { 45 } else { 23 };
        assert_eq!(r["steps_per_epoch"], steps, "{key:?}");
        // The training epoch is the epoch less its loss evaluation, timed on its own (how the
        // two times compare is a measurement, not asserted).
        let train = floats(&r["train_epoch_ms"]);
        assert_eq!(train.len(), 3, "{key:?}");
        assert_eq!(r["train_ms_per_epoch"].as_f64().unwrap(), median(&train));
        let ratios: Vec<f64> = train.iter().zip(&native).map(|(t, n)| t / n).collect();
        assert_eq!(r["train_times_native"].as_f64().unwrap(), median(&ratios));
        let loss_ms: Vec<f64> = epochs.iter().zip(&train).map(|(e, t)| e - t).collect();
        let eval = r["loss_eval_ms"].as_f64().unwrap();
        assert!(
            eval > 0.0 && (eval - median(&loss_ms)).abs() < 1e-9,
            "{key:?}"
        );
        let loss = r["train_loss"].as_f64().unwrap();
        assert!(
            loss.is_finite() && loss < 2.3,
            "{key:?}: trained, loss {loss}"
        );
    }
    let expected: BTreeSet<_> = TRAIN_ALGOS
        .iter()
        .flat_map(|a| archs.iter().map(move |h| (a.to_string(), h.to_string())))
        .flat_map(|(a, h)| [1, 2].map(|t| (a.clone(), h.clone(), t)))
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn train_bench_options_take_effect() {
    let one = |extra: &[&str]| {
        let mut args = vec![
            "--epochs",
            "1",
            "--hidden",
            "4",
            "--threads",
            "1",
            "--algos",
            "lp-sgd",
        ];
        args.extend(extra);
        let rows = bench_train(&args);
        assert_eq!(rows.len(), 1);
        rows[0].clone()
    };
    let base = one(&["--archs", "arch/bf16.json"]);
    assert_eq!(base["arch"], "bf16");
    assert_eq!(floats(&base["epoch_ms"]).len(), 1);
    let batch = one(&["--archs", "arch/bf16.json", "--batch", "100"]);
    assert_eq!(
        (&batch["batch"], &batch["steps_per_epoch"]),
        (&100.into(), &15.into())
    );
    let seed = one(&["--archs", "arch/bf16.json", "--seed", "1"]);
    assert_ne!(
        seed["train_loss"], base["train_loss"],
        "--seed changes the run"
    );
    let again = one(&["--archs", "arch/bf16.json"]);
    assert_eq!(
        again["train_loss"], base["train_loss"],
        "same seed, same run"
    );
}

#[test]
fn train_bench_refuses_bad_input_by_name() {
    for (args, says) in [
        (&["--algos", "lp-sgdl"][..], "unknown algorithm `lp-sgdl`"),
        (&["--archs", "arch/nope.json"][..], "arch/nope.json"),
        (
            &["--workload", "workloads/digits-logistic.json"][..],
            "model.kind = mlp",
        ),
        (
            &["--workload", "workloads/gaussian-toy.json"][..],
            "model.kind = mlp",
        ),
        (&["--epochs", "0"][..], "--epochs = 0"),
        (&["--hidden", "0"][..], "--hidden = 0"),
        (&["--batch", "0"][..], "--batch = 0"),
        (&["--threads", "0"][..], "--threads"),
        (&["--hidden", "100000000000"][..], "memory"),
    ] {
        // Small settings, unless the case sets that option itself.
        let mut all = vec!["bench", "train"];
        for (flag, value) in [("--epochs", "1"), ("--hidden", "4"), ("--threads", "1")] {
            if !args.contains(&flag) {
                all.extend([flag, value]);
            }
        }
        all.extend(args);
        let out = lpsim(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
