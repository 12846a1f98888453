//! Bad input of issue 4 (and a Dockerfile that fails to build, issue 2): each build ends
//! `failed` with a one-line reason a packager understands — in the record, the build log's
//! last line, the `BuildResult` and the external state event — and the worker goes on to
//! the next job.

mod support;

use osbs_proto::names;
use osbs_proto::v1::{BuildOptions, BuildState};
use support::*;

struct Case {
    repo: &'static str,
    /// The reason must contain this.
    expect: String,
    job: osbs_proto::v1::BuildJob,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_fails_with_a_reason_and_the_worker_goes_on() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness
        .start_worker(|config| config.worker.concurrency = 2)
        .await;
    let labels = |name: &str| format!("LABEL com.redhat.component={name} name={name} version=1\n");
    let good_labels = labels(&format!("bad-{}", harness.tag));
    let payload = b"lookaside payload".to_vec();
    let hash = sha512_hex(&payload);
    harness.files.put(
        &format!("/repo/pkgs/container/mismatch/payload.tgz/sha512/{hash}/payload.tgz"),
        b"something else".to_vec(),
    );
    let mut cases = Vec::new();
    let mut case = |repo: &'static str, files: Vec<(&str, String)>, expect: &str| {
        let owned: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(path, text)| (*path, text.as_bytes()))
            .collect();
        let (url, commit) = harness.repo(repo, &owned);
        cases.push(Case {
            repo,
            expect: expect.to_owned(),
            job: harness.job(repo, &url, &commit),
        });
    };
    case(
        "no-from",
        vec![(
            "Dockerfile",
            format!("# just a comment\nRUN true\n{good_labels}"),
        )],
        "comes before the first FROM",
    );
    case(
        "empty-dockerfile",
        vec![("Dockerfile", "# nothing here\n".to_owned())],
        "has no FROM instruction",
    );
    case(
        "no-labels",
        vec![("Dockerfile", format!("FROM {base}\nLABEL name=x\n"))],
        "lacks the required label(s)",
    );
    case(
        "other-registry",
        vec![(
            "Dockerfile",
            format!("FROM quay.io/fedora/fedora:41\n{good_labels}"),
        )],
        "names registry quay.io, but this target builds only from 127.0.0.1:5000",
    );
    case(
        "dotdot",
        vec![
            ("Dockerfile", format!("FROM {base}\n{good_labels}")),
            ("sources", format!("SHA512 (../../etc/passwd) = {hash}\n")),
        ],
        "may not contain '/'",
    );
    case(
        "absolute",
        vec![
            ("Dockerfile", format!("FROM {base}\n{good_labels}")),
            ("sources", format!("{}  /etc/shadow\n", md5_hex(b"x"))),
        ],
        "\"/etc/shadow\"",
    );
    case(
        "mismatch",
        vec![
            ("Dockerfile", format!("FROM {base}\n{good_labels}")),
            ("sources", format!("SHA512 (payload.tgz) = {hash}\n")),
        ],
        "checksum mismatch for payload.tgz",
    );
    case(
        "docker-fails",
        vec![(
            "Dockerfile",
            format!("FROM {base}\nRUN echo about to fail && exit 3\n{good_labels}"),
        )],
        "returned a non-zero code: 3",
    );
    case(
        "yum-file-url",
        vec![("Dockerfile", format!("FROM {base}\n{good_labels}"))],
        "yum repo URL \"file:///etc/passwd\" is not allowed",
    );
    case(
        "bad-rev",
        vec![("Dockerfile", format!("FROM {base}\n{good_labels}"))],
        "not found in",
    );
    case(
        "not-allowed-git",
        vec![("Dockerfile", format!("FROM {base}\n{good_labels}"))],
        "is not an allowed dist-git URL",
    );
    case(
        "missing-lookaside-file",
        vec![
            ("Dockerfile", format!("FROM {base}\n{good_labels}")),
            ("sources", format!("SHA512 (never-uploaded.tgz) = {hash}\n")),
        ],
        "not found at http://127.0.0.1",
    );
    for case in &mut cases {
        match case.repo {
            "yum-file-url" => {
                case.job.options = Some(BuildOptions {
                    yum_repourls: vec!["file:///etc/passwd".into()],
                    ..BuildOptions::default()
                })
            }
            "bad-rev" => {
                case.job.commit = "0123456789abcdef0123456789abcdef01234567".into();
                case.expect = format!(
                    "commit {} not found in {}",
                    case.job.commit, case.job.git_url
                );
            }
            "not-allowed-git" => {
                // A real repository, outside the allowed dist-git base.
                let elsewhere = harness.dir.path().join("elsewhere.git");
                std::fs::rename(
                    case.job.git_url.strip_prefix("file://").unwrap(),
                    &elsewhere,
                )
                .unwrap();
                case.job.git_url = format!("file://{}", elsewhere.display());
            }
            _ => {}
        }
        harness.submit(&case.job).await;
    }
    // The worker goes on to the next job: a good build queued behind the bad ones.
    let (url, commit) = harness.repo(
        "good-after-bad",
        &[(
            "Dockerfile",
            format!("FROM {base}\n{good_labels}").as_bytes(),
        )],
    );
    let good = harness.job("good-after-bad", &url, &commit);
    harness.submit(&good).await;

    let good_record = harness.wait_final(&good.build_id).await;
    assert_eq!(
        good_record.state,
        BuildState::Complete,
        "{:?}",
        good_record.fields
    );
    let mut records = Vec::new();
    for case in &cases {
        records.push(harness.wait_final(&case.job.build_id).await);
    }
    let results = harness.results().await;
    let events = harness.state_events().await;
    for (case, record) in cases.iter().zip(&records) {
        let log = harness.log(&case.job.build_id);
        let result = results
            .iter()
            .find(|result| result.build_id == case.job.build_id)
            .unwrap_or_else(|| panic!("{}: no result", case.repo));
        let error = assert_failed_with(record, &log, result, &case.expect);
        let event = events
            .iter()
            .find(|event| {
                event.build_id == case.job.build_id && event.new_state == BuildState::Failed
            })
            .unwrap_or_else(|| panic!("{}: no failed state event", case.repo));
        assert_eq!(event.reason, error, "{}", case.repo);
        println!("{:>22}: {error}", case.repo);
    }
    // Packager errors are done with: nothing waits for an operator.
    let dead = harness
        .take_all(&names::dead_queue(names::QUEUE_JOBS))
        .await;
    assert!(
        dead.is_empty(),
        "{} packager failures dead-lettered",
        dead.len()
    );
    worker.stop().await;
}

/// A lookaside cache that cannot be reached is the operator's problem: the build fails with
/// the reason and its job waits in `osbs.jobs.dead` for a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_lookaside_fails_and_dead_letters_the_job() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness
        .start_worker(|config| {
            config.worker.lookaside_url =
                "http://127.0.0.1:9/repo/pkgs/{repo}/{filename}/{hashtype}/{hash}/{filename}".into()
        })
        .await;
    let name = format!("unreachable-{}", harness.tag);
    let dockerfile =
        format!("FROM {base}\nLABEL com.redhat.component={name} name={name} version=1\n");
    let sources = format!("SHA512 (src.tgz) = {}\n", sha512_hex(b"x"));
    let (url, commit) = harness.repo(
        "unreachable",
        &[
            ("Dockerfile", dockerfile.as_bytes()),
            ("sources", sources.as_bytes()),
        ],
    );
    let job = harness.job("unreachable", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let results = harness.results().await;
    let error = assert_failed_with(
        &record,
        &harness.log(&job.build_id),
        &results[0],
        "lookaside cache file unreachable at http://127.0.0.1:9/",
    );
    let dead = harness
        .wait_messages(&names::dead_queue(names::QUEUE_JOBS), 1)
        .await;
    assert_eq!(dead.len(), 1);
    let reason =
        osbs_common::bus::header_string(&dead[0].delivery.properties, names::HEADER_DEAD_REASON)
            .unwrap();
    assert_eq!(reason, error);
    let dead_job: osbs_proto::v1::BuildJob =
        osbs_proto::Message::decode(dead[0].delivery.data.as_slice()).unwrap();
    assert_eq!(
        dead_job.build_id, job.build_id,
        "a replay keeps the build id"
    );
    worker.stop().await;
}
