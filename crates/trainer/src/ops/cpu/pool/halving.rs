//! The most common pooling, 2x2 windows with stride 2 and no padding, as straight-line code
//! over pairs of input rows (the general path walks each window's row and column ranges).

use super::{Kind, Pool};

/// Whether a later value `v` of a window replaces the maximum so far, PyTorch's way: if it is
/// greater, or NaN.
fn wins(v: f32, max: f32) -> bool {
    v > max || v.is_nan()
}

/// The index of the first maximum of a window in row-major order ([`wins`]); branch-free,
/// carrying the maximum so far.
fn first_max(q: [f32; 4]) -> usize {
    let (mut max, mut arg) = (q[0], 0);
    for (k, v) in q.into_iter().enumerate().skip(1) {
        let wins = wins(v, max);
        max = if wins { v } else { max };
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

    /// Output row `oy`'s two input rows of a plane `x[h, w]`, cut to the `2 * (w / 2)` columns
    /// the windows cover.
    fn rows(x: &[f32], w: usize, oy: usize) -> (&[f32], &[f32]) {
        let covered = w / 2 * 2;
        (
            &x[2 * oy * w..][..covered],
            &x[(2 * oy + 1) * w..][..covered],
        )
    }
}

vectorized! {
    /// One plane's output `y[h/2, w/2]` from its input `x[h, w]`: loops with the kind decided
    /// outside them and no indexing, so they vectorize.
    pub(super) fn halve(kind: Kind, x: &[f32], w: usize, y: &mut [f32]) {
        for (oy, out) in y.chunks_exact_mut((w / 2).max(1)).enumerate() {
            let (top, bottom) = Pool::rows(x, w, oy);
            let windows = out
                .iter_mut()
                .zip(top.chunks_exact(2).zip(bottom.chunks_exact(2)));
            match kind {
                Kind::Max => windows.for_each(|(o, (t, b))| {
                    *o = [t[1], b[0], b[1]]
                        .into_iter()
                        .fold(t[0], |m, v| if wins(v, m) { v } else { m })
                }),
                Kind::Avg { .. } => {
                    windows.for_each(|(o, (t, b))| *o = ((t[0] + t[1]) + (b[0] + b[1])) / 4.0)
                }
            }
        }
    }
}

vectorized! {
    /// One plane's input gradient `dx[h, w]` (zeroed by the caller) from `dy[h/2, w/2]`.
    pub(super) fn halve_backward(kind: Kind, dy: &[f32], x: &[f32], w: usize, dx: &mut [f32]) {
        let covered = w / 2 * 2;
        for (oy, (grads, dx)) in dy
            .chunks_exact((w / 2).max(1))
            .zip(dx.chunks_exact_mut(2 * w.max(1)))
            .enumerate()
        {
            let (top, bottom) = Pool::rows(x, w, oy);
            let (dtop, dbottom) = dx.split_at_mut(w);
            let windows = grads.iter().zip(
                top.chunks_exact(2).zip(bottom.chunks_exact(2)).zip(
                    dtop[..covered]
                        .chunks_exact_mut(2)
                        .zip(dbottom[..covered].chunks_exact_mut(2)),
                ),
            );
            match kind {
                Kind::Max => windows.for_each(|(&g, ((t, b), (dt, db)))| {
                    let arg = first_max([t[0], t[1], b[0], b[1]]);
                    let share = |k: usize| if arg == k { g } else { 0.0 };
                    (dt[0], dt[1], db[0], db[1]) = (share(0), share(1), share(2), share(3));
                }),
                Kind::Avg { .. } => windows.for_each(|(&g, (_, (dt, db)))| {
                    let share = g / 4.0;
                    (dt[0], dt[1], db[0], db[1]) = (share, share, share, share);
                }),
            }
        }
    }
}
