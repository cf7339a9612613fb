//! External evaluators: a user's command per candidate, its report read from its last output
//! line, its failures recorded; a search over a user's TOML space driven by such a command.

use std::time::Instant;

use ncode::NCode;
use search_loop::parallel::{
    candidate_config, load_space, load_space_file, ExecutorKind, SpaceSearch,
};
use search_loop::run::{OutcomeStatus, RunDir};
use search_loop::worker::CommandJob;

const SPACE: &str = r#"
name = "toy-cnn"

[[dimensions]]
name = "depth"
choices = [1, 2]

[[dimensions]]
name = "width"
choices = [16, 32, 64]

[[dimensions]]
name = "second_kernel"
choices = [3, 5]
active_when = { controller = 0, any_of = [1] }

[[dimensions]]
name = "activation"
choices = ["relu", "gelu"]
"#;

fn job(command: &str, timeout: Option<f64>) -> CommandJob {
    CommandJob {
        command: command.into(),
        config: serde_json::json!({"depth": 2, "name": "it's"}),
        code: NCode::new(vec![1, 0]),
        timeout_seconds: timeout,
    }
}

#[test]
fn the_last_output_line_is_the_report() {
    // The configuration reaches the command both as a file and inline.
    let command = r#"echo "training..."; test "$(cat {config_json})" = {config} || exit 9
        echo "{\"score\": $(wc -c < {config_json}), \"metrics\": {\"epochs\": 1}}"; echo"#;
    let result = job(command, None).run().unwrap();
    assert_eq!(result.status, OutcomeStatus::Ok, "{:?}", result.message);
    let expected = serde_json::to_string(&serde_json::json!({"depth": 2, "name": "it's"}))
        .unwrap()
        .len();
    assert_eq!(result.score, Some(expected as f64));
    assert_eq!(result.metrics, serde_json::json!({"epochs": 1}));
}

#[test]
fn failures_are_results_with_their_kind() {
    let crashed = job("echo 'out of patience' >&2; exit 3", None)
        .run()
        .unwrap();
    assert_eq!(crashed.status, OutcomeStatus::Crash);
    let message = crashed.message.unwrap();
    assert!(
        message.contains("out of patience") && message.contains('3'),
        "{message}"
    );

    let unreadable = job("echo 'accuracy: 0.9'", None).run().unwrap();
    assert_eq!(unreadable.status, OutcomeStatus::Parse);
    assert!(unreadable.message.unwrap().contains("accuracy: 0.9"));

    let started = Instant::now();
    // The shell's child is killed with it (its process group).
    let slow = job("sleep 30 & wait", Some(0.5)).run().unwrap();
    assert_eq!(slow.status, OutcomeStatus::Timeout);
    assert!(started.elapsed().as_secs_f64() < 10.0);
}

#[test]
fn a_toml_space_gives_each_candidate_its_active_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("space.toml");
    std::fs::write(&path, SPACE).unwrap();
    let space = load_space(path.to_str().unwrap()).unwrap();
    assert_eq!(space.name(), "toy-cnn");
    let deep = space.parse("1211").unwrap();
    assert_eq!(
        candidate_config(&space, &deep),
        serde_json::json!({"depth": 2, "width": 64, "second_kernel": 5, "activation": "gelu",
                           "ncode": "1211"})
    );
    let shallow = space.parse("0101").unwrap();
    let config = candidate_config(&space, &shallow);
    assert!(config.get("second_kernel").is_none(), "{config}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\ndimensions = 3\n").unwrap();
    let err = load_space(bad.to_str().unwrap()).unwrap_err().to_string();
    assert!(err.contains("not a search space"), "{err}");
}

#[test]
fn a_search_over_a_users_space_with_a_users_evaluator() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("space.toml");
    std::fs::write(&path, SPACE).unwrap();
    // Score: the width, halved when the activation is gelu; a crash for depth 1 and width 16.
    let evaluator = r#"c=$(cat {config_json}); w=$(echo "$c" | sed 's/.*"width":\([0-9]*\).*/\1/')
        case "$c" in *'"depth":1'*'"width":16'*) exit 1;; esac
        case "$c" in *gelu*) w=$((w / 2));; esac
        echo "{\"score\": $w}""#;
    let (space, templates) = load_space_file(path.to_str().unwrap()).unwrap();
    let search = SpaceSearch {
        space,
        templates,
        strategy: "random".into(),
        seed: 0,
        budget: 18,
        evaluator: Some(evaluator.into()),
        training: None,
        timeout_seconds: Some(30.0),
        parallel: 3,
        executor: ExecutorKind::Local,
        slurm: None,
        cache: None,
    };
    let run_dir = dir.path().join("run");
    let history = search.run(&run_dir, None, &mut |_| {}).unwrap();
    // 18 is the whole space (2 * 3 * 2 deep + 3 * 2 shallow).
    assert_eq!(history.len(), 18);
    let records = RunDir::read(&run_dir).unwrap().evaluations().unwrap();
    let space = &search.space;
    for record in &records {
        let code = space
            .parse(record.architecture.as_deref().unwrap())
            .unwrap();
        let config = candidate_config(space, &code);
        let width = config["width"].as_f64().unwrap();
        if config["depth"] == 1 && width == 16.0 {
            assert_eq!(record.outcome.status, OutcomeStatus::Crash);
            continue;
        }
        let halved = config["activation"] == "gelu";
        let expected = if halved { width / 2.0 } else { width };
        assert_eq!(record.outcome.score(), Some(expected), "{config}");
    }
    assert_eq!(history.best().and_then(|o| o.score), Some(64.0));
}

#[test]
fn a_shared_cache_spares_a_second_run_every_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("space.toml");
    std::fs::write(&path, SPACE).unwrap();
    let counter = dir.path().join("calls");
    // Every call leaves a line; the score is the configuration's size.
    let evaluator = format!(
        "echo call >> '{}'; echo \"{{\\\"score\\\": $(wc -c < {{config_json}})}}\"",
        counter.display()
    );
    let (space, templates) = load_space_file(path.to_str().unwrap()).unwrap();
    let search = SpaceSearch {
        space,
        templates,
        strategy: "rea".into(),
        seed: 4,
        budget: 8,
        evaluator: Some(evaluator),
        training: None,
        timeout_seconds: None,
        parallel: 2,
        executor: ExecutorKind::Local,
        slurm: None,
        cache: Some(dir.path().join("cache")),
    };
    let calls = || std::fs::read_to_string(&counter).unwrap().lines().count();
    let first = search
        .run(&dir.path().join("a"), None, &mut |_| {})
        .unwrap();
    assert_eq!(calls(), 8);
    // The same search again, in a new run directory: every candidate comes from the cache.
    let second = search
        .run(&dir.path().join("b"), None, &mut |_| {})
        .unwrap();
    assert_eq!(calls(), 8, "nothing evaluated twice");
    let scores = |h: &search_loop::History| {
        let mut s: Vec<String> = h
            .observations()
            .iter()
            .map(|o| format!("{:?}{:?}", o.code, o.score))
            .collect();
        s.sort();
        s
    };
    assert_eq!(scores(&first), scores(&second));
    let records = RunDir::read(&dir.path().join("b"))
        .unwrap()
        .evaluations()
        .unwrap();
    assert!(records.iter().all(|r| r.cached), "{records:?}");
    // A different evaluator is a different key.
    let other = SpaceSearch {
        evaluator: search.evaluator.as_ref().map(|e| format!("{e} # v2")),
        budget: 2,
        ..search.clone()
    };
    other.run(&dir.path().join("c"), None, &mut |_| {}).unwrap();
    assert_eq!(calls(), 10);
}

/// A space file's templates: the evaluator gets the `config` template's JSON with the rendered
/// `architecture`; a candidate whose template cannot render (it names a dimension that is
/// inactive for it) is a recorded failure, and the search goes on.
#[test]
fn a_space_files_templates_shape_what_the_evaluator_gets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("space.toml");
    let templates = r#"
config = '{"channels": {{ width }}, "kernel": {{ second_kernel }}, "act": "{{ activation }}"}'
architecture = "Sequential(LazyConv2d({{ width }}, {{ second_kernel }}), ReLU(), AdaptiveAvgPool2d(1), Flatten(), LazyLinear(10))"
"#;
    // Top-level keys go before the first `[[dimensions]]` table (after it, TOML puts them in
    // that table).
    std::fs::write(&path, format!("{templates}{SPACE}")).unwrap();
    let (space, templates) = load_space_file(path.to_str().unwrap()).unwrap();
    assert!(templates.architecture.is_some() && templates.config.is_some());
    let evaluator = r#"c=$(cat {config_json}); case "$c" in *'LazyConv2d('*) ;; *) exit 3;; esac
        echo "{\"score\": $(echo "$c" | sed 's/.*"channels":\([0-9]*\).*/\1/')}""#;
    let search = SpaceSearch {
        space,
        templates,
        strategy: "random".into(),
        seed: 1,
        budget: 18,
        evaluator: Some(evaluator.into()),
        training: None,
        timeout_seconds: Some(30.0),
        parallel: 2,
        executor: ExecutorKind::Local,
        slurm: None,
        cache: None,
    };
    let run_dir = dir.path().join("run");
    search.run(&run_dir, None, &mut |_| {}).unwrap();
    let records = RunDir::read(&run_dir).unwrap().evaluations().unwrap();
    assert_eq!(records.len(), 18);
    for record in &records {
        let code = search
            .space
            .parse(record.architecture.as_deref().unwrap())
            .unwrap();
        let config = candidate_config(&search.space, &code);
        if config["depth"] == 1 {
            assert_eq!(record.outcome.status, OutcomeStatus::Crash);
            let message = record.outcome.message.as_deref().unwrap();
            assert!(message.contains("config template"), "{message}");
        } else {
            assert_eq!(
                record.outcome.score(),
                config["width"].as_f64(),
                "{record:?}"
            );
        }
    }
    // A typo in a template is found when the file is loaded.
    std::fs::write(&path, format!("architecture = \"{{% if %}}\"\n{SPACE}")).unwrap();
    let err = load_space_file(path.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("architecture template"), "{err}");
    std::fs::write(&path, format!("architecure = \"x\"\n{SPACE}")).unwrap();
    let err = load_space_file(path.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `architecure`"), "{err}");
}
