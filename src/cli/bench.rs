//! `lpsim bench`: the emulator's speed against native arithmetic, measured in one run.

use crate::limits;
use std::io::Write;

use anyhow::Context;

use crate::bench::{bench_gemm, bench_quantize, bench_train, TrainBench, TrainRow};

/// Arguments of `lpsim bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Elements per second of the quantizers against a native f32 copy, timed alternately.
    Quantize {
        /// Print JSON rows (`name`, `elements_per_s`, `ratio_to_native`).
        #[arg(long)]
        json: bool,
        /// Worker threads (default 1; at most 8 per core).
        #[arg(long, default_value_t = 1, value_parser = super::threads)]
        threads: usize,
        /// Elements per array (default 2^24).
        #[arg(long, default_value_t = 1 << 24)]
        size: usize,
        /// Timed repetitions per kernel, each paired with a native copy run just before it;
        /// the medians of the rate and of the per-pair ratio are reported.
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// GFLOP/s of the emulated GEMMs against the native f32 GEMM, M = N = K, timed alternately.
    Gemm {
        /// Print JSON rows (`name`, `gflops`, `ratio_to_native`).
        #[arg(long)]
        json: bool,
        /// Worker threads (default: all cores; at most 8 per core).
        #[arg(long, value_parser = super::threads)]
        threads: Option<usize>,
        /// M = N = K (default 512).
        #[arg(long, default_value_t = 512)]
        size: usize,
        /// Timed repetitions per kernel, each paired with a native GEMM run just before it;
        /// the medians of the rate and of the per-pair ratio are reported.
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// Milliseconds per training epoch of each algorithm on each architecture (the workload's
    /// MLP with one hidden layer of --hidden units, or a cnn workload's network as it is;
    /// --batch examples per step) against a native f32 SGD epoch of the same network timed
    /// right after it in the same pool (e.g. --workload workloads/digits-cnn.json); `train ms`
    /// is the epoch without the f64 training-set loss the driver reports after it (`loss ms`,
    /// timed again on its own), the figure a NumPy or PyTorch training epoch compares with.
    Train {
        /// Print JSON rows (`algo`, `arch`, `threads`, `model`, `batch`, `ms_per_epoch`,
        /// `native_ms_per_epoch`, `times_native`, `train_ms_per_epoch`, `train_times_native`,
        /// `epoch_ms`, `train_epoch_ms`, `native_epoch_ms`, `steps_per_epoch`, `loss_eval_ms`,
        /// `train_loss`).
        #[arg(long)]
        json: bool,
        /// Pool sizes, comma-separated, each timed in turn (default: 1 and all cores; at most
        /// 8 per core).
        #[arg(long, value_delimiter = ',', value_parser = super::threads)]
        threads: Vec<usize>,
        /// Timed epochs per run after one warm-up epoch; the median is reported.
        #[arg(long, default_value_t = 5)]
        epochs: usize,
        /// Algorithms, comma-separated (default: one per family, see `lpsim bench train --help`
        /// and README).
        #[arg(long, value_delimiter = ',', default_values_t = crate::bench::TRAIN_ALGOS.iter().map(|s| s.to_string()))]
        algos: Vec<String>,
        /// Architecture files, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = crate::bench::TRAIN_ARCHS.iter().map(|s| s.to_string()))]
        archs: Vec<String>,
        /// The workload: a classification data set with an MLP model, or a `cnn` model of conv,
        /// relu, maxpool, flatten and linear layers (timed as given; --hidden does not apply).
        #[arg(long, default_value = "workloads/digits-mlp.json")]
        workload: std::path::PathBuf,
        /// The MLP's one hidden width (replaces the workload's hidden widths).
        #[arg(long, default_value_t = 256)]
        hidden: usize,
        /// Examples per step (replaces the workload's batch_size).
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Seed of the runs and of the native model.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// Print the training bench's rows as a table, or as JSON.
fn print_train(rows: &[TrainRow], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, rows)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<14} {:<8} {:>7} {:>10} {:>10} {:>9} {:>9} {:>9} {:>6} {:>10} {:>10}",
        "algo",
        "arch",
        "threads",
        "ms/epoch",
        "native ms",
        "x native",
        "train ms",
        "x native",
        "steps",
        "loss ms",
        "loss"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<14} {:<8} {:>7} {:>10.3} {:>10.3} {:>9.2} {:>9.3} {:>9.2} {:>6} {:>10.3} {:>10.4}",
            r.algo,
            r.arch,
            r.threads,
            r.ms_per_epoch,
            r.native_ms_per_epoch,
            r.times_native,
            r.train_ms_per_epoch,
            r.train_times_native,
            r.steps_per_epoch,
            r.loss_eval_ms,
            r.train_loss
        )?;
    }
    Ok(())
}

/// Print `(name, figure, ratio to native)` rows as a table, or the rows themselves as JSON.
fn print_rows<T: serde::Serialize>(
    rows: &[T],
    json: bool,
    unit: &str,
    cells: impl Fn(&T) -> (&str, f64, f64),
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, rows)?;
        writeln!(out)?;
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|r| cells(r).0.len())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(out, "{:<width$} {:>14} {:>10}", "name", unit, "x native")?;
    for r in rows {
        let (name, figure, ratio) = cells(r);
        writeln!(out, "{name:<width$} {figure:>14.4e} {ratio:>10.4}")?;
    }
    Ok(())
}

fn pool(threads: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .context("cannot start the thread pool")
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
            anyhow::ensure!(size >= 1, "--size = 0: must be at least 1");
            // The input, the output and the native copy: 3 f32 arrays.
            limits::check_array("--size (3 arrays of f32)", &[size, 3], 4)?;
            let rows = pool(Some(threads))?.install(|| bench_quantize(size, reps))?;
            print_rows(&rows, json, "elements/s", |r| {
                (&r.name, r.elements_per_s, r.ratio_to_native)
            })
        }
        What::Gemm {
            json,
            threads,
            size,
            reps,
        } => {
            anyhow::ensure!(size >= 1, "--size = 0: must be at least 1");
            // A, B and C of size x size, with their f32 inputs and quantized copies.
            limits::check_array("--size x --size (A, B and C)", &[size, size, 6], 8)?;
            let rows = pool(threads)?.install(|| bench_gemm(size, reps.max(1)))?;
            print_rows(&rows, json, "GFLOP/s", |r| {
                (&r.name, r.gflops, r.ratio_to_native)
            })
        }
        What::Train {
            json,
            mut threads,
            epochs,
            algos,
            archs,
            workload,
            hidden,
            batch,
            seed,
        } => {
            anyhow::ensure!(epochs >= 1, "--epochs = 0: must be at least 1");
            anyhow::ensure!(hidden >= 1, "--hidden = 0: must be at least 1");
            anyhow::ensure!(batch >= 1, "--batch = 0: must be at least 1");
            if threads.is_empty() {
                threads = vec![1, pool(None)?.current_num_threads()];
                threads.dedup();
            }
            let cfg = TrainBench {
                workload,
                algos,
                archs: archs.into_iter().map(Into::into).collect(),
                epochs,
                hidden,
                batch,
                seed,
            };
            let mut rows = Vec::new();
            for t in threads {
                rows.extend(pool(Some(t))?.install(|| bench_train(&cfg))?);
            }
            print_train(&rows, json)
        }
    }
}
