//! The dist-git adapter: asks a repository for a branch's head with `git ls-remote`. I/O only;
//! what the answer means is [`crate::tip`]'s.

use crate::tip::{BranchHead, parse_ls_remote};
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

    /// `git ls-remote --exit-code <url> refs/heads/<branch>`: exit 2 means dist-git answered
    /// and has no such ref.
    pub async fn branch_head(&self, url: &str, branch: &str) -> Result<BranchHead, DistGitError> {
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
