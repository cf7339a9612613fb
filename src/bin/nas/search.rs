//! `nas search`: one search, its evaluations on an executor: lookups in a tabular benchmark, or
//! a user's space with a user's evaluator command.

use std::error::Error;
use std::path::{Path, PathBuf};

use clap::Args;
use nas_rs::arch_space::tabular::dataset_prefix;
use nas_rs::cli::{
    stop_on_ctrl_c, ExecutorArgs, RunDirArgs, SHIPPED_CIFAR10_SUBSET, SHIPPED_NB201_TABLE,
};
use nas_rs::ranker::RankerPrompts;
use nas_rs::search_loop::benchmark::{Constraint, Protocol, Signal};
use nas_rs::search_loop::parallel::{load_space_file, SpaceSearch, TableSearch};
use nas_rs::search_loop::run::{request_prompts, RunDir};
use nas_rs::search_loop::worker::{DataSpec, EvalSetup};
use nas_rs::search_loop::{History, Strategy};
use nas_rs::trainer::train::TrainConfig;
use serde_json::json;

/// The arguments of `nas search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Table in the NAS-Bench-201 CSV layout (default: the shipped CIFAR-10 table).
    #[arg(long, default_value = SHIPPED_NB201_TABLE)]
    table: PathBuf,
    /// Dataset column prefix (`c10`, `c100`, `in16`) or alias (`cifar10`, ...).
    #[arg(long, default_value = "cifar10")]
    dataset: String,
    /// The strategy: random, rea, local, tpe, rank-random, rank-llm[:MODEL], rank-llm-chrono[:MODEL].
    #[arg(long, default_value = "rea")]
    strategy: Strategy,
    /// The searcher's seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Evaluations.
    #[arg(long, default_value_t = 100)]
    budget: usize,
    /// Search on `val` (12-epoch validation accuracy; honest) or `test` (the reported column).
    #[arg(long, default_value = "val")]
    signal: Signal,
    /// Constraint METRIC<=VALUE (repeatable).
    #[arg(long = "max")]
    constraints: Vec<Constraint>,
    /// Seconds each evaluation holds its slot (a fixed-duration evaluator, for measurements).
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// Search this space instead of the table: `nb201`, or a TOML or JSON file (see
    /// docs/USER_GUIDE.md); candidates are evaluated by `--evaluator`, or trained by our trainer
    /// on `--data` as the file's `architecture` template renders them.
    #[arg(long)]
    space: Option<String>,
    /// Evaluate each candidate with this command instead of the table: `{config_json}` is the
    /// path of the candidate's configuration, `{config}` the configuration itself; its last
    /// output line is `{"score": ..., "metrics": {...}}`.
    #[arg(long, requires = "space")]
    evaluator: Option<String>,
    /// The evaluator's time limit per candidate, in seconds.
    #[arg(long, requires = "evaluator")]
    timeout: Option<f64>,
    /// Evaluation cache shared across runs: candidates evaluated before (same configuration and
    /// command, or same architecture and training) are not evaluated again.
    #[arg(long, requires = "space")]
    cache: Option<PathBuf>,
    /// The data our trainer trains a space's rendered architectures on (without `--evaluator`):
    /// a dataset directory or `.tar.gz` (default: the shipped CIFAR-10 subset).
    #[arg(long, requires = "space", default_value = SHIPPED_CIFAR10_SUBSET)]
    data: PathBuf,
    /// Train on at most this many images of the training split.
    #[arg(long, requires = "space")]
    limit_train: Option<usize>,
    /// The device our trainer uses: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Prompt templates of the LLM ranker (`ranker_system.j2`, `ranker_user.j2`; see
    /// docs/PROMPTS.md) overriding the defaults; stored in the run's `prompts/` folder, which a
    /// resumed run reads back.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Where evaluations run.
    #[command(flatten)]
    execution: ExecutorArgs,
    /// Where the run is recorded.
    #[command(flatten)]
    record: RunDirArgs,
}

/// Runs (or resumes) the search and prints its result as JSON.
pub fn search(args: SearchArgs) -> Result<(), Box<dyn Error>> {
    let dir = args
        .record
        .dir()
        .ok_or("give the run directory: --run-dir DIR (or --resume DIR)")?;
    if args.record.resume.is_some() && !dir.join("events.jsonl").exists() {
        return Err(format!("--resume {}: no run there", dir.display()).into());
    }
    if let Some(prompts) = &args.prompts {
        if args.record.resume.is_none() && args.strategy.model_spec().is_none() {
            return Err(
                "--prompts: only the LLM strategies (rank-llm, rank-llm-chrono) have prompts"
                    .into(),
            );
        }
        request_prompts(dir, RankerPrompts::from_dir(prompts)?.templates())?;
    }
    // A resumed run keeps its kind: its configuration names an evaluator or a table.
    let recorded: Option<SpaceSearch> = match &args.record.resume {
        Some(dir) => serde_json::from_value(RunDir::read(dir)?.config()?).ok(),
        None => None,
    };
    let space_search = match (recorded, &args.space) {
        (Some(search), _) => Some(search),
        (None, Some(space)) => {
            let (space, templates) = load_space_file(space)?;
            Some(SpaceSearch {
                space,
                templates,
                strategy: args.strategy.to_string(),
                seed: args.seed,
                budget: args.budget,
                training: match &args.evaluator {
                    Some(_) => None,
                    None => Some(training_setup(&args)?),
                },
                evaluator: args.evaluator.clone(),
                timeout_seconds: args.timeout,
                parallel: args.execution.parallel,
                executor: args.execution.executor,
                slurm: args.execution.slurm()?,
                cache: args.cache.clone(),
            })
        }
        (None, None) => None,
    };
    if let Some(search) = space_search {
        let history = search.run(dir, Some(stop_on_ctrl_c()), &mut progress)?;
        return print_summary(dir, &history, serde_json::Value::Null);
    }
    let mut protocol =
        Protocol::nas_bench_201(dataset_prefix(&args.dataset), args.signal, args.budget);
    protocol.constraints = args.constraints;
    let search = TableSearch {
        table: args.table,
        strategy: args.strategy.to_string(),
        seed: args.seed,
        protocol,
        parallel: args.execution.parallel,
        executor: args.execution.executor,
        slurm: args.execution.slurm()?,
        hold_seconds: args.hold,
    };
    let run = search.run(dir, Some(stop_on_ctrl_c()), &mut progress)?;
    print_summary(dir, &run.history, json!(run.reported))
}

/// What our trainer trains a space's candidates with: the proxy recipe (one epoch) on `--data`.
fn training_setup(args: &SearchArgs) -> Result<EvalSetup, Box<dyn Error>> {
    Ok(EvalSetup {
        data: DataSpec {
            // Absolute, so that workers elsewhere find it.
            path: std::path::absolute(&args.data)?,
            dataset: None,
            val_size: None,
            limit_train: args.limit_train,
            seed: args.seed,
        },
        training: TrainConfig {
            seed: args.seed,
            ..TrainConfig::proxy()
        },
        device: args.device.clone(),
    })
}

fn progress(history: &History) {
    tracing::info!("{} evaluations finished", history.len());
}

/// Prints the result: evaluations, failures, the best code and score, and (for tables) the
/// report metric of the pick at each checkpoint.
fn print_summary(
    dir: &Path,
    history: &History,
    reported: serde_json::Value,
) -> Result<(), Box<dyn Error>> {
    let best = history.best();
    let summary = json!({
        "run_dir": dir,
        "evaluations": history.len(),
        "failures": history.observations().iter().filter(|o| o.score.is_none()).count(),
        "best_code": best.map(|o| o.code.indices().to_vec()),
        "best_score": best.and_then(|o| o.score),
        "reported": reported,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
