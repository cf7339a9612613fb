//! Attention pieces: causal (and sliding-window) masks, rotary tables, grouped-query attention.

use candle_core::{DType, Device, Result, Tensor};

use super::config::{Config, Rope, RopeStyle};

/// Additive mask `[len, start + len]` for `len` new tokens after `start` cached ones: new token
/// `i` (position `start + i`) sees the positions up to its own, and with a `window` only the
/// last `window` of them (llama.cpp's standard sliding window). `None` when nothing is masked.
pub fn causal_mask(
    len: usize,
    start: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let total = start + len;
    let visible = |i: usize, j: usize| {
        let p = start + i;
        j <= p && window.is_none_or(|w| p - j < w)
    };
    if (0..len).all(|i| (0..total).all(|j| visible(i, j))) {
        return Ok(None);
    }
    let values: Vec<f32> = (0..len)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if visible(i, j) {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(values, (len, total), device).map(Some)
}

/// Cosine and sine tables `[context, head_dim / 2]` of one set of rotary frequencies.
pub struct RopeTable {
    cos: Tensor,
    sin: Tensor,
}

impl RopeTable {
    /// The tables of `rope` for every position of the model's context.
    pub fn new(c: &Config, rope: Rope, device: &Device) -> Result<Self> {
        let hd = c.head_dim;
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| rope.scale / rope.base.powf(2.0 * i as f32 / hd as f32))
            .collect();
        let inv = Tensor::from_vec(inv, (1, hd / 2), device)?;
        let positions = Tensor::arange(0u32, c.context_length as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((c.context_length, 1))?;
        let angles = positions.broadcast_mul(&inv)?;
        Ok(RopeTable {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// Rotates `x` `[1, heads, len, head_dim]` whose first position is `start`.
    pub fn apply(&self, x: &Tensor, start: usize, style: RopeStyle) -> Result<Tensor> {
        let len = x.dim(2)?;
        let cos = self.cos.narrow(0, start, len)?;
        let sin = self.sin.narrow(0, start, len)?;
        match style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(x, &cos, &sin),
            RopeStyle::Halves => candle_nn::rotary_emb::rope(x, &cos, &sin),
        }
    }
}

/// `softmax(q k^T * scale + mask) v` with `k` and `v` shared by groups of query heads:
/// `q` `[1, heads, len, d]`, `k`, `v` `[1, kv_heads, total, d]`, result `[1, heads, len, d]`.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let group = q.dim(1)? / k.dim(1)?;
    let repeat = |t: &Tensor| -> Result<Tensor> {
        if group == 1 {
            return Ok(t.clone());
        }
        let (b, n, s, d) = t.dims4()?;
        t.unsqueeze(2)?
            .expand((b, n, group, s, d))?
            .reshape((b, n * group, s, d))
    };
    let (k, v) = (repeat(k)?, repeat(v)?);
    let scores = (q.matmul(&k.t()?)? * scale)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v.contiguous()?)
}
