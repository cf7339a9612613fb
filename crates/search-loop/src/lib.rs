//! # search-loop: search strategies and the composition of the workspace
//!
//! The top layer: it composes the lower crates behind their traits.
//!
//! * [`Searcher`]: "given the history so far, propose the next architecture", with
//!   [`RandomSearch`], [`RegularizedEvolution`], [`LocalSearch`] and LM-Searcher's
//!   [`RankingSearch`], which takes any [`ranker::Ranker`] (the random ranker today, the LLM
//!   ranker unchanged later).
//! * [`SearchContext`]: the space and the constraints (admissibility) a search runs under, so a
//!   search can maximise accuracy under a latency or parameter budget.
//! * [`benchmark`]: running and comparing strategies on a tabular benchmark with an honest
//!   protocol (search on validation, report test; mean and std over seeds; regret).
//! * [`report`]: `report.md` and SVG plots of a closed-loop run directory ([`run::RunDir`]),
//!   written by [`report::write_report`] (the `nas report DIR` command).
//!
//! ```
//! use arch_space::nb201;
//! use search_loop::{History, RegularizedEvolution, SearchContext, Searcher};
//!
//! let ctx = SearchContext::unconstrained(nb201::space(), "toy");
//! let mut rea = RegularizedEvolution::new(42);
//! let mut history = History::new();
//! for _ in 0..20 {
//!     let code = rea.propose(&ctx, &history).unwrap();
//!     // A toy score: the number of 3x3 convolutions in the cell.
//!     let score = code.indices().iter().filter(|&&op| op == 3).count() as f64;
//!     history.push(ranker::Observation { code, score: Some(score) });
//! }
//! assert_eq!(history.len(), 20);
//! ```

#![warn(missing_docs)]

pub mod benchmark;
pub mod closed_loop;
mod error;
pub mod executor;
mod history;
pub mod parallel;
pub mod report;
pub mod retrain;
pub mod run;
mod searcher;
pub mod strategies;
mod strategy;
pub mod worker;

pub use error::SearchError;
pub use history::History;
pub use ranker::Observation;
pub use searcher::{propose_in_a_row, SearchContext, Searcher};
pub use strategies::{LocalSearch, RandomSearch, RankingSearch, RegularizedEvolution, Tpe};
pub use strategy::Strategy;
