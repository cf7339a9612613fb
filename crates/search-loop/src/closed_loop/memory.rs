//! The feedback memory: diagnostic triples (problem, suggested change, result).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::run::{DiagnosisRecord, EvaluationRecord};

/// One diagnostic triple: what the Prompt Improver found after evaluation `i`, what it suggested,
/// and what the architecture of evaluation `i + 1`, written to apply the suggestion, achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// The evaluation the problem was found in.
    pub iteration: usize,
    /// The problem.
    pub problem: String,
    /// The suggested change.
    pub suggestion: String,
    /// The outcome of the next architecture (accuracy or typed failure).
    pub result: String,
}

/// The last `k` complete triples of `chain`, oldest first: a diagnosis counts once the chain's
/// evaluation that applied it (its child, see [`EvaluationRecord::parent`]) has finished.
/// Records of runs from before chains existed have no parent: each applied the diagnosis of the
/// evaluation before it.
pub fn memory_window(
    evaluations: &[EvaluationRecord],
    diagnoses: &BTreeMap<usize, DiagnosisRecord>,
    chain: usize,
    k: usize,
) -> Vec<MemoryEntry> {
    let mut children: Vec<&EvaluationRecord> =
        evaluations.iter().filter(|r| r.chain == chain).collect();
    children.sort_by_key(|r| r.iteration);
    let complete: Vec<MemoryEntry> = children
        .into_iter()
        .filter_map(|child| {
            let parent = child.parent.or_else(|| child.iteration.checked_sub(1))?;
            diagnoses.get(&parent).map(|d| MemoryEntry {
                iteration: d.iteration,
                problem: d.problem.clone(),
                suggestion: d.suggestion.clone(),
                result: child.outcome.summary(),
            })
        })
        .collect();
    let skip = complete.len().saturating_sub(k);
    complete.into_iter().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Outcome, OutcomeStatus};

    fn evaluation(iteration: usize, acc: Option<f64>) -> EvaluationRecord {
        let outcome = match acc {
            Some(a) => Outcome {
                val_acc: Some(a),
                status: OutcomeStatus::Ok,
                ..Outcome::failure(OutcomeStatus::Ok, "")
            },
            None => Outcome::failure(OutcomeStatus::Parse, "line 1, column 1: expected a layer"),
        };
        EvaluationRecord {
            ..EvaluationRecord::new(iteration, outcome)
        }
    }

    fn diagnosis(iteration: usize) -> DiagnosisRecord {
        DiagnosisRecord {
            iteration,
            problem: format!("problem {iteration}"),
            suggestion: format!("change {iteration}"),
            parsed: true,
            improver: None,
        }
    }

    #[test]
    fn triples_pair_a_suggestion_with_the_next_result_and_keep_the_last_k() {
        let evaluations: Vec<_> = (0..8)
            .map(|i| evaluation(i, (i % 3 != 2).then_some(0.1 * i as f64)))
            .collect();
        let diagnoses: BTreeMap<_, _> = (0..8).map(|i| (i, diagnosis(i))).collect();
        let window = memory_window(&evaluations, &diagnoses, 0, 5);
        // Diagnosis 7 has no following evaluation yet: triples 2..=6 are the last five.
        let iterations: Vec<_> = window.iter().map(|e| e.iteration).collect();
        assert_eq!(iterations, vec![2, 3, 4, 5, 6]);
        assert_eq!(window[0].suggestion, "change 2");
        assert_eq!(window[0].result, "validation accuracy 0.3000");
        assert!(window[2].result.starts_with("parse failure: line 1"));
        assert!(memory_window(&evaluations, &diagnoses, 0, 0).is_empty());
    }

    #[test]
    fn each_chain_remembers_the_diagnoses_its_own_children_applied() {
        // Iteration 0 is shared; chain 0 goes 0 -> 1 -> 3, chain 1 goes 0 -> 2 -> 4.
        let lineage = [
            (0, 0, None),
            (1, 0, Some(0)),
            (2, 1, Some(0)),
            (3, 0, Some(1)),
            (4, 1, Some(2)),
        ];
        let evaluations: Vec<_> = lineage
            .iter()
            .map(|&(i, chain, parent)| EvaluationRecord {
                chain,
                parent,
                ..evaluation(i, Some(0.1 * i as f64))
            })
            .collect();
        let diagnoses: BTreeMap<_, _> = (0..5).map(|i| (i, diagnosis(i))).collect();
        let triples = |chain| -> Vec<(usize, String)> {
            memory_window(&evaluations, &diagnoses, chain, 5)
                .into_iter()
                .map(|e| (e.iteration, e.result))
                .collect()
        };
        let result = |i: usize| format!("validation accuracy {:.4}", 0.1 * i as f64);
        assert_eq!(triples(0), vec![(0, result(1)), (1, result(3))]);
        assert_eq!(triples(1), vec![(0, result(2)), (2, result(4))]);
    }
}
