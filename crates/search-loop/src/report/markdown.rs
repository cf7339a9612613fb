//! `report.md`: the run's results first, then every iteration, then where the numbers came from.

use std::fmt::{self, Display, Formatter};

use serde_json::Value;

use super::plots::PLOTS;
use super::Contents;
use crate::closed_loop::best;
use crate::run::{truncate, EvaluationRecord, Provenance};

/// Longest suggestion or problem shown in the table of iterations.
const CELL_LIMIT: usize = 80;
/// Longest configuration value shown.
const VALUE_LIMIT: usize = 60;
/// What a missing number is shown as.
const NONE: &str = "-";

/// The Markdown text of a report.
pub(super) fn render(contents: &Contents) -> String {
    Markdown(contents).to_string()
}

struct Markdown<'a>(&'a Contents);

impl Display for Markdown<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let c = self.0;
        writeln!(f, "# Closed-loop NAS run\n")?;
        writeln!(f, "Run directory: `{}`\n", c.root.display())?;
        writeln!(
            f,
            "Protocol: the search selects on validation accuracy only; test accuracy is \
             reported for the record and never used to select.\n"
        )?;
        summary(f, c)?;
        best_architecture(f, &c.evaluations)?;
        writeln!(f, "## Plots\n")?;
        for plot in &PLOTS {
            writeln!(f, "![{}]({})\n", plot.title, plot.file)?;
        }
        iterations(f, c)?;
        configuration(f, &c.config)?;
        provenance(f, &c.provenance)
    }
}

fn summary(f: &mut Formatter<'_>, c: &Contents) -> fmt::Result {
    let s = &c.summary;
    writeln!(f, "## Summary\n")?;
    writeln!(f, "| | |\n|---|---|")?;
    writeln!(f, "| finished evaluations | {} |", s.finished_evaluations)?;
    let rate = if s.finished_evaluations == 0 {
        String::new()
    } else {
        format!(
            " ({:.1}%)",
            100.0 * s.valid as f64 / s.finished_evaluations as f64
        )
    };
    writeln!(
        f,
        "| trained (valid) | {} of {}{rate} |",
        s.valid, s.finished_evaluations
    )?;
    let failures: Vec<String> = s
        .failures
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    let failed = s.finished_evaluations - s.valid;
    if failures.is_empty() {
        writeln!(f, "| failures | none |")?;
    } else {
        writeln!(f, "| failures | {failed}: {} |", failures.join(", "))?;
    }
    writeln!(f, "| best iteration | {} |", optional(s.best_iteration))?;
    writeln!(
        f,
        "| best validation accuracy | {} |",
        accuracy(s.best_val_acc)
    )?;
    writeln!(
        f,
        "| best test accuracy (reported only) | {} |",
        accuracy(s.best_test_acc)
    )?;
    writeln!(f, "| best parameters | {} |", params(s.best_params))?;
    writeln!(f, "| stop reason | {} |\n", s.stop_reason)
}

fn best_architecture(f: &mut Formatter<'_>, evaluations: &[EvaluationRecord]) -> fmt::Result {
    writeln!(f, "## Best architecture\n")?;
    let Some(record) = best(evaluations) else {
        return writeln!(f, "No evaluation trained successfully.\n");
    };
    let text = record
        .canonical
        .as_deref()
        .or(record.architecture.as_deref())
        .unwrap_or_default();
    writeln!(f, "Iteration {}:\n", record.iteration)?;
    let fence = "`".repeat(longest_backtick_run(text).max(2) + 1);
    writeln!(f, "{fence}text\n{}\n{fence}\n", text.trim_end())
}

fn iterations(f: &mut Formatter<'_>, c: &Contents) -> fmt::Result {
    writeln!(f, "## Iterations\n")?;
    if c.evaluations.is_empty() {
        return writeln!(f, "No evaluation has finished.\n");
    }
    let best = c.summary.best_iteration;
    writeln!(
        f,
        "| iteration | status | val acc | test acc | params | seconds | suggestion applied | \
         problem diagnosed |"
    )?;
    writeln!(f, "|---:|---|---:|---:|---:|---:|---|---|")?;
    for r in &c.evaluations {
        let iteration = if Some(r.iteration) == best {
            format!("**{}** (best)", r.iteration)
        } else {
            r.iteration.to_string()
        };
        let problem = c.diagnoses.get(&r.iteration).map(|d| d.problem.as_str());
        writeln!(
            f,
            "| {iteration} | {} | {} | {} | {} | {:.1} | {} | {} |",
            r.outcome.status.name(),
            accuracy(r.outcome.score()),
            accuracy(r.outcome.test_acc),
            params(r.outcome.params),
            r.outcome.seconds,
            cell(r.suggestion.as_deref().unwrap_or_default(), CELL_LIMIT),
            cell(problem.unwrap_or_default(), CELL_LIMIT),
        )?;
    }
    writeln!(f)
}

fn configuration(f: &mut Formatter<'_>, config: &Result<Value, String>) -> fmt::Result {
    writeln!(f, "## Configuration\n")?;
    let config = match config {
        Ok(config) => config,
        Err(e) => return writeln!(f, "Unreadable: {e}\n"),
    };
    let mut fields = Vec::new();
    leaves(String::new(), config, &mut fields);
    writeln!(f, "| field | value |\n|---|---|")?;
    for (name, value) in fields {
        writeln!(f, "| {name} | {} |", cell(&value, VALUE_LIMIT))?;
    }
    writeln!(f)
}

/// The scalar fields of a JSON value with dotted names (`budget.max_params`); nulls are left
/// out, arrays are shown whole.
fn leaves(name: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::Object(fields) => {
            for (key, value) in fields {
                let name = if name.is_empty() {
                    key.clone()
                } else {
                    format!("{name}.{key}")
                };
                leaves(name, value, out);
            }
        }
        Value::String(text) => out.push((name, text.clone())),
        other => out.push((name, other.to_string())),
    }
}

fn provenance(f: &mut Formatter<'_>, provenance: &Result<Provenance, String>) -> fmt::Result {
    writeln!(f, "## Provenance\n")?;
    let p = match provenance {
        Ok(p) => p,
        Err(e) => return writeln!(f, "Unreadable: {e}"),
    };
    writeln!(f, "| | |\n|---|---|")?;
    writeln!(f, "| nas-rs version | {} |", p.version)?;
    let revision = p.git_revision.as_deref().unwrap_or("unknown");
    writeln!(f, "| git revision | {revision} |")?;
    writeln!(f, "| threads | {} |", p.threads)?;
    writeln!(f, "| device | {} |", p.device)?;
    writeln!(
        f,
        "| command line | `{}` |\n",
        cell(&p.command_line.join(" "), 200).replace('`', "'")
    )?;
    if p.models.is_empty() {
        return writeln!(f, "No language model was recorded.");
    }
    writeln!(f, "| role | model | sha256 | bytes |\n|---|---|---|---:|")?;
    for m in &p.models {
        writeln!(
            f,
            "| {} | {} | `{}` | {} |",
            cell(&m.role, VALUE_LIMIT),
            cell(&m.spec, VALUE_LIMIT),
            m.sha256,
            thousands(m.bytes)
        )?;
    }
    Ok(())
}

/// One line of a table cell: whitespace collapsed, cut at `limit` characters, pipes escaped.
fn cell(text: &str, limit: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&line, limit).replace('|', "\\|")
}

fn optional(value: Option<usize>) -> String {
    value.map_or_else(|| NONE.to_string(), |v| v.to_string())
}

fn accuracy(value: Option<f64>) -> String {
    value.map_or_else(|| NONE.to_string(), |v| format!("{v:.4}"))
}

fn params(value: Option<u64>) -> String {
    value.map_or_else(|| NONE.to_string(), thousands)
}

/// `1234567` as `1,234,567`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_cells() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
        assert_eq!(cell("a |\n b", 80), "a \\| b");
        assert_eq!(cell("abcdef", 3), "abc...");
        assert_eq!(longest_backtick_run("a ``` b ` c"), 3);
    }
}
