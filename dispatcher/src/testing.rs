//! Unit-test support: the shared event fixtures, read as the broker would deliver them.

use serde_json::{Map, Value};
use std::path::PathBuf;

/// The event fixtures (see osbs-testkit).
pub fn fixtures_dir() -> PathBuf {
    osbs_testkit::event_fixtures_dir()
}

/// A good fixture: its routing key, content encoding, message id, headers and body bytes.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub routing_key: String,
    pub content_encoding: Option<String>,
    pub message_id: Option<String>,
    pub headers: Map<String, Value>,
    pub body: Vec<u8>,
}

pub fn fixture(name: &str) -> Fixture {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let value: Value = serde_json::from_str(&text).unwrap();
    let properties = &value["properties"];
    Fixture {
        routing_key: value["routing_key"].as_str().unwrap().to_owned(),
        content_encoding: properties["content_encoding"].as_str().map(str::to_owned),
        message_id: properties["message_id"].as_str().map(str::to_owned),
        headers: value["headers"].as_object().cloned().unwrap_or_default(),
        body: serde_json::to_vec(&value["body"]).unwrap(),
    }
}

/// Every file of `bad/` but its README: (file name, raw body).
pub fn bad_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures_dir().join("bad"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap() != "README.md")
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}
