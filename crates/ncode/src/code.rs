use serde::{Deserialize, Serialize};

use crate::{NcodeError, SearchSpace};

/// One choice index per dimension of a [`SearchSpace`].
///
/// A code does not know its space: text conversion ([`SearchSpace::parse`],
/// [`SearchSpace::format`]) and validity ([`SearchSpace::check`]) go through the space.
/// Serialized as a list of indices.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NCode(Vec<u16>);

impl NCode {
    /// A code from its indices (not checked against any space).
    pub fn new(indices: Vec<u16>) -> Self {
        NCode(indices)
    }

    /// The all-zero code of the given length.
    pub fn zeros(len: usize) -> Self {
        NCode(vec![0; len])
    }

    /// The choice index at `position`.
    pub fn index(&self, position: usize) -> usize {
        usize::from(self.0[position])
    }

    /// All indices.
    pub fn indices(&self) -> &[u16] {
        &self.0
    }

    /// Sets the choice index at `position`.
    ///
    /// # Panics
    /// If `index` does not fit in 16 bits (no valid space has that many choices).
    pub fn set(&mut self, position: usize, index: usize) {
        self.0[position] = u16::try_from(index).expect("choice index above 65535");
    }

    /// Number of positions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the code has no positions.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of positions where the two codes differ (a length difference counts per position).
    pub fn hamming(&self, other: &NCode) -> usize {
        let common = self.0.iter().zip(&other.0).filter(|(a, b)| a != b).count();
        common + self.len().abs_diff(other.len())
    }
}

impl SearchSpace {
    /// The text form: one digit per dimension (`331123`) when every dimension has at most 10
    /// choices, otherwise indices separated by `-` (`3-12-0-7`).
    pub fn format(&self, code: &NCode) -> String {
        let parts = code.indices().iter().map(u16::to_string);
        if self.is_compact() {
            parts.collect()
        } else {
            parts.collect::<Vec<_>>().join("-")
        }
    }

    /// Parses either text form (surrounding whitespace is ignored) and checks every index.
    pub fn parse(&self, text: &str) -> Result<NCode, NcodeError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(NcodeError::Empty);
        }
        let offset = text.len() - text.trim_start().len();
        if let Some((position, character)) = trimmed
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_digit() || c == '-'))
        {
            let position = text[..offset + position].chars().count();
            return Err(NcodeError::StrayCharacter {
                position,
                character,
            });
        }
        let fields: Vec<&str> = if trimmed.contains('-') {
            trimmed.split('-').collect()
        } else {
            trimmed.split("").filter(|s| !s.is_empty()).collect()
        };
        if fields.len() != self.len() {
            let hint = if !self.is_compact() && !trimmed.contains('-') {
                "; this space has dimensions with more than 10 choices, write them as `3-12-0-7`"
            } else {
                ""
            };
            return Err(NcodeError::WrongLength {
                expected: self.len(),
                found: fields.len(),
                hint: hint.into(),
            });
        }
        let mut indices = Vec::with_capacity(fields.len());
        for (position, field) in fields.iter().enumerate() {
            if field.is_empty() {
                return Err(NcodeError::EmptyField { position });
            }
            // Digits only, so the only possible failure is overflow: report it as out of range.
            let index = field.parse::<u64>().unwrap_or(u64::MAX);
            if index >= self.dimensions()[position].len() as u64 {
                return Err(self.out_of_range(position, index));
            }
            indices.push(index as u16);
        }
        Ok(NCode::new(indices))
    }
}
