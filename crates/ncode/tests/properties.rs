//! Property tests: text round trips, rank round trips, subspace mappings.

use ncode::{Dimension, DimensionPruning, NCode, RandomPruning, SearchSpace, Subspace};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A random space: 1..8 dimensions of 1..14 choices, the later ones possibly conditional on
/// dimension 0.
fn arb_space() -> impl Strategy<Value = SearchSpace> {
    (
        prop::collection::vec((1usize..14, any::<bool>()), 1..8),
        1usize..5,
    )
        .prop_map(|(dims, depth_choices)| {
            let mut out = vec![Dimension::ints("depth", 0..depth_choices as i64)];
            for (i, (n, conditional)) in dims.into_iter().enumerate() {
                let d = Dimension::ints(format!("d{i}"), 0..n as i64);
                out.push(if conditional && depth_choices > 1 {
                    d.active_when(0, (i % depth_choices)..depth_choices)
                } else {
                    d
                });
            }
            SearchSpace::new("arb", out).unwrap()
        })
}

fn arb_space_and_code() -> impl Strategy<Value = (SearchSpace, NCode)> {
    arb_space().prop_flat_map(|space| {
        let dims: Vec<_> = space
            .dimensions()
            .iter()
            .map(|d| 0..d.len() as u16)
            .collect();
        (Just(space), dims).prop_map(|(space, idx)| (space, NCode::new(idx)))
    })
}

proptest! {
    #[test]
    fn text_round_trip((space, code) in arb_space_and_code()) {
        let text = space.format(&code);
        prop_assert_eq!(space.parse(&text).unwrap(), code.clone());
        let separated: Vec<String> = code.indices().iter().map(u16::to_string).collect();
        prop_assert_eq!(space.parse(&separated.join("-")).unwrap(), code);
    }

    #[test]
    fn rank_round_trip((space, code) in arb_space_and_code()) {
        let rank = space.rank(&code);
        prop_assert!(rank < space.raw_size().unwrap());
        prop_assert_eq!(space.unrank(rank), Some(code));
    }

    #[test]
    fn canonicalization_is_idempotent((space, code) in arb_space_and_code()) {
        let c = space.canonicalize(&code);
        prop_assert!(space.is_canonical(&c));
        prop_assert_eq!(space.canonicalize(&c), c.clone());
        for n in space.neighbours(&c) {
            prop_assert!(space.is_canonical(&n));
            prop_assert_ne!(&n, &c);
        }
    }

    #[test]
    fn subspace_maps_both_ways(space in arb_space(), seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sub = Subspace::random(space.clone(), RandomPruning::default(), &mut rng);
        let mut images = std::collections::HashSet::new();
        for _ in 0..50 {
            let code = sub.space().sample(&mut rng);
            let parent = sub.to_parent(&code).unwrap();
            prop_assert!(space.is_canonical(&parent));
            prop_assert_eq!(sub.from_parent(&parent).unwrap(), code.clone());
            images.insert((code, parent));
        }
        // Distinct subspace codes map to distinct parent codes.
        let subs: std::collections::HashSet<_> = images.iter().map(|(s, _)| s).collect();
        let parents: std::collections::HashSet<_> = images.iter().map(|(_, p)| p).collect();
        prop_assert_eq!(subs.len(), parents.len());
        // The subspace never holds more architectures than its parent.
        prop_assert!(sub.space().size().unwrap() <= space.size().unwrap());
    }
}

#[test]
fn explicit_pruning_reindexes_and_rejects_pruned_codes() {
    let ops = ["none", "skip", "c1", "c3", "pool"];
    let space = SearchSpace::new(
        "cells",
        (0..6)
            .map(|e| Dimension::labels(format!("e{e}"), ops))
            .collect(),
    )
    .unwrap();
    let pruning = vec![
        DimensionPruning::KeepOptions(vec![3, 1]),
        DimensionPruning::Keep,
        DimensionPruning::Fix(0),
        DimensionPruning::KeepOptions(vec![4]),
        DimensionPruning::Keep,
        DimensionPruning::Fix(2),
    ];
    let sub = Subspace::new(space.clone(), pruning).unwrap();
    assert_eq!(sub.space().len(), 4);
    assert_eq!(sub.space().size().unwrap(), 2 * 5 * 5);
    assert_eq!(
        sub.space().dimensions()[0].choices[1].as_label(),
        Some("c3")
    );
    // sub code 1-2-0-4 -> parent e0=c3(3), e1=2, e2 fixed 0, e3=pool(4), e4=4, e5 fixed 2.
    let parent = sub.to_parent(&sub.space().parse("1204").unwrap()).unwrap();
    assert_eq!(space.format(&parent), "320442");
    assert_eq!(
        sub.space().format(&sub.from_parent(&parent).unwrap()),
        "1204"
    );
    let err = sub
        .from_parent(&space.parse("020442").unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("position 0"), "{err}");
    let err = sub
        .from_parent(&space.parse("321442").unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("position 2"), "{err}");
    // Serde keeps the parent and the pruning, and rebuilds the rest.
    let json = serde_json::to_string(&sub).unwrap();
    let back: Subspace = serde_json::from_str(&json).unwrap();
    assert_eq!(back, sub);
}

#[test]
fn pruning_a_controller_carries_conditions() {
    let space = SearchSpace::new(
        "layered",
        vec![
            Dimension::ints("depth", [1, 2, 3]),
            Dimension::ints("w0", [8, 16]),
            Dimension::ints("w1", [8, 16]).active_when(0, [1, 2]),
            Dimension::ints("w2", [8, 16]).active_when(0, [2]),
        ],
    )
    .unwrap();
    // Keep depths 1 and 2 only: w2 can never be active and is fixed; w1 depends on sub index 1.
    let sub = Subspace::new(
        space.clone(),
        vec![
            DimensionPruning::KeepOptions(vec![0, 1]),
            DimensionPruning::Keep,
            DimensionPruning::Keep,
            DimensionPruning::Keep,
        ],
    )
    .unwrap();
    assert_eq!(sub.space().len(), 3);
    assert_eq!(sub.space().size().unwrap(), 2 + 4);
    // Fix depth to 3: every width becomes unconditional.
    let fixed = Subspace::new(
        space,
        vec![
            DimensionPruning::Fix(2),
            DimensionPruning::Keep,
            DimensionPruning::Keep,
            DimensionPruning::Keep,
        ],
    )
    .unwrap();
    assert!(!fixed.space().is_conditional());
    assert_eq!(fixed.space().size().unwrap(), 8);
    let bad = Subspace::new(fixed.parent().clone(), vec![DimensionPruning::Keep; 3]);
    assert!(bad.unwrap_err().to_string().contains("3 entries for 4"));
}
