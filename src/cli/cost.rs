//! `lpsim cost`: price work on an architecture without running it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use serde::Serialize;

use crate::arch::{override_value, Architecture};
use crate::cost::{price_gemm, price_gemms, CostReport, Gemm};

/// Arguments of `lpsim cost`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Several --gemm run one after another: each is priced on its own and \
the total adds their actions and cycles.\n\
Examples:\n  lpsim cost --arch arch/bf16.json --gemm 128,256,512 --json\n  \
lpsim cost --arch arch/int8.json --gemm 64,784,128 --gemm 64,128,10 \
--set compute.array.rows=64 --set formats.weights=e4m3fn"
)]
pub struct Args {
    /// Architecture description (JSON, see arch/README.md).
    #[arg(long)]
    arch: PathBuf,
    /// A GEMM `M,N,K`: C (M x N) = A (M x K) B (K x N). Repeat for several GEMMs.
    #[arg(long, required = true, value_parser = parse_gemm)]
    gemm: Vec<Gemm>,
    /// Change a field of the architecture: `PATH=VALUE`, PATH dotted as in the JSON
    /// (`compute.array.rows`, `memory.1.size_bytes`, `formats.weights`; an `arch.` prefix as in
    /// `lpsim run --set` is accepted). Repeatable; checked like the file itself.
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = parse_set)]
    set: Vec<(String, String)>,
    /// Print the report as JSON (`total`, and `gemms` with each GEMM's own report) instead of a
    /// summary.
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

/// One GEMM's own report, as `--json` prints it.
#[derive(Serialize)]
struct PricedGemm {
    m: u64,
    n: u64,
    k: u64,
    report: CostReport,
}

/// What `--json` prints.
#[derive(Serialize)]
struct Output {
    total: CostReport,
    gemms: Vec<PricedGemm>,
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
    let gemms = args
        .gemm
        .iter()
        .map(|&g| {
            Ok(PricedGemm {
                m: g.m,
                n: g.n,
                k: g.k,
                report: price_gemm(&arch, g)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let total = price_gemms(&arch, &args.gemm)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &Output { total, gemms })?;
        writeln!(out)?;
    } else {
        if gemms.len() > 1 {
            per_gemm(&mut out, &gemms)?;
        }
        summary(&mut out, &total)?;
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
