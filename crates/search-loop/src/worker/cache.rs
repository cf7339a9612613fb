//! An evaluation cache shared across runs: the results of finished jobs in a directory the user
//! chooses, keyed by everything that determines them, so repeated searches never retrain what
//! they already trained.
//!
//! The key is the SHA-256 of the job's JSON: for a training, the canonical architecture text,
//! the data and its splits, the recipe (seed included) and the device; for an external
//! evaluator, the command and the candidate's configuration. Only successful results are kept
//! (a timeout or a crash may not happen again); table lookups are not cached (they cost less
//! than the cache). Entries are written atomically, so several runs may share a directory.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Job, JobResult};
use crate::run::{hex, write_json, OutcomeStatus};
use crate::SearchError;

/// A directory of cached job results (`<key>.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalCache {
    dir: PathBuf,
}

impl EvalCache {
    /// The cache in `dir` (created when the first result is stored).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EvalCache { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache key of a job, or `None` for jobs that are not cached.
    pub fn key(job: &Job) -> Option<String> {
        if matches!(job, Job::Table(_)) {
            return None;
        }
        let json = serde_json::to_vec(job).ok()?;
        Some(hex(&Sha256::digest(&json)))
    }

    /// The cached result of `job`, if any (an unreadable entry counts as absent).
    pub fn get(&self, job: &Job) -> Option<JobResult> {
        let text = std::fs::read_to_string(self.path(&Self::key(job)?)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Stores the result of `job` when it succeeded.
    pub fn put(&self, job: &Job, result: &JobResult) -> Result<(), SearchError> {
        let succeeded = match result {
            JobResult::Train(r) => OutcomeStatus::from(r.report.status) == OutcomeStatus::Ok,
            JobResult::Command(r) => r.status == OutcomeStatus::Ok,
            JobResult::Table(_) => false,
        };
        match Self::key(job) {
            Some(key) if succeeded => write_json(&self.path(&key), result),
            _ => Ok(()),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }
}
