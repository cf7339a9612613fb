//! NAS-Bench-201: arch_str / index / NCode conversions and analytic counts.

use arch_space::nb201::{self, Nb201Cell, Nb201Network, Nb201Op, NUM_ARCHS};

const BEST: &str =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|";

const TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../datasets/nasbench201/nb201_cifar10.csv"
);

#[test]
fn best_cell_converts_exactly() {
    let cell: Nb201Cell = BEST.parse().unwrap();
    assert_eq!(cell.index(), 6111);
    assert_eq!(nb201::space().format(&cell.ncode()), "333132");
    assert_eq!(cell.arch_str(), BEST);
    assert_eq!(Nb201Cell::from_index(6111).unwrap(), cell);
    let code = nb201::space().parse("333132").unwrap();
    assert_eq!(Nb201Cell::from_ncode(&code).unwrap(), cell);
}

#[test]
fn every_index_round_trips_and_matches_the_shipped_table() {
    let text = std::fs::read_to_string(TABLE).unwrap();
    let mut rows = 0;
    for (line, row) in text.lines().skip(1).enumerate() {
        let mut fields = row.split(',');
        let idx: usize = fields.next().unwrap().parse().unwrap();
        let arch = fields.next().unwrap();
        assert_eq!(idx, line);
        let cell = Nb201Cell::from_arch_str(arch).unwrap();
        assert_eq!(cell.index(), idx, "{arch}");
        assert_eq!(Nb201Cell::from_index(idx).unwrap(), cell);
        assert_eq!(cell.arch_str(), arch);
        rows += 1;
    }
    assert_eq!(rows, NUM_ARCHS);
    assert!(Nb201Cell::from_index(NUM_ARCHS).is_err());
}

#[test]
fn arch_str_errors_are_clear() {
    let err = |s: &str| Nb201Cell::from_arch_str(s).unwrap_err().to_string();
    assert!(err("|none~0|+|none~0|none~1|").contains("3 nodes"));
    assert!(err("|none~0|+|none~0|+|none~0|none~1|none~2|").contains("2 incoming edges"));
    assert!(
        err("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|").contains("unknown operation `conv`")
    );
    assert!(err("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|").contains("from node 0"));
    assert!(err("none~0|+|none~0|none~1|+|none~0|none~1|none~2|").contains("enclosed"));
}

#[test]
fn ops_have_official_names_and_order() {
    let names: Vec<&str> = Nb201Op::ALL.iter().map(|o| o.name()).collect();
    assert_eq!(
        names,
        [
            "none",
            "skip_connect",
            "nor_conv_1x1",
            "nor_conv_3x3",
            "avg_pool_3x3"
        ]
    );
    for (i, op) in Nb201Op::ALL.into_iter().enumerate() {
        assert_eq!(op.index(), i);
        assert_eq!(Nb201Op::from_name(op.name()), Some(op));
    }
}

/// Extremes of params and FLOPs over the whole space, against the values of the official API
/// (`get_cost_info`: params in MB = 1e6 parameters, FLOPs in M = 1e6 multiply-accumulates).
#[test]
fn analytic_counts_match_the_official_extremes() {
    let extremes = |net: Nb201Network| {
        let cells: Vec<Nb201Cell> = nb201::space()
            .enumerate()
            .map(|c| Nb201Cell::from_ncode(&c).unwrap())
            .collect();
        let params: Vec<u64> = cells.iter().map(|c| net.params(c)).collect();
        let flops: Vec<u64> = cells.iter().map(|c| net.flops(c)).collect();
        (
            *params.iter().min().unwrap(),
            *params.iter().max().unwrap(),
            *flops.iter().min().unwrap(),
            *flops.iter().max().unwrap(),
        )
    };
    assert_eq!(
        extremes(Nb201Network::cifar10()),
        (73_306, 1_531_546, 7_783_050, 220_119_690)
    );
    let (pmin, pmax, fmin, fmax) = extremes(Nb201Network::cifar100());
    assert_eq!(
        (pmin, pmax, fmin, fmax),
        (79_156, 1_537_396, 7_788_900, 220_125_540)
    );
    assert_eq!(extremes(Nb201Network::imagenet16_120()).0, 80_456);
    // The best cell: 4 3x3 convs, one 1x1 conv, one skip.
    let best: Nb201Cell = BEST.parse().unwrap();
    assert_eq!(Nb201Network::cifar10().params(&best), 1_073_466);
    assert_eq!(Nb201Network::cifar10().flops(&best), 153_272_970);
}
