//! The XML-RPC wire format of a Koji client, pure: a call with positional and keyword
//! arguments (koji's trailing `{"__starstar": true, ...}` struct) to XML, and an answer back
//! to a JSON value or the hub's fault. JSON is the shape the rest of the crate works in.

use dxr::{FaultResponse, MethodCall, MethodResponse, Value};
use serde_json::{Map, Number, Value as Json};

/// What the hub answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Value(Json),
    Fault { code: i32, text: String },
}

/// The body of a call to `method`. Keyword arguments travel as koji's `__starstar` struct.
pub fn encode_call(method: &str, args: &[Json], kwargs: &[(&str, Json)]) -> String {
    let mut params: Vec<Value> = args.iter().map(to_value).collect();
    if !kwargs.is_empty() {
        let mut map: Map<String, Json> = kwargs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        map.insert("__starstar".into(), Json::Bool(true));
        params.push(to_value(&Json::Object(map)));
    }
    let call = MethodCall {
        name: method.to_owned().into(),
        params,
    };
    let body = call.to_xml().expect("every JSON value has an XML-RPC form");
    format!("<?xml version='1.0'?>\n{body}")
}

/// Decodes a `<methodResponse>`; `None` when the body is not one.
pub fn decode_answer(body: &str) -> Option<Answer> {
    let body = strip_declaration(body);
    if body.contains("<fault>") {
        let fault = FaultResponse::from_xml(body).ok()?.fault;
        return Some(Answer::Fault {
            code: fault.code(),
            text: fault.string().to_owned(),
        });
    }
    MethodResponse::from_xml(body)
        .ok()
        .map(|response| Answer::Value(to_json(&response.value)))
}

fn strip_declaration(body: &str) -> &str {
    let trimmed = body.trim_start();
    match trimmed.strip_prefix("<?xml") {
        Some(rest) => rest
            .find("?>")
            .map(|end| rest[end + 2..].trim_start())
            .unwrap_or(trimmed),
        None => trimmed,
    }
}

/// JSON → XML-RPC: integers past 32 bits as `<i8>`, `null` as `<nil/>` (koji's marshaller).
pub fn to_value(value: &Json) -> Value {
    match value {
        Json::Null => Value::Nil,
        Json::Bool(flag) => Value::Boolean(*flag),
        Json::Number(number) => match number.as_i64() {
            Some(int) => i32::try_from(int)
                .map(Value::Integer)
                .unwrap_or(Value::Long(int)),
            None => Value::Double(number.as_f64().unwrap_or(0.0)),
        },
        Json::String(text) => Value::String(text.clone()),
        Json::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Json::Object(map) => Value::Struct(
            map.iter()
                .map(|(key, value)| (key.clone(), to_value(value)))
                .collect(),
        ),
    }
}

/// XML-RPC → JSON (dates as their text, binary as base64 text).
pub fn to_json(value: &Value) -> Json {
    use base64::Engine;
    match value {
        Value::Integer(number) => Json::from(*number),
        Value::Long(number) => Json::from(*number),
        Value::Boolean(flag) => Json::Bool(*flag),
        Value::String(text) => Json::String(text.clone()),
        Value::Double(number) => Number::from_f64(*number)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::DateTime(at) => Json::String(at.to_string()),
        Value::Base64(bytes) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Value::Struct(members) => Json::Object(
            members
                .iter()
                .map(|(key, value)| (key.clone(), to_json(value)))
                .collect(),
        ),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Nil => Json::Null,
        _ => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_carry_keyword_arguments_large_ints_and_none() {
        let body = encode_call(
            "CGImport",
            &[json!("metadata.json"), json!("osbs-import/b1")],
            &[
                ("token", json!("t")),
                ("size", json!(5_000_000_000i64)),
                ("x", Json::Null),
            ],
        );
        assert!(
            body.starts_with(
                "<?xml version='1.0'?>\n<methodCall><methodName>CGImport</methodName>"
            )
        );
        assert!(
            body.contains("<name>__starstar</name><value><boolean>1</boolean></value>"),
            "{body}"
        );
        assert!(body.contains("<i8>5000000000</i8>"), "{body}");
        assert!(body.contains("<nil"), "{body}");
        assert!(!encode_call("hello", &[], &[]).contains("__starstar"));
    }

    #[test]
    fn answers_from_a_python_hub() {
        // What Python's xmlrpc.client.dumps writes (declaration, newlines, <int>, <nil/>).
        let value = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n\
            <value><struct>\n<member>\n<name>build_id</name>\n<value><int>42</int></value>\n</member>\n\
            <member>\n<name>task_id</name>\n<value><nil/></value>\n</member>\n\
            <member>\n<name>size</name>\n<value><i8>5000000000</i8></value>\n</member>\n\
            </struct></value>\n</param>\n</params>\n</methodResponse>\n";
        assert_eq!(
            decode_answer(value),
            Some(Answer::Value(
                json!({"build_id": 42, "task_id": null, "size": 5_000_000_000i64})
            ))
        );
        let fault = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n\
            <member>\n<name>faultCode</name>\n<value><int>1000</int></value>\n</member>\n\
            <member>\n<name>faultString</name>\n<value><string>Build is already reserved</string></value>\n</member>\n\
            </struct></value>\n</fault>\n</methodResponse>\n";
        assert_eq!(
            decode_answer(fault),
            Some(Answer::Fault {
                code: 1000,
                text: "Build is already reserved".into()
            })
        );
        assert_eq!(decode_answer("<html>502 Bad Gateway</html>"), None);
    }
}
