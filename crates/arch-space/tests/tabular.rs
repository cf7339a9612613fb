//! Loading NAS-Bench-201 tables: the shipped one, column subsets, and broken files.

use arch_space::nb201::{self, Nb201Cell};
use arch_space::tabular::{dataset_prefix, TabularBenchmark};
use arch_space::ArchSpaceError;

const TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../datasets/nasbench201/nb201_cifar10.csv"
);

fn shipped_text() -> String {
    std::fs::read_to_string(TABLE).unwrap()
}

fn load_text(text: &str) -> Result<TabularBenchmark, ArchSpaceError> {
    TabularBenchmark::from_reader(text.as_bytes(), "<test>")
}

/// Keeps only the given columns (by name) of the shipped table, renaming with `rename`.
fn project(columns: &[&str], rename: impl Fn(&str) -> String) -> String {
    let text = shipped_text();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<usize> = columns
        .iter()
        .map(|c| header.iter().position(|h| h == c).unwrap())
        .collect();
    let mut out = keep
        .iter()
        .map(|&i| rename(header[i]))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        out.push_str(
            &keep
                .iter()
                .map(|&i| fields[i])
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

#[test]
fn shipped_table_loads_with_all_metrics() {
    let table = TabularBenchmark::load(TABLE).unwrap();
    let metrics = table.metrics();
    for m in [
        "c10_test_200",
        "c10_test_12",
        "c10_val_12",
        "lat_ms_pixel3",
        "c10_params",
        "c10_flops",
    ] {
        assert!(metrics.iter().any(|x| x == m), "missing {m}: {metrics:?}");
    }
    let test = table.metric("c10_test_200").unwrap();
    let (code, best) = table.best(test, |_| true).unwrap();
    assert_eq!(Nb201Cell::from_ncode(&code).unwrap().index(), 6111);
    assert!((best - 94.3733).abs() < 1e-9);
    // Row 1 of the file.
    let cell = Nb201Cell::from_index(1).unwrap();
    assert_eq!(table.peek(&cell.ncode(), test), Some(93.66));
    let params = table.metric("c10_params").unwrap();
    assert_eq!(table.peek(&code, params), Some(1_073_466.0));
}

#[test]
fn evaluations_are_counted_per_handle() {
    let table = TabularBenchmark::load(TABLE).unwrap();
    let val = table.metric("c10_val_12").unwrap();
    let code = nb201::space().parse("333132").unwrap();
    assert_eq!(table.evaluations(), 0);
    table.peek(&code, val);
    assert_eq!(table.evaluations(), 0);
    assert!(table.evaluate(&code, val).unwrap().is_some());
    table.evaluate(&code, val).unwrap();
    assert_eq!(table.evaluations(), 2);
    let clone = table.clone();
    assert_eq!(clone.evaluations(), 0);
    let bad = ncode::NCode::new(vec![9, 0, 0, 0, 0, 0]);
    assert!(table.evaluate(&bad, val).is_err());
    assert_eq!(table.evaluations(), 2);
}

#[test]
fn any_subset_of_metric_columns_and_any_dataset_name() {
    let text = project(&["arch_str", "c10_val_12", "lat_ms_raspi4"], |h| {
        h.replace("c10_", "c100_")
    });
    let table = load_text(&text).unwrap();
    assert_eq!(
        table.metrics(),
        ["c100_val_12", "lat_ms_raspi4", "c100_params", "c100_flops"]
    );
    let custom = project(&["arch_str", "c10_test_12"], |h| {
        h.replace("c10_", "mydata_")
    });
    let table = load_text(&custom).unwrap();
    assert_eq!(table.metrics(), ["mydata_test_12"]);
    let err = table.metric("c10_test_200").unwrap_err().to_string();
    assert!(err.contains("mydata_test_12"), "{err}");
    assert_eq!(dataset_prefix("cifar10"), "c10");
    assert_eq!(dataset_prefix("ImageNet16-120"), "in16");
    assert_eq!(dataset_prefix("c100"), "c100");
}

#[test]
fn broken_tables_get_clear_errors() {
    let full = shipped_text();
    let err = |text: &str| load_text(text).expect_err("should fail").to_string();

    let no_arch = project(&["idx", "c10_val_12"], str::to_string);
    assert!(err(&no_arch).contains("missing column `arch_str`"));

    let no_metric = project(&["idx", "arch_str"], str::to_string);
    assert!(err(&no_metric).contains("no metric column"));

    let short: String = full.lines().take(101).map(|l| format!("{l}\n")).collect();
    assert!(err(&short).contains("expected 15625 architecture rows, found 100"));

    let mut lines: Vec<String> = full.lines().map(str::to_string).collect();
    let dup_source = lines[1].split_once(',').unwrap().1.to_string();
    lines[3] = format!("2,{dup_source}");
    let e = err(&lines.join("\n"));
    assert!(
        e.contains("line 4") && e.contains("duplicate") && e.contains("line 2"),
        "{e}"
    );

    let mut lines: Vec<String> = full.lines().map(str::to_string).collect();
    lines[5] = lines[5].replacen("4,", "7,", 1);
    let e = err(&lines.join("\n"));
    assert!(
        e.contains("line 6") && e.contains("official index 4"),
        "{e}"
    );

    let mut lines: Vec<String> = full.lines().map(str::to_string).collect();
    let mut fields: Vec<String> = lines[10].split(',').map(str::to_string).collect();
    fields[2] = "abc".into();
    lines[10] = fields.join(",");
    let e = err(&lines.join("\n"));
    assert!(
        e.contains("line 11") && e.contains("c10_test_200") && e.contains("abc"),
        "{e}"
    );

    let e = TabularBenchmark::load("/nonexistent/table.csv")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/table.csv"), "{e}");
}

#[test]
fn empty_cells_are_missing_values() {
    let mut lines: Vec<String> = shipped_text().lines().map(str::to_string).collect();
    let mut fields: Vec<String> = lines[7].split(',').map(str::to_string).collect();
    fields[2].clear();
    lines[7] = fields.join(",");
    let table = load_text(&lines.join("\n")).unwrap();
    let cell = Nb201Cell::from_index(6).unwrap();
    let test = table.metric("c10_test_200").unwrap();
    assert_eq!(table.peek(&cell.ncode(), test), None);
}
