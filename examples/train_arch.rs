//! Train one architecture and print what came of it.
//!
//! ```text
//! cargo run --release --example train_arch -- --arch examples/archs/resnet8.arch \
//!     [--data datasets/cifar10-subset/cifar10-subset.tar.gz] [--dataset cifar10] [--epochs 1] \
//!     [--limit-train N] [--recipe proxy|nb201] [--device cpu] [--kernels native|candle] [--json OUT]
//!     [--export DIR]
//! ```
//!
//! The architecture file holds the architecture language (see `docs/ARCH_LANGUAGE.md`), plain
//! PyTorch `nn.Sequential(...)` included, or a chat reply with it in a fenced block. The
//! training set is split into training and validation images (the validation accuracy is what a
//! search selects on); the test split is reported separately. Every failure (parse, shape,
//! divergence, timeout, ...) is a status in the result, with the message. `--export DIR` writes
//! the trained network for PyTorch: `model.safetensors`, `model.py` and `architecture.arch`
//! (see `docs/EXPORT.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use nas_rs::cli::SHIPPED_CIFAR10_SUBSET;
use nas_rs::search_loop::worker::DataSpec;
use nas_rs::trainer::export::{export, Format};
use nas_rs::trainer::ops::Kernels;
use nas_rs::trainer::train::{train_text_network, Report, Splits, Status, TrainConfig};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Recipe {
    /// The feedback-memory paper's proxy: SGD 0.01, momentum 0.9, wd 5e-4, cosine, batch 128.
    Proxy,
    /// NAS-Bench-201's: SGD 0.1, Nesterov 0.9, wd 5e-4, cosine, batch 256.
    Nb201,
}

#[derive(Debug, Parser)]
#[command(about = "Train one architecture written in the architecture language")]
struct Args {
    /// File with the architecture (or a chat reply holding it); `-` reads standard input.
    #[arg(long)]
    arch: PathBuf,
    /// Dataset directory or `.tar.gz` (default: the shipped CIFAR-10 subset).
    #[arg(long, default_value = SHIPPED_CIFAR10_SUBSET)]
    data: PathBuf,
    /// Dataset kind (detected from the files when omitted): cifar10, cifar100, fashion-mnist, mnist, imagefolder.
    #[arg(long)]
    dataset: Option<String>,
    /// Training recipe.
    #[arg(long, value_enum, default_value = "proxy")]
    recipe: Recipe,
    /// Epochs.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Use only this many training images, drawn at random (after the validation split).
    #[arg(long)]
    limit_train: Option<usize>,
    /// Validation images held out from the training set (default: 10%, at most 5000).
    #[arg(long)]
    val_size: Option<usize>,
    /// Seed of the split, initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Wall-clock limit of the training in seconds.
    #[arg(long)]
    time_limit: Option<f64>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Kernels: native (our CPU kernels) or candle (candle's ops only, for comparison).
    #[arg(long, default_value = "native")]
    kernels: Kernels,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// After training, write the network for PyTorch into this directory.
    #[arg(long)]
    export: Option<PathBuf>,
}

/// Exit codes: 0 trained, 2 the architecture failed (the report says how), 1 anything else.
fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(report) if report.status != Status::Ok => ExitCode::from(2),
        other => nas_rs::exit_code(other.map(|_| ())),
    }
}

fn run(args: Args) -> Result<Report, Box<dyn std::error::Error>> {
    let text = if args.arch.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(&args.arch)
            .map_err(|e| format!("cannot read {}: {e}", args.arch.display()))?
    };
    let device = nas_rs::trainer::device(&args.device)?;
    let data = DataSpec {
        path: args.data.clone(),
        dataset: args.dataset.clone(),
        val_size: args.val_size,
        limit_train: args.limit_train,
        seed: args.seed,
    };
    let (train, val, test) = data.load()?;
    let mut config = match args.recipe {
        Recipe::Proxy => TrainConfig::proxy(),
        Recipe::Nb201 => TrainConfig::nas_bench_201(args.epochs),
    };
    config.epochs = args.epochs;
    config.seed = args.seed;
    config.time_limit_seconds = args.time_limit;
    config.kernels = args.kernels;
    println!(
        "data {} | {} train, {} val, {} test images | {} classes",
        args.data.display(),
        train.len(),
        val.len(),
        test.len(),
        train.classes().len()
    );
    let splits = Splits {
        train: &train,
        val: &val,
        test: Some(&test),
    };
    let (report, network) = train_text_network(&text, splits, &config, &device);
    print_report(&report);
    match (&args.export, network) {
        (Some(dir), Some(network)) if report.status == Status::Ok => {
            for path in export(&network, dir, Format::All)? {
                println!("wrote {}", path.display());
            }
        }
        (Some(_), _) => println!("not exported: the training did not finish"),
        (None, _) => {}
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {}", path.display());
    }
    Ok(report)
}

fn print_report(r: &Report) {
    let pct = |a: Option<f64>| a.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v));
    println!(
        "status      {}",
        serde_json::to_value(r.status)
            .map(|v| v.to_string())
            .unwrap_or_default()
            .trim_matches('"')
    );
    if let Some(e) = &r.error {
        println!("error       {e}");
    }
    println!("val acc     {}", pct(r.val_acc));
    println!("test acc    {}", pct(r.test_acc));
    if let (Some(p), Some(f)) = (r.params, r.flops) {
        println!("params      {p}");
        println!(
            "flops       {:.2} M multiply-accumulates per image",
            f as f64 / 1e6
        );
    }
    if let Some(ips) = r.images_per_second {
        println!("throughput  {ips:.0} images/s over {} steps", r.steps);
        println!(
            "data wait   {:.2} s (batches not ready when a step wanted one)",
            r.data_wait_seconds
        );
    }
    if let Some(last) = r.loss_curve.last() {
        println!("final loss  {last:.4}");
    }
    println!(
        "time        {:.1} s, peak memory {:.0} MB",
        r.seconds,
        r.peak_rss_bytes as f64 / 1e6
    );
}
