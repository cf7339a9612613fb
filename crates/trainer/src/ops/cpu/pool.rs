//! Max and average pooling, one (image, channel) plane at a time, in parallel over planes.
//!
//! Each output pixel's window is clipped to the input once per call, per row and per column.
//! Max pooling's gradient goes to the first maximum of each window in row-major order
//! (PyTorch's rule; NaN counts as a maximum), found again in the backward pass by rescanning
//! the input, so no indices are stored. Average pooling divides by PyTorch's divisor and its
//! backward pass spreads `dy / divisor` over the window.

use std::ops::Range;

mod halving;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::{
    bwd_through_gradients, data, expect_gradient, planes, unary_gradients, Gradients, Traced,
};
use crate::ops::PoolGeometry;

/// `F.max_pool2d` on the CPU (padding counts as minus infinity).
pub fn max_pool2d(x: &Tensor, g: &PoolGeometry) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Pool {
        geometry: *g,
        kind: Kind::Max,
    })
}

/// `F.avg_pool2d` on the CPU, with PyTorch's divisor: the window clipped to the input plus its
/// explicit padding (`count_include_pad`) or to the input itself.
pub fn avg_pool2d(x: &Tensor, g: &PoolGeometry, count_include_pad: bool) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Pool {
        geometry: *g,
        kind: Kind::Avg { count_include_pad },
    })
}

/// [`max_pool2d`] (`count_include_pad: None`) or [`avg_pool2d`] outside candle's graph;
/// inputs `[x]`.
pub fn pool2d_traced(x: &Tensor, g: &PoolGeometry, average: Option<bool>) -> Result<Traced> {
    let op = Pool {
        geometry: *g,
        kind: average.map_or(Kind::Max, |count_include_pad| Kind::Avg {
            count_include_pad,
        }),
    };
    let x = x.contiguous()?;
    Ok(Traced {
        output: x.apply_op1_no_bwd(&op)?,
        inputs: vec![x],
        backward: Box::new(op),
    })
}

/// Which reduction a window makes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// The window's first maximum.
    Max,
    /// The window's sum over PyTorch's divisor.
    Avg {
        /// Whether the divisor counts the explicit padding.
        count_include_pad: bool,
    },
}

/// A pooling op on `x`; also its backward op on `(dy, x)`, through [`PoolBackward`].
#[derive(Debug, Clone, Copy)]
struct Pool {
    geometry: PoolGeometry,
    kind: Kind,
}

/// One output row's (or column's) window along its axis.
#[derive(Debug, Clone)]
struct Span {
    /// The input rows (columns) it covers.
    input: Range<usize>,
    /// How many rows (columns) of the input plus its explicit padding it covers.
    padded: usize,
}

/// The windows of one call: the planes, their size, and one span per output row and column.
#[derive(Debug)]
struct Windows {
    planes: usize,
    h: usize,
    w: usize,
    rows: Vec<Span>,
    cols: Vec<Span>,
}

impl Windows {
    /// The windows of `g` on an input of `shape`, or an error if they do not fit it.
    fn of(g: &PoolGeometry, shape: &Shape) -> Result<Windows> {
        let (n, c, h, w) = shape.dims4()?;
        let [top, bottom, left, right] = g.padding_of(h, w);
        let axis = |size: usize, before: usize, after: usize, d: usize| -> Result<Vec<Span>> {
            let (k, s, p) = (g.kernel[d], g.stride[d], g.padding[d] as isize);
            if k == 0 || s == 0 || size == 0 || size + before + after < k {
                candle_core::bail!("pooling: window {g:?} does not fit an {h}x{w} input")
            }
            let out = (size + before + after - k) / s + 1;
            let size = size as isize;
            let spans = (0..out).map(|o| {
                let start = (o * s) as isize - before as isize;
                let end = start + k as isize;
                let clip = |v: isize, lo: isize, hi: isize| v.clamp(lo, hi);
                Span {
                    input: clip(start, 0, size) as usize..clip(end, 0, size) as usize,
                    padded: (clip(end, -p, size + p) - clip(start, -p, size + p)) as usize,
                }
            });
            Ok(spans.collect())
        };
        Ok(Windows {
            planes: n * c,
            h,
            w,
            rows: axis(h, top, bottom, 0)?,
            cols: axis(w, left, right, 1)?,
        })
    }

    /// The output shape.
    fn out_shape(&self, shape: &Shape) -> Result<Shape> {
        let (n, c, _, _) = shape.dims4()?;
        Ok(Shape::from((n, c, self.rows.len(), self.cols.len())))
    }

    /// The windows of an output plane in row-major order, each as its rows' index ranges
    /// into the input plane.
    fn each(&self) -> impl Iterator<Item = Window> + '_ {
        self.rows.iter().flat_map(move |r| {
            self.cols.iter().map(move |c| Window {
                rows: r.input.clone(),
                cols: c.input.clone(),
                w: self.w,
                padded: r.padded * c.padded,
            })
        })
    }
}

/// One output pixel's window, clipped to the input.
struct Window {
    rows: Range<usize>,
    cols: Range<usize>,
    w: usize,
    /// The size of the window clipped to the input plus its explicit padding.
    padded: usize,
}

impl Window {
    /// The window's rows in the input plane, top to bottom: each row's first index and values.
    fn rows<'a>(&'a self, plane: &'a [f32]) -> impl Iterator<Item = (usize, &'a [f32])> + 'a {
        self.rows.clone().map(move |i| {
            let start = i * self.w + self.cols.start;
            (start, &plane[start..start + self.cols.len()])
        })
    }

    /// The sum of the window's values.
    fn sum(&self, plane: &[f32]) -> f32 {
        self.rows(plane)
            .map(|(_, row)| row.iter().sum::<f32>())
            .sum()
    }

    /// PyTorch's divisor for the average.
    fn divisor(&self, count_include_pad: bool) -> f32 {
        let size = if count_include_pad {
            self.padded
        } else {
            self.rows.len() * self.cols.len()
        };
        size.max(1) as f32
    }

    /// The index of the window's first maximum in row-major order, PyTorch's way: a later
    /// element wins only if greater, or NaN; `None` for an empty window.
    fn first_max(&self, plane: &[f32]) -> Option<usize> {
        if self.rows.is_empty() || self.cols.is_empty() {
            return None;
        }
        let mut arg = self.rows.start * self.w + self.cols.start;
        let mut max = plane[arg];
        for (start, row) in self.rows(plane) {
            for (j, &v) in row.iter().enumerate() {
                // Selects rather than a branch: which element wins is data, and unpredictable.
                let wins = v > max || v.is_nan();
                arg = if wins { start + j } else { arg };
                max = if wins { v } else { max };
            }
        }
        Some(arg)
    }
}

impl Pool {
    /// The pooled planes of `x`.
    fn forward(&self, win: &Windows, x: &[f32]) -> Vec<f32> {
        let (hw, out) = (win.h * win.w, win.rows.len() * win.cols.len());
        let halves = self.halves(win.h, win.w);
        planes(win.planes * out, out, |p, y| {
            let plane = &x[p * hw..][..hw];
            if halves {
                return halving::halve(self.kind, plane, win.w, y);
            }
            for (y, window) in y.iter_mut().zip(win.each()) {
                *y = match self.kind {
                    Kind::Max => window
                        .first_max(plane)
                        .map_or(f32::NEG_INFINITY, |i| plane[i]),
                    Kind::Avg { count_include_pad } => {
                        window.sum(plane) / window.divisor(count_include_pad)
                    }
                };
            }
        })
    }

    /// The gradient of `x` from the output gradient `dy`.
    fn backward(&self, win: &Windows, dy: &[f32], x: &[f32]) -> Vec<f32> {
        let (hw, out) = (win.h * win.w, win.rows.len() * win.cols.len());
        let halves = self.halves(win.h, win.w);
        planes(win.planes * hw, hw, |p, dx| {
            let plane = &x[p * hw..][..hw];
            if halves {
                return halving::halve_backward(self.kind, &dy[p * out..][..out], plane, win.w, dx);
            }
            for (&g, window) in dy[p * out..][..out].iter().zip(win.each()) {
                match self.kind {
                    Kind::Max => {
                        if let Some(i) = window.first_max(plane) {
                            dx[i] += g;
                        }
                    }
                    Kind::Avg { count_include_pad } => {
                        let share = g / window.divisor(count_include_pad);
                        for i in window.rows.clone() {
                            let start = i * window.w;
                            dx[start + window.cols.start..start + window.cols.end]
                                .iter_mut()
                                .for_each(|d| *d += share);
                        }
                    }
                }
            }
        })
    }
}

impl Gradients for Pool {
    fn gradients(
        &self,
        inputs: &[&Tensor],
        need: &[bool],
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        unary_gradients(inputs, need, grad, &PoolBackward(*self))
    }
}

impl CustomOp1 for Pool {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Max => "native-max-pool2d",
            Kind::Avg { .. } => "native-avg-pool2d",
        }
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let win = Windows::of(&self.geometry, xl.shape())?;
        let y = self.forward(&win, data(x, xl)?);
        Ok((CpuStorage::F32(y), win.out_shape(xl.shape())?))
    }

    bwd_through_gradients!(1);
}

/// The input gradient of a [`Pool`], on `(dy, x)`.
#[derive(Debug, Clone, Copy)]
struct PoolBackward(Pool);

impl CustomOp2 for PoolBackward {
    fn name(&self) -> &'static str {
        "native-pool2d-backward"
    }

    fn cpu_fwd(
        &self,
        dy: &CpuStorage,
        dyl: &Layout,
        x: &CpuStorage,
        xl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let win = Windows::of(&self.0.geometry, xl.shape())?;
        let out = win.out_shape(xl.shape())?;
        expect_gradient(self.name(), dyl, &out)?;
        let dx = self.0.backward(&win, data(dy, dyl)?, data(x, xl)?);
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}
