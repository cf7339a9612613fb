//! llama.cpp's hand-written splitters for the common pre-tokenizer regexes
//! (`unicode_regex_split_custom_gpt2` and `_llama3` in `unicode.cpp`), ported line by line.
//!
//! Each takes the codepoints of a text and the lengths of the chunks an earlier split made, and
//! returns the lengths of the pieces, in codepoints.

use super::unicode::{is_whitespace, Class};

/// What the splitters ask of the codepoint at a position; `None` outside the current chunk.
#[derive(Clone, Copy)]
struct Flags {
    letter: bool,
    number: bool,
    space: bool,
}

impl Flags {
    fn letter(self) -> bool {
        self.letter
    }

    fn number(self) -> bool {
        self.number
    }

    /// `[^\s\p{L}\p{N}]`: none of whitespace, letter, number.
    fn other(self) -> bool {
        !(self.space || self.letter || self.number)
    }
}

/// One chunk of the text being split, and the pieces found so far.
struct Chunk<'a> {
    cpts: &'a [char],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl Chunk<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        (self.ini <= pos && pos < self.end).then(|| self.cpts[pos])
    }

    fn flags(&self, pos: usize) -> Option<Flags> {
        self.cpt(pos).map(|c| {
            let class = Class::of(c);
            Flags {
                letter: class == Class::Letter,
                number: class == Class::Number,
                space: is_whitespace(c),
            }
        })
    }

    fn is(&self, pos: usize, test: fn(Flags) -> bool) -> bool {
        self.flags(pos).is_some_and(test)
    }

    fn is_letter(&self, pos: usize) -> bool {
        self.is(pos, Flags::letter)
    }

    fn is_number(&self, pos: usize) -> bool {
        self.is(pos, Flags::number)
    }

    fn is_space(&self, pos: usize) -> bool {
        self.flags(pos).is_some_and(|f| f.space)
    }

    fn is_other(&self, pos: usize) -> bool {
        self.is(pos, Flags::other)
    }

    /// Ends the current piece at `end`.
    fn add(&mut self, end: usize) {
        if end > self.prev_end {
            self.out.push(end - self.prev_end);
        }
        self.prev_end = end;
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at `pos` (ASCII case-insensitively when `fold`): its end.
    fn contraction(&self, pos: usize, fold: bool) -> Option<usize> {
        if self.cpt(pos) != Some('\'') || pos + 1 >= self.end {
            return None;
        }
        // llama.cpp lowercases with its full Unicode table, but only ASCII capitals lowercase
        // to the letters tested here.
        let lower = |c: char| if fold { c.to_ascii_lowercase() } else { c };
        let next = lower(self.cpts[pos + 1]);
        if matches!(next, 's' | 't' | 'm' | 'd') {
            return Some(pos + 2);
        }
        if pos + 2 < self.end {
            let after = lower(self.cpts[pos + 2]);
            if matches!((next, after), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                return Some(pos + 3);
            }
        }
        None
    }

    /// The number of whitespace codepoints from `pos` on.
    fn spaces_from(&self, pos: usize) -> usize {
        (pos..self.end).take_while(|&p| self.is_space(p)).count()
    }
}

/// Runs `split` over every chunk of `offsets`.
fn each_chunk(cpts: &[char], offsets: &[usize], split: impl Fn(&mut Chunk)) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for &len in offsets {
        let mut chunk = Chunk {
            cpts,
            ini: start,
            end: start + len,
            prev_end: start,
            out: &mut out,
        };
        split(&mut chunk);
        start += len;
    }
    out
}

/// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
pub(super) fn gpt2(cpts: &[char], offsets: &[usize]) -> Vec<usize> {
    each_chunk(cpts, offsets, |c| {
        let mut pos = c.ini;
        while pos < c.end {
            if let Some(end) = c.contraction(pos, false) {
                c.add(end);
                pos = end;
                continue;
            }
            let lead = usize::from(c.cpts[pos] == ' ');
            let first = pos + lead;
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
            let run = [Flags::letter, Flags::number, Flags::other]
                .into_iter()
                .find(|&test| c.is(first, test));
            if let Some(test) = run {
                pos = first;
                while c.is(pos, test) {
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            pos = whitespace(c, pos, c.spaces_from(pos));
        }
    })
}

/// `\s+(?!\S)|\s+` at `pos`, which starts `spaces` whitespace codepoints; or one codepoint when
/// nothing matched. Returns the new position.
fn whitespace(c: &mut Chunk, pos: usize, spaces: usize) -> usize {
    let end = if spaces > 1 && c.cpt(pos + spaces).is_some() {
        pos + spaces - 1
    } else if spaces > 0 {
        pos + spaces
    } else {
        pos + 1
    };
    c.add(end);
    end
}

/// Llama-3 (`max_digits` 3) and Qwen2 (`max_digits` 1): `(?i:'s|'t|'re|'ve|'m|'ll|'d)`,
/// `[^\r\n\p{L}\p{N}]?\p{L}+`, `\p{N}{1,max}`, ` ?[^\s\p{L}\p{N}]+[\r\n]*`, `\s*[\r\n]+`,
/// `\s+(?!\S)`, `\s+`, in that order of preference.
pub(super) fn llama3(cpts: &[char], offsets: &[usize], max_digits: usize) -> Vec<usize> {
    each_chunk(cpts, offsets, |c| {
        let mut pos = c.ini;
        while pos < c.end {
            if let Some(end) = c.contraction(pos, true) {
                c.add(end);
                pos = end;
                continue;
            }
            let cpt = c.cpts[pos];
            let newline = |p: usize| matches!(c.cpt(p), Some('\r' | '\n'));
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if !(cpt == '\r' || cpt == '\n' || c.is_number(pos))
                && (c.is_letter(pos) || c.is_letter(pos + 1))
            {
                pos += 1;
                while c.is_letter(pos) {
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            // `\p{N}{1,max}`
            if c.is_number(pos) {
                let mut ini = pos;
                while c.is_number(pos) {
                    pos += 1;
                    if pos - ini >= max_digits {
                        c.add(pos);
                        ini = pos;
                    }
                }
                c.add(pos);
                continue;
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let first = pos + usize::from(cpt == ' ');
            if c.is_other(first) && c.flags(pos).is_some() {
                pos = first;
                while c.is_other(pos) {
                    pos += 1;
                }
                while newline(pos) {
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            let spaces = c.spaces_from(pos);
            // `\s*[\r\n]+`: up to the last newline of the whitespace run
            if let Some(last) = (pos..pos + spaces).rev().find(|&p| newline(p)) {
                pos = last + 1;
                c.add(pos);
                continue;
            }
            pos = whitespace(c, pos, spaces);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str, split: impl Fn(&[char], &[usize]) -> Vec<usize>) -> Vec<String> {
        let cpts: Vec<char> = text.chars().collect();
        let mut start = 0;
        split(&cpts, &[cpts.len()])
            .into_iter()
            .map(|n| {
                start += n;
                cpts[start - n..start].iter().collect()
            })
            .collect()
    }

    #[test]
    fn gpt2_splits_like_its_regex() {
        let got = pieces("Hello world's  123 !!x\n\n  end", gpt2);
        assert_eq!(
            got,
            ["Hello", " world", "'s", " ", " 123", " !!", "x", "\n\n ", " end"]
        );
    }

    #[test]
    fn llama3_groups_digits_and_newlines() {
        let got = pieces("I'M 1234567 ok.\n\n  x", |c, o| llama3(c, o, 3));
        assert_eq!(
            got,
            ["I", "'M", " ", "123", "456", "7", " ok", ".\n\n", " ", " x"]
        );
        let got = pieces("ab12 \n", |c, o| llama3(c, o, 1));
        assert_eq!(got, ["ab", "1", "2", " \n"]);
    }
}
