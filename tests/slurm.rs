//! The Slurm executor against a real Slurm cluster (`../shared/tools/slurm-local`, which
//! `.ci/run` starts): a table search with 4 evaluations in flight, real trainings, a failing, a
//! cancelled and a timed-out task, and a driver killed with SIGKILL and resumed.
//!
//! Without a cluster (no `SLURM_CONF`, or `sinfo` fails) the tests say they were skipped, unless
//! `NAS_REQUIRE_INTEGRATION=1`, under which a missing cluster is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{quick, setup, text, write_cifar10, TempDir};
use nas_rs::search_loop::executor::{Executor, Finished, SlurmConfig, SlurmExecutor};
use nas_rs::search_loop::run::{OutcomeStatus, RunDir};
use nas_rs::search_loop::worker::{EvalTask, Job, JobResult, TableJob};
use nas_rs::trainer::train::Status;

const NAS: &str = env!("CARGO_BIN_EXE_nas");
const TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/nasbench201/nb201_cifar10.csv"
);

/// Whether a Slurm cluster answers; panics under `NAS_REQUIRE_INTEGRATION=1` when none does.
fn cluster() -> bool {
    let up = std::env::var_os("SLURM_CONF").is_some()
        && Command::new("sinfo")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !up {
        assert!(
            std::env::var("NAS_REQUIRE_INTEGRATION").as_deref() != Ok("1"),
            "NAS_REQUIRE_INTEGRATION=1 but no Slurm cluster answers (start \
             ../shared/tools/slurm-local/start-slurm.sh and export SLURM_CONF)"
        );
        eprintln!("skipped: no Slurm cluster (export SLURM_CONF after starting slurm-local)");
    }
    up
}

/// The test settings: the test's `nas` binary as the worker, a quick poll.
fn config() -> SlurmConfig {
    SlurmConfig {
        worker: Some(NAS.into()),
        poll_seconds: 0.3,
        ..SlurmConfig::default()
    }
}

fn lookup(code: [u16; 6], table: &str, hold: f64) -> Job {
    Job::Table(TableJob {
        table: table.into(),
        code: nas_rs::ncode::NCode::new(code.to_vec()),
        metric: "c10_val_12".into(),
        hold_seconds: hold,
    })
}

/// Waits until every submitted job ended (at most `limit`).
fn collect(
    executor: &mut dyn Executor,
    count: usize,
    limit: Duration,
) -> BTreeMap<String, Finished> {
    let started = Instant::now();
    let mut ended = BTreeMap::new();
    while ended.len() < count {
        assert!(started.elapsed() < limit, "jobs still running: {ended:?}");
        for f in executor.wait(Duration::from_secs(2)).unwrap() {
            ended.insert(f.id.clone(), f);
        }
    }
    ended
}

fn submit(executor: &mut dyn Executor, run: &Path, id: &str, job: &Job) {
    job.write(run, id).unwrap();
    executor.submit(id, job).unwrap();
}

/// A Slurm configuration file for `nas search`: the test's worker, a quick poll.
fn slurm_toml(dir: &Path) -> PathBuf {
    let path = dir.join("slurm.toml");
    std::fs::write(&path, format!("poll_seconds = 0.3\nworker = {NAS:?}\n")).unwrap();
    path
}

/// The run's batch records (`slurm/batches/*.json`), with their paths, by name.
fn batches(run: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut batches: Vec<(PathBuf, serde_json::Value)> =
        std::fs::read_dir(run.join("slurm/batches"))
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                (path, serde_json::from_str(&text).unwrap())
            })
            .collect();
    batches.sort_by(|a, b| a.0.cmp(&b.0));
    batches
}

/// Array tasks of the jobs whose name starts with `prefix`: `(job id, name)`.
fn jobs_named(prefix: &str) -> Vec<(String, String)> {
    let output = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%F|%j"])
        .output()
        .unwrap();
    let jobs: BTreeSet<(String, String)> = text(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('|'))
        .filter(|(_, name)| name.starts_with(prefix))
        .map(|(id, name)| (id.to_string(), name.to_string()))
        .collect();
    jobs.into_iter().collect()
}

#[test]
fn rea_on_the_table_with_four_in_flight() {
    if !cluster() {
        return;
    }
    let tmp = TempDir::new("slurm-rea");
    let run = tmp.path().join("run");
    let slurm = slurm_toml(tmp.path());
    let output = Command::new(NAS)
        .args([
            "search",
            "--strategy",
            "rea",
            "--budget",
            "16",
            "--parallel",
            "4",
        ])
        .args(["--executor", "slurm", "--slurm-config"])
        .arg(&slurm)
        .arg("--run-dir")
        .arg(&run)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["evaluations"], 16);
    assert_eq!(summary["failures"], 0);
    // Every score is the table's value of its code, computed by a Slurm job.
    let table = nas_rs::arch_space::tabular::TabularBenchmark::load(TABLE).unwrap();
    let metric = table.metric("c10_val_12").unwrap();
    let records = RunDir::read(&run).unwrap().evaluations().unwrap();
    assert_eq!(records.len(), 16);
    let mut codes = BTreeSet::new();
    for record in &records {
        let code = table
            .space()
            .parse(record.architecture.as_deref().unwrap())
            .unwrap();
        assert_eq!(record.outcome.val_acc, table.peek(&code, metric));
        assert!(run
            .join(format!("tasks/{:06}.result.json", record.iteration))
            .exists());
        codes.insert(code);
    }
    assert_eq!(codes.len(), 16);
    let (_, first) = &batches(&run)[0];
    assert_eq!(first["tasks"][0], "000000");
    assert_eq!(first["tasks"].as_array().unwrap().len(), 4, "4 in flight");
}

#[test]
fn failing_and_cancelled_jobs_are_recorded_with_slurms_state() {
    if !cluster() {
        return;
    }
    let tmp = TempDir::new("slurm-failures");
    let run = tmp.path().join("run");
    let mut executor = SlurmExecutor::new(&run, 4, config()).unwrap();
    submit(
        &mut executor,
        &run,
        "000000",
        &lookup([1, 2, 3, 0, 1, 2], "/nonexistent.csv", 0.0),
    );
    submit(
        &mut executor,
        &run,
        "000001",
        &lookup([1, 2, 3, 0, 1, 2], TABLE, 300.0),
    );
    submit(
        &mut executor,
        &run,
        "000002",
        &lookup([3, 3, 3, 3, 3, 3], TABLE, 0.0),
    );
    let mut ended = BTreeMap::new();
    let started = Instant::now();
    while ended.len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(60));
        for f in executor.wait(Duration::from_secs(2)).unwrap() {
            ended.insert(f.id.clone(), f);
        }
    }
    let failed = ended["000000"].result.as_ref().unwrap_err();
    assert_eq!(failed.status, OutcomeStatus::Crash);
    assert!(
        failed.message.contains("FAILED") && failed.message.contains("nonexistent.csv"),
        "{}",
        failed.message
    );
    assert!(matches!(ended["000002"].result, Ok(JobResult::Table(_))));

    // Cancelled from outside, by its id.
    let (_, batch) = &batches(&run)[0];
    let job = batch["job_id"].as_str().unwrap().to_string();
    let scancel = Command::new("scancel")
        .arg(format!("{job}_1"))
        .status()
        .unwrap();
    assert!(scancel.success());
    let cancelled = collect(&mut executor, 1, Duration::from_secs(60));
    let cancelled = cancelled["000001"].result.as_ref().unwrap_err();
    assert_eq!(
        cancelled.status,
        OutcomeStatus::Cancelled,
        "{}",
        cancelled.message
    );
    assert!(cancelled.message.contains("CANCELLED"));
}

#[test]
fn a_task_past_its_time_limit_is_a_timeout() {
    if !cluster() {
        return;
    }
    let tmp = TempDir::new("slurm-timeout");
    let run = tmp.path().join("run");
    // One minute, Slurm's smallest limit; the job would hold its slot for ten.
    let mut executor = SlurmExecutor::new(
        &run,
        1,
        SlurmConfig {
            time: Some("1".into()),
            ..config()
        },
    )
    .unwrap();
    submit(
        &mut executor,
        &run,
        "000000",
        &lookup([0, 1, 2, 3, 4, 0], TABLE, 600.0),
    );
    let ended = collect(&mut executor, 1, Duration::from_secs(240));
    let failure = ended["000000"].result.as_ref().unwrap_err();
    assert_eq!(
        failure.status,
        OutcomeStatus::Timeout,
        "{}",
        failure.message
    );
    assert!(failure.message.contains("TIMEOUT"), "{}", failure.message);
}

#[test]
fn a_driver_killed_before_recording_its_job_id_adopts_the_job_by_name() {
    if !cluster() {
        return;
    }
    let tmp = TempDir::new("slurm-adopt");
    let run = tmp.path().join("run");
    let mut first = SlurmExecutor::new(&run, 2, config()).unwrap();
    for (id, code) in [
        ("000000", [1, 1, 1, 1, 1, 1]),
        ("000001", [2, 2, 2, 2, 2, 2]),
    ] {
        submit(&mut first, &run, id, &lookup(code, TABLE, 3.0));
    }
    // `wait` submits the batch; then forget the job id, as a driver killed right after
    // `sbatch` would have.
    assert!(first.wait(Duration::from_millis(10)).unwrap().is_empty());
    let (path, mut batch) = batches(&run).remove(0);
    let name = batch["name"].as_str().unwrap().to_string();
    batch["job_id"] = serde_json::Value::Null;
    std::fs::write(&path, batch.to_string()).unwrap();
    drop(first);

    let mut second = SlurmExecutor::new(&run, 2, config()).unwrap();
    for id in ["000000", "000001"] {
        second.adopt(id, &Job::read(&run, id).unwrap()).unwrap();
    }
    let ended = collect(&mut second, 2, Duration::from_secs(60));
    assert!(ended.values().all(|f| f.result.is_ok()), "{ended:?}");
    assert_eq!(jobs_named(&name).len(), 1, "submitted once");
}

#[test]
fn real_trainings_as_slurm_jobs() {
    if !cluster() {
        return;
    }
    let tmp = TempDir::new("slurm-train");
    let data = write_cifar10(&tmp.path().join("data"));
    let run = tmp.path().join("run");
    let mut executor = SlurmExecutor::new(
        &run,
        2,
        SlurmConfig {
            cpus_per_task: Some(1),
            ..config()
        },
    )
    .unwrap();
    let setup = setup(&data, quick());
    let archs = [
        "Sequential(Conv2d(3, 4, 3, padding=1), ReLU(), AdaptiveAvgPool2d(1), Flatten(), Linear(4, 10))",
        "Sequential(Conv2d(3, 8, 3, stride=2), BatchNorm2d(8), ReLU(), AdaptiveAvgPool2d(1), Flatten(), Linear(8, 10))",
    ];
    for (i, arch) in archs.iter().enumerate() {
        let task = EvalTask {
            architecture: arch.to_string(),
            setup: setup.clone(),
            export: None,
            code: None,
        };
        submit(&mut executor, &run, &format!("{i:06}"), &Job::Train(task));
    }
    let ended = collect(&mut executor, 2, Duration::from_secs(180));
    for finished in ended.values() {
        match &finished.result {
            Ok(JobResult::Train(result)) => {
                assert_eq!(result.report.status, Status::Ok, "{:?}", result.report);
                assert_eq!(result.report.steps, 4);
            }
            other => panic!("{}: {other:?}", finished.id),
        }
    }
}

#[test]
fn a_driver_killed_with_sigkill_resumes_losing_and_repeating_nothing() {
    if !cluster() {
        return;
    }
    let tmp = TempDir::new("slurm-kill");
    let run = tmp.path().join("run");
    let slurm = slurm_toml(tmp.path());
    let search = |extra: &[&str]| {
        let mut command = Command::new(NAS);
        command
            .args(["search", "--executor", "slurm", "--slurm-config"])
            .arg(&slurm)
            .args(extra)
            .arg(&run)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let mut driver = search(&[
        "--strategy",
        "random",
        "--budget",
        "10",
        "--parallel",
        "3",
        "--hold",
        "2",
        "--run-dir",
    ])
    .spawn()
    .unwrap();
    let started = Instant::now();
    let records = |run: &Path| {
        std::fs::read_dir(run.join("evaluations"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    while records(&run) < 3 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    driver.kill().unwrap();
    driver.wait().unwrap();
    let tasks_at_kill = nas_rs::search_loop::worker::task_ids(&run).unwrap().len();
    assert!(
        tasks_at_kill > records(&run),
        "jobs were in flight at the kill"
    );

    let output = search(&["--resume"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["evaluations"], 10);
    assert_eq!(summary["failures"], 0);

    let lines = RunDir::read(&run).unwrap().logged_evaluations().unwrap();
    assert_eq!(lines.len(), 10, "one line per evaluation");
    assert_eq!(
        lines.iter().collect::<BTreeSet<_>>().len(),
        10,
        "none repeated"
    );
    let codes: BTreeSet<Option<String>> = RunDir::read(&run)
        .unwrap()
        .evaluations()
        .unwrap()
        .into_iter()
        .map(|r| r.architecture)
        .collect();
    assert_eq!(codes.len(), 10, "no architecture evaluated twice");
    // Every task was submitted exactly once: in one batch, as one Slurm job.
    let mut submitted = BTreeMap::new();
    for (_, batch) in batches(&run) {
        assert_eq!(batch["attempt"], 0);
        let name = batch["name"].as_str().unwrap().to_string();
        assert_eq!(jobs_named(&name).len(), 1, "{name} submitted once");
        for task in batch["tasks"].as_array().unwrap() {
            *submitted
                .entry(task.as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    assert_eq!(submitted.len(), 10);
    assert!(submitted.values().all(|&n| n == 1), "{submitted:?}");
}

#[test]
fn an_external_evaluator_runs_as_slurm_jobs() {
    if !cluster() {
        return;
    }
    let tmp = TempDir::new("slurm-command");
    let run = tmp.path().join("run");
    // Score: the number of 3x3 convolutions (choice 3) in the NB201 cell, read from the config.
    let evaluator = r#"n=$(grep -o '"ncode":"[0-9]*"' {config_json} | tr -cd 3 | wc -c); echo "{\"score\": $n}""#;
    let output = Command::new(NAS)
        .args(["search", "--space", "nb201", "--evaluator", evaluator])
        .args(["--strategy", "random", "--budget", "4", "--parallel", "2"])
        .args(["--executor", "slurm", "--slurm-config"])
        .arg(slurm_toml(tmp.path()))
        .arg("--run-dir")
        .arg(&run)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let records = RunDir::read(&run).unwrap().evaluations().unwrap();
    assert_eq!(records.len(), 4);
    for record in records {
        let code = record.architecture.unwrap();
        let threes = code.chars().filter(|&c| c == '3').count() as f64;
        assert_eq!(record.outcome.score(), Some(threes), "{code}");
    }
}

/// The closed loop with two chains whose candidates train as Slurm jobs: a tiny random-weight
/// model writes them under the generation grammar (so they parse and fit the data), the driver
/// keeps one candidate of each chain on the cluster, and every evaluation comes back recorded.
#[test]
fn closed_loop_chains_train_as_slurm_jobs() {
    use nas_rs::llm_local::runtime::gguf::Architecture;
    use nas_rs::llm_local::runtime::test_gguf::{write_tiny_model, TinyModelOptions};
    use nas_rs::llm_local::runtime::GgufModel;
    use nas_rs::search_loop::closed_loop::{
        run_closed_loop_on, Evaluator, LoopConfig, LoopExecutor, Roles, TrainerEvaluator,
    };
    use nas_rs::search_loop::run::Provenance;

    if !cluster() {
        return;
    }
    let tmp = TempDir::new("slurm-chains");
    let data = write_cifar10(&tmp.path().join("data"));
    let model_path = tmp.path().join("tiny.gguf");
    let options = TinyModelOptions {
        context_length: 8192,
        ..TinyModelOptions::default()
    };
    write_tiny_model(&model_path, Architecture::Llama, &options).unwrap();
    let device = nas_rs::trainer::device("cpu").unwrap();
    let mut model = GgufModel::load(&model_path, &device).unwrap();
    let mut loop_config = LoopConfig::new("Image classification", 3);
    loop_config.chains = 2;
    loop_config.improver_sampling.max_tokens = 64;
    let run_dir = tmp.path().join("run");
    let mut run =
        RunDir::create(&run_dir, &loop_config, &Provenance::collect("cpu", vec![])).unwrap();
    let setup = setup(&data, quick());
    let input = TrainerEvaluator::load(&setup).unwrap().input();
    let one_cpu = SlurmConfig {
        cpus_per_task: Some(1),
        ..config()
    };
    let mut executor = SlurmExecutor::new(&run_dir, 2, one_cpu).unwrap();
    let jobs = LoopExecutor {
        executor: &mut executor,
        setup,
        input,
        cache: None,
        poll: Duration::from_millis(300),
        stop: None,
    };
    let roles = Roles {
        generator: &mut model,
        improver: None,
    };
    let summary = run_closed_loop_on(&loop_config, &mut run, roles, jobs, &mut |_| {}).unwrap();
    assert_eq!(summary.finished_evaluations, 4, "{summary:?}");
    let records = run.evaluations().unwrap();
    let chains: BTreeSet<usize> = records.iter().map(|r| r.chain).collect();
    assert_eq!(chains, BTreeSet::from([0, 1]));
    for r in &records {
        assert!(
            matches!(
                r.outcome.status,
                OutcomeStatus::Ok | OutcomeStatus::Duplicate
            ),
            "{r:?}"
        );
    }
    let trained = records.iter().filter(|r| r.report.is_some()).count();
    let submitted: usize = batches(&run_dir)
        .iter()
        .map(|(_, b)| b["tasks"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(
        submitted, trained,
        "each trained candidate is one Slurm task"
    );
    assert!(run.pending().unwrap().is_empty());
}
