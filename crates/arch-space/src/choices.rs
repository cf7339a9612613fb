//! Checks and lookups on the configured choice lists of the concrete spaces.

use std::fmt;

use crate::ArchSpaceError;

/// Checks that a configured choice list is non-empty and repeats nothing (so encoding is exact).
pub(crate) fn check_choices<T: PartialEq + fmt::Display>(
    what: &str,
    choices: &[T],
) -> Result<(), ArchSpaceError> {
    if choices.is_empty() {
        return Err(ArchSpaceError::Config(format!("`{what}` has no choices")));
    }
    match (1..choices.len()).find(|&i| choices[..i].contains(&choices[i])) {
        Some(i) => Err(ArchSpaceError::Config(format!(
            "`{what}` lists {} twice",
            choices[i]
        ))),
        None => Ok(()),
    }
}

/// The index of `value` among `choices`, or a [`ArchSpaceError::Config`] naming `what`, the value
/// and the choices.
pub(crate) fn choice_index<T: PartialEq + fmt::Display>(
    what: &str,
    choices: &[T],
    value: &T,
) -> Result<usize, ArchSpaceError> {
    choices.iter().position(|c| c == value).ok_or_else(|| {
        let list: Vec<String> = choices.iter().map(T::to_string).collect();
        ArchSpaceError::Config(format!(
            "{what} {value} is not among the choices {}",
            list.join(", ")
        ))
    })
}
