//! `lpsim cost`: price work on an architecture without running it.

use std::io::Write;
use std::path::PathBuf;

use crate::arch::Architecture;
use crate::cost::{price_gemm, CostReport, Gemm};

/// Arguments of `lpsim cost`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: lpsim cost --arch arch/bf16.json --gemm 128,256,512 --json")]
pub struct Args {
    /// Architecture description (JSON, see arch/README.md).
    #[arg(long)]
    arch: PathBuf,
    /// One GEMM `M,N,K`: C (M x N) = A (M x K) B (K x N).
    #[arg(long, value_parser = parse_gemm)]
    gemm: Gemm,
    /// Print the full report as JSON instead of a summary.
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

/// Run `lpsim cost`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let arch = Architecture::load(&args.arch)?;
    let report = price_gemm(&arch, args.gemm)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        summary(&mut out, &report)?;
    }
    Ok(())
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
        writeln!(out, "  {k:<12} {v:.4e} pJ")?;
    }
    writeln!(out, "area          {:.4} mm2", r.area_mm2)?;
    for (k, v) in &r.area_breakdown {
        writeln!(out, "  {k:<12} {v:.4} mm2")?;
    }
    Ok(())
}
