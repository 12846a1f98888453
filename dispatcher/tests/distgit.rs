//! Pushes to a real bare dist-git repository, announced as Fedora's post-receive hook does
//! (one `git.receive` per commit, oldest first, a new branch's whole history), against the
//! real RabbitMQ and Redis: the dispatcher builds each branch's tip once, records the other
//! pushed commits superseded, builds nothing for tags and deleted branches, names the pusher,
//! and waits for dist-git when it is unreachable.

mod support;

use lapin::types::AMQPValue;
use osbs_proto::StateEvent;
use osbs_proto::v1::{BuildJob, BuildState};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::distgit::{DistGit, git};
use support::{Event, Harness, PATIENCE};

async fn start() -> Harness {
    Harness::start_with(|config| config.resolve_push_tip = true).await
}

fn unique(name: &str) -> String {
    format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Publishes `events` in order and waits until the dispatcher settled them (`settled`: the
/// events settled before, counted on).
async fn publish_all(harness: &Harness, events: &[Event], settled: &mut u64) {
    for event in events {
        harness.publish(event).await;
    }
    *settled += events.len() as u64;
    harness.wait_for_events(*settled).await;
}

fn commits(jobs: &[(BuildJob, u8)]) -> Vec<String> {
    jobs.iter().map(|(job, _)| job.commit.clone()).collect()
}

/// The state events of one commit (the event's `url` ends with `#<commit>`).
fn of_commit<'a>(events: &'a [StateEvent], commit: &str) -> Vec<&'a StateEvent> {
    let suffix = format!("#{commit}");
    events
        .iter()
        .filter(|event| {
            event
                .url
                .as_deref()
                .is_some_and(|url| url.ends_with(&suffix))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_three_commits_builds_its_tip_once_in_any_order() {
    let harness = start().await;
    let changes = harness.watch_state_changes().await;
    let repo = unique("hello");
    let mut dist_git = DistGit::create(harness.dist_git.path(), "container", &repo, "packager1");
    let mut settled = 0;

    let first = dist_git.commit("first");
    let events = dist_git.push(&["HEAD:refs/heads/f41"]);
    assert_eq!(DistGit::revs(&events), std::slice::from_ref(&first));
    publish_all(&harness, &events, &mut settled).await;

    let series: Vec<String> = ["a", "b", "c"].map(|s| dist_git.commit(s)).to_vec();
    let events = dist_git.push(&["HEAD:refs/heads/f41"]);
    assert_eq!(
        DistGit::revs(&events),
        series,
        "one message per commit, oldest first"
    );
    publish_all(&harness, &events, &mut settled).await;

    let jobs = harness.jobs().await;
    assert_eq!(
        commits(&jobs),
        [first.clone(), series[2].clone()],
        "only tips are built"
    );
    let (tip_job, _) = &jobs[1];
    assert_eq!(
        tip_job.submitter, "packager1",
        "the pusher, from the event's agent"
    );
    assert_eq!(tip_job.branch, "f41");

    // The same three messages again, newest first (a republish, another order): nothing new.
    let mut again: Vec<Event> = events.iter().map(Event::republished).collect();
    again.reverse();
    publish_all(&harness, &again, &mut settled).await;
    // A second series published newest first: the tip is built once, from the first message.
    let series2: Vec<String> = ["d", "e", "f"].map(|s| dist_git.commit(s)).to_vec();
    let mut events2 = dist_git.push(&["HEAD:refs/heads/f41"]);
    events2.reverse();
    publish_all(&harness, &events2, &mut settled).await;
    assert_eq!(commits(&harness.jobs().await), [series2[2].clone()]);

    let deliveries = harness.drain(&changes).await;
    let events: Vec<StateEvent> = deliveries
        .iter()
        .map(|delivery| StateEvent::from_json(&delivery.data).unwrap())
        .collect();
    for (stale, tip) in [
        (&series[0], &series[2]),
        (&series[1], &series[2]),
        (&series2[0], &series2[2]),
    ] {
        let states: Vec<_> = of_commit(&events, stale)
            .iter()
            .map(|e| e.new_state)
            .collect();
        assert_eq!(
            states,
            [BuildState::Queued, BuildState::Superseded],
            "{stale}"
        );
        let superseded = of_commit(&events, stale)[1];
        assert!(
            superseded.reason.contains(&format!("the tip is {tip}")),
            "{}",
            superseded.reason
        );
    }
    // The first tip was queued once, and superseded only by the second series' build.
    let first_tip = of_commit(&events, &series[2]);
    assert_eq!(
        first_tip.iter().map(|e| e.new_state).collect::<Vec<_>>(),
        [BuildState::Queued, BuildState::Superseded]
    );
    assert!(
        first_tip[1].reason.contains("a newer commit"),
        "{}",
        first_tip[1].reason
    );
    // Every event names the pusher, the repository and the source, in body and headers.
    for (delivery, event) in deliveries.iter().zip(&events) {
        assert_eq!(event.owner, "packager1");
        assert_eq!(event.namespace.as_deref(), Some("container"));
        assert!(event.url.as_deref().unwrap().starts_with("file://"));
        let headers = delivery.properties.headers().as_ref().unwrap();
        for name in [
            "fedora_messaging_user_packager1".to_owned(),
            format!("fedora_messaging_container_{repo}"),
        ] {
            assert_eq!(
                headers.inner().get(name.as_str()),
                Some(&AMQPValue::Boolean(true)),
                "{name}"
            );
        }
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_branches_force_pushes_tags_and_deletions() {
    let harness = start().await;
    let repo = unique("branches");
    let mut dist_git = DistGit::create(harness.dist_git.path(), "container", &repo, "packager2");
    let mut settled = 0;

    // A new branch pushed with its history: one message per commit, one build of the tip.
    let history: Vec<String> = ["a", "b", "c", "d"].map(|s| dist_git.commit(s)).to_vec();
    let events = dist_git.push(&["HEAD:refs/heads/f41"]);
    assert_eq!(DistGit::revs(&events), history);
    publish_all(&harness, &events, &mut settled).await;
    assert_eq!(commits(&harness.jobs().await), [history[3].clone()]);

    // Another new branch from the same history: its whole history again, one build.
    let events = dist_git.push(&["HEAD:refs/heads/f42"]);
    assert_eq!(events.len(), 4);
    publish_all(&harness, &events, &mut settled).await;
    let jobs = harness.jobs().await;
    assert_eq!(commits(&jobs), [history[3].clone()]);
    assert_eq!(
        jobs[0].0.target.as_ref().unwrap().name,
        "f42-container-candidate"
    );

    // dist-git packs its refs now and then (`git gc`): the heads are read from packed-refs,
    // a ref updated after from its loose file again, a packed ref deleted is gone.
    git(&dist_git.bare, &["pack-refs", "--all"]);
    assert!(!dist_git.bare.join("refs/heads/f41").exists(), "packed");
    // A force-push: both sides of the rewrite are announced; the new tip is built.
    git(&dist_git.work, &["reset", "--quiet", "--hard", &history[1]]);
    let rewritten = dist_git.commit("rewritten");
    let events = dist_git.push(&["+HEAD:refs/heads/f41"]);
    assert_eq!(events.len(), 3, "new...old: the rewritten commit and c, d");
    publish_all(&harness, &events, &mut settled).await;
    assert_eq!(commits(&harness.jobs().await), [rewritten]);

    // A force-push back to an older commit (announced only by what it removed): the branch's
    // tip b is built, although b was superseded when it was pushed.
    git(&dist_git.work, &["reset", "--quiet", "--hard", &history[1]]);
    let events = dist_git.push(&["+HEAD:refs/heads/f41"]);
    assert!(!DistGit::revs(&events).contains(&history[1]));
    publish_all(&harness, &events, &mut settled).await;
    assert_eq!(commits(&harness.jobs().await), [history[1].clone()]);

    // Tags: the hook announces a tag's history under the tag's name; no branch, no build.
    let f42_message = dist_git.message(&history[3], "f42");
    git(&dist_git.work, &["tag", "f41-1.0"]);
    git(&dist_git.work, &["tag", "-a", "-m", "release", "f41-1.1"]);
    let events = dist_git.push(&["refs/tags/f41-1.0", "refs/tags/f41-1.1"]);
    assert_eq!(events.len(), 4, "two commits of history per tag");
    publish_all(&harness, &events, &mut settled).await;
    // A branch deletion: the hook sends nothing; a late message of the deleted branch builds
    // nothing either.
    assert!(dist_git.push(&[":refs/heads/f42"]).is_empty());
    publish_all(&harness, &[f42_message], &mut settled).await;
    assert!(harness.jobs().await.is_empty());
    assert_eq!(
        harness
            .counter("osbs_dispatcher_ignored_total{reason=\"not_a_branch\"}")
            .await,
        5
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_dist_git_delays_the_build_and_loses_nothing() {
    let harness = start().await;
    let repo = unique("away");
    let mut dist_git = DistGit::create(harness.dist_git.path(), "container", &repo, "packager3");
    let tip = dist_git.commit("only");
    let events = dist_git.push(&["HEAD:refs/heads/f41"]);
    let away = dist_git.bare.with_extension("away");
    std::fs::rename(&dist_git.bare, &away).unwrap();
    harness.publish(&events[0]).await;
    let retried = "osbs_dispatcher_retries_total{reason=\"dist_git\"}";
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while harness.counter(retried).await < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no dist-git retry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        harness.jobs().await.is_empty(),
        "nothing built while dist-git is away"
    );
    std::fs::rename(&away, &dist_git.bare).unwrap();
    harness.wait_for_events(1).await;
    assert_eq!(commits(&harness.jobs().await), [tip]);
    harness.stop().await;
}

/// A venv with Fedora's hook from PyPI: `$OSBS_FEDORA_HOOK_VENV`, else one made (once) under
/// the target directory with `python3 -m venv` and `pip install fedora-messaging-git-hook`.
fn fedora_hook_venv() -> std::path::PathBuf {
    let venv = std::env::var_os("OSBS_FEDORA_HOOK_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("fedora-hook-venv"));
    if venv.join("bin/fedora-messaging-git-hook").exists() {
        return venv;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 runs (apt-get install python3-venv)");
    assert!(made.success(), "python3 -m venv {} failed", venv.display());
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "fedora-messaging-git-hook"])
        .status()
        .unwrap();
    assert!(
        installed.success(),
        "pip install fedora-messaging-git-hook failed (PyPI unreachable? point \
         OSBS_FEDORA_HOOK_VENV at a venv that has it)"
    );
    venv
}

/// Who Fedora's hook says pushed: Python's `getpass.getuser()` in this environment.
fn getpass_getuser() -> String {
    ["LOGNAME", "USER", "LNAME", "USERNAME"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| {
            let output = Command::new("id").arg("-un").output().unwrap();
            String::from_utf8(output.stdout).unwrap().trim().to_owned()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedoras_own_hook_from_pypi_gives_one_build_of_each_pushed_tip() {
    let venv = fedora_hook_venv();
    let harness = start().await;
    let repo = unique("fedora");
    let mut dist_git = DistGit::create(harness.dist_git.path(), "container", &repo, "unused");
    let config = dist_git.bare.join("fedora-messaging.toml");
    std::fs::write(
        &config,
        format!(
            "amqp_url = \"{}\"\npublish_exchange = \"amq.topic\"\ntopic_prefix = \"{}\"\n\n\
             [consumer_config]\nwith_namespace = true\n\
             url_template = \"https://src.example.org/{{repo_fullname}}/c/{{rev}}?branch={{branch}}\"\n",
            harness.env.amqp.url.expose(),
            harness.env.amqp.topic_prefix,
        ),
    )
    .unwrap();
    std::fs::write(
        dist_git.bare.join("hooks/post-receive"),
        format!(
            "#!/bin/sh\nexec {} --config {}\n",
            venv.join("bin/fedora-messaging-git-hook").display(),
            config.display()
        ),
    )
    .unwrap();

    // A new branch with three commits: the hook sends three messages; one build.
    let series: Vec<String> = ["a", "b", "c"].map(|s| dist_git.commit(s)).to_vec();
    dist_git.push(&["HEAD:refs/heads/f41"]);
    harness.wait_for_events(3).await;
    let jobs = harness.jobs().await;
    assert_eq!(commits(&jobs), [series[2].clone()]);
    assert_eq!(jobs[0].0.submitter, getpass_getuser(), "the hook's agent");
    // Three more in one push: three messages; one build of the new tip.
    let series: Vec<String> = ["d", "e", "f"].map(|s| dist_git.commit(s)).to_vec();
    dist_git.push(&["HEAD:refs/heads/f41"]);
    harness.wait_for_events(6).await;
    assert_eq!(commits(&harness.jobs().await), [series[2].clone()]);
    harness.stop().await;
}
