//! Printing a [`Grammar`] in llguidance's Lark dialect, terminals as regexes.

use std::fmt::Write;

use super::{Grammar, Item, Skip, Terminal};

impl Grammar {
    /// The grammar in llguidance's Lark dialect: one rule per line (alternatives on
    /// continuation lines), literals as JSON strings, terminals as `/regex/`, and the skip as
    /// `%ignore` (with `%llguidance` options: `ignore_once` for a bounded skip,
    /// `allow_initial_skip` for a free one; nothing for [`Skip::None`]). An alternative
    /// without items prints as `""`.
    pub fn to_lark(&self) -> String {
        let mut out = String::new();
        match self.skip {
            Skip::None => {}
            Skip::Free => {
                out.push_str("%llguidance {\"allow_initial_skip\": true}\n");
                out.push_str("%ignore /[ \\t\\r\\n]+/\n%ignore /#[^\\n`~]*/\n");
            }
            Skip::Bounded {
                spaces,
                lines,
                indent,
            } => {
                let mut stretches = Vec::new();
                if spaces > 0 {
                    stretches.push(format!("[ \\t]{{1,{spaces}}}"));
                }
                if lines > 0 {
                    stretches.push(format!(
                        "[ \\t]{{0,{spaces}}}(\\n[ \\t]{{0,{indent}}}){{1,{lines}}}"
                    ));
                }
                if !stretches.is_empty() {
                    out.push_str("%llguidance {\"ignore_once\": true}\n");
                    let _ = writeln!(out, "%ignore /{}/", stretches.join("|"));
                }
            }
        }
        for rule in &self.rules {
            let _ = write!(out, "{}: ", rule.name);
            for (i, alternative) in rule.alternatives.iter().enumerate() {
                if i > 0 {
                    out.push_str("\n    | ");
                }
                out.push_str(&sequence(alternative));
            }
            out.push('\n');
        }
        out
    }
}

fn sequence(items: &[Item]) -> String {
    if items.is_empty() {
        return "\"\"".into();
    }
    items.iter().map(item).collect::<Vec<_>>().join(" ")
}

fn item(it: &Item) -> String {
    match it {
        Item::Literal(text) => json_string(text),
        Item::Terminal(t) => format!("/{}/", terminal_regex(t)),
        Item::Rule(name) => name.clone(),
        Item::Choice(alternatives) => match alternatives.as_slice() {
            [single] => group(single),
            _ => format!(
                "({})",
                alternatives
                    .iter()
                    .map(|a| sequence(a))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
        },
        Item::Repeat { items, min, max } => {
            let body = group(items);
            let op = match (min, max) {
                (0, Some(1)) => "?".to_string(),
                (0, None) => "*".to_string(),
                (1, None) => "+".to_string(),
                (m, None) => format!("{{{m},}}"),
                (m, Some(n)) if m == n => format!("{{{m}}}"),
                (m, Some(n)) => format!("{{{m},{n}}}"),
            };
            body + &op
        }
    }
}

/// A sequence as one operand: a single item as it is (a choice has its parentheses), a longer
/// sequence in parentheses.
fn group(items: &[Item]) -> String {
    match items {
        [single @ (Item::Literal(_) | Item::Terminal(_) | Item::Rule(_))] => item(single),
        [Item::Choice(alternatives)] if alternatives.len() > 1 => item(&items[0]),
        _ => format!("({})", sequence(items)),
    }
}

/// A Lark string literal (JSON syntax).
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The regex (Rust `regex` syntax, no `/`) of a terminal.
pub(super) fn terminal_regex(t: &Terminal) -> String {
    match t {
        Terminal::Integer { min, max } => format!("(?:{})", integer_range(*min, *max)),
        Terminal::Number => "-?(?:[0-9][0-9_]*(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][-+]?[0-9]+)?".into(),
        Terminal::Fraction { digits } => format!("0?\\.[0-9]{{1,{digits}}}"),
        Terminal::Name => "[A-Za-z_][A-Za-z0-9_.]*".into(),
        Terminal::Str => "'[^'\\n`~]*'|\"[^\"\\n`~]*\"".into(),
        Terminal::Word { prefixes, words } => {
            let words = match words.as_slice() {
                [word] => escape(word),
                _ => format!("(?:{})", alternation(words)),
            };
            if prefixes.is_empty() {
                words
            } else {
                format!("(?:{})?{words}", alternation(prefixes))
            }
        }
        Terminal::ImportLine => "(?:import|from) [^\\n`~]*\\n".into(),
        Terminal::Blank => "(?:[ \\t\\r\\n]|#[^\\n`~]*)+".into(),
        Terminal::Break { indent: 0 } => "\\n".into(),
        Terminal::Break { indent } => format!("\\n {{0,{indent}}}"),
    }
}

fn alternation(words: &[String]) -> String {
    words
        .iter()
        .map(|w| escape(w))
        .collect::<Vec<_>>()
        .join("|")
}

/// `text` as a regex that matches it literally (`/` escaped too, for Lark).
fn escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A regex (alternatives without an enclosing group) of the decimal integers `lo..=hi`.
fn integer_range(lo: u64, hi: u64) -> String {
    let mut alternatives = Vec::new();
    let mut start = lo;
    while start <= hi {
        let digits = start.to_string().len() as u32;
        let last_of_length = 10u64.checked_pow(digits).map_or(u64::MAX, |p| p - 1);
        let end = hi.min(last_of_length);
        alternatives.extend(same_length(
            start.to_string().as_bytes(),
            end.to_string().as_bytes(),
        ));
        if end == u64::MAX {
            break;
        }
        start = end + 1;
    }
    alternatives.join("|")
}

/// Regex alternatives of the digit strings from `lo` to `hi`, which have the same length.
fn same_length(lo: &[u8], hi: &[u8]) -> Vec<String> {
    let (Some((&a, lo_rest)), Some((&b, hi_rest))) = (lo.split_first(), hi.split_first()) else {
        return vec![String::new()];
    };
    let prefixed = |digit: u8, rests: Vec<String>| -> Vec<String> {
        rests
            .into_iter()
            .map(|r| format!("{}{r}", digit as char))
            .collect()
    };
    if a == b {
        return prefixed(a, same_length(lo_rest, hi_rest));
    }
    let n = lo_rest.len();
    let any = match n {
        0 => String::new(),
        1 => "[0-9]".into(),
        n => format!("[0-9]{{{n}}}"),
    };
    // `a` followed by lo_rest..=99.., the digits strictly between `a` and `b` followed by
    // anything, `b` followed by 00..=hi_rest; a bound whose rest is 00.. or 99.. joins the middle.
    let low_full = lo_rest.iter().all(|&d| d == b'0');
    let high_full = hi_rest.iter().all(|&d| d == b'9');
    let mut out = Vec::new();
    if !low_full {
        out.extend(prefixed(a, same_length(lo_rest, &vec![b'9'; n])));
    }
    let (from, to) = (a + u8::from(!low_full), b - u8::from(!high_full));
    if from <= to {
        let class = if from == to {
            (from as char).to_string()
        } else {
            format!("[{}-{}]", from as char, to as char)
        };
        out.push(class + &any);
    }
    if !high_full {
        out.extend(prefixed(b, same_length(&vec![b'0'; n], hi_rest)));
    }
    out
}
