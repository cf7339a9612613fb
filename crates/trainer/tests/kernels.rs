//! Property tests: every native CPU kernel against candle's composed ops (`Kernels::Candle`) on
//! random shapes and geometries, forward output and the gradients of every input.
//! (Against PyTorch, the kernels are checked through whole networks in `tests/ops.rs`.)

use arch_space::lang::Padding;
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::ops::{ConvGeometry, Kernels};

fn random(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

fn assert_close(what: &str, ours: &Tensor, reference: &Tensor) {
    assert_eq!(ours.dims(), reference.dims(), "{what}: shape");
    let a = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * scale,
            "{what}[{i}]: native {x}, candle {y} (scale {scale})"
        );
    }
}

/// Runs `op` on both kernel sets with the same inputs (variables where `vars[i]`), weights the
/// output with a fixed random tensor, and compares the output and every variable's gradient.
fn compare(
    what: &str,
    rng: &mut ChaCha8Rng,
    inputs: &[Tensor],
    vars: &[bool],
    op: impl Fn(Kernels, &[Tensor]) -> Tensor,
) {
    let mut results = Vec::new();
    let mut weights = None;
    for kernels in [Kernels::Native, Kernels::Candle] {
        let held: Vec<Option<Var>> = inputs
            .iter()
            .zip(vars)
            .map(|(t, &v)| v.then(|| Var::from_tensor(t).unwrap()))
            .collect();
        let args: Vec<Tensor> = inputs
            .iter()
            .zip(&held)
            .map(|(t, v)| {
                v.as_ref()
                    .map_or_else(|| t.clone(), |v| v.as_tensor().clone())
            })
            .collect();
        let y = op(kernels, &args);
        let r = weights.get_or_insert_with(|| random(rng, y.dims())).clone();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let dx: Vec<Option<Tensor>> = held
            .iter()
            .map(|v| {
                v.as_ref()
                    .map(|v| grads.get(v).expect("a gradient").clone())
            })
            .collect();
        results.push((y, dx));
    }
    let (native, candle) = (&results[0], &results[1]);
    assert_close(&format!("{what}: output"), &native.0, &candle.0);
    for (i, (a, b)) in native.1.iter().zip(&candle.1).enumerate() {
        if let (Some(a), Some(b)) = (a, b) {
            assert_close(&format!("{what}: gradient of input {i}"), a, b);
        }
    }
}

#[test]
fn convolutions_match_candle_on_random_geometries() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..60 {
        let groups = [1, 1, 2, 3][rng.random_range(0..4)];
        let depthwise = case % 7 == 3;
        let cin = if depthwise {
            4
        } else {
            groups * rng.random_range(1..4)
        };
        let groups = if depthwise { cin } else { groups };
        let cout = groups * rng.random_range(1..4);
        let kernel = [rng.random_range(1..4), rng.random_range(1..4)];
        let dilation = if case % 5 == 4 { 2 } else { 1 };
        let padding = match case % 4 {
            0 => Padding::Valid,
            1 => Padding::Same,
            _ => Padding::Explicit([rng.random_range(0..3), rng.random_range(0..3)]),
        };
        let stride = match padding {
            Padding::Same => [1, 1],
            _ => [rng.random_range(1..3), rng.random_range(1..4)],
        };
        let (h, w) = (rng.random_range(5..10), rng.random_range(5..10));
        let g = ConvGeometry {
            kernel,
            stride,
            padding,
            dilation,
            groups,
        };
        let batch = rng.random_range(1..6);
        let x = random(&mut rng, &[batch, cin, h, w]);
        let wt = random(&mut rng, &[cout, cin / groups, kernel[0], kernel[1]]);
        let b = random(&mut rng, &[cout]);
        let data_input = case % 3 == 0;
        let what = format!("case {case}: {g:?}, input {:?}, out {cout}", x.dims());
        compare(
            &what,
            &mut rng,
            &[x, wt, b],
            &[!data_input, true, true],
            |k, t| k.conv2d(&t[0], &t[1], Some(&t[2]), &g).unwrap(),
        );
        if case % 2 == 0 {
            let x = random(&mut rng, &[batch, cin, h, w]);
            let wt = random(&mut rng, &[cout, cin / groups, kernel[0], kernel[1]]);
            compare(
                &format!("{what}, no bias"),
                &mut rng,
                &[x, wt],
                &[true, true],
                |k, t| k.conv2d(&t[0], &t[1], None, &g).unwrap(),
            );
        }
    }
}

#[test]
fn a_convolution_of_data_computes_no_input_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = random(&mut rng, &[2, 3, 6, 6]);
    let w = Var::from_tensor(&random(&mut rng, &[4, 3, 3, 3])).unwrap();
    let g = ConvGeometry {
        kernel: [3, 3],
        stride: [1, 1],
        padding: Padding::Explicit([1, 1]),
        dilation: 1,
        groups: 1,
    };
    let y = Kernels::Native.conv2d(&x, w.as_tensor(), None, &g).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none());
    assert!(grads.get(w.as_tensor()).is_some());
}
