//! `lpsim gemm` end to end: `.npy` operands in, `C` out, checked bit for bit against a sequential
//! accumulation written here (each add rounded once from the exact sum, which is exact in `f64`
//! for these small e4m3fn products); the JSON summary; and clear errors for bad operands.
mod common;

use std::process::Command;

use lpsim::{Format, Rounding};
use ndarray::Array2;
use ndarray_npy::{read_npy, write_npy};

fn lpsim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lpsim"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn gemm_out_equals_a_sequential_reference_and_reports_json() {
    let dir = common::scratch("gemm", "npy");
    let e4m3: Format = "e4m3fn".parse().unwrap();
    let fp16: Format = "fp16".parse().unwrap();
    let q = |f: &Format, v: f64| f.quantize_scalar(v, Rounding::NearestEven, 0).unwrap();
    let (m, k, n) = (5, 37, 4);
    let a = Array2::from_shape_fn((m, k), |(i, j)| {
        q(&e4m3, ((i * 7 + j * 3) % 23) as f64 * 0.37 - 3.9) as f32
    });
    let b = Array2::from_shape_fn((k, n), |(i, j)| {
        q(&e4m3, ((i * 5 + j * 11) % 19) as f64 * 0.61 - 5.2) as f32
    });
    let (pa, pb, pc) = (dir.join("a.npy"), dir.join("b.npy"), dir.join("c.npy"));
    write_npy(&pa, &a).unwrap();
    write_npy(&pb, &b).unwrap();
    let o = lpsim(&[
        "gemm",
        "--a",
        pa.to_str().unwrap(),
        "--b",
        pb.to_str().unwrap(),
        "--a-format",
        "e4m3fn",
        "--b-format",
        "e4m3fn",
        "--acc",
        "fp16",
        "--order",
        "sequential",
        "--out",
        pc.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c: Array2<f32> = read_npy(&pc).expect("C is float32 (fp16 fits)");
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for t in 0..k {
                acc = q(&fp16, acc + f64::from(a[[i, t]]) * f64::from(b[[t, j]]));
            }
            assert_eq!(c[[i, j]].to_bits(), (acc as f32).to_bits(), "C[{i}][{j}]");
        }
    }
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(report["acc"], "fp16");
    assert_eq!(report["counts"]["add"]["fp16"], (m * n * k) as u64);
    for key in [
        "max_abs_error",
        "mean_rel_error",
        "frac_correctly_rounded",
        "overflows",
    ] {
        assert!(report[key].is_number(), "{key}");
    }
}

#[test]
fn bad_operands_give_clear_errors() {
    let dir = common::scratch("gemm", "bad");
    let pa = dir.join("a.npy");
    write_npy(&pa, &Array2::<f32>::zeros((2, 3))).unwrap();
    let pb = dir.join("b.npy");
    write_npy(&pb, &Array2::<f32>::zeros((4, 2))).unwrap();
    for (args, want) in [
        (
            vec![
                "gemm",
                "--a",
                pa.to_str().unwrap(),
                "--b",
                pb.to_str().unwrap(),
                "--acc",
                "fp32",
            ],
            "but b is",
        ),
        (
            vec!["gemm", "--m", "2", "--n", "2", "--k", "2", "--acc", "mxfp8"],
            "float or fixed",
        ),
        (
            vec![
                "gemm", "--m", "2", "--n", "2", "--k", "2", "--acc", "fp16", "--order", "chunk=0",
            ],
            "chunk",
        ),
    ] {
        let o = lpsim(&args);
        let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
        assert!(!o.status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn inputs_beyond_f32_are_refused_by_the_command() {
    let o = lpsim(&[
        "gemm",
        "--m",
        "2",
        "--n",
        "2",
        "--k",
        "2",
        "--a-format",
        "fp64",
        "--b-format",
        "fp64",
        "--fused",
        "--acc",
        "fp64",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--a-format fp64: lpsim gemm takes formats whose values are f32 values"),
        "{err}"
    );
}
