//! The `nas` binary: `nas report` and `nas summary` on a run directory, and clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nas_rs::search_loop::run::{EvaluationRecord, Outcome, OutcomeStatus, Provenance, RunDir};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("nas-rs-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

fn nas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nas"))
        .args(args)
        .output()
        .expect("the nas binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn report_writes_the_report_and_prints_its_path() {
    let tmp = TempDir::new("report");
    two_evaluations(&tmp.0);
    let dir = tmp.0.to_str().unwrap();
    let output = nas(&["report", dir]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed = PathBuf::from(text(&output.stdout).trim());
    assert_eq!(printed, tmp.0.join("report.md"));
    let report = std::fs::read_to_string(&printed).unwrap();
    assert!(report.contains("| best iteration | 0 |"), "{report}");
    assert!(report.contains("| failures | 1: parse 1 |"), "{report}");
    for plot in ["best_so_far", "accuracy", "outcomes", "accuracy_vs_params"] {
        assert!(tmp.0.join(format!("plots/{plot}.svg")).is_file(), "{plot}");
    }
}

#[test]
fn summary_prints_the_numbers_as_json() {
    let tmp = TempDir::new("summary");
    two_evaluations(&tmp.0);
    let output = nas(&["summary", tmp.0.to_str().unwrap()]);
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
