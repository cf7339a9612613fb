//! `nas search`: one search on a tabular benchmark, its evaluations on an executor.

use std::error::Error;
use std::path::PathBuf;

use clap::Args;
use nas_rs::arch_space::tabular::dataset_prefix;
use nas_rs::cli::{stop_on_ctrl_c, ExecutorArgs, SHIPPED_NB201_TABLE};
use nas_rs::search_loop::benchmark::{Constraint, Protocol, Signal};
use nas_rs::search_loop::parallel::TableSearch;
use nas_rs::search_loop::Strategy;
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
    /// The strategy: random, rea, local, rank-random, rank-llm[:MODEL], rank-llm-chrono[:MODEL].
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
    /// Where evaluations run and where the run is recorded.
    #[command(flatten)]
    execution: ExecutorArgs,
}

/// Runs (or resumes) the search and prints its result as JSON.
pub fn search(args: SearchArgs) -> Result<(), Box<dyn Error>> {
    let dir = args
        .execution
        .dir()
        .ok_or("give the run directory: --run-dir DIR (or --resume DIR)")?;
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
    if args.execution.resume.is_some() && !dir.join("events.jsonl").exists() {
        return Err(format!("--resume {}: no run there", dir.display()).into());
    }
    let run = search.run(dir, Some(stop_on_ctrl_c()), &mut |history| {
        tracing::info!("{} evaluations finished", history.len());
    })?;
    let best = run.history.best();
    let summary = json!({
        "run_dir": dir,
        "evaluations": run.history.len(),
        "failures": run.history.observations().iter().filter(|o| o.score.is_none()).count(),
        "best_code": best.map(|o| o.code.indices().to_vec()),
        "best_signal": best.and_then(|o| o.score),
        "reported": run.reported,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
