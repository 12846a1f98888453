//! The dist-git adapter: asks a repository for a branch's head — from a local bare
//! repository's ref files, else with `git ls-remote`. I/O only; what the answer means is
//! [`crate::tip`]'s.
//!
//! A `file://` dist-git (the dispatcher beside it) is read in place: `refs/heads/<branch>`,
//! then `packed-refs`, as git resolves a ref — two small reads instead of a `git ls-remote`
//! and its `upload-pack` (5–7 ms of processes on every push's path). git writes both files
//! by renames, so a read sees a whole file, old or new. No crate reads refs without bringing
//! a whole git implementation (gix), hence these few lines; anything they are not sure of (a
//! branch that is not one plain file name, a symbolic or malformed ref, a reftable store, a
//! path that is no repository, whose error only git words well) goes to git as before.

use crate::tip::{self, BranchHead, parse_ls_remote};
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

/// dist-git could not answer. Always transient for the dispatcher: the event is requeued,
/// never dropped nor built from a guess.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the head of branch {branch:?} from {url} with git ls-remote: {detail}")]
pub struct DistGitError {
    pub url: String,
    pub branch: String,
    pub detail: String,
}

/// Reads branch heads from dist-git.
#[derive(Debug, Clone)]
pub struct DistGit {
    timeout: Duration,
}

/// Cap on the git error text kept in an error (a server can answer a whole HTML page).
const MAX_DETAIL: usize = 400;

impl DistGit {
    pub fn new(timeout: Duration) -> DistGit {
        DistGit { timeout }
    }

    /// The head of `branch` in the repository at `url`: read in place from a `file://`
    /// bare repository when its ref files tell for sure, else asked of git.
    pub async fn branch_head(&self, url: &str, branch: &str) -> Result<BranchHead, DistGitError> {
        // Blocking reads off the runtime: dist-git may be a network mount.
        let (local_url, local_branch) = (url.to_owned(), branch.to_owned());
        let local = tokio::task::spawn_blocking(move || local_head(&local_url, &local_branch));
        if let Ok(Some(head)) = local.await {
            return Ok(head);
        }
        self.ls_remote(url, branch).await
    }

    /// `git ls-remote --exit-code <url> refs/heads/<branch>`: exit 2 means dist-git answered
    /// and has no such ref.
    async fn ls_remote(&self, url: &str, branch: &str) -> Result<BranchHead, DistGitError> {
        let error = |detail: String| DistGitError {
            url: url.to_owned(),
            branch: branch.to_owned(),
            detail,
        };
        let mut command = Command::new("git");
        command
            .args(["ls-remote", "--exit-code", url])
            .arg(format!("refs/heads/{branch}"))
            // Never wait on a password prompt or an ssh host-key question.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(self.timeout, command.output())
            .await
            .map_err(|_| error(format!("no answer in {:?}", self.timeout)))?
            .map_err(|spawn| error(format!("cannot run git: {spawn}")))?;
        match output.status.code() {
            Some(0) => {
                parse_ls_remote(&String::from_utf8_lossy(&output.stdout), branch).map_err(error)
            }
            Some(2) => Ok(BranchHead::Missing),
            _ => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let mut detail = stderr.trim().to_owned();
                if detail.len() > MAX_DETAIL {
                    let mut cut = MAX_DETAIL;
                    while !detail.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    detail.truncate(cut);
                }
                Err(error(format!("{} ({detail})", output.status)))
            }
        }
    }
}

/// The head of `branch` read from the ref files of the bare repository at `url`, a `file://`
/// URL; `None`: git must be asked (see the module header).
fn local_head(url: &str, branch: &str) -> Option<BranchHead> {
    let repo = url::Url::parse(url)
        .ok()
        .filter(|url| url.scheme() == "file")?
        .to_file_path()
        .ok()?;
    let plain = !branch.is_empty()
        && !branch.starts_with('.')
        && !branch.ends_with(".lock")
        && !branch.contains(['/', '\\']);
    if !plain || !repo.join("HEAD").is_file() || repo.join("reftable").exists() {
        return None;
    }
    let loose = read_regular(&repo.join("refs/heads").join(branch))?;
    let packed = read_regular(&repo.join("packed-refs"))?;
    tip::head_from_ref_files(loose.as_deref(), packed.as_deref(), branch)
}

/// A regular file's text: `Some(None)` when there is no such file, `None` when it cannot be
/// read as one (a directory, a symlink, not UTF-8, an I/O error).
fn read_regular(path: &Path) -> Option<Option<String>> {
    match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some(None),
        Ok(meta) if meta.is_file() => std::fs::read_to_string(path).ok().map(Some),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git runs (apt-get install git)");
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// A real bare repository read in place agrees with git, loose or packed; what the
    /// reader is not sure of goes to git.
    #[test]
    fn a_local_bare_repository_is_read_as_git_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("hello.git");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(dir.path(), &["init", "-q", "--bare", "hello.git"]);
        let url = url::Url::from_file_path(&bare).unwrap().to_string();
        assert_eq!(local_head(&url, "f41"), Some(BranchHead::Missing), "empty");
        git(&work, &["init", "-q"]);
        git(&work, &["commit", "-q", "--allow-empty", "-m", "one"]);
        let one = git(&work, &["rev-parse", "HEAD"]);
        git(
            &work,
            &["push", "-q", bare.to_str().unwrap(), "HEAD:refs/heads/f41"],
        );
        assert_eq!(local_head(&url, "f41"), Some(BranchHead::At(one.clone())));
        git(&bare, &["pack-refs", "--all"]);
        assert!(!bare.join("refs/heads/f41").exists(), "packed");
        assert_eq!(local_head(&url, "f41"), Some(BranchHead::At(one)));
        git(&work, &["commit", "-q", "--allow-empty", "-m", "two"]);
        let two = git(&work, &["rev-parse", "HEAD"]);
        git(
            &work,
            &["push", "-q", bare.to_str().unwrap(), "HEAD:refs/heads/f41"],
        );
        assert_eq!(
            local_head(&url, "f41"),
            Some(BranchHead::At(two)),
            "loose wins"
        );
        git(
            &work,
            &["push", "-q", bare.to_str().unwrap(), ":refs/heads/f41"],
        );
        assert_eq!(
            local_head(&url, "f41"),
            Some(BranchHead::Missing),
            "deleted"
        );

        let not_sure = [
            ("../f41", url.clone()),
            (".hidden", url.clone()),
            ("f41.lock", url.clone()),
            ("f41", format!("{url}-missing")),
            (
                "f41",
                "https://src.fedoraproject.org/container/hello.git".into(),
            ),
        ];
        for (branch, url) in not_sure {
            assert_eq!(local_head(&url, branch), None, "{branch} of {url}");
        }
        std::os::unix::fs::symlink("/etc/hostname", bare.join("refs/heads/link")).unwrap();
        assert_eq!(
            local_head(&url, "link"),
            None,
            "a symlinked ref is never read"
        );
    }
}
