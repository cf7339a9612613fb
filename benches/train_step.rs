//! Training-step benchmarks on the CPU: our kernels (`native`) against candle's ops alone
//! (`candle`), per operation at the shapes of the baseline CNN (under candle's autograd) and per
//! whole training step (`Network::loss_and_gradients`) for the networks of `examples/archs`
//! (batch 128, the process's rayon threads).
//!
//! Run with `cargo bench --bench train_step` (add `-- --quick` for a fast pass, a filter such as
//! `-- op/` or `-- step/` for one group). PyTorch's numbers come from `scripts/bench_step.sh`,
//! which runs the same steps beside it in one run.

use std::hint::black_box;

use arch_space::lang::{Activation, Padding};
use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use nas_rs::arch_space;
use nas_rs::trainer::model::{Mode, Network};
use nas_rs::trainer::ops::{self, ConvGeometry, Kernels, PoolGeometry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const KERNELS: [(&str, Kernels); 2] = [("native", Kernels::Native), ("candle", Kernels::Candle)];

fn random(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).expect("a tensor")
}

/// Forward and backward of `op` on a variable input, the output weighted by a fixed tensor.
fn forward_backward(x: &Var, weights: &Tensor, op: &dyn Fn(&Tensor) -> Tensor) {
    let y = op(x.as_tensor());
    let grads = (y * weights)
        .and_then(|t| t.sum_all())
        .and_then(|t| t.backward())
        .expect("a backward pass");
    black_box(grads);
}

fn operations(c: &mut Criterion) {
    ops::tune_allocator();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let conv = ConvGeometry {
        kernel: [3, 3],
        stride: [1, 1],
        padding: Padding::Explicit([1, 1]),
        dilation: 1,
        groups: 1,
    };
    let depthwise = ConvGeometry { groups: 64, ..conv };
    let pool = PoolGeometry {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        ceil_mode: false,
    };
    let x = Var::from_tensor(&random(&mut rng, &[128, 32, 16, 16])).expect("a variable");
    let forward_shapes: Vec<(Tensor, Tensor)> = [(16, 16, 32), (32, 64, 16), (64, 128, 8)]
        .into_iter()
        .map(|(cin, cout, size)| {
            let x = random(&mut rng, &[128, cin, size, size]);
            (x, random(&mut rng, &[cout, cin, 3, 3]))
        })
        .collect();
    let w = Var::from_tensor(&random(&mut rng, &[64, 32, 3, 3])).expect("a variable");
    let wd = Var::from_tensor(&random(&mut rng, &[64, 1, 3, 3])).expect("a variable");
    let x64 = Var::from_tensor(&random(&mut rng, &[128, 64, 16, 16])).expect("a variable");
    let (gamma, beta) = (random(&mut rng, &[32]), random(&mut rng, &[32]));
    let out64 = random(&mut rng, &[128, 64, 16, 16]);
    let out32 = random(&mut rng, &[128, 32, 16, 16]);
    let pooled = random(&mut rng, &[128, 32, 8, 8]);
    let mut group = c.benchmark_group("op");
    group.sample_size(10);
    for (name, k) in KERNELS {
        let conv_op = |x: &Tensor| k.conv2d(x, w.as_tensor(), None, &conv).expect("conv");
        group.bench_function(format!("conv3x3 32->64 16x16/{name}"), |b| {
            b.iter(|| forward_backward(&x, &out64, &conv_op))
        });
        for (x, w) in &forward_shapes {
            let (cin, size, cout) = (x.dims()[1], x.dims()[2], w.dims()[0]);
            let label = format!("conv3x3 {cin}->{cout} {size}x{size} forward/{name}");
            group.bench_function(label, |b| {
                b.iter(|| black_box(k.conv2d(x, w, None, &conv).expect("conv")))
            });
        }
        let dw_op = |x: &Tensor| k.conv2d(x, wd.as_tensor(), None, &depthwise).expect("conv");
        group.bench_function(format!("depthwise3x3 64 16x16/{name}"), |b| {
            b.iter(|| forward_backward(&x64, &out64, &dw_op))
        });
        let bn_op = |x: &Tensor| {
            k.batch_norm_train(x, Some(&gamma), Some(&beta), 1e-5)
                .expect("batch norm")
                .0
        };
        group.bench_function(format!("batchnorm 32 16x16/{name}"), |b| {
            b.iter(|| forward_backward(&x, &out32, &bn_op))
        });
        let relu_op = |x: &Tensor| k.activation(x, &Activation::Relu).expect("relu");
        group.bench_function(format!("relu 32 16x16/{name}"), |b| {
            b.iter(|| forward_backward(&x, &out32, &relu_op))
        });
        let pool_op = |x: &Tensor| k.max_pool2d(x, &pool).expect("pool");
        group.bench_function(format!("maxpool2 32 16x16/{name}"), |b| {
            b.iter(|| forward_backward(&x, &pooled, &pool_op))
        });
    }
    group.finish();
}

fn steps(c: &mut Criterion) {
    ops::tune_allocator();
    let input = arch_space::lang::InputSpec {
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = random(&mut rng, &[128, 3, 32, 32]);
    let labels: Vec<u32> = (0..128).map(|_| rng.random_range(0..10)).collect();
    let y = Tensor::from_vec(labels, 128, &Device::Cpu).expect("labels");
    let mut group = c.benchmark_group("step");
    group.sample_size(10);
    for arch in ["cnn3", "resnet8", "dwsep", "nb201_6111"] {
        let path = format!("{}/examples/archs/{arch}.arch", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("a shipped architecture");
        let module = arch_space::lang::parse(&text).expect("it parses").module;
        for (name, k) in KERNELS {
            let (network, _) = Network::build(&module, &input, 0, &Device::Cpu).expect("it builds");
            let network = network.with_kernels(k);
            group.bench_function(format!("{arch}/{name}"), |b| {
                b.iter(|| {
                    let mut mode = Mode {
                        train: true,
                        rng: &mut rng,
                    };
                    // The trainer's own step: the tape with native kernels, autograd with candle's.
                    let step = network
                        .loss_and_gradients(&x, &y, &mut mode)
                        .expect("a training step");
                    black_box(step);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, operations, steps);
criterion_main!(benches);
