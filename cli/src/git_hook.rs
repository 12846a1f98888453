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
use std::path::Path;

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

/// The hook's connection, declaring the one queue its messages go to. Its frames are
/// `common::failover`'s 8 KiB default unless the URL names a size: at RabbitMQ's 128 KiB,
/// zeroing lapin's frame buffers was 40% of the hook's CPU (issue 13).
async fn connect(amqp: &osbs_common::config::AmqpConfig) -> Result<osbs_common::bus::Bus> {
    crate::context::connect_declaring(amqp, "git-hook", crate::context::Declare::EventsQueue).await
}

/// What a scoped thread returned; its panic, carried on.
fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The `git log` that says everything the messages need of one ref update's new commits,
/// oldest first, in one process (issue 13): the newest `max_commits` of them (`-n` is
/// applied before `--reverse`), each as `marker`-framed header, then its numstat, a blank
/// line and its patch. `--cc` makes a merge's numstat and patch what `git show` gives: the
/// numstat against the first parent, the dense combined patch (empty for a clean merge).
fn log_args(update: &RefUpdate, branch: &str, max_commits: usize, marker: &str) -> Vec<String> {
    let mut args: Vec<String> = ["log", "--reverse", "--root", "--cc", "--numstat", "--patch"]
        .map(str::to_owned)
        .into();
    args.push(format!("--max-count={}", max_commits.max(1)));
    args.push(format!(
        "--format=%x00{marker}%x00%H%x00%an%x00%ae%x00%aI%x00%s%x00%B%x00{marker}-end%x00"
    ));
    if update.is_new_branch() {
        // A new branch: what no other branch already had. (`--exclude` takes a branch's
        // name without `refs/heads/`; a branch's name has no glob characters.)
        args.extend([
            update.new.clone(),
            "--not".into(),
            format!("--exclude={branch}"),
            "--branches".into(),
        ]);
    } else {
        args.push(format!("{}..{}", update.old, update.new));
    }
    args.push("--".into());
    args
}

/// Reads [`log_args`]' output: one [`CommitInfo`] per commit, in the order git printed them.
/// Each part is decoded on its own, as when each was a `git show` of its own.
fn parse_log(output: &[u8], marker: &str) -> Vec<CommitInfo> {
    let start = format!("\0{marker}\0");
    let end = format!("\0{marker}-end\0");
    split_bytes(output, start.as_bytes())
        .skip(1)
        .filter_map(|commit| {
            let at = find_bytes(commit, end.as_bytes())?;
            let header = String::from_utf8_lossy(&commit[..at]);
            let diff = &commit[at + end.len()..];
            // The format's own newline, then the blank line git puts before a diff.
            let diff = diff.strip_prefix(b"\n").unwrap_or(diff);
            let diff = diff.strip_prefix(b"\n").unwrap_or(diff);
            let (numstat, patch) = if diff.starts_with(b"diff ") {
                (&diff[..0], diff)
            } else {
                match find_bytes(diff, b"\n\n") {
                    Some(blank) => (&diff[..=blank], &diff[blank + 2..]),
                    None => (diff, &diff[diff.len()..]),
                }
            };
            Some(commit_info(
                &header,
                &String::from_utf8_lossy(numstat),
                String::from_utf8_lossy(patch).into_owned(),
            ))
        })
        .collect()
}

/// A commit from its header (`%H %an %ae %aI %s %B`, NUL-separated), numstat and patch.
fn commit_info(header: &str, numstat: &str, patch: String) -> CommitInfo {
    let mut fields = header.splitn(6, '\0');
    let mut next = || fields.next().unwrap_or_default().to_owned();
    let (rev, name, email, date, summary, message) =
        (next(), next(), next(), next(), next(), next());
    let message = message.trim_end_matches('\n').to_owned() + "\n";
    CommitInfo {
        rev,
        name,
        email,
        summary,
        message,
        date,
        stats: parse_numstat(numstat),
        patch: bounded_patch(patch, MAX_PATCH_BYTES),
    }
}

/// Where `needle` first occurs in `haystack`.
fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `haystack` cut at every `needle` (the part before the first included).
fn split_bytes<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = Some(haystack);
    std::iter::from_fn(move || {
        let current = rest?;
        match find_bytes(current, needle) {
            Some(at) => {
                rest = Some(&current[at + needle.len()..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// The new commits of one branch update, oldest first, from one `git log`.
fn branch_commits(
    git: &Git,
    update: &RefUpdate,
    branch: &str,
    max_commits: usize,
) -> Result<Vec<CommitInfo>> {
    // A fresh marker per run: no commit message or patch can be made to contain it.
    let marker = format!("osbs-{}", new_message_id());
    let args = log_args(update, branch, max_commits, &marker);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(parse_log(&git.run_bytes(&args)?, &marker))
}

/// The bare repository's absolute path: `$GIT_DIR`, which git sets for its hooks, against
/// the working directory, symlinks resolved as `git rev-parse --absolute-git-dir` resolves
/// them; `None` when it is unset or names nothing.
fn git_dir_path(git_dir: Option<String>, cwd: &Path) -> Option<String> {
    let git_dir = git_dir.filter(|dir| !dir.is_empty())?;
    let path = std::fs::canonicalize(cwd.join(git_dir)).ok()?;
    path.to_str().map(str::to_owned)
}

/// The repository's absolute path: from `$GIT_DIR` without a process, else from git.
fn repository_path(git: &Git) -> Result<String> {
    let from_env = std::env::current_dir()
        .ok()
        .and_then(|cwd| git_dir_path(std::env::var("GIT_DIR").ok(), &cwd));
    match from_env {
        Some(path) => Ok(path),
        None => Ok(git
            .run(&["rev-parse", "--absolute-git-dir"])?
            .trim()
            .to_owned()),
    }
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
        let path = scope.spawn(|| repository_path(&git));
        let planned = planned_commits(&git, &updates, config.cli.git_hook_max_commits);
        (joined(path), planned)
    });
    let path = path?;
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

/// The branch and `git show` of each commit to announce, oldest first: one `git log` per
/// updated branch, all at once.
fn planned_commits(
    git: &Git,
    updates: &[RefUpdate],
    max_commits: usize,
) -> Result<Vec<(String, CommitInfo)>> {
    let branches: Vec<(&RefUpdate, &str)> = updates
        .iter()
        .filter_map(|update| Some((update, update.branch()?)))
        .collect();
    // A few at a time: a mirror's push of hundreds of branches must not start as many gits.
    let mut listed: Vec<Result<Vec<CommitInfo>>> = Vec::new();
    for group in branches.chunks(4) {
        std::thread::scope(|scope| {
            let threads: Vec<_> = group
                .iter()
                .map(|(update, branch)| {
                    scope.spawn(move || branch_commits(git, update, branch, max_commits))
                })
                .collect();
            listed.extend(threads.into_iter().map(joined));
        });
    }
    let mut planned = Vec::new();
    for ((_, branch), commits) in branches.iter().zip(listed) {
        planned.extend(
            commits?
                .into_iter()
                .map(|commit| ((*branch).to_owned(), commit)),
        );
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
mod corpus_tests;

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
        assert_eq!(
            bounded_patch("ééé".into(), 3),
            "é\n[patch truncated at 3 bytes]\n"
        );
        assert_eq!(bounded_patch("ab".into(), 3), "ab");
    }

    #[test]
    fn the_repository_path_from_git_dir() {
        let temp = tempfile::tempdir().unwrap();
        let real = temp.path().join("real/container/httpd.git");
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(temp.path().join("real"), temp.path().join("link")).unwrap();
        let link = temp.path().join("link/container/httpd.git");
        let canonical = std::fs::canonicalize(&real).unwrap();
        let canonical = canonical.to_str().unwrap();
        let cases: &[(Option<&str>, &Path, Option<&str>)] = &[
            (Some("."), &link, Some(canonical)),
            (
                Some(real.to_str().unwrap()),
                Path::new("/"),
                Some(canonical),
            ),
            (
                Some("container/httpd.git"),
                &temp.path().join("link"),
                Some(canonical),
            ),
            (Some("missing.git"), temp.path(), None),
            (Some(""), &link, None),
            (None, &link, None),
        ];
        for (git_dir, cwd, expected) in cases {
            let actual = git_dir_path(git_dir.map(str::to_owned), cwd);
            assert_eq!(
                actual.as_deref(),
                *expected,
                "{git_dir:?} in {}",
                cwd.display()
            );
        }
    }

    #[test]
    fn one_git_log_per_branch_update() {
        let zero = "0".repeat(40);
        let (old, new) = ("a".repeat(40), "b".repeat(40));
        let range = log_args(
            &RefUpdate {
                old: old.clone(),
                new: new.clone(),
                refname: "refs/heads/f41".into(),
            },
            "f41",
            100,
            "m",
        );
        assert_eq!(
            range[range.len() - 2..],
            [format!("{old}..{new}"), "--".into()]
        );
        assert!(range.contains(&"--max-count=100".to_owned()));
        let created = log_args(
            &RefUpdate {
                old: zero,
                new: new.clone(),
                refname: "refs/heads/a/b".into(),
            },
            "a/b",
            0,
            "m",
        );
        assert_eq!(
            created[created.len() - 5..],
            [
                new,
                "--not".into(),
                "--exclude=a/b".into(),
                "--branches".into(),
                "--".into()
            ]
        );
        assert!(created.contains(&"--max-count=1".to_owned()));
    }

    #[test]
    fn log_output_read_per_commit() {
        let output =
            b"\0m\0r1\0A\0a@x\0d\0s\0s\n\nbody\n\0m-end\0\n\n1\t0\tf\n\ndiff --git a/f b/f\n+x\n\
\0m\0r2\0B\0b@x\0d\0Merge\0Merge\n\0m-end\0\n\n2\t1\tg\n\
\0m\0r3\0C\0c@x\0d\0\0\0m-end\0\n";
        let commits = parse_log(output, "m");
        let summary: Vec<_> = commits
            .iter()
            .map(|c| {
                (
                    c.rev.as_str(),
                    c.message.as_str(),
                    c.stats.files.len(),
                    c.patch.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("r1", "s\n\nbody\n", 1, "diff --git a/f b/f\n+x\n"),
                ("r2", "Merge\n", 1, ""),
                ("r3", "\n", 0, ""),
            ]
        );
    }
}
