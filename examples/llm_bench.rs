//! Prefill and decode speed of the in-process runtime on one GGUF model, as one JSON line.
//!
//! ```text
//! cargo run --release --example llm_bench -- --model ~/.cache/gguf/qwen2.5-coder-1.5b.gguf
//! ```
//!
//! `scripts/bench_llm.sh` runs it next to llama.cpp (llama-cpp-python built from source) on the
//! same file with the same prompt and prints a table. Each repeat starts with a different word so
//! the prefix cache cannot serve it; decoding is greedy.

use std::process::ExitCode;

use candle_core::Device;
use clap::Parser;
use nas_rs::llm_local::runtime::{source, GgufModel};
use nas_rs::llm_local::{LanguageModel, Sampling};
use nas_rs::trainer::train::peak_rss_bytes;

/// The prompt: a plain-text passage, continued by the model.
const PASSAGE: &str = "Neural architecture search automates the design of neural networks. A search space defines which architectures can be expressed, a search strategy explores that space, and a performance estimation strategy judges each candidate. Early methods trained thousands of networks from scratch with reinforcement learning or evolution, spending thousands of GPU days. Later work shared weights between candidates in a one-shot supernet, trained once, and ranked sub-networks by inheriting its weights. Tabular benchmarks such as NAS-Bench-201 record the trained accuracy of every cell in a small space, so that strategies can be compared in seconds. Large language models have recently joined this toolbox: they propose architectures as code or as numeric encodings, read the history of evaluated candidates, and learn from feedback which changes help. The next step in this story is";

#[derive(Debug, Parser)]
#[command(about = "Measure prefill and decode tokens per second of a GGUF model")]
struct Args {
    /// Model spec: a path, `hf:...` or `pip:...`.
    #[arg(long, default_value = source::DEFAULT_MODEL)]
    model: String,
    /// Tokens to generate per repeat.
    #[arg(long, default_value_t = 64)]
    gen_tokens: usize,
    /// Repeats (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> ExitCode {
    nas_rs::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let path = source::resolve(&args.model)?;
    let mut model = GgufModel::load(&path, &Device::Cpu)?;
    let sampling = Sampling {
        max_tokens: args.gen_tokens,
        ..Sampling::default()
    };
    let (mut prefill, mut decode, mut prompt_tokens, mut generated) =
        (Vec::new(), Vec::new(), 0, 0);
    for repeat in 0..args.repeats {
        let prompt = format!(
            "{} {PASSAGE}",
            ["Today:", "Summary:", "Notes:", "Essay:", "Story:"][repeat % 5]
        );
        let done = model.complete(&prompt, &sampling, None)?;
        prefill.push(done.usage.prompt_tokens as f64 / done.timing.prefill_seconds);
        decode.push(done.decode_tokens_per_second());
        prompt_tokens = done.usage.prompt_tokens;
        generated = done.usage.completion_tokens;
    }
    println!(
        "{{\"impl\": \"nas-rs\", \"prompt_tokens\": {prompt_tokens}, \"generated\": {generated}, \"prefill_tps\": {:.2}, \"decode_tps\": {:.2}, \"peak_rss_bytes\": {}}}",
        median(prefill),
        median(decode),
        peak_rss_bytes()
    );
    Ok(())
}
