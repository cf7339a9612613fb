//! The search strategies: [`RandomSearch`], [`RegularizedEvolution`], [`LocalSearch`], [`Tpe`] and
//! LM-Searcher's [`RankingSearch`] over any [`ranker::Ranker`].

mod evolution;
mod local;
mod random;
mod ranking;
mod tpe;

pub use evolution::RegularizedEvolution;
pub use local::LocalSearch;
pub use random::RandomSearch;
pub use ranking::RankingSearch;
pub use tpe::Tpe;
