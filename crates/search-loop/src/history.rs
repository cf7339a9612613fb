use std::collections::{HashMap, HashSet};

use ncode::NCode;
use ranker::Observation;
use serde::{Deserialize, Serialize};

/// The evaluations of one search, in order, with a fast "seen" test on canonical codes, and the
/// codes still being evaluated (in flight), which count as seen so nobody proposes them twice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Observation>", into = "Vec<Observation>")]
pub struct History {
    observations: Vec<Observation>,
    /// Latest score of every evaluated code.
    scores: HashMap<NCode, Option<f64>>,
    /// Codes proposed and not yet evaluated (not serialized).
    in_flight: HashSet<NCode>,
}

impl From<Vec<Observation>> for History {
    fn from(observations: Vec<Observation>) -> Self {
        let scores = observations
            .iter()
            .map(|o| (o.code.clone(), o.score))
            .collect();
        History {
            observations,
            scores,
            in_flight: HashSet::new(),
        }
    }
}

impl From<History> for Vec<Observation> {
    fn from(h: History) -> Self {
        h.observations
    }
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an evaluation (and ends its code's time in flight).
    pub fn push(&mut self, observation: Observation) {
        self.in_flight.remove(&observation.code);
        self.scores
            .insert(observation.code.clone(), observation.score);
        self.observations.push(observation);
    }

    /// All evaluations, oldest first.
    pub fn observations(&self) -> &[Observation] {
        &self.observations
    }

    /// Number of evaluations.
    pub fn len(&self) -> usize {
        self.observations.len()
    }

    /// Whether nothing was evaluated yet.
    pub fn is_empty(&self) -> bool {
        self.observations.is_empty()
    }

    /// Whether this (canonical) code was evaluated or is being evaluated.
    pub fn contains(&self, code: &NCode) -> bool {
        self.scores.contains_key(code) || self.in_flight.contains(code)
    }

    /// Marks a proposed code as being evaluated, until its evaluation is pushed.
    pub fn begin(&mut self, code: NCode) {
        self.in_flight.insert(code);
    }

    /// Codes being evaluated.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The best scored evaluation among the first `n` (the earliest wins ties; NaN scores are
    /// ignored).
    pub fn best_within(&self, n: usize) -> Option<&Observation> {
        self.observations
            .iter()
            .take(n)
            .filter(|o| o.score.is_some_and(|s| !s.is_nan()))
            .fold(None, |best: Option<&Observation>, o| match best {
                Some(b) if b.score >= o.score => Some(b),
                _ => Some(o),
            })
    }

    /// The best scored evaluation so far.
    pub fn best(&self) -> Option<&Observation> {
        self.best_within(self.len())
    }

    /// The score of a code, if it was evaluated and scored.
    pub fn score_of(&self, code: &NCode) -> Option<f64> {
        self.scores.get(code).copied().flatten()
    }
}
