//! The hub double refuses each kind of bad content-generator import with the real hub's
//! fault code and text (DESIGN.md "Koji hub facts"), in the order the hub checks, and
//! accepts a good one exactly once.

mod common;

use common::{Client, sha256_hex};
use osbs_koji_hub::{HubConfig, KojiHub, UserSpec};
use serde_json::{Value as Json, json};
use std::path::Path;

const LOG: &[u8] = b"Step 1/2 : FROM busybox\nStep 2/2 : RUN true\n";

fn image_bytes() -> Vec<u8> {
    (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect()
}

fn config() -> HubConfig {
    HubConfig {
        users: vec![
            UserSpec::new("osbs", Some("osbs")),
            UserSpec::new("outsider", Some("outsider")),
        ],
        content_generators: vec![
            ("osbs".into(), vec!["osbs".into()]),
            ("other".into(), vec![]),
        ],
        ..HubConfig::default()
    }
}

/// Good metadata for `name-2.4-1` built from the files uploaded by [`upload_files`].
fn metadata(name: &str, reservation: Option<i64>) -> Json {
    let image = image_bytes();
    let mut build = json!({
        "name": name,
        "version": "2.4",
        "release": "1",
        "source": "https://src.example.org/containers/httpd#3aa6642b",
        "start_time": 1_736_936_000,
        "end_time": 1_736_936_523,
        "extra": {"image": {"isolated": false}, "submitter": "jdoe"},
    });
    if let Some(id) = reservation {
        build["build_id"] = json!(id);
    }
    json!({
        "metadata_version": 0,
        "build": build,
        "buildroots": [{
            "id": 1,
            "host": {"os": "Debian 12", "arch": "x86_64"},
            "content_generator": {"name": "osbs", "version": "0.1.0"},
            "container": {"type": "docker", "arch": "x86_64"},
            "tools": [{"name": "docker", "version": "20.10.24"}],
            "components": [],
            "extra": {},
        }],
        "output": [
            {
                "buildroot_id": 1,
                "filename": "build.log",
                "filesize": LOG.len(),
                "checksum": sha256_hex(LOG),
                "checksum_type": "sha256",
                "type": "log",
                "arch": "noarch",
            },
            {
                "buildroot_id": 1,
                "filename": "docker-image-abc.x86_64.tar.gz",
                "filesize": image.len(),
                "checksum": sha256_hex(&image),
                "checksum_type": "sha256",
                "type": "docker-image",
                "arch": "x86_64",
                "extra": {
                    "image": {"arch": "x86_64"},
                    "docker": {"id": "sha256:abc", "repositories": ["127.0.0.1:5000/httpd:2.4-1"]},
                },
                "components": [{
                    "type": "rpm", "name": "bash", "version": "5.2", "release": "1",
                    "arch": "x86_64", "epoch": null, "sigmd5": "00", "signature": null,
                }],
            },
        ],
    })
}

async fn upload_files(client: &mut Client, dir: &str) {
    for (name, bytes) in [
        ("build.log", LOG.to_vec()),
        ("docker-image-abc.x86_64.tar.gz", image_bytes()),
        ("image.foo", image_bytes()),
    ] {
        client
            .upload(dir, name, 0, bytes, false)
            .await
            .expect("upload");
    }
}

type Mutation = fn(&mut Json);

#[tokio::test]
async fn every_bad_import_is_refused_with_the_hub_fault_and_a_good_one_imports_once() {
    let hub = KojiHub::start(config()).await.unwrap();
    let mut client = Client::login(&hub.url, "osbs", "osbs").await;
    let dir = "cg_import/test-1";
    upload_files(&mut client, dir).await;
    let reservation = client
        .call(
            "CGInitBuild",
            vec![
                json!("osbs"),
                json!({"name": "httpd", "version": "2.4", "release": "1"}),
            ],
        )
        .await
        .unwrap();
    let build_id = reservation["build_id"].as_i64().unwrap();
    let token = reservation["token"].as_str().unwrap().to_owned();
    let image = image_bytes();
    let image_sum = sha256_hex(&image);

    let with_reservation: Vec<(&str, Mutation, i32, String)> = vec![
        (
            "version",
            |m| m["metadata_version"] = json!(1),
            1000,
            "No such metadata version: 1".into(),
        ),
        (
            "no version",
            |m| {
                m.as_object_mut().unwrap().remove("metadata_version");
            },
            1,
            "<class 'KeyError'>: 'metadata_version'".into(),
        ),
        (
            "no buildroots",
            |m| {
                m.as_object_mut().unwrap().remove("buildroots");
            },
            1,
            "<class 'KeyError'>: 'buildroots'".into(),
        ),
        (
            "unknown cg",
            |m| m["buildroots"][0]["content_generator"]["name"] = json!("atomic-reactor"),
            1000,
            "No such entry in table content_generator: atomic-reactor".into(),
        ),
        (
            "two cgs",
            |m| {
                let mut second = m["buildroots"][0].clone();
                second["id"] = json!(2);
                second["content_generator"]["name"] = json!("other");
                m["buildroots"].as_array_mut().unwrap().push(second);
            },
            1000,
            "Koji now support only one content-generator per import".into(),
        ),
        (
            "no cg access",
            |m| m["buildroots"][0]["content_generator"]["name"] = json!("other"),
            1002,
            "Content generator access required (other)".into(),
        ),
        (
            "other nvr",
            |m| m["build"]["release"] = json!("2"),
            1000,
            "Build (BUILD_ID) NVR is different".into(),
        ),
        (
            "dash in version",
            |m| {
                m["build"].as_object_mut().unwrap().remove("build_id");
                m["build"]["name"] = json!("fresh");
                m["build"]["version"] = json!("2-4");
            },
            1000,
            "Reservation token given, but no build_id in metadata".into(),
        ),
    ];
    for (case, mutate, code, text) in with_reservation {
        let mut bad = metadata("httpd", Some(build_id));
        mutate(&mut bad);
        let got = client
            .call_kw("CGImport", vec![bad, json!(dir)], json!({"token": token}))
            .await;
        let text = text.replace("BUILD_ID", &build_id.to_string());
        assert_eq!(got, Err((code, text)), "case {case}");
    }
    let wrong_token = client
        .call_kw(
            "CGImport",
            vec![metadata("httpd", Some(build_id)), json!(dir)],
            json!({"token": "0000"}),
        )
        .await;
    assert_eq!(
        wrong_token,
        Err((1000, format!("Token doesn't match build ID {build_id}")))
    );

    // Without a reservation: the NVR, then the build fields, buildroots and outputs.
    let without: Vec<(&str, Mutation, i32, String)> = vec![
        (
            "dash in version",
            |m| m["build"]["version"] = json!("2-4"),
            1000,
            "The \"-\" character not allowed in version field".into(),
        ),
        (
            "dash in release",
            |m| m["build"]["release"] = json!("1-1"),
            1000,
            "The \"-\" character not allowed in release field".into(),
        ),
        (
            "docker btype",
            |m| m["build"]["extra"]["typeinfo"] = json!({"docker": {}}),
            1000,
            "No such entry in table btype: docker".into(),
        ),
        (
            "no source",
            |m| {
                m["build"].as_object_mut().unwrap().remove("source");
            },
            1,
            "<class 'KeyError'>: 'source'".into(),
        ),
        (
            "no start",
            |m| {
                m["build"].as_object_mut().unwrap().remove("start_time");
            },
            1,
            "<class 'KeyError'>: 'start_time'".into(),
        ),
        (
            "no end",
            |m| {
                m["build"].as_object_mut().unwrap().remove("end_time");
            },
            1,
            "<class 'KeyError'>: 'end_time'".into(),
        ),
        (
            "no extra",
            |m| {
                m["build"].as_object_mut().unwrap().remove("extra");
            },
            1,
            "<class 'KeyError'>: 'extra'".into(),
        ),
        (
            "unused buildroot",
            |m| m["buildroots"][0]["id"] = json!(2),
            1000,
            "Buildroot id not used in output: 2".into(),
        ),
        (
            "duplicate buildroot",
            |m| {
                let br = m["buildroots"][0].clone();
                m["buildroots"].as_array_mut().unwrap().push(br);
            },
            1000,
            "Duplicate buildroot id in metadata: 1".into(),
        ),
        (
            "no cg version",
            |m| {
                m["buildroots"][0]["content_generator"]
                    .as_object_mut()
                    .unwrap()
                    .remove("version");
            },
            1,
            "<class 'KeyError'>: 'version'".into(),
        ),
        (
            "no container arch",
            |m| {
                m["buildroots"][0]["container"]
                    .as_object_mut()
                    .unwrap()
                    .remove("arch");
            },
            1,
            "<class 'KeyError'>: 'arch'".into(),
        ),
        (
            "no host os",
            |m| {
                m["buildroots"][0]["host"]
                    .as_object_mut()
                    .unwrap()
                    .remove("os");
            },
            1,
            "<class 'KeyError'>: 'os'".into(),
        ),
        (
            "no components",
            |m| {
                m["buildroots"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("components");
            },
            1,
            "<class 'KeyError'>: 'components'".into(),
        ),
        (
            "bad component",
            |m| m["buildroots"][0]["components"] = json!([{"type": "rpm", "name": "a", "version": "1", "release": "1", "arch": "x86_64", "location": "elsewhere"}]),
            1000,
            "External rpms not allowed".into(),
        ),
        (
            "no tools",
            |m| {
                m["buildroots"][0].as_object_mut().unwrap().remove("tools");
            },
            1,
            "<class 'KeyError'>: 'tools'".into(),
        ),
        (
            "no output buildroot",
            |m| {
                m["output"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("buildroot_id");
            },
            1,
            "<class 'KeyError'>: 'buildroot_id'".into(),
        ),
        (
            "not uploaded",
            |m| m["output"][0]["filename"] = json!("missing.log"),
            1,
            "FILE_MISSING".into(),
        ),
        (
            "no filesize",
            |m| {
                m["output"][0].as_object_mut().unwrap().remove("filesize");
            },
            1,
            "<class 'KeyError'>: 'filesize'".into(),
        ),
        (
            "wrong size",
            |m| m["output"][0]["filesize"] = json!(3),
            1000,
            format!(
                "File size {} for build.log (expected 3) doesn't match. Corrupted upload?",
                LOG.len()
            ),
        ),
        (
            "no checksum type",
            |m| {
                m["output"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("checksum_type");
            },
            1,
            "<class 'KeyError'>: 'checksum_type'".into(),
        ),
        (
            "sha1",
            |m| m["output"][0]["checksum_type"] = json!("sha1"),
            1000,
            "Unsupported verify type: sha1".into(),
        ),
        (
            "wrong checksum",
            |m| m["output"][0]["checksum"] = json!("bad"),
            1000,
            format!(
                "File checksum mismatch for build.log: bad != {}",
                sha256_hex(LOG)
            ),
        ),
        (
            "no type",
            |m| {
                m["output"][0].as_object_mut().unwrap().remove("type");
            },
            1,
            "<class 'KeyError'>: 'type'".into(),
        ),
        (
            "no typeinfo",
            |m| m["output"][1]["extra"] = json!({"docker": {}}),
            1000,
            "No typeinfo for: docker-image-abc.x86_64.tar.gz".into(),
        ),
        (
            "two types",
            |m| m["output"][1]["extra"]["maven"] = json!({}),
            1000,
            "Output file has multiple types: docker-image-abc.x86_64.tar.gz".into(),
        ),
        (
            "type not in build",
            |m| m["build"]["extra"] = json!({}),
            1000,
            "Output type image not listed in build types".into(),
        ),
        (
            "adler32 archive",
            |m| {
                m["output"][1]["checksum_type"] = json!("adler32");
                m["output"][1]["checksum"] = json!(common::adler32_hex(&image_bytes()));
            },
            1,
            "<class 'KeyError'>: 'adler32'".into(),
        ),
        (
            "unknown extension",
            |m| m["output"][1]["filename"] = json!("image.foo"),
            1000,
            "unsupported file extension: image.foo".into(),
        ),
        (
            "image without arch",
            |m| m["output"][1]["extra"]["image"] = json!({}),
            1,
            "<class 'KeyError'>: 'arch'".into(),
        ),
    ];
    for (case, mutate, code, text) in without {
        // Another name: httpd-2.4-1 is reserved (BUILDING), so it "already exists".
        let mut bad = metadata("nginx", None);
        mutate(&mut bad);
        let got = client.call("CGImport", vec![bad, json!(dir)]).await;
        if text == "FILE_MISSING" {
            let (got_code, got_text) = got.expect_err(case);
            assert_eq!(got_code, code, "case {case}");
            assert!(
                got_text.starts_with(
                    "<class 'FileNotFoundError'>: [Errno 2] No such file or directory: '"
                ) && got_text.ends_with("work/cg_import/test-1/./missing.log'"),
                "case {case}: {got_text}"
            );
            continue;
        }
        assert_eq!(got, Err((code, text)), "case {case}");
    }
    assert!(
        hub.builds().iter().all(|build| build.state == 0),
        "nothing imported yet"
    );

    // The good import, as an uploaded metadata.json.
    let good = serde_json::to_vec_pretty(&metadata("httpd", Some(build_id))).unwrap();
    client
        .upload(dir, "metadata.json", 0, good, false)
        .await
        .unwrap();
    let imported = client
        .call_kw(
            "CGImport",
            vec![json!("metadata.json"), json!(dir)],
            json!({"token": token}),
        )
        .await
        .expect("a good import");
    assert_eq!(imported["id"], json!(build_id));
    assert_eq!(imported["state"], json!(1));
    assert_eq!(imported["nvr"], json!("httpd-2.4-1"));
    assert_eq!(imported["cg_name"], json!("osbs"));
    let build = hub.build("httpd-2.4-1").unwrap();
    assert_eq!(build.archives.len(), 1);
    let archive = &build.archives[0];
    assert_eq!(archive.type_name, "tar");
    assert_eq!(archive.btype, "image");
    assert_eq!(archive.size, image.len() as u64);
    assert_eq!(archive.checksum, image_sum);
    assert_eq!(archive.components, 1);
    assert_eq!(std::fs::read(&archive.path).unwrap(), image);
    assert_eq!(build.logs.len(), 1);
    // What an out-of-process test sees (koji's listBuilds / listArchives).
    let builds = client.call("listBuilds", vec![]).await.unwrap();
    assert_eq!(builds.as_array().unwrap().len(), 1);
    let archives = client
        .call("listArchives", vec![json!(build_id)])
        .await
        .unwrap();
    assert_eq!(
        archives[0]["filename"],
        json!("docker-image-abc.x86_64.tar.gz")
    );
    assert_eq!(archives[0]["size"], json!(image.len()));
    assert_eq!(archives[0]["checksum"], json!(image_sum));
    assert_eq!(archives[0]["checksum_type"], json!(2));
    assert_eq!(archives[0]["type_name"], json!("tar"));

    // Twice: the reservation is spent, and the NVR exists.
    let again = client
        .call_kw(
            "CGImport",
            vec![metadata("httpd", Some(build_id)), json!(dir)],
            json!({"token": token}),
        )
        .await;
    assert_eq!(
        again,
        Err((1000, format!("Token doesn't match build ID {build_id}")))
    );
    assert_eq!(
        client
            .call("CGImport", vec![metadata("httpd", None), json!(dir)])
            .await,
        Err((
            1000,
            format!("Build already exists: httpd-2.4-1 (id={build_id})")
        ))
    );
    assert_eq!(hub.builds().len(), 1);

    // A user without access to the content generator.
    let mut outsider = Client::login(&hub.url, "outsider", "outsider").await;
    let refused = outsider
        .call("CGImport", vec![metadata("other", None), json!(dir)])
        .await;
    assert_eq!(
        refused,
        Err((1002, "Content generator access required (osbs)".into()))
    );
}

/// A user who may import as both content generators, on a hub whose state directory the
/// test can see into.
async fn two_cg_hub(state_dir: &Path) -> (osbs_koji_hub::RunningHub, Client) {
    let hub = KojiHub::start(HubConfig {
        users: vec![UserSpec::new("osbs", Some("osbs"))],
        content_generators: vec![
            ("osbs".into(), vec!["osbs".into()]),
            ("other".into(), vec!["osbs".into()]),
        ],
        state_dir: Some(state_dir.to_owned()),
        ..HubConfig::default()
    })
    .await
    .unwrap();
    let client = Client::login(&hub.url, "osbs", "osbs").await;
    (hub, client)
}

#[tokio::test]
async fn refusals_of_reservations_types_buildroots_paths_and_json_are_the_hubs() {
    let state_dir = tempfile::tempdir().unwrap();
    let (hub, mut client) = two_cg_hub(state_dir.path()).await;
    let dir = "cg_import/test-2";
    upload_files(&mut client, dir).await;
    let httpd = json!({"name": "httpd", "version": "2.4", "release": "1"});

    // Reserved by one content generator, imported as the other.
    let reservation = client
        .call("CGInitBuild", vec![json!("other"), httpd.clone()])
        .await
        .unwrap();
    let (id, token) = (
        reservation["build_id"].clone(),
        reservation["token"].clone(),
    );
    let not_this_cg = Err((1000, format!("Build ID {id} is not reserved by this CG")));
    let import_reserved =
        |metadata: Json| (vec![metadata, json!(dir)], json!({"token": token.clone()}));
    let (args, kwargs) = import_reserved(metadata("httpd", id.as_i64()));
    assert_eq!(client.call_kw("CGImport", args, kwargs).await, not_this_cg);
    let refund = |cg: &str| vec![json!(cg), id.clone(), token.clone(), json!(4)];
    assert_eq!(
        client.call("CGRefundBuild", refund("osbs")).await,
        not_this_cg
    );
    assert_eq!(
        client.call("CGRefundBuild", refund("other")).await,
        Ok(json!(null))
    );

    // Reserved again (the canceled build is recycled), then failed behind the API's back:
    // the token still matches, the state does not.
    let reservation = client
        .call("CGInitBuild", vec![json!("osbs"), httpd.clone()])
        .await
        .unwrap();
    assert_eq!(reservation["build_id"], id);
    let token = reservation["token"].clone();
    assert!(hub.set_build_state("httpd-2.4-1", 3));
    let with_token = |metadata: Json| (vec![metadata, json!(dir)], json!({"token": token.clone()}));
    let (args, kwargs) = with_token(metadata("httpd", id.as_i64()));
    assert_eq!(
        client.call_kw("CGImport", args, kwargs).await,
        Err((1000, format!("Build ID {id} is not in BUILDING state")))
    );
    assert_eq!(
        client
            .call(
                "CGRefundBuild",
                vec![json!("osbs"), id.clone(), token.clone(), json!(4)]
            )
            .await,
        Err((1000, format!("Build ID {id} is not in BUILDING state")))
    );
    assert!(hub.set_build_state("httpd-2.4-1", 0));
    let mut draft = metadata("httpd", id.as_i64());
    draft["build"]["draft"] = json!(true);
    let (args, kwargs) = with_token(draft);
    assert_eq!(
        client.call_kw("CGImport", args, kwargs).await,
        Err((
            1000,
            format!("Draft field does not match reservation (build id = {id})")
        ))
    );

    // Without a reservation.
    let cases: Vec<(&str, Mutation, i32, String)> = vec![
        (
            "two task ids",
            |m| {
                m["build"]["task_id"] = json!(5);
                m["build"]["extra"]["container_koji_task_id"] = json!(6);
            },
            1000,
            "CG provided non-matching task_id 5 and container_koji_task_id 6".into(),
        ),
        (
            "null task id",
            |m| m["build"]["task_id"] = json!(null),
            1019,
            "Invalid type, expected type <class 'int'>".into(),
        ),
        (
            "build typeinfo twice",
            |m| m["build"]["extra"]["typeinfo"] = json!({"image": {}}),
            1000,
            "Duplicate typeinfo for 'image'".into(),
        ),
        (
            "output typeinfo twice",
            |m| m["output"][1]["extra"]["typeinfo"] = json!({"image": {}}),
            1000,
            "Duplicate typeinfo for: 'image'".into(),
        ),
        (
            "missing buildroot",
            |m| m["output"][0]["buildroot_id"] = json!(2),
            1000,
            "Missing buildroot metadata for id 2".into(),
        ),
        (
            "relpath climbing out",
            |m| m["output"][0]["relpath"] = json!("../x"),
            1,
            "<class 'ValueError'>: Invalid path segment: ../x".into(),
        ),
        (
            "absolute filename",
            |m| m["output"][0]["filename"] = json!("/etc/passwd"),
            1,
            "<class 'ValueError'>: Invalid path segment: /etc/passwd".into(),
        ),
    ];
    for (case, mutate, code, text) in cases {
        let mut bad = metadata("nginx", None);
        mutate(&mut bad);
        let got = client.call("CGImport", vec![bad, json!(dir)]).await;
        assert_eq!(got, Err((code, text)), "case {case}");
    }

    assert_eq!(
        client
            .call("CGImport", vec![metadata("nginx", None), json!("../up")])
            .await,
        Err((
            1,
            "<class 'ValueError'>: Invalid path segment: ../up".into()
        ))
    );

    // Metadata that is not JSON, or not there.
    let half = r#"{"metadata_version": 0,"#;
    client
        .upload(dir, "bad.json", 0, b"not json\n".to_vec(), false)
        .await
        .unwrap();
    let metadata_cases = [
        (json!(half), 1000, format!("Invalid json data: '{half}'")),
        (
            json!("bad.json"),
            1000,
            r"Invalid json data: 'not json\n'".into(),
        ),
        (json!(null), 1000, "No such file: metadata.json".into()),
        (json!("nope.json"), 1000, "No such file: nope.json".into()),
        (
            json!("../up.json"),
            1,
            "<class 'ValueError'>: Invalid path segment: ../up.json".into(),
        ),
        (
            json!(5),
            1019,
            "Invalid type for value '5': <class 'int'>, expected type <class 'str'>".into(),
        ),
    ];
    for (metadata, code, text) in metadata_cases {
        assert_eq!(
            client
                .call("CGImport", vec![metadata.clone(), json!(dir)])
                .await,
            Err((code, text)),
            "metadata {metadata}"
        );
    }

    // The build directory is there already (a crashed import's leftover).
    let leftover = state_dir.path().join("packages/nginx/2.4/1");
    std::fs::create_dir_all(&leftover).unwrap();
    assert_eq!(
        client
            .call("CGImport", vec![metadata("nginx", None), json!(dir)])
            .await,
        Err((
            1000,
            format!(
                "Destination directory already exists: {}",
                leftover.display()
            )
        ))
    );
    std::fs::remove_dir(&leftover).unwrap();
    let imported = client
        .call("CGImport", vec![metadata("nginx", None), json!(dir)])
        .await
        .expect("a good import");
    let nginx_id = &imported["id"];

    // The NVR exists now: for CGImport and for CGInitBuild, each in its own words (the
    // caller's keys arrive here sorted; a Python client sends them in its own order).
    assert_eq!(
        client
            .call("CGImport", vec![metadata("nginx", None), json!(dir)])
            .await,
        Err((
            1000,
            format!("Build already exists: nginx-2.4-1 (id={nginx_id})")
        ))
    );
    assert_eq!(
        client
            .call(
                "CGInitBuild",
                vec![
                    json!("osbs"),
                    json!({"name": "nginx", "version": "2.4", "release": "1"})
                ]
            )
            .await,
        Err((
            1000,
            format!(
                "Build already exists (id={nginx_id}, state=COMPLETE): {{'name': 'nginx', \
                 'release': '1', 'version': '2.4', 'owner': 1, 'state': 0, \
                 'completion_time': None, 'cg_id': 1, 'epoch': None, 'pkg_id': 2, \
                 'extra': None, 'start_time': 'NOW', 'source': None, 'task_id': None, \
                 'volume_id': 0, 'draft': False}}"
            )
        ))
    );
    assert_eq!(imported["package_id"], json!(2));
}

/// `metadata` with a second arch: an aarch64 buildroot (id 2) and its image archive.
fn two_arch_metadata(name: &str) -> Json {
    let mut metadata = metadata(name, None);
    let mut buildroot = metadata["buildroots"][0].clone();
    buildroot["id"] = json!(2);
    buildroot["host"]["arch"] = json!("aarch64");
    buildroot["container"]["arch"] = json!("aarch64");
    metadata["buildroots"]
        .as_array_mut()
        .unwrap()
        .push(buildroot);
    let mut image = metadata["output"][1].clone();
    image["buildroot_id"] = json!(2);
    image["filename"] = json!("docker-image-abc.aarch64.tar.gz");
    image["arch"] = json!("aarch64");
    image["extra"]["image"]["arch"] = json!("aarch64");
    metadata["output"].as_array_mut().unwrap().push(image);
    metadata
}

#[tokio::test]
async fn each_arch_image_is_made_in_a_buildroot_of_its_arch() {
    let hub = KojiHub::start(config()).await.unwrap();
    let mut client = Client::login(&hub.url, "osbs", "osbs").await;
    let dir = "cg_import/two-arches";
    upload_files(&mut client, dir).await;
    client
        .upload(
            dir,
            "docker-image-abc.aarch64.tar.gz",
            0,
            image_bytes(),
            false,
        )
        .await
        .unwrap();

    let cases: Vec<(&str, Mutation, String)> = vec![
        (
            "aarch64 image in the x86_64 buildroot",
            |m| m["output"][2]["buildroot_id"] = json!(1),
            // Before that: the aarch64 buildroot is used by nothing, as the real hub says.
            "Buildroot id not used in output: 2".into(),
        ),
        (
            "aarch64 image in the x86_64 buildroot, its log in the aarch64 one",
            |m| {
                m["output"][2]["buildroot_id"] = json!(1);
                m["output"][0]["buildroot_id"] = json!(2);
            },
            "Output arch aarch64 does not match the container arch x86_64 of buildroot 1: docker-image-abc.aarch64.tar.gz"
                .into(),
        ),
        (
            "an arch the buildroot does not have",
            |m| m["output"][2]["arch"] = json!("s390x"),
            "Output arch s390x does not match the container arch aarch64 of buildroot 2: docker-image-abc.aarch64.tar.gz"
                .into(),
        ),
    ];
    for (case, mutate, text) in cases {
        let mut bad = two_arch_metadata("httpd");
        mutate(&mut bad);
        let got = client.call("CGImport", vec![bad, json!(dir)]).await;
        assert_eq!(got, Err((1000, text)), "case {case}");
    }
    assert!(hub.builds().is_empty(), "a refused import leaves nothing");

    // A noarch log may sit in any buildroot; each image in its own arch's: imported.
    let mut good = two_arch_metadata("httpd");
    good["output"][0]["buildroot_id"] = json!(2);
    client
        .call("CGImport", vec![good, json!(dir)])
        .await
        .expect("a two-arch import");
    let build = hub.build("httpd-2.4-1").unwrap();
    assert_eq!(build.buildroots.len(), 2);
    let arches: Vec<&Json> = build
        .archives
        .iter()
        .map(|archive| &archive.extra["image"]["arch"])
        .collect();
    assert_eq!(arches, vec![&json!("x86_64"), &json!("aarch64")]);
    assert_eq!(build.logs.len(), 1);
}
