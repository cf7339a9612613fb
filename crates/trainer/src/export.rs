//! Exporting a network for PyTorch: `model.safetensors` (the state dict under PyTorch's names),
//! `model.py` (a self-contained module defining `build()`, from
//! [`arch_space::lang::to_pytorch`]) and `architecture.arch` (the resolved architecture text).
//!
//! In PyTorch, `build()` plus
//! `load_state_dict(safetensors.torch.load_file("model.safetensors"))` reproduces the network's
//! evaluation-mode forward pass (see `docs/EXPORT.md`).

use std::path::{Path, PathBuf};

use arch_space::lang::{to_pytorch, to_text};

use crate::model::Network;
use crate::TrainError;

/// The weights file's name in an export directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The PyTorch module's file name in an export directory.
pub const MODULE_FILE: &str = "model.py";
/// The architecture text's file name in an export directory.
pub const ARCH_FILE: &str = "architecture.arch";

/// What an export writes (`architecture.arch` always).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `model.py` only.
    Pytorch,
    /// `model.safetensors` only.
    Safetensors,
    /// Both.
    #[default]
    All,
}

impl std::str::FromStr for Format {
    type Err = String;

    /// `pytorch`, `safetensors` or `all`, as on command lines.
    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "pytorch" => Ok(Format::Pytorch),
            "safetensors" => Ok(Format::Safetensors),
            "all" => Ok(Format::All),
            other => Err(format!(
                "unknown export format `{other}` (use pytorch, safetensors or all)"
            )),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Pytorch => "pytorch",
            Format::Safetensors => "safetensors",
            Format::All => "all",
        })
    }
}

/// Writes `network` into `dir` (created if needed) in `format`; returns the files written.
pub fn export(network: &Network, dir: &Path, format: Format) -> Result<Vec<PathBuf>, TrainError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut written = Vec::new();
    let mut write = |name: &str, text: String| -> Result<(), TrainError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
        Ok(())
    };
    write(ARCH_FILE, to_text(network.module()) + "\n")?;
    if format != Format::Safetensors {
        write(MODULE_FILE, to_pytorch(network.module(), network.input())?)?;
    }
    if format != Format::Pytorch {
        let path = dir.join(WEIGHTS_FILE);
        network.save_safetensors(&path)?;
        written.push(path);
    }
    Ok(written)
}
