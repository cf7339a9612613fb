//! LM-Searcher's prompt and the LLM ranker on a real (tiny, random-weight) GGUF model.

use candle_core::Device;
use llm_local::runtime::gguf::Architecture;
use llm_local::runtime::test_gguf::{write_tiny_model, TinyModelOptions};
use llm_local::runtime::GgufModel;
use ncode::{Dimension, NCode, SearchSpace};
use ranker::{
    ranking_prompt, LlmRanker, Observation, Pick, PromptStyle, Ranker, RankerError, RankerPrompts,
    RankingRequest,
};

fn space() -> SearchSpace {
    SearchSpace::new(
        "toy",
        (0..3)
            .map(|i| Dimension::labels(format!("op{i}"), ["a", "b", "c"]))
            .collect(),
    )
    .unwrap()
}

fn obs(code: &[u16], score: Option<f64>) -> Observation {
    Observation {
        code: NCode::new(code.to_vec()),
        score,
    }
}

#[test]
fn best_first_prompt_normalises_and_sorts() {
    let space = space();
    let history = [
        obs(&[0, 0, 0], Some(80.0)),
        obs(&[1, 1, 1], Some(90.0)),
        obs(&[2, 2, 2], None),
        obs(&[0, 1, 2], Some(85.0)),
    ];
    let pool = [NCode::new(vec![2, 1, 0]), NCode::new(vec![1, 2, 0])];
    let request = RankingRequest {
        space: &space,
        task: "toy task",
        history: &history,
        candidates: &pool,
    };
    let messages = ranking_prompt(&request, PromptStyle::BestFirst, 50);
    assert!(messages[0]
        .content
        .contains("position 1 `op1`: 0=a, 1=b, 2=c"));
    let user = &messages[1].content;
    let expected = "Task: toy task\nEvaluated architectures, best first (ncode|normalised score):\n111|1.0000\n012|0.5000\n000|0.0000\n222|failed\nCandidates:\n210\n120\nAnswer with the NCode of the best candidate only.";
    assert_eq!(user, expected);
    // Only the best lines survive a short history.
    let short = ranking_prompt(&request, PromptStyle::BestFirst, 2);
    assert!(
        short[1]
            .content
            .contains("111|1.0000\n012|0.5000\nCandidates:"),
        "{}",
        short[1].content
    );
}

#[test]
fn equal_scores_do_not_divide_by_zero() {
    let space = space();
    let history = [obs(&[0, 0, 0], Some(5.0)), obs(&[1, 1, 1], Some(5.0))];
    let pool = [NCode::new(vec![2, 2, 2])];
    let request = RankingRequest {
        space: &space,
        task: "t",
        history: &history,
        candidates: &pool,
    };
    let user = &ranking_prompt(&request, PromptStyle::BestFirst, 50)[1].content;
    assert!(user.contains("000|1.0000\n111|1.0000"), "{user}");
}

#[test]
fn chronological_prompt_extends_and_ends_with_the_best() {
    let space = space();
    let history = [
        obs(&[0, 0, 0], Some(1.0)),
        obs(&[1, 1, 1], Some(3.0)),
        obs(&[2, 2, 2], Some(2.0)),
    ];
    let pool = [NCode::new(vec![0, 1, 2])];
    let request = RankingRequest {
        space: &space,
        task: "t",
        history: &history,
        candidates: &pool,
    };
    let user = &ranking_prompt(&request, PromptStyle::Chronological, 50)[1].content;
    assert!(user.contains("in order (ncode|normalised score):\n000|0.0000\n111|1.0000\n222|0.5000\nBest so far:\n111|1.0000\n222|0.5000\n000|0.0000\n"), "{user}");
    // The history part of a longer history starts the same way: a prefix cache can serve it.
    let more = [
        history[0].clone(),
        history[1].clone(),
        history[2].clone(),
        obs(&[0, 1, 0], Some(0.0)),
    ];
    let request = RankingRequest {
        space: &space,
        task: "t",
        history: &more,
        candidates: &pool,
    };
    let longer = &ranking_prompt(&request, PromptStyle::Chronological, 50)[1].content;
    assert!(longer.starts_with("Task: t\nEvaluated architectures, in order"));
}

#[test]
fn the_llm_ranker_always_picks_from_the_pool() {
    let dir = std::env::temp_dir().join(format!("ranker-llm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.gguf");
    write_tiny_model(&path, Architecture::Qwen2, &TinyModelOptions::default()).unwrap();
    let model = GgufModel::load(&path, &Device::Cpu).unwrap();
    let mut ranker = LlmRanker::new(model);
    assert_eq!(ranker.name(), "llm:tiny");
    let space = space();
    let history = [obs(&[0, 0, 0], Some(80.0)), obs(&[1, 1, 1], Some(90.0))];
    let pool: Vec<NCode> = [[2, 1, 0], [1, 2, 0], [0, 2, 1]]
        .iter()
        .map(|c| NCode::new(c.to_vec()))
        .collect();
    let request = RankingRequest {
        space: &space,
        task: "toy",
        history: &history,
        candidates: &pool,
    };
    let first = ranker.choose(&request).unwrap();
    assert!(first < pool.len());
    assert_eq!(
        ranker.choose(&request).unwrap(),
        first,
        "the pick is deterministic"
    );
    let empty = RankingRequest {
        candidates: &[],
        ..request
    };
    assert!(ranker.choose(&empty).is_err());
    // Generation under a choice constraint: even random weights write a candidate.
    let mut generating = ranker.with_pick(Pick::Generate);
    let generated = generating.choose(&request).unwrap();
    assert!(generated < pool.len());
    assert_eq!(generating.choose(&request).unwrap(), generated);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A backend that cannot score (an OpenAI-compatible server; here llama.cpp's server replayed
/// from a recording) still ranks: the pick is read from its reply, exactly one candidate named.
#[test]
fn a_remote_backend_ranks_from_its_reply() {
    use llm_local::openai::replay::{Recorded, ReplayServer};
    use llm_local::openai::OpenAiModel;

    let recorded = include_str!("../../llm-local/tests/fixtures/openai_llamacpp_server.json");
    let responses: std::collections::BTreeMap<String, Recorded> =
        serde_json::from_str(recorded).unwrap();
    let server = ReplayServer::start(responses).unwrap();
    let space = arch_space_like_nb201();
    let history = [obs(&[3, 3, 3, 3, 3, 3], Some(0.9)), obs(&[0; 6], Some(0.1))];
    let pool = ["120301", "333332", "001100"].map(|c| space.parse(c).unwrap());
    let request = RankingRequest {
        space: &space,
        task: "NAS-Bench-201 cells on CIFAR-10",
        history: &history,
        candidates: &pool,
    };
    let model = OpenAiModel::connect(&format!("openai:{}#smollm2", server.base_url())).unwrap();
    let mut ranker = LlmRanker::new(model);
    // The recorded reply: "The best candidate is 333332. ... the highest score, which is 100%".
    assert_eq!(ranker.choose(&request).unwrap(), 1);
    assert_eq!(server.received().len(), 1, "named on the first reply");

    // Under a choice constraint the server (which cannot enforce one) is asked three times,
    // then the candidate is read from the last reply.
    let model = OpenAiModel::connect(&format!("openai:{}#smollm2", server.base_url())).unwrap();
    let mut ranker = LlmRanker::new(model).with_pick(Pick::Generate);
    assert_eq!(ranker.choose(&request).unwrap(), 1);
    assert_eq!(
        server.received().len(),
        1 + llm_local::openai::CONSTRAINT_ATTEMPTS
    );
}

/// Six positions of five operations, as NAS-Bench-201 (the ranker crate does not see arch-space).
fn arch_space_like_nb201() -> SearchSpace {
    let ops = ["none", "skip", "conv1x1", "conv3x3", "avgpool3x3"];
    SearchSpace::new(
        "nb201-like",
        (0..6)
            .map(|i| Dimension::labels(format!("edge{i}"), ops))
            .collect(),
    )
    .unwrap()
}

#[test]
fn the_default_templates_give_lm_searchers_prompt_exactly() {
    let space = SearchSpace::new(
        "toy",
        vec![
            Dimension::labels("op0", ["a", "b", "c"]),
            Dimension::ints("w", 0..3),
        ],
    )
    .unwrap();
    let history = [
        obs(&[0, 0], Some(3.0)),
        obs(&[1, 2], None),
        obs(&[2, 1], Some(7.0)),
        obs(&[1, 1], Some(4.0)),
        obs(&[0, 2], Some(5.5)),
    ];
    let pool = [NCode::new(vec![2, 2]), NCode::new(vec![2, 0])];
    let request = RankingRequest {
        space: &space,
        task: "toy",
        history: &history,
        candidates: &pool,
    };
    let messages = RankerPrompts::default()
        .messages(&request, PromptStyle::Chronological, 3)
        .unwrap();
    assert_eq!(
        messages,
        ranking_prompt(&request, PromptStyle::Chronological, 3)
    );
    assert_eq!(
        messages[0].content,
        "You are an expert in neural architecture search. Architectures are written as NCodes: one choice index per dimension of the search space. You pick the candidate most likely to score highest.\nSearch space `toy`:\n- position 0 `op0`: 0=a, 1=b, 2=c\n- position 1 `w`: 0=0, 1=1, 2=2"
    );
    assert_eq!(
        messages[1].content,
        "Task: toy\nEvaluated architectures, in order (ncode|normalised score):\n21|1.0000\n11|0.2500\n02|0.6250\nBest so far:\n21|1.0000\n02|0.6250\n11|0.2500\nCandidates:\n22\n20\nAnswer with the NCode of the best candidate only."
    );
}

#[test]
fn a_template_directory_overrides_the_user_message_only_and_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("ranker-prompts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ranker_user.j2"),
        "{{ task }} [{{ style }}]\n{% for h in history %}{{ h.ncode }}={{ h.value }};{% endfor %}\n{{ candidates | join(\" \") }}\n",
    )
    .unwrap();
    let space = space();
    let history = [obs(&[0, 0, 0], Some(1.0)), obs(&[1, 1, 1], Some(3.0))];
    let pool = [NCode::new(vec![2, 2, 2]), NCode::new(vec![0, 1, 2])];
    let request = RankingRequest {
        space: &space,
        task: "toy",
        history: &history,
        candidates: &pool,
    };
    let custom = RankerPrompts::from_dir(&dir).unwrap();
    let messages = custom
        .messages(&request, PromptStyle::BestFirst, 50)
        .unwrap();
    let defaults = ranking_prompt(&request, PromptStyle::BestFirst, 50);
    assert_eq!(
        messages[0], defaults[0],
        "the system message is the default"
    );
    assert_eq!(
        messages[1].content,
        "toy [best_first]\n111=1.0;000=0.0;222 012"
    );

    std::fs::write(dir.join("ranker_user.j2"), "{{ task }}\n{{ histroy }}").unwrap();
    let path = dir.join("tiny.gguf");
    write_tiny_model(&path, Architecture::Qwen2, &TinyModelOptions::default()).unwrap();
    let model = GgufModel::load(&path, &Device::Cpu).unwrap();
    let mut ranker = LlmRanker::new(model).with_prompts(RankerPrompts::from_dir(&dir).unwrap());
    let err = ranker.choose(&request).unwrap_err();
    assert!(matches!(err, RankerError::Prompt(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("ranker_user.j2, line 2") && text.contains("undefined"),
        "{text}"
    );

    std::fs::write(dir.join("ranker_user.j2"), "{% if %}").unwrap();
    let text = RankerPrompts::from_dir(&dir).unwrap_err().to_string();
    assert!(text.contains("ranker_user.j2, line 1"), "{text}");
    std::fs::remove_file(dir.join("ranker_user.j2")).unwrap();
    std::fs::write(dir.join("generator_user.j2"), "").unwrap();
    let text = RankerPrompts::from_dir(&dir).unwrap_err().to_string();
    assert!(
        text.contains("generator_user.j2") && text.contains("ranker_system.j2, ranker_user.j2"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
