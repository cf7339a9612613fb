//! Check an architecture statically: shapes, parameters, FLOPs, activation memory.
//!
//! ```text
//! cargo run --release --example check_arch -- --arch examples/archs/resnet8.arch \
//!     [--input 3x32x32] [--classes 10] [--ir-json OUT]
//! ```
//!
//! Nothing is allocated: every error (with its line and column) and every count comes from the
//! static checker. `--ir-json` writes the resolved IR (all lazy widths filled in), which
//! `scripts/torch_train.py` turns into the same network in PyTorch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nas_rs::arch_space::lang::{parse, InputSpec};

#[derive(Debug, Parser)]
#[command(about = "Statically check an architecture written in the architecture language")]
struct Args {
    /// File with the architecture (or a chat reply holding it).
    #[arg(long)]
    arch: PathBuf,
    /// Input shape CxHxW.
    #[arg(long, default_value = "3x32x32")]
    input: String,
    /// Number of classes the output must have.
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Write the resolved IR as JSON to this file.
    #[arg(long)]
    ir_json: Option<PathBuf>,
}

fn main() -> ExitCode {
    nas_rs::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(&args.arch)
        .map_err(|e| format!("cannot read {}: {e}", args.arch.display()))?;
    let dims: Vec<usize> = args
        .input
        .split('x')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| "--input must look like 3x32x32")?;
    let [channels, height, width] = dims[..] else {
        return Err("--input must have three dimensions, e.g. 3x32x32".into());
    };
    let input = InputSpec {
        channels,
        height,
        width,
        classes: args.classes,
    };
    let analysis = parse(&text)?.check(&input)?;
    println!("output              {:?}", analysis.output);
    println!("parameters          {}", analysis.params);
    println!("FLOPs (MACs/image)  {}", analysis.flops);
    println!("activations/image   {} bytes", analysis.activation_bytes);
    if let Some(path) = &args.ir_json {
        std::fs::write(path, serde_json::to_string_pretty(&analysis.resolved)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
