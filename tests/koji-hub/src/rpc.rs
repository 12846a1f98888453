//! The XML-RPC wire format as the hub speaks it: method calls in (with koji's `__starstar`
//! keyword arguments), responses and faults out, and the conversion between XML-RPC values
//! and JSON (the shape the hub's data lives in).
//!
//! Written independently of the bridge's client on purpose: a double that shared the client's
//! codec could not catch the client's encoding mistakes.

use crate::fault::Fault;
use dxr::{FaultResponse, MethodCall, MethodResponse, Value};
use serde_json::{Map, Number, Value as Json};
use std::collections::BTreeMap;

/// One decoded call: positional arguments and keyword arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    pub args: Vec<Json>,
    pub kwargs: BTreeMap<String, Json>,
}

impl Call {
    /// The argument at `index`, or the keyword argument `name` (Python's binding rules).
    pub fn arg(&self, index: usize, name: &str) -> Option<&Json> {
        self.kwargs.get(name).or_else(|| self.args.get(index))
    }

    /// A required argument; missing → the `ParameterError` koji's `call_with_argcheck` raises.
    pub fn required(&self, index: usize, name: &str) -> Result<&Json, Fault> {
        self.arg(index, name).ok_or_else(|| {
            Fault::parameter(format!(
                "{}() missing 1 required positional argument: '{name}'",
                self.method
            ))
        })
    }
}

/// Parses a `<methodCall>` body. Koji's `decode_args`: a trailing struct with
/// `__starstar: true` holds the keyword arguments.
pub fn parse_call(body: &str) -> Result<Call, Fault> {
    let call = MethodCall::from_xml(strip_declaration(body)).map_err(|_| {
        Fault::python(
            "xml.parsers.expat.ExpatError",
            "syntax error: line 1, column 0",
        )
    })?;
    let mut args: Vec<Json> = call.params.iter().map(to_json).collect();
    let mut kwargs = BTreeMap::new();
    let keywords = matches!(args.last(), Some(Json::Object(last))
        if last.get("__starstar") == Some(&Json::Bool(true)));
    if keywords && let Some(Json::Object(mut map)) = args.pop() {
        map.remove("__starstar");
        kwargs = map.into_iter().collect();
    }
    Ok(Call {
        method: call.name.into_owned(),
        args,
        kwargs,
    })
}

fn strip_declaration(body: &str) -> &str {
    let trimmed = body.trim_start();
    match trimmed.strip_prefix("<?xml") {
        Some(rest) => rest
            .find("?>")
            .map(|end| &rest[end + 2..])
            .unwrap_or(trimmed),
        None => trimmed,
    }
}

/// A `<methodResponse>` carrying `value`.
pub fn response_xml(value: &Json) -> String {
    let response = MethodResponse {
        value: from_json(value),
    };
    let body = response
        .to_xml()
        .expect("every JSON value has an XML-RPC form");
    format!("<?xml version='1.0'?>\n{body}")
}

/// A `<methodResponse><fault>` for `fault`.
pub fn fault_xml(fault: &Fault) -> String {
    let response = FaultResponse {
        fault: dxr::Fault::new(fault.code, fault.text.clone()),
    };
    let body = response.to_xml().expect("a fault always serializes");
    format!("<?xml version='1.0'?>\n{body}")
}

/// XML-RPC → JSON. Dates become their ISO text and binary its bytes as a string, as koji's
/// handlers would see them once decoded.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Integer(number) => Json::from(*number),
        Value::Long(number) => Json::from(*number),
        Value::Boolean(flag) => Json::Bool(*flag),
        Value::String(text) => Json::String(text.clone()),
        Value::Double(number) => Number::from_f64(*number)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::DateTime(at) => Json::String(at.to_string()),
        Value::Base64(bytes) => Json::String(String::from_utf8_lossy(bytes).into_owned()),
        Value::Struct(members) => Json::Object(
            members
                .iter()
                .map(|(key, value)| (key.clone(), to_json(value)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Nil => Json::Null,
        _ => Json::Null,
    }
}

/// JSON → XML-RPC: integers beyond 32 bits as `<i8>` (koji's marshaller), `null` as `<nil/>`.
pub fn from_json(value: &Json) -> Value {
    match value {
        Json::Null => Value::Nil,
        Json::Bool(flag) => Value::Boolean(*flag),
        Json::Number(number) => match number.as_i64() {
            Some(int) => match i32::try_from(int) {
                Ok(small) => Value::Integer(small),
                Err(_) => Value::Long(int),
            },
            None => Value::Double(number.as_f64().unwrap_or(0.0)),
        },
        Json::String(text) => Value::String(text.clone()),
        Json::Array(items) => Value::Array(items.iter().map(from_json).collect()),
        Json::Object(map) => Value::Struct(
            map.iter()
                .map(|(key, value)| (key.clone(), from_json(value)))
                .collect(),
        ),
    }
}

/// The raw bytes of a base64 argument (legacy `uploadFile`'s data is a base64 *string*).
pub fn base64_arg(value: &Json) -> Result<Vec<u8>, Fault> {
    use base64::Engine;
    let text = value.as_str().unwrap_or_default();
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|error| Fault::python("binascii.Error", error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keyword_arguments_are_split_off() {
        let body = "<?xml version='1.0'?>\n<methodCall><methodName>CGImport</methodName><params>\
            <param><value><string>metadata.json</string></value></param>\
            <param><value><string>osbs/1</string></value></param>\
            <param><value><struct>\
              <member><name>token</name><value><string>abc</string></value></member>\
              <member><name>__starstar</name><value><boolean>1</boolean></value></member>\
            </struct></value></param></params></methodCall>";
        let call = parse_call(body).unwrap();
        assert_eq!(call.method, "CGImport");
        assert_eq!(call.args, vec![json!("metadata.json"), json!("osbs/1")]);
        assert_eq!(call.arg(2, "token"), Some(&json!("abc")));
        assert!(call.required(3, "other").is_err());
    }

    #[test]
    fn large_integers_and_none_round_trip() {
        let value = json!({"size": 5_000_000_000i64, "small": 7, "none": null, "f": 1.5});
        let xml = response_xml(&value);
        assert!(xml.contains("<i8>5000000000</i8>"), "{xml}");
        assert!(xml.contains("<nil"), "{xml}");
        let parsed = MethodResponse::from_xml(strip_declaration(&xml)).unwrap();
        assert_eq!(to_json(&parsed.value), value);
    }

    #[test]
    fn bad_xml_is_a_python_fault() {
        let fault = parse_call("not xml").unwrap_err();
        assert_eq!(fault.code, 1);
        assert!(fault.text.contains("ExpatError"));
    }
}
