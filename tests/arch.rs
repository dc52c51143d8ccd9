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
    assert_eq!(names, ["bf16", "bfp8", "fp32", "fp8", "int8", "mxfp8"]);
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
