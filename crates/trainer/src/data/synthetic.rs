//! A small learnable image task for tests, examples and smoke runs, built in memory.

use super::ImageSet;

/// `n` RGB images of 8x8 pixels in 4 classes: the class is the brightest quadrant (noise on
/// top). Small networks learn it within a few epochs if they keep spatial information; the same
/// seed gives the same images.
pub fn brightest_quadrant(n: usize, seed: u32) -> ImageSet {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let (mut pixels, mut labels) = (Vec::with_capacity(n * 192), Vec::with_capacity(n));
    for _ in 0..n {
        let class = next() % 4;
        for i in 0..3 * 64 {
            let (y, x) = ((i % 64) / 8, i % 8);
            let base = if (y / 4) * 2 + x / 4 == class {
                150
            } else {
                60
            };
            pixels.push((base + next() % 80) as u8);
        }
        labels.push(class);
    }
    let classes = (0..4).map(|c| format!("q{c}")).collect();
    ImageSet::new(pixels, labels, [3, 8, 8], classes)
        .expect("the pixel and label counts match by construction")
}
