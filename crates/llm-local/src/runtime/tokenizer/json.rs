//! A Hugging Face `tokenizer.json` (the `tokenizers` crate), used instead of the GGUF vocabulary
//! when one lies beside the model file.

use std::path::Path;

use tokenizers::decoders::DecoderWrapper;

use super::unicode::byte_level_bytes;

/// Token ids from this on are refused (the largest vocabularies hold about a million tokens).
const MAX_ID: usize = 1 << 24;

/// A `tokenizer.json` tokenizer.
pub(super) struct JsonTokenizer {
    /// Recognises special added tokens written in the text.
    parsing: tokenizers::Tokenizer,
    /// Treats special added tokens as text (non-special added tokens still count, as llama.cpp's
    /// user-defined tokens do).
    plain: tokenizers::Tokenizer,
    /// Every token's text, by id (empty where no token has the id).
    texts: Vec<String>,
    /// What each token prints as.
    pieces: Vec<Vec<u8>>,
    /// The special added tokens (control tokens), sorted.
    special: Vec<u32>,
}

impl JsonTokenizer {
    /// Reads `path`.
    pub(super) fn from_file(path: &Path) -> Result<JsonTokenizer, String> {
        let parsing = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut plain = parsing.clone();
        plain.set_encode_special_tokens(true);
        let vocab = parsing.get_vocab(true);
        let len = vocab.values().max().map_or(0, |&id| id as usize + 1);
        if len > MAX_ID {
            return Err(format!(
                "{} has token id {}, beyond any vocabulary",
                path.display(),
                len - 1
            ));
        }
        let mut texts = vec![String::new(); len];
        for (text, id) in vocab {
            texts[id as usize] = text;
        }
        let added = parsing.get_added_tokens_decoder();
        let decoder = parsing.get_decoder();
        let byte_level =
            decoder.is_some_and(|d| has(d, &|d| matches!(d, DecoderWrapper::ByteLevel(_))));
        let byte_fallback =
            decoder.is_some_and(|d| has(d, &|d| matches!(d, DecoderWrapper::ByteFallback(_))));
        let pieces = texts
            .iter()
            .enumerate()
            .map(|(id, text)| {
                if added.contains_key(&(id as u32)) {
                    text.as_bytes().to_vec()
                } else if byte_level {
                    byte_level_bytes(text)
                } else {
                    sentencepiece_bytes(text, byte_fallback)
                }
            })
            .collect();
        let mut special: Vec<u32> = added
            .iter()
            .filter(|(_, token)| token.special)
            .map(|(&id, _)| id)
            .collect();
        special.sort_unstable();
        Ok(JsonTokenizer {
            special,
            parsing,
            plain,
            texts,
            pieces,
        })
    }

    /// The tokens of `text`, recognising special tokens written in it when `parse_special`.
    pub(super) fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, String> {
        let tokenizer = if parse_special {
            &self.parsing
        } else {
            &self.plain
        };
        let encoding = tokenizer
            .encode(text, false)
            .map_err(|e| format!("tokenizer.json failed to encode: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids` by the tokenizer's own decoder, special tokens included.
    pub(super) fn decode(&self, ids: &[u32]) -> Option<String> {
        self.parsing.decode(ids, false).ok()
    }

    /// Every token's text, by id.
    pub(super) fn texts(&self) -> &[String] {
        &self.texts
    }

    /// The token whose text is `text`.
    pub(super) fn id(&self, text: &str) -> Option<u32> {
        self.parsing.token_to_id(text)
    }

    /// Whether token `id` is a special added token.
    pub(super) fn is_special(&self, id: u32) -> bool {
        self.special.binary_search(&id).is_ok()
    }

    /// What token `id` prints as; empty for unknown ids.
    pub(super) fn piece(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }
}

/// Whether `decoder` is or contains a decoder that `is` accepts.
fn has(decoder: &DecoderWrapper, is: &dyn Fn(&DecoderWrapper) -> bool) -> bool {
    match decoder {
        DecoderWrapper::Sequence(seq) => seq.get_decoders().iter().any(|d| has(d, is)),
        d => is(d),
    }
}

/// A SentencePiece token as bytes: `▁` is a space, `<0xNN>` byte NN when the decoder falls back
/// to bytes.
fn sentencepiece_bytes(text: &str, byte_fallback: bool) -> Vec<u8> {
    let hex = text
        .strip_prefix("<0x")
        .and_then(|t| t.strip_suffix('>'))
        .filter(|h| h.len() == 2);
    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
        Some(b) if byte_fallback => vec![b],
        _ => text.replace('▁', " ").into_bytes(),
    }
}
