//! The grammars against the parser's own tables and syntax.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::super::bind::BLOCKS;
use super::super::layers::LAYERS;
use super::super::{parse, syntax, InputSpec};
use super::*;

fn words(grammar: &Grammar) -> Vec<String> {
    fn walk(items: &[Item], out: &mut Vec<String>) {
        for item in items {
            match item {
                Item::Terminal(Terminal::Word { words, .. }) => out.extend(words.iter().cloned()),
                Item::Choice(alternatives) => alternatives.iter().for_each(|a| walk(a, out)),
                Item::Repeat { items, .. } => walk(items, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    for rule in &grammar.rules {
        rule.alternatives.iter().for_each(|a| walk(a, &mut out));
    }
    out
}

#[test]
fn the_language_grammar_names_every_layer_and_block_and_samples_parse_syntactically() {
    let grammar = language_grammar();
    grammar.validate().unwrap();
    let names = words(&grammar);
    for (layer, params) in LAYERS {
        assert!(names.iter().any(|n| n == layer), "{layer}");
        for p in *params {
            assert!(names.iter().any(|n| n == p), "{layer}: {p}");
        }
    }
    for block in BLOCKS {
        assert!(names.iter().any(|n| n == block), "{block}");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut parsed = 0;
    for _ in 0..2000 {
        let text = grammar.sample(6, &mut |n| rng.random_range(0..n)).unwrap();
        if let Err(e) = syntax::parse_program(&text) {
            panic!("{e}\n{text}");
        }
        // Names and keywords come from the tables: only values, argument counts and graph
        // node references can be wrong.
        match parse(&text) {
            Ok(_) => parsed += 1,
            Err(e) => {
                let m = e.message;
                assert!(
                    !m.starts_with("unknown layer")
                        && !m.contains("has no parameter")
                        && !m.contains("takes modules"),
                    "{m}\n{text}"
                );
            }
        }
    }
    assert!(parsed > 0, "no sample parsed");
}

#[test]
fn the_generation_grammar_uses_only_known_names_and_is_finite() {
    let grammar = generation_grammar(&InputSpec::cifar10()).unwrap();
    grammar.validate().unwrap();
    for word in words(&grammar) {
        let known = LAYERS.iter().any(|(l, _)| *l == word) || BLOCKS.contains(&word.as_str());
        assert!(known, "{word}");
    }
    // Rules per size the input can be reduced to, one per number of layers left.
    let mut feats: Vec<&str> = grammar
        .rules
        .iter()
        .filter_map(|r| Some(r.name.strip_prefix("feat_")?.rsplit_once('_')?.0))
        .collect();
    feats.dedup();
    feats.sort();
    feats.dedup();
    assert_eq!(feats.len(), 6, "{feats:?}");
    for size in ["32x32", "16x16", "8x8", "4x4", "2x2", "1x1"] {
        assert!(feats.contains(&size), "{size}");
    }
    // No unlimited repetition and no rule that refers to itself, directly or not: the
    // grammar derives finitely many texts.
    fn references(items: &[Item], out: &mut Vec<String>) {
        for item in items {
            match item {
                Item::Rule(name) => out.push(name.clone()),
                Item::Repeat { max: None, .. } => panic!("an unlimited repetition"),
                Item::Repeat { items, .. } => references(items, out),
                Item::Choice(a) => a.iter().for_each(|a| references(a, out)),
                Item::Literal(_) | Item::Terminal(_) => {}
            }
        }
    }
    fn visit(grammar: &Grammar, name: &str, path: &mut Vec<String>, done: &mut Vec<String>) {
        assert!(!path.iter().any(|p| p == name), "a cycle: {path:?} {name}");
        if done.iter().any(|d| d == name) {
            return;
        }
        path.push(name.to_string());
        let mut refs = Vec::new();
        for alternative in &grammar.rule(name).unwrap().alternatives {
            references(alternative, &mut refs);
        }
        for r in refs {
            visit(grammar, &r, path, done);
        }
        done.extend(path.pop());
    }
    visit(&grammar, "start", &mut Vec::new(), &mut Vec::new());
    // The layout is in the rules: no skip, so no whitespace but what they write.
    assert_eq!(grammar.skip, Skip::None);
    assert!(grammar.max_len().is_some());
}

#[test]
fn max_len_adds_up_the_structure() {
    let grammar = |skip, rules: Vec<(&str, Vec<Vec<Item>>)>| Grammar {
        rules: rules
            .into_iter()
            .map(|(name, alternatives)| Rule {
                name: name.into(),
                alternatives,
            })
            .collect(),
        skip,
    };
    let int = |max| Item::Terminal(Terminal::Integer { min: 1, max });
    let g = grammar(
        Skip::None,
        vec![
            (
                "start",
                vec![vec![
                    lit("ab"),
                    repeat(vec![rule("x"), lit(",")], 0, Some(3)),
                    opt(vec![Item::Terminal(Terminal::Break { indent: 4 })]),
                ]],
            ),
            // At most 4 bytes: `1000`, or `x` and a fraction of one digit (`x0.5`).
            (
                "x",
                vec![
                    vec![int(1000)],
                    vec![lit("x"), Item::Terminal(Terminal::Fraction { digits: 1 })],
                    vec![choice(vec![vec![lit("no")], vec![]])],
                ],
            ),
        ],
    );
    g.validate().unwrap();
    // `ab`, 3 times `x0.5,`, a line break and 4 spaces.
    assert_eq!(g.max_len(), Some(2 + 3 * (4 + 1) + 5));
    // A bounded skip: up to 2 blanks, or 1 line break indented by 3, between two lexemes.
    let bounded = Grammar {
        skip: Skip::Bounded {
            spaces: 2,
            lines: 1,
            indent: 3,
        },
        ..grammar(Skip::None, vec![("start", vec![vec![lit("a"), lit("bc")]])])
    };
    assert_eq!(bounded.max_len(), Some(3 + (2 + 4)));
    let words = grammar(
        Skip::None,
        vec![(
            "start",
            vec![vec![Item::Terminal(Terminal::Word {
                prefixes: vec!["nn.".into(), "torch.nn.".into()],
                words: vec!["ReLU".into(), "Conv2d".into()],
            })]],
        )],
    );
    assert_eq!(words.max_len(), Some(9 + 6));
    // Unbounded: a free skip, an unlimited repetition, a name, a rule that refers to itself.
    let free = grammar(Skip::Free, vec![("start", vec![vec![lit("a")]])]);
    assert_eq!(free.max_len(), None);
    let unlimited = grammar(
        Skip::None,
        vec![("start", vec![vec![repeat(vec![lit("a")], 1, None)]])],
    );
    assert_eq!(unlimited.max_len(), None);
    let name = grammar(
        Skip::None,
        vec![("start", vec![vec![Item::Terminal(Terminal::Name)]])],
    );
    assert_eq!(name.max_len(), None);
    let nested = grammar(
        Skip::None,
        vec![(
            "start",
            vec![vec![lit("("), rule("start"), lit(")")], vec![lit("x")]],
        )],
    );
    assert_eq!(nested.max_len(), None);
    assert_eq!(language_grammar().max_len(), None);
}

#[test]
fn the_layer_budget_bounds_every_reply() {
    let cifar = InputSpec::cifar10();
    let longest = generation_grammar(&cifar).unwrap().max_len().unwrap();
    println!("the longest CIFAR-10 reply: {longest} bytes");
    assert!((2500..=3000).contains(&longest), "{longest}");
    // Each layer of the budget adds at most one layer's longest text.
    let fewer = GenerationOptions {
        max_layers: 10,
        ..GenerationOptions::default()
    };
    let shorter = generation_grammar_with(&cifar, &fewer)
        .unwrap()
        .max_len()
        .unwrap();
    assert!(shorter < longest - 20 * 70, "{shorter} {longest}");
    let none = GenerationOptions {
        max_layers: 0,
        ..GenerationOptions::default()
    };
    let head_only = generation_grammar_with(&cifar, &none).unwrap();
    head_only.validate().unwrap();
    assert!(head_only.max_len().unwrap() < 600);
}

#[test]
fn generation_rejects_inputs_no_network_serves() {
    for input in [
        InputSpec {
            classes: 0,
            ..InputSpec::cifar10()
        },
        InputSpec {
            height: 0,
            ..InputSpec::cifar10()
        },
    ] {
        assert!(generation_grammar(&input).is_err());
    }
    let options = GenerationOptions {
        channels: Vec::new(),
        ..GenerationOptions::default()
    };
    assert!(generation_grammar_with(&InputSpec::cifar10(), &options).is_err());
}

#[test]
fn integer_ranges_print_as_digit_classes() {
    let regex = |min, max| lark::terminal_regex(&Terminal::Integer { min, max });
    assert_eq!(
        regex(1, 512),
        "(?:[1-9]|[1-9][0-9]|[1-4][0-9]{2}|50[0-9]|51[0-2])"
    );
    assert_eq!(regex(7, 7), "(?:7)");
    assert_eq!(regex(0, 10), "(?:[0-9]|10)");
    assert_eq!(regex(19, 31), "(?:19|2[0-9]|3[0-1])");
}

#[test]
fn validation_names_the_problem() {
    let grammar = |alternatives: Vec<Vec<Item>>| Grammar {
        rules: vec![Rule {
            name: "start".into(),
            alternatives,
        }],
        skip: Skip::Free,
    };
    let message = |g: Grammar| g.validate().unwrap_err().message;
    assert_eq!(
        message(grammar(vec![vec![rule("missing")]])),
        "rule `start` refers to `missing`, which is not defined"
    );
    assert_eq!(
        message(grammar(vec![vec![lit("("), rule("start"), lit(")")]])),
        "rule `start` derives no finite text"
    );
    assert_eq!(
        message(Grammar {
            rules: Vec::new(),
            skip: Skip::Free
        }),
        "the grammar has no `start` rule"
    );
    let ok = grammar(vec![
        vec![lit("("), rule("start"), lit(")")],
        vec![lit("x")],
    ]);
    let mut always_first = |_| 0;
    // Past the depth limit, the walk takes the alternative that ends soonest.
    assert_eq!(ok.sample(3, &mut always_first).unwrap(), "(((x)))");
}
