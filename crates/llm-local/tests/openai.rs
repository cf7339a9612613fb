#![cfg(feature = "openai")]
//! The OpenAI-compatible backend against responses recorded from a real llama.cpp server
//! (llama-cpp-python 0.3.36's `llama_cpp.server` serving SmolLM2-135M-Instruct; see
//! `fixtures/openai_llamacpp_server.json`), replayed by a local HTTP server.

use std::collections::BTreeMap;

use llm_local::openai::replay::{Recorded, ReplayServer};
use llm_local::openai::{OpenAiModel, CONSTRAINT_ATTEMPTS};
use llm_local::{
    Constraint, Enforcement, FinishReason, LanguageModel, LlmError, Message, Sampling,
};

const RECORDED: &str = include_str!("fixtures/openai_llamacpp_server.json");

fn server() -> ReplayServer {
    let responses: BTreeMap<String, Recorded> = serde_json::from_str(RECORDED).unwrap();
    ReplayServer::start(responses).unwrap()
}

#[test]
fn the_model_comes_from_the_server_when_the_spec_names_none() {
    let server = server();
    let model = OpenAiModel::connect(&format!("openai:{}", server.base_url())).unwrap();
    assert_eq!(model.model(), "smollm2");
    let named = OpenAiModel::connect(&format!("openai:{}/#other", server.base_url())).unwrap();
    assert_eq!(named.model(), "other");
    assert_eq!(
        server.received().len(),
        1,
        "only the first spec asks for /models"
    );
}

#[test]
fn chat_and_completion_send_the_sampling_and_read_text_and_usage() {
    let server = server();
    let mut model = OpenAiModel::connect(&format!("openai:{}#smollm2", server.base_url())).unwrap();
    let messages = [Message::system("Be brief."), Message::user("Pick one.")];
    let sampling = Sampling {
        max_tokens: 32,
        stop: vec!["\n".into()],
        ..Sampling::default()
    };
    let mut streamed = String::new();
    let mut on_text = |t: &str| streamed.push_str(t);
    let reply = model
        .chat(&messages, &sampling, Some(&mut on_text))
        .unwrap();
    assert!(
        reply.text.starts_with("The best candidate is 333332."),
        "{}",
        reply.text
    );
    assert_eq!(streamed, reply.text);
    assert_eq!(reply.usage.completion_tokens, 32);
    assert_eq!(reply.finish, FinishReason::Length);

    let completion = model
        .complete("The capital of France is", &Sampling::default(), None)
        .unwrap();
    assert!(completion.text.starts_with(" Paris."));

    let requests = server.received();
    let chat = &requests[0];
    assert_eq!(
        (chat.method.as_str(), chat.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(chat.body["messages"][0]["role"], "system");
    assert_eq!(chat.body["max_tokens"], 32);
    assert_eq!(chat.body["stop"][0], "\n");
    assert_eq!(chat.body["model"], "smollm2");
    assert!(chat.body.get("top_k").is_none() && chat.body.get("repeat_penalty").is_none());
    assert_eq!(requests[1].body["prompt"], "The capital of France is");
}

#[test]
fn server_errors_and_unsupported_requests_are_clear_errors() {
    let server = server();
    let base = server.base_url().trim_end_matches("/v1");
    let mut bad = OpenAiModel::connect(&format!("openai:{base}/bad/v1#smollm2")).unwrap();
    let err = bad
        .chat(&[Message::user("x")], &Sampling::default(), None)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("HTTP 500") && text.contains("1 validation error"),
        "{text}"
    );
    assert!(!text.contains('\n'), "one line: {text}");

    let mut model = OpenAiModel::connect(&format!("openai:{}#smollm2", server.base_url())).unwrap();
    assert!(matches!(
        model.score("a", &["b".into()]),
        Err(LlmError::Unsupported(_))
    ));
    assert!(matches!(
        model.choose("a", &["b".into()]),
        Err(LlmError::Unsupported(_))
    ));
    let missing = OpenAiModel::connect(&format!("openai:{}/missing/v1", base)).unwrap_err();
    assert!(missing.to_string().contains("HTTP 404"), "{missing}");
    for spec in ["openai:localhost:8080/v1", "hf:x/y/z.gguf"] {
        assert!(OpenAiModel::connect(spec).is_err(), "{spec}");
    }
}

#[test]
fn a_server_that_is_not_there_is_a_clear_error() {
    let err = OpenAiModel::connect("openai:http://127.0.0.1:9/v1").unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
}

#[test]
fn constrained_answers_are_checked_and_asked_for_again() {
    let server = server();
    let mut model = OpenAiModel::connect(&format!("openai:{}#smollm2", server.base_url())).unwrap();
    let messages = [Message::user("Pick one.")];
    let constrained = |constraint: Constraint| Sampling {
        constraint: Some(constraint),
        ..Sampling::default()
    };
    // The recorded reply starts "The best candidate is 333332.": it matches this regex ...
    let reply = model
        .chat(
            &messages,
            &constrained(Constraint::Regex(
                "The best candidate is [0-9]{6}(.|\n)*".into(),
            )),
            None,
        )
        .unwrap();
    assert_eq!(
        reply.enforcement,
        Enforcement::Checked {
            attempts: 1,
            valid: true
        }
    );
    // ... but not a choice between two other candidates: three attempts with three seeds.
    let before = server.received().len();
    let reply = model
        .chat(
            &messages,
            &constrained(Constraint::Choice(vec!["000000".into(), "111111".into()])),
            None,
        )
        .unwrap();
    assert_eq!(
        reply.enforcement,
        Enforcement::Checked {
            attempts: CONSTRAINT_ATTEMPTS,
            valid: false
        }
    );
    let requests = server.received();
    let seeds: Vec<_> = requests[before..]
        .iter()
        .map(|r| r.body["seed"].clone())
        .collect();
    assert_eq!(seeds, [0, 1, 2]);
    assert!(requests[before].body.get("response_format").is_none());

    // A JSON Schema travels as the standard `response_format`.
    let schema = r#"{"type":"object","properties":{"pick":{"type":"string"}}}"#;
    let _ = model.chat(
        &messages,
        &constrained(Constraint::JsonSchema(schema.into())),
        None,
    );
    let last = server.received().last().cloned().unwrap();
    assert_eq!(last.body["response_format"]["type"], "json_schema");
    assert_eq!(
        last.body["response_format"]["json_schema"]["schema"]["properties"]["pick"]["type"],
        "string"
    );
}
