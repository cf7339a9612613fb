//! The compute of the trainer: one method per operation, with PyTorch's semantics.
//!
//! Every layer of a built network calls through [`Kernels`], so faster implementations replace
//! these bodies without touching model code. Two sets exist:
//!
//! * [`Kernels::Native`] (the default): our CPU kernels ([`cpu`]), candle custom ops with
//!   hand-derived backward passes. Convolutions run as im2col + blocked gemm per image, in
//!   parallel over the batch, with the bias fused in, and skip the input gradient when the input
//!   is data; BatchNorm, max and average pooling and the rectifiers (ReLU, ReLU6, LeakyReLU)
//!   are single-pass kernels. On other devices, and for the operations without a native kernel
//!   (linear layers, adaptive pooling, the other activations), they fall back to the composed
//!   ones. Where candle's autograd departs from PyTorch (the rectifiers' gradient at their
//!   kinks), the native kernels follow PyTorch.
//! * [`Kernels::Candle`]: [`composed`], each operation built from candle's tensor ops, whose
//!   autograd gives the backward pass. It runs on every device and is the reference the native
//!   kernels are tested against (and the "stock candle" column of the benchmarks).
//!
//! Tensors are NCHW, f32, at this interface; the layout inside a kernel is its own business.

use std::sync::Once;

use arch_space::lang::{Activation, Padding};
use candle_core::{DType, Result, Tensor, D};
use serde::{Deserialize, Serialize};

pub mod composed;
pub mod cpu;

/// Keeps freed tensor buffers in the process instead of returning them to the kernel.
///
/// glibc hands every freed multi-megabyte buffer back to the kernel and faults it in again on
/// the next allocation; with candle's one-new-buffer-per-op style that was half of a training
/// step on our CPU (`notes/cpu-baseline.md`: 750 ms to 368 ms per step). Raising the mmap and
/// trim thresholds, as `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:
/// glibc.malloc.trim_threshold=17179869184` would, removes the faults. Called once by the
/// trainer; a no-op elsewhere than Linux with glibc.
pub fn tune_allocator() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator thresholds; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    });
}

/// Which implementation of the operations a network runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    /// Our CPU kernels where they exist, candle's ops elsewhere.
    #[default]
    Native,
    /// candle's tensor ops and autograd only.
    Candle,
}

impl std::str::FromStr for Kernels {
    type Err = String;

    /// `native` or `candle`, as on command lines.
    fn from_str(name: &str) -> std::result::Result<Self, String> {
        match name {
            "native" => Ok(Kernels::Native),
            "candle" => Ok(Kernels::Candle),
            other => Err(format!("unknown kernels `{other}` (use native or candle)")),
        }
    }
}

impl std::fmt::Display for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kernels::Native => "native",
            Kernels::Candle => "candle",
        })
    }
}

impl Kernels {
    /// Whether the native kernels run on `x` (CPU, f32).
    pub fn native_for(self, x: &Tensor) -> bool {
        self == Kernels::Native && x.device().is_cpu() && x.dtype() == DType::F32
    }

    /// `F.conv2d`: weight `[out, in/groups, kh, kw]`, optional bias `[out]`.
    pub fn conv2d(
        self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        g: &ConvGeometry,
    ) -> Result<Tensor> {
        if self.native_for(x) {
            cpu::conv2d(x, weight, bias, g)
        } else {
            composed::conv2d(x, weight, bias, g)
        }
    }

    /// `F.linear` on the last dimension: weight `[out, in]`, optional bias `[out]`.
    pub fn linear(self, x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        composed::linear(x, weight, bias)
    }

    /// Batch normalization with batch statistics (training); returns the output and the batch
    /// mean and unbiased variance per channel, for the running statistics.
    pub fn batch_norm_train(
        self,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        if self.native_for(x) {
            cpu::batch_norm_train(x, weight, bias, eps)
        } else {
            composed::batch_norm_train(x, weight, bias, eps)
        }
    }

    /// Batch normalization with given statistics (evaluation).
    pub fn batch_norm_eval(
        self,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        if self.native_for(x) {
            cpu::batch_norm_eval(x, mean, var, weight, bias, eps)
        } else {
            composed::batch_norm_eval(x, mean, var, weight, bias, eps)
        }
    }

    /// `F.max_pool2d` (padding counts as minus infinity).
    pub fn max_pool2d(self, x: &Tensor, g: &PoolGeometry) -> Result<Tensor> {
        if self.native_for(x) {
            cpu::max_pool2d(x, g)
        } else {
            composed::max_pool2d(x, g)
        }
    }

    /// `F.avg_pool2d`, with PyTorch's divisor: the window clipped to the padded input
    /// (`count_include_pad`) or to the input itself.
    pub fn avg_pool2d(
        self,
        x: &Tensor,
        g: &PoolGeometry,
        count_include_pad: bool,
    ) -> Result<Tensor> {
        if self.native_for(x) {
            cpu::avg_pool2d(x, g, count_include_pad)
        } else {
            composed::avg_pool2d(x, g, count_include_pad)
        }
    }

    /// `F.adaptive_avg_pool2d` with PyTorch's bins (`floor(i*H/o)` to `ceil((i+1)*H/o)`).
    pub fn adaptive_avg_pool2d(self, x: &Tensor, size: [usize; 2]) -> Result<Tensor> {
        composed::adaptive_avg_pool2d(x, size)
    }

    /// An activation function.
    pub fn activation(self, x: &Tensor, a: &Activation) -> Result<Tensor> {
        match cpu::Rectifier::of(a) {
            Some(r) if self.native_for(x) => cpu::rectify(x, r),
            _ => composed::activation(x, a),
        }
    }
}

/// Geometry of a 2-D convolution.
#[derive(Debug, Clone, Copy)]
pub struct ConvGeometry {
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Padding.
    pub padding: Padding,
    /// Dilation (equal in both dimensions; checked when the network is built).
    pub dilation: usize,
    /// Groups.
    pub groups: usize,
}

impl ConvGeometry {
    /// Zero padding `[top, bottom, left, right]`; `same` puts the odd pixel at the bottom/right,
    /// as PyTorch does.
    pub fn padding_of(&self) -> [usize; 4] {
        match self.padding {
            Padding::Explicit([ph, pw]) => [ph, ph, pw, pw],
            Padding::Valid => [0; 4],
            Padding::Same => {
                let th = self.dilation * (self.kernel[0] - 1);
                let tw = self.dilation * (self.kernel[1] - 1);
                [th / 2, th - th / 2, tw / 2, tw - tw / 2]
            }
        }
    }
}

/// Geometry of a pooling window.
#[derive(Debug, Clone, Copy)]
pub struct PoolGeometry {
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Implicit padding.
    pub padding: [usize; 2],
    /// Whether output sizes round up.
    pub ceil_mode: bool,
}

impl PoolGeometry {
    /// Extra bottom/right padding that makes candle's floor-mode windows match ceil mode.
    fn ceil_extra(&self, size: usize, d: usize) -> usize {
        if !self.ceil_mode {
            return 0;
        }
        let (k, s, p) = (self.kernel[d], self.stride[d], self.padding[d]);
        let steps = size + 2 * p - k;
        let mut out = steps.div_ceil(s) + 1;
        if (out - 1) * s >= size + p {
            out -= 1;
        }
        ((out - 1) * s + k).saturating_sub(size + 2 * p)
    }

    /// Padding `[top, bottom, left, right]` of an `h x w` input, including the extra bottom/right
    /// rows and columns that ceil mode's last, partial windows reach.
    pub fn padding_of(&self, h: usize, w: usize) -> [usize; 4] {
        let [ph, pw] = self.padding;
        [
            ph,
            ph + self.ceil_extra(h, 0),
            pw,
            pw + self.ceil_extra(w, 1),
        ]
    }
}

/// Mean cross-entropy of logits `[B, classes]` against labels `[B]` (u32).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(logits, labels)
}

/// Mean cross-entropy of logits `[B, classes]` against labels `[B]` (u32), and its gradient
/// with respect to the logits, `(softmax - onehot) / B`, computed directly (no graph).
pub fn cross_entropy_and_gradient(logits: &Tensor, labels: &Tensor) -> Result<(f32, Tensor)> {
    let (batch, classes) = logits.dims2()?;
    let log_probs = candle_nn::ops::log_softmax(&logits.detach(), D::Minus1)?;
    let mut onehot = vec![0.0f32; batch * classes];
    for (row, &label) in labels.to_vec1::<u32>()?.iter().enumerate() {
        let label = label as usize;
        if label >= classes {
            candle_core::bail!("label {label} for {classes} classes");
        }
        onehot[row * classes + label] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (batch, classes), logits.device())?;
    let n = batch.max(1) as f64;
    let loss = -(log_probs.mul(&onehot)?.sum_all()?.to_scalar::<f32>()? as f64) / n;
    let grad = ((log_probs.exp()? - onehot)? / n)?;
    Ok((loss as f32, grad))
}

/// Number of rows whose arg-max equals the label.
pub fn correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let predicted = logits.argmax(D::Minus1)?;
    Ok(predicted
        .eq(labels)?
        .to_dtype(DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()? as usize)
}
