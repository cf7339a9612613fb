//! [`ImageSet`]: decoded images and labels in memory.

use std::fmt;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::TrainError;

/// Labelled images of one shape, decoded to `u8` pixels and held in memory.
///
/// Each image is stored channel-major (CHW: all of channel 0, row by row, then channel 1, ...),
/// the images one after another. Labels index into [`classes`](Self::classes).
#[derive(Clone, PartialEq, Eq)]
pub struct ImageSet {
    pixels: Vec<u8>,
    labels: Vec<u32>,
    shape: [usize; 3],
    classes: Vec<String>,
}

impl ImageSet {
    /// Builds a set from pixels (CHW per image, images concatenated), one label per image, the
    /// image shape `[channels, height, width]` and the class names.
    ///
    /// Fails with [`TrainError::Config`] if a dimension is zero, if the number of pixels is not
    /// `labels.len() * C * H * W`, or if a label is not below `classes.len()`.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<u32>,
        shape: [usize; 3],
        classes: Vec<String>,
    ) -> Result<Self, TrainError> {
        if shape.contains(&0) {
            return Err(TrainError::Config(format!(
                "image shape {shape:?} has a zero dimension"
            )));
        }
        let expected = shape
            .iter()
            .try_fold(labels.len(), |n, &d| n.checked_mul(d));
        if expected != Some(pixels.len()) {
            return Err(TrainError::Config(format!(
                "{} pixels do not make {} images of shape {shape:?}",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes.len()) {
            return Err(TrainError::Config(format!(
                "label {bad} is out of range for {} classes",
                classes.len()
            )));
        }
        Ok(Self::from_parts(pixels, labels, shape, classes))
    }

    /// Builds a set from parts the caller has already checked.
    pub(crate) fn from_parts(
        pixels: Vec<u8>,
        labels: Vec<u32>,
        shape: [usize; 3],
        classes: Vec<String>,
    ) -> Self {
        debug_assert_eq!(pixels.len(), labels.len() * shape.iter().product::<usize>());
        Self {
            pixels,
            labels,
            shape,
            classes,
        }
    }

    /// All pixels: CHW per image, images concatenated.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// One label per image, each an index into [`classes`](Self::classes).
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The shape of every image: `[channels, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The number of channels (1 for grayscale, 3 for RGB).
    pub fn channels(&self) -> usize {
        self.shape[0]
    }

    /// The class names, in label order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The number of bytes of one image (`C * H * W`).
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The pixels of image `i` (CHW).
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`, as slice indexing does.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The images at `indices`, in that order (an index may repeat).
    ///
    /// Fails with [`TrainError::Config`] if an index is not below [`len`](Self::len).
    pub fn subset(&self, indices: &[usize]) -> Result<Self, TrainError> {
        if let Some(bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(TrainError::Config(format!(
                "image index {bad} is out of range for a set of {} images",
                self.len()
            )));
        }
        Ok(self.gather(indices))
    }

    /// The first `n` images (all of them if the set is smaller), in order.
    ///
    /// ImageFolder sets are ordered by class, so their first images are all of the first class:
    /// use [`sample`](Self::sample) for a random part.
    pub fn limit(&self, n: usize) -> Self {
        let n = n.min(self.len());
        let k = self.image_len();
        Self::from_parts(
            self.pixels[..n * k].to_vec(),
            self.labels[..n].to_vec(),
            self.shape,
            self.classes.clone(),
        )
    }

    /// `n` images chosen at random without replacement (all of them if the set is smaller),
    /// kept in their order in this set. The same seed gives the same images.
    pub fn sample(&self, n: usize, seed: u64) -> Self {
        let (mut chosen, _) = self.random_partition(n.min(self.len()), seed);
        chosen.sort_unstable();
        self.gather(&chosen)
    }

    /// Splits off a random validation set of `count` images: returns `(train, validation)`, both
    /// in their order in this set. The same seed gives the same split.
    ///
    /// Fails with [`TrainError::Config`] if `count` is larger than the set.
    pub fn split_validation(&self, count: usize, seed: u64) -> Result<(Self, Self), TrainError> {
        if count > self.len() {
            return Err(TrainError::Config(format!(
                "cannot take {count} validation images from a set of {}",
                self.len()
            )));
        }
        let (mut val, mut train) = self.random_partition(count, seed);
        val.sort_unstable();
        train.sort_unstable();
        Ok((self.gather(&train), self.gather(&val)))
    }

    /// Per-channel mean and standard deviation (population, over every pixel of every image) of
    /// the pixels scaled to `[0, 1]`. Both are zero for an empty set.
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let c = self.channels();
        let plane = self.shape[1] * self.shape[2];
        // Integer sums are exact, so the result does not depend on how rayon splits the work.
        let (sum, sum_sq) = self
            .pixels
            .par_chunks(plane)
            .enumerate()
            .fold(
                || (vec![0u64; c], vec![0u64; c]),
                |(mut s, mut q), (i, chunk)| {
                    let ch = i % c;
                    s[ch] += chunk.iter().map(|&v| u64::from(v)).sum::<u64>();
                    q[ch] += chunk
                        .iter()
                        .map(|&v| u64::from(v) * u64::from(v))
                        .sum::<u64>();
                    (s, q)
                },
            )
            .reduce(
                || (vec![0u64; c], vec![0u64; c]),
                |(mut s, mut q), (s2, q2)| {
                    for ch in 0..c {
                        s[ch] += s2[ch];
                        q[ch] += q2[ch];
                    }
                    (s, q)
                },
            );
        let count = (self.len() * plane) as f64;
        if count == 0.0 {
            return (vec![0.0; c], vec![0.0; c]);
        }
        let mean: Vec<f64> = sum.iter().map(|&s| s as f64 / count / 255.0).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(&q, &m)| (q as f64 / count / (255.0 * 255.0) - m * m).max(0.0).sqrt() as f32)
            .collect();
        (mean.into_iter().map(|m| m as f32).collect(), std)
    }

    /// A seeded random permutation of the indices, cut into its first `n` and the rest.
    fn random_partition(&self, n: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let rest = order.split_off(n);
        (order, rest)
    }

    /// The images at `indices`, which must all be in range.
    fn gather(&self, indices: &[usize]) -> Self {
        let k = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * k);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Self::from_parts(pixels, labels, self.shape, self.classes.clone())
    }
}

impl fmt::Debug for ImageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageSet")
            .field("len", &self.len())
            .field("shape", &self.shape)
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}
