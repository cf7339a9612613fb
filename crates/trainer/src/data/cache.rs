//! The decoded-image cache: image sets written as raw pixels, so that a dataset of compressed
//! images is decoded once.
//!
//! A cache file is `<cache dir>/datasets/<key>.bin`, the key a hash of what identifies the source
//! (its canonical path, sizes and modification times). Layout, integers little-endian: the magic
//! bytes, a format version (`u32`), the key (`u64`), the number of sets (`u32`); per set its shape
//! (3 x `u32`), its length (`u64`), its classes (count `u32`, then per name a `u32` length and
//! UTF-8 bytes), its labels (`u32` each) and its pixels; last a checksum (`u64`) of everything
//! before it. A file that is short, too long, of another version or key, or fails the checksum
//! or [`ImageSet::new`]'s checks is ignored.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::set::ImageSet;

const MAGIC: [u8; 8] = *b"nas-rsDS";
const VERSION: u32 = 1;

/// A 64-bit streaming hash of bytes, the same however the bytes are cut into calls.
///
/// Not cryptographic: it mixes little-endian words as FxHash does (every step is a bijection of
/// the state, so changing any one word always changes the result), then avalanches the state.
pub(super) struct Hasher {
    state: u64,
    tail: [u8; 8],
    tail_len: usize,
    total: u64,
}

impl Hasher {
    /// A hasher that has seen nothing.
    pub(super) fn new() -> Self {
        Self {
            state: 0,
            tail: [0; 8],
            tail_len: 0,
            total: 0,
        }
    }

    fn mix(&mut self, word: [u8; 8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        self.state = (self.state.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }

    /// Hashes `bytes`.
    pub(super) fn update(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.tail_len > 0 {
            let take = (8 - self.tail_len).min(bytes.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&bytes[..take]);
            self.tail_len += take;
            bytes = &bytes[take..];
            if self.tail_len < 8 {
                return;
            }
            self.mix(self.tail);
            self.tail_len = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0; 8];
            word.copy_from_slice(w);
            self.mix(word);
        }
        let rest = words.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// Hashes a string with its length, so that consecutive strings cannot run together.
    pub(super) fn update_str(&mut self, s: &str) {
        self.update(&(s.len() as u64).to_le_bytes());
        self.update(s.as_bytes());
    }

    /// Hashes a file's size and modification time.
    pub(super) fn update_stamp(&mut self, meta: &fs::Metadata) {
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        self.update(&meta.len().to_le_bytes());
        self.update(&modified.to_le_bytes());
    }

    /// The hash of everything seen.
    pub(super) fn finish(mut self) -> u64 {
        if self.tail_len > 0 {
            self.tail[self.tail_len..].fill(0);
            self.mix(self.tail);
        }
        self.mix(self.total.to_le_bytes());
        let mut x = self.state;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
}

/// A reader that hashes what it reads and counts it.
struct HashRead<R> {
    inner: R,
    hash: Hasher,
}

impl<R: Read> Read for HashRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes what it writes.
struct HashWrite<W> {
    inner: W,
    hash: Hasher,
}

impl<W: Write> Write for HashWrite<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The cache file of `key` in the cache directory `dir`.
fn file(dir: &Path, key: u64) -> PathBuf {
    dir.join("datasets").join(format!("{key:016x}.bin"))
}

/// The sets cached under `key`, or `None` if there is no valid cache file.
pub(super) fn read(dir: &Path, key: u64) -> Option<Vec<ImageSet>> {
    let path = file(dir, key);
    let file_len = fs::metadata(&path).ok()?.len();
    let mut r = HashRead {
        inner: BufReader::new(File::open(&path).ok()?),
        hash: Hasher::new(),
    };
    if read_array::<8>(&mut r)? != MAGIC || read_u32(&mut r)? != VERSION || read_u64(&mut r)? != key
    {
        return None;
    }
    let mut sets = Vec::new();
    for _ in 0..read_u32(&mut r)? {
        let mut shape = [0; 3];
        for d in &mut shape {
            *d = read_u32(&mut r)? as usize;
        }
        let len = read_u64(&mut r)?;
        let mut classes = Vec::new();
        for _ in 0..read_u32(&mut r)? {
            let name_len = u64::from(read_u32(&mut r)?);
            left(&r, file_len, name_len).then_some(())?;
            classes.push(String::from_utf8(read_vec(&mut r, name_len as usize)?).ok()?);
        }
        let image_len = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))?;
        left(&r, file_len, len.checked_mul(4 + image_len)?).then_some(())?;
        let labels = read_vec(&mut r, len as usize * 4)?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let pixels = read_vec(&mut r, (len * image_len) as usize)?;
        sets.push(ImageSet::new(pixels, labels, shape, classes).ok()?);
    }
    let checksum = r.hash.finish();
    let stored = u64::from_le_bytes(read_array::<8>(&mut r.inner)?);
    let at_end = r.inner.read(&mut [0]).ok()? == 0;
    (stored == checksum && at_end).then_some(sets)
}

/// Writes `sets` to the cache file of `key`, atomically (a temporary file, then a rename).
pub(super) fn write(dir: &Path, key: u64, sets: &[&ImageSet]) -> io::Result<()> {
    let path = file(dir, key);
    let parent = path.parent().unwrap_or(dir);
    fs::create_dir_all(parent)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = path.with_extension(format!("tmp-{}-{nanos}", std::process::id()));
    let result = write_file(&tmp, key, sets).and_then(|()| fs::rename(&tmp, &path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_file(path: &Path, key: u64, sets: &[&ImageSet]) -> io::Result<()> {
    let mut w = HashWrite {
        inner: BufWriter::new(File::create(path)?),
        hash: Hasher::new(),
    };
    w.write_all(&MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&key.to_le_bytes())?;
    w.write_all(&len_u32(sets.len())?.to_le_bytes())?;
    for set in sets {
        for d in set.shape() {
            w.write_all(&len_u32(d)?.to_le_bytes())?;
        }
        w.write_all(&(set.len() as u64).to_le_bytes())?;
        w.write_all(&len_u32(set.classes().len())?.to_le_bytes())?;
        for name in set.classes() {
            w.write_all(&len_u32(name.len())?.to_le_bytes())?;
            w.write_all(name.as_bytes())?;
        }
        let labels: Vec<u8> = set.labels().iter().flat_map(|l| l.to_le_bytes()).collect();
        w.write_all(&labels)?;
        w.write_all(set.pixels())?;
    }
    let checksum = w.hash.finish();
    w.inner.write_all(&checksum.to_le_bytes())?;
    w.inner.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

/// Whether the file of `file_len` bytes has `need` bytes left after what `r` has read, before the
/// final checksum. Every length read from a cache file is checked so before it is allocated.
fn left<R>(r: &HashRead<R>, file_len: u64, need: u64) -> bool {
    file_len
        .checked_sub(r.hash.total + 8)
        .is_some_and(|rest| rest >= need)
}

fn len_u32(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too large"))
}

fn read_array<const N: usize>(r: &mut impl Read) -> Option<[u8; N]> {
    let mut buf = [0; N];
    r.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn read_u32(r: &mut impl Read) -> Option<u32> {
    read_array(r).map(u32::from_le_bytes)
}

fn read_u64(r: &mut impl Read) -> Option<u64> {
    read_array(r).map(u64::from_le_bytes)
}

fn read_vec(r: &mut impl Read, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).ok()?;
    Some(buf)
}
