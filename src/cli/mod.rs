//! The command line: one file per subcommand (clap derive), each a thin layer over the library.

mod bench;
mod cost;
mod formats;
mod gemm;
mod graph;
mod quantize;
pub(crate) mod run;
mod run_progress;
pub mod sweep;

use clap::{Parser, Subcommand};

/// Bit-accurate low-precision arithmetic, hardware cost, and low-precision learning.
#[derive(Parser, Debug)]
#[command(name = "lpsim", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the built-in formats: bits, range, smallest subnormal, epsilon, special values.
    Formats(formats::Args),
    /// Quantize values (text or .npy) to a format with a rounding mode.
    Quantize(quantize::Args),
    /// Measure the emulator's speed against native arithmetic in one run.
    Bench(bench::Args),
    /// Price GEMMs or a network (a SCALE-Sim topology file) on an architecture: cycles, energy,
    /// utilization, area.
    Cost(cost::Args),
    /// Emulated GEMM with given input, product and accumulator formats: errors against exact.
    Gemm(Box<gemm::Args>),
    /// Print an algorithm's step graph (Graphviz DOT or JSON).
    Graph(graph::Args),
    /// Train or sample once: workload x algorithm x architecture -> accuracy and cost report.
    Run(run::Args),
    /// Run a grid of runs (workloads x algorithms x architectures x seeds x --set values).
    Sweep(sweep::Args),
}

/// Worker threads allowed per core: more only adds switching (and at 100000 threads the pool
/// takes minutes to start), so a larger count is refused.
const THREADS_PER_CORE: usize = 8;

/// A thread count from the command line: a whole number in `min..=8 x cores`.
fn thread_count(s: &str, min: usize) -> Result<usize, String> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let max = THREADS_PER_CORE * cores;
    match s.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a whole number in {min}..={max} ({THREADS_PER_CORE} per core, {cores} cores)"
        )),
    }
}

/// `--threads`: 1 ..= 8 per core.
pub(crate) fn threads(s: &str) -> Result<usize, String> {
    thread_count(s, 1)
}

/// `--jobs`: 0 (one per core) ..= 8 per core.
pub(crate) fn jobs(s: &str) -> Result<usize, String> {
    thread_count(s, 0)
}

/// An output directory given on the command line: not empty (that would write into the current
/// directory).
pub(crate) fn out_dir(s: &str) -> Result<std::path::PathBuf, String> {
    if s.trim().is_empty() {
        return Err("must name a directory (it is empty)".into());
    }
    Ok(s.into())
}

/// Parse `std::env::args` and run the chosen subcommand.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Formats(a) => formats::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Cost(a) => cost::run(a),
        Command::Gemm(a) => gemm::run(*a),
        Command::Graph(a) => graph::run(a),
        Command::Run(a) => run::run(a),
        Command::Sweep(a) => sweep::sweep_command(&a, &crate::run::run_one).map(|_| ()),
    }
}
