//! Comparing strategies on a tabular benchmark, with an honest protocol.
//!
//! A search reads one metric (the *signal*, e.g. `c10_val_12`, the 12-epoch validation
//! accuracy) and is judged on another (the *report* metric, e.g. `c10_test_200`): at each
//! checkpoint budget, the architecture with the best signal among the evaluations so far is
//! chosen and its report metric is recorded. Constraints (`lat_ms_pixel3<=10`,
//! `c10_params<=800000`) restrict both the search and the optimum that regret is measured against.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use arch_space::tabular::TabularBenchmark;
use ncode::NCode;
use ranker::RankerPrompts;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::retrain::MeanStd;
use crate::{History, SearchContext, SearchError, Searcher, Strategy};

/// An upper bound on a metric of the table, e.g. `lat_ms_pixel3<=10`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    /// Metric name (a column of the table, or an analytic count such as `c10_params`).
    pub metric: String,
    /// Largest admissible value.
    pub max: f64,
}

impl FromStr for Constraint {
    type Err = SearchError;
    /// Reads `METRIC<=VALUE` or `METRIC=VALUE`.
    fn from_str(text: &str) -> Result<Self, SearchError> {
        let bad = |reason: &str| SearchError::Constraint {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (metric, value) = text
            .split_once("<=")
            .or_else(|| text.split_once('='))
            .ok_or_else(|| bad("expected METRIC<=VALUE, e.g. lat_ms_pixel3<=10"))?;
        let metric = metric.trim();
        if metric.is_empty()
            || !metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(bad(
                "the metric must be a column name (letters, digits, `_`); only upper bounds \
                 (`<=`) are supported",
            ));
        }
        let max = value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad("the bound is not a number"))?;
        Ok(Constraint {
            metric: metric.to_string(),
            max,
        })
    }
}

/// Which NAS-Bench-201 column a search reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// `<dataset>_val_12`, the 12-epoch validation accuracy (the honest protocol).
    Val,
    /// `<dataset>_test_200` itself, the reported column (optimistic; as some papers do).
    Test,
}

impl FromStr for Signal {
    type Err = SearchError;
    fn from_str(s: &str) -> Result<Self, SearchError> {
        match s {
            "val" => Ok(Signal::Val),
            "test" => Ok(Signal::Test),
            other => Err(SearchError::Invalid {
                what: "signal",
                text: other.to_string(),
                expected: "val or test",
            }),
        }
    }
}

/// What to search on, what to report, under which constraints, and when to look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// Metric the searchers see as their score.
    pub signal: String,
    /// Metric reported for the chosen architecture.
    pub report: String,
    /// Constraints every proposal satisfies.
    pub constraints: Vec<Constraint>,
    /// Evaluations per search.
    pub budget: usize,
    /// Budgets at which the chosen architecture is reported (each at most `budget`).
    pub checkpoints: Vec<usize>,
}

impl Protocol {
    /// NAS-Bench-201's protocol for a column prefix (`c10`, `c100`, `in16`): search on
    /// `<prefix>_val_12` ([`Signal::Val`]) or `<prefix>_test_200`, report `<prefix>_test_200`,
    /// no constraints, checkpoints at 10, 25, 50 and 100 evaluations below `budget` and at
    /// `budget`.
    pub fn nas_bench_201(prefix: &str, signal: Signal, budget: usize) -> Protocol {
        let report = format!("{prefix}_test_200");
        Protocol {
            signal: match signal {
                Signal::Val => format!("{prefix}_val_12"),
                Signal::Test => report.clone(),
            },
            report,
            constraints: Vec::new(),
            budget,
            checkpoints: [10, 25, 50, 100]
                .into_iter()
                .filter(|&b| b < budget)
                .chain([budget])
                .collect(),
        }
    }
}

/// One search on the table.
#[derive(Debug, Clone)]
pub struct TabularRun {
    /// Every evaluation, scored by the signal.
    pub history: History,
    /// Report metric of the chosen architecture at each checkpoint.
    pub reported: Vec<Option<f64>>,
    /// Evaluations the table counted during this run.
    pub evaluations: usize,
}

/// Metric indices of a protocol, resolved against a table.
pub(crate) struct Resolved {
    signal: usize,
    report: usize,
    constraints: Vec<(usize, f64)>,
}

impl Resolved {
    pub(crate) fn new(table: &TabularBenchmark, protocol: &Protocol) -> Result<Self, SearchError> {
        Ok(Resolved {
            signal: table.metric(&protocol.signal)?,
            report: table.metric(&protocol.report)?,
            constraints: protocol
                .constraints
                .iter()
                .map(|c| Ok((table.metric(&c.metric)?, c.max)))
                .collect::<Result<_, SearchError>>()?,
        })
    }

    pub(crate) fn admissible(&self, table: &TabularBenchmark, code: &NCode) -> bool {
        self.constraints
            .iter()
            .all(|&(m, max)| table.peek(code, m).is_some_and(|v| v <= max))
    }
}

/// Runs one search for `protocol.budget` evaluations (fewer if the admissible space runs out).
pub fn run_on_table(
    table: &TabularBenchmark,
    protocol: &Protocol,
    searcher: &mut dyn Searcher,
    task: &str,
) -> Result<TabularRun, SearchError> {
    run_on_table_observed(table, protocol, searcher, task, &mut |_| {})
}

/// [`run_on_table`], calling `observe` with the history after each evaluation (for progress
/// output: the last entry is the new evaluation).
pub fn run_on_table_observed(
    table: &TabularBenchmark,
    protocol: &Protocol,
    searcher: &mut dyn Searcher,
    task: &str,
    observe: &mut dyn FnMut(&History),
) -> Result<TabularRun, SearchError> {
    let resolved = Resolved::new(table, protocol)?;
    let evaluations_before = table.evaluations();
    let admissible = |code: &NCode| resolved.admissible(table, code);
    let ctx = SearchContext {
        space: table.space(),
        admissible: &admissible,
        task,
    };
    let mut history = History::new();
    while history.len() < protocol.budget {
        let code = match searcher.propose(&ctx, &history) {
            Ok(code) => code,
            Err(SearchError::Exhausted { .. }) => break,
            Err(e) => return Err(e),
        };
        let score = table.evaluate(&code, resolved.signal)?;
        history.push(ranker::Observation { code, score });
        observe(&history);
    }
    let evaluations = table.evaluations() - evaluations_before;
    Ok(TabularRun::new(
        table,
        protocol,
        &resolved,
        history,
        evaluations,
    ))
}

impl TabularRun {
    /// The run of a finished history: the report metric of the chosen architecture at each
    /// checkpoint.
    pub(crate) fn new(
        table: &TabularBenchmark,
        protocol: &Protocol,
        resolved: &Resolved,
        history: History,
        evaluations: usize,
    ) -> Self {
        let reported = protocol
            .checkpoints
            .iter()
            .map(|&b| {
                history
                    .best_within(b)
                    .and_then(|o| table.peek(&o.code, resolved.report))
            })
            .collect();
        TabularRun {
            history,
            reported,
            evaluations,
        }
    }
}

/// Mean and sample standard deviation (n - 1) of a set of runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for a single run).
    pub std: f64,
    /// Mean regret: optimum minus value.
    pub regret: f64,
}

impl Summary {
    fn of(values: &[f64], optimum: f64) -> Option<Self> {
        let MeanStd { mean, std } = MeanStd::of(values)?;
        Some(Summary {
            mean,
            std,
            regret: optimum - mean,
        })
    }
}

/// The result of [`compare`]: every strategy at every checkpoint, against the optimum.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The protocol used.
    pub protocol: Protocol,
    /// Seeds run per strategy.
    pub seeds: Vec<u64>,
    /// Best admissible value of the report metric in the table.
    pub optimum: f64,
    /// The architecture holding it, in text form.
    pub optimum_code: String,
    /// `strategy -> checkpoint budget -> summary`, strategies in the requested order.
    pub results: Vec<(String, BTreeMap<usize, Summary>)>,
}

/// Runs every strategy with every seed; each run is deterministic for its seed. Table-only
/// strategies run in parallel; LLM strategies run one after the other, each run loading its own
/// model (so at most one model is loaded at a time) and laying out its prompts with `prompts`.
/// Each finished run is logged at `info` level through `tracing`.
pub fn compare(
    table: &TabularBenchmark,
    protocol: &Protocol,
    strategies: &[Strategy],
    seeds: &[u64],
    task: &str,
    prompts: &RankerPrompts,
) -> Result<Comparison, SearchError> {
    let jobs: Vec<(&Strategy, u64)> = strategies
        .iter()
        .flat_map(|s| seeds.iter().map(move |&seed| (s, seed)))
        .collect();
    let run = |&(strategy, seed): &(&Strategy, u64)| {
        let started = std::time::Instant::now();
        let mut searcher = strategy.build_with(seed, prompts.clone())?;
        let run = run_on_table(&table.clone(), protocol, searcher.as_mut(), task)?;
        tracing::info!(
            "{strategy} seed {seed}: {} evaluations, reported {:?} ({:.1} s)",
            run.history.len(),
            run.reported,
            started.elapsed().as_secs_f64()
        );
        Ok::<_, SearchError>(run)
    };
    // Table-only searches run in parallel; searches that load a model run afterwards, one at a
    // time, so that one model is in memory and it has every thread.
    let table_only: Vec<Option<TabularRun>> = jobs
        .par_iter()
        .map(|job| (job.0.model_spec().is_none()).then(|| run(job)).transpose())
        .collect::<Result<_, _>>()?;
    let runs: Vec<TabularRun> = jobs
        .iter()
        .zip(table_only)
        .map(|(job, done)| done.map_or_else(|| run(job), Ok))
        .collect::<Result<_, _>>()?;
    Comparison::of_runs(table, protocol, strategies, seeds, &runs)
}

impl Comparison {
    /// The comparison of finished runs, given strategy by strategy and within each seed by seed
    /// (as [`compare`] runs them).
    pub fn of_runs(
        table: &TabularBenchmark,
        protocol: &Protocol,
        strategies: &[Strategy],
        seeds: &[u64],
        runs: &[TabularRun],
    ) -> Result<Comparison, SearchError> {
        if runs.len() != strategies.len() * seeds.len() {
            return Err(SearchError::Invalid {
                what: "list of runs",
                text: format!("{} runs", runs.len()),
                expected: "one run per strategy and seed",
            });
        }
        let resolved = Resolved::new(table, protocol)?;
        let (best_code, optimum) = table
            .best(resolved.report, |c| resolved.admissible(table, c))
            .ok_or_else(|| SearchError::Exhausted {
                searcher: "optimum".into(),
                tried: 0,
            })?;
        let results = strategies
            .iter()
            .enumerate()
            .map(|(s, strategy)| {
                let mine = &runs[s * seeds.len()..(s + 1) * seeds.len()];
                let per_budget = protocol
                    .checkpoints
                    .iter()
                    .enumerate()
                    .filter_map(|(k, &budget)| {
                        let values: Vec<f64> = mine.iter().filter_map(|r| r.reported[k]).collect();
                        Summary::of(&values, optimum).map(|s| (budget, s))
                    })
                    .collect();
                (strategy.to_string(), per_budget)
            })
            .collect();
        Ok(Comparison {
            protocol: protocol.clone(),
            seeds: seeds.to_vec(),
            optimum,
            optimum_code: table.space().format(&best_code),
            results,
        })
    }

    /// `{"strategy": {"budget": {"mean", "std", "regret"}}}`, plus the protocol under
    /// `signal`, `report`, `constraints`, `seeds` and `optimum`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut root = serde_json::Map::new();
        for (name, per_budget) in &self.results {
            let inner: serde_json::Map<String, serde_json::Value> = per_budget
                .iter()
                .map(|(b, s)| (b.to_string(), serde_json::json!(s)))
                .collect();
            root.insert(name.clone(), inner.into());
        }
        root.insert("signal".into(), self.protocol.signal.clone().into());
        root.insert("report".into(), self.protocol.report.clone().into());
        root.insert(
            "constraints".into(),
            serde_json::json!(self.protocol.constraints),
        );
        root.insert("seeds".into(), serde_json::json!(self.seeds));
        root.insert("optimum".into(), self.optimum.into());
        root.into()
    }

    /// A plain-text table: one row per strategy, `mean +- std` per checkpoint, and the regret at
    /// the last checkpoint.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let checkpoints = &self.protocol.checkpoints;
        let width = self
            .results
            .iter()
            .map(|(name, _)| name.len() + 1)
            .fold(14, usize::max);
        let _ = write!(out, "{:<width$}", "strategy");
        for b in checkpoints {
            let _ = write!(out, "{:>17}", format!("@{b}"));
        }
        let _ = writeln!(out, "{:>10}", "regret");
        for (name, per_budget) in &self.results {
            let _ = write!(out, "{name:<width$}");
            for b in checkpoints {
                let cell = per_budget.get(b).map_or("-".to_string(), |s| {
                    format!("{:.2} +- {:.2}", s.mean, s.std)
                });
                let _ = write!(out, "{cell:>17}");
            }
            let regret = checkpoints
                .last()
                .and_then(|b| per_budget.get(b))
                .map_or("-".to_string(), |s| format!("{:.2}", s.regret));
            let _ = writeln!(out, "{regret:>10}");
        }
        out
    }
}
