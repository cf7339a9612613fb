//! The whole language as a grammar, built from the parser's own tables.

use super::super::bind::{BLOCKS, JOINS, PREFIXES};
use super::super::layers::LAYERS;
use super::{choice, lit, opt, repeat, rule, Grammar, Item, Rule, Skip, Terminal};

/// The architecture language as `docs/ARCH_LANGUAGE.md` specifies it ("Grammar"): optional
/// `import`/`from` lines, an optional `NAME =`, then one module: a layer of the parser's
/// layer table or a block (`Sequential`, `Add`, `Concat`, `Residual` with `shortcut=`,
/// `Graph` of named nodes joined by `Sum`/`Concat`), every name with or without a module
/// prefix (`nn.`, `torch.nn.`, ...), any whitespace and `#` comments, trailing commas.
///
/// The layer and block names, the prefixes, the joins and each layer's keyword names come
/// from the tables [`parse`](super::super::parse) binds with, so the two cannot drift. The
/// grammar is syntactic beyond that: argument values are numbers, strings, `True`, `False`,
/// `None` and (nested) tuples, whatever the parameter; the parser still rejects a value of
/// the wrong kind or range, a missing or repeated argument, and an edge from an unknown node.
/// (It also drops any line that starts with `import ` or `from `, wherever it is.)
pub fn language_grammar() -> Grammar {
    let mut modules = Vec::new();
    let mut rules = Vec::new();
    for (name, params) in LAYERS {
        let rule_name = format!("layer_{}", name.to_lowercase());
        let args = if params.is_empty() {
            Vec::new()
        } else {
            let arg_name = format!("args_{}", name.to_lowercase());
            let keyword = Item::Terminal(Terminal::Word {
                prefixes: Vec::new(),
                words: params.iter().map(|p| p.to_string()).collect(),
            });
            rules.push(Rule {
                name: arg_name.clone(),
                alternatives: vec![vec![keyword, lit("="), rule("value")], vec![rule("value")]],
            });
            vec![opt(comma_list(rule(&arg_name)))]
        };
        rules.push(call_rule(&rule_name, name, args));
        modules.push(vec![rule(&rule_name)]);
    }
    for name in BLOCKS {
        let rule_name = format!("block_{}", name.to_lowercase());
        let args = match *name {
            "Sequential" => vec![opt(comma_list(rule("module")))],
            "Residual" => vec![
                rule("module"),
                repeat(vec![lit(","), rule("module")], 0, None),
                opt(vec![lit(","), lit("shortcut"), lit("="), rule("module")]),
                opt(vec![lit(",")]),
            ],
            "Graph" => comma_list(rule("node")),
            _ => comma_list(rule("module")),
        };
        rules.push(call_rule(&rule_name, name, args));
        modules.push(vec![rule(&rule_name)]);
    }
    let name = || Item::Terminal(Terminal::Name);
    let mut grammar = vec![
        Rule {
            name: "start".into(),
            alternatives: vec![vec![
                repeat(vec![Item::Terminal(Terminal::ImportLine)], 0, None),
                opt(vec![name(), lit("=")]),
                rule("module"),
                opt(vec![Item::Terminal(Terminal::Blank)]),
            ]],
        },
        Rule {
            name: "module".into(),
            alternatives: vec![
                vec![rule("bare_module")],
                vec![lit("("), rule("module"), lit(")")],
            ],
        },
        Rule {
            name: "bare_module".into(),
            alternatives: modules,
        },
        Rule {
            name: "node".into(),
            alternatives: vec![vec![name(), lit("="), rule("node_value")]],
        },
        Rule {
            name: "node_value".into(),
            alternatives: vec![
                vec![rule("join")],
                vec![rule("edge_core")],
                vec![lit("("), rule("node_value"), lit(")")],
            ],
        },
        Rule {
            name: "join".into(),
            alternatives: vec![[
                vec![prefixed(JOINS), lit("(")],
                comma_list(rule("edge")),
                vec![lit(")")],
            ]
            .concat()],
        },
        Rule {
            name: "edge".into(),
            alternatives: vec![
                vec![rule("edge_core")],
                vec![lit("("), rule("edge"), lit(")")],
            ],
        },
        Rule {
            name: "edge_core".into(),
            alternatives: vec![
                vec![name()],
                vec![rule("bare_module"), lit("("), name(), lit(")")],
            ],
        },
        Rule {
            name: "value".into(),
            alternatives: vec![
                vec![Item::Terminal(Terminal::Number)],
                vec![Item::Terminal(Terminal::Str)],
                vec![choice(vec![
                    vec![lit("True")],
                    vec![lit("False")],
                    vec![lit("None")],
                ])],
                vec![lit("("), lit(")")],
                vec![lit("("), rule("value"), lit(")")],
                vec![
                    lit("("),
                    rule("value"),
                    lit(","),
                    opt(comma_list(rule("value"))),
                    lit(")"),
                ],
                vec![lit("["), opt(comma_list(rule("value"))), lit("]")],
            ],
        },
    ];
    grammar.extend(rules);
    Grammar {
        rules: grammar,
        skip: Skip::Free,
    }
}

/// A layer or block name, with or without a module prefix, as one lexeme.
fn prefixed(names: &[&str]) -> Item {
    Item::Terminal(Terminal::Word {
        prefixes: PREFIXES.iter().map(|p| p.to_string()).collect(),
        words: names.iter().map(|n| n.to_string()).collect(),
    })
}

/// `rule_name: NAME "(" args ")"`.
fn call_rule(rule_name: &str, name: &str, args: Vec<Item>) -> Rule {
    Rule {
        name: rule_name.into(),
        alternatives: vec![[vec![prefixed(&[name]), lit("(")], args, vec![lit(")")]].concat()],
    }
}

/// `item {"," item} [","]`.
fn comma_list(item: Item) -> Vec<Item> {
    vec![
        item.clone(),
        repeat(vec![lit(","), item], 0, None),
        opt(vec![lit(",")]),
    ]
}
