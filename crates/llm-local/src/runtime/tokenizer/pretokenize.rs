//! Pre-tokenization of byte-level BPE vocabularies: the regex splits llama.cpp applies for each
//! `tokenizer.ggml.pre` value (`llm_tokenizer_bpe` in `llama-vocab.cpp`), applied the way
//! `unicode_regex_split` applies them, then GPT-2's byte-to-character encoding of every piece.
//!
//! The common regexes have hand-written splitters (`split.rs`, as in llama.cpp). The others run
//! on the regex crate exactly as llama.cpp runs them on `std::regex`: a regex with `\p{..}`
//! classes runs on a "collapsed" text with one byte per codepoint (ASCII stays, other
//! codepoints become one byte per class); a regex without runs on the codepoints, with non-ASCII
//! whitespace replaced by U+000B.

use regex::bytes::{Regex as BytesRegex, RegexBuilder as BytesRegexBuilder};
use regex::Regex;

use super::split;
use super::unicode::{byte_to_char, is_whitespace, Class};

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = concat!(
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
);
const QWEN2: &str = concat!(
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
);
const DEEPSEEK_LETTERS: &str =
    "\\s?[A-Za-z\u{b5}\u{c0}-\u{d6}\u{d8}-\u{f6}\u{f8}-\u{1ba}\u{1bc}-\u{1bf}\u{1c4}-\u{293}\
    \u{295}-\u{2af}\u{370}-\u{373}\u{376}\u{377}\u{37b}-\u{37d}\u{37f}\u{386}\u{388}-\u{38a}\u{38c}\
    \u{38e}-\u{3a1}\u{3a3}-\u{3f5}\u{3f7}-\u{481}\u{48a}-\u{52f}\u{531}-\u{556}\u{10a0}-\u{10c5}\
    \u{13a0}-\u{13f5}\u{13f8}-\u{13fd}\u{1c90}-\u{1cba}\u{1cbd}-\u{1cbf}\u{1d00}-\u{1d2b}\
    \u{1d6b}-\u{1d77}\u{1d79}-\u{1d9a}\u{1e00}-\u{1f15}\u{1f18}-\u{1f1d}\u{1f20}-\u{1f45}\
    \u{1f48}-\u{1f4d}\u{1f50}-\u{1f57}\u{1f59}\u{1f5b}\u{1f5d}\u{1f5f}-\u{1f7d}\u{1f80}-\u{1fb4}\
    \u{1fb6}-\u{1fbc}\u{1fbe}\u{1fc2}-\u{1fc4}\u{1fc6}-\u{1fcc}\u{1fd0}-\u{1fd3}\u{1fd6}-\u{1fdb}\
    \u{1fe0}-\u{1fec}\u{1ff2}-\u{1ff4}\u{1ff6}-\u{1ffc}\u{2102}\u{2107}\u{210a}-\u{2113}\u{2115}\
    \u{2119}-\u{211d}\u{2124}\u{2126}\u{2128}\u{212a}-\u{212d}\u{212f}-\u{2134}\u{2139}\
    \u{213c}-\u{213f}\u{2145}-\u{2149}\u{214e}\u{2183}\u{2184}\u{2c00}-\u{2c7b}\u{2c7e}-\u{2ce4}\
    \u{2ceb}-\u{2cee}\u{2cf2}\u{2cf3}\u{a640}-\u{a66d}\u{a680}-\u{a69b}\u{a722}-\u{a76f}\
    \u{a771}-\u{a787}\u{a78b}-\u{a78e}\u{ab70}-\u{abbf}\u{fb00}-\u{fb06}\u{fb13}-\u{fb17}\
    \u{ff21}-\u{ff3a}\u{ff41}-\u{ff5a}\u{10400}-\u{1044f}\u{104b0}-\u{104d3}\u{104d8}-\u{104fb}\
    \u{10c80}-\u{10cb2}\u{10cc0}-\u{10cf2}\u{118a0}-\u{118df}\u{1e900}-\u{1e943}]+";
const DEEPSEEK_PUNCTUATION: &str =
    "\\s?[!-/:-~\u{ff01}-\u{ff0f}\u{ff1a}-\u{ff5e}\u{2018}-\u{201f}\u{3000}-\u{3002}]+";
const CJK: &str = "[\u{4e00}-\u{9fa5}\u{800}-\u{4e00}\u{ac00}-\u{d7ff}]+";

/// A pre-tokenizer llama.cpp knows.
struct Known {
    /// Its `tokenizer.ggml.pre` values, separated by spaces.
    names: &'static str,
    /// The regexes it applies, in order.
    regexes: &'static [&'static str],
    /// A piece that is a whole token skips the merges.
    ignore_merges: bool,
    /// BOS is added by default.
    add_bos: bool,
}

impl Known {
    fn is(&self, name: &str) -> bool {
        self.names.split(' ').any(|n| n == name)
    }
}

/// The pre-tokenizers of `llm_tokenizer_bpe`, with the names `llama_vocab::impl::load` maps to
/// them (those of generative models whose settings need nothing else).
const TABLE: &[Known] = &[
    Known {
        names: "default",
        regexes: &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
        ignore_merges: false,
        add_bos: false,
    },
    Known {
        names: "gpt-2 phi-2 mpt olmo jais exaone4 trillion granite-docling gigachat a.x-4.0 mellum",
        regexes: &[GPT2],
        ignore_merges: false,
        add_bos: false,
    },
    Known {
        names: "llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano",
        regexes: &[LLAMA3],
        ignore_merges: true,
        add_bos: true,
    },
    Known {
        names: "dbrx smaug-bpe",
        regexes: &[LLAMA3],
        ignore_merges: false,
        add_bos: false,
    },
    Known {
        names: "qwen2 deepseek-r1-qwen kormo f2llmv2 megrez stablelm2 hunyuan solar-open grok-2",
        regexes: &[QWEN2],
        ignore_merges: false,
        add_bos: false,
    },
    Known {
        names: "smollm starcoder refact command-r codeshell exaone minerva-7b mellum2",
        regexes: &[r"\p{N}", GPT2],
        ignore_merges: false,
        add_bos: false,
    },
    Known {
        names: "deepseek-llm",
        regexes: &[
            "[\r\n]",
            DEEPSEEK_LETTERS,
            DEEPSEEK_PUNCTUATION,
            "\\s+$",
            CJK,
            r"\p{N}+",
        ],
        ignore_merges: false,
        add_bos: false,
    },
    Known {
        names: "deepseek-coder",
        regexes: &["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK, r"\p{N}"],
        ignore_merges: false,
        add_bos: false,
    },
    Known {
        names: "falcon",
        regexes: &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
        ignore_merges: false,
        add_bos: false,
    },
];

/// Whether llama.cpp adds BOS by default for `tokenizer.ggml.pre == name`.
pub(super) fn adds_bos(name: &str) -> bool {
    TABLE.iter().any(|k| k.is(name) && k.add_bos)
}

/// The `tokenizer.ggml.pre` values this tokenizer supports.
fn supported_names() -> Vec<&'static str> {
    TABLE.iter().flat_map(|k| k.names.split(' ')).collect()
}

/// One split step.
enum Split {
    Gpt2,
    /// Llama-3's regex with at most this many digits per piece (1: Qwen2's).
    Llama3(usize),
    /// A regex with `\p{..}` classes, run on the collapsed text.
    Collapsed(BytesRegex),
    /// A regex without, run on the codepoints.
    Codepoints(Regex),
}

/// A byte-level BPE pre-tokenizer.
pub(super) struct PreTokenizer {
    splits: Vec<Split>,
    /// A piece that is a whole token becomes that token without merges.
    pub(super) ignore_merges: bool,
}

impl PreTokenizer {
    /// The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre == name`.
    pub(super) fn by_name(name: &str) -> Result<PreTokenizer, String> {
        let Some(known) = TABLE.iter().find(|k| k.is(name)) else {
            return Err(format!(
                "unsupported pre-tokenizer tokenizer.ggml.pre = {name:?} (supported: {}); put the \
                 model's tokenizer.json beside the GGUF file to use it instead",
                supported_names().join(", ")
            ));
        };
        let splits = known
            .regexes
            .iter()
            .map(|r| compile(r))
            .collect::<Result<_, _>>()?;
        Ok(PreTokenizer {
            splits,
            ignore_merges: known.ignore_merges,
        })
    }

    /// Splits `text` into pieces, each written in GPT-2's byte-level alphabet.
    pub(super) fn split(&self, text: &str) -> Vec<String> {
        let cpts: Vec<char> = text.chars().collect();
        let mut offsets = vec![cpts.len()];
        let mut collapsed = None;
        for split in &self.splits {
            offsets = match split {
                Split::Gpt2 => split::gpt2(&cpts, &offsets),
                Split::Llama3(digits) => split::llama3(&cpts, &offsets, *digits),
                Split::Collapsed(regex) => {
                    let bytes = collapsed.get_or_insert_with(|| {
                        cpts.iter().map(|&c| collapse(c)).collect::<Vec<u8>>()
                    });
                    regex_split(&offsets, |start, len| {
                        regex
                            .find_iter(&bytes[start..start + len])
                            .map(|m| (m.start(), m.end()))
                            .collect()
                    })
                }
                Split::Codepoints(regex) => regex_split(&offsets, |start, len| {
                    let chunk: String = cpts[start..start + len]
                        .iter()
                        .map(|&c| {
                            if c > '\x7f' && is_whitespace(c) {
                                '\x0b'
                            } else {
                                c
                            }
                        })
                        .collect();
                    let mut char_at = 0;
                    let mut last_byte = 0;
                    let mut to_chars = |byte: usize| {
                        char_at += chunk[last_byte..byte].chars().count();
                        last_byte = byte;
                        char_at
                    };
                    regex
                        .find_iter(&chunk)
                        .map(|m| (to_chars(m.start()), to_chars(m.end())))
                        .collect()
                }),
            };
        }
        let mut start = 0;
        offsets
            .iter()
            .map(|&len| {
                let piece: String = cpts[start..start + len].iter().collect();
                start += len;
                piece.bytes().map(byte_to_char).collect()
            })
            .collect()
    }
}

/// The split step for one of llama.cpp's regexes.
fn compile(regex: &str) -> Result<Split, String> {
    let split = match regex {
        GPT2 => Split::Gpt2,
        LLAMA3 => Split::Llama3(3),
        QWEN2 => Split::Llama3(1),
        _ if regex.contains(r"\p{") => Split::Collapsed(
            BytesRegexBuilder::new(&collapse_regex(regex))
                .unicode(false)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        _ => Split::Codepoints(Regex::new(regex).map_err(|e| e.to_string())?),
    };
    Ok(split)
}

/// Splits every chunk of `offsets` at the matches `find(start, len)` returns (codepoint ranges
/// relative to the chunk): matches and the text between them become pieces.
fn regex_split(
    offsets: &[usize],
    find: impl Fn(usize, usize) -> Vec<(usize, usize)>,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for &len in offsets {
        let mut done = 0;
        for (m_start, m_end) in find(start, len) {
            if m_start > done {
                out.push(m_start - done);
            }
            if m_end > m_start {
                out.push(m_end - m_start);
            }
            done = m_end;
        }
        if done < len {
            out.push(len - done);
        }
        start += len;
    }
    out
}

/// The one-byte stand-in of a codepoint in the collapsed text.
fn collapse(c: char) -> u8 {
    if c.is_ascii() {
        return c as u8;
    }
    if is_whitespace(c) {
        return 0x0B;
    }
    match Class::of(c) {
        Class::Number => 0xD1,
        Class::Letter => 0xD2,
        Class::Punctuation => 0xD3,
        Class::Mark => 0xD4,
        Class::Symbol => 0xD5,
        Class::Other => 0xD0,
    }
}

/// A regex with `\p{..}` classes rewritten for the collapsed text: each class becomes its
/// stand-in byte plus its ASCII members (as llama.cpp's `k_ucat_map`).
fn collapse_regex(regex: &str) -> String {
    const CLASSES: &[(&str, &str)] = &[
        (r"\p{N}", r"\xD10-9"),
        (r"\p{L}", r"\xD2A-Za-z"),
        (r"\p{P}", r"\xD3!-#%-*,-/:-;?-@\[-\]_\{\}"),
        (r"\p{M}", r"\xD4"),
        (r"\p{S}", r"\xD5\$\+<->\^`\|~"),
    ];
    let mut out = String::new();
    let mut inside = false;
    let mut rest = regex;
    let mut prev = None;
    while let Some(c) = rest.chars().next() {
        if let Some(&(class, members)) = CLASSES.iter().find(|(class, _)| rest.starts_with(class)) {
            if inside {
                out.push_str(members);
            } else {
                out.push_str(&format!("[{members}]"));
            }
            rest = &rest[class.len()..];
            prev = Some('}');
            continue;
        }
        if c == '[' && prev != Some('\\') {
            inside = true;
        } else if c == ']' && inside && prev != Some('\\') {
            inside = false;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
        prev = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_regex_compiles() {
        for name in supported_names() {
            let pre = PreTokenizer::by_name(name).expect("regexes compile");
            assert!(!pre.split("Hello, World! 12345 日本語 ١٢٣").is_empty());
        }
    }

    #[test]
    fn collapsed_regexes_keep_ascii_members() {
        assert_eq!(collapse_regex(r"\p{N}+"), r"[\xD10-9]+");
        assert_eq!(
            collapse_regex(r"[\p{P}\$]+"),
            r"[\xD3!-#%-*,-/:-;?-@\[-\]_\{\}\$]+"
        );
    }

    #[test]
    fn smollm_splits_digits_and_encodes_bytes() {
        let pre = PreTokenizer::by_name("smollm").expect("supported");
        assert_eq!(pre.split("ab 123 é"), ["ab", "Ġ", "1", "2", "3", "ĠÃ©"]);
    }
}
