//! `lpsim sweep SPEC.json [--out DIR] [--jobs N]`: run a grid of runs and write one report.
//!
//! The runs themselves come from a runner passed in ([`sweep_command`]), so this layer does not
//! depend on the algorithms; the binary passes the real one.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::report::{slug, RunReport, REPORTS_ROOT};
use crate::sweep::{
    plan_line, plan_sweep, run_sweep, ProgressMode, RunFailure, RunSpec, SweepSpec, SweepSummary,
    RESULTS_CSV,
};

/// Arguments of `lpsim sweep`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "The spec's schema: workloads/SWEEP.md. Finished runs are kept in \
DIR/runs/ and reused when the sweep runs again.\nExample: lpsim sweep sweep.json --out reports/mine --jobs 2"
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
    let summary = run_sweep(&spec, &out, args.jobs, runner, ProgressMode::Auto)?;
    writeln!(
        stdout,
        "{} runs: {} ran, {} reused, {} failed, {} skipped as incompatible; results in {}",
        summary.outcomes.len(),
        summary.ran,
        summary.reused,
        summary.failed,
        summary.incompatible,
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
