//! The `lpsim` binary: parse the command line, call the library, map errors to exit codes.

use std::process::ExitCode;

/// Whether the error is a closed output pipe (`lpsim formats | head`): not a failure.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Keep freed heap memory in the process (glibc's `malloc`): a training step allocates and
/// frees tensors of 16-128 KiB thousands of times a second, and with glibc's defaults every
/// step gave its heap top back to the kernel (`madvise`/`brk`) and faulted it in again: 10 % of
/// a one-thread LP-SGLD epoch on the digits MLP was page faults. A trim threshold of 256 MiB
/// and an mmap threshold of 32 MiB (glibc's largest) keep the freed blocks for the next step;
/// the peak memory is unchanged, only less of it is returned before the process ends.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // glibc's <malloc.h>: M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3.
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    const TRIM: i32 = 256 << 20;
    const MMAP: i32 = 32 << 20;
    // SAFETY: `mallopt` only sets allocator parameters, called before any other thread exists;
    // a rejected value (returns 0) leaves glibc's defaults, which are correct, only slower.
    unsafe {
        mallopt(M_TRIM_THRESHOLD, TRIM);
        mallopt(M_MMAP_THRESHOLD, MMAP);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    match lpsim::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lpsim: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
