//! Direct convolution in a channel-blocked layout (one group, AVX-512 or AVX2 with FMA).
//!
//! Channels are grouped in blocks of [`L`] = 16, the last block zero-filled: an image becomes
//! `[C/16, h', w', 16]` with the convolution's padding written in as zeros, so the kernels never
//! test bounds, and a weight `[out/16, in/16, kh, kw, 16 in, 16 out]`.
//! * The forward kernel holds a tile of output pixels x one or two blocks of 16 output channels
//!   in registers and, for each input channel and tap, adds one broadcast input value times one
//!   weight vector per pixel and block: no im2col, no packing, every weight vector reused by
//!   the whole tile from a register. It sums one input block at a time into a blocked scratch
//!   of the image's output, written out as NCHW at the end.
//! * The input gradient of a stride-1 convolution is the same kernel run on the output gradient
//!   (padded by the kernel's span less the forward padding) with the kernel turned 180 degrees
//!   and inputs and outputs swapped.
//! * The weight gradient holds a 16 x 16 (input, output) block of one tap in registers and adds
//!   the outer product of 16 input values and one output-gradient vector per pixel.
//!
//! Images are converted to the blocked layout one at a time, right before the kernels read them
//! ([`Images`]), so the blocked copy stays in the cache: converting the whole batch first
//! wrote it out to memory and read it back (a training step of ResNet-8 took 16% longer).
//!
//! The kernels (`kernels.rs`) are written once over a 16-lane vector trait, compiled for AVX-512
//! and for AVX2 with FMA under `target_feature`, and chosen at run time.
//! Other CPUs, grouped convolutions, pointwise ones (1x1, stride 1, unpadded: a gemm on the
//! data as it is) and channel counts that would waste more than half the arithmetic on zero
//! lanes take the im2col path.

use std::mem::MaybeUninit;

use super::super::{written_planes, Rectifier};
use super::{Conv, Sizes};

mod kernels;

pub(super) use kernels::Isa;

/// Channels per block: one AVX-512 register of f32, two AVX2 registers.
const L: usize = 16;

/// The instructions to run `conv` directly, if it qualifies (see the module doc).
pub(super) fn usable(conv: &Conv, s: &Sizes) -> Option<Isa> {
    let padded = |c: usize| c.div_ceil(L) * L;
    let wasteful = padded(s.cin) * padded(s.cout) > 2 * s.cin * s.cout;
    // A pointwise convolution is one gemm on the NCHW data as it is, with no im2col to save.
    if conv.groups != 1 || conv.pointwise(s) || wasteful || s.h == 0 || s.w == 0 {
        return None;
    }
    Isa::chosen()
}

/// Where blocked images lie: `blocks` planes of `height x width` pixels of 16 lanes each, the
/// data starting at `(top, left)` (the rows and columns before it are zero padding).
#[derive(Debug, Clone, Copy)]
struct Frame {
    blocks: usize,
    height: usize,
    width: usize,
    top: usize,
    left: usize,
}

impl Frame {
    fn plane(&self) -> usize {
        self.height * self.width * L
    }

    fn image(&self) -> usize {
        self.blocks * self.plane()
    }
}

/// NCHW data `[batch, c, h, w]`, converted one image at a time, when a kernel needs it, to
/// `[c/16, h + top + bottom, w + left + right, 16]` (in `frame`). Converting the whole batch up
/// front wrote it out to memory and read it back; one image's blocked planes stay in the
/// cache for the kernel that reads them next.
#[derive(Clone, Copy)]
struct Images<'a> {
    data: &'a [f32],
    channels: usize,
    size: [usize; 2],
    frame: Frame,
    /// A rectifier applied to each blocked image (the padding stays zero).
    rectifier: Option<Rectifier>,
}

impl<'a> Images<'a> {
    /// `data` `[.., c, h, w]`, padded `[top, bottom, left, right]` in its blocked form, and
    /// rectified there if `rectifier` is given.
    fn new(
        data: &'a [f32],
        [c, h, w]: [usize; 3],
        [top, bottom, left, right]: [usize; 4],
        rectifier: Option<Rectifier>,
    ) -> Self {
        let frame = Frame {
            blocks: c.div_ceil(L),
            height: h + top + bottom,
            width: w + left + right,
            top,
            left,
        };
        Images {
            data,
            channels: c,
            size: [h, w],
            frame,
            rectifier,
        }
    }

    /// Image `i` blocked, in `buffer` (whose old contents it replaces).
    fn block<'b>(&self, isa: Isa, i: usize, buffer: &'b mut Vec<f32>) -> &'b [f32] {
        let ([h, w], c, len) = (self.size, self.channels, self.frame.image());
        let image = &self.data[i * c * h * w..][..c * h * w];
        buffer.clear();
        buffer.reserve(len);
        let planes = buffer.spare_capacity_mut()[..len].chunks_exact_mut(self.frame.plane());
        for (b, plane) in planes.enumerate() {
            let lanes = L.min(c - b * L);
            let channels = &image[b * L * h * w..][..lanes * h * w];
            kernels::block(isa, (channels, lanes, [h, w]), plane, self.frame);
        }
        // SAFETY: `block` wrote every element of each of the `len / plane` planes.
        unsafe { buffer.set_len(len) };
        if let Some(r) = self.rectifier {
            // Every rectifier maps the zeros of the padding to zero.
            r.apply_in_place(buffer);
        }
        buffer
    }
}

/// Index of weight `(out, in, ki, kj)` in the blocked layout with `in_blocks` input blocks.
fn blocked_index([o, c, ki, kj]: [usize; 4], in_blocks: usize, [kh, kw]: [usize; 2]) -> usize {
    let tap = ((o / L * in_blocks + c / L) * kh + ki) * kw + kj;
    tap * L * L + c % L * L + o % L
}

/// The indices `[o, c, ki, kj]` of a weight of shape `dims`, in memory order.
fn positions(dims: [usize; 4]) -> impl Iterator<Item = [usize; 4]> {
    let [cout, cin, kh, kw] = dims;
    (0..cout).flat_map(move |o| {
        (0..cin)
            .flat_map(move |c| (0..kh).flat_map(move |ki| (0..kw).map(move |kj| [o, c, ki, kj])))
    })
}

/// A weight `[out, in, kh, kw]` as `[out/16, in/16, kh, kw, 16 in, 16 out]`; `flipped`: the
/// weight of the transposed convolution (in and out swapped, kernel turned 180 degrees).
fn blocked_weight(w: &[f32], [cout, cin, kh, kw]: [usize; 4], flipped: bool) -> Vec<f32> {
    let (outs, ins) = if flipped { (cin, cout) } else { (cout, cin) };
    let in_blocks = ins.div_ceil(L);
    let mut out = vec![0.0f32; outs.div_ceil(L) * in_blocks * kh * kw * L * L];
    for ([o, c, ki, kj], &v) in positions([cout, cin, kh, kw]).zip(w) {
        let at = if flipped {
            [c, o, kh - 1 - ki, kw - 1 - kj]
        } else {
            [o, c, ki, kj]
        };
        out[blocked_index(at, in_blocks, [kh, kw])] = v;
    }
    out
}

/// One convolution over blocked sources: output pixel `o` and tap `k` read source pixel
/// `o * stride + k * dilation` (padding included in the source's frame).
#[derive(Debug, Clone, Copy)]
struct Plan {
    isa: Isa,
    src: Frame,
    outs: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: usize,
    out_size: [usize; 2],
}

impl Plan {
    /// `conv` over sources laid out in `src`, with `conv`'s own output.
    fn of(isa: Isa, (conv, s): (&Conv, &Sizes), src: Frame) -> Plan {
        Plan {
            isa,
            src,
            outs: s.cout,
            kernel: [s.kh, s.kw],
            stride: conv.stride,
            dilation: conv.dilation,
            out_size: [s.oh, s.ow],
        }
    }

    /// Weight elements per block of 16 outputs.
    fn block_len(&self) -> usize {
        self.src.blocks * self.kernel[0] * self.kernel[1] * L * L
    }

    fn out_plane(&self) -> usize {
        self.out_size[0] * self.out_size[1]
    }

    /// One image's output `out[outs, oh, ow]` (NCHW) from its blocked source; writes every
    /// element of `out[..outs * oh * ow]`.
    fn convolve(
        &self,
        src: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        out: &mut [MaybeUninit<f32>],
    ) {
        assert!(src.len() >= self.src.image(), "source too short");
        assert!(
            out.len() >= self.outs * self.out_plane(),
            "output too short"
        );
        assert!(weight.len() >= self.outs.div_ceil(L) * self.block_len());
        let last =
            |out: usize, stride: usize, k: usize| (out - 1) * stride + (k - 1) * self.dilation;
        let [oh, ow] = self.out_size;
        assert!(
            oh > 0
                && ow > 0
                && last(oh, self.stride[0], self.kernel[0]) < self.src.height
                && last(ow, self.stride[1], self.kernel[1]) < self.src.width,
            "the frame does not hold the kernel's span"
        );
        kernels::convolve(self, src, weight, bias, out);
    }

    /// Adds one image's weight gradient (blocked like the weight) to `dw`, from its blocked
    /// source and its blocked output gradient `dy` laid out in `grads`.
    fn add_weight_gradient(&self, src: &[f32], (dy, grads): (&[f32], Frame), dw: &mut [f32]) {
        assert!(src.len() >= self.src.image(), "source too short");
        assert!(dy.len() >= grads.image(), "gradient too short");
        assert!(dw.len() >= self.outs.div_ceil(L) * self.block_len());
        kernels::add_weight_gradient(self, src, (dy, grads), dw);
    }
}

thread_local! {
    /// The blocked input image a thread's forward pass convolves, its buffer kept from image to
    /// image (as the backward pass keeps its [`Loaded`] for a range of images).
    static BLOCKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The forward pass `[batch, cout, oh, ow]` of `conv`, which [`usable`] accepted for `isa`.
pub(super) fn forward(
    isa: Isa,
    (conv, s): (&Conv, &Sizes),
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let src = Images::new(x, [s.cin, s.h, s.w], conv.padding, conv.before);
    let weight = blocked_weight(weight, [s.cout, s.cin, s.kh, s.kw], false);
    let plan = Plan::of(isa, (conv, s), src.frame);
    let image = s.cout * s.n();
    // SAFETY: `convolve` writes every element of its image's output.
    unsafe {
        written_planes(s.batch * image, image, |i, out| {
            BLOCKED.with_borrow_mut(|buffer| {
                plan.convolve(src.block(isa, i, buffer), &weight, bias, out)
            })
        })
    }
}

/// The operands of a convolution's backward pass: the weight prepared once, the output
/// gradient and input blocked image by image ([`Backward::load`]).
pub(super) struct Backward<'a> {
    plan: Plan,
    dims: [usize; 4],
    grads: Images<'a>,
    src: Option<Images<'a>>,
    input: Option<(Plan, Vec<f32>)>,
}

/// One image's blocked output gradient and input, in buffers reused from image to image.
#[derive(Default)]
pub(super) struct Loaded {
    grads: Vec<f32>,
    src: Vec<f32>,
}

impl<'a> Backward<'a> {
    /// Prepares the weight gradient if `weight`, and the input gradient if `input` and the
    /// convolution has stride 1 and no more padding than its kernel spans (otherwise
    /// [`Backward::input_gradient`] is false and the caller computes it).
    pub(super) fn new(
        isa: Isa,
        (conv, s): (&Conv, &Sizes),
        [input, weight]: [bool; 2],
        (dy, x, w): (&'a [f32], &'a [f32], &[f32]),
    ) -> Self {
        let span = [conv.dilation * (s.kh - 1), conv.dilation * (s.kw - 1)];
        let [top, bottom, left, right] = conv.padding;
        let direct_input = input
            && conv.stride == [1, 1]
            && top.max(bottom) <= span[0]
            && left.max(right) <= span[1];
        let pad = if direct_input {
            [
                span[0] - top,
                span[0] - bottom,
                span[1] - left,
                span[1] - right,
            ]
        } else {
            [0; 4]
        };
        let dims = [s.cout, s.cin, s.kh, s.kw];
        let grads = Images::new(dy, [s.cout, s.oh, s.ow], pad, None);
        let src = weight.then(|| Images::new(x, [s.cin, s.h, s.w], conv.padding, conv.before));
        let plan = Plan::of(
            isa,
            (conv, s),
            src.as_ref().map_or(grads.frame, |b| b.frame),
        );
        let input = direct_input.then(|| {
            let plan = Plan {
                src: grads.frame,
                outs: s.cin,
                stride: [1, 1],
                out_size: [s.h, s.w],
                ..plan
            };
            (plan, blocked_weight(w, dims, true))
        });
        Backward {
            plan,
            dims,
            grads,
            src,
            input,
        }
    }

    /// Whether [`Backward::write_input_gradient`] computes the input gradient.
    pub(super) fn input_gradient(&self) -> bool {
        self.input.is_some()
    }

    /// Blocks image `i`'s output gradient, and its input if the weight gradient is wanted,
    /// into `loaded`.
    pub(super) fn load(&self, i: usize, loaded: &mut Loaded) {
        self.grads.block(self.plan.isa, i, &mut loaded.grads);
        if let Some(src) = &self.src {
            src.block(self.plan.isa, i, &mut loaded.src);
        }
    }

    /// Writes the `loaded` image's input gradient `[cin, h, w]` into `dx`, every element, if
    /// [`Backward::input_gradient`].
    pub(super) fn write_input_gradient(&self, loaded: &Loaded, dx: &mut [MaybeUninit<f32>]) {
        if let Some((plan, flipped)) = &self.input {
            plan.convolve(&loaded.grads, flipped, None, dx);
        }
    }

    /// A zeroed buffer for [`Backward::add_weight_gradient`].
    pub(super) fn weight_gradient_buffer(&self) -> Vec<f32> {
        vec![0.0; self.plan.outs.div_ceil(L) * self.plan.block_len()]
    }

    /// Adds the `loaded` image's weight gradient to `blocked` (from
    /// [`Backward::weight_gradient_buffer`]).
    pub(super) fn add_weight_gradient(&self, loaded: &Loaded, blocked: &mut [f32]) {
        if self.src.is_some() {
            let dy = (&loaded.grads[..], self.grads.frame);
            self.plan.add_weight_gradient(&loaded.src, dy, blocked);
        }
    }

    /// Writes a blocked weight gradient into `dw[out, in, kh, kw]`.
    pub(super) fn unblock_weight_gradient(&self, blocked: &[f32], dw: &mut [f32]) {
        let kernel = [self.dims[2], self.dims[3]];
        for (at, d) in positions(self.dims).zip(dw) {
            *d = blocked[blocked_index(at, self.plan.src.blocks, kernel)];
        }
    }
}
