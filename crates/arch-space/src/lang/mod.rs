//! The architecture language and its IR.
//!
//! LLMs write networks in a text form close to PyTorch (`Conv2d(3, 16, 3, padding=1)`,
//! `nn.Sequential(...)`), plus explicit blocks for what `forward()` code does: `Residual(...)`
//! (with an optional `shortcut=`), `Add(...)` and `Concat(...)` of parallel branches,
//! `SqueezeExcite(...)`, and `Graph(...)` for DAGs of named nodes. [`parse`] turns a reply
//! (the first fenced code block, if any) into the [`Module`] IR, with line/column errors and a
//! hint; [`check`] infers every shape for a dataset's input before any tensor exists and counts
//! parameters, FLOPs and activation memory; [`to_text`] prints the IR back; [`to_pytorch`]
//! writes a checked module as a self-contained PyTorch file, whose tensors [`state_dict`] names
//! as PyTorch does (the scheme of the trainer's safetensors export). Small constructors
//! ([`conv`], [`batch_norm`], [`classifier`], ...) build common modules in code, as the search
//! spaces do. [`language_grammar`] and [`generation_grammar`] export the language as grammars
//! for constrained decoding ([`Grammar::to_lark`] prints llguidance's Lark): the whole
//! language, and the subset a model answers in, every text of which parses and passes
//! [`check`] for the given input (see [`grammar`]). `docs/ARCH_LANGUAGE.md` specifies the
//! language.
//!
//! ```
//! use arch_space::lang::{parse, InputSpec};
//!
//! let reply = "Here is my model:\n```python\nnn.Sequential(\n    nn.Conv2d(3, 16, 3, padding=1),\n    nn.BatchNorm2d(16),\n    nn.ReLU(inplace=True),\n    nn.AdaptiveAvgPool2d(1),\n    nn.Flatten(),\n    nn.Linear(16, 10),\n)\n```";
//! let program = parse(reply).unwrap();
//! let analysis = program.check(&InputSpec::cifar10()).unwrap();
//! assert_eq!(analysis.params, 3 * 16 * 9 + 16 + 2 * 16 + 16 * 10 + 10);
//!
//! let err = parse("Sequential(Conv2d(3, 16, 3), BatchNorm2d(10))").unwrap()
//!     .check(&InputSpec::cifar10()).unwrap_err();
//! assert!(err.to_string().contains("running_mean should contain 16 elements not 10"));
//! ```

mod bind;
mod build;
mod card;
mod check;
pub mod grammar;
mod ir;
mod layers;
mod print;
mod pytorch;
mod state;
mod syntax;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use build::{
    activation, add, avg_pool, batch_norm, classifier, conv, grouped_conv, linear, max_pool,
    squeeze_excitation,
};
pub use card::prompt_card;
pub use check::{check, Analysis, Budget, CheckError, CheckErrorKind, InputSpec};
pub use grammar::{
    generation_grammar, generation_grammar_with, language_grammar, GenerationOptions, Grammar,
    GrammarError, Item, Rule, Skip, Terminal,
};
pub use ir::*;
pub use print::{layer_to_string, to_text};
pub use pytorch::to_pytorch;
pub use state::{state_dict, StateEntry, StateKind};
pub use syntax::Span;

/// A syntax or argument error in architecture text, with its position and a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("line {}, column {}: {message}{}", span.line, span.column, hint.as_ref().map_or(String::new(), |h| format!(" (hint: {h})")))]
pub struct LangError {
    /// Where the problem is (in the extracted code when the input was a chat reply).
    pub span: Span,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is a likely fix.
    pub hint: Option<String>,
}

impl LangError {
    pub(crate) fn at(span: Span, message: String) -> Self {
        LangError {
            span,
            message,
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: &str) -> Self {
        self.hint = Some(hint.to_string());
        self
    }
}

/// A parsed architecture: the IR and, for every module in pre-order, where it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// The architecture.
    pub module: Module,
    /// Source position of every module, in the pre-order that [`CheckError::module_index`] uses.
    pub spans: Vec<Span>,
}

impl Program {
    /// [`check`]s the module and places any error at the line and column of its layer.
    pub fn check(&self, input: &InputSpec) -> Result<Analysis, CheckError> {
        check(&self.module, input).map_err(|mut e| {
            e.span = e.module_index.and_then(|i| self.spans.get(i).copied());
            e
        })
    }
}

/// The code of a chat reply: the first fenced block (```` ``` ```` or `~~~`, any info string;
/// a block opened and closed on one line has none), or the whole text when it has none.
pub fn extract_code(reply: &str) -> &str {
    for fence in ["```", "~~~"] {
        if let Some(start) = reply.find(fence) {
            let after = &reply[start + fence.len()..];
            let line = after.find('\n').map_or(after, |nl| &after[..nl]);
            if let Some(end) = line.find(fence) {
                return &after[..end];
            }
            let body = after.find('\n').map_or("", |nl| &after[nl + 1..]);
            return body.find(fence).map_or(body, |end| &body[..end]);
        }
    }
    reply
}

/// Parses architecture text, or a chat reply holding it in a fenced block.
pub fn parse(text: &str) -> Result<Program, LangError> {
    let expr = syntax::parse_program(extract_code(text))?;
    let mut binder = bind::Binder { spans: Vec::new() };
    let module = binder.module(&expr)?;
    Ok(Program {
        module,
        spans: binder.spans,
    })
}
