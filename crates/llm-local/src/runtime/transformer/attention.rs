//! Attention pieces: causal (and sliding-window) masks and grouped-query attention.

use candle_core::{Device, Result, Tensor};

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
