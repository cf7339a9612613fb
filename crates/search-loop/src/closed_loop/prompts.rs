//! The two roles' prompts (templates, [`LoopPrompts`]) and the reading of the Prompt Improver's
//! answer.

use std::path::Path;

use arch_space::lang::{prompt_card, Budget, InputSpec};
use llm_local::prompt::{PromptSet, PromptTemplates};
use llm_local::Message;
use minijinja::{context, Value};
use serde::{Deserialize, Serialize};

use super::memory::MemoryEntry;
use crate::run::{truncate, EvaluationRecord, RunDir};
use crate::SearchError;

/// What the roles are told about the task.
#[derive(Debug, Clone, Copy)]
pub struct TaskPrompt<'a> {
    /// A sentence such as "Image classification on CIFAR-10".
    pub description: &'a str,
    /// What the network reads and produces.
    pub input: InputSpec,
    /// Parameter and FLOP limits.
    pub budget: Budget,
    /// Whether the generator writes lazy widths (it answers under the generation grammar):
    /// architectures are then shown as written, not with their widths filled in.
    pub lazy: bool,
}

/// The loop's prompt templates: `generator_system.j2`, `generator_user.j2`,
/// `improver_system.j2` and `improver_user.j2` (their variables are listed in
/// docs/PROMPTS.md). The data (the best and latest architectures, the memory window, the loss)
/// is chosen here; the templates lay it out. Both templates of a role see the same variables.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopPrompts(PromptTemplates);

impl LoopPrompts {
    /// The templates and their embedded defaults.
    pub const SET: PromptSet = &[
        (
            "generator_system",
            include_str!("../../prompts/generator_system.j2"),
        ),
        (
            "generator_user",
            include_str!("../../prompts/generator_user.j2"),
        ),
        (
            "improver_system",
            include_str!("../../prompts/improver_system.j2"),
        ),
        (
            "improver_user",
            include_str!("../../prompts/improver_user.j2"),
        ),
    ];

    /// The defaults overridden by the template files of `dir` (see [`LoopPrompts::SET`]).
    pub fn from_dir(dir: &Path) -> Result<Self, SearchError> {
        Ok(LoopPrompts(PromptTemplates::from_dir(Self::SET, dir)?))
    }

    /// The templates the run in `run` uses: those stored in its `prompts/` folder over the
    /// defaults, all written back there ([`RunDir::store_prompts`]).
    pub fn of_run(run: &RunDir) -> Result<Self, SearchError> {
        let prompts = Self::from_dir(&run.prompts_dir())?;
        run.store_prompts(prompts.templates())?;
        Ok(prompts)
    }

    /// The template set (to store it with a run, or compare it with a stored one).
    pub fn templates(&self) -> &PromptTemplates {
        &self.0
    }

    /// The Code Generator's messages: the task and the language, the best architecture so far,
    /// the current one with its outcome (when it is not the best), and the latest suggestion.
    pub fn generator(
        &self,
        task: &TaskPrompt<'_>,
        best: Option<&EvaluationRecord>,
        current: Option<&EvaluationRecord>,
        suggestion: Option<&str>,
    ) -> Result<Vec<Message>, SearchError> {
        let latest = current.filter(|c| best.is_none_or(|b| b.iteration != c.iteration));
        let context = context! {
            best => best.map(|b| Architecture::of(b, task.lazy)),
            latest => latest.map(|c| Architecture::of(c, task.lazy)),
            suggestion => suggestion.map(str::trim).filter(|s| !s.is_empty()),
            ..task.context()
        };
        self.messages("generator", &context)
    }

    /// The Prompt Improver's messages: the memory window, the best architecture (when it is not
    /// the current one) and the current one, and the current one's training loss.
    pub fn improver(
        &self,
        task: &TaskPrompt<'_>,
        memory: &[MemoryEntry],
        best: Option<&EvaluationRecord>,
        current: &EvaluationRecord,
    ) -> Result<Vec<Message>, SearchError> {
        let best = best.filter(|b| b.iteration != current.iteration);
        let curve = current.report.as_ref().map(|r| &r.loss_curve);
        let loss = curve.and_then(|c| Some((c.first()?, c.last()?)));
        let context = context! {
            memory => memory,
            best => best.map(|b| Architecture::of(b, task.lazy)),
            latest => Architecture::of(current, task.lazy),
            loss => loss.map(|(first, last)| context! {
                first => format!("{first:.3}"),
                last => format!("{last:.3}"),
            }),
            ..task.context()
        };
        self.messages("improver", &context)
    }

    /// Renders `{role}_system` and `{role}_user`.
    fn messages(&self, role: &str, context: &Value) -> Result<Vec<Message>, SearchError> {
        Ok(vec![
            Message::system(self.0.render(&format!("{role}_system"), context)?),
            Message::user(self.0.render(&format!("{role}_user"), context)?),
        ])
    }
}

impl Default for LoopPrompts {
    fn default() -> Self {
        LoopPrompts(PromptTemplates::defaults(Self::SET))
    }
}

impl TaskPrompt<'_> {
    /// The variables every template of the loop sees.
    fn context(&self) -> Value {
        context! {
            task => self.description,
            max_params => self.budget.max_params,
            max_flops => self.budget.max_flops,
            lazy => self.lazy,
            classes => self.input.classes,
            language => prompt_card(&self.input),
        }
    }
}

/// An architecture as the templates see it.
#[derive(Serialize)]
struct Architecture<'a> {
    iteration: usize,
    /// The outcome in words (accuracy or typed failure).
    outcome: String,
    /// The architecture's text: as written under the generation grammar (lazy widths), else
    /// with its widths filled in.
    code: &'a str,
}

impl<'a> Architecture<'a> {
    fn of(record: &'a EvaluationRecord, lazy: bool) -> Self {
        let (first, second) = (&record.canonical, &record.architecture);
        let (first, second) = if lazy {
            (second, first)
        } else {
            (first, second)
        };
        Architecture {
            iteration: record.iteration,
            outcome: record.outcome.summary(),
            code: first
                .as_deref()
                .or(second.as_deref())
                .unwrap_or("(no architecture)")
                .trim(),
        }
    }
}

/// The Code Generator's messages with the default templates ([`LoopPrompts::generator`]).
pub fn generator_messages(
    task: &TaskPrompt<'_>,
    best: Option<&EvaluationRecord>,
    current: Option<&EvaluationRecord>,
    suggestion: Option<&str>,
) -> Vec<Message> {
    LoopPrompts::default()
        .generator(task, best, current, suggestion)
        .expect("the default generator templates render every request")
}

/// The Prompt Improver's messages with the default templates ([`LoopPrompts::improver`]).
pub fn improver_messages(
    task: &TaskPrompt<'_>,
    memory: &[MemoryEntry],
    best: Option<&EvaluationRecord>,
    current: &EvaluationRecord,
) -> Vec<Message> {
    LoopPrompts::default()
        .improver(task, memory, best, current)
        .expect("the default improver templates render every request")
}

/// The JSON Schema of the Prompt Improver's answer (its constraint): one short problem and one
/// short suggestion.
pub const DIAGNOSIS_SCHEMA: &str = r#"{"type":"object","properties":{"problem":{"type":"string","minLength":1,"maxLength":300},"suggestion":{"type":"string","minLength":1,"maxLength":300}},"required":["problem","suggestion"],"additionalProperties":false}"#;

/// The improver's answer, read as JSON or, failing that, derived from the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// The problem.
    pub problem: String,
    /// The suggested change.
    pub suggestion: String,
    /// Whether the reply held the requested JSON object.
    pub parsed: bool,
}

#[derive(Deserialize)]
struct DiagnosisJson {
    problem: String,
    suggestion: String,
}

/// Reads the first JSON object with string fields `problem` and `suggestion` anywhere in the
/// reply; otherwise the problem is the evaluator's feedback and the suggestion the reply's text.
pub fn read_diagnosis(reply: &str, feedback: &str) -> Diagnosis {
    let found = reply.match_indices('{').find_map(|(start, _)| {
        serde_json::Deserializer::from_str(&reply[start..])
            .into_iter::<DiagnosisJson>()
            .next()
            .and_then(Result::ok)
    });
    match found {
        Some(d) => Diagnosis {
            problem: truncate(d.problem.trim(), 500),
            suggestion: truncate(d.suggestion.trim(), 500),
            parsed: true,
        },
        None => Diagnosis {
            problem: feedback.to_string(),
            suggestion: truncate(reply.trim(), 500),
            parsed: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diagnosis_is_found_in_chatty_or_fenced_replies() {
        let reply = "Sure! {not json} Here:\n```json\n{\"problem\": \"too shallow\", \"suggestion\": \"add a conv block\", \"extra\": 1}\n```";
        let d = read_diagnosis(reply, "feedback");
        assert_eq!(
            (d.problem.as_str(), d.suggestion.as_str(), d.parsed),
            ("too shallow", "add a conv block", true)
        );
    }

    #[test]
    fn an_unreadable_answer_falls_back_to_the_feedback_and_the_text() {
        let d = read_diagnosis("Use more channels.", "parse failure: line 1");
        assert_eq!(d.problem, "parse failure: line 1");
        assert_eq!(d.suggestion, "Use more channels.");
        assert!(!d.parsed);
        let d = read_diagnosis("{\"problem\": 3}", "f");
        assert!(!d.parsed);
    }
}
