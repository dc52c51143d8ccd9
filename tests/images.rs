//! Issue 14 item 3: image data sets. Each loader reads small files the tests write in that exact
//! format (IDX plain and gzip, CIFAR-10 binary batches, `.npy` in both layouts) and refuses
//! truncated, over-long or mismatched files with a message naming the file.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use lpsim::workload::{Dataset, Problem, Targets, Workload};
use ndarray::{Array1, Array3, Array4};
use ndarray_npy::WriteNpyExt;

/// An IDX file of unsigned bytes with dimensions `dims`.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Loads a workload whose `data` section is `data` (paths relative to `dir`).
fn load(dir: &Path, data: &str) -> Result<Dataset, String> {
    let json = format!(
        r#"{{"name": "img", "data": {data}, "model": {{"kind": "mlp", "hidden": [4]}},
            "train": {{"epochs": 1, "batch_size": 2}}}}"#
    );
    let w = write(dir, "w.json", json.as_bytes());
    let wl = Workload::load(&w).map_err(|e| e.to_string())?;
    match wl.load_data().map_err(|e| e.to_string())? {
        Problem::Supervised(d) => Ok(d),
        Problem::Sampling(_) => panic!("images are supervised"),
    }
}

fn classes(t: &Targets) -> Vec<usize> {
    match t {
        Targets::Classes(c) => c.to_vec(),
        Targets::Values(_) => panic!("classes"),
    }
}

/// Five 2 x 3 images with pixel `10 i + k` and labels `i % 3`, and two test images.
fn mnist_like(dir: &Path, gz: bool) {
    let pixels: Vec<u8> = (0..5u8)
        .flat_map(|i| (0..6u8).map(move |k| 10 * i + k))
        .collect();
    let labels: Vec<u8> = (0..5u8).map(|i| i % 3).collect();
    let pack = |b: Vec<u8>| if gz { gzip(&b) } else { b };
    write(dir, "train-images", &pack(idx(&[5, 2, 3], &pixels)));
    write(dir, "train-labels", &pack(idx(&[5], &labels)));
    write(dir, "test-images", &pack(idx(&[2, 2, 3], &pixels[..12])));
    write(dir, "test-labels", &pack(idx(&[2], &[1, 2])));
}

const IDX: &str = r#"{"kind": "images", "format": "idx", "images": "train-images",
    "labels": "train-labels", "test_images": "test-images", "test_labels": "test-labels""#;

#[test]
fn idx_plain_and_gzip_give_the_same_images_in_file_order() {
    for gz in [false, true] {
        let dir = common::scratch("images", if gz { "idx-gz" } else { "idx" });
        mnist_like(&dir, gz);
        let d = load(&dir, &format!("{IDX}}}")).unwrap();
        assert_eq!(d.shape, vec![1, 2, 3], "one channel of 2 x 3");
        assert_eq!(d.x_train.dim(), (5, 6));
        assert_eq!(d.x_test.dim(), (2, 6));
        for i in 0..5 {
            for k in 0..6 {
                assert_eq!(d.x_train[[i, k]], f64::from(10 * i as u8 + k as u8) / 255.0);
            }
        }
        assert_eq!(classes(&d.y_train), [0, 1, 2, 0, 1]);
        assert_eq!(classes(&d.y_test), [1, 2]);
        assert_eq!(
            d.n_classes,
            Some(10),
            "IDX data sets have ten classes unless told"
        );
    }
}

#[test]
fn limit_keeps_the_first_examples_of_each_set() {
    let dir = common::scratch("images", "limit");
    mnist_like(&dir, true);
    let d = load(&dir, &format!(r#"{IDX}, "limit": 3, "n_classes": 3}}"#)).unwrap();
    assert_eq!(d.x_train.nrows(), 3);
    assert_eq!(d.x_test.nrows(), 2);
    assert_eq!(classes(&d.y_train), [0, 1, 2]);
    assert_eq!(d.n_classes, Some(3));
}

#[test]
fn without_test_files_a_fraction_is_held_out() {
    let dir = common::scratch("images", "split");
    mnist_like(&dir, false);
    let data = r#"{"kind": "images", "format": "idx", "images": "train-images",
        "labels": "train-labels", "test_fraction": 0.4, "split_seed": 3}"#;
    let d = load(&dir, data).unwrap();
    assert_eq!((d.x_train.nrows(), d.x_test.nrows()), (3, 2));
    // Every image lands in exactly one set, whole.
    let mut firsts: Vec<u64> = d
        .x_train
        .column(0)
        .iter()
        .chain(d.x_test.column(0).iter())
        .map(|v| (v * 255.0).round() as u64)
        .collect();
    firsts.sort();
    assert_eq!(firsts, [0, 10, 20, 30, 40]);
}

/// CIFAR-10 records: label `i % 10`, pixel `k` of record `i` = `(i + k) mod 256`.
fn cifar_batch(first: usize, n: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for i in first..first + n {
        b.push((i % 10) as u8);
        b.extend((0..3072).map(|k| ((i + k) % 256) as u8));
    }
    b
}

#[test]
fn cifar10_batches_are_read_in_order_with_three_planes() {
    let dir = common::scratch("images", "cifar");
    write(&dir, "data_batch_1.bin", &cifar_batch(0, 2));
    write(&dir, "data_batch_2.bin", &cifar_batch(2, 1));
    write(&dir, "test_batch.bin", &cifar_batch(7, 2));
    let data = r#"{"kind": "images", "format": "cifar10",
        "batches": ["data_batch_1.bin", "data_batch_2.bin"], "test_batches": ["test_batch.bin"]}"#;
    let d = load(&dir, data).unwrap();
    assert_eq!(d.shape, vec![3, 32, 32]);
    assert_eq!(d.x_train.dim(), (3, 3072));
    assert_eq!(classes(&d.y_train), [0, 1, 2]);
    assert_eq!(classes(&d.y_test), [7, 8]);
    // Record 2's green plane starts at byte 1024 of its pixels.
    assert_eq!(
        d.x_train[[2, 1024]],
        f64::from(((2 + 1024) % 256) as u8) / 255.0
    );
    assert_eq!(d.x_test[[1, 5]], 13.0 / 255.0, "record 8, byte 5");
}

#[test]
fn npy_images_in_both_layouts() {
    let dir = common::scratch("images", "npy");
    let x4 = Array4::from_shape_fn((4, 2, 2, 2), |(n, c, h, w)| {
        (n * 8 + c * 4 + h * 2 + w) as f32
    });
    x4.write_npy(std::fs::File::create(dir.join("x4.npy")).unwrap())
        .unwrap();
    let x3 = Array3::from_shape_fn((4, 2, 2), |(n, h, w)| (n * 4 + h * 2 + w) as u8);
    x3.write_npy(std::fs::File::create(dir.join("x3.npy")).unwrap())
        .unwrap();
    let y = Array1::from(vec![0i64, 1, 1, 0]);
    y.write_npy(std::fs::File::create(dir.join("y.npy")).unwrap())
        .unwrap();
    let y2 = Array1::from(vec![1i64, 0]);
    y2.write_npy(std::fs::File::create(dir.join("y2.npy")).unwrap())
        .unwrap();
    let x4t = Array4::<f32>::zeros((2, 2, 2, 2));
    x4t.write_npy(std::fs::File::create(dir.join("x4t.npy")).unwrap())
        .unwrap();
    let d = load(
        &dir,
        r#"{"kind": "images", "format": "npy", "images": "x4.npy", "labels": "y.npy",
            "test_images": "x4t.npy", "test_labels": "y2.npy"}"#,
    )
    .unwrap();
    assert_eq!(d.shape, vec![2, 2, 2]);
    assert_eq!(
        d.x_train.row(1).to_vec(),
        (8..16).map(f64::from).collect::<Vec<_>>(),
        "floats as they are"
    );
    assert_eq!(d.n_classes, Some(2));
    let d = load(
        &dir,
        r#"{"kind": "images", "format": "npy", "images": "x3.npy", "labels": "y.npy",
            "test_fraction": 0.25}"#,
    )
    .unwrap();
    assert_eq!(d.shape, vec![1, 2, 2]);
    assert!(
        d.x_train.iter().all(|v| (0.0..=15.0 / 255.0).contains(v)),
        "bytes / 255"
    );
}

#[test]
fn standardization_is_per_channel_with_training_statistics() {
    let dir = common::scratch("images", "standardize");
    write(&dir, "b1.bin", &cifar_batch(0, 3));
    write(&dir, "t.bin", &cifar_batch(5, 1));
    let data = r#"{"kind": "images", "format": "cifar10", "batches": ["b1.bin"],
        "test_batches": ["t.bin"], "standardize": true}"#;
    let d = load(&dir, data).unwrap();
    let s = d.standardization.as_ref().expect("standardized");
    for c in 0..3 {
        let plane = |x: &ndarray::Array2<f64>| -> Vec<f64> {
            x.rows()
                .into_iter()
                .flat_map(|r| {
                    r.iter()
                        .skip(c * 1024)
                        .take(1024)
                        .copied()
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let v = plane(&d.x_train);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 1e-12, "channel {c}: mean {mean}");
        assert!((var - 1.0).abs() < 1e-12, "channel {c}: variance {var}");
        // One mean and scale per channel, applied to the test set too.
        assert!(s
            .mean
            .iter()
            .skip(c * 1024)
            .take(1024)
            .all(|&m| m == s.mean[c * 1024]));
        let raw = f64::from(((5 + c * 1024) % 256) as u8) / 255.0;
        let want = (raw - s.mean[c * 1024]) / s.scale[c * 1024];
        assert!((d.x_test[[0, c * 1024]] - want).abs() < 1e-12);
    }
}

/// Loads `data` expecting an error containing every needle.
fn refused(dir: &Path, data: &str, needles: &[&str]) {
    let e = load(dir, data).expect_err("refused");
    for n in needles {
        assert!(e.contains(n), "`{e}` lacks `{n}`");
    }
}

#[test]
fn broken_files_are_refused_naming_the_file() {
    let dir = common::scratch("images", "broken");
    mnist_like(&dir, false);
    let pixels = vec![7u8; 5 * 6];
    // Truncated: the header says 5 images, the data hold 4 and a half.
    write(&dir, "short", &idx(&[5, 2, 3], &pixels[..27]));
    let d = r#"{"kind": "images", "format": "idx", "images": "short", "labels": "train-labels"}"#;
    refused(&dir, d, &["short", "truncated", "30 bytes", "27"]);
    // Over-long.
    let mut long = idx(&[5, 2, 3], &pixels);
    long.push(1);
    write(&dir, "long", &long);
    let d = r#"{"kind": "images", "format": "idx", "images": "long", "labels": "train-labels"}"#;
    refused(&dir, d, &["long", "longer than its header"]);
    // Not IDX, wrong element type, wrong rank.
    write(&dir, "text", b"P5 2 3 255\n");
    let d = r#"{"kind": "images", "format": "idx", "images": "text", "labels": "train-labels"}"#;
    refused(&dir, d, &["text", "not an IDX file"]);
    let mut ints = idx(&[5, 2, 3], &pixels);
    ints[2] = 0x0c;
    write(&dir, "ints", &ints);
    let d = r#"{"kind": "images", "format": "idx", "images": "ints", "labels": "train-labels"}"#;
    refused(&dir, d, &["ints", "0x0c", "unsigned bytes"]);
    let d = r#"{"kind": "images", "format": "idx", "images": "train-labels", "labels": "train-labels"}"#;
    refused(&dir, d, &["train-labels", "1 dimensions", "expected 3"]);
    // Labels that do not match.
    write(&dir, "few-labels", &idx(&[4], &[0, 1, 2, 3]));
    let d =
        r#"{"kind": "images", "format": "idx", "images": "train-images", "labels": "few-labels"}"#;
    refused(&dir, d, &["few-labels", "4 labels for 5 images"]);
    write(&dir, "big-labels", &idx(&[5], &[0, 1, 12, 3, 4]));
    let d =
        r#"{"kind": "images", "format": "idx", "images": "train-images", "labels": "big-labels"}"#;
    refused(
        &dir,
        d,
        &[
            "big-labels",
            "example 2",
            "label 12 is out of range",
            "10 classes",
        ],
    );
    // A CIFAR batch cut inside a record.
    let mut cut = cifar_batch(0, 2);
    cut.truncate(4000);
    write(&dir, "cut.bin", &cut);
    refused(
        &dir,
        r#"{"kind": "images", "format": "cifar10", "batches": ["cut.bin"]}"#,
        &[
            "cut.bin",
            "4000 bytes",
            "not a whole number of CIFAR-10 records",
        ],
    );
    // A missing file.
    refused(
        &dir,
        r#"{"kind": "images", "format": "cifar10", "batches": ["nope.bin"]}"#,
        &["nope.bin"],
    );
    // .npy of the wrong rank.
    let flat = Array1::<f32>::zeros(6);
    flat.write_npy(std::fs::File::create(dir.join("flat.npy")).unwrap())
        .unwrap();
    let y = Array1::from(vec![0i64; 6]);
    y.write_npy(std::fs::File::create(dir.join("y.npy")).unwrap())
        .unwrap();
    refused(
        &dir,
        r#"{"kind": "images", "format": "npy", "images": "flat.npy", "labels": "y.npy"}"#,
        &["flat.npy", "shape [6]", "N x H x W"],
    );
}

#[test]
fn fields_that_do_not_fit_the_format_are_refused() {
    let dir = common::scratch("images", "fields");
    mnist_like(&dir, false);
    let cases: [(&str, &[&str]); 6] = [
        (
            r#"{"kind": "images", "format": "idx", "images": "train-images"}"#,
            &["data.labels", "required for format = idx"],
        ),
        (
            r#"{"kind": "images", "format": "idx", "images": "a", "labels": "b", "batches": ["c"]}"#,
            &["data.batches", "only for format = cifar10"],
        ),
        (
            r#"{"kind": "images", "format": "cifar10", "batches": ["a"], "images": "b"}"#,
            &["data.images", "not for format = cifar10"],
        ),
        (
            r#"{"kind": "images", "format": "cifar10", "batches": []}"#,
            &["data.batches", "at least one batch file"],
        ),
        (
            &format!(r#"{IDX}, "test_fraction": 0.1}}"#),
            &["data.test_fraction", "not with test files"],
        ),
        (
            r#"{"kind": "images", "format": "png", "images": "a", "labels": "b"}"#,
            &["format", "png"],
        ),
    ];
    for (data, needles) in cases {
        refused(&dir, data, needles);
    }
}

/// The 8 x 8 digits as IDX images: an MLP trains on them through `lpsim run`, and reaches the
/// accuracy it reaches on the same pixels as a CSV table (same split, same standardization
/// statistics per channel vs per pixel aside).
#[test]
fn an_mlp_learns_digits_read_as_idx_images() {
    let dir = common::scratch("images", "digits");
    let root = env!("CARGO_MANIFEST_DIR");
    let w = Workload::load(Path::new(root).join("workloads/digits-mlp.json")).unwrap();
    let Problem::Supervised(d) = w.load_data().unwrap() else {
        panic!("digits are supervised")
    };
    let (x, y) = (&d.x_train, classes(&d.y_train));
    // digits-mlp standardizes; undo nothing: write the standardized values' ranks as bytes.
    let lo = x.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let bytes: Vec<u8> = x
        .iter()
        .map(|v| (255.0 * (v - lo) / (hi - lo)).round() as u8)
        .collect();
    write(
        &dir,
        "img.gz",
        &gzip(&idx(&[x.nrows() as u32, 8, 8], &bytes)),
    );
    write(
        &dir,
        "lab.gz",
        &gzip(&idx(
            &[x.nrows() as u32],
            &y.iter().map(|&c| c as u8).collect::<Vec<_>>(),
        )),
    );
    let json = r#"{"name": "digits-idx", "data": {"kind": "images", "format": "idx",
        "images": "img.gz", "labels": "lab.gz", "standardize": true},
        "model": {"kind": "mlp", "hidden": [32]},
        "train": {"epochs": 4, "batch_size": 64}, "hyper": {"lr": 0.2}}"#;
    let wpath = write(&dir, "digits-idx.json", json.as_bytes());
    let out = dir.join("out");
    let o = common::lpsim_in(
        None,
        &[
            "run",
            "--workload",
            wpath.to_str().unwrap(),
            "--algo",
            "sgd",
            "--arch",
            &format!("{root}/arch/fp32.json"),
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let acc = r["metrics"]["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.9, "test accuracy {acc}");
}

/// Issue 14 item 3's augmentation: `data.augment` is checked field by field (with its JSON
/// path), refused on other data kinds, takes effect on the training batches of a run (same seed,
/// same report on 1 and 2 threads; another seed, other batches), is counted as host work, and
/// is refused by the SVRG family.
#[test]
fn augmentation_is_checked_counted_deterministic_and_refused_where_it_cannot_apply() {
    let dir = common::scratch("images", "augment");
    mnist_like(&dir, false);
    let with = |aug: &str| format!(r#"{IDX}, "augment": {aug}}}"#);
    let cases: [(String, &[&str]); 4] = [
        (
            with(r#"{"crop_padding": 65}"#),
            &["data.augment.crop_padding", "65", "at most 64"],
        ),
        (
            with(r#"{"crop_padding": 0, "flip": false}"#),
            &["data.augment", "changes nothing"],
        ),
        (with(r#"{"flip": "yes"}"#), &["augment", "flip"]),
        (with(r#"{"crop_padding": 2, "rotate": 5}"#), &["rotate"]),
    ];
    for (data, needles) in &cases {
        refused(&dir, data, needles);
    }
    // Only image data sets have images to crop.
    refused(
        &dir,
        r#"{"kind": "regression", "n": 20, "features": 3, "augment": {"flip": true}}"#,
        &["augment"],
    );
    assert!(load(&dir, &with(r#"{"crop_padding": 1, "flip": true}"#)).is_ok());

    let run = |name: &str, algo: &str, aug: Option<&str>, seed: &str, threads: &str| {
        let data = match aug {
            Some(a) => with(a),
            None => format!("{IDX}}}"),
        };
        let json = format!(
            r#"{{"name": "aug", "data": {data}, "model": {{"kind": "mlp", "hidden": [4]}},
                "train": {{"epochs": 2, "batch_size": 2}}}}"#
        );
        let w = write(&dir, &format!("{name}.json"), json.as_bytes());
        let out = dir.join(name);
        let o = common::lpsim_in(
            None,
            &[
                "run",
                "--workload",
                w.to_str().unwrap(),
                "--algo",
                algo,
                "--arch",
                &format!("{}/arch/bfp8.json", env!("CARGO_MANIFEST_DIR")),
                "--seed",
                seed,
                "--threads",
                threads,
                "--quiet",
                "--out",
                out.to_str().unwrap(),
            ],
            "",
        );
        (o, out)
    };
    let aug = Some(r#"{"crop_padding": 1, "flip": true}"#);
    let report = |out: &Path| std::fs::read_to_string(out.join("report.json")).unwrap();
    let (o1, a1) = run("a1", "lp-sgld-vc", aug, "4", "1");
    assert!(
        o1.status.success(),
        "{}",
        String::from_utf8_lossy(&o1.stderr)
    );
    let (o2, a2) = run("a2", "lp-sgld-vc", aug, "4", "2");
    assert!(o2.status.success());
    assert_eq!(report(&a1), report(&a2), "the same on 1 and 2 threads");
    let r: lpsim::report::RunReport = serde_json::from_str(&report(&a1)).unwrap();
    // Five 1 x 2 x 3 training images, batches of 2, 3 steps an epoch, 2 epochs: 6 batches of
    // 2 images of 6 values, read and written at bfp8's 8 bits.
    assert_eq!(r.cost.host.elements, 6 * 2 * 6);
    assert_eq!(r.cost.host.bytes, 6 * 2 * 6 * 2);
    let md = std::fs::read_to_string(a1.join("report.md")).unwrap();
    assert!(
        md.contains("| host: values augmented (not priced) | 72 |"),
        "{md}"
    );
    // Without augmentation: no host work, and other training values.
    let (o3, plain) = run("plain", "lp-sgld-vc", None, "4", "1");
    assert!(o3.status.success());
    let p: lpsim::report::RunReport = serde_json::from_str(&report(&plain)).unwrap();
    assert_eq!(p.cost.host, lpsim::cost::HostWork::default());
    assert_ne!(p.metrics["train_loss"], r.metrics["train_loss"]);
    // The SVRG family refuses augmented batches, saying why.
    let (o4, _) = run("svrg", "svrg", aug, "4", "1");
    assert!(!o4.status.success());
    let err = String::from_utf8_lossy(&o4.stderr);
    assert!(
        err.contains("augment") && err.contains("full pass"),
        "{err}"
    );
}
