//! Architecture JSON: any text loads or is a typed error, and a loaded architecture prices a
//! GEMM (cycles, energy, area) without panicking or hanging.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lpsim::arch::Architecture;
use lpsim::cost::{price_gemm, Gemm};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(arch) = Architecture::from_json_str("fuzz.json", text) {
        for (m, n, k) in [(1, 1, 1), (64, 10, 784), (u64::MAX, 2, 3)] {
            let _ = price_gemm(&arch, Gemm { m, n, k });
        }
    }
});
