use ncode::NCode;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{History, SearchContext, SearchError, Searcher};

/// Local search (White et al., "Local Search is State of the Art for NAS Benchmarks", 2020).
///
/// Start from a random architecture and evaluate its neighbours (one dimension changed) in
/// random order; move to the first neighbour that beats the current architecture
/// (first improvement, as NASLib's default) and continue from there. At a local optimum (every
/// open neighbour evaluated, none better) restart from a new random architecture.
#[derive(Debug, Clone)]
pub struct LocalSearch {
    rng: ChaCha8Rng,
    current: Option<NCode>,
    queue: Vec<NCode>,
}

impl LocalSearch {
    /// A local search with its own seeded generator.
    pub fn new(seed: u64) -> Self {
        LocalSearch {
            rng: ChaCha8Rng::seed_from_u64(seed),
            current: None,
            queue: Vec::new(),
        }
    }

    /// Moves to `code` and queues its open neighbours in random order.
    fn move_to(&mut self, code: NCode, ctx: &SearchContext<'_>, history: &History) {
        let mut neighbours: Vec<NCode> = ctx
            .space
            .neighbours(&code)
            .into_iter()
            .filter(|n| ctx.is_open(n, history))
            .collect();
        neighbours.shuffle(&mut self.rng);
        // Proposals are popped from the back.
        neighbours.reverse();
        self.queue = neighbours;
        self.current = Some(code);
    }
}

impl Searcher for LocalSearch {
    fn name(&self) -> String {
        "local".into()
    }

    fn propose(
        &mut self,
        ctx: &SearchContext<'_>,
        history: &History,
    ) -> Result<NCode, SearchError> {
        // The last proposal (if any) has been evaluated: did it improve on the current point?
        if let (Some(current), Some(last)) = (&self.current, history.observations().last()) {
            let improved = &last.code != current
                && last.score.is_some()
                && last.score > history.score_of(current);
            if improved {
                let next = last.code.clone();
                self.move_to(next, ctx, history);
            }
        }
        while let Some(code) = self.queue.pop() {
            if ctx.is_open(&code, history) {
                return Ok(code);
            }
        }
        // Local optimum, or the very start: restart from a random architecture. It is proposed
        // now and becomes the current point; its neighbours follow.
        let start = ctx.sample_open(history, &mut self.rng, "local")?;
        self.move_to(start.clone(), ctx, history);
        Ok(start)
    }
}
