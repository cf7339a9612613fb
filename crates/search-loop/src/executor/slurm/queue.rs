//! Slurm's own commands: `sbatch`, `squeue`, `scontrol`, `scancel`, and what their output says.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use crate::run::OutcomeStatus;
use crate::SearchError;

/// What Slurm says of one array task: its state and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `TIMEOUT`, ...
    pub state: String,
    /// `None`, `NonZeroExitCode`, `TimeLimit`, ...
    pub reason: String,
}

/// How a state ends a task without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Still queued or running.
    Active,
    /// Ended; its result file should be there.
    Completed,
    /// Ended without a result: recorded with this status.
    Failed(OutcomeStatus),
    /// Lost with its node or preempted: submitted again.
    Lost,
}

impl TaskState {
    /// What the state means for the evaluation.
    pub fn ending(&self) -> Ending {
        match self.state.as_str() {
            "COMPLETED" => Ending::Completed,
            "FAILED" => Ending::Failed(OutcomeStatus::Crash),
            "CANCELLED" => Ending::Failed(OutcomeStatus::Cancelled),
            "TIMEOUT" | "DEADLINE" => Ending::Failed(OutcomeStatus::Timeout),
            "OUT_OF_MEMORY" => Ending::Failed(OutcomeStatus::Oom),
            "NODE_FAIL" | "BOOT_FAIL" | "PREEMPTED" | "REVOKED" => Ending::Lost,
            _ => Ending::Active,
        }
    }
}

fn error(command: &str, reason: impl ToString) -> SearchError {
    SearchError::Run {
        path: command.into(),
        reason: reason.to_string(),
    }
}

fn run(command: &mut Command, name: &str) -> Result<Output, SearchError> {
    command.output().map_err(|e| {
        error(
            name,
            format!("cannot run `{name}` (is Slurm installed?): {e}"),
        )
    })
}

fn failed(name: &str, output: &Output) -> SearchError {
    error(
        name,
        format!(
            "`{name}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    )
}

/// `sbatch --parsable --job-name NAME --array 0-(n-1) --output LOG SCRIPT`; returns the job id.
pub fn sbatch(name: &str, tasks: usize, log: &Path, script: &Path) -> Result<String, SearchError> {
    let output = run(
        Command::new("sbatch")
            .arg("--parsable")
            .arg(format!("--job-name={name}"))
            .arg(format!("--array=0-{}", tasks.saturating_sub(1)))
            .arg("--output")
            .arg(log)
            .arg(script),
        "sbatch",
    )?;
    if !output.status.success() {
        return Err(failed("sbatch", &output));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(error("sbatch", format!("unexpected answer {text:?}")));
    }
    Ok(id)
}

/// The array tasks of the given jobs, by `JOBID_INDEX` (`squeue -r -t all`). Jobs that Slurm
/// no longer knows are missing from the map.
pub fn squeue_jobs(ids: &[&str]) -> Result<BTreeMap<String, TaskState>, SearchError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    squeue(&["-j", &ids.join(",")])
}

/// The array tasks of the jobs named `name`, with their job ids.
pub fn squeue_named(name: &str) -> Result<BTreeMap<String, TaskState>, SearchError> {
    squeue(&["--name", name])
}

fn squeue(selection: &[&str]) -> Result<BTreeMap<String, TaskState>, SearchError> {
    let output = run(
        Command::new("squeue")
            .args(["-h", "-r", "-t", "all", "-o", "%i|%T|%r"])
            .args(selection),
        "squeue",
    )?;
    if !output.status.success() {
        // Every job asked for has left the controller's memory.
        if String::from_utf8_lossy(&output.stderr).contains("Invalid job id") {
            return Ok(BTreeMap::new());
        }
        return Err(failed("squeue", &output));
    }
    Ok(parse_squeue(&String::from_utf8_lossy(&output.stdout)))
}

/// Reads `%i|%T|%r` lines.
fn parse_squeue(text: &str) -> BTreeMap<String, TaskState> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().splitn(3, '|');
            let id = fields.next()?.to_string();
            let state = fields.next()?.to_string();
            let reason = fields.next().unwrap_or_default().to_string();
            Some((id, TaskState { state, reason }))
        })
        .collect()
}

/// The exit code of an array task (`scontrol -o show job`), e.g. `3:0` or `0:9`.
pub fn exit_code(task: &str) -> Option<String> {
    let output = Command::new("scontrol")
        .args(["-o", "show", "job", task])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .find_map(|field| field.strip_prefix("ExitCode="))
        .map(str::to_string)
}

/// `scancel` of the given job ids.
pub fn scancel(ids: &[&str]) -> Result<(), SearchError> {
    if ids.is_empty() {
        return Ok(());
    }
    let output = run(Command::new("scancel").args(ids), "scancel")?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed("scancel", &output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_and_states_are_read() {
        let states =
            parse_squeue("1_0|PENDING|None\n1_1|FAILED|NonZeroExitCode\n\n7_2|NODE_FAIL|\n");
        assert_eq!(states.len(), 3);
        assert_eq!(states["1_0"].ending(), Ending::Active);
        assert_eq!(states["1_1"].ending(), Ending::Failed(OutcomeStatus::Crash));
        assert_eq!(states["1_1"].reason, "NonZeroExitCode");
        assert_eq!(states["7_2"].ending(), Ending::Lost);
        for (state, ending) in [
            ("COMPLETED", Ending::Completed),
            ("CANCELLED", Ending::Failed(OutcomeStatus::Cancelled)),
            ("TIMEOUT", Ending::Failed(OutcomeStatus::Timeout)),
            ("OUT_OF_MEMORY", Ending::Failed(OutcomeStatus::Oom)),
            ("PREEMPTED", Ending::Lost),
            ("RUNNING", Ending::Active),
            ("COMPLETING", Ending::Active),
        ] {
            let task = TaskState {
                state: state.into(),
                reason: String::new(),
            };
            assert_eq!(task.ending(), ending, "{state}");
        }
    }
}
