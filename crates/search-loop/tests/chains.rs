//! The closed loop with several chains on an executor: candidates of different chains train at
//! the same time, each chain keeps its own lineage and memory, and a driver that dies with
//! candidates in flight resumes them without asking the generator again.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candle_core::Device;
use llm_local::scripted::ScriptedModel;
use llm_local::{LanguageModel, LlmError};
use search_loop::closed_loop::{
    run_closed_loop, run_closed_loop_on, Evaluator, LoopConfig, LoopExecutor, Roles, Summary,
    TrainerEvaluator,
};
use search_loop::executor::LocalExecutor;
use search_loop::run::{EvaluationRecord, OutcomeStatus, Provenance, RunDir, PENDING};
use search_loop::worker::{DataSpec, EvalSetup, Job};
use trainer::data::synthetic::brightest_quadrant;
use trainer::train::TrainConfig;

const START: &str =
    "Sequential(Conv2d(3, 8, 3, padding=1), ReLU(), AvgPool2d(4), Flatten(), Linear(32, 4))";

/// A model that plays both roles: the improver gets a JSON diagnosis, the generator a new
/// architecture each time (a different width), so every candidate trains. Returns the model and
/// the counts of generated architectures and diagnoses.
fn designer() -> ScriptedModel<impl FnMut(&str) -> Result<String, LlmError>> {
    let (mut generated, mut diagnosed) = (0, 0);
    ScriptedModel::new(move |prompt: &str| {
        Ok(if prompt.contains("Diagnose") {
            diagnosed += 1;
            format!(r#"{{"problem": "problem {diagnosed}", "suggestion": "change {diagnosed}"}}"#)
        } else {
            generated += 1;
            let width = 8 + generated;
            format!("```python\nSequential(Conv2d(3, {width}, 3, padding=1), ReLU(), AvgPool2d(4), Flatten(), LazyLinear(4))\n```")
        })
    })
}

/// Architectures the designer wrote (prompts that were not the improver's).
fn generated<F>(model: &ScriptedModel<F>) -> usize {
    model
        .prompts
        .iter()
        .filter(|p| !p.contains("Diagnose"))
        .count()
}

fn trainer() -> TrainerEvaluator {
    let config = TrainConfig {
        epochs: 1,
        batch_size: 32,
        lr: 0.05,
        augment: false,
        ..TrainConfig::proxy()
    };
    TrainerEvaluator::new(
        brightest_quadrant(128, 1),
        brightest_quadrant(32, 2),
        None,
        config,
        Device::Cpu,
    )
}

/// What the jobs carry (the in-process trainer ignores it: its data is in memory).
fn setup() -> EvalSetup {
    EvalSetup {
        data: DataSpec {
            path: PathBuf::from("in-memory"),
            dataset: None,
            val_size: None,
            limit_train: None,
            seed: 0,
        },
        training: TrainConfig::proxy(),
        device: "cpu".into(),
    }
}

fn config(iterations: usize, chains: usize) -> LoopConfig {
    let mut config = LoopConfig::new("Brightest-quadrant classification", iterations);
    config.start = Some(START.into());
    config.constrained = false;
    config.chains = chains;
    config
}

/// The first generated architecture (chain 1's first candidate), which [`executor`] trains
/// slowly so that the other chain's candidates finish first.
const FIRST_GENERATED: &str = "Conv2d(3, 9,";

/// A local executor of `slots` training in this process, counting the most jobs that ran at
/// once; the [`FIRST_GENERATED`] architecture takes 2 s longer.
fn executor(slots: usize, most: &Arc<AtomicUsize>) -> LocalExecutor {
    let train = trainer().into_run_job();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::clone(most);
    LocalExecutor::new(
        slots,
        Arc::new(move |id: &str, job: &Job| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            // Long enough for the other chain's job to start meanwhile.
            let slow = matches!(job, Job::Train(t) if t.architecture.contains(FIRST_GENERATED));
            std::thread::sleep(Duration::from_millis(if slow { 2300 } else { 300 }));
            let result = train(id, job);
            running.fetch_sub(1, Ordering::SeqCst);
            result
        }),
    )
}

fn run_loop(
    run: &mut RunDir,
    config: &LoopConfig,
    executor: &mut LocalExecutor,
    model: &mut dyn LanguageModel,
    on_progress: &mut dyn FnMut(usize),
) -> Summary {
    let jobs = LoopExecutor {
        executor,
        setup: setup(),
        input: trainer().input(),
        cache: None,
        poll: Duration::from_millis(50),
        stop: None,
    };
    let roles = Roles {
        generator: model,
        improver: None,
    };
    run_closed_loop_on(config, run, roles, jobs, &mut |p| on_progress(p.finished)).unwrap()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chains-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Each chain's records in order: every one applies the diagnosis of the one before it; a
/// chain's first goes on from iteration 0 (the only evaluation finished when it started).
fn assert_lineages(records: &[EvaluationRecord], chains: usize) {
    for chain in 0..chains {
        let mut lineage: Vec<&EvaluationRecord> =
            records.iter().filter(|r| r.chain == chain).collect();
        lineage.sort_by_key(|r| r.iteration);
        assert!(!lineage.is_empty(), "chain {chain}");
        let mut previous = if chain == 0 { None } else { Some(0) };
        for r in lineage {
            assert_eq!(
                r.parent, previous,
                "chain {chain}, iteration {}",
                r.iteration
            );
            previous = Some(r.iteration);
        }
    }
}

#[test]
fn chains_train_side_by_side_each_with_its_own_lineage() {
    let dir = temp_dir("side-by-side");
    let config = config(6, 2);
    let mut run = RunDir::create(&dir, &config, &Provenance::collect("cpu", vec![])).unwrap();
    let most = Arc::new(AtomicUsize::new(0));
    let mut model = designer();
    let summary = run_loop(
        &mut run,
        &config,
        &mut executor(2, &most),
        &mut model,
        &mut |_| {},
    );
    assert_eq!(summary.finished_evaluations, 7);
    assert_eq!(summary.valid, 7, "{summary:?}");
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "two chains in flight at once"
    );
    let records = run.evaluations().unwrap();
    assert_lineages(&records, 2);
    // Iteration 0 is taken, not generated; every other architecture is written once.
    assert_eq!(generated(&model), 6);
    assert_eq!(run.logged_evaluations().unwrap().len(), 7);
    assert!(run.pending().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(dir.join(PENDING)).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_driver_that_dies_with_candidates_in_flight_resumes_them() {
    let dir = temp_dir("resume");
    let config = config(5, 2);
    let most = Arc::new(AtomicUsize::new(0));
    let mut first = RunDir::create(&dir, &config, &Provenance::collect("cpu", vec![])).unwrap();
    let mut model = designer();
    // The driver dies (here: panics) when the third evaluation is recorded (iterations 0, 2
    // and 3 of chain 0), with chain 1's slow iteration 1 still training.
    let died = catch_unwind(AssertUnwindSafe(|| {
        run_loop(
            &mut first,
            &config,
            &mut executor(2, &most),
            &mut model,
            &mut |finished| {
                assert!(finished < 3, "killed");
            },
        )
    }));
    assert!(died.is_err());
    drop(first);
    let mut reopened = RunDir::open(&dir).unwrap();
    let pending = reopened.pending().unwrap();
    assert_eq!(
        pending.keys().copied().collect::<Vec<_>>(),
        vec![1],
        "iteration 1 was in flight"
    );
    let generated_before = generated(&model);

    let summary = run_loop(
        &mut reopened,
        &config,
        &mut executor(2, &most),
        &mut model,
        &mut |_| {},
    );
    assert_eq!(summary.finished_evaluations, 6);
    let records = reopened.evaluations().unwrap();
    for (iteration, before) in pending {
        let after = records.iter().find(|r| r.iteration == iteration).unwrap();
        assert_eq!(after.outcome.status, OutcomeStatus::Ok, "{after:?}");
        assert_eq!(
            (&after.canonical, after.chain, after.parent),
            (&before.canonical, before.chain, before.parent),
            "resumed as it was generated"
        );
    }
    // Only the candidates that were never generated asked the generator.
    assert_eq!(generated(&model) - generated_before, 6 - 3 - 1);
    assert_lineages(&records, 2);
    let mut logged = reopened.logged_evaluations().unwrap();
    logged.sort_unstable();
    assert_eq!(
        logged,
        (0..6).collect::<Vec<_>>(),
        "each evaluation logged once"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stop_cancels_and_records_the_candidates_in_flight() {
    let dir = temp_dir("stop");
    let config = config(8, 2);
    let mut run_dir = RunDir::create(&dir, &config, &Provenance::collect("cpu", vec![])).unwrap();
    let stop = AtomicBool::new(false);
    let most = Arc::new(AtomicUsize::new(0));
    let mut executor = executor(2, &most);
    let mut model = designer();
    let jobs = LoopExecutor {
        executor: &mut executor,
        setup: setup(),
        input: trainer().input(),
        cache: None,
        poll: Duration::from_millis(50),
        stop: Some(&stop),
    };
    let roles = Roles {
        generator: &mut model,
        improver: None,
    };
    let summary = run_closed_loop_on(&config, &mut run_dir, roles, jobs, &mut |p| {
        // Iterations 0 and 2 finished, the slow iteration 1 is in flight.
        if p.finished == 2 {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert_eq!(summary.stop_reason, "interrupted");
    assert_eq!(summary.failures.get("cancelled"), Some(&1), "{summary:?}");
    assert_eq!(summary.finished_evaluations, 3);
    assert!(run_dir.pending().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_chain_on_an_executor_is_the_sequential_loop() {
    let config = config(3, 1);
    let records = |on_executor: bool| {
        let dir = temp_dir(if on_executor {
            "one-executor"
        } else {
            "one-sequential"
        });
        let mut run = RunDir::create(&dir, &config, &Provenance::collect("cpu", vec![])).unwrap();
        let mut model = designer();
        if on_executor {
            let mut executor = LocalExecutor::new(1, trainer().into_run_job());
            run_loop(&mut run, &config, &mut executor, &mut model, &mut |_| {});
        } else {
            let roles = Roles {
                generator: &mut model,
                improver: None,
            };
            run_closed_loop(&config, &mut run, roles, &mut trainer(), &mut |_| {}).unwrap();
        }
        let records: Vec<_> = run
            .evaluations()
            .unwrap()
            .into_iter()
            .map(|r| (r.iteration, r.canonical, r.parent, r.outcome.val_acc))
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        records
    };
    let sequential = records(false);
    assert_eq!(sequential.len(), 4);
    assert_eq!(records(true), sequential);
}
