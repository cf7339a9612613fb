//! The register kernels of the direct convolution, on 16-lane vectors: one AVX-512 register
//! or two AVX2 registers, through the small [`Lanes`] trait so each kernel is written once.
//!
//! Each kernel is an `#[inline(always)]` generic function instantiated inside a
//! `#[target_feature]` wrapper, chosen at run time by [`Isa::chosen`]; the intrinsics inline
//! into the wrapper and the accumulators stay in registers.

use std::mem::MaybeUninit;

use super::{Frame, Plan, L};

/// The vector instructions the kernels are compiled for (none off x86-64, where the caller
/// keeps its im2col path).
#[derive(Debug, Clone, Copy)]
pub(in crate::ops::cpu::conv) enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Isa {
    /// The kernels to run: the widest this CPU supports, unless the environment variable
    /// `TRAINER_CONV` says `im2col` (no direct kernels) or `avx2` (the AVX2 kernels on an
    /// AVX-512 CPU), to compare the paths and test them all on one machine.
    pub(super) fn chosen() -> Option<Isa> {
        static CHOSEN: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let detected = Isa::detect();
            match std::env::var("TRAINER_CONV").as_deref() {
                Ok("im2col") => None,
                #[cfg(target_arch = "x86_64")]
                Ok("avx2") => detected.map(|_| Isa::Avx2),
                _ => detected,
            }
        })
    }

    /// The widest instructions this CPU has, if the kernels support any of them.
    fn detect() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            if !is_x86_feature_detected!("fma") {
                return None;
            }
            if is_x86_feature_detected!("avx512f") {
                return Some(Isa::Avx512);
            }
            if is_x86_feature_detected!("avx2") {
                return Some(Isa::Avx2);
            }
        }
        None
    }
}

thread_local! {
    /// The blocked sums of the image a thread convolves, kept from image to image: the first
    /// input block's pass writes every sum, so the buffer is never zeroed.
    static SUMS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`Plan::convolve`] (arguments checked there).
pub(super) fn convolve(
    p: &Plan,
    src: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [MaybeUninit<f32>],
) {
    let len = p.outs.div_ceil(L) * p.out_plane() * L;
    SUMS.with_borrow_mut(|sums| {
        if sums.len() < len {
            sums.resize(len, 0.0);
        }
        let sums = &mut sums[..len];
        // SAFETY: the instructions were detected at run time (`Isa::detect`).
        unsafe {
            match p.isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => x86::convolve_avx512(p, src, w, bias, (sums, out)),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => x86::convolve_avx2(p, src, w, bias, (sums, out)),
            }
        }
    })
}

/// [`Plan::add_weight_gradient`] (arguments checked there).
pub(super) fn add_weight_gradient(p: &Plan, src: &[f32], dy: (&[f32], Frame), dw: &mut [f32]) {
    // SAFETY: as in `convolve`.
    unsafe {
        match p.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::weight_gradient_avx512(p, src, dy, dw),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::weight_gradient_avx2(p, src, dy, dw),
        }
    }
}

/// Writes `lanes` (1 to 16) channel planes `channels[lanes, h, w]` as a blocked plane `dst`
/// laid out in `frame`, one 16-lane pixel at a time, and zeros everywhere else (the padding
/// around the image, the lanes past `lanes`): every element of `dst[..frame.plane()]`.
pub(super) fn block(
    isa: Isa,
    (channels, lanes, [h, w]): (&[f32], usize, [usize; 2]),
    dst: &mut [MaybeUninit<f32>],
    frame: Frame,
) {
    assert!((1..=L).contains(&lanes) && channels.len() >= lanes * h * w);
    assert!(h + frame.top <= frame.height && w + frame.left <= frame.width);
    assert!(dst.len() >= frame.plane() && h * w * L <= i32::MAX as usize);
    // SAFETY: as in `convolve`; the slices were checked above.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::block_avx512((channels, lanes, [h, w]), dst, frame),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::block_avx2((channels, lanes, [h, w]), dst, frame),
        }
    }
}

/// 16 f32 lanes held in registers.
///
/// # Safety
/// Every method needs the instructions of its implementation, and pointers valid for 16 f32.
trait Lanes: Copy {
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// `self + x * w` in every lane, fused.
    unsafe fn add_product(self, x: f32, w: Self) -> Self;
    /// `p[k * stride]` in lane `k` for `k < lanes`, zero in the other lanes.
    unsafe fn gather(p: *const f32, stride: usize, lanes: usize) -> Self;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use std::mem::MaybeUninit;

    use super::{blocked_pixels, outer_products_of, tiles, Frame, Lanes, Plan};

    /// One AVX-512 register.
    #[derive(Clone, Copy)]
    struct Zmm(__m512);

    impl Lanes for Zmm {
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { Zmm(_mm512_loadu_ps(p)) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn add_product(self, x: f32, w: Self) -> Self {
            unsafe { Zmm(_mm512_fmadd_ps(_mm512_set1_ps(x), w.0, self.0)) }
        }
        #[inline(always)]
        unsafe fn gather(p: *const f32, stride: usize, lanes: usize) -> Self {
            unsafe {
                let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
                let offsets = _mm512_mullo_epi32(lane, _mm512_set1_epi32(stride as i32));
                let mask = _mm512_cmplt_epi32_mask(lane, _mm512_set1_epi32(lanes as i32));
                Zmm(_mm512_mask_i32gather_ps::<4>(
                    _mm512_setzero_ps(),
                    mask,
                    offsets,
                    p.cast(),
                ))
            }
        }
    }

    /// Two AVX2 registers.
    #[derive(Clone, Copy)]
    struct Ymm2(__m256, __m256);

    impl Lanes for Ymm2 {
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { Ymm2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe {
                _mm256_storeu_ps(p, self.0);
                _mm256_storeu_ps(p.add(8), self.1);
            }
        }
        #[inline(always)]
        unsafe fn add_product(self, x: f32, w: Self) -> Self {
            unsafe {
                let x = _mm256_set1_ps(x);
                Ymm2(
                    _mm256_fmadd_ps(x, w.0, self.0),
                    _mm256_fmadd_ps(x, w.1, self.1),
                )
            }
        }
        #[inline(always)]
        unsafe fn gather(p: *const f32, stride: usize, lanes: usize) -> Self {
            unsafe {
                let half = |first: i32| {
                    let lane = _mm256_add_epi32(
                        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                        _mm256_set1_epi32(first),
                    );
                    let offsets = _mm256_mullo_epi32(lane, _mm256_set1_epi32(stride as i32));
                    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), lane);
                    _mm256_mask_i32gather_ps::<4>(
                        _mm256_setzero_ps(),
                        p.cast(),
                        offsets,
                        _mm256_castsi256_ps(mask),
                    )
                };
                Ymm2(half(0), half(8))
            }
        }
    }

    // Register budgets (accumulators): AVX-512 has 32 registers, 16 accumulators per
    // convolution tile (2 blocks x 8 pixels or 1 x 16) and 16 input channels per
    // weight-gradient pass; AVX2 has 16, 8 accumulators (2 x 2 or 1 x 4) and 4 channels.

    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn convolve_avx512(
        p: &Plan,
        src: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        sums_out: (&mut [f32], &mut [MaybeUninit<f32>]),
    ) {
        unsafe { tiles::<Zmm, 8, 16>(p, src, w, bias, sums_out) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn convolve_avx2(
        p: &Plan,
        src: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        sums_out: (&mut [f32], &mut [MaybeUninit<f32>]),
    ) {
        unsafe { tiles::<Ymm2, 2, 4>(p, src, w, bias, sums_out) }
    }

    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn block_avx512(
        channels: (&[f32], usize, [usize; 2]),
        dst: &mut [MaybeUninit<f32>],
        frame: Frame,
    ) {
        unsafe { blocked_pixels::<Zmm>(channels, dst, frame) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2(
        channels: (&[f32], usize, [usize; 2]),
        dst: &mut [MaybeUninit<f32>],
        frame: Frame,
    ) {
        unsafe { blocked_pixels::<Ymm2>(channels, dst, frame) }
    }

    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn weight_gradient_avx512(
        p: &Plan,
        src: &[f32],
        dy: (&[f32], Frame),
        dw: &mut [f32],
    ) {
        unsafe { outer_products_of::<Zmm, 16>(p, src, dy, dw) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_gradient_avx2(
        p: &Plan,
        src: &[f32],
        dy: (&[f32], Frame),
        dw: &mut [f32],
    ) {
        unsafe { outer_products_of::<Ymm2, 4>(p, src, dy, dw) }
    }
}

/// [`block`] (arguments checked there): each pixel's channels gathered into one vector, the
/// padding rows and columns written as zeros (only they: zeroing the whole plane first wrote
/// the image's pixels twice).
///
/// # Safety
/// `V`'s instructions are available.
#[inline(always)]
unsafe fn blocked_pixels<V: Lanes>(
    (channels, lanes, [h, w]): (&[f32], usize, [usize; 2]),
    dst: &mut [MaybeUninit<f32>],
    frame: Frame,
) {
    let zero = MaybeUninit::new(0.0);
    for (row, dst) in dst[..frame.plane()]
        .chunks_exact_mut(frame.width * L)
        .enumerate()
    {
        let Some(y) = row.checked_sub(frame.top).filter(|&y| y < h) else {
            dst.fill(zero);
            continue;
        };
        let (left, rest) = dst.split_at_mut(frame.left * L);
        let (pixels, right) = rest.split_at_mut(w * L);
        left.fill(zero);
        right.fill(zero);
        let src = &channels[y * w..];
        for (x, pixel) in pixels.chunks_exact_mut(L).enumerate() {
            // SAFETY: lane k reads `src[x + k * h * w]`, k < lanes, inside the checked
            // `channels`; the pixel holds 16 values.
            unsafe {
                V::gather(src.as_ptr().add(x), h * w, lanes).store(pixel.as_mut_ptr().cast())
            };
        }
    }
}

/// [`Plan::convolve`]: pairs of output blocks in tiles of `P` pixels, a last odd block in tiles
/// of `S` pixels, summed in `sums`, blocked `[blocks, oh, ow, 16]`, one input block at a time
/// (so the weights in use, `B x kh x kw x 16 x 16`, stay in the L1 cache), then written out
/// as NCHW. The first input block's pass starts from the bias (or zeros) and writes every sum.
///
/// # Safety
/// `V`'s instructions are available; the slices are as long as [`Plan::convolve`] checks.
#[inline(always)]
unsafe fn tiles<V: Lanes, const P: usize, const S: usize>(
    p: &Plan,
    src: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    (sums, out): (&mut [f32], &mut [MaybeUninit<f32>]),
) {
    let blocks = p.outs.div_ceil(L);
    let plane = p.out_size[0] * p.out_size[1];
    let sums = &mut sums[..blocks * plane * L];
    // The bias of every output channel, zeros past the last.
    let starts: Vec<f32> = (0..blocks * L)
        .map(|o| bias.and_then(|b| b.get(o)).copied().unwrap_or(0.0))
        .collect();
    // Where each tap reads, from a tile's first pixel (in bounds: `Plan::convolve` checked
    // that the frame holds the last pixel of the last tap).
    let (width, d) = (p.src.width, p.dilation);
    let offsets: Vec<usize> = (0..p.kernel[0] * p.kernel[1])
        .map(|tap| (tap / p.kernel[1] * d * width + tap % p.kernel[1] * d) * L)
        .collect();
    let pairs = blocks / 2 * 2;
    for (cb, src) in src.chunks_exact(p.src.plane()).enumerate() {
        let pass = Pass {
            src,
            block: cb,
            offsets: &offsets,
            starts: &starts,
        };
        // SAFETY: forwarded.
        unsafe {
            for block in (0..pairs).step_by(2) {
                rows::<V, 2, P>(p, pass, w, block, sums);
            }
            if pairs < blocks {
                rows::<V, 1, S>(p, pass, w, pairs, sums);
            }
        }
    }
    // Out as NCHW: 16 pixels of one channel at a time, gathered from its lane of the block
    // (the block's 16 pixels stay in the L1 cache for its 16 channels).
    let full = plane / L * L;
    for (o, out) in out.chunks_exact_mut(plane).enumerate().take(p.outs) {
        let block = &sums[o / L * plane * L + o % L..][..(plane - 1) * L + 1];
        for x in (0..full).step_by(L) {
            // SAFETY: the gather reads `block[(x + k) * 16]`, k < 16, inside `block`, and
            // `out` holds the 16 values written from `x`.
            unsafe {
                V::gather(block[x * L..].as_ptr(), L, L).store(out[x..x + L].as_mut_ptr().cast())
            };
        }
        for x in full..plane {
            out[x].write(block[x * L]);
        }
    }
}

/// One input block's pass over an image's output sums.
#[derive(Clone, Copy)]
struct Pass<'a> {
    /// The input block's blocked plane.
    src: &'a [f32],
    /// Its index.
    block: usize,
    /// Where each tap reads, from a pixel.
    offsets: &'a [usize],
    /// Every output channel's starting sum (its bias, or zero), where the first input
    /// block's pass starts instead of from the sums.
    starts: &'a [f32],
}

/// [`rows_at`] with the horizontal stride a compile-time constant where it is 1 or 2.
///
/// # Safety
/// As [`tiles`].
#[inline(always)]
unsafe fn rows<V: Lanes, const B: usize, const T: usize>(
    p: &Plan,
    pass: Pass,
    w: &[f32],
    first: usize,
    sums: &mut [f32],
) {
    // SAFETY: forwarded.
    unsafe {
        match p.stride[1] {
            1 => rows_at::<V, B, T, 1>(p, pass, w, first, sums),
            2 => rows_at::<V, B, T, 2>(p, pass, w, first, sums),
            _ => rows_at::<V, B, T, 0>(p, pass, w, first, sums),
        }
    }
}

/// Adds one input block's share (`pass`) to every output row of blocks `first..first + B` of
/// `sums`, in tiles of `T` pixels, then 4, then 1; `SX` is the horizontal stride if known when
/// compiling (pixel offsets become constants), else 0.
///
/// # Safety
/// As [`tiles`].
#[inline(always)]
unsafe fn rows_at<V: Lanes, const B: usize, const T: usize, const SX: usize>(
    p: &Plan,
    pass: Pass,
    w: &[f32],
    first: usize,
    sums: &mut [f32],
) {
    let (src, cb, offsets) = (pass.src, pass.block, pass.offsets);
    let start = (cb == 0).then(|| &pass.starts[first * L..][..B * L]);
    let [oh, ow] = p.out_size;
    let tap_len = p.kernel[0] * p.kernel[1] * L * L;
    let taps: [&[f32]; B] =
        std::array::from_fn(|b| &w[(first + b) * p.block_len() + cb * tap_len..][..tap_len]);
    let sums = &mut sums[first * oh * ow * L..][..B * oh * ow * L];
    for oy in 0..oh {
        let row = &src[oy * p.stride[0] * p.src.width * L..];
        let mut ox = 0;
        // SAFETY: forwarded.
        unsafe {
            while ox + T <= ow {
                tile::<V, B, T, SX>(p, (row, offsets), taps, (oy, ox), (start, sums));
                ox += T;
            }
            while T > 4 && ox + 4 <= ow {
                tile::<V, B, 4, SX>(p, (row, offsets), taps, (oy, ox), (start, sums));
                ox += 4;
            }
            while ox < ow {
                tile::<V, B, 1, SX>(p, (row, offsets), taps, (oy, ox), (start, sums));
                ox += 1;
            }
        }
    }
}

/// Adds one input block's share to output pixels `(oy, ox..ox + T)` of `B` blocks of 16
/// output channels: `B x T` vectors of accumulators, started from the sums or, given `start`
/// (the blocks' `B x 16` starting values), from those; per input channel and tap, `B` weight
/// vectors loaded and `T` pixels broadcast. `row` starts at the first input row the output
/// row reads, `offsets` are the taps' distances from a pixel.
///
/// # Safety
/// `V`'s instructions are available, and `row` holds every pixel the taps read (the frame's
/// padding covers the kernel's span, as [`Plan::convolve`] checks).
#[inline(always)]
unsafe fn tile<V: Lanes, const B: usize, const T: usize, const SX: usize>(
    p: &Plan,
    (row, offsets): (&[f32], &[usize]),
    taps: [&[f32]; B],
    (oy, ox): (usize, usize),
    (start, sums): (Option<&[f32]>, &mut [f32]),
) {
    let step = if SX > 0 { SX } else { p.stride[1] } * L;
    let out_plane = p.out_size[0] * p.out_size[1] * L;
    let at = (oy * p.out_size[1] + ox) * L;
    // SAFETY: the sums and weights are slices cut (with bounds checks) to hold T vectors per
    // block and 16 x 16 weights per tap; the pixels are in bounds by the caller's contract.
    unsafe {
        let outs: [*mut f32; B] =
            std::array::from_fn(|b| sums[b * out_plane + at..][..T * L].as_mut_ptr());
        // Pixel t's accumulators load from `from[b] + t * stride`: the sums, or the starting
        // values (the same for every pixel).
        let (from, stride): ([*const f32; B], usize) = match start {
            Some(start) => (std::array::from_fn(|b| start[b * L..][..L].as_ptr()), 0),
            None => (outs.map(|out| out.cast_const()), L),
        };
        let mut acc: [[V; B]; T] =
            std::array::from_fn(|t| from.map(|from| V::load(from.add(t * stride))));
        let first = row.as_ptr().add(ox * step);
        let taps = taps.map(|t| t[..offsets.len() * L * L].as_ptr());
        for (tap, &offset) in offsets.iter().enumerate() {
            let pixels = first.add(offset);
            let weights = taps.map(|t| t.add(tap * L * L));
            for c in 0..L {
                let wv: [V; B] = weights.map(|w| V::load(w.add(c * L)));
                for (t, acc) in acc.iter_mut().enumerate() {
                    let x = *pixels.add(t * step + c);
                    for (acc, &w) in acc.iter_mut().zip(&wv) {
                        *acc = acc.add_product(x, w);
                    }
                }
            }
        }
        for (t, acc) in acc.iter().enumerate() {
            for (acc, out) in acc.iter().zip(outs) {
                acc.store(out.add(t * L));
            }
        }
    }
}

/// [`Plan::add_weight_gradient`], `I` input channels of a 16 x 16 block of one tap in
/// registers at a time.
///
/// # Safety
/// `V`'s instructions are available; the slices are as long as the plan checks.
#[inline(always)]
unsafe fn outer_products_of<V: Lanes, const I: usize>(
    p: &Plan,
    src: &[f32],
    (dy, grads): (&[f32], Frame),
    dw: &mut [f32],
) {
    let taps = p.kernel[0] * p.kernel[1];
    for (dy, dw) in dy
        .chunks_exact(grads.plane())
        .zip(dw.chunks_exact_mut(p.block_len()))
    {
        for (plane, dw) in src
            .chunks_exact(p.src.plane())
            .zip(dw.chunks_exact_mut(taps * L * L))
        {
            for (tap, dw) in dw.chunks_exact_mut(L * L).enumerate() {
                let at = [tap / p.kernel[1], tap % p.kernel[1]];
                for (chunk, dw) in dw.chunks_exact_mut(I * L).enumerate() {
                    // SAFETY: forwarded.
                    unsafe { outer_products::<V, I>(p, (plane, chunk * I), (dy, grads), at, dw) };
                }
            }
        }
    }
}

/// Adds `x[c0 + i] * dy[..16]` over every output pixel to `dw[i * 16..][..16]`, for one tap.
///
/// # Safety
/// `V`'s instructions are available.
#[inline(always)]
unsafe fn outer_products<V: Lanes, const I: usize>(
    p: &Plan,
    (plane, c0): (&[f32], usize),
    (dy, grads): (&[f32], Frame),
    [ki, kj]: [usize; 2],
    dw: &mut [f32],
) {
    let [oh, ow] = p.out_size;
    let row_len = p.src.width * L;
    let dw = &mut dw[..I * L];
    // SAFETY: `dw` holds I vectors; each row slice below is cut (with bounds checks) to end at
    // the last pixel the loop reads: the gradient's ow vectors, the input's channels
    // c0..c0 + I of pixel (ow - 1) * stride + kj * dilation.
    unsafe {
        let mut acc: [V; I] = std::array::from_fn(|i| V::load(dw.as_ptr().add(i * L)));
        for oy in 0..oh {
            let row = &plane[(oy * p.stride[0] + ki * p.dilation) * row_len..];
            let row = row[..((ow - 1) * p.stride[1] + kj * p.dilation) * L + c0 + I].as_ptr();
            let g = dy[((oy + grads.top) * grads.width + grads.left) * L..][..ow * L].as_ptr();
            for ox in 0..ow {
                let gv = V::load(g.add(ox * L));
                let xs = row.add((ox * p.stride[1] + kj * p.dilation) * L + c0);
                for (i, acc) in acc.iter_mut().enumerate() {
                    *acc = acc.add_product(*xs.add(i), gv);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            acc.store(dw.as_mut_ptr().add(i * L));
        }
    }
}
