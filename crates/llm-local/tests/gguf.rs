//! `runtime::gguf`: opening GGUF files, with tiny models written by `runtime::test_gguf`, and
//! clear errors (never panics) for corrupt, truncated and unsupported files.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use candle_transformers::models::{
    quantized_gemma3, quantized_llama, quantized_qwen2, quantized_qwen3,
};
use llm_local::runtime::gguf::{Architecture, GgufFile};
use llm_local::{runtime, LlmError};

use llm_local::runtime::test_gguf;

use test_gguf::{tiny_model_parts, tiny_vocab, write_parts, write_tiny_model, TinyModelOptions};

mod common;
use common::TempDir;

fn tiny(dir: &TempDir, arch: Architecture, options: &TinyModelOptions) -> PathBuf {
    let path = dir.path(&format!("tiny-{arch}.gguf"));
    write_tiny_model(&path, arch, options).unwrap();
    path
}

/// The reason of a load error, checked to name `path`.
fn load_reason(result: Result<GgufFile, LlmError>, path: &Path) -> String {
    match result {
        Ok(_) => panic!("{} opened, but an error was expected", path.display()),
        Err(LlmError::Load {
            source_name,
            reason,
        }) => {
            assert_eq!(source_name, path.display().to_string());
            let shown = LlmError::Load {
                source_name,
                reason: reason.clone(),
            }
            .to_string();
            assert!(shown.contains(&path.display().to_string()), "{shown}");
            eprintln!("{shown}");
            reason
        }
        Err(other) => panic!("expected a load error, got {other:?}"),
    }
}

fn assert_contains(text: &str, fragments: &[&str]) {
    for f in fragments {
        assert!(text.contains(f), "expected {f:?} in {text:?}");
    }
}

/// Loads `path` through candle-transformers and runs a prompt, then one more token with the KV
/// cache; returns the two logit vectors.
fn candle_forward(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let file = GgufFile::open(path).unwrap();
    let arch = file.architecture();
    let mut reader = file.reader().unwrap();
    let content = file.into_content();
    let dev = Device::Cpu;
    let prompt = Tensor::new(&[[1u32, 40, 75, 100, 260, 2]], &dev).unwrap();
    let next = Tensor::new(&[[7u32]], &dev).unwrap();
    let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    match arch {
        Architecture::Llama => {
            let mut m =
                quantized_llama::ModelWeights::from_gguf(content, &mut reader, &dev).unwrap();
            (
                flat(m.forward(&prompt, 0).unwrap()),
                flat(m.forward(&next, 6).unwrap()),
            )
        }
        Architecture::Qwen2 => {
            let mut m =
                quantized_qwen2::ModelWeights::from_gguf(content, &mut reader, &dev).unwrap();
            (
                flat(m.forward(&prompt, 0).unwrap()),
                flat(m.forward(&next, 6).unwrap()),
            )
        }
        Architecture::Qwen3 => {
            let mut m =
                quantized_qwen3::ModelWeights::from_gguf(content, &mut reader, &dev).unwrap();
            let a = m
                .forward(&prompt, 0)
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap();
            let b = m
                .forward(&next, 6)
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap();
            (flat(a), flat(b))
        }
        Architecture::Gemma3 => {
            let mut m =
                quantized_gemma3::ModelWeights::from_gguf(content, &mut reader, &dev).unwrap();
            (
                flat(m.forward(&prompt, 0).unwrap()),
                flat(m.forward(&next, 6).unwrap()),
            )
        }
    }
}

fn check_logits(arch: Architecture, logits: &[f32]) {
    let n_vocab = tiny_vocab().tokens.len();
    assert_eq!(logits.len(), n_vocab, "{arch}: one logit per token");
    assert!(
        logits.iter().all(|v| v.is_finite()),
        "{arch}: non-finite logits"
    );
    let spread = logits.iter().cloned().fold(f32::MIN, f32::max)
        - logits.iter().cloned().fold(f32::MAX, f32::min);
    assert!(spread > 1e-3, "{arch}: logits are constant");
}

#[test]
fn tiny_models_open_with_their_metadata() {
    let dir = TempDir::new("gguf-open");
    for arch in Architecture::ALL {
        let path = tiny(&dir, arch, &TinyModelOptions::default());
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(f.architecture(), arch);
        assert_eq!(f.architecture_name(), arch.as_str());
        assert_eq!(f.path(), path);
        assert_eq!(f.version(), 2);
        assert_eq!(f.context_length(), Some(512));
        assert_eq!(f.u32(&f.arch_key("block_count")).unwrap(), 2);
        assert_eq!(f.u64(&f.arch_key("embedding_length")).unwrap(), 64);
        assert!(
            (f.f32(&f.arch_key("attention.layer_norm_rms_epsilon"))
                .unwrap()
                - 1e-6)
                .abs()
                < 1e-9
        );
        assert_eq!(f.string("tokenizer.ggml.model").unwrap(), "gpt2");
        assert_eq!(f.name(), Some(format!("tiny-{arch}").as_str()));
        assert!(!f.bool("tokenizer.ggml.add_bos_token").unwrap());
        let vocab = tiny_vocab();
        assert_eq!(
            f.string_array("tokenizer.ggml.tokens").unwrap(),
            vocab.tokens.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(
            f.int_array("tokenizer.ggml.token_type").unwrap(),
            vocab
                .token_types
                .iter()
                .map(|&t| i64::from(t))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            f.array("tokenizer.ggml.merges").unwrap().len(),
            vocab.merges.len()
        );
        assert!(f.chat_template().unwrap().contains("<|im_start|>"));
        // token_embd, output_norm, output + per layer: llama 9, qwen2 +3 biases, qwen3 +2 norms, gemma3 +4 norms.
        let per_layer = match arch {
            Architecture::Llama => 9,
            Architecture::Qwen2 => 12,
            Architecture::Qwen3 => 11,
            Architecture::Gemma3 => 13,
        };
        assert_eq!(f.tensor_count(), 3 + 2 * per_layer, "{arch}");
        assert_eq!(f.tensor_names().len(), f.tensor_count());
        let emb = f.tensor_info("token_embd.weight").unwrap();
        assert_eq!(emb.shape.dims(), &[vocab.tokens.len(), 64]);
        assert_eq!(emb.ggml_dtype, GgmlDType::Q8_0);
        assert!(f.tensor_bytes() > 0 && f.tensor_bytes() < f.file_len());
        assert_eq!(f.file_len(), std::fs::metadata(&path).unwrap().len());
        assert_eq!(f.metadata().len(), f.content().metadata.len());
    }
}

#[test]
fn tiny_models_run_through_candle_transformers() {
    let dir = TempDir::new("gguf-candle");
    for arch in Architecture::ALL {
        let path = tiny(&dir, arch, &TinyModelOptions::default());
        let (first, second) = candle_forward(&path);
        check_logits(arch, &first);
        check_logits(arch, &second);
    }
}

#[test]
fn tiny_models_in_other_dtypes_and_tied_embeddings_run() {
    let dir = TempDir::new("gguf-dtypes");
    for (i, (arch, dtype, tied)) in [
        (Architecture::Llama, GgmlDType::F32, false),
        (Architecture::Llama, GgmlDType::Q4_0, true),
        (Architecture::Qwen2, GgmlDType::F16, true),
        (Architecture::Qwen2, GgmlDType::Q4_0, false),
    ]
    .into_iter()
    .enumerate()
    {
        let options = TinyModelOptions {
            dtype,
            tied_embeddings: tied,
            seed: i as u64,
            ..Default::default()
        };
        let path = tiny(&dir, arch, &options);
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(f.tensor_info("output.weight").is_none(), tied);
        assert_eq!(
            f.tensor_info("blk.0.ffn_up.weight").unwrap().ggml_dtype,
            dtype
        );
        assert_eq!(
            f.tensor_info("blk.0.ffn_norm.weight").unwrap().ggml_dtype,
            GgmlDType::F32
        );
        let (first, _) = candle_forward(&path);
        check_logits(arch, &first);
    }
}

#[test]
fn tiny_models_are_deterministic_in_the_seed() {
    let dir = TempDir::new("gguf-seed");
    let write = |name: &str, seed: u64| {
        let p = dir.path(name);
        write_tiny_model(
            &p,
            Architecture::Llama,
            &TinyModelOptions {
                seed,
                ..Default::default()
            },
        )
        .unwrap();
        std::fs::read(p).unwrap()
    };
    assert_eq!(write("a.gguf", 7), write("b.gguf", 7));
    assert_ne!(write("c.gguf", 7), write("d.gguf", 8));
}

#[test]
fn tiny_vocab_is_byte_level_bpe() {
    let v = tiny_vocab();
    assert_eq!(v.tokens.len(), v.token_types.len());
    assert_eq!(
        &v.tokens[..3],
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    );
    let bytes: std::collections::HashSet<&String> = v.tokens[3..259].iter().collect();
    assert_eq!(bytes.len(), 256);
    assert!(
        v.tokens.contains(&"Ġ".to_string())
            && v.tokens.contains(&"Ċ".to_string())
            && v.tokens.contains(&"!".to_string())
    );
    for m in &v.merges {
        let (a, b) = m.split_once(' ').unwrap();
        for part in [a, b, &format!("{a}{b}")] {
            assert!(
                v.tokens.iter().any(|t| t == part),
                "merge {m:?}: `{part}` is not a token"
            );
        }
    }
}

#[test]
fn bad_options_are_errors() {
    let dir = TempDir::new("gguf-options");
    let odd = TinyModelOptions {
        embedding: 48,
        ..Default::default()
    };
    assert!(write_tiny_model(&dir.path("x.gguf"), Architecture::Llama, &odd).is_err());
    let heads = TinyModelOptions {
        heads: 3,
        ..Default::default()
    };
    assert!(write_tiny_model(&dir.path("y.gguf"), Architecture::Llama, &heads).is_err());
}

#[test]
fn wrong_magic_empty_and_unsupported_version_are_clear_errors() {
    let dir = TempDir::new("gguf-magic");
    let good = std::fs::read(tiny(
        &dir,
        Architecture::Llama,
        &TinyModelOptions::default(),
    ))
    .unwrap();

    let p = dir.path("magic.gguf");
    let mut bytes = good.clone();
    bytes[..4].copy_from_slice(b"GGML");
    std::fs::write(&p, &bytes).unwrap();
    assert_contains(
        &load_reason(GgufFile::open(&p), &p),
        &["not a GGUF file", "bad magic"],
    );

    std::fs::write(&p, b"<!DOCTYPE html><html>404 Not Found</html>").unwrap();
    assert_contains(&load_reason(GgufFile::open(&p), &p), &["not a GGUF file"]);

    std::fs::write(&p, b"").unwrap();
    assert_contains(
        &load_reason(GgufFile::open(&p), &p),
        &["empty", "not a GGUF file"],
    );

    let mut bytes = good.clone();
    bytes[4..8].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    assert_contains(
        &load_reason(GgufFile::open(&p), &p),
        &["unsupported GGUF version 7", "supported: 1, 2, 3"],
    );

    let missing = dir.path("nope.gguf");
    assert_contains(
        &load_reason(GgufFile::open(&missing), &missing),
        &["cannot read the file"],
    );
    let d = dir.path("a-dir");
    std::fs::create_dir(&d).unwrap();
    assert_contains(&load_reason(GgufFile::open(&d), &d), &["is a directory"]);
}

#[test]
fn truncation_anywhere_is_a_clear_error() {
    let dir = TempDir::new("gguf-trunc");
    let src = tiny(&dir, Architecture::Qwen2, &TinyModelOptions::default());
    let good = std::fs::read(&src).unwrap();
    let data_start = GgufFile::open(&src).unwrap().content().tensor_data_offset as usize;
    let p = dir.path("cut.gguf");
    let mut cuts = vec![
        2,
        4,
        6,
        8,
        12,
        20,
        24,
        30,
        100,
        data_start / 3,
        data_start / 2,
        data_start - 40,
        data_start - 1,
    ];
    cuts.extend([
        data_start,
        data_start + 1,
        (data_start + good.len()) / 2,
        good.len() - 100,
    ]);
    for cut in cuts {
        std::fs::write(&p, &good[..cut]).unwrap();
        let reason = load_reason(GgufFile::open(&p), &p);
        let expected: &[&str] = if cut < 8 {
            &["truncated GGUF header"]
        } else if cut < data_start - 31 {
            &["truncated or corrupt GGUF header/metadata"]
        } else if cut < data_start {
            // In the tensor table or the padding after it.
            &["truncated"]
        } else {
            &[
                "truncated file",
                "tensor data extends past the end of the file",
                &format!("the file has {cut} bytes"),
            ]
        };
        assert_contains(&reason, expected);
    }
    // Cutting only the padding after the last tensor loses no data.
    std::fs::write(&p, &good[..good.len() - 1]).unwrap();
    let last_padding_ok = GgufFile::open(&p);
    let f = GgufFile::open(&src).unwrap();
    let end = f
        .tensor_names()
        .iter()
        .map(|n| {
            let i = f.tensor_info(n).unwrap();
            let bytes = i.shape.elem_count() / i.ggml_dtype.block_size() * i.ggml_dtype.type_size();
            data_start as u64 + i.offset + bytes as u64
        })
        .max()
        .unwrap();
    assert_eq!(last_padding_ok.is_ok(), end < good.len() as u64);
}

/// Writes the tiny llama model with its metadata changed by `edit`.
fn with_metadata(
    dir: &TempDir,
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, Value)>),
) -> PathBuf {
    let (mut md, tensors) =
        tiny_model_parts(Architecture::Llama, &TinyModelOptions::default()).unwrap();
    edit(&mut md);
    let p = dir.path(name);
    write_parts(&p, &md, &tensors).unwrap();
    p
}

fn set(md: &mut [(String, Value)], key: &str, value: Value) {
    md.iter_mut().find(|(k, _)| k == key).unwrap().1 = value;
}

#[test]
fn architecture_errors_are_clear() {
    let dir = TempDir::new("gguf-arch");
    let p = with_metadata(&dir, "mamba.gguf", |md| {
        set(md, "general.architecture", Value::String("mamba".into()))
    });
    assert_contains(
        &load_reason(GgufFile::open(&p), &p),
        &["unsupported architecture `mamba`; supported: llama, qwen2, qwen3, gemma3"],
    );

    let p = with_metadata(&dir, "none.gguf", |md| {
        md.retain(|(k, _)| k != "general.architecture")
    });
    assert_contains(
        &load_reason(GgufFile::open(&p), &p),
        &["missing metadata key `general.architecture`"],
    );

    let p = with_metadata(&dir, "number.gguf", |md| {
        set(md, "general.architecture", Value::U32(3))
    });
    assert_contains(
        &load_reason(GgufFile::open(&p), &p),
        &["`general.architecture`", "expected a string"],
    );

    assert_eq!("gemma3".parse::<Architecture>(), Ok(Architecture::Gemma3));
    assert_eq!(Architecture::Qwen3.to_string(), "qwen3");
}

#[test]
fn crafted_metadata_never_panics() {
    let dir = TempDir::new("gguf-crafted");
    // candle's reader divides by the alignment.
    let p = with_metadata(&dir, "align0.gguf", |md| {
        set(md, "general.alignment", Value::U32(0))
    });
    let reason = load_reason(GgufFile::open(&p), &p);
    assert_contains(&reason, &["corrupt GGUF header/metadata"]);

    // A huge string length in the first key.
    let good = std::fs::read(tiny(
        &dir,
        Architecture::Llama,
        &TinyModelOptions::default(),
    ))
    .unwrap();
    let mut bytes = good.clone();
    bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    let q = dir.path("huge.gguf");
    std::fs::write(&q, &bytes).unwrap();
    assert_contains(
        &load_reason(GgufFile::open(&q), &q),
        &["truncated or corrupt GGUF header/metadata"],
    );

    // Counts that cannot fit in the file.
    let mut bytes = good.clone();
    bytes[8..16].copy_from_slice(&(1u64 << 29).to_le_bytes());
    std::fs::write(&q, &bytes).unwrap();
    assert_contains(
        &load_reason(GgufFile::open(&q), &q),
        &["truncated or corrupt GGUF header/metadata"],
    );

    // Random bytes after a valid magic and version.
    let mut x = 0x1234_5678_9abc_def0u64;
    for round in 0..50 {
        let mut bytes = good[..8].to_vec();
        bytes.extend((0..200 + round * 13).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        std::fs::write(&q, &bytes).unwrap();
        assert!(GgufFile::open(&q).is_err());
    }
}

#[test]
fn metadata_getters_name_the_key() {
    let dir = TempDir::new("gguf-getters");
    let path = tiny(
        &dir,
        Architecture::Llama,
        &TinyModelOptions {
            chat_template: None,
            ..Default::default()
        },
    );
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.chat_template(), None);
    let reason = |r: Result<(), LlmError>| match r {
        Err(LlmError::Load {
            source_name,
            reason,
        }) => {
            assert_eq!(source_name, path.display().to_string());
            reason
        }
        other => panic!("expected a load error, got {other:?}"),
    };
    assert_contains(
        &reason(f.u32("llama.nope").map(drop)),
        &["missing metadata key `llama.nope`"],
    );
    assert_contains(
        &reason(f.u32("general.name").map(drop)),
        &["`general.name`", "expected an unsigned 32-bit integer"],
    );
    assert_contains(
        &reason(f.string("llama.block_count").map(drop)),
        &["`llama.block_count`", "expected a string"],
    );
    assert_contains(
        &reason(f.f32("llama.block_count").map(drop)),
        &["expected a float"],
    );
    assert_contains(
        &reason(f.bool("general.name").map(drop)),
        &["expected a bool"],
    );
    assert_contains(
        &reason(f.array("general.name").map(drop)),
        &["expected an array"],
    );
    assert_contains(
        &reason(f.string_array("tokenizer.ggml.token_type").map(drop)),
        &["element 0", "expected a string"],
    );
    assert_contains(
        &reason(f.int_array("tokenizer.ggml.tokens").map(drop)),
        &["element 0", "expected an integer"],
    );
    assert!(f.get("general.alignment").is_some());
    // The module is reachable from the crate too.
    let _: fn(&Path) -> Result<GgufFile, LlmError> = runtime::gguf::GgufFile::open;
}
