//! An OpenAI-compatible HTTP backend (llama.cpp's server, vLLM, Ollama, hosted APIs) behind the
//! same [`LanguageModel`] trait, selected by the model spec `openai:BASE_URL[#model]`, e.g.
//! `openai:http://127.0.0.1:8080/v1#qwen`. The API key, if any, comes from `OPENAI_API_KEY`.
//!
//! The server applies its own chat template, so [`LanguageModel::chat`] posts the messages to
//! `/chat/completions`; [`LanguageModel::complete`] posts a raw prompt to `/completions`.
//! [`LanguageModel::render_chat`] gives a plain transcript (for logs), not the server's template.
//! Streaming callbacks receive the whole reply at once.
//!
//! Constraints: a JSON Schema goes to the server as the standard `response_format`
//! (`json_schema`), which llama.cpp's server, vLLM and Ollama enforce; regular expressions,
//! grammars and choices have no standard field. Every constrained answer is then checked with
//! [`crate::constraint::accepts`] and asked for again with the next seed, up to
//! [`CONSTRAINT_ATTEMPTS`] generations; [`Enforcement::Checked`] says how many it took and
//! whether the last one matches. Servers disagree on prompt
//! log-probabilities (llama-cpp-python's echoed `token_logprobs` are shifted by one token, for
//! one), so [`LanguageModel::score`] and [`LanguageModel::choose`] answer
//! [`LlmError::Unsupported`]; rankers then fall back to reading the candidate from a reply.

pub mod replay;

use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::constraint::accepts;
use crate::{
    Completion, Constraint, ContinuationScore, Enforcement, FinishReason, LanguageModel, LlmError,
    Message, Sampling, Timing, Usage,
};

/// The prefix of OpenAI-compatible model specs.
pub const SPEC_PREFIX: &str = "openai:";

/// Most generations asked for to get an answer matching a constraint.
pub const CONSTRAINT_ATTEMPTS: usize = 3;

/// A model served over an OpenAI-compatible HTTP API.
#[derive(Debug, Clone)]
pub struct OpenAiModel {
    base_url: String,
    model: String,
    api_key: Option<String>,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

#[derive(Deserialize)]
struct Response {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct ResponseUsage {
    #[serde(default)]
    prompt_tokens: usize,
    #[serde(default)]
    completion_tokens: usize,
}

impl OpenAiModel {
    /// Connects to `openai:BASE_URL[#model]`. Without `#model`, the server's first model from
    /// `GET /models` is used. The key comes from `OPENAI_API_KEY` when it is set.
    pub fn connect(spec: &str) -> Result<Self, LlmError> {
        let load = |reason: String| LlmError::Load {
            source_name: spec.to_string(),
            reason,
        };
        let rest = spec.strip_prefix(SPEC_PREFIX).ok_or_else(|| {
            load(format!(
                "an OpenAI-compatible spec starts with `{SPEC_PREFIX}`"
            ))
        })?;
        let (base, model) = match rest.split_once('#') {
            Some((base, model)) => (base, Some(model.to_string())),
            None => (rest, None),
        };
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(load(format!(
                "`{base}` is not an http(s) URL (e.g. openai:http://127.0.0.1:8080/v1#model)"
            )));
        }
        let mut client = OpenAiModel {
            base_url: base.trim_end_matches('/').to_string(),
            model: model.unwrap_or_default(),
            api_key: std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(std::time::Duration::from_secs(10))
                .build(),
        };
        if client.model.is_empty() {
            let list: ModelList = client
                .request("GET", "models", None)
                .and_then(|v| {
                    serde_json::from_value(v).map_err(|e| LlmError::Backend(e.to_string()))
                })
                .map_err(|e| load(e.to_string()))?;
            client.model = list
                .data
                .into_iter()
                .next()
                .map(|m| m.id)
                .ok_or_else(|| load("the server lists no models".into()))?;
        }
        Ok(client)
    }

    /// The model name sent with every request.
    pub fn model(&self) -> &str {
        &self.model
    }

    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, LlmError> {
        let url = format!("{}/{path}", self.base_url);
        let mut request = self.agent.request(method, &url);
        if let Some(key) = &self.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let response = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match response {
            Ok(r) => r
                .into_json()
                .map_err(|e| LlmError::Backend(format!("{url}: unreadable response: {e}"))),
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/error/message")
                            .or_else(|| v.get("detail"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or(body);
                let first_line = message.lines().next().unwrap_or_default();
                Err(LlmError::Backend(format!(
                    "{url}: HTTP {code}: {first_line}"
                )))
            }
            Err(e) => Err(LlmError::Backend(format!("{url}: {e}"))),
        }
    }

    /// The request fields of `sampling`; non-standard ones only when they differ from the
    /// default, so strict servers accept plain requests.
    fn sampling_fields(&self, sampling: &Sampling, body: &mut Value) {
        body["model"] = json!(self.model);
        body["max_tokens"] = json!(sampling.max_tokens);
        body["temperature"] = json!(sampling.temperature);
        body["top_p"] = json!(sampling.top_p);
        body["seed"] = json!(sampling.seed);
        if !sampling.stop.is_empty() {
            body["stop"] = json!(sampling.stop);
        }
        if sampling.top_k > 0 {
            body["top_k"] = json!(sampling.top_k);
        }
        if sampling.repeat_penalty != 1.0 {
            body["repeat_penalty"] = json!(sampling.repeat_penalty);
        }
        if let Some(Constraint::JsonSchema(schema)) = &sampling.constraint {
            if let Ok(schema) = serde_json::from_str::<Value>(schema) {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": { "name": "answer", "schema": schema, "strict": true },
                });
            }
        }
    }

    /// Generates, then, under a constraint, checks the answer and asks again with the next
    /// seed until one matches or [`CONSTRAINT_ATTEMPTS`] were made.
    fn generate(
        &self,
        path: &str,
        body: Value,
        sampling: &Sampling,
        on_text: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, LlmError> {
        let completion = match &sampling.constraint {
            None => self.generate_once(path, body, sampling)?,
            Some(constraint) => {
                let started = Instant::now();
                let mut attempt = sampling.clone();
                let (mut attempts, mut generated) = (0, 0);
                loop {
                    attempts += 1;
                    let mut completion = self.generate_once(path, body.clone(), &attempt)?;
                    generated += completion.usage.completion_tokens;
                    let valid = accepts(constraint, &completion.text)?;
                    if valid || attempts == CONSTRAINT_ATTEMPTS {
                        // Usage and time of every attempt: what the answer cost.
                        completion.usage.completion_tokens = generated;
                        completion.timing.decode_seconds = started.elapsed().as_secs_f64();
                        completion.enforcement = Enforcement::Checked { attempts, valid };
                        break completion;
                    }
                    attempt.seed = attempt.seed.wrapping_add(1);
                }
            }
        };
        if let Some(callback) = on_text {
            callback(&completion.text);
        }
        Ok(completion)
    }

    fn generate_once(
        &self,
        path: &str,
        mut body: Value,
        sampling: &Sampling,
    ) -> Result<Completion, LlmError> {
        self.sampling_fields(sampling, &mut body);
        let started = Instant::now();
        let value = self.request("POST", path, Some(body))?;
        let response: Response = serde_json::from_value(value)
            .map_err(|e| LlmError::Backend(format!("unexpected response shape: {e}")))?;
        let choice = response
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::Backend("the response has no choices".into()))?;
        let text = choice
            .message
            .and_then(|m| m.content)
            .or(choice.text)
            .unwrap_or_default();
        let usage = response.usage.map_or_else(Usage::default, |u| Usage {
            prompt_tokens: u.prompt_tokens,
            cached_prompt_tokens: 0,
            completion_tokens: u.completion_tokens,
        });
        Ok(Completion {
            text,
            finish: match choice.finish_reason.as_deref() {
                Some("length") => FinishReason::Length,
                Some("stop") if !sampling.stop.is_empty() => FinishReason::Stop,
                _ => FinishReason::EndOfText,
            },
            usage,
            timing: Timing {
                prefill_seconds: 0.0,
                decode_seconds: started.elapsed().as_secs_f64(),
            },
            enforcement: Enforcement::Unconstrained,
        })
    }
}

impl LanguageModel for OpenAiModel {
    fn name(&self) -> String {
        format!("{}@{}", self.model, self.base_url)
    }

    fn render_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, LlmError> {
        let mut text = String::new();
        for m in messages {
            let role = serde_json::to_value(m.role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            text.push_str(&format!("{role}: {}\n", m.content));
        }
        if add_generation_prompt {
            text.push_str("assistant:");
        }
        Ok(text)
    }

    fn complete(
        &mut self,
        prompt: &str,
        sampling: &Sampling,
        on_text: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, LlmError> {
        self.generate(
            "completions",
            json!({ "prompt": prompt }),
            sampling,
            on_text,
        )
    }

    fn chat(
        &mut self,
        messages: &[Message],
        sampling: &Sampling,
        on_text: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, LlmError> {
        self.generate(
            "chat/completions",
            json!({ "messages": messages }),
            sampling,
            on_text,
        )
    }

    fn score(&mut self, _: &str, _: &[String]) -> Result<Vec<ContinuationScore>, LlmError> {
        Err(LlmError::Unsupported(
            "OpenAI-compatible servers do not agree on prompt log-probabilities; read the answer from a reply instead".into(),
        ))
    }
}
