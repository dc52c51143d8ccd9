//! Workload JSON: any text loads or is a typed error naming the file and JSON path.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lpsim::workload::Workload;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Workload::from_json_str(text, Path::new("fuzz.json")) {
        let _ = e.to_string();
    }
});
