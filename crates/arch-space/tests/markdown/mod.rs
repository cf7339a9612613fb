//! Fenced code blocks of a Markdown document, for the tests that check the documentation.

// Each test that includes this module reads some of the fields.
#![allow(dead_code)]

/// A fenced block of a document.
#[derive(Debug)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    /// The first word of the info string (`arch`, `text`, ...).
    pub tag: String,
    /// The further words of the info string (`max_params=1000`).
    pub attributes: Vec<String>,
    /// The text between the fences, each line ending with a line break.
    pub body: String,
    /// Whether only blank lines separate this block from the previous one.
    pub follows_previous: bool,
}

/// The fenced blocks of a Markdown text: an opening fence is a line of 3 or more backticks and
/// an info string; the block closes at a line of at least as many backticks and nothing else.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = markdown.lines().enumerate();
    let mut only_blank_since_last = false;
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim();
        let ticks = trimmed.chars().take_while(|&c| c == '`').count();
        if ticks < 3 {
            only_blank_since_last &= trimmed.is_empty();
            continue;
        }
        let mut words = trimmed[ticks..].split_whitespace().map(str::to_string);
        let tag = words.next().unwrap_or_default();
        let attributes = words.collect();
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            let t = l.trim();
            if t.len() >= ticks && t.chars().all(|c| c == '`') {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        out.push(Block {
            line: i + 1,
            tag,
            attributes,
            body,
            follows_previous: only_blank_since_last,
        });
        only_blank_since_last = true;
    }
    out
}
