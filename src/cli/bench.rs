//! `lpsim bench`: the emulator's speed against native arithmetic, measured in one run.

use std::io::Write;

use anyhow::Context;

use crate::bench::{bench_quantize, BenchRow};

/// Arguments of `lpsim bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Elements per second of the quantizers against a native f32 copy.
    Quantize {
        /// Print JSON rows (`name`, `elements_per_s`, `ratio_to_native`).
        #[arg(long)]
        json: bool,
        /// Worker threads (default 1).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Elements per array (default 2^24).
        #[arg(long, default_value_t = 1 << 24)]
        size: usize,
        /// Timed repetitions per kernel; the median is reported.
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
}

fn print_rows(rows: &[BenchRow], json: bool, unit: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, rows)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{:<24} {:>16} {:>10}", "name", unit, "x native")?;
    for r in rows {
        writeln!(
            out,
            "{:<24} {:>16.4e} {:>10.3}",
            r.name, r.elements_per_s, r.ratio_to_native
        )?;
    }
    Ok(())
}

/// Run `lpsim bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Quantize {
            json,
            threads,
            size,
            reps,
        } => {
            anyhow::ensure!(threads >= 1, "--threads = 0: must be at least 1");
            anyhow::ensure!(size >= 1, "--size = 0: must be at least 1");
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .context("cannot start the thread pool")?;
            let rows = pool.install(|| bench_quantize(size, reps))?;
            print_rows(&rows, json, "elements/s")
        }
    }
}
