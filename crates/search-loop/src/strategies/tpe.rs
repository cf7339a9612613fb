use ncode::NCode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{History, SearchContext, SearchError, Searcher};

/// The tree-structured Parzen estimator (Bergstra et al., NeurIPS 2011) over categorical
/// dimensions, as Optuna's independent TPE sampler does it.
///
/// After `startup` random proposals, the scored evaluations are split at the `gamma` quantile
/// into good and bad; each dimension gets a categorical density over its choices for each side
/// (counts plus a uniform prior of weight 1, active positions only). `candidates` codes are
/// drawn from the good densities and the open one with the largest product of good over bad
/// density ratios (an expected-improvement proxy) is proposed; when none is open, a random open
/// code is.
#[derive(Debug, Clone)]
pub struct Tpe {
    rng: ChaCha8Rng,
    startup: usize,
    gamma: f64,
    candidates: usize,
}

impl Tpe {
    /// TPE with Optuna's defaults: 10 random start-up proposals, gamma 0.1 (at most 25 good
    /// evaluations), 24 candidates per proposal.
    pub fn new(seed: u64) -> Self {
        Tpe {
            rng: ChaCha8Rng::seed_from_u64(seed),
            startup: 10,
            gamma: 0.1,
            candidates: 24,
        }
    }
}

/// Per dimension, a probability per choice.
type Densities = Vec<Vec<f64>>;

fn densities(ctx: &SearchContext<'_>, codes: &[&NCode]) -> Densities {
    ctx.space
        .dimensions()
        .iter()
        .enumerate()
        .map(|(pos, dim)| {
            let mut weights = vec![1.0 / dim.len() as f64; dim.len()];
            for code in codes.iter().filter(|c| ctx.space.is_active(c, pos)) {
                weights[code.index(pos)] += 1.0;
            }
            let total: f64 = weights.iter().sum();
            weights.iter().map(|w| w / total).collect()
        })
        .collect()
}

impl Searcher for Tpe {
    fn name(&self) -> String {
        "tpe".into()
    }

    fn propose(
        &mut self,
        ctx: &SearchContext<'_>,
        history: &History,
    ) -> Result<NCode, SearchError> {
        let mut scored: Vec<(&NCode, f64)> = history
            .observations()
            .iter()
            .filter_map(|o| Some((&o.code, o.score.filter(|s| !s.is_nan())?)))
            .collect();
        if scored.len() < self.startup {
            return ctx.sample_open(history, &mut self.rng, "tpe");
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let n_good = ((self.gamma * scored.len() as f64).ceil() as usize).clamp(1, 25);
        let good: Vec<&NCode> = scored[..n_good].iter().map(|s| s.0).collect();
        let bad: Vec<&NCode> = scored[n_good..].iter().map(|s| s.0).collect();
        let (l, g) = (densities(ctx, &good), densities(ctx, &bad));
        let mut best: Option<(f64, NCode)> = None;
        for _ in 0..self.candidates {
            let indices = l
                .iter()
                .map(|p| {
                    let mut u = self.rng.random::<f64>();
                    let mut k = 0;
                    while k + 1 < p.len() && u >= p[k] {
                        u -= p[k];
                        k += 1;
                    }
                    k as u16
                })
                .collect();
            let code = ctx.space.canonicalize(&NCode::new(indices));
            if !ctx.is_open(&code, history) {
                continue;
            }
            let ratio: f64 = (0..code.len())
                .filter(|&pos| ctx.space.is_active(&code, pos))
                .map(|pos| (l[pos][code.index(pos)] / g[pos][code.index(pos)]).ln())
                .sum();
            if best.as_ref().is_none_or(|(r, _)| ratio > *r) {
                best = Some((ratio, code));
            }
        }
        match best {
            Some((_, code)) => Ok(code),
            None => ctx.sample_open(history, &mut self.rng, "tpe"),
        }
    }
}
