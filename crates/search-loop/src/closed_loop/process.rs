//! The process evaluator: each candidate is trained by a child process, the `nas eval` worker,
//! under a hard wall-clock limit and optionally a hard memory limit, so that a candidate that
//! hangs or exhausts memory ends only its worker.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use arch_space::lang::{to_text, InputSpec, Module};
use trainer::train::Report;

use super::Evaluator;
use crate::executor::{outcome_of, written_result, Failure, RunJob};
use crate::run::{Outcome, OutcomeStatus};
use crate::worker::{task_name, EvalSetup, EvalTask, Job, JobResult, TASKS};

/// How often a running worker is polled for its end.
const POLL: Duration = Duration::from_millis(20);
/// Bytes at the end of the worker's standard error read for the failure message.
const STDERR_READ: u64 = 16 * 1024;
/// Characters of the standard error's tail quoted in a failure message.
const STDERR_QUOTED: usize = 200;

/// Where the worker binary is and which limits it runs under.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// The `nas` binary (its `eval` subcommand is the worker).
    pub program: PathBuf,
    /// Wall-clock limit of one worker, loading the data included; the worker is killed at the
    /// limit and the candidate recorded as `timeout`. `None`: no limit.
    pub timeout: Option<Duration>,
    /// Address-space limit of the worker in bytes (`nas eval --memory-limit`); an allocation
    /// beyond it ends the worker and the candidate is recorded as `oom`. `None`: no limit.
    pub memory_limit: Option<u64>,
}

impl WorkerOptions {
    /// The worker `program` without limits.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        WorkerOptions {
            program: program.into(),
            timeout: None,
            memory_limit: None,
        }
    }
}

/// The `nas` binary of the build the running executable belongs to: beside it (another binary)
/// or one directory up (an example, which Cargo puts in `target/<profile>/examples/`). `None`
/// when neither exists (`cargo run --example` does not build binaries: `cargo build --bin nas`).
pub fn worker_beside_executable() -> Option<PathBuf> {
    let executable = std::env::current_exe().ok()?;
    let name = format!("nas{}", std::env::consts::EXE_SUFFIX);
    executable
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&name))
        .find(|path| path.is_file())
}

/// Runs jobs of a run directory in `nas eval` worker processes: for job `id`, the worker reads
/// `tasks/<id>.json`, runs under the [`WorkerOptions`]' limits with its standard error going to
/// `tasks/<id>.log`, and writes `tasks/<id>.result.json`.
///
/// The end of a worker becomes the job's result or a typed failure, never a panic:
///
/// * a result file: the result (a training's report says `ok`, `divergence`, ...);
/// * killed at the wall-clock limit: `timeout`;
/// * killed by `SIGKILL` (the kernel's out-of-memory killer), an allocation failure on its
///   standard error, or, under a memory limit, `SIGABRT` (Rust aborts when an allocation fails)
///   or a thread that could not be started: `oom`;
/// * any other end (an error exit, a crash, a worker that cannot be started): `crash`, with the
///   tail of its standard error.
#[derive(Debug, Clone)]
pub struct WorkerProcesses {
    run_dir: PathBuf,
    options: WorkerOptions,
}

impl WorkerProcesses {
    /// Workers for the jobs of `run_dir`.
    pub fn new(run_dir: &Path, options: WorkerOptions) -> Self {
        WorkerProcesses {
            run_dir: run_dir.to_path_buf(),
            options,
        }
    }

    /// A [`LocalExecutor`](crate::executor::LocalExecutor)'s job function running each job in
    /// a worker process: N isolated evaluations at once on this machine.
    pub fn into_run_job(self) -> RunJob {
        Arc::new(move |id: &str, _: &Job| self.run(id))
    }

    /// Runs the worker on job `id` (its file written) until it ends or its time is up.
    pub fn run(&self, id: &str) -> Result<JobResult, Failure> {
        match self.run_worker(id) {
            Ok(end) => self.result(id, &end),
            Err(e) => Err(Failure::new(
                OutcomeStatus::Crash,
                format!(
                    "cannot run the worker {}: {e}",
                    self.options.program.display()
                ),
            )),
        }
    }

    fn run_worker(&self, id: &str) -> std::io::Result<WorkerEnd> {
        let log = self.run_dir.join(TASKS).join(format!("{id}.log"));
        let mut command = Command::new(&self.options.program);
        command
            .arg("eval")
            .arg("--run-dir")
            .arg(&self.run_dir)
            .arg("--task")
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?);
        if let Some(bytes) = self.options.memory_limit {
            command.arg("--memory-limit").arg(bytes.to_string());
        }
        die_with_parent(&mut command);
        let started = Instant::now();
        let mut child = command.spawn()?;
        let (status, timed_out) = wait(&mut child, self.options.timeout)?;
        Ok(WorkerEnd {
            status,
            timed_out,
            stderr: read_end(&log),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The result of job `id` from its result file or from how its worker ended.
    fn result(&self, id: &str, end: &WorkerEnd) -> Result<JobResult, Failure> {
        if let Some(result) = written_result(&self.run_dir, id) {
            if result.is_ok() {
                tracing::info!(task = id, worker_seconds = end.seconds, "worker finished");
            }
            return result;
        }
        let tail = tail(&end.stderr);
        if end.timed_out {
            let message = format!(
                "the worker was killed after {:.1} s, its wall-clock limit",
                end.seconds
            );
            return Err(Failure::new(OutcomeStatus::Timeout, message));
        }
        let signal = signal(end.status);
        if signal == Some(SIGKILL) {
            let message = "the worker was killed by SIGKILL (most likely the kernel's \
                           out-of-memory killer)";
            Err(Failure::new(OutcomeStatus::Oom, message))
        } else if out_of_memory(&end.stderr, signal, self.options.memory_limit.is_some()) {
            let limit = self
                .options
                .memory_limit
                .map_or(String::new(), |bytes| format!(" (limit {bytes} bytes)"));
            let message = format!("the worker ran out of memory{limit}: {tail}");
            Err(Failure::new(OutcomeStatus::Oom, message))
        } else {
            Err(Failure::new(
                OutcomeStatus::Crash,
                format!("the worker ended with {}: {tail}", end.status),
            ))
        }
    }
}

/// Evaluates each candidate of the sequential loop in a `nas eval` worker process
/// ([`WorkerProcesses`]): writes `tasks/<id>.json` into the run directory and runs the worker
/// on it. Task ids are six-digit numbers continuing after the highest one in `tasks/`, so a
/// resumed run never reuses the task file of an earlier process.
#[derive(Debug)]
pub struct ProcessEvaluator {
    setup: EvalSetup,
    input: InputSpec,
    workers: WorkerProcesses,
    next_task: usize,
}

impl ProcessEvaluator {
    /// An evaluator writing its tasks into `run_dir`. `input` is what the data of `setup` gives
    /// (e.g. [`TrainerEvaluator::load`](super::TrainerEvaluator::load)`(&setup)?.input()`).
    pub fn new(setup: EvalSetup, input: InputSpec, run_dir: &Path, options: WorkerOptions) -> Self {
        ProcessEvaluator {
            setup,
            input,
            next_task: first_free_task(run_dir),
            workers: WorkerProcesses::new(run_dir, options),
        }
    }
}

impl Evaluator for ProcessEvaluator {
    fn input(&self) -> InputSpec {
        self.input
    }

    fn evaluate(&mut self, module: &Module) -> (Outcome, Option<Report>) {
        let id = task_name(self.next_task);
        self.next_task += 1;
        let task = EvalTask {
            architecture: to_text(module),
            setup: self.setup.clone(),
            export: None,
            code: None,
        };
        let result = match task.write(&self.workers.run_dir, &id) {
            Ok(_) => self.workers.run(&id),
            Err(e) => Err(Failure::new(
                OutcomeStatus::Crash,
                format!("cannot write the task: {e}"),
            )),
        };
        let (outcome, report, _) = outcome_of(result);
        (outcome, report)
    }
}

/// How a worker ended.
struct WorkerEnd {
    status: ExitStatus,
    /// Killed by us at the wall-clock limit.
    timed_out: bool,
    /// The end of its standard error.
    stderr: String,
    /// Wall time from spawn to end.
    seconds: f64,
}

/// Waits for `child`, killing it (and its process group, when it leads one) when `timeout` has
/// passed; returns its status and whether it was killed.
pub(crate) fn wait(
    child: &mut Child,
    timeout: Option<Duration>,
) -> std::io::Result<(ExitStatus, bool)> {
    let Some(timeout) = timeout else {
        return Ok((child.wait()?, false));
    };
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(child);
            child.kill()?;
            return Ok((child.wait()?, true));
        }
        thread::sleep(POLL.min(deadline - now));
    }
}

/// Kills the process group `child` leads, if it leads one (a command run through a shell with
/// its own group: the shell's children die with it).
fn kill_group(child: &Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill only sends a signal. The child is not yet reaped, so no other process
        // can own a group whose id is its pid; without such a group the call fails harmlessly.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    #[cfg(not(unix))]
    let _ = child;
}

/// The last [`STDERR_READ`] bytes of a file (empty when it cannot be read).
pub(crate) fn read_end(path: &Path) -> String {
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|mut file| {
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(STDERR_READ)))?;
        file.read_to_end(&mut bytes)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// The last lines of a worker's standard error, backtraces and notes left out, at most
/// [`STDERR_QUOTED`] characters, on one line; `no output` when there are none.
pub(crate) fn tail(stderr: &str) -> String {
    let mut in_backtrace = false;
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| {
            if *line == "stack backtrace:" {
                in_backtrace = true;
            } else if !(in_backtrace
                && (line.starts_with(char::is_numeric) || line.starts_with("at ")))
            {
                in_backtrace = false;
            }
            !(in_backtrace || line.is_empty() || line.starts_with("note:"))
        })
        .collect();
    let text = lines[lines.len().saturating_sub(3)..].join(" | ");
    let skip = text.chars().count().saturating_sub(STDERR_QUOTED);
    match (skip, text.char_indices().nth(skip)) {
        (_, None) => "no output".to_string(),
        (0, _) => text,
        (_, Some((cut, _))) => format!("...{}", &text[cut..]),
    }
}

/// Whether a worker that ended without a result ran out of memory: its standard error reports a
/// failed allocation (Rust's `memory allocation of N bytes failed`, `ENOMEM`'s text, C++'s
/// `bad_alloc`, allocator and CUDA messages), or, under an address-space limit, it aborted (Rust
/// aborts when an allocation fails) or could not map a thread's stack (`EAGAIN`).
pub(crate) fn out_of_memory(stderr: &str, signal: Option<i32>, limited: bool) -> bool {
    let text = stderr.to_ascii_lowercase();
    let allocation = [
        "memory allocation of",
        "cannot allocate memory",
        "out of memory",
        "out_of_memory",
        "failed to allocate",
        "bad_alloc",
    ]
    .iter()
    .any(|pattern| text.contains(pattern));
    let limit_reached =
        limited && (signal == Some(SIGABRT) || text.contains("resource temporarily unavailable"));
    allocation || limit_reached
}

/// The first free six-digit task id in `run_dir/tasks/`.
fn first_free_task(run_dir: &Path) -> usize {
    std::fs::read_dir(run_dir.join(TASKS))
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.split('.').next()?.parse::<usize>().ok()
        })
        .max()
        .map_or(0, |last| last + 1)
}

#[cfg(unix)]
use libc::{SIGABRT, SIGKILL};
// Off Unix no process ends by a signal (see `signal`).
#[cfg(not(unix))]
const SIGKILL: i32 = -1;
#[cfg(not(unix))]
const SIGABRT: i32 = -1;

/// The signal that ended a process, if one did (never off Unix).
fn signal(status: ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    return std::os::unix::process::ExitStatusExt::signal(&status);
    #[cfg(not(unix))]
    {
        let _ = status;
        None
    }
}

/// Makes the worker die with the process that started it (Linux), so a killed search leaves no
/// orphan training in the background.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe and changes only the child's own parent-death signal.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Elsewhere a worker outlives a killed parent until it finishes its task.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_quotes_the_last_lines_without_backtraces() {
        let stderr = "loading\n\nthread 'main' panicked at src/x.rs:1:1:\nboom\n\
                      stack backtrace:\n   0: std::panic\n             at /rustc/x.rs:1\n\
                      note: Some details are omitted\n";
        assert_eq!(
            tail(stderr),
            "loading | thread 'main' panicked at src/x.rs:1:1: | boom"
        );
        assert_eq!(tail(""), "no output");
        let long = "x".repeat(500);
        assert_eq!(tail(&long), format!("...{}", &long[..STDERR_QUOTED]));
    }

    #[test]
    fn out_of_memory_is_read_from_messages_and_aborts_under_a_limit() {
        let allocation = "memory allocation of 8388608 bytes failed\n";
        assert!(out_of_memory(allocation, Some(SIGABRT), false));
        assert!(out_of_memory("CUDA_ERROR_OUT_OF_MEMORY", None, false));
        assert!(out_of_memory("", Some(SIGABRT), true));
        assert!(!out_of_memory("", Some(SIGABRT), false));
        let thread = "ThreadPoolBuildError: Resource temporarily unavailable";
        assert!(out_of_memory(thread, None, true));
        assert!(!out_of_memory(thread, None, false));
        assert!(!out_of_memory("error: cannot read data", None, true));
    }
}
