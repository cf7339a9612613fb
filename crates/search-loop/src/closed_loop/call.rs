//! One logged language-model call: prompt and reply kept in side files of the run.

use std::time::Instant;

use llm_local::{LanguageModel, Message, Sampling};

use crate::run::{Event, LlmCall, RunDir};
use crate::SearchError;

/// Records the rendered prompt, asks the model to answer `messages` and records the call.
/// A failing model is a recorded call with its error (`Ok((call, None))`); only a failing run
/// directory is an `Err`.
pub(crate) fn call_model(
    model: &mut dyn LanguageModel,
    run: &mut RunDir,
    iteration: usize,
    role: &str,
    messages: &[Message],
    sampling: &Sampling,
) -> Result<(LlmCall, Option<String>), SearchError> {
    let started = Instant::now();
    let stem = format!("llm/{iteration:06}-{role}");
    let mut call = LlmCall {
        role: role.to_string(),
        model: model.name(),
        prompt_file: format!("{stem}.prompt.txt"),
        reply_file: None,
        prompt_tokens: 0,
        cached_prompt_tokens: 0,
        completion_tokens: 0,
        seconds: 0.0,
        error: None,
    };
    let completed = match model.render_chat(messages, true) {
        Ok(prompt) => {
            run.write_text(&call.prompt_file, &prompt)?;
            // `chat`, not `complete(prompt)`: a remote backend applies its own template.
            model.chat(messages, sampling, None)
        }
        Err(e) => Err(e),
    };
    let reply = match completed {
        Ok(completion) => {
            let file = format!("{stem}.reply.txt");
            run.write_text(&file, &completion.text)?;
            call.reply_file = Some(file);
            call.prompt_tokens = completion.usage.prompt_tokens;
            call.cached_prompt_tokens = completion.usage.cached_prompt_tokens;
            call.completion_tokens = completion.usage.completion_tokens;
            Some(completion.text)
        }
        Err(e) => {
            call.error = Some(e.to_string());
            None
        }
    };
    call.seconds = started.elapsed().as_secs_f64();
    run.log(&Event::LlmCall {
        iteration,
        call: call.clone(),
    })?;
    Ok((call, reply))
}
