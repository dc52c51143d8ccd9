//! "Never panics, always a typed error": the library entry points the fuzz targets in `fuzz/`
//! exercise (format and rounding specs, architecture, workload and sweep JSON, the CSV and `.npy`
//! readers, SCALE-Sim topology files), driven by proptest with arbitrary text and with the shipped files mutated one field
//! at a time. A panic anywhere fails the property. The inputs that crashed lpsim before are kept
//! as regression cases at the end.

mod common;

use std::path::{Path, PathBuf};

use lpsim::arch::Architecture;
use lpsim::cost::{price_gemm, price_topology, topology, Gemm};
use lpsim::sweep::SweepSpec;
use lpsim::workload::Workload;
use lpsim::{format, Quantizer, Rounding};
use proptest::prelude::*;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shipped(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

/// Every leaf and container of `v`, as a list of keys/indices from the root.
fn paths(v: &Value, at: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                at.push(Value::from(k.as_str()));
                paths(c, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                at.push(Value::from(i));
                paths(c, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn slot<'a>(v: &'a mut Value, path: &[Value]) -> &'a mut Value {
    path.iter().fold(v, |node, key| match key {
        Value::String(k) => &mut node[k.as_str()],
        Value::Number(i) => &mut node[i.as_u64().unwrap() as usize],
        _ => unreachable!(),
    })
}

/// Values that have broken parsers before: extremes of every JSON type.
fn hostile() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(Value::Bool(true)),
        Just(serde_json::json!(0)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(i64::MIN)),
        Just(serde_json::json!(9007199254740993u64)),
        Just(serde_json::json!(1e308)),
        Just(serde_json::json!(-1e-300)),
        Just(serde_json::json!(0.5)),
        Just(serde_json::json!(1_000_000_000_000u64)),
        Just(serde_json::json!("")),
        Just(serde_json::json!("e4m3")),
        Just(serde_json::json!("sr:bits=0")),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!([1, 2, 3])),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |x| x.is_finite())
            .prop_map(Value::from),
        "[a-z0-9:=,._-]{0,12}".prop_map(Value::from),
    ]
}

/// `base` with the node at one of its paths (picked by `pick`) replaced by `value`, as text.
fn mutated(base: &Value, pick: prop::sample::Index, value: Value) -> String {
    let mut all = Vec::new();
    paths(base, &mut Vec::new(), &mut all);
    let mut v = base.clone();
    *slot(&mut v, &all[pick.index(all.len())]) = value;
    v.to_string()
}

fn arch_accepts_or_refuses(text: &str) {
    if let Ok(arch) = Architecture::from_json_str("p.json", text) {
        for (m, n, k) in [(1, 1, 1), (64, 10, 784), (u64::MAX, 2, 3)] {
            let _ = price_gemm(&arch, Gemm { m, n, k });
        }
    }
}

fn workload_accepts_or_refuses(text: &str) {
    let _ = Workload::from_json_str(text, Path::new("p.json")).map_err(|e| e.to_string());
}

fn sweep_accepts_or_refuses(text: &str) {
    if let Ok(spec) = SweepSpec::from_json_str("p.json", text) {
        let _ = spec.runs();
    }
}

fn format_accepts_or_refuses(fmt: &str, rnd: &str, xs: &[f64]) {
    let (Ok(f), Ok(r)) = (format::parse(fmt), rnd.parse::<Rounding>()) else {
        return;
    };
    if let Ok(q) = Quantizer::new(f, r, 0, 0) {
        let mut out = vec![0.0; xs.len()];
        q.quantize_f64(xs, &mut out, 0, xs.len().max(1));
        for &x in xs {
            if let Some(v) = f.quantize_scalar(x, r, 12345) {
                let _ = f.encode(v);
            }
        }
    }
}

/// Write `bytes` as a CSV file next to a workload that reads it with `opts`, and load it.
fn csv_accepts_or_refuses(dir: &Path, bytes: &[u8], opts: u8) -> Result<(), String> {
    std::fs::write(dir.join("d.csv"), bytes).unwrap();
    let header = ["auto", "present", "absent"][usize::from(opts % 3)];
    let regression = (opts >> 2) & 1 == 1;
    let text = format!(
        r#"{{"name": "p", "data": {{"kind": "csv", "path": "d.csv", "header": "{header}",
        "task": "{}", "label_column": {}, "standardize": {}}},
        "model": {{"kind": "{}"}}, "train": {{"epochs": 1, "batch_size": 4}}}}"#,
        if regression {
            "regression"
        } else {
            "classification"
        },
        i64::from((opts >> 3) & 3) - 1,
        (opts >> 5) & 1 == 1,
        if regression { "linear" } else { "logistic" },
    );
    let w = Workload::from_json_str(&text, &dir.join("w.json")).map_err(|e| e.to_string())?;
    w.load_data().map(|_| ()).map_err(|e| e.to_string())
}

fn npy_accepts_or_refuses(dir: &Path, bytes: &[u8]) -> Result<(), String> {
    let p = dir.join("a.npy");
    std::fs::write(&p, bytes).unwrap();
    match lpsim::npy::read(&p) {
        Ok(a) => {
            assert_eq!(a.values.len(), a.shape.iter().product::<usize>());
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn scratch(name: &str) -> PathBuf {
    common::scratch("never-panics", name)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn format_and_rounding_specs(
        fmt in prop_oneof![
            "[a-z0-9:=,_]{0,24}",
            "(float|fixed|bfp|mx|qtorch|qfixed|qbfp):[a-z]{1,6}=[0-9]{1,12}(,[a-z]{1,6}=[a-z0-9]{1,12}){0,4}",
        ],
        rnd in prop_oneof!["[a-z:=0-9]{0,12}", "sr:bits=[0-9]{1,3}"],
        xs in prop::collection::vec(any::<f64>(), 0..40),
    ) {
        format_accepts_or_refuses(&fmt, &rnd, &xs);
    }

    #[test]
    fn architecture_json_mutated(
        file in prop::sample::select(vec!["bf16", "int8", "mxfp8", "bfp8", "fp8"]),
        pick in any::<prop::sample::Index>(),
        value in hostile(),
    ) {
        let base = shipped(&format!("arch/{file}.json"));
        arch_accepts_or_refuses(&mutated(&base, pick, value));
    }

    #[test]
    fn workload_json_mutated(
        file in prop::sample::select(vec![
            "iris-logistic", "digits-mlp", "gaussian-toy", "halp-linreg",
        ]),
        pick in any::<prop::sample::Index>(),
        value in hostile(),
    ) {
        let base = shipped(&format!("workloads/{file}.json"));
        workload_accepts_or_refuses(&mutated(&base, pick, value));
    }

    #[test]
    fn sweep_spec_mutated(pick in any::<prop::sample::Index>(), value in hostile()) {
        let base = serde_json::json!({
            "name": "p",
            "workloads": [root().join("workloads/iris-logistic.json")],
            "algos": ["sgd", "lp-sgld-vc"],
            "archs": [root().join("arch/*.json")],
            "seeds": [0, 1],
            "set": {"lr": [0.1, "0.2"], "epochs": [1]},
        });
        sweep_accepts_or_refuses(&mutated(&base, pick, value));
    }

    #[test]
    fn arbitrary_json_text(text in "\\PC{0,200}") {
        arch_accepts_or_refuses(&text);
        workload_accepts_or_refuses(&text);
        sweep_accepts_or_refuses(&text);
    }

    #[test]
    fn csv_files(
        rows in prop::collection::vec(
            prop::collection::vec(
                prop_oneof!["-?[0-9]{1,3}(\\.[0-9]{1,3})?", "[a-z\"]{0,4}", Just(String::new())],
                0..5,
            ),
            0..8,
        ),
        bom in any::<bool>(),
        opts in any::<u8>(),
    ) {
        let dir = scratch("csv");
        let mut text = if bom { "\u{feff}".to_string() } else { String::new() };
        for r in rows {
            text.push_str(&r.join(","));
            text.push('\n');
        }
        let _ = csv_accepts_or_refuses(&dir, text.as_bytes(), opts);
    }

    #[test]
    fn topology_files(
        header in prop::sample::select(vec![
            "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, \
             Num Filter, Strides,",
            "Layer, M, N, K,",
            "Layer, M, N, K, Sparsity",
            "Layer name, M",
            "",
        ]),
        rows in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    "[0-9]{1,2}",
                    "[0-9]{1,20}",
                    Just("DP".to_string()),
                    "[a-zA-Z:\"#]{0,4}",
                    "[0-9]:[0-9]",
                    Just(String::new()),
                ],
                0..11,
            ),
            0..6,
        ),
    ) {
        let mut text = format!("{header}\n");
        for r in rows {
            text.push_str(&r.join(","));
            text.push('\n');
        }
        let arch = Architecture::load(&root().join("arch/int8.json")).unwrap();
        if let Ok(t) = topology::parse(Path::new("net.csv"), text.as_bytes()) {
            let _ = price_topology(&arch, &t);
        }
    }

    #[test]
    fn npy_files(
        descr in prop::sample::select(vec!["<f4", "<f8", "<i8", "|u1", "<u2", ">f4", "<c8", "x"]),
        order in prop::sample::select(vec!["False", "True", "1"]),
        shape in prop::collection::vec(
            prop_oneof![0usize..5, Just(usize::MAX), Just(1usize << 40)], 0..4),
        data in prop::collection::vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(),
    ) {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let shape = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(", ")),
        };
        let header = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
        let bytes = common::npy_bytes(&header, &data);
        let dir = scratch("npy");
        let _ = npy_accepts_or_refuses(&dir, &bytes);
        // The same file cut short anywhere.
        let _ = npy_accepts_or_refuses(&dir, &bytes[..cut.index(bytes.len())]);
    }
}

/// The inputs that crashed lpsim (issue 12), each now a typed error.
#[test]
fn crashing_inputs_are_typed_errors() {
    let dir = scratch("regressions");
    // A 20-byte .npy whose header length field is FFFFFFFF (version 2).
    let mut b = b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec();
    b.extend(b"{'descr'");
    assert_eq!(b.len(), 20);
    let e = npy_accepts_or_refuses(&dir, &b).unwrap_err();
    assert!(e.contains("a.npy"), "{e}");
    // A header claiming 10^15 elements over 16 bytes of data.
    let b = common::npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000000,), }",
        &[0; 16],
    );
    let e = npy_accepts_or_refuses(&dir, &b).unwrap_err();
    assert!(e.contains("a.npy"), "{e}");
    // A truncated file names what is missing, not the descriptor.
    let b = common::npy_bytes(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
        &[0; 7],
    );
    let e = npy_accepts_or_refuses(&dir, &b).unwrap_err();
    assert!(!e.contains("descriptor"), "{e}");
    // A CSV with a byte-order mark keeps its first row; a label-only CSV is refused.
    assert!(csv_accepts_or_refuses(&dir, b"\xef\xbb\xbf1,2,0\n3,4,1\n5,6,0\n", 2).is_ok());
    let e = csv_accepts_or_refuses(&dir, b"0\n1\n0\n1\n", 2).unwrap_err();
    assert!(e.contains("d.csv"), "{e}");
    // Regression samples and features of 10^12, a Gaussian of dimension 10^5: refused on load
    // against the memory budget, before anything is allocated.
    for (data, needle) in [
        (
            r#"{"kind": "regression", "samples": 1000000000000, "features": 1000000000000}"#,
            "data.samples",
        ),
        (
            r#"{"kind": "gaussian", "dimension": 100000}"#,
            "data.dimension",
        ),
    ] {
        let (model, train) = if data.contains("gaussian") {
            ("gaussian", r#"{"steps": 10}"#)
        } else {
            ("linear", r#"{"epochs": 1, "batch_size": 1}"#)
        };
        let text = format!(
            r#"{{"name": "p", "data": {data}, "model": {{"kind": "{model}"}}, "train": {train}}}"#
        );
        let e = match Workload::from_json_str(&text, &dir.join("w.json")) {
            Err(e) => e.to_string(),
            Ok(w) => w.load_data().map(|_| ()).unwrap_err().to_string(),
        };
        assert!(e.contains(needle), "{e}");
    }
    // Found by the fuzzer (workload_json, 10 s timeout): a Gaussian of dimension 430 without a
    // covariance factorized and inverted the 430 x 430 identity when the workload loaded.
    let text = r#"{"name": "g", "data": {"kind": "gaussian", "dimension": 1500},
        "model": {"kind": "gaussian"}, "train": {"steps": 10}}"#;
    let w = Workload::from_json_str(text, &dir.join("g.json")).unwrap();
    match w.load_data().unwrap() {
        lpsim::workload::Problem::Sampling(t) => {
            assert_eq!(t.precision, ndarray::Array2::<f64>::eye(1500));
        }
        _ => panic!("a sampling problem"),
    }
    // Duplicate keys, a product format that cannot hold a product, an unknown format name.
    assert!(
        Architecture::from_json_str("p.json", r#"{"name": "a", "name": "b"}"#)
            .unwrap_err()
            .to_string()
            .contains("duplicate key `name` in the top level")
    );
    assert!(format::parse("e4m3")
        .unwrap_err()
        .to_string()
        .contains("did you mean `e4m3fn`?"));
    // A sweep with an empty `out` or an unknown algorithm fails when it loads.
    for (extra, needle) in [
        (r#""algos": ["sgd"], "out": """#, "out"),
        (r#""algos": ["nope"]"#, "algos[0]"),
    ] {
        let text =
            format!(r#"{{"name": "p", "workloads": ["w.json"], "archs": ["a.json"], {extra}}}"#);
        let e = SweepSpec::from_json_str("p.json", &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{e}");
    }
}
