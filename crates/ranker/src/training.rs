//! LM-Searcher's training data for an LLM ranker: pruning-based subspace sampling.
//!
//! Each trajectory prunes the parent space at random ([`Subspace::random`]: each option dropped
//! with probability 0.5 by default), re-indexes it, samples 100 to 200 distinct architectures of
//! the subspace, scores them with the caller's closure (on parent codes), and then replays the
//! search an oracle ranker would run on them: a few random warm-up evaluations, then at each step
//! a pool of unseen sampled candidates whose best-scoring member is the answer and joins the
//! history. Every step is one [`RankingExample`] whose prompt is exactly the ranker's (the
//! templates of [`TrainingConfig::prompts`], by default [`crate::ranking_prompt`]'s), so
//! a model fine-tuned on the examples sees at inference what it saw in training. The examples
//! convert to LLaMA-Factory's `sharegpt` and `alpaca` records ([`ShareGptRecord`],
//! [`AlpacaRecord`]); writing them as JSON lines is the caller's job.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::str::FromStr;

use llm_local::{Message, Role};
use ncode::{NCode, RandomPruning, SearchSpace, Subspace};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{
    Observation, PromptStyle, RankerError, RankerPrompts, RankingRequest, DEFAULT_MAX_HISTORY,
};

/// Subspaces with more architectures than this are sampled, smaller ones enumerated.
const ENUMERATE_UP_TO: u128 = 20_000;

/// Subspace draws allowed per requested trajectory before giving up.
const DRAWS_PER_TRAJECTORY: usize = 100;

/// How trajectories are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingConfig {
    /// The random pruning of the parent space (LM-Searcher drops each option with probability
    /// 0.5; dropping whole dimensions is off by default, it leaves too few architectures in small
    /// spaces such as NAS-Bench-201's).
    pub pruning: RandomPruning,
    /// How many architectures of each subspace are sampled (fewer when the subspace is smaller).
    pub samples: RangeInclusive<usize>,
    /// Random evaluations at the start of each trajectory.
    pub warmup: usize,
    /// Candidates per pool (the search loop's default is 10).
    pub pool_size: usize,
    /// Ranking steps (examples) per trajectory, at most.
    pub steps: usize,
    /// The prompt layout, as at inference.
    pub style: PromptStyle,
    /// History lines in each prompt, as at inference.
    pub max_history: usize,
    /// The prompt templates, as at inference.
    pub prompts: RankerPrompts,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            pruning: RandomPruning {
                drop_dimension: 0.0,
                drop_option: 0.5,
            },
            samples: 100..=200,
            warmup: 5,
            pool_size: 10,
            steps: 50,
            style: PromptStyle::BestFirst,
            max_history: DEFAULT_MAX_HISTORY,
            prompts: RankerPrompts::default(),
        }
    }
}

/// One ranking step: the prompt, the pool and the best candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct RankingExample {
    /// The evaluations before this step, as subspace codes.
    pub history: Vec<Observation>,
    /// The pool, as subspace codes.
    pub candidates: Vec<NCode>,
    /// The index in `candidates` of the best-scoring candidate.
    pub best: usize,
    /// The ranking prompt's system and user messages for this step ([`RankerPrompts::messages`]).
    pub messages: Vec<Message>,
    /// The expected answer: the best candidate's NCode in text form.
    pub answer: String,
}

/// The examples of one subspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    /// The pruned space the codes of the examples belong to.
    pub subspace: Subspace,
    /// One example per ranking step.
    pub examples: Vec<RankingExample>,
}

/// Draws `count` trajectories over random subspaces of `parent`. `score` gives the score of a
/// *parent* code (`None` when unknown; such architectures are left out). Subspaces with too few
/// scored architectures for one full pool after the warm-up are drawn again.
pub fn trajectories<R: Rng + ?Sized>(
    parent: &SearchSpace,
    task: &str,
    config: &TrainingConfig,
    count: usize,
    mut score: impl FnMut(&NCode) -> Option<f64>,
    rng: &mut R,
) -> Result<Vec<Trajectory>, RankerError> {
    if config.pool_size < 2 || config.samples.is_empty() {
        return Err(RankerError::Data(
            "a pool needs at least 2 candidates and the sample range must not be empty".into(),
        ));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count.saturating_mul(DRAWS_PER_TRAJECTORY) {
        if out.len() == count {
            break;
        }
        let subspace = Subspace::random(parent.clone(), config.pruning, rng);
        let scored = sample_scored(&subspace, config, &mut score, rng)?;
        if scored.len() >= config.warmup + config.pool_size {
            out.push(replay(subspace, scored, task, config, rng)?);
        }
    }
    if out.len() < count {
        return Err(RankerError::Data(format!(
            "only {} of {count} subspaces of `{}` had {} scored architectures",
            out.len(),
            parent.name(),
            config.warmup + config.pool_size
        )));
    }
    Ok(out)
}

/// Distinct subspace architectures with a finite score, in random order.
fn sample_scored<R: Rng + ?Sized>(
    subspace: &Subspace,
    config: &TrainingConfig,
    score: &mut impl FnMut(&NCode) -> Option<f64>,
    rng: &mut R,
) -> Result<Vec<Observation>, RankerError> {
    let space = subspace.space();
    let wanted = rng.random_range(config.samples.clone());
    let size = space.size().unwrap_or(u128::MAX);
    let mut codes: Vec<NCode> = if size <= ENUMERATE_UP_TO {
        let mut all: Vec<NCode> = space.enumerate().collect();
        all.shuffle(rng);
        all.truncate(wanted);
        all
    } else {
        let mut seen = HashSet::new();
        std::iter::repeat_with(|| space.sample(rng))
            .take(wanted * 20)
            .filter(|c| seen.insert(c.clone()))
            .take(wanted)
            .collect()
    };
    codes.shuffle(rng);
    let mut scored = Vec::with_capacity(codes.len());
    for code in codes {
        let parent = subspace
            .to_parent(&code)
            .map_err(|e| RankerError::Data(e.to_string()))?;
        if let Some(s) = score(&parent).filter(|s| s.is_finite()) {
            scored.push(Observation {
                code,
                score: Some(s),
            });
        }
    }
    Ok(scored)
}

/// The oracle's search over `scored` (in random order): warm-up, then the best of each pool.
fn replay<R: Rng + ?Sized>(
    subspace: Subspace,
    mut remaining: Vec<Observation>,
    task: &str,
    config: &TrainingConfig,
    rng: &mut R,
) -> Result<Trajectory, RankerError> {
    let mut history: Vec<Observation> = remaining.drain(..config.warmup).collect();
    let mut examples = Vec::new();
    while examples.len() < config.steps && remaining.len() >= 2 {
        remaining.shuffle(rng);
        let pool = config.pool_size.min(remaining.len());
        let best = (0..pool)
            .max_by(|&a, &b| {
                let s = |i: usize| remaining[i].score.unwrap_or(f64::NEG_INFINITY);
                s(a).total_cmp(&s(b))
            })
            .unwrap_or(0);
        let candidates: Vec<NCode> = remaining[..pool].iter().map(|o| o.code.clone()).collect();
        let request = RankingRequest {
            space: subspace.space(),
            task,
            history: &history,
            candidates: &candidates,
        };
        let messages = config
            .prompts
            .messages(&request, config.style, config.max_history)?;
        let answer = subspace.space().format(&candidates[best]);
        examples.push(RankingExample {
            history: history.clone(),
            candidates,
            best,
            messages,
            answer,
        });
        history.push(remaining.swap_remove(best));
    }
    Ok(Trajectory { subspace, examples })
}

/// The training-data formats of LLaMA-Factory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// `{"conversations": [{"from": "system"|"human"|"gpt", "value": ...}]}`.
    ShareGpt,
    /// `{"instruction", "input", "output", "system"}`.
    Alpaca,
}

impl FromStr for DataFormat {
    type Err = RankerError;
    fn from_str(s: &str) -> Result<Self, RankerError> {
        match s {
            "sharegpt" => Ok(DataFormat::ShareGpt),
            "alpaca" => Ok(DataFormat::Alpaca),
            other => Err(RankerError::Data(format!(
                "unknown data format `{other}` (expected sharegpt or alpaca)"
            ))),
        }
    }
}

/// One turn of a [`ShareGptRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareGptTurn {
    /// `system`, `human` or `gpt` (LLaMA-Factory's default tags).
    pub from: String,
    /// The text.
    pub value: String,
}

/// A LLaMA-Factory `sharegpt` record: the system prompt as the first turn (read by the default
/// `system_tag`), the user prompt, the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareGptRecord {
    /// The turns, in order.
    pub conversations: Vec<ShareGptTurn>,
}

/// A LLaMA-Factory `alpaca` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlpacaRecord {
    /// The user prompt.
    pub instruction: String,
    /// Empty (the whole prompt is in `instruction`).
    pub input: String,
    /// The answer.
    pub output: String,
    /// The system prompt.
    pub system: String,
}

impl RankingExample {
    fn text_of(&self, role: Role) -> String {
        self.messages
            .iter()
            .filter(|m| m.role == role)
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The example as a `sharegpt` record.
    pub fn to_sharegpt(&self) -> ShareGptRecord {
        let turn = |from: &str, value: String| ShareGptTurn {
            from: from.into(),
            value,
        };
        ShareGptRecord {
            conversations: vec![
                turn("system", self.text_of(Role::System)),
                turn("human", self.text_of(Role::User)),
                turn("gpt", self.answer.clone()),
            ],
        }
    }

    /// The example as an `alpaca` record.
    pub fn to_alpaca(&self) -> AlpacaRecord {
        AlpacaRecord {
            instruction: self.text_of(Role::User),
            input: String::new(),
            output: self.answer.clone(),
            system: self.text_of(Role::System),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ncode::Dimension;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn space() -> SearchSpace {
        SearchSpace::new(
            "toy",
            (0..4)
                .map(|i| Dimension::ints(format!("d{i}"), 0..6))
                .collect(),
        )
        .unwrap()
    }

    /// Higher indices score higher; codes with a 5 somewhere have no score.
    fn score(code: &NCode) -> Option<f64> {
        let idx = code.indices();
        (!idx.contains(&5)).then(|| idx.iter().map(|&i| f64::from(i)).sum())
    }

    #[test]
    fn answers_are_the_best_of_their_pool_and_the_history_grows_by_them() {
        let config = TrainingConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let trajectories = trajectories(&space(), "toy", &config, 4, score, &mut rng).unwrap();
        assert_eq!(trajectories.len(), 4);
        for t in &trajectories {
            assert!(!t.examples.is_empty() && t.examples.len() <= config.steps);
            let sub = t.subspace.space();
            for (k, ex) in t.examples.iter().enumerate() {
                assert_eq!(ex.history.len(), config.warmup + k);
                assert!(ex.candidates.len() >= 2 && ex.candidates.len() <= config.pool_size);
                let parent_score = |c: &NCode| score(&t.subspace.to_parent(c).unwrap()).unwrap();
                let top = ex
                    .candidates
                    .iter()
                    .map(parent_score)
                    .fold(f64::MIN, f64::max);
                assert_eq!(parent_score(&ex.candidates[ex.best]), top);
                assert_eq!(sub.parse(&ex.answer).unwrap(), ex.candidates[ex.best]);
                for c in ex
                    .candidates
                    .iter()
                    .chain(ex.history.iter().map(|o| &o.code))
                {
                    sub.check(c).unwrap();
                }
                if let Some(next) = t.examples.get(k + 1) {
                    assert_eq!(next.history.last().unwrap().code, ex.candidates[ex.best]);
                }
            }
        }
    }

    #[test]
    fn records_carry_the_ranking_prompt_and_the_answer() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let config = TrainingConfig {
            steps: 1,
            ..TrainingConfig::default()
        };
        let t = trajectories(&space(), "toy", &config, 1, score, &mut rng).unwrap();
        let ex = &t[0].examples[0];
        let request = RankingRequest {
            space: t[0].subspace.space(),
            task: "toy",
            history: &ex.history,
            candidates: &ex.candidates,
        };
        let prompt = crate::ranking_prompt(&request, config.style, config.max_history);
        let share = ex.to_sharegpt();
        let froms: Vec<&str> = share
            .conversations
            .iter()
            .map(|t| t.from.as_str())
            .collect();
        assert_eq!(froms, ["system", "human", "gpt"]);
        assert_eq!(share.conversations[0].value, prompt[0].content);
        assert_eq!(share.conversations[1].value, prompt[1].content);
        assert_eq!(share.conversations[2].value, ex.answer);
        let alpaca = ex.to_alpaca();
        assert_eq!(
            (alpaca.system.as_str(), alpaca.instruction.as_str()),
            (prompt[0].content.as_str(), prompt[1].content.as_str())
        );
        assert_eq!(
            (alpaca.input.as_str(), alpaca.output.as_str()),
            ("", ex.answer.as_str())
        );
        assert_eq!("alpaca".parse::<DataFormat>().unwrap(), DataFormat::Alpaca);
        assert!("csv".parse::<DataFormat>().is_err());
    }

    #[test]
    fn spaces_without_enough_scored_architectures_are_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let config = TrainingConfig::default();
        let err = trajectories(&space(), "toy", &config, 2, |_| None, &mut rng).unwrap_err();
        assert!(err.to_string().contains("only 0 of 2 subspaces"), "{err}");
    }
}
