//! Evaluators: what turns a checked architecture into an [`Outcome`].

use arch_space::lang::{InputSpec, Module};
use candle_core::Device;
use trainer::data::ImageSet;
use trainer::model::Network;
use trainer::train::{
    input_spec, train_module, train_text, train_text_network, Report, Splits, TrainConfig,
};

use crate::run::Outcome;
use crate::worker::{EvalSetup, TaskError};

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
