//! Executors: where evaluations run.
//!
//! A search hands each evaluation to an [`Executor`] as a [`Job`] whose file
//! (`tasks/<id>.json`) it has written into the run directory, and collects [`Finished`] jobs as
//! they end, so that several evaluations are in flight at once
//! ([`crate::parallel::run_search`]). Two executors ship:
//!
//! * [`LocalExecutor`]: up to N jobs at once on this machine, each on its own thread, running a
//!   function of the job (the job itself by default, or a lookup in a table already in memory).
//! * [`SlurmExecutor`]: each round's new jobs become one `sbatch --array` job running the worker
//!   `nas eval --run-dir DIR --task ID` on the cluster; results come back through the shared run
//!   directory, job states from `squeue`/`scontrol` (never `sacct`), and a restarted driver adopts
//!   the jobs an earlier one submitted.
//!
//! A job that cannot finish (an error exit, a cancellation, a time limit, lost memory, a lost
//! node) ends as a [`Failure`] with a typed [`OutcomeStatus`], which the search records.

mod local;
pub mod slurm;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use local::{run_in_process, LocalExecutor, RunJob};
pub use slurm::{SlurmConfig, SlurmExecutor};

use trainer::train::Report;

use crate::run::{Outcome, OutcomeStatus};
use crate::worker::{result_path, Job, JobResult};
use crate::SearchError;

/// Why a job ended without a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The failure's kind (`crash`, `timeout`, `oom`, `cancelled`, `lost`).
    pub status: OutcomeStatus,
    /// What happened, e.g. Slurm's state and reason and the end of the worker's log.
    pub message: String,
}

impl Failure {
    /// A failure of `status` with `message`.
    pub fn new(status: OutcomeStatus, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
}

/// A job that ended: its result, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The job's id (the name of its file in `tasks/`).
    pub id: String,
    /// The worker's result, or the failure.
    pub result: Result<JobResult, Failure>,
}

/// The outcome of a job's end, with the trainer's report and the metrics an external evaluator
/// reported besides its score, when there are.
pub fn outcome_of(
    result: Result<JobResult, Failure>,
) -> (Outcome, Option<Report>, Option<serde_json::Value>) {
    match result {
        Ok(JobResult::Table(result)) => (
            Outcome::scored(OutcomeStatus::Ok, result.score, None, result.seconds),
            None,
            None,
        ),
        Ok(JobResult::Train(result)) => (
            Outcome::from_report(&result.report),
            Some(result.report),
            None,
        ),
        Ok(JobResult::Command(result)) => (
            Outcome::scored(result.status, result.score, result.message, result.seconds),
            None,
            Some(result.metrics).filter(|m| !m.is_null()),
        ),
        Err(Failure { status, message }) => (Outcome::failure(status, &message), None, None),
    }
}

/// The result of job `id` of the run in `run_dir`, once the worker has written it; a result
/// file that cannot be read is a `crash`.
pub(crate) fn written_result(run_dir: &Path, id: &str) -> Option<Result<JobResult, Failure>> {
    result_path(run_dir, id).ok()?.exists().then(|| {
        JobResult::read(run_dir, id).map_err(|e| Failure::new(OutcomeStatus::Crash, e.to_string()))
    })
}

/// Runs evaluation jobs, several at once.
///
/// The caller writes `tasks/<id>.json` of the run directory before it submits `id`, and never
/// has more than [`Executor::slots`] jobs in flight.
pub trait Executor {
    /// A short name for logs: `local`, `slurm`.
    fn name(&self) -> &'static str;

    /// How many jobs may be in flight at once.
    fn slots(&self) -> usize;

    /// Starts job `id` (an executor may hold jobs back until the next [`Executor::wait`], to
    /// start the jobs of one round together).
    fn submit(&mut self, id: &str, job: &Job) -> Result<(), SearchError>;

    /// Takes over job `id`, which an earlier driver of the same run started and did not see
    /// finish. By default it runs again; a cluster executor finds the job still queued or
    /// running instead of submitting it twice.
    fn adopt(&mut self, id: &str, job: &Job) -> Result<(), SearchError> {
        self.submit(id, job)
    }

    /// Waits until at least one job in flight ends or `timeout` has passed, and returns the jobs
    /// that ended (none at the timeout, or when nothing is in flight).
    fn wait(&mut self, timeout: Duration) -> Result<Vec<Finished>, SearchError>;

    /// Cancels every job in flight (Ctrl-C); they will not be reported. Returns how many.
    fn cancel(&mut self) -> Result<usize, SearchError>;
}

/// Where evaluations run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Threads of the driver's process ([`LocalExecutor`]).
    Local,
    /// Jobs on a Slurm cluster ([`SlurmExecutor`]).
    Slurm,
}

impl FromStr for ExecutorKind {
    type Err = SearchError;
    fn from_str(s: &str) -> Result<Self, SearchError> {
        match s {
            "local" => Ok(ExecutorKind::Local),
            "slurm" => Ok(ExecutorKind::Slurm),
            other => Err(SearchError::Invalid {
                what: "executor",
                text: other.to_string(),
                expected: "local or slurm",
            }),
        }
    }
}

impl fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        })
    }
}

/// The executor of a configuration: `local` runs `local` on threads, `slurm` submits jobs for
/// the run in `run_dir` with `slurm`'s settings (the defaults when `None`).
pub fn build(
    kind: ExecutorKind,
    slots: usize,
    slurm: Option<&SlurmConfig>,
    run_dir: &Path,
    local: RunJob,
) -> Result<Box<dyn Executor>, SearchError> {
    Ok(match kind {
        ExecutorKind::Local => Box::new(LocalExecutor::new(slots, local)),
        ExecutorKind::Slurm => Box::new(SlurmExecutor::new(
            run_dir,
            slots,
            slurm.cloned().unwrap_or_default(),
        )?),
    })
}
