//! Chat templates: the GGUF file's own Jinja template, rendered with minijinja, or a known
//! template per model family when the file has none.

use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;

use crate::{LlmError, Message, Role};

/// ChatML, as SmolLM2 and Qwen write it.
pub const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
/// Gemma's turns (the system message is folded into the first user turn).
pub const GEMMA: &str = "{{ bos_token }}{% if messages and messages[0].role == 'system' %}{% set sys = messages[0].content ~ '\n\n' %}{% set rest = messages[1:] %}{% else %}{% set sys = '' %}{% set rest = messages %}{% endif %}{% for m in rest %}<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}\n{{ sys if loop.first else '' }}{{ m.content }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";
/// Llama 3's headers.
pub const LLAMA3: &str = "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";

#[derive(Serialize)]
struct Item<'a> {
    role: &'static str,
    content: &'a str,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// Compiles `source` (Hugging Face's chat-template dialect of Jinja).
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| LlmError::Load {
                source_name: "chat template".into(),
                reason: e.to_string(),
            })?;
        Ok(ChatTemplate {
            env,
            bos: bos.to_string(),
            eos: eos.to_string(),
        })
    }

    /// Renders the conversation.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, LlmError> {
        let items: Vec<Item<'_>> = messages
            .iter()
            .map(|m| Item {
                role: role_name(m.role),
                content: &m.content,
            })
            .collect();
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| LlmError::Backend(e.to_string()))?;
        template
            .render(context! { messages => items, add_generation_prompt, bos_token => &self.bos, eos_token => &self.eos })
            .map_err(|e| LlmError::Request(format!("the chat template failed: {e}")))
    }
}
