//! # trainer: candle networks from the architecture IR
//!
//! The closed loop turns LLM-written architectures into trained networks and honest numbers.
//! This crate does the turning, without Python:
//!
//! * [`data`]: CIFAR-10/100 binary files, ImageFolder trees (directories or `.tar.gz` of JPEG/PNG),
//!   IDX files (MNIST, Fashion-MNIST, gzipped or not); a validation split of the training set;
//!   normalization, random crop with padding, horizontal flip; seeded batching.
//!
//! It builds on `arch-space` (the IR and its static checker) and knows nothing of `llm-local`.

#![warn(missing_docs)]

pub mod data;
mod error;
pub mod model;
pub mod ops;
pub mod optim;
pub mod train;

pub use error::TrainError;
