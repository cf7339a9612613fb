//! SentencePiece BPE by token scores, as llama.cpp's `llm_tokenizer_spm_session` runs it: the
//! adjacent pair whose concatenation is the highest-scored token merges first, the leftmost among
//! equals; what never forms a token falls back to byte tokens.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// A candidate merge of two adjacent symbols.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Bytes of the merged text, to recognise a stale candidate.
    size: usize,
}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        // as llama.cpp's comparator: `<` and `==` on the scores (-0 equals 0)
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

/// A run of the text, merged so far.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Appends the tokens of `text` (whitespace already escaped as `▁`) to `out`. `byte_token(b)` is
/// the fallback token of byte `b`; `Err(b)` when there is none.
pub(super) fn encode(
    text: &str,
    ids: &HashMap<String, u32>,
    scores: &[f32],
    byte_token: impl Fn(u8) -> Option<u32>,
    out: &mut Vec<u32>,
) -> Result<(), u8> {
    let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let mut symbols: Vec<Symbol> = starts
        .iter()
        .enumerate()
        .map(|(i, &start)| Symbol {
            start,
            len: starts.get(i + 1).unwrap_or(&text.len()) - start,
            prev: i.checked_sub(1),
            next: (i + 1 < starts.len()).then_some(i + 1),
        })
        .collect();
    let mut queue = BinaryHeap::new();
    let bigram = |symbols: &[Symbol], left: usize, right: usize| {
        let (start, size) = (symbols[left].start, symbols[left].len + symbols[right].len);
        let id = *ids.get(&text[start..start + size])?;
        Some(Bigram {
            score: scores.get(id as usize).copied().unwrap_or(0.0),
            left,
            right,
            size,
        })
    };
    for i in 1..symbols.len() {
        queue.extend(bigram(&symbols, i - 1, i));
    }
    while let Some(Bigram {
        left, right, size, ..
    }) = queue.pop()
    {
        let (l, r) = (symbols[left], symbols[right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != size {
            continue;
        }
        symbols[left].len = size;
        symbols[left].next = r.next;
        symbols[right].len = 0;
        if let Some(next) = r.next {
            symbols[next].prev = Some(left);
        }
        if let Some(prev) = l.prev {
            queue.extend(bigram(&symbols, prev, left));
        }
        if let Some(next) = r.next {
            queue.extend(bigram(&symbols, left, next));
        }
    }
    // Every merged symbol is a token; a lone character may not be, and then goes out as bytes
    // (llama.cpp's `resegment`, whose merge-undoing branch only applies to merged symbols).
    for symbol in symbols.iter().filter(|s| s.len > 0) {
        let piece = &text[symbol.start..symbol.start + symbol.len];
        match ids.get(piece) {
            Some(&id) => out.push(id),
            None => {
                for b in piece.bytes() {
                    out.push(byte_token(b).ok_or(b)?);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_score_merges_first_and_bytes_fall_back() {
        let vocab = [
            ("▁", -1.0),
            ("a", -1.0),
            ("b", -1.0),
            ("▁a", -2.0),
            ("ab", -0.5),
            ("<0xC3>", 0.0),
            ("<0xA9>", 0.0),
        ];
        let ids: HashMap<String, u32> = vocab
            .iter()
            .enumerate()
            .map(|(i, (t, _))| (t.to_string(), i as u32))
            .collect();
        let scores: Vec<f32> = vocab.iter().map(|v| v.1).collect();
        let byte = |b: u8| ids.get(&format!("<0x{b:02X}>")).copied();
        let mut out = Vec::new();
        encode("▁abé", &ids, &scores, byte, &mut out).expect("bytes exist");
        assert_eq!(out, [0, 4, 5, 6]);
        assert_eq!(encode("z", &ids, &scores, |_| None, &mut out), Err(b'z'));
    }
}
