//! Tests of the macro CNN, LoRA and transformer spaces.

use arch_space::lang::{check, parse, to_text, InputSpec, Layer, Module};
use arch_space::lora::LoraRankSpace;
use arch_space::macro_cnn::{BlockType, Downsample, MacroCnn, MacroCnnSpace, Stage};
use arch_space::transformer::{LayerShape, TransformerShape, TransformerSpace};
use arch_space::ArchSpaceError;
use ncode::{NCode, NcodeError};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn config_message(result: Result<impl std::fmt::Debug, ArchSpaceError>) -> String {
    match result {
        Err(ArchSpaceError::Config(message)) => message,
        other => panic!("expected a Config error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- macro CNN

#[test]
fn macro_default_size_and_layout() {
    let space = MacroCnnSpace::default().space().unwrap();
    // Per stage 3 depths * 5 widths * 3 kernels * 4 downsamplings * 5 blocks = 900.
    assert_eq!(
        space.size().unwrap(),
        900 + 900u128.pow(2) + 900u128.pow(3) + 900u128.pow(4)
    );
    assert_eq!(space.size().unwrap(), 656_829_810_900);
    assert_eq!(space.len(), 1 + 4 * 5);
    assert_eq!(space.dimensions()[0].name, "stages");
    assert_eq!(space.dimensions()[6].name, "stage1_depth");
    assert_eq!(space.dimensions()[20].name, "stage3_block");
    let cond = space.dimensions()[16].active_when.as_ref().unwrap();
    assert_eq!((cond.controller, cond.any_of.clone()), (0, vec![3]));
}

#[test]
fn macro_decode_known_code() {
    let cnn_space = MacroCnnSpace::default();
    let space = cnn_space.space().unwrap();
    let code = space.parse("223133002100000000000").unwrap();
    let cnn = cnn_space.decode(&code).unwrap();
    let expected = MacroCnn {
        stages: vec![
            Stage {
                depth: 3,
                width: 128,
                kernel: 5,
                downsample: Downsample::AvgPool,
                block: BlockType::InvertedResidual,
            },
            Stage {
                depth: 1,
                width: 16,
                kernel: 7,
                downsample: Downsample::Stride2,
                block: BlockType::Plain,
            },
            Stage {
                depth: 1,
                width: 16,
                kernel: 3,
                downsample: Downsample::None,
                block: BlockType::Plain,
            },
        ],
    };
    assert_eq!(cnn, expected);
    assert_eq!(cnn_space.encode(&cnn).unwrap(), code);
}

#[test]
fn macro_round_trip_on_sampled_codes() {
    let cnn_space = MacroCnnSpace::default();
    let space = cnn_space.space().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut seen_stages = [0usize; 5];
    for _ in 0..3000 {
        let code = space.sample(&mut rng);
        assert!(space.is_canonical(&code));
        let cnn = cnn_space.decode(&code).unwrap();
        seen_stages[cnn.stages.len()] += 1;
        assert_eq!(
            cnn_space.encode(&cnn).unwrap(),
            code,
            "{}",
            space.format(&code)
        );
    }
    assert_eq!(seen_stages[0], 0);
    assert!(seen_stages[1..].iter().all(|&n| n > 500), "{seen_stages:?}");
}

/// Every sampled macro CNN lowers to a module that passes the static checks on CIFAR-10 and
/// prints and parses back to itself.
#[test]
fn macro_modules_check_and_round_trip_through_text() {
    let cnn_space = MacroCnnSpace::default();
    let space = cnn_space.space().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2000 {
        let code = space.sample(&mut rng);
        let cnn = cnn_space.decode(&code).unwrap();
        let module = cnn.module(3, 10);
        let analysis = check(&module, &InputSpec::cifar10())
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", space.format(&code), to_text(&module)));
        assert!(analysis.params > 0 && analysis.flops > 0);
        assert_eq!(analysis.output, vec![10]);
        // Nothing is lazy, so checking resolves nothing.
        assert_eq!(analysis.resolved, module);
        let text = to_text(&module);
        let program = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(program.module, module, "{text}");
        for stage in &cnn.stages {
            seen.insert((stage.block, stage.downsample));
        }
    }
    assert_eq!(seen.len(), BlockType::ALL.len() * Downsample::ALL.len());
}

#[test]
fn macro_module_hand_counted() {
    let stage = |depth, width, kernel, downsample, block| Stage {
        depth,
        width,
        kernel,
        downsample,
        block,
    };
    let cnn = MacroCnn {
        stages: vec![
            stage(1, 16, 3, Downsample::None, BlockType::Residual),
            stage(2, 32, 5, Downsample::Stride2, BlockType::InvertedResidual),
            stage(1, 64, 3, Downsample::MaxPool, BlockType::Se),
        ],
    };
    let module = cnn.module(3, 10);
    let a = check(&module, &InputSpec::cifar10()).unwrap();
    // Weights of a bias-free convolution; a batch norm has a scale and a shift per channel.
    let conv = |cin: u64, cout: u64, k: u64| cin * cout * k * k;
    let bn = |c: u64| 2 * c;
    let stem = conv(3, 16, 3) + bn(16);
    // Basic block 16 -> 16: identity shortcut.
    let residual = 2 * (conv(16, 16, 3) + bn(16));
    // MobileNetV2 blocks: 16 -> 32 (stride 2, no residual), then 32 -> 32; depthwise 5x5 has
    // one input channel per group.
    let inverted = |cin: u64, cout: u64| {
        let hidden = 4 * cin;
        conv(cin, hidden, 1)
            + bn(hidden)
            + hidden * 25
            + bn(hidden)
            + conv(hidden, cout, 1)
            + bn(cout)
    };
    // SE basic block 32 -> 64 after a max pooling: projection shortcut, SE squeezing to 16
    // (two 1x1 convolutions with biases).
    let se = conv(32, 64, 3)
        + bn(64)
        + conv(64, 64, 3)
        + bn(64)
        + (64 * 16 + 16 + 16 * 64 + 64)
        + conv(32, 64, 1)
        + bn(64);
    let head = 64 * 10 + 10;
    let expected = stem + residual + inverted(16, 32) + inverted(32, 32) + se + head;
    assert_eq!(expected, 82_602);
    assert_eq!(a.params, expected);

    // The structure: stride 2 on the depthwise convolution, the pooling first in its stage,
    // and a residual sum only where the shape is kept.
    let text = to_text(&module);
    assert!(
        text.contains("Conv2d(64, 64, 5, stride=2, padding=2, groups=64, bias=False)"),
        "{text}"
    );
    assert!(text.contains("MaxPool2d(2)"), "{text}");
    assert!(text.contains("SqueezeExcitation(64, 16)"), "{text}");
    let Module::Sequential(items) = &module else {
        panic!("{text}")
    };
    assert_eq!(items.len(), 3 + 3 + 3);
    let Module::Sequential(stage1) = &items[4] else {
        panic!("{text}")
    };
    assert!(matches!(stage1[0], Module::Sequential(_)), "{text}");
    assert!(matches!(stage1[1], Module::Parallel { .. }), "{text}");
    let Module::Sequential(stage2) = &items[5] else {
        panic!("{text}")
    };
    assert!(
        matches!(stage2[0], Module::Layer(Layer::MaxPool2d(_))),
        "{text}"
    );
}

#[test]
fn macro_decode_ignores_inactive_positions() {
    let cnn_space = MacroCnnSpace::default();
    let space = cnn_space.space().unwrap();
    // Inactive positions are still range-checked.
    let raw = space.parse("000000900000000000000").unwrap_err();
    assert!(matches!(raw, NcodeError::OutOfRange { position: 6, .. }));
    let noisy = NCode::new(vec![
        0, 1, 2, 1, 3, 4, 2, 4, 2, 3, 4, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2,
    ]);
    let canonical = space.canonicalize(&noisy);
    let cnn = cnn_space.decode(&noisy).unwrap();
    assert_eq!(cnn.stages.len(), 1);
    assert_eq!(cnn, cnn_space.decode(&canonical).unwrap());
    assert_eq!(cnn_space.encode(&cnn).unwrap(), canonical);
}

#[test]
fn macro_rejects_bad_codes() {
    let cnn_space = MacroCnnSpace::default();
    let mut code = NCode::zeros(21);
    code.set(7, 5); // stage1_width has 5 choices
    match cnn_space.decode(&code) {
        Err(ArchSpaceError::Code(NcodeError::OutOfRange {
            position,
            dimension,
            index,
            choices,
        })) => {
            assert_eq!((position, index, choices), (7, 5, 5));
            assert_eq!(dimension, "stage1_width");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        cnn_space.decode(&NCode::zeros(20)),
        Err(ArchSpaceError::Code(NcodeError::WrongLength {
            expected: 21,
            found: 20,
            ..
        }))
    ));
}

#[test]
fn macro_rejects_unencodable_networks() {
    let cnn_space = MacroCnnSpace::default();
    let stage = Stage {
        depth: 2,
        width: 64,
        kernel: 3,
        downsample: Downsample::MaxPool,
        block: BlockType::Se,
    };
    let wide = MacroCnn {
        stages: vec![stage, Stage { width: 48, ..stage }],
    };
    assert_eq!(
        config_message(cnn_space.encode(&wide)),
        "stage 1: width 48 is not among the choices 16, 32, 64, 128, 256"
    );
    let deep = MacroCnn {
        stages: vec![stage; 5],
    };
    assert_eq!(
        config_message(cnn_space.encode(&deep)),
        "number of stages 5 is not among the choices 1, 2, 3, 4"
    );
    let empty = MacroCnn { stages: vec![] };
    assert!(config_message(cnn_space.encode(&empty)).contains("number of stages 0"));
    let restricted = MacroCnnSpace {
        blocks: vec![BlockType::Plain, BlockType::Residual],
        ..MacroCnnSpace::default()
    };
    let se = MacroCnn {
        stages: vec![stage],
    };
    assert_eq!(
        config_message(restricted.encode(&se)),
        "stage 0: block se is not among the choices plain, residual"
    );
}

#[test]
fn macro_custom_and_invalid_configs() {
    let two_or_three = MacroCnnSpace {
        num_stages: vec![2, 3],
        depths: vec![1],
        widths: vec![32, 64],
        kernels: vec![3],
        downsamples: vec![Downsample::None],
        blocks: vec![BlockType::Bottleneck],
    };
    let space = two_or_three.space().unwrap();
    // 2 stages: 2^2 codes, 3 stages: 2^3 codes.
    assert_eq!(space.size().unwrap(), 12);
    let all: Vec<NCode> = space.enumerate().collect();
    assert_eq!(all.len(), 12);
    for code in &all {
        assert_eq!(
            &two_or_three
                .encode(&two_or_three.decode(code).unwrap())
                .unwrap(),
            code
        );
    }
    let repeated = MacroCnnSpace {
        widths: vec![16, 32, 16],
        ..MacroCnnSpace::default()
    };
    assert_eq!(config_message(repeated.space()), "`widths` lists 16 twice");
    let empty = MacroCnnSpace {
        kernels: vec![],
        ..MacroCnnSpace::default()
    };
    assert_eq!(config_message(empty.space()), "`kernels` has no choices");
    let zero = MacroCnnSpace {
        depths: vec![0, 1],
        ..MacroCnnSpace::default()
    };
    assert!(config_message(zero.space()).contains("positive"));
}

// ---------------------------------------------------------------- LoRA

#[test]
fn lora_presets() {
    let sam = LoraRankSpace::sam();
    assert_eq!(sam.modules.len(), 32);
    assert_eq!(sam.ranks, vec![3, 6, 12, 24]);
    assert_eq!(sam.modules[0], "block0");
    assert_eq!(sam.modules[31], "block31");
    let space = sam.space().unwrap();
    assert_eq!(space.len(), 32);
    assert!(space.dimensions().iter().all(|d| d.len() == 4));
    assert_eq!(space.size().unwrap(), 1u128 << 64);

    let sd = LoraRankSpace::stable_diffusion();
    assert_eq!(sd.modules.len(), 48);
    assert_eq!(sd.ranks, vec![4, 8, 16]);
    let space = sd.space().unwrap();
    assert_eq!(space.len(), 48);
    assert!(space.dimensions().iter().all(|d| d.len() == 3));
    assert_eq!(space.size().unwrap(), 79_766_443_076_872_509_863_361);
    assert_eq!(space.size().unwrap(), 3u128.pow(48));
}

#[test]
fn lora_round_trip_and_params() {
    let sam = LoraRankSpace::sam();
    let code = NCode::new((0..32).map(|i| (i % 4) as u16).collect());
    let ranks = sam.decode(&code).unwrap();
    assert_eq!(&ranks[..5], &[3, 6, 12, 24, 3]);
    assert_eq!(sam.encode(&ranks).unwrap(), code);
    // 8 cycles of ranks 3+6+12+24 = 45, each module 256 + 256 wide.
    assert_eq!(
        sam.trainable_params(&code, &[(256, 256); 32]).unwrap(),
        184_320
    );

    let small = LoraRankSpace::new(["attn.q", "attn.v", "mlp"], [0, 2, 8]);
    let code = small.encode(&[8, 0, 2]).unwrap();
    assert_eq!(code.indices(), &[2, 0, 1]);
    // 8 * (768 + 768) + 0 * (768 + 768) + 2 * (768 + 3072)
    let shapes = [(768, 768), (768, 768), (768, 3072)];
    assert_eq!(small.trainable_params(&code, &shapes).unwrap(), 19_968);

    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let sd = LoraRankSpace::stable_diffusion();
    let space = sd.space().unwrap();
    for _ in 0..200 {
        let code = space.sample(&mut rng);
        assert_eq!(sd.encode(&sd.decode(&code).unwrap()).unwrap(), code);
    }
}

#[test]
fn lora_errors() {
    let sam = LoraRankSpace::sam();
    let mut code = NCode::zeros(32);
    code.set(31, 4);
    assert!(matches!(
        sam.decode(&code),
        Err(ArchSpaceError::Code(NcodeError::OutOfRange {
            position: 31,
            index: 4,
            choices: 4,
            ..
        }))
    ));
    let mut ranks = vec![3; 32];
    ranks[5] = 5;
    assert_eq!(
        config_message(sam.encode(&ranks)),
        "module `block5`: rank 5 is not among the choices 3, 6, 12, 24"
    );
    assert_eq!(
        config_message(sam.encode(&[3; 31])),
        "31 ranks given for 32 modules"
    );
    assert_eq!(
        config_message(sam.trainable_params(&NCode::zeros(32), &[(1, 1); 3])),
        "3 shapes given for 32 modules"
    );
    let huge = LoraRankSpace::new(["a", "b"], [u32::MAX]);
    let shapes = [(usize::MAX / 2, usize::MAX / 2); 2];
    assert!(config_message(huge.trainable_params(&NCode::zeros(2), &shapes)).contains("overflow"));
    let twice = LoraRankSpace::new(["a", "a"], [1]);
    assert_eq!(config_message(twice.space()), "`modules` lists a twice");
    let none = LoraRankSpace::new(Vec::<String>::new(), [1]);
    assert_eq!(config_message(none.space()), "`modules` has no choices");
}

// ---------------------------------------------------------------- transformer

#[test]
fn transformer_default_size() {
    let space = TransformerSpace::default().space().unwrap();
    // 2 embeddings * sum over L = 1..=6 of (3 hidden * 2 heads)^L.
    let expected: u128 = 2 * (1..=6).map(|l| 6u128.pow(l)).sum::<u128>();
    assert_eq!(expected, 111_972);
    assert_eq!(space.size().unwrap(), 111_972);
    assert_eq!(space.len(), 2 + 6 * 2);
    assert_eq!(space.dimensions()[13].name, "layer5_heads");
}

#[test]
fn transformer_round_trip_on_every_canonical_code() {
    let tf = TransformerSpace::default();
    let space = tf.space().unwrap();
    let mut count = 0;
    for code in space.enumerate() {
        let shape = tf.decode(&code).unwrap();
        assert_eq!(shape.layers.len(), usize::from(code.indices()[1]) + 1);
        assert_eq!(tf.encode(&shape).unwrap(), code);
        count += 1;
    }
    assert_eq!(count, 111_972);
}

#[test]
fn transformer_decode_and_errors() {
    let tf = TransformerSpace::default();
    let space = tf.space().unwrap();
    let code = space.parse("02110001000000").unwrap();
    let shape = tf.decode(&code).unwrap();
    assert_eq!(
        shape,
        TransformerShape {
            embed_dim: 512,
            layers: vec![
                LayerShape {
                    hidden_dim: 2048,
                    heads: 8
                },
                LayerShape {
                    hidden_dim: 1024,
                    heads: 4
                },
                LayerShape {
                    hidden_dim: 1024,
                    heads: 8
                },
            ],
        }
    );
    let bad = space.parse("02110001000000").map(|mut c| {
        c.set(3, 2);
        c
    });
    assert!(matches!(
        tf.decode(&bad.unwrap()),
        Err(ArchSpaceError::Code(NcodeError::OutOfRange {
            position: 3,
            ..
        }))
    ));
    let wide = TransformerShape {
        embed_dim: 768,
        layers: shape.layers.clone(),
    };
    assert_eq!(
        config_message(tf.encode(&wide)),
        "embedding width 768 is not among the choices 512, 640"
    );
    let mut odd_heads = shape.clone();
    odd_heads.layers[2].heads = 16;
    assert_eq!(
        config_message(tf.encode(&odd_heads)),
        "layer 2: heads 16 is not among the choices 4, 8"
    );
    let too_deep = TransformerShape {
        embed_dim: 640,
        layers: vec![
            LayerShape {
                hidden_dim: 1024,
                heads: 4
            };
            7
        ],
    };
    assert!(config_message(tf.encode(&too_deep)).contains("number of layers 7"));
    let indivisible = TransformerSpace {
        heads: vec![4, 6],
        ..TransformerSpace::default()
    };
    assert_eq!(
        config_message(indivisible.space()),
        "6 heads do not divide the embedding width 512"
    );
}

#[test]
fn transformer_params() {
    let one = TransformerShape {
        embed_dim: 512,
        layers: vec![LayerShape {
            hidden_dim: 1024,
            heads: 8,
        }],
    };
    // 1000*512 + 4*512^2 + 2*512*1024 + 9*512 + 1024
    assert_eq!(one.params(1000), 2_614_784);
    let two = TransformerShape {
        embed_dim: 640,
        layers: vec![
            LayerShape {
                hidden_dim: 3072,
                heads: 8,
            },
            LayerShape {
                hidden_dim: 1024,
                heads: 4,
            },
        ],
    };
    // 32000*640 + (4*640^2 + 2*640*3072 + 9*640 + 3072) + (4*640^2 + 2*640*1024 + 9*640 + 1024)
    assert_eq!(two.params(32_000), 29_015_296);
    let heads_only = TransformerShape {
        layers: vec![
            LayerShape {
                hidden_dim: 3072,
                heads: 4,
            },
            two.layers[1],
        ],
        ..two.clone()
    };
    assert_eq!(heads_only.params(32_000), 29_015_296);
    assert_eq!(two.params(0), 29_015_296 - 32_000 * 640);
    assert_eq!(one.params(usize::MAX), u64::MAX);
}
