//! Run directories: everything a run did, on disk, so it can be resumed and reported.
//!
//! ```text
//! runs/2026-11-24T05-40-00/
//!   config.json        what was asked for (read back by --resume)
//!   prompts/*.j2       the prompt templates the run uses (read back by --resume)
//!   provenance.json    model file hashes, version, git revision, threads, device
//!   events.jsonl       append-only log: run_started, llm_call, evaluation, diagnosis, run_finished
//!   evaluations/000003.json   one record per finished evaluation (written atomically)
//!   diagnoses/000003.json     the Prompt Improver's diagnosis of that evaluation
//!   pending/000004.json       a candidate being evaluated (the closed loop; removed once recorded)
//!   llm/000003-generator.prompt.txt, llm/000003-generator.reply.txt, ...
//!   tasks/000002.json, tasks/000002.result.json   a worker's task and result (process evaluator)
//!   best.arch, best.json, summary.json, report.md, plots/*.svg
//! ```
//!
//! A record file is written to a temporary name and renamed, so it exists whole or not at all.
//! The log holds exactly one `"type":"evaluation"` line per record: opening a run for resume
//! cuts a torn last line and appends the lines of records that were written just before a kill,
//! never a second line for the same evaluation.

mod prompts;
mod provenance;
mod record;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use prompts::{request_prompts, PROMPTS};
pub(crate) use provenance::hex;
pub use provenance::{ModelProvenance, Provenance};
pub use record::{
    truncate, DiagnosisRecord, EvaluationRecord, Event, LlmCall, Outcome, OutcomeStatus,
    MESSAGE_LIMIT,
};

use crate::SearchError;

/// The append-only event log's file name.
pub const EVENTS: &str = "events.jsonl";
/// The run's configuration.
pub const CONFIG: &str = "config.json";
/// The run's provenance record.
pub const PROVENANCE: &str = "provenance.json";
/// The directory of evaluation records.
pub const EVALUATIONS: &str = "evaluations";
/// The directory of diagnosis records.
pub const DIAGNOSES: &str = "diagnoses";
/// The directory of candidates being evaluated: their records without an outcome yet.
pub const PENDING: &str = "pending";

/// Seconds since the Unix epoch.
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A run-directory error about `path`.
pub(crate) fn error(path: &Path, reason: impl ToString) -> SearchError {
    SearchError::Run {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SearchError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| error(parent, e))?;
    }
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    };
    write().map_err(|e| error(path, e))
}

/// An open run directory: for writing ([`RunDir::create`], [`RunDir::open`]) or for reading
/// only ([`RunDir::read`], safe while another process is still running it).
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    /// The log, open for appending; `None` when opened read-only.
    events: Option<File>,
    logged: BTreeSet<usize>,
}

impl RunDir {
    /// Creates a new run in `root` (which must not hold a run yet) and records its
    /// configuration and provenance.
    pub fn create(
        root: &Path,
        config: &impl Serialize,
        provenance: &Provenance,
    ) -> Result<Self, SearchError> {
        if root.join(EVENTS).exists() {
            return Err(error(
                root,
                "already holds a run; resume it with --resume or choose another directory",
            ));
        }
        std::fs::create_dir_all(root).map_err(|e| error(root, e))?;
        write_json(&root.join(CONFIG), config)?;
        write_json(&root.join(PROVENANCE), provenance)?;
        Self::open(root)
    }

    /// Opens an existing run to resume it: repairs a torn last log line and logs any finished
    /// evaluation the log lacks. Only the process that runs the loop should open a run this way.
    pub fn open(root: &Path) -> Result<Self, SearchError> {
        let mut run = Self::read(root)?;
        let path = root.join(EVENTS);
        cut_torn_line(&path)?;
        run.events = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| error(&path, e))?,
        );
        for event in run.events()? {
            if let Event::Evaluation { iteration, .. } = event {
                run.logged.insert(iteration);
            }
        }
        for record in run.evaluations()? {
            if !run.logged.contains(&record.iteration) {
                run.log_evaluation(&record)?;
            }
        }
        Ok(run)
    }

    /// Opens a run for reading only (reports, summaries): nothing is repaired or written, so a
    /// run that another process is writing can be read at any time.
    pub fn read(root: &Path) -> Result<Self, SearchError> {
        if !root.join(CONFIG).is_file() {
            return Err(error(root, "is not a run directory (no config.json)"));
        }
        Ok(RunDir {
            root: root.to_path_buf(),
            events: None,
            logged: BTreeSet::new(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The configuration the run was created with.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, SearchError> {
        read_json(&self.root.join(CONFIG))
    }

    /// The provenance recorded when the run was created.
    pub fn provenance(&self) -> Result<Provenance, SearchError> {
        read_json(&self.root.join(PROVENANCE))
    }

    /// Appends one line to the event log.
    pub fn log(&mut self, event: &Event) -> Result<(), SearchError> {
        let path = self.root.join(EVENTS);
        let Some(events) = self.events.as_mut() else {
            return Err(error(&path, "the run was opened read-only"));
        };
        let mut line = serde_json::to_string(event).map_err(|e| error(&path, e))?;
        line.push('\n');
        events
            .write_all(line.as_bytes())
            .and_then(|()| events.flush())
            .map_err(|e| error(&path, e))
    }

    fn log_evaluation(&mut self, record: &EvaluationRecord) -> Result<(), SearchError> {
        self.log(&Event::evaluation(record))?;
        self.logged.insert(record.iteration);
        Ok(())
    }

    /// Every line of the event log that can be read (a line from a newer version is skipped).
    pub fn events(&self) -> Result<Vec<Event>, SearchError> {
        let path = self.root.join(EVENTS);
        let text = std::fs::read_to_string(&path).map_err(|e| error(&path, e))?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// The iterations of the log's `evaluation` lines, in the order they were logged.
    pub fn logged_evaluations(&self) -> Result<Vec<usize>, SearchError> {
        Ok(self
            .events()?
            .into_iter()
            .filter_map(|event| match event {
                Event::Evaluation { iteration, .. } => Some(iteration),
                _ => None,
            })
            .collect())
    }

    /// Writes a text file of the run (prompts, replies, the best architecture) atomically.
    pub fn write_text(&self, relative: &str, text: &str) -> Result<(), SearchError> {
        write_atomic(&self.root.join(relative), text.as_bytes())
    }

    /// Writes a JSON file of the run atomically.
    pub fn write_json(&self, relative: &str, value: &impl Serialize) -> Result<(), SearchError> {
        write_json(&self.root.join(relative), value)
    }

    /// Saves a finished evaluation: its record file, then its `evaluation` log line.
    pub fn save_evaluation(&mut self, record: &EvaluationRecord) -> Result<(), SearchError> {
        if self.logged.contains(&record.iteration) {
            return Err(error(
                &self.root,
                format!("evaluation {} is already recorded", record.iteration),
            ));
        }
        write_json(&self.record_path(EVALUATIONS, record.iteration), record)?;
        self.log_evaluation(record)?;
        let pending = self.record_path(PENDING, record.iteration);
        match std::fs::remove_file(&pending) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(error(&pending, e)),
            _ => Ok(()),
        }
    }

    /// Saves the record of a candidate whose evaluation has started (its outcome is a
    /// placeholder), so that a resumed run can collect or restart it.
    pub fn save_pending(&self, record: &EvaluationRecord) -> Result<(), SearchError> {
        write_json(&self.record_path(PENDING, record.iteration), record)
    }

    /// The candidates whose evaluation started and has no record yet, by iteration.
    pub fn pending(&self) -> Result<BTreeMap<usize, EvaluationRecord>, SearchError> {
        let mut pending = self.records(PENDING)?;
        pending.retain(|iteration, _| !self.logged.contains(iteration));
        Ok(pending)
    }

    /// Saves a diagnosis: its record file, then its log line.
    pub fn save_diagnosis(&mut self, record: &DiagnosisRecord) -> Result<(), SearchError> {
        write_json(&self.record_path(DIAGNOSES, record.iteration), record)?;
        self.log(&Event::Diagnosis {
            iteration: record.iteration,
            problem: record.problem.clone(),
            suggestion: record.suggestion.clone(),
            parsed: record.parsed,
        })
    }

    /// The finished evaluations, by iteration.
    pub fn evaluations(&self) -> Result<Vec<EvaluationRecord>, SearchError> {
        Ok(self.records(EVALUATIONS)?.into_values().collect())
    }

    /// The diagnoses, by the iteration they diagnose.
    pub fn diagnoses(&self) -> Result<BTreeMap<usize, DiagnosisRecord>, SearchError> {
        self.records(DIAGNOSES)
    }

    fn record_path(&self, kind: &str, iteration: usize) -> PathBuf {
        self.root.join(kind).join(format!("{iteration:06}.json"))
    }

    fn records<T: DeserializeOwned>(&self, kind: &str) -> Result<BTreeMap<usize, T>, SearchError> {
        let dir = self.root.join(kind);
        let mut records = BTreeMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(records),
            Err(e) => return Err(error(&dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| error(&dir, e))?.path();
            let iteration = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(iteration) = iteration {
                records.insert(iteration, read_json(&path)?);
            }
        }
        Ok(records)
    }
}

/// Writes `value` as pretty JSON to `path` atomically.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), SearchError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| error(path, e))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, SearchError> {
    let text = std::fs::read_to_string(path).map_err(|e| error(path, e))?;
    serde_json::from_str(&text).map_err(|e| error(path, format!("unreadable record: {e}")))
}

/// Cuts a last line that a kill left without its newline.
fn cut_torn_line(path: &Path) -> Result<(), SearchError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(error(path, e)),
    };
    if bytes.last().is_none_or(|&b| b == b'\n') {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| error(path, e))?;
    file.set_len(keep as u64).map_err(|e| error(path, e))
}
