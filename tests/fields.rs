//! Every field an architecture file accepts takes effect or is refused: for each field of
//! `arch/bf16.json` (and each optional field it leaves out), a copy of the file with that one
//! field changed must either be refused with an error naming the field, or give a run whose
//! report differs from the unchanged file's. `description` is the one exception: it is a line
//! for people and is only shown, never used.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// `v` with the JSON object member at `path` (`/a/b/0/c`) set to `new`, creating objects on the
/// way.
fn with_field(v: &Value, path: &str, new: Value) -> Value {
    let mut out = v.clone();
    let mut at = &mut out;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        at = match at {
            Value::Array(a) => &mut a[p.parse::<usize>().expect("an index")],
            Value::Object(o) if last => {
                o.insert(p.to_string(), new);
                return out;
            }
            Value::Object(o) => o.entry(p.to_string()).or_insert_with(|| json!({})),
            _ => panic!("{path}: not a container at {p}"),
        };
    }
    *at = new;
    out
}

/// The report of `algo` on `workload` with the architecture `arch` (a JSON value written to a
/// scratch file), short budget; or the error's text.
fn report(
    dir: &Path,
    name: &str,
    arch: &Value,
    algo: &str,
    workload: &str,
) -> Result<Value, String> {
    let file: PathBuf = dir.join(format!("{name}.json"));
    std::fs::write(&file, arch.to_string()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut set = BTreeMap::new();
    set.insert("epochs".to_string(), "2".to_string());
    set.insert("epoch_len".to_string(), "3".to_string());
    if algo.contains("sgld") {
        set.insert("burn_in".to_string(), "1".to_string());
    }
    if algo == "lp-svrg" {
        // The workload's 8-bit fixed grid does not fit float weights: keep them in bf16.
        set.insert("delta".to_string(), "0".to_string());
    }
    lpsim::run::run_paths(&root.join(workload), algo, &file, 0, set)
        .map(|r| serde_json::to_value(r).unwrap())
        .map_err(|e| e.to_string())
}

#[test]
fn every_architecture_field_takes_effect_or_is_refused() {
    let dir = common::scratch("fields", "arch");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("arch/bf16.json")).unwrap();
    let base: Value = serde_json::from_str(&text).unwrap();
    let digits = "workloads/digits-logistic.json";
    let halp = "workloads/halp-linreg.json";
    // (field, new value, algorithm, workload): the algorithm is one that uses the field.
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("/name", json!("bf16-b"), "lp-sgd", digits),
        ("/technology/node_nm", json!(22), "lp-sgd", digits),
        ("/technology/clock_ghz", json!(2.0), "lp-sgd", digits),
        ("/formats/input", json!("e4m3fn"), "lp-sgd", digits),
        ("/formats/weights", json!("fp16"), "lp-sgd", digits),
        ("/formats/activations", json!("fp16"), "lp-sgd", digits),
        ("/formats/gradients", json!("fp16"), "lp-sgd", digits),
        ("/formats/updates", json!("bf16"), "lp-svrg", halp),
        ("/formats/mac/a", json!("fp16"), "lp-sgd", digits),
        ("/formats/mac/b", json!("fp16"), "lp-sgd", digits),
        ("/formats/mac/product", json!("bf16"), "lp-sgd", digits),
        ("/formats/mac/fused", json!(false), "lp-sgd", digits),
        ("/formats/mac/accumulator", json!("fp16"), "lp-sgd", digits),
        ("/formats/mac/acc_rounding", json!("rtz"), "lp-sgd", digits),
        ("/formats/mac/order", json!("pairwise"), "lp-sgd", digits),
        ("/formats/rounding/input", json!("sr"), "lp-sgd", digits),
        ("/formats/rounding/weights", json!("sr"), "lp-sgd", digits),
        (
            "/formats/rounding/activations",
            json!("rtz"),
            "lp-sgd",
            digits,
        ),
        (
            "/formats/rounding/gradients",
            json!("rtz"),
            "lp-sgd",
            digits,
        ),
        ("/formats/rounding/updates", json!("sr"), "lp-svrg", halp),
        ("/compute/array/rows", json!(16), "lp-sgd", digits),
        ("/compute/array/cols", json!(16), "lp-sgd", digits),
        ("/compute/array/dataflow", json!("ws"), "lp-sgd", digits),
        ("/compute/vector/lanes", json!(4), "lp-sgd", digits),
        ("/compute/vector/format", json!("bf16"), "lp-sgd", digits),
        ("/compute/rng/kind", json!("none"), "lp-sgd", digits),
        (
            "/compute/rng/bits_per_cycle",
            json!(1),
            "lp-sgld-naive",
            digits,
        ),
        ("/memory/0/name", json!("HBM"), "lp-sgd", digits),
        ("/memory/0/kind", json!("sram"), "lp-sgd", digits),
        (
            "/memory/0/bandwidth_bits_per_cycle",
            json!(1),
            "lp-sgd",
            digits,
        ),
        ("/memory/0/read_pj_per_bit", json!(1.0), "lp-sgd", digits),
        ("/memory/0/write_pj_per_bit", json!(1.0), "lp-sgd", digits),
        ("/memory/1/name", json!("L2"), "lp-sgd", digits),
        ("/memory/1/kind", json!("reg"), "lp-sgd", digits),
        ("/memory/1/size_bytes", json!(8192), "lp-sgd", digits),
        (
            "/memory/1/bandwidth_bits_per_cycle",
            json!(1),
            "lp-sgd",
            digits,
        ),
        ("/energy/table", json!("aladdin40"), "lp-sgd", digits),
        (
            "/energy/overrides",
            json!({"fma:bf16 x bf16 + fp32": 1.0}),
            "lp-sgd",
            digits,
        ),
        ("/area/table", json!("aladdin40"), "lp-sgd", digits),
        ("/area/overrides", json!({"mac": 1.0}), "lp-sgd", digits),
        ("/full_precision/format", json!("bf16"), "sgd", digits),
        (
            "/full_precision/mac",
            json!({"a": "fp32", "b": "fp32", "fused": false, "accumulator": "fp32"}),
            "sgd",
            digits,
        ),
        (
            "/full_precision/array",
            json!({"rows": 8, "cols": 8, "dataflow": "os"}),
            "sgd",
            digits,
        ),
    ];
    let mut baselines: BTreeMap<(&str, &str), Value> = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, (path, new, algo, workload)) in cases.into_iter().enumerate() {
        let reference = baselines.entry((algo, workload)).or_insert_with(|| {
            report(&dir, &format!("base-{i}"), &base, algo, workload).expect("the base runs")
        });
        let field = path.trim_start_matches('/').replace('/', ".");
        match report(
            &dir,
            &format!("case-{i}"),
            &with_field(&base, path, new),
            algo,
            workload,
        ) {
            Ok(r) if r == *reference => problems.push(format!("{field}: no effect on {algo}")),
            Ok(_) => {}
            Err(e) => {
                // A refusal names the field (its last key, or its section for a rule that
                // relates several fields).
                let key = field.rsplit('.').next().unwrap_or(&field);
                let section = field.split('.').next().unwrap_or(&field);
                if !(e.contains(key) || e.contains(section)) {
                    problems.push(format!("{field}: refused without naming it: {e}"));
                }
            }
        }
    }
    // Every leaf of the shipped file is covered (or is `description`).
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The same for a workload file: each field of `workloads/iris-logistic.json` (and the optional
/// ones it leaves out) changed on its own changes the report of a sampler's run, or is refused
/// with an error naming it. `description` is the exception, as above.
#[test]
fn every_workload_field_takes_effect_or_is_refused() {
    let dir = common::scratch("fields", "workload");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("workloads/iris-logistic.json")).unwrap();
    let mut base: Value = serde_json::from_str(&text).unwrap();
    // The data path relative to the project, wherever the copy is written.
    base["data"]["path"] = json!(root.join("workloads/data/iris.csv").display().to_string());
    let run = |name: &str, w: &Value| -> Result<Value, String> {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, w.to_string()).unwrap();
        let arch = root.join("arch/bf16.json");
        lpsim::run::run_paths(&file, "lp-sgld-vc", &arch, 0, BTreeMap::new())
            .map(|r| serde_json::to_value(r).unwrap())
            .map_err(|e| e.to_string())
    };
    let reference = run("base", &base).expect("the base runs");
    let cases: Vec<(&str, Value)> = vec![
        ("/name", json!("iris-b")),
        ("/data/label_column", json!(0)),
        ("/data/header", json!("absent")),
        ("/data/task", json!("regression")),
        ("/data/n_classes", json!(4)),
        ("/data/test_fraction", json!(0.3)),
        ("/data/standardize", json!(false)),
        ("/data/split_seed", json!(1)),
        ("/model/l2", json!(0.1)),
        ("/model/bias", json!(false)),
        ("/train/epochs", json!(12)),
        ("/train/batch_size", json!(8)),
        ("/train/burn_in", json!(15)),
        ("/train/thin", json!(3)),
        ("/arch_overrides", json!({"formats.weights": "fp16"})),
        ("/hyper/lr", json!(0.1)),
        ("/hyper/temperature", json!(0.5)),
    ];
    let mut problems = Vec::new();
    for (i, (path, new)) in cases.into_iter().enumerate() {
        let field = path.trim_start_matches('/').replace('/', ".");
        match run(&format!("case-{i}"), &with_field(&base, path, new)) {
            Ok(r) if r == reference => problems.push(format!("{field}: no effect")),
            Ok(_) => {}
            Err(e) => {
                // Refused naming the field, or the data file read differently because of it
                // (an error at `iris.csv:line`: e.g. the label column now holds measurements).
                let key = field.rsplit('.').next().unwrap_or(&field);
                if !(e.contains(key) || e.contains("iris.csv:")) {
                    problems.push(format!("{field}: refused without naming it: {e}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The fields of the generated data kinds: a `regression` workload (`halp-linreg`) under `sgd`
/// and a `gaussian` target (`gaussian-toy`) under `sgld`, each field changed on its own.
#[test]
fn every_generated_data_field_takes_effect_or_is_refused() {
    let dir = common::scratch("fields", "generated");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let short = |algo: &str| {
        let mut set = BTreeMap::new();
        set.insert("epochs".to_string(), "2".to_string());
        set.insert("epoch_len".to_string(), "50".to_string());
        if algo == "sgld" {
            set.insert("burn_in".to_string(), "50".to_string());
        }
        set
    };
    let run = |name: &str, w: &Value, algo: &str| -> Result<Value, String> {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, w.to_string()).unwrap();
        let arch = root.join("arch/fp32.json");
        lpsim::run::run_paths(&file, algo, &arch, 0, short(algo))
            .map(|r| serde_json::to_value(r).unwrap())
            .map_err(|e| e.to_string())
    };
    let load = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(root.join(f)).unwrap()).unwrap()
    };
    let regression = load("workloads/halp-linreg.json");
    let gaussian = load("workloads/gaussian-toy.json");
    let cases: Vec<(&Value, &str, &str, Value)> = vec![
        (&regression, "sgd", "/data/samples", json!(500)),
        (&regression, "sgd", "/data/features", json!(50)),
        (&regression, "sgd", "/data/informative", json!(5)),
        (&regression, "sgd", "/data/noise", json!(2.0)),
        (&regression, "sgd", "/data/bias", json!(1.0)),
        (&regression, "sgd", "/data/seed", json!(1)),
        (&regression, "sgd", "/data/test_fraction", json!(0.2)),
        (&regression, "sgd", "/data/standardize", json!(true)),
        (&regression, "sgd", "/model/bias", json!(true)),
        (&regression, "sgd", "/model/l2", json!(0.1)),
        (&gaussian, "sgld", "/data/dimension", json!(4)),
        (&gaussian, "sgld", "/data/mean", json!(vec![1.0; 32])),
        (&gaussian, "sgld", "/data/covariance", json!(2.0)),
        (&gaussian, "sgld", "/train/thin", json!(5)),
    ];
    let mut problems = Vec::new();
    for (i, (base, algo, path, new)) in cases.into_iter().enumerate() {
        let field = path.trim_start_matches('/').replace('/', ".");
        let reference = run(&format!("base-{i}"), base, algo).expect("the base runs");
        match run(&format!("case-{i}"), &with_field(base, path, new), algo) {
            Ok(r) if r == reference => problems.push(format!("{field}: no effect")),
            Ok(_) => {}
            Err(e) => {
                let key = field.rsplit('.').next().unwrap_or(&field);
                if !e.contains(key) {
                    problems.push(format!("{field}: refused without naming it: {e}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
