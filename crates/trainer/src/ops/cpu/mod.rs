//! Native CPU kernels: candle custom ops on f32 NCHW tensors, with hand-derived backward passes.
//!
//! Each operation is a forward custom op whose `bwd` applies a second, gradient-only custom op
//! (`apply_op*_no_bwd`) that computes every gradient its inputs need in one pass and returns
//! them packed in one buffer; the gradients are views into it. An input that is data (neither a
//! variable nor the result of a tracked op) gets no gradient, so the first convolution never
//! computes the gradient of the images. Each op's backward pass is its [`Gradients`]
//! implementation, which candle's `bwd` calls and which the `*_traced` forms (ops applied outside
//! candle's graph, for the network's own tape) hand back in a [`Traced`].
//!
//! Work runs on rayon and is deterministic. Reductions across the batch (the convolution's
//! weight gradient) run in a fixed partition of the batch (one contiguous range per thread),
//! partial sums added in range order, so results depend on the thread count and nothing else;
//! per-channel reductions (BatchNorm) run in parallel over fixed groups of images, each group's
//! planes summed in a fixed order (f32 lanes within blocks of 1,024, blocks added in f64) and
//! the groups added in order, so they do not even depend on the thread count.
//! Elementwise and per-plane work (activations, pooling, normalization's output) needs no
//! order.
//!
//! * [`conv2d`]: direct kernels in a 16-channel blocked layout on AVX-512 or AVX2 CPUs
//!   (`conv/direct.rs`), otherwise im2col + gemm per image (`conv.rs`); depthwise convolutions
//!   as direct loops (`conv/depthwise.rs`). [`conv2d_traced`] can rectify its input as it
//!   reads it (a rectifier then a convolution, with the rectified values never stored).
//! * [`batch_norm_train`], [`batch_norm_eval`]: one pass for the output, one reduction per
//!   channel for the gradients (`norm.rs`); [`batch_norm_train_traced`] can apply a rectifier
//!   in the same pass.
//! * [`max_pool2d`], [`avg_pool2d`]: per plane, the max-pool gradient going to the first
//!   maximum of each window, found again in the backward pass (`pool.rs`).
//! * [`rectify`]: ReLU, ReLU6 and LeakyReLU, and [`add_traced`], the sum of two tensors
//!   (`activation.rs`).
//!
//! Outputs are allocated uninitialized and written in parallel planes (`planes` zeroes each
//! plane just before its writer runs, `planes_of` writes elementwise results once): a serial
//! `vec![0.0; n]` over activation-sized buffers cost as much as some kernels.

use std::mem::MaybeUninit;

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Compiles the function it wraps once for AVX-512, once for AVX2 with FMA and once for the
/// baseline, and runs the widest this CPU supports (chosen at run time, through `multiversion`):
/// the crate is built for baseline x86-64 (SSE2), and loops inside such functions vectorize
/// for the wider instructions instead.
macro_rules! vectorized {
    ($function:item) => {
        #[multiversion::multiversion(targets(
            "x86_64+avx512f+avx512vl+avx512bw+avx512dq+avx2+fma",
            "x86_64+avx2+fma"
        ))]
        $function
    };
}

mod activation;
mod conv;
mod norm;
mod pool;

pub use activation::{add_traced, rectify, rectify_traced, Rectifier};
pub use conv::{conv2d, conv2d_traced};
pub use norm::{batch_norm_eval, batch_norm_train, batch_norm_train_traced};
pub use pool::{avg_pool2d, max_pool2d, pool2d_traced};

/// The contiguous f32 data of a custom op's input.
fn data<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("native kernels take f32 tensors, got {:?}", storage.dtype())
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("native kernels take contiguous tensors"),
    }
}

/// Whether candle's backpropagation needs the gradient of `t`.
fn needs_grad(t: &Tensor) -> bool {
    t.track_op()
}

/// The backward pass of a native op, callable by candle's autograd (its `bwd`) and by the
/// network's own tape alike.
pub trait Gradients: Send + Sync {
    /// The gradients of the op's `inputs` (in its argument order) from the gradient of its
    /// output; `None` wherever `need` is false.
    fn gradients(
        &self,
        inputs: &[&Tensor],
        need: &[bool],
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>>;
}

/// A native op applied outside candle's graph: its output, the inputs it was applied to (in
/// argument order, contiguous) and its backward pass.
pub struct Traced {
    /// The op's output (no graph).
    pub output: Tensor,
    /// The op's inputs.
    pub inputs: Vec<Tensor>,
    /// The op's backward pass.
    pub backward: Box<dyn Gradients>,
}

impl Traced {
    /// The gradients of the inputs from the output's gradient, where `need`.
    pub fn gradients(&self, need: &[bool], grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let inputs: Vec<&Tensor> = self.inputs.iter().collect();
        self.backward.gradients(&inputs, need, grad)
    }
}

/// The gradients of a one-input op whose backward op runs on `(dy, x)` and returns `dx`.
fn unary_gradients(
    inputs: &[&Tensor],
    need: &[bool],
    grad: &Tensor,
    backward: &impl CustomOp2,
) -> Result<Vec<Option<Tensor>>> {
    let [x] = inputs else {
        candle_core::bail!("{}: {} inputs", backward.name(), inputs.len())
    };
    if need.first() != Some(&true) {
        return Ok(vec![None]);
    }
    Ok(vec![Some(
        grad.contiguous()?.apply_op2_no_bwd(x, backward)?,
    )])
}

/// A candle custom op's `bwd` with `1`, `2` or `3` inputs, through the op's [`Gradients`].
macro_rules! bwd_through_gradients {
    (1) => {
        fn bwd(&self, x: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
            let [dx] = super::autograd(self, [x], grad)?;
            Ok(dx)
        }
    };
    (2) => {
        fn bwd(
            &self,
            a: &Tensor,
            b: &Tensor,
            _: &Tensor,
            grad: &Tensor,
        ) -> Result<(Option<Tensor>, Option<Tensor>)> {
            let [da, db] = super::autograd(self, [a, b], grad)?;
            Ok((da, db))
        }
    };
    (3) => {
        fn bwd(
            &self,
            a: &Tensor,
            b: &Tensor,
            c: &Tensor,
            _: &Tensor,
            grad: &Tensor,
        ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            let [da, db, dc] = super::autograd(self, [a, b, c], grad)?;
            Ok((da, db, dc))
        }
    };
}
use bwd_through_gradients;

/// Fails unless a backward op's output gradient has the shape its forward op produced.
fn expect_gradient(op: &str, grad: &Layout, output: &Shape) -> Result<()> {
    if grad.shape() != output {
        candle_core::bail!("{op}: gradient {:?} for output {output:?}", grad.shape())
    }
    Ok(())
}

/// The gradients of `inputs` as candle's autograd wants them: computed where the input is
/// tracked.
fn autograd<const N: usize>(
    op: &dyn Gradients,
    inputs: [&Tensor; N],
    grad: &Tensor,
) -> Result<[Option<Tensor>; N]> {
    let need = inputs.map(needs_grad);
    let mut grads = op.gradients(&inputs, &need, grad)?.into_iter();
    Ok(std::array::from_fn(|_| grads.next().flatten()))
}

/// Splits a packed gradient buffer into one gradient per `Some` entry of `parts`, in order,
/// each shaped like that tensor; `None` entries get no gradient and take no room.
fn unpack<const N: usize>(
    packed: &Tensor,
    parts: [Option<&Tensor>; N],
) -> Result<[Option<Tensor>; N]> {
    let mut grads = std::array::from_fn(|_| None);
    let mut offset = 0;
    for (grad, like) in grads.iter_mut().zip(parts) {
        if let Some(t) = like {
            let len = t.elem_count();
            *grad = Some(packed.narrow(0, offset, len)?.reshape(t.shape())?);
            offset += len;
        }
    }
    Ok(grads)
}

/// Images per parallel task of [`channel_sums`]: a constant, so that the sums do not depend
/// on the thread count.
const SUM_IMAGES: usize = 4;

/// For every channel `c` and `n < N`, `Σ f(c)(n, a[i], b[i])` over the planes of channel `c`
/// of NCHW data `a` and `b` of one shape (`hw` elements per plane). In parallel over groups
/// of [`SUM_IMAGES`] images, each group read in memory order: channel by channel, every plane
/// started a new stream that the prefetcher had yet to find (ResNet-8's BatchNorm backward
/// took twice as long on 8 x 8 planes). The groups' sums ([`group_sums`]) added in order.
fn channel_sums<const N: usize, F: Fn(usize, f32, f32) -> f32 + Copy>(
    (a, b): (&[f32], &[f32]),
    (channels, hw): (usize, usize),
    f: impl Fn(usize) -> F + Sync,
) -> Vec<[f64; N]> {
    let mut total = vec![[0.0f64; N]; channels];
    let image = channels * hw;
    if image == 0 {
        return total;
    }
    let group = SUM_IMAGES * image;
    let groups: Vec<Vec<[f64; N]>> = a
        .par_chunks(group)
        .zip(b.par_chunks(group))
        .map(|(a, b)| group_sums((a, b), (channels, hw), &f))
        .collect();
    for sums in groups {
        for (total, sums) in total.iter_mut().zip(sums) {
            for (total, sum) in total.iter_mut().zip(sums) {
                *total += sum;
            }
        }
    }
    total
}

vectorized! {
    /// Runs `work` compiled for the widest vector instructions this CPU has, where LLVM inlines
    /// it: a closure holding a whole loop is called from every version and may stay out of line
    /// (compiled for SSE2), so hot loops live in [`vectorized`] functions of their own that take
    /// small per-element closures ([`fill`], [`group_sums`]).
    fn widest<R>(work: impl FnOnce() -> R) -> R {
        work()
    }
}

/// A new buffer of `len` elements made in parallel, planes of `hw` elements: each plane starts
/// as zeros and `f(p, plane)` writes plane `p`. Zeroing a plane right before it is written
/// keeps it in cache, where zeroing the whole buffer first (`vec![0.0; len]`) costs a serial
/// pass over memory.
fn planes(len: usize, hw: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) -> Vec<f32> {
    let zeroed_then_f = |p: usize, plane: &mut [MaybeUninit<f32>]| {
        let plane = zeroed(plane);
        widest(|| f(p, plane));
    };
    // SAFETY: each plane is filled with zeros before `f` sees it.
    unsafe { written_planes(len, hw, zeroed_then_f) }
}

/// `values` filled with zeros, as initialized values.
fn zeroed(values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    values.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just written.
    unsafe { assume_init(values) }
}

/// `values` as initialized values.
///
/// # Safety
/// Every element of `values` must have been written.
unsafe fn assume_init(values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`; initialized by the caller's contract.
    unsafe { &mut *(values as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Like [`planes`] without the zeroing, for planes computed element by element in order:
/// `values(p)` yields plane `p`'s elements.
///
/// # Panics
/// If `values(p)` ends before plane `p` is full.
fn planes_of<I: Iterator<Item = f32>>(
    len: usize,
    hw: usize,
    values: impl Fn(usize) -> I + Sync + Send,
) -> Vec<f32> {
    let mut data = Vec::new();
    append_planes_of(&mut data, len, hw, values);
    data
}

/// [`planes_of`] appended to `data`.
fn append_planes_of<I: Iterator<Item = f32>>(
    data: &mut Vec<f32>,
    len: usize,
    hw: usize,
    values: impl Fn(usize) -> I + Sync + Send,
) {
    let write = |p: usize, plane: &mut [MaybeUninit<f32>]| {
        let written = fill(plane, values(p));
        assert_eq!(written, plane.len(), "plane {p} was not filled");
    };
    // SAFETY: `write` fills each plane in full, or panics.
    unsafe { append_planes(data, len, hw, write) }
}

vectorized! {
    /// Writes `values` into `plane` in order, until either ends; how many were written.
    fn fill(plane: &mut [MaybeUninit<f32>], values: impl Iterator<Item = f32>) -> usize {
        plane
            .iter_mut()
            .zip(values)
            .map(|(slot, v)| slot.write(v))
            .count()
    }
}

vectorized! {
    /// `values[i] = f(values[i], other[i])`, or `f(values[i], 0.0)` for every value without
    /// `other`.
    fn update(values: &mut [f32], other: Option<&[f32]>, f: impl Fn(f32, f32) -> f32) {
        match other {
            None => values.iter_mut().for_each(|v| *v = f(*v, 0.0)),
            Some(other) => {
                for (v, &o) in values.iter_mut().zip(other) {
                    *v = f(*v, o);
                }
            }
        }
    }
}

/// A new buffer of `len` elements whose planes of `hw` elements `write(p, plane)` fills in
/// parallel.
///
/// # Safety
/// As [`append_planes`].
unsafe fn written_planes(
    len: usize,
    hw: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut data = Vec::new();
    // SAFETY: forwarded to the caller.
    unsafe { append_planes(&mut data, len, hw, write) };
    data
}

/// Appends `len` elements to `data`, planes of `hw` elements that `write(p, plane)` fills in
/// parallel.
///
/// # Safety
/// `write` must initialize every element of the plane it is given (or panic, which leaves
/// `data` as it was).
unsafe fn append_planes(
    data: &mut Vec<f32>,
    len: usize,
    hw: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) {
    data.reserve(len);
    data.spare_capacity_mut()[..len]
        .par_chunks_mut(hw.max(1))
        .enumerate()
        .for_each(|(p, plane)| write(p, plane));
    // SAFETY: the planes cover the `len` elements after the old end, and the caller's `write`
    // initialized each.
    unsafe { data.set_len(data.len() + len) };
}

/// Elements per block of [`group_sums`].
const SUM_BLOCK: usize = 1024;

vectorized! {
    /// [`channel_sums`] over one group of images: per plane and `n`, in a fixed order, per
    /// block of [`SUM_BLOCK`] elements, the values written out to a buffer (a plain map, which
    /// vectorizes whatever `f` does, a rectifier's select included) and then summed in
    /// sixteen f32 partial sums; the blocks added in f64, so rounding stays at the scale of a
    /// block's sum. (One map per `n` while the plane is in the L1 cache: a map writing every
    /// `n`'s buffer at once stayed partly scalar.)
    fn group_sums<const N: usize, F: Fn(usize, f32, f32) -> f32 + Copy>(
        (a, b): (&[f32], &[f32]),
        (channels, hw): (usize, usize),
        f: &impl Fn(usize) -> F,
    ) -> Vec<[f64; N]> {
        const LANES: usize = 16;
        let mut sums = vec![[0.0f64; N]; channels];
        let mut values = [0.0f32; SUM_BLOCK];
        let planes = a.chunks_exact(hw).zip(b.chunks_exact(hw));
        for (p, (a, b)) in planes.enumerate() {
            let (sums, f) = (&mut sums[p % channels], f(p % channels));
            for (n, sum) in sums.iter_mut().enumerate() {
                for (a, b) in a.chunks(SUM_BLOCK).zip(b.chunks(SUM_BLOCK)) {
                    let values = &mut values[..a.len()];
                    for ((value, &u), &v) in values.iter_mut().zip(a).zip(b) {
                        *value = f(n, u, v);
                    }
                    let chunks = values.chunks_exact(LANES);
                    let tail: f32 = chunks.remainder().iter().sum();
                    let mut lanes = [0.0f32; LANES];
                    for chunk in chunks {
                        for (lane, &value) in lanes.iter_mut().zip(chunk) {
                            *lane += value;
                        }
                    }
                    *sum += f64::from(lanes.iter().sum::<f32>() + tail);
                }
            }
        }
        sums
    }
}

/// A matrix operand: pointer and (row, column) strides in elements.
#[derive(Clone, Copy)]
struct Operand {
    ptr: *const f32,
    row_stride: isize,
    col_stride: isize,
}

impl Operand {
    /// A row-major matrix with `cols` columns.
    fn rows(data: &[f32], cols: usize) -> Self {
        Operand {
            ptr: data.as_ptr(),
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    fn transposed(data: &[f32], cols: usize) -> Self {
        Operand {
            ptr: data.as_ptr(),
            row_stride: 1,
            col_stride: cols as isize,
        }
    }
}

/// `dst[m x n] (+)= a[m x k] * b[k x n]`, `dst` row-major; single-threaded (callers run it
/// in parallel over images).
///
/// # Panics
/// If `dst` or the operands' implied extents are too short (checked on `dst` only; the
/// operands come from slices sized by the caller's shapes).
fn gemm(
    dst: &mut [f32],
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
) {
    assert!(dst.len() >= m * n, "gemm destination too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: dst holds m*n elements (checked); the operands are slices of the callers' inputs
    // whose lengths match the strides given, and nothing else writes to them during the call.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.ptr,
            a.col_stride,
            a.row_stride,
            b.ptr,
            b.col_stride,
            b.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Splits `0..items` into one contiguous range per rayon thread (fewer if there are fewer
/// items); the partition depends only on the counts.
fn ranges(items: usize) -> Vec<std::ops::Range<usize>> {
    let parts = rayon::current_num_threads().clamp(1, items.max(1));
    (0..parts)
        .map(|p| (p * items / parts)..((p + 1) * items / parts))
        .collect()
}

/// Runs `work` on each range of [`ranges`] in parallel, each with its slice of `out`
/// (`per_item` elements per item), and returns the per-range results in range order.
fn over_ranges<E: Send, T: Send>(
    items: usize,
    out: &mut [E],
    per_item: usize,
    work: impl Fn(std::ops::Range<usize>, &mut [E]) -> T + Sync,
) -> Vec<T> {
    let ranges = ranges(items);
    let mut slices = Vec::with_capacity(ranges.len());
    let mut rest = out;
    for r in &ranges {
        let (head, tail) = rest.split_at_mut(r.len() * per_item);
        slices.push(head);
        rest = tail;
    }
    ranges
        .into_par_iter()
        .zip(slices)
        .map(|(r, slice)| work(r, slice))
        .collect()
}

/// Adds `parts` elementwise in order into `total` (zeroed by the caller).
fn sum_in_order(parts: Vec<Vec<f32>>, total: &mut [f32]) {
    for part in parts {
        for (t, p) in total.iter_mut().zip(part) {
            *t += p;
        }
    }
}
