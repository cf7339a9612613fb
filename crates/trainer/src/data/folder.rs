//! ImageFolder trees, `train|val|test/<class>/*.{jpg,jpeg,png}`, as a directory or a `.tar.gz`.
//!
//! The layout is torchvision's `ImageFolder` under each split: the classes are the sorted names of
//! the class directories of `train/`, and the images of a class are the JPEG and PNG files
//! anywhere below its directory, sorted by path. The test split is `test/`, or `val/` when there
//! is no `test/`. Names starting with `.` are skipped. In an archive the splits may sit below one
//! top-level directory (`cifar10/train/cat/0001.jpg`); the archive is read directly, without
//! extracting it.
//!
//! The images are decoded in parallel. Every image must have the size and the number of channels
//! of the first training image: grayscale images give 1 channel, colour images 3 (an alpha
//! channel is dropped).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use rayon::prelude::*;

use super::cache::{self, Hasher};
use super::set::ImageSet;
use super::{io_error, Dataset, DatasetKind};
use crate::TrainError;

/// The split directory names.
const SPLITS: [&str; 3] = ["train", "val", "test"];

/// Whether `path` names a gzipped tar archive (`.tar.gz` or `.tgz`).
pub(super) fn is_archive(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase());
    name.is_some_and(|n| n.ends_with(".tar.gz") || n.ends_with(".tgz"))
}

/// Loads an ImageFolder directory or archive (any file that is not a directory), through the
/// cache in `cache_dir` if given.
pub(super) fn load(path: &Path, cache_dir: Option<&Path>) -> Result<Dataset, TrainError> {
    let canonical = fs::canonicalize(path).map_err(|e| io_error(path, e))?;
    let meta = fs::metadata(path).map_err(|e| io_error(path, e))?;
    let mut key = Hasher::new();
    key.update_str("imagefolder");
    key.update_str(&canonical.to_string_lossy());
    let listing = if !meta.is_dir() {
        key.update_stamp(&meta);
        None
    } else {
        let listing = list_dir(path)?;
        for (name, file) in listing.files() {
            key.update_str(&name);
            if let Image::OnDisk(meta) = &file.image {
                key.update_stamp(meta);
            }
        }
        Some(listing)
    };
    let key = key.finish();
    if let Some(dir) = cache_dir {
        if let Some([train, test]) = cache::read(dir, key).and_then(|v| <[_; 2]>::try_from(v).ok())
        {
            return Ok(Dataset {
                kind: DatasetKind::ImageFolder,
                train,
                test,
            });
        }
    }
    let listing = match listing {
        Some(listing) => listing,
        None => list_archive(path)?,
    };
    let dataset = decode(path, &listing)?;
    if let Some(dir) = cache_dir {
        // A cache that cannot be written costs time next run, not correctness.
        let _ = cache::write(dir, key, &[&dataset.train, &dataset.test]);
    }
    Ok(dataset)
}

/// The image files of a tree: split -> class -> path below the class directory -> file.
/// A class directory without images has an empty map.
#[derive(Default)]
struct Listing {
    splits: BTreeMap<String, Split>,
}

/// The classes of one split: class -> path below the class directory -> file.
type Split = BTreeMap<String, BTreeMap<String, ImageFile>>;

/// One image file.
struct ImageFile {
    /// The file, or for an archive member the archive path joined with the member path.
    path: PathBuf,
    image: Image,
}

/// Where an image's bytes are.
enum Image {
    /// In a directory tree; the metadata identifies the version of the file for the cache.
    OnDisk(fs::Metadata),
    /// Read from an archive.
    InMemory(Vec<u8>),
}

impl Listing {
    /// Every file with its name `split/class/path`, in order.
    fn files(&self) -> impl Iterator<Item = (String, &ImageFile)> {
        self.splits.iter().flat_map(|(split, classes)| {
            classes.iter().flat_map(move |(class, files)| {
                files
                    .iter()
                    .map(move |(name, f)| (format!("{split}/{class}/{name}"), f))
            })
        })
    }

    /// The files of a class, registering the class if it is new.
    fn class(&mut self, split: &str, class: &str) -> &mut BTreeMap<String, ImageFile> {
        self.splits
            .entry(split.to_string())
            .or_default()
            .entry(class.to_string())
            .or_default()
    }
}

/// Whether a file name has an image extension.
fn is_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e))
}

/// Lists the image files of a directory tree.
fn list_dir(root: &Path) -> Result<Listing, TrainError> {
    let mut listing = Listing::default();
    for split in SPLITS {
        let split_dir = root.join(split);
        if !split_dir.is_dir() {
            continue;
        }
        let classes = listing.splits.entry(split.to_string()).or_default();
        for (class, class_dir) in subdirectories(&split_dir)? {
            let mut files = BTreeMap::new();
            walk(&class_dir, "", &mut files)?;
            classes.insert(class, files);
        }
    }
    Ok(listing)
}

/// The visible subdirectories of `dir` (following links), with their names.
fn subdirectories(dir: &Path) -> Result<Vec<(String, PathBuf)>, TrainError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}

/// Adds the image files below `dir` to `files`, keyed by their path below the class directory.
fn walk(
    dir: &Path,
    prefix: &str,
    files: &mut BTreeMap<String, ImageFile>,
) -> Result<(), TrainError> {
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(|e| io_error(&path, e))?;
        if file_type.is_dir() {
            walk(&path, &format!("{prefix}{name}/"), files)?;
        } else if is_image(&name) {
            let meta = fs::metadata(&path).map_err(|e| io_error(&path, e))?;
            if meta.is_file() {
                let image = Image::OnDisk(meta);
                files.insert(format!("{prefix}{name}"), ImageFile { path, image });
            }
        }
    }
    Ok(())
}

/// Lists the image files of a `.tar.gz` archive, reading their bytes.
fn list_archive(archive: &Path) -> Result<Listing, TrainError> {
    let corrupt = |e: std::io::Error| TrainError::Data {
        path: archive.to_path_buf(),
        reason: format!("not a readable .tar.gz archive: {e}"),
    };
    let file = File::open(archive).map_err(|e| io_error(archive, e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let mut listing = Listing::default();
    let mut root: Option<Vec<String>> = None;
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let member = entry.path().map_err(corrupt)?.into_owned();
        let Some((prefix, parts)) = split_member(&member) else {
            continue;
        };
        let kind = entry.header().entry_type();
        let is_file = kind.is_file() && parts.len() >= 3 && is_image(&parts[parts.len() - 1]);
        if !(kind.is_dir() || is_file) {
            continue;
        }
        match &root {
            Some(r) if *r != prefix => {
                let show = |p: &[String]| match p {
                    [] => "the top level".to_string(),
                    _ => format!("{}/", p.join("/")),
                };
                return Err(TrainError::Data {
                    path: archive.join(&member),
                    reason: format!("splits both at {} and at {}", show(r), show(&prefix)),
                });
            }
            Some(_) => {}
            None => root = Some(prefix),
        }
        let files = listing.class(&parts[0], &parts[1]);
        if is_file {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(corrupt)?;
            let file = ImageFile {
                path: archive.join(&member),
                image: Image::InMemory(bytes),
            };
            files.insert(parts[2..].join("/"), file);
        }
    }
    Ok(listing)
}

/// Cuts an archive member path `[root/]split/class[/...]` into the root directories and the rest
/// (starting with the split), or `None` if the member is not below a class directory.
fn split_member(member: &Path) -> Option<(Vec<String>, Vec<String>)> {
    let mut parts = Vec::new();
    for c in member.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?.to_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if parts.iter().any(|p| p.starts_with('.')) {
        return None;
    }
    let at = parts
        .iter()
        .take(2)
        .position(|p| SPLITS.contains(&p.as_str()))?;
    let rest = parts.split_off(at);
    (rest.len() >= 2).then_some((parts, rest))
}

/// Decodes the training split and the test split (`test/`, else `val/`) of a listing.
fn decode(path: &Path, listing: &Listing) -> Result<Dataset, TrainError> {
    let missing = |what: &str| TrainError::Data {
        path: path.to_path_buf(),
        reason: format!("no {what} (expected train/<class>/*.jpg|png and test/ or val/)"),
    };
    let train = listing
        .splits
        .get("train")
        .ok_or_else(|| missing("train/ split"))?;
    let (test_name, test) = ["test", "val"]
        .into_iter()
        .find_map(|s| Some((s, listing.splits.get(s)?)))
        .ok_or_else(|| missing("test/ or val/ split"))?;
    let classes: Vec<String> = train.keys().cloned().collect();
    let (train_files, train_labels) = flatten(path, "train", train, &classes)?;
    let (test_files, test_labels) = flatten(path, test_name, test, &classes)?;
    let reference = train_files
        .first()
        .ok_or_else(|| missing("training images"))?;
    let (shape, _) = decode_one(reference)?;
    let train_pixels = decode_all(&train_files, shape, &reference.path)?;
    let test_pixels = decode_all(&test_files, shape, &reference.path)?;
    Ok(Dataset {
        kind: DatasetKind::ImageFolder,
        train: ImageSet::from_parts(train_pixels, train_labels, shape, classes.clone()),
        test: ImageSet::from_parts(test_pixels, test_labels, shape, classes),
    })
}

/// The files of one split in order, with their labels (indices into `classes`).
fn flatten<'a>(
    path: &Path,
    split: &str,
    tree: &'a Split,
    classes: &[String],
) -> Result<(Vec<&'a ImageFile>, Vec<u32>), TrainError> {
    let bad = |reason: String| TrainError::Data {
        path: path.join(split),
        reason,
    };
    if tree.is_empty() {
        return Err(bad("no class directories".into()));
    }
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for (class, images) in tree {
        let label = classes
            .iter()
            .position(|c| c == class)
            .ok_or_else(|| bad(format!("class {class:?} is not a class of train/")))?;
        if images.is_empty() {
            return Err(TrainError::Data {
                path: path.join(split).join(class),
                reason: "empty class directory (no .jpg, .jpeg or .png files)".into(),
            });
        }
        files.extend(images.values());
        labels.extend(std::iter::repeat_n(label as u32, images.len()));
    }
    Ok((files, labels))
}

/// Decodes images in parallel into one CHW buffer. All must have the shape `shape` of the image
/// at `reference`.
fn decode_all(
    files: &[&ImageFile],
    shape: [usize; 3],
    reference: &Path,
) -> Result<Vec<u8>, TrainError> {
    let image_len: usize = shape.iter().product();
    let mut pixels = vec![0u8; files.len() * image_len];
    let results: Vec<Result<(), TrainError>> = pixels
        .par_chunks_mut(image_len)
        .zip(files.par_iter())
        .map(|(out, file)| {
            let (got, chw) = decode_one(file)?;
            if got != shape {
                return Err(TrainError::Data {
                    path: file.path.clone(),
                    reason: format!(
                        "image is {got:?} (CxHxW) but {} is {shape:?}; all images must match",
                        reference.display()
                    ),
                });
            }
            out.copy_from_slice(&chw);
            Ok(())
        })
        .collect();
    // The first failure in file order, so that the error does not depend on scheduling.
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(pixels)
}

/// Decodes one image to its shape and CHW pixels.
fn decode_one(file: &ImageFile) -> Result<([usize; 3], Vec<u8>), TrainError> {
    let read;
    let bytes = match &file.image {
        Image::InMemory(bytes) => bytes,
        Image::OnDisk(_) => {
            read = fs::read(&file.path).map_err(|e| io_error(&file.path, e))?;
            &read
        }
    };
    let img = image::load_from_memory(bytes).map_err(|e| TrainError::Data {
        path: file.path.clone(),
        reason: format!("cannot decode image: {e}"),
    })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (c, hwc) = if img.color().has_color() {
        (3, img.into_rgb8().into_raw())
    } else {
        (1, img.into_luma8().into_raw())
    };
    let mut chw = vec![0u8; hwc.len()];
    for (p, px) in hwc.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            chw[ch * h * w + p] = v;
        }
    }
    Ok(([c, h, w], chw))
}
