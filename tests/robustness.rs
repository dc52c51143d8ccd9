//! Malformed and hostile inputs to every command of the `lpsim` binary (run via
//! `CARGO_BIN_EXE_lpsim`): each must end with one clear message on stderr naming what is wrong
//! and where, and a non-zero exit — never a panic, an allocation abort, a hang, a silently wrong
//! figure, or a user's file replaced.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

fn lpsim(args: &[&str]) -> Output {
    common::lpsim_in(None, args, "")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Assert a clean failure: exit code 2 (not a panic's 101 or an abort's signal), no backtrace,
/// one short message containing every `needles`.
#[track_caller]
fn assert_fails(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "expected exit 2; stderr: {err}");
    for bad in ["panicked", "backtrace", "memory allocation"] {
        assert!(!err.contains(bad), "crash: {err}");
    }
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
    assert!(err.lines().count() <= 3, "error should be short: {err}");
}

fn scratch(name: &str) -> PathBuf {
    common::scratch("robust", name)
}

/// The project root (the shipped `arch/` and `workloads/`).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn arch(name: &str) -> String {
    root().join("arch").join(name).display().to_string()
}

#[test]
fn names_get_a_did_you_mean() {
    let cases: &[(&[&str], &str)] = &[
        (&["quantize", "--format", "e4m3"], "did you mean `e4m3fn`?"),
        (
            &["quantize", "-f", "bf16", "-r", "rnee"],
            "did you mean `rne`?",
        ),
        (&["quantize", "-f", "float:e=4,mm=3"], "did you mean `m`?"),
        (
            &["quantize", "-f", "flaot:e=4,m=3"],
            "did you mean `float`?",
        ),
        (
            &[
                "gemm",
                "--acc",
                "fp32",
                "--m",
                "2",
                "--n",
                "2",
                "--k",
                "2",
                "--order",
                "seqential",
            ],
            "did you mean `sequential`?",
        ),
        (&["graph", "--algo", "lp-sgdl"], "did you mean `lp-sgd`?"),
        (
            &["graph", "--algo", "sgld", "--set", "temprature=1"],
            "did you mean `temperature`?",
        ),
    ];
    for (args, hint) in cases {
        assert_fails(&common::lpsim_in(None, args, "1\n"), &[hint]);
    }
}

/// Write `text` to `dir/name` and return the path as a string.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A workload around `data` (the JSON of its `data` section) with a logistic model.
fn logistic_workload(dir: &Path, data: &str) -> String {
    write(
        dir,
        "w.json",
        &format!(
            r#"{{"name": "w", "data": {data}, "model": {{"kind": "logistic"}},
                "train": {{"epochs": 1, "batch_size": 4}}}}"#
        ),
    )
}

#[test]
fn each_cause_is_printed_once() {
    let d = scratch("cause-once");
    let missing_data = logistic_workload(&d, r#"{"kind": "csv", "path": "nowhere.csv"}"#);
    let missing_workload = d.join("absent.json").display().to_string();
    for w in [&missing_data, &missing_workload] {
        let out = lpsim(&[
            "run",
            "--workload",
            w,
            "--algo",
            "sgd",
            "--arch",
            &arch("fp32.json"),
        ]);
        assert_fails(&out, &["No such file or directory"]);
        assert_eq!(
            stderr(&out).matches("No such file or directory").count(),
            1,
            "{}",
            stderr(&out)
        );
    }
}

/// Every way a `.npy` file can lie about its size, through every command that reads one.
#[test]
fn malformed_npy_files_are_refused_before_allocating() {
    let d = scratch("npy");
    let mut huge_len = b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec();
    huge_len.resize(20, b' ');
    let files: Vec<(&str, Vec<u8>, &str)> =
        vec![
        ("len.npy", huge_len, "header length field says 4294967295 bytes but 8 follow"),
        (
            "huge.npy",
            common::npy_bytes(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000000,), }",
                &[0; 16],
            ),
            "truncated: 16 bytes of data, the header promises 4000000000000000",
        ),
        (
            "huge2d.npy",
            common::npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }",
                &[0; 16],
            ),
            "truncated: 16 bytes of data, the header promises 8000000000000",
        ),
        (
            "overflow.npy",
            common::npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 3), }",
                &[0; 16],
            ),
            "do not fit in 64 bits",
        ),
        (
            "trunc.npy",
            common::npy_bytes(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), }",
                &[0; 16],
            ),
            "truncated: 16 bytes of data, the header promises 40",
        ),
    ];
    let good_labels = d.join("y.npy");
    std::fs::write(
        &good_labels,
        common::npy_bytes(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
            &[0; 16],
        ),
    )
    .unwrap();
    for (name, bytes, needle) in &files {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let p = p.display().to_string();
        assert_fails(
            &lpsim(&["quantize", "-f", "bf16", "--input", &p]),
            &[name, needle],
        );
        assert_fails(
            &lpsim(&["gemm", "--a", &p, "--n", "2", "--acc", "fp32"]),
            &[name, needle],
        );
        let w = logistic_workload(
            &d,
            &format!(
                r#"{{"kind": "npy", "features": "{name}", "labels": "{}"}}"#,
                good_labels.display()
            ),
        );
        assert_fails(
            &lpsim(&[
                "run",
                "--workload",
                &w,
                "--algo",
                "sgd",
                "--arch",
                &arch("fp32.json"),
            ]),
            &[name, needle],
        );
    }
}

#[test]
fn gemm_sizes_are_checked_before_allocating() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[
                "--m",
                "18446744073709551615",
                "--n",
                "18446744073709551615",
                "--k",
                "2",
            ],
            &["--m x --k (matrix A)", "do not fit in 64 bits"],
        ),
        (
            &["--m", "1000000000000", "--n", "2", "--k", "2"],
            &["would need", "TiB", "budget"],
        ),
        (
            &["--m", "2", "--n", "2", "--k", "10000000000"],
            &["would need", "GiB", "budget"],
        ),
        (
            &["--m", "100000", "--n", "100000", "--k", "100000"],
            &["would need", "budget"],
        ),
        (
            &["--m", "0", "--n", "2", "--k", "2"],
            &["--m", "at least 1"],
        ),
        (
            &["--m", "2", "--n", "0", "--k", "2"],
            &["--n", "at least 1"],
        ),
    ];
    for (dims, needles) in cases {
        let mut args = vec!["gemm", "--acc", "fp32"];
        args.extend_from_slice(dims);
        assert_fails(&lpsim(&args), needles);
    }
}

#[test]
fn gemm_product_format_must_hold_a_product() {
    let base = [
        "gemm",
        "--acc",
        "fp32",
        "--m",
        "2",
        "--n",
        "2",
        "--k",
        "2",
        "--product",
    ];
    let mut args = base.to_vec();
    args.push("e8m0fnu");
    assert_fails(&lpsim(&args), &["product format `e8m0fnu`", "no zero"]);
    let mut args = base.to_vec();
    args.push("uint8");
    assert_fails(&lpsim(&args), &["product format `uint8`", "unsigned"]);
    // A signed product format is still fine.
    let mut args = base.to_vec();
    args.push("bf16");
    assert!(lpsim(&args).status.success());
}

/// A 2-D float32 `.npy` of `rows x cols` values.
fn npy_f32(path: &Path, rows: usize, cols: usize, values: &[f32]) {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    std::fs::write(path, common::npy_bytes(&header, &data)).unwrap();
}

#[test]
fn gemm_statistics_leave_out_non_finite_exact_sums() {
    let d = scratch("gemm-nan");
    let all_nan = d.join("nan.npy");
    npy_f32(&all_nan, 2, 2, &[f32::NAN; 4]);
    let p = all_nan.display().to_string();
    let out = lpsim(&["gemm", "--a", &p, "--n", "2", "--acc", "fp32"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains("correctly rounded outputs: 1.0000"),
        "{text}"
    );
    assert!(text.contains("correctly rounded outputs: n/a"), "{text}");
    assert!(
        text.contains("4 of 4 outputs have a non-finite exact sum"),
        "{text}"
    );
    let out = lpsim(&["gemm", "--a", &p, "--n", "2", "--acc", "fp32", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["nonfinite_exact"], 4);
    assert!(v["frac_correctly_rounded"].is_null(), "{v}");
    assert!(v["max_abs_error"].is_null(), "{v}");
    // One NaN in row 0 of A: row 0 of C is left out, row 1 is measured.
    let half = d.join("half.npy");
    npy_f32(&half, 2, 2, &[f32::NAN, 1.0, 2.0, 3.0]);
    let p = half.display().to_string();
    let out = lpsim(&["gemm", "--a", &p, "--n", "2", "--acc", "fp32", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["nonfinite_exact"], 2);
    assert!(v["max_abs_error"].as_f64().unwrap().is_finite(), "{v}");
    // An accumulator overflow is an infinite error, not a skipped output.
    let (big, ones) = (d.join("big.npy"), d.join("ones.npy"));
    npy_f32(&big, 1, 2, &[60000.0, 60000.0]);
    npy_f32(&ones, 2, 1, &[1.0, 1.0]);
    let (pa, pb) = (big.display().to_string(), ones.display().to_string());
    let out = lpsim(&["gemm", "--a", &pa, "--b", &pb, "--acc", "fp16"]);
    let text = stdout(&out);
    assert!(text.contains("abs error: max inf, mean inf"), "{text}");
    assert!(text.contains("correctly rounded outputs: 1.0000"), "{text}");
    assert!(!text.contains("non-finite exact sum"), "{text}");
}

#[test]
fn outputs_never_replace_a_users_file_or_an_input() {
    let d = scratch("outputs");
    let input = write(&d, "in.txt", "0.1\n3.5\n");
    let user = write(&d, "user.txt", "my notes\n");
    let user_npy = write(&d, "user.npy", "not lpsim's");
    let q = |extra: &[&str]| {
        let mut args = vec!["quantize", "-f", "bf16", "--input", &input];
        args.extend_from_slice(extra);
        lpsim(&args)
    };
    assert_fails(&q(&["--output", &user]), &["user.txt", "--force"]);
    assert_eq!(std::fs::read_to_string(&user).unwrap(), "my notes\n");
    assert_fails(&q(&["--output", &user_npy]), &["user.npy", "--force"]);
    assert_eq!(std::fs::read_to_string(&user_npy).unwrap(), "not lpsim's");
    // The input as the output, spelled differently: refused even with --force.
    let same = d.join(".").join("in.txt").display().to_string();
    for extra in [&["--output", &input][..], &["--output", &same, "--force"]] {
        assert_fails(&q(extra), &["in.txt", "destroy the input"]);
        assert_eq!(std::fs::read_to_string(&input).unwrap(), "0.1\n3.5\n");
    }
    // A CSV lpsim wrote is replaced; --force replaces anything else.
    let ours = d.join("out.csv").display().to_string();
    assert!(q(&["--output", &ours]).status.success());
    assert!(q(&["--output", &ours]).status.success());
    assert!(q(&["--output", &user, "--force"]).status.success());
    assert!(std::fs::read_to_string(&user)
        .unwrap()
        .starts_with("input_hex,"));

    // gemm --out: the same rules, checked before the work.
    let a = d.join("a.npy");
    npy_f32(&a, 2, 2, &[1.0, 2.0, 3.0, 4.0]);
    let a = a.display().to_string();
    let g = |out: &str, force: bool| {
        let mut args = vec!["gemm", "--a", &a, "--n", "2", "--acc", "fp32", "--out", out];
        if force {
            args.push("--force");
        }
        lpsim(&args)
    };
    assert_fails(&g(&user_npy, false), &["user.npy", "--force"]);
    assert_eq!(std::fs::read_to_string(&user_npy).unwrap(), "not lpsim's");
    let before = std::fs::read(&a).unwrap();
    assert_fails(&g(&a, true), &["a.npy", "destroy the input"]);
    assert_eq!(std::fs::read(&a).unwrap(), before);
    assert!(g(&user_npy, true).status.success());
}

/// `arch/fp32.json` with `edit` applied to its JSON, written to `dir/name`.
fn edited_arch(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(arch("fp32.json")).unwrap()).unwrap();
    edit(&mut v);
    write(dir, name, &v.to_string())
}

fn cost_json(arch_file: &str, gemm: &str) -> serde_json::Value {
    let out = lpsim(&["cost", "--arch", arch_file, "--gemm", gemm, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["total"].clone()
}

#[test]
fn cost_figures_never_wrap() {
    let d = scratch("cost");
    let fp32 = arch("fp32.json");
    for gemm in ["4000000000,4000000000,1", "1,1,18446744073709551615"] {
        assert_fails(
            &lpsim(&["cost", "--arch", &fp32, "--gemm", gemm]),
            &["does not fit in 64 bits"],
        );
    }
    // A huge array is refused at load; a large one costs more cycles than 32 rows, not fewer.
    let huge = edited_arch(&d, "huge.json", |v| {
        v["compute"]["array"]["rows"] = serde_json::json!(u64::MAX)
    });
    assert_fails(
        &lpsim(&["cost", "--arch", &huge, "--gemm", "64,64,64"]),
        &["compute.array.rows = 18446744073709551615", "at most 2^53"],
    );
    let large = edited_arch(&d, "large.json", |v| {
        v["compute"]["array"]["rows"] = serde_json::json!(1u64 << 40)
    });
    let (big, small) = (cost_json(&large, "64,64,64"), cost_json(&fp32, "64,64,64"));
    assert!(big["cycles"].as_u64().unwrap() > small["cycles"].as_u64().unwrap());
    // A bandwidth whose cycles do not fit: an error naming the level, not a saturated stall.
    let slow = edited_arch(&d, "slow.json", |v| {
        v["memory"][0]["bandwidth_bits_per_cycle"] = serde_json::json!(1e-300)
    });
    assert_fails(
        &lpsim(&["cost", "--arch", &slow, "--gemm", "64,64,64"]),
        &["memory level `DRAM`", "does not fit in 64 bits"],
    );
    // Utilization stays a fraction for the largest GEMMs that can be priced.
    for gemm in ["4000000,4000000,1000", "1,1,1000000000000"] {
        let u = cost_json(&fp32, gemm)["utilization"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&u), "{gemm}: utilization {u}");
    }
    // Two GEMMs whose counts each fit but whose sum does not: refused, not wrapped.
    let g = "1,1,200000000000000000";
    cost_json(&fp32, g);
    assert_fails(
        &lpsim(&["cost", "--arch", &fp32, "--gemm", g, "--gemm", g]),
        &["a count of the actions (their sum over the work) does not fit in 64 bits"],
    );
}

#[test]
fn an_architecture_with_100000_memory_levels_is_priced() {
    // It took 26 s (a linear search of the levels per level); a map makes it linear.
    let d = scratch("levels");
    let many = edited_arch(&d, "many.json", |v| {
        let dram = v["memory"][0].clone();
        let mut levels = vec![dram];
        for i in 0..100_000 {
            levels.push(serde_json::json!({"name": format!("L{i}"), "kind": "sram",
                "size_bytes": 1 << 20, "bandwidth_bits_per_cycle": 1024}));
        }
        v["memory"] = serde_json::Value::Array(levels);
    });
    let r = cost_json(&many, "64,64,64");
    // The GEMM's traffic passes through every level; the innermost carries the most.
    let levels = r["memory"].as_array().unwrap();
    assert_eq!(levels.len(), 100_001);
    let named = |name: &str| levels.iter().find(|l| l["name"] == name).unwrap();
    assert_eq!(named("L99999")["read_bits"], 655360);
    assert_eq!(named("L0")["read_bits"], 393216);
    let dup = edited_arch(&d, "dup.json", |v| {
        let l = v["memory"][1].clone();
        v["memory"].as_array_mut().unwrap().push(l);
    });
    assert_fails(
        &lpsim(&["cost", "--arch", &dup, "--gemm", "1,1,1"]),
        &["memory: level name `SRAM` is used twice"],
    );
}

#[test]
fn hyperparameters_out_of_range_are_refused() {
    let cases: &[(&str, &str, &str)] = &[
        ("sgld", "lr=-0.1", "must be greater than 0"),
        ("sgld", "lr=0", "must be greater than 0"),
        ("sgld", "temperature=-1", "must be at least 0"),
        ("halp", "mu=-3", "must be at least 0"),
        ("lp-sgd", "delta=-0.7", "must be at least 0"),
        ("sgld", "batch=1.5", "whole number"),
    ];
    let wl = root()
        .join("workloads/iris-logistic.json")
        .display()
        .to_string();
    let fp32 = arch("fp32.json");
    for (algo, set, why) in cases {
        let name = set.split('=').next().unwrap();
        let needle = format!("hyperparameter `{name}`");
        for cmd in ["graph", "run"] {
            let mut args = vec![cmd, "--algo", algo, "--set", set, "--arch", &fp32];
            if cmd == "run" {
                args.extend(["--workload", &wl, "--out", "/nonexistent/never-written"]);
            }
            assert_fails(&lpsim(&args), &[&needle, why]);
        }
    }
}

#[test]
fn thread_counts_are_bounded() {
    let wl = root()
        .join("workloads/iris-logistic.json")
        .display()
        .to_string();
    for n in ["0", "100000", "18446744073709551615"] {
        let out = lpsim(&["run", "--workload", &wl, "--algo", "sgd", "--threads", n]);
        assert_fails(&out, &["--threads", "per core"]);
    }
    let out = lpsim(&["sweep", "nowhere.json", "--jobs", "100000"]);
    assert_fails(&out, &["--jobs", "per core"]);
}

/// A sweep spec over the shipped iris workload with `extra` top-level fields.
fn sweep_spec(dir: &Path, extra: &str) -> String {
    let wl = root().join("workloads/iris-logistic.json");
    write(
        dir,
        "sweep.json",
        &format!(
            r#"{{"name": "s", "workloads": ["{}"], "archs": ["{}"] {extra}}}"#,
            wl.display(),
            arch("fp32.json")
        ),
    )
}

#[test]
fn sweep_specs_are_checked_when_loaded() {
    let d = scratch("sweep-spec");
    let spec = sweep_spec(&d, r#", "algos": ["sgd"], "out": """#);
    let out = common::lpsim_in(Some(&d), &["sweep", &spec], "");
    assert_fails(&out, &["out = \"\"", "must name a directory"]);
    assert_eq!(
        std::fs::read_dir(&d).unwrap().count(),
        1,
        "only the spec is there"
    );
    let spec = sweep_spec(&d, r#", "algos": ["sgd", "lp-sgdl"]"#);
    let out = common::lpsim_in(Some(&d), &["sweep", &spec], "");
    assert_fails(&out, &["algos[1] = \"lp-sgdl\"", "did you mean `lp-sgd`?"]);
    assert_fails(&lpsim(&["sweep", &spec, "--out", ""]), &["--out"]);
    assert_fails(
        &lpsim(&["run", "--workload", "w.json", "--algo", "sgd", "--out", ""]),
        &["--out"],
    );
}

#[test]
fn duplicate_json_keys_are_refused() {
    let d = scratch("dup-keys");
    let fp32 = std::fs::read_to_string(arch("fp32.json")).unwrap();
    // The array's `rows` written twice.
    let dup = fp32.replacen("\"rows\"", "\"rows\": 8, \"rows\"", 1);
    assert_ne!(dup, fp32);
    let a = write(&d, "dup-arch.json", &dup);
    assert_fails(
        &lpsim(&["cost", "--arch", &a, "--gemm", "4,4,4"]),
        &["dup-arch.json", "duplicate key `rows` in compute.array"],
    );
    let w = write(
        &d,
        "dup-w.json",
        r#"{"name": "w", "data": {"kind": "gaussian", "dimension": 1},
            "model": {"kind": "gaussian"}, "train": {"steps": 10},
            "hyper": {"lr": 0.1, "lr": -5}}"#,
    );
    assert_fails(
        &lpsim(&[
            "run",
            "--workload",
            &w,
            "--algo",
            "sgld",
            "--arch",
            &arch("fp32.json"),
        ]),
        &["dup-w.json:3:", "duplicate key `lr` in hyper"],
    );
    let spec = sweep_spec(&d, r#", "algos": ["sgd"], "algos": ["sgld"]"#);
    assert_fails(
        &lpsim(&["sweep", &spec]),
        &["sweep.json", "duplicate key `algos` in the top level"],
    );
}

#[test]
fn impossible_sizes_are_refused_before_allocating() {
    let d = scratch("sizes");
    let fp32 = arch("fp32.json");
    let iris = root().join("workloads/data/iris.csv").display().to_string();
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        (
            r#"{"name": "g", "data": {"kind": "gaussian", "dimension": 100000},
                "model": {"kind": "gaussian"}, "train": {"steps": 10}}"#
                .into(),
            "sgld",
            vec![
                "data.dimension = 100000",
                "100000 x 100000 covariance",
                "would need",
            ],
        ),
        (
            r#"{"name": "r", "data": {"kind": "regression", "samples": 1000000000000,
                "features": 10}, "model": {"kind": "linear"},
                "train": {"epochs": 1, "batch_size": 4}}"#
                .into(),
            "sgd",
            vec!["data.samples = 1000000000000", "would need"],
        ),
        (
            r#"{"name": "r", "data": {"kind": "regression", "samples": 100,
                "features": 1000000000000, "informative": 1}, "model": {"kind": "linear"},
                "train": {"epochs": 1, "batch_size": 4}}"#
                .into(),
            "sgd",
            vec!["data.features = 1000000000000", "would need"],
        ),
        (
            format!(
                r#"{{"name": "m", "data": {{"kind": "csv", "path": "{iris}"}},
                    "model": {{"kind": "mlp", "hidden": [1000000000, 1000000000]}},
                    "train": {{"epochs": 1, "batch_size": 4}}}}"#
            ),
            "sgd",
            vec!["the model's 1000000009000000003 parameters", "would need"],
        ),
        (
            format!(
                r#"{{"name": "m", "data": {{"kind": "csv", "path": "{iris}"}},
                    "model": {{"kind": "mlp", "hidden": [18446744073709551615, 2]}},
                    "train": {{"epochs": 1, "batch_size": 4}}}}"#
            ),
            "sgd",
            vec!["parameter tensor", "do not fit in 64 bits"],
        ),
    ];
    for (i, (json, algo, needles)) in cases.iter().enumerate() {
        let w = write(&d, &format!("w{i}.json"), json);
        let out = lpsim(&["run", "--workload", &w, "--algo", algo, "--arch", &fp32]);
        assert_fails(&out, needles);
    }
    let wl = root()
        .join("workloads/iris-logistic.json")
        .display()
        .to_string();
    let out = lpsim(&[
        "run",
        "--workload",
        &wl,
        "--algo",
        "sgld",
        "--arch",
        &fp32,
        "--set",
        "batch=1000000000000",
    ]);
    assert_fails(&out, &["batch = 1000000000000", "would need"]);
    let out = lpsim(&[
        "graph",
        "--algo",
        "sgd",
        "--arch",
        &fp32,
        "--model",
        "mlp",
        "--hidden",
        "1000000000,10",
    ]);
    assert_fails(&out, &["parameters", "would need"]);
}

#[test]
fn graph_model_flags_are_checked() {
    let fp32 = arch("fp32.json");
    let cases: &[(&[&str], &str)] = &[
        (&["--l2", "nan"], "l2 = NaN"),
        (&["--l2=-1"], "l2 = -1"),
        (&["--features", "0"], "0 input features"),
        (&["--classes", "1"], "1 classes"),
        (&["--model", "gaussian", "--dim", "0"], "0 coordinates"),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["graph", "--algo", "sgld", "--arch", &fp32];
        args.extend_from_slice(flags);
        assert_fails(&lpsim(&args), &[needle]);
    }
}

/// The data set of a CSV classification workload on `csv` (written to `dir/name`), or the
/// error message.
fn load_csv(dir: &Path, name: &str, csv: &[u8]) -> Result<lpsim::workload::Dataset, String> {
    let path = dir.join(name);
    std::fs::write(&path, csv).unwrap();
    let json = format!(
        r#"{{"name": "t", "data": {{"kind": "csv", "path": "{}", "test_fraction": 0}},
            "model": {{"kind": "logistic"}}, "train": {{"epochs": 1, "batch_size": 2}}}}"#,
        path.display()
    );
    let w = lpsim::workload::Workload::from_json_str(&json, &dir.join("w.json"))
        .map_err(|e| e.to_string())?;
    match w.load_data().map_err(|e| e.to_string())? {
        lpsim::workload::Problem::Supervised(d) => Ok(d),
        lpsim::workload::Problem::Sampling(_) => Err("not a data set".into()),
    }
}

#[test]
fn csv_byte_order_mark_quoting_and_line_numbers() {
    let d = scratch("csv");
    let plain = load_csv(&d, "plain.csv", b"0.5,1.5,0\n-1,2,1\n2.5,0,1\n").unwrap();
    assert_eq!(plain.x_train.nrows(), 3);
    // A UTF-8 byte-order mark, CRLF line ends, quoted fields and no final newline: same data.
    let bom = load_csv(
        &d,
        "bom.csv",
        b"\xef\xbb\xbf0.5,1.5,0\r\n\"-1\", 2 ,1\r\n2.5,\"0\",\"1\"",
    )
    .unwrap();
    assert_eq!(bom, plain);
    // A scikit-learn header behind a BOM is still read as the header.
    let header = load_csv(
        &d,
        "hdr.csv",
        b"\xef\xbb\xbf3,2,a,b\n0.5,1.5,0\n-1,2,1\n2.5,0,1\n",
    )
    .unwrap();
    assert_eq!(header.x_train, plain.x_train);
    // Lines are counted as written: blank lines count, a last line without a newline too.
    let e = load_csv(&d, "gap.csv", b"1,2,0\n\n   \n1,2,1\n1,x,0").unwrap_err();
    assert!(
        e.contains("gap.csv:5:") && e.contains("field 2 (`x`)"),
        "{e}"
    );
    let e = load_csv(&d, "count.csv", b"1,2,0\n\n1,2\n").unwrap_err();
    assert!(e.contains("count.csv:3:") && e.contains("found 2"), "{e}");
    let e = load_csv(&d, "utf8.csv", b"1,2,0\n1,\xff,1\n").unwrap_err();
    assert!(
        e.contains("utf8.csv:2:") && e.contains("not valid UTF-8"),
        "{e}"
    );
    // A label-only table has no features: refused, not trained.
    let e = load_csv(&d, "labels.csv", b"0\n1\n0\n1\n").unwrap_err();
    assert!(
        e.contains("labels.csv:1:") && e.contains("at least one feature"),
        "{e}"
    );
}

#[test]
fn bench_sizes_and_threads_are_checked() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["bench", "quantize", "--size", "1000000000000"],
            &["--size", "would need"],
        ),
        (
            &["bench", "gemm", "--size", "10000000"],
            &["--size", "would need"],
        ),
        (
            &["bench", "gemm", "--size", "18446744073709551615"],
            &["do not fit in 64 bits"],
        ),
        (
            &["bench", "quantize", "--threads", "100000"],
            &["--threads", "per core"],
        ),
        (
            &["bench", "gemm", "--threads", "0"],
            &["--threads", "per core"],
        ),
    ];
    for (args, needles) in cases {
        assert_fails(&lpsim(args), needles);
    }
}
