//! IDX files: MNIST, Fashion-MNIST and datasets published in their layout.
//!
//! A directory holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`
//! and `t10k-labels-idx1-ubyte` (or the same names with `.` instead of the last `-`), each possibly
//! gzipped (with or without a `.gz` suffix). An IDX file is a magic number (two zero bytes, the
//! element type `0x08` for unsigned bytes, the number of dimensions), the dimensions as big-endian
//! `u32`s and the data. Images are grayscale: shape `[1, H, W]`. The classes are named `"0"`,
//! `"1"`, ... up to the largest label.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::set::ImageSet;
use super::{read_file, Dataset, DatasetKind};
use crate::TrainError;

/// The IDX element type code of unsigned bytes.
const UBYTE: u8 = 0x08;

/// The path of the file `<prefix>-<kind>-idx<d>-ubyte` in `dir`, under any accepted spelling.
pub(super) fn find(dir: &Path, prefix: &str, kind: &str, dims: usize) -> Option<PathBuf> {
    let names = [
        format!("{prefix}-{kind}-idx{dims}-ubyte"),
        format!("{prefix}-{kind}.idx{dims}-ubyte"),
    ];
    names
        .iter()
        .flat_map(|n| [n.clone(), format!("{n}.gz")])
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Loads the training and test (`t10k`) files of the directory `dir`.
pub(super) fn load(dir: &Path) -> Result<Dataset, TrainError> {
    let train = load_split(dir, "train")?;
    let test = load_split(dir, "t10k")?;
    let shape = train.shape;
    if test.shape != shape {
        return Err(TrainError::Data {
            path: dir.to_path_buf(),
            reason: format!(
                "test images are {:?} (CxHxW) but training images {shape:?}",
                test.shape
            ),
        });
    }
    let num_classes = train
        .labels
        .iter()
        .chain(&test.labels)
        .max()
        .map_or(0, |&m| m as usize + 1);
    let classes: Vec<String> = (0..num_classes).map(|c| c.to_string()).collect();
    Ok(Dataset {
        kind: DatasetKind::Idx,
        train: ImageSet::from_parts(train.pixels, train.labels, shape, classes.clone()),
        test: ImageSet::from_parts(test.pixels, test.labels, shape, classes),
    })
}

/// The images of one split.
struct Split {
    pixels: Vec<u8>,
    shape: [usize; 3],
    labels: Vec<u32>,
}

/// Reads the images and labels files of one split (`train` or `t10k`).
fn load_split(dir: &Path, prefix: &str) -> Result<Split, TrainError> {
    let missing = |kind: &str, dims: usize| TrainError::Data {
        path: dir.to_path_buf(),
        reason: format!("no {prefix}-{kind}-idx{dims}-ubyte (optionally .gz)"),
    };
    let images_path = find(dir, prefix, "images", 3).ok_or_else(|| missing("images", 3))?;
    let labels_path = find(dir, prefix, "labels", 1).ok_or_else(|| missing("labels", 1))?;
    let (dims, pixels) = read_idx(&images_path, 3)?;
    let (label_dims, labels) = read_idx(&labels_path, 1)?;
    if label_dims[0] != dims[0] {
        return Err(TrainError::Data {
            path: labels_path,
            reason: format!("{} labels for {} images", label_dims[0], dims[0]),
        });
    }
    if dims[1] == 0 || dims[2] == 0 {
        return Err(TrainError::Data {
            path: images_path,
            reason: format!("image size {}x{} is empty", dims[1], dims[2]),
        });
    }
    Ok(Split {
        pixels,
        shape: [1, dims[1], dims[2]],
        labels: labels.into_iter().map(u32::from).collect(),
    })
}

/// Reads an unsigned-byte IDX file of `ndims` dimensions, gunzipping it if it is gzipped.
fn read_idx(path: &Path, ndims: usize) -> Result<(Vec<usize>, Vec<u8>), TrainError> {
    let bad = |reason: String| TrainError::Data {
        path: path.to_path_buf(),
        reason,
    };
    let mut bytes = read_file(path)?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut plain)
            .map_err(|e| bad(format!("corrupt gzip data: {e}")))?;
        bytes = plain;
    }
    let header_len = 4 + 4 * ndims;
    if bytes.len() < header_len {
        return Err(bad(format!(
            "{} bytes is too short for an IDX header",
            bytes.len()
        )));
    }
    let expected_magic = [0, 0, UBYTE, ndims as u8];
    if bytes[..4] != expected_magic {
        return Err(bad(format!(
            "bad IDX magic {:02x?}, expected {expected_magic:02x?} (unsigned bytes, {ndims} dimensions)",
            &bytes[..4]
        )));
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let data_len = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} are too large")))?;
    let actual = bytes.len() - header_len;
    if actual != data_len {
        let what = if actual < data_len {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(bad(format!(
            "{what}: dimensions {dims:?} need {data_len} data bytes, the file has {actual}"
        )));
    }
    bytes.drain(..header_len);
    Ok((dims, bytes))
}
