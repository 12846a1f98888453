//! A dist-git test double: a real bare repository whose post-receive hook records git's own
//! ref updates, and the `git.receive` messages Fedora's `fedora-messaging-git-hook` sends for
//! them — one per commit, oldest first; a new ref's whole history; for an updated ref the
//! commits of `new...old` (both sides of a force-push); nothing for a deletion; a tag under
//! its own name (the hook strips `refs/<kind>/` from every ref).

use super::Event;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const ZERO: &str = "0000000000000000000000000000000000000000";

/// A bare repository `<base>/<namespace>/<repo>.git` and a working clone to push from.
pub struct DistGit {
    pub bare: PathBuf,
    pub work: PathBuf,
    pub namespace: String,
    pub repo: String,
    /// Who pushes (the hook's `agent`, `getpass.getuser()` on the dist-git host).
    pub agent: String,
    updates_seen: usize,
    _work_dir: tempfile::TempDir,
}

/// Runs git in `dir`, panicking with its stderr; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Jane Doe")
        .env("GIT_AUTHOR_EMAIL", "jdoe@example.com")
        .env("GIT_COMMITTER_NAME", "Jane Doe")
        .env("GIT_COMMITTER_EMAIL", "jdoe@example.com")
        .output()
        .expect("git runs (apt-get install git)");
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

impl DistGit {
    /// A new empty repository under `base` (the dispatcher's `git_clone_base` directory).
    pub fn create(base: &Path, namespace: &str, repo: &str, agent: &str) -> DistGit {
        let bare = base.join(namespace).join(format!("{repo}.git"));
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--bare", "--quiet"]);
        let hook = bare.join("hooks/post-receive");
        std::fs::write(&hook, "#!/bin/sh\ncat >> \"$GIT_DIR/ref-updates.log\"\n").unwrap();
        let mut permissions = std::fs::metadata(&hook).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&hook, permissions).unwrap();
        let work_dir = tempfile::tempdir().unwrap();
        let work = work_dir.path().join("checkout");
        git(
            work_dir.path(),
            &["clone", "--quiet", bare.to_str().unwrap(), "checkout"],
        );
        DistGit {
            bare,
            work,
            namespace: namespace.to_owned(),
            repo: repo.to_owned(),
            agent: agent.to_owned(),
            updates_seen: 0,
            _work_dir: work_dir,
        }
    }

    /// Commits a change of the Dockerfile in the working clone; returns the commit id.
    pub fn commit(&self, summary: &str) -> String {
        let dockerfile = self.work.join("Dockerfile");
        let mut text = std::fs::read_to_string(&dockerfile).unwrap_or_default();
        text.push_str(&format!("# {summary}\n"));
        std::fs::write(&dockerfile, text).unwrap();
        git(&self.work, &["add", "Dockerfile"]);
        git(&self.work, &["commit", "--quiet", "-m", summary]);
        self.head()
    }

    /// The working clone's HEAD.
    pub fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// `git push origin <refspecs>` (a leading `+` forces), then the messages the hook sends.
    pub fn push(&mut self, refspecs: &[&str]) -> Vec<Event> {
        let mut args = vec!["push", "--quiet", "origin"];
        args.extend_from_slice(refspecs);
        git(&self.work, &args);
        self.hook_messages()
    }

    /// The messages for the ref updates received since the last call.
    fn hook_messages(&mut self) -> Vec<Event> {
        let log = std::fs::read_to_string(self.bare.join("ref-updates.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let new = &lines[self.updates_seen..];
        self.updates_seen = lines.len();
        let mut events = Vec::new();
        for line in new {
            let fields: Vec<&str> = line.split(' ').collect();
            let [old, new, refname] = fields[..] else {
                panic!("post-receive line {line:?}");
            };
            if new == ZERO {
                continue; // the hook sends nothing for a deletion
            }
            let branch = refname.split('/').skip(2).collect::<Vec<_>>().join("/");
            let range = if old == ZERO {
                new.to_owned()
            } else {
                format!("{new}...{old}")
            };
            let revs = git(&self.bare, &["rev-list", &range]);
            // rev-list lists newest first; the hook publishes `reversed(commits)`.
            for rev in revs.lines().rev() {
                events.push(self.message(rev, &branch));
            }
        }
        events
    }

    /// The hook's CommitV1 message for `rev` on `branch`.
    pub fn message(&self, rev: &str, branch: &str) -> Event {
        let fixture = Event::fixture("git-receive-v1.json");
        let mut body = fixture.json();
        let summary = git(&self.bare, &["log", "-1", "--format=%s", rev]);
        body["agent"] = Value::from(self.agent.as_str());
        let commit = &mut body["commit"];
        commit["username"] = Value::from(self.agent.as_str());
        commit["rev"] = Value::from(rev);
        commit["repo"] = Value::from(self.repo.as_str());
        commit["namespace"] = Value::from(self.namespace.as_str());
        commit["branch"] = Value::from(branch);
        commit["summary"] = Value::from(summary.trim());
        commit["path"] = Value::from(self.bare.to_str().unwrap());
        let mut event = fixture.with_json(&body);
        event.headers = event
            .headers
            .into_iter()
            .filter(|(name, _)| !name.starts_with("fedora_messaging_user_"))
            .filter(|(name, _)| !name.starts_with("fedora_messaging_container_"))
            .collect();
        event.headers.insert(
            format!("fedora_messaging_user_{}", self.agent),
            Value::Bool(true),
        );
        event.headers.insert(
            format!("fedora_messaging_container_{}", self.repo),
            Value::Bool(true),
        );
        event
    }

    /// The commit each message names, in order.
    pub fn revs(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|event| event.json()["commit"]["rev"].as_str().unwrap().to_owned())
            .collect()
    }
}
