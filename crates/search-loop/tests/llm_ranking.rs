//! The LLM ranker drops into LM-Searcher's ranking loop unchanged (a tiny random-weight GGUF
//! model written by the test, searching the real NAS-Bench-201 table).

use arch_space::tabular::TabularBenchmark;
use candle_core::Device;
use llm_local::runtime::gguf::Architecture;
use llm_local::runtime::test_gguf::{write_tiny_model, TinyModelOptions};
use llm_local::runtime::GgufModel;
use ranker::LlmRanker;
use search_loop::benchmark::{run_on_table, Protocol};
use search_loop::RankingSearch;

const TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../datasets/nasbench201/nb201_cifar10.csv"
);

#[test]
fn llm_ranking_search_runs_on_the_table() {
    let dir = std::env::temp_dir().join(format!("search-loop-llm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.gguf");
    let options = TinyModelOptions {
        context_length: 4096,
        ..TinyModelOptions::default()
    };
    write_tiny_model(&path, Architecture::Llama, &options).unwrap();
    let model = GgufModel::load(&path, &Device::Cpu).unwrap();
    let mut search = RankingSearch::with_settings(LlmRanker::new(model), 0, 4, 3);
    let table = TabularBenchmark::load(TABLE).unwrap();
    let protocol = Protocol {
        signal: "c10_val_12".into(),
        report: "c10_test_200".into(),
        constraints: vec![],
        budget: 8,
        checkpoints: vec![8],
    };
    let run = run_on_table(&table, &protocol, &mut search, "NAS-Bench-201 on CIFAR-10").unwrap();
    assert_eq!(run.history.len(), 8);
    assert_eq!(run.evaluations, 8);
    assert!(run.reported[0].is_some());
    let _ = std::fs::remove_dir_all(&dir);
}
