//! Special tokens as llama.cpp finds and parses them: the ids named in the metadata, the
//! end-of-turn and fill-in-the-middle tokens it recognises by their text (forcing them to control
//! tokens), the end-of-generation set, and the partition of a text at special tokens written
//! literally in it (`tokenizer_st_partition`).

use std::collections::HashMap;

/// Token attributes (llama.cpp's `llama_token_attr`, the bits used here).
pub(super) mod attr {
    pub(crate) const UNKNOWN: u16 = 1 << 0;
    pub(crate) const UNUSED: u16 = 1 << 1;
    pub(crate) const NORMAL: u16 = 1 << 2;
    pub(crate) const CONTROL: u16 = 1 << 3;
    pub(crate) const USER_DEFINED: u16 = 1 << 4;
    pub(crate) const BYTE: u16 = 1 << 5;
    pub(crate) const RSTRIP: u16 = 1 << 8;
}

/// End-of-turn texts (`special_eot_id` auto-detection).
const EOT: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
/// End-of-message texts.
const EOM: &[&str] = &["<|eom_id|>"];
/// Fill-in-the-middle texts: prefix, suffix, middle, pad, repository, file separator.
const FIM: [&[&str]; 6] = [
    &[
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<｜fim▁begin｜>",
        "<PRE>",
        "▁<PRE>",
        "<|code_prefix|>",
        "<|prefix|>",
    ],
    &[
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<｜fim▁hole｜>",
        "<SUF>",
        "▁<SUF>",
        "<|code_suffix|>",
        "<|suffix|>",
    ],
    &[
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<｜fim▁end｜>",
        "<MID>",
        "▁<MID>",
        "<|code_middle|>",
        "<|middle|>",
    ],
    &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
    &[
        "<|fim_repo|>",
        "<|repo_name|>",
        "<fim-repo>",
        "<REPO>",
        "<reponame>",
    ],
    &["<|file_sep|>"],
];
/// Texts of tokens that end generation.
const EOG: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Metadata keys of the special ids: eot, eom, then the six of [`FIM`] (with the deprecated
/// names of the first three).
const KEYS: [&[&str]; 8] = [
    &["tokenizer.ggml.eot_token_id"],
    &["tokenizer.ggml.eom_token_id"],
    &[
        "tokenizer.ggml.fim_pre_token_id",
        "tokenizer.ggml.prefix_token_id",
    ],
    &[
        "tokenizer.ggml.fim_suf_token_id",
        "tokenizer.ggml.suffix_token_id",
    ],
    &[
        "tokenizer.ggml.fim_mid_token_id",
        "tokenizer.ggml.middle_token_id",
    ],
    &["tokenizer.ggml.fim_pad_token_id"],
    &["tokenizer.ggml.fim_rep_token_id"],
    &["tokenizer.ggml.fim_sep_token_id"],
];

/// The end-of-generation ids of a vocabulary: `eos` plus the tokens llama.cpp recognises by
/// their text. `id_of` reads the metadata id under a key; `mark_control` is called for every
/// token llama.cpp turns into a control token. Sorted, without repeats.
pub(super) fn end_of_generation<S: AsRef<str>>(
    texts: &[S],
    eos: Option<u32>,
    id_of: impl Fn(&str) -> Result<Option<u32>, String>,
    mut mark_control: impl FnMut(u32),
) -> Result<Vec<u32>, String> {
    let lists: [&[&str]; 8] = [EOT, EOM, FIM[0], FIM[1], FIM[2], FIM[3], FIM[4], FIM[5]];
    let mut found = [None; 8];
    for (slot, keys) in found.iter_mut().zip(KEYS) {
        // the deprecated key wins, as it is read last
        for key in keys {
            if let Some(id) = id_of(key)? {
                *slot = Some(id);
            }
        }
    }
    // auto-detection, in id order (llama.cpp walks a hash map, whose order only matters when a
    // vocabulary has two candidates for one role)
    let auto: Vec<bool> = found.iter().map(Option::is_none).collect();
    for (id, text) in texts.iter().enumerate() {
        let id = id as u32;
        for (i, list) in lists.iter().enumerate() {
            if auto[i] && found[i].is_none() && list.contains(&text.as_ref()) {
                found[i] = Some(id);
                mark_control(id);
            }
        }
    }
    let [eot, eom, _, _, _, fim_pad, fim_rep, fim_sep] = found;
    let mut eog: Vec<u32> = [fim_pad, fim_rep, fim_sep, eos, eot, eom]
        .into_iter()
        .flatten()
        .collect();
    for (id, text) in texts.iter().enumerate() {
        if EOG.contains(&text.as_ref()) {
            eog.push(id as u32);
            mark_control(id as u32);
        }
    }
    eog.sort_unstable();
    eog.dedup();
    Ok(eog)
}

/// A piece of text to tokenize or a special token, after [`partition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fragment {
    /// Bytes `start..end` of the text.
    Text(usize, usize),
    /// A special token written literally in the text.
    Token(u32),
}

/// The special tokens llama.cpp parses in text: control, user-defined and unknown tokens,
/// longest first, with a lookup of the candidates by their first two bytes.
pub(super) struct SpecialTokens {
    /// `(id, attributes)`, longest text first (ties by id).
    order: Vec<(u32, u16)>,
    /// Indices into `order`, by the first byte and the second (`None`: a one-byte text).
    by_prefix: HashMap<(u8, Option<u8>), Vec<usize>>,
}

impl SpecialTokens {
    /// The special tokens among `texts`, given their attributes.
    pub(super) fn new(texts: &[String], attrs: &[u16]) -> SpecialTokens {
        let mut order: Vec<(u32, u16)> = (0..texts.len())
            .filter(|&i| attrs[i] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0)
            .map(|i| (i as u32, attrs[i]))
            .collect();
        order.sort_by_key(|&(id, _)| std::cmp::Reverse(texts[id as usize].len()));
        let mut by_prefix: HashMap<_, Vec<usize>> = HashMap::new();
        for (i, &(id, _)) in order.iter().enumerate() {
            let bytes = texts[id as usize].as_bytes();
            by_prefix
                .entry((bytes[0], bytes.get(1).copied()))
                .or_default()
                .push(i);
        }
        SpecialTokens { order, by_prefix }
    }

    /// Splits `text` at the special tokens written in it, as llama.cpp does: each special token
    /// in turn, longest first, splits every remaining text fragment at its non-overlapping
    /// occurrences. Control and unknown tokens count only when `parse_control` is set.
    pub(super) fn partition(
        &self,
        texts: &[String],
        text: &str,
        parse_control: bool,
    ) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut fragments = vec![Fragment::Text(0, text.len())];
        for (id, attrs) in self.present(texts, text) {
            if !parse_control && attrs & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let needle = texts[id as usize].as_str();
            let mut next = Vec::with_capacity(fragments.len());
            for fragment in fragments {
                let Fragment::Text(mut start, end) = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(at) = text[start..end].find(needle).map(|i| start + i) {
                    if at > start {
                        next.push(Fragment::Text(start, at));
                    }
                    next.push(Fragment::Token(id));
                    start = at + needle.len();
                    if attrs & attr::RSTRIP != 0 {
                        start = end - text[start..end].trim_start_matches(is_c_space).len();
                    }
                }
                if start < end {
                    next.push(Fragment::Text(start, end));
                }
            }
            fragments = next;
        }
        fragments
    }

    /// The special tokens that occur in `text`, in partition order.
    fn present(&self, texts: &[String], text: &str) -> Vec<(u32, u16)> {
        let bytes = text.as_bytes();
        let mut hits: Vec<usize> = Vec::new();
        for i in 0..bytes.len() {
            for key in [(bytes[i], None), (bytes[i], bytes.get(i + 1).copied())] {
                let candidates = self.by_prefix.get(&key).map_or(&[][..], Vec::as_slice);
                hits.extend(candidates.iter().filter(|&&k| {
                    bytes[i..].starts_with(texts[self.order[k].0 as usize].as_bytes())
                }));
            }
        }
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter().map(|k| self.order[k]).collect()
    }
}

/// C's `isspace` in the "C" locale, which llama.cpp strips after RSTRIP tokens.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn longer_tokens_split_first() {
        let t = texts(&["ab", "bcd", "x"]);
        let special = SpecialTokens::new(&t, &[attr::CONTROL, attr::USER_DEFINED, attr::NORMAL]);
        let got = special.partition(&t, "abcd ab", true);
        assert_eq!(
            got,
            [
                Fragment::Text(0, 1),
                Fragment::Token(1),
                Fragment::Text(4, 5),
                Fragment::Token(0)
            ]
        );
        // control tokens only when asked; user-defined always
        let got = special.partition(&t, "abcd ab", false);
        assert_eq!(
            got,
            [
                Fragment::Text(0, 1),
                Fragment::Token(1),
                Fragment::Text(4, 7)
            ]
        );
    }

    #[test]
    fn rstrip_eats_following_whitespace() {
        let t = texts(&["<|end|>"]);
        let special = SpecialTokens::new(&t, &[attr::CONTROL | attr::RSTRIP]);
        assert_eq!(
            special.partition(&t, "a<|end|> \n b", true),
            [
                Fragment::Text(0, 1),
                Fragment::Token(0),
                Fragment::Text(11, 12)
            ]
        );
    }

    #[test]
    fn end_of_generation_follows_llama_cpp() {
        let t = texts(&[
            "<|endoftext|>",
            "<|im_end|>",
            "</s>",
            "<|fim_pad|>",
            "hello",
        ]);
        let mut marked = Vec::new();
        let eog = end_of_generation(&t, Some(4), |_| Ok(None), |id| marked.push(id))
            .expect("no metadata errors");
        assert_eq!(eog, [0, 1, 2, 3, 4]);
        assert!(marked.contains(&2) && marked.contains(&3));
    }
}
