//! The architecture language: parsing, printing, static checks, and the NAS-Bench-201 networks.

use arch_space::lang::{
    check, parse, to_text, Budget, CheckErrorKind, InputSpec, Layer, Module, Padding,
};
use arch_space::nb201::{self, Nb201Cell, Nb201Network};

fn cifar() -> InputSpec {
    InputSpec::cifar10()
}

fn check_text(text: &str) -> Result<arch_space::lang::Analysis, String> {
    let program = parse(text).map_err(|e| e.to_string())?;
    program.check(&cifar()).map_err(|e| e.to_string())
}

#[test]
fn every_nb201_network_has_the_analytic_counts() {
    for (net, input) in [
        (Nb201Network::cifar10(), cifar()),
        (
            Nb201Network::cifar100(),
            InputSpec {
                classes: 100,
                ..cifar()
            },
        ),
        (
            Nb201Network::imagenet16_120(),
            InputSpec {
                channels: 3,
                height: 16,
                width: 16,
                classes: 120,
            },
        ),
    ] {
        let step = if net.classes == 10 { 1 } else { 97 };
        for code in nb201::space().enumerate().step_by(step) {
            let cell = Nb201Cell::from_ncode(&code).unwrap();
            let a = check(&net.module(&cell), &input).unwrap();
            assert_eq!(a.params, net.params(&cell), "{cell}");
            assert_eq!(a.flops, net.flops(&cell), "{cell}");
        }
    }
}

#[test]
fn printed_nb201_networks_parse_back_identically() {
    for index in [0, 6111, 15624, 1234] {
        let cell = Nb201Cell::from_index(index).unwrap();
        let module = Nb201Network::cifar10().module(&cell);
        let text = to_text(&module);
        let program = parse(&text).unwrap();
        assert_eq!(program.module, module, "{text}");
        assert_eq!(program.spans.len(), count_modules(&module));
    }
}

fn count_modules(m: &Module) -> usize {
    1 + match m {
        Module::Layer(_) => 0,
        Module::Sequential(items)
        | Module::Parallel {
            branches: items, ..
        } => items.iter().map(count_modules).sum(),
        Module::Graph(g) => g
            .nodes
            .iter()
            .flat_map(|n| &n.edges)
            .map(|e| count_modules(&e.module))
            .sum(),
    }
}

#[derive(serde::Deserialize)]
struct TorchFixture {
    torch: String,
    models: Vec<TorchModel>,
}

#[derive(serde::Deserialize)]
struct TorchModel {
    text: String,
    params: u64,
    output: Vec<usize>,
}

/// Plain `nn.Sequential` texts get PyTorch's exact parameter count and output shape (the
/// fixture is written by `scripts/torch_reference.py` with PyTorch itself).
#[test]
fn plain_pytorch_sequential_matches_pytorch() {
    let fixture: TorchFixture =
        serde_json::from_str(include_str!("fixtures/torch_sequential.json")).unwrap();
    assert!(!fixture.torch.is_empty());
    assert!(fixture.models.len() >= 6);
    for model in fixture.models {
        let program = parse(&model.text).unwrap_or_else(|e| panic!("{e}\n{}", model.text));
        let a = program
            .check(&cifar())
            .unwrap_or_else(|e| panic!("{e}\n{}", model.text));
        assert_eq!(a.params, model.params, "{}", model.text);
        assert_eq!(a.output, model.output, "{}", model.text);
        // The resolved model prints and parses back to itself.
        let again = parse(&to_text(&a.resolved)).unwrap();
        assert_eq!(again.module, a.resolved);
    }
}

#[test]
fn chat_replies_are_read_from_their_fenced_block() {
    let reply = "Sure! Here is a network.\n\n```python\nimport torch.nn as nn\nmodel = nn.Sequential(\n    nn.Conv2d(3, 8, 3),\n    nn.ReLU(),\n    nn.AdaptiveAvgPool2d(1),\n    nn.Flatten(),\n    nn.Linear(8, 10),\n)\n```\nIt has few parameters.";
    let a = check_text(reply).unwrap();
    assert_eq!(a.params, 3 * 8 * 9 + 8 + 8 * 10 + 10);
    assert_eq!(a.output, vec![10]);
}

#[test]
fn blocks_residual_concat_squeeze_excite_and_graph() {
    let text = "Sequential(
        Conv2d(3, 16, 3, padding=1),
        Residual(Conv2d(16, 16, 3, padding=1), BatchNorm2d(16), ReLU(), Conv2d(16, 16, 3, padding=1)),
        Residual(Conv2d(16, 32, 3, stride=2, padding=1), shortcut=Conv2d(16, 32, 1, stride=2)),
        Concat(Conv2d(32, 8, 1), Sequential(MaxPool2d(3, 1, 1), Conv2d(32, 8, 1))),
        SqueezeExcite(reduction=4),
        Graph(
            a = Conv2d(16, 16, 3, padding=1)(input),
            b = Sum(input, AvgPool2d(3, 1, 1)(a)),
            c = Concat(a, b),
        ),
        AdaptiveAvgPool2d(1), Flatten(), LazyLinear(10))";
    let a = check_text(text).unwrap();
    let conv = |i: u64, o: u64, k: u64| i * o * k * k + o;
    let expected = conv(3, 16, 3)
        + 2 * conv(16, 16, 3)
        + 32
        + conv(16, 32, 3)
        + conv(16, 32, 1)
        + 2 * conv(32, 8, 1)
        + (16 * 4 + 4)
        + (4 * 16 + 16)
        + conv(16, 16, 3)
        + 32 * 10
        + 10;
    assert_eq!(a.params, expected);
}

#[test]
fn shape_errors_name_the_layer_and_position() {
    let e = check_text("Sequential(\n  Conv2d(3, 512, 3),\n  BatchNorm2d(10),\n)").unwrap_err();
    assert!(e.starts_with("line 3, column 3:"), "{e}");
    assert!(
        e.contains("running_mean should contain 512 elements not 10"),
        "{e}"
    );

    let e = check_text("Sequential(Conv2d(3, 16, 3), Conv2d(32, 16, 3))").unwrap_err();
    assert!(
        e.contains("column 30") && e.contains("expects 32 input channels, got 16"),
        "{e}"
    );

    let e = check_text("Sequential(Conv2d(3, 8, 3, stride=2), MaxPool2d(2), MaxPool2d(2), MaxPool2d(2), MaxPool2d(2), MaxPool2d(2))").unwrap_err();
    assert!(e.contains("collapsed"), "{e}");

    let e = check_text("Sequential(MaxPool2d(8), MaxPool2d(4), Conv2d(3, 8, 3))").unwrap_err();
    assert!(e.contains("larger than the padded 1x1 input"), "{e}");

    let e =
        check_text("Sequential(Conv2d(3, 8, 3), AdaptiveAvgPool2d(1), Flatten(), Linear(8, 100))")
            .unwrap_err();
    assert!(
        e.contains("outputs [100]") && e.contains("needs [10]"),
        "{e}"
    );

    let e = check_text("Sequential(Conv2d(3, 8, 3), Linear(8, 10))").unwrap_err();
    assert!(e.contains("add `Flatten()`"), "{e}");

    let e = check_text("Sequential(Flatten(), BatchNorm2d(3))").unwrap_err();
    assert!(e.contains("move it before `Flatten()`"), "{e}");

    let e = check_text("Add(Conv2d(3, 8, 3), Conv2d(3, 8, 1))").unwrap_err();
    assert!(
        e.contains("cannot add") && e.contains("[8, 30, 30]") && e.contains("[8, 32, 32]"),
        "{e}"
    );

    let e = check_text("Sequential(Conv2d(3, 8, 3, groups=2), Flatten())").unwrap_err();
    assert!(e.contains("groups=2 must divide"), "{e}");
}

#[test]
fn syntax_errors_have_line_column_and_hint() {
    let err = |t: &str| parse(t).unwrap_err().to_string();
    let e = err("Sequential(\n  Conv2d(3, 16, 3),\n  Relu(),\n)");
    assert!(
        e.starts_with("line 3, column 3: unknown layer `Relu`")
            && e.contains("did you mean `ReLU`"),
        "{e}"
    );
    let e = err("Sequential(Conv2d(3, 16, 3, strides=2))");
    assert!(
        e.contains("no parameter `strides`") && e.contains("stride"),
        "{e}"
    );
    let e = err("Sequential(Conv2d(3, 16, 3 padding=1))");
    assert!(
        e.contains("column 28") && e.contains("expected `,` or `)`"),
        "{e}"
    );
    let e = err("Sequential(Conv2d(3, 16))");
    assert!(e.contains("missing required argument `kernel_size`"), "{e}");
    let e = err("Sequential(Linear(1, 2, True, 4))");
    assert!(e.contains("at most 3 positional"), "{e}");
    let e = err("Sequential(Conv2d(3, 16, 3)");
    assert!(e.contains("the end of the text"), "{e}");
    let e = err("Sequential(Conv2d(3, 16, 3)) Linear(1, 2)");
    assert!(e.contains("single expression"), "{e}");
    let e = err("Graph(a = Conv2d(3, 3, 1)(b))");
    assert!(e.contains("unknown node `b`"), "{e}");
    let e = err("Sequential(Conv2d(3, 16, 3)(x))");
    assert!(e.contains("only inside `Graph"), "{e}");
    let e = err("Sequential(Dropout(1.5))");
    assert!(e.contains("[0, 1]"), "{e}");
    let e = err("Sequential(Conv2d(3, 16, 3, stride=0))");
    assert!(e.contains("positive"), "{e}");
    let e = err("no code here");
    assert!(
        e.contains("expected `,`") || e.contains("end of the architecture"),
        "{e}"
    );
    let e = err("```\n```");
    assert!(e.contains("no architecture"), "{e}");
    let e = err("Sequential(Conv2d(3, 16, 3, padding_mode='reflect'))");
    assert!(e.contains("not supported"), "{e}");
}

#[test]
fn lazy_widths_are_resolved() {
    let a = check_text("Sequential(LazyConv2d(8, 3, padding='same'), LazyBatchNorm2d(), Flatten(), LazyLinear(10))").unwrap();
    let Module::Sequential(items) = &a.resolved else {
        panic!()
    };
    let Module::Layer(Layer::Conv2d(c)) = &items[0] else {
        panic!()
    };
    assert_eq!((c.in_channels, c.padding), (Some(3), Padding::Same));
    let Module::Layer(Layer::Linear(l)) = &items[3] else {
        panic!()
    };
    assert_eq!(l.in_features, Some(8 * 32 * 32));
    assert_eq!(a.params, 3 * 8 * 9 + 8 + 16 + 8 * 32 * 32 * 10 + 10);
    assert_eq!(a.flops, (3 * 8 * 9 + 8) * 32 * 32 + 8 * 32 * 32 * 10 + 10);
    // Outputs: conv, bn, flatten (8*32*32 each) and linear (10), 4 bytes each.
    assert_eq!(a.activation_bytes, (3 * 8 * 32 * 32 + 10) * 4);
}

#[test]
fn budgets_reject_large_models() {
    let a =
        check_text("Sequential(Conv2d(3, 64, 3), AdaptiveAvgPool2d(1), Flatten(), Linear(64, 10))")
            .unwrap();
    assert!(a.within(&Budget::default()).is_ok());
    let e = a
        .within(&Budget {
            max_params: Some(1000),
            max_flops: None,
        })
        .unwrap_err();
    assert_eq!(e.kind, CheckErrorKind::Budget);
    assert!(
        e.to_string()
            .contains("2442 parameters exceed the budget of 1000"),
        "{e}"
    );
    let e = a
        .within(&Budget {
            max_params: None,
            max_flops: Some(10),
        })
        .unwrap_err();
    assert!(e.to_string().contains("FLOPs"), "{e}");
}

#[test]
fn ir_serde_round_trip() {
    let cell = Nb201Cell::from_index(6111).unwrap();
    let module = Nb201Network::cifar10().module(&cell);
    let json = serde_json::to_string(&module).unwrap();
    let back: Module = serde_json::from_str(&json).unwrap();
    assert_eq!(back, module);
}
