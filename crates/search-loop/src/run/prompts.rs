//! The prompt templates of a run, in its `prompts/` folder: stored when the run starts and read
//! back on resume, so that a run is reproduced from its directory alone.

use std::path::{Path, PathBuf};

use llm_local::prompt::PromptTemplates;

use super::{error, write_atomic, RunDir, EVENTS};
use crate::SearchError;

/// The folder of a run's prompt templates (`prompts/NAME.j2`).
pub const PROMPTS: &str = "prompts";

/// Gives the run in `run_dir` the templates of `--prompts` (call it before the run is created
/// or reopened): a new run (no event log yet) stores them; a resumed run keeps the templates it
/// stored, and `requested` must equal them: a difference is an error naming the files.
pub fn request_prompts(run_dir: &Path, requested: &PromptTemplates) -> Result<(), SearchError> {
    if !run_dir.join(EVENTS).exists() {
        return store(run_dir, requested);
    }
    let folder = run_dir.join(PROMPTS);
    let stored = PromptTemplates::from_dir(requested.set(), &folder)?;
    let differing: Vec<String> = stored
        .differences(requested)
        .into_iter()
        .map(PromptTemplates::file_name)
        .collect();
    if differing.is_empty() {
        return Ok(());
    }
    Err(error(
        &folder,
        format!(
            "the run was started with other prompt templates ({} differ from --prompts); \
             resume without --prompts to use the stored ones",
            differing.join(", ")
        ),
    ))
}

impl RunDir {
    /// The folder of the run's prompt templates: read them with `from_dir` of the crate's
    /// template type (`LoopPrompts`, `RankerPrompts`), which fills in the defaults.
    pub fn prompts_dir(&self) -> PathBuf {
        self.path().join(PROMPTS)
    }

    /// Writes `templates`, all of them, into the run's `prompts/` folder (a file already there
    /// with the same text is left alone), so that it holds every template the run uses.
    pub fn store_prompts(&self, templates: &PromptTemplates) -> Result<(), SearchError> {
        store(self.path(), templates)
    }
}

/// Writes every template to `run_dir/prompts/NAME.j2` (each atomically).
fn store(run_dir: &Path, templates: &PromptTemplates) -> Result<(), SearchError> {
    let folder = run_dir.join(PROMPTS);
    for (name, source) in templates.sources() {
        let path = folder.join(PromptTemplates::file_name(name));
        if std::fs::read_to_string(&path).ok().as_deref() != Some(source) {
            write_atomic(&path, source.as_bytes())?;
        }
    }
    Ok(())
}
