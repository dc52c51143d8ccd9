//! The `lpsim` binary: parse the command line, call the library, map errors to exit codes.

use std::process::ExitCode;

/// Whether the error is a closed output pipe (`lpsim formats | head`): not a failure.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    match lpsim::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lpsim: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
