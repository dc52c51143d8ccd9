//! The `lpsim` binary: parse the command line, call the library, map errors to exit codes.

use std::process::ExitCode;

/// Whether the error is a closed output pipe (`lpsim formats | head`): not a failure.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// mimalloc as the allocator: a training step allocates and frees its tensors every step (a
/// few bytes to hundreds of KiB, thousands of times a second), and glibc's `malloc` spent a
/// fifth of a small model's step there (consolidating and trimming its heap; until 2026-12
/// `mallopt` kept its freed memory instead). Measured: the quickstart's 255 runs before the
/// CNNs 8.0 -> 7.7 s on 2 cores, a one-thread LP-SGLD epoch of the digits MLP 11.5 -> 10.4 ms.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
