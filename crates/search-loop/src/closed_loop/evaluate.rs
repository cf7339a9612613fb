//! Evaluators: what turns a checked architecture into an [`Outcome`].

use std::sync::Arc;

use arch_space::lang::{to_text, InputSpec, Module};
use candle_core::Device;
use trainer::data::ImageSet;
use trainer::model::Network;
use trainer::train::{
    input_spec, train_module, train_text, train_text_network, Report, Splits, TrainConfig,
};

use crate::executor::{Failure, RunJob};
use crate::run::{Outcome, OutcomeStatus};
use crate::worker::{EvalCache, EvalSetup, EvalTask, Job, JobResult, TaskError, TaskResult};

/// Trains (or otherwise scores) architectures for the closed loop.
pub trait Evaluator {
    /// What the networks read and must produce (shown to the Code Generator and checked).
    fn input(&self) -> InputSpec;

    /// Evaluates an architecture that passed the static check. Failures are outcomes, never
    /// panics; the report, when there is one, is kept in the run's record.
    fn evaluate(&mut self, module: &Module) -> (Outcome, Option<Report>);
}

/// The trainer's proxy evaluation: train on `train`, select on `val`, report `test`.
pub struct TrainerEvaluator {
    train: ImageSet,
    val: ImageSet,
    test: Option<ImageSet>,
    config: TrainConfig,
    device: Device,
}

impl TrainerEvaluator {
    /// An evaluator over fixed splits with one training recipe.
    pub fn new(
        train: ImageSet,
        val: ImageSet,
        test: Option<ImageSet>,
        config: TrainConfig,
        device: Device,
    ) -> Self {
        TrainerEvaluator {
            train,
            val,
            test,
            config,
            device,
        }
    }

    /// Loads and splits the data of `setup` and opens its device (what a worker does for each
    /// task, and an in-process run once).
    pub fn load(setup: &EvalSetup) -> Result<Self, TaskError> {
        let device = trainer::device(&setup.device)?;
        let (train, val, test) = setup.data.load()?;
        Ok(Self::new(
            train,
            val,
            Some(test),
            setup.training.clone(),
            device,
        ))
    }

    /// The images it trains on, selects on and reports on.
    pub fn splits(&self) -> Splits<'_> {
        Splits {
            train: &self.train,
            val: &self.val,
            test: self.test.as_ref(),
        }
    }

    /// Parses architecture text and trains it (a parse error is a report with that status).
    pub fn train_text(&self, text: &str) -> Report {
        train_text(text, self.splits(), &self.config, &self.device)
    }

    /// A [`LocalExecutor`](crate::executor::LocalExecutor)'s job function that trains each
    /// training job's architecture on these splits, already in memory (the closed loop's
    /// chains in this process, [`run_closed_loop_on`](super::run_closed_loop_on)). The job's
    /// own setup is not looked at: it must be the one these splits and recipe came from.
    pub fn into_run_job(self) -> RunJob {
        Arc::new(move |_: &str, job: &Job| match job {
            Job::Train(task) => Ok(JobResult::Train(TaskResult {
                report: self.train_text(&task.architecture),
                load_seconds: 0.0,
            })),
            Job::Table(_) | Job::Command(_) => Err(Failure::new(
                OutcomeStatus::Crash,
                "an in-process trainer runs training jobs only",
            )),
        })
    }

    /// [`TrainerEvaluator::train_text`], also returning the trained network.
    pub fn train_text_network(&self, text: &str) -> (Report, Option<Network>) {
        train_text_network(text, self.splits(), &self.config, &self.device)
    }
}

impl Evaluator for TrainerEvaluator {
    fn input(&self) -> InputSpec {
        input_spec(&self.train)
    }

    fn evaluate(&mut self, module: &Module) -> (Outcome, Option<Report>) {
        // Tensors of the network and its optimizer are dropped when `train_module` returns, so
        // an accelerator's memory is free for the language model between candidates.
        let report = train_module(module, self.splits(), &self.config, &self.device);
        (Outcome::from_report(&report), Some(report))
    }
}

/// Any evaluator behind the shared evaluation cache ([`EvalCache`]): an architecture trained
/// before with the same data, recipe (seed included) and device is not trained again; its report
/// comes from the cache.
pub struct CachedEvaluator<E> {
    inner: E,
    cache: EvalCache,
    setup: EvalSetup,
}

impl<E: Evaluator> CachedEvaluator<E> {
    /// `inner` behind `cache`; `setup` is what `inner` trains with (part of every key).
    pub fn new(inner: E, cache: EvalCache, setup: EvalSetup) -> Self {
        CachedEvaluator {
            inner,
            cache,
            setup,
        }
    }

    /// The evaluator behind the cache.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    fn job(&self, module: &Module) -> Job {
        Job::Train(EvalTask {
            architecture: to_text(module),
            setup: self.setup.clone(),
            export: None,
            code: None,
        })
    }
}

impl<E: Evaluator> Evaluator for CachedEvaluator<E> {
    fn input(&self) -> InputSpec {
        self.inner.input()
    }

    fn evaluate(&mut self, module: &Module) -> (Outcome, Option<Report>) {
        let job = self.job(module);
        if let Some(JobResult::Train(cached)) = self.cache.get(&job) {
            tracing::info!("from the evaluation cache");
            return (Outcome::from_report(&cached.report), Some(cached.report));
        }
        let (outcome, report) = self.inner.evaluate(module);
        if let Some(report) = &report {
            let result = JobResult::Train(TaskResult {
                report: report.clone(),
                load_seconds: 0.0,
            });
            if let Err(e) = self.cache.put(&job, &result) {
                tracing::warn!("the evaluation cache is not writable: {e}");
            }
        }
        (outcome, report)
    }
}

impl<E: Evaluator + ?Sized> Evaluator for Box<E> {
    fn input(&self) -> InputSpec {
        (**self).input()
    }

    fn evaluate(&mut self, module: &Module) -> (Outcome, Option<Report>) {
        (**self).evaluate(module)
    }
}
