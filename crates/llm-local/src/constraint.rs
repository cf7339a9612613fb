//! Constrained decoding: a [`Constraint`] compiled by llguidance against a vocabulary.
//!
//! [`Compiler`] holds llguidance's view of one vocabulary (every token's bytes, with control
//! tokens marked so that no grammar can spell them) and is built once per model.
//! [`Compiler::start`] turns a constraint into a [`TokenConstraint`], which the sampler asks
//! for the allowed tokens before each step ([`TokenConstraint::mask`]) and tells about the
//! token it drew ([`TokenConstraint::advance`]). Tokens are byte strings to llguidance, so
//! byte-fallback pieces and tokens holding part of a multi-byte character are ordinary tokens
//! here: nothing is dropped or decoded early.
//!
//! [`accepts`] checks a finished text against a constraint (a byte-level vocabulary), for
//! backends that cannot constrain their sampling and for tests of grammars.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::{Constraint, LlmError};

/// Tokenizes bytes with the model's own tokenizer (llguidance needs it for forced text).
type Tokenize = Box<dyn Fn(&[u8]) -> Vec<TokenId> + Send + Sync>;

/// A vocabulary as llguidance sees it.
struct Vocabulary {
    trie: TokTrie,
    tokenize: Tokenize,
}

impl TokenizerEnv for Vocabulary {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        (self.tokenize)(s)
    }
}

/// One token of a vocabulary handed to [`Compiler::new`].
pub struct Token {
    /// The bytes the token stands for.
    pub bytes: Vec<u8>,
    /// A control token (`<|im_end|>`, `<bos>`): never produced as text.
    pub control: bool,
}

/// Compiles constraints for one vocabulary.
pub struct Compiler {
    factory: ParserFactory,
    /// The tokens that end generation.
    end_tokens: Vec<TokenId>,
}

impl Compiler {
    /// A compiler for a vocabulary (`tokens` in id order) whose end-of-generation tokens are
    /// `end_tokens` (the first is the one llguidance allows where the constraint is complete;
    /// the sampler allows them all there). `tokenize` is the model's tokenizer.
    pub fn new(
        tokens: &[Token],
        end_tokens: &[TokenId],
        tokenize: impl Fn(&[u8]) -> Vec<TokenId> + Send + Sync + 'static,
    ) -> Result<Self, LlmError> {
        let Some(&eos) = end_tokens.first() else {
            return Err(LlmError::Request(
                "constrained decoding needs an end-of-generation token".into(),
            ));
        };
        let words: Vec<Vec<u8>> = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| {
                let control = token.control || end_tokens.contains(&(id as TokenId));
                if control || token.bytes.is_empty() {
                    special_word(&format!("<[{id}]>"))
                } else {
                    token.bytes.clone()
                }
            })
            .collect();
        let info = TokRxInfo::new(words.len() as u32, eos);
        let vocabulary = Vocabulary {
            trie: TokTrie::from(&info, &words),
            tokenize: Box::new(tokenize),
        };
        let env: TokEnv = Arc::new(vocabulary);
        let factory = ParserFactory::new_simple(&env).map_err(engine)?;
        Ok(Compiler {
            factory,
            end_tokens: end_tokens.to_vec(),
        })
    }

    /// A byte-level vocabulary (token `b` is byte `b`, token 256 ends the text), for checking
    /// finished text.
    pub fn bytes() -> Result<Self, LlmError> {
        let tokens: Vec<Token> = (0..=255u8)
            .map(|b| Token {
                bytes: vec![b],
                // 0xFF marks special tokens to llguidance; it never occurs in UTF-8 text.
                control: b == TokTrie::SPECIAL_TOKEN_MARKER,
            })
            .chain([Token {
                bytes: Vec::new(),
                control: true,
            }])
            .collect();
        Compiler::new(&tokens, &[256], |bytes| {
            bytes.iter().map(|&b| TokenId::from(b)).collect()
        })
    }

    /// Starts following `constraint` from the first generated token. Fails
    /// ([`LlmError::Request`]) on a malformed regex, schema or grammar, with llguidance's
    /// message.
    pub fn start(&self, constraint: &Constraint) -> Result<TokenConstraint, LlmError> {
        let parser = self
            .factory
            .create_parser(grammar(constraint)?)
            .map_err(|e| LlmError::Request(format!("invalid constraint: {e}")))?;
        Ok(TokenConstraint {
            matcher: Matcher::new(Ok(parser)),
            end_tokens: self.end_tokens.clone(),
        })
    }
}

/// A vocabulary word llguidance reads as a special token named `name`.
fn special_word(name: &str) -> Vec<u8> {
    let mut word = vec![TokTrie::SPECIAL_TOKEN_MARKER];
    word.extend_from_slice(name.as_bytes());
    word
}

/// An llguidance error as a backend error.
fn engine(e: impl std::fmt::Display) -> LlmError {
    LlmError::Backend(format!("constraint engine: {e}"))
}

/// The whitespace allowed between two JSON tokens: a few spaces, or one line break with its
/// indentation.
const JSON_WHITESPACE: &str = r"[\x20\x09]{1,8}|[\x20\x09]{0,8}\x0D?\x0A[\x20\x09]{0,32}";

/// llguidance's grammar for a constraint.
fn grammar(constraint: &Constraint) -> Result<TopLevelGrammar, LlmError> {
    Ok(match constraint {
        Constraint::Regex(rx) => TopLevelGrammar::from_regex(rx),
        Constraint::Lark(lark) => TopLevelGrammar::from_lark(lark.clone()),
        Constraint::JsonSchema(schema) => {
            let mut value: serde_json::Value = serde_json::from_str(schema).map_err(|e| {
                LlmError::Request(format!("the JSON Schema is not valid JSON: {e}"))
            })?;
            // Bounded whitespace between JSON tokens, so that a model cannot loop on blank
            // lines; a schema's own `x-guidance` options take precedence.
            if let Some(object) = value.as_object_mut() {
                object.entry("x-guidance").or_insert_with(
                    || serde_json::json!({ "whitespace_pattern": JSON_WHITESPACE }),
                );
            }
            TopLevelGrammar::from_json_schema(value)
        }
        Constraint::Choice(options) => {
            if options.is_empty() {
                return Err(LlmError::Request(
                    "a choice constraint needs at least one option".into(),
                ));
            }
            TopLevelGrammar::from_lark(choice_lark(options))
        }
    })
}

/// A Lark grammar matching exactly one of `options` (Lark strings take JSON escapes).
fn choice_lark(options: &[String]) -> String {
    let alternatives: Vec<String> = options
        .iter()
        .map(|o| serde_json::Value::String(o.clone()).to_string())
        .collect();
    format!("start: {}\n", alternatives.join(" | "))
}

/// The state of one constrained generation.
pub struct TokenConstraint {
    matcher: Matcher,
    end_tokens: Vec<TokenId>,
}

impl TokenConstraint {
    /// Sets the logits of every token the constraint does not allow next to minus infinity
    /// (the end-of-generation tokens are allowed only where the text is complete). Logits past
    /// the vocabulary (padding rows of the output layer) are never allowed.
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<(), LlmError> {
        let allowed = self.matcher.compute_mask_or_eos().map_err(engine)?;
        let end_allowed = self
            .end_tokens
            .first()
            .is_some_and(|&eos| allowed.is_allowed(eos));
        for (id, logit) in logits.iter_mut().enumerate() {
            let id = id as TokenId;
            let ok = if self.end_tokens.contains(&id) {
                end_allowed
            } else {
                (id as usize) < allowed.len() && allowed.is_allowed(id)
            };
            if !ok {
                *logit = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Records the token that was drawn (an end-of-generation token finishes the text).
    pub fn advance(&mut self, token: TokenId) -> Result<(), LlmError> {
        let token = match self.end_tokens.first() {
            Some(&eos) if self.end_tokens.contains(&token) => eos,
            _ => token,
        };
        self.matcher.consume_token(token).map_err(engine)
    }

    /// Whether the text so far is complete under the constraint.
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }

    /// Whether the constraint allows nothing more (the text is complete and cannot grow).
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }
}

/// Whether `text`, as a whole, matches `constraint`. Fails only on a malformed constraint.
pub fn accepts(constraint: &Constraint, text: &str) -> Result<bool, LlmError> {
    let mut state = Compiler::bytes()?.start(constraint)?;
    for &b in text.as_bytes() {
        if state.is_finished() || state.advance(TokenId::from(b)).is_err() {
            return Ok(false);
        }
    }
    Ok(state.is_accepting())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(constraint: &Constraint, text: &str) -> bool {
        accepts(constraint, text).expect("the constraint compiles")
    }

    #[test]
    fn accepts_exactly_what_each_kind_describes() {
        let rx = Constraint::Regex("[0-9]{2,3}-[a-z]+".into());
        assert!(check(&rx, "123-abc"));
        assert!(!check(&rx, "1-abc"));
        assert!(!check(&rx, "123-abc!"));

        let choice = Constraint::Choice(vec!["0123".into(), "01\"23".into(), "é4".into()]);
        for ok in ["0123", "01\"23", "é4"] {
            assert!(check(&choice, ok), "{ok}");
        }
        assert!(!check(&choice, "012"));
        assert!(!check(&choice, "01234"));

        let schema = Constraint::JsonSchema(
            r#"{"type":"object","properties":{"problem":{"type":"string"}},"required":["problem"],"additionalProperties":false}"#.into(),
        );
        assert!(check(&schema, r#"{"problem": "too deep"}"#));
        assert!(!check(&schema, r#"{"problem": 3}"#));
        assert!(!check(&schema, r#"{"other": "x"}"#));

        let lark = Constraint::Lark("start: \"(\" start \")\" | \"x\"\n".into());
        assert!(check(&lark, "((x))"));
        assert!(!check(&lark, "((x)"));
    }

    #[test]
    fn malformed_constraints_are_request_errors() {
        for bad in [
            Constraint::Regex("(".into()),
            Constraint::JsonSchema("{".into()),
            Constraint::Lark("start: missing_rule\n".into()),
            Constraint::Choice(Vec::new()),
        ] {
            let err = accepts(&bad, "x").expect_err("malformed");
            assert!(matches!(err, LlmError::Request(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_mask_allows_end_tokens_only_where_the_text_is_complete() {
        // Vocabulary: "a", "b", "ab", <end>, <ctl>.
        let tokens: Vec<Token> = ["a", "b", "ab", "", "<ctl>"]
            .iter()
            .enumerate()
            .map(|(i, t)| Token {
                bytes: t.as_bytes().to_vec(),
                control: i >= 3,
            })
            .collect();
        // llguidance tokenizes forced text itself, so the tokenizer must be the vocabulary's.
        let greedy = |bytes: &[u8]| {
            let mut ids = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                let (id, len) = if rest.starts_with(b"ab") {
                    (2, 2)
                } else {
                    (u32::from(rest[0] == b'b'), 1)
                };
                ids.push(id);
                rest = &rest[len..];
            }
            ids
        };
        let compiler = Compiler::new(&tokens, &[3], greedy).expect("compiler");
        let mut state = compiler
            .start(&Constraint::Regex("[ab]b(ab)?".into()))
            .expect("start");
        let allowed = |state: &mut TokenConstraint| {
            let mut logits = vec![0.0f32; 6];
            state.mask(&mut logits).expect("mask");
            (0..6).filter(|&i| logits[i] == 0.0).collect::<Vec<_>>()
        };
        assert_eq!(allowed(&mut state), vec![0, 1, 2]);
        state.advance(0).expect("a");
        assert_eq!(allowed(&mut state), vec![1]);
        state.advance(1).expect("b");
        assert_eq!(allowed(&mut state), vec![0, 2, 3]);
        state.advance(2).expect("ab");
        assert!(state.is_accepting());
        assert_eq!(allowed(&mut state), vec![3]);
    }
}
