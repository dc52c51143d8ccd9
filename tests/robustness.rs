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
