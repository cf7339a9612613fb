//! The `nas` binary: `nas report` and `nas summary` on a run directory, and clear errors.

use std::path::{Path, PathBuf};

mod common;

use common::{nas, text, TempDir};
use nas_rs::search_loop::run::{EvaluationRecord, Outcome, OutcomeStatus, Provenance, RunDir};

fn record(iteration: usize, outcome: Outcome) -> EvaluationRecord {
    EvaluationRecord {
        iteration,
        architecture: None,
        canonical: Some(format!("architecture {iteration}")),
        hash: None,
        suggestion: None,
        generator: None,
        outcome,
        report: None,
        metrics: None,
        cached: false,
        chain: 0,
        parent: None,
    }
}

/// A run of two evaluations: iteration 0 trained, iteration 1 failed to parse.
fn two_evaluations(dir: &Path) {
    let provenance = Provenance {
        version: "0.1.0".into(),
        git_revision: None,
        threads: 1,
        device: "cpu".into(),
        models: Vec::new(),
        command_line: Vec::new(),
        time: 0.0,
    };
    let config = serde_json::json!({ "task": "CIFAR-10", "iterations": 1 });
    let mut run = RunDir::create(dir, &config, &provenance).unwrap();
    let trained = Outcome {
        status: OutcomeStatus::Ok,
        val_acc: Some(0.42),
        test_acc: Some(0.4),
        params: Some(12_345),
        flops: None,
        message: None,
        seconds: 3.0,
    };
    run.save_evaluation(&record(0, trained)).unwrap();
    run.save_evaluation(&record(
        1,
        Outcome::failure(OutcomeStatus::Parse, "line 1: no"),
    ))
    .unwrap();
}

#[test]
fn report_writes_the_report_and_prints_its_path() {
    let tmp = TempDir::new("report");
    two_evaluations(tmp.path());
    let dir = tmp.path().to_str().unwrap();
    let output = nas(&["report", dir]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed = PathBuf::from(text(&output.stdout).trim());
    assert_eq!(printed, tmp.path().join("report.md"));
    let report = std::fs::read_to_string(&printed).unwrap();
    assert!(report.contains("| best iteration | 0 |"), "{report}");
    assert!(report.contains("| failures | 1: parse 1 |"), "{report}");
    for plot in ["best_so_far", "accuracy", "outcomes", "accuracy_vs_params"] {
        assert!(
            tmp.path().join(format!("plots/{plot}.svg")).is_file(),
            "{plot}"
        );
    }
}

#[test]
fn summary_prints_the_numbers_as_json() {
    let tmp = TempDir::new("summary");
    two_evaluations(tmp.path());
    let output = nas(&["summary", tmp.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["finished_evaluations"], 2);
    assert_eq!(summary["valid"], 1);
    assert_eq!(summary["failures"]["parse"], 1);
    assert_eq!(summary["best_iteration"], 0);
    assert_eq!(summary["best_val_acc"], 0.42);
    assert_eq!(summary["stop_reason"], "unfinished");
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    for command in ["report", "summary"] {
        let output = nas(&[command, "/nonexistent/run"]);
        assert!(!output.status.success());
        let stderr = text(&output.stderr);
        assert!(
            stderr.starts_with("error: run directory /nonexistent/run:")
                && stderr.contains("is not a run directory"),
            "{stderr}"
        );
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn a_subcommand_is_required() {
    let output = nas(&[]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("report"));
}

#[test]
fn grammar_prints_the_language_and_the_generation_grammar() {
    let output = nas(&["grammar"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let language = text(&output.stdout);
    assert!(
        language.contains("start:") && language.contains("Conv2d"),
        "{language}"
    );

    let output = nas(&[
        "grammar",
        "--generation",
        "--input",
        "1x28x28",
        "--classes",
        "7",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let generation = text(&output.stdout);
    assert!(generation.contains("LazyLinear") && generation.contains('7'));
    assert_ne!(generation, language);

    let output = nas(&["grammar", "--generation", "--input", "32x32"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("expected CxHxW"));
    let output = nas(&["grammar", "--generation", "--input", "3x0x32"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("no generation grammar"));
}
