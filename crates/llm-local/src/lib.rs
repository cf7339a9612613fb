//! # llm-local: language models for the searchers, in process
//!
//! The root of this crate is the contract every language model of the toolkit implements, kept
//! free of heavy dependencies so that `ranker` and `search-loop` can depend on it without linking
//! a tensor library:
//!
//! * [`LanguageModel`]: chat and plain completion with [`Sampling`] parameters and a streaming
//!   callback; [`LanguageModel::score`], the log-likelihood of candidate continuations after a
//!   context (how a ranker picks among candidates without ever producing an invalid answer); and
//!   [`LanguageModel::choose`], generation restricted to one of the given strings.
//! * The request and response types: [`Message`], [`Completion`] (with [`Usage`] and [`Timing`]),
//!   [`ContinuationScore`], [`Chosen`].
//! * [`prompt`]: prompt templates (minijinja) with embedded defaults that a directory of `.j2`
//!   files overrides; the ranker and the closed loop lay out their prompts with them.
//!
//! The candle runtime for GGUF files (llama, qwen2, qwen3 and gemma3 models; rotary embeddings
//! unscaled, linearly scaled or YaRN-scaled, with Llama 3's frequency factors; held against
//! llama.cpp) sits in [`runtime`], behind the default-on `runtime` feature (depend with
//! `default-features = false` for the contract alone). An OpenAI-compatible HTTP
//! backend (llama.cpp's server, vLLM, Ollama) sits in `openai`, behind the `openai` feature,
//! which needs no tensor library.

#![warn(missing_docs)]

#[cfg(feature = "constraints")]
pub mod constraint;
#[cfg(feature = "openai")]
pub mod openai;
pub mod prompt;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod scripted;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model.
    System,
    /// The user's turn.
    User,
    /// The model's turn.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The author.
    pub role: Role,
    /// The text.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// How tokens are drawn. `temperature == 0` is greedy decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Softmax temperature; 0 picks the most likely token.
    pub temperature: f64,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches `top_p`.
    pub top_p: f64,
    /// Keep only the `top_k` most likely tokens (0: no limit).
    pub top_k: usize,
    /// Divide the logits of recently generated tokens by this (1: no penalty), as llama.cpp does.
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    /// Seed of the sampler.
    pub seed: u64,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Generation stops before the first occurrence of any of these strings.
    pub stop: Vec<String>,
    /// The form the text must take (none: free text). The local runtime enforces it while
    /// decoding; a backend that cannot checks the answer and asks again (see [`Enforcement`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<Constraint>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
            max_tokens: 256,
            stop: Vec::new(),
            constraint: None,
        }
    }
}

/// A form generated text must take: the whole completion matches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Constraint {
    /// A regular expression (Rust `regex` syntax, anchored at both ends).
    Regex(String),
    /// A JSON Schema, as JSON text: the answer is one JSON value valid under it.
    JsonSchema(String),
    /// A context-free grammar in llguidance's Lark dialect (`start:` is the top rule).
    Lark(String),
    /// Exactly one of these strings.
    Choice(Vec<String>),
}

/// How a [`Constraint`] was honoured in a [`Completion`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Enforcement {
    /// No constraint was asked for.
    #[default]
    Unconstrained,
    /// Every sampled token was restricted to those the constraint allows: the text matches
    /// unless generation stopped early (`max_tokens` or a stop string).
    Decoding,
    /// The backend could not restrict its tokens, so the answer was checked after generation
    /// and asked for again, up to a bounded number of attempts.
    Checked {
        /// Generations made (the last one is the answer).
        attempts: usize,
        /// Whether the answer matches the constraint.
        valid: bool,
    },
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced its end-of-generation token.
    EndOfText,
    /// One of the stop strings appeared (it is not part of the text).
    Stop,
    /// `max_tokens` were generated.
    Length,
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens whose cached state was reused instead of recomputed.
    pub cached_prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// Wall time of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Seconds spent on the prompt.
    pub prefill_seconds: f64,
    /// Seconds spent generating.
    pub decode_seconds: f64,
}

/// The result of a generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The generated text (without the stop string).
    pub text: String,
    /// Why generation ended.
    pub finish: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Timings.
    pub timing: Timing,
    /// How the request's constraint, if any, was honoured.
    #[serde(default)]
    pub enforcement: Enforcement,
}

impl Completion {
    /// Generated tokens per second of decoding.
    pub fn decode_tokens_per_second(&self) -> f64 {
        self.usage.completion_tokens as f64 / self.timing.decode_seconds.max(1e-9)
    }
}

/// The log-likelihood of one continuation after a context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinuationScore {
    /// Sum of the continuation's token log-probabilities (natural log).
    pub log_prob: f64,
    /// `log_prob` divided by the number of tokens.
    pub mean_log_prob: f64,
    /// Tokens of the continuation.
    pub tokens: usize,
}

/// The result of [`LanguageModel::choose`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chosen {
    /// Index of the chosen option.
    pub index: usize,
    /// The score of every option, in the given order.
    pub scores: Vec<ContinuationScore>,
}

/// Errors of language models.
#[derive(Debug, Error)]
pub enum LlmError {
    /// A model file or source could not be loaded (the message names it).
    #[error("cannot load model {source_name}: {reason}")]
    Load {
        /// The model spec or path.
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// A request the model cannot serve (e.g. an empty option list).
    #[error("invalid request: {0}")]
    Request(String),
    /// The backend failed while running.
    #[error("model backend failed: {0}")]
    Backend(String),
    /// The backend cannot do this (e.g. scoring over an OpenAI-compatible server).
    #[error("not supported by this backend: {0}")]
    Unsupported(String),
}

/// A language model: what the rankers and the closed loop ask of an LLM.
pub trait LanguageModel {
    /// A short name for reports and provenance.
    fn name(&self) -> String;

    /// The model's chat template applied to `messages`, ending with the assistant's turn opened
    /// when `add_generation_prompt` is set: the exact text the model sees.
    fn render_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, LlmError>;

    /// Continues `prompt`; `on_text` receives the text as it is generated.
    fn complete(
        &mut self,
        prompt: &str,
        sampling: &Sampling,
        on_text: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, LlmError>;

    /// Answers a conversation: [`LanguageModel::render_chat`] then [`LanguageModel::complete`].
    fn chat(
        &mut self,
        messages: &[Message],
        sampling: &Sampling,
        on_text: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, LlmError> {
        let prompt = self.render_chat(messages, true)?;
        self.complete(&prompt, sampling, on_text)
    }

    /// The log-likelihood of each continuation after `context`. Context and continuation are
    /// tokenized separately and concatenated, as lm-evaluation-harness does.
    fn score(
        &mut self,
        context: &str,
        continuations: &[String],
    ) -> Result<Vec<ContinuationScore>, LlmError>;

    /// Generation restricted to one of `options`: the option the model is most likely to
    /// produce after `context` (highest total log-likelihood), so the answer is always valid.
    fn choose(&mut self, context: &str, options: &[String]) -> Result<Chosen, LlmError> {
        if options.is_empty() {
            return Err(LlmError::Request(
                "`choose` needs at least one option".into(),
            ));
        }
        let scores = self.score(context, options)?;
        let index = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.log_prob.total_cmp(&b.1.log_prob))
            .map_or(0, |(i, _)| i);
        Ok(Chosen { index, scores })
    }
}

/// A boxed model is a model, so callers can pick a backend at run time
/// (`Box<dyn LanguageModel + Send>`).
impl<M: LanguageModel + ?Sized> LanguageModel for Box<M> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn render_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, LlmError> {
        (**self).render_chat(messages, add_generation_prompt)
    }

    fn complete(
        &mut self,
        prompt: &str,
        sampling: &Sampling,
        on_text: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, LlmError> {
        (**self).complete(prompt, sampling, on_text)
    }

    fn chat(
        &mut self,
        messages: &[Message],
        sampling: &Sampling,
        on_text: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, LlmError> {
        (**self).chat(messages, sampling, on_text)
    }

    fn score(
        &mut self,
        context: &str,
        continuations: &[String],
    ) -> Result<Vec<ContinuationScore>, LlmError> {
        (**self).score(context, continuations)
    }

    fn choose(&mut self, context: &str, options: &[String]) -> Result<Chosen, LlmError> {
        (**self).choose(context, options)
    }
}
