//! Rotary position embeddings as llama.cpp computes them (ggml's `rope_yarn`): the frequencies
//! the metadata describes (unscaled, linear scaling, YaRN), Llama 3's per-pair frequency factors
//! (`rope_freqs.weight`) and the cosine and sine tables of every position.

use std::f32::consts::PI;

use candle_core::{DType, Device, Result, Tensor};

use super::config::{Config, Meta, RopeStyle};
use crate::LlmError;

/// The rotary frequencies of a set of layers. Pair `i` of a head of size `d` turns by
/// `theta_i = base^(-2i/d) / f_i` per position without scaling (`f_i`: the file's frequency
/// factor of the pair, 1 without `rope_freqs.weight`), by `scale * theta_i` with linear scaling,
/// and with YaRN by a mix of both that keeps fast pairs and interpolates slow ones. Cosines and
/// sines are multiplied by `magnitude`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    /// Base frequency (`rope.freq_base`).
    pub base: f32,
    /// Position scale, `1 / rope.scaling.factor` (1 without scaling).
    pub scale: f32,
    /// YaRN's parameters when `rope.scaling.type` is `yarn` (else the scaling is linear).
    pub yarn: Option<Yarn>,
    /// Factor of the cosines and sines: `rope.scaling.attn_factor` (default 1), with YaRN times
    /// its magnitude correction.
    pub magnitude: f32,
}

/// YaRN ("Yet another RoPE extensioN") parameters, with llama.cpp's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yarn {
    /// The context length the model was trained with before the extension
    /// (`rope.scaling.original_context_length`, default `context_length`).
    pub original_context: usize,
    /// Weight of extrapolation in the mix (`rope.scaling.yarn_ext_factor`, default 1).
    pub ext_factor: f32,
    /// Pairs turning more than this many times over the original context keep their frequency
    /// (`rope.scaling.yarn_beta_fast`, default 32).
    pub beta_fast: f32,
    /// Pairs turning fewer times than this are fully interpolated
    /// (`rope.scaling.yarn_beta_slow`, default 1).
    pub beta_slow: f32,
}

/// YaRN's magnitude correction of a context extended `factor` times (llama.cpp's `get_mscale`).
fn yarn_magnitude(factor: f32) -> f32 {
    if factor <= 1.0 {
        1.0
    } else {
        0.1 * factor.ln() + 1.0
    }
}

impl Rope {
    /// Unscaled frequencies of `base`.
    pub fn unscaled(base: f32) -> Rope {
        Rope {
            base,
            scale: 1.0,
            yarn: None,
            magnitude: 1.0,
        }
    }

    /// The local (sliding-window) layers' frequencies: `rope.freq_base_swa`, else `default_base`,
    /// unscaled (llama.cpp scales no local layer; YaRN's ramp has no effect without a scale),
    /// with the attention factor.
    pub(super) fn read_local(
        m: &Meta<'_>,
        default_base: f32,
    ) -> std::result::Result<Rope, LlmError> {
        Rope::read_unscaled(m, "rope.freq_base_swa", default_base)
    }

    /// Unscaled frequencies of the base under `base_key`, with `rope.scaling.attn_factor`.
    fn read_unscaled(
        m: &Meta<'_>,
        base_key: &str,
        default_base: f32,
    ) -> std::result::Result<Rope, LlmError> {
        Ok(Rope {
            magnitude: m.f32_or("rope.scaling.attn_factor", 1.0)?,
            ..Rope::unscaled(m.f32_or(base_key, default_base)?)
        })
    }

    /// The global layers' frequencies as llama.cpp reads them: `rope.freq_base` (default
    /// 10,000), `rope.scaling.type` `none`, `linear` (the default) or `yarn` with its factor
    /// (`rope.scaling.factor`, or the older `rope.scale_linear`). Other kinds are errors naming
    /// the file and the kind. YaRN's original context defaults to `context_length`. llama.cpp
    /// reads the `rope.scaling.yarn_*` keys only for a few architectures none of ours is; we
    /// honour them where present, as transformers does.
    pub(super) fn read(m: &Meta<'_>, context_length: usize) -> std::result::Result<Rope, LlmError> {
        let kind = if m.has("rope.scaling.type") {
            m.string("rope.scaling.type")?
        } else {
            "linear"
        };
        let mut factor = m.f32_or("rope.scaling.factor", 0.0)?;
        if factor == 0.0 {
            factor = m.f32_or("rope.scale_linear", 0.0)?;
        }
        let factor = if factor == 0.0 || kind == "none" {
            1.0
        } else {
            factor
        };
        let mut rope = Rope {
            scale: 1.0 / factor,
            ..Rope::read_unscaled(m, "rope.freq_base", 10_000.0)?
        };
        match kind {
            "none" | "linear" => {}
            "yarn" => {
                let yarn = Yarn {
                    original_context: m
                        .usize_or("rope.scaling.original_context_length", context_length)?,
                    ext_factor: m.f32_or("rope.scaling.yarn_ext_factor", 1.0)?,
                    beta_fast: m.f32_or("rope.scaling.yarn_beta_fast", 32.0)?,
                    beta_slow: m.f32_or("rope.scaling.yarn_beta_slow", 1.0)?,
                };
                // llama.cpp multiplies by the correction only where extrapolation mixes in.
                let correction = if yarn.ext_factor == 0.0 {
                    1.0
                } else {
                    yarn_magnitude(factor)
                };
                rope.magnitude *= m.f32_or("rope.scaling.yarn_attn_factor", correction)?;
                rope.yarn = Some(yarn);
            }
            _ => {
                return Err(m.error(format!(
                    "RoPE scaling `{kind}` is not supported (only none, linear and yarn are)"
                )))
            }
        }
        Ok(rope)
    }

    /// Angle per position of each of the `head_dim / 2` pairs, divided by `factors` (one per
    /// pair; pairs beyond them keep a factor of 1) when given.
    pub fn frequencies(&self, head_dim: usize, factors: Option<&[f32]>) -> Vec<f32> {
        let dims = head_dim as f32;
        let ramp = self.yarn.map(|y| y.ramp(dims, self.base));
        (0..head_dim / 2)
            .map(|i| {
                let extrapolated = 1.0
                    / (self.base.powf(2.0 * i as f32 / dims)
                        * factors.and_then(|f| f.get(i)).unwrap_or(&1.0));
                let interpolated = self.scale * extrapolated;
                match &ramp {
                    Some(ramp) => {
                        let mix = ramp(i);
                        interpolated * (1.0 - mix) + extrapolated * mix
                    }
                    None => interpolated,
                }
            })
            .collect()
    }
}

impl Yarn {
    /// ggml's `ggml_rope_yarn_corr_dim`: the pair index (fractional) that turns `rotations`
    /// times over the original context.
    fn correction_dim(&self, dims: f32, rotations: f32, base: f32) -> f32 {
        dims * (self.original_context as f32 / (rotations * 2.0 * PI)).ln() / (2.0 * base.ln())
    }

    /// The share of extrapolation of pair `i` (ggml's `rope_yarn_ramp` times `ext_factor`): all
    /// of it up to the pair that turns `beta_fast` times over the original context, none from
    /// the one that turns `beta_slow` times, linear between.
    fn ramp(self, dims: f32, base: f32) -> impl Fn(usize) -> f32 {
        let low = self
            .correction_dim(dims, self.beta_fast, base)
            .floor()
            .max(0.0);
        let high = self
            .correction_dim(dims, self.beta_slow, base)
            .ceil()
            .min(dims - 1.0);
        move |i| {
            let y = (i as f32 - low) / (high - low).max(0.001);
            (1.0 - y.clamp(0.0, 1.0)) * self.ext_factor
        }
    }
}

/// Cosine and sine tables `[context, head_dim / 2]` of one set of rotary frequencies.
pub struct RopeTable {
    cos: Tensor,
    sin: Tensor,
}

impl RopeTable {
    /// The tables of `rope` for every position of the model's context, with the file's
    /// per-pair frequency `factors` (`rope_freqs.weight`) when it has them.
    pub fn new(c: &Config, rope: &Rope, factors: Option<&[f32]>, device: &Device) -> Result<Self> {
        let pairs = c.head_dim / 2;
        let inv = Tensor::from_vec(rope.frequencies(c.head_dim, factors), (1, pairs), device)?;
        let positions = Tensor::arange(0u32, c.context_length as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((c.context_length, 1))?;
        let angles = positions.broadcast_mul(&inv)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        if rope.magnitude == 1.0 {
            return Ok(RopeTable { cos, sin });
        }
        let m = f64::from(rope.magnitude);
        Ok(RopeTable {
            cos: (cos * m)?,
            sin: (sin * m)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn yarn() -> Rope {
        Rope {
            scale: 0.25,
            yarn: Some(Yarn {
                original_context: 64,
                ext_factor: 1.0,
                beta_fast: 32.0,
                beta_slow: 1.0,
            }),
            ..Rope::unscaled(10_000.0)
        }
    }

    #[test]
    fn yarn_keeps_fast_pairs_and_interpolates_slow_ones() {
        let plain = Rope::unscaled(10_000.0).frequencies(32, None);
        let scaled = yarn().frequencies(32, None);
        // Correction dims for 32 dims, 64 positions, base 10^4: beta_fast 32 -> floor(-1.99) -> 0,
        // beta_slow 1 -> ceil(4.03) = 5: pair 0 extrapolates, pairs 5.. are interpolated.
        assert_eq!(scaled[0], plain[0]);
        for i in 5..16 {
            assert!(
                (scaled[i] - 0.25 * plain[i]).abs() <= 1e-7 * plain[i],
                "pair {i}"
            );
        }
        for i in 1..5 {
            let mix = 1.0 - i as f32 / 5.0;
            let want = plain[i] * (0.25 * (1.0 - mix) + mix);
            assert!((scaled[i] - want).abs() <= 1e-6 * want, "pair {i}");
        }
    }

    #[test]
    fn frequency_factors_divide_each_pair() {
        let factors: Vec<f32> = (0..8).map(|i| 1.0 + i as f32).collect();
        let plain = Rope::unscaled(500.0).frequencies(16, None);
        let divided = Rope::unscaled(500.0).frequencies(16, Some(&factors));
        for ((p, d), f) in plain.iter().zip(&divided).zip(&factors) {
            assert!((p / f - d).abs() <= 1e-6 * p);
        }
    }
}
