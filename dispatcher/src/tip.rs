//! What a push asks to build, decided from dist-git itself: a pure function of the pushed
//! commit and the branch's current head as dist-git reports it.
//!
//! Fedora's post-receive hook (`fedora-messaging-git-hook`) sends one `git.receive` per commit,
//! oldest first, and a new branch's whole history; its messages say "this commit reached this
//! branch", not "build this". What the packager meant is the branch as it now stands: every
//! message of a branch builds its current tip (once: the tip's build is keyed like any other),
//! a pushed commit that is not the tip is recorded `superseded` without a build, and a ref that
//! is not a branch (a tag push, which the hook announces under the tag's name, or a branch
//! deleted since) builds nothing.

use crate::decide::{Plan, idempotency_key};

/// A branch's head as `git ls-remote <url> refs/heads/<branch>` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchHead {
    /// The branch exists and points at this commit.
    At(String),
    /// dist-git has no such branch.
    Missing,
}

/// What to do with a push of `commit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The commit is the branch's tip: build it.
    Build,
    /// The branch has moved on (later commits of the same push, a later push or a
    /// force-push): build `tip`, and record the pushed commit superseded.
    Stale { tip: String },
    /// No branch of that name: nothing to build.
    NoBranch,
}

/// Decides a push of `commit` against the branch's `head`.
pub fn resolve(commit: &str, head: &BranchHead) -> Resolution {
    match head {
        BranchHead::Missing => Resolution::NoBranch,
        BranchHead::At(tip) if tip.eq_ignore_ascii_case(commit) => Resolution::Build,
        BranchHead::At(tip) => Resolution::Stale {
            tip: tip.to_ascii_lowercase(),
        },
    }
}

/// The plan building `tip` instead of the pushed commit: same branch, lane, target, submitter
/// and event; its own idempotency key. A tip whose earlier build was superseded is built again
/// (the branch came back to it, e.g. a force-push to an older commit).
pub fn tip_plan(pushed: &Plan, tip: &str) -> Plan {
    let mut plan = pushed.clone();
    plan.job.commit = tip.to_owned();
    plan.idempotency_key = idempotency_key(&plan.job);
    plan.rebuild_superseded = true;
    plan
}

/// Why a pushed commit that is not its branch's tip is superseded.
pub fn stale_reason(pushed: &Plan, tip: &str, tip_build: &str) -> String {
    let job = &pushed.job;
    format!(
        "superseded by build {tip_build}: commit {} is not the tip of {}/{} {} (the tip is {tip}); only a branch's tip is built",
        job.commit, job.namespace, job.repo, job.branch
    )
}

/// Why a push to a ref that is not a branch builds nothing.
pub fn no_branch_detail(pushed: &Plan) -> String {
    let job = &pushed.job;
    format!(
        "{}/{} has no branch {:?} (a tag push, or a branch deleted since): nothing to build",
        job.namespace, job.repo, job.branch
    )
}

/// The head of `refs/heads/<branch>` in `git ls-remote` output (`<sha>\t<ref>` lines). Only
/// the exact ref counts: ls-remote's pattern also matches `refs/heads/x/<branch>`.
pub fn parse_ls_remote(output: &str, branch: &str) -> Result<BranchHead, String> {
    let wanted = format!("refs/heads/{branch}");
    for line in output.lines() {
        let Some((sha, refname)) = line.split_once('\t') else {
            return Err(format!("unexpected git ls-remote line {line:?}"));
        };
        if refname.trim() == wanted {
            let sha = sha.trim();
            let valid = sha.len() == 40 && sha.bytes().all(|byte| byte.is_ascii_hexdigit());
            if !valid {
                return Err(format!("git ls-remote gave {sha:?} for {wanted}"));
            }
            return Ok(BranchHead::At(sha.to_ascii_lowercase()));
        }
    }
    Ok(BranchHead::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_proto::v1::BuildJob;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    #[test]
    fn resolutions() {
        let cases = [
            (
                "the tip itself",
                C,
                BranchHead::At(C.into()),
                Resolution::Build,
            ),
            (
                "the tip in upper case",
                &*C.to_uppercase(),
                BranchHead::At(C.into()),
                Resolution::Build,
            ),
            (
                "an older commit of the push",
                A,
                BranchHead::At(C.into()),
                Resolution::Stale { tip: C.into() },
            ),
            (
                "a tip dist-git spells in upper case",
                A,
                BranchHead::At(C.to_uppercase()),
                Resolution::Stale { tip: C.into() },
            ),
            (
                "a tag or a deleted branch",
                C,
                BranchHead::Missing,
                Resolution::NoBranch,
            ),
        ];
        for (name, commit, head, expected) in cases {
            assert_eq!(resolve(commit, &head), expected, "{name}");
        }
    }

    fn plan(commit: &str) -> Plan {
        let job = BuildJob {
            repo: "httpd".into(),
            namespace: "container".into(),
            branch: "f41".into(),
            commit: commit.into(),
            ..BuildJob::default()
        };
        Plan {
            priority: 0,
            idempotency_key: idempotency_key(&job),
            lane: "container/httpd\nf41".into(),
            coalesce_key: Some("container/httpd:f41:t".into()),
            rebuild_unsuccessful: false,
            rebuild_superseded: false,
            request_id: None,
            job,
        }
    }

    #[test]
    fn the_tip_plan_is_the_pushed_plan_for_another_commit() {
        let pushed = plan(A);
        let tip = tip_plan(&pushed, C);
        assert_eq!(tip.job.commit, C);
        assert_eq!(tip.idempotency_key, plan(C).idempotency_key);
        assert_ne!(tip.idempotency_key, pushed.idempotency_key);
        assert_eq!(
            (&tip.lane, &tip.coalesce_key),
            (&pushed.lane, &pushed.coalesce_key)
        );
        assert!(tip.rebuild_superseded);
        let reason = stale_reason(&pushed, C, "b1");
        assert!(reason.contains(C) && reason.contains(A) && reason.contains("b1"));
        assert!(no_branch_detail(&pushed).contains("\"f41\""));
    }

    #[test]
    fn ls_remote_output() {
        let cases: [(&str, &str, Result<BranchHead, ()>); 5] = [
            ("", "f41", Ok(BranchHead::Missing)),
            (
                &*format!("{C}\trefs/heads/f41\n"),
                "f41",
                Ok(BranchHead::At(C.into())),
            ),
            (
                &*format!("{A}\trefs/heads/private/f41\n{C}\trefs/heads/f41\n"),
                "f41",
                Ok(BranchHead::At(C.into())),
            ),
            (
                &*format!("{A}\trefs/heads/private/f41\n"),
                "f41",
                Ok(BranchHead::Missing),
            ),
            ("nonsense\n", "f41", Err(())),
        ];
        for (output, branch, expected) in cases {
            assert_eq!(
                parse_ls_remote(output, branch).map_err(|_| ()),
                expected,
                "{output:?}"
            );
        }
    }
}
