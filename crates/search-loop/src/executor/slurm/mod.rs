//! The Slurm executor: evaluations as `sbatch --array` jobs of the `nas eval` worker.
//!
//! ```text
//! RUN_DIR/slurm/batches/nas-1a2b3c4d-000012-0.json   one submission: its tasks, its job id
//! RUN_DIR/slurm/scripts/nas-1a2b3c4d-000012-0.sh     its batch script
//! RUN_DIR/slurm/logs/nas-1a2b3c4d-000012-0_3.log     the output of its array task 3
//! ```
//!
//! Each round's new jobs become one array job. Its name is derived from the run (a hash of the
//! run directory's path), its first task id and the attempt, and its record is written before
//! `sbatch` runs, so a driver killed between `sbatch` and recording the job id finds the job by
//! name (`squeue --name`) when it resumes instead of submitting it again. A task's result is its
//! file `tasks/<id>.result.json` in the shared run directory, written atomically by the worker;
//! job states come from `squeue` and, for the exit code of a failed task, `scontrol` (never
//! `sacct`, which needs an accounting database).

mod config;
mod queue;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use config::SlurmConfig;
use queue::{Ending, TaskState};

use super::{written_result, Executor, Failure, Finished};
use crate::closed_loop::worker_beside_executable;
use crate::run::{hex, write_atomic, write_json, OutcomeStatus};
use crate::worker::{shell_quote, Job};
use crate::SearchError;

/// The Slurm directory inside a run directory.
pub const SLURM: &str = "slurm";
/// A task that Slurm does not list this long after its submission has vanished.
const VANISHED_AFTER: Duration = Duration::from_secs(15);
/// A task that Slurm reports `COMPLETED` may show its result file this much later (the shared
/// file system's caches).
const RESULT_GRACE: Duration = Duration::from_secs(10);

/// One `sbatch` submission (`slurm/batches/<name>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Batch {
    /// The job name, unique in the run.
    name: String,
    /// Task ids, by array index.
    tasks: Vec<String>,
    /// How often these tasks were submitted before (0 for the first submission).
    attempt: usize,
    /// Slurm's job id, once `sbatch` answered.
    job_id: Option<String>,
}

/// A task in flight.
#[derive(Debug, Clone)]
struct Tracked {
    attempt: usize,
    /// The batch it was submitted in, and its array index there.
    batch: String,
    index: usize,
    /// `JOBID_INDEX` once the batch's job id is known.
    array_task: Option<String>,
    since: Instant,
    completed_since: Option<Instant>,
}

/// Runs each job as an array task of an `sbatch` job on a Slurm cluster; see the module docs.
pub struct SlurmExecutor {
    config: SlurmConfig,
    run_dir: PathBuf,
    run_key: String,
    worker: PathBuf,
    slots: usize,
    /// Jobs waiting for the next round's `sbatch`, with their attempt.
    held: Vec<(String, usize)>,
    tracked: BTreeMap<String, Tracked>,
    batches: BTreeMap<String, Batch>,
}

impl SlurmExecutor {
    /// An executor for the run in `run_dir` (shared by the driver and the compute nodes) with
    /// up to `slots` jobs in flight. Reads the batches an earlier driver submitted.
    pub fn new(run_dir: &Path, slots: usize, config: SlurmConfig) -> Result<Self, SearchError> {
        let run_dir = std::path::absolute(run_dir).map_err(|e| crate::run::error(run_dir, e))?;
        let worker = match &config.worker {
            Some(path) => path.clone(),
            None => worker_beside_executable().ok_or_else(|| {
                crate::run::error(
                    &run_dir,
                    "no `nas` worker binary beside this executable: build it (`cargo build \
                     --release --bin nas`) or set `worker` in the Slurm configuration",
                )
            })?,
        };
        let run_key = hex(&Sha256::digest(run_dir.to_string_lossy().as_bytes()))[..8].to_string();
        let batches = read_batches(&run_dir.join(SLURM).join("batches"))?;
        Ok(SlurmExecutor {
            config,
            run_dir,
            run_key,
            worker,
            slots: slots.max(1),
            held: Vec::new(),
            tracked: BTreeMap::new(),
            batches,
        })
    }

    fn slurm_path(&self, kind: &str, file: &str) -> PathBuf {
        self.run_dir.join(SLURM).join(kind).join(file)
    }

    fn save_batch(&self, batch: &Batch) -> Result<(), SearchError> {
        write_json(
            &self.slurm_path("batches", &format!("{}.json", batch.name)),
            batch,
        )
    }

    fn track(&mut self, id: &str, batch: &Batch, index: usize) {
        self.tracked.insert(
            id.to_string(),
            Tracked {
                attempt: batch.attempt,
                batch: batch.name.clone(),
                index,
                array_task: batch.job_id.as_ref().map(|job| format!("{job}_{index}")),
                since: Instant::now(),
                completed_since: None,
            },
        );
    }

    /// Submits the held jobs as one array job.
    fn flush(&mut self) -> Result<(), SearchError> {
        let Some(&(ref first, attempt)) = self.held.first() else {
            return Ok(());
        };
        let name = format!("nas-{}-{first}-{attempt}", self.run_key);
        let mut batch = Batch {
            tasks: self.held.iter().map(|(id, _)| id.clone()).collect(),
            attempt: self.held.iter().map(|&(_, a)| a).max().unwrap_or(attempt),
            job_id: None,
            name,
        };
        // The record first: a driver killed during `sbatch` finds the job by its name.
        self.save_batch(&batch)?;
        let script = self.slurm_path("scripts", &format!("{}.sh", batch.name));
        write_atomic(&script, self.script(&batch.tasks).as_bytes())?;
        let log = self.slurm_path("logs", &format!("{}_%a.log", batch.name));
        // Slurm cannot start a task whose output file it cannot create.
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| crate::run::error(dir, e))?;
        }
        batch.job_id = Some(queue::sbatch(
            &batch.name,
            batch.tasks.len(),
            &log,
            &script,
        )?);
        self.save_batch(&batch)?;
        tracing::info!(
            job = batch.job_id,
            tasks = batch.tasks.len(),
            "submitted {}",
            batch.name
        );
        for (index, id) in batch.tasks.iter().enumerate() {
            self.track(id, &batch, index);
        }
        self.held.clear();
        self.batches.insert(batch.name.clone(), batch);
        Ok(())
    }

    /// The batch script: the configured `#SBATCH` lines and the worker on the array task's id.
    fn script(&self, tasks: &[String]) -> String {
        let mut text = String::from("#!/bin/bash\n");
        for line in self.config.sbatch_lines() {
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str("set -eu\n");
        text.push_str(&format!("tasks=({})\n", tasks.join(" ")));
        text.push_str(&format!(
            "exec {} eval --run-dir {} --task \"${{tasks[$SLURM_ARRAY_TASK_ID]}}\"\n",
            shell_quote(&self.worker.to_string_lossy()),
            shell_quote(&self.run_dir.to_string_lossy()),
        ));
        text
    }

    /// Finds the job ids of adopted batches that an earlier driver submitted without recording
    /// the id; batches Slurm does not know are held for submission.
    fn resolve_adopted(&mut self) -> Result<(), SearchError> {
        let unresolved: BTreeSet<String> = self
            .tracked
            .values()
            .filter(|t| t.array_task.is_none())
            .map(|t| t.batch.clone())
            .collect();
        for name in unresolved {
            let found = queue::squeue_named(&name)?;
            let job_id = found
                .keys()
                .filter_map(|task| task.split('_').next())
                .next()
                .map(str::to_string);
            let Some(mut batch) = self.batches.get(&name).cloned() else {
                continue;
            };
            let ids: Vec<(String, usize)> = self
                .tracked
                .iter()
                .filter(|(_, t)| t.batch == name)
                .map(|(id, t)| (id.clone(), t.index))
                .collect();
            match job_id {
                Some(job_id) => {
                    tracing::info!(job = job_id, "adopted {name} by its name");
                    batch.job_id = Some(job_id);
                    self.save_batch(&batch)?;
                    for (id, index) in &ids {
                        self.track(id, &batch, *index);
                    }
                    self.batches.insert(name, batch);
                }
                None => {
                    for (id, _) in ids {
                        self.tracked.remove(&id);
                        self.held.push((id, batch.attempt));
                    }
                }
            }
        }
        Ok(())
    }

    /// One look at the queue and the result files: the tasks that ended.
    fn poll(&mut self) -> Result<Vec<Finished>, SearchError> {
        let jobs: BTreeSet<&str> = self
            .tracked
            .values()
            .filter_map(|t| t.array_task.as_deref()?.split('_').next())
            .collect();
        let states = queue::squeue_jobs(&jobs.into_iter().collect::<Vec<_>>())?;
        let mut ended = Vec::new();
        let ids: Vec<String> = self.tracked.keys().cloned().collect();
        for id in ids {
            if let Some(result) = written_result(&self.run_dir, &id) {
                self.tracked.remove(&id);
                ended.push(Finished { id, result });
                continue;
            }
            let Some(task) = self.tracked.get_mut(&id) else {
                continue;
            };
            let Some(array_task) = task.array_task.clone() else {
                continue;
            };
            let ending = match states.get(&array_task) {
                Some(state) => state.ending(),
                None if task.since.elapsed() > VANISHED_AFTER => Ending::Lost,
                None => Ending::Active,
            };
            let failure = match ending {
                Ending::Active => continue,
                Ending::Completed => {
                    let since = *task.completed_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < RESULT_GRACE {
                        continue;
                    }
                    Failure::new(
                        OutcomeStatus::Crash,
                        format!("Slurm job {array_task} COMPLETED without writing a result"),
                    )
                }
                Ending::Failed(status) => self.failure(&id, &array_task, status, &states),
                Ending::Lost => match self.resubmit(&id, &array_task, &states) {
                    Some(failure) => failure,
                    None => continue,
                },
            };
            self.tracked.remove(&id);
            ended.push(Finished {
                id,
                result: Err(failure),
            });
        }
        Ok(ended)
    }

    /// The failure of a task that ended without a result, with Slurm's state, reason and exit
    /// code and the end of its log; a failed task whose log shows an allocation failure or that
    /// was killed by signal 9 (Slurm's memory enforcement) is `oom`.
    fn failure(
        &self,
        id: &str,
        array_task: &str,
        status: OutcomeStatus,
        states: &BTreeMap<String, TaskState>,
    ) -> Failure {
        let state = &states[array_task];
        let exit = queue::exit_code(array_task).unwrap_or_else(|| "?".into());
        let log = self.log_of(id);
        let stderr = crate::closed_loop::read_end(&log);
        let status = match status {
            OutcomeStatus::Crash
                if exit.ends_with(":9")
                    || crate::closed_loop::out_of_memory(&stderr, None, false) =>
            {
                OutcomeStatus::Oom
            }
            other => other,
        };
        Failure::new(
            status,
            format!(
                "Slurm job {array_task} {} ({}, exit code {exit}): {}",
                state.state,
                state.reason,
                crate::closed_loop::tail(&stderr)
            ),
        )
    }

    /// The log of a tracked task.
    fn log_of(&self, id: &str) -> PathBuf {
        let (batch, index) = self
            .tracked
            .get(id)
            .map_or(("", 0), |t| (t.batch.as_str(), t.index));
        self.slurm_path("logs", &format!("{batch}_{index}.log"))
    }

    /// Holds a lost task for submission again, or returns its failure when it was submitted
    /// as often as allowed.
    fn resubmit(
        &mut self,
        id: &str,
        array_task: &str,
        states: &BTreeMap<String, TaskState>,
    ) -> Option<Failure> {
        let what = states.get(array_task).map_or_else(
            || "vanished from the queue".to_string(),
            |s| format!("{} ({})", s.state, s.reason),
        );
        let attempt = self.tracked.get(id).map_or(0, |t| t.attempt);
        if attempt >= self.config.max_resubmits {
            return Some(Failure::new(
                OutcomeStatus::Lost,
                format!(
                    "Slurm job {array_task} {what}, after {} submissions",
                    attempt + 1
                ),
            ));
        }
        tracing::warn!("Slurm job {array_task} {what}: submitting task {id} again");
        self.tracked.remove(id);
        self.held.push((id.to_string(), attempt + 1));
        None
    }
}

impl Executor for SlurmExecutor {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn slots(&self) -> usize {
        self.slots
    }

    fn submit(&mut self, id: &str, _job: &Job) -> Result<(), SearchError> {
        self.held.push((id.to_string(), 0));
        Ok(())
    }

    fn adopt(&mut self, id: &str, _job: &Job) -> Result<(), SearchError> {
        let latest = self
            .batches
            .values()
            .filter(|b| b.tasks.iter().any(|t| t == id))
            .max_by_key(|b| b.attempt)
            .cloned();
        match latest {
            Some(batch) => {
                let index = batch.tasks.iter().position(|t| t == id).unwrap_or_default();
                self.track(id, &batch, index);
            }
            None => self.held.push((id.to_string(), 0)),
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Result<Vec<Finished>, SearchError> {
        let deadline = Instant::now() + timeout;
        self.resolve_adopted()?;
        self.flush()?;
        loop {
            let ended = self.poll()?;
            // Lost tasks held for submission again.
            self.flush()?;
            let now = Instant::now();
            if !ended.is_empty() || now >= deadline || self.tracked.is_empty() {
                return Ok(ended);
            }
            let pause = Duration::from_secs_f64(self.config.poll_seconds.max(0.05));
            std::thread::sleep(pause.min(deadline - now));
        }
    }

    fn cancel(&mut self) -> Result<usize, SearchError> {
        let jobs: BTreeSet<String> = self
            .tracked
            .values()
            .filter_map(|t| Some(t.array_task.as_deref()?.split('_').next()?.to_string()))
            .collect();
        let count = self.tracked.len() + self.held.len();
        queue::scancel(&jobs.iter().map(String::as_str).collect::<Vec<_>>())?;
        self.tracked.clear();
        self.held.clear();
        Ok(count)
    }
}

/// The batches of `dir` (none when it does not exist).
fn read_batches(dir: &Path) -> Result<BTreeMap<String, Batch>, SearchError> {
    let mut batches = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(batches),
        Err(e) => return Err(crate::run::error(dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| crate::run::error(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).map_err(|e| crate::run::error(&path, e))?;
            let batch: Batch = serde_json::from_str(&text)
                .map_err(|e| crate::run::error(&path, format!("not a batch record: {e}")))?;
            batches.insert(batch.name.clone(), batch);
        }
    }
    Ok(batches)
}
