//! Byte-level BPE by merge ranks, as llama.cpp's `llm_tokenizer_bpe_session` runs it on each
//! pre-tokenized piece: the lowest-ranked adjacent pair merges first, the leftmost among equals.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// The merges of a vocabulary: `(left id, right id)` to `(rank, merged id)`.
pub(super) type Merges = HashMap<(u32, u32), (u32, u32)>;

/// A run of the piece, merged so far.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    /// The token of this text, if there is one.
    id: Option<u32>,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Appends the tokens of one pre-tokenized `piece` (in GPT-2's byte-level alphabet) to `out`.
pub(super) fn encode_piece(
    piece: &str,
    ids: &HashMap<String, u32>,
    merges: &Merges,
    ignore_merges: bool,
    out: &mut Vec<u32>,
) {
    if ignore_merges {
        if let Some(&id) = ids.get(piece) {
            out.push(id);
            return;
        }
    }
    let chars: Vec<(usize, char)> = piece.char_indices().collect();
    let mut symbols: Vec<Symbol> = chars
        .iter()
        .enumerate()
        .map(|(i, &(start, c))| Symbol {
            start,
            len: c.len_utf8(),
            id: ids.get(&piece[start..start + c.len_utf8()]).copied(),
            prev: i.checked_sub(1),
            next: (i + 1 < chars.len()).then_some(i + 1),
        })
        .collect();
    // (rank, left, right, left id, right id, merged id): the smallest rank, then the leftmost,
    // pops first
    let mut queue = BinaryHeap::new();
    let pair = |symbols: &[Symbol], left: usize, right: usize| {
        let (l, r) = (symbols[left].id?, symbols[right].id?);
        merges
            .get(&(l, r))
            .map(|&(rank, merged)| Reverse((rank, left, right, l, r, merged)))
    };
    for i in 1..symbols.len() {
        queue.extend(pair(&symbols, i - 1, i));
    }
    while let Some(Reverse((_, left, right, l, r, merged))) = queue.pop() {
        // skip pairs that went stale when a neighbour merged
        if symbols[left].len == 0
            || symbols[right].len == 0
            || symbols[left].id != Some(l)
            || symbols[right].id != Some(r)
        {
            continue;
        }
        let next = symbols[right].next;
        symbols[left].len += symbols[right].len;
        symbols[left].id = Some(merged);
        symbols[left].next = next;
        symbols[right].len = 0;
        if let Some(next) = next {
            symbols[next].prev = Some(left);
        }
        if let Some(prev) = symbols[left].prev {
            queue.extend(pair(&symbols, prev, left));
        }
        if let Some(next) = next {
            queue.extend(pair(&symbols, left, next));
        }
    }
    for symbol in symbols.iter().filter(|s| s.len > 0) {
        match symbol.id {
            Some(id) => out.push(id),
            // a character the vocabulary lacks: llama.cpp looks up each of its bytes as a
            // one-byte token, and drops those it does not find
            None => out.extend(
                piece[symbol.start..symbol.start + symbol.len]
                    .bytes()
                    .filter(u8::is_ascii)
                    .filter_map(|b| {
                        ids.get(char::from(b).encode_utf8(&mut [0; 4]) as &str)
                            .copied()
                    }),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_rank_merges_first() {
        let vocab = ["a", "b", "c", "ab", "bc", "abc"];
        let ids: HashMap<String, u32> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        // "b c" outranks "a b"; then "a bc" merges
        let merges: Merges = [((1, 2), (0, 4)), ((0, 1), (1, 3)), ((0, 4), (2, 5))]
            .into_iter()
            .collect();
        let mut out = Vec::new();
        encode_piece("abcab", &ids, &merges, false, &mut out);
        assert_eq!(out, [5, 3]);
        out.clear();
        encode_piece("xa", &ids, &merges, false, &mut out);
        assert_eq!(out, [0]);
    }
}
