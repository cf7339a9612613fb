//! Final training: a run's best architectures retrained with a full recipe over several seeds,
//! to answer what the one-epoch proxy leaves open: does its ranking hold after full training?
//!
//! ```text
//! RUN_DIR/retrain/summary.json                      the table below, as JSON
//! RUN_DIR/retrain/000012/seed0/model.safetensors    weights (PyTorch names), model.py, architecture.arch
//! RUN_DIR/tasks/r000012s0.json                      the training jobs (run by any executor)
//! ```
//!
//! The K best distinct architectures (by validation accuracy of the search, one per
//! architecture hash) each train once per seed as [`Job::Train`] jobs with an export directory,
//! through an [`Executor`] (locally, or as Slurm jobs). The summary gives validation and test
//! accuracy as mean and sample standard deviation over seeds, parameters, FLOPs and wall time, and
//! the Spearman rank correlation between proxy and final validation accuracy.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use trainer::train::Status;

use crate::executor::Executor;
use crate::run::{EvaluationRecord, RunDir};
use crate::worker::{task_error, EvalSetup, EvalTask, Job, JobResult};
use crate::SearchError;

/// The retraining directory inside a run directory.
pub const RETRAIN: &str = "retrain";

/// What to retrain and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainPlan {
    /// How many of the best distinct architectures.
    pub top: usize,
    /// Seeds per architecture (0..seeds, added to the recipe's seed).
    pub seeds: u64,
    /// The data, recipe and device (the run's data by default).
    pub setup: EvalSetup,
}

/// One training of one architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRun {
    /// The recipe's seed.
    pub seed: u64,
    /// `ok` or the failure.
    pub status: String,
    /// Validation accuracy.
    pub val_acc: Option<f64>,
    /// Test accuracy.
    pub test_acc: Option<f64>,
    /// Seconds of training.
    pub seconds: f64,
    /// Where the trained network was written.
    pub export: Option<PathBuf>,
}

/// Mean and sample standard deviation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub std: f64,
}

impl MeanStd {
    /// Of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Some(MeanStd {
            mean,
            std: var.sqrt(),
        })
    }
}

/// One retrained architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrained {
    /// Its iteration in the run.
    pub iteration: usize,
    /// Its canonical text.
    pub architecture: String,
    /// The search's (proxy) validation accuracy.
    pub proxy_val_acc: f64,
    /// Parameters.
    pub params: Option<u64>,
    /// Multiply-accumulates per image.
    pub flops: Option<u64>,
    /// Validation accuracy over the seeds that trained.
    pub val: Option<MeanStd>,
    /// Test accuracy over the seeds that trained.
    pub test: Option<MeanStd>,
    /// Wall time of all its trainings.
    pub seconds: f64,
    /// Every training.
    pub runs: Vec<SeedRun>,
}

/// `retrain/summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainSummary {
    /// The plan it followed.
    pub plan: RetrainPlan,
    /// The architectures, best proxy first.
    pub architectures: Vec<Retrained>,
    /// Spearman's rank correlation between proxy and final mean validation accuracy (`None`
    /// with fewer than two retrained architectures).
    pub spearman: Option<f64>,
}

impl RetrainSummary {
    /// Reads `retrain/summary.json` of a run.
    pub fn read(run_dir: &Path) -> Result<Self, SearchError> {
        let path = run_dir.join(RETRAIN).join("summary.json");
        let text = std::fs::read_to_string(&path).map_err(|e| crate::run::error(&path, e))?;
        serde_json::from_str(&text).map_err(|e| crate::run::error(&path, e))
    }

    /// The architecture with the best final mean validation accuracy.
    pub fn best(&self) -> Option<&Retrained> {
        self.architectures
            .iter()
            .filter(|a| a.val.is_some())
            .max_by(|a, b| {
                let (x, y) = (a.val.map_or(0.0, |v| v.mean), b.val.map_or(0.0, |v| v.mean));
                x.total_cmp(&y).then(b.iteration.cmp(&a.iteration))
            })
    }

    /// A plain-text table: one row per architecture, and the rank correlation.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:>9} {:>9} {:>17} {:>17} {:>10} {:>12} {:>8}\n",
            "iteration", "proxy", "val", "test", "params", "FLOPs", "seconds"
        );
        let cell =
            |m: Option<MeanStd>| m.map_or("-".into(), |m| format!("{:.4} +- {:.4}", m.mean, m.std));
        for a in &self.architectures {
            let _ = writeln!(
                out,
                "{:>9} {:>9.4} {:>17} {:>17} {:>10} {:>12} {:>8.1}",
                a.iteration,
                a.proxy_val_acc,
                cell(a.val),
                cell(a.test),
                a.params.map_or("-".into(), |p| p.to_string()),
                a.flops.map_or("-".into(), |f| f.to_string()),
                a.seconds
            );
        }
        let _ = writeln!(
            out,
            "Spearman rank correlation, proxy vs final validation accuracy: {}",
            self.spearman
                .map_or("- (fewer than two architectures)".into(), |r| format!(
                    "{r:.3}"
                ))
        );
        out
    }
}

/// The `top` best distinct architectures of the records (highest validation accuracy first;
/// one per architecture hash; the earliest among ties).
pub fn best_distinct(records: &[EvaluationRecord], top: usize) -> Vec<&EvaluationRecord> {
    let mut scored: Vec<(&EvaluationRecord, f64)> = records
        .iter()
        .filter(|r| r.canonical.is_some())
        .filter_map(|r| r.outcome.score().map(|s| (r, s)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.iteration.cmp(&b.0.iteration)));
    let mut seen = BTreeSet::new();
    scored
        .into_iter()
        .map(|(r, _)| r)
        .filter(|r| seen.insert(r.hash.clone().or_else(|| r.canonical.clone())))
        .take(top)
        .collect()
}

/// Retrains the run's best architectures as planned, through `executor`, and writes
/// `retrain/summary.json`.
pub fn retrain(
    run: &RunDir,
    plan: &RetrainPlan,
    executor: &mut dyn Executor,
) -> Result<RetrainSummary, SearchError> {
    let records = run.evaluations()?;
    let chosen = best_distinct(&records, plan.top);
    let mut pending: Vec<(String, usize, u64, Job)> = Vec::new();
    for record in &chosen {
        for k in 0..plan.seeds {
            let mut setup = plan.setup.clone();
            setup.training.seed = plan.setup.training.seed.wrapping_add(k);
            let export = run
                .path()
                .join(RETRAIN)
                .join(format!("{:06}", record.iteration))
                .join(format!("seed{}", setup.training.seed));
            let task = EvalTask {
                architecture: record.canonical.clone().unwrap_or_default(),
                setup,
                export: Some(
                    std::path::absolute(&export).map_err(|e| crate::run::error(&export, e))?,
                ),
                code: None,
            };
            let id = format!("r{:06}s{}", record.iteration, k);
            pending.push((id, record.iteration, k, Job::Train(task)));
        }
    }
    let mut results: BTreeMap<(usize, u64), SeedRun> = BTreeMap::new();
    let mut in_flight: BTreeMap<String, (usize, u64, Option<PathBuf>)> = BTreeMap::new();
    let mut queue = pending.into_iter();
    loop {
        while in_flight.len() < executor.slots() {
            let Some((id, iteration, k, job)) = queue.next() else {
                break;
            };
            job.write(run.path(), &id)
                .map_err(|e| task_error(run.path(), e))?;
            executor.submit(&id, &job)?;
            let export = match &job {
                Job::Train(task) => task.export.clone(),
                _ => None,
            };
            in_flight.insert(id, (iteration, k, export));
        }
        if in_flight.is_empty() {
            break;
        }
        for finished in executor.wait(Duration::from_secs(1))? {
            let Some((iteration, k, export)) = in_flight.remove(&finished.id) else {
                continue;
            };
            let seed = plan.setup.training.seed.wrapping_add(k);
            let run = match finished.result {
                Ok(JobResult::Train(result)) => {
                    let ok = result.report.status == Status::Ok;
                    SeedRun {
                        seed,
                        status: crate::run::OutcomeStatus::from(result.report.status)
                            .name()
                            .into(),
                        val_acc: result.report.val_acc,
                        test_acc: result.report.test_acc,
                        seconds: result.report.seconds,
                        export: export.filter(|_| ok),
                    }
                }
                Ok(_) => failed_run(seed, "not a training's result"),
                Err(failure) => failed_run(seed, failure.status.name()),
            };
            results.insert((iteration, k), run);
        }
    }
    let architectures: Vec<Retrained> = chosen
        .iter()
        .map(|record| {
            let runs: Vec<SeedRun> = results
                .range((record.iteration, 0)..=(record.iteration, u64::MAX))
                .map(|(_, r)| r.clone())
                .collect();
            let values = |f: fn(&SeedRun) -> Option<f64>| -> Vec<f64> {
                runs.iter().filter_map(f).collect()
            };
            Retrained {
                iteration: record.iteration,
                architecture: record.canonical.clone().unwrap_or_default(),
                proxy_val_acc: record.outcome.score().unwrap_or_default(),
                params: record.outcome.params,
                flops: record.outcome.flops,
                val: MeanStd::of(&values(|r| r.val_acc)),
                test: MeanStd::of(&values(|r| r.test_acc)),
                seconds: runs.iter().map(|r| r.seconds).sum(),
                runs,
            }
        })
        .collect();
    let pairs: Vec<(f64, f64)> = architectures
        .iter()
        .filter_map(|a| Some((a.proxy_val_acc, a.val?.mean)))
        .collect();
    let summary = RetrainSummary {
        plan: plan.clone(),
        spearman: spearman(&pairs),
        architectures,
    };
    run.write_json(&format!("{RETRAIN}/summary.json"), &summary)?;
    Ok(summary)
}

fn failed_run(seed: u64, status: &str) -> SeedRun {
    SeedRun {
        seed,
        status: status.into(),
        val_acc: None,
        test_acc: None,
        seconds: 0.0,
        export: None,
    }
}

/// Spearman's rank correlation (ties get their average rank); `None` below two pairs or when a
/// side is constant.
pub fn spearman(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 2 {
        return None;
    }
    let ranks = |values: Vec<f64>| -> Vec<f64> {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        let mut ranks = vec![0.0; values.len()];
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
                j += 1;
            }
            for &k in &order[i..=j] {
                ranks[k] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        ranks
    };
    let x = ranks(pairs.iter().map(|p| p.0).collect());
    let y = ranks(pairs.iter().map(|p| p.1).collect());
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mx, my) = (mean(&x), mean(&y));
    let cov: f64 = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    (vx > 0.0 && vy > 0.0).then(|| cov / (vx * vy).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_follows_the_ranks() {
        assert_eq!(
            spearman(&[(1.0, 10.0), (2.0, 20.0), (3.0, 30.0)]),
            Some(1.0)
        );
        assert_eq!(
            spearman(&[(1.0, 30.0), (2.0, 20.0), (3.0, 10.0)]),
            Some(-1.0)
        );
        let r = spearman(&[(1.0, 1.0), (2.0, 3.0), (3.0, 2.0), (4.0, 4.0)]).unwrap();
        assert!((r - 0.8).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&[(1.0, 1.0)]), None);
        assert_eq!(spearman(&[(1.0, 2.0), (2.0, 2.0)]), None);
    }
}
