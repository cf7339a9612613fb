//! Searches with several evaluations in flight on the local executor, on the real
//! NAS-Bench-201 table: `--parallel 1` is the sequential search, N in flight stay distinct and
//! bounded, and a reopened run adopts its jobs without losing or repeating one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arch_space::tabular::TabularBenchmark;
use ncode::NCode;
use search_loop::benchmark::{run_on_table, Protocol, Signal};
use search_loop::executor::{Failure, LocalExecutor};
use search_loop::parallel::{run_search, ExecutorKind, ParallelSearch, TableSearch};
use search_loop::run::{OutcomeStatus, Provenance, RunDir};
use search_loop::worker::{Job, JobResult, TableJob, TableResult};
use search_loop::{SearchContext, Strategy};

const TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../datasets/nasbench201/nb201_cifar10.csv"
);

fn table() -> TabularBenchmark {
    TabularBenchmark::load(TABLE).expect("the shipped NAS-Bench-201 table")
}

fn search(strategy: &Strategy, seed: u64, budget: usize, parallel: usize) -> TableSearch {
    TableSearch {
        table: PathBuf::from(TABLE),
        strategy: strategy.to_string(),
        seed,
        protocol: Protocol::nas_bench_201("c10", Signal::Val, budget),
        parallel,
        executor: ExecutorKind::Local,
        slurm: None,
        hold_seconds: 0.0,
    }
}

fn evaluation_lines(dir: &Path) -> Vec<usize> {
    RunDir::read(dir).unwrap().logged_evaluations().unwrap()
}

#[test]
fn one_slot_reproduces_the_sequential_search_of_every_strategy() {
    let table = table();
    for strategy in Strategy::ALL {
        for seed in 0..3 {
            let protocol = Protocol::nas_bench_201("c10", Signal::Val, 40);
            let mut searcher = strategy.build(seed).unwrap();
            let sequential = run_on_table(&table, &protocol, searcher.as_mut(), "t").unwrap();
            let dir = tempfile::tempdir().unwrap();
            let parallel = search(&strategy, seed, 40, 1)
                .run(dir.path(), None, &mut |_| {})
                .unwrap();
            assert_eq!(
                parallel.history.observations(),
                sequential.history.observations(),
                "{strategy} seed {seed}"
            );
            assert_eq!(parallel.reported, sequential.reported);
        }
    }
}

#[test]
fn slots_stay_full_bounded_and_distinct() {
    let table = table();
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, m, t) = (Arc::clone(&running), Arc::clone(&most), table.clone());
    let mut executor = LocalExecutor::new(
        4,
        Arc::new(move |_: &str, job: &Job| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            r.fetch_sub(1, Ordering::SeqCst);
            match job {
                Job::Table(lookup) => lookup
                    .run_on(&t)
                    .map(JobResult::Table)
                    .map_err(|e| Failure::new(OutcomeStatus::Crash, e.to_string())),
                other => panic!("only lookups here: {other:?}"),
            }
        }),
    );
    let job = |code: &NCode| {
        Ok(Job::Table(TableJob {
            table: TABLE.into(),
            code: code.clone(),
            metric: "c10_val_12".into(),
            hold_seconds: 0.0,
        }))
    };
    let ctx = SearchContext::unconstrained(table.space(), "t");
    let spec = ParallelSearch {
        ctx,
        budget: 60,
        job: &job,
        poll: Duration::from_millis(100),
        stop: None,
        cache: None,
    };
    for strategy in [Strategy::Rea, Strategy::Local, Strategy::RankRandom] {
        let dir = tempfile::tempdir().unwrap();
        let mut run =
            RunDir::create(dir.path(), &"test", &Provenance::collect("cpu", vec![])).unwrap();
        let mut searcher = strategy.build(7).unwrap();
        most.store(0, Ordering::SeqCst);
        let history = run_search(
            &mut run,
            &spec,
            searcher.as_mut(),
            &mut executor,
            &mut |_| {},
        )
        .unwrap();
        let codes: BTreeSet<&NCode> = history.observations().iter().map(|o| &o.code).collect();
        assert_eq!(codes.len(), 60, "{strategy}: 60 distinct evaluations");
        assert_eq!(
            most.load(Ordering::SeqCst),
            4,
            "{strategy}: 4 in flight at most"
        );
        let lines = evaluation_lines(dir.path());
        assert_eq!(lines.len(), 60);
        assert_eq!(lines.iter().collect::<BTreeSet<_>>().len(), 60);
    }
}

#[test]
fn a_reopened_run_collects_finished_jobs_reruns_lost_ones_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = search(&Strategy::Rea, 3, 10, 2)
        .run(dir.path(), None, &mut |_| {})
        .unwrap();
    assert_eq!(first.history.len(), 10);
    // As if the driver had been killed with jobs 10 and 11 in flight: 10 finished meanwhile
    // (its result file is there), 11 did not.
    let table = table();
    let unseen: Vec<NCode> = table
        .space()
        .enumerate()
        .filter(|c| !first.history.contains(c))
        .take(2)
        .collect();
    let jobs: Vec<TableJob> = unseen
        .iter()
        .map(|code| TableJob {
            table: TABLE.into(),
            code: code.clone(),
            metric: "c10_val_12".into(),
            hold_seconds: 0.0,
        })
        .collect();
    for (id, job) in ["000010", "000011"].iter().zip(&jobs) {
        Job::Table(job.clone()).write(dir.path(), id).unwrap();
    }
    let planted = TableResult {
        score: Some(12.5),
        seconds: 0.0,
    };
    std::fs::write(
        dir.path().join("tasks/000010.result.json"),
        serde_json::to_string(&JobResult::Table(planted)).unwrap(),
    )
    .unwrap();
    let mut longer = search(&Strategy::Rea, 3, 16, 2);
    longer.protocol.budget = 16;
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string(&longer).unwrap(),
    )
    .unwrap();
    let resumed = search(&Strategy::Rea, 3, 16, 2)
        .run(dir.path(), None, &mut |_| {})
        .unwrap();
    let observations = resumed.history.observations();
    assert_eq!(observations.len(), 16);
    assert_eq!(&observations[..10], first.history.observations());
    // The planted result was collected, not recomputed; job 11 ran again.
    assert_eq!(observations[10].code, unseen[0]);
    assert_eq!(observations[10].score, Some(12.5));
    assert!(observations.iter().any(|o| o.code == unseen[1]));
    let codes: BTreeSet<&NCode> = observations.iter().map(|o| &o.code).collect();
    assert_eq!(codes.len(), 16, "no architecture evaluated twice");
    let mut lines = evaluation_lines(dir.path());
    assert_eq!(lines.len(), 16);
    lines.sort_unstable();
    assert_eq!(lines, (0..16).collect::<Vec<_>>());
}

#[test]
fn a_stop_cancels_the_jobs_in_flight_and_resume_does_not_adopt_them() {
    let dir = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    let mut slow = search(&Strategy::Random, 1, 8, 4);
    slow.hold_seconds = 0.3;
    let stopped = slow
        .run(dir.path(), Some(&stop), &mut |history| {
            if history.len() == 4 {
                stop.store(true, Ordering::SeqCst);
            }
        })
        .unwrap();
    assert!(stopped.history.len() >= 4 && stopped.history.len() < 8);
    let cancelled = std::fs::read_dir(dir.path().join("tasks"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".cancelled")
        })
        .count();
    assert!(cancelled > 0, "the jobs in flight are marked cancelled");
    let resumed = slow.run(dir.path(), None, &mut |_| {}).unwrap();
    assert_eq!(resumed.history.len(), 8);
    assert!(resumed
        .history
        .observations()
        .iter()
        .all(|o| o.score.is_some()));
}
