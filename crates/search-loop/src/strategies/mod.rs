//! The search strategies: [`RandomSearch`], [`RegularizedEvolution`], [`LocalSearch`] and
//! LM-Searcher's [`RankingSearch`] over any [`ranker::Ranker`].

mod evolution;
mod local;
mod random;
mod ranking;

pub use evolution::RegularizedEvolution;
pub use local::LocalSearch;
pub use random::RandomSearch;
pub use ranking::RankingSearch;
