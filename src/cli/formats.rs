//! `lpsim formats`: the table of built-in formats.

use std::io::Write;

use crate::format::{alias, FormatInfo, ALIASES};

/// Arguments of `lpsim formats`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Beyond the aliases, specs take the forms float:e=,m=..., fixed:wl=,fl=..., \
bfp:wl=,size=..., mx:elem=,size=..., and QPyTorch's own quantizers bit for bit: qtorch:e=,m=, \
qfixed:wl=,fl=[,clamp=on|off][,symmetric=on|off], qbfp:wl=,size=... (README, Formats; \
docs/formats.md). Block formats share one \
8-bit scale per block: size=N (N consecutive elements), size=row (one per row: per example of \
[batch, features] activations), size=col (one per column: per output unit of [in, out] weights, \
QPyTorch's dim=0 on PyTorch's [out, in] layout) or size=tensor."
)]
pub struct Args {
    /// Print JSON (one array of objects) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Run `lpsim formats`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rows: Vec<FormatInfo> = ALIASES
        .iter()
        .filter_map(|a| alias(a))
        .map(|f| FormatInfo::of(&f))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    let opt = |v: Option<i64>| v.map_or("-".to_string(), |x| x.to_string());
    writeln!(
        out,
        "{:<11} {:<6} {:>4} {:>3} {:>3} {:>5} {:>4} {:>6} {:>12} {:>12} {:>12} {:>12}  specials",
        "name",
        "kind",
        "bits",
        "e",
        "m",
        "bias",
        "fl",
        "block",
        "max",
        "min_normal",
        "min_subnorm",
        "epsilon"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<11} {:<6} {:>4} {:>3} {:>3} {:>5} {:>4} {:>6} {:>12.5e} {:>12.5e} {:>12.5e} {:>12.5e}  {}",
            r.name,
            r.kind,
            r.bits,
            opt(r.exp_bits.map(i64::from)),
            opt(r.man_bits.map(i64::from)),
            opt(r.bias.map(i64::from)),
            opt(r.fl.map(i64::from)),
            r.block.unwrap_or_else(|| "-".into()),
            r.max,
            r.min_normal,
            r.min_subnormal,
            r.epsilon,
            r.specials
        )?;
    }
    Ok(())
}
