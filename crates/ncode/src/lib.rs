//! # ncode: the universal numeric encoding of architectures
//!
//! LM-Searcher's central idea is that *any* architecture search space (CNN cells, macro CNNs, LoRA
//! rank configurations, transformer shapes) can be written as an ordered list of dimensions, each
//! with a finite list of choices, and any architecture as one choice index per dimension: an
//! [`NCode`] such as `331123`. A language model can then compare and rank architectures from
//! different domains through one textual interface.
//!
//! This crate is the bottom layer of the workspace and depends on none of the others:
//!
//! * [`SearchSpace`]: named [`Dimension`]s with typed [`Choice`]s, optionally *conditional*
//!   (a per-layer dimension that only exists when the chosen depth reaches it). Inactive positions
//!   are 0 in the canonical code, and every operation here works on canonical codes.
//! * [`NCode`] and its text forms: one digit per dimension (`331123`, LM-Searcher's form) when every
//!   dimension has at most 10 choices, `3-12-0-7` otherwise. Parsing accepts both and every error
//!   names the position and the reason.
//! * Sampling, enumeration (with exact size), neighbours and mutation, Hamming distance, dedupe.
//! * [`Subspace`]: LM-Searcher's pruning (drop options of some dimensions or whole dimensions,
//!   re-index the survivors contiguously) with exact code mapping in both directions.
//!
//! ```
//! use ncode::{Dimension, SearchSpace};
//!
//! let ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];
//! let space = SearchSpace::new(
//!     "nb201",
//!     (0..6).map(|e| Dimension::labels(format!("edge{e}"), ops)).collect(),
//! )
//! .unwrap();
//! let code = space.parse("331123").unwrap();
//! assert_eq!(space.format(&code), "331123");
//! assert_eq!(space.size().unwrap(), 15_625);
//! assert!(space.parse("3311x3").unwrap_err().to_string().contains("position 4"));
//! ```

#![warn(missing_docs)]

mod code;
mod error;
mod ops;
mod space;
mod subspace;

pub use code::NCode;
pub use error::NcodeError;
pub use ops::Enumerate;
pub use space::{Choice, Condition, Dimension, SearchSpace};
pub use subspace::{DimensionPruning, RandomPruning, Subspace};
