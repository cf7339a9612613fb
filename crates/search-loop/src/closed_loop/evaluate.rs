//! Evaluators: what turns a checked architecture into an [`Outcome`].

use arch_space::lang::{InputSpec, Module};
use candle_core::Device;
use trainer::data::ImageSet;
use trainer::train::{input_spec, train_module, Report, Splits, TrainConfig};

use crate::run::Outcome;

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
}

impl Evaluator for TrainerEvaluator {
    fn input(&self) -> InputSpec {
        input_spec(&self.train)
    }

    fn evaluate(&mut self, module: &Module) -> (Outcome, Option<Report>) {
        let splits = Splits {
            train: &self.train,
            val: &self.val,
            test: self.test.as_ref(),
        };
        // Tensors of the network and its optimizer are dropped when `train_module` returns, so
        // an accelerator's memory is free for the language model between candidates.
        let report = train_module(module, splits, &self.config, &self.device);
        (Outcome::from_report(&report), Some(report))
    }
}
