use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{NCode, NcodeError};

/// One typed option of a dimension: an integer (a width, a LoRA rank), a float (a ratio) or a
/// label (an operation name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Choice {
    /// An integer value, e.g. a channel width or a rank.
    Int(i64),
    /// A floating-point value, e.g. an expansion ratio.
    Float(f64),
    /// A named option, e.g. `nor_conv_3x3`.
    Label(String),
}

impl Choice {
    /// The integer value, if this is an integer choice.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Choice::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The numeric value of an integer or float choice.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Choice::Int(v) => Some(*v as f64),
            Choice::Float(v) => Some(*v),
            Choice::Label(_) => None,
        }
    }

    /// The label, if this is a label choice.
    pub fn as_label(&self) -> Option<&str> {
        match self {
            Choice::Label(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Int(v) => write!(f, "{v}"),
            Choice::Float(v) => write!(f, "{v}"),
            Choice::Label(s) => f.write_str(s),
        }
    }
}

/// Makes a dimension conditional: it is active only when the dimension at position `controller`
/// (an earlier, unconditional one) holds one of the indices in `any_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// Position of the controlling dimension.
    pub controller: usize,
    /// Controller choice indices under which this dimension is active.
    pub any_of: Vec<usize>,
}

/// A named dimension of a search space with its finite list of choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dimension {
    /// Name shown in prompts and error messages.
    pub name: String,
    /// The options, in index order.
    pub choices: Vec<Choice>,
    /// Present when the dimension only exists for some values of an earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_when: Option<Condition>,
}

impl Dimension {
    /// A dimension with the given choices.
    pub fn new(name: impl Into<String>, choices: Vec<Choice>) -> Self {
        Dimension {
            name: name.into(),
            choices,
            active_when: None,
        }
    }

    /// A dimension of integer choices.
    pub fn ints(name: impl Into<String>, values: impl IntoIterator<Item = i64>) -> Self {
        Self::new(name, values.into_iter().map(Choice::Int).collect())
    }

    /// A dimension of float choices.
    pub fn floats(name: impl Into<String>, values: impl IntoIterator<Item = f64>) -> Self {
        Self::new(name, values.into_iter().map(Choice::Float).collect())
    }

    /// A dimension of labelled choices.
    pub fn labels<S: Into<String>>(
        name: impl Into<String>,
        labels: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::new(
            name,
            labels
                .into_iter()
                .map(|s| Choice::Label(s.into()))
                .collect(),
        )
    }

    /// Makes this dimension active only when dimension `controller` holds one of `any_of`.
    pub fn active_when(
        mut self,
        controller: usize,
        any_of: impl IntoIterator<Item = usize>,
    ) -> Self {
        self.active_when = Some(Condition {
            controller,
            any_of: any_of.into_iter().collect(),
        });
        self
    }

    /// Number of choices.
    pub fn len(&self) -> usize {
        self.choices.len()
    }

    /// Whether the dimension has no choices (never true for a dimension of a valid space).
    pub fn is_empty(&self) -> bool {
        self.choices.is_empty()
    }
}

/// An ordered list of named dimensions: the domain of [`NCode`]s.
///
/// Built with [`SearchSpace::new`], which validates it; deserialization validates too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSpace")]
pub struct SearchSpace {
    name: String,
    dimensions: Vec<Dimension>,
}

#[derive(Deserialize)]
struct RawSpace {
    name: String,
    dimensions: Vec<Dimension>,
}

impl TryFrom<RawSpace> for SearchSpace {
    type Error = NcodeError;
    fn try_from(raw: RawSpace) -> Result<Self, NcodeError> {
        SearchSpace::new(raw.name, raw.dimensions)
    }
}

impl SearchSpace {
    /// Builds and validates a space: at least one dimension, unique names, 1..=65535 choices per
    /// dimension, finite floats, and conditions that point to an earlier unconditional dimension.
    pub fn new(name: impl Into<String>, dimensions: Vec<Dimension>) -> Result<Self, NcodeError> {
        let space = SearchSpace {
            name: name.into(),
            dimensions,
        };
        space.validate()?;
        Ok(space)
    }

    fn invalid(&self, reason: String) -> NcodeError {
        NcodeError::InvalidSpace {
            space: self.name.clone(),
            reason,
        }
    }

    fn validate(&self) -> Result<(), NcodeError> {
        if self.dimensions.is_empty() {
            return Err(self.invalid("it has no dimensions".into()));
        }
        let mut names = HashSet::new();
        for (pos, dim) in self.dimensions.iter().enumerate() {
            if !names.insert(dim.name.as_str()) {
                return Err(self.invalid(format!("dimension name `{}` is repeated", dim.name)));
            }
            if dim.choices.is_empty() || dim.choices.len() > usize::from(u16::MAX) {
                return Err(self.invalid(format!(
                    "dimension `{}` has {} choices (1..=65535 allowed)",
                    dim.name,
                    dim.choices.len()
                )));
            }
            if dim
                .choices
                .iter()
                .any(|c| matches!(c, Choice::Float(v) if !v.is_finite()))
            {
                return Err(
                    self.invalid(format!("dimension `{}` has a non-finite float", dim.name))
                );
            }
            if let Some(cond) = &dim.active_when {
                self.validate_condition(pos, cond)?;
            }
        }
        Ok(())
    }

    fn validate_condition(&self, pos: usize, cond: &Condition) -> Result<(), NcodeError> {
        let name = &self.dimensions[pos].name;
        let Some(controller) = self.dimensions[..pos].get(cond.controller) else {
            return Err(self.invalid(format!(
                "dimension `{name}` is controlled by position {}, which does not come before it",
                cond.controller
            )));
        };
        if controller.active_when.is_some() {
            return Err(self.invalid(format!(
                "dimension `{name}` is controlled by `{}`, which is itself conditional",
                controller.name
            )));
        }
        if cond.any_of.is_empty() || cond.any_of.iter().any(|&i| i >= controller.len()) {
            return Err(self.invalid(format!(
                "dimension `{name}`: its condition needs 1 or more indices below {}",
                controller.len()
            )));
        }
        Ok(())
    }

    /// The space's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dimensions, in code order.
    pub fn dimensions(&self) -> &[Dimension] {
        &self.dimensions
    }

    /// Number of dimensions (the length of every code).
    pub fn len(&self) -> usize {
        self.dimensions.len()
    }

    /// Always false: a valid space has at least one dimension.
    pub fn is_empty(&self) -> bool {
        self.dimensions.is_empty()
    }

    /// Whether any dimension is conditional.
    pub fn is_conditional(&self) -> bool {
        self.dimensions.iter().any(|d| d.active_when.is_some())
    }

    /// Whether the one-digit-per-dimension text form applies (every dimension has <= 10 choices).
    pub fn is_compact(&self) -> bool {
        self.dimensions.iter().all(|d| d.len() <= 10)
    }

    /// Whether dimension `position` is active in `code`.
    pub fn is_active(&self, code: &NCode, position: usize) -> bool {
        match &self.dimensions[position].active_when {
            None => true,
            Some(c) => c.any_of.contains(&code.index(c.controller)),
        }
    }

    /// Checks that `code` has the right length and every index is in range.
    pub fn check(&self, code: &NCode) -> Result<(), NcodeError> {
        if code.len() != self.len() {
            return Err(NcodeError::WrongLength {
                expected: self.len(),
                found: code.len(),
                hint: String::new(),
            });
        }
        for (position, (&index, dim)) in code.indices().iter().zip(&self.dimensions).enumerate() {
            if usize::from(index) >= dim.len() {
                return Err(self.out_of_range(position, u64::from(index)));
            }
        }
        Ok(())
    }

    pub(crate) fn out_of_range(&self, position: usize, index: u64) -> NcodeError {
        let dim = &self.dimensions[position];
        NcodeError::OutOfRange {
            position,
            dimension: dim.name.clone(),
            index,
            choices: dim.len(),
        }
    }

    /// The canonical form of `code`: inactive positions set to 0. Two codes describe the same
    /// architecture exactly when their canonical forms are equal.
    pub fn canonicalize(&self, code: &NCode) -> NCode {
        let mut out = code.clone();
        for pos in 0..self.len() {
            if !self.is_active(code, pos) {
                out.set(pos, 0);
            }
        }
        out
    }

    /// Whether `code` equals its canonical form.
    pub fn is_canonical(&self, code: &NCode) -> bool {
        self.canonicalize(code) == *code
    }

    /// The typed choices a code selects (inactive dimensions included, at index 0).
    pub fn decode<'a>(&'a self, code: &NCode) -> Vec<&'a Choice> {
        self.dimensions
            .iter()
            .zip(code.indices())
            .map(|(d, &i)| &d.choices[usize::from(i)])
            .collect()
    }

    /// Number of distinct architectures (canonical codes).
    pub fn size(&self) -> Result<u128, NcodeError> {
        let controllers: Vec<bool> = (0..self.len())
            .map(|p| {
                self.dimensions
                    .iter()
                    .any(|d| d.active_when.as_ref().is_some_and(|c| c.controller == p))
            })
            .collect();
        let mut code = NCode::zeros(self.len());
        self.count_from(0, &controllers, &mut code)
            .ok_or_else(|| NcodeError::TooLarge(self.name.clone()))
    }

    fn count_from(&self, pos: usize, controllers: &[bool], code: &mut NCode) -> Option<u128> {
        if pos == self.len() {
            return Some(1);
        }
        let choices = self.dimensions[pos].len();
        if !self.is_active(code, pos) {
            return self.count_from(pos + 1, controllers, code);
        }
        if !controllers[pos] {
            return self
                .count_from(pos + 1, controllers, code)?
                .checked_mul(choices as u128);
        }
        let mut total: u128 = 0;
        for value in 0..choices {
            code.set(pos, value);
            total = total.checked_add(self.count_from(pos + 1, controllers, code)?)?;
        }
        code.set(pos, 0);
        Some(total)
    }

    /// Number of raw codes (the product of the dimension sizes, inactive positions included).
    pub fn raw_size(&self) -> Result<u128, NcodeError> {
        self.dimensions
            .iter()
            .try_fold(1u128, |acc, d| acc.checked_mul(d.len() as u128))
            .ok_or_else(|| NcodeError::TooLarge(self.name.clone()))
    }

    /// The mixed-radix rank of a code (first dimension most significant), in `0..raw_size()`;
    /// a dense row index for tabular benchmarks.
    pub fn rank(&self, code: &NCode) -> u128 {
        self.dimensions
            .iter()
            .zip(code.indices())
            .fold(0u128, |acc, (d, &i)| acc * d.len() as u128 + u128::from(i))
    }

    /// The code of a mixed-radix rank; `None` when `rank >= raw_size()`.
    pub fn unrank(&self, mut rank: u128) -> Option<NCode> {
        let mut indices = vec![0u16; self.len()];
        for (slot, d) in indices.iter_mut().zip(&self.dimensions).rev() {
            let n = d.len() as u128;
            *slot = (rank % n) as u16;
            rank /= n;
        }
        (rank == 0).then(|| NCode::new(indices))
    }
}
