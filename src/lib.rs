//! # nas-rs: LLM-driven neural architecture search in Rust
//!
//! The facade of the workspace: it re-exports every crate under one name and owns the examples
//! and benchmarks. Depend on a single crate (`ncode`, `arch-space`, ...) when you need only one
//! layer. See `docs/ARCHITECTURE.md` for how the crates fit together.
//!
//! Search the real NAS-Bench-201 table with regularized evolution under a latency budget, on the
//! honest protocol (search on 12-epoch validation accuracy, report the pick's 200-epoch test
//! accuracy):
//!
//! ```
//! use nas_rs::arch_space::nb201::Nb201Cell;
//! use nas_rs::arch_space::tabular::TabularBenchmark;
//! use nas_rs::search_loop::benchmark::{run_on_table, Protocol};
//! use nas_rs::search_loop::RegularizedEvolution;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let table = TabularBenchmark::load("datasets/nasbench201/nb201_cifar10.csv")?;
//! let protocol = Protocol {
//!     signal: "c10_val_12".into(),
//!     report: "c10_test_200".into(),
//!     constraints: vec!["lat_ms_pixel3<=10".parse()?],
//!     budget: 100,
//!     checkpoints: vec![25, 100],
//! };
//! let mut rea = RegularizedEvolution::new(0);
//! let run = run_on_table(&table, &protocol, &mut rea, "NB201 on CIFAR-10")?;
//! let best = run.history.best().expect("100 evaluations were made");
//! println!("{} -> {:?}", Nb201Cell::from_ncode(&best.code)?, run.reported);
//! assert_eq!(run.evaluations, 100);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

use std::process::ExitCode;

pub mod cli;

pub use arch_space;
pub use llm_local;
pub use ncode;
pub use ranker;
pub use search_loop;
pub use trainer;

/// The exit code of a command-line program: success, or the error printed to standard error
/// (`error: ...`) and failure. The examples' `main` is `nas_rs::exit_code(run(Args::parse()))`.
pub fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
