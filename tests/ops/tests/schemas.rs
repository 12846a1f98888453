//! OSBS's messages read by Fedora's own message library: the schema package in
//! `proto/fedora-messaging` installed next to fedora-messaging in a venv, the state events of
//! a real build and the CLI's build request taken off `amq.topic` as they went over the wire,
//! and fedora-messaging's consumer code parsing, validating and describing each one with the
//! package's schemas; also the package's own unit tests, so that CI runs them.

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use osbs_common::Bus;
use osbs_common::store::BuildRecord;
use osbs_ops_tests::{Kind, Options, World, expect_exit};
use osbs_proto::names;
use osbs_proto::v1::BuildState;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

const BUILD_LIMIT: Duration = Duration::from_secs(180);

/// The schema package's source.
fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/fedora-messaging")
}

/// Runs `program args` in `cwd`, panicking with its output and `fix` when it fails.
fn run(program: &Path, args: &[&str], cwd: &Path, fix: &str) -> std::process::Output {
    let output = std::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}. {fix}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?} failed ({}). {fix}\nstdout:\n{}\nstderr:\n{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A fingerprint of the package's files: a changed schema gets a fresh venv.
fn package_fingerprint(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut files = vec![dir.join("pyproject.toml"), dir.join("README.md")];
    let code =
        std::fs::read_dir(dir.join("osbs_messages")).expect("proto/fedora-messaging/osbs_messages");
    files.extend(code.flatten().map(|entry| entry.path()));
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files.iter().filter(|path| path.is_file()) {
        file.file_name().hash(&mut hasher);
        std::fs::read(file)
            .expect("a package file")
            .hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

/// The Python interpreter of a venv holding fedora-messaging and this package, made once
/// under `target/python/` per version of the package and reused after (a new venv is made
/// aside and renamed into place, so that concurrent test processes never see half of one).
fn venv_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let package = package_dir();
        let target = std::env::current_exe()
            .expect("test executable path")
            .ancestors()
            .nth(3)
            .expect("the target directory")
            .to_owned();
        let root = target.join("python");
        let venv = root.join(format!("osbs-messages-{}", package_fingerprint(&package)));
        let python = venv.join("bin/python");
        if venv.join(".ready").is_file() {
            return python;
        }
        std::fs::create_dir_all(&root).expect("target/python");
        let fresh = root.join(format!(".new-{}", uuid::Uuid::new_v4().simple()));
        let fresh_str = fresh.to_str().expect("a UTF-8 path");
        run(
            Path::new("python3"),
            &["-m", "venv", fresh_str],
            &root,
            "Python 3 with venv and pip is needed: apt-get install -y python3 python3-venv python3-pip",
        );
        run(
            &fresh.join("bin/python"),
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "fedora-messaging>=3.3,<4",
                package.to_str().expect("a UTF-8 path"),
            ],
            &root,
            "pip installs from PyPI: it must be reachable (or PIP_INDEX_URL name a mirror)",
        );
        std::fs::write(fresh.join(".ready"), "").expect("mark the venv ready");
        if std::fs::rename(&fresh, &venv).is_err() {
            // Another test process made it first: theirs is as good.
            assert!(venv.join(".ready").is_file(), "cannot move the venv to {}", venv.display());
            let _ = std::fs::remove_dir_all(&fresh);
        }
        python
    })
}

#[test]
fn the_schema_packages_own_unit_tests_pass() {
    let output = run(
        venv_python(),
        &["-m", "unittest", "discover", "-v", "-s", "tests"],
        &package_dir(),
        "the unit tests of proto/fedora-messaging fail",
    );
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(report.contains("\nOK"), "{report}");
    assert!(
        !report.contains("Ran 0 tests"),
        "no test was found: {report}"
    );
}

/// A header value as JSON, as pika hands it to fedora-messaging.
fn header_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::LongString(text) => json!(String::from_utf8_lossy(text.as_bytes())),
        AMQPValue::ShortString(text) => json!(text.as_str()),
        AMQPValue::Boolean(flag) => json!(flag),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        other => panic!("a header type fedora-messaging does not send: {other:?}"),
    }
}

/// A message as it went over the wire: routing key, raw body, properties.
fn wire_json(message: &lapin::message::BasicGetMessage) -> Value {
    let properties = &message.properties;
    let headers: serde_json::Map<String, Value> = properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .map(|(name, value)| (name.to_string(), header_json(value)))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "routing_key": message.routing_key.as_str(),
        "body": String::from_utf8(message.data.clone()).expect("a UTF-8 body"),
        "properties": {
            "content_type": properties.content_type().as_ref().map(|v| v.to_string()),
            "content_encoding": properties.content_encoding().as_ref().map(|v| v.to_string()),
            "delivery_mode": properties.delivery_mode(),
            "message_id": properties.message_id().as_ref().map(|v| v.to_string()),
            "headers": headers,
        },
    })
}

/// Declares `queue` of the test's own and binds it to `routing_key` on `amq.topic`.
async fn private_queue(bus: &Bus, queue: &str, routing_key: &str) {
    let channel = bus.channel().await.expect("a channel");
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.declare");
    channel
        .queue_bind(
            queue.into(),
            names::EXCHANGE_TOPIC.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.bind");
}

/// Takes messages off `queue` (acked) until `done` says the ones taken are all; panics with
/// `what` and the world's logs after `limit`.
async fn take_until(
    world: &World,
    bus: &Bus,
    queue: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let channel = bus.channel().await.expect("a channel");
    let deadline = tokio::time::Instant::now() + BUILD_LIMIT;
    let mut taken = Vec::new();
    loop {
        while let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
        {
            message.ack(BasicAckOptions::default()).await.expect("ack");
            taken.push(wire_json(&message));
        }
        if done(&taken) {
            return taken;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; taken: {taken:#?}\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The body of a wire message, parsed.
fn body(wire: &Value) -> Value {
    serde_json::from_str(wire["body"].as_str().expect("a body")).expect("a JSON body")
}

/// fedora-messaging's reading of each of `messages`, from the script run in the venv.
fn read_with_fedora_messaging(python: &Path, messages: &[Value]) -> Vec<Value> {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/read_messages.py");
    let mut child = std::process::Command::new(python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the venv's python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&serde_json::to_vec(messages).expect("JSON"))
        .expect("write the messages");
    let output = child.wait_with_output().expect("the script ends");
    assert!(
        output.status.success(),
        "read_messages.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

/// The filter headers (`fedora_messaging_<kind>_<name>`) among `headers`.
fn filter_headers(headers: &Value) -> serde_json::Map<String, Value> {
    const KINDS: [&str; 6] = ["user", "group", "rpm", "container", "module", "flatpak"];
    headers
        .as_object()
        .expect("headers")
        .iter()
        .filter(|(name, _)| {
            KINDS
                .iter()
                .any(|kind| name.starts_with(&format!("fedora_messaging_{kind}_")))
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// What every reading must say: validated by the package's own class, with no warning, and
/// the filter headers OSBS published are the ones fedora-messaging computes.
fn assert_read_cleanly(wire: &Value, read: &Value, class: &str) {
    assert_eq!(read["error"], Value::Null, "{read:#}\nof {wire:#}");
    assert_eq!(read["warnings"], json!([]), "{read:#}");
    assert_eq!(read["received_class"], class, "{read:#}");
    assert_eq!(read["built_class"], class, "{read:#}");
    assert_eq!(read["summary"], read["built_summary"], "{read:#}");
    assert_eq!(
        Value::Object(filter_headers(&wire["properties"]["headers"])),
        read["filter_headers"],
        "the filter headers OSBS published vs fedora-messaging's from the schema"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedora_messaging_reads_a_real_builds_messages_with_osbs_schemas() {
    // The venv is made while the build runs.
    let python = tokio::task::spawn_blocking(venv_python);
    let world = World::new(Options::default()).await;
    let bus = world.bus().await;
    let prefix = &world.amqp.topic_prefix;
    let states = format!("test.schemas.states.{}", world.tag);
    private_queue(&bus, &states, &names::external_state_routing_key(prefix)).await;
    let requests = format!("test.schemas.requests.{}", world.tag);
    let request_key = format!("{prefix}.{}", names::TOPIC_BUILD_REQUEST);
    private_queue(&bus, &requests, &request_key).await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _worker = world.spawn(Kind::Worker).await;
    let _bridge = world.spawn(Kind::Bridge).await;

    // jdoe pushes (the hook announces, the push's build is jdoe's); ops-tester then asks for
    // the same commit with `osbs container-build` (a request message, answered by that build).
    let name = format!("schemas-{}", world.tag);
    let repo = world.repo(&name, "main", &world.dockerfile(&name, "true"));
    repo.push(&["main"]);
    let output = world
        .osbs(Some(&repo.checkout), &["--json", "container-build"])
        .await;
    let answer: Value =
        serde_json::from_str(&expect_exit(&output, 0, "container-build")).expect("JSON answer");
    let id = answer["id"].as_str().expect("a build id").to_owned();
    let events = take_until(
        &world,
        &bus,
        &states,
        "the build's imported event",
        |taken| {
            taken.iter().map(body).any(|event| {
                assert!(
                    !["failed", "canceled", "import_failed"]
                        .contains(&event["new_state"].as_str().unwrap_or("")),
                    "the build did not succeed: {event:#}\n{}",
                    world.logs()
                );
                event["build_id"] == id.as_str() && event["new_state"] == "imported"
            })
        },
    )
    .await;
    let request = take_until(&world, &bus, &requests, "the build request", |taken| {
        !taken.is_empty()
    })
    .await;
    let record = world.record(&id).await;
    assert_eq!(record.state, BuildState::Imported);
    let submitter = record.job.submitter.clone();
    assert_eq!(submitter, "jdoe", "the pusher");

    let python = python.await.expect("the venv is made");
    let mut wire = events.clone();
    wire.extend(request.iter().cloned());
    let readings = read_with_fedora_messaging(python, &wire);
    assert_eq!(readings.len(), wire.len());
    let (event_readings, request_readings) = readings.split_at(events.len());

    assert_state_readings(&events, event_readings, &record, &name);
    assert_eq!(request.len(), 1, "one request: {request:#?}");
    assert_request_reading(&request[0], &request_readings[0], &name);
}

/// Each state event: the package's class, its own summary naming the build and the state,
/// the submitter as user and agent, the repository as container, the source URL; every
/// change of the build, in order.
fn assert_state_readings(events: &[Value], readings: &[Value], record: &BuildRecord, name: &str) {
    let (id, submitter) = (&record.job.build_id, &record.job.submitter);
    let mut seen_states = Vec::new();
    for (wire, read) in events.iter().zip(readings) {
        assert_read_cleanly(wire, read, "osbs_messages.state.BuildStateChangeV1");
        let event = body(wire);
        assert_eq!(event["build_id"], id.as_str(), "only this world's build");
        let state = event["new_state"].as_str().expect("a state").to_owned();
        let summary = read["summary"].as_str().expect("a summary");
        assert!(
            summary.starts_with(&format!("{submitter}'s build {id} of "))
                && summary.ends_with(&format!(" (main) is {state}")),
            "the schema's own summary: {summary}"
        );
        assert!(
            read["text"]
                .as_str()
                .expect("text")
                .contains(&format!("Build:   {id}"))
        );
        assert_eq!(read["agent_name"], submitter.as_str());
        assert_eq!(read["usernames"], json!([submitter]));
        assert_eq!(read["containers"], json!([name]));
        assert_eq!(read["packages"], json!([]));
        assert_eq!(read["url"], event["url"]);
        seen_states.push(state);
    }
    assert_eq!(
        seen_states,
        ["queued", "running", "pushing", "complete", "imported"],
        "every change, in order"
    );
    let last = readings.last().expect("an imported event");
    assert_eq!(
        last["summary"],
        format!(
            "{submitter}'s build {id} of {} (main) is imported",
            record.nvr()
        ),
    );
    let url = last["url"].as_str().expect("the source URL");
    assert!(url.ends_with(&format!("#{}", record.job.commit)), "{url}");
}

/// The CLI's request: the package's class, its own summary, the CLI's user.
fn assert_request_reading(wire: &Value, read: &Value, name: &str) {
    assert_read_cleanly(wire, read, "osbs_messages.request.BuildRequestV1");
    let asked = body(wire);
    assert_eq!(asked["user"], "ops-tester", "the CLI's user");
    assert_eq!(read["usernames"], json!(["ops-tester"]));
    assert_eq!(read["agent_name"], "ops-tester");
    assert_eq!(read["containers"], json!([name]));
    assert_eq!(
        read["summary"],
        format!(
            "ops-tester requested a build of {name} (main) into {}",
            asked["target"].as_str().expect("a target")
        )
    );
}
