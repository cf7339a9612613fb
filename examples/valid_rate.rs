//! How many of an LLM's architectures are usable: the closed loop's Code Generator prompt for
//! CIFAR-10, answered N times (seeds 0..N, temperature 0.7, top-p 0.9 as in the paper), each
//! reply parsed, shape-checked and trained for one short epoch on a small subset.
//!
//! ```text
//! cargo run --release --example valid_rate -- --n 200
//! cargo run --release --example valid_rate -- --n 200 --unconstrained --json unconstrained.json
//! cargo run --release --example valid_rate -- --model ~/.cache/gguf/qwen2.5-coder-1.5b.gguf --n 50
//! ```
//!
//! By default the generator answers under the architecture language's generation grammar
//! (`arch_space::lang::generation_grammar`), as the closed loop does; `--unconstrained` gives the
//! free-text setting of the feedback-memory paper, where most of the budget went to invalid
//! code. `--json OUT` writes `{"n", "parsed", "shape_ok", "trained_ok", "seconds", ...}`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use nas_rs::arch_space::lang::parse;
use nas_rs::cli::SHIPPED_CIFAR10_SUBSET;
use nas_rs::llm_local::runtime::{load_model, source};
use nas_rs::llm_local::LanguageModel;
use nas_rs::search_loop::closed_loop::{
    generator_messages, Evaluator, LoopConfig, TrainerEvaluator,
};
use nas_rs::search_loop::run::OutcomeStatus;
use nas_rs::search_loop::worker::{DataSpec, EvalSetup};
use nas_rs::trainer::train::TrainConfig;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "The share of an LLM's architectures that parse, pass the shape check and train")]
struct Args {
    /// Model spec: a GGUF path, hf:owner/repo/file.gguf, pip:package==version or openai:URL.
    #[arg(long, default_value = source::DEFAULT_MODEL)]
    model: String,
    /// Architectures to ask for (seeds 0..n).
    #[arg(long, default_value_t = 200)]
    n: u64,
    /// Free-text answers instead of the generation grammar.
    #[arg(long)]
    unconstrained: bool,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 768)]
    max_tokens: usize,
    /// Dataset for the training check (directory or .tar.gz).
    #[arg(long, default_value = SHIPPED_CIFAR10_SUBSET)]
    data: PathBuf,
    /// Training images of the training check (one epoch).
    #[arg(long, default_value_t = 256)]
    train_images: usize,
    /// Seconds one training check may take (longer is a failure: `timeout`).
    #[arg(long, default_value_t = 60.0)]
    time_limit: f64,
    /// Refuse (as `oom`) a network whose predicted training memory exceeds this many bytes.
    #[arg(long, default_value_t = 8_000_000_000)]
    train_memory: u64,
    /// `cpu` or `cuda`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print every reply.
    #[arg(long)]
    print_replies: bool,
    /// Write the counts as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    nas_rs::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let device = nas_rs::trainer::device(&args.device)?;
    let mut training = TrainConfig::proxy();
    training.time_limit_seconds = Some(args.time_limit);
    training.memory_limit_bytes = Some(args.train_memory);
    let setup = EvalSetup {
        data: DataSpec {
            path: args.data.clone(),
            dataset: None,
            val_size: Some(128),
            limit_train: Some(args.train_images),
            seed: 0,
        },
        training,
        device: args.device.clone(),
    };
    let mut evaluator = TrainerEvaluator::load(&setup)?;
    let input = evaluator.input();
    let mut config = LoopConfig::new("Image classification on CIFAR-10", 1);
    config.constrained = !args.unconstrained;
    config.generator_sampling.temperature = 0.7;
    config.generator_sampling.top_p = 0.9;
    config.generator_sampling.max_tokens = args.max_tokens;
    let sampling = config.generator_sampling_for(&input)?;
    let messages = generator_messages(&config.task_prompt(input), None, None, None);
    let mut model = load_model(&args.model, &device)?;
    println!(
        "{} | {} | {} answers, {} training images per check",
        model.name(),
        if config.constrained {
            "constrained (generation grammar)"
        } else {
            "unconstrained"
        },
        args.n,
        args.train_images
    );

    let (mut parsed, mut shape_ok, mut trained_ok) = (0, 0, 0);
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let (mut tokens, mut decode_seconds) = (0, 0.0);
    for seed in 0..args.n {
        let mut sampling = sampling.clone();
        sampling.seed = seed;
        let reply = model.chat(&messages, &sampling, None)?;
        tokens += reply.usage.completion_tokens;
        decode_seconds += reply.timing.decode_seconds;
        let verdict = match parse(&reply.text) {
            Err(_) => "parse".to_string(),
            Ok(program) => {
                parsed += 1;
                match program.check(&input) {
                    Err(_) => "shape".to_string(),
                    Ok(analysis) => {
                        shape_ok += 1;
                        let (outcome, _) = evaluator.evaluate(&analysis.resolved);
                        if outcome.status == OutcomeStatus::Ok {
                            trained_ok += 1;
                        }
                        outcome.status.name().to_string()
                    }
                }
            }
        };
        println!(
            "seed {seed:>3}: {verdict:<10} ({} tokens, {:.1} tok/s, {:?})",
            reply.usage.completion_tokens,
            reply.decode_tokens_per_second(),
            reply.finish
        );
        if args.print_replies {
            println!("{}\n", reply.text);
        }
        if verdict != "ok" {
            *failures.entry(verdict).or_insert(0) += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let n = args.n as f64;
    let rate = |k: usize| 100.0 * k as f64 / n;
    let decode = tokens as f64 / decode_seconds.max(1e-9);
    println!(
        "parsed {parsed}/{} ({:.1}%), shape ok {shape_ok} ({:.1}%), trained ok {trained_ok} ({:.1}%); failures {failures:?}; decode {decode:.1} tok/s; {seconds:.0} s",
        args.n,
        rate(parsed),
        rate(shape_ok),
        rate(trained_ok)
    );
    if let Some(path) = &args.json {
        let out = json!({
            "n": args.n, "parsed": parsed, "shape_ok": shape_ok, "trained_ok": trained_ok,
            "seconds": seconds, "model": args.model, "constrained": config.constrained,
            "failures": failures, "completion_tokens": tokens,
            "decode_tokens_per_second": decode,
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
