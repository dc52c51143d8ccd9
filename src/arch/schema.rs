//! The typed, validated architecture description (the schema is documented field by field, with
//! units, in `arch/README.md`), and its construction from JSON.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::arch::validate::{Node, Obj};
use crate::arch::ArchError;
use crate::arith::{MacConfig, Order};
use crate::cost::energy::{canonical_action, canonical_area_unit, default_memory_pj_per_bit};
use crate::format::{Format, Quantizer};
use crate::round::Rounding;

/// One accelerator: technology, formats, compute units, memories, energy and area tables.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// Short name, used in reports.
    pub name: String,
    /// One line saying what the architecture is for.
    pub description: Option<String>,
    /// Process node and clock.
    pub technology: Technology,
    /// Number formats and rounding units of the datapath.
    pub formats: Formats,
    /// Systolic array, vector unit, random-number source.
    pub compute: Compute,
    /// The unit that runs full-precision work (section `full_precision`, optional).
    pub full_precision: FullPrecision,
    /// Memory levels from DRAM inwards (index 0 is the outermost).
    pub memory: Vec<MemoryLevel>,
    /// Energy per action: default table plus overrides (pJ).
    pub energy: Table,
    /// Area per unit: default table plus overrides (µm²).
    pub area: Table,
}

/// Process technology.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Technology {
    /// Feature size in nm (defaults are for 45 nm and scaled from it).
    pub node_nm: f64,
    /// Clock frequency in GHz (cycles per ns).
    pub clock_ghz: f64,
}

/// The formats of the tensors the datapath stores, the MAC, and the rounding unit per tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Formats {
    /// The training data (features) as stored in DRAM: quantized once when loaded, read in this
    /// many bits (optional in the file; default the activations' format).
    pub input: Format,
    /// Weights (the GEMM's B operand, K x N).
    pub weights: Format,
    /// Activations (the GEMM's A operand, M x K, and its output C, M x N).
    pub activations: Format,
    /// Gradients.
    pub gradients: Format,
    /// Weight updates (the accumulator of updates).
    pub updates: Format,
    /// Batch normalization's arithmetic and outputs (optional in the file; `None`: the
    /// full-precision unit's format, as the LP-SGLD reference keeps it in full precision).
    pub batchnorm: Option<Format>,
    /// The multiply-accumulate unit of the array.
    pub mac: MacConfig,
    /// The rounding unit used where each tensor is stored.
    pub rounding: StoreRounding,
}

/// Rounding unit per stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreRounding {
    /// Rounding of the training data when they are loaded (optional in the file; default `rne`).
    pub input: Rounding,
    /// Rounding of weights.
    pub weights: Rounding,
    /// Rounding of activations (including GEMM outputs).
    pub activations: Rounding,
    /// Rounding of gradients.
    pub gradients: Rounding,
    /// Rounding of weight updates.
    pub updates: Rounding,
}

/// The full-precision unit: where the full-precision algorithms (`sgd`, `sgld`, `csgld`,
/// `svrg`) run all their work and the SVRG family runs its once-per-epoch full gradients
/// (HALP paper, section 2.1: the outer loop is full precision). Its work is priced apart from
/// the low-precision datapath: its MACs by their own action keys, its compute as the cost
/// component `full_precision`, its GEMMs' cycles by SCALE-Sim on its own array.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FullPrecision {
    /// The format of full-precision tensors (storage and the vector unit's results); a float
    /// that the MAC's `a` and `b` inputs hold. Default `fp32`.
    pub format: Format,
    /// Its MAC. Default: `fp32 x fp32 + fp32`, fused, `rne`, sequential.
    pub mac: MacConfig,
    /// Its systolic array. Default: the geometry and dataflow of `compute.array`.
    pub array: Array,
}

impl FullPrecision {
    /// The default unit: an `fp32` fused MAC on an array shaped like `array`.
    pub fn fp32(array: Array) -> Self {
        let fp32 = crate::format::alias("fp32").expect("fp32 is a built-in alias");
        FullPrecision {
            format: fp32,
            mac: MacConfig::new(
                fp32,
                fp32,
                None,
                true,
                fp32,
                Rounding::NearestEven,
                Order::Sequential,
            )
            .expect("an fp32 fused MAC is valid"),
            array,
        }
    }

    /// Whether the full-precision MAC is the low-precision array's own (then that array does
    /// the full-precision work and no second array exists, see `cost::area`).
    pub fn shares_array(&self, formats: &Formats, array: &Array) -> bool {
        self.mac == formats.mac && self.array == *array
    }
}

/// Dataflow of the systolic array (SCALE-Sim's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataflow {
    /// Output stationary.
    Os,
    /// Weight stationary.
    Ws,
    /// Input stationary.
    Is,
}

/// Compute units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Compute {
    /// The systolic MAC array.
    pub array: Array,
    /// The vector unit for elementwise work.
    pub vector: Vector,
    /// The random-number source of the stochastic rounding units.
    pub rng: Rng,
}

/// A `rows x cols` systolic array of MACs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Array {
    /// Rows of processing elements (R).
    pub rows: u64,
    /// Columns of processing elements (C).
    pub cols: u64,
    /// Dataflow.
    pub dataflow: Dataflow,
}

/// A SIMD unit: `lanes` elementwise operations per cycle in `format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vector {
    /// Operations per cycle.
    pub lanes: u64,
    /// Format the lanes compute in.
    pub format: Format,
}

/// Kind of random-number source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RngKind {
    /// Linear-feedback shift registers: one flip-flop (and an XOR) per random bit per cycle.
    Lfsr,
    /// No source: stochastic rounding is not available.
    None,
}

/// The random-number source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rng {
    /// What generates the bits.
    pub kind: RngKind,
    /// Random bits produced per cycle.
    pub bits_per_cycle: u64,
}

/// Kind of memory level (selects the default energy and area model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Off-chip DRAM (no area on the chip).
    Dram,
    /// On-chip SRAM.
    Sram,
    /// Register file / flip-flops.
    Reg,
}

impl MemoryKind {
    /// The JSON spelling.
    pub fn name(self) -> &'static str {
        match self {
            MemoryKind::Dram => "dram",
            MemoryKind::Sram => "sram",
            MemoryKind::Reg => "reg",
        }
    }
}

/// One memory level.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryLevel {
    /// Name, the key of its traffic in `ActionCounts::mem`.
    pub name: String,
    /// Kind.
    pub kind: MemoryKind,
    /// Capacity in bytes (`None` for a DRAM given without a size).
    pub size_bytes: Option<u64>,
    /// Bits read plus written per cycle.
    pub bandwidth_bits_per_cycle: f64,
    /// Energy per bit read, pJ (given, or derived from kind and size at the arch's node).
    pub read_pj_per_bit: f64,
    /// Energy per bit written, pJ (given, or derived from kind and size at the arch's node).
    pub write_pj_per_bit: f64,
}

/// A default table and per-entry overrides (Accelergy's ERT/ART with a plug-in default).
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Name of the default table (only `horowitz45`).
    pub table: String,
    /// Overrides, in the table's unit (pJ for energy, µm² for area), at the arch's node.
    /// Keys are canonical (see `cost::energy::canonical_action` and `canonical_area_unit`).
    pub overrides: BTreeMap<String, f64>,
}

/// The default tables that exist.
pub const TABLES: &[&str] = &["horowitz45"];

const TOP: &[&str] = &[
    "name",
    "description",
    "technology",
    "formats",
    "compute",
    "full_precision",
    "memory",
    "energy",
    "area",
];

impl Architecture {
    /// Build from a parsed JSON document; `file` is used in error messages only.
    pub fn from_value(file: &str, value: &Value) -> Result<Self, ArchError> {
        let o = Node::root(file, value).object(TOP)?;
        let name = o.req("name", "a string", |n| n.str().map(str::to_string))?;
        let description = o.opt("description", |n| n.str().map(str::to_string))?;
        let technology = o.req("technology", "an object", |n| {
            let t = n.object(&["node_nm", "clock_ghz"])?;
            Ok(Technology {
                node_nm: t.req("node_nm", "nm, > 0", |n| n.positive())?,
                clock_ghz: t.req("clock_ghz", "GHz, > 0", |n| n.positive())?,
            })
        })?;
        let formats = o.req("formats", "an object", formats)?;
        let compute = o.req("compute", "an object", compute)?;
        let full_precision = o
            .opt("full_precision", |n| full_precision(n, &compute.array))?
            .unwrap_or_else(|| FullPrecision::fp32(compute.array));
        let memory = o.req("memory", "a list of levels, DRAM first", |n| {
            let levels = n.array(|l| level(l, technology.node_nm))?;
            if levels.is_empty() {
                return Err(n.err("must list at least one level"));
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(l) = levels.iter().find(|l| !seen.insert(l.name.as_str())) {
                return Err(n.err(format!("level name `{}` is used twice", l.name)));
            }
            Ok(levels)
        })?;
        let energy = o.req("energy", "an object", |n| table(n, canonical_action))?;
        let area = o.req("area", "an object", |n| table(n, canonical_area_unit))?;
        let arch = Architecture {
            name,
            description,
            technology,
            formats,
            compute,
            full_precision,
            memory,
            energy,
            area,
        };
        if arch.compute.rng.kind == RngKind::None && arch.uses_stochastic_rounding() {
            return Err(ArchError::Invalid {
                file: file.to_string(),
                detail: "compute.rng.kind = \"none\": a rounding unit is stochastic (sr), so the \
                         source must be lfsr"
                    .to_string(),
            });
        }
        Ok(arch)
    }

    /// Whether any rounding unit of the datapath is stochastic.
    pub fn uses_stochastic_rounding(&self) -> bool {
        let r = &self.formats.rounding;
        [
            r.input,
            r.weights,
            r.activations,
            r.gradients,
            r.updates,
            self.formats.mac.acc_rounding,
            self.full_precision.mac.acc_rounding,
        ]
        .iter()
        .any(|r| r.is_stochastic())
    }

    /// The level the array reads from and writes to (the innermost, last in the list).
    pub fn innermost(&self) -> &MemoryLevel {
        // `from_value` rejects an empty list.
        &self.memory[self.memory.len() - 1]
    }
}

fn formats(n: Node<'_>) -> Result<Formats, ArchError> {
    let o = n.object(&[
        "input",
        "weights",
        "activations",
        "gradients",
        "updates",
        "batchnorm",
        "mac",
        "rounding",
    ])?;
    let spec = "a format spec, e.g. \"bf16\"";
    let activations = o.req("activations", spec, |n| n.parsed())?;
    let rounding = o.req("rounding", "an object", |n| {
        let r = n.object(&["input", "weights", "activations", "gradients", "updates"])?;
        let spec = "a rounding spec, e.g. \"rne\" or \"sr:bits=8\"";
        Ok(StoreRounding {
            input: r
                .opt("input", |n| n.parsed())?
                .unwrap_or(Rounding::NearestEven),
            weights: r.req("weights", spec, |n| n.parsed())?,
            activations: r.req("activations", spec, |n| n.parsed())?,
            gradients: r.req("gradients", spec, |n| n.parsed())?,
            updates: r.req("updates", spec, |n| n.parsed())?,
        })
    })?;
    let input = o.opt("input", |n| n.parsed())?.unwrap_or(activations);
    // The data are quantized with this pair when loaded: refuse a unit the format lacks.
    if let Err(e) = Quantizer::new(input, rounding.input, 0, 0) {
        return Err(n.err(format!("input and rounding.input: {e}")));
    }
    Ok(Formats {
        input,
        weights: o.req("weights", spec, |n| n.parsed())?,
        activations,
        gradients: o.req("gradients", spec, |n| n.parsed())?,
        updates: o.req("updates", spec, |n| n.parsed())?,
        batchnorm: o.opt("batchnorm", |n| n.parsed())?,
        mac: o.req("mac", "an object", mac)?,
        rounding,
    })
}

fn mac(n: Node<'_>) -> Result<MacConfig, ArchError> {
    let o = n.object(&[
        "a",
        "b",
        "product",
        "fused",
        "accumulator",
        "acc_rounding",
        "order",
    ])?;
    let spec = "a format spec";
    let product = o.opt("product", |n| match n.str()? {
        "exact" => Ok(None),
        _ => n.parsed().map(Some),
    })?;
    let mac = MacConfig::new(
        o.req("a", spec, |n| n.parsed())?,
        o.req("b", spec, |n| n.parsed())?,
        product.flatten(),
        o.req("fused", "true or false", |n| n.bool())?,
        o.req("accumulator", spec, |n| n.parsed())?,
        o.opt("acc_rounding", |n| n.parsed())?
            .unwrap_or(Rounding::NearestEven),
        o.opt("order", |n| n.parsed())?.unwrap_or(Order::Sequential),
    );
    mac.map_err(|e| n.err(e))
}

fn array(n: Node<'_>) -> Result<Array, ArchError> {
    let a = n.object(&["rows", "cols", "dataflow"])?;
    Ok(Array {
        rows: a.req("rows", "a whole number >= 1", |n| n.uint(1))?,
        cols: a.req("cols", "a whole number >= 1", |n| n.uint(1))?,
        dataflow: a.req("dataflow", "os, ws or is", |n| {
            Ok(match n.choice(&["os", "ws", "is"])? {
                "os" => Dataflow::Os,
                "ws" => Dataflow::Ws,
                _ => Dataflow::Is,
            })
        })?,
    })
}

/// The `full_precision` section: every field optional, defaults from [`FullPrecision::fp32`].
fn full_precision(n: Node<'_>, lp_array: &Array) -> Result<FullPrecision, ArchError> {
    let o = n.object(&["format", "mac", "array"])?;
    let default = FullPrecision::fp32(*lp_array);
    let format: Format = o
        .opt("format", |n| {
            let f: Format = n.parsed()?;
            if !matches!(f, Format::Float(_)) || !f.fits_f32() {
                return Err(n.bad_value(
                    "must be a float format whose values are f32 values (fp32 or narrower)",
                ));
            }
            Ok(f)
        })?
        .unwrap_or(default.format);
    let mac = o.opt("mac", mac)?.unwrap_or(default.mac);
    for (role, input) in [("a", mac.a), ("b", mac.b)] {
        if !input.contains(&format) {
            return Err(n.err(format!(
                "mac.{role} = `{input}` does not hold every value of format `{format}`: \
                 full-precision tensors enter the MAC without a conversion"
            )));
        }
    }
    Ok(FullPrecision {
        format,
        mac,
        array: o.opt("array", array)?.unwrap_or(default.array),
    })
}

fn compute(n: Node<'_>) -> Result<Compute, ArchError> {
    let o = n.object(&["array", "vector", "rng"])?;
    Ok(Compute {
        array: o.req("array", "an object", array)?,
        vector: o.req("vector", "an object", |n| {
            let v = n.object(&["lanes", "format"])?;
            Ok(Vector {
                lanes: v.req("lanes", "a whole number >= 1", |n| n.uint(1))?,
                format: v.req("format", "a format spec", |n| n.parsed())?,
            })
        })?,
        rng: o.req("rng", "an object", |n| {
            let r = n.object(&["kind", "bits_per_cycle"])?;
            let kind = r.req("kind", "lfsr or none", |n| {
                Ok(match n.choice(&["lfsr", "none"])? {
                    "lfsr" => RngKind::Lfsr,
                    _ => RngKind::None,
                })
            })?;
            let min = u64::from(kind == RngKind::Lfsr);
            Ok(Rng {
                kind,
                bits_per_cycle: r.opt("bits_per_cycle", |n| n.uint(min))?.map_or_else(
                    || match kind {
                        RngKind::Lfsr => Err(r
                            .node()
                            .err("missing field `bits_per_cycle` (a whole number >= 1 for lfsr)")),
                        RngKind::None => Ok(0),
                    },
                    Ok,
                )?,
            })
        })?,
    })
}

fn level(n: Node<'_>, node_nm: f64) -> Result<MemoryLevel, ArchError> {
    let o = n.object(&[
        "name",
        "kind",
        "size_bytes",
        "bandwidth_bits_per_cycle",
        "read_pj_per_bit",
        "write_pj_per_bit",
    ])?;
    let name = o.req("name", "a string", |n| n.str().map(str::to_string))?;
    let kind = o.req("kind", "dram, sram or reg", |n| {
        Ok(match n.choice(&["dram", "sram", "reg"])? {
            "dram" => MemoryKind::Dram,
            "sram" => MemoryKind::Sram,
            _ => MemoryKind::Reg,
        })
    })?;
    let size_bytes = o.opt("size_bytes", |n| n.uint(1))?;
    if size_bytes.is_none() && kind != MemoryKind::Dram {
        return Err(n.err(format!(
            "missing field `size_bytes` (bytes, >= 1; required for kind {})",
            kind.name()
        )));
    }
    let bandwidth_bits_per_cycle =
        o.req("bandwidth_bits_per_cycle", "bits per cycle, > 0", |n| {
            n.positive()
        })?;
    let default = default_memory_pj_per_bit(kind, size_bytes, node_nm);
    Ok(MemoryLevel {
        name,
        kind,
        size_bytes,
        bandwidth_bits_per_cycle,
        read_pj_per_bit: o
            .opt("read_pj_per_bit", |n| n.non_negative())?
            .unwrap_or(default),
        write_pj_per_bit: o
            .opt("write_pj_per_bit", |n| n.non_negative())?
            .unwrap_or(default),
    })
}

fn table(
    n: Node<'_>,
    canonical: impl Fn(&str) -> Result<String, String>,
) -> Result<Table, ArchError> {
    let o = n.object(&["table", "overrides"])?;
    let table = o.req("table", "horowitz45", |n| {
        n.choice(TABLES).map(str::to_string)
    })?;
    let overrides = o
        .opt("overrides", |n| {
            let m: Obj<'_> = n.object_any()?;
            let mut out = BTreeMap::new();
            for key in m.keys() {
                let value = m.req(key, "a number", |v| {
                    let k = canonical(key).map_err(|e| v.err(e))?;
                    Ok((k, v.non_negative()?))
                })?;
                out.insert(value.0, value.1);
            }
            Ok(out)
        })?
        .unwrap_or_default();
    Ok(Table { table, overrides })
}
