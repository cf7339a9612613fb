//! LoRA rank configurations, as searched by LM-Searcher: one dimension per adapted module (or
//! group of modules), whose choices are the allowed ranks.
//!
//! Position `i` of a code is the rank of module `i`; there are no conditional dimensions. The
//! presets follow LM-Searcher's experiments: [`LoraRankSpace::sam`] (Segment Anything, 32 modules
//! with ranks 3/6/12/24) and [`LoraRankSpace::stable_diffusion`] (48 groups with ranks 4/8/16).
//!
//! ```
//! use arch_space::lora::LoraRankSpace;
//!
//! let lora = LoraRankSpace::new(["q", "v"], [4, 8]);
//! let code = lora.encode(&[8, 4]).unwrap();
//! assert_eq!(lora.decode(&code).unwrap(), vec![8, 4]);
//! // 8 * (64 + 64) + 4 * (64 + 32)
//! assert_eq!(lora.trainable_params(&code, &[(64, 64), (64, 32)]).unwrap(), 1408);
//! ```

use ncode::{Dimension, NCode, SearchSpace};
use serde::{Deserialize, Serialize};

use crate::choices::{check_choices, choice_index};
use crate::ArchSpaceError;

/// A LoRA rank space: every module in `modules` takes one rank from `ranks`.
///
/// There must be at least one module and one rank; module names must be unique, and so must
/// ranks (a rank of 0 is allowed and means "not adapted").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoraRankSpace {
    /// Names of the adapted modules (or module groups), in code order.
    pub modules: Vec<String>,
    /// Allowed ranks, in choice-index order.
    pub ranks: Vec<u32>,
}

impl LoraRankSpace {
    /// A space over the given module names and ranks.
    pub fn new<S: Into<String>>(
        modules: impl IntoIterator<Item = S>,
        ranks: impl IntoIterator<Item = u32>,
    ) -> Self {
        LoraRankSpace {
            modules: modules.into_iter().map(Into::into).collect(),
            ranks: ranks.into_iter().collect(),
        }
    }

    /// LM-Searcher's Segment Anything preset: 32 modules `block0` .. `block31`, ranks 3, 6, 12, 24
    /// (4^32 configurations).
    pub fn sam() -> Self {
        Self::new((0..32).map(|i| format!("block{i}")), [3, 6, 12, 24])
    }

    /// LM-Searcher's Stable Diffusion preset: 48 groups `group0` .. `group47`, ranks 4, 8, 16
    /// (3^48 configurations).
    pub fn stable_diffusion() -> Self {
        Self::new((0..48).map(|i| format!("group{i}")), [4, 8, 16])
    }

    /// The search space, named `lora`, one dimension per module; fails with
    /// [`ArchSpaceError::Config`] on no modules, a repeated module name, or an empty or repeating
    /// rank list.
    pub fn space(&self) -> Result<SearchSpace, ArchSpaceError> {
        check_choices("modules", &self.modules)?;
        check_choices("ranks", &self.ranks)?;
        let dims = self
            .modules
            .iter()
            .map(|m| Dimension::ints(m.as_str(), self.ranks.iter().map(|&r| i64::from(r))))
            .collect();
        Ok(SearchSpace::new("lora", dims)?)
    }

    /// The rank of every module, in module order; fails when the code does not fit the space.
    pub fn decode(&self, code: &NCode) -> Result<Vec<u32>, ArchSpaceError> {
        self.space()?.check(code)?;
        Ok(code
            .indices()
            .iter()
            .map(|&i| self.ranks[usize::from(i)])
            .collect())
    }

    /// The code of one rank per module; fails with [`ArchSpaceError::Config`] on a wrong number
    /// of ranks or a rank that is not among the choices (naming the module).
    pub fn encode(&self, ranks: &[u32]) -> Result<NCode, ArchSpaceError> {
        let space = self.space()?;
        if ranks.len() != self.modules.len() {
            return Err(ArchSpaceError::Config(format!(
                "{} ranks given for {} modules",
                ranks.len(),
                self.modules.len()
            )));
        }
        let mut code = NCode::zeros(space.len());
        for (pos, (module, rank)) in self.modules.iter().zip(ranks).enumerate() {
            let what = format!("module `{module}`: rank");
            code.set(pos, choice_index(&what, &self.ranks, rank)?);
        }
        Ok(code)
    }

    /// Number of trainable LoRA parameters of a code: the sum over modules of
    /// `rank * (d_in + d_out)` (the `A` matrix is `rank x d_in`, `B` is `d_out x rank`), with
    /// `shapes[i] = (d_in, d_out)` of module `i`.
    ///
    /// Fails when the code does not fit the space, when `shapes` does not have one entry per
    /// module, or when the count overflows `u64`.
    pub fn trainable_params(
        &self,
        code: &NCode,
        shapes: &[(usize, usize)],
    ) -> Result<u64, ArchSpaceError> {
        let ranks = self.decode(code)?;
        if shapes.len() != ranks.len() {
            return Err(ArchSpaceError::Config(format!(
                "{} shapes given for {} modules",
                shapes.len(),
                ranks.len()
            )));
        }
        ranks
            .iter()
            .zip(shapes)
            .try_fold(0u64, |total, (&rank, &(d_in, d_out))| {
                let fan = u64::try_from(d_in)
                    .ok()?
                    .checked_add(u64::try_from(d_out).ok()?)?;
                total.checked_add(u64::from(rank).checked_mul(fan)?)
            })
            .ok_or_else(|| ArchSpaceError::Config("LoRA parameter count overflows u64".into()))
    }
}
