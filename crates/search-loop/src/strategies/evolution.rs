use ncode::NCode;
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{History, SearchContext, SearchError, Searcher};

/// How many mutations of a tournament winner are tried before drawing a random architecture.
const MUTATION_TRIES: usize = 100;

/// Regularized evolution (Real et al., AAAI 2019) with aging.
///
/// The population is the `population` most recent evaluations; the first `population`
/// proposals are random. Each later proposal mutates the best of `sample` population members
/// drawn without replacement (one active dimension changed to another value). Defaults are the
/// NAS-Bench-201 / NATS-Bench settings: population 10, sample size 3. Unlike the original, a
/// mutation that lands on an evaluated or inadmissible architecture is redrawn, so no budget is
/// spent on repeats.
#[derive(Debug, Clone)]
pub struct RegularizedEvolution {
    population: usize,
    sample: usize,
    rng: ChaCha8Rng,
}

impl RegularizedEvolution {
    /// REA with NAS-Bench-201's settings (population 10, sample size 3).
    pub fn new(seed: u64) -> Self {
        Self::with_settings(seed, 10, 3)
    }

    /// REA with explicit population and tournament sizes (each at least 1).
    pub fn with_settings(seed: u64, population: usize, sample: usize) -> Self {
        let population = population.max(1);
        RegularizedEvolution {
            population,
            sample: sample.clamp(1, population),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn tournament_winner<'h>(&mut self, history: &'h History) -> &'h NCode {
        let all = history.observations();
        let members = &all[all.len() - self.population..];
        let picks = sample(&mut self.rng, members.len(), self.sample);
        let winner = picks
            .iter()
            .map(|i| &members[i])
            .reduce(|best, o| if o.score > best.score { o } else { best })
            .expect("the tournament has at least one member");
        &winner.code
    }
}

impl Searcher for RegularizedEvolution {
    fn name(&self) -> String {
        "rea".into()
    }

    fn propose(
        &mut self,
        ctx: &SearchContext<'_>,
        history: &History,
    ) -> Result<NCode, SearchError> {
        if history.len() < self.population {
            return ctx.sample_open(history, &mut self.rng, "rea");
        }
        let parent = self.tournament_winner(history).clone();
        for _ in 0..MUTATION_TRIES {
            match ctx.space.mutate(&parent, &mut self.rng) {
                Some(child) if ctx.is_open(&child, history) => return Ok(child),
                Some(_) => continue,
                None => break,
            }
        }
        ctx.sample_open(history, &mut self.rng, "rea")
    }
}
