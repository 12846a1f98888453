//! The dist-git adapter: fetches exactly one commit with the `git` CLI.
//!
//! Why the CLI and not a crate: it speaks every transport dist-git uses (https, ssh, git://,
//! file://) with the host's own credentials and proxy settings, fetches one commit shallowly
//! (`fetch --depth 1 <url> <sha>`, which git's protocol v2 serves for any reachable commit),
//! and keeps libgit2/gitoxide and their TLS stacks out of the worker. Arguments are passed as
//! an argv (no shell), the URL and commit are validated before (`source::check_git_url`,
//! `source::check_commit`), and git never prompts.
//!
//! A `file://` dist-git on this host (a bare repository, as OPERATIONS.md's read-only mount)
//! is not fetched from: the worker's repository borrows its object store (git's
//! `objects/info/alternates`, read-only) and checks the commit out of it. That is one git
//! process instead of the fetch's four (`fetch`, `upload-pack`, `pack-objects`,
//! `index-pack`) and a pack written and indexed: 30–90 ms less on a loaded 2-core machine
//! (issue 13). The commit is still checked out by the worker's own repository, whose
//! configuration is the worker's, never dist-git's.

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
    let init_failed = |detail: String| GitError::Failed {
        step: "init",
        repo: repo.clone(),
        detail,
    };
    for dir in [git_dir, work_tree] {
        std::fs::create_dir_all(dir)
            .map_err(|error| init_failed(format!("cannot create {}: {error}", dir.display())))?;
    }
    init_bare(git_dir).map_err(|error| {
        init_failed(format!(
            "cannot create a repository in {}: {error}",
            git_dir.display()
        ))
    })?;
    let fetched = match local_objects(url) {
        Some(objects) => borrow_objects(git_dir, &objects).map_err(|error| {
            init_failed(format!(
                "cannot borrow the objects of {}: {error}",
                objects.display()
            ))
        }),
        None => fetch(git_dir, url, commit, &repo).await,
    };
    named(fetched, commit, &repo)?;
    let checked_out = git(
        git_dir,
        &[
            &format!("--git-dir={}", git_dir.display()),
            &format!("--work-tree={}", work_tree.display()),
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
    .await;
    // Borrowed objects: a commit dist-git lacks is first seen by the checkout.
    named(checked_out.map(drop), commit, &repo)
}

/// A git failure that says the commit or the repository is missing, named as such.
fn named(result: Result<(), GitError>, commit: &str, repo: &str) -> Result<(), GitError> {
    match result {
        Err(GitError::Failed { detail, .. }) if commit_missing(&detail) => {
            Err(GitError::CommitNotFound {
                commit: commit.to_owned(),
                repo: repo.to_owned(),
            })
        }
        Err(GitError::Failed { detail, .. }) if repo_missing(&detail) => {
            Err(GitError::RepoNotFound {
                repo: repo.to_owned(),
            })
        }
        other => other,
    }
}

/// `git fetch --depth 1` of `commit` into `git_dir`.
async fn fetch(git_dir: &Path, url: &str, commit: &str, repo: &str) -> Result<(), GitError> {
    let git_dir_arg = format!("--git-dir={}", git_dir.display());
    git(
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
        repo,
    )
    .await
    .map(drop)
}

/// The object directory of the bare repository a `file://` URL names, when there is one on
/// this host to borrow from; `None`: fetch.
fn local_objects(url: &str) -> Option<std::path::PathBuf> {
    let repo = local_repository(url)?;
    let objects = repo.join("objects");
    (repo.join("HEAD").is_file() && objects.is_dir()).then_some(objects)
}

/// The path of a `file://` URL, when git's alternates file can name it as it is (absolute, so
/// never starting with the quote git would unquote; UTF-8; no control characters); pure.
fn local_repository(url: &str) -> Option<std::path::PathBuf> {
    let path = url::Url::parse(url)
        .ok()
        .filter(|url| url.scheme() == "file" && url.host().is_none())?
        .to_file_path()
        .ok()?;
    let text = path.to_str()?;
    let plain = path.is_absolute() && !text.contains(char::is_control);
    plain.then_some(path)
}

/// Makes `git_dir` read its objects from `objects` too (gitrepository-layout:
/// `objects/info/alternates`).
fn borrow_objects(git_dir: &Path, objects: &Path) -> std::io::Result<()> {
    let info = git_dir.join("objects/info");
    std::fs::create_dir_all(&info)?;
    std::fs::write(info.join("alternates"), format!("{}\n", objects.display()))
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
        // A checkout of a commit the borrowed objects lack.
        "reference is not a tree",
        "unable to read tree",
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
        assert!(commit_missing(
            "fatal: reference is not a tree: 0123456789012345678901234567890123456789"
        ));
        assert!(commit_missing(
            "fatal: unable to read tree (0123456789012345678901234567890123456789)"
        ));
    }

    fn run(dir: &Path, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    }

    /// A bare repository `x.git` beside a work tree `x` (a non-bare repository) with one
    /// commit of `Dockerfile`; the commit.
    fn repositories(top: &Path) -> String {
        let work = top.join("x");
        std::fs::create_dir_all(&work).unwrap();
        run(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("Dockerfile"), "FROM scratch\n").unwrap();
        run(&work, &["add", "Dockerfile"]);
        let who = ["-c", "user.name=P", "-c", "user.email=p@example.org"];
        run(&work, &[&who[..], &["commit", "-q", "-m", "m"]].concat());
        run(top, &["clone", "-q", "--bare", "x", "x.git"]);
        run(&work, &["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// A bare `file://` repository is borrowed from (no fetch), a non-bare one fetched from;
    /// both check out the same files, and both name a commit they lack as not found.
    #[tokio::test]
    async fn borrowed_and_fetched_checkouts_are_the_same() {
        let top = tempfile::tempdir().unwrap();
        let commit = repositories(top.path());
        let missing = "0123456789abcdef0123456789abcdef01234567";
        for (name, borrowed) in [("x.git", true), ("x", false)] {
            let url = format!("file://{}", top.path().join(name).display());
            let (git_dir, tree) = (
                top.path().join(format!("{name}-git")),
                top.path().join(format!("{name}-src")),
            );
            fetch_commit(&url, &commit, &git_dir, &tree).await.unwrap();
            assert_eq!(
                std::fs::read_to_string(tree.join("Dockerfile")).unwrap(),
                "FROM scratch\n"
            );
            assert_eq!(
                git_dir.join("objects/info/alternates").exists(),
                borrowed,
                "{url}"
            );
            let names = top_level_names(&git_dir, &commit, &url).await.unwrap();
            assert_eq!(names, BTreeSet::from(["Dockerfile".to_owned()]));
            let (git_dir, tree) = (
                top.path().join(format!("{name}-git2")),
                top.path().join(format!("{name}-src2")),
            );
            let error = fetch_commit(&url, missing, &git_dir, &tree)
                .await
                .unwrap_err();
            assert!(
                matches!(error, GitError::CommitNotFound { .. }),
                "{url}: {error}"
            );
        }
    }

    #[test]
    fn which_urls_are_borrowed_from() {
        let table: &[(&str, Option<&str>)] = &[
            (
                "file:///srv/git/container/x.git",
                Some("/srv/git/container/x.git"),
            ),
            ("file:///srv/git/a%20b.git", Some("/srv/git/a b.git")),
            // Another host's path, another scheme, a path git would unquote or cut.
            ("file://host/srv/x.git", None),
            ("https://src.example.org/container/x.git", None),
            ("ssh://git@host/x.git", None),
            ("file:///srv/%22x.git", Some("/srv/\"x.git")),
            ("file:///srv/a%0Ab.git", None),
            ("/srv/git/x.git", None),
        ];
        for (url, path) in table {
            assert_eq!(
                local_repository(url),
                path.map(std::path::PathBuf::from),
                "{url}"
            );
        }
    }
}
