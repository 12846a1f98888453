//! The dist-git adapter: fetches exactly one commit with the `git` CLI.
//!
//! Why the CLI and not a crate: it speaks every transport dist-git uses (https, ssh, git://,
//! file://) with the host's own credentials and proxy settings, fetches one commit shallowly
//! (`fetch --depth 1 <url> <sha>`, which git's protocol v2 serves for any reachable commit),
//! and keeps libgit2/gitoxide and their TLS stacks out of the worker. Arguments are passed as
//! an argv (no shell), the URL and commit are validated before (`source::check_git_url`,
//! `source::check_commit`), and git never prompts.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("commit {commit} not found in {repo}: push it to dist-git or fix the commit id")]
    CommitNotFound { commit: String, repo: String },
    #[error("repository {repo} not found: check the repository name and the dist-git URL")]
    RepoNotFound { repo: String },
    #[error("git {step} of {repo} failed: {detail}")]
    Failed {
        step: &'static str,
        repo: String,
        detail: String,
    },
}

impl GitError {
    pub fn is_packager_error(&self) -> bool {
        matches!(
            self,
            GitError::CommitNotFound { .. } | GitError::RepoNotFound { .. }
        )
    }
}

/// Checks `commit` of `url` out into `work_tree`, keeping git's own files in `git_dir` (both
/// created): the checkout holds the commit's files and nothing else, so no symlink of the
/// commit can point a read at the fetch's URL or git's configuration.
pub async fn fetch_commit(
    url: &str,
    commit: &str,
    git_dir: &Path,
    work_tree: &Path,
) -> Result<(), GitError> {
    let repo = osbs_common::config::mask_url_password(url);
    for dir in [git_dir, work_tree] {
        std::fs::create_dir_all(dir).map_err(|error| GitError::Failed {
            step: "init",
            repo: repo.clone(),
            detail: format!("cannot create {}: {error}", dir.display()),
        })?;
    }
    let git_dir_arg = format!("--git-dir={}", git_dir.display());
    let work_tree_arg = format!("--work-tree={}", work_tree.display());
    init_bare(git_dir).map_err(|error| GitError::Failed {
        step: "init",
        repo: repo.clone(),
        detail: format!(
            "cannot create a repository in {}: {error}",
            git_dir.display()
        ),
    })?;
    let fetched = git(
        git_dir,
        &[
            &git_dir_arg,
            "fetch",
            "--quiet",
            "--depth",
            "1",
            "--no-tags",
            "--",
            url,
            commit,
        ],
        "fetch",
        &repo,
    )
    .await;
    match fetched {
        Ok(_) => {}
        Err(GitError::Failed { detail, .. }) if commit_missing(&detail) => {
            return Err(GitError::CommitNotFound {
                commit: commit.to_owned(),
                repo,
            });
        }
        Err(GitError::Failed { detail, .. }) if repo_missing(&detail) => {
            return Err(GitError::RepoNotFound { repo });
        }
        Err(other) => return Err(other),
    }
    git(
        git_dir,
        &[
            &git_dir_arg,
            &work_tree_arg,
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
            commit,
        ],
        "checkout",
        &repo,
    )
    .await?;
    Ok(())
}

/// An empty bare repository, as `git init --bare` leaves it minus the sample hooks and
/// descriptions of its template: a process fewer before every build (gitrepository-layout:
/// `HEAD`, `objects/` and `refs/` make a repository; the config says it is bare).
fn init_bare(git_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(git_dir.join("objects"))?;
    std::fs::create_dir_all(git_dir.join("refs"))?;
    std::fs::write(git_dir.join("HEAD"), "ref: refs/heads/main\n")?;
    std::fs::write(
        git_dir.join("config"),
        "[core]\n\trepositoryformatversion = 0\n\tbare = true\n",
    )
}

/// The names at the top of `commit`'s tree (files, directories, symlinks, submodules): what
/// the commit itself puts at the top of the build context.
pub async fn top_level_names(
    git_dir: &Path,
    commit: &str,
    repo: &str,
) -> Result<BTreeSet<String>, GitError> {
    let git_dir_arg = format!("--git-dir={}", git_dir.display());
    let listed = git(
        git_dir,
        &[&git_dir_arg, "ls-tree", "-z", "--name-only", commit],
        "ls-tree",
        &osbs_common::config::mask_url_password(repo),
    )
    .await?;
    Ok(listed
        .split(|byte| *byte == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect())
}

/// git's words for "no such commit" (local and remote transports, protocol v0 and v2).
fn commit_missing(stderr: &str) -> bool {
    let stderr = stderr.to_ascii_lowercase();
    [
        "not our ref",
        "couldn't find remote ref",
        "unadvertised object",
        "no such remote ref",
        "bad object",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

/// git's words for "no such repository".
fn repo_missing(stderr: &str) -> bool {
    let stderr = stderr.to_ascii_lowercase();
    [
        "does not appear to be a git repository",
        "repository not found",
        "not found",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

/// Runs git in `dir`; its standard output.
async fn git(
    dir: &Path,
    args: &[&str],
    step: &'static str,
    repo: &str,
) -> Result<Vec<u8>, GitError> {
    let output = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/true")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|error| GitError::Failed {
            step,
            repo: repo.to_owned(),
            detail: format!("cannot run git: {error} (install git)"),
        })?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(GitError::Failed {
            step,
            repo: repo.to_owned(),
            detail: osbs_common::bus::one_line(&String::from_utf8_lossy(&output.stderr), 500),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_messages() {
        assert!(commit_missing(
            "fatal: remote error: upload-pack: not our ref 0123456789012345678901234567890123456789"
        ));
        assert!(commit_missing("fatal: couldn't find remote ref 0123"));
        assert!(!commit_missing(
            "fatal: unable to access 'https://x/': Could not resolve host"
        ));
        assert!(repo_missing(
            "fatal: '/srv/git/nope.git' does not appear to be a git repository"
        ));
    }
}
