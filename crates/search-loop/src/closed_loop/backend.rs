//! Where the closed loop's candidates are evaluated: one at a time by an [`Evaluator`] in this
//! process, or as training jobs on an [`Executor`], one per chain in flight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arch_space::lang::{to_text, InputSpec, Module};
use trainer::train::Report;

use super::Evaluator;
use crate::executor::{outcome_of, written_result, Executor, Failure};
use crate::run::{Outcome, OutcomeStatus, RunDir};
use crate::worker::{task_error, task_name, EvalCache, EvalSetup, EvalTask, Job, JobResult};
use crate::SearchError;

/// An evaluation that ended.
pub(super) struct Evaluated {
    pub iteration: usize,
    pub outcome: Outcome,
    pub report: Option<Report>,
    pub cached: bool,
}

/// Evaluates the loop's candidates.
pub(super) trait Backend {
    /// What the networks read and must produce.
    fn input(&self) -> InputSpec;

    /// Evaluations that may be in flight at once.
    fn slots(&self) -> usize;

    /// Starts evaluating candidate `iteration`; `resumed` when an earlier process of the run
    /// started it and did not see it end.
    fn start(
        &mut self,
        run: &RunDir,
        iteration: usize,
        module: &Module,
        resumed: bool,
    ) -> Result<(), SearchError>;

    /// Waits for evaluations to end: some, or none when the poll interval passed.
    fn wait(&mut self) -> Result<Vec<Evaluated>, SearchError>;

    /// Whether the user asked to stop; the evaluations in flight are then cancelled.
    fn interrupted(&mut self) -> Result<bool, SearchError>;
}

/// One candidate at a time, evaluated when it starts.
pub(super) struct InProcess<'a> {
    evaluator: &'a mut dyn Evaluator,
    done: Vec<Evaluated>,
}

impl<'a> InProcess<'a> {
    pub(super) fn new(evaluator: &'a mut dyn Evaluator) -> Self {
        InProcess {
            evaluator,
            done: Vec::new(),
        }
    }
}

impl Backend for InProcess<'_> {
    fn input(&self) -> InputSpec {
        self.evaluator.input()
    }

    fn slots(&self) -> usize {
        1
    }

    fn start(
        &mut self,
        _: &RunDir,
        iteration: usize,
        module: &Module,
        _: bool,
    ) -> Result<(), SearchError> {
        let started = Instant::now();
        let (mut outcome, report) = self.evaluator.evaluate(module);
        if report.is_none() {
            outcome.seconds = started.elapsed().as_secs_f64();
        }
        self.done.push(Evaluated {
            iteration,
            outcome,
            report,
            cached: false,
        });
        Ok(())
    }

    fn wait(&mut self) -> Result<Vec<Evaluated>, SearchError> {
        Ok(std::mem::take(&mut self.done))
    }

    fn interrupted(&mut self) -> Result<bool, SearchError> {
        Ok(false)
    }
}

/// The closed loop's candidates as training jobs on an [`Executor`]
/// ([`run_closed_loop_on`](super::run_closed_loop_on)): candidate `i` is the job
/// `tasks/<i>.json` of the run directory.
pub struct LoopExecutor<'a> {
    /// Where the jobs run; its slots bound the chains in flight.
    pub executor: &'a mut dyn Executor,
    /// The data, the recipe and the device of every job.
    pub setup: EvalSetup,
    /// What the data gives the networks (the driver need not load the data).
    pub input: InputSpec,
    /// Results of earlier runs: a job found there is not run again; successful results are
    /// stored there.
    pub cache: Option<&'a EvalCache>,
    /// The longest wait for finished jobs before `stop` is looked at again.
    pub poll: Duration,
    /// Set (e.g. by a Ctrl-C handler) to cancel the jobs in flight and stop.
    pub stop: Option<&'a AtomicBool>,
}

/// A [`LoopExecutor`] with the jobs it has in flight.
pub(super) struct OnExecutor<'a> {
    jobs: LoopExecutor<'a>,
    in_flight: BTreeMap<String, Job>,
    done: Vec<Evaluated>,
}

impl<'a> OnExecutor<'a> {
    pub(super) fn new(jobs: LoopExecutor<'a>) -> Self {
        OnExecutor {
            jobs,
            in_flight: BTreeMap::new(),
            done: Vec::new(),
        }
    }

    fn end(&mut self, iteration: usize, result: Result<JobResult, Failure>, cached: bool) {
        let (outcome, report, _) = outcome_of(result);
        self.done.push(Evaluated {
            iteration,
            outcome,
            report,
            cached,
        });
    }
}

impl Backend for OnExecutor<'_> {
    fn input(&self) -> InputSpec {
        self.jobs.input
    }

    fn slots(&self) -> usize {
        self.jobs.executor.slots()
    }

    fn start(
        &mut self,
        run: &RunDir,
        iteration: usize,
        module: &Module,
        resumed: bool,
    ) -> Result<(), SearchError> {
        let name = task_name(iteration);
        let job = Job::Train(EvalTask {
            architecture: to_text(module),
            setup: self.jobs.setup.clone(),
            export: None,
            code: None,
        });
        if let Some(result) = resumed.then(|| written_result(run.path(), &name)).flatten() {
            self.end(iteration, result, false);
            return Ok(());
        }
        if let Some(result) = self.jobs.cache.and_then(|c| c.get(&job)) {
            self.end(iteration, Ok(result), true);
            return Ok(());
        }
        // Written again on resume: an earlier process may have ended before it wrote the job.
        job.write(run.path(), &name)
            .map_err(|e| task_error(run.path(), e))?;
        if resumed {
            self.jobs.executor.adopt(&name, &job)?;
        } else {
            self.jobs.executor.submit(&name, &job)?;
        }
        self.in_flight.insert(name, job);
        Ok(())
    }

    fn wait(&mut self) -> Result<Vec<Evaluated>, SearchError> {
        if self.done.is_empty() && !self.in_flight.is_empty() {
            for finished in self.jobs.executor.wait(self.jobs.poll)? {
                let Some(job) = self.in_flight.remove(&finished.id) else {
                    continue;
                };
                let Ok(iteration) = finished.id.parse() else {
                    continue;
                };
                if let (Some(cache), Ok(result)) = (self.jobs.cache, &finished.result) {
                    cache.put(&job, result)?;
                }
                self.end(iteration, finished.result, false);
            }
        }
        Ok(std::mem::take(&mut self.done))
    }

    fn interrupted(&mut self) -> Result<bool, SearchError> {
        if !self.jobs.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok(false);
        }
        self.jobs.executor.cancel()?;
        for name in std::mem::take(&mut self.in_flight).into_keys() {
            if let Ok(iteration) = name.parse() {
                let cancelled = Failure::new(OutcomeStatus::Cancelled, "cancelled by the user");
                self.end(iteration, Err(cancelled), false);
            }
        }
        Ok(true)
    }
}
