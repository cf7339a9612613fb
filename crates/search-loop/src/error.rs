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
    /// A strategy name that is not known.
    #[error("unknown strategy `{0}` (known: random, rea, local, rank-random)")]
    UnknownStrategy(String),
    /// A constraint that cannot be read.
    #[error("invalid constraint `{text}`: {reason}")]
    Constraint {
        /// The text given.
        text: String,
        /// What is wrong.
        reason: String,
    },
}
