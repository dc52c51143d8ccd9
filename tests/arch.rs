//! Architecture files: every shipped one loads, and each broken one gives its specific error.

use std::path::Path;

use lpsim::arch::{Architecture, Dataflow, MemoryKind};
use lpsim::arith::Order;

fn load(path: &str) -> Result<Architecture, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Architecture::load(&root.join(path)).map_err(|e| e.to_string())
}

#[test]
fn every_shipped_arch_loads_and_compares_fairly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("arch");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let a = Architecture::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.description.as_deref().is_some_and(|d| !d.is_empty()));
        assert_eq!((a.compute.array.rows, a.compute.array.cols), (32, 32));
        assert_eq!(a.memory.len(), 2);
        assert_eq!(a.memory[1].size_bytes, Some(1 << 20));
        names.push(a.name);
    }
    names.sort();
    assert_eq!(
        names,
        ["bf16", "bfp8", "bfp8-32", "fp32", "fp8", "int8", "mxfp8"]
    );
}

#[test]
fn shipped_fields_are_read() {
    let a = load("arch/fp8.json").unwrap();
    assert_eq!(a.formats.weights.to_string(), "e4m3fn");
    assert_eq!(a.formats.gradients.to_string(), "e5m2");
    assert_eq!(a.formats.mac.acc.to_string(), "fp16");
    assert_eq!(a.formats.mac.order, Order::Chunk(32));
    assert_eq!(a.formats.mac.product, None);
    assert_eq!(a.compute.array.dataflow, Dataflow::Os);
    assert_eq!(a.memory[0].kind, MemoryKind::Dram);
    let i = load("arch/int8.json").unwrap();
    assert_eq!(i.formats.rounding.updates.to_string(), "sr:bits=8");
    assert!(i.uses_stochastic_rounding());
    // SRAM energy derived from its 1 MiB size: Horowitz 100 pJ per 64-bit read.
    assert!((i.memory[1].read_pj_per_bit * 64.0 - 100.0).abs() < 1e-9);
}

#[test]
fn broken_files_give_their_specific_error() {
    let cases = [
        (
            "missing_field",
            "compute.array: missing field `cols` (a whole number >= 1)",
        ),
        (
            "wrong_type",
            "compute.array.rows: expected a whole number >= 1, found a string \"32\"",
        ),
        (
            "unknown_field",
            "compute.array.colls: unknown field; did you mean `cols`?; allowed: rows, cols, dataflow",
        ),
        ("out_of_range", "compute.array.rows = 0: must be at least 1"),
        (
            "bad_format",
            "formats.weights = \"bf17\": format `bf17`: unknown format; did you mean `bf16`?; expected an alias",
        ),
        (
            "bad_rounding",
            "formats.rounding.updates = \"sr:bits=40\": rounding `sr:bits=40`: bits = 40: must be 1..=32",
        ),
        (
            "bad_dataflow",
            "compute.array.dataflow = \"wss\": must be one of os, ws, is; did you mean `ws`?",
        ),
        (
            "bad_order",
            "formats.mac.order = \"chunk=0\": order `chunk=0`: chunk = `0`: must be a whole number >= 1",
        ),
        (
            "bad_override",
            "energy.overrides.mull:int8 x int8: unknown action kind `mull`; did you mean `mul`?",
        ),
        (
            "negative_energy",
            "memory[1].read_pj_per_bit = -1: must be at least 0",
        ),
        ("duplicate_level", "memory: level name `DRAM` is used twice"),
        (
            "sram_without_size",
            "memory[1]: missing field `size_bytes` (bytes, >= 1; required for kind sram)",
        ),
        ("not_json", "not valid JSON: EOF while parsing"),
    ];
    for (name, want) in cases {
        let file = format!("tests/data/arch_broken/{name}.json");
        let err = load(&file).expect_err(name);
        let prefix = format!(
            "{}: ",
            Path::new(env!("CARGO_MANIFEST_DIR")).join(&file).display()
        );
        assert!(
            err.starts_with(&format!("{prefix}{want}")),
            "{name}: got `{err}`, want `{want}`"
        );
    }
}

#[test]
fn missing_file_names_the_file() {
    let err = load("arch/no_such.json").unwrap_err();
    assert!(err.contains("arch/no_such.json: cannot read"), "{err}");
}

#[test]
fn sr_without_rng_is_rejected() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("arch/int8.json")).unwrap();
    let text = text.replace("\"lfsr\"", "\"none\"");
    let err = Architecture::from_json_str("x.json", &text).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("x.json: compute.rng.kind = \"none\""),
        "{err}"
    );
}

/// `formats.input` (the training features' format) and `formats.rounding.input`: read where
/// given, the activations' format and `rne` where not, a rounding unit the format lacks refused
/// at `formats`, a stochastic one counted as needing the random source, a misspelling named.
#[test]
fn input_format_defaults_is_read_and_is_checked() {
    let fp8 = load("arch/fp8.json").unwrap();
    assert_eq!(fp8.formats.input, fp8.formats.activations);
    assert_eq!(fp8.formats.rounding.input.to_string(), "rne");
    let i = load("arch/int8.json").unwrap();
    assert_eq!(i.formats.input.to_string(), "bfp:wl=8,size=tensor");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("arch/fp32.json")).unwrap();
    let with = |formats: &str, rounding: &str| {
        let t = text.replacen("\"formats\": {", &format!("\"formats\": {{{formats}"), 1);
        let t = t.replacen("\"rounding\": {", &format!("\"rounding\": {{{rounding}"), 1);
        Architecture::from_json_str("x.json", &t).map_err(|e| e.to_string())
    };
    let a = with("\"input\": \"e2m1fn\",", "\"input\": \"sr:bits=4\",").unwrap();
    assert_eq!(a.formats.input.to_string(), "e2m1fn");
    assert_eq!(a.formats.rounding.input.to_string(), "sr:bits=4");
    assert!(a.uses_stochastic_rounding());
    let err = with("\"input\": \"qtorch:e=5,m=2\",", "").unwrap_err();
    assert!(
        err.starts_with("x.json: formats: input and rounding.input: format `qtorch:e=5,m=2` does not support rounding `rne`"),
        "{err}"
    );
    let err = with("\"inputs\": \"e2m1fn\",", "").unwrap_err();
    assert!(err.contains("did you mean `input`?"), "{err}");
    // Stochastic data rounding needs the random source.
    let t = text
        .replacen("\"rounding\": {", "\"rounding\": {\"input\": \"sr\",", 1)
        .replace("\"lfsr\"", "\"none\"");
    let err = Architecture::from_json_str("x.json", &t)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("x.json: compute.rng.kind = \"none\""),
        "{err}"
    );
}

/// `arch/fp32.json` with the top-level `full_precision` section set to `section` (JSON).
fn with_full_precision(section: &str) -> Result<Architecture, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("arch/fp32.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["full_precision"] = serde_json::from_str(section).unwrap();
    Architecture::from_json_str("x.json", &v.to_string()).map_err(|e| e.to_string())
}

#[test]
fn full_precision_section_defaults_and_is_read() {
    for file in ["arch/int8.json", "arch/bf16.json"] {
        let a = load(file).unwrap();
        let fp = a.full_precision;
        assert_eq!(fp.format.to_string(), "fp32");
        assert_eq!(fp.mac.a.to_string(), "fp32");
        assert_eq!(fp.mac.b.to_string(), "fp32");
        assert_eq!(fp.mac.acc.to_string(), "fp32");
        assert!(fp.mac.fused);
        assert_eq!(fp.mac.order, Order::Sequential);
        assert_eq!(fp.array, a.compute.array);
    }
    let a = with_full_precision(
        r#"{"format": "bf16",
            "mac": {"a": "bf16", "b": "fp32", "fused": false, "product": "fp32",
                    "accumulator": "fp32", "acc_rounding": "rtz", "order": "pairwise"},
            "array": {"rows": 8, "cols": 16, "dataflow": "ws"}}"#,
    )
    .unwrap();
    let fp = a.full_precision;
    assert_eq!(fp.format.to_string(), "bf16");
    assert_eq!(fp.mac.a.to_string(), "bf16");
    assert!(!fp.mac.fused);
    assert_eq!(
        fp.mac.product.map(|p| p.to_string()).as_deref(),
        Some("fp32")
    );
    assert_eq!(fp.mac.acc_rounding.to_string(), "rtz");
    assert_eq!(fp.mac.order, Order::Pairwise);
    assert_eq!(
        (fp.array.rows, fp.array.cols, fp.array.dataflow),
        (8, 16, Dataflow::Ws)
    );
    // Partial sections keep the other defaults.
    let a = with_full_precision(r#"{"array": {"rows": 4, "cols": 4, "dataflow": "os"}}"#).unwrap();
    assert_eq!(a.full_precision.format.to_string(), "fp32");
    assert_eq!(a.full_precision.array.rows, 4);
}

#[test]
fn full_precision_section_errors_name_the_path() {
    let cases = [
        (
            r#"{"formt": "fp32"}"#,
            "x.json: full_precision.formt: unknown field; did you mean `format`?; allowed: format, mac, array",
        ),
        (
            r#"{"format": "bfp:wl=8,size=32"}"#,
            "x.json: full_precision.format = \"bfp:wl=8,size=32\": must be a float format whose values are f32 values",
        ),
        (
            r#"{"format": "fp64"}"#,
            "x.json: full_precision.format = \"fp64\": must be a float format",
        ),
        (
            r#"{"format": "fp32", "mac": {"a": "bf16", "b": "fp32", "fused": true, "accumulator": "fp32"}}"#,
            "x.json: full_precision: mac.a = `bf16` does not hold every value of format `fp32`",
        ),
        (
            r#"{"mac": {"a": "fp32", "b": "fp32", "fussed": true, "accumulator": "fp32"}}"#,
            "x.json: full_precision.mac.fussed: unknown field; did you mean `fused`?",
        ),
        (
            r#"{"array": {"rows": 0, "cols": 4, "dataflow": "os"}}"#,
            "x.json: full_precision.array.rows = 0: must be at least 1",
        ),
        (r#""fp32""#, "x.json: full_precision: expected an object"),
    ];
    for (section, want) in cases {
        let err = with_full_precision(section).expect_err(section);
        assert!(
            err.starts_with(want),
            "{section}: got `{err}`, want `{want}`"
        );
    }
    let err = with_full_precision(r#"{"formats": "fp32"}"#).unwrap_err();
    assert!(err.contains("did you mean `format`?"), "{err}");
    // A stochastic accumulator in the full-precision MAC needs the random source too.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("arch/fp32.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["compute"]["rng"] = serde_json::json!({"kind": "none"});
    assert!(Architecture::from_json_str("x.json", &v.to_string()).is_ok());
    v["full_precision"] = serde_json::json!({"mac": {"a": "fp32", "b": "fp32", "fused": true,
        "accumulator": "fp32", "acc_rounding": "sr"}});
    let err = Architecture::from_json_str("x.json", &v.to_string()).unwrap_err();
    assert!(
        err.to_string().contains("compute.rng.kind = \"none\""),
        "{err}"
    );
}
