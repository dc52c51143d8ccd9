//! Workload layer: shipped workloads load, loader errors name file and line, splits and
//! standardization are deterministic and use training statistics only, the regression optimum is
//! optimal, reference gradients match finite differences, and the metrics match hand values.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use lpsim::model::Model;
use lpsim::workload::metrics::{self, ECE_BINS};
use lpsim::workload::{
    Budget, DataSpec, Dataset, ModelAverage, ModelSpec, Moments, Problem, Targets, Workload,
    WorkloadError,
};
use lpsim::{Format, RandomStream, Rounding};
use ndarray::{array, Array1, Array2, ArrayD, Axis};
use ndarray_npy::WriteNpyExt;

/// The model a workload names for its loaded data set.
fn model_of(w: &Workload, d: &Dataset) -> Model {
    Model::from_spec(&w.model, &d.shape, d.n_classes).unwrap_or_else(|e| panic!("{e}"))
}

/// A linear model's one weight column as its parameter tensors.
fn column(w: &Array1<f64>) -> Vec<ArrayD<f64>> {
    vec![w.clone().insert_axis(Axis(1)).into_dyn()]
}

/// A workload file name inside the fixture directory (data paths resolve next to it).
fn fixture_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/workload/w.json")
}

fn parse(json: &str) -> Result<Workload, WorkloadError> {
    Workload::from_json_str(json, &fixture_file())
}

/// A classification CSV workload on a fixture file with extra `data` fields.
fn csv_workload(file: &str, extra: &str) -> String {
    format!(
        r#"{{ "name": "t", "data": {{ "kind": "csv", "path": "{file}" {extra} }},
             "model": {{ "kind": "logistic" }}, "train": {{ "epochs": 1, "batch_size": 2 }} }}"#
    )
}

fn supervised(w: &Workload) -> Dataset {
    match w.load_data().expect("data loads") {
        Problem::Supervised(d) => d,
        Problem::Sampling(_) => panic!("expected a data set"),
    }
}

fn data_error(json: &str) -> String {
    match parse(json)
        .expect("the workload itself is valid")
        .load_data()
    {
        Ok(_) => panic!("expected a data error"),
        Err(e) => e.to_string(),
    }
}

fn classes(t: &Targets) -> &Array1<usize> {
    match t {
        Targets::Classes(c) => c,
        Targets::Values(_) => panic!("expected classes"),
    }
}

fn values(t: &Targets) -> &Array1<f64> {
    match t {
        Targets::Values(v) => v,
        Targets::Classes(_) => panic!("expected values"),
    }
}

#[test]
fn every_shipped_workload_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root.join("workloads")).expect("workloads/ exists") {
        let path = entry.expect("dir entry").path();
        // `quickstart.json` is a sweep spec (checked by tests/quickstart.rs), not a workload.
        let sweep = path.file_name().is_some_and(|n| n == "quickstart.json");
        if path.extension().is_some_and(|e| e == "json") && !sweep {
            let w = Workload::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                path.file_stem().and_then(|s| s.to_str()),
                Some(w.name.as_str()),
                "file named after the workload"
            );
            // The pinned formats and rounding units are valid specs.
            for (key, value) in &w.arch_overrides {
                let spec = value
                    .as_str()
                    .expect("format and rounding specs are strings");
                if key.starts_with("formats.rounding.") {
                    Rounding::from_str(spec).unwrap_or_else(|e| panic!("{}: {key}: {e}", w.name));
                } else if key.starts_with("formats.") {
                    Format::from_str(spec).unwrap_or_else(|e| panic!("{}: {key}: {e}", w.name));
                }
            }
            match w.load_data().unwrap_or_else(|e| panic!("{e}")) {
                Problem::Supervised(d) => {
                    let model = model_of(&w, &d);
                    let p = model.init_params(0);
                    let x = model.inputs_of(&d.x_train);
                    let loss = model.loss(&p, Some((x.view(), &d.y_train)));
                    assert!(loss.is_finite(), "{}: initial loss {loss}", w.name);
                }
                Problem::Sampling(t) => assert_eq!(t.dimension(), 32, "32 pooled chains"),
            }
            names.push(w.name);
        }
    }
    names.sort();
    for want in [
        "digits-logistic",
        "digits-mlp",
        "gaussian-toy",
        "halp-linreg",
        "iris-logistic",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} is shipped");
    }
}

#[test]
fn shipped_workloads_have_the_documented_shapes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    let digits = supervised(&Workload::load(root.join("digits-logistic.json")).expect("loads"));
    // ceil(0.2 * 1797) = 360 held out, as scikit-learn's train_test_split rounds.
    assert_eq!(digits.x_train.dim(), (1437, 64));
    assert_eq!(digits.x_test.dim(), (360, 64));
    assert_eq!(digits.n_classes, Some(10));

    let iris = supervised(&Workload::load(root.join("iris-logistic.json")).expect("loads"));
    assert_eq!(iris.x_train.dim(), (120, 4));
    assert_eq!(iris.n_classes, Some(3));

    let halp = Workload::load(root.join("halp-linreg.json")).expect("loads");
    assert_eq!(
        halp.budget,
        Budget::Epochs {
            epochs: 40,
            batch_size: 1,
            burn_in: 0,
            thin: 1
        }
    );
    let d = supervised(&halp);
    assert_eq!(d.x_train.dim(), (1000, 100));
    assert_eq!(d.x_test.nrows(), 0);
    assert_eq!(d.n_classes, None);

    let toy = Workload::load(root.join("gaussian-toy.json")).expect("loads");
    assert_eq!(
        toy.arch_overrides.get("formats.weights"),
        Some(&serde_json::json!("fixed:wl=8,fl=3"))
    );
    assert_eq!(toy.hyper.get("lr"), Some(&0.002));
    assert!(matches!(toy.budget, Budget::Steps { steps: 100_000, .. }));
}

#[test]
fn csv_row_with_the_wrong_field_count_names_file_and_line() {
    let e = data_error(&csv_workload("bad_row.csv", ""));
    assert!(e.contains("bad_row.csv:3:"), "{e}");
    assert!(e.contains("expected 3 comma-separated fields"), "{e}");
    assert!(e.contains("found 2"), "{e}");
}

#[test]
fn csv_non_numeric_value_names_file_line_and_field() {
    let e = data_error(&csv_workload("non_numeric.csv", ""));
    assert!(e.contains("non_numeric.csv:2:"), "{e}");
    assert!(e.contains("field 2 (`abc`) is not a finite number"), "{e}");
}

#[test]
fn csv_label_out_of_range_names_file_and_line() {
    // Two classes from the scikit-learn header; label 2 on line 4.
    let e = data_error(&csv_workload("label_range.csv", ""));
    assert!(e.contains("label_range.csv:4:"), "{e}");
    assert!(e.contains("label 2 is out of range"), "{e}");
    assert!(e.contains("header on line 1"), "{e}");
    // Two classes from the spec; label 2 on line 4 (line 3 is blank and still counted).
    let e = data_error(&csv_workload("tiny.csv", r#", "n_classes": 2"#));
    assert!(e.contains("tiny.csv:4:"), "{e}");
    assert!(e.contains("data.n_classes"), "{e}");
    // A fractional label is not a class.
    let e = data_error(&csv_workload("frac_label.csv", ""));
    assert!(e.contains("frac_label.csv:1:"), "{e}");
    assert!(e.contains("not a class index"), "{e}");
}

#[test]
fn csv_missing_file_and_header_count_mismatch() {
    let e = data_error(&csv_workload("does-not-exist.csv", ""));
    assert!(e.contains("does-not-exist.csv"), "{e}");
    let e = data_error(&csv_workload("short_header.csv", ""));
    assert!(e.contains("short_header.csv:1:"), "{e}");
    assert!(e.contains("says 5 samples"), "{e}");
    let e = data_error(&csv_workload("tiny.csv", r#", "label_column": 3"#));
    assert!(e.contains("tiny.csv:1:"), "{e}");
    assert!(e.contains("label_column = 3"), "{e}");
}

#[test]
fn iris_header_line_is_detected() {
    let iris = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/data/iris.csv");
    let path = iris.to_string_lossy();
    let d = supervised(&parse(&csv_workload(&path, r#", "test_fraction": 0"#)).expect("valid"));
    assert_eq!(d.x_train.dim(), (150, 4));
    assert_eq!(d.n_classes, Some(3));
    let mut counts = [0usize; 3];
    for &c in classes(&d.y_train) {
        counts[c] += 1;
    }
    assert_eq!(counts, [50, 50, 50]);
    // Forcing "no header" makes line 1 a bad row.
    let e = data_error(&csv_workload(&path, r#", "header": "absent""#));
    assert!(e.contains("iris.csv:1:"), "{e}");
    assert!(e.contains("`setosa`"), "{e}");
}

#[test]
fn gzip_and_plain_csv_give_the_same_data() {
    let plain = supervised(&parse(&csv_workload("tiny.csv", "")).expect("valid"));
    let gz = supervised(&parse(&csv_workload("tiny.csv.gz", "")).expect("valid"));
    assert_eq!(plain, gz);
    assert_eq!(plain.x_train.nrows() + plain.x_test.nrows(), 4);
    assert_eq!(plain.n_classes, Some(3));
}

/// Rows of the union of train and test features, sorted, for comparing sets of examples.
fn sorted_rows(d: &Dataset) -> Vec<Vec<u64>> {
    let mut rows: Vec<Vec<u64>> = d
        .x_train
        .rows()
        .into_iter()
        .chain(d.x_test.rows())
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect();
    rows.sort();
    rows
}

#[test]
fn split_is_deterministic_and_a_partition() {
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/data/digits.csv.gz");
    let path = digits.to_string_lossy();
    let load = |seed: u64| {
        supervised(
            &parse(&csv_workload(
                &path,
                &format!(r#", "test_fraction": 0.25, "split_seed": {seed}"#),
            ))
            .expect("valid"),
        )
    };
    let (a, b, c) = (load(7), load(7), load(8));
    assert_eq!(a, b, "same seed, same split");
    assert_ne!(a.x_test, c.x_test, "another seed, another split");
    assert_eq!(a.x_test.nrows(), 450); // ceil(0.25 * 1797)
    assert_eq!(
        sorted_rows(&a),
        sorted_rows(&c),
        "both are partitions of the same rows"
    );
    // Every class is present in both parts of a random split of 1797 digits.
    for t in [&a.y_train, &a.y_test] {
        let mut seen = [false; 10];
        for &l in classes(t) {
            seen[l] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}

#[test]
fn standardization_uses_training_statistics_only() {
    let iris = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/data/iris.csv");
    let path = iris.to_string_lossy();
    let raw = supervised(&parse(&csv_workload(&path, "")).expect("valid"));
    let std = supervised(&parse(&csv_workload(&path, r#", "standardize": true"#)).expect("valid"));
    let s = std.standardization.as_ref().expect("fitted");
    let n = raw.x_train.nrows() as f64;
    let mean = raw.x_train.sum_axis(Axis(0)) / n;
    let var = raw.x_train.map_axis(Axis(0), |c| {
        let m = c.mean().unwrap_or(0.0);
        c.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n
    });
    for j in 0..4 {
        assert!((s.mean[j] - mean[j]).abs() < 1e-12, "mean of training rows");
        assert!((s.scale[j] - var[j].sqrt()).abs() < 1e-12, "population std");
        let col = std.x_train.column(j);
        assert!(col.mean().unwrap_or(1.0).abs() < 1e-12);
        let v = col.iter().map(|x| x * x).sum::<f64>() / n;
        assert!((v - 1.0).abs() < 1e-12);
    }
    // The test rows are mapped with the same statistics, not their own.
    let expect = (&raw.x_test - &s.mean) / &s.scale;
    assert!((&expect - &std.x_test).iter().all(|d| d.abs() < 1e-12));
    assert!(std.x_test.column(0).mean().unwrap_or(0.0).abs() > 1e-6);
    // Whole-set statistics differ from the training-set ones.
    let all = ndarray::concatenate(Axis(0), &[raw.x_train.view(), raw.x_test.view()])
        .expect("same width");
    let full_mean = all.sum_axis(Axis(0)) / all.nrows() as f64;
    assert!((&full_mean - &s.mean).iter().any(|d| d.abs() > 1e-6));
}

#[test]
fn constant_features_are_left_unscaled() {
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/data/digits.csv.gz");
    let d = supervised(
        &parse(&csv_workload(
            &digits.to_string_lossy(),
            r#", "standardize": true"#,
        ))
        .expect("valid"),
    );
    let s = d.standardization.expect("fitted");
    // Pixel 0 (top-left corner) is blank in every digit.
    assert_eq!(s.scale[0], 1.0);
    assert!(d
        .x_train
        .iter()
        .chain(d.x_test.iter())
        .all(|v| v.is_finite()));
}

fn regression(noise: f64, seed: u64) -> Workload {
    parse(&format!(
        r#"{{ "name": "r", "data": {{ "kind": "regression", "samples": 200, "features": 12,
             "informative": 5, "noise": {noise}, "seed": {seed}, "test_fraction": 0 }},
             "model": {{ "kind": "linear" }}, "train": {{ "epochs": 1, "batch_size": 1 }} }}"#
    ))
    .expect("valid")
}

#[test]
fn regression_generator_is_deterministic_and_follows_make_regression() {
    let a = supervised(&regression(0.0, 3));
    let b = supervised(&regression(0.0, 3));
    let c = supervised(&regression(0.0, 4));
    assert_eq!(a, b);
    assert_ne!(a.x_train, c.x_train);
    // Noise-free targets are exactly X w with w zero beyond the informative features, so the
    // least-squares fit recovers w: five weights in [0, 100), seven zeros.
    let model =
        Model::from_spec(&ModelSpec::Linear(Default::default()), &a.shape, None).expect("linear");
    let y = values(&a.y_train);
    let opt = metrics::least_squares_optimum(a.x_train.view(), y.view(), 0.0).expect("solves");
    for (j, w) in opt.iter().enumerate() {
        if j < 5 {
            assert!((0.0..100.0).contains(w), "w[{j}] = {w}");
        } else {
            assert!(w.abs() < 1e-9, "w[{j}] = {w}");
        }
    }
    let loss = model.loss(&column(&opt), Some((a.x_train.view(), &a.y_train)));
    assert!(loss < 1e-20, "noise-free optimum {loss}");
}

#[test]
fn least_squares_optimum_beats_every_perturbation() {
    let w = parse(
        r#"{ "name": "r", "data": { "kind": "regression", "samples": 300, "features": 8,
             "informative": 8, "noise": 5.0, "bias": 3.0, "seed": 1, "test_fraction": 0 },
             "model": { "kind": "linear", "bias": true, "l2": 0.01 },
             "train": { "epochs": 1, "batch_size": 1 } }"#,
    )
    .expect("valid");
    let d = supervised(&w);
    let model = model_of(&w, &d);
    assert!(model.bias_feature(), "the bias is a constant feature");
    let x = model.inputs_of(&d.x_train);
    let y = values(&d.y_train);
    let opt = metrics::least_squares_optimum(x.view(), y.view(), model.l2()).expect("solves");
    let data = Some((x.view(), &d.y_train));
    let (loss, grad) = model.loss_and_grad(&column(&opt), data);
    assert!(
        grad[0].iter().all(|g| g.abs() < 1e-8),
        "gradient at the optimum {grad:?}"
    );
    let rng = RandomStream::new(9, 0);
    for trial in 0..50u64 {
        let scale = 10f64.powi(-((trial % 5) as i32));
        let p = Array1::from_shape_fn(opt.len(), |i| {
            opt[i] + scale * rng.normal_f64(trial * 100 + i as u64)
        });
        let l = model.loss(&column(&p), data);
        assert!(l > loss, "perturbed loss {l} <= optimum {loss}");
    }
}

#[test]
fn model_layout_and_probabilities() {
    let spec = parse(
        r#"{ "name": "m", "data": { "kind": "csv", "path": "tiny.csv" },
             "model": { "kind": "mlp", "hidden": [6] }, "train": { "epochs": 1, "batch_size": 1 } }"#,
    )
    .expect("valid")
    .model;
    let m = Model::from_spec(&spec, &[2], Some(3)).expect("builds");
    let names: Vec<_> = m
        .params()
        .into_iter()
        .map(|t| (t.name, t.shape, t.grad))
        .collect();
    let s = |a: &str| a.to_string();
    assert_eq!(
        names,
        vec![
            (s("dense0.weight"), vec![2, 6], s("grad0")),
            (s("dense0.bias"), vec![1, 6], s("gradb0")),
            (s("dense1.weight"), vec![6, 3], s("grad1")),
            (s("dense1.bias"), vec![1, 3], s("gradb1")),
        ]
    );
    assert_eq!(m.n_params(), 39);
    assert_eq!(m.init_params(1), m.init_params(1), "deterministic init");
    let probs = m.predict(&m.init_params(1), array![[1.0, -2.0], [0.5, 0.0]].view());
    for row in probs.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-12);
    }
}

#[test]
fn ece_of_a_calibrated_toy_is_zero() {
    // Ten predictions at confidence 0.8, eight of them right: accuracy equals confidence.
    let probs = Array2::from_shape_fn((10, 2), |(_, j)| if j == 0 { 0.8 } else { 0.2 });
    let labels = Array1::from_shape_fn(10, |i| usize::from(i >= 8));
    let e = metrics::ece(probs.view(), labels.view(), ECE_BINS);
    assert!(e.abs() < 1e-15, "{e}");
    assert!((metrics::accuracy(probs.view(), labels.view()) - 0.8).abs() < 1e-15);
}

#[test]
fn ece_of_a_miscalibrated_case_matches_the_hand_value() {
    // Bin (13/15, 14/15]: two at confidence 0.9, one right -> |0.5 - 0.9| * 2/4 = 0.2.
    // Bin (8/15, 9/15]: two at confidence 0.6 (= 9/15, the bin's closed upper edge), both
    // right -> |1.0 - 0.6| * 2/4 = 0.2. ECE = 0.4.
    let probs = array![[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]];
    let labels = array![0usize, 1, 0, 0];
    let e = metrics::ece(probs.view(), labels.view(), ECE_BINS);
    assert!((e - 0.4).abs() < 1e-12, "{e}");
    // NLL by hand: -(ln 0.9 + ln 0.1 + 2 ln 0.6) / 4.
    let want = -(0.9f64.ln() + 0.1f64.ln() + 2.0 * 0.6f64.ln()) / 4.0;
    assert!((metrics::nll(probs.view(), labels.view()) - want).abs() < 1e-12);
    assert_eq!(metrics::accuracy(probs.view(), labels.view()), 0.75);
}

#[test]
fn model_average_and_moments() {
    let mut avg = ModelAverage::new();
    assert!(avg.mean().is_none());
    avg.add(array![[1.0, 0.0], [0.5, 0.5]].view());
    avg.add(array![[0.0, 1.0], [0.7, 0.3]].view());
    assert_eq!(avg.count(), 2);
    let m = avg.mean().expect("two samples");
    assert!((&m - &array![[0.5, 0.5], [0.6, 0.4]])
        .iter()
        .all(|d| d.abs() < 1e-15));

    let mut mo = Moments::new(2);
    for x in [[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [6.0, 10.0]] {
        mo.push(Array1::from(x.to_vec()).view());
    }
    assert_eq!(mo.count(), 4);
    assert!((mo.mean()[0] - 3.0).abs() < 1e-15);
    // Population variance of 1, 2, 3, 6: (4 + 1 + 0 + 9) / 4.
    assert!((mo.variance()[0] - 3.5).abs() < 1e-15);
    assert_eq!(mo.variance()[1], 0.0);
}

#[test]
fn gaussian_target_potential_and_gradient() {
    let w = parse(
        r#"{ "name": "g", "data": { "kind": "gaussian", "dimension": 2, "mean": [1.0, -1.0],
             "covariance": [[2.0, 0.5], [0.5, 1.0]] }, "model": { "kind": "gaussian" },
             "train": { "steps": 10 } }"#,
    )
    .expect("valid");
    let Problem::Sampling(t) = w.load_data().expect("loads") else {
        panic!("a target");
    };
    let theta = array![2.0, 0.0];
    let g = t.grad(theta.view());
    // Σ g = θ − m.
    let back = t.covariance.dot(&g);
    assert!((back[0] - 1.0).abs() < 1e-12 && (back[1] - 1.0).abs() < 1e-12);
    assert!((t.potential(theta.view()) - 0.5 * array![1.0, 1.0].dot(&g)).abs() < 1e-12);
    assert_eq!(t.variance(), array![2.0, 1.0]);
}

#[test]
fn npy_features_and_labels_load() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("workload-npy");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let x = Array2::from_shape_fn((10, 3), |(i, j)| (i * 3 + j) as f32);
    let y = Array1::from_shape_fn(10, |i| (i % 4) as i64);
    x.write_npy(std::fs::File::create(dir.join("x.npy")).expect("create"))
        .expect("write");
    y.write_npy(std::fs::File::create(dir.join("y.npy")).expect("create"))
        .expect("write");
    let text = r#"{ "name": "n", "data": { "kind": "npy", "features": "x.npy", "labels": "y.npy",
                    "test_fraction": 0.3 }, "model": { "kind": "logistic" },
                    "train": { "epochs": 1, "batch_size": 2 } }"#;
    let w = Workload::from_json_str(text, &dir.join("w.json")).expect("valid");
    let d = supervised(&w);
    assert_eq!(d.x_train.dim(), (7, 3));
    assert_eq!(d.n_classes, Some(4));
    for (row, &l) in d.x_train.rows().into_iter().zip(classes(&d.y_train)) {
        assert_eq!(((row[0] / 3.0) as usize) % 4, l, "labels follow their rows");
    }
    // Too few labels: the error names the labels file.
    Array1::from(vec![0i64, 1])
        .write_npy(std::fs::File::create(dir.join("y2.npy")).expect("create"))
        .expect("write");
    let w = Workload::from_json_str(&text.replace("y.npy", "y2.npy"), &dir.join("w.json"))
        .expect("valid");
    let e = w.load_data().expect_err("mismatch").to_string();
    assert!(
        e.contains("y2.npy") && e.contains("2 labels for 10 feature rows"),
        "{e}"
    );
}

#[test]
fn schema_errors_name_the_file_and_json_path() {
    let err = |json: &str| parse(json).expect_err("invalid").to_string();
    let e = err(&csv_workload("tiny.csv", r#", "test_fraction": 1.5"#));
    assert!(
        e.contains("w.json: data.test_fraction = 1.5: must be in [0, 1)"),
        "{e}"
    );
    let e = err(&csv_workload("tiny.csv", r#", "test_frac": 0.5"#));
    assert!(
        e.contains("w.json: data") && e.contains("unknown field `test_frac`"),
        "{e}"
    );
    let e = err(&csv_workload("tiny.csv", r#", "split_seed": "x""#));
    assert!(e.contains("data.split_seed"), "{e}");
    let e = err(
        r#"{ "name": "t", "data": { "kind": "parquet" }, "model": { "kind": "logistic" },
                     "train": { "epochs": 1, "batch_size": 1 } }"#,
    );
    assert!(
        e.contains("data.kind = \"parquet\": must be one of csv, npy"),
        "{e}"
    );
    let e = err(
        r#"{ "name": "t", "data": { "kind": "csv", "path": "tiny.csv" },
                     "model": { "kind": "mlp", "hidden": [4, 0] },
                     "train": { "epochs": 1, "batch_size": 1 } }"#,
    );
    assert!(e.contains("model.hidden[1] = 0: must be at least 1"), "{e}");
    let e = err(
        r#"{ "name": "t", "data": { "kind": "csv", "path": "tiny.csv" },
                     "model": { "kind": "linear" }, "train": { "epochs": 1, "batch_size": 1 } }"#,
    );
    assert!(
        e.contains("model.kind = linear: needs real-valued targets"),
        "{e}"
    );
    let e = err(
        r#"{ "name": "t", "data": { "kind": "gaussian", "dimension": 1 },
                     "model": { "kind": "gaussian" }, "train": { "epochs": 3 } }"#,
    );
    assert!(
        e.contains("train.epochs = 3: not allowed for data.kind = gaussian"),
        "{e}"
    );
    let e = err(
        r#"{ "name": "t", "data": { "kind": "gaussian", "dimension": 2,
                     "covariance": [[1.0, 2.0], [2.0, 1.0]] },
                     "model": { "kind": "gaussian" }, "train": { "steps": 3 } }"#,
    );
    assert!(
        e.contains("data.covariance") && e.contains("positive definite"),
        "{e}"
    );
    let e = err(
        &csv_workload("tiny.csv", "").replace(r#""epochs": 1"#, r#""epochs": 1, "burn_in": 1"#)
    );
    assert!(
        e.contains("train.burn_in = 1: must be below epochs = 1"),
        "{e}"
    );
    let e = err(&csv_workload("tiny.csv", "").replace(r#""name": "t""#, r#""name": "a/b""#));
    assert!(e.contains("name = \"a/b\""), "{e}");
    let e = err("{ \"name\": \"t\",\n  \"data\": }");
    assert!(e.contains("w.json:2:"), "{e}");
    let e = err(
        r#"{ "name": "t", "data": { "kind": "csv", "path": "tiny.csv" },
                     "model": { "kind": "logistic" }, "train": { "epochs": 1, "batch_size": 1 },
                     "hyper": { "lr": "fast" } }"#,
    );
    assert!(e.contains("hyper.lr"), "{e}");
    let e = err(
        r#"{ "name": "t", "data": { "kind": "csv", "path": "tiny.csv" },
                     "model": { "kind": "logistic" }, "train": { "epochs": 1, "batch_size": 1 },
                     "arch_overrides": { "formats..weights": "bf16" } }"#,
    );
    assert!(e.contains("arch_overrides"), "{e}");
}

#[test]
fn data_spec_reports_its_task() {
    let w =
        parse(&csv_workload("tiny.csv", r#", "task": "regression""#).replace("logistic", "linear"))
            .expect("valid");
    assert!(matches!(w.data, DataSpec::Csv(_)));
    let d = supervised(&w);
    assert_eq!(values(&d.y_train).len() + values(&d.y_test).len(), 4);
    assert_eq!(d.n_classes, None);
}

/// Plain `f64` minibatch SGD with the workload's `lr`, epochs and batch size, visiting the
/// training set in a fresh random order each epoch; returns the test probabilities.
fn reference_sgd(w: &Workload, d: &Dataset) -> Array2<f64> {
    let model = model_of(w, d);
    let Budget::Epochs {
        epochs, batch_size, ..
    } = w.budget
    else {
        panic!("a supervised budget");
    };
    let lr = w.hyper["lr"];
    let mut p = model.init_params(0);
    let n = d.x_train.nrows();
    for epoch in 0..epochs {
        let rng = RandomStream::new(epoch as u64, 77);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&a| rng.bits(a as u64));
        for rows in order.chunks(batch_size) {
            let (x, y) = d.batch(rows);
            let x = model.inputs_of(&x);
            let (_, g) = model.loss_and_grad(&p, Some((x.view(), &y)));
            for (p, g) in p.iter_mut().zip(&g) {
                p.scaled_add(-lr, g);
            }
        }
    }
    model.predict(&p, model.inputs_of(&d.x_test).view())
}

#[test]
fn shipped_classifier_budgets_are_enough_for_plain_sgd() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    for (name, min_acc) in [
        ("digits-logistic", 0.93),
        ("digits-mlp", 0.93),
        // Issue 14's target for the LeNet-style CNN: fp32 SGD at least 97%.
        ("digits-cnn", 0.97),
        ("iris-logistic", 0.9),
    ] {
        let w = Workload::load(root.join(format!("{name}.json"))).expect("loads");
        let d = supervised(&w);
        let probs = reference_sgd(&w, &d);
        let labels = classes(&d.y_test);
        let acc = metrics::accuracy(probs.view(), labels.view());
        let nll = metrics::nll(probs.view(), labels.view());
        let ece = metrics::ece(probs.view(), labels.view(), ECE_BINS);
        eprintln!("{name}: accuracy {acc:.4}, nll {nll:.4}, ece {ece:.4}");
        assert!(acc >= min_acc, "{name}: test accuracy {acc}");
    }
}

#[test]
fn halp_linreg_budget_lets_f64_svrg_reach_the_optimum() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    let w = Workload::load(root.join("halp-linreg.json")).expect("loads");
    let d = supervised(&w);
    let model = model_of(&w, &d);
    assert!(!model.bias_feature(), "HALP's w in R^d");
    let y = values(&d.y_train).clone();
    let opt = metrics::least_squares_optimum(d.x_train.view(), y.view(), 0.0).expect("solves");
    let data = Some((d.x_train.view(), &d.y_train));
    let opt_loss = model.loss(&column(&opt), data);
    let loss = |p: &Array1<f64>| model.loss(&column(p), data);
    let (lr, t) = (w.hyper["lr"], w.hyper["epoch_len"] as usize);
    let Budget::Epochs { epochs, .. } = w.budget else {
        panic!("epochs");
    };
    let n = d.x_train.nrows();
    let grad_i = |p: &Array1<f64>, i: usize| {
        let x = d.x_train.row(i);
        x.to_owned() * (x.dot(p) - y[i])
    };
    let mut p = Array1::<f64>::zeros(model.inputs());
    let gap0 = loss(&p) - opt_loss;
    let rng = RandomStream::new(1, 2);
    let mut step = 0u64;
    // The SVRG driver runs `epochs` outer iterations of T steps.
    for _ in 0..epochs {
        let centre = p.clone();
        let (_, full) = model.loss_and_grad(&column(&centre), data);
        let full = full[0].index_axis(Axis(1), 0).to_owned();
        for _ in 0..t {
            let i = ((rng.uniform_f64(step) * n as f64) as usize).min(n - 1);
            step += 1;
            let g = grad_i(&p, i) - grad_i(&centre, i) + &full;
            p.scaled_add(-lr, &g);
        }
    }
    let gap = loss(&p) - opt_loss;
    eprintln!("halp-linreg: f64 SVRG gap {gap0:e} -> {gap:e} (optimum loss {opt_loss:e})");
    assert!(gap < 1e-6 * gap0, "gap {gap0} -> {gap}");
}

#[test]
fn cnn_fields_are_checked_with_their_json_path() {
    let cnn = |model: &str| {
        format!(
            r#"{{ "name": "t", "data": {{ "kind": "csv", "path": "tiny.csv" }},
                 "model": {{ "kind": "cnn", {model} }},
                 "train": {{ "epochs": 1, "batch_size": 1 }} }}"#
        )
    };
    let err = |model: &str| parse(&cnn(model)).expect_err("invalid").to_string();
    let e = err(r#""layers": []"#);
    assert!(
        e.contains("model.layers = []: must list at least one layer"),
        "{e}"
    );
    let e = err(r#""layers": [{"type": "convolution", "filters": 2, "kernel": 3}]"#);
    assert!(
        e.contains("model.layers[0]") && e.contains("unknown variant"),
        "{e}"
    );
    let e = err(r#""layers": [{"type": "conv", "filters": 2, "kernal": 3}]"#);
    assert!(e.contains("model.layers[0]") && e.contains("kernal"), "{e}");
    let e = err(r#""layers": [{"type": "relu"}, {"type": "conv", "filters": 0, "kernel": 3}]"#);
    assert!(
        e.contains("model.layers[1].filters = 0: must be at least 1"),
        "{e}"
    );
    let e = err(r#""layers": [{"type": "conv", "filters": 1, "kernel": 3, "padding": 3}]"#);
    assert!(e.contains("model.layers[0].padding = 3"), "{e}");
    let e = err(r#""layers": [{"type": "maxpool", "kernel": 2, "padding": 2}]"#);
    assert!(
        e.contains("model.layers[0].padding = 2: must be at most half"),
        "{e}"
    );
    let e = err(r#""layers": [{"type": "basic_block", "filters": 4, "stride": 0}]"#);
    assert!(e.contains("model.layers[0].stride = 0"), "{e}");
    let e = err(r#""input": [1, 2], "layers": [{"type": "flatten"}]"#);
    assert!(e.contains("model.input = [1, 2]: must be [C, H, W]"), "{e}");
    let e = err(r#""layers": [{"type": "flatten"}], "l2": -1"#);
    assert!(e.contains("model.l2 = -1"), "{e}");

    // Fields that parse but do not fit the data are refused when the model is built.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    let digits = supervised(&Workload::load(root.join("digits-logistic.json")).expect("loads"));
    let build = |model: &str| {
        let w = parse(&cnn(model)).expect("valid fields");
        Model::from_spec(&w.model, &digits.shape, digits.n_classes)
            .expect_err("refused")
            .to_string()
    };
    let e = build(r#""layers": [{"type": "flatten"}]"#);
    assert!(e.contains("give model.input as [C, H, W]"), "{e}");
    let e = build(r#""input": [1, 4, 4], "layers": [{"type": "flatten"}]"#);
    assert!(
        e.contains("holds 16 values, but each example has 64"),
        "{e}"
    );
    let e = build(
        r#""input": [1, 8, 8], "layers": [{"type": "conv", "filters": 2, "kernel": 3, "stride": 9}]"#,
    );
    assert!(e.contains("end them with"), "{e}");
    // Each field takes effect: stride and padding change the output size, bias the parameters.
    let ok = |model: &str| {
        let w = parse(&cnn(model)).expect("valid fields");
        Model::from_spec(&w.model, &digits.shape, digits.n_classes).expect("builds")
    };
    let shapes = |m: &Model| m.param_shapes();
    let base = ok(
        r#""input": [1, 8, 8], "layers": [{"type": "conv", "filters": 2, "kernel": 3}, {"type": "flatten"}]"#,
    );
    assert_eq!(
        shapes(&base),
        vec![vec![9, 2], vec![1, 2], vec![72, 10], vec![1, 10]]
    );
    let strided = ok(
        r#""input": [1, 8, 8], "layers": [{"type": "conv", "filters": 2, "kernel": 3, "stride": 2, "padding": 1, "bias": false}, {"type": "flatten"}]"#,
    );
    assert_eq!(
        shapes(&strided),
        vec![vec![9, 2], vec![32, 10], vec![1, 10]]
    );
    let pooled = ok(
        r#""input": [1, 8, 8], "layers": [{"type": "avgpool", "kernel": 2, "stride": 1}, {"type": "maxpool", "kernel": 3, "padding": 1}, {"type": "batchnorm"}, {"type": "flatten"}, {"type": "linear", "out": 5}]"#,
    );
    // avgpool 2 stride 1: 7x7; maxpool 3 stride 3 pad 1: 3x3; bn: gamma, beta of 1 channel.
    assert_eq!(
        shapes(&pooled),
        vec![
            vec![1, 1],
            vec![1, 1],
            vec![9, 5],
            vec![1, 5],
            vec![5, 10],
            vec![1, 10]
        ]
    );
}
