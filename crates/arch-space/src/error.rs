use std::path::PathBuf;

use thiserror::Error;

/// Errors of the concrete spaces and the tabular benchmarks.
#[derive(Debug, Error)]
pub enum ArchSpaceError {
    /// A code or text was invalid for the space (position and reason inside).
    #[error(transparent)]
    Code(#[from] ncode::NcodeError),
    /// A NAS-Bench-201 `arch_str` could not be read.
    #[error("invalid NAS-Bench-201 arch_str {text:?}: {reason}")]
    ArchStr {
        /// The offending text.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// A NAS-Bench-201 index outside 0..15625.
    #[error("NAS-Bench-201 index {0} is out of range (0..=15624)")]
    IndexOutOfRange(usize),
    /// A configuration of a space that cannot be built (e.g. no choices for a dimension).
    #[error("invalid space configuration: {0}")]
    Config(String),
    /// A tabular benchmark file could not be opened or read.
    #[error("cannot read table {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A tabular benchmark file is malformed.
    #[error("bad table {path}: {reason}")]
    Table {
        /// The file (or `<memory>` for tables read from a reader).
        path: PathBuf,
        /// What is wrong, with the line number where there is one.
        reason: String,
    },
    /// A metric that the table does not have.
    #[error("unknown metric `{name}`; the table has: {available}")]
    UnknownMetric {
        /// The requested metric.
        name: String,
        /// Comma-separated list of the table's metrics.
        available: String,
    },
}
