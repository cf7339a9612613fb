//! Opening and validating GGUF files.
//!
//! [`GgufFile::open`] reads the header, the metadata and the tensor table with candle's
//! [`candle_core::quantized::gguf_file::Content::read`] and checks, before any tensor is read, that the file is whole:
//! every failure (not a GGUF file, an unsupported version, a header or metadata cut short, tensor
//! data reaching past the end of the file, as a truncated download leaves it, a missing or
//! unsupported `general.architecture`) becomes an [`LlmError::Load`] that names the file and the
//! problem. Opening never panics.
//!
//! The metadata getters ([`GgufFile::u32`], [`GgufFile::string`], ...) also answer with
//! [`LlmError::Load`] naming the key, so a model loader can use `?` throughout.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use candle_core::quantized::gguf_file::{Content, TensorInfo, Value, VersionedMagic};

use super::value::{describe, integer};
use crate::LlmError;

/// The model families the runtime knows, from `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// `llama` (Llama 2/3, SmolLM2, Mistral, DeepSeek-Coder, ...).
    Llama,
    /// `qwen2` (Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen).
    Qwen2,
    /// `qwen3`.
    Qwen3,
    /// `gemma3`.
    Gemma3,
}

impl Architecture {
    /// Every supported architecture.
    pub const ALL: [Architecture; 4] = [
        Architecture::Llama,
        Architecture::Qwen2,
        Architecture::Qwen3,
        Architecture::Gemma3,
    ];

    /// The name used in `general.architecture` and as the prefix of the model's metadata keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Gemma3 => "gemma3",
        }
    }

    /// `"llama, qwen2, qwen3, gemma3"`.
    pub fn supported_list() -> String {
        Self::ALL
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Architecture {
    type Err = String;

    /// Parses a `general.architecture` value; the error says which ones are supported.
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unsupported architecture `{s}`; supported: {}",
                    Self::supported_list()
                )
            })
    }
}

/// An opened and checked GGUF file: its metadata and tensor table (tensors are read on demand
/// through [`GgufFile::reader`]).
pub struct GgufFile {
    path: PathBuf,
    content: Content,
    architecture: Architecture,
    architecture_name: String,
    version: u32,
    file_len: u64,
    tensor_bytes: u64,
}

impl fmt::Debug for GgufFile {
    /// A summary (the metadata of a real model holds the whole vocabulary).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("architecture", &self.architecture)
            .field("version", &self.version)
            .field("metadata_keys", &self.content.metadata.len())
            .field("tensors", &self.content.tensor_infos.len())
            .field("tensor_bytes", &self.tensor_bytes)
            .field("file_len", &self.file_len)
            .finish()
    }
}

/// The size of the tensor data of `info`, or why it cannot be computed.
fn tensor_size(name: &str, info: &TensorInfo) -> Result<u64, String> {
    let dims = info.shape.dims();
    let elems = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| format!("tensor `{name}` has an impossible shape {dims:?}"))?;
    let block = info.ggml_dtype.block_size() as u64;
    if !elems.is_multiple_of(block) {
        return Err(format!(
            "tensor `{name}` has {elems} elements, not a multiple of the block size {block} of {:?}",
            info.ggml_dtype
        ));
    }
    (elems / block)
        .checked_mul(info.ggml_dtype.type_size() as u64)
        .ok_or_else(|| format!("tensor `{name}` has an impossible shape {dims:?}"))
}

impl GgufFile {
    /// Opens `path`, reads its header, metadata and tensor table, and checks that every tensor's
    /// data lies inside the file and that `general.architecture` names a supported family.
    pub fn open(path: &Path) -> Result<GgufFile, LlmError> {
        let err = |reason: String| LlmError::Load {
            source_name: path.display().to_string(),
            reason,
        };
        let meta =
            std::fs::metadata(path).map_err(|e| err(format!("cannot read the file: {e}")))?;
        if meta.is_dir() {
            return Err(err("is a directory, not a GGUF file".into()));
        }
        let file_len = meta.len();
        let mut file = File::open(path).map_err(|e| err(format!("cannot open the file: {e}")))?;

        // Magic and version, checked here for clearer messages than the generic reader's.
        let mut head = [0u8; 8];
        let mut got = 0;
        while got < head.len() {
            match file.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err(format!("cannot read the file: {e}"))),
            }
        }
        if got == 0 {
            return Err(err("the file is empty, not a GGUF file".into()));
        }
        if got < 4 && head[..got] == b"GGUF"[..got] {
            return Err(err(format!(
                "truncated GGUF header: the file is only {file_len} bytes long"
            )));
        }
        if got < 4 || &head[..4] != b"GGUF" {
            let shown: String = head[..got.min(4)]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ");
            return Err(err(format!(
                "not a GGUF file (bad magic: the file starts with bytes [{shown}], a GGUF file with \"GGUF\")"
            )));
        }
        if got < 8 {
            return Err(err(format!(
                "truncated GGUF header: the file is only {file_len} bytes long"
            )));
        }
        let version = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if !(1..=3).contains(&version) {
            return Err(err(format!(
                "unsupported GGUF version {version} (supported: 1, 2, 3)"
            )));
        }

        let mut reader = BufReader::new(file);
        // candle's reader bounds-checks lengths against the file size, but a crafted file can
        // still make it panic (e.g. `general.alignment = 0`): never let that escape.
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            use std::io::Seek;
            reader.seek(std::io::SeekFrom::Start(0))?;
            Content::read(&mut reader)
        }));
        let content = match read {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let shown = e.to_string();
                let first = shown
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_start_matches("gguf: ");
                let first = if first.contains("failed to fill whole buffer") {
                    "unexpected end of file"
                } else {
                    first
                };
                return Err(err(format!(
                    "truncated or corrupt GGUF header/metadata ({first}); the file is {file_len} bytes long"
                )));
            }
            Err(_) => {
                return Err(err(
                    "corrupt GGUF header/metadata (the reader failed on it)".into(),
                ))
            }
        };

        if !matches!(
            content.metadata.get("general.alignment"),
            None | Some(Value::U8(1..)) | Some(Value::U16(1..)) | Some(Value::U32(1..))
        ) {
            let v = describe(&content.metadata["general.alignment"]);
            return Err(err(format!("invalid `general.alignment` ({v})")));
        }

        // Tensor data must lie inside the file: a truncated download is caught here.
        let mut tensor_bytes = 0u64;
        let mut worst: Option<(u64, &str)> = None;
        for (name, info) in &content.tensor_infos {
            let size = tensor_size(name, info).map_err(&err)?;
            tensor_bytes = tensor_bytes.saturating_add(size);
            let end = content
                .tensor_data_offset
                .saturating_add(info.offset)
                .saturating_add(size);
            if end > file_len && worst.is_none_or(|(e, _)| end > e) {
                worst = Some((end, name));
            }
        }
        if let Some((end, name)) = worst {
            return Err(err(format!(
                "truncated file: the tensor data extends past the end of the file (tensor `{name}` ends at byte {end}, \
                 the file has {file_len} bytes; an incomplete download?)"
            )));
        }

        let architecture_name = match content.metadata.get("general.architecture") {
            None => return Err(err("missing metadata key `general.architecture`".into())),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(err(format!(
                    "metadata key `general.architecture` is {}, expected a string",
                    describe(other)
                )))
            }
        };
        let architecture = architecture_name.parse::<Architecture>().map_err(err)?;
        let version = match content.magic {
            VersionedMagic::GgufV1 => 1,
            VersionedMagic::GgufV2 => 2,
            VersionedMagic::GgufV3 => 3,
        };
        Ok(GgufFile {
            path: path.to_path_buf(),
            content,
            architecture,
            architecture_name,
            version,
            file_len,
            tensor_bytes,
        })
    }

    fn error(&self, reason: String) -> LlmError {
        LlmError::Load {
            source_name: self.path.display().to_string(),
            reason,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model family.
    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// `general.architecture` as written (the prefix of the model's metadata keys).
    pub fn architecture_name(&self) -> &str {
        &self.architecture_name
    }

    /// `{architecture}.{suffix}`, e.g. `arch_key("block_count")` is `"llama.block_count"`.
    pub fn arch_key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.architecture_name)
    }

    /// The GGUF format version (1, 2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The file's size in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The header, metadata and tensor table as candle reads them.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// The content, for candle-transformers' `ModelWeights::from_gguf` (with [`GgufFile::reader`]).
    pub fn into_content(self) -> Content {
        self.content
    }

    /// All metadata.
    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    /// One metadata value, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&Value, LlmError> {
        self.get(key)
            .ok_or_else(|| self.error(format!("missing metadata key `{key}`")))
    }

    fn wrong_type(&self, key: &str, v: &Value, expected: &str) -> LlmError {
        self.error(format!(
            "metadata key `{key}` is {}, expected {expected}",
            describe(v)
        ))
    }

    /// A string value.
    pub fn string(&self, key: &str) -> Result<&str, LlmError> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            v => Err(self.wrong_type(key, v, "a string")),
        }
    }

    /// An integer value that fits a `u32` (any integer type is accepted).
    pub fn u32(&self, key: &str) -> Result<u32, LlmError> {
        let v = self.require(key)?;
        integer(v)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| self.wrong_type(key, v, "an unsigned 32-bit integer"))
    }

    /// An integer value that fits a `u64` (any integer type is accepted).
    pub fn u64(&self, key: &str) -> Result<u64, LlmError> {
        let v = self.require(key)?;
        integer(v)
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| self.wrong_type(key, v, "an unsigned integer"))
    }

    /// A floating-point value (`f32`, or `f64` narrowed).
    pub fn f32(&self, key: &str) -> Result<f32, LlmError> {
        match self.require(key)? {
            Value::F32(x) => Ok(*x),
            Value::F64(x) => Ok(*x as f32),
            v => Err(self.wrong_type(key, v, "a float")),
        }
    }

    /// A boolean value.
    pub fn bool(&self, key: &str) -> Result<bool, LlmError> {
        match self.require(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(self.wrong_type(key, v, "a bool")),
        }
    }

    /// An array value.
    pub fn array(&self, key: &str) -> Result<&[Value], LlmError> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            v => Err(self.wrong_type(key, v, "an array")),
        }
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`, `tokenizer.ggml.merges`).
    pub fn string_array(&self, key: &str) -> Result<Vec<&str>, LlmError> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                v => Err(self.error(format!(
                    "metadata key `{key}`: element {i} is {}, expected a string",
                    describe(v)
                ))),
            })
            .collect()
    }

    /// An array of integers (any integer type, e.g. `tokenizer.ggml.token_type`).
    pub fn int_array(&self, key: &str) -> Result<Vec<i64>, LlmError> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                integer(v)
                    .and_then(|x| i64::try_from(x).ok())
                    .ok_or_else(|| {
                        self.error(format!(
                            "metadata key `{key}`: element {i} is {}, expected an integer",
                            describe(v)
                        ))
                    })
            })
            .collect()
    }

    /// An array of floats (e.g. `tokenizer.ggml.scores`).
    pub fn f32_array(&self, key: &str) -> Result<Vec<f32>, LlmError> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::F32(x) => Ok(*x),
                Value::F64(x) => Ok(*x as f32),
                v => Err(self.error(format!(
                    "metadata key `{key}`: element {i} is {}, expected a float",
                    describe(v)
                ))),
            })
            .collect()
    }

    /// `general.name`, if present.
    pub fn name(&self) -> Option<&str> {
        match self.get("general.name") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The chat template stored in the file (`tokenizer.chat_template`), if any.
    pub fn chat_template(&self) -> Option<String> {
        match self.get("tokenizer.chat_template") {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            _ => None,
        }
    }

    /// The training context length (`{architecture}.context_length`), if present.
    pub fn context_length(&self) -> Option<usize> {
        self.get(&self.arch_key("context_length"))
            .and_then(integer)
            .and_then(|v| usize::try_from(v).ok())
    }

    /// How many tensors the file holds.
    pub fn tensor_count(&self) -> usize {
        self.content.tensor_infos.len()
    }

    /// The total size of the tensor data in bytes.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensor_bytes
    }

    /// The table entry of one tensor.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.content.tensor_infos.get(name)
    }

    /// The tensor names, sorted.
    pub fn tensor_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .content
            .tensor_infos
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    /// The file opened again for reading tensors (candle's loaders take a `Read + Seek`).
    pub fn reader(&self) -> Result<BufReader<File>, LlmError> {
        File::open(&self.path)
            .map(BufReader::new)
            .map_err(|e| self.error(format!("cannot open the file again: {e}")))
    }
}
