//! Helpers shared by the runtime's integration tests.

// Each test binary uses only some of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory whose name holds `tag`, the process id and a counter.
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "llm-local-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fetched Gemma-3 file, or `None` (with a message) when it is absent and allowed to be.
pub fn gemma_path() -> Option<PathBuf> {
    let dir = std::env::var_os("GGUF_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/gguf")))?;
    let path = dir.join("gemma3-270m.gguf");
    if path.is_file() {
        return Some(path);
    }
    let message = format!(
        "{} is absent: run ../shared/tools/fetch-gguf.sh gemma3-270m",
        path.display()
    );
    assert!(
        std::env::var("NAS_REQUIRE_INTEGRATION").as_deref() != Ok("1"),
        "{message}"
    );
    eprintln!("skipping a Gemma-3 test: {message}");
    None
}
