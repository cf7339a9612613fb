//! The longest text of a [`Grammar`].

use std::collections::HashMap;

use super::{Grammar, Item, Rule, Skip, Terminal};

impl Grammar {
    /// The length in bytes of the longest text the grammar derives, whitespace of the skip
    /// included; `None` if its texts can be arbitrarily long: an unlimited repetition, a
    /// rule that refers to itself (directly or not), an unbounded terminal (a name, a number,
    /// a string, an import line, a blank) or a free skip.
    ///
    /// It is computed over the structure, not by enumerating texts: a literal counts its
    /// bytes, a terminal its longest lexeme, a sequence the sum, a choice or a rule its longest
    /// alternative, a repetition its most repetitions; a bounded skip adds its longest stretch
    /// between every two lexemes. A grammar for constrained decoding with a bound lets the
    /// caller give the model enough tokens that no reply of the grammar is cut.
    pub fn max_len(&self) -> Option<usize> {
        max_len_in(&self.rules, self.skip, &[Item::Rule("start".into())])
    }
}

/// The longest text of `items` over `rules` with `skip` between lexemes (see
/// [`Grammar::max_len`]).
pub(super) fn max_len_in(rules: &[Rule], skip: Skip, items: &[Item]) -> Option<usize> {
    let gap = match skip {
        Skip::None => 0,
        Skip::Free => return None,
        Skip::Bounded {
            spaces,
            lines,
            indent,
        } => {
            if lines > 0 {
                spaces + lines * (1 + indent)
            } else {
                spaces
            }
        }
    };
    let mut lengths = Lengths {
        rules,
        gap,
        done: HashMap::new(),
        open: Vec::new(),
    };
    // Every lexeme is counted with one gap after it; the last one has none.
    lengths
        .sequence(items)
        .map(|longest| longest.saturating_sub(gap))
}

struct Lengths<'a> {
    rules: &'a [Rule],
    /// The longest skip between two lexemes.
    gap: usize,
    /// The longest text of each rule done, its lexemes each followed by a gap.
    done: HashMap<&'a str, Option<usize>>,
    /// The rules being computed, outermost first: one met again is a cycle.
    open: Vec<&'a str>,
}

impl<'a> Lengths<'a> {
    fn rule(&mut self, name: &str) -> Option<usize> {
        if let Some(&known) = self.done.get(name) {
            return known;
        }
        let rules = self.rules;
        let rule = rules.iter().find(|r| r.name == name)?;
        if self.open.contains(&rule.name.as_str()) {
            return None;
        }
        self.open.push(&rule.name);
        let longest = self.choice(&rule.alternatives);
        self.open.pop();
        self.done.insert(&rule.name, longest);
        longest
    }

    fn choice(&mut self, alternatives: &[Vec<Item>]) -> Option<usize> {
        alternatives
            .iter()
            .map(|a| self.sequence(a))
            .try_fold(0, |acc, len| len.map(|len| acc.max(len)))
    }

    fn sequence(&mut self, items: &[Item]) -> Option<usize> {
        items
            .iter()
            .map(|i| self.item(i))
            .try_fold(0usize, |acc, len| len.and_then(|len| acc.checked_add(len)))
    }

    fn item(&mut self, item: &Item) -> Option<usize> {
        match item {
            Item::Literal(text) => Some(text.len() + self.gap),
            Item::Terminal(t) => terminal_max_len(t).map(|len| len + self.gap),
            Item::Rule(name) => self.rule(name),
            Item::Choice(alternatives) => self.choice(alternatives),
            Item::Repeat { items, max, .. } => {
                let once = self.sequence(items)?;
                match max {
                    Some(max) => once.checked_mul(*max),
                    None if once == 0 => Some(0),
                    None => None,
                }
            }
        }
    }
}

/// The longest lexeme of a terminal, if there is one.
fn terminal_max_len(t: &Terminal) -> Option<usize> {
    match t {
        Terminal::Integer { max, .. } => Some(max.to_string().len()),
        Terminal::Fraction { digits } => Some(2 + digits),
        Terminal::Word { prefixes, words } => {
            let longest = |texts: &[String]| texts.iter().map(String::len).max().unwrap_or(0);
            Some(longest(prefixes) + longest(words))
        }
        Terminal::Break { indent } => Some(1 + indent),
        Terminal::Number
        | Terminal::Name
        | Terminal::Str
        | Terminal::ImportLine
        | Terminal::Blank => None,
    }
}
