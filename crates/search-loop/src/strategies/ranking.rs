use ncode::NCode;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ranker::{Ranker, RankingRequest};

use crate::searcher::propose_in_a_row;
use crate::{History, SearchContext, SearchError, Searcher};

/// LM-Searcher's ranking loop: each round draws a pool of unseen admissible candidates and asks
/// a [`Ranker`] which one to evaluate.
///
/// The first `warmup` proposals are random (a ranker needs some history to read). Any ranker
/// drops in: [`ranker::RandomRanker`] makes this a random search with extra steps (the control),
/// the LLM ranker makes it LM-Searcher.
#[derive(Debug, Clone)]
pub struct RankingSearch<R> {
    ranker: R,
    pool_size: usize,
    warmup: usize,
    rng: ChaCha8Rng,
}

impl<R: Ranker> RankingSearch<R> {
    /// A ranking loop with pools of 10 candidates after 5 random warm-up evaluations.
    pub fn new(ranker: R, seed: u64) -> Self {
        Self::with_settings(ranker, seed, 10, 5)
    }

    /// A ranking loop with explicit pool size (at least 1) and number of random warm-up steps.
    pub fn with_settings(ranker: R, seed: u64, pool_size: usize, warmup: usize) -> Self {
        RankingSearch {
            ranker,
            pool_size: pool_size.max(1),
            warmup,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The ranker.
    pub fn ranker(&self) -> &R {
        &self.ranker
    }

    /// Draws up to `pool_size` distinct open candidates (fewer when the space runs dry).
    fn draw_pool(
        &mut self,
        ctx: &SearchContext<'_>,
        history: &History,
    ) -> Result<Vec<NCode>, SearchError> {
        let name = self.name();
        let mut pool: Vec<NCode> = Vec::with_capacity(self.pool_size);
        let mut repeats = 0;
        while pool.len() < self.pool_size && repeats < 10 * self.pool_size {
            match ctx.sample_open(history, &mut self.rng, &name) {
                Ok(code) if pool.contains(&code) => repeats += 1,
                Ok(code) => pool.push(code),
                Err(e) if pool.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(pool)
    }
}

impl<R: Ranker> Searcher for RankingSearch<R> {
    fn name(&self) -> String {
        format!("rank-{}", self.ranker.name())
    }

    fn propose(
        &mut self,
        ctx: &SearchContext<'_>,
        history: &History,
    ) -> Result<NCode, SearchError> {
        if history.len() < self.warmup {
            let name = self.name();
            return ctx.sample_open(history, &mut self.rng, &name);
        }
        let mut pool = self.draw_pool(ctx, history)?;
        self.pick(ctx, history, &mut pool)
    }

    /// After the warm-up, one pool per round and as many picks from it as slots are free: the
    /// ranker chooses, the choice leaves the pool, the ranker chooses again.
    fn propose_batch(
        &mut self,
        ctx: &SearchContext<'_>,
        history: &mut History,
        n: usize,
    ) -> Result<Vec<NCode>, SearchError> {
        // Warm-up proposals do not finish while the batch is drawn: count them.
        let warm = n.min(self.warmup.saturating_sub(history.len()));
        let mut batch = propose_in_a_row(self, ctx, history, warm)?;
        if batch.len() == n || batch.len() < warm {
            return Ok(batch);
        }
        let mut pool = match self.draw_pool(ctx, history) {
            Ok(pool) => pool,
            Err(SearchError::Exhausted { .. }) if !batch.is_empty() => return Ok(batch),
            Err(e) => return Err(e),
        };
        while batch.len() < n && !pool.is_empty() {
            let code = self.pick(ctx, history, &mut pool)?;
            history.begin(code.clone());
            batch.push(code);
        }
        Ok(batch)
    }
}

impl<R: Ranker> RankingSearch<R> {
    /// The ranker's choice from `pool`, taken out of it.
    fn pick(
        &mut self,
        ctx: &SearchContext<'_>,
        history: &History,
        pool: &mut Vec<NCode>,
    ) -> Result<NCode, SearchError> {
        let request = RankingRequest {
            space: ctx.space,
            task: ctx.task,
            history: history.observations(),
            candidates: pool,
        };
        let choice = self.ranker.choose(&request)?;
        if choice >= pool.len() {
            return Err(ranker::RankerError::Backend(format!(
                "ranker `{}` chose candidate {choice} of a pool of {}",
                self.ranker.name(),
                pool.len()
            ))
            .into());
        }
        Ok(pool.remove(choice))
    }
}
