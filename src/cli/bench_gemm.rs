//! `lpsim bench-gemm` (temporary name; the lead merges it into `lpsim bench gemm`).

use crate::arith::bench_gemm;

/// Arguments of `lpsim bench-gemm`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// M = N = K.
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// Repetitions per kernel (the best is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print JSON rows.
    #[arg(long)]
    json: bool,
}

/// Run `lpsim bench-gemm`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()?;
    let rows = pool.install(|| bench_gemm(args.size, args.reps.max(1)))?;
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        for r in &rows {
            println!(
                "{:<60} {:>9.3} GFLOP/s  {:>7.4}x native",
                r.name, r.gflops, r.ratio_to_native
            );
        }
    }
    Ok(())
}
