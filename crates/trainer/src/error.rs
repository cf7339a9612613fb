use std::path::PathBuf;

use thiserror::Error;

/// Errors of data loading, model building and training.
///
/// Training failures that the closed loop records as outcomes (divergence, timeout, out of
/// memory, shape errors) are not errors of this type but [`crate::train::Status`]es in a [`crate::train::Report`].
#[derive(Debug, Error)]
pub enum TrainError {
    /// A data file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A data file is malformed or the layout is not recognised.
    #[error("bad data at {path}: {reason}")]
    Data {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A state-dict (safetensors) file could not be written, or does not fit the network.
    #[error("state dict {path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The architecture failed the static check.
    #[error(transparent)]
    Check(#[from] arch_space::lang::CheckError),
    /// The tensor library failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// An invalid configuration (e.g. a learning rate that is not finite).
    #[error("invalid configuration: {0}")]
    Config(String),
}
