use ncode::{NCode, SearchSpace};
use rand::Rng;

use crate::{History, SearchError};

/// How many uniform draws a searcher makes before it falls back to enumerating the space.
const SAMPLING_TRIES: usize = 20_000;
/// Spaces up to this size may be enumerated to find the last unseen admissible codes.
const ENUMERABLE: u128 = 2_000_000;

/// What every searcher is told besides the history: the space, and which codes are admissible
/// (the search's constraints, e.g. a latency or parameter budget; checking them is free).
#[derive(Clone, Copy)]
pub struct SearchContext<'a> {
    /// The space to search.
    pub space: &'a SearchSpace,
    /// Whether a code satisfies the constraints; inadmissible codes are never proposed.
    pub admissible: &'a (dyn Fn(&NCode) -> bool + Sync),
    /// A short task description (for rankers that read it).
    pub task: &'a str,
}

impl<'a> SearchContext<'a> {
    /// A context without constraints.
    pub fn unconstrained(space: &'a SearchSpace, task: &'a str) -> Self {
        SearchContext {
            space,
            admissible: &|_| true,
            task,
        }
    }

    /// Whether `code` may be proposed: admissible and not yet evaluated.
    pub fn is_open(&self, code: &NCode, history: &History) -> bool {
        !history.contains(code) && (self.admissible)(code)
    }

    /// A uniformly drawn open code (see [`SearchSpace::sample`]); when rejection sampling fails
    /// in a small space, an exhaustive scan finds the last open codes.
    pub fn sample_open<R: Rng + ?Sized>(
        &self,
        history: &History,
        rng: &mut R,
        searcher: &str,
    ) -> Result<NCode, SearchError> {
        for _ in 0..SAMPLING_TRIES {
            let code = self.space.sample(rng);
            if self.is_open(&code, history) {
                return Ok(code);
            }
        }
        if self.space.size().is_ok_and(|n| n <= ENUMERABLE) {
            let open: Vec<NCode> = self
                .space
                .enumerate()
                .filter(|c| self.is_open(c, history))
                .collect();
            if !open.is_empty() {
                return Ok(open[rng.random_range(0..open.len())].clone());
            }
        }
        Err(SearchError::Exhausted {
            searcher: searcher.to_string(),
            tried: SAMPLING_TRIES,
        })
    }
}

/// A search strategy: given the history so far, propose the next architecture to evaluate.
///
/// Implementations own their random generator (seeded at construction), so a search is
/// reproducible for a seed. A proposal is always an open code ([`SearchContext::is_open`]).
pub trait Searcher {
    /// A short name for reports, e.g. `rea`.
    fn name(&self) -> String;

    /// The next architecture to evaluate.
    fn propose(&mut self, ctx: &SearchContext<'_>, history: &History)
        -> Result<NCode, SearchError>;

    /// Up to `n` distinct architectures to evaluate at once (for free slots of an executor),
    /// each marked in flight in `history` ([`History::begin`]); fewer when the space runs dry,
    /// an error only when not even one is left. By default, `n` proposals in a row; one call with
    /// `n = 1` is exactly one [`Searcher::propose`].
    fn propose_batch(
        &mut self,
        ctx: &SearchContext<'_>,
        history: &mut History,
        n: usize,
    ) -> Result<Vec<NCode>, SearchError> {
        propose_in_a_row(self, ctx, history, n)
    }
}

/// `n` proposals in a row, each marked in flight in `history` (the default
/// [`Searcher::propose_batch`]); fewer when the space runs dry, an error only when not even one
/// is left.
pub fn propose_in_a_row<S: Searcher + ?Sized>(
    searcher: &mut S,
    ctx: &SearchContext<'_>,
    history: &mut History,
    n: usize,
) -> Result<Vec<NCode>, SearchError> {
    let mut batch = Vec::with_capacity(n);
    while batch.len() < n {
        match searcher.propose(ctx, history) {
            Ok(code) => {
                history.begin(code.clone());
                batch.push(code);
            }
            Err(SearchError::Exhausted { .. }) if !batch.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(batch)
}
