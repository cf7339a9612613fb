//! The rectifiers (ReLU, ReLU6, LeakyReLU) and the sum of two tensors as elementwise passes, in
//! parallel over chunks.
//!
//! Values and gradients follow PyTorch exactly, also where candle's composed ops differ: the
//! gradient at a kink takes the flat side (ReLU and ReLU6 pass nothing at 0, ReLU6 nothing at 6,
//! LeakyReLU passes `negative_slope` at 0), where candle's `relu` passes everything at 0 and its
//! `maximum`/`minimum` (behind `clamp` and `leaky_relu`) split the gradient of ties in halves.
//! NaN propagates forward and passes its gradient, as in PyTorch.

use arch_space::lang::Activation;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::{
    bwd_through_gradients, data, expect_gradient, planes_of, unary_gradients, update, Gradients,
    Traced,
};

/// Expands `$body` once per rectifier kind, with `$r` bound to that kind's own type (see
/// [`kinds`]), so each expansion inlines its `value` and `gradient` into straight-line
/// arithmetic (and the loops around them vectorize) instead of matching the kind per element.
/// A closure that captured a [`Rectifier`] would carry the kind as data into the loops it is
/// passed to, which then test it per element and stay scalar.
macro_rules! per_kind {
    ($rectifier:expr, |$r:ident| $body:expr) => {
        match $rectifier {
            Rectifier::Relu => {
                let $r = $crate::ops::cpu::activation::kinds::Relu;
                $body
            }
            Rectifier::Relu6 => {
                let $r = $crate::ops::cpu::activation::kinds::Relu6;
                $body
            }
            Rectifier::LeakyRelu(slope) => {
                let $r = $crate::ops::cpu::activation::kinds::LeakyRelu(slope);
                $body
            }
        }
    };
}
pub(super) use per_kind;

/// One type per rectifier kind, for [`per_kind`].
pub(super) mod kinds {
    /// `ReLU()`.
    #[derive(Clone, Copy)]
    pub struct Relu;

    /// `ReLU6()`.
    #[derive(Clone, Copy)]
    pub struct Relu6;

    /// `LeakyReLU(negative_slope)`.
    #[derive(Clone, Copy)]
    pub struct LeakyRelu(pub f32);

    impl Relu {
        /// The rectified value of `v`.
        #[inline(always)]
        pub fn value(self, v: f32) -> f32 {
            if v < 0.0 {
                0.0
            } else {
                v
            }
        }

        /// `g` times the slope at `v`, the flat side at the kink.
        #[inline(always)]
        pub fn gradient(self, g: f32, v: f32) -> f32 {
            if v <= 0.0 {
                0.0
            } else {
                g
            }
        }
    }

    impl Relu6 {
        /// The rectified value of `v`.
        #[inline(always)]
        pub fn value(self, v: f32) -> f32 {
            v.clamp(0.0, 6.0)
        }

        /// `g` times the slope at `v`, the flat sides at the kinks.
        #[inline(always)]
        pub fn gradient(self, g: f32, v: f32) -> f32 {
            if v <= 0.0 || v >= 6.0 {
                0.0
            } else {
                g
            }
        }
    }

    impl LeakyRelu {
        /// The rectified value of `v`.
        #[inline(always)]
        pub fn value(self, v: f32) -> f32 {
            if v < 0.0 {
                v * self.0
            } else {
                v
            }
        }

        /// `g` times the slope at `v`, the negative side's at the kink.
        #[inline(always)]
        pub fn gradient(self, g: f32, v: f32) -> f32 {
            if v > 0.0 {
                g
            } else {
                g * self.0
            }
        }
    }
}

/// A rectifier with a native kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rectifier {
    /// `ReLU()`.
    Relu,
    /// `ReLU6()`.
    Relu6,
    /// `LeakyReLU(negative_slope)`.
    LeakyRelu(f32),
}

impl Rectifier {
    /// The native kernel of an activation, if it has one.
    pub fn of(a: &Activation) -> Option<Rectifier> {
        match a {
            Activation::Relu => Some(Rectifier::Relu),
            Activation::Relu6 => Some(Rectifier::Relu6),
            Activation::LeakyRelu { negative_slope } => {
                Some(Rectifier::LeakyRelu(*negative_slope as f32))
            }
            _ => None,
        }
    }

    /// The rectified values.
    pub(super) fn forward(self, x: &[f32]) -> Vec<f32> {
        per_kind!(self, |r| map(x, x, move |v, _| r.value(v)))
    }

    /// The input gradient from the output gradient `dy` and the input `x`.
    fn backward(self, dy: &[f32], x: &[f32]) -> Vec<f32> {
        per_kind!(self, |r| map(dy, x, move |g, v| r.gradient(g, v)))
    }

    /// Rectifies `values` in place (serially: for data a kernel is about to read).
    pub(super) fn apply_in_place(self, values: &mut [f32]) {
        per_kind!(self, |r| update(values, None, move |v, _| r.value(v)))
    }

    /// Turns the gradient `dx` of the rectified values into that of their inputs `x`, in
    /// place (serially).
    pub(super) fn gradient_in_place(self, dx: &mut [f32], x: &[f32]) {
        per_kind!(self, |r| update(dx, Some(x), move |g, v| r.gradient(g, v)))
    }
}

/// `f(a[i], b[i])` for every element, in parallel chunks (whose loops vectorize: `f` is a
/// copied value, held in registers).
fn map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Copy + Sync + Send) -> Vec<f32> {
    const CHUNK: usize = 1 << 14;
    planes_of(a.len().min(b.len()), CHUNK, |i| {
        let (a, b) = (&a[i * CHUNK..], &b[i * CHUNK..]);
        a.iter().zip(b).map(move |(&u, &v)| f(u, v))
    })
}

/// `a + b` for tensors of one shape, outside candle's graph, in one parallel pass (the joins
/// of a traced network and the sums of its gradients; candle's `+` runs on its own thread
/// pool beside rayon's). Other dtypes, devices or shapes go through candle's `+`.
pub fn add_traced(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let native = a.device().is_cpu()
        && a.dtype() == candle_core::DType::F32
        && b.dtype() == candle_core::DType::F32
        && a.shape() == b.shape();
    if !native {
        return a + b;
    }
    a.contiguous()?.apply_op2_no_bwd(&b.contiguous()?, &Add)
}

/// The elementwise sum of two f32 tensors of one shape.
struct Add;

impl CustomOp2 for Add {
    fn name(&self) -> &'static str {
        "native-add"
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        expect_gradient(self.name(), bl, al.shape())?;
        let y = map(data(a, al)?, data(b, bl)?, |u, v| u + v);
        Ok((CpuStorage::F32(y), al.shape().clone()))
    }
}

/// A rectifier on the CPU, on a tensor of any shape.
pub fn rectify(x: &Tensor, r: Rectifier) -> Result<Tensor> {
    x.contiguous()?.apply_op1(r)
}

/// [`rectify`] outside candle's graph; inputs `[x]`.
pub fn rectify_traced(x: &Tensor, r: Rectifier) -> Result<Traced> {
    let x = x.contiguous()?;
    Ok(Traced {
        output: x.apply_op1_no_bwd(&r)?,
        inputs: vec![x],
        backward: Box::new(r),
    })
}

impl Gradients for Rectifier {
    fn gradients(
        &self,
        inputs: &[&Tensor],
        need: &[bool],
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        unary_gradients(inputs, need, grad, &RectifierBackward(*self))
    }
}

impl CustomOp1 for Rectifier {
    fn name(&self) -> &'static str {
        "native-rectifier"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = self.forward(data(x, xl)?);
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    bwd_through_gradients!(1);
}

/// The input gradient of a [`Rectifier`], on `(dy, x)`.
#[derive(Debug, Clone, Copy)]
struct RectifierBackward(Rectifier);

impl CustomOp2 for RectifierBackward {
    fn name(&self) -> &'static str {
        "native-rectifier-backward"
    }

    fn cpu_fwd(
        &self,
        dy: &CpuStorage,
        dyl: &Layout,
        x: &CpuStorage,
        xl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        expect_gradient(self.name(), dyl, xl.shape())?;
        let dx = self.0.backward(data(dy, dyl)?, data(x, xl)?);
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}
