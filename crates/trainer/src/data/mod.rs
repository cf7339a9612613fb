//! Image classification data: loaders, a validation split, normalization, augmentation and
//! seeded batches.
//!
//! [`load`] reads a dataset into memory as decoded `u8` pixels ([`ImageSet`], CHW per image):
//!
//! * CIFAR-10 and CIFAR-100 in the official binary format (the directory `cifar-10-batches-bin`
//!   or `cifar-100-binary`, or the directory holding it);
//! * ImageFolder trees `train|val|test/<class>/*.{jpg,jpeg,png}`, as a directory or a `.tar.gz`
//!   archive read directly; decoded in parallel, and cached decoded (see [`LoadOptions`]);
//! * IDX files (MNIST, Fashion-MNIST), gzipped or not.
//!
//! ```no_run
//! use trainer::data::{self, Augment, Normalization};
//!
//! let data = data::load("cifar10.tar.gz".as_ref(), None)?;
//! let (train, val) = data.train.split_validation(5_000, 0)?;
//! let norm = Normalization::from_set(&train);
//! let device = candle_core::Device::Cpu;
//! for batch in data::batches(&train, 128, Some(1), Some(Augment::CIFAR), &norm, &device)? {
//!     let (images, labels) = batch?; // f32 [128, 3, 32, 32], u32 [128]
//! }
//! # let _ = val;
//! # Ok::<(), trainer::TrainError>(())
//! ```
//!
//! Every failure to read or understand a file is a [`TrainError`] naming the file.

mod batch;
mod cache;
mod cifar;
mod folder;
mod idx;
mod prefetch;
mod set;
pub mod synthetic;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use batch::{batches, Augment, Batches, Normalization};
pub use prefetch::prefetched;
pub use set::ImageSet;

use crate::TrainError;

/// The on-disk formats [`load`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// CIFAR-10, binary version (`data_batch_{1..5}.bin`, `test_batch.bin`).
    Cifar10,
    /// CIFAR-100, binary version (`train.bin`, `test.bin`); fine labels.
    Cifar100,
    /// `train|val|test/<class>/*.{jpg,jpeg,png}`, a directory or a `.tar.gz` archive.
    ImageFolder,
    /// IDX files (`train-images-idx3-ubyte`, ...), as MNIST and Fashion-MNIST are published.
    Idx,
}

impl DatasetKind {
    /// The kind of the dataset at `path`, from the files there: a `.tar.gz` or `.tgz` file is an
    /// ImageFolder archive; a directory is CIFAR-10 or CIFAR-100 if it (or its official
    /// subdirectory) holds the first training file, IDX if it holds
    /// `train-images-idx3-ubyte[.gz]`, and an ImageFolder tree if it has a `train/` directory.
    pub fn detect(path: &Path) -> Result<Self, TrainError> {
        let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
        if !meta.is_dir() {
            return if folder::is_archive(path) {
                Ok(Self::ImageFolder)
            } else {
                Err(TrainError::Data {
                    path: path.to_path_buf(),
                    reason: "expected a dataset directory or a .tar.gz ImageFolder archive".into(),
                })
            };
        }
        if cifar::find_dir(path, &cifar::CIFAR10).is_some() {
            Ok(Self::Cifar10)
        } else if cifar::find_dir(path, &cifar::CIFAR100).is_some() {
            Ok(Self::Cifar100)
        } else if idx::find(path, "train", "images", 3).is_some() {
            Ok(Self::Idx)
        } else if path.join("train").is_dir() {
            Ok(Self::ImageFolder)
        } else {
            Err(TrainError::Data {
                path: path.to_path_buf(),
                reason: "unknown layout: found no CIFAR batches (data_batch_1.bin, train.bin), \
                         no train-images-idx3-ubyte and no train/ directory"
                    .into(),
            })
        }
    }

    /// The canonical name, as accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
            Self::ImageFolder => "imagefolder",
            Self::Idx => "idx",
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = TrainError;

    /// Parses `cifar10`, `cifar100`, `imagefolder`, or `idx` and its datasets `mnist` and
    /// `fashion-mnist` (case-insensitive; `-` and `_` are optional).
    fn from_str(s: &str) -> Result<Self, TrainError> {
        let key: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "cifar10" => Ok(Self::Cifar10),
            "cifar100" => Ok(Self::Cifar100),
            "imagefolder" => Ok(Self::ImageFolder),
            "idx" | "mnist" | "fashionmnist" => Ok(Self::Idx),
            _ => Err(TrainError::Config(format!(
                "unknown dataset kind {s:?} (expected cifar10, cifar100, imagefolder, mnist, \
                 fashion-mnist or idx)"
            ))),
        }
    }
}

/// A loaded dataset: its training and test sets, which share the image shape and the classes.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The format it was read from.
    pub kind: DatasetKind,
    /// The training set (split it with [`ImageSet::split_validation`] for validation).
    pub train: ImageSet,
    /// The test set (an ImageFolder's `test/`, else its `val/`).
    pub test: ImageSet,
}

impl Dataset {
    /// The splits a search uses: `val_size` validation images held out of the training set
    /// (default: 10%, at most 5000) and, when `limit_train` is set, that many of the remaining
    /// training images drawn at random. Returns `(train, validation)`; the same seed gives the
    /// same splits.
    pub fn search_splits(
        &self,
        val_size: Option<usize>,
        limit_train: Option<usize>,
        seed: u64,
    ) -> Result<(ImageSet, ImageSet), TrainError> {
        let val_size = val_size.unwrap_or((self.train.len() / 10).min(5000));
        let (train, val) = self.train.split_validation(val_size, seed)?;
        let train = match limit_train {
            Some(n) => train.sample(n, seed),
            None => train,
        };
        Ok((train, val))
    }
}

/// How [`load_with`] loads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The cache directory for decoded ImageFolder datasets, `None` for no cache. Decoded pixels
    /// go to `<cache_dir>/datasets/<key>.bin`, the key a hash of the source's canonical path and
    /// of the size and modification time of the archive (or of every image file of a directory
    /// tree). A cache file that does not check out is ignored and rewritten; one that cannot be
    /// written is skipped. Files of changed sources are not removed.
    pub cache_dir: Option<PathBuf>,
}

impl LoadOptions {
    /// The default options: the cache directory is `$NAS_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/nas-rs`, else `$HOME/.cache/nas-rs` (empty variables are ignored), or no
    /// cache if none is set.
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let cache_dir = var("NAS_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("nas-rs")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("nas-rs")));
        Self { cache_dir }
    }
}

/// Loads the dataset at `path`, of `kind` or, if `None`, of the kind [`DatasetKind::detect`]
/// finds, with the cache of [`LoadOptions::from_env`].
pub fn load(path: &Path, kind: Option<DatasetKind>) -> Result<Dataset, TrainError> {
    load_with(path, kind, &LoadOptions::from_env())
}

/// Loads the dataset at `path` as [`load`] does, with explicit options.
pub fn load_with(
    path: &Path,
    kind: Option<DatasetKind>,
    options: &LoadOptions,
) -> Result<Dataset, TrainError> {
    let kind = match kind {
        Some(kind) => kind,
        None => DatasetKind::detect(path)?,
    };
    match kind {
        DatasetKind::Cifar10 => cifar::load(path, &cifar::CIFAR10),
        DatasetKind::Cifar100 => cifar::load(path, &cifar::CIFAR100),
        DatasetKind::ImageFolder => folder::load(path, options.cache_dir.as_deref()),
        DatasetKind::Idx => idx::load(path),
    }
}

/// A [`TrainError::Io`] for `path`.
fn io_error(path: &Path, source: std::io::Error) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The whole content of a file.
fn read_file(path: &Path) -> Result<Vec<u8>, TrainError> {
    std::fs::read(path).map_err(|e| io_error(path, e))
}
