//! The network's own tape (native kernels on the CPU) against candle's autograd on the same
//! kernels: the same loss, the same parameter gradients and the same running statistics, for
//! networks with every kind of layer and join (residual, concat, NB201 cells, squeeze-excitation,
//! dropout, layers without native kernels).

use arch_space::lang::{parse, InputSpec};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use trainer::model::{Mode, Network};
use trainer::ops;

const NETWORKS: &[&str] = &[
    "Sequential(Conv2d(3, 8, 3, padding=1), BatchNorm2d(8), ReLU(), MaxPool2d(2), \
     Conv2d(8, 16, 3, stride=2, padding=1, bias=False), BatchNorm2d(16, affine=False), ReLU6(), \
     AdaptiveAvgPool2d(1), Flatten(), Linear(16, 5))",
    "Sequential(Conv2d(3, 8, 3, padding=1, bias=False), BatchNorm2d(8), ReLU(), \
     Residual(Conv2d(8, 8, 3, padding=1), BatchNorm2d(8), LeakyReLU(0.1), Conv2d(8, 8, 1)), \
     SiLU(), AvgPool2d(3, stride=2, padding=1, count_include_pad=False), \
     Dropout(0.3), Flatten(), Linear(512, 5))",
    "Sequential(Conv2d(3, 6, 3, padding=1), \
     Concat(Sequential(Conv2d(6, 4, 1), ReLU()), Sequential(Conv2d(6, 6, 3, padding=1, groups=6), GELU()), Identity()), \
     SqueezeExcitation(16, 4), Conv2d(16, 8, 3, stride=2), BatchNorm2d(8), Hardswish(), \
     AdaptiveAvgPool2d((2, 2)), Flatten(), Linear(32, 5))",
];

mod common;
use common::random;

/// Tape against autograd: within 2e-4 of the reference's largest magnitude (at least 1e-3).
fn close(what: &str, tape: &Tensor, autograd: &Tensor) {
    common::assert_close(what, tape, autograd, (2e-4, 1e-3));
}

fn check(text: &str, input: &InputSpec) {
    let module = parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).module;
    let (tape_net, _) = Network::build(&module, input, 3, &Device::Cpu).unwrap();
    let (graph_net, _) = Network::build(&module, input, 3, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = random(&mut rng, &[4, input.channels, input.height, input.width]);
    let labels: Vec<u32> = (0..4).map(|i| (i * 3 % input.classes) as u32).collect();
    let y = Tensor::from_vec(labels, 4, &Device::Cpu).unwrap();
    // Two steps, so the second sees the running statistics the first updated.
    for step in 0..2 {
        let mut rng_a = ChaCha8Rng::seed_from_u64(step);
        let mut rng_b = ChaCha8Rng::seed_from_u64(step);
        let (loss, grads) = tape_net
            .loss_and_gradients(
                &x,
                &y,
                &mut Mode {
                    train: true,
                    rng: &mut rng_a,
                },
            )
            .unwrap();
        let logits = graph_net
            .forward(
                &x,
                &mut Mode {
                    train: true,
                    rng: &mut rng_b,
                },
            )
            .unwrap();
        let graph_loss = ops::cross_entropy(&logits, &y).unwrap();
        let graph_grads = graph_loss.backward().unwrap();
        let graph_loss = graph_loss.to_scalar::<f32>().unwrap();
        assert!(
            (loss - graph_loss).abs() < 1e-5,
            "{text}: loss {loss} vs {graph_loss}"
        );
        for (i, (a, b)) in tape_net.params().iter().zip(graph_net.params()).enumerate() {
            let ga = grads
                .get(a.as_tensor())
                .unwrap_or_else(|| panic!("{text}: no gradient {i}"));
            let gb = graph_grads
                .get(b.as_tensor())
                .expect("an autograd gradient");
            close(&format!("{text}: step {step}, parameter {i}"), ga, gb);
        }
    }
    let mut eval = ChaCha8Rng::seed_from_u64(9);
    let after = |net: &Network, rng: &mut ChaCha8Rng| {
        net.forward(&x, &mut Mode { train: false, rng }).unwrap()
    };
    close(
        &format!("{text}: evaluation after two steps"),
        &after(&tape_net, &mut eval),
        &after(&graph_net, &mut eval),
    );
}

#[test]
fn the_tape_matches_autograd_on_every_kind_of_layer() {
    let input = InputSpec {
        channels: 3,
        height: 16,
        width: 16,
        classes: 5,
    };
    for text in NETWORKS {
        check(text, &input);
    }
}

#[test]
fn the_tape_matches_autograd_on_the_shipped_architectures() {
    let input = InputSpec {
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
    };
    for arch in ["cnn3", "resnet8", "dwsep", "nb201_6111"] {
        let path = format!(
            "{}/../../examples/archs/{arch}.arch",
            env!("CARGO_MANIFEST_DIR")
        );
        check(&std::fs::read_to_string(path).unwrap(), &input);
    }
}

#[test]
fn an_evaluation_forward_keeps_no_graph() {
    // A graph behind the output would keep every activation of the batch alive until the end
    // of the forward pass (BatchNorm's running statistics are variables).
    let input = InputSpec {
        channels: 3,
        height: 16,
        width: 16,
        classes: 5,
    };
    let module = parse(NETWORKS[0]).unwrap().module;
    let (network, _) = Network::build(&module, &input, 0, &Device::Cpu).unwrap();
    let x = random(&mut ChaCha8Rng::seed_from_u64(1), &[2, 3, 16, 16]);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let y = network
        .forward(
            &x,
            &mut Mode {
                train: false,
                rng: &mut rng,
            },
        )
        .unwrap();
    assert!(!y.track_op(), "the evaluation output tracks a graph");
}
