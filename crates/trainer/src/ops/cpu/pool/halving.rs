//! The most common pooling, 2x2 windows with stride 2 and no padding, as straight-line code
//! over pairs of input rows (the general path walks each window's row and column ranges).

use super::{Kind, Pool};

/// The index of the first maximum of a window in row-major order, PyTorch's way (a later value
/// wins only if greater, or NaN).
fn first_max(q: [f32; 4]) -> usize {
    let mut arg = 0;
    for (k, &v) in q.iter().enumerate().skip(1) {
        let wins = v > q[arg] || v.is_nan();
        arg = if wins { k } else { arg };
    }
    arg
}

impl Pool {
    /// Whether the windows are 2x2 with stride 2 and no padding, none of them partial.
    pub(super) fn halves(&self, h: usize, w: usize) -> bool {
        let g = &self.geometry;
        g.kernel == [2, 2]
            && g.stride == [2, 2]
            && g.padding == [0, 0]
            && (!g.ceil_mode || (h.is_multiple_of(2) && w.is_multiple_of(2)))
    }

    /// The windows of one output row `oy` of an input plane `x[h, w]`, in order, each as its
    /// four values and their indices in the plane.
    fn row_windows(
        x: &[f32],
        w: usize,
        oy: usize,
    ) -> impl Iterator<Item = ([f32; 4], [usize; 4])> + '_ {
        let (top, bottom) = (2 * oy * w, (2 * oy + 1) * w);
        (0..w / 2).map(move |ox| {
            let at = [
                top + 2 * ox,
                top + 2 * ox + 1,
                bottom + 2 * ox,
                bottom + 2 * ox + 1,
            ];
            (at.map(|i| x[i]), at)
        })
    }

    /// One plane's output `y[h/2, w/2]` from its input `x[h, w]`.
    pub(super) fn halve(&self, x: &[f32], w: usize, y: &mut [f32]) {
        for (oy, out) in y.chunks_exact_mut((w / 2).max(1)).enumerate() {
            for (o, (q, _)) in out.iter_mut().zip(Self::row_windows(x, w, oy)) {
                *o = match self.kind {
                    Kind::Max => q[first_max(q)],
                    Kind::Avg { .. } => ((q[0] + q[1]) + (q[2] + q[3])) / 4.0,
                };
            }
        }
    }

    /// One plane's input gradient `dx[h, w]` (zeroed by the caller) from `dy[h/2, w/2]`.
    pub(super) fn halve_backward(&self, dy: &[f32], x: &[f32], w: usize, dx: &mut [f32]) {
        for (oy, grads) in dy.chunks_exact((w / 2).max(1)).enumerate() {
            for (&g, (q, at)) in grads.iter().zip(Self::row_windows(x, w, oy)) {
                match self.kind {
                    Kind::Max => dx[at[first_max(q)]] = g,
                    Kind::Avg { .. } => at.iter().for_each(|&i| dx[i] = g / 4.0),
                }
            }
        }
    }
}
