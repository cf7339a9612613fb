//! The tokenizer of a GGUF model, exactly as llama.cpp tokenizes.
//!
//! [`Tokenizer::from_gguf`] reads the vocabulary from a GGUF file's metadata
//! (`tokenizer.ggml.*`) and reproduces llama.cpp's `llama_tokenize` token for token:
//!
//! * `tokenizer.ggml.model == "gpt2"`: byte-level BPE with merges, after the pre-tokenizer
//!   regexes llama.cpp uses for `tokenizer.ggml.pre` (`default`, `gpt-2`, `llama3`/`llama-bpe`,
//!   `dbrx`, `qwen2`, `deepseek-r1-qwen`, `smollm`, `starcoder`, `deepseek-llm`,
//!   `deepseek-coder`, `falcon` and their aliases), with llama.cpp's own Unicode categories;
//! * `tokenizer.ggml.model == "llama"`: SentencePiece BPE by scores with byte fallback (`▁` for
//!   spaces, a leading space when `tokenizer.ggml.add_space_prefix`), as Gemma and Llama-2 use.
//!
//! Special tokens written in the text (`<|im_start|>`, `<end_of_turn>`: what chat templates
//! produce) become their token in [`Tokenizer::encode`] (llama.cpp's `special = true`);
//! [`Tokenizer::encode_plain`] leaves control tokens as text (`special = false`). User-defined
//! tokens (Gemma's runs of spaces, Qwen's `<tool_call>`) count in both, as in llama.cpp.
//! The end-of-generation set and the tokens llama.cpp forces to control tokens (`</s>`,
//! `<|im_end|>`, the fill-in-the-middle tokens) follow llama.cpp's text-based rules.
//!
//! [`Tokenizer::from_model_path`] prefers a Hugging Face `tokenizer.json` lying beside the model
//! file (through the `tokenizers` crate), for vocabularies llama.cpp's rules here do not cover.
//!
//! The tests hold all this against llama.cpp (`scripts/llamacpp_tokenize_reference.py`) on a
//! corpus of prose, numbers, code, whitespace, punctuation, many scripts, emoji and chat
//! markup: SmolLM2, Qwen2.5 and Gemma-3, and Qwen2.5's vocabulary under each other
//! pre-tokenizer, match on every line.
//!
//! Where llama.cpp has no defined behaviour this tokenizer picks one: llama.cpp sorts special
//! tokens of equal length and walks its token map in an unspecified order (which matters only
//! when two equally long special tokens overlap in a text, or a vocabulary has two candidates
//! for one end-of-turn or fill-in-the-middle role); here both go by id. Where llama.cpp aborts
//! (a SentencePiece vocabulary without a token for a byte) this falls back to the unknown token
//! or returns an error.

mod bpe;
mod json;
mod metadata;
mod pretokenize;
mod special;
mod split;
mod spm;
mod unicode;
mod unicode_data;
mod vocab;

use std::fmt;
use std::path::Path;

use candle_core::quantized::gguf_file::Content;

use self::json::JsonTokenizer;
use self::metadata::Metadata;
use self::vocab::{meta_id, Settings, Vocab};
use crate::LlmError;

/// Where the tokens come from.
enum Backend {
    Gguf(Box<Vocab>),
    Json(Box<JsonTokenizer>),
}

/// A model's tokenizer: text to token ids and back.
pub struct Tokenizer {
    backend: Backend,
    bos: Option<u32>,
    add_bos: bool,
    /// `eos` first, then the other end-of-generation tokens in id order.
    eos_ids: Vec<u32>,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.backend {
            Backend::Gguf(_) => "GGUF metadata",
            Backend::Json(_) => "tokenizer.json",
        };
        f.debug_struct("Tokenizer")
            .field("source", &source)
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("add_bos", &self.add_bos)
            .field("eos_ids", &self.eos_ids)
            .finish()
    }
}

impl Tokenizer {
    /// The tokenizer described by a GGUF file's metadata (read with
    /// `gguf_file::Content::read`).
    ///
    /// Errors ([`LlmError::Load`]) name what is missing or malformed: no `tokenizer.ggml.tokens`,
    /// an unsupported `tokenizer.ggml.model` or `tokenizer.ggml.pre`, merges that refer to
    /// unknown tokens, arrays of the wrong type or length, duplicate tokens.
    pub fn from_gguf(content: &Content) -> Result<Self, LlmError> {
        let meta = Metadata(&content.metadata);
        let source_name = meta
            .string("general.name")
            .ok()
            .flatten()
            .unwrap_or("GGUF metadata")
            .to_string();
        let load_error = |reason| LlmError::Load {
            source_name: source_name.clone(),
            reason,
        };
        let vocab = Vocab::from_metadata(&meta).map_err(load_error)?;
        let eos_ids = eos_first(vocab.eos, &vocab.eog);
        Ok(Tokenizer {
            bos: vocab.bos,
            add_bos: vocab.add_bos,
            eos_ids,
            backend: Backend::Gguf(Box::new(vocab)),
        })
    }

    /// The tokenizer of the model file at `path`, whose GGUF content is `content`: the
    /// `tokenizer.json` beside the file when there is one (BOS, add-BOS and end-of-sequence ids
    /// still come from the GGUF metadata), else [`Tokenizer::from_gguf`].
    pub fn from_model_path(path: &Path, content: &Content) -> Result<Self, LlmError> {
        let json_path = path.with_file_name("tokenizer.json");
        if !json_path.is_file() {
            return Tokenizer::from_gguf(content);
        }
        let load_error = |reason| LlmError::Load {
            source_name: path.display().to_string(),
            reason,
        };
        let json = JsonTokenizer::from_file(&json_path).map_err(load_error)?;
        let meta = Metadata(&content.metadata);
        let n = json.texts().len();
        let settings = Settings::read(&meta, n).map_err(load_error)?;
        let eos = settings.eos;
        let eog =
            special::end_of_generation(json.texts(), eos, |key| meta_id(&meta, key, n), |_| ())
                .map_err(load_error)?;
        let eos_ids = eos_first(eos, &eog);
        Ok(Tokenizer {
            bos: settings.bos,
            add_bos: settings.add_bos,
            eos_ids,
            backend: Backend::Json(Box::new(json)),
        })
    }

    /// The tokens of `text`, with special tokens written in it (`<|im_start|>`, `<bos>`)
    /// recognised, after BOS when `add_bos` (usually [`Tokenizer::add_bos`]).
    ///
    /// Fails ([`LlmError::Request`]) when `add_bos` is set and the vocabulary has no BOS, or when
    /// a SentencePiece vocabulary can represent neither a character nor its bytes.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, LlmError> {
        self.encode_with(text, true, add_bos)
    }

    /// The tokens of `text` with control tokens written in it taken as plain text (user-defined
    /// tokens still count, as in llama.cpp), without BOS: for continuations and untrusted text.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        self.encode_with(text, false, false)
    }

    fn encode_with(
        &self,
        text: &str,
        parse_special: bool,
        add_bos: bool,
    ) -> Result<Vec<u32>, LlmError> {
        match &self.backend {
            Backend::Gguf(vocab) => vocab.encode(text, parse_special, add_bos),
            Backend::Json(json) => {
                let bos = match (add_bos, self.bos) {
                    (true, None) => {
                        return Err(LlmError::Request(
                            "BOS was asked for, but the vocabulary has no BOS token".into(),
                        ))
                    }
                    (true, Some(bos)) => Some(bos),
                    (false, _) => None,
                };
                json.encode(text, parse_special)
                    .map(|ids| bos.into_iter().chain(ids).collect())
            }
        }
        .map_err(LlmError::Request)
    }

    /// The text of `ids`, special tokens written out. With a GGUF vocabulary it is the
    /// concatenation of [`Tokenizer::token_bytes`] (less the leading space SentencePiece's
    /// `add_space_prefix` put there), so `decode(encode(x)) == x`; llama.cpp's
    /// `clean_up_tokenization_spaces` is not applied. Invalid UTF-8 becomes U+FFFD; unknown ids
    /// are skipped.
    pub fn decode(&self, ids: &[u32]) -> String {
        match &self.backend {
            Backend::Gguf(vocab) => {
                let mut bytes = Vec::new();
                for (i, &id) in ids.iter().enumerate() {
                    let piece = vocab.piece(id);
                    let strip = i == 0 && vocab.add_space_prefix && piece.first() == Some(&b' ');
                    bytes.extend_from_slice(&piece[usize::from(strip)..]);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Backend::Json(json) => json.decode(ids).unwrap_or_else(|| {
                String::from_utf8_lossy(
                    &ids.iter()
                        .flat_map(|&id| json.piece(id))
                        .copied()
                        .collect::<Vec<_>>(),
                )
                .into_owned()
            }),
        }
    }

    /// The raw bytes token `id` stands for (llama.cpp's `token_to_piece` with special tokens
    /// written out): possibly part of a UTF-8 character, so streaming output assembles bytes
    /// before decoding them. Byte-fallback tokens `<0xNN>` give their byte; unused and unknown
    /// ids nothing.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        match &self.backend {
            Backend::Gguf(vocab) => vocab.piece(id).to_vec(),
            Backend::Json(json) => json.piece(id).to_vec(),
        }
    }

    /// Whether token `id` is a control token (`<|im_end|>`, `<bos>`; unknown and unused tokens
    /// too) rather than text, so constrained decoding never produces it as text.
    pub fn is_control(&self, id: u32) -> bool {
        match &self.backend {
            Backend::Gguf(vocab) => vocab.is_control(id),
            Backend::Json(json) => json.is_special(id),
        }
    }

    /// The beginning-of-sequence token, if the vocabulary has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// Whether the model expects BOS before a prompt (`tokenizer.ggml.add_bos_token`, else
    /// llama.cpp's default for the vocabulary type: yes for SentencePiece and Llama-3's BPE).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The tokens that end generation, as llama.cpp's `llama_vocab_is_eog`: the end-of-sequence
    /// token first, then end-of-turn tokens (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`,
    /// `<|endoftext|>`, ...) and the fill-in-the-middle pad/repository/file-separator tokens
    /// present in the vocabulary, in id order.
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_ids.clone()
    }

    /// The number of tokens.
    pub fn vocab_size(&self) -> usize {
        match &self.backend {
            Backend::Gguf(vocab) => vocab.len(),
            Backend::Json(json) => json.texts().len(),
        }
    }

    /// The token whose vocabulary text is exactly `text` (meant for special tokens; ordinary
    /// tokens are spelled as stored: byte-level BPE writes a space `Ġ`, SentencePiece `▁`).
    pub fn id_of(&self, text: &str) -> Option<u32> {
        match &self.backend {
            Backend::Gguf(vocab) => vocab.id(text),
            Backend::Json(json) => json.id(text),
        }
    }
}

/// `eog` with `eos` moved to the front.
fn eos_first(eos: Option<u32>, eog: &[u32]) -> Vec<u32> {
    eos.into_iter()
        .chain(eog.iter().copied().filter(|&id| Some(id) != eos))
        .collect()
}
