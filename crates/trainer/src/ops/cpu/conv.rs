//! 2-D convolution as im2col + gemm, one image at a time, in parallel over the batch, where the
//! direct kernels of [`direct`] do not apply (see there), and depthwise convolutions as direct
//! loops ([`depthwise`]).
//!
//! For each image and group, the input taps are laid out as a `[C/g * kh * kw, oh * ow]`
//! matrix (im2col; skipped for 1x1 stride-1 unpadded convolutions, whose input already is
//! that matrix) and multiplied by the weight `[out/g, C/g * kh * kw]`, straight into the NCHW
//! output, whose rows start as the bias. The backward pass runs per image too: the weight
//! gradient accumulates `dy * col^T` per thread, and the input gradient is `W^T * dy` folded
//! back onto the image (col2im).

use std::ops::Range;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

mod depthwise;
// Off x86-64 the direct kernels have no instructions to run on (`Isa` has no variants), so
// their code is never called there.
#[cfg_attr(
    not(target_arch = "x86_64"),
    allow(dead_code, unused_variables, unused_unsafe)
)]
mod direct;

use super::{
    assume_init, bwd_through_gradients, data, expect_gradient, gemm, over_ranges, sum_in_order,
    unpack, zeroed, Gradients, Operand, Rectifier, Traced,
};
use crate::ops::ConvGeometry;

/// `F.conv2d` on the CPU: weight `[out, in/groups, kh, kw]`, optional bias `[out]`.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
) -> Result<Tensor> {
    let op = Conv::of(g);
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, op),
        None => x.apply_op2(&weight, op),
    }
}

/// [`conv2d`] outside candle's graph, of `before(x)` if a rectifier is given (applied as the
/// kernels read the input, never stored); inputs `[x, weight, bias?]`.
pub fn conv2d_traced(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
    before: Option<Rectifier>,
) -> Result<Traced> {
    let op = Conv {
        before,
        ..Conv::of(g)
    };
    let mut inputs = vec![x.contiguous()?, weight.contiguous()?];
    let output = match bias {
        Some(b) => {
            inputs.push(b.contiguous()?);
            inputs[0].apply_op3_no_bwd(&inputs[1], &inputs[2], &op)?
        }
        None => inputs[0].apply_op2_no_bwd(&inputs[1], &op)?,
    };
    Ok(Traced {
        output,
        inputs,
        backward: Box::new(op),
    })
}

/// The convolution's geometry, padding resolved to `[top, bottom, left, right]`, and a
/// rectifier applied to its input first, if any.
#[derive(Debug, Clone, Copy)]
struct Conv {
    stride: [usize; 2],
    padding: [usize; 4],
    dilation: usize,
    groups: usize,
    before: Option<Rectifier>,
}

/// Sizes of one convolution call.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    batch: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
}

impl Conv {
    fn of(g: &ConvGeometry) -> Conv {
        Conv {
            stride: g.stride,
            padding: g.padding_of(),
            dilation: g.dilation,
            groups: g.groups,
            before: None,
        }
    }
}

impl Sizes {
    fn of(conv: &Conv, x: &Layout, weight: &Layout) -> Result<Sizes> {
        let (batch, cin, h, w) = x.shape().dims4()?;
        let (cout, cin_g, kh, kw) = weight.shape().dims4()?;
        let g = conv.groups;
        if g == 0 || cin % g != 0 || cout % g != 0 || cin_g != cin / g {
            candle_core::bail!(
                "conv2d: input channels {cin}, weight {:?}, groups {g} do not fit",
                weight.shape()
            );
        }
        let [top, bottom, left, right] = conv.padding;
        let span = |k: usize| conv.dilation * (k - 1) + 1;
        let (ph, pw) = (h + top + bottom, w + left + right);
        if kh == 0 || kw == 0 || ph < span(kh) || pw < span(kw) {
            candle_core::bail!("conv2d: kernel {kh}x{kw} larger than the padded input {ph}x{pw}");
        }
        Ok(Sizes {
            batch,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            oh: (ph - span(kh)) / conv.stride[0] + 1,
            ow: (pw - span(kw)) / conv.stride[1] + 1,
        })
    }

    /// The output's shape `[batch, out, oh, ow]`.
    fn out_shape(&self) -> Shape {
        Shape::from((self.batch, self.cout, self.oh, self.ow))
    }

    /// Pixels of an output plane.
    fn n(&self) -> usize {
        self.oh * self.ow
    }

    /// Rows of the im2col matrix of one group.
    fn k(&self, groups: usize) -> usize {
        self.cin / groups * self.kh * self.kw
    }
}

/// Output positions `o` in `0..out` whose input position `o * stride + offset` is in
/// `0..size`.
fn valid(out: usize, stride: usize, offset: isize, size: usize) -> Range<usize> {
    let lo = if offset < 0 {
        offset.unsigned_abs().div_ceil(stride)
    } else {
        0
    };
    let hi = usize::try_from(size as isize - offset).map_or(0, |room| room.div_ceil(stride));
    let start = lo.min(out);
    start..hi.min(out).max(start)
}

/// One kernel tap `(channel, ki, kj)`: which output pixels read the input, and where.
struct Tap {
    channel: usize,
    y_offset: isize,
    rows: Range<usize>,
    x_offset: isize,
    cols: Range<usize>,
}

impl Conv {
    fn pointwise(&self, s: &Sizes) -> bool {
        s.kh == 1 && s.kw == 1 && self.stride == [1, 1] && self.padding == [0; 4]
    }

    /// The taps of `channels` input channels, in im2col row order.
    fn taps(&self, s: &Sizes, channels: usize) -> impl Iterator<Item = Tap> + '_ {
        let s = *s;
        (0..channels).flat_map(move |channel| {
            (0..s.kh).flat_map(move |ki| {
                (0..s.kw).map(move |kj| {
                    let y_offset = (ki * self.dilation) as isize - self.padding[0] as isize;
                    let x_offset = (kj * self.dilation) as isize - self.padding[2] as isize;
                    Tap {
                        channel,
                        y_offset,
                        rows: valid(s.oh, self.stride[0], y_offset, s.h),
                        x_offset,
                        cols: valid(s.ow, self.stride[1], x_offset, s.w),
                    }
                })
            })
        })
    }

    /// `col[k, oh*ow]` from one group's input planes `x[C/g, h, w]`.
    fn im2col(&self, (s, taps): (&Sizes, &[Tap]), x: &[f32], col: &mut [f32]) {
        let [sy, sx] = self.stride;
        for (tap, row) in taps.iter().zip(col.chunks_exact_mut(s.n())) {
            let plane = &x[tap.channel * s.h * s.w..][..s.h * s.w];
            for (oy, out) in row.chunks_exact_mut(s.ow).enumerate() {
                if !tap.rows.contains(&oy) {
                    out.fill(0.0);
                    continue;
                }
                let iy = ((oy * sy) as isize + tap.y_offset) as usize;
                let src = &plane[iy * s.w..][..s.w];
                out[..tap.cols.start].fill(0.0);
                out[tap.cols.end..].fill(0.0);
                let ix = |ox: usize| ((ox * sx) as isize + tap.x_offset) as usize;
                if sx == 1 && !tap.cols.is_empty() {
                    let start = ix(tap.cols.start);
                    out[tap.cols.clone()].copy_from_slice(&src[start..start + tap.cols.len()]);
                } else {
                    for ox in tap.cols.clone() {
                        out[ox] = src[ix(ox)];
                    }
                }
            }
        }
    }

    /// Adds `col[k, oh*ow]` back onto one group's input planes `dx[C/g, h, w]`.
    fn col2im(&self, (s, taps): (&Sizes, &[Tap]), col: &[f32], dx: &mut [f32]) {
        let [sy, sx] = self.stride;
        for (tap, row) in taps.iter().zip(col.chunks_exact(s.n())) {
            let plane = &mut dx[tap.channel * s.h * s.w..][..s.h * s.w];
            for oy in tap.rows.clone() {
                let iy = ((oy * sy) as isize + tap.y_offset) as usize;
                let dst = &mut plane[iy * s.w..][..s.w];
                let src = &row[oy * s.ow..][..s.ow];
                let ix = |ox: usize| ((ox * sx) as isize + tap.x_offset) as usize;
                if sx == 1 && !tap.cols.is_empty() {
                    let start = ix(tap.cols.start);
                    let dst = &mut dst[start..start + tap.cols.len()];
                    for (d, v) in dst.iter_mut().zip(&src[tap.cols.clone()]) {
                        *d += v;
                    }
                } else {
                    for ox in tap.cols.clone() {
                        dst[ix(ox)] += src[ox];
                    }
                }
            }
        }
    }

    fn forward(&self, s: &Sizes, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        if let Some(isa) = direct::usable(self, s) {
            return direct::forward(isa, (self, s), x, weight, bias);
        }
        // The other paths read the input in place: rectified, it is stored once here.
        let rectified = self.before.map(|r| r.forward(x));
        let x = rectified.as_deref().unwrap_or(x);
        let g = self.groups;
        let (n, k) = (s.n(), s.k(g));
        let (cg, mg) = (s.cin / g, s.cout / g);
        let pointwise = self.pointwise(s);
        let depthwise = self.depthwise(s);
        let taps: Vec<Tap> = self.taps(s, cg).collect();
        let mut y = vec![0.0f32; s.batch * s.cout * n];
        y.par_chunks_mut(s.cout * n).enumerate().for_each_init(
            || vec![0.0f32; if pointwise || depthwise { 0 } else { k * n }],
            |col, (i, yi)| {
                let xi = &x[i * s.cin * s.h * s.w..][..s.cin * s.h * s.w];
                if depthwise {
                    return self.depthwise_forward((s, &taps), xi, weight, bias, yi);
                }
                for group in 0..g {
                    let xg = &xi[group * cg * s.h * s.w..][..cg * s.h * s.w];
                    if !pointwise {
                        self.im2col((s, &taps), xg, col);
                    }
                    let src: &[f32] = if pointwise { xg } else { col };
                    let yg = &mut yi[group * mg * n..][..mg * n];
                    if let Some(b) = bias {
                        for (row, &value) in yg.chunks_exact_mut(n).zip(&b[group * mg..][..mg]) {
                            row.fill(value);
                        }
                    }
                    let wg = Operand::rows(&weight[group * mg * k..][..mg * k], k);
                    gemm(yg, bias.is_some(), (mg, n, k), wg, Operand::rows(src, n));
                }
            },
        );
        y
    }

    fn fwd(
        &self,
        (x, xl): (&CpuStorage, &Layout),
        (w, wl): (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let s = Sizes::of(self, xl, wl)?;
        let bias = match bias {
            Some((b, bl)) if bl.shape().elem_count() == s.cout => Some(data(b, bl)?),
            Some((_, bl)) => {
                candle_core::bail!("conv2d: bias {:?} for {} outputs", bl.shape(), s.cout)
            }
            None => None,
        };
        let y = self.forward(&s, data(x, xl)?, data(w, wl)?, bias);
        Ok((CpuStorage::F32(y), s.out_shape()))
    }
}

impl Gradients for Conv {
    fn gradients(
        &self,
        inputs: &[&Tensor],
        need: &[bool],
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, weight, bias) = match inputs {
            [x, w] => (*x, *w, None),
            [x, w, b] => (*x, *w, Some(*b)),
            _ => candle_core::bail!("conv2d backward: {} inputs", inputs.len()),
        };
        let need = ConvBackward {
            conv: *self,
            input: need.first() == Some(&true),
            weight: need.get(1) == Some(&true),
            bias: bias.is_some() && need.get(2) == Some(&true),
        };
        if !(need.input || need.weight || need.bias) {
            return Ok(vec![None; inputs.len()]);
        }
        let packed = grad.contiguous()?.apply_op3_no_bwd(x, weight, &need)?;
        let [dx, dw, db] = unpack(
            &packed,
            [
                need.input.then_some(x),
                need.weight.then_some(weight),
                bias.filter(|_| need.bias),
            ],
        )?;
        Ok([dx, dw, db].into_iter().take(inputs.len()).collect())
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "native-conv2d"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd((x, xl), (w, wl), None)
    }

    bwd_through_gradients!(2);
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "native-conv2d-bias"
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
        self.fwd((x, xl), (w, wl), Some((b, bl)))
    }

    bwd_through_gradients!(3);
}

/// The gradients of a convolution, packed `[input?, weight?, bias?]` in one buffer.
#[derive(Debug, Clone, Copy)]
struct ConvBackward {
    conv: Conv,
    input: bool,
    weight: bool,
    bias: bool,
}

impl ConvBackward {
    fn compute(&self, s: &Sizes, dy: &[f32], x: &[f32], weight: &[f32]) -> Vec<f32> {
        let conv = &self.conv;
        let g = conv.groups;
        let (n, k) = (s.n(), s.k(g));
        let (cg, mg) = (s.cin / g, s.cout / g);
        let image = s.cin * s.h * s.w;
        let pointwise = conv.pointwise(s);
        let depthwise = conv.depthwise(s);
        let taps: Vec<Tap> = conv.taps(s, cg).collect();
        let dx_len = if self.input { s.batch * image } else { 0 };
        let dw_len = if self.weight { s.cout * k } else { 0 };
        let db_len = if self.bias { s.cout } else { 0 };
        let mut packed = Vec::with_capacity(dx_len + dw_len + db_len);
        let dx = &mut packed.spare_capacity_mut()[..dx_len];
        let per_image = if self.input { image } else { 0 };
        let direct = direct::usable(conv, s).map(|isa| {
            direct::Backward::new(isa, (conv, s), [self.input, self.weight], (dy, x, weight))
        });
        let direct_input = direct
            .as_ref()
            .is_some_and(direct::Backward::input_gradient);
        // The im2col buffer, where the weight or input gradient still goes through it.
        let unfolds =
            !(pointwise || depthwise) && (direct.is_none() || (self.input && !direct_input));
        // The input the weight gradient multiplies: rectified, if the convolution rectifies it
        // first (stored once here where the direct kernels, which rectify as they block each
        // image, do not compute it).
        let rectified = conv
            .before
            .filter(|_| self.weight && direct.is_none())
            .map(|r| r.forward(x));
        let xw = rectified.as_deref().unwrap_or(x);
        let partials = over_ranges(s.batch, dx, per_image, |images, dx| {
            let range = &x[images.start * image..][..images.len() * image];
            let mut dw = vec![0.0f32; dw_len];
            let mut db = vec![0.0f32; db_len];
            let mut col = vec![0.0f32; if unfolds { k * n } else { 0 }];
            let mut blocked_dw = match &direct {
                Some(d) if self.weight => d.weight_gradient_buffer(),
                _ => Vec::new(),
            };
            let mut loaded = direct::Loaded::default();
            let dx = match &direct {
                // Both gradients from each image's blocked operands while they are in cache.
                Some(d) if direct_input => {
                    for (j, i) in images.clone().enumerate() {
                        d.load(i, &mut loaded);
                        let dxi = &mut dx[j * image..][..image];
                        d.write_input_gradient(&loaded, dxi);
                        if let Some(r) = conv.before {
                            // SAFETY: the direct kernel wrote the image's gradient in full.
                            let dxi = unsafe { assume_init(dxi) };
                            r.gradient_in_place(dxi, &range[j * image..][..image]);
                        }
                        d.add_weight_gradient(&loaded, &mut blocked_dw);
                    }
                    // SAFETY: the direct kernel wrote each image's gradient in full.
                    unsafe { assume_init(dx) }
                }
                // Summed into by the other paths.
                _ => zeroed(dx),
            };
            for (j, i) in images.enumerate() {
                let dyi = &dy[i * s.cout * n..][..s.cout * n];
                if self.bias {
                    for (sum, row) in db.iter_mut().zip(dyi.chunks_exact(n)) {
                        *sum += row.iter().sum::<f32>();
                    }
                }
                if depthwise {
                    let dwi = self.weight.then_some(&mut dw[..]);
                    let dxi = self.input.then(|| &mut dx[j * image..][..image]);
                    let xi = &xw[i * image..][..image];
                    conv.depthwise_backward((s, &taps), dyi, xi, weight, dwi, dxi);
                    continue;
                }
                if let Some(d) = direct.as_ref().filter(|_| self.weight && !direct_input) {
                    d.load(i, &mut loaded);
                    d.add_weight_gradient(&loaded, &mut blocked_dw);
                }
                for group in 0..g {
                    let dyg = Operand::rows(&dyi[group * mg * n..][..mg * n], n);
                    let xg = &xw[i * image + group * cg * s.h * s.w..][..cg * s.h * s.w];
                    if self.weight && direct.is_none() {
                        if !pointwise {
                            conv.im2col((s, &taps), xg, &mut col);
                        }
                        let src: &[f32] = if pointwise { xg } else { &col };
                        let dwg = &mut dw[group * mg * k..][..mg * k];
                        gemm(dwg, true, (mg, k, n), dyg, Operand::transposed(src, n));
                    }
                    if self.input && !direct_input {
                        let wg = Operand::transposed(&weight[group * mg * k..][..mg * k], k);
                        let dxg = &mut dx[j * image + group * cg * s.h * s.w..][..cg * s.h * s.w];
                        if pointwise {
                            gemm(dxg, false, (k, n, mg), wg, dyg);
                        } else {
                            gemm(&mut col, false, (k, n, mg), wg, dyg);
                            conv.col2im((s, &taps), &col, dxg);
                        }
                    }
                }
            }
            if let Some(r) = conv.before.filter(|_| self.input && !direct_input) {
                r.gradient_in_place(dx, range);
            }
            if let Some(d) = direct.as_ref().filter(|_| self.weight) {
                d.unblock_weight_gradient(&blocked_dw, &mut dw);
            }
            (dw, db)
        });
        // SAFETY: every range's input gradient was written in full above.
        unsafe { packed.set_len(dx_len) };
        packed.resize(dx_len + dw_len + db_len, 0.0);
        let (dws, dbs): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
        let (dw, db) = packed[dx_len..].split_at_mut(dw_len);
        sum_in_order(dws, dw);
        sum_in_order(dbs, db);
        packed
    }
}

impl CustomOp3 for ConvBackward {
    fn name(&self) -> &'static str {
        "native-conv2d-backward"
    }

    fn cpu_fwd(
        &self,
        dy: &CpuStorage,
        dyl: &Layout,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let s = Sizes::of(&self.conv, xl, wl)?;
        expect_gradient(self.name(), dyl, &s.out_shape())?;
        let packed = self.compute(&s, data(dy, dyl)?, data(x, xl)?, data(w, wl)?);
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}
