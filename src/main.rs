//! The `lpsim` binary: parse the command line, call the library, map errors to exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    match lpsim::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lpsim: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
