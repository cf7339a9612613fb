//! Time one training step of an architecture: our kernels, or candle's ops alone.
//!
//! ```text
//! cargo run --release --example train_step -- --arch examples/archs/resnet8.arch \
//!     [--kernels native|candle] [--batch 128] [--steps 20] [--warmup 3] [--threads 2]
//! ```
//!
//! The network is built for CIFAR-10 shapes (3x32x32, 10 classes) and trained on a fixed random
//! batch, so only compute is timed: a step is forward + cross-entropy + backward
//! (`Network::loss_and_gradients`: the network's tape with native kernels, candle's autograd
//! with candle's) + SGD update (momentum 0.9, weight decay 5e-4); the evaluation forward
//! runs with running statistics and no graph. The medians over `--steps` steps, after `--warmup`,
//! and the process's peak memory are printed as one JSON line. `scripts/bench_step.sh` runs it
//! beside PyTorch (`scripts/torch_step.py`, same method) and prints the table of
//! `docs/BENCHMARKS.md`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use nas_rs::arch_space::lang::{parse, InputSpec};
use nas_rs::trainer::model::{Mode, Network};
use nas_rs::trainer::ops::{self, Kernels};
use nas_rs::trainer::optim::{Optimizer, OptimizerConfig};
use nas_rs::trainer::train::peak_rss_bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Parser)]
#[command(about = "Time a training step of one architecture")]
struct Args {
    /// File with the architecture.
    #[arg(long)]
    arch: PathBuf,
    /// Which kernels run the network.
    #[arg(long, default_value = "native")]
    kernels: Kernels,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Threads (sets RAYON_NUM_THREADS when given).
    #[arg(long)]
    threads: Option<usize>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    ops::tune_allocator();
    let text = std::fs::read_to_string(&args.arch)
        .map_err(|e| format!("cannot read {}: {e}", args.arch.display()))?;
    let program = parse(&text)?;
    let input = InputSpec {
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
    };
    let device = candle_core::Device::Cpu;
    let kernels = args.kernels;
    let (network, analysis) = Network::build(&program.module, &input, 0, &device)?;
    let network = network.with_kernels(kernels);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let pixels: Vec<f32> = (0..args.batch * 3 * 32 * 32)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    let x = candle_core::Tensor::from_vec(pixels, (args.batch, 3, 32, 32), &device)?;
    let labels: Vec<u32> = (0..args.batch).map(|_| rng.random_range(0..10)).collect();
    let y = candle_core::Tensor::from_vec(labels, args.batch, &device)?;
    let sgd = OptimizerConfig::Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
    };
    let mut optimizer = Optimizer::new(sgd, network.params().to_vec());
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let (mut step, mut grad, mut upd) = (Vec::new(), Vec::new(), Vec::new());
    let mut loss_value = 0.0;
    for i in 0..args.warmup + args.steps {
        let t = Instant::now();
        let mut mode = Mode {
            train: true,
            rng: &mut rng,
        };
        let (loss, grads) = network.loss_and_gradients(&x, &y, &mut mode)?;
        loss_value = loss;
        let g = ms(t);
        let t2 = Instant::now();
        optimizer.step(&grads, 0.01)?;
        let u = ms(t2);
        if i >= args.warmup {
            step.push(ms(t));
            grad.push(g);
            upd.push(u);
        }
    }
    let mut eval = Vec::new();
    for i in 0..args.warmup + args.steps {
        let t = Instant::now();
        let mut mode = Mode {
            train: false,
            rng: &mut rng,
        };
        network
            .forward(&x, &mut mode)?
            .sum_all()?
            .to_scalar::<f32>()?;
        if i >= args.warmup {
            eval.push(ms(t));
        }
    }
    let step_ms = median(step);
    println!(
        "{}",
        serde_json::json!({
            "impl": kernels.to_string(),
            "arch": args.arch.display().to_string(),
            "params": analysis.params,
            "flops": analysis.flops,
            "batch": args.batch,
            "threads": rayon::current_num_threads(),
            "step_ms": step_ms,
            "images_per_second": args.batch as f64 / step_ms * 1e3,
            "loss_and_gradients_ms": median(grad),
            "update_ms": median(upd),
            "eval_forward_ms": median(eval),
            "peak_rss_bytes": peak_rss_bytes(),
            "loss": loss_value,
        })
    );
    Ok(())
}
