//! Property tests: every native CPU kernel against candle's composed ops (`Kernels::Candle`) on
//! random shapes and geometries, forward output and the gradients of every input.
//! (Against PyTorch, the kernels are checked through whole networks in `tests/ops.rs`.)

use arch_space::lang::{Activation, Padding};
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::ops::cpu::{batch_norm_train_traced, conv2d_traced, Rectifier, Traced};
use trainer::ops::{ConvGeometry, Kernels, PoolGeometry};

mod common;
use common::random;

/// Native against candle: within 1e-4 of the reference's largest magnitude (at least 1).
fn assert_close(what: &str, ours: &Tensor, reference: &Tensor) {
    common::assert_close(what, ours, reference, (1e-4, 1.0));
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

/// A traced op's output and the gradients of its three inputs (from the output gradient `dy`)
/// against `reference` on the same inputs under candle's autograd.
fn assert_traced_matches(
    what: &str,
    traced: &Traced,
    dy: &Tensor,
    inputs: [&Tensor; 3],
    reference: impl Fn([&Tensor; 3]) -> Tensor,
) {
    let grads = traced.gradients(&[true; 3], dy).unwrap();
    let vars = inputs.map(|t| Var::from_tensor(t).unwrap());
    let y = reference(vars.each_ref().map(|v| v.as_tensor()));
    let theirs = (&y * dy).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close(&format!("{what}: output"), &traced.output, &y);
    for (i, (ours, var)) in grads.iter().zip(&vars).enumerate() {
        let ours = ours.as_ref().expect("a gradient");
        let theirs = theirs.get(var).expect("a gradient");
        assert_close(&format!("{what}: gradient of input {i}"), ours, theirs);
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

/// Channel counts of 16 and more take the blocked direct kernels (on CPUs with AVX2 or
/// AVX-512): whole and partial blocks of 16, strides, dilations and paddings up to and beyond
/// the kernel's span (where the input gradient falls back to im2col).
#[test]
fn blocked_convolutions_match_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for case in 0..16 {
        let cin = [16, 32, 20, 24][case % 4];
        let cout = [16, 24, 32, 17][case / 4 % 4];
        let k = [3, 1, 3, 5][case % 4];
        let kernel = if case % 5 == 2 { [k, 1] } else { [k, k] };
        let dilation = if case % 6 == 5 { 2 } else { 1 };
        let padding = match case % 4 {
            0 => Padding::Same,
            1 => Padding::Valid,
            2 => Padding::Explicit([1, 2]),
            _ => Padding::Explicit([3, 0]),
        };
        let stride = match (padding, case % 3) {
            (Padding::Same, _) | (_, 0) => [1, 1],
            (_, 1) => [2, 2],
            _ => [1, 2],
        };
        let (h, w) = (rng.random_range(10..14), rng.random_range(10..19));
        let g = ConvGeometry {
            kernel,
            stride,
            padding,
            dilation,
            groups: 1,
        };
        let batch = rng.random_range(1..4);
        let x = random(&mut rng, &[batch, cin, h, w]);
        let wt = random(&mut rng, &[cout, cin, kernel[0], kernel[1]]);
        let b = random(&mut rng, &[cout]);
        let what = format!("case {case}: {g:?}, input {:?}, out {cout}", x.dims());
        compare(
            &what,
            &mut rng,
            &[x, wt, b],
            &[case % 7 != 3, true, true],
            |k, t| k.conv2d(&t[0], &t[1], Some(&t[2]), &g).unwrap(),
        );
    }
}

/// A convolution that rectifies its input as it reads it (the traced network's rectifier then
/// convolution), on every path (direct, direct forward with an im2col input gradient,
/// pointwise, im2col, depthwise, grouped) and every rectifier, against candle's activation and
/// convolution one after the other.
#[test]
fn convolutions_of_a_rectified_input_match_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let cases = [
        (16, 16, 3, 1, Padding::Same, 1),
        (16, 32, 3, 2, Padding::Explicit([1, 1]), 1),
        (16, 16, 1, 1, Padding::Valid, 1),
        (4, 6, 3, 1, Padding::Same, 1),
        (8, 8, 3, 1, Padding::Same, 8),
        (6, 9, 3, 2, Padding::Valid, 3),
    ];
    for (case, (cin, cout, k, stride, padding, groups)) in cases.into_iter().enumerate() {
        for a in [
            Activation::Relu,
            Activation::Relu6,
            Activation::LeakyRelu {
                negative_slope: 0.2,
            },
        ] {
            let g = ConvGeometry {
                kernel: [k, k],
                stride: [stride, stride],
                padding,
                dilation: 1,
                groups,
            };
            let batch = rng.random_range(1..4);
            let x = (random(&mut rng, &[batch, cin, 9, 11]) * 4.0).unwrap();
            let w = random(&mut rng, &[cout, cin / groups, k, k]);
            let b = random(&mut rng, &[cout]);
            let rectifier = Rectifier::of(&a).expect("a native rectifier");
            let traced = conv2d_traced(&x, &w, Some(&b), &g, Some(rectifier)).unwrap();
            let dy = random(&mut rng, traced.output.dims());
            let what = format!("case {case}: {a:?}, {g:?}, input {:?}", x.dims());
            assert_traced_matches(&what, &traced, &dy, [&x, &w, &b], |[x, w, b]| {
                let rectified = Kernels::Candle.activation(x, &a).unwrap();
                Kernels::Candle.conv2d(&rectified, w, Some(b), &g).unwrap()
            });
        }
    }
}

/// The same cases on the other paths, in child processes of this test binary with
/// `TRAINER_CONV` set (read once per process): the AVX2 kernels (on AVX-512 machines too) and
/// im2col.
#[test]
fn every_convolution_path_matches_candle() {
    if std::env::var_os("TRAINER_CONV").is_some() {
        return;
    }
    let this = std::env::current_exe().expect("the test binary");
    for path in ["avx2", "im2col"] {
        let output = std::process::Command::new(&this)
            .args(["--exact", "blocked_convolutions_match_candle"])
            .env("TRAINER_CONV", path)
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "TRAINER_CONV={path}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
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

/// A random NCHW shape with odd sizes: batch 1..5, channels 1..5, height and width in `sizes`.
fn random_nchw(rng: &mut ChaCha8Rng, sizes: std::ops::Range<usize>) -> [usize; 4] {
    [
        rng.random_range(1..6),
        rng.random_range(1..6),
        rng.random_range(sizes.clone()),
        rng.random_range(sizes),
    ]
}

#[test]
fn batch_norm_in_training_matches_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for case in 0..50 {
        let shape = random_nchw(&mut rng, 1..8);
        let c = shape[1];
        let (gain, offset) = (
            rng.random_range(0.1f32..4.0),
            rng.random_range(-3.0f32..3.0),
        );
        let x =
            ((random(&mut rng, &shape) * f64::from(gain)).unwrap() + f64::from(offset)).unwrap();
        let (w, b) = (random(&mut rng, &[c]), random(&mut rng, &[c]));
        let affine = case % 3 != 0;
        let data_input = case % 5 == 4;
        let eps = [1e-5, 1e-3][case % 2];
        let what = format!("case {case}: input {shape:?}, affine {affine}, eps {eps}");
        let norm = |k: Kernels, t: &[Tensor]| {
            let (w, b) = if affine {
                (Some(&t[1]), Some(&t[2]))
            } else {
                (None, None)
            };
            k.batch_norm_train(&t[0], w, b, eps).unwrap()
        };
        let inputs = [x, w, b];
        compare(
            &what,
            &mut rng,
            &inputs,
            &[!data_input, affine, affine],
            |k, t| norm(k, t).0,
        );
        let (_, mean, var) = norm(Kernels::Native, &inputs);
        let (_, mean_ref, var_ref) = norm(Kernels::Candle, &inputs);
        assert_close(&format!("{what}: mean"), &mean, &mean_ref);
        assert_close(&format!("{what}: variance"), &var, &var_ref);
    }
}

/// The traced network's BatchNorm with the rectifier that follows it fused into its pass
/// (forward, and the backward pass that finds the kink again from the normalized value), against
/// candle's BatchNorm and activation one after the other.
#[test]
fn batch_norm_fused_with_a_rectifier_matches_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    for case in 0..30 {
        let shape = random_nchw(&mut rng, 1..12);
        let c = shape[1];
        let x = (random(&mut rng, &shape) * 3.0).unwrap();
        // Scaled so that ReLU6's upper kink is reached too.
        let (w, b) = (
            (random(&mut rng, &[c]) * 4.0).unwrap(),
            random(&mut rng, &[c]),
        );
        let a = match case % 3 {
            0 => Activation::Relu,
            1 => Activation::Relu6,
            _ => Activation::LeakyRelu {
                negative_slope: rng.random_range(0.01..0.5),
            },
        };
        let rectifier = Rectifier::of(&a).expect("a native rectifier");
        let what = format!("case {case}: {a:?}, input {shape:?}");
        let dy = random(&mut rng, &shape);
        let traced = batch_norm_train_traced(&x, Some(&w), Some(&b), 1e-5, Some(rectifier))
            .unwrap()
            .0;
        assert_traced_matches(&what, &traced, &dy, [&x, &w, &b], |[x, w, b]| {
            let normalized = Kernels::Candle
                .batch_norm_train(x, Some(w), Some(b), 1e-5)
                .unwrap()
                .0;
            Kernels::Candle.activation(&normalized, &a).unwrap()
        });
    }
}

#[test]
fn batch_norm_in_evaluation_matches_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for case in 0..40 {
        let shape = random_nchw(&mut rng, 1..8);
        let c = shape[1];
        let x = random(&mut rng, &shape);
        let mean = random(&mut rng, &[c]);
        let var = (random(&mut rng, &[c]).abs().unwrap() + 0.05).unwrap();
        let (w, b) = (random(&mut rng, &[c]), random(&mut rng, &[c]));
        let affine = case % 3 != 0;
        // Parameters are usually detached in evaluation; tracked ones get gradients too.
        let tracked = case % 2 == 0;
        let what = format!("case {case}: input {shape:?}, affine {affine}, tracked {tracked}");
        compare(
            &what,
            &mut rng,
            &[x, mean, var, w, b],
            &[true, tracked, tracked, tracked && affine, tracked && affine],
            |k, t| {
                let (w, b) = if affine {
                    (Some(&t[3]), Some(&t[4]))
                } else {
                    (None, None)
                };
                k.batch_norm_eval(&t[0], &t[1], &t[2], w, b, 1e-5).unwrap()
            },
        );
    }
}

#[test]
fn batch_norm_does_not_depend_on_the_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let x = random(&mut rng, &[4, 3, 9, 7]);
    let r = random(&mut rng, &[4, 3, 9, 7]);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let x = Var::from_tensor(&x).unwrap();
            let w = Var::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap();
            let (y, mean, var) = Kernels::Native
                .batch_norm_train(x.as_tensor(), Some(w.as_tensor()), None, 1e-5)
                .unwrap();
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            [
                y,
                mean,
                var,
                grads.get(&x).unwrap().clone(),
                grads.get(&w).unwrap().clone(),
            ]
            .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        })
    };
    assert_eq!(run(1), run(3));
}

/// A random pooling geometry: kernel 1..3, stride 1..3, padding up to half the kernel.
fn random_pool(rng: &mut ChaCha8Rng) -> PoolGeometry {
    let kernel = [rng.random_range(1..4), rng.random_range(1..4)];
    PoolGeometry {
        kernel,
        stride: [rng.random_range(1..4), rng.random_range(1..4)],
        padding: [
            rng.random_range(0..=kernel[0] / 2),
            rng.random_range(0..=kernel[1] / 2),
        ],
        ceil_mode: rng.random_bool(0.5),
    }
}

/// PyTorch's pooled size (`pooling_output_shape`): floor or ceil, and a last window must start
/// inside the input or its left padding.
fn pooled_size(size: usize, k: usize, s: usize, p: usize, ceil: bool) -> usize {
    let mut out = (size + 2 * p - k + if ceil { s - 1 } else { 0 }) / s + 1;
    if ceil && (out - 1) * s >= size + p {
        out -= 1;
    }
    out
}

/// Pooling written out directly from PyTorch's CPU kernels (`avg_pool2d`, `max_pool2d`):
/// the output, and the gradient of `sum(y * r)` with respect to `x`. `avg` is `None` for max
/// pooling, else `Some(count_include_pad)`.
fn naive_pool(x: &Tensor, r: &Tensor, g: &PoolGeometry, avg: Option<bool>) -> (Tensor, Tensor) {
    let (n, c, h, w) = x.dims4().unwrap();
    let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let rs = r.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let [ph, pw] = g.padding;
    let oh = pooled_size(h, kh, sh, ph, g.ceil_mode);
    let ow = pooled_size(w, kw, sw, pw, g.ceil_mode);
    let (mut y, mut dx) = (Vec::new(), vec![0.0f32; xs.len()]);
    for plane in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (y0, x0) = (
                    (oy * sh) as isize - ph as isize,
                    (ox * sw) as isize - pw as isize,
                );
                let (y1, x1) = (
                    (y0 + kh as isize).min((h + ph) as isize),
                    (x0 + kw as isize).min((w + pw) as isize),
                );
                let pool_size = ((y1 - y0) * (x1 - x0)) as f32;
                let (y0, x0) = (y0.max(0) as usize, x0.max(0) as usize);
                let (y1, x1) = (y1.min(h as isize) as usize, x1.min(w as isize) as usize);
                let cells: Vec<usize> = (y0..y1)
                    .flat_map(|i| (x0..x1).map(move |j| (plane * h + i) * w + j))
                    .collect();
                let weight = rs[y.len()];
                match avg {
                    None => {
                        let mut best = cells[0];
                        for &i in &cells {
                            if xs[i] > xs[best] {
                                best = i;
                            }
                        }
                        y.push(xs[best]);
                        dx[best] += weight;
                    }
                    Some(include) => {
                        let divisor = if include {
                            pool_size
                        } else {
                            cells.len() as f32
                        };
                        y.push(cells.iter().map(|&i| xs[i]).sum::<f32>() / divisor);
                        for &i in &cells {
                            dx[i] += weight / divisor;
                        }
                    }
                }
            }
        }
    }
    let y = Tensor::from_vec(y, (n, c, oh, ow), &Device::Cpu).unwrap();
    (y, Tensor::from_vec(dx, x.shape(), &Device::Cpu).unwrap())
}

#[test]
fn pooling_matches_candle_and_pytorch_on_random_geometries() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let mut against_candle = 0;
    for case in 0..80 {
        // Every third case is the common 2x2, stride 2, unpadded window (its own fast path).
        let g = if case % 3 == 2 {
            PoolGeometry {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
                ceil_mode: rng.random_bool(0.5),
            }
        } else {
            random_pool(&mut rng)
        };
        let mut shape = random_nchw(&mut rng, 1..10);
        shape[2] = shape[2].max(g.kernel[0]);
        shape[3] = shape[3].max(g.kernel[1]);
        // Every fourth case has many ties, for the first-maximum rule.
        let x = if case % 4 == 1 {
            let n = shape.iter().product();
            let v = (0..n).map(|_| rng.random_range(0..3) as f32).collect();
            Tensor::from_vec(v, &shape, &Device::Cpu).unwrap()
        } else {
            random(&mut rng, &shape)
        };
        let what = format!("case {case}: {g:?}, input {shape:?}");
        for avg in [None, Some(false), Some(true)] {
            let what = format!("{what}, average {avg:?}");
            let pool = |k: Kernels, x: &Tensor| match avg {
                None => k.max_pool2d(x, &g),
                Some(include) => k.avg_pool2d(x, &g, include),
            };
            // candle's composed pooling fails on windows with stride 1 down and more across
            // (an index-select of a non-contiguous view); those cases have only the direct one.
            if pool(Kernels::Candle, &x).is_ok() {
                against_candle += 1;
                compare(
                    &what,
                    &mut rng,
                    std::slice::from_ref(&x),
                    &[true],
                    |k, t| pool(k, &t[0]).unwrap(),
                );
            }
            let v = Var::from_tensor(&x).unwrap();
            let y = pool(Kernels::Native, v.as_tensor()).unwrap();
            let r = random(&mut rng, y.dims());
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let (y_ref, dx_ref) = naive_pool(&x, &r, &g, avg);
            assert_close(&format!("{what}: output (direct)"), &y, &y_ref);
            let dx = grads.get(&v).unwrap();
            assert_close(&format!("{what}: gradient (direct)"), dx, &dx_ref);
        }
    }
    assert!(
        against_candle >= 90,
        "only {against_candle} cases checked against candle"
    );
}

#[test]
fn max_pooling_sends_the_gradient_to_the_first_maximum() {
    let x = Var::ones((1, 1, 4, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
    let g = PoolGeometry {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 1],
        ceil_mode: true,
    };
    let y = Kernels::Native.max_pool2d(x.as_tensor(), &g).unwrap();
    assert_eq!(y.dims(), [1, 1, 2, 3]);
    let grads = y.sum_all().unwrap().backward().unwrap();
    let dx = grads.get(&x).unwrap().flatten_all().unwrap();
    let mut expected = vec![0.0f32; 20];
    for (i, j) in [(0, 0), (0, 1), (0, 3), (2, 0), (2, 1), (2, 3)] {
        expected[i * 5 + j] = 1.0;
    }
    assert_eq!(dx.to_vec1::<f32>().unwrap(), expected);
}

/// PyTorch's 2x2 max pooling propagates NaN, and a window of ties sends its gradient to the
/// first of them (the 2x2 stride-2 path, with an odd width whose last column no window reads).
#[test]
fn two_by_two_max_pooling_propagates_nan_and_picks_the_first_tie() {
    let x = Var::from_tensor(
        &Tensor::new(
            &[[[[1.0f32, f32::NAN, 2.0, 2.0, 9.0], [0.0, 5.0, 2.0, 2.0, 9.0]]]],
            &Device::Cpu,
        )
        .unwrap(),
    )
    .unwrap();
    let g = PoolGeometry {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        ceil_mode: false,
    };
    let y = Kernels::Native.max_pool2d(x.as_tensor(), &g).unwrap();
    let values = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(values[0].is_nan() && values[1] == 2.0, "{values:?}");
    let grads = (y * 3.0).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads
        .get(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(dx, [0.0, 3.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn rectifiers_match_candle_away_from_their_kinks() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    for case in 0..30 {
        let shape = if case % 3 == 0 {
            vec![rng.random_range(1..6), rng.random_range(1..40)]
        } else {
            random_nchw(&mut rng, 1..12).to_vec()
        };
        let x = (random(&mut rng, &shape) * 8.0).unwrap();
        let a = match case % 3 {
            0 => Activation::Relu,
            1 => Activation::Relu6,
            _ => Activation::LeakyRelu {
                negative_slope: rng.random_range(0.01..0.5),
            },
        };
        let what = format!("case {case}: {a:?}, input {shape:?}");
        compare(&what, &mut rng, &[x], &[true], |k, t| {
            k.activation(&t[0], &a).unwrap()
        });
    }
}

#[test]
fn rectifier_gradients_at_the_kinks_follow_pytorch() {
    let x = Var::new(&[-1.0f32, 0.0, 0.5, 6.0, 7.0], &Device::Cpu).unwrap();
    let cases = [
        (
            Activation::Relu,
            [0.0, 0.0, 0.5, 6.0, 7.0],
            [0.0, 0.0, 1.0, 1.0, 1.0],
        ),
        (
            Activation::Relu6,
            [0.0, 0.0, 0.5, 6.0, 6.0],
            [0.0, 0.0, 1.0, 0.0, 0.0],
        ),
        (
            Activation::LeakyRelu {
                negative_slope: 0.25,
            },
            [-0.25, 0.0, 0.5, 6.0, 7.0],
            [0.25, 0.25, 1.0, 1.0, 1.0],
        ),
    ];
    for (a, values, slopes) in cases {
        let y = Kernels::Native.activation(x.as_tensor(), &a).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), values, "{a:?}");
        let grads = y.sum_all().unwrap().backward().unwrap();
        let dx = grads.get(&x).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(dx, slopes, "{a:?}");
    }
}

#[test]
fn kernel_sets_are_named_as_on_command_lines() {
    for k in [Kernels::Native, Kernels::Candle] {
        assert_eq!(k.to_string().parse::<Kernels>(), Ok(k));
    }
    let err = "gpu".parse::<Kernels>().unwrap_err();
    assert!(err.contains("native or candle"), "{err}");
}
