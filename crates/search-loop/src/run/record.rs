//! What a run directory holds: the records of finished work and the lines of the event log.

use serde::{Deserialize, Serialize};
use trainer::train::{Report, Status};

/// How a candidate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// Trained and evaluated.
    Ok,
    /// The Code Generator's call failed (backend error, empty reply).
    LlmError,
    /// The reply is not valid architecture language.
    Parse,
    /// The static check failed (shapes, output width, parameter or FLOP budget).
    Shape,
    /// The trainer cannot run a layer configuration.
    Unsupported,
    /// The loss became NaN or infinite.
    Divergence,
    /// The predicted training memory exceeds the limit, or the worker process ran out of memory.
    Oom,
    /// The per-candidate time limit was reached.
    Timeout,
    /// The data could not be used with this network.
    Data,
    /// The same architecture (by normalised hash) was evaluated before.
    Duplicate,
    /// The evaluation's worker process failed without a result (an error exit or a crash).
    Crash,
    /// The evaluation's job was cancelled (e.g. by `scancel`) before it finished.
    Cancelled,
    /// The evaluation's job vanished (node failure) more often than it may be resubmitted.
    Lost,
}

impl OutcomeStatus {
    /// The snake-case name used in logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            OutcomeStatus::Ok => "ok",
            OutcomeStatus::LlmError => "llm_error",
            OutcomeStatus::Parse => "parse",
            OutcomeStatus::Shape => "shape",
            OutcomeStatus::Unsupported => "unsupported",
            OutcomeStatus::Divergence => "divergence",
            OutcomeStatus::Oom => "oom",
            OutcomeStatus::Timeout => "timeout",
            OutcomeStatus::Data => "data",
            OutcomeStatus::Duplicate => "duplicate",
            OutcomeStatus::Crash => "crash",
            OutcomeStatus::Cancelled => "cancelled",
            OutcomeStatus::Lost => "lost",
        }
    }
}

impl From<Status> for OutcomeStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Ok => OutcomeStatus::Ok,
            Status::Parse => OutcomeStatus::Parse,
            Status::Shape => OutcomeStatus::Shape,
            Status::Unsupported => OutcomeStatus::Unsupported,
            Status::Divergence => OutcomeStatus::Divergence,
            Status::Oom => OutcomeStatus::Oom,
            Status::Timeout => OutcomeStatus::Timeout,
            Status::Data => OutcomeStatus::Data,
        }
    }
}

/// Longest failure message kept in an outcome (the memory and prompts quote it).
pub const MESSAGE_LIMIT: usize = 300;

/// What became of one candidate: the accuracy, or the typed failure and its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// `ok` or the failure kind.
    pub status: OutcomeStatus,
    /// Validation accuracy (what the search selects on).
    pub val_acc: Option<f64>,
    /// Test accuracy (reported, never selected on).
    pub test_acc: Option<f64>,
    /// Trainable parameters, when the architecture checked.
    pub params: Option<u64>,
    /// Multiply-accumulates per image, when the architecture checked.
    pub flops: Option<u64>,
    /// The failure message, truncated to [`MESSAGE_LIMIT`] characters.
    pub message: Option<String>,
    /// Seconds spent evaluating (training included).
    pub seconds: f64,
}

impl Outcome {
    /// A failure with its message (truncated).
    pub fn failure(status: OutcomeStatus, message: &str) -> Self {
        Outcome {
            status,
            val_acc: None,
            test_acc: None,
            params: None,
            flops: None,
            message: Some(truncate(message, MESSAGE_LIMIT)),
            seconds: 0.0,
        }
    }

    /// The outcome of an evaluation that reports only a score (a table lookup, an external
    /// evaluator), with its status and message.
    pub fn scored(
        status: OutcomeStatus,
        score: Option<f64>,
        message: Option<String>,
        seconds: f64,
    ) -> Self {
        Outcome {
            status,
            val_acc: score,
            test_acc: None,
            params: None,
            flops: None,
            message,
            seconds,
        }
    }

    /// The outcome of a trainer report.
    pub fn from_report(report: &Report) -> Self {
        Outcome {
            status: report.status.into(),
            val_acc: report.val_acc,
            test_acc: report.test_acc,
            params: report.params,
            flops: report.flops,
            message: report.error.as_deref().map(|m| truncate(m, MESSAGE_LIMIT)),
            seconds: report.seconds,
        }
    }

    /// The score searches select on: the validation accuracy of a successful evaluation.
    pub fn score(&self) -> Option<f64> {
        self.val_acc.filter(|_| self.status == OutcomeStatus::Ok)
    }

    /// One line for prompts and the memory: `val acc 0.4120 (120,394 params)` or
    /// `shape error: line 3, column 5: ...`.
    pub fn summary(&self) -> String {
        match (self.score(), &self.message) {
            (Some(acc), _) => match self.params {
                Some(p) => format!("validation accuracy {acc:.4} ({p} parameters)"),
                None => format!("validation accuracy {acc:.4}"),
            },
            (None, Some(m)) => format!("{} failure: {m}", self.status.name()),
            (None, None) => format!("{} failure", self.status.name()),
        }
    }
}

/// `text` cut to at most `limit` characters, marked with an ellipsis when cut.
pub fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// One call of a language model, with its prompt and reply kept in side files of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmCall {
    /// `generator` or `improver`.
    pub role: String,
    /// The model's name.
    pub model: String,
    /// The rendered prompt, relative to the run directory.
    pub prompt_file: String,
    /// The reply, relative to the run directory (absent when the call failed).
    pub reply_file: Option<String>,
    /// Tokens of the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens served from the KV cache.
    pub cached_prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Wall time of the call.
    pub seconds: f64,
    /// The backend's error, when the call failed.
    pub error: Option<String>,
}

/// The record of one finished evaluation (`evaluations/NNNNNN.json`, written atomically).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    /// 0 is the starting architecture; 1, 2, ... are the generated ones.
    pub iteration: usize,
    /// The architecture as written (the extracted code of the reply), when there was one.
    pub architecture: Option<String>,
    /// The architecture with lazy widths resolved, printed canonically (what the hash covers);
    /// in a search over a space, the code, or the network the space's template rendered.
    pub canonical: Option<String>,
    /// Normalised hash of the canonical text (dedupe key).
    pub hash: Option<String>,
    /// The improver's suggestion the generator was asked to apply.
    pub suggestion: Option<String>,
    /// The Code Generator's call (none for the starting architecture).
    pub generator: Option<LlmCall>,
    /// What became of the candidate.
    pub outcome: Outcome,
    /// The trainer's full report (loss curve, throughput, memory), when it trained.
    pub report: Option<Report>,
    /// The metrics an external evaluator reported besides its score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<serde_json::Value>,
    /// Whether the result came from the evaluation cache instead of a new evaluation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// The closed loop's chain that wrote it (0 in a run of one chain).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chain: usize,
    /// The evaluation whose diagnosis the generator was asked to apply (the chain's previous
    /// one); `None` for the first architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<usize>,
}

impl EvaluationRecord {
    /// The record of evaluation `iteration` with `outcome` and nothing else (no architecture,
    /// calls, report or lineage): a base to fill in.
    pub fn new(iteration: usize, outcome: Outcome) -> Self {
        EvaluationRecord {
            iteration,
            architecture: None,
            canonical: None,
            hash: None,
            suggestion: None,
            generator: None,
            outcome,
            report: None,
            metrics: None,
            cached: false,
            chain: 0,
            parent: None,
        }
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The Prompt Improver's diagnosis of one evaluation (`diagnoses/NNNNNN.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosisRecord {
    /// The evaluation it diagnoses.
    pub iteration: usize,
    /// What went wrong or limits the accuracy.
    pub problem: String,
    /// The change the next architecture should make.
    pub suggestion: String,
    /// Whether the reply was the requested JSON (otherwise a fallback was derived from it).
    pub parsed: bool,
    /// The improver's call.
    pub improver: Option<LlmCall>,
}

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A process started (or resumed) the run.
    RunStarted {
        /// Seconds since the Unix epoch.
        time: f64,
        /// Evaluations already finished when it started.
        finished_evaluations: usize,
    },
    /// A language-model call.
    LlmCall {
        /// The iteration it belongs to.
        iteration: usize,
        /// The call.
        #[serde(flatten)]
        call: LlmCall,
    },
    /// A finished evaluation (exactly one line per `evaluations/` record).
    Evaluation {
        /// The iteration.
        iteration: usize,
        /// The architecture's hash.
        hash: Option<String>,
        /// What became of it.
        #[serde(flatten)]
        outcome: Outcome,
    },
    /// The Prompt Improver's diagnosis.
    Diagnosis {
        /// The iteration diagnosed.
        iteration: usize,
        /// The problem found.
        problem: String,
        /// The suggested change.
        suggestion: String,
        /// Whether the reply was valid JSON.
        parsed: bool,
    },
    /// The process stopped the run.
    RunFinished {
        /// Seconds since the Unix epoch.
        time: f64,
        /// Why: `iterations`, `wall_time`, `llm_errors`.
        reason: String,
        /// Evaluations finished.
        finished_evaluations: usize,
    },
}

impl Event {
    /// The `evaluation` line of a record.
    pub fn evaluation(record: &EvaluationRecord) -> Self {
        Event::Evaluation {
            iteration: record.iteration,
            hash: record.hash.clone(),
            outcome: record.outcome.clone(),
        }
    }
}
