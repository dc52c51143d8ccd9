//! The `.npy` reader: any bytes give an array or a typed error, and never allocate more than
//! the data present (the header's shape is checked against the file's length first).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lpsim::npy;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("lpsim-fuzz-{}.npy", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        if let Ok(a) = npy::read(&path) {
            assert_eq!(a.values.len(), a.shape.iter().product::<usize>());
        }
    }
});
