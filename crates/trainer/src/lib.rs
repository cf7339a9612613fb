//! # trainer: candle networks from the architecture IR (documented stub)
//!
//! This crate will build candle modules from the IR defined in `arch-space` (module `lang`),
//! train them (SGD/AdamW, schedules, BatchNorm train/eval) and run the one-epoch proxy
//! evaluation of the closed loop. It knows nothing of `llm-local`.
//!
//! Nothing is implemented yet: the trainer is the subject of its own issue. The crate exists now
//! so that the workspace layout and the dependency graph are fixed from the start.
