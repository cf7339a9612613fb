//! Table lookups as jobs: an evaluation on a tabular benchmark (NAS-Bench-201), the cheapest job
//! there is, so that searches on the table exercise the same executors as trainings do.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arch_space::tabular::TabularBenchmark;
use ncode::NCode;
use serde::{Deserialize, Serialize};

use super::TaskError;

/// Looks one architecture up in a table: the worker loads the table, reads `metric` of `code`,
/// and (for overhead and throughput measurements) holds the slot for `hold_seconds` first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableJob {
    /// The table's CSV file (NAS-Bench-201 layout), as the worker sees it.
    pub table: PathBuf,
    /// The architecture.
    pub code: NCode,
    /// The metric read, e.g. `c10_val_12`.
    pub metric: String,
    /// Seconds the job sleeps before answering: a fixed-duration evaluator (0 in searches).
    #[serde(default)]
    pub hold_seconds: f64,
}

/// A table lookup's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableResult {
    /// The metric's value (`None` when the table has none for the code).
    pub score: Option<f64>,
    /// Seconds the job took, loading the table included.
    pub seconds: f64,
}

impl TableJob {
    /// Runs the lookup on an already loaded table (what an in-process executor does).
    pub fn run_on(&self, table: &TabularBenchmark) -> Result<TableResult, TaskError> {
        let started = Instant::now();
        if self.hold_seconds > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(self.hold_seconds));
        }
        let metric = table.metric(&self.metric).map_err(TaskError::Table)?;
        let score = table
            .evaluate(&self.code, metric)
            .map_err(TaskError::Table)?;
        Ok(TableResult {
            score,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Loads the table and runs the lookup (what a worker process does).
    pub fn run(&self) -> Result<TableResult, TaskError> {
        let started = Instant::now();
        let table = TabularBenchmark::load(&self.table).map_err(TaskError::Table)?;
        let mut result = self.run_on(&table)?;
        result.seconds = started.elapsed().as_secs_f64();
        Ok(result)
    }
}
