//! `osbs git-hook` run by git as the post-receive hook of a real bare repository, where no
//! variable names the pusher (`USER`, `LOGNAME`, `LNAME`, `USERNAME`, `GL_USER`, `REMOTE_USER`
//! all unset, no `[cli] user`: a service, `sudo`, a container): the message names the account
//! of the hook's uid, as Fedora's hook (`getpass.getuser()`) does — never `unknown`.

use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::AMQPValue;
use osbs_common::bus::Bus;
use osbs_proto::names;
use osbs_testkit::TestEnv;
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str], unset: &[&str], env: &[(String, String)]) -> String {
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(dir)
        .envs(env.iter().cloned());
    for name in unset {
        command.env_remove(name);
    }
    let output = command
        .env("GIT_AUTHOR_NAME", "Jane Doe")
        .env("GIT_AUTHOR_EMAIL", "jdoe@example.com")
        .env("GIT_COMMITTER_NAME", "Jane Doe")
        .env("GIT_COMMITTER_EMAIL", "jdoe@example.com")
        .output()
        .expect("git runs (apt-get install git)");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_names_the_account_of_its_uid_when_no_variable_does() {
    let env = TestEnv::new();
    let bus = Bus::connect(&env.amqp, "cli-test").await.unwrap();
    bus.declare_topology().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("osbs.toml");
    std::fs::write(
        &config,
        "[cli]\ngit_web_url = \"https://src.example.org\"\n",
    )
    .unwrap();
    let bare = dir.path().join("dist-git/container/whoami.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--quiet", "--bare"], &[], &[]);
    let hook = bare.join("hooks/post-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nexec env OSBS_CONFIG={} {} git-hook\n",
            config.display(),
            env!("CARGO_BIN_EXE_osbs")
        ),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&hook, permissions).unwrap();
    let checkout = dir.path().join("checkout");
    git(
        dir.path(),
        &["clone", "--quiet", bare.to_str().unwrap(), "checkout"],
        &[],
        &[],
    );
    std::fs::write(checkout.join("Dockerfile"), "FROM scratch\n").unwrap();
    git(&checkout, &["add", "Dockerfile"], &[], &[]);
    git(&checkout, &["commit", "--quiet", "-m", "First"], &[], &[]);

    let unset = [
        "USER",
        "LOGNAME",
        "LNAME",
        "USERNAME",
        "GL_USER",
        "REMOTE_USER",
    ];
    git(
        &checkout,
        &["push", "--quiet", "origin", "HEAD:refs/heads/main"],
        &unset,
        &env.env_vars(),
    );

    let account = Command::new("id").arg("-un").output().unwrap();
    let account = String::from_utf8(account.stdout).unwrap().trim().to_owned();
    assert!(!account.is_empty());
    let channel = bus.channel().await.unwrap();
    let message = channel
        .basic_get(names::QUEUE_EVENTS.into(), BasicGetOptions::default())
        .await
        .unwrap()
        .expect("the hook published its git.receive");
    message.ack(BasicAckOptions::default()).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&message.data).unwrap();
    assert_eq!(body["agent"], account.as_str(), "{body}");
    assert_eq!(body["commit"]["username"], account.as_str());
    let headers = message.properties.headers().as_ref().unwrap();
    assert_eq!(
        headers
            .inner()
            .get(format!("fedora_messaging_user_{account}").as_str()),
        Some(&AMQPValue::Boolean(true))
    );
    bus.close().await;
}
