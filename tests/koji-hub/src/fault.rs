//! Koji's faults: the codes of `koji.GenericError` and its subclasses, and the texts the hub
//! builds with Python's `%r` (so that a client sees byte-for-byte what a real hub says).

use serde_json::Value as Json;

/// Fault codes, from `koji/__init__.py`.
pub mod code {
    /// Any exception that is not a `koji.GenericError` (a `KeyError` in the metadata...).
    pub const UNEXPECTED: i32 = 1;
    pub const GENERIC: i32 = 1000;
    pub const LOCK: i32 = 1001;
    pub const AUTH: i32 = 1002;
    pub const TAG: i32 = 1003;
    pub const ACTION_NOT_ALLOWED: i32 = 1004;
    pub const BUILD: i32 = 1005;
    pub const AUTH_EXPIRED: i32 = 1007;
    pub const SEQUENCE: i32 = 1008;
    pub const RETRY: i32 = 1009;
    pub const SERVER_OFFLINE: i32 = 1014;
    pub const PARAMETER: i32 = 1019;
    pub const IMPORT: i32 = 1020;
}

/// An XML-RPC fault as the hub sends it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Fault {code}: {text}")]
pub struct Fault {
    pub code: i32,
    pub text: String,
}

impl Fault {
    pub fn new(code: i32, text: impl Into<String>) -> Fault {
        Fault {
            code,
            text: text.into(),
        }
    }
    pub fn generic(text: impl Into<String>) -> Fault {
        Fault::new(code::GENERIC, text)
    }
    pub fn auth(text: impl Into<String>) -> Fault {
        Fault::new(code::AUTH, text)
    }
    pub fn not_allowed(text: impl Into<String>) -> Fault {
        Fault::new(code::ACTION_NOT_ALLOWED, text)
    }
    pub fn tag(text: impl Into<String>) -> Fault {
        Fault::new(code::TAG, text)
    }
    pub fn build(text: impl Into<String>) -> Fault {
        Fault::new(code::BUILD, text)
    }
    pub fn parameter(text: impl Into<String>) -> Fault {
        Fault::new(code::PARAMETER, text)
    }
    /// What the hub answers when a handler hits a missing dict key: `Fault 1` with the
    /// exception, formatted as kojixmlrpc does (`"%s: %s" % (e_class, e)`).
    pub fn key_error(key: &str) -> Fault {
        Fault::new(
            code::UNEXPECTED,
            format!("<class 'KeyError'>: {}", py_str_repr(key)),
        )
    }
    /// Any other Python exception escaping a handler.
    pub fn python(class: &str, message: impl std::fmt::Display) -> Fault {
        Fault::new(code::UNEXPECTED, format!("<class '{class}'>: {message}"))
    }
    pub fn offline() -> Fault {
        Fault::new(code::SERVER_OFFLINE, "server is offline")
    }
}

/// Python's `repr()` of a JSON value: `'text'`, `True`, `None`, `{'a': 1}`.
pub fn py_repr(value: &Json) -> String {
    match value {
        Json::Null => "None".into(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Number(number) => number.to_string(),
        Json::String(text) => py_str_repr(text),
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(key, value)| format!("{}: {}", py_str_repr(key), py_repr(value)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `repr()` of a dict whose keys keep the order the hub inserted them in (a JSON
/// map sorts its keys; Python's dicts do not).
pub fn py_dict_repr(entries: &[(String, Json)]) -> String {
    let items: Vec<String> = entries
        .iter()
        .map(|(key, value)| format!("{}: {}", py_str_repr(key), py_repr(value)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Python's `repr()` of a string: single quotes unless the text holds one and no double.
pub fn py_str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str()` of a JSON value (strings bare, everything else as `repr`).
pub fn py_str(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        other => py_repr(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reprs_match_python() {
        let cases = [
            (json!("abc"), "'abc'"),
            (json!("it's"), "\"it's\""),
            (json!(null), "None"),
            (json!(true), "True"),
            (json!(3), "3"),
            (json!([1, "a"]), "[1, 'a']"),
            (json!({"name": "x", "n": 1}), "{'n': 1, 'name': 'x'}"),
        ];
        for (value, expected) in cases {
            assert_eq!(py_repr(&value), expected, "{value}");
        }
        assert_eq!(
            py_dict_repr(&[("name".into(), json!("a")), ("extra".into(), json!(null))]),
            "{'name': 'a', 'extra': None}"
        );
        assert_eq!(
            Fault::key_error("source").text,
            "<class 'KeyError'>: 'source'"
        );
    }
}
