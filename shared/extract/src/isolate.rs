//! Extraction in a child process with time and memory limits.
//!
//! pdf-extract panics on purpose on input it does not support, and some
//! files make it abort, which no `catch_unwind` can stop. So services never
//! call [`crate::extract_pages`] themselves: they run their own binary as
//! `pai extract FILE` ([`child_main`]) through [`extract_isolated`], and a bad
//! file fails one document instead of the worker.

use std::path::Path;
use std::process::{ExitCode, Output, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{ExtractError, Page, extract_pages};

/// The environment variable that carries the child's address-space limit.
const MEMORY_ENV: &str = "PAI_EXTRACT_MEMORY_BYTES";
/// The environment variable that carries the child's CPU-time limit.
const CPU_ENV: &str = "PAI_EXTRACT_CPU_SECONDS";
/// The most lines of the child's stderr logged after a successful extraction.
const MAX_LOGGED_NOTES: usize = 20;
/// Linux's signal numbers, named for the messages below.
const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;
const SIGSEGV: i32 = 11;
const SIGXCPU: i32 = 24;

/// The limits one extraction runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time before the child is killed; the child also limits its
    /// own CPU time to this, rounded up.
    pub timeout: Duration,
    /// The child's address-space limit (`RLIMIT_AS`), in bytes.
    pub memory_bytes: u64,
}

impl Default for Limits {
    /// Returns 60 seconds and 1 GiB.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            memory_bytes: 1 << 30,
        }
    }
}

/// The child's answer on stdout: `{"pages":[...]}` or
/// `{"error":{"kind":"...","message":"..."}}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Pages(Vec<Page>),
    Error { kind: String, message: String },
}

/// Runs the `pai extract FILE` subcommand: extracts `file` under the limits
/// passed by [`extract_isolated`] and writes the JSON answer to stdout.
///
/// Call it before starting an async runtime or any threads, since the
/// address-space limit counts every thread's reserved stack. Returns
/// success when pages were written, 2 when an error answer was written, and
/// 1 when stdout could not be written.
pub fn child_main(file: &Path) -> ExitCode {
    apply_own_limits();
    // pdf-extract panics on purpose on input it does not support; each panic
    // costs one page and is worth one line on stderr, not a backtrace.
    std::panic::set_hook(Box::new(|info| eprintln!("pai-extract: {info}")));
    let answer = match std::fs::read(file) {
        Ok(bytes) => extract_pages(&bytes),
        Err(error) => Err(ExtractError::Io(error)),
    };
    let (answer, code) = match answer {
        Ok(pages) => (Answer::Pages(pages), ExitCode::SUCCESS),
        Err(error) => {
            let answer = Answer::Error {
                kind: error.kind().to_owned(),
                message: error.detail(),
            };
            (answer, ExitCode::from(2))
        }
    };
    let stdout = std::io::stdout().lock();
    match serde_json::to_writer(stdout, &answer) {
        Ok(()) => code,
        Err(error) => {
            eprintln!("pai-extract: cannot write the answer: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Lowers this process's address-space and CPU-time limits to the values
/// in the environment, never above the current hard limits, and its CPU
/// priority: extraction is background work, and a search waiting on the
/// same cores should not queue behind a 100-page document.
fn apply_own_limits() {
    if let Err(error) = rustix::process::nice(EXTRACT_NICENESS) {
        eprintln!("pai-extract: cannot lower the priority: {error}");
    }
    let read = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse::<u64>().ok())
    };
    if let Some(bytes) = read(MEMORY_ENV) {
        lower_limit(rlimit::Resource::AS, bytes, bytes);
    }
    if let Some(seconds) = read(CPU_ENV) {
        // The soft limit sends SIGXCPU (reported as a timeout); the hard
        // limit one second later kills a process that ignores it.
        lower_limit(rlimit::Resource::CPU, seconds, seconds.saturating_add(1));
    }
}

/// Added to the child's nice value (0 = normal, 19 = lowest).
const EXTRACT_NICENESS: i32 = 10;

/// Sets a resource limit, keeping it within the current hard limit.
fn lower_limit(resource: rlimit::Resource, soft: u64, hard: u64) {
    let result = resource.get().and_then(|(_, current_hard)| {
        let hard = hard.min(current_hard);
        resource.set(soft.min(hard), hard)
    });
    if let Err(error) = result {
        eprintln!("pai-extract: cannot set {}: {error}", resource.as_name());
    }
}

/// Extracts the pages of `file` in a child process, `program args... FILE`.
///
/// The documents worker passes `std::env::current_exe()` and `["extract"]`.
/// The child gets the limits through the environment (`PAI_EXTRACT_*`) and
/// sets them on itself; this function also kills it (`kill_on_drop`) when
/// `limits.timeout` passes or when the returned future is dropped. The work
/// happens in the other process, so awaiting this does not block a runtime
/// thread. What the child wrote to stderr about pages it skipped or files it
/// repaired is logged as warnings.
///
/// # Errors
/// The child's own answer ([`ExtractError::Encrypted`], `NoTextLayer`,
/// `NotPdf`, `Corrupt`), [`ExtractError::TimedOut`] past the timeout or the
/// CPU limit, [`ExtractError::Crashed`] when the child died by a signal
/// (an abort, the memory limit) or answered nothing readable, and
/// [`ExtractError::Io`] when it could not be started.
pub async fn extract_isolated(
    program: &Path,
    args: &[&str],
    file: &Path,
    limits: &Limits,
) -> Result<Vec<Page>, ExtractError> {
    let cpu_seconds = limits.timeout.as_secs() + u64::from(limits.timeout.subsec_nanos() > 0);
    let child = tokio::process::Command::new(program)
        .args(args)
        .arg(file)
        .env(MEMORY_ENV, limits.memory_bytes.to_string())
        .env(CPU_ENV, cpu_seconds.max(1).to_string())
        // mimalloc (the `pai` binary's allocator) reserves 1 GiB arenas of
        // address space up front, which the address-space limit counts: the
        // child crashed on large documents under a 1 GiB limit. Small arenas
        // keep the limit about memory really used.
        .env("MIMALLOC_ARENA_RESERVE", "64MiB")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    // On timeout the future is dropped with the child, which kills it.
    let output = match tokio::time::timeout(limits.timeout, child.wait_with_output()).await {
        Ok(output) => output?,
        Err(_elapsed) => return Err(ExtractError::TimedOut),
    };
    let answer = read_answer(&output);
    if answer.is_ok() {
        // The child's notes on what it skipped or repaired, for operators.
        let notes = String::from_utf8_lossy(&output.stderr);
        for note in notes
            .lines()
            .filter(|line| !line.trim().is_empty())
            .take(MAX_LOGGED_NOTES)
        {
            tracing::warn!(file = %file.display(), note, "pdf extraction note");
        }
    }
    answer
}

/// Turns the child's output into pages or an error.
fn read_answer(output: &Output) -> Result<Vec<Page>, ExtractError> {
    match serde_json::from_slice::<Answer>(&output.stdout) {
        Ok(Answer::Pages(pages)) => Ok(pages),
        Ok(Answer::Error { kind, message }) => Err(ExtractError::from_kind(&kind, message)),
        Err(_) => Err(describe_death(output)),
    }
}

/// Explains a child that wrote no answer.
fn describe_death(output: &Output) -> ExtractError {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("memory allocation of") {
        return ExtractError::Crashed("it needed more memory than allowed".to_owned());
    }
    let last_line = stderr.lines().rev().find(|line| !line.trim().is_empty());
    let detail = last_line
        .map(|line| format!(": {}", line.trim()))
        .unwrap_or_default();
    match signal_of(output) {
        Some(SIGXCPU) => ExtractError::TimedOut,
        Some(SIGABRT) => ExtractError::Crashed(format!("aborted{detail}")),
        Some(SIGSEGV) => ExtractError::Crashed("segmentation fault".to_owned()),
        Some(SIGKILL) => ExtractError::Crashed("killed".to_owned()),
        Some(signal) => ExtractError::Crashed(format!("killed by signal {signal}")),
        None => ExtractError::Crashed(format!("exited with {}{detail}", output.status)),
    }
}

/// Returns the signal that ended the child, if one did.
#[cfg(unix)]
fn signal_of(output: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt as _;
    output.status.signal()
}

/// Returns the signal that ended the child, if one did.
#[cfg(not(unix))]
fn signal_of(_output: &Output) -> Option<i32> {
    None
}
