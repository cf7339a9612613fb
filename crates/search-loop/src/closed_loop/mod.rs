//! The closed loop with feedback memory: a Code Generator writes an architecture, it is checked
//! and trained for one epoch, a Prompt Improver diagnoses the outcome, and the last K diagnostic
//! triples plus the best architecture so far feed the next attempt.
//!
//! Everything the loop does goes into a [`RunDir`]: each LLM call (prompt and reply in side
//! files), each finished evaluation as an atomically written record and one `evaluation` log
//! line, each diagnosis. [`run_closed_loop`] on a reopened directory continues after the last
//! finished evaluation, so a killed run loses at most the candidate it was training.
//!
//! By default both roles answer under constraints ([`LoopConfig::constrained`]): the Code
//! Generator under the architecture language's generation grammar for the task's input (lazy
//! widths, feature-map sizes tracked, the class count pinned, so every reply parses and passes
//! the shape check), the Prompt Improver under the JSON Schema of a diagnosis
//! ([`DIAGNOSIS_SCHEMA`]). Turned off, replies are free text, as in the paper.
//!
//! Nothing the LLM writes is executed: replies are parsed as the architecture language and
//! checked statically; unparsable replies, shape errors, budget violations, duplicates,
//! divergence, out-of-memory predictions, timeouts and backend errors are typed outcomes.
//!
//! Candidates train in the loop's process ([`TrainerEvaluator`]) or each in a `nas eval` worker
//! process with hard time and memory limits ([`ProcessEvaluator`], jobs as files: [`crate::worker`]).

mod call;
mod evaluate;
mod memory;
mod process;
mod prompts;

use std::collections::BTreeMap;
use std::time::Instant;

use arch_space::lang::{extract_code, generation_grammar, parse, to_text, Budget, InputSpec};
use llm_local::{Constraint, LanguageModel, Sampling};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use evaluate::{CachedEvaluator, Evaluator, TrainerEvaluator};
pub use memory::{memory_window, MemoryEntry};
pub(crate) use process::{out_of_memory, read_end, tail, wait};
pub use process::{worker_beside_executable, ProcessEvaluator, WorkerOptions};
pub use prompts::{
    generator_messages, improver_messages, read_diagnosis, Diagnosis, LoopPrompts, TaskPrompt,
    DIAGNOSIS_SCHEMA,
};

use crate::run::{
    hex, unix_time, DiagnosisRecord, EvaluationRecord, Event, LlmCall, Outcome, OutcomeStatus,
    RunDir,
};
use crate::SearchError;

/// The architecture evaluated first (iteration 0) unless the configuration names another: a
/// small VGG-style CNN that trains in seconds, so the generator always has a best to improve.
/// Written with lazy widths, as the generation grammar asks.
pub const STARTING_ARCHITECTURE: &str = "nn.Sequential(
    nn.LazyConv2d(32, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(inplace=True),
    nn.MaxPool2d(2),
    nn.LazyConv2d(64, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(inplace=True),
    nn.MaxPool2d(2),
    nn.LazyConv2d(128, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(inplace=True),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.LazyLinear(10),
)";

/// What the closed loop is asked to do (saved as part of the run's `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopConfig {
    /// The task in a sentence, e.g. "Image classification on CIFAR-10".
    pub task: String,
    /// The last iteration to run: the starting architecture is iteration 0, generated ones
    /// are 1..=iterations.
    pub iterations: usize,
    /// K: diagnostic triples shown to the Prompt Improver.
    pub memory: usize,
    /// Parameter and FLOP limits, checked before training.
    pub budget: Budget,
    /// Stop starting iterations after this many seconds of this process.
    pub max_wall_seconds: Option<f64>,
    /// Stop after this many consecutive failed generator calls (a broken backend).
    pub max_consecutive_llm_errors: usize,
    /// Sampling of the Code Generator (its seed is offset by the iteration).
    pub generator_sampling: Sampling,
    /// Sampling of the Prompt Improver (its seed is offset by the iteration).
    pub improver_sampling: Sampling,
    /// Architecture text of iteration 0; `None` lets the generator write it.
    pub start: Option<String>,
    /// Whether the roles answer under constraints (the generation grammar, the diagnosis
    /// schema); `false` is the papers' free-text setting. Runs recorded before constraints
    /// existed read as `false`.
    #[serde(default)]
    pub constrained: bool,
}

impl LoopConfig {
    /// The paper's settings: K = 5, sampled generation, the [`STARTING_ARCHITECTURE`].
    pub fn new(task: impl Into<String>, iterations: usize) -> Self {
        LoopConfig {
            task: task.into(),
            iterations,
            memory: 5,
            budget: Budget::default(),
            max_wall_seconds: None,
            max_consecutive_llm_errors: 5,
            generator_sampling: Sampling {
                temperature: 0.7,
                top_p: 0.95,
                repeat_penalty: 1.05,
                max_tokens: 768,
                ..Sampling::default()
            },
            improver_sampling: Sampling {
                temperature: 0.3,
                top_p: 0.95,
                max_tokens: 256,
                ..Sampling::default()
            },
            start: Some(STARTING_ARCHITECTURE.to_string()),
            constrained: true,
        }
    }

    /// The Code Generator's sampling for `input`: under the generation grammar when
    /// constrained, with `max_tokens` raised to the grammar's longest text. Fails when no grammar can be built for the input (e.g. an empty image).
    pub fn generator_sampling_for(&self, input: &InputSpec) -> Result<Sampling, SearchError> {
        let mut sampling = self.generator_sampling.clone();
        if self.constrained {
            let grammar = generation_grammar(input).map_err(|e| SearchError::Constraint {
                text: "the generation grammar".into(),
                reason: e.message,
            })?;
            // Room for the longest reply the grammar allows (a token is at least one byte),
            // so that every reply finishes and parses.
            if let Some(longest) = grammar.max_len() {
                sampling.max_tokens = sampling.max_tokens.max(longest + 1);
            }
            sampling.constraint = Some(Constraint::Lark(grammar.to_lark()));
        }
        Ok(sampling)
    }

    /// What the roles are told about the task, for a dataset with `input`.
    pub fn task_prompt(&self, input: InputSpec) -> TaskPrompt<'_> {
        TaskPrompt {
            description: &self.task,
            input,
            budget: self.budget,
            lazy: self.constrained,
        }
    }

    /// The Prompt Improver's sampling: under [`DIAGNOSIS_SCHEMA`] when constrained.
    pub fn improver_sampling_constrained(&self) -> Sampling {
        let mut sampling = self.improver_sampling.clone();
        if self.constrained {
            sampling.constraint = Some(Constraint::JsonSchema(DIAGNOSIS_SCHEMA.into()));
        }
        sampling
    }
}

/// The language models of the two roles: one model for both, or two.
pub struct Roles<'a> {
    /// Writes architectures.
    pub generator: &'a mut dyn LanguageModel,
    /// Diagnoses outcomes (`None`: the generator's model plays this role too).
    pub improver: Option<&'a mut dyn LanguageModel>,
}

/// Reported after every finished evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The evaluation that just finished.
    pub iteration: usize,
    /// The last iteration the run will reach.
    pub last_iteration: usize,
    /// What became of it.
    pub outcome: Outcome,
    /// The best so far: iteration and validation accuracy.
    pub best: Option<(usize, f64)>,
    /// Evaluations that trained successfully, of `finished`.
    pub valid: usize,
    /// Evaluations finished (resumed ones included).
    pub finished: usize,
}

/// The end of a run (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Evaluations finished.
    pub finished_evaluations: usize,
    /// Evaluations that trained successfully.
    pub valid: usize,
    /// Failures by kind.
    pub failures: BTreeMap<String, usize>,
    /// The best evaluation (highest validation accuracy; the earliest among ties).
    pub best_iteration: Option<usize>,
    /// Its validation accuracy.
    pub best_val_acc: Option<f64>,
    /// Its test accuracy (reported, never selected on).
    pub best_test_acc: Option<f64>,
    /// Its parameters.
    pub best_params: Option<u64>,
    /// Why the run stopped: `iterations`, `wall_time` or `llm_errors`.
    pub stop_reason: String,
}

impl Summary {
    /// Summarises the records of a run.
    pub fn of(evaluations: &[EvaluationRecord], stop_reason: &str) -> Self {
        let mut failures = BTreeMap::new();
        for r in evaluations
            .iter()
            .filter(|r| r.outcome.status != OutcomeStatus::Ok)
        {
            *failures
                .entry(r.outcome.status.name().to_string())
                .or_insert(0) += 1;
        }
        let best = best(evaluations);
        Summary {
            finished_evaluations: evaluations.len(),
            valid: evaluations
                .iter()
                .filter(|r| r.outcome.score().is_some())
                .count(),
            failures,
            best_iteration: best.map(|b| b.iteration),
            best_val_acc: best.and_then(|b| b.outcome.score()),
            best_test_acc: best.and_then(|b| b.outcome.test_acc),
            best_params: best.and_then(|b| b.outcome.params),
            stop_reason: stop_reason.to_string(),
        }
    }
}

/// The evaluation with the highest validation accuracy (the earliest among ties).
pub fn best(evaluations: &[EvaluationRecord]) -> Option<&EvaluationRecord> {
    evaluations
        .iter()
        .filter_map(|r| r.outcome.score().map(|s| (r, s)))
        .fold(
            None,
            |acc: Option<(&EvaluationRecord, f64)>, (r, s)| match acc {
                Some((_, best)) if best >= s => acc,
                _ => Some((r, s)),
            },
        )
        .map(|(r, _)| r)
}

/// The dedupe key of an architecture: SHA-256 of its canonical text, first 16 hex digits.
pub fn architecture_hash(canonical: &str) -> String {
    hex(&Sha256::digest(canonical.as_bytes())[..8])
}

/// Runs (or resumes) the closed loop in `run` until `config.iterations`, the wall-time budget or
/// a broken backend stops it; writes `summary.json` and returns the summary.
pub fn run_closed_loop(
    config: &LoopConfig,
    run: &mut RunDir,
    roles: Roles<'_>,
    evaluator: &mut dyn Evaluator,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Summary, SearchError> {
    let generator_sampling = config.generator_sampling_for(&evaluator.input())?;
    let mut state = LoopState {
        config,
        generator_sampling,
        improver_sampling: config.improver_sampling_constrained(),
        prompts: LoopPrompts::of_run(run)?,
        evaluations: run.evaluations()?,
        diagnoses: run.diagnoses()?,
        roles,
        evaluator,
    };
    run.log(&Event::RunStarted {
        time: unix_time(),
        finished_evaluations: state.evaluations.len(),
    })?;
    let started = Instant::now();
    let first = state.evaluations.last().map_or(0, |r| r.iteration + 1);
    let mut stop_reason = "iterations";
    for iteration in first..=config.iterations {
        if config
            .max_wall_seconds
            .is_some_and(|limit| started.elapsed().as_secs_f64() >= limit)
        {
            stop_reason = "wall_time";
            break;
        }
        if state.consecutive_llm_errors() >= config.max_consecutive_llm_errors.max(1) {
            stop_reason = "llm_errors";
            break;
        }
        state.diagnose_latest(run)?;
        let record = state.next_candidate(run, iteration)?;
        run.save_evaluation(&record)?;
        tracing::info!(iteration, outcome = %record.outcome.summary(), "evaluated");
        let new_best = record.outcome.score().is_some()
            && best(&state.evaluations)
                .and_then(|b| b.outcome.score())
                .is_none_or(|b| record.outcome.score() > Some(b));
        if new_best {
            run.write_text("best.arch", record.canonical.as_deref().unwrap_or_default())?;
            run.write_json("best.json", &record)?;
        }
        state.evaluations.push(record);
        on_progress(&state.progress());
    }
    let summary = Summary::of(&state.evaluations, stop_reason);
    run.write_json("summary.json", &summary)?;
    run.log(&Event::RunFinished {
        time: unix_time(),
        reason: stop_reason.to_string(),
        finished_evaluations: state.evaluations.len(),
    })?;
    Ok(summary)
}

struct LoopState<'a, 'r> {
    config: &'a LoopConfig,
    /// The roles' sampling, with their constraints.
    generator_sampling: Sampling,
    improver_sampling: Sampling,
    /// The roles' prompt templates (the run's, from its `prompts/` folder).
    prompts: LoopPrompts,
    evaluations: Vec<EvaluationRecord>,
    diagnoses: BTreeMap<usize, DiagnosisRecord>,
    roles: Roles<'r>,
    evaluator: &'a mut dyn Evaluator,
}

impl LoopState<'_, '_> {
    fn task(&self) -> TaskPrompt<'_> {
        self.config.task_prompt(self.evaluator.input())
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

    /// Asks the Prompt Improver about the latest evaluation unless a diagnosis exists.
    fn diagnose_latest(&mut self, run: &mut RunDir) -> Result<(), SearchError> {
        let Some(current) = self.evaluations.last() else {
            return Ok(());
        };
        if self.diagnoses.contains_key(&current.iteration) {
            return Ok(());
        }
        let iteration = current.iteration;
        let memory = memory_window(&self.evaluations, &self.diagnoses, self.config.memory);
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

    /// Writes (or, at iteration 0, takes the starting) architecture and evaluates it.
    fn next_candidate(
        &mut self,
        run: &mut RunDir,
        iteration: usize,
    ) -> Result<EvaluationRecord, SearchError> {
        if let (0, Some(start)) = (iteration, &self.config.start) {
            return Ok(self.assess(iteration, Some(start.clone()), None, None));
        }
        let best = best(&self.evaluations);
        let current = self.evaluations.last();
        let suggestion = current
            .and_then(|c| self.diagnoses.get(&c.iteration))
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
        Ok(self.assess(iteration, reply, suggestion, Some(call)))
    }

    /// Parses, checks, dedupes and evaluates one reply.
    fn assess(
        &mut self,
        iteration: usize,
        reply: Option<String>,
        suggestion: Option<String>,
        generator: Option<LlmCall>,
    ) -> EvaluationRecord {
        let mut record = EvaluationRecord {
            iteration,
            architecture: None,
            canonical: None,
            hash: None,
            suggestion,
            generator,
            outcome: Outcome::failure(OutcomeStatus::LlmError, "the model returned an empty reply"),
            report: None,
            metrics: None,
            cached: false,
        };
        let reply = match reply {
            Some(reply) if !reply.trim().is_empty() => reply,
            Some(_) => return record,
            None => {
                let error = record.generator.as_ref().and_then(|c| c.error.clone());
                record.outcome = Outcome::failure(
                    OutcomeStatus::LlmError,
                    error.as_deref().unwrap_or("the model call failed"),
                );
                return record;
            }
        };
        record.architecture = Some(extract_code(&reply).trim().to_string());
        let started = Instant::now();
        let program = match parse(&reply) {
            Ok(program) => program,
            Err(e) => {
                record.outcome = Outcome::failure(OutcomeStatus::Parse, &e.to_string());
                return record;
            }
        };
        let analysis = match program.check(&self.evaluator.input()) {
            Ok(analysis) => analysis,
            Err(e) => {
                record.outcome = Outcome::failure(OutcomeStatus::Shape, &e.to_string());
                return record;
            }
        };
        let canonical = to_text(&analysis.resolved);
        let hash = architecture_hash(&canonical);
        record.canonical = Some(canonical);
        record.hash = Some(hash.clone());
        let earlier = self
            .evaluations
            .iter()
            .find(|r| r.hash.as_deref() == Some(hash.as_str()));
        let mut outcome = if let Err(e) = analysis.within(&self.config.budget) {
            Outcome::failure(OutcomeStatus::Shape, &e.to_string())
        } else if let Some(earlier) = earlier {
            Outcome::failure(
                OutcomeStatus::Duplicate,
                &format!(
                    "the same architecture as iteration {} ({})",
                    earlier.iteration,
                    earlier.outcome.summary()
                ),
            )
        } else {
            let (outcome, report) = self.evaluator.evaluate(&analysis.resolved);
            record.report = report;
            outcome
        };
        outcome.params = outcome.params.or(Some(analysis.params));
        outcome.flops = outcome.flops.or(Some(analysis.flops));
        if record.report.is_none() {
            outcome.seconds = started.elapsed().as_secs_f64();
        }
        record.outcome = outcome;
        record
    }
}

fn seeded(sampling: &Sampling, iteration: usize) -> Sampling {
    Sampling {
        seed: sampling.seed.wrapping_add(iteration as u64),
        ..sampling.clone()
    }
}
