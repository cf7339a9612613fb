//! Where a run's numbers came from: model files, versions, revision, threads, device.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::SearchError;

/// One language model a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelProvenance {
    /// `generator`, `improver` or `ranker`.
    pub role: String,
    /// The spec it was asked for (`pip:...`, `hf:...`, a path).
    pub spec: String,
    /// The file it resolved to.
    pub path: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Size of the file.
    pub bytes: u64,
}

impl ModelProvenance {
    /// Hashes the model file at `path`.
    pub fn of_file(role: &str, spec: &str, path: &Path) -> Result<Self, SearchError> {
        let io = |e: std::io::Error| SearchError::Run {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buffer).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            bytes += n as u64;
        }
        Ok(ModelProvenance {
            role: role.to_string(),
            spec: spec.to_string(),
            path: path.display().to_string(),
            sha256: hex(&hasher.finalize()),
            bytes,
        })
    }

    /// A model served remotely (`openai:` specs): no file to hash.
    pub fn remote(role: &str, spec: &str) -> Self {
        ModelProvenance {
            role: role.to_string(),
            spec: spec.to_string(),
            path: spec.to_string(),
            sha256: "(served remotely)".to_string(),
            bytes: 0,
        }
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The provenance record of a run (`provenance.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The toolkit's version (all workspace crates share it).
    pub version: String,
    /// `git rev-parse HEAD` of the source tree it was built from, with `-dirty` when it had
    /// uncommitted changes; `None` outside a git checkout.
    pub git_revision: Option<String>,
    /// Compute threads of the tensor library.
    pub threads: usize,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The language models and their file hashes.
    pub models: Vec<ModelProvenance>,
    /// The command line that started the run.
    pub command_line: Vec<String>,
    /// Seconds since the Unix epoch when it was recorded.
    pub time: f64,
}

impl Provenance {
    /// Collects what this process can tell about itself.
    pub fn collect(device: &str, models: Vec<ModelProvenance>) -> Self {
        Provenance {
            version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision: git_revision(Path::new(env!("CARGO_MANIFEST_DIR"))),
            threads: candle_core::utils::get_num_threads(),
            device: device.to_string(),
            models,
            command_line: std::env::args().collect(),
            time: super::unix_time(),
        }
    }
}

fn git_revision(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}
