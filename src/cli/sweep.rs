//! `lpsim sweep SPEC.json [--out DIR] [--jobs N] [--shard I/N | --merge | --slurm ...]`: run a
//! grid of runs (or one shard of it, or merge the shards' runs, or write Slurm scripts for it)
//! and write one report.
//!
//! The runs themselves come from a runner passed in ([`sweep_command`]), so this layer does not
//! depend on the algorithms; the binary passes the real one.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::report::{slug, RunReport, REPORTS_ROOT};
use crate::sweep::slurm::SlurmJob;
use crate::sweep::{
    plan_line, plan_sweep, run_sweep, Mode, ProgressMode, RunFailure, RunSpec, Shard, SweepSpec,
    SweepSummary, RESULTS_CSV,
};

/// Arguments of `lpsim sweep`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "The spec's schema: workloads/SWEEP.md. Finished runs are kept in \
DIR/runs/ and reused when the sweep runs again (failed runs are retried).\n\
On a cluster (README, \"Running on a cluster\"): --shard I/N runs one of N shards of the grid \
into the shared DIR; --merge then writes the results from the stored runs; --slurm writes a \
Slurm job array doing both (and submits it with --submit).\n\
Examples:\n  lpsim sweep sweep.json --out reports/mine --jobs 2\n  \
lpsim sweep sweep.json --slurm --shards 16 --cpus 4 --time 2:00:00 --submit"
)]
pub struct Args {
    /// The sweep spec (JSON).
    pub spec: PathBuf,
    /// Output directory; default: the spec's `out`, else `reports/<name>`.
    #[arg(long, value_parser = super::out_dir)]
    pub out: Option<PathBuf>,
    /// Runs in parallel; 0 = one per core; at most 8 per core.
    #[arg(long, short, default_value_t = 0, value_parser = super::jobs)]
    pub jobs: usize,
    /// Plan only: print how many runs the spec lists, how many are already stored in the
    /// output directory and how many would run, then stop without running or writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Run only shard I of N (0-based; a stable partition of the grid balanced by estimated
    /// cost), storing its runs in DIR/runs/ and writing no results; shards may run at once
    /// against one DIR on a shared file system. Exits 0 when its runs are done, failed ones
    /// included (they are recorded for --merge).
    #[arg(long, value_name = "I/N", conflicts_with_all = ["merge", "slurm"])]
    pub shard: Option<Shard>,
    /// Write the results (results.csv, results.json, report.md, plots) from the runs stored in
    /// DIR/runs/, reporting recorded failures as failed and running only runs with no record:
    /// the same files, byte for byte, as one sweep on one machine.
    #[arg(long, conflicts_with = "slurm")]
    pub merge: bool,
    /// Write a Slurm job array (one task per shard) and a merge job depending on it into
    /// DIR/slurm/ (sweep.sbatch, merge.sbatch); with --submit, submit them with sbatch.
    #[arg(long)]
    pub slurm: bool,
    /// With --slurm: the number of shards (array tasks).
    #[arg(long, requires = "slurm", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub shards: u32,
    /// With --slurm: the partition (sbatch --partition).
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// With --slurm: each task's time limit in Slurm's syntax (sbatch --time, e.g. 1:00:00).
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// With --slurm: CPUs per task (sbatch --cpus-per-task, and each task's --jobs).
    #[arg(long, requires = "slurm", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub cpus: u32,
    /// With --slurm: submit the array and the merge job (sbatch) and print their job ids.
    #[arg(long, requires = "slurm")]
    pub submit: bool,
}

/// Writes (and with `--submit` submits) the Slurm scripts of the sweep; the spec is planned
/// first so that a bad spec fails here, not on the cluster.
fn slurm(args: &Args, spec: &SweepSpec, out: &Path) -> anyhow::Result<()> {
    let plan = plan_sweep(spec, out)?;
    let cwd = std::env::current_dir()?;
    let absolute = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    let job = SlurmJob {
        name: spec.name.clone(),
        lpsim: std::env::current_exe()?,
        spec: absolute(&args.spec),
        out: absolute(out),
        workdir: cwd.clone(),
        shards: args.shards as usize,
        cpus: args.cpus as usize,
        partition: args.partition.clone(),
        time: args.time.clone(),
    };
    let (array, merge) = job.write()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{}; {} shards; wrote {} and {}",
        plan_line(plan.runs.len(), plan.stored.len()),
        job.shards,
        array.display(),
        merge.display()
    )?;
    if args.submit {
        let (a, m) = job.submit(&array, &merge)?;
        writeln!(
            stdout,
            "submitted job array {a} ({} tasks) and merge job {m} (after every task succeeds); \
             logs in {}",
            job.shards,
            job.dir().display()
        )?;
    } else {
        writeln!(
            stdout,
            "submit with: m=$(sbatch --parsable {}) && sbatch --dependency=afterok:$m {}",
            array.display(),
            merge.display()
        )?;
    }
    Ok(())
}

/// Run `lpsim sweep` with `runner` producing each run's report: load the spec, run the sweep
/// with a progress display, print a one-line summary. Fails (after writing every result) when a
/// run failed, so scripts notice.
pub fn sweep_command<E: RunFailure>(
    args: &Args,
    runner: &(dyn Fn(&RunSpec) -> Result<RunReport, E> + Sync),
) -> anyhow::Result<SweepSummary> {
    let spec = SweepSpec::load(&args.spec)?;
    let out = args
        .out
        .clone()
        .or_else(|| spec.out.clone())
        .unwrap_or_else(|| Path::new(REPORTS_ROOT).join(slug(&spec.name)));
    let mut stdout = std::io::stdout().lock();
    if args.dry_run {
        let plan = plan_sweep(&spec, &out)?;
        let reused = plan.stored.len();
        writeln!(
            stdout,
            "{}; nothing run (--dry-run), results would go to {}",
            plan_line(plan.runs.len(), reused),
            out.display()
        )?;
        return Ok(SweepSummary {
            ran: 0,
            reused,
            failed: 0,
            incompatible: 0,
            outcomes: Vec::new(),
            files: Vec::new(),
        });
    }
    if args.slurm {
        drop(stdout);
        slurm(args, &spec, &out)?;
        return Ok(SweepSummary {
            ran: 0,
            reused: 0,
            failed: 0,
            incompatible: 0,
            outcomes: Vec::new(),
            files: Vec::new(),
        });
    }
    let mode = match (args.shard, args.merge) {
        (Some(s), _) => Mode::Shard(s),
        (None, true) => Mode::Merge,
        (None, false) => Mode::All,
    };
    let summary = run_sweep(&spec, &out, args.jobs, runner, ProgressMode::Auto, mode)?;
    let counts = format!(
        "{} runs: {} ran, {} reused, {} failed, {} skipped as incompatible",
        summary.outcomes.len(),
        summary.ran,
        summary.reused,
        summary.failed,
        summary.incompatible,
    );
    if let Mode::Shard(s) = mode {
        // A shard's failed runs are recorded for the merge; the task itself succeeded.
        writeln!(
            stdout,
            "shard {s}: {counts}; runs stored in {}",
            out.join(crate::sweep::RUNS_DIR).display()
        )?;
        return Ok(summary);
    }
    writeln!(
        stdout,
        "{counts}; results in {}",
        out.join(RESULTS_CSV).display()
    )?;
    if summary.failed > 0 {
        bail!(
            "{} of {} runs failed (see {}); run the sweep again to retry them",
            summary.failed,
            summary.outcomes.len(),
            out.join(RESULTS_CSV).display()
        );
    }
    Ok(summary)
}
