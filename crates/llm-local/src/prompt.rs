//! Prompt templates: sets of named minijinja templates with embedded defaults, any of which a
//! directory of `NAME.j2` files can override.
//!
//! A crate that builds prompts (the ranker, the closed loop) declares its templates as a
//! [`PromptSet`] of `(name, default source)` pairs, computes the data of a prompt in Rust, and
//! renders the layout with [`PromptTemplates::render`]. Rendering is strict: a variable that the
//! context lacks is an error, never an empty string. Block tags swallow the newline after them
//! (`trim_blocks`) and the whitespace before them on their line (`lstrip_blocks`); one trailing
//! newline of a template is dropped, as in Jinja2, so a file may end with a newline.

use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use thiserror::Error;

/// The extension of template files.
pub const EXTENSION: &str = "j2";

/// The templates a crate renders: each name with its embedded default source.
pub type PromptSet = &'static [(&'static str, &'static str)];

/// Errors of prompt templates: each names the template's file.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum PromptError {
    /// A `.j2` file whose name is not one of the set's templates.
    #[error("unknown prompt template {path}: the known files are {known}")]
    UnknownFile {
        /// The file.
        path: PathBuf,
        /// The known file names, comma-separated.
        known: String,
    },
    /// A template that does not parse.
    #[error("prompt template {file}, line {line}: {message}")]
    Syntax {
        /// The template's file name (`NAME.j2`).
        file: String,
        /// The line of the error (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A template that failed to render (an undefined variable, a bad filter argument).
    #[error("prompt template {file}, line {line}: {message}")]
    Render {
        /// The template's file name (`NAME.j2`).
        file: String,
        /// The line of the error (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A template directory or file that cannot be read or written.
    #[error("prompt templates {path}: {reason}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// A set of templates: the defaults of a [`PromptSet`], some of them overridden.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptTemplates {
    set: PromptSet,
    /// The source of every template of the set, in the set's order.
    sources: Vec<String>,
}

impl PromptTemplates {
    /// The embedded defaults of `set`.
    pub fn defaults(set: PromptSet) -> Self {
        PromptTemplates {
            set,
            sources: set.iter().map(|(_, source)| source.to_string()).collect(),
        }
    }

    /// The defaults of `set`, overridden by the `NAME.j2` files of `dir` (a missing directory
    /// overrides nothing). Other `.j2` files are an error naming the known files; every
    /// override is parsed here, so a syntax error is reported before anything runs.
    pub fn from_dir(set: PromptSet, dir: &Path) -> Result<Self, PromptError> {
        let mut templates = Self::defaults(set);
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(templates),
            Err(e) => return Err(io(dir, e)),
        };
        let mut paths = entries
            .map(|entry| entry.map(|e| e.path()).map_err(|e| io(dir, e)))
            .collect::<Result<Vec<_>, _>>()?;
        paths.retain(|p| p.extension().is_some_and(|x| x == EXTENSION));
        paths.sort();
        for path in paths {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if templates.index(stem).is_err() {
                return Err(PromptError::UnknownFile {
                    path: path.clone(),
                    known: templates.file_names().join(", "),
                });
            }
            let source = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            templates.set_source(stem, source)?;
        }
        Ok(templates)
    }

    /// Replaces the source of template `name` (one of the set's) after checking its syntax.
    pub fn set_source(&mut self, name: &str, source: String) -> Result<(), PromptError> {
        let index = self.index(name)?;
        environment()
            .template_from_named_str(&file_name(name), &source)
            .map_err(|e| syntax(name, &e))?;
        self.sources[index] = source;
        Ok(())
    }

    /// The position of template `name` in the set.
    fn index(&self, name: &str) -> Result<usize, PromptError> {
        self.set
            .iter()
            .position(|(n, _)| *n == name)
            .ok_or_else(|| PromptError::UnknownFile {
                path: PathBuf::from(file_name(name)),
                known: self.file_names().join(", "),
            })
    }

    /// The set these templates belong to.
    pub fn set(&self) -> PromptSet {
        self.set
    }

    /// The file name of template `name`: `NAME.j2`.
    pub fn file_name(name: &str) -> String {
        file_name(name)
    }

    /// The file names of the set's templates (`NAME.j2`), in the set's order.
    pub fn file_names(&self) -> Vec<String> {
        self.set.iter().map(|(name, _)| file_name(name)).collect()
    }

    /// Every template's name and source, in the set's order.
    pub fn sources(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.set
            .iter()
            .zip(&self.sources)
            .map(|((name, _), source)| (*name, source.as_str()))
    }

    /// The names of the templates whose sources differ between `self` and `other`.
    pub fn differences(&self, other: &PromptTemplates) -> Vec<&'static str> {
        self.sources()
            .zip(other.sources())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((name, _), _)| name)
            .collect()
    }

    /// Renders template `name` with `context` (strict: an undefined variable is an error).
    pub fn render(&self, name: &str, context: impl Serialize) -> Result<String, PromptError> {
        let source = &self.sources[self.index(name)?];
        let env = environment();
        let file = file_name(name);
        let template = env
            .template_from_named_str(&file, source)
            .map_err(|e| syntax(name, &e))?;
        template.render(context).map_err(|e| PromptError::Render {
            file: file.clone(),
            line: e.line().unwrap_or(0),
            message: message(&e),
        })
    }
}

fn io(path: &Path, e: std::io::Error) -> PromptError {
    PromptError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// `NAME.j2`.
fn file_name(name: &str) -> String {
    format!("{name}.{EXTENSION}")
}

/// The environment every template renders in: strict undefined variables, no escaping,
/// `trim_blocks` and `lstrip_blocks`.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env
}

fn syntax(name: &str, e: &minijinja::Error) -> PromptError {
    PromptError::Syntax {
        file: file_name(name),
        line: e.line().unwrap_or(0),
        message: message(e),
    }
}

/// The error's kind and detail, without minijinja's own location suffix.
fn message(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: PromptSet = &[
        ("a", "Hello {{ who }}!\n"),
        ("b", "{% for x in xs %}\n{{ x }},\n{% endfor %}\nend\n"),
    ];

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("prompt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn defaults_render_with_block_trimming_and_no_trailing_newline() {
        let t = PromptTemplates::defaults(SET);
        assert_eq!(
            t.render("a", minijinja::context! { who => "you" }).unwrap(),
            "Hello you!"
        );
        assert_eq!(
            t.render("b", minijinja::context! { xs => [1, 2] }).unwrap(),
            "1,\n2,\nend"
        );
    }

    #[test]
    fn a_directory_overrides_only_its_files_and_round_trips() {
        let dir = temp_dir("override");
        std::fs::write(dir.join("a.j2"), "Hi {{ who }}").unwrap();
        std::fs::write(dir.join("notes.txt"), "not a template").unwrap();
        let t = PromptTemplates::from_dir(SET, &dir).unwrap();
        assert_eq!(
            t.render("a", minijinja::context! { who => "you" }).unwrap(),
            "Hi you"
        );
        assert_eq!(t.differences(&PromptTemplates::defaults(SET)), vec!["a"]);
        let stored = dir.join("stored");
        std::fs::create_dir_all(&stored).unwrap();
        for (name, source) in t.sources() {
            std::fs::write(stored.join(PromptTemplates::file_name(name)), source).unwrap();
        }
        assert_eq!(PromptTemplates::from_dir(SET, &stored).unwrap(), t);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_and_undefined_variables_are_errors_naming_the_file() {
        let dir = temp_dir("bad");
        std::fs::write(dir.join("c.j2"), "").unwrap();
        let err = PromptTemplates::from_dir(SET, &dir)
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.j2") && err.contains("a.j2, b.j2"), "{err}");
        std::fs::remove_file(dir.join("c.j2")).unwrap();
        std::fs::write(dir.join("b.j2"), "line\n{% for x in %}").unwrap();
        let err = PromptTemplates::from_dir(SET, &dir).unwrap_err();
        assert!(
            matches!(&err, PromptError::Syntax { file, line: 2, .. } if file == "b.j2"),
            "{err}"
        );
        let err = PromptTemplates::defaults(SET)
            .render("a", minijinja::context! { whom => "you" })
            .unwrap_err();
        assert!(
            matches!(&err, PromptError::Render { file, line: 1, .. } if file == "a.j2"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
