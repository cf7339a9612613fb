//! The hyper-parameters of a decoder, read from a GGUF file's metadata as llama.cpp reads them.

use candle_core::quantized::gguf_file::Value;

use super::rope::Rope;
use crate::runtime::gguf::{Architecture, GgufFile};
use crate::runtime::value::{describe, integer};
use crate::LlmError;

/// How rotary embeddings pair dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (llama.cpp's "normal" mode; GGUF llama weights are permuted for it).
    Interleaved,
    /// First half with second half (llama.cpp's "neox" mode; qwen2, qwen3, gemma3).
    Halves,
}

/// The activation of the gated feed-forward block: `down(act(gate(x)) * up(x))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (llama, qwen2, qwen3).
    Silu,
    /// GELU, tanh approximation (gemma3).
    GeluTanh,
}

/// Sliding-window attention on some layers (gemma3's local layers).
#[derive(Debug, Clone, PartialEq)]
pub struct SlidingWindow {
    /// A local layer's query at position `p` sees keys at `p - window + 1 ..= p`.
    pub window: usize,
    /// Per layer: whether it is local (windowed).
    pub local_layers: Vec<bool>,
    /// The rotary frequencies of the local layers.
    pub rope: Rope,
}

/// Hyper-parameters of a decoder read from the GGUF metadata.
#[derive(Debug, Clone)]
pub struct Config {
    /// Width of the residual stream.
    pub embedding: usize,
    /// Decoder blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// Size of one head (`attention.key_length`, else `embedding / heads`).
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// RoPE pairing.
    pub rope_style: RopeStyle,
    /// RoPE frequencies of the global (full-attention) layers.
    pub rope: Rope,
    /// Sliding-window attention, when some layers are local.
    pub sliding_window: Option<SlidingWindow>,
    /// Factor of the attention scores (`1 / sqrt(head_dim)` in most models).
    pub attention_scale: f64,
    /// Factor of the token embeddings (gemma3: `sqrt(embedding)`).
    pub embedding_scale: Option<f32>,
    /// Feed-forward activation.
    pub activation: Activation,
    /// Per-head RMSNorm of queries and keys before RoPE (`attn_q_norm`, `attn_k_norm`).
    pub qk_norm: bool,
    /// RMSNorm of the attention and feed-forward outputs before the residual additions
    /// (`post_attention_norm`, `post_ffw_norm`).
    pub post_norms: bool,
    /// `cap * tanh(logits / cap)` on the output logits.
    pub final_logit_softcap: Option<f32>,
    /// Longest sequence the model was trained for.
    pub context_length: usize,
}

/// llama.cpp's default layer pattern of gemma3: every 6th layer is global.
const GEMMA3_SWA_PATTERN: usize = 6;
/// llama.cpp's default RoPE base of gemma3's local layers.
const GEMMA3_LOCAL_ROPE_BASE: f32 = 10_000.0;

/// Metadata of one file, keys relative to its architecture, with defaults for absent keys (a
/// present key of the wrong type is an error).
pub(super) struct Meta<'a> {
    file: &'a GgufFile,
}

impl Meta<'_> {
    fn key(&self, k: &str) -> String {
        self.file.arch_key(k)
    }

    pub(super) fn has(&self, k: &str) -> bool {
        self.file.get(&self.key(k)).is_some()
    }

    fn usize(&self, k: &str) -> Result<usize, LlmError> {
        Ok(self.file.u32(&self.key(k))? as usize)
    }

    pub(super) fn string(&self, k: &str) -> Result<&str, LlmError> {
        self.file.string(&self.key(k))
    }

    pub(super) fn usize_or(&self, k: &str, default: usize) -> Result<usize, LlmError> {
        if self.has(k) {
            self.usize(k)
        } else {
            Ok(default)
        }
    }

    pub(super) fn f32_or(&self, k: &str, default: f32) -> Result<f32, LlmError> {
        if self.has(k) {
            self.file.f32(&self.key(k))
        } else {
            Ok(default)
        }
    }

    pub(super) fn error(&self, reason: String) -> LlmError {
        LlmError::Load {
            source_name: self.file.path().display().to_string(),
            reason,
        }
    }

    /// Which layers are local: `attention.sliding_window_pattern` as one bool per layer or as
    /// a period `n` (layer `i` is local unless `i % n == n - 1`), else `default_period`.
    fn local_layers(&self, layers: usize, default_period: usize) -> Result<Vec<bool>, LlmError> {
        let key = self.key("attention.sliding_window_pattern");
        let period = match self.file.get(&key) {
            None => default_period,
            Some(Value::Array(items)) => {
                let flags: Option<Vec<bool>> = items
                    .iter()
                    .map(|v| match v {
                        Value::Bool(b) => Some(*b),
                        _ => None,
                    })
                    .collect();
                return match flags {
                    Some(f) if f.len() == layers => Ok(f),
                    _ => Err(self.error(format!(
                        "metadata key `{key}` must hold {layers} booleans, one per layer"
                    ))),
                };
            }
            Some(v) => integer(v)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    self.error(format!(
                        "metadata key `{key}` is {}, expected an integer or booleans",
                        describe(v)
                    ))
                })?,
        };
        Ok((0..layers)
            .map(|i| period == 0 || i % period < period - 1)
            .collect())
    }
}

impl Config {
    /// The configuration of `file`'s model, with llama.cpp's defaults for absent keys.
    pub fn from_gguf(file: &GgufFile) -> Result<Config, LlmError> {
        let m = Meta { file };
        let arch = file.architecture();
        let embedding = m.usize("embedding_length")?;
        let layers = m.usize("block_count")?;
        let heads = m.usize("attention.head_count")?;
        if heads == 0 || embedding == 0 {
            return Err(m.error("the model has no attention heads or no width".into()));
        }
        let kv_heads = m.usize_or("attention.head_count_kv", heads)?;
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(m.error(format!(
                "{heads} attention heads cannot be shared by {kv_heads} key/value heads"
            )));
        }
        let head_dim = m.usize_or("attention.key_length", embedding / heads)?;
        let value_dim = m.usize_or("attention.value_length", head_dim)?;
        let rotary = m.usize_or("rope.dimension_count", head_dim)?;
        if value_dim != head_dim || rotary != head_dim || head_dim % 2 != 0 {
            return Err(m.error(format!(
                "unsupported head layout: key size {head_dim}, value size {value_dim}, \
                 rotary size {rotary} (they must be equal and even)"
            )));
        }
        let context_length = m.usize_or("context_length", 4096)?;
        let rope = Rope::read(&m, context_length)?;
        let mut config = Config {
            embedding,
            layers,
            heads,
            kv_heads,
            head_dim,
            rms_eps: f64::from(m.f32_or("attention.layer_norm_rms_epsilon", 1e-5)?),
            rope_style: RopeStyle::Halves,
            rope,
            sliding_window: None,
            attention_scale: 1.0 / (head_dim as f64).sqrt(),
            embedding_scale: None,
            activation: Activation::Silu,
            qk_norm: false,
            post_norms: false,
            final_logit_softcap: None,
            context_length,
        };
        match arch {
            Architecture::Llama => config.rope_style = RopeStyle::Interleaved,
            Architecture::Qwen2 => {}
            Architecture::Qwen3 => config.qk_norm = true,
            Architecture::Gemma3 => {
                config.qk_norm = true;
                config.post_norms = true;
                config.activation = Activation::GeluTanh;
                config.embedding_scale = Some((embedding as f32).sqrt());
                // llama.cpp (after gemma_pytorch): the 27B model (62 layers) scales by the
                // width per head, the others by the key size.
                if layers == 62 {
                    config.attention_scale = 1.0 / ((embedding / heads) as f64).sqrt();
                }
                let window = m.usize_or("attention.sliding_window", 0)?;
                if window > 0 {
                    config.sliding_window = Some(SlidingWindow {
                        window,
                        local_layers: m.local_layers(layers, GEMMA3_SWA_PATTERN)?,
                        rope: Rope::read_local(&m, GEMMA3_LOCAL_ROPE_BASE)?,
                    });
                }
                let cap = m.f32_or("final_logit_softcapping", 0.0)?;
                config.final_logit_softcap = (cap != 0.0).then_some(cap);
            }
        }
        Ok(config)
    }

    /// Whether layer `i` attends through the sliding window.
    pub fn is_local(&self, i: usize) -> bool {
        self.sliding_window
            .as_ref()
            .is_some_and(|w| w.local_layers.get(i).copied().unwrap_or(false))
    }
}
