//! # trainer: candle networks from the architecture IR
//!
//! The closed loop turns LLM-written architectures into trained networks and honest numbers.
//! This crate does the turning, without Python:
//!
//! * [`data`]: CIFAR-10/100 binary files, ImageFolder trees (directories or `.tar.gz` of JPEG/PNG),
//!   IDX files (MNIST, Fashion-MNIST, gzipped or not); a validation split of the training set;
//!   normalization, random crop with padding, horizontal flip; seeded batching, produced on a
//!   helper thread ahead of the step.
//! * [`model`]: a [`model::Network`] built from a checked module, with PyTorch's initialisation;
//!   its training step ([`model::Network::loss_and_gradients`]) runs on the network's own tape.
//! * [`export`]: the network for PyTorch: safetensors weights under PyTorch's names and a
//!   self-contained `model.py`; [`model::Network::load_safetensors`] reads such weights back.
//! * [`ops`]: every operation, behind [`ops::Kernels`]: our CPU kernels (im2col + gemm
//!   convolutions, single-pass BatchNorm, pooling and rectifiers, with hand-derived backward
//!   passes) or candle's composed ops (any device; the reference in the tests).
//! * [`optim`], [`train`]: SGD/Nesterov/AdamW, schedules, and the one-epoch proxy protocol whose
//!   failures are statuses.
//!
//! It builds on `arch-space` (the IR and its static checker) and knows nothing of `llm-local`.

#![warn(missing_docs)]

pub mod data;
mod error;
pub mod export;
pub mod model;
pub mod ops;
pub mod optim;
pub mod train;

pub use error::TrainError;

/// The device named on a command line: `cpu`, `cuda` (GPU 0) or `cuda:N`.
pub fn device(name: &str) -> Result<candle_core::Device, TrainError> {
    let ordinal = match name {
        "cpu" => return Ok(candle_core::Device::Cpu),
        "cuda" => Some(0),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok()),
    };
    let ordinal = ordinal.ok_or_else(|| {
        TrainError::Config(format!("unknown device `{name}` (use cpu, cuda or cuda:N)"))
    })?;
    candle_core::Device::new_cuda(ordinal).map_err(|e| {
        TrainError::Config(format!(
            "cannot use {name}: {e} (build with `--features cuda` on a machine with an NVIDIA GPU)"
        ))
    })
}
