//! Searches on a tabular benchmark through an executor: the NAS-Bench-201 table searched with
//! N lookups in flight, locally or as Slurm jobs (`nas search --table`, `nb201_search
//! --executor`).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use arch_space::tabular::TabularBenchmark;
use ncode::NCode;
use serde::{Deserialize, Serialize};

use super::{absolute, open_or_create, run_search, ParallelSearch};
use crate::benchmark::{Protocol, Resolved, TabularRun};
use crate::executor::{
    build, run_in_process, Executor, ExecutorKind, Failure, RunJob, SlurmConfig,
};
use crate::run::{OutcomeStatus, RunDir};
use crate::worker::{Job, JobResult, TableJob};
use crate::{History, SearchContext, SearchError, Strategy};

/// One search on a table, as recorded in its run directory's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSearch {
    /// The table's CSV file (an absolute path, so that workers anywhere find it).
    pub table: PathBuf,
    /// The strategy, in its text form (`rea`, `rank-llm:MODEL`, ...).
    pub strategy: String,
    /// The searcher's seed.
    pub seed: u64,
    /// Signal, report metric, constraints, budget and checkpoints.
    pub protocol: Protocol,
    /// Evaluations in flight at once.
    pub parallel: usize,
    /// Where they run.
    pub executor: ExecutorKind,
    /// Slurm's settings (with [`ExecutorKind::Slurm`]).
    pub slurm: Option<SlurmConfig>,
    /// Seconds each lookup holds its slot (a fixed-duration evaluator for measurements; 0 in
    /// searches).
    #[serde(default)]
    pub hold_seconds: f64,
}

impl TableSearch {
    /// Runs the search in `run_dir`: creates the run, or resumes it when `run_dir` already
    /// holds one (its recorded configuration wins over `self`'s). `stop` cancels it (Ctrl-C).
    pub fn run(
        &self,
        run_dir: &Path,
        stop: Option<&AtomicBool>,
        observe: &mut dyn FnMut(&History),
    ) -> Result<TabularRun, SearchError> {
        let mut config = self.clone();
        config.table = absolute(&self.table)?;
        let (mut run, config) = open_or_create(run_dir, &config)?;
        config.run_in(&mut run, stop, observe)
    }

    fn run_in(
        &self,
        run: &mut RunDir,
        stop: Option<&AtomicBool>,
        observe: &mut dyn FnMut(&History),
    ) -> Result<TabularRun, SearchError> {
        let table = TabularBenchmark::load(&self.table)?;
        let resolved = Resolved::new(&table, &self.protocol)?;
        let strategy: Strategy = self.strategy.parse()?;
        let mut searcher = strategy.build_in(self.seed, run)?;
        let admissible = |code: &NCode| resolved.admissible(&table, code);
        let job = |code: &NCode| {
            Ok(Job::Table(TableJob {
                table: self.table.clone(),
                code: code.clone(),
                metric: self.protocol.signal.clone(),
                hold_seconds: self.hold_seconds,
            }))
        };
        let mut executor = self.executor(run.path(), &table)?;
        let search = ParallelSearch {
            ctx: SearchContext {
                space: table.space(),
                admissible: &admissible,
                task: "NAS-Bench-201 cells",
            },
            budget: self.protocol.budget,
            job: &job,
            poll: Duration::from_millis(500),
            stop,
            // Lookups cost less than the cache.
            cache: None,
        };
        let history = run_search(run, &search, searcher.as_mut(), executor.as_mut(), observe)?;
        let evaluations = history.len();
        Ok(TabularRun::new(
            &table,
            &self.protocol,
            &resolved,
            history,
            evaluations,
        ))
    }

    /// The executor: local lookups in the table already loaded, or Slurm jobs.
    fn executor(
        &self,
        run_dir: &Path,
        table: &TabularBenchmark,
    ) -> Result<Box<dyn Executor>, SearchError> {
        let table = table.clone();
        let local: RunJob = Arc::new(move |id: &str, job: &Job| match job {
            Job::Table(lookup) => lookup
                .run_on(&table)
                .map(JobResult::Table)
                .map_err(|e| Failure::new(OutcomeStatus::Crash, e.to_string())),
            other => run_in_process(id, other),
        });
        build(
            self.executor,
            self.parallel,
            self.slurm.as_ref(),
            run_dir,
            local,
        )
    }
}
