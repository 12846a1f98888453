//! The state event: how a build's state change is announced, once, as fedora-messaging JSON on
//! `amq.topic` (`<prefix>.osbs.build.state.change`). Outside tooling and OSBS's own listeners
//! read the same body: [`StateEvent`] writes it and reads it back.

use crate::names;
use crate::v1::BuildState;
use serde::{Deserialize, Serialize};

/// The body of `<prefix>.osbs.build.state.change` (schema `osbs.build.state.change.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEvent {
    pub build_id: String,
    /// `name-version-release` once the release is known, else empty.
    pub nvr: String,
    /// `unspecified` for a build just recorded.
    #[serde(with = "state_name")]
    pub old_state: BuildState,
    #[serde(with = "state_name")]
    pub new_state: BuildState,
    pub reason: String,
    pub pullspecs: Vec<String>,
    /// Who asked for the build (the pusher or the requester).
    pub owner: String,
    pub repo: String,
    /// The dist-git namespace of `repo` (`container`). Optional in the schema: absent from
    /// events published before it was added.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The Koji package (the image's `com.redhat.component`, the NVR's name), once the
    /// release is known.
    #[serde(default)]
    pub component: Option<String>,
    /// What is built: `<clone url>#<commit>`, the source Koji records for the build.
    #[serde(default)]
    pub url: Option<String>,
    pub branch: String,
    pub target: String,
    /// The Koji build, once imported.
    pub koji_build_id: Option<i64>,
    /// When the change was recorded ([`iso8601`]).
    pub at: String,
}

/// A body that is not a state event.
#[derive(Debug, thiserror::Error)]
#[error("not an {} body: {source}", names::SCHEMA_STATE_CHANGE)]
pub struct NotAStateEvent {
    #[source]
    source: serde_json::Error,
}

/// The value of one AMQP header, without depending on an AMQP library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl StateEvent {
    /// Reads a delivered body back (what every OSBS listener uses).
    pub fn from_json(body: &[u8]) -> Result<StateEvent, NotAStateEvent> {
        serde_json::from_slice(body).map_err(|source| NotAStateEvent { source })
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a plain struct serializes")
    }

    /// fedora-messaging's headers for this event, sent at `sent_at_ms`: schema, `sent-at`,
    /// severity, priority, and the `fedora_messaging_user_<owner>` /
    /// `fedora_messaging_container_<repo>` markers its consumers filter on — the same
    /// fedora-messaging computes from the schema package's `usernames` and `containers`
    /// (`Message._filter_headers`: `user`, `container`; no `rpm` header: an image's component
    /// is not an rpm package).
    pub fn headers(&self, sent_at_ms: i64) -> Vec<(String, HeaderValue)> {
        let mut headers = vec![
            (
                "fedora_messaging_schema".to_owned(),
                HeaderValue::Text(names::SCHEMA_STATE_CHANGE.to_owned()),
            ),
            ("sent-at".to_owned(), HeaderValue::Text(iso8601(sent_at_ms))),
            (
                "fedora_messaging_severity".to_owned(),
                HeaderValue::Int(severity(self.new_state)),
            ),
            ("priority".to_owned(), HeaderValue::Int(0)),
        ];
        if !self.owner.is_empty() {
            headers.push((
                format!("fedora_messaging_user_{}", self.owner),
                HeaderValue::Bool(true),
            ));
        }
        if !self.repo.is_empty() {
            headers.push((
                format!("fedora_messaging_container_{}", self.repo),
                HeaderValue::Bool(true),
            ));
        }
        headers
    }
}

/// ISO-8601 UTC (`2025-01-15T10:22:03.120+00:00`, fedora-messaging's `sent-at` style).
pub fn iso8601(unix_ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+00:00"
    );
    at.format(&format).unwrap_or_default()
}

/// fedora-messaging severity of a state: ERROR (40) for failures, INFO (20) otherwise.
pub fn severity(new_state: BuildState) -> i64 {
    match new_state {
        BuildState::Failed | BuildState::ImportFailed => 40,
        _ => 20,
    }
}

/// States as their names (`queued`, `import_failed`; `unspecified` before the first).
mod state_name {
    use crate::v1::BuildState;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(state: &BuildState, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(state.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BuildState, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name == BuildState::Unspecified.name() {
            return Ok(BuildState::Unspecified);
        }
        BuildState::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn event(old_state: BuildState, new_state: BuildState) -> StateEvent {
        StateEvent {
            build_id: "b1".into(),
            nvr: "httpd-2.4-3".into(),
            old_state,
            new_state,
            reason: "Dockerfile has no FROM".into(),
            pullspecs: vec![],
            owner: "jdoe".into(),
            repo: "httpd".into(),
            namespace: Some("container".into()),
            component: Some("httpd".into()),
            url: Some(format!(
                "https://src.fedoraproject.org/container/httpd.git#{}",
                "a".repeat(40)
            )),
            branch: "f41".into(),
            target: "f41-container-candidate".into(),
            koji_build_id: None,
            at: iso8601(1_736_936_523_120),
        }
    }

    #[test]
    fn the_body_carries_names_not_numbers_and_reads_back() {
        let failed = event(BuildState::Running, BuildState::Failed);
        let body: Value = serde_json::from_slice(&failed.to_json()).unwrap();
        assert_eq!(
            body,
            json!({
                "build_id": "b1",
                "nvr": "httpd-2.4-3",
                "old_state": "running",
                "new_state": "failed",
                "reason": "Dockerfile has no FROM",
                "pullspecs": [],
                "owner": "jdoe",
                "repo": "httpd",
                "namespace": "container",
                "component": "httpd",
                "url": format!("https://src.fedoraproject.org/container/httpd.git#{}", "a".repeat(40)),
                "branch": "f41",
                "target": "f41-container-candidate",
                "koji_build_id": null,
                "at": "2025-01-15T10:22:03.120+00:00",
            })
        );
        assert_eq!(StateEvent::from_json(&failed.to_json()).unwrap(), failed);
        let recorded = event(BuildState::Unspecified, BuildState::Queued);
        assert_eq!(
            StateEvent::from_json(&recorded.to_json()).unwrap(),
            recorded
        );
        // A body from before namespace, component and url reads as "unknown".
        let mut older = body.clone();
        for name in ["namespace", "component", "url"] {
            older.as_object_mut().unwrap().remove(name);
        }
        let older = StateEvent::from_json(older.to_string().as_bytes()).unwrap();
        assert_eq!(
            (older.namespace, older.component, older.url),
            (None, None, None)
        );
    }

    #[test]
    fn other_bodies_are_refused_by_the_reader() {
        for body in [
            &b"{}"[..],
            b"not json",
            br#"{"build_id":"b1","new_state":"done"}"#,
        ] {
            let refused = StateEvent::from_json(body).unwrap_err();
            assert!(
                refused
                    .to_string()
                    .starts_with("not an osbs.build.state.change.v1 body"),
                "{refused}"
            );
        }
    }

    #[test]
    fn headers_follow_fedora_messaging() {
        let text = |value: &str| HeaderValue::Text(value.to_owned());
        let cases = [
            (event(BuildState::Running, BuildState::Failed), 40),
            (event(BuildState::Complete, BuildState::ImportFailed), 40),
            (event(BuildState::Pushing, BuildState::Complete), 20),
        ];
        for (event, severity) in cases {
            assert_eq!(
                event.headers(1_736_936_523_120),
                vec![
                    (
                        "fedora_messaging_schema".to_owned(),
                        text("osbs.build.state.change.v1")
                    ),
                    ("sent-at".to_owned(), text("2025-01-15T10:22:03.120+00:00")),
                    (
                        "fedora_messaging_severity".to_owned(),
                        HeaderValue::Int(severity)
                    ),
                    ("priority".to_owned(), HeaderValue::Int(0)),
                    (
                        "fedora_messaging_user_jdoe".to_owned(),
                        HeaderValue::Bool(true)
                    ),
                    (
                        "fedora_messaging_container_httpd".to_owned(),
                        HeaderValue::Bool(true)
                    ),
                ],
                "{}",
                event.new_state
            );
        }
        let anonymous = StateEvent {
            owner: String::new(),
            repo: String::new(),
            ..event(BuildState::Queued, BuildState::Canceled)
        };
        assert_eq!(anonymous.headers(0).len(), 4, "no empty markers");
    }
}
