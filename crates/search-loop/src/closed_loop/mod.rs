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

mod backend;
mod call;
mod driver;
mod evaluate;
mod memory;
mod process;
mod prompts;

use std::collections::BTreeMap;

use arch_space::lang::{generation_grammar, Budget, InputSpec};
use llm_local::{Constraint, LanguageModel, Sampling};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use backend::LoopExecutor;
pub use driver::{run_closed_loop, run_closed_loop_on};
pub use evaluate::{CachedEvaluator, Evaluator, TrainerEvaluator};
pub use memory::{memory_window, MemoryEntry};
pub(crate) use process::{out_of_memory, read_end, tail, wait};
pub use process::{worker_beside_executable, ProcessEvaluator, WorkerOptions, WorkerProcesses};
pub use prompts::{
    generator_messages, improver_messages, read_diagnosis, Diagnosis, LoopPrompts, TaskPrompt,
    DIAGNOSIS_SCHEMA,
};

use crate::run::{hex, EvaluationRecord, Outcome, OutcomeStatus};
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
    /// Chains run side by side, each with its own feedback memory, all sharing the best
    /// architecture so far; evaluations of different chains are in flight together on an
    /// executor ([`run_closed_loop_on`]). 1 is the papers' sequential loop.
    #[serde(default = "one_chain")]
    pub chains: usize,
}

fn one_chain() -> usize {
    1
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
            chains: 1,
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
