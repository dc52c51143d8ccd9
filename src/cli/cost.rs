//! `lpsim cost`: price work on an architecture without running it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;

use crate::arch::{override_value, Architecture};
use crate::cost::{
    price_gemm_list, price_topology, read_topology, CostReport, Gemm, PricedGemm, PricedLayer,
};

/// Arguments of `lpsim cost`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Several --gemm run one after another: each is priced on its own and \
the total adds their actions and cycles.\n\
--topology reads a SCALE-Sim topology file, conv (`Layer name, IFMAP Height, IFMAP Width, \
Filter Height, Filter Width, Channels, Num Filter, Strides,`) or GEMM (`Layer, M, N, K,`), \
told apart by the header, and prices every layer's forward pass as the GEMM SCALE-Sim v3 runs \
for it: a convolution without padding is M = output pixels (SCALE-Sim's ceil((H - R) / stride) + 1 \
times ceil((W - S) / stride) + 1), N = filters, K = R x S x Channels; a layer named with `DP` is \
depthwise (one GEMM of K = R x S per channel). Compute cycles are SCALE-Sim's per layer. \
It prints a line per layer, then the total; --gemm and --topology cannot be combined.\n\
Examples:\n  lpsim cost --arch arch/bf16.json --gemm 128,256,512 --json\n  \
lpsim cost --arch arch/int8.json --gemm 64,784,128 --gemm 64,128,10 \
--set compute.array.rows=64 --set formats.weights=e4m3fn\n  \
lpsim cost --arch arch/int8.json --topology topologies/lenet.csv \
--set compute.array.dataflow=ws"
)]
pub struct Args {
    /// Architecture description (JSON, see arch/README.md).
    #[arg(long)]
    arch: PathBuf,
    /// A GEMM `M,N,K`: C (M x N) = A (M x K) B (K x N). Repeat for several GEMMs.
    #[arg(long, value_parser = parse_gemm, required_unless_present = "topology")]
    gemm: Vec<Gemm>,
    /// A SCALE-Sim topology file (conv or GEMM CSV): price every layer's forward pass.
    #[arg(long, value_name = "CSV", conflicts_with = "gemm")]
    topology: Option<PathBuf>,
    /// Change a field of the architecture: `PATH=VALUE`, PATH dotted as in the JSON
    /// (`compute.array.rows`, `memory.1.size_bytes`, `formats.weights`; an `arch.` prefix as in
    /// `lpsim run --set` is accepted). Repeatable; checked like the file itself.
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = parse_set)]
    set: Vec<(String, String)>,
    /// Print the report as JSON instead of a summary: `total`, and `gemms` with each GEMM's own
    /// report; with --topology, `kind` (`conv` or `gemm`), `total` and `layers` (each
    /// `name`, `line`, `m`, `n`, `k`, `count` and its `report`).
    #[arg(long)]
    json: bool,
}

/// Parse `M,N,K` (three whole numbers >= 1).
fn parse_gemm(s: &str) -> Result<Gemm, String> {
    let dims: Vec<u64> = s
        .split(',')
        .map(|d| d.trim().parse::<u64>().ok().filter(|&x| x >= 1))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("`{s}`: expected M,N,K, three whole numbers >= 1"))?;
    match dims[..] {
        [m, n, k] => Ok(Gemm { m, n, k }),
        _ => Err(format!("`{s}`: expected M,N,K, three whole numbers >= 1")),
    }
}

/// Parse `PATH=VALUE`, dropping an optional `arch.` prefix.
fn parse_set(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((path, value)) if !path.trim().is_empty() => {
            let path = path.trim();
            let path = path.strip_prefix("arch.").unwrap_or(path);
            Ok((path.to_string(), value.trim().to_string()))
        }
        _ => Err(format!(
            "`{s}`: expected PATH=VALUE, e.g. compute.array.rows=64"
        )),
    }
}

/// Run `lpsim cost`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut overrides = BTreeMap::new();
    for (path, value) in &args.set {
        if overrides
            .insert(path.clone(), override_value(value))
            .is_some()
        {
            bail!("--set {path} is given twice");
        }
    }
    let arch = Architecture::load_with_overrides(&args.arch, &overrides)?;
    if let Some(path) = &args.topology {
        let priced = price_topology(&arch, &read_topology(path)?)?;
        let mut out = std::io::stdout().lock();
        if args.json {
            serde_json::to_writer_pretty(&mut out, &priced)?;
            writeln!(out)?;
        } else {
            per_layer(&mut out, &priced.layers)?;
            summary(&mut out, &priced.total)?;
        }
        return Ok(());
    }
    let priced = price_gemm_list(&arch, &args.gemm)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &priced)?;
        writeln!(out)?;
    } else {
        if priced.gemms.len() > 1 {
            per_gemm(&mut out, &priced.gemms)?;
        }
        summary(&mut out, &priced.total)?;
    }
    Ok(())
}

/// A line per GEMM: its shape, cycles, energy and utilization.
fn per_gemm(out: &mut impl Write, gemms: &[PricedGemm]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>3}  {:>26}  {:>14}  {:>12}  {:>11}",
        "#", "M,N,K", "cycles", "energy pJ", "utilization"
    )?;
    for (i, g) in gemms.iter().enumerate() {
        writeln!(
            out,
            "{:>3}  {:>26}  {:>14}  {:>12.4e}  {:>9.2} %",
            i + 1,
            format!("{},{},{}", g.m, g.n, g.k),
            g.report.total_cycles,
            g.report.energy_pj,
            g.report.utilization * 100.0
        )?;
    }
    writeln!(out, "total of {} GEMMs:", gemms.len())
}

/// A line per layer: its GEMM, cycles, utilization, energy, MACs and the traffic at each
/// memory level (bits read + written).
fn per_layer(out: &mut impl Write, layers: &[PricedLayer]) -> std::io::Result<()> {
    let levels: Vec<&str> = layers
        .first()
        .map(|l| l.report.memory.iter().map(|m| m.name.as_str()).collect())
        .unwrap_or_default();
    let width = layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0)
        .max(5);
    write!(
        out,
        "{:>3}  {:<width$}  {:>22}  {:>12}  {:>7}  {:>10}  {:>10}",
        "#", "layer", "M,N,K", "cycles", "util %", "energy pJ", "MACs"
    )?;
    for level in &levels {
        write!(out, "  {:>12}", format!("{level} bits"))?;
    }
    writeln!(out)?;
    for (i, l) in layers.iter().enumerate() {
        let r = &l.report;
        let dims = match l.count {
            1 => format!("{},{},{}", l.m, l.n, l.k),
            c => format!("{c} x {},{},{}", l.m, l.n, l.k),
        };
        write!(
            out,
            "{:>3}  {:<width$}  {:>22}  {:>12}  {:>7.2}  {:>10.3e}  {:>10.3e}",
            i + 1,
            l.name,
            dims,
            r.total_cycles,
            r.utilization * 100.0,
            r.energy_pj,
            r.macs as f64
        )?;
        for level in &levels {
            let bits = r
                .memory
                .iter()
                .find(|m| m.name == *level)
                .map_or(0.0, |m| m.read_bits as f64 + m.write_bits as f64);
            write!(out, "  {bits:>12.3e}")?;
        }
        writeln!(out)?;
    }
    let gemms: u64 = layers.iter().map(|l| l.count).sum();
    writeln!(out, "total of {} layers ({gemms} GEMMs):", layers.len())
}

fn summary(out: &mut impl Write, r: &CostReport) -> std::io::Result<()> {
    writeln!(out, "arch          {}", r.arch)?;
    writeln!(out, "macs          {}", r.macs)?;
    writeln!(
        out,
        "cycles        {} compute + {} stall = {}",
        r.cycles, r.stall_cycles, r.total_cycles
    )?;
    writeln!(out, "time          {:.3} us", r.time_ns / 1e3)?;
    writeln!(out, "utilization   {:.2} %", r.utilization * 100.0)?;
    writeln!(out, "energy        {:.4e} pJ", r.energy_pj)?;
    for (k, v) in &r.breakdown {
        writeln!(out, "  {k:<15} {v:.4e} pJ")?;
    }
    writeln!(out, "area          {:.4} mm2", r.area_mm2)?;
    for (k, v) in &r.area_breakdown {
        writeln!(out, "  {k:<15} {v:.4} mm2")?;
    }
    Ok(())
}
