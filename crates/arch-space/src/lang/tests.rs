//! Regression tests of fixed language bugs.

use super::*;

fn check_text(text: &str) -> Result<Analysis, String> {
    let program = parse(text).map_err(|e| e.to_string())?;
    program
        .check(&InputSpec::cifar10())
        .map_err(|e| e.to_string())
}

/// As in Python, a parenthesized expression is the expression itself: `(3)` is `3`, not a
/// 1-tuple; `(3,)` stays a tuple.
#[test]
fn parentheses_group_without_making_a_tuple() {
    let plain = "Sequential(Conv2d(3, 16, 3), AdaptiveAvgPool2d(1), Flatten(), Linear(16, 10))";
    let expected = parse(plain).unwrap().module;
    for text in [
        "Sequential(Conv2d(3, 16, (3)), AdaptiveAvgPool2d((1)), Flatten(), Linear(16, 10))",
        "model = (nn.Sequential(nn.Conv2d(3, 16, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)))",
        "((Sequential(Conv2d(3, 16, ((3))), AdaptiveAvgPool2d(1), Flatten(), Linear(16, 10))))",
    ] {
        assert_eq!(parse(text).unwrap().module, expected, "{text}");
    }
    let e = parse("Sequential(Conv2d(3, 16, (3,)))")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "line 1, column 26: `Conv2d`: `kernel_size` must have 2 entries"
    );
    assert!(check_text(
        "Sequential(Conv2d(3, 16, (3, 3)), AdaptiveAvgPool2d(1), Flatten(), Linear(16, 10))"
    )
    .is_ok());
}

#[test]
fn a_repeated_shortcut_is_an_error() {
    let e = parse(
        "Residual(Conv2d(3, 3, 3, padding=1), shortcut=Identity(), shortcut=Conv2d(3, 3, 1))",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 1, column 59: `Residual` got `shortcut` twice"
    );
}

/// A graph node's failing sum names the node once and points at the node's first edge.
#[test]
fn graph_join_errors_name_the_node_once() {
    let e = check_text("Graph(\n    a = Conv2d(3, 8, 1)(input),\n    b = Sum(input, a),\n)")
        .unwrap_err();
    assert_eq!(
        e,
        "line 3, column 13: node `b`: cannot add: edge 0 gives [3, 32, 32] but edge 1 gives \
         [8, 32, 32]; a sum needs equal shapes (use a 1x1 Conv2d or a pooling to match them)"
    );
}

#[test]
fn sum_outside_a_graph_gets_a_hint() {
    let e = parse("Sequential(Conv2d(3, 16, 3), Sum(Conv2d(16, 16, 1)))")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("only inside `Graph(...)`") && e.contains("`Add(...)`"),
        "{e}"
    );
}

#[test]
fn one_line_fences_hold_code() {
    let reply = "Try ```Sequential(Conv2d(3, 16, 3), AdaptiveAvgPool2d(1), Flatten(), Linear(16, 10))``` instead.";
    assert_eq!(
        extract_code(reply),
        "Sequential(Conv2d(3, 16, 3), AdaptiveAvgPool2d(1), Flatten(), Linear(16, 10))"
    );
    assert!(check_text(reply).is_ok());
    // Fenced blocks with an info string still start on the next line.
    assert_eq!(extract_code("```python\nReLU()\n```"), "ReLU()\n");
    assert_eq!(extract_code("```\n```"), "");
}

/// IR built in code or deserialized is checked without panicking, even where the text binder
/// would have rejected it.
#[test]
fn degenerate_ir_is_an_error_not_a_panic() {
    let input = InputSpec::cifar10();
    let e = check(&conv(3, 8, 3, 0, 1), &input).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`Conv2d(3, 8, 3, stride=0, padding=1, bias=False)`: `stride` must be positive"
    );
    for module in [
        grouped_conv(3, 3, 3, 1, 1, 0),
        conv(3, 8, 0, 1, 0),
        max_pool(2, 0, 0),
        avg_pool(0, 1, 0, true),
        Module::Layer(Layer::AdaptiveAvgPool2d {
            output_size: [0, 1],
        }),
        Module::Layer(Layer::SqueezeExcitation(SqueezeExcitation {
            input_channels: None,
            squeeze: Squeeze::Reduction(0),
        })),
    ] {
        let e = check(&module, &input).unwrap_err();
        assert!(e.message.ends_with("must be positive"), "{e}");
    }
    let empty = Module::sequential([
        Module::Parallel {
            join: Join::Sum,
            branches: vec![],
        },
        Module::Layer(Layer::Linear(Linear {
            in_features: None,
            out_features: 10,
            bias: true,
        })),
    ]);
    let e = check(&empty, &input).unwrap_err();
    assert_eq!(e.message, "a join needs at least one branch");
    let json = r#"{"graph":{"nodes":[{"name":"a","join":"sum","edges":[]}]}}"#;
    let graph: Module = serde_json::from_str(json).unwrap();
    let e = check(&graph, &input).unwrap_err();
    assert_eq!(e.message, "node `a`: a join needs at least one edge");
}
