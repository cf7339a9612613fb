//! Micro-benchmarks of the hot paths of a tabular search: NCode text conversion, sampling,
//! neighbourhoods, NAS-Bench-201 `arch_str` and official-index conversion, and table lookups.
//!
//! Run with `cargo bench --bench ncode_table` (add `-- --quick` for a fast pass).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use nas_rs::arch_space::nb201::{self, Nb201Cell};
use nas_rs::arch_space::tabular::TabularBenchmark;
use nas_rs::ncode::{Dimension, SearchSpace};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/nasbench201/nb201_cifar10.csv"
);

const ARCH_STR: &str =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|";

/// A space whose dimensions have up to 16 choices, so codes use the separated form.
fn wide_space() -> SearchSpace {
    SearchSpace::new(
        "wide",
        (0..8)
            .map(|d| Dimension::ints(format!("d{d}"), 0..16))
            .collect(),
    )
    .expect("valid space")
}

fn ncode(c: &mut Criterion) {
    let space = nb201::space();
    let wide = wide_space();
    let code = space.parse("333132").unwrap();
    let wide_text = "3-12-0-7-15-1-9-10";
    let wide_code = wide.parse(wide_text).unwrap();

    let mut group = c.benchmark_group("ncode");
    group.bench_function("parse compact 333132", |b| {
        b.iter(|| space.parse(black_box("333132")).unwrap())
    });
    group.bench_function("parse separated 3-12-0-7-15-1-9-10", |b| {
        b.iter(|| wide.parse(black_box(wide_text)).unwrap())
    });
    group.bench_function("format compact", |b| {
        b.iter(|| space.format(black_box(&code)))
    });
    group.bench_function("format separated", |b| {
        b.iter(|| wide.format(black_box(&wide_code)))
    });
    group.bench_function("sample nb201", |b| {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        b.iter(|| space.sample(black_box(&mut rng)))
    });
    group.bench_function("neighbours nb201 (24)", |b| {
        b.iter(|| space.neighbours(black_box(&code)))
    });
    group.finish();
}

fn nb201_conversions(c: &mut Criterion) {
    let cell = Nb201Cell::from_arch_str(ARCH_STR).unwrap();
    assert_eq!(cell.index(), 6111);
    let mut group = c.benchmark_group("nb201");
    group.bench_function("arch_str parse", |b| {
        b.iter(|| Nb201Cell::from_arch_str(black_box(ARCH_STR)).unwrap())
    });
    group.bench_function("arch_str format", |b| {
        b.iter(|| black_box(&cell).arch_str())
    });
    group.bench_function("official index of cell", |b| {
        b.iter(|| black_box(&cell).index())
    });
    group.bench_function("cell of official index", |b| {
        b.iter(|| Nb201Cell::from_index(black_box(6111)).unwrap())
    });
    group.finish();
}

fn table(c: &mut Criterion) {
    let table = TabularBenchmark::load(TABLE).expect("the shipped table loads");
    let space = table.space();
    let test = table.metric("c10_test_200").unwrap();
    let val = table.metric("c10_val_12").unwrap();
    let code = space.parse("333132").unwrap();
    assert_eq!(table.peek(&code, test), Some(94.3733));

    let mut group = c.benchmark_group("table");
    group.bench_function("peek", |b| {
        b.iter(|| table.peek(black_box(&code), black_box(test)))
    });
    group.bench_function("evaluate", |b| {
        b.iter(|| table.evaluate(black_box(&code), black_box(val)).unwrap())
    });
    group.bench_function("parse + peek", |b| {
        b.iter(|| {
            let code = space.parse(black_box("333132")).unwrap();
            table.peek(&code, test)
        })
    });
    group.bench_function("arch_str + peek", |b| {
        b.iter(|| {
            let cell = Nb201Cell::from_arch_str(black_box(ARCH_STR)).unwrap();
            table.peek(&cell.ncode(), test)
        })
    });
    group.sample_size(10);
    group.bench_function("load csv (15,625 rows)", |b| {
        b.iter(|| TabularBenchmark::load(black_box(TABLE)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, ncode, nb201_conversions, table);
criterion_main!(benches);
