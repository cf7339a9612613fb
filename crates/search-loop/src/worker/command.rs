//! External evaluators as jobs: a user's command run on one candidate (`--evaluator CMD`), so
//! that a search can drive any training script, locally or on Slurm, without our trainer.
//!
//! The command runs through `sh -c` in its own process group, with `{config_json}` replaced by
//! the path of a file holding the candidate's configuration and `{config}` by the configuration
//! itself (both shell-quoted). Its last non-empty line of standard output must be JSON:
//! `{"score": 0.93, "metrics": {...}}` (higher scores are better; `metrics` is optional and
//! kept in the record). A non-zero exit, a kill at the time limit and unreadable output are
//! results with a failure status, not errors of the worker.

use std::fs::File;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ncode::NCode;
use serde::{Deserialize, Serialize};

use super::TaskError;
use crate::closed_loop::{out_of_memory, read_end, tail, wait};
use crate::run::{truncate, OutcomeStatus, MESSAGE_LIMIT};

/// Runs an external evaluator on one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandJob {
    /// The command template (see the module docs for `{config_json}` and `{config}`).
    pub command: String,
    /// The candidate's configuration, e.g. `{"depth": 3, "width": 64}`.
    pub config: serde_json::Value,
    /// The candidate's code.
    pub code: NCode,
    /// Wall-clock limit in seconds; past it the command's process group is killed.
    pub timeout_seconds: Option<f64>,
}

/// What an external evaluator reported, or how it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    /// `ok`, `crash` (non-zero exit), `oom` (killed, or an allocation failure on its standard
    /// error), `timeout` or `parse` (the last line is not the expected JSON).
    pub status: OutcomeStatus,
    /// The reported score.
    pub score: Option<f64>,
    /// The reported metrics (`null` when none).
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// What went wrong, with the end of the command's standard error.
    pub message: Option<String>,
    /// Wall time of the command.
    pub seconds: f64,
}

/// The line an evaluator ends with.
#[derive(Deserialize)]
struct Reported {
    score: Option<f64>,
    #[serde(default)]
    metrics: serde_json::Value,
}

impl CommandJob {
    /// Runs the command and reads its report.
    pub fn run(&self) -> Result<CommandResult, TaskError> {
        let io = |e: std::io::Error| TaskError::Command(e.to_string());
        let scratch = tempfile::tempdir().map_err(io)?;
        let config_path = scratch.path().join("config.json");
        let config = serde_json::to_string(&self.config).map_err(|e| io(e.into()))?;
        File::create(&config_path)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .map_err(io)?;
        let command = self
            .command
            .replace(
                "{config_json}",
                &shell_quote(&config_path.to_string_lossy()),
            )
            .replace("{config}", &shell_quote(&config));
        let (stdout, stderr) = (scratch.path().join("stdout"), scratch.path().join("stderr"));
        let mut process = Command::new("sh");
        process
            .arg("-c")
            .arg(&command)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).map_err(io)?)
            .stderr(File::create(&stderr).map_err(io)?);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut process, 0);
        let started = Instant::now();
        let mut child = process.spawn().map_err(io)?;
        let limit = self.timeout_seconds.map(Duration::from_secs_f64);
        let (status, timed_out) = wait(&mut child, limit).map_err(io)?;
        let seconds = started.elapsed().as_secs_f64();
        let errors = read_end(&stderr);
        let failed = |status, message: String| CommandResult {
            status,
            score: None,
            metrics: serde_json::Value::Null,
            message: Some(truncate(&message, MESSAGE_LIMIT)),
            seconds,
        };
        if timed_out {
            let message = format!("killed after {seconds:.1} s, its time limit");
            return Ok(failed(OutcomeStatus::Timeout, message));
        }
        if !status.success() {
            let oom = out_of_memory(&errors, None, false) || killed(status);
            let kind = if oom {
                OutcomeStatus::Oom
            } else {
                OutcomeStatus::Crash
            };
            return Ok(failed(kind, format!("{status}: {}", tail(&errors))));
        }
        let output = read_end(&stdout);
        let last = output.lines().rev().find(|l| !l.trim().is_empty());
        Ok(
            match last.map(|l| serde_json::from_str::<Reported>(l.trim())) {
                Some(Ok(reported)) => CommandResult {
                    status: OutcomeStatus::Ok,
                    score: reported.score.filter(|s| s.is_finite()),
                    metrics: reported.metrics,
                    message: None,
                    seconds,
                },
                _ => failed(
                    OutcomeStatus::Parse,
                    format!(
                        "the last line of its output is not {{\"score\": ...}}: {:?}",
                        last.unwrap_or_default()
                    ),
                ),
            },
        )
    }
}

/// Whether a process was killed by SIGKILL (the kernel's out-of-memory killer).
fn killed(status: std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    return std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL);
    #[cfg(not(unix))]
    {
        let _ = status;
        false
    }
}

/// `text` in single quotes for the shell.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
