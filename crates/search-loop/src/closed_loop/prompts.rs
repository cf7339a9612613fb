//! The two roles' prompts and the reading of the Prompt Improver's answer.

use std::fmt::Write as _;

use arch_space::lang::{prompt_card, Budget, InputSpec};
use llm_local::Message;
use serde::Deserialize;

use super::memory::MemoryEntry;
use crate::run::{truncate, EvaluationRecord};

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

impl TaskPrompt<'_> {
    fn text(&self) -> String {
        let mut text = format!(
            "Task: {}. The network is trained for one epoch and judged by its validation accuracy.",
            self.description
        );
        if let Some(p) = self.budget.max_params {
            let _ = write!(text, " It must have at most {p} parameters.");
        }
        if let Some(f) = self.budget.max_flops {
            let _ = write!(
                text,
                " It must take at most {f} multiply-accumulates per image."
            );
        }
        text
    }
}

fn architecture_block(out: &mut String, heading: &str, record: &EvaluationRecord, lazy: bool) {
    let (first, second) = (&record.canonical, &record.architecture);
    let (first, second) = if lazy {
        (second, first)
    } else {
        (first, second)
    };
    let code = first
        .as_deref()
        .or(second.as_deref())
        .unwrap_or("(no architecture)");
    let _ = write!(
        out,
        "\n\n{heading} (iteration {}: {}):\n```python\n{}\n```",
        record.iteration,
        record.outcome.summary(),
        code.trim()
    );
}

/// The Code Generator's messages: the task and the language, the best architecture so far, the
/// current one with its outcome, and the latest suggestion.
pub fn generator_messages(
    task: &TaskPrompt<'_>,
    best: Option<&EvaluationRecord>,
    current: Option<&EvaluationRecord>,
    suggestion: Option<&str>,
) -> Vec<Message> {
    let system = format!(
        "You are an expert deep-learning engineer who designs convolutional neural networks.\n{}",
        prompt_card(&task.input)
    );
    let mut user = task.text();
    if let Some(best) = best {
        architecture_block(&mut user, "Best architecture so far", best, task.lazy);
    }
    if let Some(current) = current.filter(|c| best.is_none_or(|b| b.iteration != c.iteration)) {
        architecture_block(&mut user, "Latest architecture", current, task.lazy);
    }
    if let Some(s) = suggestion.filter(|s| !s.trim().is_empty()) {
        let _ = write!(user, "\n\nSuggested change: {}", s.trim());
    }
    user.push_str(
        "\n\nWrite a new architecture that improves the validation accuracy. Answer with one ```python block only.",
    );
    if task.lazy {
        let _ = write!(
            user,
            " Use one nn.Sequential of lazy layers (nn.LazyConv2d(out, k, padding=k//2), nn.LazyBatchNorm2d(), nn.LazyLinear(out)) ending with nn.AdaptiveAvgPool2d(1), nn.Flatten() and nn.LazyLinear({}).",
            task.input.classes
        );
    }
    vec![Message::system(system), Message::user(user)]
}

/// The Prompt Improver's messages: the memory window, the best and the current architecture,
/// and the evaluator's feedback on the current one.
pub fn improver_messages(
    task: &TaskPrompt<'_>,
    memory: &[MemoryEntry],
    best: Option<&EvaluationRecord>,
    current: &EvaluationRecord,
) -> Vec<Message> {
    let system = "You review neural-network designs. Diagnose why the latest architecture got its result and suggest ONE concrete change for the next architecture. Answer with JSON only: {\"problem\": \"...\", \"suggestion\": \"...\"}";
    let mut user = task.text();
    if !memory.is_empty() {
        user.push_str("\n\nRecent diagnoses (problem -> suggested change -> result):");
        for (i, m) in memory.iter().enumerate() {
            let _ = write!(
                user,
                "\n{}. {} -> {} -> {}",
                i + 1,
                m.problem,
                m.suggestion,
                m.result
            );
        }
    }
    if let Some(best) = best.filter(|b| b.iteration != current.iteration) {
        architecture_block(&mut user, "Best architecture so far", best, task.lazy);
    }
    architecture_block(&mut user, "Latest architecture", current, task.lazy);
    if let Some(curve) = current.report.as_ref().map(|r| &r.loss_curve) {
        if let (Some(first), Some(last)) = (curve.first(), curve.last()) {
            let _ = write!(user, "\nTraining loss went from {first:.3} to {last:.3}.");
        }
    }
    user.push_str("\n\nAnswer with the JSON object only.");
    vec![Message::system(system), Message::user(user)]
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
