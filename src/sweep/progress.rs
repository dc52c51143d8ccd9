//! Progress of a sweep: a bar on a terminal, one plain line per finished run when piped or
//! under CI, or nothing.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How a sweep shows its progress (on standard error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar when standard error is a terminal and `CI` is not set, else plain lines.
    #[default]
    Auto,
    /// Always the bar.
    Bar,
    /// One line per finished run: `[3/24] digits-logistic sgd fp32 seed 0: done in 1.2s`.
    Lines,
    /// Nothing (tests, library use).
    Quiet,
}

impl ProgressMode {
    /// `Auto` decided for this process; the other modes as they are.
    pub fn resolve(self) -> Self {
        match self {
            ProgressMode::Auto => {
                if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
                    ProgressMode::Bar
                } else {
                    ProgressMode::Lines
                }
            }
            m => m,
        }
    }
}

/// The line a sweep starts with: how many runs it plans and how many an earlier sweep finished.
pub fn plan_line(total: usize, reused: usize) -> String {
    format!(
        "{total} runs planned: {reused} already done (their results are reused), {} to run",
        total - reused
    )
}

/// The progress display of one sweep, shared by the worker threads.
pub(crate) struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    done: AtomicUsize,
    total: usize,
}

impl Progress {
    /// Start showing progress of `total` runs, of which `reused` were already stored.
    pub fn start(mode: ProgressMode, total: usize, reused: usize) -> Self {
        let mode = mode.resolve();
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::new(total as u64);
            let style = ProgressStyle::with_template(
                "{bar:40.cyan/blue} {pos}/{len} runs  {elapsed_precise} (eta {eta})  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(reused as u64);
            bar
        });
        if mode == ProgressMode::Lines {
            eprintln!("{}", plan_line(total, reused));
        }
        Progress {
            mode,
            bar,
            done: AtomicUsize::new(reused),
            total,
        }
    }

    /// One run finished: `label` names it, `status` says how (`done`, `diverged at epoch 7`,
    /// `failed: ...`).
    pub fn finished(&self, label: &str, status: &str, took: Duration) {
        let k = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let line = format!(
            "[{k}/{}] {label}: {status} in {:.1}s",
            self.total,
            took.as_secs_f64()
        );
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                if status != "done" {
                    bar.println(line);
                }
                bar.set_message(label.to_string());
                bar.inc(1);
            }
            (None, ProgressMode::Lines) => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            }
            _ => {}
        }
    }

    /// The sweep is over: remove the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
