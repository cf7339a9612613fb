use std::fmt;
use std::str::FromStr;

use ranker::RandomRanker;

use crate::strategies::{LocalSearch, RandomSearch, RankingSearch, RegularizedEvolution};
use crate::{SearchError, Searcher};

/// Mixed into the seed of a ranker so that its draws differ from its search's pool draws.
const RANKER_SEED_SALT: u64 = 0x5EED_0F4A_4E4B;

/// A strategy named on the command line (`random`, `rea`, `local`, `rank-random`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// [`RandomSearch`].
    Random,
    /// [`RegularizedEvolution`] with NAS-Bench-201's settings.
    Rea,
    /// [`LocalSearch`].
    Local,
    /// [`RankingSearch`] with a [`RandomRanker`].
    RankRandom,
}

impl Strategy {
    /// Every strategy, in the order reports list them.
    pub const ALL: [Strategy; 4] = [
        Strategy::Random,
        Strategy::Rea,
        Strategy::Local,
        Strategy::RankRandom,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::Rea => "rea",
            Strategy::Local => "local",
            Strategy::RankRandom => "rank-random",
        }
    }

    /// Parses a comma-separated list such as `random,rea,local,rank-random`.
    pub fn parse_list(text: &str) -> Result<Vec<Strategy>, SearchError> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }

    /// A fresh searcher of this strategy, seeded.
    pub fn build(self, seed: u64) -> Box<dyn Searcher + Send> {
        match self {
            Strategy::Random => Box::new(RandomSearch::new(seed)),
            Strategy::Rea => Box::new(RegularizedEvolution::new(seed)),
            Strategy::Local => Box::new(LocalSearch::new(seed)),
            Strategy::RankRandom => Box::new(RankingSearch::new(
                RandomRanker::new(seed ^ RANKER_SEED_SALT),
                seed,
            )),
        }
    }
}

impl FromStr for Strategy {
    type Err = SearchError;
    fn from_str(s: &str) -> Result<Self, SearchError> {
        Strategy::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| SearchError::UnknownStrategy(s.to_string()))
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
