//! `osbs container-build`: fedpkg's verb. Infers the repository, branch and commit from the
//! dist-git checkout it runs in (refusing a dirty or unpushed one), publishes an
//! `osbs.build.request`, finds the build the dispatcher recorded, and follows it.

use crate::config::CliSection;
use crate::context::{Context, build_outcome, print_stdout};
use crate::error::{CliError, Result};
use crate::fedmsg::{FedoraMessage, new_message_id};
use crate::git::{Git, RepoName, clone_url, repo_name};
use crate::render;
use osbs_common::Store;
use osbs_common::store::RequestOutcome;
use osbs_proto::events::{ArchOverride, BuildRequest};
use osbs_proto::names;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `osbs container-build` options: fedpkg's, plus overrides of what git would say.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuildArgs {
    /// Koji build target [default: <branch>-<namespace>-candidate]
    #[arg(long)]
    pub target: Option<String>,
    /// URL of a yum .repo file to build with (repeatable)
    #[arg(long = "repo-url", value_name = "URL")]
    pub repo_urls: Vec<String>,
    /// Scratch build: pushed under a unique tag only, never imported into Koji
    #[arg(long, conflicts_with = "isolated")]
    pub scratch: bool,
    /// Isolated build (a fix on top of a released image); needs --build-release
    #[arg(long, requires = "build_release")]
    pub isolated: bool,
    /// Release of an isolated build, like 1.2 or 3.4.5
    #[arg(long, value_name = "RELEASE")]
    pub build_release: Option<String>,
    /// Koji build (NVR) to use as the parent image instead of the Dockerfile's FROM
    #[arg(long, value_name = "NVR")]
    pub koji_parent_build: Option<String>,
    /// Build only for these architectures
    #[arg(long, value_name = "ARCH", num_args = 1..)]
    pub arches: Vec<String>,
    /// Signing intent of the image's content
    #[arg(long, value_name = "INTENT")]
    pub signing_intent: Option<String>,
    /// ODCS compose to build with (repeatable)
    #[arg(long = "compose-id", value_name = "ID")]
    pub compose_ids: Vec<i64>,
    /// Return once the build is recorded, with its id, instead of following it
    #[arg(long)]
    pub nowait: bool,
    /// dist-git repository, as `name` or `namespace/name` [default: from the git remote]
    #[arg(long)]
    pub repo: Option<String>,
    /// Branch to build [default: the checked-out branch]
    #[arg(long)]
    pub branch: Option<String>,
    /// Commit to build (40 hex) [default: HEAD]
    #[arg(long)]
    pub commit: Option<String>,
    /// Clone URL of the repository [default: the git remote's]
    #[arg(long, value_name = "URL")]
    pub git_url: Option<String>,
}

/// What git says about the checkout the CLI runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub toplevel: PathBuf,
    /// `git status --porcelain --untracked-files=no` is not empty.
    pub dirty: bool,
    /// `None` on a detached HEAD.
    pub branch: Option<String>,
    pub head: String,
    pub remote: String,
    pub remote_url: Option<String>,
    /// Remote-tracking branches of `remote` that contain the commit to build.
    pub pushed: bool,
}

/// Reads the checkout at `dir` (`None` when `dir` is not in a git work tree). `commit` is
/// the commit whose presence on the remote is checked (HEAD when `None`).
pub fn read_checkout(
    dir: &Path,
    section: &CliSection,
    commit: Option<&str>,
) -> Result<Option<Checkout>> {
    let git = Git::new(dir);
    let Some(toplevel) = git.ask(&["rev-parse", "--show-toplevel"]) else {
        return Ok(None);
    };
    let dirty = !git
        .run(&["status", "--porcelain", "--untracked-files=no"])?
        .trim()
        .is_empty();
    let local = git.ask(&["symbolic-ref", "--quiet", "--short", "HEAD"]);
    let head = git.run(&["rev-parse", "HEAD"])?.trim().to_owned();
    let remote = local
        .as_ref()
        .and_then(|branch| git.ask(&["config", &format!("branch.{branch}.remote")]))
        .unwrap_or_else(|| section.git_remote.clone());
    // The branch built is the one the local branch tracks on dist-git, as fedpkg does
    // (a local `wip` tracking `f41` builds `f41`).
    let branch = local.map(|local| {
        git.ask(&["config", &format!("branch.{local}.merge")])
            .as_deref()
            .map(tracked_branch)
            .unwrap_or(local)
    });
    let remote_url = git.ask(&["remote", "get-url", &remote]);
    let wanted = commit.unwrap_or(&head);
    let pushed = git
        .ask(&[
            "for-each-ref",
            "--contains",
            wanted,
            "--format=%(refname)",
            &format!("refs/remotes/{remote}/"),
        ])
        .is_some();
    Ok(Some(Checkout {
        toplevel: PathBuf::from(toplevel),
        dirty,
        branch,
        head,
        remote,
        remote_url,
        pushed,
    }))
}

/// `refs/heads/f41` → `f41` (the `branch.<name>.merge` value).
fn tracked_branch(merge: &str) -> String {
    merge
        .strip_prefix("refs/heads/")
        .unwrap_or(merge)
        .to_owned()
}

/// Everything the request needs, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub git_url: String,
    pub name: RepoName,
    pub branch: String,
    pub commit: String,
    pub target: String,
}

fn is_full_commit(commit: &str) -> bool {
    commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks the options as the dispatcher (and koji-containerbuild) would, before sending.
pub fn check_options(args: &BuildArgs) -> Result<()> {
    if args.scratch && args.isolated {
        return Err(CliError::Refused(
            "--scratch and --isolated cannot be used together: choose one".into(),
        ));
    }
    if let Some(release) = &args.build_release {
        let pattern = regex::Regex::new(r"^\d+\.\d+(\..+)?$").expect("a valid pattern");
        if args.isolated && !pattern.is_match(release) {
            return Err(CliError::Refused(format!(
                "--build-release {release:?} is not valid for an isolated build: use <major>.<minor>[.<more>], like 1.2"
            )));
        }
    }
    if args.isolated && args.build_release.is_none() {
        return Err(CliError::Refused(
            "--isolated needs --build-release: give the release to build, like 1.2".into(),
        ));
    }
    Ok(())
}

/// Resolves repository, branch, commit, URL and target from the options and the checkout,
/// refusing what fedpkg refuses: a dirty checkout, an unpushed commit.
pub fn resolve(
    args: &BuildArgs,
    checkout: Option<&Checkout>,
    section: &CliSection,
) -> Result<Resolved> {
    let outside = || {
        CliError::Refused(
            "not in a dist-git checkout: run `osbs container-build` inside one, or give --git-url, --branch and --commit".into(),
        )
    };
    if let Some(checkout) = checkout
        && args.commit.is_none()
        && checkout.dirty
    {
        return Err(CliError::Refused(format!(
            "{} has uncommitted changes: commit and push them (`git status` shows them), then build",
            checkout.toplevel.display()
        )));
    }
    let branch = match (&args.branch, checkout.and_then(|c| c.branch.as_ref())) {
        (Some(branch), _) | (None, Some(branch)) => branch.clone(),
        (None, None) if checkout.is_some() => {
            return Err(CliError::Refused(
                "HEAD is detached: check out the branch to build, or give --branch".into(),
            ));
        }
        (None, None) => return Err(outside()),
    };
    let commit = match (&args.commit, checkout) {
        (Some(commit), _) => commit.clone(),
        (None, Some(checkout)) => checkout.head.clone(),
        (None, None) => return Err(outside()),
    };
    if !is_full_commit(&commit) {
        return Err(CliError::Refused(format!(
            "--commit {commit:?} is not a full 40-character commit id: give the whole hash (`git rev-parse {commit}`)"
        )));
    }
    if let Some(checkout) = checkout
        && args.git_url.is_none()
        && !checkout.pushed
    {
        return Err(CliError::Refused(format!(
            "commit {commit} is not pushed to {}: run `git push {} {branch}` first",
            checkout.remote, checkout.remote
        )));
    }
    let remote_url = match (&args.git_url, checkout) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(checkout)) => checkout
            .remote_url
            .as_ref()
            .map(|url| clone_url(url, &checkout.toplevel)),
        (None, None) => None,
    };
    let name = match &args.repo {
        Some(repo) => match repo.split_once('/') {
            Some((namespace, repo)) => RepoName {
                namespace: Some(namespace.to_owned()),
                repo: repo.to_owned(),
            },
            None => RepoName {
                namespace: remote_url
                    .as_deref()
                    .and_then(|url| repo_name(url, &section.git_namespaces))
                    .and_then(|name| name.namespace),
                repo: repo.clone(),
            },
        },
        None => remote_url
            .as_deref()
            .and_then(|url| repo_name(url, &section.git_namespaces))
            .ok_or_else(|| {
                CliError::Refused(
                    "cannot tell the repository from the git remote: give --repo <namespace>/<name> or --git-url".into(),
                )
            })?,
    };
    let namespace = name
        .namespace
        .clone()
        .unwrap_or_else(|| section.default_namespace.clone());
    let git_url = match (&args.git_url, section.git_base_url.is_empty(), remote_url) {
        (Some(url), _, _) => url.clone(),
        (None, false, _) => format!(
            "{}/{namespace}/{}.git",
            section.git_base_url.trim_end_matches('/'),
            name.repo
        ),
        (None, true, Some(url)) => url,
        (None, true, None) => {
            return Err(CliError::Refused(format!(
                "the checkout has no remote {:?}: give --git-url, or set [cli] git_remote",
                section.git_remote
            )));
        }
    };
    let target = args
        .target
        .clone()
        .unwrap_or_else(|| format!("{branch}-{namespace}-candidate"));
    Ok(Resolved {
        git_url,
        name: RepoName {
            namespace: Some(namespace),
            repo: name.repo,
        },
        branch,
        commit,
        target,
    })
}

/// The request the dispatcher reads, with fedpkg's options.
pub fn build_request(args: &BuildArgs, resolved: &Resolved, user: &str) -> BuildRequest {
    let mut request = BuildRequest::new(
        uuid::Uuid::new_v4().simple().to_string(),
        user,
        &resolved.git_url,
        &resolved.commit,
        resolved.branch.clone(),
        resolved.target.clone(),
    );
    let options = &mut request.opts;
    options.scratch = args.scratch.then_some(true);
    options.isolated = args.isolated.then_some(true);
    options.release = args.build_release.clone();
    options.yum_repourls = (!args.repo_urls.is_empty()).then(|| args.repo_urls.clone());
    options.arch_override =
        (!args.arches.is_empty()).then(|| ArchOverride::List(args.arches.clone()));
    options.koji_parent_build = args.koji_parent_build.clone();
    options.signing_intent = args.signing_intent.clone();
    options.compose_ids = (!args.compose_ids.is_empty()).then(|| args.compose_ids.clone());
    request
}

/// The message carrying `request` on `amq.topic` (`<topic_prefix>.osbs.build.request`), with
/// the headers fedora-messaging itself would set: the filter headers are the ones the
/// `osbs.build.request.v1` schema (proto/fedora-messaging) computes, the user and the
/// repository named by `src`, so that FMN finds the request under both.
pub fn request_message(
    request: &BuildRequest,
    topic_prefix: &str,
    sent_at_ms: i64,
    message_id: String,
) -> FedoraMessage {
    FedoraMessage::new(
        format!("{topic_prefix}.{}", names::TOPIC_BUILD_REQUEST),
        names::SCHEMA_BUILD_REQUEST,
        message_id,
        sent_at_ms,
        serde_json::to_value(request).expect("a BuildRequest always serializes"),
    )
    .with_filter("user", &request.user)
    .with_filter(
        "container",
        &crate::git::repo_name(&request.src, &[]).map_or_else(String::new, |name| name.repo),
    )
}

/// Waits for the dispatcher's answer to `request_id`: the build that answers it.
async fn wait_for_build(
    store: &Store,
    request_id: &str,
    message_id: &str,
    timeout: Duration,
) -> Result<(String, RequestOutcome)> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(outcome) = store.request_outcome(request_id).await? {
            return match (outcome.outcome.as_str(), outcome.build_id.clone()) {
                ("enqueued" | "duplicate", Some(id)) => Ok((id, outcome)),
                ("ignored", _) => Err(CliError::Refused(format!(
                    "the dispatcher does not build this repository or branch: {} (its [dispatcher] routing decides)",
                    outcome.reason
                ))),
                _ => Err(CliError::Refused(format!(
                    "the dispatcher refused the build request: {}",
                    outcome.reason
                ))),
            };
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CliError::Timeout(format!(
                "no dispatcher answered build request {request_id} (message {message_id}) within {}s: is osbs-dispatcher running? `osbs queue` shows whether osbs.events has a consumer",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn run(context: &Context, args: &BuildArgs) -> Result<()> {
    check_options(args)?;
    let section = &context.config.cli;
    let cwd = std::env::current_dir()
        .map_err(|error| CliError::Tool(format!("cannot read the current directory: {error}")))?;
    let checkout = read_checkout(&cwd, section, args.commit.as_deref())?;
    let resolved = resolve(args, checkout.as_ref(), section)?;
    let request = build_request(args, &resolved, &context.user());
    let request_id = request.request_id.clone().unwrap_or_default();
    let store = context.store().await?;
    let bus = context.bus().await?;
    let message = request_message(
        &request,
        &bus.config().topic_prefix,
        osbs_common::telemetry::now_ms(),
        new_message_id(),
    );
    let published = message.publish(&bus).await;
    bus.close().await;
    published?;
    let message_id = message.message_id;
    let progress = context.progress();
    progress.message(format!(
        "build request {request_id} sent: waiting for the dispatcher"
    ));
    let found = wait_for_build(&store, &request_id, &message_id, section.record_timeout()).await;
    progress.finish();
    let (id, outcome) = found?;
    let record = store.require(&id).await?;
    let project = format!(
        "{}/{}",
        resolved.name.namespace.as_deref().unwrap_or_default(),
        resolved.name.repo
    );
    if !context.json {
        let how = if outcome.outcome == "duplicate" {
            "the same build was already asked for"
        } else {
            "created"
        };
        print_stdout(&format!(
            "build {id} ({how}): {project} branch {} commit {} target {}\n",
            resolved.branch, resolved.commit, resolved.target
        ))?;
    }
    if args.nowait {
        return if context.json {
            context.print_json(&render::record_json(&record, None))
        } else {
            print_stdout(&format!(
                "follow it with `osbs watch-logs {id}`; `osbs status {id}` when it ends\n"
            ))
        };
    }
    let record = if context.json {
        // Scripts get the outcome, not the log.
        crate::logs::follow(
            &store,
            &id,
            section.build_timeout(),
            &crate::progress::Progress::new(false),
            &mut |_line: &str| {},
        )
        .await?
        .record
    } else {
        // A multi-arch build's arch logs are part of what the packager waits for, as
        // `osbs watch-logs` shows them.
        crate::watch_logs::print_logs(context, &store, &id, None).await?
    };
    let log_file = crate::logs::log_file_path(&record, &context.config.storage.artifacts_dir);
    if context.json {
        let mut value = render::record_json(&record, None);
        value["log_file"] = serde_json::json!(log_file);
        context.print_json(&value)?;
    } else {
        print_stdout(&crate::watch_logs::summary(&record, &log_file))?;
    }
    build_outcome(&record)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce";

    fn checkout() -> Checkout {
        Checkout {
            toplevel: PathBuf::from("/home/jdoe/httpd"),
            dirty: false,
            branch: Some("f41".into()),
            head: HEAD.into(),
            remote: "origin".into(),
            remote_url: Some("ssh://jdoe@pkgs.example.org/container/httpd".into()),
            pushed: true,
        }
    }

    fn refused(result: Result<Resolved>) -> String {
        match result {
            Err(CliError::Refused(text)) => text,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_clean_pushed_checkout_says_everything() {
        let section = CliSection::default();
        let resolved = resolve(&BuildArgs::default(), Some(&checkout()), &section).unwrap();
        assert_eq!(
            resolved.git_url,
            "ssh://jdoe@pkgs.example.org/container/httpd"
        );
        assert_eq!(resolved.name.repo, "httpd");
        assert_eq!(resolved.name.namespace.as_deref(), Some("container"));
        assert_eq!(resolved.branch, "f41");
        assert_eq!(resolved.commit, HEAD);
        assert_eq!(resolved.target, "f41-container-candidate");

        let anonymous = CliSection {
            git_base_url: "https://src.example.org/".into(),
            ..CliSection::default()
        };
        let resolved = resolve(&BuildArgs::default(), Some(&checkout()), &anonymous).unwrap();
        assert_eq!(
            resolved.git_url,
            "https://src.example.org/container/httpd.git"
        );
    }

    #[test]
    fn refuses_what_fedpkg_refuses() {
        let section = CliSection::default();
        let dirty = Checkout {
            dirty: true,
            ..checkout()
        };
        assert!(
            refused(resolve(&BuildArgs::default(), Some(&dirty), &section))
                .contains("uncommitted changes")
        );
        let unpushed = Checkout {
            pushed: false,
            ..checkout()
        };
        assert!(
            refused(resolve(&BuildArgs::default(), Some(&unpushed), &section))
                .contains("git push origin f41")
        );
        let detached = Checkout {
            branch: None,
            ..checkout()
        };
        assert!(
            refused(resolve(&BuildArgs::default(), Some(&detached), &section)).contains("--branch")
        );
        assert!(
            refused(resolve(&BuildArgs::default(), None, &section))
                .contains("not in a dist-git checkout")
        );
        let short = BuildArgs {
            commit: Some("3aa6642".into()),
            ..BuildArgs::default()
        };
        assert!(refused(resolve(&short, Some(&checkout()), &section)).contains("40-character"));
    }

    #[test]
    fn overrides_win_and_work_outside_a_checkout() {
        let args = BuildArgs {
            git_url: Some("file:///srv/git/docker/cockpit.git".into()),
            branch: Some("main".into()),
            commit: Some(HEAD.into()),
            target: Some("custom-target".into()),
            ..BuildArgs::default()
        };
        let resolved = resolve(&args, None, &CliSection::default()).unwrap();
        assert_eq!(resolved.name.namespace.as_deref(), Some("docker"));
        assert_eq!(resolved.name.repo, "cockpit");
        assert_eq!(resolved.target, "custom-target");
        let named = BuildArgs {
            repo: Some("container/other".into()),
            ..args
        };
        let resolved = resolve(&named, None, &CliSection::default()).unwrap();
        assert_eq!(resolved.name.repo, "other");
        // A dirty checkout does not matter when the commit is given.
        let dirty = Checkout {
            dirty: true,
            ..checkout()
        };
        let explicit = BuildArgs {
            commit: Some(HEAD.into()),
            ..BuildArgs::default()
        };
        assert!(resolve(&explicit, Some(&dirty), &CliSection::default()).is_ok());
    }

    #[test]
    fn a_request_travels_as_fedora_messaging_sends_it() {
        let resolved = resolve(
            &BuildArgs::default(),
            Some(&checkout()),
            &CliSection::default(),
        )
        .unwrap();
        let args = BuildArgs {
            scratch: true,
            arches: vec!["x86_64".into()],
            ..BuildArgs::default()
        };
        let request = build_request(&args, &resolved, "jdoe");
        let message = request_message(&request, "org.example", 1_736_936_523_000, "m-1".into());
        assert_eq!(message.routing_key, "org.example.osbs.build.request");
        assert_eq!(message.message_id, "m-1");
        let headers = message.to_json()["headers"].clone();
        assert_eq!(headers["fedora_messaging_schema"], "osbs.build.request.v1");
        assert_eq!(headers["fedora_messaging_user_jdoe"], true);
        assert_eq!(
            headers["fedora_messaging_container_httpd"], true,
            "{headers:#}"
        );
        assert_eq!(headers["sent-at"], "2025-01-15T10:22:03.000+00:00");
        let body: BuildRequest = serde_json::from_value(message.body).unwrap();
        assert_eq!(body, request);
        assert_eq!(body.opts.scratch, Some(true));
        assert_eq!(body.request_id.as_deref().map(str::len), Some(32));
    }

    #[test]
    fn the_tracked_branch_is_built() {
        assert_eq!(tracked_branch("refs/heads/f41"), "f41");
        assert_eq!(tracked_branch("main"), "main");
    }

    #[test]
    fn option_rules() {
        let ok = |args: BuildArgs| check_options(&args).is_ok();
        assert!(ok(BuildArgs::default()));
        assert!(ok(BuildArgs {
            isolated: true,
            build_release: Some("1.2".into()),
            ..BuildArgs::default()
        }));
        assert!(!ok(BuildArgs {
            isolated: true,
            build_release: Some("7".into()),
            ..BuildArgs::default()
        }));
        assert!(!ok(BuildArgs {
            isolated: true,
            ..BuildArgs::default()
        }));
        assert!(!ok(BuildArgs {
            scratch: true,
            isolated: true,
            build_release: Some("1.2".into()),
            ..BuildArgs::default()
        }));
    }
}
