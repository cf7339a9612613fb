//! [`GgufModel`]: a GGUF file served in process through the [`LanguageModel`] trait.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};

use super::gguf::{Architecture, GgufFile};
use super::sampler::Sampler;
use super::template::{ChatTemplate, CHATML, GEMMA, LLAMA3};
use super::tokenizer::Tokenizer;
use super::transformer::{log_probs, Config, TensorSource, Transformer};
use crate::constraint::{Compiler, Token, TokenConstraint};
use crate::{
    Completion, Constraint, ContinuationScore, Enforcement, FinishReason, LanguageModel, LlmError,
    Message, Sampling, Timing, Usage,
};

/// A tensor error as a backend error: its first line (candle appends a backtrace when
/// `RUST_BACKTRACE` is set).
fn backend(e: candle_core::Error) -> LlmError {
    let message = e.to_string();
    LlmError::Backend(message.lines().next().unwrap_or_default().to_string())
}

/// A local GGUF model: tokenizer, chat template and our own forward pass with a prefix cache.
pub struct GgufModel {
    name: String,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    transformer: Transformer,
    /// Tokens whose keys and values are in the cache, in order.
    cached: Vec<u32>,
    /// The vocabulary compiled for constrained decoding, built on first use.
    compiler: Option<Compiler>,
}

impl GgufModel {
    /// Loads a model from a GGUF file on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, LlmError> {
        let file = GgufFile::open(path)?;
        let load_err = |reason: String| LlmError::Load {
            source_name: path.display().to_string(),
            reason,
        };
        let config = Config::from_gguf(&file)?;
        let tokenizer = Tokenizer::from_model_path(path, file.content())?;
        let piece = |id: Option<u32>| {
            id.map(|i| String::from_utf8_lossy(&tokenizer.token_bytes(i)).into_owned())
                .unwrap_or_default()
        };
        let (bos, eos) = (
            piece(tokenizer.bos_id()),
            piece(tokenizer.eos_ids().first().copied()),
        );
        let source = match file.chat_template() {
            Some(t) => t,
            None if file.architecture() == Architecture::Gemma3 => GEMMA.to_string(),
            None if tokenizer.id_of("<|start_header_id|>").is_some() => LLAMA3.to_string(),
            None => CHATML.to_string(),
        };
        let template = ChatTemplate::new(&source, &bos, &eos)?;
        let mut reader = file.reader()?;
        let mut tensors = TensorSource {
            content: file.content(),
            reader: &mut reader,
            device,
        };
        let transformer =
            Transformer::load(config, &mut tensors).map_err(|e| load_err(e.to_string()))?;
        let name = path
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        Ok(GgufModel {
            name,
            tokenizer: Arc::new(tokenizer),
            template,
            transformer,
            cached: Vec::new(),
            compiler: None,
        })
    }

    /// Starts following `constraint`, compiling the vocabulary for llguidance on first use.
    fn start_constraint(&mut self, constraint: &Constraint) -> Result<TokenConstraint, LlmError> {
        if let Some(compiler) = &self.compiler {
            return compiler.start(constraint);
        }
        let tokenizer = &self.tokenizer;
        let tokens: Vec<Token> = (0..tokenizer.vocab_size() as u32)
            .map(|id| Token {
                bytes: tokenizer.token_bytes(id),
                control: tokenizer.is_control(id),
            })
            .collect();
        // Forced text may stop inside a UTF-8 character: such bytes become their byte tokens.
        let mut byte_tokens = [None; 256];
        for (id, token) in tokens.iter().enumerate().rev() {
            if let ([b], false) = (token.bytes.as_slice(), token.control) {
                byte_tokens[usize::from(*b)] = Some(id as u32);
            }
        }
        let shared = Arc::clone(tokenizer);
        let tokenize = move |bytes: &[u8]| {
            let mut ids = Vec::new();
            for chunk in bytes.utf8_chunks() {
                ids.extend(shared.encode_plain(chunk.valid()).unwrap_or_default());
                ids.extend(
                    chunk
                        .invalid()
                        .iter()
                        .filter_map(|&b| byte_tokens[usize::from(b)]),
                );
            }
            ids
        };
        let compiler = Compiler::new(&tokens, &tokenizer.eos_ids(), tokenize)?;
        let state = compiler.start(constraint);
        self.compiler = Some(compiler);
        state
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Feeds `tokens`, reusing the cached prefix they share with what was fed before; returns
    /// the logits of the last `n_logits` positions and how many tokens came from the cache.
    fn feed(&mut self, tokens: &[u32], n_logits: usize) -> Result<(Tensor, usize), LlmError> {
        let limit = self.transformer.context_length();
        if tokens.len() > limit {
            return Err(LlmError::Request(format!(
                "{} tokens do not fit in the model's context of {limit} tokens",
                tokens.len()
            )));
        }
        let mut common = self
            .cached
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count();
        // At least one token must be computed to get logits.
        common = common.min(tokens.len().saturating_sub(n_logits.max(1)));
        self.transformer.truncate_cache(common).map_err(backend)?;
        self.cached.truncate(common);
        let logits = self
            .transformer
            .forward(&tokens[common..], n_logits)
            .map_err(|e| {
                self.cached.clear();
                let _ = self.transformer.truncate_cache(0);
                backend(e)
            })?;
        self.cached.extend_from_slice(&tokens[common..]);
        Ok((logits, common))
    }
}

/// Text assembled from token bytes, released only up to complete UTF-8 characters.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let out: Vec<u8> = self.pending.drain(..valid).collect();
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl LanguageModel for GgufModel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn render_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, LlmError> {
        self.template.render(messages, add_generation_prompt)
    }

    fn complete(
        &mut self,
        prompt: &str,
        sampling: &Sampling,
        mut on_text: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let mut tokens = self.tokenizer.encode(prompt, self.tokenizer.add_bos())?;
        if tokens.is_empty() {
            return Err(LlmError::Request("the prompt is empty".into()));
        }
        let prompt_tokens = tokens.len();
        let (logits, cached) = self.feed(&tokens, 1)?;
        let prefill_seconds = started.elapsed().as_secs_f64();
        let decode_started = Instant::now();
        let mut sampler = Sampler::new(sampling);
        let mut constraint = match &sampling.constraint {
            Some(c) => Some(self.start_constraint(c)?),
            None => None,
        };
        let eos = self.tokenizer.eos_ids();
        let (mut text, mut stream) = (String::new(), Utf8Stream::default());
        let mut logits: Vec<f32> = logits
            .squeeze(0)
            .and_then(|l| l.to_vec1())
            .map_err(backend)?;
        let mut finish = FinishReason::Length;
        let mut generated = 0;
        while generated < sampling.max_tokens {
            if let Some(c) = constraint.as_mut() {
                c.mask(&mut logits)?;
            }
            let next = sampler.sample(&mut logits, &tokens);
            generated += 1;
            if eos.contains(&next) {
                finish = FinishReason::EndOfText;
                break;
            }
            if let Some(c) = constraint.as_mut() {
                c.advance(next)?;
            }
            tokens.push(next);
            let piece = stream.push(&self.tokenizer.token_bytes(next));
            text.push_str(&piece);
            if let Some(at) = sampling
                .stop
                .iter()
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                text.truncate(at);
                finish = FinishReason::Stop;
                break;
            }
            if let Some(cb) = on_text.as_mut() {
                cb(&piece);
            }
            if constraint
                .as_ref()
                .is_some_and(TokenConstraint::is_finished)
            {
                finish = FinishReason::EndOfText;
                break;
            }
            if generated == sampling.max_tokens || tokens.len() >= self.transformer.context_length()
            {
                break;
            }
            let (l, _) = self.feed(&tokens, 1)?;
            logits = l.squeeze(0).and_then(|l| l.to_vec1()).map_err(backend)?;
        }
        Ok(Completion {
            text,
            finish,
            usage: Usage {
                prompt_tokens,
                cached_prompt_tokens: cached,
                completion_tokens: generated,
            },
            timing: Timing {
                prefill_seconds,
                decode_seconds: decode_started.elapsed().as_secs_f64(),
            },
            enforcement: if constraint.is_some() {
                Enforcement::Decoding
            } else {
                Enforcement::Unconstrained
            },
        })
    }

    fn score(
        &mut self,
        context: &str,
        continuations: &[String],
    ) -> Result<Vec<ContinuationScore>, LlmError> {
        let context_ids = self.tokenizer.encode(context, self.tokenizer.add_bos())?;
        if context_ids.is_empty() {
            return Err(LlmError::Request("the context is empty".into()));
        }
        continuations
            .iter()
            .map(|c| {
                let cont = self.tokenizer.encode_plain(c)?;
                if cont.is_empty() {
                    return Err(LlmError::Request(format!(
                        "the continuation {c:?} has no tokens"
                    )));
                }
                let all: Vec<u32> = context_ids.iter().chain(&cont).copied().collect();
                // Logits of the positions that predict each continuation token.
                let (logits, _) = self.feed(&all[..all.len() - 1], cont.len())?;
                let lp = log_probs(&logits).map_err(backend)?;
                let ids = Tensor::new(cont.as_slice(), lp.device())
                    .and_then(|t| t.unsqueeze(1))
                    .map_err(backend)?;
                let picked: Vec<f32> = lp
                    .gather(&ids, 1)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1())
                    .map_err(backend)?;
                let log_prob: f64 = picked.iter().map(|&v| f64::from(v)).sum();
                Ok(ContinuationScore {
                    log_prob,
                    mean_log_prob: log_prob / cont.len() as f64,
                    tokens: cont.len(),
                })
            })
            .collect()
    }
}
