//! LM-Searcher's pruning-based subspaces.

use rand::seq::IndexedRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Condition, Dimension, NCode, NcodeError, SearchSpace};

/// What a pruning keeps of one dimension of the parent space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DimensionPruning {
    /// The dimension is kept whole.
    Keep,
    /// Only these parent choice indices survive, re-indexed 0.. in ascending order.
    KeepOptions(Vec<usize>),
    /// The dimension is dropped from the subspace and fixed to this parent choice index.
    Fix(usize),
}

/// Probabilities of a random pruning (LM-Searcher uses 0.5 for both).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RandomPruning {
    /// Probability that a dimension is dropped whole (fixed to a random choice).
    pub drop_dimension: f64,
    /// Probability that each option of a kept dimension is dropped (at least one survives).
    pub drop_option: f64,
}

impl Default for RandomPruning {
    fn default() -> Self {
        RandomPruning {
            drop_dimension: 0.5,
            drop_option: 0.5,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Mapping {
    /// Kept as subspace dimension `sub`; `options[i]` is the parent index of sub index `i`.
    Kept {
        sub: usize,
        options: Vec<u16>,
    },
    Fixed(u16),
}

/// A pruned search space with exact code mapping to and from its parent.
///
/// The subspace is itself a [`SearchSpace`] (dimensions re-indexed contiguously), so every
/// operation of this crate works on it. Conditions are carried over: a dimension whose
/// controller is fixed becomes unconditional (or fixed to 0 when it can never be active).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSubspace", into = "RawSubspace")]
pub struct Subspace {
    parent: SearchSpace,
    pruning: Vec<DimensionPruning>,
    space: SearchSpace,
    mapping: Vec<Mapping>,
}

#[derive(Serialize, Deserialize)]
struct RawSubspace {
    parent: SearchSpace,
    pruning: Vec<DimensionPruning>,
}

impl TryFrom<RawSubspace> for Subspace {
    type Error = NcodeError;
    fn try_from(raw: RawSubspace) -> Result<Self, NcodeError> {
        Subspace::new(raw.parent, raw.pruning)
    }
}

impl From<Subspace> for RawSubspace {
    fn from(s: Subspace) -> Self {
        RawSubspace {
            parent: s.parent,
            pruning: s.pruning,
        }
    }
}

impl Subspace {
    /// Applies one [`DimensionPruning`] per parent dimension.
    pub fn new(parent: SearchSpace, pruning: Vec<DimensionPruning>) -> Result<Self, NcodeError> {
        let invalid = |reason: String| NcodeError::InvalidSpace {
            space: parent.name().to_string(),
            reason,
        };
        if pruning.len() != parent.len() {
            return Err(invalid(format!(
                "pruning has {} entries for {} dimensions",
                pruning.len(),
                parent.len()
            )));
        }
        let mut mapping: Vec<Mapping> = Vec::with_capacity(parent.len());
        let mut dims: Vec<Dimension> = Vec::new();
        for (dim, prune) in parent.dimensions().iter().zip(&pruning) {
            let options: Vec<usize> = match prune {
                DimensionPruning::Keep => (0..dim.len()).collect(),
                DimensionPruning::KeepOptions(o) => {
                    let mut o = o.clone();
                    o.sort_unstable();
                    o.dedup();
                    o
                }
                DimensionPruning::Fix(v) => vec![*v],
            };
            if options.is_empty() || options.iter().any(|&o| o >= dim.len()) {
                return Err(invalid(format!(
                    "pruning of dimension `{}` must keep 1 or more indices below {}",
                    dim.name,
                    dim.len()
                )));
            }
            if let DimensionPruning::Fix(v) = prune {
                mapping.push(Mapping::Fixed(*v as u16));
                continue;
            }
            let condition = match &dim.active_when {
                None => None,
                Some(c) => match carry_condition(c, &mapping) {
                    CarriedCondition::Always => None,
                    CarriedCondition::Never => {
                        mapping.push(Mapping::Fixed(0));
                        continue;
                    }
                    CarriedCondition::When(c) => Some(c),
                },
            };
            mapping.push(Mapping::Kept {
                sub: dims.len(),
                options: options.iter().map(|&o| o as u16).collect(),
            });
            dims.push(Dimension {
                name: dim.name.clone(),
                choices: options.iter().map(|&o| dim.choices[o].clone()).collect(),
                active_when: condition,
            });
        }
        if dims.is_empty() {
            return Err(invalid("the pruning fixes every dimension".into()));
        }
        let space = SearchSpace::new(format!("{}/sub", parent.name()), dims)?;
        Ok(Subspace {
            parent,
            pruning,
            space,
            mapping,
        })
    }

    /// A random pruning of `parent` (at least one dimension is always kept).
    pub fn random<R: Rng + ?Sized>(
        parent: SearchSpace,
        probabilities: RandomPruning,
        rng: &mut R,
    ) -> Self {
        let mut pruning: Vec<DimensionPruning> = parent
            .dimensions()
            .iter()
            .map(|d| {
                if rng.random_bool(probabilities.drop_dimension) {
                    return DimensionPruning::Fix(rng.random_range(0..d.len()));
                }
                let kept: Vec<usize> = (0..d.len())
                    .filter(|_| !rng.random_bool(probabilities.drop_option))
                    .collect();
                match kept.len() {
                    0 => DimensionPruning::KeepOptions(vec![rng.random_range(0..d.len())]),
                    n if n == d.len() => DimensionPruning::Keep,
                    _ => DimensionPruning::KeepOptions(kept),
                }
            })
            .collect();
        let fixed: Vec<usize> = (0..pruning.len())
            .filter(|&p| matches!(pruning[p], DimensionPruning::Fix(_)))
            .collect();
        if fixed.len() == pruning.len() {
            if let Some(&p) = fixed.choose(rng) {
                pruning[p] = DimensionPruning::Keep;
            }
        }
        // Conditions can still fix every remaining dimension (e.g. only a per-layer dimension
        // was kept and its layer is never active); fall back to keeping the first dimension whole.
        Subspace::new(parent.clone(), pruning.clone()).unwrap_or_else(|_| {
            pruning[0] = DimensionPruning::Keep;
            Subspace::new(parent, pruning).expect("a kept unconditional first dimension is valid")
        })
    }

    /// The parent space.
    pub fn parent(&self) -> &SearchSpace {
        &self.parent
    }

    /// The pruning this subspace was built from.
    pub fn pruning(&self) -> &[DimensionPruning] {
        &self.pruning
    }

    /// The subspace as a search space of its own.
    pub fn space(&self) -> &SearchSpace {
        &self.space
    }

    /// Maps a subspace code to the (canonical) parent code it denotes.
    pub fn to_parent(&self, code: &NCode) -> Result<NCode, NcodeError> {
        self.space.check(code)?;
        let code = self.space.canonicalize(code);
        let indices = self
            .mapping
            .iter()
            .map(|m| match m {
                Mapping::Fixed(v) => *v,
                Mapping::Kept { sub, options } => options[code.index(*sub)],
            })
            .collect();
        Ok(self.parent.canonicalize(&NCode::new(indices)))
    }

    /// Maps a parent code into the subspace; fails, naming the position, when a choice was pruned.
    pub fn from_parent(&self, code: &NCode) -> Result<NCode, NcodeError> {
        self.parent.check(code)?;
        let code = self.parent.canonicalize(code);
        let mut out = NCode::zeros(self.space.len());
        for (pos, m) in self.mapping.iter().enumerate() {
            let index = code.index(pos);
            let found = match m {
                Mapping::Fixed(v) => usize::from(*v) == index || !self.parent.is_active(&code, pos),
                Mapping::Kept { sub, options } => {
                    let hit = options.iter().position(|&o| usize::from(o) == index);
                    if let Some(i) = hit {
                        out.set(*sub, i);
                    }
                    hit.is_some() || !self.parent.is_active(&code, pos)
                }
            };
            if !found {
                return Err(NcodeError::NotInSubspace {
                    position: pos,
                    dimension: self.parent.dimensions()[pos].name.clone(),
                    index,
                });
            }
        }
        Ok(self.space.canonicalize(&out))
    }
}

enum CarriedCondition {
    Always,
    Never,
    When(Condition),
}

/// Rewrites a parent condition in subspace indices, given the mapping of the dimensions so far.
fn carry_condition(cond: &Condition, mapping: &[Mapping]) -> CarriedCondition {
    match &mapping[cond.controller] {
        Mapping::Fixed(v) if cond.any_of.contains(&usize::from(*v)) => CarriedCondition::Always,
        Mapping::Fixed(_) => CarriedCondition::Never,
        Mapping::Kept { sub, options } => {
            let any_of: Vec<usize> = (0..options.len())
                .filter(|&i| cond.any_of.contains(&usize::from(options[i])))
                .collect();
            match any_of.len() {
                0 => CarriedCondition::Never,
                n if n == options.len() => CarriedCondition::Always,
                _ => CarriedCondition::When(Condition {
                    controller: *sub,
                    any_of,
                }),
            }
        }
    }
}
