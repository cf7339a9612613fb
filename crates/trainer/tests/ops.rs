//! Forward and backward passes of built networks against PyTorch on the same weights
//! (`scripts/torch_ops_reference.py`): convolutions with asymmetric padding and stride, groups,
//! dilation and 'same' padding; max and average pooling with padding and ceil mode; adaptive
//! pooling; BatchNorm in training and evaluation mode; every activation. Both kernel sets:
//! our native CPU kernels and candle's composed ops.

use arch_space::lang::{parse, InputSpec};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use trainer::model::{Mode, Network};
use trainer::ops::Kernels;

#[derive(serde::Deserialize)]
struct Fixture {
    height: usize,
    width: usize,
    models: Vec<Model>,
}

#[derive(serde::Deserialize)]
struct Model {
    text: String,
    output_train: Vec<f64>,
    output_shape: Vec<usize>,
    grads: Vec<Vec<f64>>,
    output_eval: Vec<f64>,
}

fn pattern(n: usize, phase: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 * (0.37 * i as f64 + phase).sin()) as f32)
        .collect()
}

fn assert_close(what: &str, ours: &[f32], torch: &[f64]) {
    assert_eq!(ours.len(), torch.len(), "{what}: length");
    for (i, (a, b)) in ours.iter().zip(torch).enumerate() {
        let tol = 1e-4 * (1.0 + b.abs());
        assert!(
            (f64::from(*a) - b).abs() < tol,
            "{what}[{i}]: ours {a}, torch {b}"
        );
    }
}

#[test]
fn networks_match_pytorch_forward_and_backward() {
    let fixture: Fixture = serde_json::from_str(include_str!("fixtures/ops.json")).unwrap();
    let dev = Device::Cpu;
    for (kernels, model) in [Kernels::Native, Kernels::Candle]
        .into_iter()
        .flat_map(|k| fixture.models.iter().map(move |m| (k, m)))
    {
        let program = parse(&model.text).unwrap();
        let classes = *model.output_shape.last().unwrap();
        let input = InputSpec {
            channels: 3,
            height: fixture.height,
            width: fixture.width,
            classes,
        };
        let (network, _) = Network::build(&program.module, &input, 0, &dev).unwrap();
        let network = network.with_kernels(kernels);
        assert_eq!(network.params().len(), model.grads.len(), "{}", model.text);
        for (j, var) in network.params().iter().enumerate() {
            let values = pattern(var.elem_count(), 1.0 + j as f64);
            var.set(&Tensor::from_vec(values, var.shape(), &dev).unwrap())
                .unwrap();
        }
        let x = Tensor::from_vec(
            pattern(2 * 3 * fixture.height * fixture.width, 0.1),
            (2, 3, fixture.height, fixture.width),
            &dev,
        )
        .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let y = network
            .forward(
                &x,
                &mut Mode {
                    train: true,
                    rng: &mut rng,
                },
            )
            .unwrap();
        assert_eq!(y.dims(), model.output_shape.as_slice());
        assert_close(
            &format!("{kernels:?}: train output of {}", model.text),
            &y.flatten_all().unwrap().to_vec1().unwrap(),
            &model.output_train,
        );
        let r = Tensor::from_vec(pattern(y.elem_count(), 2.0), y.shape(), &dev).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (j, var) in network.params().iter().enumerate() {
            let g = grads
                .get(var.as_tensor())
                .expect("every parameter has a gradient");
            assert_close(
                &format!("{kernels:?}: grad {j} of {}", model.text),
                &g.flatten_all().unwrap().to_vec1().unwrap(),
                &model.grads[j],
            );
        }
        let y_eval = network
            .forward(
                &x,
                &mut Mode {
                    train: false,
                    rng: &mut rng,
                },
            )
            .unwrap();
        assert_close(
            &format!("{kernels:?}: eval output of {}", model.text),
            &y_eval.flatten_all().unwrap().to_vec1().unwrap(),
            &model.output_eval,
        );
    }
}
