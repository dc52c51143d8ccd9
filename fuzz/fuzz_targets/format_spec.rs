//! Format and rounding specs (`--format`, `--rounding`, architecture `formats`): any text either
//! parses or is a typed error, and a parsed quantizer rounds any value without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lpsim::{format, Quantizer, Rounding};

fuzz_target!(|data: &[u8]| {
    // `<format spec>|<rounding spec>` followed by the raw bytes of the values to round.
    let (text, values) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let (fmt, rnd) = text.split_once('|').unwrap_or((text, "rne"));
    let Ok(f) = format::parse(fmt) else { return };
    let Ok(r) = rnd.parse::<Rounding>() else { return };
    let _ = f.to_string();
    let Ok(q) = Quantizer::new(f, r, 0, 0) else { return };
    let xs: Vec<f64> = values
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let mut out = vec![0.0; xs.len()];
    let row = xs.len().clamp(1, 64);
    if xs.len() % row == 0 {
        q.quantize_f64(&xs, &mut out, 0, row);
    }
    for &x in &xs {
        if let Some(v) = f.quantize_scalar(x, r, 7) {
            let _ = f.encode(v);
        }
    }
});
