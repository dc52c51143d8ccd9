//! The progress of `lpsim run` on standard error: a bar (steps, epoch, current loss, elapsed
//! time and estimate) on a terminal, one line per epoch when piped or under CI.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::run::Progress;
use crate::sweep::ProgressMode;

/// The display of one run's progress.
pub(crate) struct RunProgress {
    bar: Option<ProgressBar>,
    lines: bool,
    start: Instant,
}

impl RunProgress {
    /// Start showing the progress of the run named `label`, as `mode` says.
    pub fn start(mode: ProgressMode, label: &str) -> Self {
        let mode = mode.resolve();
        let bar = (mode == ProgressMode::Bar).then(|| {
            // A spinner until the first epoch gives the number of steps.
            let bar = ProgressBar::new_spinner();
            bar.set_message(format!("{label}: preparing and running the first epoch"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if mode == ProgressMode::Lines {
            eprintln!("{label}: running");
        }
        RunProgress {
            bar,
            lines: mode == ProgressMode::Lines,
            start: Instant::now(),
        }
    }

    /// An epoch ended.
    pub fn epoch(&self, p: Progress<'_>) {
        let line = epoch_line(&p);
        if let Some(bar) = &self.bar {
            if bar.length().is_none() {
                bar.set_length(p.steps_total);
                let style = ProgressStyle::with_template(
                    "{bar:30.cyan/blue} step {pos}/{len}  {elapsed_precise} (eta {eta})  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
            }
            bar.set_position(p.steps);
            bar.set_message(line);
        } else if self.lines {
            let mut err = std::io::stderr().lock();
            let took = self.start.elapsed().as_secs_f64();
            let _ = writeln!(
                err,
                "{line} [step {}/{}, {took:.1} s]",
                p.steps, p.steps_total
            );
        }
    }

    /// The run is over: remove the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `epoch 3/20: train_loss 0.4123, test_accuracy 0.9100`: the epoch and its loss, then the
/// workload's main figure when it has one.
fn epoch_line(p: &Progress<'_>) -> String {
    let mut line = format!("epoch {}/{}", p.epoch, p.epochs);
    let mut sep = ":";
    for key in ["train_loss", "optimality_gap", "test_accuracy"] {
        if let Some(v) = p.record.metrics.get(key) {
            line.push_str(&format!("{sep} {key} {v:.6}"));
            sep = ",";
        }
    }
    line
}
