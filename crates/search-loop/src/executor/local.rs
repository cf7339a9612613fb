//! The local executor: jobs on threads of this process.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use super::{Executor, Failure, Finished};
use crate::run::OutcomeStatus;
use crate::worker::{Job, JobResult};
use crate::SearchError;

/// What a [`LocalExecutor`] does with a job, given its id (the name of its file in `tasks/`)
/// and the job.
pub type RunJob = Arc<dyn Fn(&str, &Job) -> Result<JobResult, Failure> + Send + Sync>;

/// Runs up to `slots` jobs at once, each on its own thread of this process, through a
/// [`RunJob`] function. A panic in the function is a `crash` failure, not the driver's end.
///
/// Jobs that were in flight when the process ended leave no result, so [`Executor::adopt`] runs
/// them again.
pub struct LocalExecutor {
    slots: usize,
    run: RunJob,
    sender: Sender<Finished>,
    receiver: Receiver<Finished>,
    running: BTreeSet<String>,
}

impl LocalExecutor {
    /// An executor running `run` on up to `slots` jobs at once (at least 1).
    pub fn new(slots: usize, run: RunJob) -> Self {
        let (sender, receiver) = channel();
        LocalExecutor {
            slots: slots.max(1),
            run,
            sender,
            receiver,
            running: BTreeSet::new(),
        }
    }

    /// An executor that runs each job as the worker would ([`Job::run`]), in this process.
    pub fn in_process(slots: usize) -> Self {
        Self::new(slots, Arc::new(run_in_process))
    }

    fn receive(&mut self, finished: Finished, ended: &mut Vec<Finished>) {
        // Results of cancelled jobs are dropped.
        if self.running.remove(&finished.id) {
            ended.push(finished);
        }
    }
}

/// Runs a job in this process as the worker would; a job that cannot run is a `crash`.
pub fn run_in_process(_id: &str, job: &Job) -> Result<JobResult, Failure> {
    job.run()
        .map_err(|e| Failure::new(OutcomeStatus::Crash, e.to_string()))
}

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    fn slots(&self) -> usize {
        self.slots
    }

    fn submit(&mut self, id: &str, job: &Job) -> Result<(), SearchError> {
        let (id, job) = (id.to_string(), job.clone());
        let (run, sender) = (Arc::clone(&self.run), self.sender.clone());
        self.running.insert(id.clone());
        std::thread::Builder::new()
            .name(format!("job-{id}"))
            .spawn(move || {
                let result =
                    catch_unwind(AssertUnwindSafe(|| run(&id, &job))).unwrap_or_else(|panic| {
                        let message = panic
                            .downcast_ref::<String>()
                            .map(String::as_str)
                            .or_else(|| panic.downcast_ref::<&str>().copied())
                            .unwrap_or("no message");
                        Err(Failure::new(
                            OutcomeStatus::Crash,
                            format!("the job panicked: {message}"),
                        ))
                    });
                // The receiver is gone only when the executor is: nobody waits for this job.
                let _ = sender.send(Finished { id, result });
            })
            .map(|_| ())
            .map_err(|e| SearchError::Run {
                path: "tasks".into(),
                reason: format!("cannot start a thread for a job: {e}"),
            })
    }

    fn wait(&mut self, timeout: Duration) -> Result<Vec<Finished>, SearchError> {
        let mut ended = Vec::new();
        if self.running.is_empty() {
            return Ok(ended);
        }
        match self.receiver.recv_timeout(timeout) {
            Ok(finished) => self.receive(finished, &mut ended),
            // Never disconnected: the executor holds a sender.
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return Ok(ended),
        }
        while let Ok(finished) = self.receiver.try_recv() {
            self.receive(finished, &mut ended);
        }
        Ok(ended)
    }

    fn cancel(&mut self) -> Result<usize, SearchError> {
        let cancelled = self.running.len();
        self.running.clear();
        Ok(cancelled)
    }
}
