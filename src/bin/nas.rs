//! `nas`: the command line of nas-rs.
//!
//! ```sh
//! nas report runs/2026-11-24T05-40-00     # writes report.md and plots/*.svg, prints the path
//! nas summary runs/2026-11-24T05-40-00    # finished, valid, failures, best, stop reason (JSON)
//! ```

use std::error::Error;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
}

fn main() -> ExitCode {
    nas_rs::exit_code(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<(), Box<dyn Error>> {
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
    }
    Ok(())
}
