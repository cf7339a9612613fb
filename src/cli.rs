//! Command-line pieces shared by the `nas` binary and the examples: where evaluations run
//! (`--executor`, `--parallel`, `--slurm-config`), where runs are recorded (`--run-dir`,
//! `--resume`), the LLM ranker's `--prompts` and Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use clap::Args;
use ranker::{RankerError, RankerPrompts};
use search_loop::executor::SlurmConfig;
use search_loop::parallel::ExecutorKind;
use search_loop::SearchError;

/// The 5,000-image CIFAR-10 subset shipped with the repository (the examples' default data).
pub const SHIPPED_CIFAR10_SUBSET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/cifar10-subset/cifar10-subset.tar.gz"
);

/// The NAS-Bench-201 CIFAR-10 table shipped with the repository.
pub const SHIPPED_NB201_TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/nasbench201/nb201_cifar10.csv"
);

/// `--executor local|slurm --parallel N [--slurm-config FILE]`.
#[derive(Debug, Clone, Args)]
pub struct ExecutorArgs {
    /// Where evaluations run: `local` (threads of this process) or `slurm` (`sbatch` jobs of
    /// the `nas eval` worker; the run directory must be on a file system the nodes share).
    #[arg(long, default_value = "local")]
    pub executor: ExecutorKind,
    /// Evaluations in flight at once; 1 reproduces the sequential search for a seed.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Slurm settings (TOML: partition, time, gres, cpus_per_task, mem, account, extra,
    /// max_resubmits, poll_seconds, worker); see docs/SCALE_OUT.md.
    #[arg(long)]
    pub slurm_config: Option<PathBuf>,
}

/// `--run-dir DIR | --resume DIR`.
#[derive(Debug, Clone, Args)]
pub struct RunDirArgs {
    /// Run directory: every evaluation recorded, resumable.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Resume the run in this directory (its recorded configuration is used).
    #[arg(long, conflicts_with = "run_dir")]
    pub resume: Option<PathBuf>,
}

impl RunDirArgs {
    /// The run directory given by `--run-dir` or `--resume`.
    pub fn dir(&self) -> Option<&PathBuf> {
        self.run_dir.as_ref().or(self.resume.as_ref())
    }
}

impl ExecutorArgs {
    /// The Slurm settings: the file's, or the defaults; `None` for the local executor.
    pub fn slurm(&self) -> Result<Option<SlurmConfig>, SearchError> {
        match (self.executor, &self.slurm_config) {
            (ExecutorKind::Local, _) => Ok(None),
            (ExecutorKind::Slurm, Some(path)) => SlurmConfig::load(path).map(Some),
            (ExecutorKind::Slurm, None) => Ok(Some(SlurmConfig::default())),
        }
    }
}

/// A flag set by the first Ctrl-C (searches then cancel their jobs in flight and stop); a
/// second Ctrl-C ends the process at once.
pub fn stop_on_ctrl_c() -> &'static AtomicBool {
    static STOP: AtomicBool = AtomicBool::new(false);
    static HANDLER: Once = Once::new();
    HANDLER.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("interrupted: cancelling the jobs in flight (Ctrl-C again to quit now)");
        });
        if let Err(e) = installed {
            tracing::warn!("no Ctrl-C handler: {e}");
        }
    });
    &STOP
}

/// The LLM ranker's prompt templates given by `--prompts DIR`: the defaults, with the files of
/// `dir` (when given) overriding them.
pub fn ranker_prompts(dir: Option<&Path>) -> Result<RankerPrompts, RankerError> {
    dir.map_or_else(|| Ok(RankerPrompts::default()), RankerPrompts::from_dir)
}
