//! The squashed image's config, a pure function of the original config: base diff_ids plus
//! the new layer's, the squashed build steps kept in the history but marked `empty_layer`,
//! one history entry for the new layer, and everything else (labels, env, cmd, entrypoint,
//! user, workdir, ports, volumes, healthcheck...) left exactly as it was.

use crate::SquashError;
use serde_json::{Map, Value, json};

/// Inputs besides the original config.
#[derive(Debug, Clone)]
pub(crate) struct Squash<'a> {
    /// diff_ids of the base layers (a prefix of the image's).
    pub base_diff_ids: &'a [String],
    /// History entries that belong to the base image.
    pub base_history_len: usize,
    /// The squashed layer.
    pub diff_id: &'a str,
    /// Layers merged into it.
    pub squashed_layers: usize,
}

fn config_error(reason: impl Into<String>) -> SquashError {
    SquashError::Config(reason.into())
}

/// The new config JSON (keys sorted, compact: the same input gives the same image id).
pub(crate) fn squashed_config(
    original: &[u8],
    squash: &Squash<'_>,
) -> Result<Vec<u8>, SquashError> {
    let mut config: Map<String, Value> = serde_json::from_slice(original)
        .map_err(|e| config_error(format!("the image config is not a JSON object: {e}")))?;
    // The engine keeps parent links outside the config; a stale one must not survive.
    config.remove("parent");
    config.remove("id");

    let mut diff_ids: Vec<Value> = squash
        .base_diff_ids
        .iter()
        .cloned()
        .map(Value::String)
        .collect();
    diff_ids.push(Value::String(squash.diff_id.to_owned()));
    config.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );

    let created = config.get("created").cloned();
    let history = config
        .entry("history")
        .or_insert_with(|| Value::Array(Vec::new()));
    let history = history
        .as_array_mut()
        .ok_or_else(|| config_error("the image config's history is not a list"))?;
    for step in history.iter_mut().skip(squash.base_history_len) {
        let step = step
            .as_object_mut()
            .ok_or_else(|| config_error("an image history entry is not an object"))?;
        step.insert("empty_layer".into(), Value::Bool(true));
    }
    let mut step = Map::new();
    if let Some(created) = created {
        step.insert("created".into(), created);
    }
    step.insert(
        "created_by".into(),
        Value::String(format!(
            "osbs squash: {} layers above the base merged into this one",
            squash.squashed_layers
        )),
    );
    history.push(Value::Object(step));
    serde_json::to_vec(&config).map_err(|e| config_error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = r#"{
        "architecture": "amd64", "os": "linux", "created": "2024-05-01T10:00:00Z",
        "parent": "sha256:old",
        "config": {"Labels": {"name": "x", "release": "1"}, "Env": ["A=1"], "Cmd": ["/bin/sh"],
                   "Entrypoint": ["/e"], "User": "1001", "WorkingDir": "/srv",
                   "ExposedPorts": {"80/tcp": {}}},
        "container_config": {"Cmd": ["RUN x"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:b", "sha256:u1", "sha256:u2"]},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs"},
            {"created": "2024-01-01T00:00:00Z", "created_by": "CMD sh", "empty_layer": true},
            {"created": "2024-05-01T09:00:00Z", "created_by": "RUN one"},
            {"created": "2024-05-01T09:30:00Z", "created_by": "LABEL x", "empty_layer": true},
            {"created": "2024-05-01T10:00:00Z", "created_by": "RUN two"}
        ]
    }"#;

    fn squashed() -> Value {
        let base = vec!["sha256:b".to_owned()];
        let squash = Squash {
            base_diff_ids: &base,
            base_history_len: 2,
            diff_id: "sha256:new",
            squashed_layers: 2,
        };
        serde_json::from_slice(&squashed_config(ORIGINAL.as_bytes(), &squash).unwrap()).unwrap()
    }

    #[test]
    fn diff_ids_are_the_base_plus_the_new_layer() {
        assert_eq!(
            squashed()["rootfs"],
            json!({"type": "layers", "diff_ids": ["sha256:b", "sha256:new"]})
        );
    }

    #[test]
    fn squashed_steps_are_marked_empty_and_one_step_is_added() {
        let config = squashed();
        let history = config["history"].as_array().unwrap();
        let empty: Vec<bool> = history
            .iter()
            .map(|h| h["empty_layer"] == json!(true))
            .collect();
        assert_eq!(empty, [false, true, true, true, true, false]);
        assert_eq!(history[2]["created_by"], "RUN one");
        assert_eq!(history[5]["created"], "2024-05-01T10:00:00Z");
        let layers = history
            .iter()
            .filter(|h| h["empty_layer"] != json!(true))
            .count();
        assert_eq!(
            layers,
            config["rootfs"]["diff_ids"].as_array().unwrap().len()
        );
    }

    #[test]
    fn runtime_config_is_preserved_and_parent_cleared() {
        let config = squashed();
        let original: Value = serde_json::from_str(ORIGINAL).unwrap();
        assert_eq!(config["config"], original["config"]);
        assert_eq!(config["container_config"], original["container_config"]);
        assert_eq!(config["architecture"], "amd64");
        assert!(config.get("parent").is_none());
    }

    #[test]
    fn same_input_same_bytes_and_bad_input_is_an_error() {
        assert_eq!(squashed(), squashed());
        let squash = Squash {
            base_diff_ids: &[],
            base_history_len: 0,
            diff_id: "sha256:n",
            squashed_layers: 1,
        };
        assert!(squashed_config(b"[]", &squash).is_err());
        assert!(squashed_config(br#"{"history": 3}"#, &squash).is_err());
    }
}
