//! Searches over any space with an external evaluator (`nas search --space FILE --evaluator
//! CMD`): a user's space (TOML or JSON, or a built-in one) and a user's training script, locally
//! or on Slurm.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ncode::{NCode, SearchSpace};
use serde::{Deserialize, Serialize};

use super::template::CandidateTemplates;
use super::{open_or_create, run_search, ParallelSearch};
use crate::executor::{build, run_in_process, ExecutorKind, Failure, SlurmConfig};
use crate::run::OutcomeStatus;
use crate::worker::{CommandJob, EvalCache, EvalSetup, EvalTask, Job};
use crate::{History, SearchContext, SearchError, Strategy};

/// One search over a space, its candidates evaluated by an external command or trained by our
/// trainer as the space's architecture template renders them; as recorded in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceSearch {
    /// The space.
    pub space: SearchSpace,
    /// What a candidate becomes (the space file's templates).
    #[serde(default)]
    pub templates: CandidateTemplates,
    /// The strategy, in its text form.
    pub strategy: String,
    /// The searcher's seed.
    pub seed: u64,
    /// Evaluations to finish.
    pub budget: usize,
    /// The evaluator's command template ([`CommandJob`]); `None`: candidates are trained as
    /// `templates.architecture` renders them, with `training`.
    pub evaluator: Option<String>,
    /// The data, recipe and device our trainer trains candidates with (no `evaluator`).
    #[serde(default)]
    pub training: Option<EvalSetup>,
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
    load_space_file(spec).map(|(space, _)| space)
}

/// The keys a space file may hold.
const SPACE_FILE_KEYS: [&str; 4] = ["name", "dimensions", "architecture", "config"];

#[derive(Deserialize)]
struct SpaceFile {
    #[serde(flatten)]
    space: SearchSpace,
    #[serde(flatten)]
    templates: CandidateTemplates,
}

/// [`load_space`] with the file's templates (`architecture`, `config`; checked to compile).
pub fn load_space_file(spec: &str) -> Result<(SearchSpace, CandidateTemplates), SearchError> {
    if spec == "nb201" {
        return Ok((
            arch_space::nb201::space().clone(),
            CandidateTemplates::default(),
        ));
    }
    let path = Path::new(spec);
    let bad = |reason: String| SearchError::Run {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("{e} (a space is `nb201` or a .toml or .json file)")))?;
    let json = path.extension().is_some_and(|e| e == "json");
    let value: serde_json::Value = if json {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::from_str(&text).map_err(|e| e.to_string())
    }
    .map_err(|e| bad(format!("not a search space: {e}")))?;
    if let Some(key) = value
        .as_object()
        .and_then(|o| o.keys().find(|k| !SPACE_FILE_KEYS.contains(&k.as_str())))
    {
        return Err(bad(format!(
            "unknown key `{key}` (a space file holds {})",
            SPACE_FILE_KEYS.join(", ")
        )));
    }
    let file: SpaceFile =
        serde_json::from_value(value).map_err(|e| bad(format!("not a search space: {e}")))?;
    file.templates.check().map_err(bad)?;
    Ok((file.space, file.templates))
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
    /// Checks that candidates can be evaluated: by the evaluator command, or by our trainer
    /// with the training setup and the space's architecture template.
    pub fn validate(&self) -> Result<(), SearchError> {
        let trainable = self.training.is_some() && self.templates.architecture.is_some();
        if self.evaluator.is_none() && !trainable {
            return Err(SearchError::Invalid {
                what: "space search",
                text: self.space.name().to_string(),
                expected: "an evaluator command, or an `architecture` template in the space file \
                           (trained by our trainer on the data given)",
            });
        }
        self.templates.check().map_err(|reason| SearchError::Run {
            path: "config.json".into(),
            reason,
        })
    }

    /// The job that evaluates `code`, or why there is none (its template failed to render).
    pub fn job(&self, code: &NCode) -> Result<Job, Failure> {
        let values = candidate_config(&self.space, code);
        let template_failure = |message: String| Failure::new(OutcomeStatus::Crash, message);
        match (&self.evaluator, &self.training) {
            (Some(command), _) => Ok(Job::Command(CommandJob {
                command: command.clone(),
                config: self.templates.config(&values).map_err(template_failure)?,
                code: code.clone(),
                timeout_seconds: self.timeout_seconds,
            })),
            (None, training) => {
                let architecture = self
                    .templates
                    .architecture(&values)
                    .transpose()
                    .map_err(template_failure)?;
                match (architecture, training) {
                    (Some(architecture), Some(setup)) => Ok(Job::Train(EvalTask {
                        architecture,
                        setup: setup.clone(),
                        export: None,
                        code: Some(code.clone()),
                    })),
                    _ => Err(template_failure(
                        "no evaluator command and no architecture template".into(),
                    )),
                }
            }
        }
    }

    /// Runs the search in `run_dir`, or resumes it when `run_dir` holds one (its recorded
    /// configuration wins). `stop` cancels it (Ctrl-C). Returns the history.
    pub fn run(
        &self,
        run_dir: &Path,
        stop: Option<&AtomicBool>,
        observe: &mut dyn FnMut(&History),
    ) -> Result<History, SearchError> {
        self.validate()?;
        let (mut run, config) = open_or_create(run_dir, self)?;
        let strategy: Strategy = config.strategy.parse()?;
        let mut searcher = strategy.build_in(config.seed, &run)?;
        let job = |code: &NCode| config.job(code);
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
