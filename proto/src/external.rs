//! The fedora-messaging JSON form of a state change (`<prefix>.osbs.build.state.change`),
//! so that existing Fedora tooling can follow builds without protobuf.

use crate::v1::{BuildState, BuildStateChange, Nvr};
use serde_json::{Value, json};

/// `name-version-release`, or an empty string before the release is known.
pub fn nvr_string(nvr: Option<&Nvr>) -> String {
    match nvr {
        Some(nvr) if !nvr.name.is_empty() && !nvr.release.is_empty() => {
            format!("{}-{}-{}", nvr.name, nvr.version, nvr.release)
        }
        Some(nvr) if !nvr.name.is_empty() => format!("{}-{}", nvr.name, nvr.version),
        _ => String::new(),
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

/// The JSON body of the external state event.
pub fn state_change_body(change: &BuildStateChange) -> Value {
    let state = |raw: i32| {
        BuildState::try_from(raw)
            .unwrap_or(BuildState::Unspecified)
            .name()
    };
    json!({
        "build_id": change.build_id,
        "nvr": nvr_string(change.nvr.as_ref()),
        "old_state": state(change.old_state),
        "new_state": state(change.new_state),
        "reason": change.reason,
        "pullspecs": change.pullspecs,
        "owner": change.owner,
        "repo": change.repo,
        "branch": change.branch,
        "target": change.target,
        "koji_build_id": (change.koji_build_id != 0).then_some(change.koji_build_id),
        "at": iso8601(change.at_ms),
    })
}

/// fedora-messaging severity of a state: ERROR (40) for failures, INFO (20) otherwise.
pub fn severity(new_state: BuildState) -> i64 {
    match new_state {
        BuildState::Failed | BuildState::ImportFailed => 40,
        _ => 20,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_names_not_numbers() {
        let change = BuildStateChange {
            build_id: "b1".into(),
            old_state: BuildState::Running as i32,
            new_state: BuildState::Failed as i32,
            reason: "Dockerfile has no FROM".into(),
            nvr: Some(Nvr {
                name: "httpd".into(),
                version: "2.4".into(),
                release: "3".into(),
            }),
            owner: "jdoe".into(),
            at_ms: 1_736_936_523_120,
            ..Default::default()
        };
        let body = state_change_body(&change);
        assert_eq!(body["old_state"], "running");
        assert_eq!(body["new_state"], "failed");
        assert_eq!(body["nvr"], "httpd-2.4-3");
        assert_eq!(body["at"], "2025-01-15T10:22:03.120+00:00");
        assert_eq!(body["koji_build_id"], Value::Null);
        assert_eq!(severity(BuildState::Failed), 40);
    }
}
