//! `lpsim bench quantize`: elements per second of the slice quantizers against a native `f32`
//! copy of the same array into a buffer allocated once (allocation is not measured).

use rayon::prelude::*;

use crate::bench::{median_seconds, paired_seconds, BenchRow};
use crate::format::{Format, QuantizeError, Quantizer};
use crate::round::{RandomStream, Rounding};

/// The measured (format, rounding) pairs.
pub const QUANTIZE_CASES: &[(&str, &str)] = &[
    ("bf16", "rne"),
    ("bf16", "sr"),
    ("e4m3fn", "rne"),
    ("e4m3fn", "sr"),
    ("e5m2", "rne"),
    ("fixed:wl=8,fl=6", "sr"),
    ("bfp:wl=8,size=32", "sr"),
    ("mxfp8", "rne"),
];

/// Measure every case on `size` elements (standard normal values, seeded) with the current
/// rayon pool; the first row is the native copy. Each case's ratio is the median of ratios
/// to copies timed alternately with it ([`paired_seconds`]).
pub fn bench_quantize(size: usize, reps: usize) -> Result<Vec<BenchRow>, QuantizeError> {
    let noise = RandomStream::new(1, 0);
    let input: Vec<f32> = (0..size)
        .map(|i| noise.normal_f64(i as u64) as f32)
        .collect();
    let mut out = vec![0.0f32; size];
    let mut copy = vec![0.0f32; size];
    let threads = rayon::current_num_threads();
    let chunk = size.div_ceil(threads).max(1);
    let copy_into = |out: &mut [f32]| {
        if threads == 1 {
            out.copy_from_slice(&input);
        } else {
            out.par_chunks_mut(chunk)
                .zip(input.par_chunks(chunk))
                .for_each(|(o, i)| o.copy_from_slice(i));
        }
    };
    let native = median_seconds(reps, || copy_into(&mut copy));
    let rate = |secs: f64| size as f64 / secs;
    let mut rows = vec![BenchRow {
        name: "native f32 copy".into(),
        elements_per_s: rate(native),
        ratio_to_native: 1.0,
    }];
    for (format, rounding) in QUANTIZE_CASES {
        let f: Format = format.parse().expect("bench formats are valid specs");
        let r: Rounding = rounding.parse().expect("bench roundings are valid specs");
        let q = Quantizer::new(f, r, 0, 0)?;
        let mut result = Ok(());
        // The copy writes its own buffer, so neither run finds the other's output in the cache.
        let timed = paired_seconds(
            reps,
            || copy_into(&mut copy),
            || {
                result = if threads == 1 {
                    q.quantize_f32(&input, &mut out, 0, size)
                } else {
                    q.par_quantize_f32(&input, &mut out, size)
                };
            },
        );
        result?;
        rows.push(BenchRow {
            name: format!("{format}/{rounding}"),
            elements_per_s: rate(timed.secs),
            ratio_to_native: timed.ratio,
        });
    }
    Ok(rows)
}
