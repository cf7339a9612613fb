//! The PyTorch export: `to_pytorch` writes every layer kind as PyTorch code, and `state_dict`
//! names tensors as PyTorch's `nn.Sequential` does and counts what `check` counts. (Running the
//! generated code in PyTorch is the trainer's `export` test.)

use arch_space::lang::{check, parse, state_dict, to_pytorch, InputSpec, Module, StateKind};
use arch_space::nb201::{Nb201Cell, Nb201Network};

fn module(text: &str) -> Module {
    parse(text).unwrap().module
}

fn small_input() -> InputSpec {
    InputSpec {
        channels: 3,
        height: 16,
        width: 16,
        classes: 10,
    }
}

#[test]
fn every_layer_kind_is_written_as_pytorch() {
    let text = "Sequential(
        LazyConv2d(12, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1), groups=3, bias=False),
        LazyBatchNorm2d(eps=1e-3, momentum=0.3, affine=False, track_running_stats=False),
        Concat(Sequential(Conv2d(12, 4, 4, padding='same'), ReLU6()), Identity()),
        SqueezeExcite(reduction=4), Residual(Zero()), Add(Identity(), Identity()),
        MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
        AvgPool2d((2, 1), padding=(1, 0), count_include_pad=False),
        LeakyReLU(0.2), GELU(approximate='tanh'), SiLU(), Hardswish(), Sigmoid(), Tanh(), ReLU(),
        Dropout2d(0.1), AdaptiveAvgPool2d((1, 2)), Flatten(start_dim=1, end_dim=2), Flatten(),
        Dropout(0.5), LazyLinear(10), GELU(), Softmax(dim=-1), LogSoftmax(dim=1),
    )";
    let code = to_pytorch(&module(text), &small_input()).unwrap();
    for line in [
        "nn.Conv2d(3, 12, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1), groups=3, bias=False),",
        "nn.BatchNorm2d(12, eps=0.001, momentum=0.3, affine=False, track_running_stats=False),",
        "nn.Conv2d(12, 4, 4, padding='same'),",
        "SqueezeExcitation(16, 4),",
        "Zero(),",
        "nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),",
        "nn.AvgPool2d((2, 1), padding=(1, 0), count_include_pad=False),",
        "nn.LeakyReLU(negative_slope=0.2),",
        "nn.GELU(approximate='tanh'),",
        "nn.Dropout2d(p=0.1),",
        "nn.AdaptiveAvgPool2d((1, 2)),",
        "nn.Flatten(end_dim=2),",
        "nn.Linear(32, 10),",
        "nn.Softmax(dim=-1),",
        "nn.LogSoftmax(dim=1),",
        "class Concat(Modules):",
        "class Add(Modules):",
        "class Zero(nn.Module):",
        "class SqueezeExcitation(nn.Module):",
        "INPUT_SHAPE = (3, 16, 16)",
    ] {
        assert!(
            code.contains(line),
            "missing `{line}` in:\n{code}"
        );
    }
    assert!(!code.contains("class Graph"), "an unused helper:\n{code}");
    let imports: Vec<&str> = code
        .lines()
        .filter(|l| l.starts_with("import ") || l.starts_with("from "))
        .collect();
    assert_eq!(imports, ["import torch", "from torch import nn"]);
}

/// A plain `nn.Sequential` gets exactly the names PyTorch gives it, and no helper.
#[test]
fn plain_sequential_names_are_pytorchs() {
    let text =
        "nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(8, 10, bias=False))";
    let m = module(text);
    let names: Vec<(String, Vec<usize>)> = state_dict(&m, &small_input())
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.shape))
        .collect();
    let expected: Vec<(String, Vec<usize>)> = [
        ("0.weight", vec![8, 3, 3, 3]),
        ("0.bias", vec![8]),
        ("1.weight", vec![8]),
        ("1.bias", vec![8]),
        ("1.running_mean", vec![8]),
        ("1.running_var", vec![8]),
        ("1.num_batches_tracked", vec![]),
        ("5.weight", vec![10, 8]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(names, expected);
    let code = to_pytorch(&m, &small_input()).unwrap();
    assert!(!code.contains("def join"), "{code}");
    assert!(
        code.contains("    \"1.num_batches_tracked\": (),\n"),
        "{code}"
    );
    assert!(code.contains("    \"0.bias\": (8,),\n"), "{code}");
}

/// Graph nodes read their sources by index; edges are named `node.edge`.
#[test]
fn graph_nodes_and_edges() {
    let cell = Nb201Cell::from_arch_str(
        "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|",
    )
    .unwrap();
    let m = cell.module(8);
    let input = InputSpec {
        channels: 8,
        height: 8,
        width: 8,
        classes: 8,
    };
    // A cell alone outputs [8, 8, 8]: check the graph inside a network instead.
    let net = Module::sequential([m, module("Sequential(AdaptiveAvgPool2d(1), Flatten())")]);
    let code = to_pytorch(&net, &input).unwrap();
    for line in [
        "# node1 = Sum(input)",
        "Node(\"sum\", [0],",
        "# node2 = Sum(input)",
        "# node3 = Sum(input, node1, node2)",
        "Node(\"sum\", [0, 1, 2],",
        "Zero(),",
    ] {
        assert!(code.contains(line), "missing `{line}` in:\n{code}");
    }
    let names: Vec<String> = state_dict(&net, &input)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names[0], "0.0.0.1.weight");
    assert_eq!(names[1], "0.0.0.2.weight");
    assert!(names.contains(&"0.2.2.1.weight".to_string()), "{names:?}");
}

/// The parameters of the state dict are what `check` counts, for the example architectures and
/// NAS-Bench-201 networks; names are unique.
#[test]
fn state_dict_parameters_match_the_checker() {
    let mut modules: Vec<(String, Module)> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/archs"))
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                (path.display().to_string(), module(&text))
            })
            .collect();
    for arch in [
        "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|none~1|none~2|",
    ] {
        let cell = Nb201Cell::from_arch_str(arch).unwrap();
        modules.push((arch.into(), Nb201Network::cifar10().module(&cell)));
    }
    assert!(modules.len() >= 7);
    for (name, m) in &modules {
        let input = InputSpec::cifar10();
        let entries = state_dict(m, &input).unwrap();
        let params: usize = entries
            .iter()
            .filter(|e| e.kind == StateKind::Parameter)
            .map(|e| e.shape.iter().product::<usize>())
            .sum();
        assert_eq!(params as u64, check(m, &input).unwrap().params, "{name}");
        let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), entries.len(), "{name}: duplicate names");
        let code = to_pytorch(m, &input).unwrap();
        let table = code.split("STATE_DICT = {\n").nth(1).unwrap();
        assert_eq!(
            table.lines().filter(|l| l.starts_with("    \"")).count(),
            entries.len(),
            "{name}: STATE_DICT entries"
        );
    }
}
