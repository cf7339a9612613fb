//! Jobs as files: one evaluation written to a file of the run directory, so that it can run in
//! a separate process with hard time and memory limits, or on another machine.
//!
//! ```text
//! runs/2026-11-24T05-40-00/tasks/000003.json          the job: {"kind": "train", ...} or "table"
//! runs/2026-11-24T05-40-00/tasks/000003.result.json   its result, written atomically by the worker
//! ```
//!
//! A [`Job`] is a training ([`EvalTask`]: architecture, data, recipe, device) or a table lookup
//! ([`TableJob`]). The worker is `nas eval --run-dir DIR --task ID [--memory-limit BYTES]`,
//! which calls [`limit_address_space`] and [`work`]; the closed loop's
//! [`ProcessEvaluator`](crate::closed_loop::ProcessEvaluator) spawns it, and Slurm jobs
//! ([`crate::executor::SlurmExecutor`]) run the same command. [`run_task`] is the in-process
//! core of a training: it loads the data as the in-process [`TrainerEvaluator`] does (the same
//! code) and trains.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use trainer::data::{load, DatasetKind, ImageSet};
use trainer::train::{Report, TrainConfig};
use trainer::TrainError;

use crate::closed_loop::TrainerEvaluator;
use crate::run::write_json;
use crate::SearchError;

mod cache;
mod command;
mod table;

pub use cache::EvalCache;
pub(crate) use command::shell_quote;
pub use command::{CommandJob, CommandResult};
pub use table::{TableJob, TableResult};

/// The directory of task files inside a run directory.
pub const TASKS: &str = "tasks";

/// The data a run trains and selects on: a dataset and how it is split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// Dataset directory or `.tar.gz` (a relative path is relative to the worker's working
    /// directory, which a [`ProcessEvaluator`](super::ProcessEvaluator) passes on).
    pub path: PathBuf,
    /// Dataset kind (`cifar10`, `cifar100`, `imagefolder`, `mnist`, ...); detected when `None`.
    pub dataset: Option<String>,
    /// Validation images held out of the training set (default: 10%, at most 5000).
    pub val_size: Option<usize>,
    /// Train on at most this many of the remaining training images (default: all).
    pub limit_train: Option<usize>,
    /// Seed of the splits.
    pub seed: u64,
}

impl DataSpec {
    /// Loads the dataset and splits it as searches do: `(train, validation, test)`.
    pub fn load(&self) -> Result<(ImageSet, ImageSet, ImageSet), TrainError> {
        let kind = self
            .dataset
            .as_deref()
            .map(str::parse::<DatasetKind>)
            .transpose()?;
        let dataset = load(&self.path, kind)?;
        let (train, val) = dataset.search_splits(self.val_size, self.limit_train, self.seed)?;
        Ok((train, val, dataset.test))
    }
}

/// What every evaluation of a run shares: the data, the training recipe and the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSetup {
    /// The data and its splits.
    pub data: DataSpec,
    /// How to train.
    pub training: TrainConfig,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
}

/// One evaluation as a file (`tasks/<id>.json`): an architecture and its setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalTask {
    /// The architecture, printed canonically (lazy widths resolved).
    pub architecture: String,
    /// Data, training and device.
    #[serde(flatten)]
    pub setup: EvalSetup,
    /// Write the trained network here for PyTorch (`model.safetensors`, `model.py`,
    /// `architecture.arch`) when training succeeds (retraining does; searches do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<PathBuf>,
    /// The code of a search space's candidate the architecture was rendered from, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ncode::NCode>,
}

/// One evaluation as a file (`tasks/<id>.json`), tagged by its `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Train an architecture.
    Train(EvalTask),
    /// Look an architecture up in a table.
    Table(TableJob),
    /// Run an external evaluator.
    Command(CommandJob),
}

/// What a worker writes (`tasks/<id>.result.json`), tagged like its [`Job`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobResult {
    /// A training's result.
    Train(TaskResult),
    /// A table lookup's result.
    Table(TableResult),
    /// An external evaluator's result.
    Command(CommandResult),
}

/// What a worker writes for a training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The trainer's report (failures such as parse errors or divergence included).
    pub report: Report,
    /// Seconds the worker spent loading and splitting the data before training.
    pub load_seconds: f64,
}

/// The id of task number `n`: six digits (`tasks/000042.json`), so files sort by number.
pub(crate) fn task_name(n: usize) -> String {
    format!("{n:06}")
}

/// A task file of the run in `run_dir` that cannot be read or written, as an error of the run.
pub(crate) fn task_error(run_dir: &Path, e: TaskError) -> SearchError {
    crate::run::error(&run_dir.join(TASKS), e)
}

/// Errors of task files and of the worker.
#[derive(Debug, Error)]
pub enum TaskError {
    /// A task id that cannot name a file.
    #[error("invalid task id `{0}`: use ASCII letters, digits, `-` and `_`")]
    Id(String),
    /// A task or result file that cannot be read or is not what it should be.
    #[error("task file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data or the device could not be used.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] SearchError),
    /// An external evaluator could not be started.
    #[error("external evaluator: {0}")]
    Command(String),
    /// A table could not be loaded or read.
    #[error(transparent)]
    Table(arch_space::ArchSpaceError),
    /// The address-space limit could not be set.
    #[error("cannot limit the address space to {bytes} bytes: {source}")]
    Limit {
        /// The limit asked for.
        bytes: u64,
        /// The system's error.
        source: std::io::Error,
    },
}

impl Job {
    /// Writes the job to `tasks/<id>.json` of `run_dir` (atomically) and removes a result
    /// left from an earlier job of the same id; returns the job file's path.
    pub fn write(&self, run_dir: &Path, id: &str) -> Result<PathBuf, TaskError> {
        let path = task_path(run_dir, id)?;
        let result = result_path(run_dir, id)?;
        match std::fs::remove_file(&result) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(file_error(&result, e));
            }
            _ => {}
        }
        write_json(&path, self)?;
        Ok(path)
    }

    /// Reads `tasks/<id>.json` of `run_dir`.
    pub fn read(run_dir: &Path, id: &str) -> Result<Self, TaskError> {
        read_file(&task_path(run_dir, id)?, "a job")
    }

    /// The candidate's code, for jobs that carry one (lookups, commands, rendered trainings).
    pub fn code(&self) -> Option<&ncode::NCode> {
        match self {
            Job::Train(task) => task.code.as_ref(),
            Job::Table(job) => Some(&job.code),
            Job::Command(job) => Some(&job.code),
        }
    }

    /// Runs the job in this process. Training failures are statuses in the report; an error
    /// means the job could not run (data, device or table unusable).
    pub fn run(&self) -> Result<JobResult, TaskError> {
        Ok(match self {
            Job::Train(task) => JobResult::Train(run_task(task)?),
            Job::Table(job) => JobResult::Table(job.run()?),
            Job::Command(job) => JobResult::Command(job.run()?),
        })
    }
}

impl EvalTask {
    /// Writes the training to `tasks/<id>.json` of `run_dir` as a [`Job::Train`].
    pub fn write(&self, run_dir: &Path, id: &str) -> Result<PathBuf, TaskError> {
        Job::Train(self.clone()).write(run_dir, id)
    }

    /// Reads `tasks/<id>.json` of `run_dir`, which must hold a training.
    pub fn read(run_dir: &Path, id: &str) -> Result<Self, TaskError> {
        match Job::read(run_dir, id)? {
            Job::Train(task) => Ok(task),
            Job::Table(_) | Job::Command(_) => {
                Err(file_error(&task_path(run_dir, id)?, "not a training"))
            }
        }
    }
}

impl JobResult {
    /// Reads `tasks/<id>.result.json` of `run_dir`.
    pub fn read(run_dir: &Path, id: &str) -> Result<Self, TaskError> {
        read_file(&result_path(run_dir, id)?, "a job result")
    }
}

impl TaskResult {
    /// Reads `tasks/<id>.result.json` of `run_dir`, which must hold a training's result.
    pub fn read(run_dir: &Path, id: &str) -> Result<Self, TaskError> {
        match JobResult::read(run_dir, id)? {
            JobResult::Train(result) => Ok(result),
            JobResult::Table(_) | JobResult::Command(_) => Err(file_error(
                &result_path(run_dir, id)?,
                "not a training's result",
            )),
        }
    }
}

/// `tasks/<id>.json` of `run_dir`.
pub fn task_path(run_dir: &Path, id: &str) -> Result<PathBuf, TaskError> {
    Ok(run_dir
        .join(TASKS)
        .join(format!("{}.json", checked_id(id)?)))
}

/// `tasks/<id>.result.json` of `run_dir`.
pub fn result_path(run_dir: &Path, id: &str) -> Result<PathBuf, TaskError> {
    Ok(run_dir
        .join(TASKS)
        .join(format!("{}.result.json", checked_id(id)?)))
}

/// The numeric ids of the job files in `run_dir/tasks/` (`000003.json`), ascending.
pub fn task_ids(run_dir: &Path) -> Result<Vec<usize>, SearchError> {
    let dir = run_dir.join(TASKS);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(SearchError::Run {
                path: dir,
                reason: e.to_string(),
            })
        }
    };
    let mut ids: Vec<usize> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Runs a task in this process: loads and splits the data, parses and trains the architecture.
/// Training failures are statuses in the report; an error means the task could not run (data
/// or device unusable).
pub fn run_task(task: &EvalTask) -> Result<TaskResult, TaskError> {
    let started = Instant::now();
    let evaluator = TrainerEvaluator::load(&task.setup)?;
    let load_seconds = started.elapsed().as_secs_f64();
    let report = match &task.export {
        None => evaluator.train_text(&task.architecture),
        Some(dir) => {
            let (report, network) = evaluator.train_text_network(&task.architecture);
            if let Some(network) = network.filter(|_| report.status == trainer::train::Status::Ok) {
                trainer::export::export(&network, dir, trainer::export::Format::All)?;
            }
            report
        }
    };
    Ok(TaskResult {
        report,
        load_seconds,
    })
}

/// The worker's job: reads job `id` of `run_dir`, runs it, writes its result atomically and
/// returns the result file's path.
pub fn work(run_dir: &Path, id: &str) -> Result<PathBuf, TaskError> {
    let result = Job::read(run_dir, id)?.run()?;
    let path = result_path(run_dir, id)?;
    write_json(&path, &result)?;
    Ok(path)
}

/// Limits this process's address space to `bytes` (`RLIMIT_AS`): an allocation beyond it fails,
/// which aborts the process instead of letting the machine swap or the kernel pick a victim.
pub fn limit_address_space(bytes: u64) -> Result<(), TaskError> {
    #[cfg(unix)]
    let result = {
        let limit = libc::rlimit {
            rlim_cur: bytes as libc::rlim_t,
            rlim_max: bytes as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct it is given and changes only this process's limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    #[cfg(not(unix))]
    let result = Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "address-space limits need a Unix system",
    ));
    result.map_err(|source| TaskError::Limit { bytes, source })
}

fn checked_id(id: &str) -> Result<&str, TaskError> {
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(id)
    } else {
        Err(TaskError::Id(id.to_string()))
    }
}

fn file_error(path: &Path, reason: impl ToString) -> TaskError {
    TaskError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn read_file<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T, TaskError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    serde_json::from_str(&text).map_err(|e| file_error(path, format!("not {what}: {e}")))
}
