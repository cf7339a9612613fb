//! CIFAR-10 and CIFAR-100 in their official binary format.
//!
//! A CIFAR-10 record is one label byte and 3,072 pixel bytes (32x32, red plane, green plane, blue
//! plane: already CHW). A CIFAR-100 record has a coarse and a fine label byte before the pixels;
//! the fine label (100 classes) is used.

use std::fs;
use std::path::{Path, PathBuf};

use super::set::ImageSet;
use super::{io_error, read_file, Dataset, DatasetKind};
use crate::TrainError;

/// The shape of every CIFAR image.
const SHAPE: [usize; 3] = [3, 32, 32];
/// Pixel bytes per record.
const IMAGE_BYTES: usize = 3 * 32 * 32;

/// CIFAR-10 class names, used when `batches.meta.txt` is absent.
const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// CIFAR-100 fine class names, used when `fine_label_names.txt` is absent.
const CIFAR100_CLASSES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

/// The layout of one of the two binary formats: [`CIFAR10`] or [`CIFAR100`].
pub(super) struct Format {
    kind: DatasetKind,
    /// The directory name of the official archive.
    dir_name: &'static str,
    train_files: &'static [&'static str],
    test_file: &'static str,
    meta_file: &'static str,
    default_classes: &'static [&'static str],
    /// Label bytes before the pixels; the last one is the label used.
    label_bytes: usize,
}

/// CIFAR-10: five training batches and a test batch, one label byte a record.
pub(super) const CIFAR10: Format = Format {
    kind: DatasetKind::Cifar10,
    dir_name: "cifar-10-batches-bin",
    train_files: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ],
    test_file: "test_batch.bin",
    meta_file: "batches.meta.txt",
    default_classes: &CIFAR10_CLASSES,
    label_bytes: 1,
};

/// CIFAR-100: one training and one test file, coarse and fine label bytes a record.
pub(super) const CIFAR100: Format = Format {
    kind: DatasetKind::Cifar100,
    dir_name: "cifar-100-binary",
    train_files: &["train.bin"],
    test_file: "test.bin",
    meta_file: "fine_label_names.txt",
    default_classes: &CIFAR100_CLASSES,
    label_bytes: 2,
};

/// The directory holding the files of format `f`: `path` itself or its official subdirectory
/// (`cifar-10-batches-bin`, `cifar-100-binary`), if either holds the first training file.
pub(super) fn find_dir(path: &Path, f: &Format) -> Option<PathBuf> {
    [path.to_path_buf(), path.join(f.dir_name)]
        .into_iter()
        .find(|dir| dir.join(f.train_files[0]).is_file())
}

/// Loads the dataset of format `f` from `path` (see [`find_dir`]).
pub(super) fn load(path: &Path, f: &Format) -> Result<Dataset, TrainError> {
    let dir = find_dir(path, f).ok_or_else(|| TrainError::Data {
        path: path.to_path_buf(),
        reason: format!(
            "no {} here or in {}/ (expected the binary version of {})",
            f.train_files[0], f.dir_name, f.kind
        ),
    })?;
    let classes = class_names(&dir.join(f.meta_file), f.default_classes)?;
    let mut train = Batch::default();
    for name in f.train_files {
        read_batch(&dir.join(name), f, classes.len(), &mut train)?;
    }
    let mut test = Batch::default();
    read_batch(&dir.join(f.test_file), f, classes.len(), &mut test)?;
    Ok(Dataset {
        kind: f.kind,
        train: ImageSet::from_parts(train.pixels, train.labels, SHAPE, classes.clone()),
        test: ImageSet::from_parts(test.pixels, test.labels, SHAPE, classes),
    })
}

/// Pixels and labels read so far.
#[derive(Default)]
struct Batch {
    pixels: Vec<u8>,
    labels: Vec<u32>,
}

/// Appends the records of one batch file to `out`.
fn read_batch(
    path: &Path,
    f: &Format,
    num_classes: usize,
    out: &mut Batch,
) -> Result<(), TrainError> {
    let bytes = read_file(path)?;
    let record = f.label_bytes + IMAGE_BYTES;
    if bytes.is_empty() || bytes.len() % record != 0 {
        return Err(TrainError::Data {
            path: path.to_path_buf(),
            reason: format!(
                "{} bytes is not a whole number of {record}-byte records (truncated?)",
                bytes.len()
            ),
        });
    }
    out.pixels.reserve(bytes.len() / record * IMAGE_BYTES);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[f.label_bytes - 1];
        if usize::from(label) >= num_classes {
            return Err(TrainError::Data {
                path: path.to_path_buf(),
                reason: format!(
                    "record {i} has label {label}, but there are {num_classes} classes"
                ),
            });
        }
        out.labels.push(u32::from(label));
        out.pixels.extend_from_slice(&rec[f.label_bytes..]);
    }
    Ok(())
}

/// The class names from a meta file (one name a line, blank lines ignored), or the defaults if
/// the file does not exist.
fn class_names(path: &Path, defaults: &[&str]) -> Result<Vec<String>, TrainError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(defaults.iter().map(|s| s.to_string()).collect());
        }
        Err(e) => return Err(io_error(path, e)),
    };
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != defaults.len() {
        return Err(TrainError::Data {
            path: path.to_path_buf(),
            reason: format!("{} class names, expected {}", names.len(), defaults.len()),
        });
    }
    Ok(names)
}
