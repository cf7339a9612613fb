//! Codepoint classes as llama.cpp's `unicode.cpp` sees them, and GPT-2's byte-to-character map.
//!
//! The classes come from llama.cpp's own table (`unicode_data.rs`, Unicode 15.1), not from
//! Rust's or the regex crate's (newer) Unicode data, so that pre-tokenization splits text
//! exactly where llama.cpp does.

use super::unicode_data::RUNS;

/// The general category of a codepoint, reduced to what the pre-tokenizer regexes ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// Separators, controls, format characters, private use and unassigned codepoints.
    Other,
    /// `\p{N}`.
    Number,
    /// `\p{L}`.
    Letter,
    /// `\p{P}`.
    Punctuation,
    /// `\p{M}`.
    Mark,
    /// `\p{S}`.
    Symbol,
}

impl Class {
    /// The class of `c`.
    pub(super) fn of(c: char) -> Class {
        let key = u32::from(c) << 3 | 7;
        let run = RUNS[RUNS.partition_point(|&r| r <= key) - 1];
        match run & 7 {
            1 => Class::Number,
            2 => Class::Letter,
            3 => Class::Punctuation,
            4 => Class::Mark,
            5 => Class::Symbol,
            _ => Class::Other,
        }
    }
}

/// llama.cpp's whitespace set: the 25 codepoints with Unicode's `White_Space` property, which is
/// what [`char::is_whitespace`] tests.
pub(super) fn is_whitespace(c: char) -> bool {
    c.is_whitespace()
}

/// Whether GPT-2's byte-level alphabet writes byte `b` as the character of the same number.
const fn printable(b: usize) -> bool {
    matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// GPT-2's map from bytes to printable characters (`bytes_to_unicode`): printable Latin-1 bytes
/// stand for themselves, the other 68 for U+0100 to U+0143 in increasing order.
const BYTE_TO_CHAR: [char; 256] = {
    let mut table = ['\0'; 256];
    let (mut b, mut next) = (0, 0x100);
    while b < 256 {
        let code = if printable(b) {
            b as u32
        } else {
            next += 1;
            next - 1
        };
        table[b] = match char::from_u32(code) {
            Some(c) => c,
            None => panic!("not a character"),
        };
        b += 1;
    }
    table
};

/// The inverse of [`BYTE_TO_CHAR`] over U+0000 to U+0143 (`None` where no byte maps).
const CHAR_TO_BYTE: [Option<u8>; 0x144] = {
    let mut table = [None; 0x144];
    let mut b = 0;
    while b < 256 {
        table[BYTE_TO_CHAR[b] as usize] = Some(b as u8);
        b += 1;
    }
    table
};

/// The character of GPT-2's byte-level alphabet that stands for byte `b`.
pub(super) fn byte_to_char(b: u8) -> char {
    BYTE_TO_CHAR[b as usize]
}

/// The byte a character of GPT-2's byte-level alphabet stands for.
fn char_to_byte(c: char) -> Option<u8> {
    CHAR_TO_BYTE.get(c as usize).copied().flatten()
}

/// A token written in GPT-2's byte-level alphabet as the bytes it stands for (a character outside
/// the alphabet stands for its own UTF-8).
pub(super) fn byte_level_bytes(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => bytes.push(b),
            None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_llama_cpp() {
        assert_eq!(Class::of('a'), Class::Letter);
        assert_eq!(Class::of('7'), Class::Number);
        assert_eq!(Class::of('٣'), Class::Number);
        assert_eq!(Class::of('!'), Class::Punctuation);
        assert_eq!(Class::of('$'), Class::Symbol);
        assert_eq!(Class::of('\u{301}'), Class::Mark);
        assert_eq!(Class::of(' '), Class::Other);
        assert_eq!(Class::of('中'), Class::Letter);
        assert_eq!(Class::of('😀'), Class::Symbol);
        // assigned in Unicode 16.0, after llama.cpp's table
        assert_eq!(Class::of('\u{1C89}'), Class::Other);
        assert_eq!(Class::of('\u{10FFFF}'), Class::Other);
    }

    #[test]
    fn byte_alphabet_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(char_to_byte('é'), Some(0xE9));
        assert_eq!(char_to_byte('\u{144}'), None);
    }
}
