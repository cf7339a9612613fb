//! Deriving texts of a [`Grammar`] with the caller's choices.

use std::collections::HashMap;

use super::{Grammar, GrammarError, Item, Skip, Terminal};

/// How many extra repetitions an unlimited repetition may get.
const UNLIMITED_EXTRA: usize = 3;

impl Grammar {
    /// Derives one text from `start`, asking `choose(n)` for a number below `n` at every
    /// decision with `n > 1` options (an answer of `n` or more counts as `n - 1`): which
    /// alternative, how many repetitions (an unlimited repetition gets at most 3 more than
    /// its minimum), each character class of a terminal, and the whitespace between lexemes.
    /// Below `max_depth` nested rules, every decision is `choose`'s; deeper, the walk takes
    /// the alternatives that end soonest and the fewest repetitions, so recursive grammars
    /// end too.
    ///
    /// With a random `choose`, this draws random texts of the grammar: random architectures
    /// from [`generation_grammar`](super::generation_grammar), test inputs from
    /// [`language_grammar`](super::language_grammar). Fails only on a grammar that
    /// [`Grammar::validate`] rejects.
    pub fn sample(
        &self,
        max_depth: usize,
        choose: &mut impl FnMut(usize) -> usize,
    ) -> Result<String, GrammarError> {
        self.validate()?;
        let mut walk = Walk {
            grammar: self,
            heights: heights(self)?,
            choose,
            max_depth,
            out: String::new(),
            lexemes: 0,
        };
        walk.rule("start", 0);
        Ok(walk.out)
    }
}

/// For every rule, the fewest nested rules its shortest derivation takes (1 for a rule of
/// literals); fails on a rule that derives no finite text.
pub(super) fn heights(grammar: &Grammar) -> Result<HashMap<&str, usize>, GrammarError> {
    let mut heights: HashMap<&str, usize> = HashMap::new();
    loop {
        let mut changed = false;
        for rule in &grammar.rules {
            let best = rule
                .alternatives
                .iter()
                .filter_map(|a| sequence_height(a, &heights))
                .min()
                .map(|h| h + 1);
            if let Some(h) = best {
                if heights.get(rule.name.as_str()).is_none_or(|&old| h < old) {
                    heights.insert(&rule.name, h);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    match grammar
        .rules
        .iter()
        .find(|r| !heights.contains_key(r.name.as_str()))
    {
        Some(r) => Err(GrammarError::new(format!(
            "rule `{}` derives no finite text",
            r.name
        ))),
        None => Ok(heights),
    }
}

fn sequence_height(items: &[Item], heights: &HashMap<&str, usize>) -> Option<usize> {
    items
        .iter()
        .map(|i| item_height(i, heights))
        .try_fold(0, |acc, h| h.map(|h| acc.max(h)))
}

fn item_height(item: &Item, heights: &HashMap<&str, usize>) -> Option<usize> {
    match item {
        Item::Literal(_) | Item::Terminal(_) => Some(0),
        Item::Rule(name) => heights.get(name.as_str()).copied(),
        Item::Choice(alternatives) => alternatives
            .iter()
            .filter_map(|a| sequence_height(a, heights))
            .min(),
        Item::Repeat { min: 0, .. } => Some(0),
        Item::Repeat { items, .. } => sequence_height(items, heights),
    }
}

struct Walk<'a, F> {
    grammar: &'a Grammar,
    heights: HashMap<&'a str, usize>,
    choose: &'a mut F,
    max_depth: usize,
    out: String,
    /// Lexemes written so far.
    lexemes: usize,
}

impl<F: FnMut(usize) -> usize> Walk<'_, F> {
    fn pick(&mut self, n: usize) -> usize {
        if n <= 1 {
            0
        } else {
            (self.choose)(n).min(n - 1)
        }
    }

    fn rule(&mut self, name: &str, depth: usize) {
        let grammar = self.grammar;
        // `validate` has checked every reference.
        if let Some(rule) = grammar.rule(name) {
            let alternative = self.alternative(&rule.alternatives, depth);
            self.sequence(alternative, depth + 1);
        }
    }

    fn alternative<'g>(&mut self, alternatives: &'g [Vec<Item>], depth: usize) -> &'g [Item] {
        let index = if depth < self.max_depth {
            self.pick(alternatives.len())
        } else {
            (0..alternatives.len())
                .min_by_key(|&i| {
                    sequence_height(&alternatives[i], &self.heights).unwrap_or(usize::MAX)
                })
                .unwrap_or(0)
        };
        &alternatives[index]
    }

    fn sequence(&mut self, items: &[Item], depth: usize) {
        for item in items {
            self.item(item, depth);
        }
    }

    fn item(&mut self, item: &Item, depth: usize) {
        match item {
            Item::Literal(text) => self.lexeme(text.clone()),
            Item::Terminal(t) => {
                let text = self.terminal(t);
                self.lexeme(text);
            }
            Item::Rule(name) => self.rule(name, depth),
            Item::Choice(alternatives) => {
                let alternative = self.alternative(alternatives, depth);
                self.sequence(alternative, depth);
            }
            Item::Repeat { items, min, max } => {
                let extra = if depth < self.max_depth {
                    self.pick(max.map_or(UNLIMITED_EXTRA, |max| max - min) + 1)
                } else {
                    0
                };
                for _ in 0..min + extra {
                    self.sequence(items, depth);
                }
            }
        }
    }

    fn lexeme(&mut self, text: String) {
        if self.lexemes > 0 {
            let skip = self.skip();
            self.out.push_str(&skip);
        }
        self.out.push_str(&text);
        self.lexemes += 1;
    }

    fn skip(&mut self) -> String {
        match self.grammar.skip {
            Skip::None => String::new(),
            Skip::Free => ["", " ", "\n    ", "  # note\n", "\n\n"][self.pick(5)].into(),
            Skip::Bounded {
                spaces,
                lines,
                indent,
            } => match self.pick(3) {
                1 if spaces > 0 => " ".repeat(1 + self.pick(spaces)),
                2 if lines > 0 => {
                    let mut s = " ".repeat(self.pick(spaces + 1));
                    for _ in 0..1 + self.pick(lines) {
                        s.push('\n');
                        s.push_str(&" ".repeat(self.pick(indent + 1)));
                    }
                    s
                }
                _ => String::new(),
            },
        }
    }

    fn terminal(&mut self, t: &Terminal) -> String {
        match t {
            Terminal::Integer { min, max } => {
                let n = usize::try_from(max - min)
                    .ok()
                    .and_then(|span| span.checked_add(1))
                    .unwrap_or(usize::MAX);
                (min + self.pick(n) as u64).to_string()
            }
            Terminal::Number => {
                let (a, b) = (self.digits(1, 3), self.digits(1, 2));
                match self.pick(6) {
                    0 => a,
                    1 => format!("-{a}"),
                    2 => format!("{a}_{b}"),
                    3 => format!("{a}.{b}"),
                    4 => format!(".{b}"),
                    _ => format!("{a}e-{b}"),
                }
            }
            Terminal::Fraction { digits } => {
                let zero = if self.pick(2) == 0 { "0" } else { "" };
                format!("{zero}.{}", self.digits(1, *digits))
            }
            Terminal::Name => self.name(),
            Terminal::Str => {
                let quote = if self.pick(2) == 0 { '\'' } else { '"' };
                let body = self.letters(0, 6);
                format!("{quote}{body}{quote}")
            }
            Terminal::Word { prefixes, words } => {
                let prefix = prefixes
                    .get(self.pick(prefixes.len() + 1))
                    .map_or("", String::as_str);
                format!("{prefix}{}", words[self.pick(words.len())])
            }
            Terminal::Blank => ["\n", " ", "  # end\n"][self.pick(3)].into(),
            Terminal::Break { indent } => format!("\n{}", " ".repeat(self.pick(indent + 1))),
            Terminal::ImportLine => {
                let keyword = if self.pick(2) == 0 { "import" } else { "from" };
                format!("{keyword} {}\n", self.name())
            }
        }
    }

    /// `min` to `max` decimal digits.
    fn digits(&mut self, min: usize, max: usize) -> String {
        let count = min + self.pick(max - min + 1);
        (0..count)
            .map(|_| char::from(b'0' + self.pick(10) as u8))
            .collect()
    }

    /// `min` to `max` lowercase letters.
    fn letters(&mut self, min: usize, max: usize) -> String {
        let count = min + self.pick(max - min + 1);
        (0..count)
            .map(|_| char::from(b'a' + self.pick(26) as u8))
            .collect()
    }

    /// A name of 1 to 6 letters and `_`, never `import` or `from` (which start lines the
    /// parser skips).
    fn name(&mut self) -> String {
        let mut name = self.letters(1, 6);
        if self.pick(4) == 0 {
            name.push('_');
        }
        if name == "import" || name == "from" {
            name.push('_');
        }
        name
    }
}
