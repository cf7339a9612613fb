//! The training protocol: one architecture in, one [`Report`] out, failures included.
//!
//! [`TrainConfig::proxy`] is the feedback-memory paper's proxy: 1 epoch, SGD lr 0.01, momentum
//! 0.9, weight decay 5e-4, cosine schedule, batch 128, a fixed seed. Accuracy is measured on a
//! validation split held out from the training set; the test split is reported separately and
//! never used to select anything. Parse errors, shape errors, unsupported layers, a non-finite
//! loss, a predicted out-of-memory and a wall-clock timeout are [`Status`]es, never panics.

use std::time::{Duration, Instant};

use arch_space::lang::{parse, Analysis, InputSpec, Module};
use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{batches, prefetched, Augment, ImageSet, Normalization};
use crate::model::{BuildError, Mode, Network};
use crate::ops::{self, Kernels};
use crate::optim::{learning_rate, Optimizer, OptimizerConfig, Schedule};
use crate::TrainError;

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training split.
    pub epochs: usize,
    /// Images per training step.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule over all steps.
    pub schedule: Schedule,
    /// Linear warm-up steps before the schedule.
    pub warmup_steps: usize,
    /// Random crop (padding 4) and horizontal flip.
    pub augment: bool,
    /// Seed of initialisation, shuffling, augmentation and dropout.
    pub seed: u64,
    /// Wall-clock limit of the training in seconds (`None`: no limit).
    pub time_limit_seconds: Option<f64>,
    /// Predicted training memory above which the run is refused as out of memory.
    pub memory_limit_bytes: Option<u64>,
    /// Images per evaluation batch.
    pub eval_batch_size: usize,
    /// Training steps per point of the loss curve.
    pub log_every: usize,
    /// The implementation of the operations (our CPU kernels, or candle's ops only).
    #[serde(default)]
    pub kernels: Kernels,
}

impl TrainConfig {
    /// The feedback-memory paper's one-epoch proxy.
    pub fn proxy() -> Self {
        TrainConfig {
            epochs: 1,
            batch_size: 128,
            lr: 0.01,
            optimizer: OptimizerConfig::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 5e-4,
            },
            schedule: Schedule::Cosine,
            warmup_steps: 0,
            augment: true,
            seed: 0,
            time_limit_seconds: None,
            memory_limit_bytes: None,
            eval_batch_size: 500,
            log_every: 10,
            kernels: Kernels::Native,
        }
    }

    /// NAS-Bench-201's recipe: SGD lr 0.1, Nesterov momentum 0.9, weight decay 5e-4, cosine,
    /// batch 256, for `epochs` (12 or 200 in the benchmark).
    pub fn nas_bench_201(epochs: usize) -> Self {
        TrainConfig {
            epochs,
            batch_size: 256,
            lr: 0.1,
            optimizer: OptimizerConfig::Sgd {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 5e-4,
            },
            ..Self::proxy()
        }
    }
}

/// The outcome of one training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Trained and evaluated.
    Ok,
    /// The text is not valid architecture language.
    Parse,
    /// The static check failed (shapes, output width, budget).
    Shape,
    /// The trainer cannot run a layer configuration.
    Unsupported,
    /// The loss became NaN or infinite.
    Divergence,
    /// The predicted training memory exceeds the limit.
    Oom,
    /// The wall-clock limit was reached.
    Timeout,
    /// The data could not be used (wrong image size or class count, tensor errors).
    Data,
}

/// What one training run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `ok` or the failure kind.
    pub status: Status,
    /// The failure message (with line and column for parse and shape errors).
    pub error: Option<String>,
    /// Accuracy on the validation split (the number searches select on).
    pub val_acc: Option<f64>,
    /// Accuracy on the test split (reported, never selected on).
    pub test_acc: Option<f64>,
    /// Mean training loss of every `log_every` steps.
    pub loss_curve: Vec<f64>,
    /// Trainable parameters.
    pub params: Option<u64>,
    /// Multiply-accumulates per image.
    pub flops: Option<u64>,
    /// Layer outputs per image, bytes.
    pub activation_bytes: Option<u64>,
    /// Wall time of the whole run (build, train, evaluate), seconds.
    pub seconds: f64,
    /// Training throughput.
    pub images_per_second: Option<f64>,
    /// Training steps taken.
    pub steps: usize,
    /// Seconds the training loop waited for batches (augmentation and batching run on a helper
    /// thread, ahead of the step; this is what they did not hide).
    #[serde(default)]
    pub data_wait_seconds: f64,
    /// Peak resident memory of the process so far, bytes (Linux; 0 elsewhere).
    pub peak_rss_bytes: u64,
}

impl Report {
    /// A report with nothing measured yet.
    fn empty(status: Status, error: Option<String>, started: Instant) -> Self {
        Report {
            status,
            error,
            val_acc: None,
            test_acc: None,
            loss_curve: Vec::new(),
            params: None,
            flops: None,
            activation_bytes: None,
            seconds: started.elapsed().as_secs_f64(),
            images_per_second: None,
            steps: 0,
            data_wait_seconds: 0.0,
            peak_rss_bytes: peak_rss_bytes(),
        }
    }

    fn failed(status: Status, error: String, started: Instant) -> Self {
        Self::empty(status, Some(error), started)
    }
}

/// The data of a run: train on `train`, select on `val`, report `test`.
#[derive(Debug, Clone, Copy)]
pub struct Splits<'a> {
    /// Training images.
    pub train: &'a ImageSet,
    /// Validation images, held out from the training set.
    pub val: &'a ImageSet,
    /// Test images (optional).
    pub test: Option<&'a ImageSet>,
}

/// Peak resident set size of this process (`VmHWM`), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// Parses architecture text (or a chat reply holding it) and trains it.
pub fn train_text(text: &str, splits: Splits<'_>, config: &TrainConfig, device: &Device) -> Report {
    train_text_network(text, splits, config, device).0
}

/// [`train_text`], also returning the trained network (`None` when none was built).
pub fn train_text_network(
    text: &str,
    splits: Splits<'_>,
    config: &TrainConfig,
    device: &Device,
) -> (Report, Option<Network>) {
    match parse(text) {
        Ok(program) => {
            let (mut report, network) =
                train_module_network(&program.module, splits, config, device);
            // Re-run the check on the program to place shape errors at their line and column.
            if report.status == Status::Shape {
                if let Err(e) = program.check(&input_spec(splits.train)) {
                    report.error = Some(e.to_string());
                }
            }
            (report, network)
        }
        Err(e) => (
            Report::failed(Status::Parse, e.to_string(), Instant::now()),
            None,
        ),
    }
}

/// The input a network must accept for these images.
pub fn input_spec(set: &ImageSet) -> InputSpec {
    let [channels, height, width] = set.shape();
    InputSpec {
        channels,
        height,
        width,
        classes: set.classes().len(),
    }
}

/// Predicted bytes of a training step: parameters with gradients and optimizer state, and the
/// layer outputs of a batch kept for the backward pass together with their gradients.
fn predicted_memory(analysis: &Analysis, config: &TrainConfig) -> u64 {
    let states = match config.optimizer {
        OptimizerConfig::Sgd { .. } => 3,
        OptimizerConfig::AdamW { .. } => 4,
    };
    analysis.params * 4 * states + analysis.activation_bytes * config.batch_size as u64 * 2
}

/// Builds, trains and evaluates `module`; every failure is a [`Status`] in the report.
pub fn train_module(
    module: &Module,
    splits: Splits<'_>,
    config: &TrainConfig,
    device: &Device,
) -> Report {
    train_module_network(module, splits, config, device).0
}

/// [`train_module`], also returning the trained network (`None` when none was built).
pub fn train_module_network(
    module: &Module,
    splits: Splits<'_>,
    config: &TrainConfig,
    device: &Device,
) -> (Report, Option<Network>) {
    let started = Instant::now();
    ops::tune_allocator();
    let input = input_spec(splits.train);
    let failed = |status, error: String| (Report::failed(status, error, started), None);
    let (network, analysis) = match Network::build(module, &input, config.seed, device) {
        Ok((network, analysis)) => (network.with_kernels(config.kernels), analysis),
        Err(BuildError::Check(e)) => return failed(Status::Shape, e.to_string()),
        Err(BuildError::Unsupported(e)) => return failed(Status::Unsupported, e),
        Err(BuildError::Candle(e)) => return failed(Status::Data, e.to_string()),
    };
    let predicted = predicted_memory(&analysis, config);
    if let Some(limit) = config.memory_limit_bytes.filter(|&l| predicted > l) {
        return failed(
            Status::Oom,
            format!(
                "a training step needs about {predicted} bytes, more than the limit of {limit}"
            ),
        );
    }
    let mut report = Report::empty(Status::Ok, None, started);
    report.params = Some(analysis.params);
    report.flops = Some(analysis.flops);
    report.activation_bytes = Some(analysis.activation_bytes);
    if let Err(e) = run(&network, splits, config, device, &mut report) {
        report.status = Status::Data;
        report.error = Some(e.to_string());
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.peak_rss_bytes = peak_rss_bytes();
    (report, Some(network))
}

fn run(
    network: &Network,
    splits: Splits<'_>,
    config: &TrainConfig,
    device: &Device,
    report: &mut Report,
) -> Result<(), TrainError> {
    if config.batch_size == 0 || !config.lr.is_finite() {
        return Err(TrainError::Config(
            "batch size must be positive and the learning rate finite".into(),
        ));
    }
    let norm = Normalization::from_set(splits.train);
    let augment = config.augment.then_some(Augment::CIFAR);
    let steps_per_epoch = splits.train.len().div_ceil(config.batch_size);
    let total = steps_per_epoch * config.epochs;
    let mut optimizer = Optimizer::new(config.optimizer, network.params().to_vec());
    let mut dropout_rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(2));
    let limit = config.time_limit_seconds.map(Duration::from_secs_f64);
    let train_started = Instant::now();
    let (mut window, mut seen) = (Vec::new(), 0usize);
    for epoch in 0..config.epochs {
        let shuffle = config
            .seed
            .wrapping_add(1)
            .wrapping_add(epoch as u64 * 7919);
        let source = batches(
            splits.train,
            config.batch_size,
            Some(shuffle),
            augment,
            &norm,
            device,
        )?;
        let (stopped, waited) = prefetched(source, 2, |batches| -> Result<bool, TrainError> {
            for batch in batches {
                if limit.is_some_and(|l| train_started.elapsed() > l) {
                    report.status = Status::Timeout;
                    report.error = Some(format!(
                        "stopped after {} of {total} steps: the limit is {:.1} s",
                        report.steps,
                        limit.map_or(0.0, |l| l.as_secs_f64())
                    ));
                    return Ok(true);
                }
                let (x, y) = batch?;
                let mut mode = Mode {
                    train: true,
                    rng: &mut dropout_rng,
                };
                let (loss, grads) = network.loss_and_gradients(&x, &y, &mut mode)?;
                let value = f64::from(loss);
                if !value.is_finite() {
                    report.status = Status::Divergence;
                    report.error = Some(format!(
                        "the loss became {value} at step {}",
                        report.steps + 1
                    ));
                    return Ok(true);
                }
                let lr = learning_rate(
                    config.schedule,
                    config.lr,
                    report.steps,
                    total,
                    config.warmup_steps,
                );
                optimizer.step(&grads, lr)?;
                report.steps += 1;
                seen += x.dim(0)?;
                window.push(value);
                if window.len() == config.log_every.max(1) {
                    report
                        .loss_curve
                        .push(window.iter().sum::<f64>() / window.len() as f64);
                    window.clear();
                }
            }
            Ok(false)
        });
        report.data_wait_seconds += waited.as_secs_f64();
        if stopped? {
            break;
        }
    }
    if !window.is_empty() {
        report
            .loss_curve
            .push(window.iter().sum::<f64>() / window.len() as f64);
    }
    report.images_per_second = Some(seen as f64 / train_started.elapsed().as_secs_f64().max(1e-9));
    if report.status == Status::Ok {
        report.val_acc = Some(accuracy(network, splits.val, &norm, config, device)?);
        if let Some(test) = splits.test {
            report.test_acc = Some(accuracy(network, test, &norm, config, device)?);
        }
    }
    Ok(())
}

/// Accuracy of `network` on `set` in evaluation mode.
pub fn accuracy(
    network: &Network,
    set: &ImageSet,
    norm: &Normalization,
    config: &TrainConfig,
    device: &Device,
) -> Result<f64, TrainError> {
    if set.is_empty() {
        return Err(TrainError::Config(
            "cannot evaluate on an empty split".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut correct = 0;
    for batch in batches(set, config.eval_batch_size.max(1), None, None, norm, device)? {
        let (x, y) = batch?;
        let mut mode = Mode {
            train: false,
            rng: &mut rng,
        };
        correct += ops::correct(&network.forward(&x, &mut mode)?, &y)?;
    }
    Ok(correct as f64 / set.len() as f64)
}
