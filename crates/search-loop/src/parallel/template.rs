//! A space file's templates: what a candidate becomes, an architecture for our trainer or the
//! configuration handed to an evaluator command.

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

/// minijinja templates of a space file, rendered with a candidate's values: every active
/// dimension by name with its chosen value, and `ncode` (the code as text). A dimension that is
/// inactive for the candidate is undefined, and using it is an error (test it with
/// `{% if name is defined %}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CandidateTemplates {
    /// The candidate as a network in the architecture language (docs/ARCH_LANGUAGE.md): trained by
    /// our trainer when the search has no evaluator command, else handed to the command as the
    /// configuration's `architecture`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The configuration handed to the evaluator command: a JSON object, instead of the
    /// candidate's values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

impl CandidateTemplates {
    /// Checks that the templates compile; the error names the template and the line.
    pub fn check(&self) -> Result<(), String> {
        for (name, source) in self.sources() {
            environment()
                .template_from_named_str(name, source)
                .map_err(|e| describe(name, &e))?;
        }
        Ok(())
    }

    /// The architecture of a candidate with `values`, when the space has the template.
    pub fn architecture(&self, values: &serde_json::Value) -> Option<Result<String, String>> {
        let source = self.architecture.as_deref()?;
        Some(render("architecture", source, values))
    }

    /// The configuration of a candidate with `values` for an evaluator command: the `config`
    /// template's JSON object, or the values themselves; with the `architecture` added when the
    /// space has that template.
    pub fn config(&self, values: &serde_json::Value) -> Result<serde_json::Value, String> {
        let mut config = match self.config.as_deref() {
            None => values.clone(),
            Some(source) => {
                let text = render("config", source, values)?;
                match serde_json::from_str(&text) {
                    Ok(object @ serde_json::Value::Object(_)) => object,
                    Ok(_) => {
                        return Err(format!("the config template gave no JSON object: {text}"))
                    }
                    Err(e) => {
                        return Err(format!("the config template gave no JSON ({e}): {text}"))
                    }
                }
            }
        };
        if let (Some(architecture), Some(object)) =
            (self.architecture(values), config.as_object_mut())
        {
            object.insert("architecture".into(), architecture?.into());
        }
        Ok(config)
    }

    fn sources(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("architecture", &self.architecture),
            ("config", &self.config),
        ]
        .into_iter()
        .filter_map(|(name, source)| Some((name, source.as_deref()?)))
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env
}

fn render(name: &str, source: &str, values: &serde_json::Value) -> Result<String, String> {
    let env = environment();
    let template = env
        .template_from_named_str(name, source)
        .map_err(|e| describe(name, &e))?;
    template.render(values).map_err(|e| describe(name, &e))
}

/// A minijinja error as one line: the template, the line and what went wrong.
fn describe(name: &str, error: &minijinja::Error) -> String {
    let line = error
        .line()
        .map_or(String::new(), |l| format!(", line {l}"));
    format!("the space's {name} template{line}: {}", error.kind())
        + &error.detail().map_or(String::new(), |d| format!(" ({d})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn templates() -> CandidateTemplates {
        CandidateTemplates {
            architecture: Some(
                "Sequential({% for _ in range(depth) %}LazyConv2d({{ width }}, 3, padding=1), ReLU(), {% endfor %}AdaptiveAvgPool2d(1), Flatten(), LazyLinear(10))"
                    .into(),
            ),
            config: Some(r#"{"lr": {{ lr }}, "name": "net-{{ ncode }}"}"#.into()),
        }
    }

    #[test]
    fn a_candidate_becomes_an_architecture_and_a_config() {
        let values = json!({"depth": 2, "width": 16, "lr": 0.05, "ncode": "101"});
        let t = templates();
        let architecture = t.architecture(&values).unwrap().unwrap();
        assert_eq!(
            architecture,
            "Sequential(LazyConv2d(16, 3, padding=1), ReLU(), LazyConv2d(16, 3, padding=1), ReLU(), AdaptiveAvgPool2d(1), Flatten(), LazyLinear(10))"
        );
        let config = t.config(&values).unwrap();
        assert_eq!(
            config,
            json!({"lr": 0.05, "name": "net-101", "architecture": architecture})
        );
        let plain = CandidateTemplates::default();
        assert_eq!(plain.config(&values).unwrap(), values);
        assert!(plain.architecture(&values).is_none());
    }

    #[test]
    fn template_errors_name_the_template_and_the_line() {
        let broken = CandidateTemplates {
            architecture: Some("Sequential(\n{% for x in %})".into()),
            config: None,
        };
        let e = broken.check().unwrap_err();
        assert!(
            e.starts_with("the space's architecture template, line 2"),
            "{e}"
        );
        // An inactive dimension is undefined.
        let e = templates()
            .architecture(&json!({"depth": 1, "lr": 0.1, "ncode": "0"}))
            .unwrap()
            .unwrap_err();
        assert!(
            e.contains("architecture template") && e.contains("undefined"),
            "{e}"
        );
        let not_json = CandidateTemplates {
            architecture: None,
            config: Some("lr={{ lr }}".into()),
        };
        let e = not_json.config(&json!({"lr": 0.1})).unwrap_err();
        assert!(e.contains("no JSON"), "{e}");
    }
}
