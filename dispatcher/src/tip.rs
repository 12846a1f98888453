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

/// What a bare repository's own ref files say of `refs/heads/<branch>`, as git resolves a
/// ref: the loose file `refs/heads/<branch>` (its text; `None`: no such file) wins over the
/// ref's line in `packed-refs` (its text; `None`: no such file). `None` when the files cannot
/// say for sure — a symbolic or malformed loose ref, a malformed `packed-refs` line — and git
/// itself must be asked.
pub fn head_from_ref_files(
    loose: Option<&str>,
    packed: Option<&str>,
    branch: &str,
) -> Option<BranchHead> {
    if let Some(loose) = loose {
        return object_id(loose.strip_suffix('\n').unwrap_or(loose)).map(BranchHead::At);
    }
    let wanted = format!("refs/heads/{branch}");
    for line in packed.unwrap_or_default().lines() {
        // The header (`# pack-refs with: …`) and the peeled value of an annotated tag.
        if line.starts_with('#') || line.starts_with('^') {
            continue;
        }
        let (sha, refname) = line.split_once(' ')?;
        if refname == wanted {
            return object_id(sha).map(BranchHead::At);
        }
    }
    Some(BranchHead::Missing)
}

/// A full SHA-1 object id, lower-cased.
fn object_id(text: &str) -> Option<String> {
    (text.len() == 40 && text.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_proto::v1::BuildJob;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    #[test]
    fn a_head_from_the_ref_files_as_git_resolves_it() {
        let packed = format!(
            "# pack-refs with: peeled fully-peeled sorted \n{A} refs/heads/f41\n{C} refs/tags/v1\n^{A}\n{C} refs/heads/x/f42\n"
        );
        // (case, loose file, packed-refs, branch, head)
        type Case<'a> = (
            &'a str,
            Option<String>,
            Option<&'a str>,
            &'a str,
            Option<BranchHead>,
        );
        let cases: [Case; 9] = [
            (
                "a loose ref",
                Some(format!("{C}\n")),
                None,
                "f41",
                Some(BranchHead::At(C.into())),
            ),
            (
                "a loose ref wins over a packed one",
                Some(format!("{C}\n")),
                Some(&packed),
                "f41",
                Some(BranchHead::At(C.into())),
            ),
            (
                "a packed ref",
                None,
                Some(&packed),
                "f41",
                Some(BranchHead::At(A.into())),
            ),
            (
                "upper case",
                Some(C.to_uppercase()),
                None,
                "f41",
                Some(BranchHead::At(C.into())),
            ),
            (
                "only the exact ref counts",
                None,
                Some(&packed),
                "f42",
                Some(BranchHead::Missing),
            ),
            (
                "a tag is not a branch",
                None,
                Some(&packed),
                "v1",
                Some(BranchHead::Missing),
            ),
            (
                "no ref files at all: an empty repository",
                None,
                None,
                "f41",
                Some(BranchHead::Missing),
            ),
            (
                "a symbolic loose ref: git is asked",
                Some("ref: refs/heads/main\n".into()),
                None,
                "f41",
                None,
            ),
            (
                "a malformed packed line: git is asked",
                None,
                Some("garbage\n"),
                "f41",
                None,
            ),
        ];
        for (name, loose, packed, branch, expected) in cases {
            assert_eq!(
                head_from_ref_files(loose.as_deref(), packed, branch),
                expected,
                "{name}"
            );
        }
    }

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
