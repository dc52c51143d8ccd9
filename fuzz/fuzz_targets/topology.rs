//! The SCALE-Sim topology reader and the pricing of what it reads: any bytes load as a topology
//! (then priced, or refused with a typed error) or give a typed error with the file and line.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lpsim::arch::Architecture;
use lpsim::cost::{price_topology, topology};

fuzz_target!(|data: &[u8]| {
    let Ok(t) = topology::parse(Path::new("net.csv"), data) else {
        return;
    };
    if let Ok(arch) = Architecture::from_json_str("int8.json", include_str!("../../arch/int8.json")) {
        let _ = price_topology(&arch, &t);
    }
});
