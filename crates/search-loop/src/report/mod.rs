//! Reports of closed-loop runs: `report.md` and `plots/*.svg`, written into the run directory
//! from its records, so a killed run is reported as far as it got.
//!
//! ```text
//! report.md                  config, provenance, summary, best architecture, every iteration
//! plots/best_so_far.svg      best validation accuracy so far, per iteration
//! plots/accuracy.svg         validation accuracy per iteration, failures at 0 in red
//! plots/outcomes.svg         evaluations by outcome (ok and each failure kind)
//! plots/accuracy_vs_params.svg   validation accuracy against parameters (log scale)
//! ```
//!
//! The search selects on validation accuracy; test accuracy is reported only, and the report
//! says so.

mod markdown;
mod plots;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::closed_loop::Summary;
use crate::run::{write_atomic, DiagnosisRecord, EvaluationRecord, Event, Provenance, RunDir};
use crate::SearchError;

/// The report's file name in the run directory.
pub const REPORT: &str = "report.md";

/// The stop reason of a run whose log has no `run_finished` line after its last `run_started`:
/// it is still running, or it was killed.
pub const UNFINISHED: &str = "unfinished";

/// Writes `report.md` and `plots/*.svg` into the run directory and returns the report's path.
///
/// Works on any run: no evaluations, only failures, or a single one.
pub fn write_report(run: &RunDir) -> Result<PathBuf, SearchError> {
    let contents = Contents::read(run)?;
    for plot in &plots::PLOTS {
        let path = run.path().join(plot.file);
        let svg = plot
            .svg(&contents.evaluations, &contents.summary)
            .map_err(|reason| run_error(&path, reason))?;
        write_atomic(&path, svg.as_bytes())?;
    }
    let path = run.path().join(REPORT);
    write_atomic(&path, markdown::render(&contents).as_bytes())?;
    Ok(path)
}

/// The summary of a run as it stands: [`Summary::of`] its finished evaluations, with the stop
/// reason of its event log (the last `run_finished`, or [`UNFINISHED`] when the last process
/// that started the run has not finished it).
pub fn summarize(run: &RunDir) -> Result<Summary, SearchError> {
    summary_of(run, &run.evaluations()?)
}

fn summary_of(run: &RunDir, evaluations: &[EvaluationRecord]) -> Result<Summary, SearchError> {
    let events = run.events()?;
    let last = events
        .iter()
        .rev()
        .find(|e| matches!(e, Event::RunStarted { .. } | Event::RunFinished { .. }));
    let reason = match last {
        Some(Event::RunFinished { reason, .. }) => reason.as_str(),
        _ => UNFINISHED,
    };
    Ok(Summary::of(evaluations, reason))
}

fn run_error(path: &Path, reason: impl ToString) -> SearchError {
    SearchError::Run {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Everything a report shows, read from the run directory.
struct Contents {
    root: PathBuf,
    config: Result<serde_json::Value, String>,
    provenance: Result<Provenance, String>,
    evaluations: Vec<EvaluationRecord>,
    diagnoses: BTreeMap<usize, DiagnosisRecord>,
    summary: Summary,
}

impl Contents {
    /// Reads the records (an unreadable record is an error); an unreadable configuration or
    /// provenance is shown as such in the report instead.
    fn read(run: &RunDir) -> Result<Self, SearchError> {
        let evaluations = run.evaluations()?;
        let summary = summary_of(run, &evaluations)?;
        Ok(Contents {
            root: run.path().to_path_buf(),
            config: run.config().map_err(|e| e.to_string()),
            provenance: run.provenance().map_err(|e| e.to_string()),
            evaluations,
            diagnoses: run.diagnoses()?,
            summary,
        })
    }
}
