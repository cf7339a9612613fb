//! Tabular benchmarks: every architecture of a space trained once, looked up instantly.
//!
//! [`TabularBenchmark::load`] reads a NAS-Bench-201 table in the layout of the shipped
//! `datasets/nasbench201/nb201_cifar10.csv`: an `arch_str` column, an optional `idx` column (checked
//! against the official index), and any subset of metric columns named `<dataset>_test_200`,
//! `<dataset>_test_12`, `<dataset>_val_12` or `lat_ms_<device>`, for any dataset or device name.
//! Other columns are ignored. For the datasets of the benchmark (`c10`, `c100`, `in16`) the
//! analytic `<dataset>_params` and `<dataset>_flops` of the cell network are added as metrics, so
//! a search can be constrained by parameters as by latency.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ncode::{NCode, SearchSpace};

use crate::nb201::{self, Nb201Cell, Nb201Network, NUM_ARCHS};
use crate::ArchSpaceError;

/// The dataset column prefix for a name or alias: `cifar10` -> `c10`, `cifar100` -> `c100`,
/// `imagenet16-120` -> `in16`; other names are returned unchanged (any prefix is allowed).
pub fn dataset_prefix(name: &str) -> &str {
    match name.to_ascii_lowercase().as_str() {
        "cifar10" | "cifar-10" => "c10",
        "cifar100" | "cifar-100" => "c100",
        "imagenet16-120" | "imagenet16" | "imagenet16_120" => "in16",
        _ => name,
    }
}

/// Whether a column name is a metric column of the NAS-Bench-201 layout.
fn is_metric_column(name: &str) -> bool {
    let suffixed = ["_test_200", "_test_12", "_val_12"]
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s));
    suffixed || (name.len() > "lat_ms_".len() && name.starts_with("lat_ms_"))
}

fn network_for(prefix: &str) -> Option<Nb201Network> {
    match prefix {
        "c10" => Some(Nb201Network::cifar10()),
        "c100" => Some(Nb201Network::cifar100()),
        "in16" => Some(Nb201Network::imagenet16_120()),
        _ => None,
    }
}

#[derive(Debug)]
struct Table {
    source: PathBuf,
    metrics: Vec<String>,
    /// `values[metric][rank]`, NaN where the file left the cell empty.
    values: Vec<Vec<f64>>,
}

/// A loaded tabular benchmark over the NAS-Bench-201 space.
///
/// Cloning is cheap (the data is shared) and gives a fresh evaluation counter, so parallel
/// searches each count their own evaluations.
#[derive(Debug)]
pub struct TabularBenchmark {
    table: Arc<Table>,
    evaluations: AtomicUsize,
}

impl Clone for TabularBenchmark {
    fn clone(&self) -> Self {
        TabularBenchmark {
            table: Arc::clone(&self.table),
            evaluations: AtomicUsize::new(0),
        }
    }
}

impl TabularBenchmark {
    /// Loads a NAS-Bench-201 table from a CSV file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ArchSpaceError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|source| ArchSpaceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(file, path)
    }

    /// Reads a NAS-Bench-201 table from any reader; `source` names it in errors.
    pub fn from_reader<R: Read>(
        reader: R,
        source: impl AsRef<Path>,
    ) -> Result<Self, ArchSpaceError> {
        let source = source.as_ref().to_path_buf();
        let bad = |reason: String| ArchSpaceError::Table {
            path: source.clone(),
            reason,
        };
        let mut csv = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(reader);
        let headers = csv
            .headers()
            .map_err(|e| bad(format!("cannot read the header: {e}")))?
            .clone();
        let column = |name: &str| headers.iter().position(|h| h == name);
        let arch_col = column("arch_str").ok_or_else(|| bad("missing column `arch_str`".into()))?;
        let idx_col = column("idx");
        let metric_cols: Vec<(usize, String)> = headers
            .iter()
            .enumerate()
            .filter(|(_, h)| is_metric_column(h))
            .map(|(i, h)| (i, h.to_string()))
            .collect();
        if metric_cols.is_empty() {
            return Err(bad(
                "no metric column (expected `<dataset>_test_200`, `<dataset>_test_12`, \
                 `<dataset>_val_12` or `lat_ms_<device>`)"
                    .into(),
            ));
        }
        let mut values = vec![vec![f64::NAN; NUM_ARCHS]; metric_cols.len()];
        let mut first_line: Vec<Option<u64>> = vec![None; NUM_ARCHS];
        let mut rows = 0usize;
        for record in csv.records() {
            let record = record.map_err(|e| bad(format!("unreadable row: {e}")))?;
            let line = record.position().map_or(0, |p| p.line());
            rows += 1;
            let field = |i: usize| record.get(i).unwrap_or("");
            let cell = Nb201Cell::from_arch_str(field(arch_col))
                .map_err(|e| bad(format!("line {line}: {e}")))?;
            let rank = nb201::space().rank(&cell.ncode()) as usize;
            if let Some(previous) = first_line[rank].replace(line) {
                return Err(bad(format!(
                    "line {line}: duplicate architecture {cell} (first at line {previous})"
                )));
            }
            if let Some(i) = idx_col {
                let expected = cell.index();
                if field(i).parse::<usize>().ok() != Some(expected) {
                    return Err(bad(format!(
                        "line {line}: idx `{}` does not match the official index {expected} of {cell}",
                        field(i)
                    )));
                }
            }
            for (m, (col, name)) in metric_cols.iter().enumerate() {
                let text = field(*col);
                if text.is_empty() {
                    continue;
                }
                values[m][rank] = text
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        bad(format!(
                            "line {line}: column `{name}` holds `{text}`, not a number"
                        ))
                    })?;
            }
        }
        if rows != NUM_ARCHS {
            return Err(bad(format!(
                "expected {NUM_ARCHS} architecture rows, found {rows}"
            )));
        }
        let mut metrics: Vec<String> = metric_cols.into_iter().map(|(_, n)| n).collect();
        add_analytic_counts(&mut metrics, &mut values);
        Ok(TabularBenchmark {
            table: Arc::new(Table {
                source,
                metrics,
                values,
            }),
            evaluations: AtomicUsize::new(0),
        })
    }

    /// The NCode space the table covers.
    pub fn space(&self) -> &'static SearchSpace {
        nb201::space()
    }

    /// Where the table was read from.
    pub fn source(&self) -> &Path {
        &self.table.source
    }

    /// The metric names, in file order, then the analytic counts.
    pub fn metrics(&self) -> &[String] {
        &self.table.metrics
    }

    /// Position of a metric, or an error listing the available ones.
    pub fn metric(&self, name: &str) -> Result<usize, ArchSpaceError> {
        self.table
            .metrics
            .iter()
            .position(|m| m == name)
            .ok_or_else(|| ArchSpaceError::UnknownMetric {
                name: name.to_string(),
                available: self.table.metrics.join(", "),
            })
    }

    /// A metric of an architecture, without counting an evaluation (for constraints and
    /// reporting). `None` when the table has no value there or the code is invalid.
    pub fn peek(&self, code: &NCode, metric: usize) -> Option<f64> {
        self.space().check(code).ok()?;
        let rank = self.space().rank(code) as usize;
        let value = *self.table.values.get(metric)?.get(rank)?;
        (!value.is_nan()).then_some(value)
    }

    /// Evaluates an architecture: counts one evaluation and returns the metric.
    pub fn evaluate(&self, code: &NCode, metric: usize) -> Result<Option<f64>, ArchSpaceError> {
        self.space().check(code)?;
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        Ok(self.peek(code, metric))
    }

    /// Evaluations counted since this handle was created or cloned.
    pub fn evaluations(&self) -> usize {
        self.evaluations.load(Ordering::Relaxed)
    }

    /// The architecture with the highest value of `metric` among those `admit` accepts, and that
    /// value (the optimum that regret is measured against).
    pub fn best(&self, metric: usize, admit: impl Fn(&NCode) -> bool) -> Option<(NCode, f64)> {
        self.space()
            .enumerate()
            .filter(|code| admit(code))
            .filter_map(|code| self.peek(&code, metric).map(|v| (code, v)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

type Count = fn(&Nb201Network, &Nb201Cell) -> u64;
const COUNT_PARAMS: Count = Nb201Network::params;
const COUNT_FLOPS: Count = Nb201Network::flops;

/// Appends `<dataset>_params` and `<dataset>_flops` for every known dataset of the table.
fn add_analytic_counts(metrics: &mut Vec<String>, values: &mut Vec<Vec<f64>>) {
    let mut networks: Vec<(String, Nb201Network)> = Vec::new();
    for name in metrics.iter() {
        if let Some((prefix, _)) = name.split_once('_') {
            if let Some(net) = network_for(prefix) {
                if !networks.iter().any(|(p, _)| p == prefix) {
                    networks.push((prefix.to_string(), net));
                }
            }
        }
    }
    let cells: Vec<Nb201Cell> = nb201::space()
        .enumerate()
        .map(|code| Nb201Cell::from_ncode(&code).expect("enumerated codes are valid"))
        .collect();
    for (prefix, net) in networks {
        for (what, count) in [("params", COUNT_PARAMS), ("flops", COUNT_FLOPS)] {
            let name = format!("{prefix}_{what}");
            if !metrics.contains(&name) {
                values.push(cells.iter().map(|c| count(&net, c) as f64).collect());
                metrics.push(name);
            }
        }
    }
}
