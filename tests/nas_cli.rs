//! The `nas` binary: `nas report` and `nas summary` on a run directory, and clear errors.

use std::path::{Path, PathBuf};

mod common;

use common::{nas, text, write_cifar10, TempDir};
use nas_rs::search_loop::run::{EvaluationRecord, Outcome, OutcomeStatus, Provenance, RunDir};

fn record(iteration: usize, outcome: Outcome) -> EvaluationRecord {
    EvaluationRecord {
        canonical: Some(format!("architecture {iteration}")),
        ..EvaluationRecord::new(iteration, outcome)
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

/// `nas search --space FILE` without an evaluator: the file's `architecture` template turns each
/// candidate into a network that our trainer trains on `--data`; a candidate the template
/// cannot render is a recorded failure.
#[test]
fn search_trains_the_architectures_a_space_file_renders() {
    let tmp = TempDir::new("space-template");
    let data = write_cifar10(&tmp.path().join("data"));
    let space = tmp.path().join("space.toml");
    std::fs::write(
        &space,
        r#"name = "tiny-cnn"
architecture = """
Sequential(
{% for _ in range(depth) %}
    LazyConv2d({{ width }}, 3, padding=1), ReLU(),
{% endfor %}
{% if depth == 2 %}
    MaxPool2d({{ pool }}),
{% endif %}
    AdaptiveAvgPool2d(1), Flatten(), LazyLinear(10))
"""

[[dimensions]]
name = "depth"
choices = [1, 2]

[[dimensions]]
name = "width"
choices = [4, 8]

[[dimensions]]
name = "pool"
choices = [2]
active_when = { controller = 0, any_of = [0] }
"#,
    )
    .unwrap();
    let run = tmp.path().join("run");
    let output = nas(&[
        "search",
        "--space",
        space.to_str().unwrap(),
        "--strategy",
        "random",
        "--budget",
        "4",
        "--data",
        data.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let records = RunDir::read(&run).unwrap().evaluations().unwrap();
    assert_eq!(records.len(), 4);
    for r in &records {
        let depth_two = r
            .architecture
            .as_deref()
            .is_some_and(|c| c.starts_with('1'));
        if depth_two {
            // `pool` is active only at depth 1: the depth-2 branch cannot render.
            assert_eq!(r.outcome.status, OutcomeStatus::Crash, "{r:?}");
            assert!(r.outcome.message.as_deref().unwrap().contains("undefined"));
        } else {
            assert_eq!(r.outcome.status, OutcomeStatus::Ok, "{r:?}");
            assert!(r.report.as_ref().is_some_and(|report| report.steps > 0));
        }
    }
    // The rendered networks are what a retraining takes.
    let output = nas(&[
        "retrain",
        run.to_str().unwrap(),
        "--top",
        "2",
        "--epochs",
        "1",
        "--seeds",
        "1",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let summary = std::fs::read_to_string(run.join("retrain/summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    let retrained = summary["architectures"].as_array().unwrap();
    assert_eq!(retrained.len(), 2);
    for a in retrained {
        assert!(
            a["architecture"].as_str().unwrap().contains("LazyConv2d"),
            "{a}"
        );
        assert_eq!(a["runs"][0]["status"], "ok", "{a}");
    }
    // Each trained candidate's job is a training of its rendered network.
    for r in records.iter().filter(|r| r.report.is_some()) {
        let file = run.join(format!("tasks/{:06}.json", r.iteration));
        let job = std::fs::read_to_string(file).unwrap();
        assert!(
            job.contains("\"kind\": \"train\"") && job.contains("LazyConv2d"),
            "{job}"
        );
    }
}
