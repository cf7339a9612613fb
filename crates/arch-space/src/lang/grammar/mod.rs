//! Grammars of the language for constrained decoding.
//!
//! [`language_grammar`] is the whole language as [`parse`](super::parse) reads it: any layer
//! or block, prefixes, imports, comments. [`generation_grammar`] is the subset the closed
//! loop's Code Generator answers in: every text it derives parses, passes
//! [`Program::check`](super::Program::check) for its input and ends with one score per class.
//!
//! A [`Grammar`] is data: rules whose items are literals, rule references, inline choices,
//! bounded repetitions and [`Terminal`]s, which are classes of lexemes described by structure
//! (an integer range, a set of words), not by regex text. [`Grammar::to_lark`] prints it in
//! llguidance's Lark dialect; [`Grammar::sample`] walks it with a caller's choices, which
//! makes random texts of the grammar without a regex engine or a random number generator here;
//! [`Grammar::max_len`] bounds the length of its texts.

mod generation;
mod language;
mod lark;
mod length;
mod sample;
#[cfg(test)]
mod tests;

pub use generation::{generation_grammar, generation_grammar_with, GenerationOptions};
pub use language::language_grammar;

/// A context-free grammar over lexemes, with the whitespace allowed between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grammar {
    /// The rules; the text is derived from the rule named `start`.
    pub rules: Vec<Rule>,
    /// What may separate two lexemes.
    pub skip: Skip,
}

/// A named rule: one of its alternatives, each a sequence of items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The name (lowercase ASCII letters, digits and `_`, starting with a letter).
    pub name: String,
    /// The sequences the rule derives.
    pub alternatives: Vec<Vec<Item>>,
}

/// One element of a rule's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// This exact text, as one lexeme.
    Literal(String),
    /// One lexeme of a class.
    Terminal(Terminal),
    /// The rule of this name.
    Rule(String),
    /// One of these sequences.
    Choice(Vec<Vec<Item>>),
    /// The sequence `items`, `min` to `max` times in a row (`None`: without a limit).
    Repeat {
        /// What is repeated.
        items: Vec<Item>,
        /// Fewest repetitions.
        min: usize,
        /// Most repetitions, if limited.
        max: Option<usize>,
    },
}

/// A class of lexemes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terminal {
    /// A decimal integer from `min` to `max`, without sign, separators or leading zeros.
    Integer {
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
    },
    /// A number as the parser reads it: an optional `-`, digits with `_` separators, and a
    /// fraction and/or an exponent (`16`, `-1`, `1_000`, `0.5`, `.5`, `1e-5`).
    Number,
    /// A decimal fraction in [0, 1) with 1 to `digits` decimals, its leading `0` optional
    /// (`0.5`, `.25`).
    Fraction {
        /// Most decimals.
        digits: usize,
    },
    /// A name: a letter or `_`, then letters, digits, `_` and `.` (ASCII).
    Name,
    /// A string quoted with `'` or `"` on one line, without backticks or `~` (which
    /// [`parse`](super::parse) would take for a code fence).
    Str,
    /// One of `words`, optionally right after one of `prefixes`, as a single lexeme
    /// (`nn.Conv2d`).
    Word {
        /// Optional prefixes.
        prefixes: Vec<String>,
        /// The words.
        words: Vec<String>,
    },
    /// A line the parser skips: `import ` or `from ` and the rest of the line, its line break
    /// included.
    ImportLine,
    /// Whitespace and `#` comments, at least one character: what may follow the last lexeme
    /// of a text, where llguidance allows no skip.
    Blank,
    /// A line break and then up to `indent` spaces: the layout of a grammar without skip.
    Break {
        /// Most spaces after the line break.
        indent: usize,
    },
}

/// What may separate lexemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Nothing: lexemes follow one another directly, and whatever whitespace the texts hold
    /// is written out in the rules (literals, [`Terminal::Break`]).
    None,
    /// Any whitespace and `#` comments, as often as wanted, before, between and after the
    /// lexemes (the language as the parser reads it).
    Free,
    /// Between two lexemes, at most one stretch of whitespace: 1 to `spaces` blanks, or up to
    /// `spaces` blanks and then 1 to `lines` line breaks, each followed by up to `indent`
    /// blanks. Nothing before the first lexeme or after the last. A bounded skip keeps a
    /// model from writing whitespace forever.
    Bounded {
        /// Most blanks in a row within a line.
        spaces: usize,
        /// Most line breaks.
        lines: usize,
        /// Most blanks after a line break.
        indent: usize,
    },
}

/// A grammar that cannot be used, or an input no grammar can serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GrammarError {
    /// What is wrong.
    pub message: String,
}

impl GrammarError {
    fn new(message: String) -> Self {
        GrammarError { message }
    }
}

impl Grammar {
    /// The rule named `name`.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Checks that the grammar can derive texts: it has a `start` rule, every rule it refers
    /// to exists, no rule is defined twice or is without alternatives, every terminal has
    /// values (`min <= max`, some words, some digits) and every rule derives some finite text.
    pub fn validate(&self) -> Result<(), GrammarError> {
        if self.rule("start").is_none() {
            return Err(GrammarError::new("the grammar has no `start` rule".into()));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if self.rules[..i].iter().any(|r| r.name == rule.name) {
                return Err(GrammarError::new(format!(
                    "rule `{}` is defined twice",
                    rule.name
                )));
            }
            if rule.alternatives.is_empty() {
                return Err(GrammarError::new(format!(
                    "rule `{}` has no alternatives",
                    rule.name
                )));
            }
            for item in rule.alternatives.iter().flatten() {
                self.validate_item(&rule.name, item)?;
            }
        }
        sample::heights(self).map(|_| ())
    }

    fn validate_item(&self, rule: &str, item: &Item) -> Result<(), GrammarError> {
        match item {
            Item::Literal(text) if text.is_empty() => Err(GrammarError::new(format!(
                "rule `{rule}` has an empty literal"
            ))),
            Item::Literal(_) => Ok(()),
            Item::Rule(name) if self.rule(name).is_none() => Err(GrammarError::new(format!(
                "rule `{rule}` refers to `{name}`, which is not defined"
            ))),
            Item::Rule(_) => Ok(()),
            Item::Choice(alternatives) if alternatives.is_empty() => Err(GrammarError::new(
                format!("rule `{rule}` has a choice without alternatives"),
            )),
            Item::Choice(alternatives) => alternatives
                .iter()
                .flatten()
                .try_for_each(|i| self.validate_item(rule, i)),
            Item::Repeat { items, min, max } => {
                if max.is_some_and(|max| max < *min) {
                    return Err(GrammarError::new(format!(
                        "rule `{rule}` repeats at least {min} but at most {max:?} times"
                    )));
                }
                items.iter().try_for_each(|i| self.validate_item(rule, i))
            }
            Item::Terminal(t) => {
                let empty = match t {
                    Terminal::Integer { min, max } => min > max,
                    Terminal::Fraction { digits } => *digits == 0,
                    Terminal::Word { words, .. } => words.is_empty() || words.contains(&"".into()),
                    Terminal::Number
                    | Terminal::Name
                    | Terminal::Str
                    | Terminal::ImportLine
                    | Terminal::Blank
                    | Terminal::Break { .. } => false,
                };
                if empty {
                    Err(GrammarError::new(format!(
                        "rule `{rule}` has a terminal without values: {t:?}"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Helpers that keep the grammar builders short.
fn lit(text: &str) -> Item {
    Item::Literal(text.to_string())
}

fn rule(name: &str) -> Item {
    Item::Rule(name.to_string())
}

fn opt(items: Vec<Item>) -> Item {
    Item::Repeat {
        items,
        min: 0,
        max: Some(1),
    }
}

fn repeat(items: Vec<Item>, min: usize, max: Option<usize>) -> Item {
    Item::Repeat { items, min, max }
}

fn choice(alternatives: Vec<Vec<Item>>) -> Item {
    Item::Choice(alternatives)
}
