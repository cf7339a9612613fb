//! Token sampling: repeat penalty, temperature, top-k, top-p, seeded.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Sampling;

/// Draws tokens from logits as llama.cpp's classic sampler chain does.
pub struct Sampler {
    settings: Sampling,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler seeded with `settings.seed`.
    pub fn new(settings: &Sampling) -> Self {
        Sampler {
            settings: settings.clone(),
            rng: ChaCha8Rng::seed_from_u64(settings.seed),
        }
    }

    /// The next token given the logits and the tokens so far (for the repeat penalty).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let s = &self.settings;
        if s.repeat_penalty != 1.0 {
            let from = history.len().saturating_sub(s.repeat_last_n);
            let mut seen: Vec<u32> = history[from..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 {
                        *l / s.repeat_penalty
                    } else {
                        *l * s.repeat_penalty
                    };
                }
            }
        }
        let argmax = || {
            logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i as u32)
        };
        if s.temperature <= 0.0 {
            return argmax();
        }
        let mut order: Vec<usize> = (0..logits.len())
            .filter(|&i| logits[i].is_finite())
            .collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        if s.top_k > 0 {
            order.truncate(s.top_k);
        }
        let Some(&best) = order.first() else {
            return argmax();
        };
        let max = logits[best] as f64;
        let mut probs: Vec<f64> = order
            .iter()
            .map(|&i| ((logits[i] as f64 - max) / s.temperature).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if s.top_p < 1.0 {
            let mut mass = 0.0;
            let keep = probs
                .iter()
                .take_while(|&&p| {
                    let inside = mass < s.top_p;
                    mass += p;
                    inside
                })
                .count()
                .max(1);
            probs.truncate(keep);
            order.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut draw = self.rng.random::<f64>() * total;
        for (p, &i) in probs.iter().zip(&order) {
            draw -= p;
            if draw <= 0.0 {
                return i as u32;
            }
        }
        order[order.len() - 1] as u32
    }
}
