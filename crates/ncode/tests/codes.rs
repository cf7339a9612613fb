//! Text forms, errors, conditional spaces, enumeration and neighbourhoods.

use ncode::{Choice, Dimension, NCode, NcodeError, SearchSpace};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn nb201_like() -> SearchSpace {
    let ops = ["none", "skip", "c1", "c3", "pool"];
    SearchSpace::new(
        "cells",
        (0..6)
            .map(|e| Dimension::labels(format!("e{e}"), ops))
            .collect(),
    )
    .unwrap()
}

/// depth in {1,2,3}, then per-layer width (3 choices) active when depth reaches the layer.
fn layered() -> SearchSpace {
    SearchSpace::new(
        "layered",
        vec![
            Dimension::ints("depth", [1, 2, 3]),
            Dimension::ints("w0", [8, 16, 32]),
            Dimension::ints("w1", [8, 16, 32]).active_when(0, [1, 2]),
            Dimension::ints("w2", [8, 16, 32]).active_when(0, [2]),
        ],
    )
    .unwrap()
}

#[test]
fn compact_and_separated_forms() {
    let space = nb201_like();
    let code = space.parse("331123").unwrap();
    assert_eq!(code.indices(), &[3, 3, 1, 1, 2, 3]);
    assert_eq!(space.format(&code), "331123");
    assert_eq!(space.parse("3-3-1-1-2-3").unwrap(), code);
    assert_eq!(space.parse("  331123\n").unwrap(), code);

    let wide = SearchSpace::new(
        "wide",
        vec![
            Dimension::ints("a", 0..4),
            Dimension::ints("b", 0..13),
            Dimension::ints("c", 0..2),
        ],
    )
    .unwrap();
    let code = wide.parse("3-12-0").unwrap();
    assert_eq!(wide.format(&code), "3-12-0");
    assert!(!wide.is_compact());
}

#[test]
fn errors_name_the_position_and_reason() {
    let space = nb201_like();
    let e = space.parse("331153").unwrap_err();
    assert_eq!(
        e,
        NcodeError::OutOfRange {
            position: 4,
            dimension: "e4".into(),
            index: 5,
            choices: 5
        }
    );
    assert!(e.to_string().contains("position 4"), "{e}");
    assert_eq!(
        space.parse("3311x3").unwrap_err(),
        NcodeError::StrayCharacter {
            position: 4,
            character: 'x'
        }
    );
    assert_eq!(
        space.parse(" 33 1123").unwrap_err(),
        NcodeError::StrayCharacter {
            position: 3,
            character: ' '
        }
    );
    assert!(matches!(
        space.parse("33112").unwrap_err(),
        NcodeError::WrongLength {
            expected: 6,
            found: 5,
            ..
        }
    ));
    assert_eq!(
        space.parse("3-3--1-2-3").unwrap_err(),
        NcodeError::EmptyField { position: 2 }
    );
    assert_eq!(space.parse("   ").unwrap_err(), NcodeError::Empty);
    let huge = space
        .parse("99999999999999999999999-0-0-0-0-0")
        .unwrap_err();
    assert!(matches!(huge, NcodeError::OutOfRange { position: 0, .. }));

    let wide = SearchSpace::new("wide", vec![Dimension::ints("a", 0..12)]).unwrap();
    let e = wide.parse("11").unwrap_err();
    assert!(e.to_string().contains("3-12-0-7"), "{e}");
}

#[test]
fn invalid_spaces_are_rejected() {
    let bad = |dims: Vec<Dimension>| SearchSpace::new("bad", dims).unwrap_err().to_string();
    assert!(bad(vec![]).contains("no dimensions"));
    assert!(bad(vec![Dimension::ints("a", [])]).contains("0 choices"));
    assert!(bad(vec![Dimension::ints("a", [1]), Dimension::ints("a", [2])]).contains("repeated"));
    assert!(bad(vec![Dimension::floats("f", [f64::NAN])]).contains("non-finite"));
    assert!(bad(vec![Dimension::ints("a", [1]).active_when(0, [0])]).contains("before"));
    assert!(bad(vec![
        Dimension::ints("a", [1, 2]),
        Dimension::ints("b", [1]).active_when(0, [2])
    ])
    .contains("indices below 2"));
    assert!(bad(vec![
        Dimension::ints("a", [1, 2]),
        Dimension::ints("b", [1, 2]).active_when(0, [1]),
        Dimension::ints("c", [1]).active_when(1, [1]),
    ])
    .contains("itself conditional"));
}

#[test]
fn conditional_dimensions_canonicalize_to_zero() {
    let space = layered();
    let code = space.parse("0222").unwrap();
    assert_eq!(space.canonicalize(&code), space.parse("0200").unwrap());
    assert!(!space.is_canonical(&code));
    assert!(space.is_active(&code, 1));
    assert!(!space.is_active(&code, 2));
    // 3 + 9 + 27 canonical codes; 81 raw ones.
    assert_eq!(space.size().unwrap(), 39);
    assert_eq!(space.raw_size().unwrap(), 81);
    let all: Vec<NCode> = space.enumerate().collect();
    assert_eq!(all.len(), 39);
    assert!(all.iter().all(|c| space.is_canonical(c)));
    assert_eq!(space.dedupe(all.clone()).len(), 39);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(sorted, all, "enumeration is lexicographic");
    assert_eq!(
        space.decode(&space.parse("2120").unwrap()),
        vec![
            &Choice::Int(3),
            &Choice::Int(16),
            &Choice::Int(32),
            &Choice::Int(8)
        ]
    );
}

#[test]
fn enumeration_matches_size_for_unconditional_spaces() {
    let space = nb201_like();
    assert_eq!(space.size().unwrap(), 15_625);
    assert_eq!(space.enumerate().count(), 15_625);
    for (rank, code) in space.enumerate().enumerate().step_by(97) {
        assert_eq!(space.rank(&code), rank as u128);
        assert_eq!(space.unrank(rank as u128), Some(code));
    }
    assert_eq!(space.unrank(15_625), None);
}

#[test]
fn neighbours_mutation_hamming_dedupe() {
    let space = nb201_like();
    let code = space.parse("000000").unwrap();
    let neighbours = space.neighbours(&code);
    assert_eq!(neighbours.len(), 24);
    assert!(neighbours.iter().all(|n| n.hamming(&code) == 1));
    assert_eq!(space.dedupe(neighbours.clone()).len(), 24);

    let layered = layered();
    // depth 1 (index 0): only depth and w0 are active: 2 + 2 neighbours.
    let n = layered.neighbours(&layered.parse("0100").unwrap());
    assert_eq!(n.len(), 4);
    assert!(n.iter().all(|c| layered.is_canonical(c)));

    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..200 {
        let m = space.mutate(&code, &mut rng).unwrap();
        assert_eq!(m.hamming(&code), 1);
    }
    let single = SearchSpace::new("one", vec![Dimension::ints("a", [1])]).unwrap();
    assert_eq!(single.mutate(&NCode::zeros(1), &mut rng), None);

    assert_eq!(
        NCode::new(vec![1, 2]).hamming(&NCode::new(vec![1, 3, 4])),
        2
    );
    let dup = vec![
        layered.parse("0122").unwrap(),
        layered.parse("0100").unwrap(),
        layered.parse("1100").unwrap(),
    ];
    assert_eq!(layered.dedupe(dup).len(), 2);
}

#[test]
fn sampling_is_uniform_per_dimension_and_canonical() {
    let space = layered();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut depth_counts = [0usize; 3];
    for _ in 0..3000 {
        let code = space.sample(&mut rng);
        assert!(space.is_canonical(&code));
        depth_counts[code.index(0)] += 1;
    }
    for count in depth_counts {
        assert!((900..1100).contains(&count), "{depth_counts:?}");
    }
}

#[test]
fn serde_validates_spaces() {
    let space = layered();
    let json = serde_json::to_string(&space).unwrap();
    let back: SearchSpace = serde_json::from_str(&json).unwrap();
    assert_eq!(back, space);
    let broken = json.replace("\"depth\"", "\"w0\"");
    let err = serde_json::from_str::<SearchSpace>(&broken).unwrap_err();
    assert!(err.to_string().contains("repeated"), "{err}");
    let code = space.parse("2120").unwrap();
    assert_eq!(serde_json::to_string(&code).unwrap(), "[2,1,2,0]");
}
