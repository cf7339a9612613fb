//! The closed loop's prompt templates: the defaults give the prompts exactly as before they were
//! templates, a directory overrides one template and only it, and bad templates are errors that
//! name their file.

use std::path::PathBuf;

use arch_space::lang::{prompt_card, Budget, InputSpec};
use search_loop::closed_loop::{LoopPrompts, MemoryEntry, TaskPrompt};
use search_loop::run::{
    request_prompts, EvaluationRecord, Outcome, OutcomeStatus, EVENTS, PROMPTS,
};
use search_loop::SearchError;

fn record(iteration: usize, outcome: Outcome, architecture: &str) -> EvaluationRecord {
    EvaluationRecord {
        architecture: Some(architecture.into()),
        ..EvaluationRecord::new(iteration, outcome)
    }
}

fn records() -> (EvaluationRecord, EvaluationRecord) {
    let mut ok = Outcome::scored(OutcomeStatus::Ok, Some(0.4), None, 1.0);
    ok.params = Some(1234);
    let best = record(0, ok, "nn.Sequential(nn.LazyLinear(10))");
    let mut current = record(
        2,
        Outcome::failure(OutcomeStatus::Shape, "bad shape {x}"),
        "nn.Sequential(nn.Conv2d(3, 8, 3))",
    );
    current.report = Some(
        serde_json::from_value(serde_json::json!({
            "status": "ok", "error": null, "val_acc": null, "test_acc": null,
            "loss_curve": [2.3041, 1.5], "params": null, "flops": null,
            "activation_bytes": null, "seconds": 1.0, "images_per_second": null, "steps": 2,
            "peak_rss_bytes": 0
        }))
        .unwrap(),
    );
    (best, current)
}

fn task() -> TaskPrompt<'static> {
    TaskPrompt {
        description: "Image classification on X",
        input: InputSpec {
            channels: 3,
            height: 32,
            width: 32,
            classes: 4,
        },
        budget: Budget {
            max_params: Some(100_000),
            max_flops: Some(5_000_000),
        },
        lazy: true,
    }
}

fn memory() -> Vec<MemoryEntry> {
    vec![
        MemoryEntry {
            iteration: 0,
            problem: "too shallow".into(),
            suggestion: "add a conv".into(),
            result: "val 41%".into(),
        },
        MemoryEntry {
            iteration: 1,
            problem: "p".into(),
            suggestion: "s".into(),
            result: "shape error".into(),
        },
    ]
}

const TASK: &str = "Task: Image classification on X. The network is trained for one epoch and judged by its validation accuracy. It must have at most 100000 parameters. It must take at most 5000000 multiply-accumulates per image.";
const ARCHITECTURES: &str = "\n\nBest architecture so far (iteration 0: validation accuracy 0.4000 (1234 parameters)):\n```python\nnn.Sequential(nn.LazyLinear(10))\n```\n\nLatest architecture (iteration 2: shape failure: bad shape {x}):\n```python\nnn.Sequential(nn.Conv2d(3, 8, 3))\n```";

#[test]
fn the_default_templates_give_the_prompts_exactly() {
    let (best, current) = records();
    let task = task();
    let prompts = LoopPrompts::default();
    let g = prompts
        .generator(&task, Some(&best), Some(&current), Some(" widen it "))
        .unwrap();
    assert_eq!(
        g[0].content,
        format!(
            "You are an expert deep-learning engineer who designs convolutional neural networks.\n{}",
            prompt_card(&task.input)
        )
    );
    assert_eq!(
        g[1].content,
        format!("{TASK}{ARCHITECTURES}\n\nSuggested change: widen it\n\nWrite a new architecture that improves the validation accuracy. Answer with one ```python block only. Use one nn.Sequential of lazy layers (nn.LazyConv2d(out, k, padding=k//2), nn.LazyBatchNorm2d(), nn.LazyLinear(out)) ending with nn.AdaptiveAvgPool2d(1), nn.Flatten() and nn.LazyLinear(4).")
    );
    let i = prompts
        .improver(&task, &memory(), Some(&best), &current)
        .unwrap();
    assert_eq!(
        i[0].content,
        "You review neural-network designs. Diagnose why the latest architecture got its result and suggest ONE concrete change for the next architecture. Answer with JSON only: {\"problem\": \"...\", \"suggestion\": \"...\"}"
    );
    assert_eq!(
        i[1].content,
        format!("{TASK}\n\nRecent diagnoses (problem -> suggested change -> result):\n1. too shallow -> add a conv -> val 41%\n2. p -> s -> shape error{ARCHITECTURES}\nTraining loss went from 2.304 to 1.500.\n\nAnswer with the JSON object only.")
    );
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loop-prompts-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_directory_overrides_the_generators_user_message_only() {
    let dir = temp_dir("override");
    std::fs::write(
        dir.join("generator_user.j2"),
        "{{ task }} in {{ classes }} classes, best {{ best.code }} ({{ best.outcome }});\n\
         {% if latest is not none %}latest iteration {{ latest.iteration }};{% endif %}\n\
         {{ suggestion }}\n",
    )
    .unwrap();
    let custom = LoopPrompts::from_dir(&dir).unwrap();
    let defaults = LoopPrompts::default();
    let (best, current) = records();
    let task = task();
    let g = custom
        .generator(&task, Some(&best), Some(&current), Some("deeper"))
        .unwrap();
    let d = defaults
        .generator(&task, Some(&best), Some(&current), Some("deeper"))
        .unwrap();
    assert_eq!(g[0], d[0], "the system message is the default");
    assert_eq!(
        g[1].content,
        "Image classification on X in 4 classes, best nn.Sequential(nn.LazyLinear(10)) \
         (validation accuracy 0.4000 (1234 parameters));\nlatest iteration 2;deeper"
    );
    let improver = |p: &LoopPrompts| p.improver(&task, &memory(), Some(&best), &current);
    assert_eq!(improver(&custom).unwrap(), improver(&defaults).unwrap());
    assert_eq!(
        custom.templates().differences(defaults.templates()),
        vec!["generator_user"]
    );

    // A variable the generator's templates lack (the improver's `memory`) is a render error.
    std::fs::write(dir.join("generator_user.j2"), "{{ task }}\n{{ memory }}").unwrap();
    let err = LoopPrompts::from_dir(&dir)
        .unwrap()
        .generator(&task, None, None, None)
        .unwrap_err();
    assert!(matches!(err, SearchError::Prompt(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("generator_user.j2, line 2") && text.contains("undefined"),
        "{text}"
    );
    std::fs::write(dir.join("improver_system.j2"), "ok\n{% for %}").unwrap();
    let text = LoopPrompts::from_dir(&dir).unwrap_err().to_string();
    assert!(text.contains("improver_system.j2, line 2"), "{text}");
    std::fs::remove_file(dir.join("improver_system.j2")).unwrap();
    std::fs::write(dir.join("ranker_user.j2"), "").unwrap();
    let text = LoopPrompts::from_dir(&dir).unwrap_err().to_string();
    assert!(
        text.contains("ranker_user.j2")
            && text.contains(
                "generator_system.j2, generator_user.j2, improver_system.j2, improver_user.j2"
            ),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_new_run_stores_the_requested_templates_and_a_resumed_one_refuses_others() {
    let dir = temp_dir("request");
    let custom_dir = dir.join("custom");
    std::fs::create_dir_all(&custom_dir).unwrap();
    std::fs::write(custom_dir.join("improver_user.j2"), "{{ task }}").unwrap();
    let custom = LoopPrompts::from_dir(&custom_dir).unwrap();
    let run = dir.join("run");
    request_prompts(&run, custom.templates()).unwrap();
    let stored = run.join(PROMPTS);
    assert_eq!(
        std::fs::read_to_string(stored.join("improver_user.j2")).unwrap(),
        "{{ task }}"
    );
    assert_eq!(LoopPrompts::from_dir(&stored).unwrap(), custom);
    // Once the run has started, only the same templates may be requested again.
    std::fs::write(run.join(EVENTS), "").unwrap();
    request_prompts(&run, custom.templates()).unwrap();
    let err = request_prompts(&run, LoopPrompts::default().templates())
        .unwrap_err()
        .to_string();
    assert!(err.contains("improver_user.j2 differ"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
