//! The data module: every format written here in its real layout, loaded through `load_with`.

use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use candle_core::Device;
use flate2::write::GzEncoder;
use flate2::Compression;
use trainer::data::{self, batches, Augment, DatasetKind, ImageSet, LoadOptions, Normalization};
use trainer::TrainError;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("nas-rs-data-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn no_cache() -> LoadOptions {
    LoadOptions { cache_dir: None }
}

/// Deterministic CHW pixels for image `i`.
fn image_pixels(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| ((k * 7 + i * 31) % 256) as u8).collect()
}

/// The `Data` error's path and reason, or a panic naming what came instead.
fn data_error(result: Result<impl std::fmt::Debug, TrainError>) -> (PathBuf, String) {
    match result {
        Err(TrainError::Data { path, reason }) => (path, reason),
        other => panic!("expected a Data error, got {other:?}"),
    }
}

// ---- CIFAR ----

/// Writes a CIFAR batch: per record `label_bytes` then 3072 pixels; returns the records' pixels.
fn write_cifar(path: &Path, labels: &[Vec<u8>], first: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut pixels = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let image = image_pixels(first + i, 3072);
        bytes.extend_from_slice(label);
        bytes.extend_from_slice(&image);
        pixels.extend_from_slice(&image);
    }
    fs::write(path, bytes).unwrap();
    pixels
}

/// A CIFAR-10 tree `<root>/cifar-10-batches-bin` with two images per batch; returns the root,
/// the training pixels and labels.
fn cifar10_tree(tmp: &TempDir, meta: bool) -> (PathBuf, Vec<u8>, Vec<u32>) {
    let dir = tmp.path().join("cifar-10-batches-bin");
    fs::create_dir_all(&dir).unwrap();
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for b in 1..=5 {
        let ls = [b as u8, 9 - b as u8];
        let name = format!("data_batch_{b}.bin");
        pixels.extend(write_cifar(
            &dir.join(name),
            &[vec![ls[0]], vec![ls[1]]],
            2 * b,
        ));
        labels.extend(ls.iter().map(|&l| u32::from(l)));
    }
    write_cifar(&dir.join("test_batch.bin"), &[vec![3]], 100);
    if meta {
        let names = "a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n\n";
        fs::write(dir.join("batches.meta.txt"), names).unwrap();
    }
    (tmp.path().to_path_buf(), pixels, labels)
}

#[test]
fn cifar10_binary_loads_exact_pixels_labels_and_classes() {
    let tmp = TempDir::new("c10");
    let (root, pixels, labels) = cifar10_tree(&tmp, true);
    assert_eq!(DatasetKind::detect(&root).unwrap(), DatasetKind::Cifar10);
    let d = data::load_with(&root, None, &no_cache()).unwrap();
    assert_eq!(d.kind, DatasetKind::Cifar10);
    assert_eq!(d.train.shape(), [3, 32, 32]);
    assert_eq!(d.train.len(), 10);
    assert_eq!(d.train.pixels(), &pixels[..]);
    assert_eq!(d.train.labels(), &labels[..]);
    assert_eq!(d.train.classes()[9], "a9");
    assert_eq!(d.test.labels(), &[3]);
    assert_eq!(d.test.image(0), &image_pixels(100, 3072)[..]);
    // The batches directory itself works too, and without a meta file the names are CIFAR's.
    fs::remove_file(root.join("cifar-10-batches-bin/batches.meta.txt")).unwrap();
    let kind = Some(DatasetKind::Cifar10);
    let d = data::load_with(&root.join("cifar-10-batches-bin"), kind, &no_cache()).unwrap();
    assert_eq!(d.train.classes()[0], "airplane");
    assert_eq!(d.train.classes()[9], "truck");
}

#[test]
fn cifar100_uses_fine_labels() {
    let tmp = TempDir::new("c100");
    let dir = tmp.path().join("cifar-100-binary");
    fs::create_dir_all(&dir).unwrap();
    let train = write_cifar(&dir.join("train.bin"), &[vec![19, 99], vec![0, 42]], 0);
    write_cifar(&dir.join("test.bin"), &[vec![5, 7]], 2);
    let d = data::load_with(tmp.path(), None, &no_cache()).unwrap();
    assert_eq!(d.kind, DatasetKind::Cifar100);
    assert_eq!(d.train.labels(), &[99, 42]);
    assert_eq!(d.train.pixels(), &train[..]);
    assert_eq!(d.test.labels(), &[7]);
    assert_eq!(d.train.classes().len(), 100);
    assert_eq!(d.train.classes()[99], "worm");
    let names: String = (0..100).map(|i| format!("fine{i}\n")).collect();
    fs::write(dir.join("fine_label_names.txt"), names).unwrap();
    let d = data::load_with(&dir, Some(DatasetKind::Cifar100), &no_cache()).unwrap();
    assert_eq!(d.train.classes()[42], "fine42");
}

#[test]
fn cifar_errors_name_the_file() {
    let tmp = TempDir::new("c10err");
    let (root, _, _) = cifar10_tree(&tmp, false);
    let dir = root.join("cifar-10-batches-bin");
    let batch = dir.join("data_batch_3.bin");
    let bytes = fs::read(&batch).unwrap();
    fs::write(&batch, &bytes[..bytes.len() - 100]).unwrap();
    let (path, reason) = data_error(data::load_with(&root, None, &no_cache()));
    assert_eq!(path, batch);
    assert!(reason.contains("truncated"), "{reason}");

    let mut bad_label = bytes.clone();
    bad_label[0] = 10;
    fs::write(&batch, bad_label).unwrap();
    let (path, reason) = data_error(data::load_with(&root, None, &no_cache()));
    assert_eq!(path, batch);
    assert!(reason.contains("label 10"), "{reason}");

    fs::write(&batch, &bytes).unwrap();
    fs::write(dir.join("batches.meta.txt"), "only\ntwo\n").unwrap();
    let (path, _) = data_error(data::load_with(&root, None, &no_cache()));
    assert_eq!(path, dir.join("batches.meta.txt"));
    fs::remove_file(dir.join("batches.meta.txt")).unwrap();

    fs::remove_file(dir.join("test_batch.bin")).unwrap();
    match data::load_with(&root, None, &no_cache()) {
        Err(TrainError::Io { path, .. }) => assert_eq!(path, dir.join("test_batch.bin")),
        other => panic!("expected an Io error, got {other:?}"),
    }
    let kind = Some(DatasetKind::Cifar100);
    let (path, reason) = data_error(data::load_with(&root, kind, &no_cache()));
    assert_eq!(path, root);
    assert!(reason.contains("train.bin"), "{reason}");
}

// ---- IDX ----

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// MNIST-like files with 3 training and 2 test 4x5 images; gzipped (with `.gz` names) or not.
fn idx_tree(tmp: &TempDir, gz: bool) -> (Vec<u8>, Vec<u8>) {
    let train: Vec<u8> = (0..3).flat_map(|i| image_pixels(i, 20)).collect();
    let test: Vec<u8> = (3..5).flat_map(|i| image_pixels(i, 20)).collect();
    let files = [
        ("train-images-idx3-ubyte", idx_bytes(&[3, 4, 5], &train)),
        ("train-labels-idx1-ubyte", idx_bytes(&[3], &[2, 0, 1])),
        ("t10k-images-idx3-ubyte", idx_bytes(&[2, 4, 5], &test)),
        ("t10k-labels-idx1-ubyte", idx_bytes(&[2], &[4, 1])),
    ];
    for (name, bytes) in files {
        if gz {
            fs::write(tmp.path().join(format!("{name}.gz")), gzip(&bytes)).unwrap();
        } else {
            fs::write(tmp.path().join(name), bytes).unwrap();
        }
    }
    (train, test)
}

#[test]
fn idx_plain_and_gzipped() {
    for gz in [false, true] {
        let tmp = TempDir::new("idx");
        let (train, test) = idx_tree(&tmp, gz);
        assert_eq!(DatasetKind::detect(tmp.path()).unwrap(), DatasetKind::Idx);
        let kind = Some("fashion-mnist".parse().unwrap());
        let d = data::load_with(tmp.path(), kind, &no_cache()).unwrap();
        assert_eq!(d.kind, DatasetKind::Idx);
        assert_eq!(d.train.shape(), [1, 4, 5]);
        assert_eq!(d.train.pixels(), &train[..]);
        assert_eq!(d.train.labels(), &[2, 0, 1]);
        assert_eq!(d.test.pixels(), &test[..]);
        assert_eq!(d.test.labels(), &[4, 1]);
        assert_eq!(d.train.classes(), &["0", "1", "2", "3", "4"]);
    }
}

#[test]
fn idx_errors_name_the_file() {
    let tmp = TempDir::new("idxerr");
    idx_tree(&tmp, false);
    let images = tmp.path().join("train-images-idx3-ubyte");
    let good = fs::read(&images).unwrap();
    let cases: [(Vec<u8>, &str); 4] = [
        ([&[0, 0, 0x08, 1][..], &good[4..]].concat(), "magic"),
        (good[..good.len() - 1].to_vec(), "truncated"),
        ([&good[..], &[0]].concat(), "trailing"),
        (vec![0, 0], "too short"),
    ];
    for (bytes, expected) in cases {
        fs::write(&images, bytes).unwrap();
        let (path, reason) = data_error(data::load_with(tmp.path(), None, &no_cache()));
        assert_eq!(path, images);
        assert!(reason.contains(expected), "{reason}");
    }
    fs::write(&images, &good).unwrap();
    let labels = tmp.path().join("t10k-labels-idx1-ubyte");
    fs::write(&labels, idx_bytes(&[3], &[1, 2, 3])).unwrap();
    let (path, reason) = data_error(data::load_with(tmp.path(), None, &no_cache()));
    assert_eq!(path, labels);
    assert!(reason.contains("3 labels for 2 images"), "{reason}");
    fs::write(&labels, [0x1f, 0x8b, 1, 2, 3]).unwrap();
    let (path, reason) = data_error(data::load_with(tmp.path(), None, &no_cache()));
    assert_eq!(path, labels);
    assert!(reason.contains("gzip"), "{reason}");
}

// ---- ImageFolder ----

/// Files of a tree: (relative path, bytes); a path ending in `/` is a directory.
type Files = Vec<(String, Vec<u8>)>;

/// Encodes CHW pixels (1 or 3 channels) as PNG or JPEG.
fn encode(chw: &[u8], c: usize, h: usize, w: usize, format: image::ImageFormat) -> Vec<u8> {
    let hwc: Vec<u8> = (0..h * w)
        .flat_map(|p| (0..c).map(move |ch| chw[ch * h * w + p]))
        .collect();
    let img = if c == 1 {
        image::DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(w as u32, h as u32, hwc).unwrap(),
        )
    } else {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(w as u32, h as u32, hwc).unwrap())
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn png(i: usize, c: usize) -> Vec<u8> {
    encode(
        &image_pixels(i, c * 6 * 8),
        c,
        6,
        8,
        image::ImageFormat::Png,
    )
}

/// The files of a small tree: (relative path, bytes). Classes `b_dog` and `a_cat` are listed
/// out of order; file names too.
fn folder_files(c: usize) -> Files {
    let mut files = Vec::new();
    for (split, class, name, i) in [
        ("train", "b_dog", "2.png", 0),
        ("train", "b_dog", "10.png", 1),
        ("train", "a_cat", "x.png", 2),
        ("test", "b_dog", "t.png", 3),
        ("val", "a_cat", "v.png", 4),
    ] {
        files.push((format!("{split}/{class}/{name}"), png(i, c)));
    }
    files.push(("train/notes.txt".into(), b"not an image".to_vec()));
    files.push(("train/a_cat/.hidden.png".into(), b"skipped".to_vec()));
    files
}

fn write_dir(root: &Path, files: &Files) {
    for (name, bytes) in files {
        let path = root.join(name);
        if name.ends_with('/') {
            fs::create_dir_all(path).unwrap();
        } else {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
    }
}

fn write_tar_gz(path: &Path, files: &Files) {
    let gz = GzEncoder::new(fs::File::create(path).unwrap(), Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        if name.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
        }
        header.set_cksum();
        tar.append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

/// Checks the tree of [`folder_files`]: sorted classes, sorted files, exact pixels.
fn check_folder(d: &data::Dataset, c: usize) {
    assert_eq!(d.kind, DatasetKind::ImageFolder);
    assert_eq!(d.train.classes(), &["a_cat", "b_dog"]);
    assert_eq!(d.train.shape(), [c, 6, 8]);
    assert_eq!(d.train.labels(), &[0, 1, 1]);
    // a_cat/x.png, then b_dog/10.png before b_dog/2.png (names sort as strings).
    for (k, i) in [2, 1, 0].into_iter().enumerate() {
        assert_eq!(d.train.image(k), &image_pixels(i, c * 48)[..]);
    }
    assert_eq!(d.test.labels(), &[1]);
    assert_eq!(d.test.image(0), &image_pixels(3, c * 48)[..]);
}

#[test]
fn imagefolder_directory_rgb_and_grayscale() {
    for c in [3, 1] {
        let tmp = TempDir::new("folder");
        write_dir(tmp.path(), &folder_files(c));
        assert_eq!(
            DatasetKind::detect(tmp.path()).unwrap(),
            DatasetKind::ImageFolder
        );
        check_folder(&data::load_with(tmp.path(), None, &no_cache()).unwrap(), c);
        // Without test/, val/ is the test split.
        fs::remove_dir_all(tmp.path().join("test")).unwrap();
        let d = data::load_with(tmp.path(), None, &no_cache()).unwrap();
        assert_eq!(d.test.image(0), &image_pixels(4, c * 48)[..]);
        assert_eq!(d.test.labels(), &[0]);
    }
}

#[test]
fn imagefolder_tar_gz_with_png_and_jpeg() {
    let tmp = TempDir::new("tar");
    let archive = tmp.path().join("set.tar.gz");
    write_tar_gz(&archive, &folder_files(3));
    assert_eq!(
        DatasetKind::detect(&archive).unwrap(),
        DatasetKind::ImageFolder
    );
    check_folder(&data::load_with(&archive, None, &no_cache()).unwrap(), 3);

    // Below a top-level directory, with a JPEG, whose pixels are the image crate's decoding.
    let jpeg = encode(&image_pixels(9, 3 * 48), 3, 6, 8, image::ImageFormat::Jpeg);
    let decoded = image::load_from_memory(&jpeg).unwrap().to_rgb8();
    let expected: Vec<u8> = (0..3)
        .flat_map(|ch| decoded.pixels().map(move |p| p.0[ch]).collect::<Vec<_>>())
        .collect();
    let mut files: Vec<_> = folder_files(3)
        .into_iter()
        .map(|(n, b)| (format!("./root/{n}"), b))
        .collect();
    files.push(("root/test/a_cat/j.JPG".into(), jpeg));
    let archive = tmp.path().join("rooted.tgz");
    write_tar_gz(&archive, &files);
    let d = data::load_with(&archive, None, &no_cache()).unwrap();
    assert_eq!(d.test.labels(), &[0, 1]);
    assert_eq!(d.test.image(0), &expected[..]);
}

#[test]
fn imagefolder_errors_name_the_file() {
    let tmp = TempDir::new("foldererr");
    let load = |p: &Path| data::load_with(p, Some(DatasetKind::ImageFolder), &no_cache());
    let case = |name: &str, edit: &dyn Fn(&mut Files)| {
        let mut files = folder_files(3);
        edit(&mut files);
        let dir = tmp.path().join(name);
        write_dir(&dir, &files);
        let archive = tmp.path().join(format!("{name}.tar.gz"));
        write_tar_gz(&archive, &files);
        let (dir_path, dir_reason) = data_error(load(&dir));
        let (tar_path, tar_reason) = data_error(load(&archive));
        let strip = |r: &str, root: &Path| r.replace(&*root.to_string_lossy(), "ROOT");
        assert_eq!(strip(&dir_reason, &dir), strip(&tar_reason, &archive));
        (
            dir_path.strip_prefix(&dir).unwrap().to_path_buf(),
            tar_path,
            dir_reason,
        )
    };
    let bad_jpeg = ("train/a_cat/y.jpg".to_string(), vec![0xff, 0xd8, 0]);
    let (path, tar_path, reason) = case("badjpeg", &|f| f.push(bad_jpeg.clone()));
    assert_eq!(path, Path::new("train/a_cat/y.jpg"));
    assert!(
        tar_path.ends_with("badjpeg.tar.gz/train/a_cat/y.jpg"),
        "{tar_path:?}"
    );
    assert!(reason.contains("cannot decode"), "{reason}");
    let big = encode(&[0; 3 * 10 * 8], 3, 10, 8, image::ImageFormat::Png);
    let (path, _, reason) = case("size", &|f| {
        f.push(("test/a_cat/big.png".into(), big.clone()))
    });
    assert_eq!(path, Path::new("test/a_cat/big.png"));
    assert!(
        reason.contains("[3, 10, 8]") && reason.contains("[3, 6, 8]"),
        "{reason}"
    );
    let (path, _, reason) = case("gray", &|f| f.push(("train/b_dog/g.png".into(), png(5, 1))));
    assert_eq!(path, Path::new("train/b_dog/g.png"));
    assert!(reason.contains("[1, 6, 8]"), "{reason}");
    let (path, _, reason) = case("new", &|f| f.push(("test/c_cow/c.png".into(), png(5, 3))));
    assert_eq!(path, Path::new("test"));
    assert!(reason.contains("c_cow"), "{reason}");
    let (path, _, reason) = case("notrain", &|f| f.retain(|(n, _)| !n.starts_with("train/")));
    assert_eq!(path, Path::new(""));
    assert!(reason.contains("no train/ split"), "{reason}");
    let (_, _, reason) = case("notest", &|f| f.retain(|(n, _)| n.starts_with("train/")));
    assert!(reason.contains("no test/ or val/ split"), "{reason}");

    let (path, _, reason) = case("empty", &|f| f.push(("train/c_cow/".into(), vec![])));
    assert_eq!(path, Path::new("train/c_cow"));
    assert!(reason.contains("empty class directory"), "{reason}");

    // Not a gzipped tar, and splits under two roots.
    let archive = tmp.path().join("junk.tar.gz");
    fs::write(&archive, b"definitely not gzip").unwrap();
    let (path, reason) = data_error(load(&archive));
    assert_eq!(path, archive);
    assert!(reason.contains(".tar.gz"), "{reason}");
    let files: Vec<_> = folder_files(3)
        .into_iter()
        .enumerate()
        .map(|(i, (n, b))| (format!("r{}/{n}", i % 2), b))
        .collect();
    write_tar_gz(&archive, &files);
    let (_, reason) = data_error(load(&archive));
    assert!(reason.contains("r0/") && reason.contains("r1/"), "{reason}");
}

#[test]
fn detect_and_parse_kinds() {
    for (s, kind) in [
        ("cifar10", DatasetKind::Cifar10),
        ("CIFAR-100", DatasetKind::Cifar100),
        ("imagefolder", DatasetKind::ImageFolder),
        ("mnist", DatasetKind::Idx),
        ("fashion-mnist", DatasetKind::Idx),
        ("idx", DatasetKind::Idx),
    ] {
        assert_eq!(s.parse::<DatasetKind>().unwrap(), kind);
        assert_eq!(kind.name().parse::<DatasetKind>().unwrap(), kind);
    }
    assert!(matches!(
        "imagenet".parse::<DatasetKind>(),
        Err(TrainError::Config(_))
    ));
    let tmp = TempDir::new("detect");
    let (path, _) = data_error(DatasetKind::detect(tmp.path()));
    assert_eq!(path, tmp.path());
    fs::write(tmp.path().join("x.zip"), b"").unwrap();
    data_error(DatasetKind::detect(&tmp.path().join("x.zip")));
    let missing = tmp.path().join("missing");
    assert!(
        matches!(DatasetKind::detect(&missing), Err(TrainError::Io { path, .. }) if path == missing)
    );
}

// ---- cache ----

fn cache_files(cache: &Path) -> Vec<PathBuf> {
    let dir = cache.join("datasets");
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Replaces `path` by garbage of the same length and gives it back its modification time, so
/// that only a cache hit can still load it.
fn garble_keeping_stamp(path: &Path) {
    let meta = fs::metadata(path).unwrap();
    fs::write(path, vec![0x5a; meta.len() as usize]).unwrap();
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(meta.modified().unwrap()).unwrap();
}

#[test]
fn cache_is_reused_and_never_trusted_when_corrupt() {
    let tmp = TempDir::new("cache");
    let cache = tmp.path().join("cache");
    let options = LoadOptions {
        cache_dir: Some(cache.clone()),
    };
    let archive = tmp.path().join("set.tar.gz");
    write_tar_gz(&archive, &folder_files(3));
    let tree = tmp.path().join("tree");
    write_dir(&tree, &folder_files(3));
    for source in [&archive, &tree] {
        let first = data::load_with(source, None, &options).unwrap();
        check_folder(&first, 3);
        let file = cache_files(&cache).pop().unwrap();
        let cached = fs::read(&file).unwrap();
        for garbage in [b"junk".to_vec(), cached[..cached.len() - 1].to_vec(), {
            let mut flipped = cached.clone();
            flipped[cached.len() / 2] ^= 1;
            flipped
        }] {
            fs::write(&file, garbage).unwrap();
            check_folder(&data::load_with(source, None, &options).unwrap(), 3);
            assert_eq!(
                fs::read(&file).unwrap(),
                cached,
                "the cache file is rewritten"
            );
        }
        // A hit: the source no longer decodes, but its identity is unchanged.
        let victim = if source.is_dir() {
            tree.join("train/a_cat/x.png")
        } else {
            archive.clone()
        };
        garble_keeping_stamp(&victim);
        let again = data::load_with(source, None, &options).unwrap();
        assert_eq!((&again.train, &again.test), (&first.train, &first.test));
        // Without the cache it fails, naming the file.
        data_error(data::load_with(source, None, &no_cache()));
        fs::remove_file(&file).unwrap();
    }
}

// ---- sets ----

fn toy_set(n: usize) -> ImageSet {
    let pixels = (0..n).flat_map(|i| image_pixels(i, 3 * 2 * 2)).collect();
    let labels = (0..n as u32).map(|i| i % 3).collect();
    let classes = vec!["a".into(), "b".into(), "c".into()];
    ImageSet::new(pixels, labels, [3, 2, 2], classes).unwrap()
}

#[test]
fn image_set_checks_and_selections() {
    let classes = || vec!["a".to_string()];
    assert!(ImageSet::new(vec![0; 5], vec![0], [1, 2, 2], classes()).is_err());
    assert!(ImageSet::new(vec![0; 4], vec![1], [1, 2, 2], classes()).is_err());
    assert!(ImageSet::new(vec![], vec![], [0, 2, 2], classes()).is_err());
    let set = toy_set(10);
    assert_eq!(set.image_len(), 12);
    let sub = set.subset(&[4, 1, 4]).unwrap();
    assert_eq!(sub.labels(), &[1, 1, 1]);
    assert_eq!(sub.image(0), set.image(4));
    assert_eq!(sub.image(1), set.image(1));
    assert!(matches!(set.subset(&[10]), Err(TrainError::Config(_))));
    assert_eq!(set.limit(3), set.subset(&[0, 1, 2]).unwrap());
    assert_eq!(set.limit(99), set);
    let sample = set.sample(4, 7);
    assert_eq!(sample.len(), 4);
    assert_eq!(sample, set.sample(4, 7));
    assert!(sample.labels().len() == 4 && sample.classes() == set.classes());
}

#[test]
fn validation_split_is_seeded_and_partitions() {
    let set = toy_set(50);
    let (train, val) = set.split_validation(12, 3).unwrap();
    assert_eq!((train.len(), val.len()), (38, 12));
    let (train2, val2) = set.split_validation(12, 3).unwrap();
    assert_eq!((&train, &val), (&train2, &val2));
    assert_ne!(set.split_validation(12, 4).unwrap().1, val);
    // Every image is in exactly one part (images are distinct, so compare them).
    let mut all: Vec<&[u8]> = (0..38)
        .map(|i| train.image(i))
        .chain((0..12).map(|i| val.image(i)))
        .collect();
    all.sort();
    let mut original: Vec<&[u8]> = (0..50).map(|i| set.image(i)).collect();
    original.sort();
    assert_eq!(all, original);
    assert!(matches!(
        set.split_validation(51, 0),
        Err(TrainError::Config(_))
    ));
}

#[test]
fn channel_stats_and_normalization() {
    // Channel 0 is 0 and 255 (mean 0.5, std 0.5), channel 1 constant 51 (0.2, 0).
    let pixels = vec![0, 255, 51, 51, 255, 0, 51, 51];
    let set = ImageSet::new(pixels, vec![0, 0], [2, 1, 2], vec!["x".into()]).unwrap();
    let (mean, std) = set.channel_stats();
    assert!(
        (mean[0] - 0.5).abs() < 1e-6 && (mean[1] - 0.2).abs() < 1e-6,
        "{mean:?}"
    );
    assert!(
        (std[0] - 0.5).abs() < 1e-6 && std[1].abs() < 1e-6,
        "{std:?}"
    );
    let norm = Normalization::from_set(&set);
    assert_eq!(norm.std()[1], 1.0);
    assert!(Normalization::new(vec![0.5], vec![0.0]).is_err());
    assert!(Normalization::new(vec![0.5, 0.5], vec![1.0]).is_err());
    let empty = set.limit(0);
    assert_eq!(empty.channel_stats(), (vec![0.0; 2], vec![0.0; 2]));
}

// ---- batches ----

fn batch_values(
    set: &ImageSet,
    seed: Option<u64>,
    augment: Option<Augment>,
) -> Vec<(Vec<f32>, Vec<u32>)> {
    let norm = Normalization::identity(set.channels());
    batches(set, 4, seed, augment, &norm, &Device::Cpu)
        .unwrap()
        .map(|b| {
            let (x, y) = b.unwrap();
            (
                x.flatten_all().unwrap().to_vec1().unwrap(),
                y.to_vec1().unwrap(),
            )
        })
        .collect()
}

#[test]
fn batches_shapes_values_and_order() {
    let set = toy_set(10);
    let norm = Normalization::new(vec![0.5, 0.25, 0.0], vec![0.5, 1.0, 2.0]).unwrap();
    let it = batches(&set, 4, None, None, &norm, &Device::Cpu).unwrap();
    assert_eq!(it.len(), 3);
    let all: Vec<_> = it.map(|b| b.unwrap()).collect();
    assert_eq!(all[0].0.dims(), &[4, 3, 2, 2]);
    assert_eq!(all[2].0.dims(), &[2, 3, 2, 2]);
    assert_eq!(all[2].1.to_vec1::<u32>().unwrap(), vec![2, 0]);
    let first = all[1].0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let raw = set.image(4);
    for (k, &v) in first[..12].iter().enumerate() {
        let (m, s) = [(0.5, 0.5), (0.25, 1.0), (0.0, 2.0)][k / 4];
        assert!((v - (f32::from(raw[k]) / 255.0 - m) / s).abs() < 1e-6);
    }
    // Shuffling is a seeded permutation of the labels.
    let shuffled = batch_values(&set, Some(5), None);
    assert_eq!(shuffled, batch_values(&set, Some(5), None));
    assert_ne!(shuffled, batch_values(&set, Some(6), None));
    let mut labels: Vec<u32> = shuffled.iter().flat_map(|b| b.1.clone()).collect();
    labels.sort();
    let mut expected = set.labels().to_vec();
    expected.sort();
    assert_eq!(labels, expected);
    assert!(batches(&set, 0, None, None, &norm, &Device::Cpu).is_err());
    assert!(batches(
        &set,
        4,
        None,
        None,
        &Normalization::identity(1),
        &Device::Cpu
    )
    .is_err());
}

#[test]
fn augmentation_is_seeded_and_a_padded_crop_or_flip() {
    let (c, h, w) = (3, 5, 6);
    let n = 8;
    let pixels = (0..n).flat_map(|i| image_pixels(i, c * h * w)).collect();
    let set = ImageSet::new(pixels, vec![0; n], [c, h, w], vec!["x".into()]).unwrap();
    let aug = Some(Augment {
        crop_padding: 2,
        horizontal_flip: true,
    });
    let a = batch_values(&set, Some(1), aug);
    assert_eq!(a, batch_values(&set, Some(1), aug));
    assert_ne!(a, batch_values(&set, Some(2), aug));
    let none = Some(Augment {
        crop_padding: 0,
        horizontal_flip: false,
    });
    assert_eq!(
        batch_values(&set, Some(1), none),
        batch_values(&set, Some(1), None)
    );
    // Without shuffling, image k of the output must be one of the 5x5x2 padded crops of image k.
    let out: Vec<f32> = batch_values(&set, None, aug)
        .into_iter()
        .flat_map(|b| b.0)
        .collect();
    let mut flips = 0;
    for i in 0..n {
        let got = &out[i * c * h * w..(i + 1) * c * h * w];
        let src = set.image(i);
        let found = (0..=4)
            .flat_map(|dy| (0..=4).flat_map(move |dx| [(dy, dx, false), (dy, dx, true)]))
            .find(|&(dy, dx, flip)| {
                (0..c * h * w).all(|k| {
                    let (ch, y, x) = (k / (h * w), k / w % h, k % w);
                    let cx = if flip { w - 1 - x } else { x };
                    let (sy, sx) = ((y + dy).wrapping_sub(2), (cx + dx).wrapping_sub(2));
                    let v = if sy < h && sx < w {
                        src[ch * h * w + sy * w + sx]
                    } else {
                        0
                    };
                    got[k] == f32::from(v) / 255.0
                })
            });
        let (_, _, flip) = found.unwrap_or_else(|| panic!("image {i} is no padded crop"));
        flips += usize::from(flip);
    }
    assert!(flips > 0 && flips < n, "{flips} of {n} flipped");
}

// ---- the shipped subset and the full archive ----

const SUBSET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../datasets/cifar10-subset/cifar10-subset.tar.gz"
);

#[test]
fn shipped_cifar10_subset_loads() {
    let tmp = TempDir::new("subset");
    let options = LoadOptions {
        cache_dir: Some(tmp.path().to_path_buf()),
    };
    let d = data::load_with(Path::new(SUBSET), None, &options).unwrap();
    assert_eq!((d.train.len(), d.test.len()), (5000, 1000));
    assert_eq!(d.train.shape(), [3, 32, 32]);
    assert_eq!(d.train.classes()[0], "airplane");
    assert_eq!(d.train.classes().len(), 10);
    for c in 0..10 {
        assert_eq!(d.train.labels().iter().filter(|&&l| l == c).count(), 500);
    }
    let (mean, std) = d.train.channel_stats();
    for (m, expected) in mean.iter().zip([0.49, 0.48, 0.45]) {
        assert!((m - expected).abs() < 0.03, "means {mean:?}, stds {std:?}");
    }
    let cached = data::load_with(Path::new(SUBSET), None, &options).unwrap();
    assert_eq!((cached.train, cached.test), (d.train, d.test));
}

/// `cargo test --release -p trainer --test data -- --ignored --nocapture full_cifar10`
#[test]
#[ignore = "reads ../shared/data/cifar10/cifar10-jpg.tar.gz (60,000 JPEGs); prints timings"]
fn full_cifar10_archive_cold_and_cached() {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/cifar10/cifar10-jpg.tar.gz");
    if !archive.exists() {
        assert!(
            std::env::var_os("NAS_REQUIRE_INTEGRATION").is_none(),
            "{archive:?} is missing"
        );
        eprintln!("skipped: {archive:?} not found");
        return;
    }
    let tmp = TempDir::new("full");
    let options = LoadOptions {
        cache_dir: Some(tmp.path().to_path_buf()),
    };
    let start = Instant::now();
    let cold = data::load_with(&archive, None, &options).unwrap();
    let cold_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let warm = data::load_with(&archive, None, &options).unwrap();
    let warm_s = start.elapsed().as_secs_f64();
    assert_eq!((cold.train.len(), cold.test.len()), (50_000, 10_000));
    assert_eq!((&warm.train, &warm.test), (&cold.train, &cold.test));
    let (mean, std) = cold.train.channel_stats();
    eprintln!(
        "cold {cold_s:.2} s, cached {warm_s:.2} s, {} threads; mean {mean:?} std {std:?}",
        rayon::current_num_threads()
    );
}
