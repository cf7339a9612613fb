//! Searches over any space with an external evaluator (`nas search --space FILE --evaluator
//! CMD`): a user's space (TOML or JSON, or a built-in one) and a user's training script, locally
//! or on Slurm.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ncode::{NCode, SearchSpace};
use serde::{Deserialize, Serialize};

use super::{open_or_create, run_search, ParallelSearch};
use crate::executor::{build, run_in_process, ExecutorKind, SlurmConfig};
use crate::worker::{CommandJob, EvalCache, Job};
use crate::{History, SearchContext, SearchError, Strategy};

/// One search over a space with an external evaluator, as recorded in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceSearch {
    /// The space.
    pub space: SearchSpace,
    /// The strategy, in its text form.
    pub strategy: String,
    /// The searcher's seed.
    pub seed: u64,
    /// Evaluations to finish.
    pub budget: usize,
    /// The evaluator's command template ([`CommandJob`]).
    pub evaluator: String,
    /// The evaluator's time limit per candidate, in seconds.
    pub timeout_seconds: Option<f64>,
    /// Evaluations in flight at once.
    pub parallel: usize,
    /// Where they run.
    pub executor: ExecutorKind,
    /// Slurm's settings (with [`ExecutorKind::Slurm`]).
    pub slurm: Option<SlurmConfig>,
    /// The evaluation cache's directory, shared across runs ([`EvalCache`]).
    #[serde(default)]
    pub cache: Option<PathBuf>,
}

/// A space named on the command line: `nb201` (NAS-Bench-201's cell space), or a file, TOML or
/// JSON by its extension, holding a space's `name` and `dimensions` (see `docs/USER_GUIDE.md`).
pub fn load_space(spec: &str) -> Result<SearchSpace, SearchError> {
    if spec == "nb201" {
        return Ok(arch_space::nb201::space().clone());
    }
    let path = Path::new(spec);
    let bad = |reason: String| SearchError::Run {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("{e} (a space is `nb201` or a .toml or .json file)")))?;
    let json = path.extension().is_some_and(|e| e == "json");
    let space: Result<SearchSpace, String> = if json {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::from_str(&text).map_err(|e| e.to_string())
    };
    space.map_err(|e| bad(format!("not a search space: {e}")))
}

/// The configuration an evaluator receives for `code`: every active dimension's name with its
/// chosen value, and the code itself under `"ncode"`.
pub fn candidate_config(space: &SearchSpace, code: &NCode) -> serde_json::Value {
    let mut config = serde_json::Map::new();
    for (position, (dimension, choice)) in space
        .dimensions()
        .iter()
        .zip(space.decode(code))
        .enumerate()
    {
        if space.is_active(code, position) {
            config.insert(dimension.name.clone(), serde_json::json!(choice));
        }
    }
    config.insert("ncode".into(), space.format(code).into());
    config.into()
}

impl SpaceSearch {
    /// Runs the search in `run_dir`, or resumes it when `run_dir` holds one (its recorded
    /// configuration wins). `stop` cancels it (Ctrl-C). Returns the history.
    pub fn run(
        &self,
        run_dir: &Path,
        stop: Option<&AtomicBool>,
        observe: &mut dyn FnMut(&History),
    ) -> Result<History, SearchError> {
        let (mut run, config) = open_or_create(run_dir, self)?;
        let strategy: Strategy = config.strategy.parse()?;
        let mut searcher = strategy.build_in(config.seed, &run)?;
        let job = |code: &NCode| {
            Job::Command(CommandJob {
                command: config.evaluator.clone(),
                config: candidate_config(&config.space, code),
                code: code.clone(),
                timeout_seconds: config.timeout_seconds,
            })
        };
        let mut executor = build(
            config.executor,
            config.parallel,
            config.slurm.as_ref(),
            run.path(),
            Arc::new(run_in_process),
        )?;
        let task = format!("the search space `{}`", config.space.name());
        let cache = config.cache.as_ref().map(EvalCache::new);
        let search = ParallelSearch {
            ctx: SearchContext::unconstrained(&config.space, &task),
            budget: config.budget,
            job: &job,
            poll: Duration::from_millis(500),
            stop,
            cache: cache.as_ref(),
        };
        run_search(
            &mut run,
            &search,
            searcher.as_mut(),
            executor.as_mut(),
            observe,
        )
    }
}
