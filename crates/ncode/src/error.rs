use thiserror::Error;

/// Everything that can go wrong when building spaces or reading codes.
///
/// Positions are 0-based: dimension positions for codes, character offsets for stray text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NcodeError {
    /// The code has a different number of positions than the space has dimensions.
    #[error("wrong length: expected {expected} positions, found {found}{hint}")]
    WrongLength {
        /// Number of dimensions of the space.
        expected: usize,
        /// Number of positions in the input.
        found: usize,
        /// Extra advice (e.g. to use the separated form).
        hint: String,
    },
    /// A choice index is not smaller than the dimension's number of choices.
    #[error("position {position} (dimension `{dimension}`): index {index} is out of range, it has {choices} choices (0..={max})", max = choices - 1)]
    OutOfRange {
        /// Dimension position in the code.
        position: usize,
        /// Dimension name.
        dimension: String,
        /// Offending index.
        index: u64,
        /// Number of choices of that dimension.
        choices: usize,
    },
    /// A character that is neither a digit nor the `-` separator.
    #[error("stray character {character:?} at position {position}: an NCode holds only digits, separated by `-` in the long form")]
    StrayCharacter {
        /// Character offset in the input text.
        position: usize,
        /// The character found.
        character: char,
    },
    /// Two separators in a row, or a separator at either end.
    #[error("position {position} is empty (two `-` in a row, or a `-` at an end)")]
    EmptyField {
        /// Dimension position of the empty field.
        position: usize,
    },
    /// The input text is empty.
    #[error("empty NCode")]
    Empty,
    /// A code of the parent space that the subspace cannot express.
    #[error("position {position} (dimension `{dimension}`): parent choice {index} was pruned from this subspace")]
    NotInSubspace {
        /// Dimension position in the parent code.
        position: usize,
        /// Dimension name.
        dimension: String,
        /// Parent choice index.
        index: usize,
    },
    /// The definition of a space or a pruning is inconsistent.
    #[error("invalid search space `{space}`: {reason}")]
    InvalidSpace {
        /// Space name.
        space: String,
        /// What is wrong.
        reason: String,
    },
    /// The number of codes does not fit in 128 bits.
    #[error("search space `{0}` has more than 2^128 architectures")]
    TooLarge(String),
}
