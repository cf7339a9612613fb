//! `nas`: the command line of nas-rs.
//!
//! ```sh
//! nas report runs/2026-11-24T05-40-00     # writes report.md and plots/*.svg, prints the path
//! nas summary runs/2026-11-24T05-40-00    # finished, valid, failures, best, stop reason (JSON)
//! nas eval --run-dir runs/2026-11-24T05-40-00 --task 000003 [--memory-limit BYTES]
//! nas grammar                             # the architecture language as a Lark grammar
//! nas grammar --generation --input 3x32x32 --classes 10   # the Code Generator's grammar
//! ```
//!
//! `nas grammar` prints the grammars constrained decoding uses (llguidance's Lark dialect), for
//! servers that take them (vLLM's `guided_grammar`, llguidance-enabled llama.cpp).
//!
//! `nas eval` is the evaluation worker: it trains the task `tasks/<ID>.json` of the run
//! directory and writes `tasks/<ID>.result.json` (see `search_loop::closed_loop::worker`). The
//! closed loop's process evaluator and Slurm jobs run it.

use std::error::Error;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nas_rs::arch_space::lang::{generation_grammar, language_grammar, InputSpec};
use nas_rs::search_loop::closed_loop::worker::{limit_address_space, work};
use nas_rs::search_loop::report::{summarize, write_report};
use nas_rs::search_loop::run::RunDir;
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
            println!("{}", work(&run_dir, &task)?.display());
        }
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
