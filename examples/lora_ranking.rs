//! LM-Searcher's ranking loop in a LoRA rank space, scored by a SYNTHETIC evaluator.
//!
//! ```text
//! cargo run --release --example lora_ranking -- [--space tiny|sam|stable-diffusion] \
//!     [--strategy rank-llm[:MODEL]|rank-llm-chrono[:MODEL]|rank-random|random|rea|local] \
//!     [--budget 20] [--seed 0]
//! ```
//!
//! No adapter is trained here. The score of a rank configuration is a made-up, deterministic
//! function ([`synthetic_score`]): diminishing returns of the rank of each module, later modules
//! mattering more, minus a parameter cost. It only shows the loop running in a space other than
//! NAS-Bench-201 (codes of one rank index per module) and lets searchers be compared on a known
//! optimum; its numbers say nothing about real LoRA fine-tuning.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use nas_rs::arch_space::lora::LoraRankSpace;
use nas_rs::cli::ranker_prompts;
use nas_rs::search_loop::{History, Observation, SearchContext, Strategy};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Space {
    /// 6 projections of one transformer block, ranks 0 (not adapted), 4, 8, 16.
    Tiny,
    /// LM-Searcher's Segment Anything preset: 32 blocks, ranks 3, 6, 12, 24.
    Sam,
    /// LM-Searcher's Stable Diffusion preset: 48 groups, ranks 4, 8, 16.
    StableDiffusion,
}

#[derive(Debug, Parser)]
#[command(about = "LLM ranking in a LoRA rank space with a SYNTHETIC evaluator (no training)")]
struct Args {
    /// The LoRA rank space.
    #[arg(long, value_enum, default_value = "tiny")]
    space: Space,
    /// The searcher, as in nb201_search (rank-llm uses the default model unless `:MODEL` is given).
    #[arg(long, default_value = "rank-llm")]
    strategy: Strategy,
    /// Evaluations (for the ranking loops, the first 5 are random warm-up).
    #[arg(long, default_value_t = 20)]
    budget: usize,
    /// Seed of the search.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Prompt templates of the LLM ranker overriding the defaults (docs/PROMPTS.md).
    #[arg(long)]
    prompts: Option<PathBuf>,
}

/// SYNTHETIC contribution of module `i` of `n` at `rank`: `w_i * ln(1 + rank) / ln(1 + max_rank)`
/// with `w_i = 20 (0.5 + i/n) / n` (diminishing returns, later modules matter more), minus a
/// parameter cost `16 rank / (n max_rank)`. Not a measurement of anything.
fn synthetic_module(i: usize, n: usize, rank: u32, max_rank: u32) -> f64 {
    let (n, max, r) = (n as f64, f64::from(max_rank.max(1)), f64::from(rank));
    let weight = 20.0 * (0.5 + i as f64 / n) / n;
    weight * (1.0 + r).ln() / (1.0 + max).ln() - 16.0 * r / (n * max)
}

/// SYNTHETIC score of one rank per module: 70 plus the sum of [`synthetic_module`].
fn synthetic_score(ranks: &[u32], max_rank: u32) -> f64 {
    let n = ranks.len();
    70.0 + ranks
        .iter()
        .enumerate()
        .map(|(i, &r)| synthetic_module(i, n, r, max_rank))
        .sum::<f64>()
}

fn main() -> ExitCode {
    nas_rs::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let lora = match args.space {
        Space::Tiny => LoraRankSpace::new(
            [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "up_proj",
                "down_proj",
            ],
            [0, 4, 8, 16],
        ),
        Space::Sam => LoraRankSpace::sam(),
        Space::StableDiffusion => LoraRankSpace::stable_diffusion(),
    };
    let space = lora.space()?;
    let max_rank = lora.ranks.iter().copied().max().unwrap_or(1);
    let score = |code: &_| -> Result<f64, Box<dyn std::error::Error>> {
        Ok(synthetic_score(&lora.decode(code)?, max_rank))
    };
    // The score is a sum over modules, so the optimum takes the best rank of each module.
    let n = lora.modules.len();
    let optimum = 70.0
        + (0..n)
            .map(|i| {
                lora.ranks
                    .iter()
                    .map(|&r| synthetic_module(i, n, r, max_rank))
                    .fold(f64::MIN, f64::max)
            })
            .sum::<f64>();
    println!(
        "SYNTHETIC evaluator (no training; made-up scores) | {n} modules x ranks {:?} | {} | \
         seed {} | synthetic optimum {optimum:.3}",
        lora.ranks, args.strategy, args.seed
    );
    let task = format!("LoRA ranks for {n} modules, maximising a synthetic score");
    let ctx = SearchContext::unconstrained(&space, &task);
    let started = Instant::now();
    let prompts = ranker_prompts(args.prompts.as_deref())?;
    let mut searcher = args.strategy.build_with(args.seed, prompts)?;
    let mut history = History::new();
    while history.len() < args.budget {
        let step = Instant::now();
        let code = searcher.propose(&ctx, &history)?;
        let s = score(&code)?;
        history.push(Observation {
            code: code.clone(),
            score: Some(s),
        });
        let best = history.best().and_then(|o| o.score).unwrap_or(s);
        println!(
            "step {:>3}  ranks {:?}  synthetic {s:.3}  best {best:.3}  ({:.1} s)",
            history.len(),
            lora.decode(&code)?,
            step.elapsed().as_secs_f64()
        );
    }
    let best = history.best().ok_or("no evaluation was made")?;
    println!(
        "best ranks {:?}: synthetic score {:.3}, regret {:.3} to the synthetic optimum ({:.1} s)",
        lora.decode(&best.code)?,
        best.score.unwrap_or(f64::NAN),
        optimum - best.score.unwrap_or(f64::NAN),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
