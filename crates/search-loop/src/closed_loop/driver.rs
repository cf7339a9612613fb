//! The loop itself: chains of generate, check, evaluate, diagnose, with their candidates'
//! evaluations in flight on a [`Backend`].
//!
//! A run has [`LoopConfig::chains`] chains. Each chain has at most one candidate in flight and
//! its own feedback memory (the triples of its own candidates, [`memory_window`]); all chains
//! see the best architecture of the whole run. A chain's next candidate starts from its head,
//! its latest evaluation (a chain's first, from the run's best so far): the head is diagnosed,
//! and the generator gets the best, the head and the suggestion. Chain 0 writes (or takes) the
//! first architecture; the others start once an evaluation has finished, and free slots go to
//! the chain that has started the fewest candidates. With one chain this is the sequential loop.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use arch_space::lang::{extract_code, parse, to_text, InputSpec, Module};
use llm_local::{LanguageModel, Sampling};

use super::backend::{Backend, Evaluated, InProcess, LoopExecutor, OnExecutor};
use super::{
    architecture_hash, best, call, memory_window, read_diagnosis, Evaluator, LoopConfig,
    LoopPrompts, Progress, Roles, Summary, TaskPrompt,
};
use crate::run::{
    unix_time, DiagnosisRecord, EvaluationRecord, Event, LlmCall, Outcome, OutcomeStatus, RunDir,
};
use crate::SearchError;

/// Runs (or resumes) the closed loop in `run`, evaluating one candidate at a time with
/// `evaluator` in this process, until `config.iterations`, the wall-time budget or a broken
/// backend stops it; writes `summary.json` and returns the summary.
pub fn run_closed_loop(
    config: &LoopConfig,
    run: &mut RunDir,
    roles: Roles<'_>,
    evaluator: &mut dyn Evaluator,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Summary, SearchError> {
    drive(
        config,
        run,
        roles,
        &mut InProcess::new(evaluator),
        on_progress,
    )
}

/// [`run_closed_loop`] with the candidates trained as jobs on an executor (local threads, or
/// Slurm jobs of the `nas eval` worker): up to the executor's slots in flight, one per chain.
/// A resumed run collects the jobs that ended meanwhile and adopts those still in flight; on
/// `stop` the jobs in flight are cancelled and recorded as `cancelled`.
pub fn run_closed_loop_on(
    config: &LoopConfig,
    run: &mut RunDir,
    roles: Roles<'_>,
    jobs: LoopExecutor<'_>,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Summary, SearchError> {
    drive(config, run, roles, &mut OnExecutor::new(jobs), on_progress)
}

fn drive(
    config: &LoopConfig,
    run: &mut RunDir,
    roles: Roles<'_>,
    backend: &mut dyn Backend,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Summary, SearchError> {
    let input = backend.input();
    let mut state = LoopState {
        config,
        input,
        generator_sampling: config.generator_sampling_for(&input)?,
        improver_sampling: config.improver_sampling_constrained(),
        prompts: LoopPrompts::of_run(run)?,
        evaluations: run.evaluations()?,
        diagnoses: run.diagnoses()?,
        pending: BTreeMap::new(),
        roles,
    };
    run.log(&Event::RunStarted {
        time: unix_time(),
        finished_evaluations: state.evaluations.len(),
    })?;
    for record in run.pending()?.into_values() {
        let candidate = state.resumed(record);
        state.start(run, backend, candidate, true, on_progress)?;
    }
    let mut next = state
        .evaluations
        .iter()
        .chain(state.pending.values())
        .map(|r| r.iteration + 1)
        .max()
        .unwrap_or(0);
    let started = Instant::now();
    let mut stop_reason = None;
    loop {
        if backend.interrupted()? {
            stop_reason = Some("interrupted");
        }
        while stop_reason.is_none()
            && state.pending.len() < backend.slots()
            && next <= config.iterations
        {
            if config
                .max_wall_seconds
                .is_some_and(|limit| started.elapsed().as_secs_f64() >= limit)
            {
                stop_reason = Some("wall_time");
            } else if state.consecutive_llm_errors() >= config.max_consecutive_llm_errors.max(1) {
                stop_reason = Some("llm_errors");
            } else {
                let Some(chain) = state.idle_chain() else {
                    break;
                };
                let candidate = state.next_candidate(run, next, chain)?;
                next += 1;
                state.start(run, backend, candidate, false, on_progress)?;
            }
        }
        if state.pending.is_empty() {
            break;
        }
        for evaluated in backend.wait()? {
            state.finish_evaluated(run, evaluated, on_progress)?;
        }
    }
    let stop_reason = stop_reason.unwrap_or("iterations");
    let summary = Summary::of(&state.evaluations, stop_reason);
    run.write_json("summary.json", &summary)?;
    run.log(&Event::RunFinished {
        time: unix_time(),
        reason: stop_reason.to_string(),
        finished_evaluations: state.evaluations.len(),
    })?;
    Ok(summary)
}

/// The placeholder outcome of a pending record.
const BEING_EVALUATED: &str = "still being evaluated";

/// A generated architecture after the static checks.
enum Candidate {
    /// Its outcome is final (a failure, a duplicate): recorded at once.
    Final(EvaluationRecord),
    /// To evaluate: the record (its outcome a placeholder) and the checked network.
    Evaluate(EvaluationRecord, Module),
}

struct LoopState<'a, 'r> {
    config: &'a LoopConfig,
    input: InputSpec,
    /// The roles' sampling, with their constraints.
    generator_sampling: Sampling,
    improver_sampling: Sampling,
    /// The roles' prompt templates (the run's, from its `prompts/` folder).
    prompts: LoopPrompts,
    /// Finished evaluations, in the order they finished (a resumed run: by iteration).
    evaluations: Vec<EvaluationRecord>,
    diagnoses: BTreeMap<usize, DiagnosisRecord>,
    /// Candidates in flight, their outcomes placeholders.
    pending: BTreeMap<usize, EvaluationRecord>,
    roles: Roles<'r>,
}

impl LoopState<'_, '_> {
    fn task(&self) -> TaskPrompt<'_> {
        self.config.task_prompt(self.input)
    }

    fn consecutive_llm_errors(&self) -> usize {
        self.evaluations
            .iter()
            .rev()
            .take_while(|r| r.outcome.status == OutcomeStatus::LlmError)
            .count()
    }

    fn progress(&self) -> Progress {
        let best = best(&self.evaluations);
        let last = self.evaluations.last();
        Progress {
            iteration: last.map_or(0, |r| r.iteration),
            last_iteration: self.config.iterations,
            outcome: last.map_or_else(
                || Outcome::failure(OutcomeStatus::LlmError, "nothing evaluated"),
                |r| r.outcome.clone(),
            ),
            best: best.and_then(|b| b.outcome.score().map(|s| (b.iteration, s))),
            valid: self
                .evaluations
                .iter()
                .filter(|r| r.outcome.score().is_some())
                .count(),
            finished: self.evaluations.len(),
        }
    }

    /// The chain whose turn it is: not in flight, and among those the one that started the
    /// fewest candidates (the lowest number among equals). Chains other than 0 wait for the
    /// first finished evaluation.
    fn idle_chain(&self) -> Option<usize> {
        let busy: BTreeSet<usize> = self.pending.values().map(|r| r.chain).collect();
        let started = |chain: usize| self.evaluations.iter().filter(|r| r.chain == chain).count();
        (0..self.config.chains.max(1))
            .filter(|c| !busy.contains(c) && (*c == 0 || !self.evaluations.is_empty()))
            .min_by_key(|&c| (started(c), c))
    }

    /// Where `chain` goes on from: its latest evaluation that was not cancelled, or (a chain's
    /// first candidate) the run's best, or its latest evaluation.
    fn head(&self, chain: usize) -> Option<&EvaluationRecord> {
        self.evaluations
            .iter()
            .filter(|r| r.chain == chain && r.outcome.status != OutcomeStatus::Cancelled)
            .max_by_key(|r| r.iteration)
            .or_else(|| best(&self.evaluations))
            .or_else(|| self.evaluations.last())
    }

    /// Asks the Prompt Improver about `chain`'s head unless it has a diagnosis.
    fn diagnose_head(&mut self, run: &mut RunDir, chain: usize) -> Result<(), SearchError> {
        let Some(current) = self.head(chain) else {
            return Ok(());
        };
        if self.diagnoses.contains_key(&current.iteration) {
            return Ok(());
        }
        let iteration = current.iteration;
        let memory = memory_window(
            &self.evaluations,
            &self.diagnoses,
            chain,
            self.config.memory,
        );
        let messages =
            self.prompts
                .improver(&self.task(), &memory, best(&self.evaluations), current)?;
        let feedback = current.outcome.summary();
        let sampling = seeded(&self.improver_sampling, iteration);
        let model: &mut dyn LanguageModel = match self.roles.improver.as_deref_mut() {
            Some(improver) => improver,
            None => &mut *self.roles.generator,
        };
        let (call, reply) =
            call::call_model(model, run, iteration, "improver", &messages, &sampling)?;
        let diagnosis = read_diagnosis(reply.as_deref().unwrap_or_default(), &feedback);
        let record = DiagnosisRecord {
            iteration,
            problem: diagnosis.problem,
            suggestion: diagnosis.suggestion,
            parsed: diagnosis.parsed,
            improver: Some(call),
        };
        run.save_diagnosis(&record)?;
        self.diagnoses.insert(iteration, record);
        Ok(())
    }

    /// Diagnoses `chain`'s head, then writes (or, at iteration 0, takes the starting)
    /// architecture and checks it.
    fn next_candidate(
        &mut self,
        run: &mut RunDir,
        iteration: usize,
        chain: usize,
    ) -> Result<Candidate, SearchError> {
        if let (0, Some(start)) = (iteration, &self.config.start) {
            let record = self.candidate(iteration, chain, None, None, None);
            return Ok(self.assess(record, Some(start.clone())));
        }
        self.diagnose_head(run, chain)?;
        let best = best(&self.evaluations);
        let current = self.head(chain);
        let parent = current.map(|c| c.iteration);
        let suggestion = parent
            .and_then(|p| self.diagnoses.get(&p))
            .map(|d| d.suggestion.clone());
        let messages =
            self.prompts
                .generator(&self.task(), best, current, suggestion.as_deref())?;
        let sampling = seeded(&self.generator_sampling, iteration);
        let (call, reply) = call::call_model(
            &mut *self.roles.generator,
            run,
            iteration,
            "generator",
            &messages,
            &sampling,
        )?;
        let record = self.candidate(iteration, chain, parent, suggestion, Some(call));
        Ok(self.assess(record, reply))
    }

    fn candidate(
        &self,
        iteration: usize,
        chain: usize,
        parent: Option<usize>,
        suggestion: Option<String>,
        generator: Option<LlmCall>,
    ) -> EvaluationRecord {
        EvaluationRecord {
            suggestion,
            generator,
            chain,
            parent,
            ..EvaluationRecord::new(
                iteration,
                Outcome::failure(OutcomeStatus::LlmError, "the model returned an empty reply"),
            )
        }
    }

    /// Parses, checks and dedupes a reply.
    fn assess(&self, mut record: EvaluationRecord, reply: Option<String>) -> Candidate {
        let reply = match reply {
            Some(reply) if !reply.trim().is_empty() => reply,
            Some(_) => return Candidate::Final(record),
            None => {
                let error = record.generator.as_ref().and_then(|c| c.error.clone());
                record.outcome = Outcome::failure(
                    OutcomeStatus::LlmError,
                    error.as_deref().unwrap_or("the model call failed"),
                );
                return Candidate::Final(record);
            }
        };
        record.architecture = Some(extract_code(&reply).trim().to_string());
        let started = Instant::now();
        let checked = self.check(&reply);
        let seconds = started.elapsed().as_secs_f64();
        let (module, mut outcome) = match checked {
            Err(outcome) => (None, outcome),
            Ok((module, outcome)) => {
                let canonical = to_text(&module);
                let hash = architecture_hash(&canonical);
                record.canonical = Some(canonical);
                let same = |r: &&EvaluationRecord| {
                    r.hash.as_deref() == Some(hash.as_str())
                        && r.outcome.status != OutcomeStatus::Duplicate
                };
                let earlier = match self.pending.values().find(same) {
                    Some(pending) => Some((pending.iteration, BEING_EVALUATED.to_string())),
                    None => self
                        .evaluations
                        .iter()
                        .find(same)
                        .map(|r| (r.iteration, r.outcome.summary())),
                };
                record.hash = Some(hash);
                match earlier {
                    Some((iteration, summary)) => {
                        let message =
                            format!("the same architecture as iteration {iteration} ({summary})");
                        let duplicate = Outcome::failure(OutcomeStatus::Duplicate, &message);
                        (
                            None,
                            Outcome {
                                status: duplicate.status,
                                message: duplicate.message,
                                ..outcome
                            },
                        )
                    }
                    None => (Some(module), outcome),
                }
            }
        };
        outcome.seconds = seconds;
        record.outcome = outcome;
        match module {
            Some(module) => Candidate::Evaluate(record, module),
            None => Candidate::Final(record),
        }
    }

    /// Parses and checks architecture text against the input and the budget: the resolved
    /// network with the placeholder outcome (its parameters and FLOPs filled in), or the
    /// failure.
    fn check(&self, text: &str) -> Result<(Module, Outcome), Outcome> {
        let program =
            parse(text).map_err(|e| Outcome::failure(OutcomeStatus::Parse, &e.to_string()))?;
        let analysis = program
            .check(&self.input)
            .map_err(|e| Outcome::failure(OutcomeStatus::Shape, &e.to_string()))?;
        let (status, message) = match analysis.within(&self.config.budget) {
            Ok(()) => (OutcomeStatus::Lost, BEING_EVALUATED.to_string()),
            Err(e) => (OutcomeStatus::Shape, e.to_string()),
        };
        let outcome = Outcome {
            params: Some(analysis.params),
            flops: Some(analysis.flops),
            ..Outcome::failure(status, &message)
        };
        match status {
            OutcomeStatus::Lost => Ok((analysis.resolved, outcome)),
            _ => Err(outcome),
        }
    }

    /// A candidate an earlier process started, checked again from its pending record.
    fn resumed(&self, mut record: EvaluationRecord) -> Candidate {
        let checked = match record.canonical.as_deref() {
            Some(canonical) => self.check(canonical),
            None => Err(Outcome::failure(
                OutcomeStatus::Crash,
                "a pending candidate without an architecture",
            )),
        };
        match checked {
            Ok((module, _)) => Candidate::Evaluate(record, module),
            Err(outcome) => {
                record.outcome = outcome;
                Candidate::Final(record)
            }
        }
    }

    /// Starts evaluating a candidate (`resumed`: one an earlier process started), or records
    /// it at once when its outcome is final.
    fn start(
        &mut self,
        run: &mut RunDir,
        backend: &mut dyn Backend,
        candidate: Candidate,
        resumed: bool,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), SearchError> {
        match candidate {
            Candidate::Final(record) => self.finish(run, record, on_progress),
            Candidate::Evaluate(record, module) => {
                if !resumed {
                    run.save_pending(&record)?;
                }
                backend.start(run, record.iteration, &module, resumed)?;
                self.pending.insert(record.iteration, record);
                Ok(())
            }
        }
    }

    /// Records an ended evaluation of a pending candidate.
    fn finish_evaluated(
        &mut self,
        run: &mut RunDir,
        evaluated: Evaluated,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), SearchError> {
        let Some(mut record) = self.pending.remove(&evaluated.iteration) else {
            return Ok(());
        };
        let mut outcome = evaluated.outcome;
        outcome.params = outcome.params.or(record.outcome.params);
        outcome.flops = outcome.flops.or(record.outcome.flops);
        record.outcome = outcome;
        record.report = evaluated.report;
        record.cached = evaluated.cached;
        self.finish(run, record, on_progress)
    }

    /// Saves a finished evaluation, updates the best, reports progress.
    fn finish(
        &mut self,
        run: &mut RunDir,
        record: EvaluationRecord,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), SearchError> {
        run.save_evaluation(&record)?;
        tracing::info!(
            iteration = record.iteration,
            chain = record.chain,
            outcome = %record.outcome.summary(),
            "evaluated"
        );
        let new_best = record.outcome.score().is_some()
            && best(&self.evaluations)
                .and_then(|b| b.outcome.score())
                .is_none_or(|b| record.outcome.score() > Some(b));
        if new_best {
            run.write_text("best.arch", record.canonical.as_deref().unwrap_or_default())?;
            run.write_json("best.json", &record)?;
        }
        self.evaluations.push(record);
        on_progress(&self.progress());
        Ok(())
    }
}

fn seeded(sampling: &Sampling, iteration: usize) -> Sampling {
    Sampling {
        seed: sampling.seed.wrapping_add(iteration as u64),
        ..sampling.clone()
    }
}
