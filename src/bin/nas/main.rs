//! `nas`: the command line of nas-rs.
//!
//! ```sh
//! nas report runs/2026-11-24T05-40-00     # writes report.md and plots/*.svg, prints the path
//! nas summary runs/2026-11-24T05-40-00    # finished, valid, failures, best, stop reason (JSON)
//! nas eval --run-dir runs/2026-11-24T05-40-00 --task 000003 [--memory-limit BYTES]
//! nas search --strategy rea --budget 100 --parallel 4 --executor slurm --run-dir /shared/runs/rea0
//! nas retrain runs/2026-11-24T05-40-00 --top 5 --epochs 200 --seeds 3
//! nas export runs/2026-11-24T05-40-00 --arch best --format all --out model/
//! nas grammar                             # the architecture language as a Lark grammar
//! nas grammar --generation --input 3x32x32 --classes 10   # the Code Generator's grammar
//! ```
//!
//! `nas grammar` prints the grammars constrained decoding uses (llguidance's Lark dialect), for
//! servers that take them (vLLM's `guided_grammar`, llguidance-enabled llama.cpp).
//!
//! `nas eval` is the evaluation worker: it runs the job `tasks/<ID>.json` of the run directory
//! (a training or a table lookup) and writes `tasks/<ID>.result.json` (see
//! `search_loop::worker`). The closed loop's process evaluator and Slurm jobs run it; under
//! Slurm it uses `SLURM_CPUS_PER_TASK` threads.
//!
//! `nas search` runs one search on a tabular benchmark (NAS-Bench-201) with `--parallel N`
//! evaluations in flight, locally or as Slurm jobs, recorded in a resumable run directory
//! (`--resume DIR`; see `docs/SCALE_OUT.md`).

mod retrain;
mod search;

use std::error::Error;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nas_rs::arch_space::lang::{generation_grammar, language_grammar, InputSpec};
use nas_rs::search_loop::report::{summarize, write_report};
use nas_rs::search_loop::run::RunDir;
use nas_rs::search_loop::worker::{limit_address_space, work};
use retrain::{run_export, run_retrain, ExportArgs, RetrainArgs};
use search::{search, SearchArgs};
use tracing_subscriber::EnvFilter;

/// nas-rs, LLM-driven neural architecture search, on the command line.
#[derive(Parser)]
#[command(name = "nas", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write report.md and plots/*.svg into a run directory and print the report's path.
    Report {
        /// The run directory.
        dir: PathBuf,
    },
    /// Print the summary of a run (finished, valid, failures by kind, best, stop reason) as JSON.
    Summary {
        /// The run directory.
        dir: PathBuf,
    },
    /// Evaluate task ID of a run directory (the worker): train tasks/ID.json, write
    /// tasks/ID.result.json atomically and print its path.
    Eval {
        /// The run directory.
        #[arg(long)]
        run_dir: PathBuf,
        /// The task's id.
        #[arg(long)]
        task: String,
        /// Address-space limit in bytes, set before anything else (an allocation beyond it
        /// aborts the worker).
        #[arg(long)]
        memory_limit: Option<u64>,
    },
    /// Search a tabular benchmark with N evaluations in flight, locally or on Slurm, in a
    /// resumable run directory; prints the result as JSON.
    Search(Box<SearchArgs>),
    /// Retrain a run's best distinct architectures with a full recipe over several seeds;
    /// prints validation and test accuracy (mean +- std), parameters, FLOPs, time and the rank
    /// correlation with the search's proxy accuracy, and writes retrain/summary.json.
    Retrain(Box<RetrainArgs>),
    /// Copy a retrained network for PyTorch (model.py, model.safetensors, architecture.arch).
    Export(ExportArgs),
    /// Print the architecture language's grammar in llguidance's Lark dialect: the whole
    /// language, or with `--generation` the grammar the closed loop's Code Generator answers in.
    Grammar {
        /// The generation grammar (lazy widths, sizes tracked, class count pinned).
        #[arg(long)]
        generation: bool,
        /// Input shape of the generation grammar, CxHxW.
        #[arg(long, default_value = "3x32x32", requires = "generation")]
        input: String,
        /// Classes of the generation grammar.
        #[arg(long, default_value_t = 10, requires = "generation")]
        classes: usize,
    },
}

/// Reads `CxHxW` (e.g. `3x32x32`).
fn input_spec(shape: &str, classes: usize) -> Result<InputSpec, String> {
    let dims: Vec<usize> = shape
        .split('x')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("--input {shape:?}: expected CxHxW, e.g. 3x32x32"))?;
    match dims[..] {
        [channels, height, width] => Ok(InputSpec {
            channels,
            height,
            width,
            classes,
        }),
        _ => Err(format!("--input {shape:?}: expected CxHxW, e.g. 3x32x32")),
    }
}

/// Under Slurm, nothing may confine a task to its CPUs (clusters without cgroups): use as many
/// threads as `SLURM_CPUS_PER_TASK` grants.
fn limit_threads_to_slurm_allocation() -> Result<(), Box<dyn Error>> {
    let Some(cpus) = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    else {
        return Ok(());
    };
    // Candle's matrix products read the variable; our kernels use the global pool. The process
    // has no other thread yet.
    std::env::set_var("RAYON_NUM_THREADS", cpus.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(cpus.max(1))
        .build_global()?;
    tracing::info!("{cpus} threads (SLURM_CPUS_PER_TASK)");
    Ok(())
}

fn main() -> ExitCode {
    nas_rs::exit_code(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<(), Box<dyn Error>> {
    if let Command::Eval {
        memory_limit: Some(bytes),
        ..
    } = cli.command
    {
        limit_address_space(bytes)?;
    }
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Report { dir } => {
            let path = write_report(&RunDir::read(&dir)?)?;
            println!("{}", path.display());
        }
        Command::Summary { dir } => {
            let summary = summarize(&RunDir::read(&dir)?)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Command::Eval { run_dir, task, .. } => {
            limit_threads_to_slurm_allocation()?;
            println!("{}", work(&run_dir, &task)?.display());
        }
        Command::Search(args) => search(*args)?,
        Command::Retrain(args) => run_retrain(*args)?,
        Command::Export(args) => run_export(args)?,
        Command::Grammar {
            generation,
            input,
            classes,
        } => {
            let grammar = if generation {
                generation_grammar(&input_spec(&input, classes)?)
                    .map_err(|e| format!("no generation grammar: {}", e.message))?
            } else {
                language_grammar()
            };
            print!("{}", grammar.to_lark());
        }
    }
    Ok(())
}
