//! Reading GGUF metadata values: integers of any width, and descriptions for error messages.

use candle_core::quantized::gguf_file::Value;

/// The value as an integer, whatever its integer type.
pub(crate) fn integer(v: &Value) -> Option<i128> {
    Some(match *v {
        Value::U8(x) => x.into(),
        Value::I8(x) => x.into(),
        Value::U16(x) => x.into(),
        Value::I16(x) => x.into(),
        Value::U32(x) => x.into(),
        Value::I32(x) => x.into(),
        Value::U64(x) => x.into(),
        Value::I64(x) => x.into(),
        _ => return None,
    })
}

/// A short description of a value for error messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {:?}", truncate(s)),
        Value::Array(items) => format!("an array of {} values", items.len()),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::F32(x) => format!("the number {x}"),
        Value::F64(x) => format!("the number {x}"),
        v => match integer(v) {
            Some(i) => format!("the integer {i}"),
            None => format!("{:?}", v.value_type()),
        },
    }
}

fn truncate(s: &str) -> &str {
    s.char_indices().nth(40).map_or(s, |(i, _)| &s[..i])
}
