//! The weights of a decoder, read from a GGUF file under llama.cpp's tensor names.

use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Result, Tensor, D};

use super::config::Config;

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

    /// A dense tensor that only some architectures have.
    fn dense_if(&mut self, wanted: bool, name: &str) -> Result<Option<Tensor>> {
        wanted.then(|| self.dense(name)).transpose()
    }

    /// The per-pair frequency factors of the rotary embeddings (`rope_freqs.weight`, Llama 3),
    /// when the file has them: `pairs` positive numbers.
    pub(super) fn rope_factors(&mut self, pairs: usize) -> Result<Option<Vec<f32>>> {
        const NAME: &str = "rope_freqs.weight";
        if !self.has(NAME) {
            return Ok(None);
        }
        let factors = self.dense(NAME)?.flatten_all()?.to_vec1::<f32>()?;
        if factors.len() != pairs || !factors.iter().all(|f| f.is_finite() && *f > 0.0) {
            candle_core::bail!(
                "`{NAME}` must hold {pairs} positive factors (one per rotary pair), it holds {}",
                factors.len()
            );
        }
        Ok(Some(factors))
    }

    /// A quantized weight for matrix products. Q4_1, Q5_0 and Q5_1 weights are requantized to
    /// Q8_0: candle has no SIMD kernel for them, and the Q8_0 one runs SmolLM2-135M (Q4_1) 2.2x
    /// faster in decode and 4.9x in prefill, at a small cost in agreement with llama.cpp
    /// (docs/BENCHMARKS.md).
    fn matmul(&mut self, name: &str) -> Result<QMatMul> {
        let tensor = self.content.tensor(self.reader, name, self.device)?;
        if matches!(
            tensor.dtype(),
            GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1
        ) {
            let dense = tensor.dequantize(self.device)?;
            return QMatMul::from_qtensor(QTensor::quantize(&dense, GgmlDType::Q8_0)?);
        }
        QMatMul::from_qtensor(tensor)
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

/// A quantized matrix with an optional bias.
pub(super) struct Linear {
    weight: QMatMul,
    bias: Option<Tensor>,
}

/// Rows of input from which a block's Q8_0 matrix product dequantizes its weight to f32 and runs
/// as one blocked gemm instead of candle's quantized dot product per row and output: prefill and
/// scoring. Decode (one row) stays quantized, and so do k-quants, whose dequantization costs more
/// than it saves (Qwen2.5-1.5B's prefill fell from 128 to 36 tokens/s).
const DENSE_FROM_ROWS: usize = 32;

impl Linear {
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / x.dim(D::Minus1)?.max(1);
        let y = match &self.weight {
            QMatMul::QTensor(q) if rows >= DENSE_FROM_ROWS && q.dtype() == GgmlDType::Q8_0 => {
                x.broadcast_matmul(&q.dequantize(&q.device())?.t()?)?
            }
            _ => self.weight.forward(x)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// One decoder block; the optional norms exist in the architectures that have them.
pub(super) struct Block {
    pub(super) attn_norm: Tensor,
    pub(super) q: Linear,
    pub(super) k: Linear,
    pub(super) v: Linear,
    pub(super) q_norm: Option<Tensor>,
    pub(super) k_norm: Option<Tensor>,
    pub(super) o: Linear,
    pub(super) post_attn_norm: Option<Tensor>,
    pub(super) ffn_norm: Tensor,
    pub(super) gate: Linear,
    pub(super) up: Linear,
    pub(super) down: Linear,
    pub(super) post_ffn_norm: Option<Tensor>,
}

/// Every weight of a decoder.
pub(super) struct Weights {
    /// Token embeddings, kept quantized; rows are dequantized on lookup.
    pub(super) embeddings: QMatMul,
    pub(super) blocks: Vec<Block>,
    pub(super) norm: Tensor,
    pub(super) output: QMatMul,
}

impl Weights {
    /// Loads the weights named as llama.cpp names them (`token_embd`, `blk.N.attn_q`, ...); the
    /// output projection shares the token embeddings when the file ties them.
    pub(super) fn load<R: std::io::Read + std::io::Seek>(
        config: &Config,
        src: &mut TensorSource<'_, R>,
    ) -> Result<Self> {
        let embeddings = Arc::new(src.content.tensor(
            src.reader,
            "token_embd.weight",
            src.device,
        )?);
        let mut blocks = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let p = |n: &str| format!("blk.{i}.{n}");
            let (qk, post) = (config.qk_norm, config.post_norms);
            blocks.push(Block {
                attn_norm: src.dense(&p("attn_norm.weight"))?,
                q: src.linear(&p("attn_q"))?,
                k: src.linear(&p("attn_k"))?,
                v: src.linear(&p("attn_v"))?,
                q_norm: src.dense_if(qk, &p("attn_q_norm.weight"))?,
                k_norm: src.dense_if(qk, &p("attn_k_norm.weight"))?,
                o: src.linear(&p("attn_output"))?,
                post_attn_norm: src.dense_if(post, &p("post_attention_norm.weight"))?,
                ffn_norm: src.dense(&p("ffn_norm.weight"))?,
                gate: src.linear(&p("ffn_gate"))?,
                up: src.linear(&p("ffn_up"))?,
                down: src.linear(&p("ffn_down"))?,
                post_ffn_norm: src.dense_if(post, &p("post_ffw_norm.weight"))?,
            });
        }
        let norm = src.dense("output_norm.weight")?;
        let output = if src.has("output.weight") {
            src.matmul("output.weight")?
        } else {
            QMatMul::from_arc(embeddings.clone())?
        };
        Ok(Weights {
            embeddings: QMatMul::from_arc(embeddings)?,
            blocks,
            norm,
            output,
        })
    }
}
