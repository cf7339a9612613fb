//! Batch normalization as a per-channel affine map `y = (x - center[c]) * scale[c] + shift[c]`.
//!
//! In training, the forward op first takes each channel's mean and biased variance over the
//! batch (in parallel over channels, two passes, sums in f32 blocks added in f64), then writes
//! the output in one pass over the (image, channel) planes; it keeps the statistics, which the
//! backward pass reuses and the caller reads for the running statistics. In evaluation the scale and shift come from
//! the running statistics through candle's ops on the small `[C]` tensors, so autograd reaches
//! every parameter that is tracked, and the op itself is the one pass. One backward op serves
//! both: per channel `Σ dy` and `Σ dy * (x - center)`, then the input gradient in one pass.

use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::{
    activation::{per_kind, Rectifier},
    append_planes_of, bwd_through_gradients, channel_sums, data, expect_gradient, planes_of,
    unpack, Gradients, Traced,
};

/// Batch normalization with batch statistics (training) on the CPU; returns the output and the
/// batch mean and unbiased variance per channel (plain tensors, outside the graph).
pub fn batch_norm_train(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (op, [x, w, b]) = BatchNormTrain::new(x, weight, bias, eps)?;
    let y = x.apply_op3(&w, &b, op.clone())?;
    let (mean, var) = op.statistics(&x)?;
    Ok((y, mean, var))
}

/// [`batch_norm_train`] outside candle's graph, optionally followed by a rectifier in the same
/// pass (the backward pass then recomputes the normalized value to find the kink); inputs
/// `[x, weight, bias]` (ones and zeros where the layer has no affine parameters).
pub fn batch_norm_train_traced(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    then: Option<Rectifier>,
) -> Result<(Traced, Tensor, Tensor)> {
    let (mut op, inputs) = BatchNormTrain::new(x, weight, bias, eps)?;
    op.then = then;
    let output = inputs[0].apply_op3_no_bwd(&inputs[1], &inputs[2], &op)?;
    let (mean, var) = op.statistics(&inputs[0])?;
    let traced = Traced {
        output,
        inputs: inputs.into(),
        backward: Box::new(op),
    };
    Ok((traced, mean, var))
}

/// Batch normalization with given statistics (evaluation) on the CPU.
pub fn batch_norm_eval(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let scale = var.flatten_all()?.affine(1.0, eps)?.sqrt()?.recip()?;
    let scale = match weight {
        Some(w) => scale.mul(&w.flatten_all()?)?,
        None => scale,
    };
    let moved = mean.flatten_all()?.mul(&scale)?;
    let shift = match bias {
        Some(b) => b.flatten_all()?.sub(&moved)?,
        None => moved.neg()?,
    };
    x.contiguous()?
        .apply_op3(&scale.contiguous()?, &shift.contiguous()?, ChannelAffine)
}

/// Channels and pixels per plane of an NCHW input, checking that each per-channel parameter
/// has one value per channel.
fn dims(x: &Layout, params: &[&Layout]) -> Result<(usize, usize)> {
    let (_, channels, h, w) = x.shape().dims4()?;
    if let Some(p) = params.iter().find(|p| p.shape().elem_count() != channels) {
        candle_core::bail!(
            "batch norm: parameter {:?} for {channels} channels",
            p.shape()
        )
    }
    Ok((channels, h * w))
}

/// `y = (x - center[c]) * scale[c] + shift[c]` over the planes of NCHW data, rectified by
/// `then` if given.
fn affine(
    x: &[f32],
    (channels, hw): (usize, usize),
    (center, scale, shift): (&[f32], &[f32], &[f32]),
    then: Option<Rectifier>,
) -> Vec<f32> {
    // Plane `p`'s input and its channel's coefficients.
    let plane = |p: usize| {
        let c = p % channels;
        (&x[p * hw..][..hw], center[c], scale[c], shift[c])
    };
    match then {
        None => planes_of(x.len(), hw, |p| {
            let (x, m, s, b) = plane(p);
            x.iter().map(move |&v| (v - m) * s + b)
        }),
        Some(r) => per_kind!(r, |r| planes_of(x.len(), hw, |p| {
            let (x, m, s, b) = plane(p);
            x.iter().map(move |&v| r.value((v - m) * s + b))
        })),
    }
}

/// What the forward pass of a training BatchNorm learned about its batch, per channel.
#[derive(Debug)]
struct Stats {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    unbiased: Vec<f32>,
    /// `weight * invstd`.
    scale: Vec<f32>,
}

/// The training op on `(x, weight, bias)`; it keeps the batch statistics it computes.
#[derive(Debug, Clone)]
struct BatchNormTrain {
    eps: f64,
    stats: Arc<OnceLock<Stats>>,
    /// A rectifier applied to the output in the same pass.
    then: Option<Rectifier>,
}

impl BatchNormTrain {
    /// The op and its contiguous inputs, ones and zeros standing in for absent parameters.
    fn new(
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Self, [Tensor; 3])> {
        let (_, channels, _, _) = x.dims4()?;
        let param = |p: Option<&Tensor>, fill: f32| match p {
            Some(t) => t.contiguous(),
            None => Tensor::full(fill, channels, x.device()),
        };
        let op = BatchNormTrain {
            eps,
            stats: Arc::new(OnceLock::new()),
            then: None,
        };
        Ok((
            op,
            [x.contiguous()?, param(weight, 1.0)?, param(bias, 0.0)?],
        ))
    }

    /// The batch mean and unbiased variance the forward pass took.
    fn statistics(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let Some(stats) = self.stats.get() else {
            candle_core::bail!("batch_norm_train: the forward pass kept no statistics")
        };
        let channels = stats.mean.len();
        Ok((
            Tensor::from_vec(stats.mean.clone(), channels, x.device())?,
            Tensor::from_vec(stats.unbiased.clone(), channels, x.device())?,
        ))
    }
}

impl Gradients for BatchNormTrain {
    fn gradients(
        &self,
        inputs: &[&Tensor],
        need: &[bool],
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let Some(stats) = self.stats.get() else {
            candle_core::bail!("batch_norm_train: backward before forward")
        };
        let then = match (self.then, inputs.get(2)) {
            // The rectifier's kink is found again from the bias, the op's third input.
            (Some(r), Some(bias)) => Some((r, bias.to_vec1::<f32>()?)),
            (Some(_), None) => candle_core::bail!("batch norm backward: {} inputs", inputs.len()),
            (None, _) => None,
        };
        AffineBackward {
            center: stats.mean.clone(),
            scale: stats.scale.clone(),
            invstd: Some(stats.invstd.clone()),
            need: std::array::from_fn(|i| need.get(i) == Some(&true)),
            then,
        }
        .run(grad, inputs)
    }
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "native-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (channels, hw) = dims(xl, &[wl, bl])?;
        let (x, w, b) = (data(x, xl)?, data(w, wl)?, data(b, bl)?);
        let m = (x.len() / channels.max(1)) as f64;
        let sums = channel_sums((x, x), (channels, hw), |_| |_, v, _| v);
        let means: Vec<f32> = sums.iter().map(|&[sum]| (sum / m) as f32).collect();
        let squares = channel_sums((x, x), (channels, hw), |c| {
            let center = means[c];
            move |_, v: f32, _| (v - center) * (v - center)
        });
        let moments: Vec<(f64, f64)> = sums
            .iter()
            .zip(squares)
            .map(|(&[sum], [squares])| (sum / m, squares / m))
            .collect();
        let invstd: Vec<f64> = moments
            .iter()
            .map(|&(_, var)| (var + self.eps).sqrt().recip())
            .collect();
        let correction = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
        let stats = Stats {
            mean: moments.iter().map(|&(mean, _)| mean as f32).collect(),
            invstd: invstd.iter().map(|&i| i as f32).collect(),
            unbiased: moments
                .iter()
                .map(|&(_, var)| (var * correction) as f32)
                .collect(),
            scale: invstd
                .iter()
                .zip(w)
                .map(|(&i, &w)| (i * f64::from(w)) as f32)
                .collect(),
        };
        let y = affine(x, (channels, hw), (&stats.mean, &stats.scale, b), self.then);
        if self.stats.set(stats).is_err() {
            candle_core::bail!("batch_norm_train: the op ran twice")
        }
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    bwd_through_gradients!(3);
}

/// The evaluation op on `(x, scale, shift)`: `y = x * scale[c] + shift[c]`.
#[derive(Debug, Clone, Copy)]
struct ChannelAffine;

impl CustomOp3 for ChannelAffine {
    fn name(&self) -> &'static str {
        "native-batch-norm-eval"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        scale: &CpuStorage,
        sl: &Layout,
        shift: &CpuStorage,
        hl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (channels, hw) = dims(xl, &[sl, hl])?;
        let zeros = vec![0.0; channels];
        let y = affine(
            data(x, xl)?,
            (channels, hw),
            (&zeros, data(scale, sl)?, data(shift, hl)?),
            None,
        );
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    bwd_through_gradients!(3);
}

impl Gradients for ChannelAffine {
    fn gradients(
        &self,
        inputs: &[&Tensor],
        need: &[bool],
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let Some(scale) = inputs.get(1) else {
            candle_core::bail!("batch norm backward: {} inputs", inputs.len())
        };
        let scale = scale.to_vec1::<f32>()?;
        AffineBackward {
            center: vec![0.0; scale.len()],
            scale,
            invstd: None,
            need: std::array::from_fn(|i| need.get(i) == Some(&true)),
            then: None,
        }
        .run(grad, inputs)
    }
}

/// The gradients of `y = (x - center) * scale + shift` on `(dy, x)`, packed
/// `[x?, first?, second?]` for the forward op's inputs `(x, first, second)`.
#[derive(Debug, Clone)]
struct AffineBackward {
    center: Vec<f32>,
    scale: Vec<f32>,
    /// Training: `1/σ` of the batch. The statistics then depend on `x` (its gradient gets the
    /// terms through the mean and variance), and the first parameter is the weight, whose
    /// gradient is `Σ dy * x̂`. Evaluation: `None`; the first parameter is the scale itself.
    invstd: Option<Vec<f32>>,
    /// Which of `(x, first, second)` need a gradient.
    need: [bool; 3],
    /// A rectifier the forward pass applied to its output, with the shift, so that its kink
    /// can be found again from `x`.
    then: Option<(Rectifier, Vec<f32>)>,
}

impl AffineBackward {
    /// Applies the op to the output gradient and unpacks the gradients of `inputs`.
    fn run(&self, grad: &Tensor, inputs: &[&Tensor]) -> Result<Vec<Option<Tensor>>> {
        let [x, first, second] = inputs else {
            candle_core::bail!("batch norm backward: {} inputs", inputs.len())
        };
        if !self.need.contains(&true) {
            return Ok(vec![None; 3]);
        }
        let packed = grad.contiguous()?.apply_op2_no_bwd(x, self)?;
        let parts = [*x, *first, *second];
        let grads: [Option<Tensor>; 3] = unpack(
            &packed,
            std::array::from_fn(|i| self.need[i].then_some(parts[i])),
        )?;
        Ok(grads.into())
    }

    /// The packed gradients from the output gradient `dy` and the input `x`.
    fn compute(&self, dy: &[f32], x: &[f32], dims: (usize, usize)) -> Vec<f32> {
        match &self.then {
            None => self.compute_with(dy, x, dims, |_| |g, _| g),
            Some((r, shift)) => per_kind!(*r, |r| self.compute_with(dy, x, dims, |c| {
                let (center, scale, shift) = (self.center[c], self.scale[c], shift[c]);
                // The rectifier's input, recomputed exactly as the forward pass did.
                move |g, v| r.gradient(g, (v - center) * scale + shift)
            })),
        }
    }

    /// [`AffineBackward::compute`] with `through(c)(dy, x)`, the gradient that reaches the
    /// affine map in channel `c` (through the rectifier, if any). The per-channel function is a
    /// copied value, so the loops over a plane hold it in registers and vectorize.
    fn compute_with<G: Fn(f32, f32) -> f32 + Copy>(
        &self,
        dy: &[f32],
        x: &[f32],
        (channels, hw): (usize, usize),
        through: impl Fn(usize) -> G + Sync,
    ) -> Vec<f32> {
        let [input, first, second] = self.need;
        let m = (x.len() / channels.max(1)) as f64;
        // Per channel: Σ dy and Σ dy * (x - center).
        let sums: Vec<(f64, f64)> = if self.invstd.is_some() || first || second {
            channel_sums((dy, x), (channels, hw), |c| {
                let (center, reach) = (self.center[c], through(c));
                move |n, g, v| {
                    let reaching = reach(g, v);
                    if n == 0 {
                        reaching
                    } else {
                        reaching * (v - center)
                    }
                }
            })
            .into_iter()
            .map(|[s1, s2]| (s1, s2))
            .collect()
        } else {
            Vec::new()
        };
        let len = |wanted: bool, n: usize| if wanted { n } else { 0 };
        let total = len(input, x.len()) + len(first, channels) + len(second, channels);
        let mut packed = Vec::with_capacity(total);
        if input {
            self.append_input_gradient((dy, x, &through), (channels, hw), &sums, m, &mut packed);
        }
        let invstd = |c: usize| self.invstd.as_ref().map_or(1.0, |i| f64::from(i[c]));
        if first {
            packed.extend(
                sums.iter()
                    .enumerate()
                    .map(|(c, s)| (s.1 * invstd(c)) as f32),
            );
        }
        if second {
            packed.extend(sums.iter().map(|&(s1, _)| s1 as f32));
        }
        packed
    }

    /// Appends `dx = a dy + b (x - center) + k` per channel to `packed`; in evaluation just
    /// `scale * dy`.
    fn append_input_gradient<G: Fn(f32, f32) -> f32 + Copy>(
        &self,
        (dy, x, through): (&[f32], &[f32], &(impl Fn(usize) -> G + Sync)),
        (channels, hw): (usize, usize),
        sums: &[(f64, f64)],
        m: f64,
        packed: &mut Vec<f32>,
    ) {
        let plane = |p: usize| dy[p * hw..][..hw].iter().zip(&x[p * hw..][..hw]);
        let Some(invstd) = &self.invstd else {
            append_planes_of(packed, x.len(), hw, |p| {
                let a = self.scale[p % channels];
                plane(p).map(move |(&g, _)| a * g)
            });
            return;
        };
        let coefficients: Vec<[f32; 3]> = (0..channels)
            .map(|c| {
                let (a, i) = (f64::from(self.scale[c]), f64::from(invstd[c]));
                let (s1, s2) = sums[c];
                [a as f32, (-a * i * i * s2 / m) as f32, (-a * s1 / m) as f32]
            })
            .collect();
        append_planes_of(packed, x.len(), hw, |p| {
            let c = p % channels;
            let ([a, b, k], center) = (coefficients[c], self.center[c]);
            let reach = through(c);
            plane(p).map(move |(&g, &v)| a * reach(g, v) + b * (v - center) + k)
        });
    }
}

impl CustomOp2 for AffineBackward {
    fn name(&self) -> &'static str {
        "native-batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        dy: &CpuStorage,
        dyl: &Layout,
        x: &CpuStorage,
        xl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = dims(xl, &[])?;
        expect_gradient(self.name(), dyl, xl.shape())?;
        if self.scale.len() != dims.0 {
            candle_core::bail!(
                "batch norm backward: {} scales for {} channels",
                self.scale.len(),
                dims.0
            )
        }
        let packed = self.compute(data(dy, dyl)?, data(x, xl)?, dims);
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}
