//! Writes the tiny reference models of `test_gguf::reference_models` into a directory, for
//! `scripts/llamacpp_logits_reference.py` to run through llama.cpp:
//!
//! ```sh
//! cargo run -p llm-local --example write_tiny_gguf -- DIR
//! ```

use std::path::PathBuf;

use llm_local::runtime::test_gguf::{reference_models, write_tiny_model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: write_tiny_gguf DIR")?,
    );
    std::fs::create_dir_all(&dir)?;
    for (name, arch, options) in reference_models() {
        let path = dir.join(format!("{name}.gguf"));
        write_tiny_model(&path, arch, &options)?;
        println!("{}", path.display());
    }
    Ok(())
}
