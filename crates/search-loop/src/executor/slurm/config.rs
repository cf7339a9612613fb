//! The Slurm executor's settings (`--slurm-config FILE`, TOML).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SearchError;

/// How jobs are submitted: the `#SBATCH` options of every job, and the driver's own settings.
///
/// ```toml
/// partition = "gpu"
/// time = "00:30:00"          # per evaluation; past it the evaluation is recorded as `timeout`
/// gres = "gpu:1"
/// cpus_per_task = 8          # the worker uses this many threads
/// mem = "32G"
/// account = "my-lab"
/// extra = ["--qos=normal", "--constraint=a100"]   # more #SBATCH lines
/// max_resubmits = 2          # a job lost with its node is submitted again at most this often
/// poll_seconds = 5
/// worker = "/shared/bin/nas" # the `nas` binary as the compute nodes see it
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` of each evaluation (Slurm's formats: `MM`, `HH:MM:SS`, `D-HH`...).
    pub time: Option<String>,
    /// `--gres`, e.g. `gpu:1`.
    pub gres: Option<String>,
    /// `--cpus-per-task`; the worker limits its threads to it.
    pub cpus_per_task: Option<u32>,
    /// `--mem`, e.g. `16G`.
    pub mem: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// More `#SBATCH` lines, with or without the `#SBATCH ` prefix.
    pub extra: Vec<String>,
    /// How often a job lost with its node (vanished, `NODE_FAIL`, `BOOT_FAIL`, `PREEMPTED`) is
    /// submitted again before it is recorded as `lost`.
    pub max_resubmits: usize,
    /// Seconds between two looks at the queue.
    pub poll_seconds: f64,
    /// The `nas` binary the jobs run (default: the one beside the driver's executable).
    pub worker: Option<PathBuf>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            time: None,
            gres: None,
            cpus_per_task: None,
            mem: None,
            account: None,
            extra: Vec::new(),
            max_resubmits: 2,
            poll_seconds: 2.0,
            worker: None,
        }
    }
}

impl SlurmConfig {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self, SearchError> {
        let bad = |reason: String| SearchError::Run {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        toml::from_str(&text).map_err(|e| bad(format!("not a Slurm configuration: {e}")))
    }

    /// The `#SBATCH` lines of these settings (without job name, array and output).
    pub fn sbatch_lines(&self) -> Vec<String> {
        let options = [
            ("partition", self.partition.clone()),
            ("time", self.time.clone()),
            ("gres", self.gres.clone()),
            ("cpus-per-task", self.cpus_per_task.map(|c| c.to_string())),
            ("mem", self.mem.clone()),
            ("account", self.account.clone()),
        ];
        options
            .into_iter()
            .filter_map(|(name, value)| Some(format!("#SBATCH --{name}={}", value?)))
            .chain(self.extra.iter().map(|line| {
                let line = line.trim();
                match line.strip_prefix("#SBATCH") {
                    Some(rest) => format!("#SBATCH {}", rest.trim()),
                    None => format!("#SBATCH {line}"),
                }
            }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_becomes_sbatch_lines_and_unknown_keys_are_errors() {
        let config: SlurmConfig = toml::from_str(
            "partition = \"gpu\"\ntime = \"10\"\ncpus_per_task = 4\n\
             extra = [\"--qos=low\", \"#SBATCH  --constraint=a100\"]\n",
        )
        .unwrap();
        assert_eq!(
            config.sbatch_lines(),
            [
                "#SBATCH --partition=gpu",
                "#SBATCH --time=10",
                "#SBATCH --cpus-per-task=4",
                "#SBATCH --qos=low",
                "#SBATCH --constraint=a100",
            ]
        );
        assert_eq!(config.max_resubmits, 2);
        let err = toml::from_str::<SlurmConfig>("partion = \"gpu\"").unwrap_err();
        assert!(err.to_string().contains("partion"), "{err}");
    }
}
