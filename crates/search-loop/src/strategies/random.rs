use ncode::NCode;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{History, SearchContext, SearchError, Searcher};

/// Random search: every proposal is a uniformly drawn unseen admissible architecture.
#[derive(Debug, Clone)]
pub struct RandomSearch {
    rng: ChaCha8Rng,
}

impl RandomSearch {
    /// A random search with its own seeded generator.
    pub fn new(seed: u64) -> Self {
        RandomSearch {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Searcher for RandomSearch {
    fn name(&self) -> String {
        "random".into()
    }

    fn propose(
        &mut self,
        ctx: &SearchContext<'_>,
        history: &History,
    ) -> Result<NCode, SearchError> {
        ctx.sample_open(history, &mut self.rng, "random")
    }
}
