//! Event → decision, as a pure function: the bytes, headers and properties of one
//! fedora-messaging event, the routing configuration and `now` go in; out comes
//! [`Decision::Enqueue`] (a job to record and publish), [`Decision::Ignore`] (acked, counted:
//! not ours) or [`Decision::Refuse`] (dead-lettered with the reason). No I/O here.
//!
//! What is refused follows fedora-messaging's consumer (bad UTF-8, invalid JSON, header or body
//! schema violations; a missing `content_encoding` means UTF-8, missing headers are fine) and
//! DESIGN.md's rules (names, commit ids, options, allowed dist-git hosts). What is ignored is
//! what the routing configuration does not build: other namespaces, repositories denied or not
//! allowed, branches that do not build automatically.

use crate::config::Routing;
use crate::rules;
use osbs_common::bus::MAX_PRIORITY;
use osbs_proto::events::{BuildRequest, CommitV1Body, LegacyBody};
use osbs_proto::names;
use osbs_proto::v1::{BuildJob, BuildOptions, Trigger};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One event as it came off the queue.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub routing_key: &'a str,
    pub content_encoding: Option<&'a str>,
    pub message_id: Option<&'a str>,
    /// AMQP headers as JSON values.
    pub headers: &'a Map<String, Value>,
    pub body: &'a [u8],
}

/// Which of the two events this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `git.receive`: a dist-git push.
    Push,
    /// `osbs.build.request`: an explicit request.
    Request,
}

impl EventKind {
    pub fn topic(self) -> &'static str {
        match self {
            EventKind::Push => names::TOPIC_GIT_RECEIVE,
            EventKind::Request => names::TOPIC_BUILD_REQUEST,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Boxed: a plan is large and most events are not jobs in a burst of refusals.
    Enqueue(Box<Plan>),
    Ignore(Ignored),
    Refuse(Refused),
}

impl Decision {
    /// The `request_id` of an explicit request, whatever became of it.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Decision::Enqueue(plan) => plan.request_id.as_deref(),
            Decision::Ignore(ignored) => ignored.request_id.as_deref(),
            Decision::Refuse(refused) => refused.request_id.as_deref(),
        }
    }
}

/// A build to record and enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The job, without its `build_id` (given when the record is created).
    pub job: BuildJob,
    /// AMQP priority on `osbs.jobs`: [`MAX_PRIORITY`] for requests, 0 for pushes.
    pub priority: u8,
    /// De-duplication key: the same (repository, commit, target, options) → the same build.
    pub idempotency_key: String,
    /// Events with the same lane are handled one after the other, in queue order
    /// (`<namespace>/<repo>` + branch); different lanes run concurrently.
    pub lane: String,
    /// Pushes only: a queued build with the same key is superseded by a newer push.
    pub coalesce_key: Option<String>,
    /// Explicit requests only: a build for the same key that ended failed, canceled or
    /// superseded is built again rather than named as the answer.
    pub rebuild_unsuccessful: bool,
    /// Pushes resolved to their branch's tip ([`crate::tip::tip_plan`]): a build for the same
    /// key that was superseded is built again (the branch came back to that commit).
    pub rebuild_superseded: bool,
    pub request_id: Option<String>,
}

/// Why an event was acked without a build. Labels are the `reason` of the `ignored` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreKind {
    UnknownTopic,
    NamespaceNotServed,
    RepoNotAllowed,
    BranchNotAutomatic,
}

impl IgnoreKind {
    pub fn label(self) -> &'static str {
        match self {
            IgnoreKind::UnknownTopic => "unknown_topic",
            IgnoreKind::NamespaceNotServed => "namespace_not_served",
            IgnoreKind::RepoNotAllowed => "repo_not_allowed",
            IgnoreKind::BranchNotAutomatic => "branch_not_automatic",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub kind: IgnoreKind,
    pub detail: String,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// One line: what is wrong, on which field, and what to do.
    pub reason: String,
    pub request_id: Option<String>,
}

fn refuse(kind: Option<EventKind>, reason: impl std::fmt::Display) -> Decision {
    refuse_request(kind, reason, None)
}

fn refuse_request(
    kind: Option<EventKind>,
    reason: impl std::fmt::Display,
    request_id: Option<String>,
) -> Decision {
    let topic = kind.map_or("event", EventKind::topic);
    Decision::Refuse(Refused {
        reason: format!("{topic} refused: {reason}"),
        request_id,
    })
}

fn ignore(kind: IgnoreKind, detail: String, request_id: Option<String>) -> Decision {
    Decision::Ignore(Ignored {
        kind,
        detail,
        request_id,
    })
}

/// Decides what to do with one event. `now_ms` stamps the job.
pub fn decide(incoming: &Incoming<'_>, routing: &Routing, now_ms: i64) -> Decision {
    let schema = incoming
        .headers
        .get("fedora_messaging_schema")
        .and_then(Value::as_str);
    let kind = match event_kind(incoming.routing_key, schema) {
        Ok(kind) => kind,
        Err(decision) => return decision,
    };
    if let Err(reason) = check_headers(incoming.headers) {
        return refuse(Some(kind), reason);
    }
    let text = match decode_body(incoming.body, incoming.content_encoding) {
        Ok(text) => text,
        Err(reason) => return refuse(Some(kind), reason),
    };
    // The common event first: a push that names its CommitV1 schema, read straight into
    // that type (no JSON tree, no copy of it for the schema check). One that does not read
    // cleanly takes the general path below, which says what is wrong with it.
    if kind == EventKind::Push
        && schema == Some(names::SCHEMA_GIT_RECEIVE)
        && let Some(push) = commit_v1_push(text)
    {
        return plan_push(push, None, event_id_of(incoming), routing, now_ms);
    }
    let body = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(body)) => body,
        Ok(other) => {
            return refuse(
                Some(kind),
                format!("the body must be a JSON object, not {}", json_type(&other)),
            );
        }
        Err(error) => return refuse(Some(kind), format!("the body is not valid JSON: {error}")),
    };
    let event_id = event_id_of(incoming);
    match kind {
        EventKind::Push => decide_push(
            &body,
            schema == Some(names::SCHEMA_GIT_RECEIVE),
            event_id,
            routing,
            now_ms,
        ),
        EventKind::Request => decide_request(&body, event_id, routing, now_ms),
    }
}

fn event_id_of<'a>(incoming: &Incoming<'a>) -> &'a str {
    incoming.message_id.unwrap_or_default()
}

/// The event kind from the routing key's topic, cross-checked with the schema header.
fn event_kind(routing_key: &str, schema: Option<&str>) -> Result<EventKind, Decision> {
    let is_topic = |topic: &str| {
        routing_key == topic
            || routing_key
                .strip_suffix(topic)
                .is_some_and(|prefix| prefix.ends_with('.'))
    };
    let by_topic = if is_topic(names::TOPIC_GIT_RECEIVE) {
        Some(EventKind::Push)
    } else if is_topic(names::TOPIC_BUILD_REQUEST) {
        Some(EventKind::Request)
    } else {
        None
    };
    let by_schema = match schema {
        Some(names::SCHEMA_GIT_RECEIVE) => Some(EventKind::Push),
        Some(names::SCHEMA_BUILD_REQUEST) => Some(EventKind::Request),
        // No header, `base.message`, or a schema we do not know: the topic decides, as
        // fedora-messaging falls back to its base Message class.
        _ => None,
    };
    match (by_topic, by_schema) {
        (Some(topic), Some(schema_kind)) if topic != schema_kind => Err(refuse(
            Some(topic),
            format!(
                "schema header {:?} does not belong to topic {routing_key:?}: publish it with its own topic",
                schema.unwrap_or_default()
            ),
        )),
        (Some(kind), _) | (None, Some(kind)) => Ok(kind),
        (None, None) => Err(ignore(
            IgnoreKind::UnknownTopic,
            format!("routing key {routing_key:?} is neither git.receive nor osbs.build.request"),
            None,
        )),
    }
}

/// fedora-messaging's header schema: the types of the headers it defines, when present.
fn check_headers(headers: &Map<String, Value>) -> Result<(), String> {
    if let Some(severity) = headers.get("fedora_messaging_severity") {
        let valid = severity
            .as_f64()
            .is_some_and(|value| [10.0, 20.0, 30.0, 40.0].contains(&value));
        if !valid {
            return Err(format!(
                "header fedora_messaging_severity {severity} is not one of 10, 20, 30, 40"
            ));
        }
    }
    for name in [
        "fedora_messaging_schema",
        "fedora_messaging_schema_package",
        "sent-at",
    ] {
        if let Some(value) = headers.get(name)
            && !value.is_string()
        {
            return Err(format!("header {name} must be a string, not {value}"));
        }
    }
    Ok(())
}

/// The body as text: UTF-8 unless `content_encoding` says otherwise (JSON travels as UTF-8;
/// ASCII is a subset).
fn decode_body<'a>(body: &'a [u8], content_encoding: Option<&str>) -> Result<&'a str, String> {
    let encoding = content_encoding.unwrap_or("utf-8").to_ascii_lowercase();
    match encoding.as_str() {
        "utf-8" | "utf8" => {}
        "ascii" | "us-ascii" if body.is_ascii() => {}
        "ascii" | "us-ascii" => {
            return Err("the body is not ASCII as its content_encoding says".into());
        }
        other => {
            return Err(format!(
                "content_encoding {other:?} is not supported: publish the JSON body as utf-8"
            ));
        }
    }
    std::str::from_utf8(body).map_err(|error| {
        format!(
            "the body is not valid UTF-8 (at byte {}): publish it as utf-8",
            error.valid_up_to()
        )
    })
}

/// Deserializes `value`, naming the offending field in the error (`commit.patch: invalid
/// type: null, expected a string`).
fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        if path == "." {
            error.inner().to_string()
        } else {
            format!("{path}: {}", error.inner())
        }
    })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the dispatcher needs from a push, whatever its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Push {
    agent: String,
    repo: String,
    namespace: Option<String>,
    branch: String,
    rev: String,
    path: Option<String>,
}

/// Reads a push in either shape: its identity (or the problems that make it unreadable), and
/// whether the body breaks its schema. `strict`: the schema header names CommitV1, whose JSON
/// schema then applies in full; otherwise (no header: legacy fedmsg, or a publisher without
/// the schema package) only the commit's identity is required and the rest type-checked.
fn parse_push(
    body: &Map<String, Value>,
    strict: bool,
) -> Result<(Push, Option<String>), Vec<String>> {
    let commit = match body.get("commit") {
        Some(Value::Object(commit)) => commit,
        Some(other) => {
            return Err(vec![format!(
                "commit must be an object, not {}",
                json_type(other)
            )]);
        }
        None => {
            return Err(vec![
                "the body has no commit: it is not a dist-git push".into(),
            ]);
        }
    };
    let mut problems = Vec::new();
    let mut text = |object: &Map<String, Value>, path: &str, name: &str, required: bool| {
        match object.get(name) {
            Some(Value::String(value)) => Some(value.clone()),
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                problems.push(format!("{path}{name} is missing"));
                None
            }
            Some(other) => {
                problems.push(format!(
                    "{path}{name} must be a string, not {}",
                    json_type(other)
                ));
                None
            }
        }
    };
    let rev = text(commit, "commit.", "rev", true);
    let repo = text(commit, "commit.", "repo", true);
    let branch = text(commit, "commit.", "branch", true);
    let namespace = text(commit, "commit.", "namespace", false);
    let path = text(commit, "commit.", "path", false);
    let agent = text(body, "", "agent", false)
        .or_else(|| text(commit, "commit.", "agent", false))
        .or_else(|| text(commit, "commit.", "username", false));
    let rev = rev.and_then(|rev| {
        rules::commit_id("commit.rev", &rev)
            .map_err(|error| problems.push(error))
            .ok()
    });
    if agent.is_none() && problems.is_empty() {
        problems.push("no agent (neither agent, commit.agent nor commit.username)".into());
    }
    let (Some(rev), Some(repo), Some(branch), Some(agent), true) =
        (rev, repo, branch, agent, problems.is_empty())
    else {
        return Err(problems);
    };
    let value = Value::Object(body.clone());
    let schema_problem = if strict {
        from_json::<CommitV1Body>(value).err().map(|error| {
            format!(
                "the body does not match schema {}: {error}",
                names::SCHEMA_GIT_RECEIVE
            )
        })
    } else {
        from_json::<LegacyBody>(value)
            .err()
            .map(|error| format!("the body is not a dist-git push: {error}"))
    };
    Ok((
        Push {
            agent,
            repo,
            namespace,
            branch,
            rev,
            path,
        },
        schema_problem,
    ))
}

/// A push whose body reads as a CommitV1 in full, with a valid commit id: what
/// [`parse_push`] finds in it, in strict mode, without a problem. `None` for anything else
/// (the general path then says what is wrong).
fn commit_v1_push(text: &str) -> Option<Push> {
    let CommitV1Body { agent, commit } = serde_json::from_str(text).ok()?;
    let rev = rules::commit_id("commit.rev", &commit.rev).ok()?;
    Some(Push {
        agent,
        repo: commit.repo,
        namespace: commit.namespace,
        branch: commit.branch,
        rev,
        path: Some(commit.path),
    })
}

/// The namespace of a repository without one in the event, from its path on the dist-git
/// host (`/srv/git/repositories/<namespace>/<repo>.git`).
fn namespace_from_path(path: &str, repo: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    let position = segments
        .iter()
        .position(|part| *part == format!("{repo}.git") || *part == repo)?;
    position
        .checked_sub(1)
        .map(|index| segments[index].to_owned())
        .filter(|namespace| namespace != "repositories")
}

fn decide_push(
    body: &Map<String, Value>,
    strict: bool,
    event_id: &str,
    routing: &Routing,
    now_ms: i64,
) -> Decision {
    match parse_push(body, strict) {
        Ok((push, schema_problem)) => plan_push(push, schema_problem, event_id, routing, now_ms),
        Err(problems) => refuse(Some(EventKind::Push), problems.join("; ")),
    }
}

/// What to do with a readable push; `schema_problem`: how its body breaks its schema.
fn plan_push(
    push: Push,
    schema_problem: Option<String>,
    event_id: &str,
    routing: &Routing,
    now_ms: i64,
) -> Decision {
    let kind = Some(EventKind::Push);
    let namespace = push.namespace.clone().or_else(|| {
        push.path
            .as_deref()
            .and_then(|path| namespace_from_path(path, &push.repo))
    });
    if let Some(problem) = &schema_problem
        && !namespace
            .as_deref()
            .is_some_and(|namespace| routing.serves_namespace(namespace))
    {
        return refuse(kind, problem);
    }
    let Some(namespace) = namespace else {
        return ignore(
            IgnoreKind::NamespaceNotServed,
            format!("{} has no namespace", push.repo),
            None,
        );
    };
    if !routing.serves_namespace(&namespace) {
        return ignore(
            IgnoreKind::NamespaceNotServed,
            format!("namespace {namespace:?} is not one of [dispatcher] namespaces"),
            None,
        );
    }
    let checks = [
        rules::plain_name("commit.repo", &push.repo),
        rules::plain_name("commit.branch", &push.branch),
        rules::plain_name("agent", &push.agent),
    ];
    // Our rules first: they say more precisely what is wrong than the schema does.
    let problems: Vec<String> = checks
        .into_iter()
        .filter_map(Result::err)
        .chain(schema_problem)
        .collect();
    if !problems.is_empty() {
        return refuse(kind, problems.join("; "));
    }
    if !routing.repo_allowed(&namespace, &push.repo) {
        return ignore(
            IgnoreKind::RepoNotAllowed,
            format!(
                "{namespace}/{} is not allowed by repos_allow/repos_deny",
                push.repo
            ),
            None,
        );
    }
    if !routing.branch_builds_automatically(&push.branch) {
        return ignore(
            IgnoreKind::BranchNotAutomatic,
            format!(
                "branch {:?} of {namespace}/{} does not build automatically (auto_branches)",
                push.branch, push.repo
            ),
            None,
        );
    }
    let target = routing.target_for_branch(&namespace, &push.branch);
    if let Err(problem) = rules::plain_name("target", &target) {
        return refuse(
            kind,
            format!("{problem}: fix [dispatcher] target_template or branch_targets"),
        );
    }
    let job = BuildJob {
        build_id: String::new(),
        repo: push.repo.clone(),
        namespace: namespace.clone(),
        git_url: routing.clone_url(&namespace, &push.repo),
        commit: push.rev,
        branch: push.branch.clone(),
        target: Some(routing.target(&target)),
        options: Some(BuildOptions::default()),
        trigger: Trigger::Push as i32,
        submitter: push.agent,
        requested_at_ms: now_ms,
        event_id: event_id.to_owned(),
        attempt: 1,
        ..BuildJob::default()
    };
    Decision::Enqueue(Box::new(Plan {
        priority: priority(Trigger::Push),
        idempotency_key: idempotency_key(&job),
        lane: lane(&namespace, &push.repo, &push.branch),
        coalesce_key: Some(format!(
            "{namespace}/{}:{}:{target}",
            push.repo, push.branch
        )),
        rebuild_unsuccessful: false,
        rebuild_superseded: false,
        request_id: None,
        job,
    }))
}

fn decide_request(
    body: &Map<String, Value>,
    event_id: &str,
    routing: &Routing,
    now_ms: i64,
) -> Decision {
    let kind = Some(EventKind::Request);
    // Known before the body is checked, so that a refusal can still be found by the requester.
    let request_id = body
        .get("request_id")
        .and_then(Value::as_str)
        .filter(|id| rules::plain_name("request_id", id).is_ok())
        .map(str::to_owned);
    let refused = |reason: String| refuse_request(kind, reason, request_id.clone());
    let request: BuildRequest = match from_json(Value::Object(body.clone())) {
        Ok(request) => request,
        Err(error) => {
            return refused(format!(
                "the body does not match schema {}: {error}",
                names::SCHEMA_BUILD_REQUEST
            ));
        }
    };
    let mut problems = Vec::new();
    let mut check = |result: Result<(), String>| {
        if let Err(problem) = result {
            problems.push(problem);
        }
    };
    if let Some(id) = &request.request_id {
        check(rules::plain_name("request_id", id));
    }
    check(rules::plain_name("user", &request.user));
    check(rules::plain_name("target", &request.target));
    check(rules::plain_name(
        "opts.git_branch",
        &request.opts.git_branch,
    ));
    let opts = &request.opts;
    let scratch = opts.scratch.unwrap_or(false);
    let isolated = opts.isolated.unwrap_or(false);
    if scratch && isolated {
        check(Err(
            "opts.scratch and opts.isolated exclude each other: ask for one of them".into(),
        ));
    }
    match (&opts.release, isolated) {
        (Some(release), _) => check(rules::release(release, isolated)),
        (None, true) => check(Err(
            "an isolated build needs opts.release (e.g. \"1.2\")".into()
        )),
        (None, false) => {}
    }
    for url in opts.yum_repourls.iter().flatten() {
        check(rules::repo_url(url));
    }
    let arches = opts
        .arch_override
        .as_ref()
        .map(|arches| arches.arches())
        .unwrap_or_default();
    for arch in &arches {
        check(rules::arch(arch));
    }
    check(rules::arch_override_allowed(&arches, scratch));
    if let Some(parent) = &opts.koji_parent_build {
        check(rules::nvr("opts.koji_parent_build", parent));
    }
    if let Some(intent) = &opts.signing_intent {
        check(rules::plain_name("opts.signing_intent", intent));
    }
    if opts.compose_ids.iter().flatten().any(|id| *id < 0) {
        check(Err("opts.compose_ids must be positive".into()));
    }
    let (url, fragment) = match request.src.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (request.src.as_str(), None),
    };
    let commit = match fragment {
        Some(fragment) => rules::commit_id("the commit of src", fragment)
            .map_err(|problem| problems.push(problem))
            .ok(),
        None => {
            problems.push(format!(
                "src {:?} has no commit: send <git url>#<40-hex commit>",
                request.src
            ));
            None
        }
    };
    let location = rules::split_repo_url(url, routing.allowed_git_urls())
        .map_err(|problem| problems.push(problem))
        .ok();
    let (Some(commit), Some(location), true) = (commit, location, problems.is_empty()) else {
        return refused(problems.join("; "));
    };
    if !routing.serves_namespace(&location.namespace) {
        return ignore(
            IgnoreKind::NamespaceNotServed,
            format!(
                "namespace {:?} is not one of [dispatcher] namespaces",
                location.namespace
            ),
            request_id,
        );
    }
    if !routing.repo_allowed(&location.namespace, &location.repo) {
        return ignore(
            IgnoreKind::RepoNotAllowed,
            format!(
                "{}/{} is not allowed by repos_allow/repos_deny",
                location.namespace, location.repo
            ),
            request_id,
        );
    }
    let job = BuildJob {
        build_id: String::new(),
        repo: location.repo.clone(),
        namespace: location.namespace.clone(),
        git_url: url.to_owned(),
        commit,
        branch: opts.git_branch.clone(),
        target: Some(routing.target(&request.target)),
        options: Some(BuildOptions {
            scratch,
            isolated,
            release: opts.release.clone().unwrap_or_default(),
            yum_repourls: opts.yum_repourls.clone().unwrap_or_default(),
            arch_override: arches,
            koji_parent_build: opts.koji_parent_build.clone().unwrap_or_default(),
            signing_intent: opts.signing_intent.clone().unwrap_or_default(),
            compose_ids: opts.compose_ids.clone().unwrap_or_default(),
        }),
        trigger: Trigger::Request as i32,
        submitter: request.user.clone(),
        requested_at_ms: now_ms,
        event_id: event_id.to_owned(),
        attempt: 1,
        ..BuildJob::default()
    };
    Decision::Enqueue(Box::new(Plan {
        priority: priority(Trigger::Request),
        idempotency_key: idempotency_key(&job),
        lane: lane(&location.namespace, &location.repo, &opts.git_branch),
        coalesce_key: None,
        rebuild_unsuccessful: true,
        rebuild_superseded: false,
        request_id,
        job,
    }))
}

/// Explicit requests run before automatic rebuilds waiting in `osbs.jobs`.
pub fn priority(trigger: Trigger) -> u8 {
    match trigger {
        Trigger::Request => MAX_PRIORITY,
        Trigger::Push | Trigger::Unspecified => 0,
    }
}

fn lane(namespace: &str, repo: &str, branch: &str) -> String {
    format!("{namespace}/{repo}\n{branch}")
}

/// sha256 of what makes two builds the same: repository, commit, target and options. The
/// trigger, submitter, clone URL and time are left out, so that a push and an explicit request
/// for the same commit and target share a build.
pub fn idempotency_key(job: &BuildJob) -> String {
    let options = job.options.clone().unwrap_or_default();
    let target = job
        .target
        .as_ref()
        .map(|target| target.name.as_str())
        .unwrap_or_default();
    let compose_ids: Vec<String> = options.compose_ids.iter().map(i64::to_string).collect();
    // Every list item was checked to hold no whitespace: a space separates them unambiguously.
    let canonical = format!(
        "osbs-build-v1\n{}/{}\n{}\n{target}\nscratch={}\nisolated={}\nrelease={}\nyum={}\narch={}\nparent={}\nsigning={}\ncompose={}",
        job.namespace,
        job.repo,
        job.commit,
        options.scratch,
        options.isolated,
        options.release,
        options.yum_repourls.join(" "),
        options.arch_override.join(" "),
        options.koji_parent_build,
        options.signing_intent,
        compose_ids.join(" "),
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Seconds between the event's `sent-at` header and `now_ms`, when the header is readable.
pub fn lag_seconds(headers: &Map<String, Value>, now_ms: i64) -> Option<f64> {
    let sent_at = headers.get("sent-at")?.as_str()?;
    let sent = time::OffsetDateTime::parse(sent_at, &time::format_description::well_known::Rfc3339)
        .ok()?;
    let sent_ms = i64::try_from(sent.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some((now_ms - sent_ms).max(0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests;
