use thiserror::Error;

/// Errors of searches and their composition.
#[derive(Debug, Error)]
pub enum SearchError {
    /// No unseen architecture satisfying the constraints could be found.
    #[error("{searcher}: no unseen admissible architecture left (after {tried} tries)")]
    Exhausted {
        /// The searcher that ran dry.
        searcher: String,
        /// How many candidates it looked at.
        tried: usize,
    },
    /// A ranker failed.
    #[error(transparent)]
    Ranker(#[from] ranker::RankerError),
    /// A space or benchmark error (bad code, unknown metric, unreadable table).
    #[error(transparent)]
    Space(#[from] arch_space::ArchSpaceError),
    /// An NCode error.
    #[error(transparent)]
    Code(#[from] ncode::NcodeError),
    /// A strategy that cannot be read (unknown name, or a model spec where none belongs).
    #[error("invalid strategy `{text}`: {reason}")]
    UnknownStrategy {
        /// The text given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// A named value that cannot be read (e.g. a search signal other than `val` or `test`).
    #[error("invalid {what} `{text}`: expected {expected}")]
    Invalid {
        /// What the value is.
        what: &'static str,
        /// The text given.
        text: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// A constraint that cannot be read.
    #[error("invalid constraint `{text}`: {reason}")]
    Constraint {
        /// The text given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// A run directory could not be created, read or written.
    #[error("run directory {path}: {reason}")]
    Run {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A prompt template could not be loaded or rendered (the message names its file).
    #[error(transparent)]
    Prompt(#[from] llm_local::prompt::PromptError),
    /// A language model could not be loaded or failed outside an iteration.
    #[error(transparent)]
    Llm(#[from] llm_local::LlmError),
}
