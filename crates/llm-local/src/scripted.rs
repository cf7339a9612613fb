//! A language model whose replies come from a function of the prompt: for testing code that
//! drives models along paths a real model reaches only by chance (a given reply, an error, a
//! duplicate). It renders chats as the messages' contents joined by `\n---\n`, keeps every
//! prompt it was given, and cannot score.

use crate::{
    Completion, ContinuationScore, Enforcement, FinishReason, LanguageModel, LlmError, Message,
    Sampling, Timing, Usage,
};

/// Answers each prompt with `reply(prompt)`.
pub struct ScriptedModel<F> {
    reply: F,
    /// Every prompt completed so far, in order.
    pub prompts: Vec<String>,
}

impl<F: FnMut(&str) -> Result<String, LlmError>> ScriptedModel<F> {
    /// A model replying with `reply` of the prompt.
    pub fn new(reply: F) -> Self {
        ScriptedModel {
            reply,
            prompts: Vec::new(),
        }
    }
}

/// A model replying with `replies` in order, then with a backend error.
pub fn replies_in_order(
    replies: &[&str],
) -> ScriptedModel<impl FnMut(&str) -> Result<String, LlmError>> {
    let mut queue: std::collections::VecDeque<String> =
        replies.iter().map(|r| r.to_string()).collect();
    ScriptedModel::new(move |_: &str| {
        queue
            .pop_front()
            .ok_or_else(|| LlmError::Backend("the script is over".into()))
    })
}

impl<F: FnMut(&str) -> Result<String, LlmError>> LanguageModel for ScriptedModel<F> {
    fn name(&self) -> String {
        "script".into()
    }

    fn render_chat(&self, messages: &[Message], _: bool) -> Result<String, LlmError> {
        Ok(messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n---\n"))
    }

    fn complete(
        &mut self,
        prompt: &str,
        _: &Sampling,
        _: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, LlmError> {
        self.prompts.push(prompt.to_string());
        Ok(Completion {
            text: (self.reply)(prompt)?,
            finish: FinishReason::EndOfText,
            usage: Usage::default(),
            timing: Timing::default(),
            enforcement: Enforcement::Unconstrained,
        })
    }

    fn score(&mut self, _: &str, _: &[String]) -> Result<Vec<ContinuationScore>, LlmError> {
        Err(LlmError::Request("a scripted model cannot score".into()))
    }
}
