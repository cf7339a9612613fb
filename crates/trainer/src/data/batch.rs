//! Batches of normalized, optionally augmented images as candle tensors.

use std::fmt;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::set::ImageSet;
use crate::TrainError;

/// Per-channel normalization of pixels: `(x / 255 - mean[c]) / std[c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalization {
    /// A normalization with the given per-channel mean and standard deviation (of pixels scaled
    /// to `[0, 1]`).
    ///
    /// Fails with [`TrainError::Config`] if the lists are empty or of different lengths, a value
    /// is not finite, or a standard deviation is not positive.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self, TrainError> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(TrainError::Config(format!(
                "normalization needs one mean and one std per channel, got {} and {}",
                mean.len(),
                std.len()
            )));
        }
        if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(TrainError::Config(format!(
                "normalization mean {mean:?} must be finite and std {std:?} positive"
            )));
        }
        Ok(Self { mean, std })
    }

    /// The statistics of a set ([`ImageSet::channel_stats`]), normally its training set. A
    /// channel with no spread (a constant channel, or an empty set) gets a standard deviation of
    /// 1, so that it is only shifted.
    pub fn from_set(set: &ImageSet) -> Self {
        let (mean, std) = set.channel_stats();
        let std = std
            .into_iter()
            .map(|s| if s > 1e-6 { s } else { 1.0 })
            .collect();
        Self { mean, std }
    }

    /// Scaling to `[0, 1]` only: mean 0 and standard deviation 1 for each of `channels`
    /// channels (at least one).
    pub fn identity(channels: usize) -> Self {
        let channels = channels.max(1);
        Self {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// The per-channel means.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The per-channel standard deviations.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// The normalized value of every pixel value, per channel.
    fn table(&self) -> Vec<[f32; 256]> {
        let mut tables = vec![[0.0; 256]; self.mean.len()];
        for (c, table) in tables.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                *out = (v as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        tables
    }
}

/// Random training augmentation, applied per image before normalization.
///
/// With `crop_padding` `p > 0`, the image is padded with `p` zero pixels on every side and a
/// random crop of the original size is taken; with `horizontal_flip`, the result is mirrored with
/// probability 1/2 (torchvision's `RandomCrop(size, padding=p)` then `RandomHorizontalFlip()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    /// Zero padding on each side before the random crop (0: no crop).
    pub crop_padding: usize,
    /// Whether to mirror left-right with probability 1/2.
    pub horizontal_flip: bool,
}

impl Augment {
    /// The standard CIFAR augmentation: pad 4, random crop, random horizontal flip.
    pub const CIFAR: Augment = Augment {
        crop_padding: 4,
        horizontal_flip: true,
    };
}

/// Batches of a set: `(images, labels)`, images an `f32` tensor `[B, C, H, W]` normalized by
/// `norm`, labels a `u32` tensor `[B]`, on `device`. Every image is visited once; the last batch
/// holds the remainder and may be smaller.
///
/// `shuffle: Some(seed)` visits the images in a random order drawn from the seed; `None` keeps the
/// set's order. `augment` is drawn from its own stream of the same seed (seed 0 without
/// shuffling). The same arguments give the same batches. Pass a different seed each epoch (e.g.
/// `seed + epoch`) for fresh orders and augmentations.
///
/// Fails with [`TrainError::Config`] if `batch_size` is 0 or `norm` has a different number of
/// channels than the set; a batch fails with [`TrainError::Candle`] if its tensors cannot be made
/// on the device.
pub fn batches<'a>(
    set: &'a ImageSet,
    batch_size: usize,
    shuffle: Option<u64>,
    augment: Option<Augment>,
    norm: &Normalization,
    device: &Device,
) -> Result<Batches<'a>, TrainError> {
    if batch_size == 0 {
        return Err(TrainError::Config("batch size must be at least 1".into()));
    }
    if norm.mean.len() != set.channels() {
        return Err(TrainError::Config(format!(
            "normalization has {} channels, the images {}",
            norm.mean.len(),
            set.channels()
        )));
    }
    let mut order: Vec<usize> = (0..set.len()).collect();
    let seed = shuffle.unwrap_or(0);
    if shuffle.is_some() {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    Ok(Batches {
        set,
        order,
        next: 0,
        batch_size,
        augment,
        rng,
        table: norm.table(),
        device: device.clone(),
    })
}

/// The iterator of [`batches`].
pub struct Batches<'a> {
    set: &'a ImageSet,
    order: Vec<usize>,
    next: usize,
    batch_size: usize,
    augment: Option<Augment>,
    rng: ChaCha8Rng,
    table: Vec<[f32; 256]>,
    device: Device,
}

impl Batches<'_> {
    /// Appends the normalized (and augmented) pixels of image `i` to `out`.
    fn push_image(&mut self, i: usize, out: &mut Vec<f32>) {
        let [c, h, w] = self.set.shape();
        let image = self.set.image(i);
        let Some(aug) = self.augment else {
            let plane = h * w;
            out.extend(
                image
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| self.table[k / plane][usize::from(v)]),
            );
            return;
        };
        let p = aug.crop_padding;
        let dy = self.rng.random_range(0..=2 * p);
        let dx = self.rng.random_range(0..=2 * p);
        let flip = aug.horizontal_flip && self.rng.random_bool(0.5);
        for (ch, table) in self.table.iter().enumerate().take(c) {
            let plane = &image[ch * h * w..(ch + 1) * h * w];
            for y in 0..h {
                // Source row and column in the unpadded image; out of range means padding.
                let sy = (y + dy).wrapping_sub(p);
                for x in 0..w {
                    let cx = if flip { w - 1 - x } else { x };
                    let sx = (cx + dx).wrapping_sub(p);
                    let v = if sy < h && sx < w {
                        plane[sy * w + sx]
                    } else {
                        0
                    };
                    out.push(table[usize::from(v)]);
                }
            }
        }
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<(Tensor, Tensor), TrainError>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.next;
        let end = (start + self.batch_size).min(self.order.len());
        if start >= end {
            return None;
        }
        self.next = end;
        let [c, h, w] = self.set.shape();
        let mut pixels = Vec::with_capacity((end - start) * c * h * w);
        let mut labels = Vec::with_capacity(end - start);
        for k in start..end {
            let i = self.order[k];
            self.push_image(i, &mut pixels);
            labels.push(self.set.labels()[i]);
        }
        let b = end - start;
        let tensors = Tensor::from_vec(pixels, (b, c, h, w), &self.device)
            .and_then(|x| Ok((x, Tensor::from_vec(labels, b, &self.device)?)));
        Some(tensors.map_err(TrainError::from))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.order.len() - self.next).div_ceil(self.batch_size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}

impl fmt::Debug for Batches<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batches")
            .field("images", &self.order.len())
            .field("next", &self.next)
            .field("batch_size", &self.batch_size)
            .field("augment", &self.augment)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}
