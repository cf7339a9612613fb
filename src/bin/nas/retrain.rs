//! `nas retrain` and `nas export`: from a search's run directory to trained models.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use nas_rs::cli::ExecutorArgs;
use nas_rs::search_loop::executor::{build, run_in_process};
use nas_rs::search_loop::retrain::{retrain, RetrainPlan, RetrainSummary};
use nas_rs::search_loop::run::RunDir;
use nas_rs::search_loop::worker::{DataSpec, EvalSetup};
use nas_rs::trainer::export::{Format, ARCH_FILE, MODULE_FILE, WEIGHTS_FILE};
use nas_rs::trainer::train::TrainConfig;

/// The arguments of `nas retrain`.
#[derive(Debug, Args)]
pub struct RetrainArgs {
    /// The run directory of a closed-loop search.
    dir: PathBuf,
    /// How many of the best distinct architectures.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Epochs of the recipe.
    #[arg(long, default_value_t = 200)]
    epochs: usize,
    /// Seeds per architecture.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// The recipe as JSON (a `TrainConfig`; default: NAS-Bench-201's, SGD 0.1 cosine, batch
    /// 256, weight decay 5e-4, crop and flip); `--epochs` overrides its epochs.
    #[arg(long)]
    recipe: Option<PathBuf>,
    /// The data (default: the run's).
    #[arg(long)]
    data: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N` (default: the run's).
    #[arg(long)]
    device: Option<String>,
    /// Where the trainings run (`--executor slurm --parallel N` for a cluster).
    #[command(flatten)]
    execution: ExecutorArgs,
}

/// Retrains and prints the table; `retrain/summary.json` holds it as JSON.
pub fn run_retrain(args: RetrainArgs) -> Result<(), Box<dyn Error>> {
    let run = RunDir::read(&args.dir)?;
    let config: serde_json::Value = run.config()?;
    // The closed loop records its `setup`; a search over a space that our trainer trained, its
    // `training`.
    let recorded = [&config["setup"], &config["training"]]
        .into_iter()
        .find(|v| v.is_object())
        .cloned()
        .unwrap_or_default();
    let mut setup: EvalSetup = serde_json::from_value(recorded).map_err(|e| {
        format!(
            "{}: no training setup in config.json ({e})",
            args.dir.display()
        )
    })?;
    let mut training = match &args.recipe {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        None => TrainConfig::nas_bench_201(args.epochs),
    };
    training.epochs = args.epochs;
    setup.training = training;
    if let Some(path) = args.data {
        setup.data = DataSpec { path, ..setup.data };
    }
    if let Some(device) = args.device {
        setup.device = device;
    }
    let plan = RetrainPlan {
        top: args.top,
        seeds: args.seeds,
        setup,
    };
    let mut executor = build(
        args.execution.executor,
        args.execution.parallel,
        args.execution.slurm()?.as_ref(),
        &args.dir,
        Arc::new(run_in_process),
    )?;
    let summary = retrain(&run, &plan, executor.as_mut())?;
    print!("{}", summary.render());
    Ok(())
}

/// The arguments of `nas export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run directory, retrained (`nas retrain`).
    dir: PathBuf,
    /// `best` (the best final validation accuracy) or an iteration.
    #[arg(long, default_value = "best")]
    arch: String,
    /// `pytorch` (model.py), `safetensors` (weights) or `all`.
    #[arg(long, default_value = "all")]
    format: Format,
    /// Where to write the files.
    #[arg(long)]
    out: PathBuf,
}

/// Copies a retrained network (its best seed) into `--out`; prints the files written.
pub fn run_export(args: ExportArgs) -> Result<(), Box<dyn Error>> {
    let summary = RetrainSummary::read(&args.dir)?;
    let chosen = match args.arch.as_str() {
        "best" => summary.best(),
        id => {
            let iteration: usize = id
                .parse()
                .map_err(|_| format!("--arch {id}: best or an iteration"))?;
            summary
                .architectures
                .iter()
                .find(|a| a.iteration == iteration)
        }
    }
    .ok_or_else(|| format!("--arch {}: no such retrained architecture", args.arch))?;
    let seed = chosen
        .runs
        .iter()
        .filter(|r| r.export.is_some())
        .max_by(|a, b| {
            a.val_acc
                .unwrap_or(0.0)
                .total_cmp(&b.val_acc.unwrap_or(0.0))
        })
        .ok_or("no training of it finished")?;
    let from = seed.export.clone().unwrap_or_default();
    std::fs::create_dir_all(&args.out)?;
    let names: &[&str] = match args.format {
        Format::Pytorch => &[MODULE_FILE, ARCH_FILE],
        Format::Safetensors => &[WEIGHTS_FILE, ARCH_FILE],
        Format::All => &[MODULE_FILE, WEIGHTS_FILE, ARCH_FILE],
    };
    for name in names {
        let target = args.out.join(name);
        std::fs::copy(from.join(name), &target)
            .map_err(|e| format!("{}: {e}", from.join(name).display()))?;
        println!("{}", target.display());
    }
    Ok(())
}
