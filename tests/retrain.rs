//! `nas retrain` and `nas export` on a run directory: the best distinct architectures retrained
//! over seeds (real trainings on a tiny CIFAR-10), summarised, and exported for PyTorch.

use std::path::Path;

mod common;

use common::{nas, setup, text, write_cifar10, TempDir};
use nas_rs::search_loop::retrain::RetrainSummary;
use nas_rs::search_loop::run::{EvaluationRecord, Outcome, OutcomeStatus, Provenance, RunDir};
use nas_rs::trainer::train::TrainConfig;

const SMALL: &str = "Sequential(Conv2d(3, 4, 3, padding=1), ReLU(), AdaptiveAvgPool2d(1), \
                     Flatten(), Linear(4, 10))";
const WIDER: &str = "Sequential(Conv2d(3, 8, 3, padding=1), BatchNorm2d(8), ReLU(), \
                     AdaptiveAvgPool2d(1), Flatten(), Linear(8, 10))";

fn record(iteration: usize, canonical: &str, hash: &str, score: Option<f64>) -> EvaluationRecord {
    EvaluationRecord {
        architecture: Some(canonical.into()),
        canonical: Some(canonical.into()),
        hash: Some(hash.into()),
        ..EvaluationRecord::new(
            iteration,
            match score {
                Some(acc) => Outcome::scored(OutcomeStatus::Ok, Some(acc), None, 1.0),
                None => Outcome::failure(OutcomeStatus::Divergence, "nan"),
            },
        )
    }
}

/// A closed-loop-like run: its setup in config.json, four evaluations (one a duplicate of a
/// better one, one failed).
fn search_run(dir: &Path, data: &Path) {
    let setup = setup(data, TrainConfig::proxy());
    let config = serde_json::json!({ "setup": setup });
    let mut run = RunDir::create(dir, &config, &Provenance::collect("cpu", vec![])).unwrap();
    for r in [
        record(0, SMALL, "a", Some(0.2)),
        record(1, WIDER, "b", Some(0.3)),
        record(2, WIDER, "b", Some(0.25)),
        record(3, "Sequential(Linear(3, 10))", "c", None),
    ] {
        run.save_evaluation(&r).unwrap();
    }
}

#[test]
fn the_best_distinct_architectures_are_retrained_over_seeds_and_exported() {
    let tmp = TempDir::new("retrain");
    let data = write_cifar10(&tmp.path().join("data"));
    let run = tmp.path().join("run");
    search_run(&run, &data);
    let dir = run.to_str().unwrap();
    let output = nas(&[
        "retrain", dir, "--top", "3", "--epochs", "1", "--seeds", "2",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("Spearman"),
        "{}",
        text(&output.stdout)
    );

    let summary = RetrainSummary::read(&run).unwrap();
    // The duplicate and the failure are not retrained: two architectures, best proxy first.
    let iterations: Vec<usize> = summary.architectures.iter().map(|a| a.iteration).collect();
    assert_eq!(iterations, [1, 0]);
    for arch in &summary.architectures {
        assert_eq!(arch.runs.len(), 2);
        let seeds: Vec<u64> = arch.runs.iter().map(|r| r.seed).collect();
        assert_eq!(seeds, [0, 1]);
        for seed in &arch.runs {
            assert_eq!(seed.status, "ok", "{seed:?}");
            let export = seed.export.as_ref().unwrap();
            assert!(export.join("model.safetensors").is_file());
            assert!(export.join("model.py").is_file());
        }
        assert!(arch.val.is_some() && arch.test.is_some());
    }
    assert_eq!(summary.plan.setup.training.epochs, 1);
    assert_eq!(
        summary.plan.setup.training.batch_size, 256,
        "NAS-Bench-201's recipe"
    );
    assert!(summary.spearman.is_none_or(|r| r.abs() <= 1.0));

    let out = tmp.path().join("export");
    let output = nas(&[
        "export",
        dir,
        "--arch",
        "best",
        "--format",
        "pytorch",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(out.join("model.py").is_file() && out.join("architecture.arch").is_file());
    assert!(
        !out.join("model.safetensors").exists(),
        "pytorch: model.py only"
    );
    let best = summary.best().unwrap();
    let written = std::fs::read_to_string(out.join("architecture.arch")).unwrap();
    let expected = if best.iteration == 1 {
        "BatchNorm2d"
    } else {
        "Conv2d(3, 4"
    };
    assert!(written.contains(expected), "{written}");

    let missing = nas(&["export", dir, "--arch", "7", "--out", out.to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("no such retrained architecture"));
}
