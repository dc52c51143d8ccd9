//! `lpsim bench gemm`: the emulated GEMMs' speed against the native `f32` GEMM they emulate,
//! measured in one run (see ARCHITECTURE.md). Speed is measured, never asserted in tests.

use ndarray::Array2;
use serde::Serialize;

use crate::arith::{gemm, native_f32_gemm, MacConfig, MacError};
use crate::bench::{median_seconds, paired_seconds};
use crate::format::{Format, FormatError, Quantizer};
use crate::round::{RandomStream, Rounding};

/// One measured kernel.
#[derive(Clone, Debug, Serialize)]
pub struct GemmRow {
    /// What ran, e.g. `bf16 x bf16 -> fp32 sequential`.
    pub name: String,
    /// `2 M N K / seconds / 1e9` (median of the repetitions).
    pub gflops: f64,
    /// `gflops` over the native `f32` GEMM's.
    pub ratio_to_native: f64,
}

/// The emulated configurations of the benchmark: (a, b, acc, acc rounding, order).
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    ("bf16", "bf16", "fp32", "rne", "sequential"),
    ("e4m3fn", "e4m3fn", "fp16", "rne", "chunk=32"),
    ("int8", "int8", "int32", "rne", "sequential"),
    ("e4m3fn", "e4m3fn", "fp32", "sr", "sequential"),
    // Products of 22 significant bits: most additions round, so the stochastic unit runs on
    // nearly every lane (FP8 products, 8 bits, rarely need rounding in an fp32 accumulator).
    ("fp16", "fp16", "fp32", "sr", "sequential"),
];

fn inputs(rows: usize, cols: usize, f: Format, stream: u64) -> Result<Array2<f32>, MacError> {
    let s = RandomStream::new(7, stream);
    // int8 inputs span the format; float inputs are standard normal.
    let scale = if matches!(f, Format::Fixed(_)) {
        40.0
    } else {
        1.0
    };
    let raw: Vec<f32> = (0..rows * cols)
        .map(|i| (s.normal_f64(i as u64) * scale) as f32)
        .collect();
    let q = Quantizer::new(f, Rounding::NearestEven, 0, 0)
        .map_err(|e| MacError::Shape(e.to_string()))?;
    let mut out = vec![0.0f32; raw.len()];
    q.quantize_f32(&raw, &mut out, 0, cols)
        .map_err(|e| MacError::Shape(e.to_string()))?;
    Array2::from_shape_vec((rows, cols), out).map_err(|e| MacError::Shape(e.to_string()))
}

fn parse(s: &str) -> Result<Format, MacError> {
    s.parse()
        .map_err(|e: FormatError| MacError::Shape(e.to_string()))
}

/// Measure the native `f32` GEMM and the emulated GEMMs for `M = N = K = size` on the current
/// rayon pool (run it inside a pool of the wanted thread count); first row: native.
pub fn bench_gemm(size: usize, reps: usize) -> Result<Vec<GemmRow>, MacError> {
    let flops = 2.0 * (size as f64).powi(3);
    let fp32 = parse("fp32")?;
    let a32 = inputs(size, size, fp32, 1)?;
    let b32 = inputs(size, size, fp32, 2)?;
    let native = flops
        / median_seconds(reps, || {
            std::hint::black_box(native_f32_gemm(&a32.view(), &b32.view()));
        })
        / 1e9;
    let mut rows = vec![GemmRow {
        name: "native f32 GEMM (ndarray)".into(),
        gflops: native,
        ratio_to_native: 1.0,
    }];
    for &(fa, fb, acc, r, order) in CASES {
        let (fa, fb) = (parse(fa)?, parse(fb)?);
        let rounding: Rounding = r
            .parse()
            .map_err(|e: crate::round::RoundingError| MacError::Shape(e.to_string()))?;
        let cfg = MacConfig::new(fa, fb, None, false, parse(acc)?, rounding, order.parse()?)?;
        let a = inputs(size, size, fa, 1)?;
        let b = inputs(size, size, fb, 2)?;
        let mut path = None;
        let timed = paired_seconds(
            reps,
            || {
                std::hint::black_box(native_f32_gemm(&a32.view(), &b32.view()));
            },
            || {
                let out = gemm(&cfg, a.view(), b.view(), RandomStream::new(0, 0));
                path = out.ok().map(|o| o.path);
            },
        );
        let gflops = flops / timed.secs / 1e9;
        rows.push(GemmRow {
            name: match path {
                Some(p) => format!("{fa} x {fb} -> {acc} {r} {order} [{p:?}]"),
                None => format!("{fa} x {fb} -> {acc} {r} {order}"),
            },
            gflops,
            ratio_to_native: timed.ratio,
        });
    }
    Ok(rows)
}
