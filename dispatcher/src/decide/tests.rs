//! Every rule of `decide`, on values: the shared fixtures and tables of mutations of them.

use super::*;
use crate::config::DispatcherConfig;
use crate::testing::{Fixture, bad_fixtures, fixture};
use serde_json::json;

const NOW: i64 = 1_736_936_600_000;
const PREFIX: &str = "org.fedoraproject.prod";
const REV: &str = "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce";

fn routing() -> Routing {
    Routing::new(&DispatcherConfig::default()).unwrap()
}

fn decide_fixture(fixture: &Fixture, routing: &Routing) -> Decision {
    decide(
        &Incoming {
            routing_key: &fixture.routing_key,
            content_encoding: fixture.content_encoding.as_deref(),
            message_id: fixture.message_id.as_deref(),
            headers: &fixture.headers,
            body: &fixture.body,
        },
        routing,
        NOW,
    )
}

fn with_body(mut fixture: Fixture, body: &Value) -> Fixture {
    fixture.body = serde_json::to_vec(body).unwrap();
    fixture
}

fn body_of(fixture: &Fixture) -> Value {
    serde_json::from_slice(&fixture.body).unwrap()
}

fn plan(decision: Decision) -> Plan {
    match decision {
        Decision::Enqueue(plan) => *plan,
        other => panic!("expected a job, got {other:?}"),
    }
}

fn refusal(decision: Decision) -> String {
    match decision {
        Decision::Refuse(refused) => refused.reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn ignored(decision: Decision) -> Ignored {
    match decision {
        Decision::Ignore(ignored) => ignored,
        other => panic!("expected the event to be ignored, got {other:?}"),
    }
}

#[test]
fn good_fixtures_become_jobs() {
    let routing = routing();
    let v1 = plan(decide_fixture(&fixture("git-receive-v1.json"), &routing));
    assert_eq!(v1.job.repo, "httpd");
    assert_eq!(v1.job.namespace, "container");
    assert_eq!(v1.job.commit, REV);
    assert_eq!(v1.job.branch, "f41");
    assert_eq!(
        v1.job.git_url,
        "file:///var/lib/osbs/dist-git/container/httpd.git"
    );
    assert_eq!(
        v1.job.target.as_ref().unwrap().name,
        "f41-container-candidate"
    );
    assert_eq!(v1.job.target.as_ref().unwrap().registry, "127.0.0.1:5000");
    assert_eq!(v1.job.trigger, Trigger::Push as i32);
    assert_eq!(v1.job.submitter, "jdoe");
    assert_eq!(v1.job.event_id, "6b1c2f0e-7a0e-4c55-9d8f-2a4b1f0c9e31");
    assert_eq!(v1.job.requested_at_ms, NOW);
    assert_eq!(v1.job.attempt, 1);
    assert!(v1.job.build_id.is_empty());
    assert_eq!(v1.priority, 0);
    assert_eq!(
        v1.coalesce_key.as_deref(),
        Some("container/httpd:f41:f41-container-candidate")
    );
    assert!(!v1.rebuild_unsuccessful);

    let legacy = plan(decide_fixture(
        &fixture("git-receive-legacy-fedmsg.json"),
        &routing,
    ));
    assert_eq!(legacy.job.namespace, "docker");
    assert_eq!(legacy.job.repo, "cockpit");
    assert_eq!(legacy.job.submitter, "jdoe");
    assert_eq!(
        legacy.job.target.as_ref().unwrap().name,
        "f41-docker-candidate"
    );

    let request = plan(decide_fixture(&fixture("build-request-v1.json"), &routing));
    assert_eq!(request.job.trigger, Trigger::Request as i32);
    assert_eq!(
        request.job.git_url,
        "https://src.fedoraproject.org/container/httpd.git"
    );
    assert_eq!(request.job.commit, REV);
    assert_eq!(
        request.job.options.as_ref().unwrap().yum_repourls,
        vec!["https://repos.example.com/f41-extras.repo".to_owned()]
    );
    assert_eq!(request.priority, MAX_PRIORITY);
    assert_eq!(request.request_id.as_deref(), Some("req-2f1c"));
    assert!(request.coalesce_key.is_none());
    assert!(request.rebuild_unsuccessful);
    assert_eq!(request.lane, v1.lane, "same repository and branch");
}

/// What each bad fixture's refusal must name.
const BAD: &[(&str, &str)] = &[
    ("body-not-an-object.json", "JSON object, not an array"),
    ("commit-without-rev.json", "commit.rev is missing"),
    ("not-utf8.raw", "not valid UTF-8"),
    (
        "repo-path-traversal.json",
        "\"../../etc\" is not a plain name",
    ),
    (
        "request-disallowed-git-host.json",
        "not on an allowed dist-git host",
    ),
    (
        "request-isolated-bad-release.json",
        "\"one\" does not match",
    ),
    (
        "request-isolated-without-release.json",
        "needs opts.release",
    ),
    ("request-scratch-and-isolated.json", "exclude each other"),
    ("request-src-without-commit.json", "has no commit"),
    (
        "request-unknown-option.json",
        "unknown field `make_it_fast`",
    ),
    ("rev-shell-injection.json", "is not a commit id"),
    ("truncated-json.raw", "not valid JSON"),
];

/// A bad body as it would arrive: `request-*` files as build requests, the others as pushes;
/// with the schema header or without any header.
fn bad_event(name: &str, body: Vec<u8>, with_headers: bool) -> Fixture {
    let (topic, schema) = if name.starts_with("request-") {
        (names::TOPIC_BUILD_REQUEST, names::SCHEMA_BUILD_REQUEST)
    } else {
        (names::TOPIC_GIT_RECEIVE, names::SCHEMA_GIT_RECEIVE)
    };
    let mut headers = Map::new();
    if with_headers {
        headers.insert("fedora_messaging_schema".into(), json!(schema));
        headers.insert("sent-at".into(), json!("2025-01-15T10:22:03+00:00"));
    }
    Fixture {
        routing_key: format!("{PREFIX}.{topic}"),
        content_encoding: with_headers.then(|| "utf-8".to_owned()),
        message_id: Some(format!("bad-{name}")),
        headers,
        body,
    }
}

#[test]
fn every_bad_fixture_is_refused_with_its_reason() {
    let routing = routing();
    let files = bad_fixtures();
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    let expected: Vec<&str> = BAD.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names, expected,
        "every file of bad/ needs its expected reason here"
    );
    for (name, body) in files {
        let expected = BAD.iter().find(|(file, _)| *file == name).unwrap().1;
        for with_headers in [true, false] {
            let reason = refusal(decide_fixture(
                &bad_event(&name, body.clone(), with_headers),
                &routing,
            ));
            assert!(
                reason.contains(expected),
                "{name} (headers: {with_headers}): {reason}"
            );
            assert!(!reason.contains('\n'), "{name}: one line: {reason}");
        }
    }
}

#[test]
fn fedora_messaging_envelope_rules() {
    let routing = routing();
    let v1 = fixture("git-receive-v1.json");
    type Edit = Box<dyn Fn(&mut Fixture)>;
    let table: Vec<(&str, Edit, Option<&str>)> = vec![
        ("no headers at all", Box::new(|f| f.headers.clear()), None),
        (
            "no content_encoding",
            Box::new(|f| f.content_encoding = None),
            None,
        ),
        (
            "upper-case encoding",
            Box::new(|f| f.content_encoding = Some("UTF-8".into())),
            None,
        ),
        (
            "base.message schema (publisher without the schema package)",
            Box::new(|f| {
                f.headers
                    .insert("fedora_messaging_schema".into(), json!("base.message"));
            }),
            None,
        ),
        ("no message id", Box::new(|f| f.message_id = None), None),
        (
            "latin-1",
            Box::new(|f| f.content_encoding = Some("latin-1".into())),
            Some("content_encoding \"latin-1\" is not supported"),
        ),
        (
            "severity out of range",
            Box::new(|f| {
                f.headers
                    .insert("fedora_messaging_severity".into(), json!(99));
            }),
            Some("fedora_messaging_severity 99"),
        ),
        (
            "sent-at not a string",
            Box::new(|f| {
                f.headers.insert("sent-at".into(), json!(12));
            }),
            Some("header sent-at must be a string"),
        ),
        (
            "request schema on the push topic",
            Box::new(|f| {
                f.headers.insert(
                    "fedora_messaging_schema".into(),
                    json!("osbs.build.request.v1"),
                );
            }),
            Some("does not belong to topic"),
        ),
        (
            "a string body",
            Box::new(|f| f.body = b"\"hello\"".to_vec()),
            Some("not a string"),
        ),
        (
            "empty body",
            Box::new(|f| f.body = Vec::new()),
            Some("not valid JSON"),
        ),
    ];
    for (what, edit, refused) in table {
        let mut event = v1.clone();
        edit(&mut event);
        let decision = decide_fixture(&event, &routing);
        match refused {
            None => assert!(
                matches!(decision, Decision::Enqueue(_)),
                "{what}: {decision:?}"
            ),
            Some(expected) => {
                let reason = refusal(decision);
                assert!(reason.contains(expected), "{what}: {reason}");
            }
        }
    }
}

#[test]
fn topic_decides_the_kind_and_unknown_topics_are_ignored() {
    let routing = routing();
    let mut event = fixture("git-receive-v1.json");
    event.routing_key = "git.receive".into();
    assert!(matches!(
        decide_fixture(&event, &routing),
        Decision::Enqueue(_)
    ));
    event.routing_key = "org.fedoraproject.prod.buildsys.tag".into();
    event.headers.remove("fedora_messaging_schema");
    assert_eq!(
        ignored(decide_fixture(&event, &routing)).kind,
        IgnoreKind::UnknownTopic
    );
    event.routing_key = "org.fedoraproject.prod.xgit.receive".into();
    assert_eq!(
        ignored(decide_fixture(&event, &routing)).kind,
        IgnoreKind::UnknownTopic,
        "a topic only matches at a dot"
    );
    // Without a recognisable topic, the schema header decides.
    event.headers.insert(
        "fedora_messaging_schema".into(),
        json!(names::SCHEMA_GIT_RECEIVE),
    );
    assert!(matches!(
        decide_fixture(&event, &routing),
        Decision::Enqueue(_)
    ));
}

#[test]
fn commit_v1_schema_applies_in_full_when_named() {
    let routing = routing();
    let v1 = fixture("git-receive-v1.json");
    let table: [(&str, Value, &str); 5] = [
        ("/commit/patch", Value::Null, "patch"),
        ("/commit/date", json!(5), "date"),
        ("/commit/stats/total/additions", json!("many"), "additions"),
        ("/agent", json!(["jdoe"]), "agent must be a string"),
        ("/commit/repo", json!(7), "commit.repo must be a string"),
    ];
    for (pointer, value, expected) in table {
        let mut body = body_of(&v1);
        *body.pointer_mut(pointer).unwrap() = value;
        let reason = refusal(decide_fixture(&with_body(v1.clone(), &body), &routing));
        assert!(reason.contains(expected), "{pointer}: {reason}");
    }
    // Missing fields the schema requires: refused under the CommitV1 header, tolerated
    // without it (legacy hooks do not send them).
    let mut body = body_of(&v1);
    for field in ["patch", "date", "url"] {
        body["commit"].as_object_mut().unwrap().remove(field);
    }
    let reason = refusal(decide_fixture(&with_body(v1.clone(), &body), &routing));
    assert!(
        reason.contains("fedora_messaging_git_hook.commit.v1"),
        "{reason}"
    );
    let mut headerless = with_body(v1, &body);
    headerless.headers.clear();
    assert!(matches!(
        decide_fixture(&headerless, &routing),
        Decision::Enqueue(_)
    ));
}

#[test]
fn a_commit_v1_push_read_straight_is_what_the_general_path_reads() {
    let v1 = body_of(&fixture("git-receive-v1.json"));
    let mut variants = vec![v1.clone()];
    let mut no_namespace = v1.clone();
    no_namespace["commit"]["namespace"] = Value::Null;
    variants.push(no_namespace);
    let mut upper = v1.clone();
    upper["commit"]["rev"] = json!(REV.to_ascii_uppercase());
    variants.push(upper);
    let mut extra = v1.clone();
    extra["commit"]["colour"] = json!("blue");
    variants.push(extra);
    for body in variants {
        let text = body.to_string();
        let general = parse_push(body.as_object().unwrap(), true).unwrap();
        assert_eq!(commit_v1_push(&text), Some(general.0), "{text}");
        assert_eq!(general.1, None);
    }
    // Whatever the typed read refuses goes the general way (which says why).
    let mut bad = v1.clone();
    bad["commit"]["rev"] = json!("main");
    assert_eq!(commit_v1_push(&bad.to_string()), None);
    let duplicate = v1.to_string().replacen("{", "{\"agent\":\"x\",", 1);
    assert_eq!(commit_v1_push(&duplicate), None);
}

#[test]
fn pushes_the_routing_does_not_build_are_ignored() {
    let routing = Routing::new(&DispatcherConfig {
        repos_deny: vec!["container/forbidden".into()],
        ..DispatcherConfig::default()
    })
    .unwrap();
    let v1 = fixture("git-receive-v1.json");
    let table: [(&str, Value, IgnoreKind); 4] = [
        (
            "/commit/namespace",
            json!("rpms"),
            IgnoreKind::NamespaceNotServed,
        ),
        (
            "/commit/repo",
            json!("forbidden"),
            IgnoreKind::RepoNotAllowed,
        ),
        (
            "/commit/branch",
            json!("private-jdoe"),
            IgnoreKind::BranchNotAutomatic,
        ),
        // Not our namespace: a branch name we would refuse is none of our business.
        (
            "/commit/namespace",
            json!("rpms"),
            IgnoreKind::NamespaceNotServed,
        ),
    ];
    for (index, (pointer, value, kind)) in table.into_iter().enumerate() {
        let mut body = body_of(&v1);
        *body.pointer_mut(pointer).unwrap() = value;
        if index == 3 {
            body["commit"]["branch"] = json!("feature/x");
        }
        let decision = decide_fixture(&with_body(v1.clone(), &body), &routing);
        let ignored = ignored(decision);
        assert_eq!(ignored.kind, kind, "{pointer}: {}", ignored.detail);
        assert!(!ignored.detail.is_empty());
    }
}

#[test]
fn names_in_served_namespaces_must_be_plain() {
    let routing = routing();
    let v1 = fixture("git-receive-v1.json");
    let table = [
        ("/commit/branch", "feature/x", "commit.branch"),
        ("/commit/repo", "a b", "commit.repo"),
        ("/agent", "$(id)", "agent"),
    ];
    for (pointer, value, expected) in table {
        let mut body = body_of(&v1);
        *body.pointer_mut(pointer).unwrap() = json!(value);
        let reason = refusal(decide_fixture(&with_body(v1.clone(), &body), &routing));
        assert!(reason.contains(expected), "{pointer}: {reason}");
    }
}

#[test]
fn a_push_without_namespace_takes_it_from_its_path() {
    let routing = routing();
    let mut legacy = fixture("git-receive-legacy-fedmsg.json");
    let mut body = body_of(&legacy);
    body["commit"]["namespace"] = Value::Null;
    legacy = with_body(legacy, &body);
    assert_eq!(
        plan(decide_fixture(&legacy, &routing)).job.namespace,
        "docker"
    );
    body["commit"]["path"] = json!("/srv/git/repositories/cockpit.git");
    let ignored = ignored(decide_fixture(&with_body(legacy, &body), &routing));
    assert_eq!(ignored.kind, IgnoreKind::NamespaceNotServed);
    assert_eq!(
        namespace_from_path("/srv/git/repositories/container/httpd.git/", "httpd").as_deref(),
        Some("container")
    );
}

#[test]
fn build_request_rules() {
    let routing = routing();
    let request = fixture("build-request-v1.json");
    let table: [(&str, Value, &str); 12] = [
        ("/opts/git_branch", json!("a/b"), "opts.git_branch"),
        ("/user", json!("j doe"), "user"),
        ("/target", json!("../t"), "target"),
        ("/opts/release", json!("1-2"), "no '-'"),
        (
            "/opts/yum_repourls",
            json!(["ftp://x/y.repo"]),
            "http, https or file",
        ),
        ("/opts/arch_override", json!("x86_64 ARM!"), "arch_override"),
        ("/opts/koji_parent_build", json!("a b"), "koji_parent_build"),
        ("/opts/signing_intent", json!("x/y"), "signing_intent"),
        ("/opts/compose_ids", json!([-1]), "compose_ids"),
        ("/opts/scratch", json!("yes"), "invalid type"),
        (
            "/src",
            json!(format!(
                "https://src.fedoraproject.org/container/httpd.git#{}",
                "f".repeat(39)
            )),
            "not a commit id",
        ),
        (
            "/src",
            json!(format!("https://src.fedoraproject.org/httpd.git#{REV}")),
            "<namespace>",
        ),
    ];
    for (pointer, value, expected) in table {
        let mut body = body_of(&request);
        *body.pointer_mut(pointer).unwrap() = value;
        let decision = decide_fixture(&with_body(request.clone(), &body), &routing);
        assert_eq!(decision.request_id(), Some("req-2f1c"), "{pointer}");
        let reason = refusal(decision);
        assert!(reason.contains(expected), "{pointer}: {reason}");
        assert!(reason.starts_with("osbs.build.request refused"), "{reason}");
    }
    let mut body = body_of(&request);
    body["surprise"] = json!(1);
    let reason = refusal(decide_fixture(&with_body(request.clone(), &body), &routing));
    assert!(reason.contains("unknown field `surprise`"), "{reason}");

    let mut body = body_of(&request);
    body["opts"]["isolated"] = json!(true);
    body["opts"]["release"] = json!("1.2");
    let isolated = plan(decide_fixture(&with_body(request.clone(), &body), &routing));
    let options = isolated.job.options.unwrap();
    assert!(options.isolated);
    assert_eq!(options.release, "1.2");

    // arch_override: scratch builds only (koji-containerbuild's rule and words).
    let table: [(Value, Value, Option<&str>); 3] = [
        (json!(true), json!(false), None),
        (
            json!(false),
            json!(false),
            Some("arch_override is only allowed for scratch builds"),
        ),
        (
            json!(false),
            json!(true),
            Some("arch_override is only allowed for scratch builds"),
        ),
    ];
    for (scratch, isolated, refused) in table {
        let mut body = body_of(&request);
        body["opts"]["scratch"] = scratch.clone();
        body["opts"]["isolated"] = isolated.clone();
        if isolated == json!(true) {
            body["opts"]["release"] = json!("1.2");
        }
        body["opts"]["arch_override"] = json!("x86_64 aarch64");
        let decision = decide_fixture(&with_body(request.clone(), &body), &routing);
        match refused {
            None => {
                let options = plan(decision).job.options.unwrap();
                assert_eq!(options.arch_override, vec!["x86_64", "aarch64"]);
            }
            Some(expected) => {
                let reason = refusal(decision);
                assert!(reason.contains(expected), "{scratch} {isolated}: {reason}");
            }
        }
    }

    let mut body = body_of(&request);
    body["src"] = json!(format!("https://src.fedoraproject.org/rpms/bash.git#{REV}"));
    let ignored = ignored(decide_fixture(&with_body(request, &body), &routing));
    assert_eq!(ignored.kind, IgnoreKind::NamespaceNotServed);
    assert_eq!(ignored.request_id.as_deref(), Some("req-2f1c"));
}

#[test]
fn an_unreadable_request_id_is_not_echoed() {
    let routing = routing();
    let request = fixture("build-request-v1.json");
    let mut body = body_of(&request);
    body["request_id"] = json!("../../x");
    let decision = decide_fixture(&with_body(request, &body), &routing);
    assert_eq!(decision.request_id(), None);
    assert!(refusal(decision).contains("request_id"));
}

fn request_for_push(push: &Plan, edit: impl FnOnce(&mut Value)) -> Plan {
    let mut body = json!({
        "user": "rel-eng",
        "src": format!("https://src.fedoraproject.org/{}/{}.git#{}", push.job.namespace, push.job.repo, push.job.commit),
        "target": push.job.target.as_ref().unwrap().name,
        "opts": {"git_branch": push.job.branch, "scratch": false, "isolated": false, "release": null, "yum_repourls": null},
    });
    edit(&mut body);
    plan(decide_fixture(
        &with_body(fixture("build-request-v1.json"), &body),
        &routing(),
    ))
}

#[test]
fn the_same_commit_target_and_options_share_one_key() {
    let routing = routing();
    let push = plan(decide_fixture(&fixture("git-receive-v1.json"), &routing));
    // The same push again with another message id, later, by someone else.
    let mut again = fixture("git-receive-v1.json");
    again.message_id = Some("other".into());
    let mut body = body_of(&again);
    body["agent"] = json!("someone");
    let again = plan(decide(
        &Incoming {
            routing_key: &again.routing_key,
            content_encoding: None,
            message_id: again.message_id.as_deref(),
            headers: &again.headers,
            body: &serde_json::to_vec(&body).unwrap(),
        },
        &routing,
        NOW + 60_000,
    ));
    assert_eq!(again.idempotency_key, push.idempotency_key);
    // An explicit request with no options: the same build as the push.
    assert_eq!(
        request_for_push(&push, |_| {}).idempotency_key,
        push.idempotency_key
    );
    // Anything that changes the build changes the key.
    type Edit = fn(&mut Value);
    let different: [(&str, Edit); 5] = [
        ("scratch", |b| b["opts"]["scratch"] = json!(true)),
        ("target", |b| b["target"] = json!("f42-container-candidate")),
        ("yum repos", |b| {
            b["opts"]["yum_repourls"] = json!(["https://r.example.com/x.repo"])
        }),
        ("commit", |b| {
            b["src"] = json!(format!(
                "https://src.fedoraproject.org/container/httpd.git#{}",
                "b".repeat(40)
            ))
        }),
        ("repository", |b| {
            b["src"] = json!(format!(
                "https://src.fedoraproject.org/container/nginx.git#{REV}"
            ))
        }),
    ];
    for (what, edit) in different {
        assert_ne!(
            request_for_push(&push, edit).idempotency_key,
            push.idempotency_key,
            "{what}"
        );
    }
}

#[test]
fn requests_outrank_pushes() {
    assert_eq!(priority(Trigger::Request), MAX_PRIORITY);
    assert_eq!(priority(Trigger::Push), 0);
}

#[test]
fn lag_from_sent_at() {
    let mut headers = Map::new();
    assert_eq!(lag_seconds(&headers, NOW), None);
    headers.insert("sent-at".into(), json!("2025-01-15T10:22:03+00:00"));
    let lag = lag_seconds(&headers, 1_736_936_523_000 + 1_500).unwrap();
    assert!((lag - 1.5).abs() < 1e-9, "{lag}");
    headers.insert("sent-at".into(), json!("2025-01-15T11:22:03.250+01:00"));
    let lag = lag_seconds(&headers, 1_736_936_523_500).unwrap();
    assert!((lag - 0.25).abs() < 1e-9, "{lag}");
    headers.insert("sent-at".into(), json!("yesterday"));
    assert_eq!(lag_seconds(&headers, NOW), None);
}
