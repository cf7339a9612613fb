//! The reference implementations: each operation composed of candle's tensor ops, whose
//! autograd provides the backward pass. They run on every device (CPU, CUDA) and are what the
//! native CPU kernels are tested against.

use arch_space::lang::Activation;
use candle_core::{DType, Result, Tensor};

use super::{ConvGeometry, PoolGeometry};

/// Pads height and width: `(top, bottom, left, right)` with `value`.
fn pad(x: &Tensor, [top, bottom, left, right]: [usize; 4], value: f32) -> Result<Tensor> {
    if top + bottom + left + right == 0 {
        return Ok(x.clone());
    }
    if value == 0.0 {
        return x
            .pad_with_zeros(2, top, bottom)?
            .pad_with_zeros(3, left, right);
    }
    let (b, c, h, w) = x.dims4()?;
    let fill = |shape: (usize, usize, usize, usize)| Tensor::full(value, shape, x.device());
    let mut parts = Vec::new();
    if top > 0 {
        parts.push(fill((b, c, top, w))?);
    }
    parts.push(x.clone());
    if bottom > 0 {
        parts.push(fill((b, c, bottom, w))?);
    }
    let x = Tensor::cat(&parts, 2)?;
    let h = h + top + bottom;
    let mut parts = Vec::new();
    if left > 0 {
        parts.push(fill((b, c, h, left))?);
    }
    parts.push(x);
    if right > 0 {
        parts.push(fill((b, c, h, right))?);
    }
    Tensor::cat(&parts, 3)
}

/// `len` rows (or columns) of `dim` starting at `start`, every `step`-th: `x[..., start::step]`.
fn strided(x: &Tensor, dim: usize, start: usize, step: usize, len: usize) -> Result<Tensor> {
    if step == 1 {
        return x.narrow(dim, start, len);
    }
    let idx: Vec<u32> = (0..len).map(|i| (start + i * step) as u32).collect();
    x.index_select(&Tensor::from_vec(idx, len, x.device())?, dim)
}

/// Keeps every `step`-th row (dim 2) and column (dim 3).
fn subsample(x: &Tensor, [sh, sw]: [usize; 2]) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let x = strided(x, 2, 0, sh, h.div_ceil(sh))?;
    strided(&x, 3, 0, sw, w.div_ceil(sw))
}

/// `F.conv2d`: weight `[out, in/groups, kh, kw]`, optional bias `[out]`.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
) -> Result<Tensor> {
    let [top, bottom, left, right] = g.padding_of();
    let symmetric = top == bottom && left == right && top == left;
    let (x, padding) = if symmetric {
        (x.clone(), top)
    } else {
        (pad(x, [top, bottom, left, right], 0.0)?, 0)
    };
    let y = if g.stride[0] == g.stride[1] {
        let (x, padding) = crop_to_windows(&x, weight, padding, g)?;
        x.conv2d(weight, padding, g.stride[0], g.dilation, g.groups)?
    } else {
        subsample(
            &x.conv2d(weight, padding, 1, g.dilation, g.groups)?,
            g.stride,
        )?
    };
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

/// Pads explicitly and drops the bottom rows and right columns that no strided window reaches,
/// returning the input and the padding left for candle's convolution.
///
/// candle 0.11.1's convolution backward derives one `output_padding` from the height and
/// uses it for the width too, so an input whose unreached margins differ in height and width
/// (e.g. 9x7, kernel 1x2, stride 2) fails with a shape mismatch; without margins it is exact.
fn crop_to_windows(
    x: &Tensor,
    weight: &Tensor,
    padding: usize,
    g: &ConvGeometry,
) -> Result<(Tensor, usize)> {
    let (_, _, h, w) = x.dims4()?;
    let (_, _, kh, kw) = weight.dims4()?;
    let s = g.stride[0];
    let reached = |size: usize, k: usize| {
        let span = g.dilation * (k - 1) + 1;
        let padded = size + 2 * padding;
        Some(padded.checked_sub(span)? / s * s + span)
    };
    match (reached(h, kh), reached(w, kw)) {
        (Some(rh), Some(rw)) if rh < h + 2 * padding || rw < w + 2 * padding => {
            let padded = pad(x, [padding; 4], 0.0)?;
            Ok((padded.narrow(2, 0, rh)?.narrow(3, 0, rw)?, 0))
        }
        _ => Ok((x.clone(), padding)),
    }
}

/// `F.linear` on the last dimension: weight `[out, in]`, optional bias `[out]`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = x.broadcast_matmul(&weight.t()?)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// Batch normalization with batch statistics (training); returns the output and the batch
/// mean and unbiased variance per channel, for the running statistics.
///
/// The statistics are taken over a channel-major `[C, B*H*W]` copy: reducing the last,
/// contiguous dimension is several times faster in candle than reducing dims (0, 2, 3).
pub fn batch_norm_train(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, c, h, w) = x.dims4()?;
    let n = b * h * w;
    let rows = x.transpose(0, 1)?.reshape((c, n))?;
    let mean = rows.mean_keepdim(1)?;
    let centered = rows.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(1)?;
    let mut y = centered.broadcast_mul(&(var.clone() + eps)?.sqrt()?.recip()?)?;
    if let Some(wt) = weight {
        y = y.broadcast_mul(&wt.reshape((c, 1))?)?;
    }
    if let Some(bs) = bias {
        y = y.broadcast_add(&bs.reshape((c, 1))?)?;
    }
    let y = y.reshape((c, b, h, w))?.transpose(0, 1)?.contiguous()?;
    let unbiased = if n > 1 {
        (var * (n as f64 / (n as f64 - 1.0)))?
    } else {
        var
    };
    Ok((y, mean.flatten_all()?, unbiased.flatten_all()?))
}

/// Batch normalization with given statistics (evaluation).
pub fn batch_norm_eval(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let shape = (1, (), 1, 1);
    let y = x
        .broadcast_sub(&mean.reshape(shape)?)?
        .broadcast_div(&(var.reshape(shape)? + eps)?.sqrt()?)?;
    affine(y, weight, bias)
}

fn affine(y: Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = match weight {
        Some(w) => y.broadcast_mul(&w.reshape((1, (), 1, 1))?)?,
        None => y,
    };
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

/// The `kh * kw` shifted, strided views of an already padded input, one per window position:
/// each is `[B, C, out_h, out_w]`. Slicing keeps the backward pass exact for any kernel and
/// stride (candle's own pooling backward supports only tiling windows).
fn windows(x: &Tensor, g: &PoolGeometry) -> Result<Vec<Tensor>> {
    let (_, _, h, w) = x.dims4()?;
    let out_h = (h - g.kernel[0]) / g.stride[0] + 1;
    let out_w = (w - g.kernel[1]) / g.stride[1] + 1;
    let mut views = Vec::with_capacity(g.kernel[0] * g.kernel[1]);
    for i in 0..g.kernel[0] {
        let rows = strided(x, 2, i, g.stride[0], out_h)?;
        for j in 0..g.kernel[1] {
            views.push(strided(&rows, 3, j, g.stride[1], out_w)?);
        }
    }
    Ok(views)
}

fn mean_windows(x: &Tensor, g: &PoolGeometry) -> Result<Tensor> {
    Tensor::stack(&windows(x, g)?, 0)?.mean(0)
}

/// `F.max_pool2d` (padding counts as minus infinity).
pub fn max_pool2d(x: &Tensor, g: &PoolGeometry) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    // candle's own max-pool backward does not match finite differences (candle 0.11.1). Like
    // PyTorch, the gradient goes to the first maximum of each window (in row-major order),
    // not to every tied element.
    let x = pad(x, g.padding_of(h, w), f32::NEG_INFINITY)?;
    let stacked = Tensor::stack(&windows(&x, g)?, 0)?;
    let first_max = stacked.detach().argmax_keepdim(0)?;
    stacked.gather(&first_max, 0)?.squeeze(0)
}

/// `F.avg_pool2d`, with PyTorch's divisor: the window clipped to the padded input
/// (`count_include_pad`) or to the input itself.
pub fn avg_pool2d(x: &Tensor, g: &PoolGeometry, count_include_pad: bool) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let [top, bottom, left, right] = g.padding_of(h, w);
    let mean = |t: &Tensor| -> Result<Tensor> {
        // candle's average pooling has an exact backward only for tiling windows.
        let (_, _, th, tw) = t.dims4()?;
        if g.kernel == g.stride && th % g.kernel[0] == 0 && tw % g.kernel[1] == 0 {
            t.avg_pool2d_with_stride((g.kernel[0], g.kernel[1]), (g.stride[0], g.stride[1]))
        } else {
            mean_windows(t, g)
        }
    };
    let averaged = mean(&pad(x, [top, bottom, left, right], 0.0)?)?;
    if top + bottom + left + right == 0 {
        return Ok(averaged);
    }
    let ones = Tensor::ones((1, 1, h, w), DType::F32, x.device())?;
    let mask = if count_include_pad {
        let [ph, pw] = g.padding;
        pad(
            &pad(&ones, [ph, ph, pw, pw], 1.0)?,
            [0, bottom - ph, 0, right - pw],
            0.0,
        )?
    } else {
        pad(&ones, [top, bottom, left, right], 0.0)?
    };
    averaged.broadcast_div(&mean(&mask)?)
}

/// `F.adaptive_avg_pool2d` with PyTorch's bins (`floor(i*H/o)` to `ceil((i+1)*H/o)`).
pub fn adaptive_avg_pool2d(x: &Tensor, [oh, ow]: [usize; 2]) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if oh == 1 && ow == 1 {
        return x.mean_keepdim((2, 3));
    }
    let bins = |size: usize, out: usize| {
        (0..out).map(move |i| (i * size / out, ((i + 1) * size).div_ceil(out)))
    };
    let rows = bins(h, oh)
        .map(|(r0, r1)| {
            let row = x.narrow(2, r0, r1 - r0)?.mean_keepdim(2)?;
            let cols = bins(w, ow)
                .map(|(c0, c1)| row.narrow(3, c0, c1 - c0)?.mean_keepdim(3))
                .collect::<Result<Vec<_>>>()?;
            Tensor::cat(&cols, 3)
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&rows, 2)
}

/// An activation function.
pub fn activation(x: &Tensor, a: &Activation) -> Result<Tensor> {
    match a {
        Activation::Relu => x.relu(),
        Activation::Relu6 => x.clamp(0f32, 6f32),
        Activation::LeakyRelu { negative_slope } => candle_nn::ops::leaky_relu(x, *negative_slope),
        Activation::Gelu { tanh: false } => x.gelu_erf(),
        Activation::Gelu { tanh: true } => x.gelu(),
        Activation::Silu => x.silu(),
        Activation::Hardswish => x.broadcast_mul(&((x + 3.0)?.clamp(0f32, 6f32)? / 6.0)?),
        Activation::Sigmoid => candle_nn::ops::sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Softmax { dim, log } => {
            let rank = x.rank() as i64;
            let d = if *dim < 0 {
                (dim + rank) as usize
            } else {
                *dim as usize
            };
            if *log {
                candle_nn::ops::log_softmax(x, d)
            } else {
                candle_nn::ops::softmax(x, d)
            }
        }
    }
}
