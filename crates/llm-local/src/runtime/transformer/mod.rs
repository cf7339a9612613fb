//! Our own forward pass for the llama family (llama, qwen2) on quantized GGUF weights.
//!
//! candle-transformers' quantized models return only the last position's logits and keep their
//! KV cache private. Scoring continuations needs the logits of every position, and prefix reuse
//! needs a cache that can be cut back to a common prefix; this module provides both. Weights stay
//! quantized (`QMatMul`); activations are f32.

use candle_core::quantized::{gguf_file, QMatMul};
use candle_core::{DType, Device, Module, Result, Tensor, D};

/// How rotary embeddings pair dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (llama.cpp's "normal" mode; GGUF llama weights are permuted for it).
    Interleaved,
    /// First half with second half (llama.cpp's "neox" mode; qwen2).
    Halves,
}

/// Hyper-parameters read from the GGUF metadata.
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
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// RoPE pairing.
    pub rope_style: RopeStyle,
    /// Longest sequence the model was trained for.
    pub context_length: usize,
}

impl Config {
    fn head_dim(&self) -> usize {
        self.embedding / self.heads
    }
}

struct Linear {
    weight: QMatMul,
    bias: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.weight.forward(x)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

struct Block {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A decoder-only transformer with an explicit, truncatable KV cache.
pub struct Transformer {
    config: Config,
    embeddings: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    output: QMatMul,
    cos: Tensor,
    sin: Tensor,
    /// Per block: keys and values `[1, kv_heads, cached, head_dim]`.
    cache: Vec<Option<(Tensor, Tensor)>>,
    device: Device,
}

/// Reads tensors of one GGUF file.
pub struct TensorSource<'a, R> {
    /// The parsed header.
    pub content: &'a gguf_file::Content,
    /// The file.
    pub reader: &'a mut R,
    /// Where tensors go.
    pub device: &'a Device,
}

impl<R: std::io::Read + std::io::Seek> TensorSource<'_, R> {
    fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    fn dense(&mut self, name: &str) -> Result<Tensor> {
        self.content
            .tensor(self.reader, name, self.device)?
            .dequantize(self.device)
    }

    fn matmul(&mut self, name: &str) -> Result<QMatMul> {
        QMatMul::from_qtensor(self.content.tensor(self.reader, name, self.device)?)
    }

    fn linear(&mut self, prefix: &str) -> Result<Linear> {
        let bias_name = format!("{prefix}.bias");
        let bias = if self.has(&bias_name) {
            Some(self.dense(&bias_name)?)
        } else {
            None
        };
        Ok(Linear {
            weight: self.matmul(&format!("{prefix}.weight"))?,
            bias,
        })
    }
}

impl Transformer {
    /// Loads the weights named as llama.cpp names them (`token_embd`, `blk.N.attn_q`, ...); the
    /// output projection falls back to the token embeddings when the file ties them.
    pub fn load<R: std::io::Read + std::io::Seek>(
        config: Config,
        src: &mut TensorSource<'_, R>,
    ) -> Result<Self> {
        let embeddings = src.dense("token_embd.weight")?;
        let mut blocks = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let p = |n: &str| format!("blk.{i}.{n}");
            blocks.push(Block {
                attn_norm: src.dense(&p("attn_norm.weight"))?,
                q: src.linear(&p("attn_q"))?,
                k: src.linear(&p("attn_k"))?,
                v: src.linear(&p("attn_v"))?,
                o: src.linear(&p("attn_output"))?,
                ffn_norm: src.dense(&p("ffn_norm.weight"))?,
                gate: src.linear(&p("ffn_gate"))?,
                up: src.linear(&p("ffn_up"))?,
                down: src.linear(&p("ffn_down"))?,
            });
        }
        let norm = src.dense("output_norm.weight")?;
        let output = if src.has("output.weight") {
            src.matmul("output.weight")?
        } else {
            QMatMul::from_qtensor(src.content.tensor(
                src.reader,
                "token_embd.weight",
                src.device,
            )?)?
        };
        let (cos, sin) = rope_tables(&config, src.device)?;
        let layers = config.layers;
        Ok(Transformer {
            config,
            embeddings,
            blocks,
            norm,
            output,
            cos,
            sin,
            cache: vec![None; layers],
            device: src.device.clone(),
        })
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
        if start + len > self.config.context_length {
            candle_core::bail!(
                "{} tokens exceed the context length {}",
                start + len,
                self.config.context_length
            );
        }
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embeddings.index_select(&ids, 0)?.unsqueeze(0)?;
        let mask = causal_mask(len, start, &self.device)?;
        for i in 0..self.blocks.len() {
            let h = candle_nn::ops::rms_norm(
                &x,
                &self.blocks[i].attn_norm,
                self.config.rms_eps as f32,
            )?;
            let attn = self.attention(i, &h, start, mask.as_ref())?;
            x = (x + attn)?;
            let block = &self.blocks[i];
            let h = candle_nn::ops::rms_norm(&x, &block.ffn_norm, self.config.rms_eps as f32)?;
            let mlp = block
                .down
                .forward(&(block.gate.forward(&h)?.silu()? * block.up.forward(&h)?)?)?;
            x = (x + mlp)?;
        }
        let n = n_logits.clamp(1, len);
        let last = x.narrow(1, len - n, n)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.config.rms_eps as f32)?;
        self.output.forward(&last)?.squeeze(0)?.to_dtype(DType::F32)
    }

    fn attention(
        &mut self,
        i: usize,
        x: &Tensor,
        start: usize,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (hd, len) = (c.head_dim(), x.dim(1)?);
        let block = &self.blocks[i];
        let heads = |t: Tensor, n: usize| t.reshape((1, len, n, hd))?.transpose(1, 2)?.contiguous();
        let q = heads(block.q.forward(x)?, c.heads)?;
        let k = heads(block.k.forward(x)?, c.kv_heads)?;
        let v = heads(block.v.forward(x)?, c.kv_heads)?;
        let cos = self.cos.narrow(0, start, len)?;
        let sin = self.sin.narrow(0, start, len)?;
        let rope = |t: &Tensor| match c.rope_style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(t, &cos, &sin),
            RopeStyle::Halves => candle_nn::rotary_emb::rope(t, &cos, &sin),
        };
        let (q, k) = (rope(&q)?, rope(&k)?);
        let (k, v) = match &self.cache[i] {
            Some((ck, cv)) => (Tensor::cat(&[ck, &k], 2)?, Tensor::cat(&[cv, &v], 2)?),
            None => (k, v),
        };
        self.cache[i] = Some((k.clone(), v.clone()));
        let group = c.heads / c.kv_heads;
        let repeat = |t: &Tensor| -> Result<Tensor> {
            if group == 1 {
                return Ok(t.clone());
            }
            let (b, n, s, d) = t.dims4()?;
            t.unsqueeze(2)?
                .expand((b, n, group, s, d))?
                .reshape((b, n * group, s, d))
        };
        let (k, v) = (repeat(&k)?, repeat(&v)?);
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = weights
            .matmul(&v.contiguous()?)?
            .transpose(1, 2)?
            .reshape((1, len, c.heads * hd))?;
        self.blocks[i].o.forward(&y)
    }
}

/// Additive mask `[len, start + len]`: position `i` of the new tokens sees the cache and the new
/// tokens up to itself. `None` for a single token.
fn causal_mask(len: usize, start: usize, device: &Device) -> Result<Option<Tensor>> {
    if len == 1 {
        return Ok(None);
    }
    let total = start + len;
    let values: Vec<f32> = (0..len)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j > start + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(values, (len, total), device).map(Some)
}

/// Cosine and sine tables `[context, head_dim / 2]`.
fn rope_tables(c: &Config, device: &Device) -> Result<(Tensor, Tensor)> {
    let hd = c.head_dim();
    let inv: Vec<f32> = (0..hd / 2)
        .map(|i| 1.0 / c.rope_base.powf(2.0 * i as f32 / hd as f32))
        .collect();
    let inv = Tensor::from_vec(inv, (1, hd / 2), device)?;
    let positions = Tensor::arange(0u32, c.context_length as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((c.context_length, 1))?;
    let angles = positions.broadcast_mul(&inv)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// Log-softmax over the vocabulary of each row of `logits` `[n, vocab]`.
pub fn log_probs(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(logits, D::Minus1)
}
