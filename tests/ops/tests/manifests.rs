//! The deployment files say what the code reads: every manifest parses, every configuration
//! file and `OSBS_…` variable deserializes into the services' own configuration types (whose
//! sections refuse unknown keys), ports, probes, binaries, volumes and grace periods agree.

use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every YAML document of `path`, merge keys (`<<`) applied.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = <Value as serde::Deserialize>::deserialize(document)
                .unwrap_or_else(|error| panic!("{} is not valid YAML: {error}", path.display()));
            value
                .apply_merge()
                .unwrap_or_else(|error| panic!("{}: bad merge key: {error}", path.display()));
            value
        })
        .filter(|value| !value.is_null())
        .collect()
}

fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    walk(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

fn walk<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |value, key| {
        value
            .get(*key)
            .unwrap_or_else(|| panic!("missing {key:?} (in {path:?})"))
    })
}

fn seq(value: &Value) -> &[Value] {
    value.as_sequence().map(Vec::as_slice).unwrap_or_default()
}

/// The binaries the workspace builds.
fn binary_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for krate in ["cli", "dispatcher", "worker", "koji-bridge", "web"] {
        let manifest: toml::Value = toml::from_str(
            &std::fs::read_to_string(workspace().join(krate).join("Cargo.toml")).unwrap(),
        )
        .unwrap();
        for bin in manifest
            .get("bin")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
        {
            names.insert(bin["name"].as_str().unwrap().to_owned());
        }
    }
    names
}

/// The configuration file deserializes into every process's configuration type.
fn check_config_file(toml_text: &str, source: &str) {
    let parse = |what: &str, result: Result<(), toml::de::Error>| {
        if let Err(error) = result {
            panic!("{source}: not a valid {what} configuration: {error}");
        }
    };
    parse(
        "dispatcher",
        toml::from_str::<osbs_dispatcher::Config>(toml_text).map(drop),
    );
    parse(
        "worker",
        toml::from_str::<osbs_worker::ServiceConfig>(toml_text).map(drop),
    );
    parse(
        "koji-bridge",
        toml::from_str::<osbs_koji_bridge::BridgeConfig>(toml_text).map(drop),
    );
    parse(
        "cli",
        toml::from_str::<osbs_cli::config::Config>(toml_text).map(drop),
    );
    parse(
        "web",
        toml::from_str::<osbs_web::Config>(toml_text).map(drop),
    );
}

/// `OSBS_SECTION__KEY=value` as the TOML `[section] key = value`, the way the services'
/// loader reads it (numbers and booleans parsed, the rest strings).
fn env_as_toml(name: &str, value: &str) -> Option<String> {
    let path = name.strip_prefix("OSBS_")?;
    if path == "CONFIG" {
        return None;
    }
    let parts: Vec<String> = path.split("__").map(str::to_lowercase).collect();
    let (key, sections) = parts.split_last().expect("a key");
    let literal = if value.parse::<i64>().is_ok() || value == "true" || value == "false" {
        value.to_owned()
    } else {
        format!("{value:?}")
    };
    Some(format!("[{}]\n{key} = {literal}\n", sections.join(".")))
}

/// Every `OSBS_…` variable a process gets names a key its configuration has.
fn check_env(binary: &str, name: &str, value: &str, source: &str) {
    let Some(toml_text) = env_as_toml(name, value) else {
        return;
    };
    let result = match binary {
        "osbs-dispatcher" => toml::from_str::<osbs_dispatcher::Config>(&toml_text).map(drop),
        "osbs-worker" => toml::from_str::<osbs_worker::ServiceConfig>(&toml_text).map(drop),
        "osbs-koji-bridge" => {
            toml::from_str::<osbs_koji_bridge::BridgeConfig>(&toml_text).map(drop)
        }
        "osbs" => toml::from_str::<osbs_cli::config::Config>(&toml_text).map(drop),
        "osbs-web" => toml::from_str::<osbs_web::Config>(&toml_text).map(drop),
        other => panic!("{source}: unknown binary {other}"),
    };
    if let Err(error) = result {
        panic!("{source}: {name} is not a key of {binary}'s configuration: {error}");
    }
    // A section or key the struct does not know would be ignored at the top level: make
    // sure the section is one of the structs' own by reading it back.
    let section = toml_text.lines().next().unwrap().trim_matches(['[', ']']);
    let top = section.split('.').next().unwrap();
    let known: &[&str] = match binary {
        "osbs-dispatcher" => &["amqp", "redis", "telemetry", "dispatcher"],
        "osbs-worker" => &["amqp", "redis", "telemetry", "storage", "worker"],
        "osbs-koji-bridge" => &["amqp", "redis", "telemetry", "storage", "koji"],
        "osbs-web" => &["amqp", "redis", "telemetry", "storage", "web"],
        _ => &["amqp", "redis", "storage", "cli"],
    };
    assert!(
        known.contains(&top),
        "{source}: {name} sets [{top}], which {binary} does not read"
    );
}

/// The compose value of `${NAME:-default}` is its default (what runs without an `.env`).
fn compose_default(value: &str) -> String {
    match value
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
    {
        Some(inner) => inner
            .split_once(":-")
            .map_or(String::new(), |(_, default)| default.to_owned()),
        None => value.to_owned(),
    }
}

fn yaml_scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// Seconds of a compose duration (`630s`, `10m`, `1m30s`).
fn compose_seconds(text: &str) -> u64 {
    let mut total = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
        } else {
            let n: u64 = number.parse().expect("a number before the unit");
            number.clear();
            total += n * match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                other => panic!("unknown unit {other} in {text}"),
            };
        }
    }
    total
}

#[test]
fn compose_file_matches_the_code() {
    let path = workspace().join("deploy/compose.yaml");
    let documents = documents(&path);
    assert_eq!(documents.len(), 1);
    let compose = &documents[0];
    let config_text = text(compose, &["configs", "osbs-config", "content"]);
    check_config_file(config_text, "compose.yaml configs.osbs-config");
    let config: osbs_worker::ServiceConfig = toml::from_str(config_text).unwrap();
    let artifacts = config.storage.artifacts_dir.display().to_string();

    let bins = binary_names();
    let services = walk(compose, &["services"]);
    for infra in ["rabbitmq", "redis", "registry"] {
        assert!(services.get(infra).is_some(), "compose has no {infra}");
    }
    let mut binaries = BTreeMap::new();
    for name in ["dispatcher", "worker", "koji-bridge", "cli", "web"] {
        let service = walk(services, &[name]);
        let command = service
            .get("entrypoint")
            .or_else(|| service.get("command"))
            .unwrap();
        let binary = yaml_scalar(&seq(command)[0]);
        assert!(
            bins.contains(&binary),
            "{name} runs {binary}, which is not built"
        );
        let mounts: Vec<String> = seq(walk(service, &["configs"]))
            .iter()
            .map(|config| text(config, &["target"]).to_owned())
            .collect();
        assert!(mounts.contains(&"/etc/osbs/osbs.toml".to_owned()), "{name}");
        for (key, value) in walk(service, &["environment"]).as_mapping().unwrap() {
            let key = yaml_scalar(key);
            check_env(
                &binary,
                &key,
                &compose_default(&yaml_scalar(value)),
                &format!("compose service {name}"),
            );
        }
        binaries.insert(name, binary);
    }
    // The artifacts volume joins the worker and the bridge at [storage] artifacts_dir.
    for name in ["worker", "koji-bridge"] {
        let volumes: Vec<String> = seq(walk(services, &[name, "volumes"]))
            .iter()
            .map(yaml_scalar)
            .collect();
        assert!(
            volumes.contains(&format!("artifacts:{artifacts}")),
            "{name} does not mount the artifacts volume at {artifacts}: {volumes:?}"
        );
    }
    let worker = walk(services, &["worker"]);
    let volumes: Vec<String> = seq(walk(worker, &["volumes"]))
        .iter()
        .map(yaml_scalar)
        .collect();
    assert!(
        volumes
            .iter()
            .any(|v| v.starts_with("/var/run/docker.sock:"))
            || worker["environment"].get("DOCKER_HOST").is_some(),
        "the worker reaches no Docker Engine"
    );
    let grace = compose_seconds(text(worker, &["stop_grace_period"]));
    assert!(
        grace > config.worker.drain_grace_secs,
        "the worker's stop_grace_period ({grace}s) must exceed [worker] drain_grace_secs ({})",
        config.worker.drain_grace_secs
    );
}

/// Every `kind` of the Kubernetes manifests, by name.
struct Cluster {
    objects: Vec<(String, Value)>,
}

impl Cluster {
    fn load() -> Cluster {
        let dir = workspace().join("deploy/k8s");
        let kustomization = documents(&dir.join("kustomization.yaml")).remove(0);
        let listed: BTreeSet<String> = seq(walk(&kustomization, &["resources"]))
            .iter()
            .map(yaml_scalar)
            .collect();
        let present: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
            .collect();
        assert_eq!(
            listed, present,
            "kustomization.yaml resources vs files in deploy/k8s"
        );
        let mut objects = Vec::new();
        for file in &listed {
            for document in documents(&dir.join(file)) {
                let kind = text(&document, &["kind"]).to_owned();
                let name = text(&document, &["metadata", "name"]);
                assert!(
                    document.get("apiVersion").is_some(),
                    "{file}: {kind} {name} has no apiVersion"
                );
                if kind != "Namespace" {
                    assert_eq!(
                        text(&document, &["metadata", "namespace"]),
                        "osbs",
                        "{file}: {kind} {name}"
                    );
                }
                objects.push((kind, document));
            }
        }
        Cluster { objects }
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|(k, object)| k == kind && text(object, &["metadata", "name"]) == name)
            .map(|(_, object)| object)
            .unwrap_or_else(|| panic!("no {kind} named {name}"))
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, object)| object)
            .collect()
    }
}

#[test]
fn kubernetes_manifests_match_the_code() {
    let cluster = Cluster::load();
    let config_text = text(
        cluster.get("ConfigMap", "osbs-config"),
        &["data", "osbs.toml"],
    );
    check_config_file(config_text, "ConfigMap osbs-config");
    let worker_config: osbs_worker::ServiceConfig = toml::from_str(config_text).unwrap();
    let secret_keys = |name: &str| -> BTreeMap<String, String> {
        walk(cluster.get("Secret", name), &["stringData"])
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(key, value)| (yaml_scalar(key), yaml_scalar(value)))
            .collect()
    };
    let bins = binary_names();
    let services = cluster.all("Service");
    let volumes_known: BTreeSet<(String, String)> = cluster
        .objects
        .iter()
        .map(|(kind, object)| (kind.clone(), text(object, &["metadata", "name"]).to_owned()))
        .collect();

    for deployment in cluster.all("Deployment") {
        let name = text(deployment, &["metadata", "name"]);
        let pod = walk(deployment, &["spec", "template"]);
        let labels = walk(pod, &["metadata", "labels"]);
        let selector = walk(deployment, &["spec", "selector", "matchLabels"]);
        for (key, value) in selector.as_mapping().unwrap() {
            assert_eq!(
                labels.get(key),
                Some(value),
                "{name}: selector does not match the pod"
            );
        }
        let spec = walk(pod, &["spec"]);
        let declared: BTreeMap<String, &Value> = seq(walk(spec, &["volumes"]))
            .iter()
            .map(|volume| (text(volume, &["name"]).to_owned(), volume))
            .collect();
        for volume in declared.values() {
            for (kind, key) in [
                ("ConfigMap", &["configMap", "name"][..]),
                ("Secret", &["secret", "secretName"][..]),
                (
                    "PersistentVolumeClaim",
                    &["persistentVolumeClaim", "claimName"][..],
                ),
            ] {
                if volume.get(key[0]).is_some() {
                    let target = text(volume, key).to_owned();
                    assert!(
                        volumes_known.contains(&(kind.to_owned(), target.clone())),
                        "{name}: volume refers to {kind} {target}, which no manifest declares"
                    );
                }
            }
        }
        let containers = seq(walk(spec, &["containers"]));
        assert_eq!(containers.len(), 1, "{name}");
        let container = &containers[0];
        let binary = yaml_scalar(&seq(walk(container, &["args"]))[0]);
        assert!(
            bins.contains(&binary),
            "{name} runs {binary}, which is not built"
        );
        let mut http_port = None;
        for env in seq(walk(container, &["env"])) {
            let key = text(env, &["name"]);
            let value = text(env, &["value"]);
            check_env(&binary, key, value, name);
            if key.ends_with("__HTTP_LISTEN") {
                http_port = Some(value.rsplit_once(':').unwrap().1.parse::<u64>().unwrap());
            }
        }
        for source in seq(walk(container, &["envFrom"])) {
            let secret = text(source, &["secretRef", "name"]);
            for (key, value) in secret_keys(secret) {
                check_env(&binary, &key, &value, &format!("Secret {secret}"));
            }
        }
        let http_port = http_port.unwrap_or_else(|| {
            panic!("{name}: no *_HTTP_LISTEN: /healthz would listen on loopback only")
        });
        let ports = seq(walk(container, &["ports"]));
        let http = ports
            .iter()
            .find(|port| text(port, &["name"]) == "http")
            .unwrap_or_else(|| panic!("{name}: no port named http"));
        assert_eq!(
            walk(http, &["containerPort"]).as_u64(),
            Some(http_port),
            "{name}"
        );
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            let get = walk(container, &[probe, "httpGet"]);
            assert_eq!(text(get, &["port"]), "http", "{name} {probe}");
        }
        assert_eq!(
            text(container, &["readinessProbe", "httpGet", "path"]),
            "/healthz",
            "{name}"
        );
        let annotations = walk(pod, &["metadata", "annotations"]);
        assert_eq!(text(annotations, &["prometheus.io/path"]), "/metrics");
        assert_eq!(
            text(annotations, &["prometheus.io/port"]),
            http_port.to_string(),
            "{name}"
        );
        for mount in seq(walk(container, &["volumeMounts"])) {
            let volume = text(mount, &["name"]);
            assert!(
                declared.contains_key(volume),
                "{name}: mounts undeclared volume {volume}"
            );
            if volume == "artifacts" {
                assert_eq!(
                    Path::new(text(mount, &["mountPath"])),
                    worker_config.storage.artifacts_dir,
                    "{name}: artifacts mounted away from [storage] artifacts_dir"
                );
            }
            if volume == "config" {
                assert_eq!(text(mount, &["mountPath"]), "/etc/osbs", "{name}");
            }
        }
        let service = services
            .iter()
            .find(|service| text(service, &["metadata", "name"]) == name)
            .unwrap_or_else(|| panic!("{name} has no Service (metrics scraping)"));
        for (key, value) in walk(service, &["spec", "selector"]).as_mapping().unwrap() {
            assert_eq!(
                labels.get(key),
                Some(value),
                "Service {name} selects no pod"
            );
        }
        let grace = walk(spec, &["terminationGracePeriodSeconds"])
            .as_u64()
            .unwrap();
        if binary == "osbs-worker" {
            let drain = worker_config.worker.drain_grace_secs;
            assert!(
                grace > drain,
                "worker terminationGracePeriodSeconds {grace} must exceed drain_grace_secs {drain}"
            );
            let liveness = walk(container, &["livenessProbe"]);
            let tolerated = walk(liveness, &["periodSeconds"]).as_u64().unwrap()
                * walk(liveness, &["failureThreshold"]).as_u64().unwrap();
            assert!(
                tolerated > grace,
                "liveness would kill a draining worker ({tolerated}s < {grace}s)"
            );
            let envs: BTreeSet<&str> = seq(walk(container, &["env"]))
                .iter()
                .map(|env| text(env, &["name"]))
                .collect();
            assert!(
                envs.contains("DOCKER_HOST"),
                "workers reach remote engines via DOCKER_HOST"
            );
            assert!(
                deployment["spec"].get("replicas").is_none(),
                "KEDA owns the worker replica count"
            );
        }
        if binary == "osbs-koji-bridge" {
            let bridge: osbs_koji_bridge::BridgeConfig = toml::from_str(config_text).unwrap();
            assert!(grace > bridge.koji.drain_grace_secs, "bridge grace {grace}");
            let mounts: BTreeSet<&str> = seq(walk(container, &["volumeMounts"]))
                .iter()
                .map(|mount| text(mount, &["mountPath"]))
                .collect();
            let cert_dir = bridge
                .koji
                .hub
                .auth
                .cert
                .parent()
                .unwrap()
                .display()
                .to_string();
            assert!(
                mounts.contains(cert_dir.as_str()),
                "[koji.auth] cert is not mounted"
            );
        }
    }

    // KEDA scales the worker Deployment on osbs.jobs, authenticated by a real secret key.
    let scaled = cluster.get("ScaledObject", "osbs-worker");
    assert_eq!(
        text(scaled, &["spec", "scaleTargetRef", "name"]),
        "osbs-worker"
    );
    cluster.get("Deployment", "osbs-worker");
    let trigger = &seq(walk(scaled, &["spec", "triggers"]))[0];
    assert_eq!(text(trigger, &["type"]), "rabbitmq");
    assert_eq!(
        text(trigger, &["metadata", "queueName"]),
        osbs_proto::names::QUEUE_JOBS
    );
    let auth = cluster.get(
        "TriggerAuthentication",
        text(trigger, &["authenticationRef", "name"]),
    );
    for reference in seq(walk(auth, &["spec", "secretTargetRef"])) {
        let keys = secret_keys(text(reference, &["name"]));
        assert!(
            keys.contains_key(text(reference, &["key"])),
            "KEDA reads a missing key"
        );
    }

    // The ServiceMonitor selects every Service that serves /metrics.
    let monitor = cluster.get("ServiceMonitor", "osbs");
    let wanted = walk(monitor, &["spec", "selector", "matchLabels"]);
    for service in &services {
        let labels = walk(service, &["metadata", "labels"]);
        for (key, value) in wanted.as_mapping().unwrap() {
            assert_eq!(
                labels.get(key),
                Some(value),
                "ServiceMonitor misses a Service"
            );
        }
    }
}

#[test]
fn operations_page_names_the_real_defaults() {
    let page = std::fs::read_to_string(workspace().join("docs/OPERATIONS.md")).unwrap();
    let defaults = [
        (
            "[dispatcher] http_listen",
            osbs_dispatcher::DispatcherConfig::default().http_listen,
        ),
        (
            "[worker] http_listen",
            osbs_worker::config::WorkerConfig::default().http_listen,
        ),
        (
            "[koji] http_listen",
            osbs_koji_bridge::config::KojiSection::default().http_listen,
        ),
        (
            "[web] http_listen",
            osbs_web::config::WebConfig::default().http_listen,
        ),
    ];
    for (key, address) in defaults {
        let row = page
            .lines()
            .find(|line| line.contains(&format!("`{key}`")))
            .unwrap_or_else(|| panic!("docs/OPERATIONS.md does not list {key}"));
        assert!(row.contains(&format!("`{address}`")), "{key}: {row}");
    }
    // Every metric family the services register is in the metrics table.
    // (A family shows only once it has a sample: touch each.)
    let metrics = osbs_common::http::Metrics::new("probe");
    metrics.count_state(osbs_proto::v1::BuildState::Running);
    metrics.count_dead_letter("q");
    metrics.count_ignored("r");
    metrics.count_event("e");
    metrics.count_retry("r");
    metrics.observe_step("s", 1.0);
    metrics.observe_lag("q", 1.0);
    let families = metrics.encode();
    let mut listed = 0;
    for line in families.lines() {
        let Some(rest) = line.strip_prefix("# TYPE osbs_probe_") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        let shown = if kind == "counter" {
            format!("`{name}_total`")
        } else {
            format!("`{name}`")
        };
        assert!(
            page.contains(&shown),
            "docs/OPERATIONS.md does not list metric {shown}"
        );
        listed += 1;
    }
    assert!(listed >= 8, "metric families found: {families}");
    let drain = osbs_worker::config::WorkerConfig::default().drain_grace_secs;
    assert!(page.contains(&format!("`[worker] drain_grace_secs` (default {drain})")));
}

#[test]
fn environment_names_become_sections_and_keys() {
    assert_eq!(
        env_as_toml("OSBS_WORKER__HTTP_LISTEN", "0.0.0.0:9090").unwrap(),
        "[worker]\nhttp_listen = \"0.0.0.0:9090\"\n"
    );
    assert_eq!(
        env_as_toml("OSBS_KOJI__AUTH__USER", "osbs").unwrap(),
        "[koji.auth]\nuser = \"osbs\"\n"
    );
    assert_eq!(
        env_as_toml("OSBS_WORKER__CONCURRENCY", "2").unwrap(),
        "[worker]\nconcurrency = 2\n"
    );
    assert_eq!(env_as_toml("DOCKER_HOST", "tcp://x"), None);
    assert_eq!(
        compose_default("${OSBS_IMAGE:-localhost/osbs:latest}"),
        "localhost/osbs:latest"
    );
    assert_eq!(compose_seconds("1m30s"), 90);
}
