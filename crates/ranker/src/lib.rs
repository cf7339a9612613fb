//! # ranker: LM-Searcher's choice of the next architecture
//!
//! LM-Searcher turns architecture search into ranking: each round, a pool of unseen candidate
//! [`NCode`]s is drawn, and a ranker, shown the task and the history of evaluated
//! `(NCode, score)` pairs, picks the candidate to evaluate next. This crate defines that contract,
//! the [`Ranker`] trait and its [`RankingRequest`], and its implementations:
//!
//! * [`RandomRanker`]: picks uniformly; the control that any learned ranker must beat.
//! * [`LlmRanker`]: LM-Searcher's ranker over any `llm_local::LanguageModel`: the task, the
//!   history best-first as `ncode|score` (min-max normalised) and the pool in one prompt, the pick
//!   restricted to the pool by `LanguageModel::choose` (or a cache-friendly chronological prompt,
//!   [`PromptStyle::Chronological`]).
//!
//! [`training`] writes LM-Searcher's training data for such a ranker (pruning-based subspace
//! sampling; LLaMA-Factory's `sharegpt` and `alpaca` records) from any scoring closure.
//!
//! The ranking loop in `search-loop` takes any of them unchanged. This crate sees language models
//! only through the `LanguageModel` trait (`llm-local` without its runtime): it never links candle.

#![warn(missing_docs)]

mod llm;
pub mod training;

pub use llm::{ranking_prompt, LlmRanker, Pick, PromptStyle, RankerPrompts, DEFAULT_MAX_HISTORY};
use ncode::{NCode, SearchSpace};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One evaluated architecture: its code and its score (`None` when the evaluation failed or the
/// benchmark had no value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The architecture.
    pub code: NCode,
    /// Higher is better; `None` for a failed evaluation.
    pub score: Option<f64>,
}

/// What a ranker sees when it picks the next architecture.
#[derive(Debug, Clone, Copy)]
pub struct RankingRequest<'a> {
    /// The space the codes belong to (dimension names and choices, for prompts).
    pub space: &'a SearchSpace,
    /// A short description of the task, e.g. "NAS-Bench-201 cells on CIFAR-10".
    pub task: &'a str,
    /// Every evaluation so far, in the order it happened.
    pub history: &'a [Observation],
    /// The unseen candidates to choose from (never empty).
    pub candidates: &'a [NCode],
}

/// Errors of rankers.
#[derive(Debug, Error)]
pub enum RankerError {
    /// The request had no candidates.
    #[error("the candidate pool is empty")]
    EmptyPool,
    /// The ranker's backend failed (for LLM rankers: the model, or an unusable answer).
    #[error("ranker backend failed: {0}")]
    Backend(String),
    /// Training data could not be generated (unknown format, too few scored architectures).
    #[error("training data: {0}")]
    Data(String),
    /// A prompt template could not be loaded or rendered (the message names its file).
    #[error(transparent)]
    Prompt(#[from] llm_local::prompt::PromptError),
}

/// Picks the next architecture to evaluate from a pool of candidates.
pub trait Ranker {
    /// A short name for reports, e.g. `random` or `llm:smollm2`.
    fn name(&self) -> String;

    /// The index in `request.candidates` of the chosen candidate.
    fn choose(&mut self, request: &RankingRequest<'_>) -> Result<usize, RankerError>;
}

/// Chooses uniformly at random, reproducibly for a seed.
#[derive(Debug, Clone)]
pub struct RandomRanker {
    rng: rand_chacha::ChaCha8Rng,
}

impl RandomRanker {
    /// A random ranker with its own seeded generator.
    pub fn new(seed: u64) -> Self {
        RandomRanker {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Ranker for RandomRanker {
    fn name(&self) -> String {
        "random".into()
    }

    fn choose(&mut self, request: &RankingRequest<'_>) -> Result<usize, RankerError> {
        if request.candidates.is_empty() {
            return Err(RankerError::EmptyPool);
        }
        Ok(self.rng.random_range(0..request.candidates.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ncode::Dimension;

    fn request_parts() -> (SearchSpace, Vec<NCode>) {
        let space = SearchSpace::new("s", vec![Dimension::ints("d", 0..10)]).unwrap();
        let pool = (0..10).map(|i| NCode::new(vec![i])).collect();
        (space, pool)
    }

    #[test]
    fn random_ranker_is_reproducible_and_covers_the_pool() {
        let (space, pool) = request_parts();
        let request = RankingRequest {
            space: &space,
            task: "test",
            history: &[],
            candidates: &pool,
        };
        let picks = |seed| {
            let mut r = RandomRanker::new(seed);
            (0..200)
                .map(|_| r.choose(&request).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(7), picks(7));
        assert_ne!(picks(7), picks(8));
        let mut seen = picks(7);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn empty_pool_is_an_error() {
        let (space, _) = request_parts();
        let request = RankingRequest {
            space: &space,
            task: "test",
            history: &[],
            candidates: &[],
        };
        assert!(matches!(
            RandomRanker::new(0).choose(&request),
            Err(RankerError::EmptyPool)
        ));
    }
}
