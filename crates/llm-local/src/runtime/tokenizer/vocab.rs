//! The vocabulary in a GGUF file's metadata, loaded and applied as llama.cpp's `llama_vocab` does
//! (`load` and `tokenize` in `llama-vocab.cpp`).

use std::collections::HashMap;

use super::bpe::{self, Merges};
use super::metadata::Metadata;
use super::pretokenize::{adds_bos, PreTokenizer};
use super::special::{attr, end_of_generation, Fragment, SpecialTokens};
use super::spm;
use super::unicode::byte_level_bytes;

/// How text fragments become tokens.
enum Algorithm {
    /// `tokenizer.ggml.model == "llama"`: SentencePiece BPE by scores with byte fallback.
    SentencePiece {
        /// The fallback token of every byte.
        byte_tokens: Box<[Option<u32>; 256]>,
    },
    /// `tokenizer.ggml.model == "gpt2"`: byte-level BPE by merge ranks.
    ByteLevel { pre: PreTokenizer, merges: Merges },
}

/// A GGUF vocabulary.
pub(super) struct Vocab {
    texts: Vec<String>,
    scores: Vec<f32>,
    ids: HashMap<String, u32>,
    algorithm: Algorithm,
    special_tokens: SpecialTokens,
    /// What each token prints as (llama.cpp's `token_to_piece` with `special`).
    pieces: Vec<Vec<u8>>,
    /// Whether each token is a control, unknown or unused token rather than text.
    control: Vec<bool>,
    /// The beginning-of-sequence token.
    pub(super) bos: Option<u32>,
    /// The end-of-sequence token.
    pub(super) eos: Option<u32>,
    /// Whether the model expects BOS at the start of a prompt.
    pub(super) add_bos: bool,
    /// SentencePiece's dummy prefix: a space before the text (and after each special token).
    pub(super) add_space_prefix: bool,
    /// The tokens that end generation, sorted.
    pub(super) eog: Vec<u32>,
}

/// The special ids and flags of a vocabulary: the metadata's, else llama.cpp's defaults for the
/// tokenizer model.
pub(super) struct Settings {
    pub(super) bos: Option<u32>,
    pub(super) eos: Option<u32>,
    pub(super) unk: Option<u32>,
    pub(super) add_bos: bool,
    pub(super) add_space_prefix: bool,
}

impl Settings {
    /// The settings of a vocabulary of `n` tokens described by `meta`.
    pub(super) fn read(meta: &Metadata, n: usize) -> Result<Settings, String> {
        let (bos, eos, unk, add_bos, add_space_prefix) = match meta.string(MODEL)? {
            Some("llama") => (Some(1), Some(2), Some(0), true, true),
            Some("gpt2") => (Some(11), Some(11), None, adds_bos(pre_name(meta)?), false),
            _ => (None, None, None, false, false),
        };
        let default = |id: Option<u32>| id.filter(|&id| (id as usize) < n);
        Ok(Settings {
            bos: meta_id(meta, "tokenizer.ggml.bos_token_id", n)?.or(default(bos)),
            eos: meta_id(meta, "tokenizer.ggml.eos_token_id", n)?.or(default(eos)),
            unk: meta_id(meta, "tokenizer.ggml.unknown_token_id", n)?.or(default(unk)),
            add_bos: meta
                .bool("tokenizer.ggml.add_bos_token")?
                .unwrap_or(add_bos),
            add_space_prefix: meta
                .bool("tokenizer.ggml.add_space_prefix")?
                .unwrap_or(add_space_prefix),
        })
    }
}

/// A token id from the metadata; `None` when absent or not below `n` (llama.cpp ignores those).
pub(super) fn meta_id(meta: &Metadata, key: &str, n: usize) -> Result<Option<u32>, String> {
    Ok(meta
        .uint(key)?
        .and_then(|id| u32::try_from(id).ok())
        .filter(|&id| (id as usize) < n))
}

/// `tokenizer.ggml.pre`, `default` when missing or empty (as llama.cpp).
fn pre_name<'a>(meta: &Metadata<'a>) -> Result<&'a str, String> {
    Ok(meta
        .string("tokenizer.ggml.pre")?
        .filter(|p| !p.is_empty())
        .unwrap_or("default"))
}

const MODEL: &str = "tokenizer.ggml.model";

impl Vocab {
    /// Reads the vocabulary from GGUF metadata.
    pub(super) fn from_metadata(meta: &Metadata) -> Result<Vocab, String> {
        let model = meta
            .string(MODEL)?
            .ok_or("tokenizer.ggml.model is missing: the file has no tokenizer")?;
        if !matches!(model, "llama" | "gpt2") {
            return Err(format!(
                "unsupported tokenizer model {MODEL} = {model:?} (supported: \"llama\", \
                 SentencePiece; \"gpt2\", byte-level BPE); put the model's tokenizer.json beside \
                 the GGUF file to use it instead"
            ));
        }
        let texts = token_texts(meta)?;
        let n = texts.len();
        let count = |key: &str, len: usize| -> Result<(), String> {
            if len < n {
                return Err(format!("{key} has {len} values for {n} tokens"));
            }
            Ok(())
        };
        let scores = meta
            .floats("tokenizer.ggml.scores")?
            .unwrap_or_else(|| vec![0.0; n]);
        count("tokenizer.ggml.scores", scores.len())?;
        let mut attrs: Vec<u16> = match meta.ints("tokenizer.ggml.token_type")? {
            Some(types) => {
                count("tokenizer.ggml.token_type", types.len())?;
                types.iter().take(n).map(|&t| token_type_attr(t)).collect()
            }
            None => vec![attr::NORMAL; n],
        };
        let mut ids = HashMap::with_capacity(n);
        for (id, text) in texts.iter().enumerate() {
            if let Some(first) = ids.insert(text.clone(), id as u32) {
                return Err(format!(
                    "tokenizer.ggml.tokens holds {text:?} twice (ids {first} and {id})"
                ));
            }
        }
        let settings = Settings::read(meta, n)?;
        let algorithm = match model {
            "llama" => Algorithm::SentencePiece {
                byte_tokens: byte_tokens(&ids, settings.unk),
            },
            _ => Algorithm::ByteLevel {
                pre: PreTokenizer::by_name(pre_name(meta)?)?,
                merges: merges(meta, &ids)?,
            },
        };
        let eog = end_of_generation(
            &texts,
            settings.eos,
            |key| meta_id(meta, key, n),
            |id| attrs[id as usize] |= attr::CONTROL,
        )?;
        if let Some(name) = meta.string("general.name")? {
            phi3_strip(&name.to_lowercase(), &texts, &ids, &mut attrs);
        }
        let pieces = texts
            .iter()
            .zip(&attrs)
            .map(|(text, &a)| piece(text, a, &algorithm))
            .collect();
        let special_tokens = SpecialTokens::new(&texts, &attrs);
        let control = attrs
            .iter()
            .map(|&a| a & (attr::CONTROL | attr::UNKNOWN | attr::UNUSED) != 0)
            .collect();
        let Settings {
            bos,
            eos,
            add_bos,
            add_space_prefix,
            ..
        } = settings;
        Ok(Vocab {
            texts,
            scores,
            ids,
            algorithm,
            special_tokens,
            pieces,
            control,
            bos,
            eos,
            add_bos,
            add_space_prefix,
            eog,
        })
    }

    /// Appends the tokens of one text fragment by SentencePiece, after the dummy-prefix space
    /// when the fragment follows a special token or starts the text.
    fn sentencepiece(
        &self,
        text: &str,
        after_special: bool,
        byte_tokens: &[Option<u32>; 256],
        out: &mut Vec<u32>,
    ) -> Result<(), String> {
        let prefix = if self.add_space_prefix && after_special {
            "▁"
        } else {
            ""
        };
        let escaped = format!("{prefix}{}", text.replace(' ', "▁"));
        spm::encode(
            &escaped,
            &self.ids,
            &self.scores,
            |b| byte_tokens[b as usize],
            out,
        )
        .map_err(|b| {
            format!(
                "the vocabulary has no token for byte 0x{b:02X} (no <0x{b:02X}>, no unknown token)"
            )
        })
    }

    /// The number of tokens.
    pub(super) fn len(&self) -> usize {
        self.texts.len()
    }

    /// The token whose vocabulary text is `text`.
    pub(super) fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// What token `id` prints as; empty for unknown ids.
    pub(super) fn piece(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Whether token `id` is a control, unknown or unused token (not text); unknown ids are.
    pub(super) fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(true)
    }

    /// The tokens of `text`, recognising special tokens written in it (control and unknown
    /// tokens only when `parse_control`), after BOS when `add_bos`.
    pub(super) fn encode(
        &self,
        text: &str,
        parse_control: bool,
        add_bos: bool,
    ) -> Result<Vec<u32>, String> {
        let mut out = Vec::new();
        if add_bos {
            out.push(
                self.bos
                    .ok_or("BOS was asked for, but the vocabulary has no BOS token")?,
            );
        }
        let fragments = self
            .special_tokens
            .partition(&self.texts, text, parse_control);
        match &self.algorithm {
            Algorithm::SentencePiece { byte_tokens } => {
                let mut after_special = true;
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(start, end) => {
                            let text = &text[start..end];
                            self.sentencepiece(text, after_special, byte_tokens, &mut out)?;
                            after_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            after_special = true;
                        }
                    }
                }
            }
            Algorithm::ByteLevel { pre, merges } => {
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(start, end) => {
                            for word in pre.split(&text[start..end]) {
                                bpe::encode_piece(
                                    &word,
                                    &self.ids,
                                    merges,
                                    pre.ignore_merges,
                                    &mut out,
                                );
                            }
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        Ok(out)
    }
}

/// `tokenizer.ggml.tokens`, with empty texts named as llama.cpp names them.
fn token_texts(meta: &Metadata) -> Result<Vec<String>, String> {
    let tokens = meta
        .strings("tokenizer.ggml.tokens")?
        .ok_or("tokenizer.ggml.tokens is missing: the file has no vocabulary")?;
    if tokens.is_empty() {
        return Err("tokenizer.ggml.tokens is empty".into());
    }
    if u32::try_from(tokens.len()).is_err() {
        return Err(format!(
            "tokenizer.ggml.tokens has {} tokens, more than ids can number",
            tokens.len()
        ));
    }
    Ok(tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.is_empty() {
                format!("[EMPTY_{i}]")
            } else {
                t.to_string()
            }
        })
        .collect())
}

/// The attributes of a `tokenizer.ggml.token_type` value.
fn token_type_attr(token_type: i64) -> u16 {
    match token_type {
        1 => attr::NORMAL,
        2 => attr::UNKNOWN,
        3 => attr::CONTROL,
        4 => attr::USER_DEFINED,
        5 => attr::UNUSED,
        6 => attr::BYTE,
        _ => 0,
    }
}

/// `tokenizer.ggml.merges` ("left right", by rank), checked against the vocabulary.
fn merges(meta: &Metadata, ids: &HashMap<String, u32>) -> Result<Merges, String> {
    let key = "tokenizer.ggml.merges";
    let list = meta
        .strings(key)?
        .ok_or("tokenizer.ggml.merges is missing: a gpt2 (BPE) vocabulary needs its merges")?;
    let mut merges = Merges::with_capacity(list.len());
    for (rank, merge) in list.iter().enumerate() {
        // llama.cpp splits at the first space after the first byte
        let split = merge.bytes().skip(1).position(|b| b == b' ').map(|i| i + 1);
        let Some((left, right)) = split.map(|i| (&merge[..i], &merge[i + 1..])) else {
            return Err(format!(
                "{key}[{rank}] = {merge:?} is not two tokens separated by a space"
            ));
        };
        let id = |text: &str| {
            ids.get(text).copied().ok_or_else(|| {
                format!("{key}[{rank}] = {merge:?} refers to {text:?}, which is not a token")
            })
        };
        let (l, r, merged) = (id(left)?, id(right)?, id(&format!("{left}{right}"))?);
        merges.entry((l, r)).or_insert((rank as u32, merged));
    }
    Ok(merges)
}

/// The fallback token of every byte: `<0xNN>`, else the byte as a one-byte token, else unknown.
fn byte_tokens(ids: &HashMap<String, u32>, unk: Option<u32>) -> Box<[Option<u32>; 256]> {
    let mut table = Box::new([None; 256]);
    for (b, slot) in table.iter_mut().enumerate() {
        let single = u8::try_from(b)
            .ok()
            .filter(u8::is_ascii)
            .map(|b| char::from(b).to_string());
        *slot = ids
            .get(&format!("<0x{b:02X}>"))
            .or_else(|| single.and_then(|s| ids.get(&s)))
            .copied()
            .or(unk);
    }
    table
}

/// What a token prints as (llama.cpp's `token_to_piece` with `special`): special and
/// user-defined tokens their text, normal tokens their text decoded, byte tokens their byte,
/// unused tokens nothing.
fn piece(text: &str, attrs: u16, algorithm: &Algorithm) -> Vec<u8> {
    if attrs & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
        return text.as_bytes().to_vec();
    }
    if attrs & attr::NORMAL != 0 {
        return match algorithm {
            Algorithm::SentencePiece { .. } => text.replace('▁', " ").into_bytes(),
            Algorithm::ByteLevel { .. } => byte_level_bytes(text),
        };
    }
    if attrs & attr::BYTE != 0 {
        let hex = text.strip_prefix("<0x").and_then(|t| t.strip_suffix('>'));
        return match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) => vec![b],
            None => text.as_bytes().to_vec(),
        };
    }
    Vec::new()
}

/// llama.cpp's per-model rule for Phi-3: whitespace after its special tokens (and `</s>`) is
/// dropped, except after `<unk>`, `<s>` and `<|endoftext|>`.
fn phi3_strip(name: &str, texts: &[String], ids: &HashMap<String, u32>, attrs: &mut [u16]) {
    if !(name.contains("phi-3") || name.contains("phi3")) {
        return;
    }
    for (i, a) in attrs.iter_mut().enumerate() {
        if *a & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0 || texts[i] == "</s>" {
            *a |= attr::RSTRIP;
        }
    }
    for text in ["<unk>", "<s>", "<|endoftext|>"] {
        if let Some(&id) = ids.get(text) {
            attrs[id as usize] &= !attr::RSTRIP;
        }
    }
}
