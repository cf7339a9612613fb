//! # nas-rs: LLM-driven neural architecture search in Rust
//!
//! The facade of the workspace: it re-exports every crate under one name, and owns the examples
//! and benchmarks. Depend on a single crate (`ncode`, `arch-space`, ...) when you need only one
//! layer. See `docs/ARCHITECTURE.md` for how the crates fit together.

pub use arch_space;
pub use llm_local;
pub use ncode;
pub use ranker;
pub use search_loop;
pub use trainer;
