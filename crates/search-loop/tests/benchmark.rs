//! Tests of the benchmark protocol on the shipped NAS-Bench-201 CIFAR-10 table: constraint
//! parsing, `compare` (optimum, regret, determinism, JSON layout), constrained searches, and
//! evaluation counting.

use std::sync::OnceLock;

use arch_space::nb201::Nb201Cell;
use arch_space::tabular::TabularBenchmark;
use arch_space::ArchSpaceError;
use ncode::NCode;
use ranker::RankerPrompts;
use search_loop::benchmark::{
    compare, run_on_table, run_on_table_observed, Constraint, Protocol, Signal,
};
use search_loop::{SearchError, Strategy};

const TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../datasets/nasbench201/nb201_cifar10.csv"
);

/// The table, loaded once per test binary. Callers clone it (cheap, fresh counter).
fn table() -> TabularBenchmark {
    static TABLE_CELL: OnceLock<TabularBenchmark> = OnceLock::new();
    TABLE_CELL
        .get_or_init(|| TabularBenchmark::load(TABLE).expect("the shipped table loads"))
        .clone()
}

fn protocol(constraints: Vec<Constraint>, budget: usize, checkpoints: Vec<usize>) -> Protocol {
    Protocol {
        signal: "c10_val_12".into(),
        report: "c10_test_200".into(),
        constraints,
        budget,
        checkpoints,
    }
}

const OPTIMUM: f64 = 94.3733;

// ---------------------------------------------------------------- constraints

#[test]
fn constraint_parsing() {
    let c: Constraint = "lat_ms_pixel3<=10".parse().unwrap();
    assert_eq!(
        c,
        Constraint {
            metric: "lat_ms_pixel3".into(),
            max: 10.0
        }
    );
    let c: Constraint = "c10_params=800000".parse().unwrap();
    assert_eq!(
        c,
        Constraint {
            metric: "c10_params".into(),
            max: 800_000.0
        }
    );
    let c: Constraint = " lat_ms_fpga <= 2.5 ".parse().unwrap();
    assert_eq!((c.metric.as_str(), c.max), ("lat_ms_fpga", 2.5));

    for (text, reason) in [
        ("foo", "expected METRIC<=VALUE"),
        ("x<=abc", "not a number"),
        ("x<=inf", "not a number"),
        ("x<=NaN", "not a number"),
        ("x<=", "not a number"),
    ] {
        let err = text.parse::<Constraint>().unwrap_err();
        match &err {
            SearchError::Constraint { text: t, reason: r } => {
                assert_eq!(t, text);
                assert!(r.contains(reason), "`{text}`: {r}");
            }
            other => panic!("`{text}`: expected a constraint error, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&format!("`{text}`")),
            "`{text}`: {message}"
        );
    }
}

// ---------------------------------------------------------------- the table's optimum

#[test]
fn the_optimum_is_333132_at_official_index_6111() {
    let table = table();
    let report = table.metric("c10_test_200").unwrap();
    let (code, value) = table.best(report, |_| true).unwrap();
    assert_eq!(table.space().format(&code), "333132");
    assert_eq!(value, OPTIMUM);
    assert_eq!(Nb201Cell::from_ncode(&code).unwrap().index(), 6111);
    assert_eq!(
        Nb201Cell::from_ncode(&code).unwrap().arch_str(),
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    );
    // No other architecture reaches it.
    let max = table
        .space()
        .enumerate()
        .filter_map(|c| table.peek(&c, report))
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(max, OPTIMUM);
}

// ---------------------------------------------------------------- compare

#[test]
fn compare_all_strategies() {
    let table = table();
    let protocol = protocol(vec![], 50, vec![10, 50]);
    let seeds = [0, 1, 2];
    let cmp = compare(
        &table,
        &protocol,
        &Strategy::ALL,
        &seeds,
        "nb201 c10",
        &RankerPrompts::default(),
    )
    .unwrap();

    assert_eq!(cmp.optimum, OPTIMUM);
    assert_eq!(cmp.optimum_code, "333132");
    assert_eq!(cmp.seeds, seeds);
    let names: Vec<&str> = cmp.results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["random", "rea", "local", "tpe", "rank-random"]);
    for (name, per_budget) in &cmp.results {
        assert_eq!(
            per_budget.keys().copied().collect::<Vec<_>>(),
            [10, 50],
            "{name}"
        );
        for (budget, s) in per_budget {
            assert!(s.mean <= OPTIMUM, "{name}@{budget}: mean {}", s.mean);
            assert!(s.regret >= 0.0, "{name}@{budget}: regret {}", s.regret);
            assert_eq!(s.regret, OPTIMUM - s.mean, "{name}@{budget}");
            assert!(s.std >= 0.0 && s.std.is_finite(), "{name}@{budget}");
            // NAS-Bench-201 CIFAR-10 test accuracies lie between 10% and 94.38%: a mean far
            // below the table's median (about 90%) after 10 evaluations would mean a broken
            // protocol, not bad luck.
            assert!(s.mean > 80.0, "{name}@{budget}: mean {}", s.mean);
        }
    }

    // Determinism: the same comparison, again (runs are parallel; results must not depend on
    // scheduling).
    let again = compare(
        &table,
        &protocol,
        &Strategy::ALL,
        &seeds,
        "nb201 c10",
        &RankerPrompts::default(),
    )
    .unwrap();
    assert_eq!(again.results, cmp.results);
    assert_eq!(again.to_json(), cmp.to_json());
    assert_eq!(again.render(), cmp.render());

    // JSON layout.
    let json = cmp.to_json();
    assert_eq!(json["signal"], "c10_val_12");
    assert_eq!(json["report"], "c10_test_200");
    assert_eq!(json["seeds"], serde_json::json!([0, 1, 2]));
    assert_eq!(json["optimum"], OPTIMUM);
    assert_eq!(json["constraints"], serde_json::json!([]));
    for (name, per_budget) in &cmp.results {
        let entry = json[name.as_str()].as_object().unwrap();
        assert_eq!(entry.keys().collect::<Vec<_>>(), ["10", "50"], "{name}");
        for (budget, s) in per_budget {
            let cell = &entry[&budget.to_string()];
            let keys: Vec<&String> = cell.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 3, "{name}@{budget}: {cell}");
            assert_eq!(cell["mean"].as_f64().unwrap(), s.mean);
            assert_eq!(cell["std"].as_f64().unwrap(), s.std);
            assert_eq!(cell["regret"].as_f64().unwrap(), s.regret);
        }
    }

    // The text table has a header and one row per strategy.
    let text = cmp.render();
    assert_eq!(text.lines().count(), 1 + Strategy::ALL.len());
    assert!(text.lines().next().unwrap().contains("@50"));
}

#[test]
fn compare_means_do_not_decrease_with_the_budget() {
    // When the signal is the report metric, the chosen architecture's value can only improve
    // with more evaluations, run by run, so every mean is non-decreasing in the budget.
    let table = table();
    let mut same = protocol(vec![], 50, vec![10, 20, 50]);
    same.report = "c10_val_12".into();
    let cmp = compare(
        &table,
        &same,
        &Strategy::ALL,
        &[0, 1, 2],
        "nb201",
        &RankerPrompts::default(),
    )
    .unwrap();
    for (name, per_budget) in &cmp.results {
        let means: Vec<f64> = per_budget.values().map(|s| s.mean).collect();
        assert!(means.windows(2).all(|w| w[0] <= w[1]), "{name}: {means:?}");
    }

    // Searching on validation and reporting test, this is not guaranteed run by run (a better
    // validation score can have a worse test score); it holds for these seeds on this table,
    // and all four strategies improve on average from 10 to 50 evaluations.
    let honest = protocol(vec![], 50, vec![10, 50]);
    let cmp = compare(
        &table,
        &honest,
        &Strategy::ALL,
        &[0, 1, 2],
        "nb201",
        &RankerPrompts::default(),
    )
    .unwrap();
    for (name, per_budget) in &cmp.results {
        assert!(
            per_budget[&10].mean <= per_budget[&50].mean,
            "{name}: @10 {:?} > @50 {:?}",
            per_budget[&10],
            per_budget[&50]
        );
    }
}

#[test]
fn compare_summary_is_the_mean_and_sample_std_of_the_runs() {
    // compare's numbers are those of the individual run_on_table runs.
    let table = table();
    let protocol = protocol(vec![], 30, vec![5, 30]);
    let seeds = [3, 4, 5, 6];
    let cmp = compare(
        &table,
        &protocol,
        &[Strategy::Rea],
        &seeds,
        "nb201",
        &RankerPrompts::default(),
    )
    .unwrap();
    let reported: Vec<Vec<f64>> = seeds
        .iter()
        .map(|&seed| {
            let mut searcher = Strategy::Rea.build(seed).unwrap();
            let run = run_on_table(&table.clone(), &protocol, searcher.as_mut(), "nb201").unwrap();
            run.reported.iter().map(|r| r.unwrap()).collect()
        })
        .collect();
    for (k, budget) in [5, 30].into_iter().enumerate() {
        let values: Vec<f64> = reported.iter().map(|r| r[k]).collect();
        let mean = values.iter().sum::<f64>() / 4.0;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0;
        let s = cmp.results[0].1[&budget];
        assert!((s.mean - mean).abs() < 1e-9, "@{budget}");
        assert!((s.std - var.sqrt()).abs() < 1e-9, "@{budget}");
    }
}

// ---------------------------------------------------------------- constraints on the table

#[test]
fn constrained_searches_only_evaluate_admissible_codes() {
    let table = table();
    let latency = table.metric("lat_ms_pixel3").unwrap();
    let constraint: Constraint = "lat_ms_pixel3<=10".parse().unwrap();
    let protocol = protocol(vec![constraint], 60, vec![60]);
    for strategy in Strategy::ALL {
        for seed in 0..3 {
            let mut searcher = strategy.build(seed).unwrap();
            let run = run_on_table(&table.clone(), &protocol, searcher.as_mut(), "nb201").unwrap();
            assert_eq!(run.history.len(), 60);
            for o in run.history.observations() {
                let lat = table.peek(&o.code, latency).unwrap();
                assert!(
                    lat <= 10.0,
                    "{strategy} seed {seed}: {} has pixel3 latency {lat}",
                    table.space().format(&o.code)
                );
            }
        }
    }

    // The constrained optimum is the best admissible architecture, below the unconstrained one.
    let cmp = compare(
        &table,
        &protocol,
        &Strategy::ALL,
        &[0, 1],
        "nb201",
        &RankerPrompts::default(),
    )
    .unwrap();
    let report = table.metric("c10_test_200").unwrap();
    let brute = table
        .space()
        .enumerate()
        .filter(|c| table.peek(c, latency).unwrap() <= 10.0)
        .map(|c| table.peek(&c, report).unwrap())
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(cmp.optimum, brute);
    assert!(cmp.optimum < OPTIMUM, "{}", cmp.optimum);
    let code = table.space().parse(&cmp.optimum_code).unwrap();
    assert!(table.peek(&code, latency).unwrap() <= 10.0);
    for (name, per_budget) in &cmp.results {
        for s in per_budget.values() {
            assert!(s.mean <= cmp.optimum && s.regret >= 0.0, "{name}");
        }
    }
    assert_eq!(
        cmp.to_json()["constraints"],
        serde_json::json!([{"metric": "lat_ms_pixel3", "max": 10.0}])
    );
}

#[test]
fn parameter_constraint_uses_the_analytic_count() {
    let table = table();
    let params = table.metric("c10_params").unwrap();
    let protocol = protocol(vec!["c10_params=800000".parse().unwrap()], 40, vec![40]);
    let mut searcher = Strategy::Local.build(1).unwrap();
    let run = run_on_table(&table, &protocol, searcher.as_mut(), "nb201").unwrap();
    assert_eq!(run.history.len(), 40);
    for o in run.history.observations() {
        let cell = Nb201Cell::from_ncode(&o.code).unwrap();
        let count = arch_space::nb201::Nb201Network::cifar10().params(&cell);
        assert_eq!(table.peek(&o.code, params), Some(count as f64));
        assert!(count <= 800_000, "{cell}: {count} parameters");
    }
}

#[test]
fn a_tight_constraint_ends_the_search_when_the_admissible_codes_run_out() {
    let table = table();
    let latency = table.metric("lat_ms_pixel3").unwrap();
    // The 5 fastest architectures on the Pixel 3 (ties included).
    let mut lats: Vec<f64> = table
        .space()
        .enumerate()
        .map(|c| table.peek(&c, latency).unwrap())
        .collect();
    lats.sort_by(f64::total_cmp);
    let bound = lats[4];
    let admissible: Vec<NCode> = table
        .space()
        .enumerate()
        .filter(|c| table.peek(c, latency).unwrap() <= bound)
        .collect();
    assert!(admissible.len() >= 5 && admissible.len() < 50);
    let protocol = protocol(
        vec![Constraint {
            metric: "lat_ms_pixel3".into(),
            max: bound,
        }],
        50,
        vec![1, 50],
    );
    for strategy in Strategy::ALL {
        let fresh = table.clone();
        let mut searcher = strategy.build(0).unwrap();
        let run = run_on_table(&fresh, &protocol, searcher.as_mut(), "nb201").unwrap();
        assert_eq!(run.history.len(), admissible.len(), "{strategy}");
        assert_eq!(run.evaluations, admissible.len(), "{strategy}");
        let mut seen: Vec<NCode> = run
            .history
            .observations()
            .iter()
            .map(|o| o.code.clone())
            .collect();
        seen.sort();
        assert_eq!(seen, admissible, "{strategy}");
        assert!(run.reported.iter().all(Option::is_some));
    }
}

// ---------------------------------------------------------------- evaluation counting

#[test]
fn run_on_table_counts_one_evaluation_per_history_entry() {
    let table = table();
    let signal = table.metric("c10_val_12").unwrap();
    let report = table.metric("c10_test_200").unwrap();
    for strategy in Strategy::ALL {
        for budget in [0, 1, 17, 64] {
            let fresh = table.clone();
            let protocol = protocol(vec![], budget, vec![budget.min(5), budget]);
            let mut searcher = strategy.build(11).unwrap();
            let run = run_on_table(&fresh, &protocol, searcher.as_mut(), "nb201").unwrap();
            assert_eq!(run.history.len(), budget, "{strategy}");
            assert_eq!(run.evaluations, budget, "{strategy}");
            assert_eq!(fresh.evaluations(), budget, "{strategy}");
            // Every score is the table's signal value, and the report is that of the best
            // signal within each checkpoint.
            for o in run.history.observations() {
                assert_eq!(o.score, fresh.peek(&o.code, signal));
            }
            for (k, &b) in protocol.checkpoints.iter().enumerate() {
                let expected = run
                    .history
                    .best_within(b)
                    .and_then(|o| fresh.peek(&o.code, report));
                assert_eq!(run.reported[k], expected, "{strategy}@{b}");
            }
            if budget == 0 {
                assert_eq!(run.reported, [None, None]);
            }
        }
    }
    // Peeking (constraints, reporting) is free.
    assert_eq!(table.evaluations(), 0);
}

// ---------------------------------------------------------------- errors

#[test]
fn an_unknown_metric_is_an_error_naming_it() {
    let table = table();
    let mut bad_signal = protocol(vec![], 10, vec![10]);
    bad_signal.signal = "c10_val_99".into();
    let mut bad_report = protocol(vec![], 10, vec![10]);
    bad_report.report = "c10_test_999".into();
    let bad_constraint = protocol(vec!["lat_ms_pixel9<=10".parse().unwrap()], 10, vec![10]);
    for (protocol, name) in [
        (&bad_signal, "c10_val_99"),
        (&bad_report, "c10_test_999"),
        (&bad_constraint, "lat_ms_pixel9"),
    ] {
        let mut searcher = Strategy::Random.build(0).unwrap();
        let err = run_on_table(&table, protocol, searcher.as_mut(), "nb201").unwrap_err();
        match &err {
            SearchError::Space(ArchSpaceError::UnknownMetric { name: n, available }) => {
                assert_eq!(n, name);
                assert!(available.contains("c10_val_12"), "{available}");
            }
            other => panic!("expected UnknownMetric, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&format!("`{name}`")), "{message}");
        assert!(message.contains("lat_ms_pixel3"), "{message}");

        let err = compare(
            &table,
            protocol,
            &Strategy::ALL,
            &[0],
            "nb201",
            &RankerPrompts::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains(name));
    }
    // Nothing was evaluated before the protocol was checked.
    assert_eq!(table.evaluations(), 0);
}

// ---------------------------------------------------------------- known bugs

#[test]
fn constraint_parsing_rejects_other_comparisons_and_empty_metrics() {
    for text in ["lat_ms_pixel3>=10", "<=10", "=10"] {
        assert!(
            text.parse::<Constraint>().is_err(),
            "`{text}` parsed as {:?}",
            text.parse::<Constraint>()
        );
    }
}

#[test]
fn run_on_table_counts_only_its_own_evaluations() {
    let table = table();
    let protocol = protocol(vec![], 20, vec![20]);
    for seed in 0..2 {
        let mut searcher = Strategy::Random.build(seed).unwrap();
        let run = run_on_table(&table, &protocol, searcher.as_mut(), "nb201").unwrap();
        assert_eq!(run.evaluations, run.history.len(), "run {seed}");
    }
}

// ---------------------------------------------------------------- protocol helpers

#[test]
fn the_nas_bench_201_protocol_searches_on_validation_and_reports_test() {
    let p = Protocol::nas_bench_201("c10", Signal::Val, 30);
    assert_eq!(
        (p.signal.as_str(), p.report.as_str()),
        ("c10_val_12", "c10_test_200")
    );
    assert_eq!(p.checkpoints, vec![10, 25, 30]);
    let p = Protocol::nas_bench_201("c100", "test".parse().unwrap(), 100);
    assert_eq!(p.signal, "c100_test_200");
    assert_eq!(p.checkpoints, vec![10, 25, 50, 100]);
    let err = "train".parse::<Signal>().unwrap_err().to_string();
    assert!(
        err.contains("`train`") && err.contains("val or test"),
        "{err}"
    );
}

#[test]
fn an_observed_run_sees_every_evaluation_and_equals_the_plain_run() {
    let table = table();
    let protocol = Protocol::nas_bench_201("c10", Signal::Val, 20);
    let mut seen = Vec::new();
    let mut searcher = Strategy::Rea.build(3).unwrap();
    let observed = run_on_table_observed(&table, &protocol, searcher.as_mut(), "nb201", &mut |h| {
        seen.push(h.observations().last().unwrap().clone())
    })
    .unwrap();
    let mut searcher = Strategy::Rea.build(3).unwrap();
    let plain = run_on_table(&table, &protocol, searcher.as_mut(), "nb201").unwrap();
    assert_eq!(seen, observed.history.observations());
    assert_eq!(
        observed.history.observations(),
        plain.history.observations()
    );
    assert_eq!(observed.reported, plain.reported);
}

#[test]
fn tpe_finds_better_cells_than_random_search_on_average() {
    let table = table();
    let protocol = Protocol::nas_bench_201("c10", Signal::Val, 100);
    let mean_best = |strategy: Strategy| {
        let total: f64 = (0..20)
            .map(|seed| {
                let mut searcher = strategy.build(seed).unwrap();
                let run = run_on_table(&table, &protocol, searcher.as_mut(), "nb201").unwrap();
                run.history.best().and_then(|o| o.score).unwrap()
            })
            .sum();
        total / 20.0
    };
    let (tpe, random) = (mean_best(Strategy::Tpe), mean_best(Strategy::Random));
    assert!(tpe > random, "tpe {tpe:.3} vs random {random:.3}");
}
