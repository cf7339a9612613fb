//! Searches with several evaluations in flight, on any [`Executor`], recorded in a run
//! directory so that a killed driver resumes without losing or repeating an evaluation.
//!
//! [`run_search`] keeps the executor's slots busy: whenever slots are free it asks the searcher
//! for that many proposals ([`Searcher::propose_batch`]; codes in flight count as seen), writes
//! each as a job file `tasks/<id>.json` and submits it; whenever jobs end it records them
//! (`evaluations/<id>.json` and one `evaluation` line of `events.jsonl`, in the order they
//! finished) and pushes them to the history. Random search, local search and REA thereby become
//! asynchronous (REA's tournament reads the finished evaluations: asynchronous REA); with one
//! slot the sequence of proposals is exactly the sequential search's for a seed.
//!
//! On a reopened run, the history is rebuilt from the log (in its order), jobs whose result
//! file appeared meanwhile are recorded, and jobs still in flight are handed to
//! [`Executor::adopt`] (Slurm finds them in its queue; the local executor runs them again).

mod space;
mod table;
mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ncode::NCode;

use crate::executor::{outcome_of, written_result, Executor, Failure, Finished};
use crate::run::{unix_time, EvaluationRecord, Event, RunDir};
use crate::worker::{task_error, task_ids, task_name, EvalCache, Job, TASKS};
use crate::{History, Observation, SearchContext, SearchError, Searcher};

pub use crate::executor::ExecutorKind;
pub use space::{candidate_config, load_space, load_space_file, SpaceSearch};
pub use table::TableSearch;
pub use template::CandidateTemplates;

/// A job of the run that the user cancelled (Ctrl-C): never adopted on resume.
const CANCELLED: &str = "cancelled";

/// What [`run_search`] needs besides the searcher and the executor.
pub struct ParallelSearch<'a> {
    /// The space, the constraints and the task.
    pub ctx: SearchContext<'a>,
    /// Evaluations to finish (failures included).
    pub budget: usize,
    /// The job that evaluates a code, or the failure recorded for it when there is none.
    pub job: &'a (dyn Fn(&NCode) -> Result<Job, Failure> + Sync),
    /// The longest wait for finished jobs before `stop` is looked at again.
    pub poll: Duration,
    /// Set (e.g. by a Ctrl-C handler) to cancel the jobs in flight and return.
    pub stop: Option<&'a AtomicBool>,
    /// Results of earlier runs: a job found there is not run again, and successful results are
    /// stored there.
    pub cache: Option<&'a EvalCache>,
}

/// Runs (or resumes) a search in `run` until `budget` evaluations finished, the space ran dry
/// or `stop` was set; calls `observe` after each finished evaluation. Returns the history in the
/// order the evaluations finished.
pub fn run_search(
    run: &mut RunDir,
    search: &ParallelSearch<'_>,
    searcher: &mut dyn Searcher,
    executor: &mut dyn Executor,
    observe: &mut dyn FnMut(&History),
) -> Result<History, SearchError> {
    let ctx = &search.ctx;
    let (mut history, recorded) = replay(run, ctx)?;
    run.log(&Event::RunStarted {
        time: unix_time(),
        finished_evaluations: history.len(),
    })?;
    let mut in_flight = BTreeMap::new();
    // Ids continue after every task and every record (a code whose job failed to build has a
    // record and no task).
    let mut next_id = recorded.last().map_or(0, |&id| id + 1);
    for id in task_ids(run.path())? {
        next_id = next_id.max(id + 1);
        if recorded.contains(&id) || run.path().join(TASKS).join(cancel_mark(id)).exists() {
            continue;
        }
        let name = task_name(id);
        let job = Job::read(run.path(), &name).map_err(|e| task_error(run.path(), e))?;
        let Some(code) = job.code().cloned() else {
            continue;
        };
        if let Some(result) = written_result(run.path(), &name) {
            let finished = Finished { id: name, result };
            finish(
                run,
                search,
                &mut history,
                (id, code, Some(&job)),
                finished,
                false,
            )?;
            continue;
        }
        history.begin(code.clone());
        executor.adopt(&name, &job)?;
        in_flight.insert(name, (id, code, job));
    }
    let mut exhausted = false;
    let reason = loop {
        if search.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            executor.cancel()?;
            for &(id, ..) in in_flight.values() {
                run.write_text(&format!("{TASKS}/{}", cancel_mark(id)), "")?;
            }
            break "interrupted";
        }
        let open = search
            .budget
            .saturating_sub(history.len() + in_flight.len());
        let free = executor.slots().saturating_sub(in_flight.len()).min(open);
        if free > 0 && !exhausted {
            match searcher.propose_batch(ctx, &mut history, free) {
                Ok(codes) => {
                    for code in codes {
                        let (id, name) = (next_id, task_name(next_id));
                        next_id += 1;
                        let job = match (search.job)(&code) {
                            Ok(job) => job,
                            Err(failure) => {
                                let finished = Finished {
                                    id: name,
                                    result: Err(failure),
                                };
                                finish(
                                    run,
                                    search,
                                    &mut history,
                                    (id, code, None),
                                    finished,
                                    false,
                                )?;
                                observe(&history);
                                continue;
                            }
                        };
                        job.write(run.path(), &name)
                            .map_err(|e| task_error(run.path(), e))?;
                        if let Some(result) = search.cache.and_then(|c| c.get(&job)) {
                            let finished = Finished {
                                id: name,
                                result: Ok(result),
                            };
                            let proposal = (id, code, Some(&job));
                            finish(run, search, &mut history, proposal, finished, true)?;
                            observe(&history);
                            continue;
                        }
                        executor.submit(&name, &job)?;
                        in_flight.insert(name, (id, code, job));
                    }
                }
                Err(SearchError::Exhausted { .. }) => exhausted = true,
                Err(e) => return Err(e),
            }
        }
        if in_flight.is_empty() {
            if exhausted {
                break "exhausted";
            }
            if history.len() >= search.budget {
                break "budget";
            }
            // Every proposal of the round came from the cache: propose again.
            continue;
        }
        for finished in executor.wait(search.poll)? {
            let Some((id, code, job)) = in_flight.remove(&finished.id) else {
                continue;
            };
            finish(
                run,
                search,
                &mut history,
                (id, code, Some(&job)),
                finished,
                false,
            )?;
            observe(&history);
        }
    };
    run.log(&Event::RunFinished {
        time: unix_time(),
        reason: reason.to_string(),
        finished_evaluations: history.len(),
    })?;
    Ok(history)
}

/// Records a finished job (from the executor, or from the cache when `cached`; a code without
/// a job has a failure), stores a successful result in the cache, and adds it to the history.
fn finish(
    run: &mut RunDir,
    search: &ParallelSearch<'_>,
    history: &mut History,
    (id, code, job): (usize, NCode, Option<&Job>),
    finished: Finished,
    cached: bool,
) -> Result<(), SearchError> {
    if let (Some(cache), Some(job), Ok(result), false) =
        (search.cache, job, &finished.result, cached)
    {
        cache.put(job, result)?;
    }
    let mut record = record(id, search.ctx.space.format(&code), finished);
    record.cached = cached;
    if let Some(Job::Train(task)) = job {
        // The network a space's template rendered: what retraining and export take.
        record.canonical = Some(task.architecture.clone());
    }
    run.save_evaluation(&record)?;
    history.push(Observation {
        code,
        score: record.outcome.score(),
    });
    Ok(())
}

/// The history of a reopened run, in the order its log recorded the evaluations, and the
/// iterations that have a record.
fn replay(
    run: &RunDir,
    ctx: &SearchContext<'_>,
) -> Result<(History, BTreeSet<usize>), SearchError> {
    let records: BTreeMap<usize, EvaluationRecord> = run
        .evaluations()?
        .into_iter()
        .map(|r| (r.iteration, r))
        .collect();
    let mut history = History::new();
    let mut seen = BTreeSet::new();
    for event in run.events()? {
        let Event::Evaluation { iteration, .. } = event else {
            continue;
        };
        let Some(record) = records.get(&iteration).filter(|_| seen.insert(iteration)) else {
            continue;
        };
        let text = record.architecture.as_deref().unwrap_or_default();
        history.push(Observation {
            code: ctx.space.parse(text)?,
            score: record.outcome.score(),
        });
    }
    Ok((history, records.into_keys().collect()))
}

/// The record of a finished job.
fn record(iteration: usize, code: String, finished: Finished) -> EvaluationRecord {
    let (outcome, report, metrics) = outcome_of(finished.result);
    EvaluationRecord {
        architecture: Some(code.clone()),
        canonical: Some(code),
        report,
        metrics,
        ..EvaluationRecord::new(iteration, outcome)
    }
}

fn cancel_mark(id: usize) -> String {
    format!("{}.{CANCELLED}", task_name(id))
}

/// Opens the run in `run_dir` to resume it (its recorded configuration wins), or creates it
/// with `config`.
fn open_or_create<C>(run_dir: &std::path::Path, config: &C) -> Result<(RunDir, C), SearchError>
where
    C: serde::Serialize + serde::de::DeserializeOwned + Clone,
{
    if run_dir.join(crate::run::EVENTS).exists() {
        let run = RunDir::open(run_dir)?;
        let recorded = run.config()?;
        Ok((run, recorded))
    } else {
        let provenance = crate::run::Provenance::collect("cpu", Vec::new());
        Ok((
            RunDir::create(run_dir, config, &provenance)?,
            config.clone(),
        ))
    }
}

/// `path` made absolute, so that workers anywhere find it.
fn absolute(path: &std::path::Path) -> Result<std::path::PathBuf, SearchError> {
    std::path::absolute(path).map_err(|e| SearchError::Run {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
