//! The LLM ranker drops into LM-Searcher's ranking loop unchanged (a tiny random-weight GGUF
//! model written by the test, searching the real NAS-Bench-201 table), the `rank-llm` strategies
//! load their model from a spec, and LM-Searcher's training data is drawn from the same table.

use std::path::PathBuf;

use arch_space::tabular::TabularBenchmark;
use candle_core::Device;
use llm_local::runtime::gguf::Architecture;
use llm_local::runtime::test_gguf::{write_tiny_model, TinyModelOptions};
use llm_local::runtime::GgufModel;
use rand::SeedableRng;
use ranker::training::{trajectories, TrainingConfig};
use ranker::{LlmRanker, RankerPrompts};
use search_loop::benchmark::{compare, run_on_table, Protocol};
use search_loop::{RankingSearch, Strategy};

const TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../datasets/nasbench201/nb201_cifar10.csv"
);

/// A tiny random-weight model in its own directory (`tag` keeps parallel tests apart).
fn tiny_model(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("search-loop-llm-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.gguf");
    let options = TinyModelOptions {
        context_length: 4096,
        ..TinyModelOptions::default()
    };
    write_tiny_model(&path, Architecture::Llama, &options).unwrap();
    (dir, path)
}

fn protocol(budget: usize) -> Protocol {
    Protocol {
        signal: "c10_val_12".into(),
        report: "c10_test_200".into(),
        constraints: vec![],
        budget,
        checkpoints: vec![budget],
    }
}

#[test]
fn llm_ranking_search_runs_on_the_table() {
    let (dir, path) = tiny_model("search");
    let model = GgufModel::load(&path, &Device::Cpu).unwrap();
    let mut search = RankingSearch::with_settings(LlmRanker::new(model), 0, 4, 3);
    let table = TabularBenchmark::load(TABLE).unwrap();
    let run = run_on_table(
        &table,
        &protocol(8),
        &mut search,
        "NAS-Bench-201 on CIFAR-10",
    )
    .unwrap();
    assert_eq!(run.history.len(), 8);
    assert_eq!(run.evaluations, 8);
    assert!(run.reported[0].is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rank_llm_strategies_load_their_model_and_compare_with_the_others() {
    let (dir, path) = tiny_model("strategy");
    let list = format!(
        "random,rank-llm:{p},rank-llm-chrono:{p}",
        p = path.display()
    );
    let strategies = Strategy::parse_list(&list).unwrap();
    let table = TabularBenchmark::load(TABLE).unwrap();
    let cmp = compare(
        &table,
        &protocol(7),
        &strategies,
        &[0, 1],
        "NB201",
        &RankerPrompts::default(),
    )
    .unwrap();
    let names: Vec<&str> = cmp.results.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<String> = strategies.iter().map(Strategy::to_string).collect();
    assert_eq!(names, expected);
    for (name, per_budget) in &cmp.results {
        let summary = per_budget.get(&7).unwrap_or_else(|| panic!("{name}"));
        assert!(summary.mean > 0.0 && summary.regret >= 0.0, "{name}");
    }
    // A spec that names no model is an error of the comparison, not a panic.
    let missing = Strategy::parse_list("rank-llm:/nonexistent/dir/model.gguf").unwrap();
    let err = compare(
        &table,
        &protocol(7),
        &missing,
        &[0],
        "NB201",
        &RankerPrompts::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/dir/model.gguf"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `Candidates:` lines of a ranking prompt.
fn candidate_lines(user: &str) -> Vec<&str> {
    user.lines()
        .skip_while(|l| *l != "Candidates:")
        .skip(1)
        .take_while(|l| !l.starts_with("Answer"))
        .collect()
}

#[test]
fn training_data_from_the_table_parses_and_answers_the_best_candidate() {
    let table = TabularBenchmark::load(TABLE).unwrap();
    let signal = table.metric("c10_val_12").unwrap();
    let config = TrainingConfig {
        steps: 8,
        ..TrainingConfig::default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let score = |code: &ncode::NCode| table.peek(code, signal);
    let trajectories = trajectories(table.space(), "NB201", &config, 3, score, &mut rng).unwrap();
    let mut jsonl = String::new();
    for t in &trajectories {
        for ex in &t.examples {
            jsonl.push_str(&serde_json::to_string(&ex.to_sharegpt()).unwrap());
            jsonl.push('\n');
            jsonl.push_str(&serde_json::to_string(&ex.to_alpaca()).unwrap());
            jsonl.push('\n');
        }
    }
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2 * 3 * 8);
    let mut records = lines.chunks(2);
    for t in &trajectories {
        let sub = t.subspace.space();
        let size = sub.size().unwrap();
        assert_eq!(t.examples.len(), 8, "{size} architectures");
        for _ in &t.examples {
            let pair = records.next().unwrap();
            let turns = pair[0]["conversations"].as_array().unwrap();
            let from: Vec<&str> = turns.iter().map(|t| t["from"].as_str().unwrap()).collect();
            assert_eq!(from, ["system", "human", "gpt"]);
            let (user, answer) = (
                turns[1]["value"].as_str().unwrap(),
                turns[2]["value"].as_str().unwrap(),
            );
            assert_eq!(pair[1]["instruction"], turns[1]["value"]);
            assert_eq!(pair[1]["output"], turns[2]["value"]);
            assert_eq!(pair[1]["system"], turns[0]["value"]);
            // Every candidate is a valid subspace code; the answer is one of them with the best
            // table score (looked up through the parent code).
            let val = |text: &str| {
                let code = sub.parse(text).unwrap();
                table
                    .peek(&t.subspace.to_parent(&code).unwrap(), signal)
                    .unwrap()
            };
            let candidates = candidate_lines(user);
            assert!(
                candidates.contains(&answer),
                "{answer} not in {candidates:?}"
            );
            let top = candidates.iter().map(|c| val(c)).fold(f64::MIN, f64::max);
            assert_eq!(val(answer), top);
        }
    }
}
