//! Releases, targets and tagging as koji's own hub answers them (each expected fault below
//! is the text a real hub gave; tests/koji-hub/README.md says how it was run): the release
//! after an isolated build, a missing target and the calls naming it, and `tagBuild`'s
//! lock, permission, package-list and policy checks, in the call and again in its task.

mod common;

use common::{Client, sha256_hex};
use osbs_koji_hub::{HubConfig, KojiHub, RunningHub, TagSpec, TargetSpec, UserSpec};
use serde_json::{Value as Json, json};
use std::time::Duration;

const CANDIDATE: &str = "f41-container-candidate";

fn config() -> HubConfig {
    HubConfig {
        users: vec![
            UserSpec::new("osbs", Some("osbs")),
            UserSpec::new("releng", Some("releng")).with_perms(&["tag"]),
            UserSpec::new("kojiadmin", Some("admin")).with_perms(&["admin"]),
        ],
        content_generators: vec![("osbs".into(), vec!["osbs".into()])],
        tags: vec![
            TagSpec::new("locked-tag", &["httpd"]).locked(),
            TagSpec::new("perm-tag", &["httpd"]).with_perm("tag"),
        ],
        targets: vec![TargetSpec::named(CANDIDATE, &["httpd"])],
        // A tagging task runs at the next call: no test waits on a clock.
        tag_task_delay: Duration::ZERO,
        ..HubConfig::default()
    }
}

/// Imports `name-version-release` (one log) as `osbs`, without a reservation.
async fn import(client: &mut Client, name: &str, version: &str, release: &str) -> Json {
    let log = format!("log of {name}-{version}-{release}\n").into_bytes();
    let dir = format!("import/{name}-{version}-{release}");
    client
        .upload(&dir, "x.log", 0, log.clone(), false)
        .await
        .unwrap();
    let metadata = json!({
        "metadata_version": 0,
        "build": {"name": name, "version": version, "release": release, "source": "git#1",
                  "start_time": 1, "end_time": 2, "extra": {}},
        "buildroots": [{"id": 1, "host": {"os": "l", "arch": "x86_64"},
                        "content_generator": {"name": "osbs", "version": "1"},
                        "container": {"type": "docker", "arch": "x86_64"},
                        "tools": [], "components": []}],
        "output": [{"buildroot_id": 1, "filename": "x.log", "filesize": log.len(),
                    "checksum": sha256_hex(&log), "checksum_type": "sha256", "type": "log"}],
    });
    client
        .call("CGImport", vec![metadata, json!(dir)])
        .await
        .expect("import")
}

fn err(code: i32, text: &str) -> Result<Json, (i32, String)> {
    Err((code, text.to_owned()))
}

#[tokio::test]
async fn next_release_after_an_isolated_build_is_the_hubs() {
    let hub = KojiHub::start(config()).await.unwrap();
    let mut osbs = Client::login(&hub.url, "osbs", "osbs").await;
    let httpd = |version: &str| json!({"name": "httpd", "version": version});
    assert_eq!(
        osbs.call("getNextRelease", vec![httpd("1.0")]).await,
        Ok(json!("1"))
    );
    import(&mut osbs, "httpd", "1.0", "18").await;
    assert_eq!(
        osbs.call("getNextRelease", vec![httpd("1.0")]).await,
        Ok(json!("19"))
    );
    // The isolated build is the newest of 1.0: the hub increments its first number and
    // keeps the suffix (what atomic-reactor must then adjust is OSBS's business).
    import(&mut osbs, "httpd", "1.0", "18.1").await;
    assert_eq!(
        osbs.call("getNextRelease", vec![httpd("1.0")]).await,
        Ok(json!("19.1"))
    );
    assert_eq!(
        osbs.call("getNextRelease", vec![httpd("1.0"), json!(2)])
            .await,
        Ok(json!("20.1"))
    );
    assert_eq!(
        Client::new(&hub.url)
            .call("getNextRelease", vec![httpd("1.0")])
            .await,
        Ok(json!("19.1")),
        "no login needed"
    );
    for incr in [json!("x"), json!(null)] {
        assert_eq!(
            osbs.call("getNextRelease", vec![httpd("1.0"), incr]).await,
            err(1019, "incr parameter must be an integer")
        );
    }
    assert_eq!(
        osbs.call("getNextRelease", vec![json!({"version": "1.0"})])
            .await,
        err(1, "<class 'KeyError'>: 'name'")
    );
    assert_eq!(
        osbs.call("getNextRelease", vec![json!("httpd")]).await,
        err(
            1,
            "<class 'TypeError'>: string indices must be integers, not 'str'"
        )
    );
    import(&mut osbs, "httpd", "2.0", "1.2.3.4").await;
    assert_eq!(
        osbs.call("getNextRelease", vec![httpd("2.0")]).await,
        err(1005, "Unable to increment release value: 1.2.3.4")
    );
    osbs.call(
        "CGInitBuild",
        vec![
            json!("osbs"),
            json!({"name": "httpd", "version": "3.0", "release": "7"}),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        osbs.call("getNextRelease", vec![httpd("3.0")]).await,
        Ok(json!("8")),
        "a reservation counts"
    );
}

#[tokio::test]
async fn a_missing_target_and_the_calls_naming_it_fail_as_the_hubs() {
    let hub = KojiHub::start(config()).await.unwrap();
    let mut osbs = Client::login(&hub.url, "osbs", "osbs").await;
    let mut releng = Client::login(&hub.url, "releng", "releng").await;
    import(&mut osbs, "httpd", "1.0", "18").await;
    let target = osbs
        .call("getBuildTarget", vec![json!(CANDIDATE)])
        .await
        .unwrap();
    assert_eq!(target["build_tag_name"], json!("f41-container-build"));
    assert_eq!(target["dest_tag_name"], json!(CANDIDATE));
    assert_eq!(
        osbs.call("getBuildTarget", vec![json!("nope")]).await,
        Ok(json!(null))
    );
    let strict = json!({"strict": true});
    for (info, text) in [
        (json!("nope"), "No such build target: nope"),
        (json!(999), "No such build target: 999"),
    ] {
        assert_eq!(
            osbs.call_kw("getBuildTarget", vec![info], strict.clone())
                .await,
            err(1000, text)
        );
    }
    assert_eq!(
        osbs.call_kw("getTag", vec![json!("nope")], strict.clone())
            .await,
        err(1000, "No such tagInfo: 'nope'")
    );
    assert_eq!(
        osbs.call_kw("getTag", vec![json!(999)], strict).await,
        err(1000, "No such tagInfo: 999")
    );
    // Tagging into the missing target's tag: the build is looked up first.
    assert_eq!(
        osbs.call("tagBuild", vec![json!("nope"), json!("httpd-1.0-18")])
            .await,
        err(1000, "No such tagInfo: 'nope'")
    );
    assert_eq!(
        osbs.call("tagBuild", vec![json!("nope"), json!("httpd-9-9")])
            .await,
        err(1000, "No such build: 'httpd-9-9'")
    );
    assert_eq!(
        osbs.call("tagBuild", vec![json!(999), json!("httpd-1.0-18")])
            .await,
        err(1000, "No such tagInfo: 999")
    );
    assert_eq!(
        releng
            .call("tagBuildBypass", vec![json!("nope"), json!("httpd-1.0-18")])
            .await,
        err(1000, "No such tagInfo: 'nope'")
    );
    assert_eq!(
        osbs.call("getBuild", vec![json!(999), json!(true)]).await,
        err(1000, "No such build: 999")
    );
    assert_eq!(
        osbs.call("getBuild", vec![json!("nodash")]).await,
        err(1000, "invalid format: nodash")
    );
}

/// Calls `tagBuild` and, when it made a task, the task's result (the task runs first).
async fn tag(client: &mut Client, tag: &str, nvr: &str, force: bool) -> TagOutcome {
    let task = match client
        .call("tagBuild", vec![json!(tag), json!(nvr), json!(force)])
        .await
    {
        Ok(task) => task,
        Err(fault) => return TagOutcome::Refused(fault),
    };
    match client.call("getTaskResult", vec![task]).await {
        Ok(_) => TagOutcome::Tagged,
        Err(fault) => TagOutcome::TaskFailed(fault),
    }
}

#[derive(Debug, PartialEq)]
enum TagOutcome {
    Refused((i32, String)),
    Tagged,
    TaskFailed((i32, String)),
}

use TagOutcome::{Refused, Tagged, TaskFailed};

fn refused(code: i32, text: &str) -> TagOutcome {
    Refused((code, text.to_owned()))
}

async fn clients(hub: &RunningHub) -> (Client, Client, Client) {
    (
        Client::login(&hub.url, "osbs", "osbs").await,
        Client::login(&hub.url, "releng", "releng").await,
        Client::login(&hub.url, "kojiadmin", "admin").await,
    )
}

#[tokio::test]
async fn tag_build_checks_lock_permission_and_package_list_as_the_hub() {
    let hub = KojiHub::start(config()).await.unwrap();
    let (mut osbs, mut releng, mut admin) = clients(&hub).await;
    import(&mut osbs, "httpd", "1.0", "18").await;
    import(&mut osbs, "httpd", "1.0", "19").await;
    assert_eq!(
        Client::new(&hub.url)
            .call("tagBuild", vec![json!(CANDIDATE), json!("httpd-1.0-18")])
            .await,
        err(1004, "you must be logged in for this operation")
    );
    osbs.call(
        "CGInitBuild",
        vec![
            json!("osbs"),
            json!({"name": "httpd", "version": "3.0", "release": "7"}),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        tag(&mut osbs, CANDIDATE, "httpd-3.0-7", false).await,
        refused(1003, "build httpd-3.0-7 not complete: state BUILDING")
    );

    // A locked tag: only an admin's force gets in.
    for (user, force) in [
        ("osbs", false),
        ("osbs", true),
        ("releng", true),
        ("kojiadmin", false),
    ] {
        let client = match user {
            "osbs" => &mut osbs,
            "releng" => &mut releng,
            _ => &mut admin,
        };
        assert_eq!(
            tag(client, "locked-tag", "httpd-1.0-18", force).await,
            refused(1004, "tag is locked"),
            "{user} force={force}"
        );
    }
    assert_eq!(
        tag(&mut admin, "locked-tag", "httpd-1.0-18", true).await,
        Tagged
    );

    // A tag that needs a permission: force does not stand in for it.
    for force in [false, true] {
        assert_eq!(
            tag(&mut osbs, "perm-tag", "httpd-1.0-18", force).await,
            refused(1004, "tag requires tag permission")
        );
    }
    assert_eq!(
        tag(&mut releng, "perm-tag", "httpd-1.0-18", false).await,
        Tagged
    );

    // A package off the tag's list: an admin's force puts it on.
    let build_tag = "f41-container-build";
    for force in [false, true] {
        assert_eq!(
            tag(&mut osbs, build_tag, "httpd-1.0-18", force).await,
            refused(1003, "Package httpd not in list for f41-container-build")
        );
    }
    assert_eq!(
        tag(&mut admin, build_tag, "httpd-1.0-18", true).await,
        Tagged
    );
    assert_eq!(
        tag(&mut osbs, build_tag, "httpd-1.0-19", false).await,
        Tagged
    );

    // The default policy (none) lets anyone tag; twice, the task fails.
    assert_eq!(
        tag(&mut osbs, CANDIDATE, "httpd-1.0-18", false).await,
        Tagged
    );
    assert_eq!(
        tag(&mut osbs, CANDIDATE, "httpd-1.0-18", false).await,
        TaskFailed((
            1003,
            "build httpd-1.0-18 already tagged (f41-container-candidate)".into()
        ))
    );
    let tags = osbs
        .call("listTags", vec![json!("httpd-1.0-18")])
        .await
        .unwrap();
    let mut names: Vec<&str> = tags
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|tag| tag["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [build_tag, CANDIDATE, "locked-tag", "perm-tag"],
        "tagged once in each"
    );
    let perm_tag = osbs.call("getTag", vec![json!("perm-tag")]).await.unwrap();
    assert_eq!(
        (&perm_tag["perm"], &perm_tag["perm_id"], &perm_tag["locked"]),
        (&json!("tag"), &json!(11), &json!(false))
    );

    // tagBuildBypass: the tag permission, then the lock (force alone is not enough).
    assert_eq!(
        osbs.call(
            "tagBuildBypass",
            vec![json!(CANDIDATE), json!("httpd-1.0-19")]
        )
        .await,
        err(1004, "tag permission required (logged in as osbs)")
    );
    assert_eq!(
        Client::new(&hub.url)
            .call(
                "tagBuildBypass",
                vec![json!(CANDIDATE), json!("httpd-1.0-19")]
            )
            .await,
        err(1004, "tag permission required (user not logged in)")
    );
    for force in [false, true] {
        assert_eq!(
            releng
                .call(
                    "tagBuildBypass",
                    vec![json!("locked-tag"), json!("httpd-1.0-19"), json!(force)]
                )
                .await,
            err(1004, "tag is locked")
        );
    }
    assert_eq!(
        releng
            .call(
                "tagBuildBypass",
                vec![json!(CANDIDATE), json!("httpd-1.0-19")]
            )
            .await,
        Ok(json!(null))
    );
    assert_eq!(
        releng
            .call(
                "tagBuildBypass",
                vec![json!(CANDIDATE), json!("httpd-1.0-19")]
            )
            .await,
        err(
            1003,
            "build httpd-1.0-19 already tagged (f41-container-candidate)"
        )
    );
}

#[tokio::test]
async fn the_tagging_task_checks_again_as_its_owner() {
    let hub = KojiHub::start(config()).await.unwrap();
    let (mut osbs, ..) = clients(&hub).await;
    import(&mut osbs, "httpd", "1.0", "18").await;

    // Between the call and its task, an admin locks the tag: the task fails as the hub's
    // host.tagBuild does.
    let task = osbs
        .call("tagBuild", vec![json!(CANDIDATE), json!("httpd-1.0-18")])
        .await
        .unwrap();
    assert!(hub.edit_tag(CANDIDATE, |tag| tag.locked = true));
    assert_eq!(
        osbs.call("getTaskResult", vec![task.clone()]).await,
        err(1004, "tag is locked")
    );
    assert_eq!(
        osbs.call("getTaskInfo", vec![task]).await.unwrap()["state"],
        json!(5)
    );

    // The package leaves the tag's list: the host call names the tag by its id.
    assert!(hub.edit_tag(CANDIDATE, |tag| tag.locked = false));
    let task = osbs
        .call("tagBuild", vec![json!(CANDIDATE), json!("httpd-1.0-18")])
        .await
        .unwrap();
    let mut candidate_id = 0;
    assert!(hub.edit_tag(CANDIDATE, |tag| {
        tag.packages.clear();
        candidate_id = tag.id;
    }));
    assert_eq!(
        osbs.call("getTaskResult", vec![task]).await,
        err(
            1003,
            &format!("Package httpd not in list for {candidate_id}")
        )
    );
    assert!(hub.tagged(CANDIDATE).is_empty());

    assert_eq!(
        osbs.call("getTaskResult", vec![json!(9999)]).await,
        err(1000, "No such task")
    );
    assert_eq!(
        osbs.call("getTaskInfo", vec![json!(9999)]).await,
        Ok(json!(null))
    );
    assert_eq!(
        osbs.call_kw("getTaskInfo", vec![json!(9999)], json!({"strict": true}))
            .await,
        err(1000, "query returned no rows")
    );
    let slow = KojiHub::start(HubConfig {
        tag_task_delay: Duration::from_secs(3600),
        ..config()
    })
    .await
    .unwrap();
    let mut osbs = Client::login(&slow.url, "osbs", "osbs").await;
    import(&mut osbs, "httpd", "1.0", "18").await;
    let task = osbs
        .call("tagBuild", vec![json!(CANDIDATE), json!("httpd-1.0-18")])
        .await
        .unwrap();
    assert_eq!(
        osbs.call("getTaskResult", vec![task.clone()]).await,
        err(1000, &format!("Task {task} is not finished"))
    );
}

#[tokio::test]
async fn a_restrictive_tag_policy_refuses_as_the_hub() {
    let policy = "
        package frozen :: deny
        tag *-candidate && has_perm tag :: allow
        tag *-candidate :: deny only releng tags candidates
        tag other-* :: allow
        tag deny-* :: deny
    ";
    let mut config = config();
    config.tag_policy = Some(policy.into());
    for name in ["other-tag", "deny-tag", "plain-tag"] {
        config.tags.push(TagSpec::new(name, &["frozen", "web"]));
    }
    config.targets = vec![TargetSpec::named("x-candidate", &["frozen", "web"])];
    let hub = KojiHub::start(config).await.unwrap();
    let (mut osbs, mut releng, mut admin) = clients(&hub).await;
    import(&mut osbs, "frozen", "1", "1").await;
    import(&mut osbs, "web", "1", "1").await;

    assert_eq!(
        tag(&mut osbs, "x-candidate", "web-1-1", false).await,
        refused(1004, "policy violation (tag): only releng tags candidates")
    );
    assert_eq!(
        tag(&mut releng, "x-candidate", "web-1-1", false).await,
        Tagged
    );
    for (user, force) in [("osbs", false), ("releng", true), ("kojiadmin", false)] {
        let client = match user {
            "osbs" => &mut osbs,
            "releng" => &mut releng,
            _ => &mut admin,
        };
        assert_eq!(
            tag(client, "other-tag", "frozen-1-1", force).await,
            refused(1004, "policy violation (tag)"),
            "{user} force={force}"
        );
    }
    assert_eq!(
        tag(&mut admin, "other-tag", "frozen-1-1", true).await,
        Tagged
    );
    assert_eq!(
        tag(&mut osbs, "plain-tag", "web-1-1", false).await,
        refused(1004, "policy violation (tag): not covered by policy")
    );
    assert_eq!(
        tag(&mut osbs, "deny-tag", "web-1-1", false).await,
        refused(1004, "policy violation (tag)")
    );
    assert_eq!(tag(&mut osbs, "other-tag", "web-1-1", false).await, Tagged);

    // tagBuildBypass is held to the policy too; an admin's force overrides it.
    let bypass = |tag: &str, nvr: &str, force: bool| {
        ("tagBuildBypass", vec![json!(tag), json!(nvr), json!(force)])
    };
    let (method, args) = bypass("plain-tag", "frozen-1-1", false);
    assert_eq!(
        releng.call(method, args).await,
        err(1004, "policy violation (tag)")
    );
    let (method, args) = bypass("plain-tag", "web-1-1", false);
    assert_eq!(
        admin.call(method, args).await,
        err(1004, "policy violation (tag): not covered by policy")
    );
    let (method, args) = bypass("plain-tag", "web-1-1", true);
    assert_eq!(admin.call(method, args).await, Ok(json!(null)));

    let bad = KojiHub::start(HubConfig {
        tag_policy: Some("is_draft :: deny".into()),
        ..HubConfig::default()
    })
    .await
    .unwrap_err();
    assert!(
        bad.to_string().contains("missing test handler: is_draft"),
        "{bad}"
    );
}
