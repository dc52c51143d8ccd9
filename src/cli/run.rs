//! `lpsim run`: one workload x algorithm x architecture, trained or sampled bit-accurately,
//! written as `report.json`, `report.md` and SVG plots.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::run_progress::RunProgress;
use crate::report::{run_dir, write_run, REPORTS_ROOT};
use crate::run::run_one_with;
use crate::sweep::{ProgressMode, RunSpec};

/// Arguments of `lpsim run`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Algorithms: sgd, lp-sgd, sgld, lp-sgld-f, lp-sgld-naive, lp-sgld-vc, \
csgld, lp-csgld-f, lp-csgld-naive, lp-csgld-vc, qsgld, svrg, lp-svrg, halp.\n\
--set takes a hyperparameter of the algorithm (lr, temperature, epochs, batch, ...; a wrong name \
lists the allowed ones) or an architecture field as arch.<json path> \
(e.g. --set arch.formats.weights=e4m3fn --set arch.compute.array.rows=64).\n\
Example: lpsim run --workload workloads/gaussian-toy.json --algo lp-sgld-vc --arch arch/int8.json"
)]
pub struct Args {
    /// Workload file (see workloads/README.md).
    #[arg(long, short)]
    workload: PathBuf,
    /// Algorithm.
    #[arg(long, short)]
    algo: String,
    /// Architecture file (see arch/README.md).
    #[arg(long, default_value = "arch/fp32.json")]
    arch: PathBuf,
    /// Override a hyperparameter or an architecture field: key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores; at most 8 per core); the results do not depend on it.
    #[arg(long, value_parser = super::threads)]
    threads: Option<usize>,
    /// Output directory (default reports/<workload>-<algo>-<arch>/).
    #[arg(long, value_parser = super::out_dir)]
    out: Option<PathBuf>,
    /// Also print the report as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// No progress on standard error (by default: a bar on a terminal, else a line per epoch).
    #[arg(long, short)]
    quiet: bool,
}

/// `key=value` pairs of `--set`.
pub(crate) fn parse_set(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .with_context(|| format!("--set `{s}`: expected key=value"))
        })
        .collect()
}

/// Run `lpsim run`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let set = parse_set(&args.set)?;
    // The run executes on a worker of the pool, so its many small parallel kernels split
    // their work among the workers instead of each being handed over from this thread and
    // waited for (measured: a HALP run spent most of its time in that hand-over).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("cannot start the thread pool")?;
    let spec = RunSpec {
        workload_path: args.workload.clone(),
        algo: args.algo.clone(),
        arch_path: args.arch.clone(),
        seed: args.seed,
        set,
    };
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Auto
    };
    let shown = RunProgress::start(mode, &spec.label());
    let result = pool.install(|| run_one_with(&spec, &mut |p| shown.epoch(p)));
    shown.finish();
    let report = result?;
    let dir = args.out.unwrap_or_else(|| {
        run_dir(
            Path::new(REPORTS_ROOT),
            &report.config.workload,
            &report.config.algo,
            &report.config.arch,
        )
    });
    let files = write_run(&dir, &report)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        let m = &report.metrics;
        let show = |k: &str| m.get(k).map(|v| format!("{k} = {v:.6}"));
        let figures: Vec<String> = [
            "test_accuracy",
            "test_nll",
            "ece",
            "train_loss",
            "optimality_gap",
            "sample_mean",
            "sample_var",
        ]
        .iter()
        .filter_map(|k| show(k))
        .collect();
        writeln!(
            out,
            "{} / {} / {} (seed {})",
            report.config.workload, report.config.algo, report.config.arch, report.config.seed
        )?;
        if let Some(e) = report.diverged_at_epoch {
            writeln!(out, "diverged at epoch {e}")?;
        }
        writeln!(out, "{}", figures.join(", "))?;
        writeln!(
            out,
            "energy = {:.4e} pJ, cycles = {:.4e}, area = {:.3} mm2",
            report.cost.energy_pj, report.cost.cycles, report.cost.area_mm2
        )?;
    }
    for line in report.range_warnings() {
        eprintln!("{line}");
    }
    eprintln!("wrote {} files to {}", files.len(), dir.display());
    Ok(())
}
