//! Sweep specs: any text loads or is a typed error, and a loaded spec plans its runs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lpsim::sweep::SweepSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match SweepSpec::from_json_str("fuzz.json", text) {
        Ok(spec) => {
            let _ = spec.runs();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
