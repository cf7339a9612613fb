//! Depthwise convolutions (one input channel per group) as direct loops.
//!
//! With one input channel per group, im2col + gemm multiplies a one-row weight per group: the
//! packing costs more than the arithmetic. Here each kernel tap is a shifted multiply-add over
//! whole output rows (vectorized when the stride is 1), per (image, output channel) plane.

use super::{Conv, Sizes, Tap};

/// `dst[k * dst_step] += alpha * src[k * src_step]` for `k < len`.
fn axpy(dst: &mut [f32], dst_step: usize, src: &[f32], src_step: usize, len: usize, alpha: f32) {
    if dst_step == 1 && src_step == 1 {
        for (d, s) in dst[..len].iter_mut().zip(&src[..len]) {
            *d += alpha * s;
        }
    } else {
        for k in 0..len {
            dst[k * dst_step] += alpha * src[k * src_step];
        }
    }
}

/// `sum_k a[k] * b[k * b_step]` for `k < len`.
fn dot(a: &[f32], b: &[f32], b_step: usize, len: usize) -> f32 {
    if b_step == 1 {
        // Eight independent partial sums, so the loop vectorizes.
        let mut lanes = [0.0f32; 8];
        let (a, b) = (&a[..len], &b[..len]);
        for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
            for ((l, x), y) in lanes.iter_mut().zip(ca).zip(cb) {
                *l += x * y;
            }
        }
        let tail = len / 8 * 8;
        let rest: f32 = a[tail..].iter().zip(&b[tail..]).map(|(x, y)| x * y).sum();
        lanes.iter().sum::<f32>() + rest
    } else {
        (0..len).map(|k| a[k] * b[k * b_step]).sum()
    }
}

impl Conv {
    /// Whether each group reads one input channel (and the direct loops apply).
    pub(super) fn depthwise(&self, s: &Sizes) -> bool {
        s.cin == self.groups && !self.pointwise(s)
    }

    /// The rows a tap touches: `(output index, input index)` of each row's first valid pixel;
    /// the row holds `tap.cols.len()` pixels, `stride[1]` apart in the input.
    fn spans<'a>(
        &'a self,
        s: &'a Sizes,
        tap: &'a Tap,
    ) -> impl Iterator<Item = (usize, usize)> + 'a {
        tap.rows.clone().map(move |oy| {
            let iy = ((oy * self.stride[0]) as isize + tap.y_offset) as usize;
            let ix = ((tap.cols.start * self.stride[1]) as isize + tap.x_offset) as usize;
            (oy * s.ow + tap.cols.start, iy * s.w + ix)
        })
    }

    /// One image's output planes `y[cout, oh*ow]`, starting from the bias.
    pub(super) fn depthwise_forward(
        &self,
        (s, taps): (&Sizes, &[Tap]),
        x: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let (hw, multiplier) = (s.h * s.w, s.cout / s.cin);
        for (o, out) in y.chunks_exact_mut(s.n()).enumerate() {
            let plane = &x[(o / multiplier) * hw..][..hw];
            out.fill(bias.map_or(0.0, |b| b[o]));
            for (tap, &w) in taps.iter().zip(&weight[o * taps.len()..]) {
                let len = tap.cols.len();
                for (at_out, at_in) in self.spans(s, tap) {
                    axpy(
                        &mut out[at_out..],
                        1,
                        &plane[at_in..],
                        self.stride[1],
                        len,
                        w,
                    );
                }
            }
        }
    }

    /// One image's gradients: adds to the weight gradient `dw[cout, kh*kw]` and, if given,
    /// writes the input gradient `dx[cin, h*w]` (zeroed by the caller).
    pub(super) fn depthwise_backward(
        &self,
        (s, taps): (&Sizes, &[Tap]),
        dy: &[f32],
        x: &[f32],
        weight: &[f32],
        mut dw: Option<&mut [f32]>,
        mut dx: Option<&mut [f32]>,
    ) {
        let (hw, multiplier, k) = (s.h * s.w, s.cout / s.cin, taps.len());
        for (o, grad) in dy.chunks_exact(s.n()).enumerate() {
            let c = o / multiplier;
            let plane = &x[c * hw..][..hw];
            for (t, (tap, &w)) in taps.iter().zip(&weight[o * k..]).enumerate() {
                let len = tap.cols.len();
                for (at_out, at_in) in self.spans(s, tap) {
                    if let Some(dw) = dw.as_deref_mut() {
                        dw[o * k + t] += dot(&grad[at_out..], &plane[at_in..], self.stride[1], len);
                    }
                    if let Some(dx) = dx.as_deref_mut() {
                        let dx = &mut dx[c * hw..][..hw];
                        axpy(&mut dx[at_in..], self.stride[1], &grad[at_out..], 1, len, w);
                    }
                }
            }
        }
    }
}
