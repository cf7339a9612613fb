//! The GGUF tokenizer against llama.cpp (`scripts/llamacpp_tokenize_reference.py`): exact ids for
//! every corpus line with special-token parsing on and off, pieces, BOS and end-of-generation
//! ids, for SmolLM2 and Qwen2.5 (committed vocab-only GGUF files) and Gemma-3 (fetched by
//! `../shared/tools/fetch-gguf.sh gemma3-270m`; skipped when absent unless
//! `NAS_REQUIRE_INTEGRATION=1`). Then round trips, byte fallback, bad metadata and
//! `tokenizer.json` preference.
#![cfg(feature = "runtime")]

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

mod common;

use candle_core::quantized::gguf_file::{Content, Value, VersionedMagic};
use common::{gemma_path, TempDir};
use llm_local::runtime::tokenizer::Tokenizer;
use llm_local::LlmError;
use serde_json::Value as Json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer")
}

fn read_json(name: &str) -> Json {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_gguf(path: &Path) -> Content {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Content::read(&mut file).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn corpus() -> Vec<String> {
    read_json("corpus.json")["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l.as_str().expect("string").to_string())
        .collect()
}

fn ids(value: &Json) -> Vec<u32> {
    value
        .as_array()
        .expect("id list")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect()
}

/// FNV-1a over `(u32 length, bytes)` of every piece, as the reference script computes it.
fn piece_digests(tok: &Tokenizer, block: usize) -> Vec<String> {
    (0..tok.vocab_size())
        .collect::<Vec<_>>()
        .chunks(block)
        .map(|ids| {
            let mut h: u64 = 0xCBF2_9CE4_8422_2325;
            for &id in ids {
                let piece = tok.token_bytes(id as u32);
                for b in (piece.len() as u32).to_le_bytes().iter().chain(&piece) {
                    h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01B3);
                }
            }
            format!("{h:016x}")
        })
        .collect()
}

/// Compares `tok` with the llama.cpp reference of `model` on every corpus line.
fn check_against_llama_cpp(model: &str, tok: &Tokenizer) {
    let reference = read_json(&format!("{model}.json"));
    let lines = corpus();
    assert_eq!(
        tok.vocab_size() as u64,
        reference["n_vocab"].as_u64().expect("n_vocab"),
        "{model}: vocabulary size"
    );
    assert_eq!(
        tok.bos_id().map(u64::from),
        reference["bos"].as_u64(),
        "{model}: BOS"
    );
    assert_eq!(
        tok.add_bos(),
        reference["add_bos"].as_bool().expect("add_bos"),
        "{model}: add BOS"
    );
    let mut eos = tok.eos_ids();
    eos.sort_unstable();
    assert_eq!(
        eos,
        ids(&reference["eog"]),
        "{model}: end-of-generation ids"
    );

    let block = reference["piece_block"].as_u64().expect("piece_block") as usize;
    let expected: Vec<&str> = reference["piece_fnv1a"]
        .as_array()
        .expect("digests")
        .iter()
        .map(|d| d.as_str().expect("hex"))
        .collect();
    let got = piece_digests(tok, block);
    let bad: Vec<String> = got
        .iter()
        .zip(&expected)
        .enumerate()
        .filter(|(_, (g, e))| g != e)
        .map(|(i, _)| format!("{}..{}", i * block, (i + 1) * block))
        .collect();
    assert!(
        bad.is_empty(),
        "{model}: token pieces differ from llama.cpp's in ids {bad:?}"
    );

    let mut failures = Vec::new();
    for mode in ["special", "plain"] {
        let expected = reference[mode].as_array().expect("ids per line");
        assert_eq!(
            expected.len(),
            lines.len(),
            "{model}: corpus and fixture disagree"
        );
        let mut exact = 0;
        for (line, want) in lines.iter().zip(expected) {
            let got = match mode {
                "special" => tok.encode(line, false),
                _ => tok.encode_plain(line),
            }
            .expect("encodes");
            if got == ids(want) {
                exact += 1;
            } else {
                failures.push(format!(
                    "{mode} {line:?}:\n  llama.cpp {}\n  ours      {got:?}",
                    want
                ));
            }
        }
        println!(
            "{model}: {exact}/{} lines tokenized exactly as llama.cpp ({mode} mode, {:.1}%)",
            lines.len(),
            100.0 * exact as f64 / lines.len() as f64
        );
    }
    assert!(
        failures.is_empty(),
        "{model}: {} differences from llama.cpp:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // SentencePiece writes spaces as `▁`, so a literal `▁` comes back as a space (as in
    // llama.cpp and sentencepiece)
    let spm = reference["tokenizer_model"] == "llama";
    for line in lines.iter().filter(|line| !(spm && line.contains('▁'))) {
        for ids in [
            tok.encode(line, false).expect("encodes"),
            tok.encode_plain(line).expect("encodes"),
        ] {
            assert_eq!(&tok.decode(&ids), line, "{model}: decode(encode(x)) != x");
        }
    }
}

#[test]
fn smollm2_matches_llama_cpp() {
    let tok = Tokenizer::from_gguf(&read_gguf(&fixtures().join("smollm2-135m.vocab.gguf")))
        .expect("loads");
    check_against_llama_cpp("smollm2-135m", &tok);
}

#[test]
fn qwen25_matches_llama_cpp() {
    let tok = Tokenizer::from_gguf(&read_gguf(
        &fixtures().join("qwen2.5-coder-1.5b.vocab.gguf"),
    ))
    .expect("loads");
    check_against_llama_cpp("qwen2.5-coder-1.5b", &tok);
}

#[test]
fn gemma3_matches_llama_cpp() {
    let Some(path) = gemma_path() else { return };
    let tok = Tokenizer::from_gguf(&read_gguf(&path)).expect("loads");
    check_against_llama_cpp("gemma3-270m", &tok);
    assert_eq!(
        tok.encode("Hi", true).expect("encodes")[0],
        2,
        "<bos> first"
    );
}

#[test]
fn other_pre_tokenizers_match_llama_cpp() {
    let reference = read_json("pre-tokenizers.json");
    let lines = corpus();
    let mut content = read_gguf(&fixtures().join(reference["base"].as_str().expect("base")));
    let mut failures = Vec::new();
    for (pre, expected) in reference["special"].as_object().expect("variants") {
        content
            .metadata
            .insert("tokenizer.ggml.pre".into(), Value::String(pre.clone()));
        let tok = Tokenizer::from_gguf(&content).unwrap_or_else(|e| panic!("{pre}: {e}"));
        let expected = expected.as_array().expect("ids per line");
        let mut exact = 0;
        for (line, want) in lines.iter().zip(expected) {
            let got = tok.encode(line, false).expect("encodes");
            if got == ids(want) {
                exact += 1;
            } else {
                failures.push(format!(
                    "{pre} {line:?}:\n  llama.cpp {want}\n  ours      {got:?}"
                ));
            }
        }
        println!(
            "Qwen2.5 vocabulary with pre-tokenizer {pre}: {exact}/{} lines exactly as llama.cpp",
            lines.len()
        );
    }
    assert!(
        failures.is_empty(),
        "{} differences from llama.cpp:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn chat_special_tokens_are_single_tokens() {
    let tok = Tokenizer::from_gguf(&read_gguf(
        &fixtures().join("qwen2.5-coder-1.5b.vocab.gguf"),
    ))
    .expect("loads");
    let start = tok.id_of("<|im_start|>").expect("ChatML");
    let end = tok.id_of("<|im_end|>").expect("ChatML");
    let ids = tok
        .encode("<|im_start|>user\nhi<|im_end|>", false)
        .expect("encodes");
    assert_eq!((ids[0], ids[ids.len() - 1]), (start, end));
    assert!(!tok
        .encode_plain("<|im_start|>")
        .expect("encodes")
        .contains(&start));
    assert_eq!(
        tok.eos_ids()[0],
        end,
        "the end-of-sequence token comes first"
    );
    assert!(tok
        .eos_ids()
        .contains(&tok.id_of("<|endoftext|>").expect("present")));
}

#[test]
fn tokenizers_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Tokenizer>();
}

#[test]
fn byte_level_pieces_may_split_characters() {
    let tok = Tokenizer::from_gguf(&read_gguf(&fixtures().join("smollm2-135m.vocab.gguf")))
        .expect("loads");
    let text = "中😀é";
    let ids = tok.encode(text, false).expect("encodes");
    let pieces: Vec<Vec<u8>> = ids.iter().map(|&id| tok.token_bytes(id)).collect();
    assert_eq!(pieces.concat(), text.as_bytes());
    let partial = pieces
        .iter()
        .position(|p| std::str::from_utf8(p).is_err())
        .expect("some piece is part of a character");
    assert!(tok.decode(&ids[partial..=partial]).contains('\u{FFFD}'));
    assert_eq!(tok.decode(&ids), text);
    assert!(tok.token_bytes(u32::MAX).is_empty());
    assert_eq!(tok.decode(&[u32::MAX]), "");
}

/// A GGUF content with the given metadata and no tensors.
fn content(metadata: Vec<(&str, Value)>) -> Content {
    Content {
        magic: VersionedMagic::GgufV3,
        metadata: metadata
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        tensor_infos: HashMap::new(),
        tensor_data_offset: 0,
    }
}

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
}

/// A small SentencePiece vocabulary with byte tokens, whose id 3 is the control token `special`.
fn spm_vocab(add_space_prefix: bool, special: &str, name: &str) -> Content {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>", special].map(String::from).to_vec();
    tokens.extend((0..=255).map(|b| format!("<0x{b:02X}>")));
    tokens.extend(["▁", "h", "i", "▁h", "hi", "▁hi"].map(String::from));
    let types: Vec<Value> = (0..tokens.len())
        .map(|i| {
            Value::I32(if i < 4 {
                3
            } else if i < 260 {
                6
            } else {
                1
            })
        })
        .collect();
    let scores: Vec<Value> = (0..tokens.len()).map(|i| Value::F32(-(i as f32))).collect();
    content(vec![
        ("general.name", Value::String(name.into())),
        ("tokenizer.ggml.model", Value::String("llama".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.scores", Value::Array(scores)),
        (
            "tokenizer.ggml.add_space_prefix",
            Value::Bool(add_space_prefix),
        ),
    ])
}

#[test]
fn sentencepiece_falls_back_to_bytes() {
    let tok = Tokenizer::from_gguf(&spm_vocab(true, "<start_of_turn>", "test")).expect("loads");
    assert!(tok.add_bos());
    assert_eq!(tok.bos_id(), Some(1));
    // "▁hi" is the best-scored merge reachable; "€" is three byte tokens
    let ids = tok.encode("hi€", true).expect("encodes");
    assert_eq!(ids, [1, 265, 4 + 0xE2, 4 + 0x82, 4 + 0xAC]);
    assert_eq!(tok.token_bytes(4 + 0xE2), [0xE2]);
    assert_eq!(
        tok.decode(&ids[1..]),
        "hi€",
        "the dummy-prefix space is dropped"
    );
    assert_eq!(tok.decode(&ids[1..3]), "hi\u{FFFD}");
    // after a special token the dummy prefix comes back, as in llama.cpp
    assert_eq!(
        tok.encode("<start_of_turn>hi", false).expect("encodes"),
        [3, 265]
    );
    assert_eq!(tok.encode_plain("hi").expect("encodes"), [265]);
    let no_prefix =
        Tokenizer::from_gguf(&spm_vocab(false, "<start_of_turn>", "test")).expect("loads");
    assert_eq!(no_prefix.encode("hi", false).expect("encodes"), [264]);
}

#[test]
fn phi3_drops_whitespace_after_special_tokens() {
    let phi3 =
        Tokenizer::from_gguf(&spm_vocab(true, "<|end|>", "Phi-3 Mini 4k Instruct")).expect("loads");
    assert_eq!(
        phi3.encode("<|end|> \n hi", false).expect("encodes"),
        [3, 265]
    );
    assert!(phi3.eos_ids().contains(&3), "<|end|> ends generation");
    let other = Tokenizer::from_gguf(&spm_vocab(true, "<|end|>", "Other")).expect("loads");
    assert_eq!(
        other.encode("<|end|>  hi", false).expect("encodes"),
        [3, 260, 260, 265]
    );
}

fn load_error(metadata: Vec<(&str, Value)>) -> String {
    match Tokenizer::from_gguf(&content(metadata)) {
        Err(e @ LlmError::Load { .. }) => e.to_string(),
        Err(e) => panic!("not a load error: {e}"),
        Ok(_) => panic!("bad metadata was accepted"),
    }
}

#[test]
fn bad_metadata_gives_clear_errors() {
    let model = |m: &str| ("tokenizer.ggml.model", Value::String(m.into()));
    let tokens = || ("tokenizer.ggml.tokens", strings(&["a", "b", "ab"]));
    let merges = |m: &[&str]| ("tokenizer.ggml.merges", strings(m));
    let cases: Vec<(Vec<(&str, Value)>, &str)> = vec![
        (vec![tokens()], "tokenizer.ggml.model is missing"),
        (
            vec![model("gpt2"), merges(&["a b"])],
            "tokenizer.ggml.tokens is missing",
        ),
        (vec![model("bert"), tokens()], "\"bert\""),
        (
            vec![
                model("gpt2"),
                ("tokenizer.ggml.pre", Value::String("klingon".into())),
                tokens(),
                merges(&["a b"]),
            ],
            "\"klingon\"",
        ),
        (
            vec![model("gpt2"), tokens(), merges(&["a c"])],
            "refers to \"c\"",
        ),
        (
            vec![model("gpt2"), tokens(), merges(&["b a"])],
            "refers to \"ba\"",
        ),
        (
            vec![model("gpt2"), tokens(), merges(&["ab"])],
            "not two tokens",
        ),
        (
            vec![model("gpt2"), tokens()],
            "tokenizer.ggml.merges is missing",
        ),
        (
            vec![
                model("llama"),
                ("tokenizer.ggml.tokens", strings(&["a", "a"])),
            ],
            "twice",
        ),
        (
            vec![model("llama"), ("tokenizer.ggml.tokens", Value::U32(3))],
            "not an array",
        ),
        (
            vec![
                model("llama"),
                ("tokenizer.ggml.tokens", Value::Array(vec![Value::U8(1)])),
            ],
            "tokenizer.ggml.tokens[0]",
        ),
        (
            vec![
                model("llama"),
                tokens(),
                (
                    "tokenizer.ggml.token_type",
                    Value::Array(vec![Value::I32(1)]),
                ),
            ],
            "token_type has 1 values for 3 tokens",
        ),
        (
            vec![
                model("llama"),
                tokens(),
                (
                    "tokenizer.ggml.scores",
                    Value::Array(vec![Value::String("x".into())]),
                ),
            ],
            "scores[0]",
        ),
        (
            vec![
                model("llama"),
                tokens(),
                ("tokenizer.ggml.add_bos_token", Value::String("yes".into())),
            ],
            "not a boolean",
        ),
        (
            vec![model("llama"), ("tokenizer.ggml.tokens", strings(&[]))],
            "empty",
        ),
    ];
    for (metadata, expected) in cases {
        let error = load_error(metadata);
        assert!(
            error.contains(expected),
            "{error:?} should mention {expected:?}"
        );
    }
}

#[test]
fn encode_without_bos_token_fails_cleanly() {
    let tok = Tokenizer::from_gguf(&content(vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens", strings(&["a", "b", "ab"])),
        ("tokenizer.ggml.merges", strings(&["a b"])),
    ]))
    .expect("loads");
    assert_eq!(tok.bos_id(), None);
    assert_eq!(tok.encode("abba", false).expect("encodes"), [2, 1, 0]);
    assert!(matches!(tok.encode("ab", true), Err(LlmError::Request(_))));
}

#[test]
fn tokenizer_json_beside_the_model_is_preferred() {
    use tokenizers::decoders::byte_level::ByteLevel;
    use tokenizers::models::bpe::BPE;
    use tokenizers::AddedToken;

    let dir = TempDir::new("tokenizer-json");
    let gguf = read_gguf(&fixtures().join("smollm2-135m.vocab.gguf"));
    let model_path = dir.path("model.gguf");
    assert_eq!(
        Tokenizer::from_model_path(&model_path, &gguf)
            .expect("loads")
            .encode("hello", false)
            .expect("encodes"),
        [28120]
    );

    let mut id = 0..;
    let vocab = ["h", "e", "l", "o", "he", "ll", "hell", "hello"]
        .map(|t| (t.to_string(), id.next().unwrap_or(0)));
    let merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o")]
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .to_vec();
    let mut json = tokenizers::Tokenizer::new(
        BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .expect("BPE"),
    );
    json.with_decoder(Some(ByteLevel::default()));
    json.add_special_tokens([AddedToken::from("<|im_end|>", true)])
        .expect("added");
    json.save(dir.path("tokenizer.json"), false).expect("saved");

    let tok = Tokenizer::from_model_path(&model_path, &gguf).expect("loads");
    assert_eq!(
        tok.encode("hello<|im_end|>", false).expect("encodes"),
        [7, 8]
    );
    assert_eq!(
        tok.encode("hello", true).expect("encodes"),
        [1, 7],
        "BOS from the GGUF metadata"
    );
    assert!(!tok
        .encode_plain("hello<|im_end|>")
        .expect("encodes")
        .contains(&8));
    assert_eq!(tok.vocab_size(), 9);
    assert_eq!(tok.id_of("<|im_end|>"), Some(8));
    assert_eq!(tok.token_bytes(7), b"hello");
    assert_eq!(tok.decode(&[7, 8]), "hello<|im_end|>");
    assert_eq!(
        tok.eos_ids(),
        [2, 8],
        "eos from the metadata, then <|im_end|>"
    );

    std::fs::write(dir.path("tokenizer.json"), "{ not json").expect("written");
    let error = Tokenizer::from_model_path(&model_path, &gguf).expect_err("broken tokenizer.json");
    assert!(error.to_string().contains("tokenizer.json"), "{error}");
}
