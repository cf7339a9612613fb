//! # llm-local: in-process language models (documented stub)
//!
//! This crate will hold the `LanguageModel` trait (chat/complete, `score`, constrained `choose`)
//! and its request/response types at its root, with the candle GGUF runtime behind the default
//! `runtime` feature and an OpenAI-compatible backend behind another feature. `ranker` depends on
//! it with `default-features = false`, so it sees the trait without linking candle.
//!
//! Nothing is implemented yet: the runtime is the subject of its own issue. The crate exists now
//! so that the workspace layout and the dependency graph are fixed from the start.
