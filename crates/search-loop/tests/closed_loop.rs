//! The closed loop end to end: real training on a small learnable image task, a real (tiny,
//! random-weight) GGUF model whose noise must become recorded failures, scripted replies for the
//! paths a random model cannot reach (dedupe, budgets, memory), and resume after a kill.

use std::path::{Path, PathBuf};

use arch_space::lang::{parse, Budget};
use candle_core::Device;
use llm_local::runtime::gguf::Architecture;
use llm_local::runtime::test_gguf::{write_tiny_model, TinyModelOptions};
use llm_local::runtime::GgufModel;
use llm_local::scripted::replies_in_order;
use llm_local::{Enforcement, FinishReason, LanguageModel};
use search_loop::closed_loop::{
    generator_messages, read_diagnosis, run_closed_loop, Evaluator, LoopConfig, LoopPrompts, Roles,
    TrainerEvaluator,
};
use search_loop::run::{
    request_prompts, Event, OutcomeStatus, Provenance, RunDir, EVENTS, PROMPTS,
};
use trainer::data::synthetic::brightest_quadrant;
use trainer::train::TrainConfig;

const START: &str =
    "Sequential(Conv2d(3, 8, 3, padding=1), ReLU(), AvgPool2d(4), Flatten(), Linear(32, 4))";
const WIDER: &str = "Sequential(Conv2d(3, 16, 3, padding=1), BatchNorm2d(16), ReLU(), MaxPool2d(2), LazyConv2d(16, 3, padding=1), ReLU(), AdaptiveAvgPool2d(1), Flatten(), LazyLinear(4))";

fn evaluator() -> TrainerEvaluator {
    let config = TrainConfig {
        epochs: 3,
        batch_size: 32,
        lr: 0.05,
        augment: false,
        ..TrainConfig::proxy()
    };
    TrainerEvaluator::new(
        brightest_quadrant(256, 1),
        brightest_quadrant(64, 2),
        None,
        config,
        Device::Cpu,
    )
}

fn config(iterations: usize) -> LoopConfig {
    let mut config = LoopConfig::new("Brightest-quadrant classification", iterations);
    config.start = Some(START.into());
    // Free text, as in the paper: a random model's noise must become recorded failures (under
    // the grammar it writes trainable networks, see `constrained_roles_always_answer_in_form`).
    config.constrained = false;
    config.generator_sampling.max_tokens = 24;
    config.improver_sampling.max_tokens = 16;
    config
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("closed-loop-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn evaluation_lines(dir: &Path) -> Vec<usize> {
    RunDir::open(dir).unwrap().logged_evaluations().unwrap()
}

#[test]
fn a_random_model_gives_recorded_failures_and_a_killed_run_resumes() {
    let dir = temp_dir("random");
    let model_path = dir.join("tiny.gguf");
    std::fs::create_dir_all(&dir).unwrap();
    let options = TinyModelOptions {
        context_length: 4096,
        ..TinyModelOptions::default()
    };
    write_tiny_model(&model_path, Architecture::Llama, &options).unwrap();
    let mut model = GgufModel::load(&model_path, &Device::Cpu).unwrap();
    let run_dir = dir.join("run");
    let mut run =
        RunDir::create(&run_dir, &config(2), &Provenance::collect("cpu", vec![])).unwrap();
    let roles = Roles {
        generator: &mut model,
        improver: None,
    };
    let mut seen = Vec::new();
    let summary = run_closed_loop(&config(2), &mut run, roles, &mut evaluator(), &mut |p| {
        seen.push((p.iteration, p.finished))
    })
    .unwrap();
    assert_eq!(seen, vec![(0, 1), (1, 2), (2, 3)]);
    assert_eq!(summary.finished_evaluations, 3);
    assert_eq!(summary.best_iteration, Some(0), "{summary:?}");
    assert!(summary.best_val_acc.unwrap() > 0.25, "{summary:?}");
    let records = run.evaluations().unwrap();
    for r in &records[1..] {
        assert_ne!(r.outcome.status, OutcomeStatus::Ok, "noise trained: {r:?}");
        assert_ne!(r.outcome.status, OutcomeStatus::LlmError, "{r:?}");
        assert!(r.outcome.message.is_some());
        let call = r.generator.as_ref().unwrap();
        assert!(run_dir.join(&call.prompt_file).is_file());
    }
    assert_eq!(
        run.diagnoses().unwrap().len(),
        2,
        "iterations 0 and 1 diagnosed"
    );
    assert!(run_dir.join("best.arch").is_file() && run_dir.join("summary.json").is_file());
    drop(run);
    let mut reader = RunDir::read(&run_dir).unwrap();
    let finished = Event::RunFinished {
        time: 0.0,
        reason: "test".into(),
        finished_evaluations: 0,
    };
    assert!(reader.log(&finished).is_err(), "a reader never writes");

    // A kill after the record of iteration 2 was written but before its log line, mid-way
    // through writing another line.
    let log = std::fs::read_to_string(run_dir.join(EVENTS)).unwrap();
    let kept: Vec<&str> = log
        .lines()
        .filter(|l| !(l.contains("\"type\":\"evaluation\"") && l.contains("\"iteration\":2")))
        .collect();
    std::fs::write(
        run_dir.join(EVENTS),
        format!("{}\n{{\"type\":\"llm_ca", kept.join("\n")),
    )
    .unwrap();
    assert_eq!(
        evaluation_lines(&run_dir),
        vec![0, 1, 2],
        "repaired on open"
    );

    let mut model = GgufModel::load(&model_path, &Device::Cpu).unwrap();
    let mut run = RunDir::open(&run_dir).unwrap();
    let resumed = config(4);
    let roles = Roles {
        generator: &mut model,
        improver: None,
    };
    let summary =
        run_closed_loop(&resumed, &mut run, roles, &mut evaluator(), &mut |_| {}).unwrap();
    assert_eq!(summary.finished_evaluations, 5);
    assert_eq!(evaluation_lines(&run_dir), vec![0, 1, 2, 3, 4]);
    let starts = run
        .events()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::RunStarted { .. }))
        .count();
    assert_eq!(starts, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn duplicates_budgets_and_shape_errors_are_outcomes_and_the_memory_carries_them() {
    let dir = temp_dir("script");
    let mut config = config(5);
    config.budget = Budget {
        max_params: Some(5_000),
        max_flops: None,
    };
    let mut generator = replies_in_order(&[
        &format!("Here you go:\n```python\n{WIDER}\n```"),
        // The same network with explicit widths: a duplicate by normalised hash.
        "Sequential(Conv2d(3, 16, 3, padding=1), BatchNorm2d(16), ReLU(), MaxPool2d(2), Conv2d(16, 16, 3, padding=1), ReLU(), AdaptiveAvgPool2d(1), Flatten(), Linear(16, 4))",
        "Sequential(Conv2d(3, 64, 3, padding=1), ReLU(), Conv2d(64, 64, 3, padding=1), AdaptiveAvgPool2d(1), Flatten(), Linear(64, 4))",
        "Sequential(Conv2d(3, 8, 3), BatchNorm2d(10), AdaptiveAvgPool2d(1), Flatten(), Linear(8, 4))",
    ]);
    let mut improver = replies_in_order(&[
        r#"{"problem": "too narrow", "suggestion": "widen to 16 channels"}"#,
        r#"{"problem": "p1", "suggestion": "s1"}"#,
        r#"{"problem": "p2", "suggestion": "s2"}"#,
        "no json at all",
        r#"{"problem": "p4", "suggestion": "s4"}"#,
    ]);
    let mut run = RunDir::create(&dir, &config, &Provenance::collect("cpu", vec![])).unwrap();
    let roles = Roles {
        generator: &mut generator,
        improver: Some(&mut improver),
    };
    let summary = run_closed_loop(&config, &mut run, roles, &mut evaluator(), &mut |_| {}).unwrap();
    let statuses: Vec<_> = run
        .evaluations()
        .unwrap()
        .iter()
        .map(|r| r.outcome.status)
        .collect();
    use OutcomeStatus::*;
    assert_eq!(statuses, vec![Ok, Ok, Duplicate, Shape, Shape, LlmError]);
    let records = run.evaluations().unwrap();
    assert!(records[2]
        .outcome
        .message
        .as_deref()
        .unwrap()
        .contains("iteration 1"));
    assert!(
        records[3]
            .outcome
            .message
            .as_deref()
            .unwrap()
            .contains("5000"),
        "{:?}",
        records[3]
    );
    assert!(records[4]
        .outcome
        .message
        .as_deref()
        .unwrap()
        .contains("running_mean"));
    assert_eq!(records[2].suggestion.as_deref(), Some("s1"));
    assert_eq!(summary.failures.get("duplicate"), Some(&1));

    // The generator saw the best architecture and the latest suggestion.
    assert!(generator.prompts[0].contains("widen to 16 channels"));
    assert!(generator.prompts[1].contains("Best architecture so far (iteration "));
    // The improver's last prompt carries the last triples: suggestion -> result of the next try.
    let last = improver.prompts.last().unwrap();
    assert!(
        last.contains("p1 -> s1 -> duplicate failure: the same architecture as iteration 1"),
        "{last}"
    );
    assert!(last.contains("-> shape failure:"), "{last}");
    let diagnoses = run.diagnoses().unwrap();
    assert!(!diagnoses[&3].parsed && diagnoses[&3].suggestion == "no json at all");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under the generation grammar even a random-weight model writes only architectures that parse
/// and pass the shape check for the task's input, and the improver only diagnosis JSON.
#[test]
fn constrained_roles_always_answer_in_form() {
    let dir = temp_dir("constrained");
    std::fs::create_dir_all(&dir).unwrap();
    let model_path = dir.join("tiny.gguf");
    let options = TinyModelOptions {
        context_length: 8192,
        ..TinyModelOptions::default()
    };
    write_tiny_model(&model_path, Architecture::Llama, &options).unwrap();
    let mut model = GgufModel::load(&model_path, &Device::Cpu).unwrap();
    let input = evaluator().input();
    let config = LoopConfig::new("Brightest-quadrant classification", 1);
    let messages = generator_messages(&config.task_prompt(input), None, None, None);
    for seed in 0..6 {
        let mut sampling = config.generator_sampling_for(&input).unwrap();
        sampling.seed = seed;
        let reply = model.chat(&messages, &sampling, None).unwrap();
        assert_eq!(reply.enforcement, Enforcement::Decoding);
        // The token budget fits the grammar's longest reply: every reply finishes.
        assert_eq!(reply.finish, FinishReason::EndOfText, "{}", reply.text);
        let program = parse(&reply.text).unwrap_or_else(|e| panic!("{e}: {}", reply.text));
        let analysis = program
            .check(&input)
            .unwrap_or_else(|e| panic!("{e}: {}", reply.text));
        assert!(analysis.params > 0);
    }
    let mut sampling = config.improver_sampling_constrained();
    sampling.max_tokens = 400;
    let reply = model.chat(&messages, &sampling, None).unwrap();
    if reply.finish == FinishReason::EndOfText {
        assert!(read_diagnosis(&reply.text, "").parsed, "{}", reply.text);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run stores the templates it uses in `prompts/`, and a resumed run renders with the stored
/// ones (no `--prompts` needed, other templates refused).
#[test]
fn a_run_stores_its_prompt_templates_and_resumes_with_them() {
    let dir = temp_dir("prompts");
    let custom = dir.join("custom");
    std::fs::create_dir_all(&custom).unwrap();
    std::fs::write(
        custom.join("generator_user.j2"),
        "Attempt for {{ task }} after iteration {{ best.iteration }}\n",
    )
    .unwrap();
    let custom = LoopPrompts::from_dir(&custom).unwrap();
    let run_dir = dir.join("run");
    request_prompts(&run_dir, custom.templates()).unwrap();
    let mut run =
        RunDir::create(&run_dir, &config(1), &Provenance::collect("cpu", vec![])).unwrap();
    let mut generator = replies_in_order(&[WIDER, START]);
    let mut improver = replies_in_order(&[r#"{"problem": "p", "suggestion": "s"}"#; 2]);
    let run_to = |run: &mut RunDir,
                  generator: &mut dyn LanguageModel,
                  improver: &mut dyn LanguageModel,
                  last| {
        let roles = Roles {
            generator,
            improver: Some(improver),
        };
        run_closed_loop(&config(last), run, roles, &mut evaluator(), &mut |_| {}).unwrap()
    };
    run_to(&mut run, &mut generator, &mut improver, 1);
    let stored = run_dir.join(PROMPTS);
    let mut files: Vec<String> = std::fs::read_dir(&stored)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "generator_system.j2",
            "generator_user.j2",
            "improver_system.j2",
            "improver_user.j2"
        ]
    );
    assert_eq!(LoopPrompts::from_dir(&stored).unwrap(), custom);
    let user = |prompt: &str| prompt.split("\n---\n").nth(1).unwrap().to_string();
    assert_eq!(
        user(&generator.prompts[0]),
        "Attempt for Brightest-quadrant classification after iteration 0"
    );
    drop(run);

    let err = request_prompts(&run_dir, LoopPrompts::default().templates()).unwrap_err();
    assert!(
        err.to_string().contains("generator_user.j2 differ"),
        "{err}"
    );
    let mut run = RunDir::open(&run_dir).unwrap();
    let summary = run_to(&mut run, &mut generator, &mut improver, 2);
    assert_eq!(summary.finished_evaluations, 3);
    assert!(
        user(&generator.prompts[1]).starts_with("Attempt for Brightest-quadrant classification"),
        "{}",
        generator.prompts[1]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
