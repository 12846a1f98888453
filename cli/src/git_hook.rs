//! `osbs git-hook`: the dist-git post-receive hook. One `git.receive` message per new commit
//! of each pushed branch, oldest first, in fedora-messaging's CommitV1 format
//! (`fedora_messaging_git_hook.commit.v1`), each published with a confirm.

use crate::config::Config;
use crate::error::{CliError, Result};
use crate::fedmsg::{FedoraMessage, new_message_id};
use crate::git::{Git, RefUpdate, RepoName, Stats, parse_numstat, parse_ref_updates, repo_name};
use osbs_proto::names;
use serde_json::{Map, Value, json};
use std::io::Read;

/// The schema package fedora-messaging names in its headers.
const SCHEMA_PACKAGE: &str = "fedora_messaging_git_hook_messages";
/// Patches above this are cut: the dispatcher never reads them, and multi-megabyte messages
/// slow every consumer of `amq.topic`.
const MAX_PATCH_BYTES: usize = 512 * 1024;

/// What `git show` says of one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub rev: String,
    pub name: String,
    pub email: String,
    pub summary: String,
    pub message: String,
    /// Author date, ISO-8601 with offset.
    pub date: String,
    pub stats: Stats,
    pub patch: String,
}

/// The push around the commits: who, where, which branch.
#[derive(Debug, Clone)]
pub struct Push<'a> {
    pub agent: &'a str,
    /// The bare repository's absolute path.
    pub path: &'a str,
    pub name: &'a RepoName,
    pub branch: &'a str,
    pub git_web_url: &'a str,
    pub topic_prefix: &'a str,
}

/// The `git.receive` message of one commit.
pub fn commit_message(
    push: &Push<'_>,
    commit: &CommitInfo,
    sent_at_ms: i64,
    message_id: String,
) -> FedoraMessage {
    let mut files = Map::new();
    for (path, additions, deletions) in &commit.stats.files {
        files.insert(
            path.clone(),
            json!({"additions": additions, "deletions": deletions, "lines": additions + deletions}),
        );
    }
    let (additions, deletions) = (
        commit.stats.total_additions(),
        commit.stats.total_deletions(),
    );
    let web_base = push.git_web_url.trim_end_matches('/');
    let project = match &push.name.namespace {
        Some(namespace) => format!("{namespace}/{}", push.name.repo),
        None => push.name.repo.clone(),
    };
    let body = json!({
        "agent": push.agent,
        "commit": {
            "name": commit.name,
            "email": commit.email,
            "username": push.agent,
            "summary": commit.summary,
            "message": commit.message,
            "stats": {
                "files": files,
                "total": {
                    "additions": additions,
                    "deletions": deletions,
                    "lines": additions + deletions,
                    "files": commit.stats.files.len(),
                },
            },
            "rev": commit.rev,
            "path": format!("{}/", push.path.trim_end_matches('/')),
            "repo": push.name.repo,
            "namespace": push.name.namespace,
            "branch": push.branch,
            "patch": commit.patch,
            "date": commit.date,
            "url": format!("{web_base}/{project}/c/{}?branch={}", commit.rev, push.branch),
            "seen": false,
        },
    });
    let mut message = FedoraMessage::new(
        format!("{}.{}", push.topic_prefix, names::TOPIC_GIT_RECEIVE),
        names::SCHEMA_GIT_RECEIVE,
        message_id,
        sent_at_ms,
        body,
    )
    .with_filter("user", push.agent);
    message.headers.insert(
        "fedora_messaging_schema_package".into(),
        json!(SCHEMA_PACKAGE),
    );
    let kind = match push.name.namespace.as_deref() {
        Some("container" | "docker") => Some("container"),
        Some("rpms") => Some("rpm"),
        Some("modules") => Some("module"),
        Some("flatpaks") => Some("flatpak"),
        _ => None,
    };
    match kind {
        Some(kind) => message.with_filter(kind, &push.name.repo),
        None => message,
    }
}

/// The pushing user: gitolite's `GL_USER`, then `REMOTE_USER` (git over http), then the
/// configured or login user.
pub fn agent(env: impl Fn(&str) -> Option<String>, fallback: String) -> String {
    ["GL_USER", "REMOTE_USER"]
        .into_iter()
        .filter_map(env)
        .map(|user| user.trim().to_owned())
        .find(|user| !user.is_empty())
        .unwrap_or(fallback)
}

/// Keeps the newest `max` revs of an oldest-first list (the dispatcher builds only a
/// branch's newest commit anyway).
pub fn newest(mut revs: Vec<String>, max: usize) -> Vec<String> {
    let skip = revs.len().saturating_sub(max.max(1));
    revs.drain(..skip);
    revs
}

/// Cuts `patch` to at most `max` bytes on a character boundary, saying so.
fn bounded_patch(patch: String, max: usize) -> String {
    if patch.len() <= max {
        return patch;
    }
    let mut cut = max;
    while !patch.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n[patch truncated at {max} bytes]\n", &patch[..cut])
}

/// The hook's connection, declaring the one queue its messages go to.
async fn connect(amqp: &osbs_common::config::AmqpConfig) -> Result<osbs_common::bus::Bus> {
    crate::context::connect_declaring(amqp, "git-hook", crate::context::Declare::EventsQueue).await
}

/// What a scoped thread returned; its panic, carried on.
fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The new commits of one ref update, oldest first.
fn new_commits(git: &Git, update: &RefUpdate) -> Result<Vec<String>> {
    let listing = if update.is_new_branch() {
        // A new branch: what no other branch already had.
        let others: Vec<String> = git
            .run(&["for-each-ref", "--format=%(refname)", "refs/heads/"])?
            .lines()
            .filter(|refname| *refname != update.refname)
            .map(|refname| format!("^{refname}"))
            .collect();
        let mut args = vec!["rev-list", "--reverse", update.new.as_str()];
        args.extend(others.iter().map(String::as_str));
        git.run(&args)?
    } else {
        git.run(&[
            "rev-list",
            "--reverse",
            &format!("{}..{}", update.old, update.new),
        ])?
    };
    Ok(listing.lines().map(str::to_owned).collect())
}

/// What `git show` says of `rev`: its three questions asked at once, since the push waits
/// for the hook (issue 13).
fn commit_info(git: &Git, rev: &str) -> Result<CommitInfo> {
    let (header, numstat, patch) = std::thread::scope(|scope| {
        let numstat = scope.spawn(|| git.run(&["show", "--numstat", "--format=", rev]));
        let patch = scope.spawn(|| git.run(&["show", "--format=", "--patch", rev]));
        let header = git.run(&[
            "show",
            "-s",
            "--format=%H%x00%an%x00%ae%x00%aI%x00%s%x00%B",
            rev,
        ]);
        (header, joined(numstat), joined(patch))
    });
    let header = header?;
    let mut fields = header.splitn(6, '\0');
    let mut next = || fields.next().unwrap_or_default().to_owned();
    let (rev, name, email, date, summary, message) =
        (next(), next(), next(), next(), next(), next());
    let message = message.trim_end_matches('\n').to_owned() + "\n";
    let stats = parse_numstat(&numstat?);
    let patch = patch?;
    Ok(CommitInfo {
        rev,
        name,
        email,
        summary,
        message,
        date,
        stats,
        patch: bounded_patch(patch, MAX_PATCH_BYTES),
    })
}

/// Reads post-receive input from stdin in the current (bare) repository and publishes.
/// Returns the messages sent.
pub async fn run(config: &Config) -> Result<Vec<FedoraMessage>> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|error| {
            CliError::Tool(format!(
                "cannot read post-receive input from stdin: {error}"
            ))
        })?;
    let updates = parse_ref_updates(&input)?;
    // The broker connection (a TCP and AMQP handshake, then the topology's declares: dozens
    // of round trips) is started before the git commands below and awaited after them, so
    // that a push waits for the longer of the two rather than both (issue 13).
    let connecting = updates
        .iter()
        .any(|update| update.branch().is_some())
        .then(|| {
            let amqp = config.amqp.clone();
            tokio::spawn(async move { connect(&amqp).await })
        });
    let git = Git::new(".");
    // The repository's path and the commits are asked at once.
    let (path, planned) = std::thread::scope(|scope| {
        let path = scope.spawn(|| git.run(&["rev-parse", "--absolute-git-dir"]));
        let planned = planned_commits(&git, &updates, config.cli.git_hook_max_commits);
        (joined(path), planned)
    });
    let path = path?.trim().to_owned();
    let name = repo_name(&path, &config.cli.git_namespaces).ok_or_else(|| {
        CliError::Refused(format!(
            "cannot tell the repository name from {path}: run the hook in a bare repository named <namespace>/<repo>.git"
        ))
    })?;
    let agent = agent(|name| std::env::var(name).ok(), config.cli.user());
    let planned = planned?;
    if planned.is_empty() {
        if let Some(connecting) = connecting {
            connecting.abort();
        }
        return Ok(Vec::new());
    }
    let bus = match connecting {
        Some(connecting) => connecting.await.map_err(|error| {
            CliError::Tool(format!("connecting to RabbitMQ stopped: {error}"))
        })??,
        None => connect(&config.amqp).await?,
    };
    let mut sent = Vec::new();
    for (branch, commit) in planned {
        let push = Push {
            agent: &agent,
            path: &path,
            name: &name,
            branch: &branch,
            git_web_url: &config.cli.git_web_url,
            topic_prefix: &config.amqp.topic_prefix,
        };
        let message = commit_message(
            &push,
            &commit,
            osbs_common::telemetry::now_ms(),
            new_message_id(),
        );
        message.publish(&bus).await?;
        sent.push(message);
    }
    bus.close().await;
    Ok(sent)
}

/// The branch and `git show` of each commit to announce, oldest first.
fn planned_commits(
    git: &Git,
    updates: &[RefUpdate],
    max_commits: usize,
) -> Result<Vec<(String, CommitInfo)>> {
    let mut planned = Vec::new();
    for update in updates {
        let Some(branch) = update.branch() else {
            continue;
        };
        for rev in newest(new_commits(git, update)?, max_commits) {
            planned.push((branch.to_owned(), commit_info(git, &rev)?));
        }
    }
    Ok(planned)
}

/// `osbs git-hook` options.
#[derive(Debug, Clone, clap::Args)]
pub struct GitHookArgs {}

/// Runs the hook and says what it sent (on stdout, which git shows the pusher).
pub async fn run_verb(context: &crate::context::Context, _args: &GitHookArgs) -> Result<()> {
    let sent = run(&context.config).await?;
    if context.json {
        let values: Vec<_> = sent.iter().map(FedoraMessage::to_json).collect();
        return context.print_json(&Value::Array(values));
    }
    let mut text = String::new();
    for message in &sent {
        let commit = &message.body["commit"];
        text.push_str(&format!(
            "osbs: announced {} {} on {}\n",
            commit["repo"].as_str().unwrap_or_default(),
            commit["rev"].as_str().unwrap_or_default(),
            commit["branch"].as_str().unwrap_or_default(),
        ));
    }
    crate::context::print_stdout(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Value {
        let path = osbs_testkit::event_fixtures_dir().join("git-receive-v1.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn same_shape_as_the_fedora_messaging_fixture() {
        let expected = fixture();
        let commit = &expected["body"]["commit"];
        let text = |key: &str| commit[key].as_str().unwrap().to_owned();
        let name = RepoName {
            namespace: Some("container".into()),
            repo: "httpd".into(),
        };
        let push = Push {
            agent: "jdoe",
            path: "/srv/git/repositories/container/httpd.git",
            name: &name,
            branch: "f41",
            git_web_url: "https://src.fedoraproject.org/",
            topic_prefix: "org.fedoraproject.prod",
        };
        let info = CommitInfo {
            rev: text("rev"),
            name: text("name"),
            email: text("email"),
            summary: text("summary"),
            message: text("message"),
            date: text("date"),
            stats: Stats {
                files: vec![("Dockerfile".into(), 1, 1)],
            },
            patch: text("patch"),
        };
        let message = commit_message(&push, &info, 1_736_936_523_000, text("rev"));
        let actual = message.to_json();
        assert_eq!(actual["body"], expected["body"]);
        // And the dispatcher reads it as the schema it consumes.
        let parsed: osbs_proto::events::CommitV1Body =
            serde_json::from_value(message.body.clone()).unwrap();
        assert_eq!(parsed.commit.rev, text("rev"));
        assert_eq!(actual["routing_key"], expected["routing_key"]);
        assert_eq!(actual["exchange"], expected["exchange"]);
        for (key, value) in expected["headers"].as_object().unwrap() {
            if key == "sent-at" {
                assert!(
                    actual["headers"][key]
                        .as_str()
                        .unwrap()
                        .starts_with("2025-01-15T10:22:03")
                );
            } else {
                assert_eq!(&actual["headers"][key], value, "header {key}");
            }
        }
        for (key, value) in expected["properties"].as_object().unwrap() {
            if key != "message_id" {
                assert_eq!(&actual["properties"][key], value, "property {key}");
            }
        }
    }

    #[test]
    fn no_namespace_no_container_header() {
        let name = RepoName {
            namespace: None,
            repo: "tool".into(),
        };
        let push = Push {
            agent: "a",
            path: "/srv/tool.git/",
            name: &name,
            branch: "main",
            git_web_url: "https://git.example.com",
            topic_prefix: "org.example",
        };
        let info = CommitInfo {
            rev: "c".repeat(40),
            name: "A".into(),
            email: "a@example.com".into(),
            summary: "s".into(),
            message: "s\n".into(),
            date: "2025-01-01T00:00:00+00:00".into(),
            stats: Stats::default(),
            patch: String::new(),
        };
        let message = commit_message(&push, &info, 0, "m".into());
        assert_eq!(message.body["commit"]["namespace"], Value::Null);
        assert_eq!(message.body["commit"]["path"], "/srv/tool.git/");
        assert_eq!(
            message.body["commit"]["url"],
            format!(
                "https://git.example.com/tool/c/{}?branch=main",
                "c".repeat(40)
            )
        );
        assert!(
            !message
                .headers
                .keys()
                .any(|key| key.starts_with("fedora_messaging_container"))
        );
    }

    #[test]
    fn agent_and_truncation_rules() {
        let env = |name: &str| (name == "REMOTE_USER").then(|| "web".to_owned());
        assert_eq!(agent(env, "login".into()), "web");
        assert_eq!(agent(|_| None, "login".into()), "login");
        let revs: Vec<String> = (1..=5).map(|n| n.to_string()).collect();
        assert_eq!(newest(revs.clone(), 2), ["4", "5"]);
        assert_eq!(newest(revs, 10).len(), 5);
        assert_eq!(
            bounded_patch("ééé".into(), 3),
            "é\n[patch truncated at 3 bytes]\n"
        );
        assert_eq!(bounded_patch("ab".into(), 3), "ab");
    }
}
