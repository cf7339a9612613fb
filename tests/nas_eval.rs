//! The evaluation worker (`nas eval`) and the process evaluator: real training in a child
//! process on a small CIFAR-10 binary dataset, the same numbers as in-process training, and every
//! other end of a worker (out of memory, killed at its time limit, crashed, an unreadable task)
//! an outcome or a clear error.

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use common::{nas, quick, setup, text, write_cifar10, TempDir};
use nas_rs::arch_space::lang::{parse, Module};
use nas_rs::search_loop::closed_loop::{
    CachedEvaluator, Evaluator, ProcessEvaluator, TrainerEvaluator, WorkerOptions,
};
use nas_rs::search_loop::run::OutcomeStatus;
use nas_rs::search_loop::worker::{run_task, EvalCache, EvalTask, TaskResult};
use nas_rs::trainer::train::{Status, TrainConfig};

const NAS: &str = env!("CARGO_BIN_EXE_nas");

const TINY: &str = "Sequential(Conv2d(3, 4, 3, padding=1), ReLU(), AdaptiveAvgPool2d(1), \
                    Flatten(), Linear(4, 10))";

/// About 160 MB of peak memory for a batch of 8 (its second convolution's buffers alone exceed
/// 64 MB); 10 s of training here.
const WIDE: &str =
    "Sequential(Conv2d(3, 256, 3, padding=1), ReLU(), Conv2d(256, 256, 3, padding=1), \
                    ReLU(), AdaptiveAvgPool2d(1), Flatten(), Linear(256, 10))";

/// `text` checked for CIFAR-10's input, lazy widths resolved (what the loop evaluates).
fn checked(evaluator: &dyn Evaluator, text: &str) -> Module {
    let program = parse(text).unwrap();
    program.check(&evaluator.input()).unwrap().resolved
}

#[test]
fn nas_eval_trains_a_task_as_in_process_training_does() {
    let tmp = TempDir::new("worker");
    let data = write_cifar10(&tmp.path().join("data"));
    let run = tmp.path().join("run");
    let task = EvalTask {
        architecture: TINY.into(),
        setup: setup(&data, quick()),
        export: None,
        code: None,
    };
    task.write(&run, "t-1").unwrap();

    let output = nas(&["eval", "--run-dir", run.to_str().unwrap(), "--task", "t-1"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed = PathBuf::from(text(&output.stdout).trim());
    assert_eq!(printed, run.join("tasks/t-1.result.json"));
    let result = TaskResult::read(&run, "t-1").unwrap();
    assert_eq!(result.report.status, Status::Ok, "{:?}", result.report);
    assert_eq!(result.report.steps, 4);
    assert!(result.load_seconds >= 0.0);

    // The worker is the in-process code: the same numbers.
    let in_process = run_task(&task).unwrap().report;
    assert_eq!(result.report.val_acc, in_process.val_acc);
    assert_eq!(result.report.test_acc, in_process.test_acc);
    // (JSON keeps every digit; serde_json's fast float parser may read the last bit differently.)
    assert_eq!(result.report.loss_curve.len(), in_process.loss_curve.len());
    for (a, b) in result.report.loss_curve.iter().zip(&in_process.loss_curve) {
        assert!((a - b).abs() <= 1e-12 * b.abs(), "{a} {b}");
    }

    // Rewriting a task removes the result of the earlier one.
    task.write(&run, "t-1").unwrap();
    assert!(!printed.exists());
}

#[test]
fn the_process_evaluator_trains_in_a_worker_and_numbers_its_tasks() {
    let tmp = TempDir::new("process");
    let data = write_cifar10(&tmp.path().join("data"));
    let run = tmp.path().join("run");
    let setup = setup(&data, quick());
    let mut in_process = TrainerEvaluator::load(&setup).unwrap();
    let module = checked(&in_process, TINY);
    let (expected, _) = in_process.evaluate(&module);

    let options = WorkerOptions {
        timeout: Some(Duration::from_secs(120)),
        ..WorkerOptions::new(NAS)
    };
    let mut process = ProcessEvaluator::new(setup, in_process.input(), &run, options.clone());
    assert_eq!(process.input(), in_process.input());
    let (outcome, report) = process.evaluate(&module);
    assert_eq!(outcome.status, OutcomeStatus::Ok, "{outcome:?}");
    assert_eq!(outcome.val_acc, expected.val_acc);
    assert_eq!(outcome.test_acc, expected.test_acc);
    assert_eq!(report.map(|r| r.steps), Some(4));
    let task = EvalTask::read(&run, "000000").unwrap();
    assert_eq!(parse(&task.architecture).unwrap().module, module);

    // A second evaluator on the same run (a resumed run) continues the numbering.
    let setup = task.setup;
    let mut resumed = ProcessEvaluator::new(setup, in_process.input(), &run, options);
    let (outcome, _) = resumed.evaluate(&module);
    assert_eq!(outcome.status, OutcomeStatus::Ok, "{outcome:?}");
    assert!(run.join("tasks/000001.result.json").is_file());
}

#[test]
fn a_worker_out_of_memory_is_recorded_as_oom() {
    let tmp = TempDir::new("oom");
    let data = write_cifar10(&tmp.path().join("data"));
    let setup = setup(&data, quick());
    let input = TrainerEvaluator::load(&setup).unwrap().input();
    let options = WorkerOptions {
        timeout: Some(Duration::from_secs(120)),
        memory_limit: Some(64 << 20),
        ..WorkerOptions::new(NAS)
    };
    let mut process = ProcessEvaluator::new(setup, input, tmp.path(), options);
    let started = Instant::now();
    let (outcome, report) = process.evaluate(&parse(WIDE).unwrap().module);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.status, OutcomeStatus::Oom, "{outcome:?}");
    assert!(report.is_none());
    let message = outcome.message.unwrap();
    assert!(message.contains("out of memory"), "{message}");
    assert!(message.contains("limit 67108864 bytes"), "{message}");
}

#[test]
fn a_worker_past_its_time_limit_is_killed_and_recorded_as_timeout() {
    let tmp = TempDir::new("timeout");
    let data = write_cifar10(&tmp.path().join("data"));
    // A million epochs: only the kill ends it.
    let forever = TrainConfig {
        epochs: 1_000_000,
        ..quick()
    };
    let setup = setup(&data, forever);
    let input = TrainerEvaluator::load(&setup).unwrap().input();
    let options = WorkerOptions {
        timeout: Some(Duration::from_millis(1500)),
        ..WorkerOptions::new(NAS)
    };
    let mut process = ProcessEvaluator::new(setup, input, tmp.path(), options);
    let started = Instant::now();
    let (outcome, report) = process.evaluate(&parse(TINY).unwrap().module);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(outcome.status, OutcomeStatus::Timeout, "{outcome:?}");
    assert!(report.is_none());
    assert!((1.5..10.0).contains(&seconds), "{seconds} s");
    let message = outcome.message.unwrap();
    assert!(message.contains("killed after"), "{message}");
}

#[test]
fn a_failing_worker_is_a_crash_with_its_error() {
    let tmp = TempDir::new("crash");
    let data = write_cifar10(&tmp.path().join("data"));
    let good = setup(&data, quick());
    let input = TrainerEvaluator::load(&good).unwrap().input();
    let module = parse(TINY).unwrap().module;

    // The data went away after the loop started: the worker exits with its error.
    let mut gone = good.clone();
    gone.data.path = tmp.path().join("missing");
    let mut process = ProcessEvaluator::new(gone, input, tmp.path(), WorkerOptions::new(NAS));
    let (outcome, _) = process.evaluate(&module);
    assert_eq!(outcome.status, OutcomeStatus::Crash, "{outcome:?}");
    let message = outcome.message.unwrap();
    assert!(
        message.contains("exit status: 1") && message.contains("error: cannot read"),
        "{message}"
    );

    // A worker that cannot be started.
    let options = WorkerOptions::new(tmp.path().join("no-such-nas"));
    let mut process = ProcessEvaluator::new(good, input, tmp.path(), options);
    let (outcome, _) = process.evaluate(&module);
    assert_eq!(outcome.status, OutcomeStatus::Crash, "{outcome:?}");
    assert!(outcome.message.unwrap().contains("cannot run the worker"));
}

#[test]
fn an_unreadable_task_is_a_clear_error() {
    let tmp = TempDir::new("corrupt");
    let run = tmp.path().to_str().unwrap();
    std::fs::create_dir_all(tmp.path().join("tasks")).unwrap();
    std::fs::write(tmp.path().join("tasks/bad.json"), "{\"architecture\": ").unwrap();
    let cases = [
        ("bad", "bad.json: not a job: EOF while parsing"),
        ("none", "none.json: No such file or directory"),
        ("../x", "invalid task id `../x`"),
    ];
    for (task, expected) in cases {
        let output = nas(&["eval", "--run-dir", run, "--task", task]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = text(&output.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    assert!(!tmp.path().join("tasks/bad.result.json").exists());
}

/// Counts the trainings of the evaluator it wraps.
struct Counting<E> {
    inner: E,
    trainings: usize,
}

impl<E: Evaluator> Evaluator for Counting<E> {
    fn input(&self) -> nas_rs::arch_space::lang::InputSpec {
        self.inner.input()
    }

    fn evaluate(
        &mut self,
        module: &Module,
    ) -> (
        nas_rs::search_loop::run::Outcome,
        Option<nas_rs::trainer::train::Report>,
    ) {
        self.trainings += 1;
        self.inner.evaluate(module)
    }
}

#[test]
fn the_evaluation_cache_spares_a_second_training_of_the_same_recipe() {
    let tmp = TempDir::new("cache");
    let data = write_cifar10(&tmp.path().join("data"));
    let cache = EvalCache::new(tmp.path().join("cache"));
    let evaluator = |seed: u64| {
        let mut training = quick();
        training.seed = seed;
        let setup = setup(&data, training);
        let counting = Counting {
            inner: TrainerEvaluator::load(&setup).unwrap(),
            trainings: 0,
        };
        CachedEvaluator::new(counting, cache.clone(), setup)
    };
    let mut first = evaluator(0);
    let module = checked(&first, TINY);
    let (trained, report) = first.evaluate(&module);
    assert_eq!(trained.status, OutcomeStatus::Ok);
    // Another run with the same recipe: the report comes from the cache, nothing trains.
    let mut second = evaluator(0);
    let (cached, cached_report) = second.evaluate(&module);
    assert_eq!(cached, trained);
    let (cached_report, report) = (cached_report.unwrap(), report.unwrap());
    assert_eq!(
        (
            cached_report.val_acc,
            cached_report.steps,
            cached_report.seconds
        ),
        (report.val_acc, report.steps, report.seconds)
    );
    assert_eq!(second.inner().trainings, 0);
    // Another seed is another key.
    let mut third = evaluator(1);
    third.evaluate(&module);
    assert_eq!(third.inner().trainings, 1);
}
