//! The git adapter (runs `git`), and the pure readings of what it prints: remote URLs,
//! post-receive input, `--numstat` output.

use crate::error::{CliError, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The all-zero object id git uses for "no such ref" in hook input.
const ZERO_REV: &str = "0000000000000000000000000000000000000000";

/// A repository (checkout or bare) that `git` commands run in.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
}

impl Git {
    pub fn new(dir: impl Into<PathBuf>) -> Git {
        Git { dir: dir.into() }
    }

    /// Runs `git <args>` in the repository; its stdout, or a one-line error.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let stdout = self.run_bytes(args)?;
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    }

    /// Like [`Git::run`], but stdout's bytes as git wrote them, for output that is split
    /// before it is decoded.
    pub fn run_bytes(&self, args: &[&str]) -> Result<Vec<u8>> {
        let output = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|error| {
                CliError::Tool(format!(
                    "cannot run git in {}: {error}; install git",
                    self.dir.display()
                ))
            })?;
        if !output.status.success() {
            return Err(CliError::Tool(format!(
                "`git {}` failed in {}: {}",
                args.join(" "),
                self.dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(output.stdout)
    }

    /// Like [`Git::run`], but a failing command is `None` (a question with a no answer).
    pub fn ask(&self, args: &[&str]) -> Option<String> {
        self.run(args)
            .ok()
            .map(|out| out.trim().to_owned())
            .filter(|out| !out.is_empty())
    }
}

/// Where a dist-git repository is: its namespace (if any) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoName {
    pub namespace: Option<String>,
    pub repo: String,
}

/// Namespace and name from a clone URL or a path: `…/<namespace>/<repo>[.git][/]`, where
/// `<namespace>` counts only when it is one of `namespaces` (a path like
/// `/srv/git/httpd.git` has no namespace). Handles `scheme://host/path`, scp-like
/// `user@host:path` and plain paths.
pub fn repo_name(url_or_path: &str, namespaces: &[String]) -> Option<RepoName> {
    let path = match url_or_path.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => match url_or_path.split_once(':') {
            Some((host, path)) if !host.contains('/') => path,
            _ => url_or_path,
        },
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segments = path.split('/').filter(|segment| !segment.is_empty()).rev();
    let repo = segments.next()?.trim_end_matches(".git");
    if repo.is_empty() {
        return None;
    }
    let namespace = segments
        .next()
        .filter(|candidate| namespaces.iter().any(|known| known == candidate))
        .map(str::to_owned);
    Some(RepoName {
        namespace,
        repo: repo.to_owned(),
    })
}

/// A URL the dispatcher and workers can clone: URLs stay as they are, a local path becomes
/// `file://<absolute path>`.
pub fn clone_url(remote_url: &str, cwd: &Path) -> String {
    if remote_url.contains("://") {
        return remote_url.to_owned();
    }
    if let Some((host, _)) = remote_url.split_once(':')
        && !host.contains('/')
    {
        // scp-like ssh (`user@host:path`): not a local path.
        return remote_url.to_owned();
    }
    let path = Path::new(remote_url);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    format!(
        "file://{}",
        absolute.display().to_string().trim_end_matches('/')
    )
}

/// One line of post-receive input: `<old> <new> <ref>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub refname: String,
}

impl RefUpdate {
    /// The branch this update moved, or `None` for tags, notes and deletions.
    pub fn branch(&self) -> Option<&str> {
        if self.new == ZERO_REV {
            return None;
        }
        self.refname.strip_prefix("refs/heads/")
    }

    /// A branch created by this push (no old value).
    pub fn is_new_branch(&self) -> bool {
        self.old == ZERO_REV
    }
}

/// Parses post-receive input; a malformed line is an error naming it.
pub fn parse_ref_updates(input: &str) -> Result<Vec<RefUpdate>> {
    input
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let is_rev = |rev: &str| rev.len() >= 40 && rev.bytes().all(|b| b.is_ascii_hexdigit());
            match parts.as_slice() {
                [old, new, refname] if is_rev(old) && is_rev(new) => Ok(RefUpdate {
                    old: (*old).to_owned(),
                    new: (*new).to_owned(),
                    refname: (*refname).to_owned(),
                }),
                _ => Err(CliError::Refused(format!(
                    "post-receive input line {line:?} is not `<old-rev> <new-rev> <ref>`: run `osbs git-hook` as a post-receive hook, which git feeds these lines"
                ))),
            }
        })
        .collect()
}

/// Per-file and total line counts, as fedora-messaging's git hook reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// (path, additions, deletions), in git's order.
    pub files: Vec<(String, u64, u64)>,
}

impl Stats {
    pub fn total_additions(&self) -> u64 {
        self.files.iter().map(|(_, added, _)| added).sum()
    }
    pub fn total_deletions(&self) -> u64 {
        self.files.iter().map(|(_, _, deleted)| deleted).sum()
    }
}

/// Parses `git show --numstat --format=` output; binary files (`-\t-\tpath`) count 0.
pub fn parse_numstat(output: &str) -> Stats {
    let files = output
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            let added = parts.next()?;
            let deleted = parts.next()?;
            let path = parts.next()?;
            Some((
                path.to_owned(),
                added.parse().unwrap_or(0),
                deleted.parse().unwrap_or(0),
            ))
        })
        .collect();
    Stats { files }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespaces() -> Vec<String> {
        vec!["container".into(), "docker".into(), "rpms".into()]
    }

    #[test]
    fn repo_names_from_every_url_shape() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            (
                "https://src.fedoraproject.org/container/httpd.git",
                Some("container"),
                "httpd",
            ),
            (
                "ssh://jdoe@pkgs.fedoraproject.org/container/httpd",
                Some("container"),
                "httpd",
            ),
            (
                "jdoe@pkgs.fedoraproject.org:docker/cockpit.git",
                Some("docker"),
                "cockpit",
            ),
            (
                "file:///var/lib/osbs/dist-git/container/httpd.git",
                Some("container"),
                "httpd",
            ),
            (
                "/srv/git/repositories/container/httpd.git/",
                Some("container"),
                "httpd",
            ),
            ("/srv/git/httpd.git", None, "httpd"),
            ("https://example.com/httpd", None, "httpd"),
            (
                "https://example.com/a/rpms/bash.git?x=1",
                Some("rpms"),
                "bash",
            ),
        ];
        for (url, namespace, repo) in cases {
            let name = repo_name(url, &namespaces()).unwrap_or_else(|| panic!("{url}"));
            assert_eq!(name.namespace.as_deref(), *namespace, "{url}");
            assert_eq!(name.repo, *repo, "{url}");
        }
        assert_eq!(repo_name("https://example.com/", &namespaces()), None);
    }

    #[test]
    fn clone_urls() {
        let cwd = Path::new("/home/jdoe");
        let cases = [
            ("https://h/container/a.git", "https://h/container/a.git"),
            ("git@h:container/a.git", "git@h:container/a.git"),
            (
                "/srv/git/container/a.git/",
                "file:///srv/git/container/a.git",
            ),
            ("../bare/a.git", "file:///home/jdoe/../bare/a.git"),
        ];
        for (remote, expected) in cases {
            assert_eq!(clone_url(remote, cwd), expected, "{remote}");
        }
    }

    #[test]
    fn post_receive_lines() {
        let old = "a".repeat(40);
        let new = "b".repeat(40);
        let input = format!(
            "{old} {new} refs/heads/f41\n{ZERO_REV} {new} refs/heads/main\n{old} {ZERO_REV} refs/heads/gone\n{old} {new} refs/tags/v1\n\n"
        );
        let updates = parse_ref_updates(&input).unwrap();
        let branches: Vec<_> = updates.iter().map(RefUpdate::branch).collect();
        assert_eq!(branches, [Some("f41"), Some("main"), None, None]);
        assert!(!updates[0].is_new_branch());
        assert!(updates[1].is_new_branch());

        for bad in ["just one line", "x y refs/heads/main", "a b"] {
            let error = parse_ref_updates(bad).unwrap_err();
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[test]
    fn numstat() {
        let stats = parse_numstat("1\t1\tDockerfile\n-\t-\tlogo.png\n10\t0\tdir/a b.txt\n");
        assert_eq!(
            stats.files,
            vec![
                ("Dockerfile".to_owned(), 1, 1),
                ("logo.png".to_owned(), 0, 0),
                ("dir/a b.txt".to_owned(), 10, 0),
            ]
        );
        assert_eq!(stats.total_additions(), 11);
        assert_eq!(stats.total_deletions(), 1);
        assert!(parse_numstat("").files.is_empty());
    }
}
