//! LM-Searcher's LLM ranker: the task, the history as `ncode|score` lines and the candidate pool
//! go into one prompt, and the model's pick is restricted to the pool ([`Pick`]): by the
//! likelihood of each candidate ([`LanguageModel::choose`]) or by generation under a choice
//! constraint, so the answer is always a valid candidate; or, for comparison with the paper's
//! setting, read from a free reply.

use std::path::Path;

use llm_local::prompt::{PromptSet, PromptTemplates};
use llm_local::{Constraint, LanguageModel, LlmError, Message, Sampling};
use minijinja::context;
use serde::Serialize;

use crate::{Observation, Ranker, RankerError, RankingRequest};

/// How the history is laid out in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PromptStyle {
    /// LM-Searcher's prompt: the history sorted best-first (the prompt changes at the top whenever
    /// a new best appears, so a prefix cache helps little).
    #[default]
    BestFirst,
    /// Cache-friendly: the history in evaluation order (each prompt extends the previous one),
    /// followed by a short best-first summary of the top entries.
    Chronological,
}

/// Scores min-max normalised to [0, 1] as in LM-Searcher; all equal scores become 1.
fn normalised(history: &[Observation]) -> Vec<Option<f64>> {
    let scores: Vec<f64> = history
        .iter()
        .filter_map(|o| o.score)
        .filter(|s| s.is_finite())
        .collect();
    let (min, max) = scores
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        });
    history
        .iter()
        .map(|o| {
            o.score.filter(|s| s.is_finite()).map(|s| {
                if max > min {
                    (s - min) / (max - min)
                } else {
                    1.0
                }
            })
        })
        .collect()
}

/// One history line's data: the NCode and its normalised score.
#[derive(Serialize)]
struct HistoryLine {
    ncode: String,
    /// The normalised score with four decimals, or `failed`.
    score: String,
    /// The normalised score; `None` for a failed evaluation.
    value: Option<f64>,
}

/// One dimension of the space, for the system prompt.
#[derive(Serialize)]
struct DimensionView<'a> {
    position: usize,
    name: &'a str,
    choices: Vec<String>,
}

/// The ranker's prompt templates, `ranker_system.j2` and `ranker_user.j2` (their variables are
/// listed in docs/PROMPTS.md). The data (normalised scores, the order and length of the
/// history) is computed here; the templates lay it out.
#[derive(Debug, Clone, PartialEq)]
pub struct RankerPrompts(PromptTemplates);

impl RankerPrompts {
    /// The templates and their embedded defaults (LM-Searcher's prompt).
    pub const SET: PromptSet = &[
        ("ranker_system", include_str!("../prompts/ranker_system.j2")),
        ("ranker_user", include_str!("../prompts/ranker_user.j2")),
    ];

    /// The defaults overridden by the `ranker_system.j2` / `ranker_user.j2` files of `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, RankerError> {
        Ok(RankerPrompts(PromptTemplates::from_dir(Self::SET, dir)?))
    }

    /// The template set (to store it with a run, or compare it with a stored one).
    pub fn templates(&self) -> &PromptTemplates {
        &self.0
    }

    /// The system and user messages of one ranking request: the history in `style`'s order,
    /// at most `max_history` lines of it.
    pub fn messages(
        &self,
        request: &RankingRequest<'_>,
        style: PromptStyle,
        max_history: usize,
    ) -> Result<Vec<Message>, RankerError> {
        let space = request.space;
        let dimensions: Vec<DimensionView<'_>> = space
            .dimensions()
            .iter()
            .enumerate()
            .map(|(position, d)| DimensionView {
                position,
                name: &d.name,
                choices: d.choices.iter().map(ToString::to_string).collect(),
            })
            .collect();
        let history = request.history;
        let norm = normalised(history);
        let line = |i: usize| HistoryLine {
            ncode: space.format(&history[i].code),
            score: norm[i].map_or_else(|| "failed".into(), |s| format!("{s:.4}")),
            value: norm[i],
        };
        let mut best_first: Vec<usize> = (0..history.len()).collect();
        best_first.sort_by(|&a, &b| norm[b].unwrap_or(-1.0).total_cmp(&norm[a].unwrap_or(-1.0)));
        let (style_name, shown): (&str, Vec<usize>) = match style {
            PromptStyle::BestFirst => (
                "best_first",
                best_first.iter().copied().take(max_history).collect(),
            ),
            PromptStyle::Chronological => (
                "chronological",
                (history.len().saturating_sub(max_history)..history.len()).collect(),
            ),
        };
        let system = self.0.render(
            "ranker_system",
            context! { space => space.name(), dimensions },
        )?;
        let user = self.0.render(
            "ranker_user",
            context! {
                task => request.task,
                style => style_name,
                history => shown.into_iter().map(line).collect::<Vec<_>>(),
                best => best_first.into_iter().take(BEST_SHOWN).map(line).collect::<Vec<_>>(),
                candidates => request.candidates.iter().map(|c| space.format(c)).collect::<Vec<_>>(),
            },
        )?;
        Ok(vec![Message::system(system), Message::user(user)])
    }
}

impl Default for RankerPrompts {
    fn default() -> Self {
        RankerPrompts(PromptTemplates::defaults(Self::SET))
    }
}

/// The best entries the `best` variable holds (the chronological prompt's summary).
const BEST_SHOWN: usize = 3;

/// The system and user messages of one ranking request, with the default templates
/// ([`RankerPrompts::messages`]).
pub fn ranking_prompt(
    request: &RankingRequest<'_>,
    style: PromptStyle,
    max_history: usize,
) -> Vec<Message> {
    RankerPrompts::default()
        .messages(request, style, max_history)
        .expect("the default ranking templates render every request")
}

/// How the ranker gets its pick out of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pick {
    /// The candidate whose NCode the model finds most likely after the prompt (one scored
    /// continuation per candidate, sharing the prompt's cache). Backends that cannot score fall
    /// back to reading a reply.
    #[default]
    Score,
    /// Generation constrained to the candidates' NCodes (a choice constraint): the model writes
    /// its answer as LM-Searcher's does, and it cannot write anything but a candidate.
    Generate,
    /// A free reply, accepted when it names exactly one candidate (the paper's setting; up to
    /// [`REPLY_TRIES`] replies).
    Free,
}

/// History lines an LLM ranker shows by default (LM-Searcher's setting).
pub const DEFAULT_MAX_HISTORY: usize = 50;

/// LM-Searcher's ranker over any [`LanguageModel`].
pub struct LlmRanker<M> {
    model: M,
    style: PromptStyle,
    max_history: usize,
    pick: Pick,
    prompts: RankerPrompts,
}

impl<M: LanguageModel> LlmRanker<M> {
    /// A ranker with LM-Searcher's prompt (best-first) and at most [`DEFAULT_MAX_HISTORY`]
    /// history lines.
    pub fn new(model: M) -> Self {
        Self::with_style(model, PromptStyle::BestFirst, DEFAULT_MAX_HISTORY)
    }

    /// A ranker with an explicit prompt style and history length.
    pub fn with_style(model: M, style: PromptStyle, max_history: usize) -> Self {
        LlmRanker {
            model,
            style,
            max_history,
            pick: Pick::default(),
            prompts: RankerPrompts::default(),
        }
    }

    /// The same ranker laying out its prompt with `prompts`.
    pub fn with_prompts(mut self, prompts: RankerPrompts) -> Self {
        self.prompts = prompts;
        self
    }

    /// The same ranker getting its pick by `pick`.
    pub fn with_pick(mut self, pick: Pick) -> Self {
        self.pick = pick;
        self
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }
}

impl<M: LanguageModel> Ranker for LlmRanker<M> {
    fn name(&self) -> String {
        format!("llm:{}", self.model.name())
    }

    fn choose(&mut self, request: &RankingRequest<'_>) -> Result<usize, RankerError> {
        if request.candidates.is_empty() {
            return Err(RankerError::EmptyPool);
        }
        let backend = |e: llm_local::LlmError| RankerError::Backend(e.to_string());
        let messages = self
            .prompts
            .messages(request, self.style, self.max_history)?;
        let options: Vec<String> = request
            .candidates
            .iter()
            .map(|c| request.space.format(c))
            .collect();
        match self.pick {
            Pick::Score => {
                let context = self.model.render_chat(&messages, true).map_err(backend)?;
                match self.model.choose(&context, &options) {
                    Ok(chosen) => Ok(chosen.index),
                    Err(LlmError::Unsupported(_)) => self.choose_from_replies(messages, &options),
                    Err(e) => Err(backend(e)),
                }
            }
            Pick::Generate => {
                let longest = options.iter().map(String::len).max().unwrap_or(0);
                let sampling = Sampling {
                    // Enough for the longest NCode even at one token per character.
                    max_tokens: longest + 8,
                    constraint: Some(Constraint::Choice(options.clone())),
                    ..Sampling::default()
                };
                let reply = self
                    .model
                    .chat(&messages, &sampling, None)
                    .map_err(backend)?;
                // A backend that only checks constraints may still miss after its attempts.
                match named_option(&reply.text, &options) {
                    Some(i) => Ok(i),
                    None => self.choose_from_replies(messages, &options),
                }
            }
            Pick::Free => self.choose_from_replies(messages, &options),
        }
    }
}

/// Replies a remote backend gets to name a candidate before the ranking step fails.
pub const REPLY_TRIES: usize = 3;

/// The option a reply names: the whole reply, or the only option that appears in it as a word.
fn named_option(reply: &str, options: &[String]) -> Option<usize> {
    let reply = reply
        .trim()
        .trim_matches(|c: char| c == '`' || c == '.' || c.is_whitespace());
    if let Some(i) = options.iter().position(|o| o == reply) {
        return Some(i);
    }
    let words: Vec<&str> = reply
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .collect();
    let mut named = options
        .iter()
        .enumerate()
        .filter(|(_, o)| words.contains(&o.as_str()));
    match (named.next(), named.next()) {
        (Some((i, _)), None) => Some(i),
        _ => None,
    }
}

impl<M: LanguageModel> LlmRanker<M> {
    /// The fallback for backends that cannot score (remote servers): ask for the answer in a
    /// reply and accept it only when it names exactly one candidate, with a reminder and up to
    /// [`REPLY_TRIES`] replies.
    fn choose_from_replies(
        &mut self,
        mut messages: Vec<Message>,
        options: &[String],
    ) -> Result<usize, RankerError> {
        let sampling = Sampling {
            max_tokens: 32,
            stop: vec!["\n".into()],
            ..Sampling::default()
        };
        let mut last = String::new();
        for attempt in 0..REPLY_TRIES {
            let reply = self
                .model
                .chat(
                    &messages,
                    &Sampling {
                        seed: attempt as u64,
                        ..sampling.clone()
                    },
                    None,
                )
                .map_err(|e| RankerError::Backend(e.to_string()))?
                .text;
            if let Some(i) = named_option(&reply, options) {
                return Ok(i);
            }
            messages.push(Message::assistant(reply.clone()));
            messages.push(Message::user(format!(
                "Answer with exactly one of these NCodes and nothing else: {}",
                options.join(", ")
            )));
            last = reply;
        }
        Err(RankerError::Backend(format!(
            "no candidate named in {REPLY_TRIES} replies (the last: {:?})",
            last.chars().take(120).collect::<String>()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::named_option;

    #[test]
    fn a_reply_names_a_candidate_exactly_or_not_at_all() {
        let options: Vec<String> = ["012301", "330122", "0123"].map(String::from).to_vec();
        assert_eq!(named_option(" `330122`.\n", &options), Some(1));
        assert_eq!(named_option("0123", &options), Some(2));
        assert_eq!(
            named_option("I pick 012301 because it is deep", &options),
            Some(0)
        );
        assert_eq!(named_option("012301 or 330122", &options), None);
        assert_eq!(named_option("01230", &options), None);
        assert_eq!(named_option("", &options), None);
    }
}
