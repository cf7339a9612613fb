//! The exported grammars: every text of the generation grammar is a valid network for its
//! input, and llguidance (the engine that constrains decoding with them) reads both grammars
//! as `Grammar` describes them.

use std::collections::BTreeMap;

use arch_space::lang::{
    extract_code, generation_grammar, language_grammar, parse, Grammar, InputSpec, Item, Rule,
    Skip, Terminal,
};
use llm_local::constraint::accepts;
use llm_local::Constraint;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod markdown;

const DOC: &str = include_str!("../../../docs/ARCH_LANGUAGE.md");

fn mnist() -> InputSpec {
    InputSpec {
        channels: 1,
        height: 28,
        width: 28,
        classes: 10,
    }
}

fn wide() -> InputSpec {
    InputSpec {
        channels: 3,
        height: 64,
        width: 48,
        classes: 100,
    }
}

/// `count` texts of `grammar`, from a seeded generator.
fn samples(grammar: &Grammar, seed: u64, count: usize) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            grammar
                .sample(8, &mut |n| rng.random_range(0..n))
                .expect("the grammar is valid")
        })
        .collect()
}

fn lark_accepts(lark: &str, text: &str) -> bool {
    accepts(&Constraint::Lark(lark.to_string()), text).expect("the grammar compiles")
}

/// The inputs the generation grammar is tested for, with how many networks to draw.
fn inputs() -> [(InputSpec, usize); 3] {
    [(InputSpec::cifar10(), 3000), (mnist(), 500), (wide(), 500)]
}

/// Asserts that llguidance accepts every one of `texts` under `grammar`, whose texts must
/// delimit themselves (a reply's fences do). Compiling a grammar takes llguidance
/// milliseconds and reading a byte microseconds, so the texts go 100 at a time, one after
/// the other, under `start: reply+` with `reply` the grammar's own start.
fn assert_all_accepted(grammar: &Grammar, texts: &[String]) {
    let mut many = grammar.clone();
    for rule in &mut many.rules {
        if rule.name == "start" {
            rule.name = "reply".into();
        }
    }
    many.rules.push(Rule {
        name: "start".into(),
        alternatives: vec![vec![Item::Repeat {
            items: vec![Item::Rule("reply".into())],
            min: 1,
            max: None,
        }]],
    });
    let lark = many.to_lark();
    for chunk in texts.chunks(100) {
        if !lark_accepts(&lark, &chunk.concat()) {
            let single = grammar.to_lark();
            let rejected = chunk.iter().find(|t| !lark_accepts(&single, t));
            panic!("llguidance rejects {rejected:?}");
        }
    }
}

/// Asserts that a generated reply is laid out as the generation grammar promises: no
/// whitespace before a `(` or inside a line but single spaces after commas and around
/// `model =`, lines indented by at most 16 spaces, no trailing blanks, no blank line but the
/// one after the imports, the closing fence on its own line.
fn assert_conventional_layout(text: &str) {
    assert!(
        text.starts_with("```python\n") && text.ends_with("\n```"),
        "{text}"
    );
    let code = &text["```python\n".len()..text.len() - "\n```".len()];
    let imports = |l: &&str| l.starts_with("import ") || l.starts_with("from ") || l.is_empty();
    assert!(
        !code
            .lines()
            .skip_while(imports)
            .any(|l| l.trim().is_empty()),
        "a blank line: {text}"
    );
    for line in code.lines() {
        let content = line.trim_start_matches(' ');
        assert!(
            line.len() - content.len() <= 16,
            "indented too far: {line:?}"
        );
        assert!(
            !content.contains("  ") && !content.contains('\t'),
            "{line:?}"
        );
        assert!(!content.ends_with(' '), "a trailing blank: {line:?}");
        assert!(!content.starts_with('('), "a call split: {line:?}");
        assert!(
            !content.contains(" (") && !content.contains(" ,"),
            "{line:?}"
        );
    }
}

#[test]
fn every_generated_network_parses_checks_and_scores_every_class() {
    for (input, count) in inputs() {
        let grammar = generation_grammar(&input).unwrap();
        let longest = grammar.max_len().expect("a bounded grammar");
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for text in samples(&grammar, input.height as u64, count) {
            assert!(text.len() <= longest, "{} > {longest}: {text}", text.len());
            assert_conventional_layout(&text);
            let program = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let analysis = program
                .check(&input)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(analysis.output, [input.classes]);
            let compact: String = text.split_whitespace().collect();
            for feature in [
                "Residual(",
                "groups=",
                "shortcut=nn.Sequential(",
                "Concat(",
                "SqueezeExcite(",
                "MaxPool2d(3",
                "stride=2",
                "'same'",
                "model=",
                "importtorch",
            ] {
                if compact.contains(feature) {
                    *seen.entry(feature).or_default() += 1;
                }
            }
        }
        assert_eq!(seen.len(), 10, "{input:?}: {seen:?}");
    }
}

#[test]
fn llguidance_accepts_the_generated_networks_and_rejects_invalid_ones() {
    for (input, count) in inputs() {
        let grammar = generation_grammar(&input).unwrap();
        assert_all_accepted(&grammar, &samples(&grammar, input.height as u64, count));
    }
    let lark = generation_grammar(&InputSpec::cifar10()).unwrap().to_lark();
    let written = "```python
import torch.nn as nn

model = nn.Sequential(
    nn.LazyConv2d(32, kernel_size=3, padding=1),
    nn.LazyBatchNorm2d(),
    nn.ReLU(inplace=True),
    nn.MaxPool2d(2),
    nn.Residual(
        nn.LazyConv2d(64, 3, stride=2, padding=1, bias=False),
        nn.LazyBatchNorm2d(),
        nn.ReLU(),
        nn.LazyConv2d(64, 3, padding=1, bias=False),
        nn.LazyBatchNorm2d(),
        shortcut=nn.LazyConv2d(64, 1, stride=2),
    ),
    nn.AdaptiveAvgPool2d((1, 1)),
    nn.Flatten(),
    nn.Dropout(0.2),
    nn.LazyLinear(10),
)
```";
    assert!(lark_accepts(&lark, written));
    parse(written)
        .unwrap()
        .check(&InputSpec::cifar10())
        .unwrap();
    let net = |body: &str| format!("```python\nSequential({body})\n```");
    let head = "AdaptiveAvgPool2d(1), Flatten(), LazyLinear(10)";
    assert!(lark_accepts(&lark, &net(head)));
    // Layers may be packed on a line, one to a line, or both, with or without a trailing
    // comma, and the arguments with or without a space after their commas.
    for body in [
        "LazyConv2d(16,3,padding=1),ReLU(),AdaptiveAvgPool2d(1),Flatten(),LazyLinear(10)",
        "\n    LazyConv2d(16, 3, padding=1), ReLU(),\n    AdaptiveAvgPool2d(1),\n    Flatten(),\n    LazyLinear(10),\n",
        "\nLazyConv2d(16, 3, padding=1),\n                ReLU(),\nAdaptiveAvgPool2d(1), Flatten(), LazyLinear(10)\n",
        "Concat(\n        Sequential(LazyConv2d(8, 1), ReLU()),\n        LazyConv2d(8, 3, padding=1),\n    ), AdaptiveAvgPool2d(1), Flatten(), LazyLinear(10),",
    ] {
        assert!(lark_accepts(&lark, &net(body)), "{body}");
        parse(&net(body)).unwrap().check(&InputSpec::cifar10()).unwrap();
    }
    // The closing fence has a line of its own (`parse` would read it after the `)` too).
    let tight = format!("```python\nSequential({head})```");
    assert!(!lark_accepts(&lark, &tight));
    let layers = |n: usize| net(&format!("{}{head}", "LazyBatchNorm2d(), ".repeat(n)));
    assert!(lark_accepts(&lark, &layers(30)));
    for (why, text) in [
        ("a 31st layer before the head", layers(31)),
        (
            "a name split from its (",
            net(&format!("ReLU6\n(\n    ), {head}")),
        ),
        (
            "a line break in an empty call",
            net(&format!("ReLU(\n), {head}")),
        ),
        ("a blank before a (", net(&format!("ReLU (), {head}"))),
        (
            "a line break in an argument list",
            net(&format!("LazyConv2d(16,\n3), {head}")),
        ),
        (
            "two blanks after a comma",
            net(&format!("LazyConv2d(16,  3, padding=1), {head}")),
        ),
        ("a blank before a comma", net(&format!("ReLU() , {head}"))),
        (
            "a blank after (",
            net(&format!("ReLU( inplace=True), {head}")),
        ),
        (
            "blanks around =",
            net(&format!("ReLU(inplace = True), {head}")),
        ),
        (
            "a trailing comma in a call",
            net(&format!("LazyConv2d(16, 3, padding=1,), {head}")),
        ),
        (
            "a blank line between layers",
            net(&format!("ReLU(),\n\n{head}")),
        ),
        (
            "a blank and a line break",
            net(&format!("ReLU(), \n{head}")),
        ),
        (
            "17 spaces of indentation",
            net(&format!("ReLU(),\n{}{head}", " ".repeat(17))),
        ),
        ("a tab", net(&format!("ReLU(),\n\t{head}"))),
        ("a comment", net(&format!("ReLU(),  # act\n{head}"))),
        ("a blank before the first layer", net(&format!(" {head}"))),
    ] {
        assert!(!lark_accepts(&lark, &text), "{why}: {text}");
    }
    for (why, text) in [
        ("eager widths", net(&format!("Conv2d(3, 16, 3, padding=1), {head}"))),
        (
            "six halvings of 32x32",
            net(&format!("{} {head}", "MaxPool2d(2), ".repeat(6))),
        ),
        (
            "a 5x5 kernel on a 4x4 map",
            net(&format!(
                "{} LazyConv2d(8, 5, padding=2), {head}",
                "MaxPool2d(2), ".repeat(3)
            )),
        ),
        ("a padding that changes the size", net(&format!("LazyConv2d(8, 3), {head}"))),
        (
            "mismatched residual widths",
            net(&format!("Residual(LazyConv2d(8, 3, padding=1), ReLU(), LazyConv2d(16, 3, padding=1), shortcut=LazyConv2d(32, 1)), {head}")),
        ),
        ("100 classes", net("AdaptiveAvgPool2d(1), Flatten(), LazyLinear(100)")),
        ("no classifier", net("AdaptiveAvgPool2d(1), Flatten()")),
        ("no fence", format!("Sequential({head})")),
        ("an unfinished call", "```python\nSequential(LazyConv2d(16".into()),
        ("endless blanks", net(&format!("{}{head}", " ".repeat(9)))),
        ("blank lines", net(&format!("\n\n\n\n{head}"))),
    ] {
        assert!(!lark_accepts(&lark, &text), "{why}: {text}");
    }
}

/// The closed loop's starting architecture (`search_loop::closed_loop::STARTING_ARCHITECTURE`,
/// copied: this crate cannot depend on that one) is a reply of the generation grammar.
#[test]
fn the_generation_grammar_accepts_the_closed_loops_starting_architecture() {
    const STARTING_ARCHITECTURE: &str = "nn.Sequential(
    nn.LazyConv2d(32, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(inplace=True),
    nn.MaxPool2d(2),
    nn.LazyConv2d(64, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(inplace=True),
    nn.MaxPool2d(2),
    nn.LazyConv2d(128, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(inplace=True),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.LazyLinear(10),
)";
    let lark = generation_grammar(&InputSpec::cifar10()).unwrap().to_lark();
    let reply = format!("```python\n{STARTING_ARCHITECTURE}\n```");
    assert!(lark_accepts(&lark, &reply), "{reply}");
    assert_conventional_layout(&reply);
    // As a model would write it, one layer to a line after the imports.
    let written = "```python
import torch.nn as nn

model = nn.Sequential(
    nn.LazyConv2d(32, 3, padding=1),
    nn.LazyBatchNorm2d(),
    nn.ReLU(inplace=True),
    nn.MaxPool2d(2),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.LazyLinear(10),
)
```";
    assert!(lark_accepts(&lark, written));
    assert_conventional_layout(written);
}

#[test]
fn llguidance_accepts_every_documented_example_under_the_language_grammar() {
    let lark = language_grammar().to_lark();
    let mut examples = 0;
    for block in markdown::blocks(DOC) {
        let code = match block.tag.as_str() {
            "arch" => block.body.as_str(),
            "arch-reply" => extract_code(&block.body),
            _ => continue,
        };
        assert!(lark_accepts(&lark, code), "line {}:\n{code}", block.line);
        examples += 1;
    }
    assert!(examples >= 6, "{examples}");
    // Whitespace and comments before and after the program, as `parse` reads them.
    let padded = "\n  # a model\nimport torch.nn as nn\nnet = nn.ReLU()  # done\n\n";
    assert!(lark_accepts(&lark, padded));
    parse(padded).unwrap();
    for text in samples(&language_grammar(), 5, 300) {
        assert!(lark_accepts(&lark, &text), "{text}");
    }
    for text in [
        "Conv2d(3, 16",
        "Sequential(Conv2d(3, 16, 3 padding=1))",
        "Sequential(Conv2d(3, 16, 3); ReLU())",
        "Sequential(Relu())",
        "Sequential(Conv2d(3, 16, 3, strides=2))",
        "Sequential(Conv2d(3, 16, 3)) Linear(16, 10)",
        "Sequential(Conv2d(3, 16, 3)(x))",
        "Residual(Conv2d(16, 16, 3, padding=1), stride=2)",
        "Sequential(Conv2d(3, 16, 3), Sum(Conv2d(16, 16, 1)))",
    ] {
        assert!(!lark_accepts(&lark, text), "{text}");
        assert!(parse(text).is_err(), "{text}");
    }
}

#[test]
fn llguidance_reads_integer_ranges_as_their_values() {
    for (min, max) in [(0, 9), (1, 512), (7, 7), (19, 31), (95, 1005)] {
        let grammar = Grammar {
            rules: vec![Rule {
                name: "start".into(),
                alternatives: vec![vec![Item::Terminal(Terminal::Integer { min, max })]],
            }],
            skip: Skip::Free,
        };
        let lark = grammar.to_lark();
        for value in
            (0..1100u64).filter(|v| v % 7 == 0 || v.abs_diff(min) < 3 || v.abs_diff(max) < 3)
        {
            let expected = (min..=max).contains(&value);
            assert_eq!(
                lark_accepts(&lark, &value.to_string()),
                expected,
                "{min}..={max}: {value}"
            );
        }
        assert!(!lark_accepts(&lark, &format!("0{max}")), "leading zero");
    }
}

/// The excerpt of the generation grammar in the documentation is its real rendering.
#[test]
fn the_documented_lark_excerpt_is_the_real_one() {
    let lark = generation_grammar(&InputSpec::cifar10()).unwrap().to_lark();
    let excerpt = markdown::blocks(DOC)
        .into_iter()
        .find(|b| b.tag == "lark")
        .expect("a ```lark block");
    for line in excerpt
        .body
        .lines()
        .filter(|l| !l.trim().is_empty() && *l != "...")
    {
        assert!(
            lark.lines().any(|l| l == line),
            "not in the grammar: {line}"
        );
    }
}
