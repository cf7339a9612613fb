//! Helpers shared by the trainer's integration tests.

use candle_core::{Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A tensor of `shape` with values uniform in `[-1, 1)`.
pub fn random(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// Asserts that `ours` and `reference` have the same shape and that every element is within
/// `relative` times the largest magnitude of `reference` (at least `floor`).
pub fn assert_close(what: &str, ours: &Tensor, reference: &Tensor, (relative, floor): (f32, f32)) {
    assert_eq!(ours.dims(), reference.dims(), "{what}: shape");
    let a = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = b.iter().fold(floor, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= relative * scale,
            "{what}[{i}]: ours {x}, reference {y} (scale {scale})"
        );
    }
}
