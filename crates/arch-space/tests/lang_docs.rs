//! `docs/ARCH_LANGUAGE.md` is checked against the implementation.
//!
//! Conventions for the fenced code blocks of the document (the first word of the info string
//! is the tag; further `key=value` words are attributes):
//!
//! * ```` ```arch ````: a complete architecture. It must parse and pass `check` for CIFAR-10
//!   input (`InputSpec::cifar10()`: 3x32x32, 10 classes). There must be at least 5.
//! * ```` ```arch-reply ````: a whole chat reply (usually fenced with four backticks because it
//!   holds a fenced block itself); it must parse and check like an `arch` block.
//! * ```` ```arch-error ````: an input that must fail, in parsing or in checking for CIFAR-10.
//!   The attributes `max_params=N` and `max_flops=N` check the analysis against a
//!   `Budget` as well, for budget errors.
//! * ```` ```text ```` right after an `arch-error` block (only blank lines between): the exact
//!   error message, as `Display` prints it (for a parsed program, `Program::check`'s error with
//!   its line and column). Every `arch-error` block must have one.
//! * ```` ```text ```` right after an `arch` block: optional, the analysis, exactly as
//!   [`summary`] prints it (`params: ..`, `flops: ..`, `activation_bytes: ..`, `output: ..`).
//! * Any other tag (`python` fragments, `ebnf`, a `text` block after prose) is not checked.

use arch_space::lang::{parse, Budget, InputSpec};
use arch_space::nb201::{Nb201Cell, Nb201Network};

mod markdown;

use markdown::{blocks, Block};

const DOC: &str = include_str!("../../../docs/ARCH_LANGUAGE.md");

/// The analysis of an `arch` block as its `text` block states it.
fn summary(a: &arch_space::lang::Analysis) -> String {
    format!(
        "params: {}\nflops: {}\nactivation_bytes: {}\noutput: {:?}",
        a.params, a.flops, a.activation_bytes, a.output
    )
}

/// What the implementation prints for an `arch-error` block, or `None` when it passes.
fn error_message(block: &Block) -> Option<String> {
    let program = match parse(&block.body) {
        Ok(p) => p,
        Err(e) => return Some(e.to_string()),
    };
    let analysis = match program.check(&InputSpec::cifar10()) {
        Ok(a) => a,
        Err(e) => return Some(e.to_string()),
    };
    let mut budget = Budget::default();
    for attribute in &block.attributes {
        let (key, value) = attribute
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: bad attribute `{attribute}`", block.line));
        let value: u64 = value.parse().expect("a budget is a number");
        match key {
            "max_params" => budget.max_params = Some(value),
            "max_flops" => budget.max_flops = Some(value),
            _ => panic!("line {}: unknown attribute `{key}`", block.line),
        }
    }
    analysis.within(&budget).err().map(|e| e.to_string())
}

#[test]
fn every_arch_example_parses_and_checks_for_cifar10() {
    let blocks = blocks(DOC);
    let mut failures = Vec::new();
    let mut examples = 0;
    for (i, block) in blocks.iter().enumerate() {
        if block.tag != "arch" && block.tag != "arch-reply" {
            continue;
        }
        examples += usize::from(block.tag == "arch");
        let result = parse(&block.body)
            .map_err(|e| e.to_string())
            .and_then(|p| p.check(&InputSpec::cifar10()).map_err(|e| e.to_string()));
        let analysis = match result {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("block at line {}: {e}", block.line));
                continue;
            }
        };
        if let Some(next) = blocks.get(i + 1) {
            if next.tag == "text" && next.follows_previous {
                let actual = summary(&analysis);
                if next.body.trim_end() != actual {
                    failures.push(format!("summary at line {} should be\n{actual}", next.line));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(examples >= 5, "only {examples} ```arch examples");
}

#[test]
fn every_quoted_error_message_is_the_real_one() {
    let blocks = blocks(DOC);
    let mut failures = Vec::new();
    let mut quoted = 0;
    for (i, block) in blocks.iter().enumerate() {
        if block.tag != "arch-error" {
            continue;
        }
        let Some(actual) = error_message(block) else {
            failures.push(format!("block at line {} does not fail", block.line));
            continue;
        };
        match blocks.get(i + 1) {
            Some(next) if next.tag == "text" && next.follows_previous => {
                quoted += 1;
                if next.body.trim_end() != actual {
                    failures.push(format!("message at line {} should be\n{actual}", next.line));
                }
            }
            _ => failures.push(format!(
                "block at line {} has no ```text block with its message right after it; \
                 the message is\n{actual}",
                block.line
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(quoted >= 10, "only {quoted} quoted errors");
}

/// The NAS-Bench-201 example is the benchmark's network (one cell per stage instead of five)
/// for cell 6111, in the IR as well as in its counts.
#[test]
fn the_graph_example_is_the_nb201_network() {
    let cell = Nb201Cell::from_index(6111).unwrap();
    let net = Nb201Network {
        cells_per_stage: 1,
        ..Nb201Network::cifar10()
    };
    let example = blocks(DOC)
        .into_iter()
        .find(|b| b.tag == "arch" && b.body.contains("node3 ="))
        .expect("a NAS-Bench-201 example");
    let program = parse(&example.body).unwrap();
    assert_eq!(program.module, net.module(&cell));
    let analysis = program.check(&InputSpec::cifar10()).unwrap();
    assert_eq!(analysis.params, net.params(&cell));
    assert_eq!(analysis.flops, net.flops(&cell));
}

#[test]
fn the_block_reader_follows_the_conventions() {
    let md = "text\n\n```arch\nA()\n```\n\n```text\nB\n```\nprose\n````arch-reply x=1\n```python\nC()\n```\n````\n";
    let b = blocks(md);
    assert_eq!(b.len(), 3);
    assert_eq!(
        (b[0].line, b[0].tag.as_str(), b[0].body.as_str()),
        (3, "arch", "A()\n")
    );
    assert!(b[1].follows_previous && b[1].tag == "text");
    assert!(!b[2].follows_previous);
    assert_eq!(b[2].attributes, vec!["x=1".to_string()]);
    assert_eq!(b[2].body, "```python\nC()\n```\n");
}

#[test]
fn the_quoted_prompt_card_is_the_one_the_loop_sends() {
    let card = arch_space::lang::prompt_card(&InputSpec::cifar10());
    assert!(
        DOC.contains(&format!("```text\n{card}\n```")),
        "docs/ARCH_LANGUAGE.md should quote prompt_card(cifar10) verbatim:\n{card}"
    );
}
