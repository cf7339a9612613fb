//! Contract tests of every searcher: proposals are canonical, unseen and admissible, searches
//! are reproducible for a seed, spaces are exhausted exactly once, and the strategy-specific
//! behaviour (REA mutates its population, local search climbs, the ranking loop drops any
//! ranker in) holds.

use std::collections::{BTreeSet, HashSet};

use arch_space::nb201;
use ncode::{Dimension, NCode, SearchSpace};
use ranker::{Ranker, RankerError, RankingRequest};
use search_loop::{
    History, LocalSearch, Observation, RankingSearch, RegularizedEvolution, SearchContext,
    SearchError, Searcher, Strategy,
};

// ---------------------------------------------------------------- helpers

/// 3 dimensions x 3 choices: 27 codes.
fn toy_space() -> SearchSpace {
    SearchSpace::new(
        "toy",
        vec![
            Dimension::ints("a", [0, 1, 2]),
            Dimension::labels("b", ["x", "y", "z"]),
            Dimension::floats("c", [0.25, 0.5, 1.0]),
        ],
    )
    .unwrap()
}

/// A conditional toy space: `c` exists only when `a` is 1 or 2, so it has 3 + 9 + 9 = 21
/// canonical codes (of 27 raw ones).
fn conditional_space() -> SearchSpace {
    SearchSpace::new(
        "toy-conditional",
        vec![
            Dimension::ints("a", [0, 1, 2]),
            Dimension::ints("b", [0, 1, 2]),
            Dimension::ints("c", [0, 1, 2]).active_when(0, [1, 2]),
        ],
    )
    .unwrap()
}

/// 4 dimensions x 4 choices: 256 codes, exactly half of them with an even index sum.
fn parity_space() -> SearchSpace {
    SearchSpace::new(
        "parity",
        (0..4)
            .map(|d| Dimension::ints(format!("d{d}"), 0..4))
            .collect(),
    )
    .unwrap()
}

fn even_sum(code: &NCode) -> bool {
    code.indices().iter().map(|&i| u32::from(i)).sum::<u32>() % 2 == 0
}

/// A deterministic toy score with a single maximum at `2,1,0,...`-like positions and no
/// symmetries: a weighted distance to a fixed point.
fn toy_score(code: &NCode) -> Option<f64> {
    let s: f64 = code
        .indices()
        .iter()
        .enumerate()
        .map(|(p, &i)| {
            let target = (2 + p) % 3;
            let d = f64::from(i) - target as f64;
            -(p as f64 + 1.0) * d * d
        })
        .sum();
    Some(s)
}

/// A score without structure (a hash of the code), so REA's population does not collapse.
fn hash_score(code: &NCode) -> Option<f64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &i in code.indices() {
        h ^= u64::from(i) + 1;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Some((h % 10_000) as f64)
}

/// Runs `searcher` for up to `budget` evaluations; returns the history and the error that
/// stopped it early, if any. Checks at every step that the proposal is open and canonical.
fn run(
    searcher: &mut dyn Searcher,
    ctx: &SearchContext<'_>,
    budget: usize,
    score: impl Fn(&NCode) -> Option<f64>,
) -> (History, Option<SearchError>) {
    let mut history = History::new();
    while history.len() < budget {
        match searcher.propose(ctx, &history) {
            Ok(code) => {
                assert!(
                    ctx.space.check(&code).is_ok(),
                    "{}: invalid code {code:?}",
                    searcher.name()
                );
                assert!(
                    ctx.space.is_canonical(&code),
                    "{}: non-canonical proposal {code:?}",
                    searcher.name()
                );
                assert!(
                    !history.contains(&code),
                    "{}: proposed {code:?} twice (step {})",
                    searcher.name(),
                    history.len()
                );
                assert!(
                    (ctx.admissible)(&code),
                    "{}: proposed inadmissible {code:?}",
                    searcher.name()
                );
                let s = score(&code);
                history.push(Observation { code, score: s });
            }
            Err(e) => return (history, Some(e)),
        }
    }
    (history, None)
}

fn codes(history: &History) -> Vec<NCode> {
    history
        .observations()
        .iter()
        .map(|o| o.code.clone())
        .collect()
}

// ---------------------------------------------------------------- every strategy

#[test]
fn built_searchers_carry_their_strategy_name() {
    for strategy in Strategy::ALL {
        assert_eq!(strategy.build(0).unwrap().name(), strategy.name());
        assert_eq!(strategy.name().parse::<Strategy>().unwrap(), strategy);
        assert_eq!(strategy.to_string(), strategy.name());
    }
    assert_eq!(
        Strategy::parse_list(" random, rea,,local ,tpe,rank-random").unwrap(),
        Strategy::ALL.to_vec()
    );
    let err = Strategy::parse_list("random,bogus").unwrap_err();
    assert!(matches!(&err, SearchError::UnknownStrategy { text, .. } if text == "bogus"));
    assert!(err.to_string().contains("`bogus`"));
}

#[test]
fn proposals_are_canonical_unseen_and_admissible() {
    for space in [toy_space(), conditional_space()] {
        let ctx = SearchContext::unconstrained(&space, "toy");
        for strategy in Strategy::ALL {
            for seed in 0..5 {
                let mut searcher = strategy.build(seed).unwrap();
                let (history, err) = run(searcher.as_mut(), &ctx, 15, toy_score);
                assert!(err.is_none(), "{strategy} seed {seed}: {err:?}");
                assert_eq!(history.len(), 15);
            }
        }
    }
}

#[test]
fn same_seed_same_sequence_different_seeds_differ() {
    let toy = toy_space();
    let spaces = [&toy, nb201::space()];
    for space in spaces {
        let ctx = SearchContext::unconstrained(space, "toy");
        // 20 proposals: past every warm-up (REA 10, ranking 5), so the strategy-specific
        // moves are covered too.
        let sequence = |strategy: &Strategy, seed: u64| {
            let mut searcher = strategy.build(seed).unwrap();
            codes(&run(searcher.as_mut(), &ctx, 20, toy_score).0)
        };
        for strategy in Strategy::ALL {
            for seed in [0, 1, 42] {
                assert_eq!(
                    sequence(&strategy, seed),
                    sequence(&strategy, seed),
                    "{strategy} seed {seed} on {} is not reproducible",
                    space.name()
                );
            }
            assert_ne!(
                sequence(&strategy, 1),
                sequence(&strategy, 2),
                "{strategy} seeds 1 and 2 on {} gave the same search",
                space.name()
            );
        }
    }
}

#[test]
fn a_budget_beyond_the_space_evaluates_every_code_once_then_exhausts() {
    for space in [toy_space(), conditional_space()] {
        let all: BTreeSet<NCode> = space.enumerate().collect();
        assert_eq!(all.len() as u128, space.size().unwrap());
        let ctx = SearchContext::unconstrained(&space, "toy");
        for strategy in Strategy::ALL {
            for seed in 0..3 {
                let mut searcher = strategy.build(seed).unwrap();
                let (history, err) = run(searcher.as_mut(), &ctx, all.len() + 10, toy_score);
                assert_eq!(history.len(), all.len(), "{strategy} on {}", space.name());
                let seen: BTreeSet<NCode> = codes(&history).into_iter().collect();
                assert_eq!(seen, all, "{strategy} on {}", space.name());
                assert!(
                    matches!(err, Some(SearchError::Exhausted { .. })),
                    "{strategy} on {}: expected Exhausted, got {err:?}",
                    space.name()
                );
                // And it stays exhausted.
                assert!(matches!(
                    searcher.propose(&ctx, &history),
                    Err(SearchError::Exhausted { .. })
                ));
            }
        }
    }
}

#[test]
fn exhausted_error_names_the_searcher() {
    let space = toy_space();
    let ctx = SearchContext::unconstrained(&space, "toy");
    let history: History = space
        .enumerate()
        .map(|code| Observation {
            score: toy_score(&code),
            code,
        })
        .collect::<Vec<_>>()
        .into();
    for strategy in Strategy::ALL {
        let err = strategy
            .build(0)
            .unwrap()
            .propose(&ctx, &history)
            .unwrap_err();
        match &err {
            SearchError::Exhausted { searcher, .. } => assert_eq!(searcher, strategy.name()),
            other => panic!("{strategy}: expected Exhausted, got {other:?}"),
        }
        assert!(err.to_string().starts_with(strategy.name()));
    }
}

// ---------------------------------------------------------------- constraints

#[test]
fn constrained_searches_exhaust_exactly_the_admissible_half() {
    let space = parity_space();
    let admissible: BTreeSet<NCode> = space.enumerate().filter(even_sum).collect();
    assert_eq!(admissible.len(), 128);
    let ctx = SearchContext {
        space: &space,
        admissible: &even_sum,
        task: "parity",
    };
    for strategy in Strategy::ALL {
        for seed in 0..3 {
            let mut searcher = strategy.build(seed).unwrap();
            let (history, err) = run(searcher.as_mut(), &ctx, 200, toy_score);
            assert!(matches!(err, Some(SearchError::Exhausted { .. })));
            let seen: BTreeSet<NCode> = codes(&history).into_iter().collect();
            assert_eq!(seen, admissible, "{strategy} seed {seed}");
        }
    }
}

#[test]
fn constrained_searches_on_nb201_stay_admissible() {
    let admissible = |code: &NCode| even_sum(code);
    let ctx = SearchContext {
        space: nb201::space(),
        admissible: &admissible,
        task: "nb201 parity",
    };
    for strategy in Strategy::ALL {
        for seed in 0..3 {
            let mut searcher = strategy.build(seed).unwrap();
            // `run` asserts admissibility of every proposal.
            let (history, err) = run(searcher.as_mut(), &ctx, 150, toy_score);
            assert!(err.is_none());
            assert!(codes(&history).iter().all(even_sum));
        }
    }
}

// ---------------------------------------------------------------- regularized evolution

#[test]
fn rea_children_are_single_mutations_of_the_population() {
    let space = nb201::space();
    let ctx = SearchContext::unconstrained(space, "rea");
    let population = 10;
    for seed in 0..5 {
        let mut rea = RegularizedEvolution::new(seed);
        let mut history = History::new();
        for step in 0..300 {
            let code = rea.propose(&ctx, &history).unwrap();
            assert!(!history.contains(&code));
            if step >= population {
                let members = &history.observations()[step - population..];
                let mutated = members.iter().any(|m| m.code.hamming(&code) == 1);
                assert!(
                    mutated,
                    "seed {seed} step {step}: {code:?} is not one mutation away from the \
                     population {:?}",
                    members.iter().map(|m| &m.code).collect::<Vec<_>>()
                );
            }
            let score = hash_score(&code);
            history.push(Observation { code, score });
        }
    }
}

#[test]
fn rea_child_comes_from_a_tournament_of_the_population() {
    // With a tournament as large as the population, the parent is always the best member, so
    // every child is exactly one mutation away from the best of the last `population`.
    let space = nb201::space();
    let ctx = SearchContext::unconstrained(space, "rea");
    let population = 8;
    for seed in 0..3 {
        let mut rea = RegularizedEvolution::with_settings(seed, population, population);
        let mut history = History::new();
        for step in 0..120 {
            let code = rea.propose(&ctx, &history).unwrap();
            if step >= population {
                let members = &history.observations()[step - population..];
                let top = members
                    .iter()
                    .filter_map(|m| m.score)
                    .fold(f64::NEG_INFINITY, f64::max);
                // Every member with the top score may win the tournament (ties go to whichever
                // the tournament drew first).
                let bests: Vec<&NCode> = members
                    .iter()
                    .filter(|m| m.score == Some(top))
                    .map(|m| &m.code)
                    .collect();
                if !bests.iter().any(|b| b.hamming(&code) == 1) {
                    // Not a mutation of a possible parent, so it must be the random fallback,
                    // which needs 100 mutation draws that all hit evaluated neighbours. With k
                    // open neighbours of 24 that has probability (1 - k/24)^100, negligible
                    // (< 1e-8) for k >= 4, so accept it only when some best member has at
                    // most 3 open neighbours.
                    let fewest_open = bests
                        .iter()
                        .map(|b| {
                            space
                                .neighbours(b)
                                .iter()
                                .filter(|n| !history.contains(n))
                                .count()
                        })
                        .min()
                        .unwrap();
                    assert!(
                        fewest_open <= 3,
                        "seed {seed} step {step}: {code:?} is not a mutation of the best \
                         members {bests:?} ({fewest_open} open neighbours)"
                    );
                }
            }
            let score = hash_score(&code);
            history.push(Observation { code, score });
        }
    }
}

// ---------------------------------------------------------------- local search

#[test]
fn local_search_climbs_a_unimodal_score_to_its_top_within_the_derived_bound() {
    // score = -(Hamming distance to a target). From distance d, a neighbour is at d - 1 (d of
    // the 24: a wrong edge set right), d (3d: a wrong edge set to another wrong op) or d + 1
    // (4(6 - d): a right edge set wrong). First-improvement hill climbing therefore evaluates
    // at most (24 - d) non-improving neighbours plus the improving one, i.e. 25 - d, per step
    // (an improving neighbour is always unseen: every earlier evaluation was at distance >= d).
    // From the worst start (d = 6): 1 + sum_{d=1..6} (25 - d) = 1 + 129 = 130 evaluations.
    let bound_from = |d: usize| 1 + (1..=d).map(|k| 25 - k).sum::<usize>();
    assert_eq!(bound_from(6), 130);
    let space = nb201::space();
    let ctx = SearchContext::unconstrained(space, "climb");
    for target_text in ["333132", "000000", "441204"] {
        let target = space.parse(target_text).unwrap();
        let score = |code: &NCode| Some(-(code.hamming(&target) as f64));
        for seed in 0..20 {
            let mut local = LocalSearch::new(seed);
            let mut history = History::new();
            let mut start_distance = None;
            while !history.contains(&target) {
                let code = local.propose(&ctx, &history).unwrap();
                start_distance.get_or_insert(code.hamming(&target));
                let s = score(&code);
                history.push(Observation { code, score: s });
                assert!(
                    history.len() <= 130,
                    "target {target_text} seed {seed}: not reached in 130 evaluations"
                );
            }
            let d = start_distance.unwrap();
            assert!(
                history.len() <= bound_from(d),
                "target {target_text} seed {seed}: {} evaluations from distance {d} (bound {})",
                history.len(),
                bound_from(d)
            );
            // Every evaluation after the start is a neighbour of an earlier evaluation (no
            // restart happened on a unimodal score).
            let all = codes(&history);
            for (i, code) in all.iter().enumerate().skip(1) {
                assert!(
                    all[..i].iter().any(|c| c.hamming(code) == 1),
                    "target {target_text} seed {seed}: step {i} {code:?} is a restart"
                );
            }
        }
    }
}

#[test]
fn local_search_restarts_at_a_local_optimum() {
    // On a constant score nothing ever improves: the search evaluates the start's neighbours,
    // then restarts at a random code, so it keeps proposing unseen codes.
    let space = toy_space();
    let ctx = SearchContext::unconstrained(&space, "flat");
    let mut local = LocalSearch::new(3);
    let (history, err) = run(&mut local, &ctx, 27, |_| Some(0.0));
    assert!(err.is_none());
    let all = codes(&history);
    // The first 1 + 6 evaluations are the start and its 6 neighbours (3 dims x 2 values).
    assert_eq!(space.neighbours(&all[0]).len(), 6);
    for code in &all[1..7] {
        assert_eq!(code.hamming(&all[0]), 1);
    }
}

// ---------------------------------------------------------------- ranking search

/// A test ranker that prefers candidates with the most 3s (first one on ties), recording every
/// request it is shown.
#[derive(Default)]
struct MostThrees {
    /// (history length, candidates, chosen index) per call.
    calls: Vec<(usize, Vec<NCode>, usize)>,
}

fn threes(code: &NCode) -> usize {
    code.indices().iter().filter(|&&i| i == 3).count()
}

impl Ranker for MostThrees {
    fn name(&self) -> String {
        "most-threes".into()
    }

    fn choose(&mut self, request: &RankingRequest<'_>) -> Result<usize, RankerError> {
        let best = request
            .candidates
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|(_, c)| threes(c))
            .map(|(i, _)| i)
            .ok_or(RankerError::EmptyPool)?;
        self.calls
            .push((request.history.len(), request.candidates.to_vec(), best));
        Ok(best)
    }
}

#[test]
fn ranking_search_takes_a_custom_ranker_and_proposes_its_choice() {
    let space = nb201::space();
    let admissible = |code: &NCode| code.index(0) != 0;
    let ctx = SearchContext {
        space,
        admissible: &admissible,
        task: "most threes",
    };
    let budget = 40;
    let mut search = RankingSearch::new(MostThrees::default(), 7);
    assert_eq!(search.name(), "rank-most-threes");
    let (history, err) = run(&mut search, &ctx, budget, |c| Some(threes(c) as f64));
    assert!(err.is_none());
    let calls = &search.ranker().calls;
    // 5 random warm-up proposals, then one ranker call per proposal.
    let warmup = 5;
    assert_eq!(calls.len(), budget - warmup);
    let all = codes(&history);
    for (k, (seen, candidates, choice)) in calls.iter().enumerate() {
        let step = warmup + k;
        assert_eq!(*seen, step, "the ranker sees the whole history");
        assert_eq!(candidates.len(), 10, "pool of 10");
        let distinct: HashSet<&NCode> = candidates.iter().collect();
        assert_eq!(distinct.len(), candidates.len(), "duplicate candidates");
        for c in candidates {
            assert!(admissible(c), "inadmissible candidate {c:?}");
            assert!(
                !all[..step].contains(c),
                "candidate {c:?} was already evaluated"
            );
        }
        assert_eq!(
            all[step], candidates[*choice],
            "step {step}: not the ranker's choice"
        );
        assert_eq!(
            threes(&all[step]),
            candidates.iter().map(threes).max().unwrap()
        );
    }
}

#[test]
fn ranking_search_with_settings_controls_pool_and_warmup() {
    let space = toy_space();
    let ctx = SearchContext::unconstrained(&space, "toy");
    let mut search = RankingSearch::with_settings(MostThrees::default(), 1, 4, 0);
    let (history, err) = run(&mut search, &ctx, 27, toy_score);
    assert!(err.is_none());
    let calls = &search.ranker().calls;
    assert_eq!(
        calls.len(),
        27,
        "no warm-up: the ranker chooses every proposal"
    );
    for (k, (_, candidates, _)) in calls.iter().enumerate() {
        // The pool shrinks only when fewer than 4 open codes remain.
        assert_eq!(candidates.len(), 4.min(27 - k), "call {k}");
    }
    assert_eq!(history.len(), 27);
}

struct OutOfRange;

impl Ranker for OutOfRange {
    fn name(&self) -> String {
        "out-of-range".into()
    }
    fn choose(&mut self, request: &RankingRequest<'_>) -> Result<usize, RankerError> {
        Ok(request.candidates.len())
    }
}

struct Failing;

impl Ranker for Failing {
    fn name(&self) -> String {
        "failing".into()
    }
    fn choose(&mut self, _: &RankingRequest<'_>) -> Result<usize, RankerError> {
        Err(RankerError::Backend("model unavailable".into()))
    }
}

#[test]
fn ranker_choosing_out_of_range_is_an_error_not_a_panic() {
    let space = nb201::space();
    let ctx = SearchContext::unconstrained(space, "bad");
    let mut search = RankingSearch::new(OutOfRange, 0);
    let mut history = History::new();
    // The warm-up is random and does not ask the ranker.
    for _ in 0..5 {
        let code = search.propose(&ctx, &history).unwrap();
        history.push(Observation { code, score: None });
    }
    let err = search.propose(&ctx, &history).unwrap_err();
    match &err {
        SearchError::Ranker(RankerError::Backend(message)) => {
            assert!(message.contains("out-of-range"), "{message}");
            assert!(message.contains("candidate 10"), "{message}");
        }
        other => panic!("expected a ranker error, got {other:?}"),
    }
}

#[test]
fn ranker_errors_propagate() {
    let space = toy_space();
    let ctx = SearchContext::unconstrained(&space, "bad");
    let mut search = RankingSearch::with_settings(Failing, 0, 5, 0);
    let err = search.propose(&ctx, &History::new()).unwrap_err();
    assert!(matches!(err, SearchError::Ranker(RankerError::Backend(_))));
    assert!(err.to_string().contains("model unavailable"));
}

// ---------------------------------------------------------------- history

fn obs(code: &[u16], score: Option<f64>) -> Observation {
    Observation {
        code: NCode::new(code.to_vec()),
        score,
    }
}

#[test]
fn history_best_within_and_score_of() {
    let mut history = History::new();
    assert!(history.is_empty());
    assert_eq!(history.best(), None);
    history.push(obs(&[0, 0], Some(1.0)));
    history.push(obs(&[0, 1], None));
    history.push(obs(&[1, 0], Some(3.0)));
    history.push(obs(&[1, 1], Some(3.0)));
    history.push(obs(&[2, 0], Some(2.0)));
    assert_eq!(history.len(), 5);

    assert_eq!(history.best_within(0), None);
    assert_eq!(history.best_within(1).unwrap().code.indices(), &[0, 0]);
    // An unscored evaluation never wins.
    assert_eq!(history.best_within(2).unwrap().code.indices(), &[0, 0]);
    // The earliest of equal scores wins.
    assert_eq!(history.best_within(3).unwrap().code.indices(), &[1, 0]);
    assert_eq!(history.best_within(4).unwrap().code.indices(), &[1, 0]);
    assert_eq!(history.best_within(100).unwrap().code.indices(), &[1, 0]);
    assert_eq!(history.best(), history.best_within(5));

    assert_eq!(history.score_of(&NCode::new(vec![1, 1])), Some(3.0));
    assert_eq!(history.score_of(&NCode::new(vec![0, 1])), None);
    assert!(history.contains(&NCode::new(vec![0, 1])));
    assert_eq!(history.score_of(&NCode::new(vec![2, 2])), None);
    assert!(!history.contains(&NCode::new(vec![2, 2])));

    let mut only_failures = History::new();
    only_failures.push(obs(&[0, 0], None));
    assert_eq!(only_failures.best(), None);

    // A negative best (all scores below zero) is still found.
    let mut negative = History::new();
    negative.push(obs(&[0, 0], Some(-5.0)));
    negative.push(obs(&[0, 1], Some(-2.0)));
    assert_eq!(negative.best().unwrap().score, Some(-2.0));
}

#[test]
fn history_serde_round_trip() {
    let mut history = History::new();
    history.push(obs(&[3, 3, 1], Some(94.5)));
    history.push(obs(&[0, 1, 2], None));
    history.push(obs(&[4, 0, 0], Some(-1.25)));
    let json = serde_json::to_string(&history).unwrap();
    assert_eq!(
        json,
        r#"[{"code":[3,3,1],"score":94.5},{"code":[0,1,2],"score":null},{"code":[4,0,0],"score":-1.25}]"#
    );
    let back: History = serde_json::from_str(&json).unwrap();
    assert_eq!(back.observations(), history.observations());
    assert_eq!(back.len(), 3);
    assert_eq!(back.score_of(&NCode::new(vec![3, 3, 1])), Some(94.5));
    assert_eq!(back.score_of(&NCode::new(vec![0, 1, 2])), None);
    assert!(back.contains(&NCode::new(vec![0, 1, 2])));
    assert!(!back.contains(&NCode::new(vec![1, 1, 1])));
    assert_eq!(back.best().unwrap().code.indices(), &[3, 3, 1]);
    assert_eq!(serde_json::to_string(&back).unwrap(), json);

    let empty: History = serde_json::from_str("[]").unwrap();
    assert!(empty.is_empty());
    assert!(serde_json::from_str::<History>(r#"{"code":[1]}"#).is_err());
}

#[test]
fn a_searcher_continues_a_deserialized_history() {
    // A search resumed from a saved history never repeats what was saved.
    let space = toy_space();
    let ctx = SearchContext::unconstrained(&space, "resume");
    let mut first = Strategy::Rea.build(5).unwrap();
    let (history, _) = run(first.as_mut(), &ctx, 20, toy_score);
    let saved = serde_json::to_string(&history).unwrap();
    let restored: History = serde_json::from_str(&saved).unwrap();
    for strategy in Strategy::ALL {
        let mut searcher = strategy.build(9).unwrap();
        let mut h = restored.clone();
        while h.len() < 27 {
            let code = searcher.propose(&ctx, &h).unwrap();
            assert!(!h.contains(&code), "{strategy} repeated {code:?}");
            let s = toy_score(&code);
            h.push(Observation { code, score: s });
        }
        assert!(searcher.propose(&ctx, &h).is_err());
    }
}

// ---------------------------------------------------------------- known bugs

#[test]
fn history_best_ignores_nan_scores() {
    let mut history = History::new();
    history.push(obs(&[0], Some(1.0)));
    history.push(obs(&[1], Some(f64::NAN)));
    assert_eq!(history.best().unwrap().score, Some(1.0));
}

#[test]
fn ranker_out_of_range_error_reports_the_actual_pool() {
    // 27 codes, 25 evaluated: the pool has 2 candidates although pool_size is 10.
    let space = toy_space();
    let ctx = SearchContext::unconstrained(&space, "bad");
    let history: History = space
        .enumerate()
        .take(25)
        .map(|code| Observation { code, score: None })
        .collect::<Vec<_>>()
        .into();
    let mut search = RankingSearch::new(OutOfRange, 0);
    let message = search.propose(&ctx, &history).unwrap_err().to_string();
    assert!(message.contains("candidate 2 of a pool of 2"), "{message}");
}
