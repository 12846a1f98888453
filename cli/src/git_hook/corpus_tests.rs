//! The hook's one-`git log`-per-branch extraction checked against the way it replaced —
//! `rev-list` (and `for-each-ref` for a new branch), then three `git show`s per commit — over
//! a corpus of every kind of commit and ref update a push brings.

use super::*;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

const ZERO: &str = "0000000000000000000000000000000000000000";

/// Runs git in `dir` as a fixed author; its stdout, trimmed.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Jané Doe")
        .env("GIT_AUTHOR_EMAIL", "jdoe@example.com")
        .env("GIT_COMMITTER_NAME", "Jane Doe")
        .env("GIT_COMMITTER_EMAIL", "jdoe@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Writes `content` to `name` in `dir`, adds everything and commits with `message`.
fn commit(dir: &Path, name: &[u8], content: &[u8], message: &str) -> String {
    let path = dir.join(std::ffi::OsStr::from_bytes(name));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
    git(dir, &["add", "-A"]);
    git(
        dir,
        &["commit", "-q", "--allow-empty-message", "-m", message],
    );
    git(dir, &["rev-parse", "HEAD"])
}

/// The replaced extraction, kept as the reference: the new commits of one update.
fn reference_revs(git: &Git, update: &RefUpdate, max: usize) -> Vec<String> {
    let listing = if update.is_new_branch() {
        let others: Vec<String> = git
            .run(&["for-each-ref", "--format=%(refname)", "refs/heads/"])
            .unwrap()
            .lines()
            .filter(|refname| *refname != update.refname)
            .map(|refname| format!("^{refname}"))
            .collect();
        let mut args = vec!["rev-list", "--reverse", update.new.as_str()];
        args.extend(others.iter().map(String::as_str));
        git.run(&args).unwrap()
    } else {
        let range = format!("{}..{}", update.old, update.new);
        git.run(&["rev-list", "--reverse", &range]).unwrap()
    };
    let mut revs: Vec<String> = listing.lines().map(str::to_owned).collect();
    let skip = revs.len().saturating_sub(max.max(1));
    revs.drain(..skip);
    revs
}

/// The replaced extraction: the three `git show`s of one commit.
fn reference_commit(git: &Git, rev: &str) -> CommitInfo {
    let header = git
        .run(&[
            "show",
            "-s",
            "--format=%H%x00%an%x00%ae%x00%aI%x00%s%x00%B",
            rev,
        ])
        .unwrap();
    let numstat = git.run(&["show", "--numstat", "--format=", rev]).unwrap();
    let patch = git.run(&["show", "--format=", "--patch", rev]).unwrap();
    commit_info(&header, &numstat, patch)
}

fn reference(git: &Git, updates: &[RefUpdate], max: usize) -> Vec<(String, CommitInfo)> {
    let mut planned = Vec::new();
    for update in updates {
        let Some(branch) = update.branch() else {
            continue;
        };
        for rev in reference_revs(git, update, max) {
            planned.push((branch.to_owned(), reference_commit(git, &rev)));
        }
    }
    planned
}

fn update(old: &str, new: &str, refname: &str) -> RefUpdate {
    RefUpdate {
        old: old.into(),
        new: new.into(),
        refname: refname.into(),
    }
}

/// Adds to `main` a commit git itself would not write: author and message not UTF-8, and no
/// encoding header saying so.
fn raw_commit(dir: &Path, author: &[u8], message: &[u8]) {
    let mut object = format!(
        "tree {}\nparent {}\nauthor ",
        git(dir, &["rev-parse", "HEAD^{tree}"]),
        git(dir, &["rev-parse", "HEAD"])
    )
    .into_bytes();
    object.extend_from_slice(author);
    object.extend_from_slice(b"\ncommitter Jane Doe <jdoe@example.com> 1700000000 +0000\n\n");
    object.extend_from_slice(message);
    std::fs::write(dir.join("object"), object).unwrap();
    let rev = git(dir, &["hash-object", "-t", "commit", "-w", "object"]);
    std::fs::remove_file(dir.join("object")).unwrap();
    git(dir, &["update-ref", "refs/heads/main", &rev]);
}

/// A repository with every kind of commit on `main`, a branch `topic` off it, and a branch
/// `f41` at a commit `main` already has. Returns the root commit.
fn corpus(dir: &Path) -> String {
    git(dir, &["init", "-q", "-b", "main"]);
    let root = commit(dir, b"Dockerfile", b"FROM scratch\n", "Initial Dockerfile");
    commit(
        dir,
        b"logo.png",
        b"\x89PNG\0\0\x01binary\0",
        "Add a binary logo",
    );
    commit(dir, b"a.txt", b"one\ntwo\nthree\nfour\nfive\n", "Add a.txt");
    std::fs::create_dir(dir.join("docs")).unwrap();
    git(dir, &["mv", "a.txt", "docs/renamed.txt"]);
    commit(
        dir,
        b"docs/renamed.txt",
        b"one\ntwo\nthree\nfour\nfive\nsix\n",
        "Rename",
    );
    commit(
        dir,
        b"latin1.txt",
        b"caf\xe9 cr\xe8me\n",
        "Not UTF-8 content",
    );
    commit(dir, b"caf\xe9.txt", b"x\n", "A name that is not UTF-8");
    commit(dir, b"Dockerfile", b"FROM scratch\nRUN true\n", "");
    git(
        dir,
        &[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "Empty\n\nWith a body.\n\n",
        ],
    );
    std::fs::write(dir.join("msg"), b"R\xe9sum\xe9\n\nbody \xff\n").unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nRUN false\n").unwrap();
    git(dir, &["commit", "-q", "-a", "-F", "msg"]);
    std::fs::write(dir.join("msg"), b"Encoded L\xe4tin-1\n").unwrap();
    git(
        dir,
        &[
            "-c",
            "i18n.commitEncoding=ISO-8859-1",
            "commit",
            "-q",
            "--allow-empty",
            "-F",
            "msg",
        ],
    );
    std::fs::remove_file(dir.join("msg")).unwrap();
    raw_commit(
        dir,
        b"J\xf6rg <j@example.com> 1700000000 +0100",
        b"Bad \xff bytes\n\nand \xfe\n",
    );
    git(dir, &["rm", "-q", "latin1.txt"]);
    git(dir, &["commit", "-q", "-m", "Delete"]);
    // A clean merge: `git show` gives a numstat against the first parent, no patch.
    git(dir, &["checkout", "-q", "-b", "side"]);
    commit(dir, b"side.txt", b"side\n", "Side");
    git(dir, &["checkout", "-q", "main"]);
    commit(dir, b"main.txt", b"main\n", "Main");
    git(dir, &["merge", "-q", "--no-ff", "--no-edit", "side"]);
    // A conflicted merge resolved as neither side: a dense combined patch.
    git(dir, &["checkout", "-q", "-b", "other", "HEAD~1"]);
    commit(dir, b"Dockerfile", b"FROM scratch\nRUN other\n", "Other");
    git(dir, &["checkout", "-q", "main"]);
    commit(dir, b"Dockerfile", b"FROM scratch\nRUN mine\n", "Mine");
    let merged = Command::new("git")
        .args(["merge", "-q", "other"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!merged.status.success(), "the merge conflicts");
    commit(
        dir,
        b"Dockerfile",
        b"FROM scratch\nRUN both\n",
        "Merge other, by hand",
    );
    git(dir, &["branch", "-D", "-q", "side", "other"]);
    let mut big = Vec::new();
    while big.len() <= MAX_PATCH_BYTES {
        big.extend_from_slice("é and a line long enough to grow\n".as_bytes());
    }
    commit(dir, b"big.txt", &big, "A patch above the limit");
    std::fs::set_permissions(
        dir.join("Dockerfile"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    git(dir, &["commit", "-q", "-a", "-m", "Mode only"]);
    git(dir, &["branch", "f41", "HEAD~3"]);
    git(dir, &["checkout", "-q", "-b", "topic"]);
    commit(dir, b"topic.txt", b"topic\n", "Topic one");
    commit(dir, b"topic.txt", b"topic\ntwo\n", "Topic two");
    git(dir, &["checkout", "-q", "main"]);
    git(dir, &["tag", "v1"]);
    root
}

#[test]
fn one_git_log_says_what_rev_list_and_git_show_said() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let root = corpus(dir);
    let head = |name: &str| git(dir, &["rev-parse", name]);
    let updates = [
        update(&root, &head("main"), "refs/heads/main"),
        update(ZERO, &head("topic"), "refs/heads/topic"),
        update(ZERO, &head("f41"), "refs/heads/f41"),
        update(&root, ZERO, "refs/heads/gone"),
        update(ZERO, &head("v1"), "refs/tags/v1"),
    ];
    let repo = Git::new(dir);
    for max in [100, 3, 1, 0] {
        let planned = planned_commits(&repo, &updates, max).unwrap();
        assert_eq!(planned, reference(&repo, &updates, max), "max {max}");
    }
    // And the corpus has what it is for.
    let planned = planned_commits(&repo, &updates, 100).unwrap();
    let commits: Vec<&CommitInfo> = planned.iter().map(|(_, commit)| commit).collect();
    let branches: Vec<&str> = planned.iter().map(|(branch, _)| branch.as_str()).collect();
    assert_eq!(branches.iter().filter(|b| **b == "topic").count(), 2);
    assert!(!branches.contains(&"f41"));
    let by_summary = |summary: &str| {
        commits
            .iter()
            .find(|commit| commit.summary == summary)
            .unwrap_or_else(|| panic!("no commit {summary:?}"))
    };
    let clean_merge = by_summary("Merge branch 'side'");
    assert_eq!(clean_merge.patch, "");
    assert_eq!(clean_merge.stats.files, [("side.txt".to_owned(), 1, 0)]);
    assert!(
        by_summary("Merge other, by hand")
            .patch
            .starts_with("diff --cc")
    );
    assert!(
        by_summary("A patch above the limit")
            .patch
            .ends_with(&format!("[patch truncated at {MAX_PATCH_BYTES} bytes]\n"))
    );
    assert_eq!(by_summary("").message, "\n");
    assert!(by_summary("Résumé").message.starts_with("Résumé\n\nbody "));
    assert_eq!(by_summary("Encoded Lätin-1").message, "Encoded Lätin-1\n");
    let raw = by_summary("Bad \u{fffd} bytes");
    assert_eq!(
        (raw.name.as_str(), raw.message.as_str()),
        ("J\u{fffd}rg", "Bad \u{fffd} bytes\n\nand \u{fffd}\n")
    );
    assert_eq!(
        by_summary("Add a binary logo").stats.files,
        [("logo.png".to_owned(), 0, 0)]
    );
    assert!(
        by_summary("Rename").stats.files[0]
            .0
            .contains("=> docs/renamed.txt")
    );
}

#[test]
fn the_first_push_of_a_repository_announces_its_root() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    git(dir, &["init", "-q", "-b", "main"]);
    commit(dir, b"Dockerfile", b"FROM scratch\n", "Initial Dockerfile");
    commit(dir, b"Dockerfile", b"FROM scratch\nRUN true\n", "Second");
    let updates = [update(
        ZERO,
        &git(dir, &["rev-parse", "main"]),
        "refs/heads/main",
    )];
    let repo = Git::new(dir);
    let planned = planned_commits(&repo, &updates, 100).unwrap();
    assert_eq!(planned.len(), 2);
    assert_eq!(planned, reference(&repo, &updates, 100));
}
