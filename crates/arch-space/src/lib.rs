//! # arch-space: concrete search spaces and tabular benchmarks
//!
//! The second layer of the workspace, above [`ncode`]: every space here is an
//! [`ncode::SearchSpace`] plus a typed view of what a code means.
//!
//! * [`nb201`]: the NAS-Bench-201 cell space (6 edges x 5 operations), with exact conversion
//!   between `arch_str`, the official benchmark index (0..15625) and NCode, and analytic parameter
//!   and FLOP counts of the cell network.
//! * [`macro_cnn`]: a macro CNN space (stages with depth, width, kernel, downsampling and block type).
//! * [`lora`]: LoRA rank configurations (LM-Searcher's SAM and Stable Diffusion presets).
//! * [`transformer`]: transformer shapes (embedding, per-layer hidden size and heads, depth).
//! * [`tabular`]: a tabular benchmark that loads a NAS-Bench-201 table from CSV and answers
//!   "evaluate this NCode" instantly, counting evaluations.
//!
//! None of this needs candle: the trainer builds networks from these descriptions in its own
//! crate, and searchers read them without linking a tensor library.

#![warn(missing_docs)]

mod choices;
mod error;
pub mod lang;
pub mod lora;
pub mod macro_cnn;
pub mod nb201;
pub mod tabular;
pub mod transformer;

pub use error::ArchSpaceError;
