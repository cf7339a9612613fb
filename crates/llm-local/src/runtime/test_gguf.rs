//! Test support: tiny but structurally real GGUF models with random (seeded) weights.
//!
//! [`write_tiny_model`] writes a llama, qwen2, qwen3 or gemma3 file with the metadata keys and
//! tensor names llama.cpp's converters produce (and candle-transformers' quantized models load),
//! a real-format gpt2-style byte-level BPE vocabulary ([`tiny_vocab`]: the 256 byte symbols, a few
//! merges and the ChatML special tokens) and a ChatML chat template. The weights are random, so
//! the model's output is noise, but every code path from file to logits runs. Files are a few
//! hundred KB and are written in milliseconds.
//!
//! [`tiny_model_parts`] and [`write_parts`] give the metadata and tensors before writing, so that
//! tests can change them (drop a key, rename the architecture) and write the variant.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::runtime::gguf::Architecture;
use crate::LlmError;

/// Id of `<|endoftext|>` in [`tiny_vocab`] (also the padding and unknown token).
pub const ENDOFTEXT_ID: u32 = 0;
/// Id of `<|im_start|>` in [`tiny_vocab`] (the BOS token).
pub const IM_START_ID: u32 = 1;
/// Id of `<|im_end|>` in [`tiny_vocab`] (the EOS token).
pub const IM_END_ID: u32 = 2;

/// The merges of [`tiny_vocab`], in rank order (byte-level symbols: `Ġ` is a space, `Ċ` a newline).
pub const TINY_MERGES: [&str; 12] = [
    "Ġ t", "h e", "i n", "Ġt he", "e r", "Ġ a", "o n", "r e", "u s", "us er", "Ġ Ġ", "Ċ Ċ",
];

/// The ChatML template (as SmolLM2 and Qwen2 ship it, without their default system prompt).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The shape and contents of a tiny model.
#[derive(Debug, Clone)]
pub struct TinyModelOptions {
    /// Seed of the weights.
    pub seed: u64,
    /// Type of the 2-D weight matrices (`F32`, `F16`, `Q8_0`, `Q4_0`, ...; block-quantized types
    /// need `embedding` and `feed_forward` to be multiples of their block size, 32 or 256).
    /// Norms and biases are always `F32`, as llama.cpp writes them.
    pub dtype: GgmlDType,
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden size.
    pub embedding: usize,
    /// Attention heads.
    pub heads: usize,
    /// Head size (`None`: `embedding / heads`); written as `attention.key_length` for qwen3 and
    /// gemma3, whose query width `heads * head_dim` may differ from `embedding`.
    pub head_dim: Option<usize>,
    /// gemma3's `attention.sliding_window` (every 6th layer is global, as in llama.cpp).
    pub sliding_window: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    /// Hidden size of the feed-forward block.
    pub feed_forward: usize,
    /// `{arch}.context_length`.
    pub context_length: usize,
    /// No `output.weight`: the output projection reuses `token_embd.weight`.
    pub tied_embeddings: bool,
    /// `tokenizer.chat_template` (`None`: no template in the file).
    pub chat_template: Option<String>,
    /// `tokenizer.ggml.pre`.
    pub tokenizer_pre: String,
    /// `rope_freqs.weight`: Llama 3's per-pair divisors of the rotary frequencies, written as
    /// given (`None`: no such tensor).
    pub rope_freqs: Option<Vec<f32>>,
    /// `rope.scaling.*` metadata (`None`: no scaling keys).
    pub rope_scaling: Option<TinyRopeScaling>,
}

/// The `rope.scaling.*` metadata of a tiny model.
#[derive(Debug, Clone, PartialEq)]
pub struct TinyRopeScaling {
    /// `rope.scaling.type` (`linear`, `yarn`, ...).
    pub kind: String,
    /// `rope.scaling.factor`: how many times the context was extended.
    pub factor: f32,
    /// `rope.scaling.original_context_length`.
    pub original_context: usize,
}

impl Default for TinyModelOptions {
    fn default() -> Self {
        TinyModelOptions {
            seed: 0,
            dtype: GgmlDType::Q8_0,
            layers: 2,
            embedding: 64,
            heads: 4,
            head_dim: None,
            sliding_window: 128,
            kv_heads: 2,
            feed_forward: 128,
            context_length: 512,
            tied_embeddings: false,
            chat_template: Some(CHATML_TEMPLATE.to_string()),
            tokenizer_pre: "default".to_string(),
            rope_freqs: None,
            rope_scaling: None,
        }
    }
}

/// A gpt2-style vocabulary: `tokens[i]` is token `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyVocab {
    /// Token strings (byte-level symbols for ordinary tokens).
    pub tokens: Vec<String>,
    /// llama.cpp token types: 1 normal, 3 control.
    pub token_types: Vec<i32>,
    /// Merges, `"left right"`, in rank order.
    pub merges: Vec<String>,
}

/// GPT-2's `bytes_to_unicode`: the printable symbol standing for each byte, in GPT-2's order
/// (printable bytes first, then the others mapped to U+0100 and up).
pub fn byte_symbols() -> Vec<(u8, char)> {
    let printable = |b: u8| {
        (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut out: Vec<(u8, char)> = (0..=255u8)
        .filter(|&b| printable(b))
        .map(|b| (b, char::from(b)))
        .collect();
    for (n, b) in (0..=255u8).filter(|&b| !printable(b)).enumerate() {
        out.push((
            b,
            char::from_u32(256 + n as u32).expect("U+0100.. are chars"),
        ));
    }
    out
}

/// The tiny vocabulary: `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (ids 0, 1, 2, control),
/// the 256 byte symbols (ids 3..259, GPT-2 order), then one token per merge of [`TINY_MERGES`].
pub fn tiny_vocab() -> TinyVocab {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .map(String::from)
        .to_vec();
    let mut token_types = vec![3, 3, 3];
    for (_, c) in byte_symbols() {
        tokens.push(c.to_string());
        token_types.push(1);
    }
    for m in TINY_MERGES {
        tokens.push(m.replace(' ', ""));
        token_types.push(1);
    }
    TinyVocab {
        tokens,
        token_types,
        merges: TINY_MERGES.map(String::from).to_vec(),
    }
}

/// SplitMix64: a small seeded generator, stable across platforms and crate versions.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-scale, scale)`.
    fn uniform(&mut self, scale: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * scale
    }
}

fn candle_err(path: &Path) -> impl Fn(candle_core::Error) -> LlmError + '_ {
    move |e| LlmError::Load {
        source_name: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Metadata and tensors of a GGUF file, in order.
pub type GgufParts = (Vec<(String, Value)>, Vec<(String, QTensor)>);

/// The metadata and tensors of a tiny model of `arch` (what [`write_tiny_model`] writes).
pub fn tiny_model_parts(
    arch: Architecture,
    options: &TinyModelOptions,
) -> Result<GgufParts, LlmError> {
    let o = options;
    let bad = |reason: String| LlmError::Load {
        source_name: format!("tiny {arch} model"),
        reason,
    };
    let own_head_dim = matches!(arch, Architecture::Qwen3 | Architecture::Gemma3);
    if o.head_dim.is_some() && !own_head_dim {
        return Err(bad(format!("{arch} has no head size of its own")));
    }
    if o.heads == 0
        || o.kv_heads == 0
        || (o.head_dim.is_none() && !o.embedding.is_multiple_of(o.heads))
        || !o.heads.is_multiple_of(o.kv_heads)
    {
        return Err(bad(format!(
            "embedding {} / heads {} / kv_heads {} do not divide",
            o.embedding, o.heads, o.kv_heads
        )));
    }
    let head_dim = o.head_dim.unwrap_or(o.embedding / o.heads);
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(bad(format!(
            "the head size {head_dim} must be even (rotary embeddings)"
        )));
    }
    let block = o.dtype.block_size();
    for (what, n) in [
        ("embedding", o.embedding),
        ("feed_forward", o.feed_forward),
        ("heads * head size", o.heads * head_dim),
    ] {
        if !n.is_multiple_of(block) {
            return Err(bad(format!(
                "{what} = {n} is not a multiple of the {:?} block size {block}",
                o.dtype
            )));
        }
    }
    let vocab = tiny_vocab();
    let n_vocab = vocab.tokens.len();
    let a = arch.as_str();
    let (q_dim, kv_dim) = (o.heads * head_dim, o.kv_heads * head_dim);

    let u32v = |v: usize| Value::U32(v as u32);
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(a.into())),
        ("general.name".into(), Value::String(format!("tiny-{a}"))),
        ("general.alignment".into(), Value::U32(32)),
        (format!("{a}.context_length"), u32v(o.context_length)),
        (format!("{a}.embedding_length"), u32v(o.embedding)),
        (format!("{a}.block_count"), u32v(o.layers)),
        (format!("{a}.feed_forward_length"), u32v(o.feed_forward)),
        (format!("{a}.attention.head_count"), u32v(o.heads)),
        (format!("{a}.attention.head_count_kv"), u32v(o.kv_heads)),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-6),
        ),
        (format!("{a}.vocab_size"), u32v(n_vocab)),
    ];
    match arch {
        Architecture::Llama => {
            md.push((format!("{a}.rope.freq_base"), Value::F32(10_000.0)));
            md.push((format!("{a}.rope.dimension_count"), u32v(head_dim)));
        }
        Architecture::Qwen2 => md.push((format!("{a}.rope.freq_base"), Value::F32(1_000_000.0))),
        Architecture::Qwen3 | Architecture::Gemma3 => {
            md.push((format!("{a}.rope.freq_base"), Value::F32(1_000_000.0)));
            md.push((format!("{a}.attention.key_length"), u32v(head_dim)));
            md.push((format!("{a}.attention.value_length"), u32v(head_dim)));
            if arch == Architecture::Gemma3 {
                md.push((
                    format!("{a}.attention.sliding_window"),
                    u32v(o.sliding_window),
                ));
                md.push((format!("{a}.rope.freq_base_swa"), Value::F32(20_000.0)));
            }
        }
    }
    if let Some(r) = &o.rope_scaling {
        md.extend([
            (
                format!("{a}.rope.scaling.type"),
                Value::String(r.kind.clone()),
            ),
            (format!("{a}.rope.scaling.factor"), Value::F32(r.factor)),
            (
                format!("{a}.rope.scaling.original_context_length"),
                u32v(r.original_context),
            ),
        ]);
    }
    let strings = |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
    md.extend([
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        (
            "tokenizer.ggml.pre".into(),
            Value::String(o.tokenizer_pre.clone()),
        ),
        ("tokenizer.ggml.tokens".into(), strings(&vocab.tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(vocab.token_types.iter().map(|&t| Value::I32(t)).collect()),
        ),
        ("tokenizer.ggml.merges".into(), strings(&vocab.merges)),
        (
            "tokenizer.ggml.bos_token_id".into(),
            Value::U32(IM_START_ID),
        ),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(IM_END_ID)),
        (
            "tokenizer.ggml.padding_token_id".into(),
            Value::U32(ENDOFTEXT_ID),
        ),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
    ]);
    if let Some(t) = &o.chat_template {
        md.push(("tokenizer.chat_template".into(), Value::String(t.clone())));
    }

    // Tensors, in llama.cpp's order; shapes are candle's (rows, columns) = (out, in).
    let mut rng = SplitMix(o.seed ^ 0x6E61_732D_7273);
    let dev = Device::Cpu;
    let name = format!("tiny {arch} model");
    let path = Path::new(&name);
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut matrix =
        |tensors: &mut Vec<(String, QTensor)>, n: String, rows: usize, cols: usize, scale: f32| {
            let data: Vec<f32> = (0..rows * cols).map(|_| rng.uniform(scale)).collect();
            let t = Tensor::from_vec(data, (rows, cols), &dev).map_err(candle_err(path))?;
            tensors.push((n, QTensor::quantize(&t, o.dtype).map_err(candle_err(path))?));
            Ok::<(), LlmError>(())
        };
    let vector = |tensors: &mut Vec<(String, QTensor)>, n: String, data: Vec<f32>| {
        let len = data.len();
        let t = Tensor::from_vec(data, len, &Device::Cpu).map_err(candle_err(path))?;
        tensors.push((
            n,
            QTensor::quantize(&t, GgmlDType::F32).map_err(candle_err(path))?,
        ));
        Ok::<(), LlmError>(())
    };
    // Norm weights near 1 (as Gemma's `1 + w` is stored), distinct so that a misplaced norm shows.
    let mut norm_rng = SplitMix(o.seed ^ 0x6E6F_726D);
    let mut norm_weights = |n: usize| {
        (0..n)
            .map(|_| 1.0 + norm_rng.uniform(0.25))
            .collect::<Vec<f32>>()
    };
    let (e, f) = (o.embedding, o.feed_forward);
    let in_scale = |fan_in: usize| 1.0 / (fan_in as f32).sqrt();
    if let Some(factors) = &o.rope_freqs {
        // llama.cpp's converter writes this tensor first.
        vector(&mut tensors, "rope_freqs.weight".into(), factors.clone())?;
    }
    matrix(&mut tensors, "token_embd.weight".into(), n_vocab, e, 1.0)?;
    for i in 0..o.layers {
        let p = format!("blk.{i}");
        vector(
            &mut tensors,
            format!("{p}.attn_norm.weight"),
            norm_weights(e),
        )?;
        matrix(
            &mut tensors,
            format!("{p}.attn_q.weight"),
            q_dim,
            e,
            in_scale(e),
        )?;
        matrix(
            &mut tensors,
            format!("{p}.attn_k.weight"),
            kv_dim,
            e,
            in_scale(e),
        )?;
        matrix(
            &mut tensors,
            format!("{p}.attn_v.weight"),
            kv_dim,
            e,
            in_scale(e),
        )?;
        if arch == Architecture::Qwen2 {
            vector(&mut tensors, format!("{p}.attn_q.bias"), vec![0.01; q_dim])?;
            vector(&mut tensors, format!("{p}.attn_k.bias"), vec![0.01; kv_dim])?;
            vector(&mut tensors, format!("{p}.attn_v.bias"), vec![0.01; kv_dim])?;
        }
        if matches!(arch, Architecture::Qwen3 | Architecture::Gemma3) {
            vector(
                &mut tensors,
                format!("{p}.attn_q_norm.weight"),
                norm_weights(head_dim),
            )?;
            vector(
                &mut tensors,
                format!("{p}.attn_k_norm.weight"),
                norm_weights(head_dim),
            )?;
        }
        matrix(
            &mut tensors,
            format!("{p}.attn_output.weight"),
            e,
            q_dim,
            in_scale(q_dim),
        )?;
        if arch == Architecture::Gemma3 {
            vector(
                &mut tensors,
                format!("{p}.post_attention_norm.weight"),
                norm_weights(e),
            )?;
        }
        vector(
            &mut tensors,
            format!("{p}.ffn_norm.weight"),
            norm_weights(e),
        )?;
        matrix(
            &mut tensors,
            format!("{p}.ffn_gate.weight"),
            f,
            e,
            in_scale(e),
        )?;
        matrix(
            &mut tensors,
            format!("{p}.ffn_up.weight"),
            f,
            e,
            in_scale(e),
        )?;
        matrix(
            &mut tensors,
            format!("{p}.ffn_down.weight"),
            e,
            f,
            in_scale(f),
        )?;
        if arch == Architecture::Gemma3 {
            vector(
                &mut tensors,
                format!("{p}.post_ffw_norm.weight"),
                norm_weights(e),
            )?;
        }
    }
    vector(&mut tensors, "output_norm.weight".into(), norm_weights(e))?;
    if !o.tied_embeddings {
        matrix(
            &mut tensors,
            "output.weight".into(),
            n_vocab,
            e,
            in_scale(e),
        )?;
    }
    Ok((md, tensors))
}

/// Writes a GGUF file (version 2, 32-byte alignment) with these metadata and tensors, in order.
pub fn write_parts(
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[(String, QTensor)],
) -> Result<(), LlmError> {
    let io = |e: std::io::Error| LlmError::Load {
        source_name: path.display().to_string(),
        reason: e.to_string(),
    };
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    gguf_file::write(&mut w, &md, &ts).map_err(candle_err(path))?;
    w.into_inner().map_err(|e| io(e.into_error()))?;
    Ok(())
}

/// Writes a tiny random-weight model of `arch` to `path`.
pub fn write_tiny_model(
    path: &Path,
    arch: Architecture,
    options: &TinyModelOptions,
) -> Result<(), LlmError> {
    let (md, tensors) = tiny_model_parts(arch, options)?;
    write_parts(path, &md, &tensors)
}

/// The tiny models whose logits `scripts/llamacpp_logits_reference.py` records from llama.cpp
/// (`crates/llm-local/tests/fixtures/logits/`): a file name, its architecture and its options.
/// f32 weights, so that llama.cpp and our runtime should agree to rounding; head sizes of their
/// own (where the architecture has them); gemma3 with six layers and a window of 4, so that local
/// and global layers both act on a dozen tokens; a llama with Llama 3-like frequency factors
/// (1 for the fast pairs, up to 8 for the slow ones) and a qwen2 with YaRN (factor 4 over an
/// original context of 64), both run over 80 tokens so that the slow pairs turn noticeably and
/// YaRN acts beyond its original context.
pub fn reference_models() -> Vec<(&'static str, Architecture, TinyModelOptions)> {
    let base = TinyModelOptions {
        seed: 3,
        dtype: GgmlDType::F32,
        head_dim: Some(32),
        context_length: 64,
        chat_template: None,
        ..TinyModelOptions::default()
    };
    vec![
        ("tiny-qwen3", Architecture::Qwen3, base.clone()),
        (
            "tiny-gemma3",
            Architecture::Gemma3,
            TinyModelOptions {
                layers: 6,
                kv_heads: 1,
                sliding_window: 4,
                tied_embeddings: true,
                ..base.clone()
            },
        ),
        (
            "tiny-llama-rope-freqs",
            Architecture::Llama,
            TinyModelOptions {
                head_dim: None,
                context_length: 128,
                rope_freqs: Some(vec![1.0, 1.0, 1.0, 2.0, 4.5, 8.0, 8.0, 8.0]),
                ..base.clone()
            },
        ),
        (
            "tiny-qwen2-yarn",
            Architecture::Qwen2,
            TinyModelOptions {
                head_dim: None,
                heads: 2,
                kv_heads: 1,
                context_length: 256,
                rope_scaling: Some(TinyRopeScaling {
                    kind: "yarn".into(),
                    factor: 4.0,
                    original_context: 64,
                }),
                ..base
            },
        ),
    ]
}
