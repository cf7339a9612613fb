//! Typed access to GGUF metadata, with errors that name the key and what was wrong with it.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use crate::runtime::value::{describe, integer};

/// A GGUF file's metadata.
pub(super) struct Metadata<'a>(pub(super) &'a HashMap<String, Value>);

impl<'a> Metadata<'a> {
    /// A string value.
    pub(super) fn string(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(format!("{key} is {}, not a string", describe(v))),
        }
    }

    /// A non-negative integer value of any integer type.
    pub(super) fn uint(&self, key: &str) -> Result<Option<u64>, String> {
        self.0
            .get(key)
            .map(|v| {
                as_uint(v)
                    .ok_or_else(|| format!("{key} is {}, not a non-negative integer", describe(v)))
            })
            .transpose()
    }

    /// A boolean value.
    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(format!("{key} is {}, not a boolean", describe(v))),
        }
    }

    /// An array of strings.
    pub(super) fn strings(&self, key: &str) -> Result<Option<Vec<&'a str>>, String> {
        self.array(
            key,
            |v| match v {
                Value::String(s) => Some(s.as_str()),
                _ => None,
            },
            "a string",
        )
    }

    /// An array of integers of any type.
    pub(super) fn ints(&self, key: &str) -> Result<Option<Vec<i64>>, String> {
        self.array(key, as_int, "an integer")
    }

    /// An array of numbers of any type, as `f32`.
    pub(super) fn floats(&self, key: &str) -> Result<Option<Vec<f32>>, String> {
        self.array(
            key,
            |v| match v {
                Value::F32(x) => Some(*x),
                Value::F64(x) => Some(*x as f32),
                v => as_int(v).map(|i| i as f32),
            },
            "a number",
        )
    }

    fn array<T>(
        &self,
        key: &str,
        item: impl Fn(&'a Value) -> Option<T>,
        what: &str,
    ) -> Result<Option<Vec<T>>, String> {
        let values = match self.0.get(key) {
            None => return Ok(None),
            Some(Value::Array(values)) => values,
            Some(v) => return Err(format!("{key} is {}, not an array", describe(v))),
        };
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                item(v).ok_or_else(|| format!("{key}[{i}] is {}, not {what}", describe(v)))
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

fn as_int(v: &Value) -> Option<i64> {
    integer(v).and_then(|i| i64::try_from(i).ok())
}

fn as_uint(v: &Value) -> Option<u64> {
    match *v {
        Value::U64(x) => Some(x),
        _ => as_int(v).and_then(|i| u64::try_from(i).ok()),
    }
}
