//! The JSON bodies of the events OSBS takes in (DESIGN.md "Events in"), as serde types: the
//! dist-git push (`fedora_messaging_git_hook.commit.v1` and the legacy fedmsg shape) and the
//! explicit build request (`osbs.build.request.v1`). The dispatcher reads them; the CLI writes
//! them (`osbs git-hook`, `osbs container-build`). Pure serde: the fedora-messaging envelope
//! and the publishing are the publisher's.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Body of `git.receive` under schema `fedora_messaging_git_hook.commit.v1` (the current
/// dist-git hook). Mirrors the package's JSON schema: every commit field is required;
/// `namespace` and `url` may be null. Unknown fields (such as `seen`) are allowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitV1Body {
    pub agent: String,
    pub commit: CommitV1,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitV1 {
    pub name: String,
    pub email: String,
    pub username: String,
    pub summary: String,
    pub message: String,
    pub stats: CommitStats,
    pub rev: String,
    pub path: String,
    pub repo: String,
    #[serde(deserialize_with = "required_nullable")]
    pub namespace: Option<String>,
    pub branch: String,
    pub patch: String,
    pub date: String,
    #[serde(deserialize_with = "required_nullable")]
    pub url: Option<String>,
    /// Extra field sent by the hook; not in the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitStats {
    #[serde(default)]
    pub files: Map<String, Value>,
    #[serde(default)]
    pub total: CommitTotals,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitTotals {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additions: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletions: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<f64>,
}

/// Body of `git.receive` from the legacy fedmsg hook: no top-level `agent` (it is inside the
/// commit), no `patch`, `date` or `url`; everything but the commit's identity is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyBody {
    pub commit: LegacyCommit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyCommit {
    pub repo: String,
    pub branch: String,
    pub rev: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub stats: Option<Value>,
    #[serde(default)]
    pub seen: Option<bool>,
}

/// Body of `osbs.build.request` (schema `osbs.build.request.v1`): Koji's
/// `buildContainer(src, target, opts)` plus who asks. Unknown keys are refused, as Koji does.
///
/// Build one with [`BuildRequest::new`] and set options on [`BuildRequest::opts`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// Chosen by the requester to find its build again (the dispatcher records what became
    /// of each request under this id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub user: String,
    /// `<git url>#<40-hex commit>`.
    pub src: String,
    pub target: String,
    pub opts: BuildRequestOptions,
}

/// Koji's buildContainer options (koji-containerbuild's set).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRequestOptions {
    pub git_branch: String,
    #[serde(default)]
    pub scratch: Option<bool>,
    #[serde(default)]
    pub isolated: Option<bool>,
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub yum_repourls: Option<Vec<String>>,
    /// Koji sends a space-separated string; a list is accepted too.
    #[serde(default)]
    pub arch_override: Option<ArchOverride>,
    #[serde(default)]
    pub koji_parent_build: Option<String>,
    #[serde(default)]
    pub signing_intent: Option<String>,
    #[serde(default)]
    pub compose_ids: Option<Vec<i64>>,
}

/// `arch_override` as Koji sends it (`"x86_64 aarch64"`) or as a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ArchOverride {
    Words(String),
    List(Vec<String>),
}

impl ArchOverride {
    pub fn arches(&self) -> Vec<String> {
        match self {
            ArchOverride::Words(words) => words.split_whitespace().map(str::to_owned).collect(),
            ArchOverride::List(list) => list.clone(),
        }
    }
}

impl BuildRequest {
    /// A request (`request_id`: the requester's, unique) to build `commit` of `git_url` (an
    /// allowed dist-git URL such as `https://src.fedoraproject.org/container/httpd.git`) from
    /// `git_branch` into `target`, for `user`, with no options.
    pub fn new(
        request_id: impl Into<String>,
        user: impl Into<String>,
        git_url: &str,
        commit: &str,
        git_branch: impl Into<String>,
        target: impl Into<String>,
    ) -> BuildRequest {
        BuildRequest {
            request_id: Some(request_id.into()),
            user: user.into(),
            src: format!("{git_url}#{commit}"),
            target: target.into(),
            opts: BuildRequestOptions {
                git_branch: git_branch.into(),
                ..Default::default()
            },
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a BuildRequest always serializes")
    }
}

/// A field that must be present but may be `null` (JSON schema `["string", "null"]` listed as
/// required): serde treats a missing `Option` as `None` unless told otherwise.
fn required_nullable<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(deserializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of a message in `tests/fixtures/events/` (the broker's view of an event).
    fn fixture_body(name: &str) -> Value {
        let text = match name {
            "git-receive-v1.json" => {
                include_str!("../../tests/fixtures/events/git-receive-v1.json")
            }
            "git-receive-legacy-fedmsg.json" => {
                include_str!("../../tests/fixtures/events/git-receive-legacy-fedmsg.json")
            }
            "build-request-v1.json" => {
                include_str!("../../tests/fixtures/events/build-request-v1.json")
            }
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str::<Value>(text).unwrap()["body"].clone()
    }

    #[test]
    fn fixtures_parse_as_their_shapes() {
        let v1: CommitV1Body = serde_json::from_value(fixture_body("git-receive-v1.json")).unwrap();
        assert_eq!(v1.commit.repo, "httpd");
        assert_eq!(v1.commit.namespace.as_deref(), Some("container"));
        assert_eq!(v1.commit.seen, Some(false));
        let legacy: LegacyBody =
            serde_json::from_value(fixture_body("git-receive-legacy-fedmsg.json")).unwrap();
        assert_eq!(legacy.commit.agent.as_deref(), Some("jdoe"));
        assert!(
            serde_json::from_value::<CommitV1Body>(fixture_body("git-receive-legacy-fedmsg.json"))
                .is_err(),
            "the legacy shape is not a CommitV1"
        );
        let request: BuildRequest =
            serde_json::from_value(fixture_body("build-request-v1.json")).unwrap();
        assert_eq!(request.opts.git_branch, "f41");
        assert_eq!(request.request_id.as_deref(), Some("req-2f1c"));
    }

    #[test]
    fn commit_v1_namespace_is_required_but_nullable() {
        let mut body = fixture_body("git-receive-v1.json");
        body["commit"]["namespace"] = Value::Null;
        assert!(serde_json::from_value::<CommitV1Body>(body.clone()).is_ok());
        body["commit"].as_object_mut().unwrap().remove("namespace");
        let error = serde_json::from_value::<CommitV1Body>(body)
            .unwrap_err()
            .to_string();
        assert!(error.contains("namespace"), "{error}");
    }

    #[test]
    fn a_built_request_round_trips() {
        let mut request = BuildRequest::new(
            "req-1",
            "jdoe",
            "https://src.fedoraproject.org/container/httpd.git",
            "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce",
            "f41",
            "f41-container-candidate",
        );
        request.opts.scratch = Some(true);
        let parsed: BuildRequest = serde_json::from_slice(&request.to_json()).unwrap();
        assert_eq!(parsed, request);
        assert_eq!(parsed.request_id.as_deref(), Some("req-1"));
        assert_eq!(
            parsed.src,
            "https://src.fedoraproject.org/container/httpd.git#3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce"
        );
        let mut unknown = serde_json::to_value(&request).unwrap();
        unknown["opts"]["colour"] = Value::from("blue");
        let error = serde_json::from_value::<BuildRequest>(unknown).unwrap_err();
        assert!(error.to_string().contains("colour"), "{error}");
    }

    #[test]
    fn arch_override_takes_koji_words_or_a_list() {
        let words: ArchOverride = serde_json::from_str("\"x86_64  aarch64\"").unwrap();
        assert_eq!(words.arches(), vec!["x86_64", "aarch64"]);
        let list: ArchOverride = serde_json::from_str("[\"s390x\"]").unwrap();
        assert_eq!(list.arches(), vec!["s390x"]);
    }
}
