//! Our own forward pass for llama, qwen2, qwen3 and gemma3 on quantized GGUF weights.
//!
//! candle-transformers' quantized models return only the last position's logits and keep their
//! KV cache private. Scoring continuations needs the logits of every position, and prefix reuse
//! needs a cache that can be cut back to a common prefix; this module provides both. Weights stay
//! quantized (`QMatMul`, token embeddings included: rows are dequantized on lookup); activations
//! are f32. The four families share one block, whose optional parts the [`Config`] switches on,
//! following llama.cpp's graphs:
//!
//! * llama, qwen2: RMSNorm, attention (qwen2 with q/k/v biases), SiLU-gated feed-forward;
//! * qwen3: qwen2 without biases, with per-head RMSNorm of queries and keys and a head size of
//!   its own (`attention.key_length`);
//! * gemma3: embeddings scaled by `sqrt(width)`, per-head q/k norms, norms after attention and
//!   feed-forward too, GELU (tanh)-gated feed-forward, sliding-window attention with its own RoPE
//!   base on the local layers. GGUF files already store Gemma's norm weights as `1 + w`
//!   (llama.cpp's converter adds the 1), so every norm is a plain RMSNorm.
//!
//! Rotary embeddings follow llama.cpp too: unscaled, linear scaling or YaRN
//! (`rope.scaling.type`), and Llama 3's per-pair frequency factors (`rope_freqs.weight`) where the
//! file has them. Other scaling kinds (`longrope`, ...) are refused when the file is loaded.
//!
//! * [`config`]: the hyper-parameters from the GGUF metadata;
//! * [`weights`]: the tensors, by llama.cpp's names;
//! * [`rope`]: rotary embeddings (linear and YaRN scaling, Llama 3's frequency factors);
//! * [`attention`]: masks and grouped-query attention over the cache.

pub mod attention;
pub mod config;
pub mod rope;
pub mod weights;

use candle_core::{DType, Device, Module, Result, Tensor, D};

pub use config::{Activation, Config, RopeStyle, SlidingWindow};
pub use rope::{Rope, Yarn};
pub use weights::TensorSource;

use attention::causal_mask;
use rope::RopeTable;
use weights::{Block, Weights};

/// A decoder-only transformer with an explicit, truncatable KV cache.
pub struct Transformer {
    config: Config,
    weights: Weights,
    /// Rotary tables of the global layers.
    rope: RopeTable,
    /// Rotary tables of the local (sliding-window) layers, when they differ.
    local_rope: Option<RopeTable>,
    /// Per block: keys and values `[1, kv_heads, cached, head_dim]`.
    cache: Vec<Option<(Tensor, Tensor)>>,
    device: Device,
}

fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    candle_nn::ops::rms_norm(x, weight, eps as f32)
}

/// `rms_norm(x, weight)` where the architecture has that norm, else `x`.
fn maybe_norm(x: Tensor, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    match weight {
        Some(w) => rms_norm(&x, w, eps),
        None => Ok(x),
    }
}

impl Transformer {
    /// Loads the weights of a model described by `config` (see [`weights`] for the names).
    pub fn load<R: std::io::Read + std::io::Seek>(
        config: Config,
        src: &mut TensorSource<'_, R>,
    ) -> Result<Self> {
        let weights = Weights::load(&config, src)?;
        let factors = src.rope_factors(config.head_dim / 2)?;
        let table = |rope: &Rope| RopeTable::new(&config, rope, factors.as_deref(), src.device);
        let rope = table(&config.rope)?;
        let local_rope = match &config.sliding_window {
            Some(w) if w.rope != config.rope => Some(table(&w.rope)?),
            _ => None,
        };
        let layers = config.layers;
        Ok(Transformer {
            config,
            weights,
            rope,
            local_rope,
            cache: vec![None; layers],
            device: src.device.clone(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Tokens held in the KV cache.
    pub fn cached(&self) -> usize {
        self.cache
            .first()
            .and_then(|c| c.as_ref())
            .map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    /// Drops cached positions beyond `len` (a common prefix with the next input).
    pub fn truncate_cache(&mut self, len: usize) -> Result<()> {
        for entry in &mut self.cache {
            if let Some((k, v)) = entry {
                if len == 0 {
                    *entry = None;
                } else if k.dim(2)? > len {
                    *entry = Some((k.narrow(2, 0, len)?, v.narrow(2, 0, len)?));
                }
            }
        }
        Ok(())
    }

    /// The longest sequence the model supports.
    pub fn context_length(&self) -> usize {
        self.config.context_length
    }

    /// Appends `tokens` after the cached ones and returns the logits `[n, vocab]` of the last
    /// `n_logits` positions (1 for generation, all of them for scoring).
    pub fn forward(&mut self, tokens: &[u32], n_logits: usize) -> Result<Tensor> {
        let start = self.cached();
        let len = tokens.len();
        let c = &self.config;
        if start + len > c.context_length {
            candle_core::bail!(
                "{} tokens exceed the context length {}",
                start + len,
                c.context_length
            );
        }
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.weights.embeddings.embedding(&ids)?.unsqueeze(0)?;
        if let Some(scale) = c.embedding_scale {
            x = (x * f64::from(scale))?;
        }
        let mask = causal_mask(len, start, None, &self.device)?;
        let local_mask = match &c.sliding_window {
            Some(w) => causal_mask(len, start, Some(w.window), &self.device)?,
            None => None,
        };
        let eps = c.rms_eps;
        for i in 0..self.weights.blocks.len() {
            let local = self.config.is_local(i);
            let h = rms_norm(&x, &self.weights.blocks[i].attn_norm, eps)?;
            let attn = self.attention(i, &h, start, if local { &local_mask } else { &mask })?;
            let block = &self.weights.blocks[i];
            x = (x + maybe_norm(attn, block.post_attn_norm.as_ref(), eps)?)?;
            let h = rms_norm(&x, &block.ffn_norm, eps)?;
            let ffn = self.feed_forward(block, &h)?;
            x = (x + maybe_norm(ffn, block.post_ffn_norm.as_ref(), eps)?)?;
        }
        let n = n_logits.clamp(1, len);
        let last = rms_norm(&x.narrow(1, len - n, n)?, &self.weights.norm, eps)?;
        let logits = self
            .weights
            .output
            .forward(&last)?
            .squeeze(0)?
            .to_dtype(DType::F32)?;
        match self.config.final_logit_softcap {
            Some(cap) => (logits / f64::from(cap))?.tanh()? * f64::from(cap),
            None => Ok(logits),
        }
    }

    fn feed_forward(&self, block: &Block, x: &Tensor) -> Result<Tensor> {
        let gate = block.gate.forward(x)?;
        let gate = match self.config.activation {
            Activation::Silu => gate.silu()?,
            Activation::GeluTanh => gate.gelu()?,
        };
        block.down.forward(&(gate * block.up.forward(x)?)?)
    }

    fn attention(
        &mut self,
        i: usize,
        x: &Tensor,
        start: usize,
        mask: &Option<Tensor>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (hd, len, eps) = (c.head_dim, x.dim(1)?, c.rms_eps);
        let block = &self.weights.blocks[i];
        let heads = |t: Tensor, n: usize, norm: Option<&Tensor>| {
            let t = maybe_norm(t.reshape((1, len, n, hd))?, norm, eps)?;
            t.transpose(1, 2)?.contiguous()
        };
        let q = heads(block.q.forward(x)?, c.heads, block.q_norm.as_ref())?;
        let k = heads(block.k.forward(x)?, c.kv_heads, block.k_norm.as_ref())?;
        let v = heads(block.v.forward(x)?, c.kv_heads, None)?;
        let rope = match &self.local_rope {
            Some(local) if c.is_local(i) => local,
            _ => &self.rope,
        };
        let (q, k) = (
            rope.apply(&q, start, c.rope_style)?,
            rope.apply(&k, start, c.rope_style)?,
        );
        let (k, v) = match &self.cache[i] {
            Some((ck, cv)) => (Tensor::cat(&[ck, &k], 2)?, Tensor::cat(&[cv, &v], 2)?),
            None => (k, v),
        };
        self.cache[i] = Some((k.clone(), v.clone()));
        let y = attention::attend(&q, &k, &v, c.attention_scale, mask.as_ref())?;
        self.weights.blocks[i]
            .o
            .forward(&y.transpose(1, 2)?.reshape((1, len, c.heads * hd))?)
    }
}

/// Log-softmax over the vocabulary of each row of `logits` `[n, vocab]`.
pub fn log_probs(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(logits, D::Minus1)
}
