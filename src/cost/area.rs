//! Chip area per unit, from the same table and width rules as the energies
//! ([`crate::cost::energy`]), scaled to the node by `(node/45)^2`, overridable per unit in µm².
//!
//! Units counted: the `R x C` MACs of the array; one rounding unit per array column (outputs
//! to the activations format) and one per vector lane (to the updates format); the vector lanes
//! (multiplier + adder in the vector format); one LFSR flip-flop per random bit per cycle; SRAM
//! and register levels by capacity (DRAM is off chip); the full-precision unit's array of MACs
//! (`full_precision_mac`), unless it is the low-precision array itself (same MAC and array: an
//! `fp32` architecture runs its full-precision work on its own array).

use std::collections::BTreeMap;

use crate::arch::{Architecture, MemoryKind};
use crate::cost::energy::{node_factor, AREA_NODE_EXPONENT, HOROWITZ45_AREA, SRAM_BIT_AREA_UM2};

/// Area of one instance of each unit kind on `arch`, µm² (override or scaled default).
pub fn unit_area_um2(arch: &Architecture, unit: &str) -> f64 {
    if let Some(&a) = arch.area.overrides.get(unit) {
        return a;
    }
    let t = &HOROWITZ45_AREA;
    let f = &arch.formats;
    let v = &arch.compute.vector.format;
    let default = match unit {
        "mac" => t.mac(&f.mac.a, &f.mac.b, &f.mac.acc),
        "full_precision_mac" => {
            let m = &arch.full_precision.mac;
            t.mac(&m.a, &m.b, &m.acc)
        }
        "rounding_unit" => t.rounding_unit(&f.activations, f.rounding.activations),
        "vector_lane" => t.mac(v, v, v),
        "sram_bit" => SRAM_BIT_AREA_UM2,
        // "rng_bit" and "reg_bit": one flip-flop.
        _ => t.reg_bit,
    };
    default * node_factor(arch.technology.node_nm, AREA_NODE_EXPONENT)
}

/// Area per component (`array`, `rounding`, `vector`, `rng`, `full_precision` when it has an
/// array of its own, and each on-chip memory level by name), mm².
pub fn area_mm2(arch: &Architecture) -> BTreeMap<String, f64> {
    let c = &arch.compute;
    let f = &arch.formats;
    let t = &HOROWITZ45_AREA;
    let scale = node_factor(arch.technology.node_nm, AREA_NODE_EXPONENT);
    let updates_unit = arch
        .area
        .overrides
        .get("rounding_unit")
        .copied()
        .unwrap_or_else(|| t.rounding_unit(&f.updates, f.rounding.updates) * scale);
    let mut out = BTreeMap::new();
    let um2 = 1e-6;
    out.insert(
        "array".to_string(),
        (c.array.rows * c.array.cols) as f64 * unit_area_um2(arch, "mac") * um2,
    );
    let fp = &arch.full_precision;
    if !fp.shares_array(f, &c.array) {
        out.insert(
            "full_precision".to_string(),
            (fp.array.rows * fp.array.cols) as f64
                * unit_area_um2(arch, "full_precision_mac")
                * um2,
        );
    }
    out.insert(
        "rounding".to_string(),
        (c.array.cols as f64 * unit_area_um2(arch, "rounding_unit")
            + c.vector.lanes as f64 * updates_unit)
            * um2,
    );
    out.insert(
        "vector".to_string(),
        c.vector.lanes as f64 * unit_area_um2(arch, "vector_lane") * um2,
    );
    // An architecture without a random source (`kind: none`) has no LFSR, whatever
    // `bits_per_cycle` says.
    let rng_bits = match c.rng.kind {
        crate::arch::RngKind::Lfsr => c.rng.bits_per_cycle as f64,
        crate::arch::RngKind::None => 0.0,
    };
    out.insert(
        "rng".to_string(),
        rng_bits * unit_area_um2(arch, "rng_bit") * um2,
    );
    for level in &arch.memory {
        let per_bit = match level.kind {
            MemoryKind::Dram => continue,
            MemoryKind::Sram => unit_area_um2(arch, "sram_bit"),
            MemoryKind::Reg => unit_area_um2(arch, "reg_bit"),
        };
        let bits = level.size_bytes.unwrap_or(0) as f64 * 8.0;
        out.insert(level.name.clone(), bits * per_bit * um2);
    }
    out
}
