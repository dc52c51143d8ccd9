//! Malformed and hostile inputs to every command of the `lpsim` binary (run via
//! `CARGO_BIN_EXE_lpsim`): each must end with one clear message on stderr naming what is wrong
//! and where, and a non-zero exit — never a panic, an allocation abort, a hang, a silently wrong
//! figure, or a user's file replaced.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn lpsim_in(dir: Option<&Path>, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lpsim"));
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lpsim");
    // The binary may exit before reading its input: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn lpsim(args: &[&str]) -> Output {
    lpsim_in(None, args, "")
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
        (&["quantize", "-f", "bf16", "-r", "rnee"], "did you mean `rne`?"),
        (&["quantize", "-f", "float:e=4,mm=3"], "did you mean `m`?"),
        (&["quantize", "-f", "flaot:e=4,m=3"], "did you mean `float`?"),
        (
            &["gemm", "--acc", "fp32", "--m", "2", "--n", "2", "--k", "2", "--order", "seqential"],
            "did you mean `sequential`?",
        ),
        (&["graph", "--algo", "lp-sgdl"], "did you mean `lp-sgd`?"),
        (&["graph", "--algo", "sgld", "--set", "temprature=1"], "did you mean `temperature`?"),
    ];
    for (args, hint) in cases {
        assert_fails(&lpsim_in(None, args, "1\n"), &[hint]);
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
        let out = lpsim(&["run", "--workload", w, "--algo", "sgd", "--arch", &arch("fp32.json")]);
        assert_fails(&out, &["No such file or directory"]);
        assert_eq!(
            stderr(&out).matches("No such file or directory").count(),
            1,
            "{}",
            stderr(&out)
        );
    }
}

/// A version-1 `.npy` file: `header` (the dict literal) padded to 64 bytes, then `data`.
fn npy_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.as_bytes());
    b.extend(data);
    b
}

/// Every way a `.npy` file can lie about its size, through every command that reads one.
#[test]
fn malformed_npy_files_are_refused_before_allocating() {
    let d = scratch("npy");
    let mut huge_len = b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec();
    huge_len.resize(20, b' ');
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        ("len.npy", huge_len, "header length field says 4294967295 bytes but 8 follow"),
        (
            "huge.npy",
            npy_bytes(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000000,), }",
                &[0; 16],
            ),
            "truncated: 16 bytes of data, the header promises 4000000000000000",
        ),
        (
            "huge2d.npy",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }",
                &[0; 16],
            ),
            "truncated: 16 bytes of data, the header promises 8000000000000",
        ),
        (
            "overflow.npy",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 3), }",
                &[0; 16],
            ),
            "do not fit in 64 bits",
        ),
        (
            "trunc.npy",
            npy_bytes(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), }",
                &[0; 16],
            ),
            "truncated: 16 bytes of data, the header promises 40",
        ),
    ];
    let good_labels = d.join("y.npy");
    std::fs::write(
        &good_labels,
        npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", &[0; 16]),
    )
    .unwrap();
    for (name, bytes, needle) in &files {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let p = p.display().to_string();
        assert_fails(&lpsim(&["quantize", "-f", "bf16", "--input", &p]), &[name, needle]);
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
            &lpsim(&["run", "--workload", &w, "--algo", "sgd", "--arch", &arch("fp32.json")]),
            &[name, needle],
        );
    }
}
