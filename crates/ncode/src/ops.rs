//! Sampling, enumeration, neighbourhoods and dedupe over canonical codes.

use std::collections::HashSet;

use rand::Rng;

use crate::{NCode, SearchSpace};

impl SearchSpace {
    /// Draws each dimension uniformly and independently, then canonicalizes: uniform over all
    /// codes of an unconditional space; in a conditional space every depth is equally likely (the
    /// usual convention of NAS samplers), not every canonical code.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> NCode {
        let indices = self
            .dimensions()
            .iter()
            .map(|d| rng.random_range(0..d.len()) as u16)
            .collect();
        self.canonicalize(&NCode::new(indices))
    }

    /// Every canonical code once, in lexicographic order; [`SearchSpace::size`] counts them.
    pub fn enumerate(&self) -> Enumerate<'_> {
        Enumerate {
            space: self,
            next: Some(NCode::zeros(self.len())),
        }
    }

    /// All canonical codes that differ from `code` in exactly one active dimension.
    pub fn neighbours(&self, code: &NCode) -> Vec<NCode> {
        let code = self.canonicalize(code);
        let mut out = Vec::new();
        for (pos, dim) in self.dimensions().iter().enumerate() {
            if !self.is_active(&code, pos) {
                continue;
            }
            for value in (0..dim.len()).filter(|&v| v != code.index(pos)) {
                let mut next = code.clone();
                next.set(pos, value);
                out.push(self.canonicalize(&next));
            }
        }
        out
    }

    /// One uniformly chosen active dimension set to a different uniformly chosen value; `None`
    /// when no active dimension has a second choice.
    pub fn mutate<R: Rng + ?Sized>(&self, code: &NCode, rng: &mut R) -> Option<NCode> {
        let code = self.canonicalize(code);
        let mutable: Vec<usize> = (0..self.len())
            .filter(|&p| self.is_active(&code, p) && self.dimensions()[p].len() > 1)
            .collect();
        if mutable.is_empty() {
            return None;
        }
        let pos = mutable[rng.random_range(0..mutable.len())];
        let n = self.dimensions()[pos].len();
        let shift = rng.random_range(1..n);
        let mut next = code.clone();
        next.set(pos, (code.index(pos) + shift) % n);
        Some(self.canonicalize(&next))
    }

    /// Canonical forms of `codes`, each architecture once, in first-seen order.
    pub fn dedupe<I: IntoIterator<Item = NCode>>(&self, codes: I) -> Vec<NCode> {
        let mut seen = HashSet::new();
        codes
            .into_iter()
            .map(|c| self.canonicalize(&c))
            .filter(|c| seen.insert(c.clone()))
            .collect()
    }
}

/// Iterator over the canonical codes of a space (see [`SearchSpace::enumerate`]).
#[derive(Debug, Clone)]
pub struct Enumerate<'a> {
    space: &'a SearchSpace,
    next: Option<NCode>,
}

impl Iterator for Enumerate<'_> {
    type Item = NCode;

    fn next(&mut self) -> Option<NCode> {
        let current = self.next.take()?;
        // Odometer over active positions only: when position p advances, every later position
        // has just wrapped to 0, so inactive positions stay 0 and the code stays canonical.
        let mut following = current.clone();
        for pos in (0..self.space.len()).rev() {
            if !self.space.is_active(&following, pos) {
                continue;
            }
            let value = following.index(pos) + 1;
            if value < self.space.dimensions()[pos].len() {
                following.set(pos, value);
                self.next = Some(self.space.canonicalize(&following));
                break;
            }
            following.set(pos, 0);
        }
        Some(current)
    }
}
