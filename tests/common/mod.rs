//! Helpers shared by the facade's integration tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nas_rs::search_loop::worker::{DataSpec, EvalSetup};
use nas_rs::trainer::train::TrainConfig;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<temp>/nas-rs-<tag>-<pid>`, emptied and created.
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("nas-rs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("the temp dir is writable");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the `nas` binary with `args`.
pub fn nas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nas"))
        .args(args)
        .output()
        .expect("the nas binary runs")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// CIFAR-10 in its binary format under `root/cifar-10-batches-bin`: five training batches and
/// a test batch of 8 images each.
pub fn write_cifar10(root: &Path) -> PathBuf {
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let files = (1..=5)
        .map(|b| format!("data_batch_{b}.bin"))
        .chain(["test_batch.bin".to_string()]);
    for (f, name) in files.enumerate() {
        let mut bytes = Vec::new();
        for i in 8 * f..8 * f + 8 {
            bytes.push((i % 10) as u8);
            bytes.extend((0..3072).map(|k| ((k * 7 + i * 31) % 256) as u8));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    root.to_path_buf()
}

/// The setup of every test: 32 training and 8 validation images of `data`, on the CPU.
pub fn setup(data: &Path, training: TrainConfig) -> EvalSetup {
    EvalSetup {
        data: DataSpec {
            path: data.to_path_buf(),
            dataset: None,
            val_size: Some(8),
            limit_train: None,
            seed: 0,
        },
        training,
        device: "cpu".into(),
    }
}

pub fn quick() -> TrainConfig {
    TrainConfig {
        batch_size: 8,
        augment: false,
        ..TrainConfig::proxy()
    }
}
