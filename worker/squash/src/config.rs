//! The squashed image's config, a pure function of the original config: base diff_ids plus
//! the new layer's, the squashed build steps kept in the history but marked `empty_layer`,
//! one history entry for the new layer, the platform (`os`, `architecture`, `variant`) set
//! when one is given (an arch build: whatever the builder wrote), and everything else
//! (labels, env, cmd, entrypoint, user, workdir, ports, volumes, healthcheck...) left exactly
//! as it was — except what the squash adds ([`Additions`]): its labels set over the image's,
//! and one empty-layer history entry per added file and for the labels, saying the squash
//! wrote them.

use crate::SquashError;
use crate::add::Additions;
use osbs_registry::Platform;
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
    /// What the squash adds (labels here; the files are in the new layer).
    pub additions: &'a Additions,
    /// The platform the image is for, written over the builder's (`None`: kept as it is).
    pub platform: Option<&'a Platform>,
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

    if let Some(platform) = squash.platform {
        set_platform(&mut config, platform);
    }

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
    let added_step = |created_by: &str| {
        let mut step = Map::new();
        if let Some(created) = &created {
            step.insert("created".into(), created.clone());
        }
        step.insert(
            "created_by".into(),
            Value::String(format!("osbs squash: {created_by}")),
        );
        step.insert(
            "comment".into(),
            Value::String("written by the squash, not a builder step".into()),
        );
        step.insert("empty_layer".into(), Value::Bool(true));
        Value::Object(step)
    };
    for created_by in &squash.additions.earlier_labels_created_by {
        history.push(added_step(created_by));
    }
    for file in &squash.additions.files {
        history.push(added_step(&file.created_by));
    }
    if !squash.additions.labels.is_empty() && !squash.additions.labels_created_by.is_empty() {
        history.push(added_step(&squash.additions.labels_created_by));
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
    set_labels(&mut config, &squash.additions.labels)?;
    serde_json::to_vec(&config).map_err(|e| config_error(e.to_string()))
}

/// `labels` set in `config.Labels` over the image's (as a LABEL instruction would).
fn set_labels(
    config: &mut Map<String, Value>,
    labels: &[(String, String)],
) -> Result<(), SquashError> {
    if labels.is_empty() {
        return Ok(());
    }
    let runtime = config.entry("config").or_insert(Value::Null);
    if runtime.is_null() {
        *runtime = Value::Object(Map::new());
    }
    let runtime = runtime
        .as_object_mut()
        .ok_or_else(|| config_error("the image config's config is not an object"))?;
    let current = runtime.entry("Labels").or_insert(Value::Null);
    if current.is_null() {
        *current = Value::Object(Map::new());
    }
    let current = current
        .as_object_mut()
        .ok_or_else(|| config_error("the image config's labels are not an object"))?;
    for (name, value) in labels {
        current.insert(name.clone(), Value::String(value.clone()));
    }
    Ok(())
}

/// `architecture` and `variant` (removed when the platform has none) and, when it names
/// one, `os`: the engine's classic builder writes its own host's or the base's, not
/// necessarily the arch built for.
fn set_platform(config: &mut Map<String, Value>, platform: &Platform) {
    if !platform.os.is_empty() {
        config.insert("os".into(), Value::String(platform.os.clone()));
    }
    config.insert(
        "architecture".into(),
        Value::String(platform.architecture.clone()),
    );
    match &platform.variant {
        Some(variant) => config.insert("variant".into(), Value::String(variant.clone())),
        None => config.remove("variant"),
    };
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
            additions: &Additions::default(),
            platform: None,
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

    /// (original config, additions) → labels and history `created_by`s after the squash.
    #[test]
    fn additions_set_labels_and_say_so_in_the_history() {
        use crate::add::AddedFile;
        let file = AddedFile {
            path: "/root/buildinfo/Dockerfile-x-1-1".into(),
            contents: Vec::new(),
            mode: 0o644,
            created_by: "COPY Dockerfile-x-1-1 /root/buildinfo/Dockerfile-x-1-1".into(),
        };
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let both = Additions {
            labels: labels(&[("release", "2"), ("odd", "a\nb $X"), ("release", "3")]),
            labels_created_by: "LABEL release=\"2\"".into(),
            earlier_labels_created_by: vec!["LABEL odd=a".into(), "LABEL b=c".into()],
            files: vec![file.clone()],
        };
        let history_of_two = r#"[{"created_by": "ADD rootfs"}, {"created_by": "RUN one"}]"#;
        let cases: Vec<(String, Additions, Value, Vec<&str>)> = vec![
            (
                format!(
                    r#"{{"config": {{"Labels": {{"name": "x", "release": "1"}}}}, "history": {history_of_two}}}"#
                ),
                both.clone(),
                json!({"name": "x", "release": "3", "odd": "a\nb $X"}),
                vec![
                    "ADD rootfs",
                    "RUN one",
                    "osbs squash: LABEL odd=a",
                    "osbs squash: LABEL b=c",
                    "osbs squash: COPY Dockerfile-x-1-1 /root/buildinfo/Dockerfile-x-1-1",
                    "osbs squash: LABEL release=\"2\"",
                    "osbs squash: 1 layers above the base merged into this one",
                ],
            ),
            (
                format!(r#"{{"config": {{"Labels": null}}, "history": {history_of_two}}}"#),
                Additions {
                    files: Vec::new(),
                    earlier_labels_created_by: Vec::new(),
                    ..both.clone()
                },
                json!({"release": "3", "odd": "a\nb $X"}),
                vec![
                    "ADD rootfs",
                    "RUN one",
                    "osbs squash: LABEL release=\"2\"",
                    "osbs squash: 1 layers above the base merged into this one",
                ],
            ),
            (
                format!(r#"{{"history": {history_of_two}}}"#),
                Additions {
                    labels: Vec::new(),
                    earlier_labels_created_by: Vec::new(),
                    ..both.clone()
                },
                Value::Null,
                vec![
                    "ADD rootfs",
                    "RUN one",
                    "osbs squash: COPY Dockerfile-x-1-1 /root/buildinfo/Dockerfile-x-1-1",
                    "osbs squash: 1 layers above the base merged into this one",
                ],
            ),
        ];
        let base = vec!["sha256:b".to_owned()];
        for (original, additions, expected_labels, expected_history) in cases {
            let squash = Squash {
                base_diff_ids: &base,
                base_history_len: 1,
                diff_id: "sha256:new",
                squashed_layers: 1,
                additions: &additions,
                platform: None,
            };
            let config: Value =
                serde_json::from_slice(&squashed_config(original.as_bytes(), &squash).unwrap())
                    .unwrap();
            let labels = config
                .get("config")
                .map_or(Value::Null, |c| c["Labels"].clone());
            assert_eq!(labels, expected_labels, "{original}");
            let history = config["history"].as_array().unwrap();
            let created_by: Vec<&str> = history
                .iter()
                .map(|h| h["created_by"].as_str().unwrap())
                .collect();
            assert_eq!(created_by, expected_history, "{original}");
            // One non-empty entry per layer: the base's and the squashed one.
            let layers = history
                .iter()
                .filter(|h| h["empty_layer"] != json!(true))
                .count();
            assert_eq!(layers, 2, "{original}");
        }
        // Labels that are not an object are an error, not overwritten.
        let squash = Squash {
            base_diff_ids: &[],
            base_history_len: 0,
            diff_id: "sha256:n",
            squashed_layers: 1,
            additions: &both,
            platform: None,
        };
        assert!(squashed_config(br#"{"config": {"Labels": []}}"#, &squash).is_err());
        assert!(squashed_config(br#"{"config": 3}"#, &squash).is_err());
    }

    #[test]
    fn the_platform_given_is_written_over_the_builders() {
        let base = vec!["sha256:b".to_owned()];
        let arm64 = Platform::of_arch(&osbs_registry::arch::lookup("aarch64").unwrap());
        let amd64 = Platform::of_arch(&osbs_registry::arch::lookup("x86_64").unwrap());
        let with_variant =
            ORIGINAL.replace(r#""os": "linux","#, r#""os": "linux", "variant": "v7","#);
        let table = [
            (
                "arm64 over amd64",
                ORIGINAL.to_owned(),
                Some(&arm64),
                ("arm64", Some("v8")),
            ),
            (
                "amd64 over amd64",
                ORIGINAL.to_owned(),
                Some(&amd64),
                ("amd64", None),
            ),
            (
                "a stale variant goes",
                with_variant.clone(),
                Some(&amd64),
                ("amd64", None),
            ),
            (
                "none given: kept",
                with_variant,
                None,
                ("amd64", Some("v7")),
            ),
        ];
        for (what, original, platform, (architecture, variant)) in table {
            let squash = Squash {
                base_diff_ids: &base,
                base_history_len: 2,
                diff_id: "sha256:new",
                squashed_layers: 2,
                additions: &Additions::default(),
                platform,
            };
            let config: Value =
                serde_json::from_slice(&squashed_config(original.as_bytes(), &squash).unwrap())
                    .unwrap();
            assert_eq!(config["architecture"], architecture, "{what}");
            assert_eq!(config["variant"].as_str(), variant, "{what}");
            assert_eq!(config["os"], "linux", "{what}");
            assert_eq!(config["config"]["Cmd"], json!(["/bin/sh"]), "{what}");
        }
    }

    #[test]
    fn same_input_same_bytes_and_bad_input_is_an_error() {
        assert_eq!(squashed(), squashed());
        let squash = Squash {
            base_diff_ids: &[],
            base_history_len: 0,
            diff_id: "sha256:n",
            squashed_layers: 1,
            additions: &Additions::default(),
            platform: None,
        };
        assert!(squashed_config(b"[]", &squash).is_err());
        assert!(squashed_config(br#"{"history": 3}"#, &squash).is_err());
    }
}
