//! The dispatcher's configuration: the shared sections plus `[dispatcher]` (routing of events to
//! targets, per-target settings, service knobs), and its compiled, checked form [`Routing`].

use crate::rules::{self, Glob};
use osbs_common::config::{AmqpConfig, RedisConfig, TelemetryConfig};
use osbs_proto::v1::Target;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The whole file as the dispatcher reads it. Not `deny_unknown_fields`: every service reads
/// the same file and ignores the others' sections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub amqp: AmqpConfig,
    #[serde(default)]
    pub redis: RedisConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub dispatcher: DispatcherConfig,
}

/// `[dispatcher]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatcherConfig {
    /// Where `/healthz` and `/metrics` are served.
    pub http_listen: SocketAddr,
    /// Unacked events in hand at once; also how many are handled concurrently.
    pub prefetch: u16,
    /// On SIGTERM, how long events in hand may take to finish before they go back unacked.
    pub shutdown_grace_secs: u64,
    /// Pause before an event whose handling failed (Redis or RabbitMQ away) is requeued.
    pub retry_delay_ms: u64,
    /// dist-git base URLs builds may come from (`https://src.fedoraproject.org`,
    /// `file:///var/lib/osbs/dist-git`); a repository URL is `<base>/<namespace>/<repo>[.git]`.
    pub allowed_git_urls: Vec<String>,
    /// Base of the clone URL of pushed repositories: `<git_clone_base>/<namespace>/<repo>.git`.
    /// Must be one of `allowed_git_urls`.
    pub git_clone_base: String,
    /// dist-git namespaces holding container repositories.
    pub namespaces: Vec<String>,
    /// Branches whose pushes build automatically (globs: `*` any run of characters, `?` one).
    pub auto_branches: Vec<String>,
    /// Target of a branch not in `branch_targets`; `{branch}` and `{namespace}` are replaced.
    pub target_template: String,
    /// Branch → Koji target, overriding `target_template`.
    pub branch_targets: BTreeMap<String, String>,
    /// Repositories that build (globs on `<repo>`, or on `<namespace>/<repo>` when the pattern
    /// has a `/`); empty = every repository of the namespaces.
    pub repos_allow: Vec<String>,
    /// Repositories that never build (same globs); wins over `repos_allow`.
    pub repos_deny: Vec<String>,
    /// Settings of every target not in `targets`, and the defaults of those in it.
    pub target_defaults: TargetSettings,
    /// Per-target settings; unset fields come from `target_defaults`.
    pub targets: BTreeMap<String, TargetOverrides>,
    /// Ask dist-git (`git ls-remote` on the clone URL) for a pushed branch's head and build
    /// that tip: a pushed commit that is not the tip is recorded `superseded`, a tag push or a
    /// deleted branch builds nothing. `false` trusts each event's commit (only for setups
    /// whose dispatcher cannot reach dist-git).
    pub resolve_push_tip: bool,
    /// How long one `git ls-remote` may take before the event is requeued.
    pub git_timeout_secs: u64,
    /// Ack a run of handled events with one `basic.ack` (`multiple`) rather than one frame
    /// per event: less broker work per event ([`crate::acks`]). `false` acks each alone.
    pub ack_runs: bool,
    /// Threads of the dispatcher's async runtime. Handling an event is a few hundred
    /// microseconds of work between broker and Redis round trips (lapin reads and writes the
    /// socket on a thread of its own), so one thread does it without handing tasks between
    /// threads: as many events per second as one thread per core, for less CPU and
    /// memory (docs/BENCHMARKS.md, "Dispatcher"). Scale out with replicas; `0` means one per core.
    pub runtime_threads: usize,
}

impl DispatcherConfig {
    /// The runtime's threads as `runtime_threads` says (`None`: one per core).
    pub fn threads(&self) -> Option<usize> {
        (self.runtime_threads > 0).then_some(self.runtime_threads)
    }
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 9101)),
            prefetch: 64,
            shutdown_grace_secs: 30,
            retry_delay_ms: 1000,
            allowed_git_urls: vec![
                "https://src.fedoraproject.org".into(),
                "file:///var/lib/osbs/dist-git".into(),
            ],
            git_clone_base: "file:///var/lib/osbs/dist-git".into(),
            namespaces: vec!["container".into(), "docker".into()],
            auto_branches: vec!["main".into(), "rawhide".into(), "f*".into(), "epel*".into()],
            target_template: "{branch}-{namespace}-candidate".into(),
            branch_targets: BTreeMap::new(),
            repos_allow: Vec::new(),
            repos_deny: Vec::new(),
            target_defaults: TargetSettings::default(),
            targets: BTreeMap::new(),
            resolve_push_tip: true,
            git_timeout_secs: 30,
            ack_runs: true,
            runtime_threads: 1,
        }
    }
}

/// Where a target's images go and what they may contain (mapped into `osbs.v1.Target`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetSettings {
    pub registry: String,
    pub registry_namespace: String,
    /// The only registry `FROM` lines may name.
    pub base_registry: String,
    /// Signing key ids allowed for rpms in the image; empty = no signing policy.
    pub signing_key_ids: Vec<String>,
    /// Yum repo file URLs added to every build of the target.
    pub yum_repourls: Vec<String>,
    /// Koji destination tag; empty = the hub's `getBuildTarget`.
    pub dest_tag: String,
    /// Koji architecture names the target builds for (DESIGN.md "Architectures"); empty =
    /// `["x86_64"]`. Each is checked against `osbs_proto::arch` when the configuration loads.
    pub arches: Vec<String>,
}

impl Default for TargetSettings {
    fn default() -> Self {
        TargetSettings {
            registry: "127.0.0.1:5000".into(),
            registry_namespace: String::new(),
            base_registry: "127.0.0.1:5000".into(),
            signing_key_ids: Vec::new(),
            yum_repourls: Vec::new(),
            dest_tag: String::new(),
            arches: Vec::new(),
        }
    }
}

/// `[dispatcher.targets."<name>"]`: any field of [`TargetSettings`], the rest inherited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetOverrides {
    pub registry: Option<String>,
    pub registry_namespace: Option<String>,
    pub base_registry: Option<String>,
    pub signing_key_ids: Option<Vec<String>>,
    pub yum_repourls: Option<Vec<String>>,
    pub dest_tag: Option<String>,
    pub arches: Option<Vec<String>>,
}

/// A configuration value that cannot work, named with what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid [dispatcher] configuration: {0}")]
pub struct RoutingError(pub String);

/// `[dispatcher]` checked and compiled: what [`crate::decide`] reads.
#[derive(Debug, Clone)]
pub struct Routing {
    pub(crate) allowed_git_urls: Vec<String>,
    pub(crate) git_clone_base: String,
    pub(crate) namespaces: Vec<String>,
    pub(crate) auto_branches: Vec<Glob>,
    pub(crate) target_template: String,
    pub(crate) branch_targets: BTreeMap<String, String>,
    pub(crate) repos_allow: Vec<Glob>,
    pub(crate) repos_deny: Vec<Glob>,
    pub(crate) target_defaults: TargetSettings,
    pub(crate) targets: BTreeMap<String, TargetOverrides>,
}

impl Routing {
    /// Checks `config` and compiles its patterns; every mistake is reported with the key.
    pub fn new(config: &DispatcherConfig) -> Result<Routing, RoutingError> {
        let error = |message: String| RoutingError(message);
        let mut allowed = Vec::new();
        for base in &config.allowed_git_urls {
            allowed.push(
                rules::check_git_base(base)
                    .map_err(|why| error(format!("allowed_git_urls: {why}")))?,
            );
        }
        if allowed.is_empty() {
            return Err(error(
                "allowed_git_urls is empty: list the dist-git base URLs builds may come from"
                    .into(),
            ));
        }
        let clone_base = rules::check_git_base(&config.git_clone_base)
            .map_err(|why| error(format!("git_clone_base: {why}")))?;
        if !allowed.contains(&clone_base) {
            return Err(error(format!(
                "git_clone_base {clone_base:?} is not one of allowed_git_urls {allowed:?}: add it there"
            )));
        }
        for namespace in &config.namespaces {
            rules::plain_name("namespaces", namespace).map_err(error)?;
        }
        if !config.target_template.contains("{branch}") {
            return Err(error(format!(
                "target_template {:?} lacks {{branch}}: every branch would build into one target",
                config.target_template
            )));
        }
        for (branch, target) in &config.branch_targets {
            rules::plain_name("branch_targets key", branch).map_err(error)?;
            rules::plain_name("branch_targets value", target).map_err(error)?;
        }
        for name in config.targets.keys() {
            rules::plain_name("targets key", name).map_err(error)?;
        }
        check_arches("target_defaults.arches", &config.target_defaults.arches).map_err(error)?;
        for (name, overrides) in &config.targets {
            if let Some(arches) = &overrides.arches {
                check_arches(&format!("targets.{name:?}.arches"), arches).map_err(error)?;
            }
        }
        let globs = |key: &str, patterns: &[String]| -> Result<Vec<Glob>, RoutingError> {
            patterns
                .iter()
                .map(|pattern| Glob::new(pattern).map_err(|why| error(format!("{key}: {why}"))))
                .collect()
        };
        Ok(Routing {
            allowed_git_urls: allowed,
            git_clone_base: clone_base,
            namespaces: config.namespaces.clone(),
            auto_branches: globs("auto_branches", &config.auto_branches)?,
            target_template: config.target_template.clone(),
            branch_targets: config.branch_targets.clone(),
            repos_allow: globs("repos_allow", &config.repos_allow)?,
            repos_deny: globs("repos_deny", &config.repos_deny)?,
            target_defaults: config.target_defaults.clone(),
            targets: config.targets.clone(),
        })
    }

    /// The Koji target a push to `branch` of `namespace` builds into.
    pub fn target_for_branch(&self, namespace: &str, branch: &str) -> String {
        match self.branch_targets.get(branch) {
            Some(target) => target.clone(),
            None => self
                .target_template
                .replace("{branch}", branch)
                .replace("{namespace}", namespace),
        }
    }

    /// The settings of target `name` as the job carries them.
    pub fn target(&self, name: &str) -> Target {
        let defaults = &self.target_defaults;
        let overrides = self.targets.get(name).cloned().unwrap_or_default();
        Target {
            name: name.to_owned(),
            registry: overrides
                .registry
                .unwrap_or_else(|| defaults.registry.clone()),
            registry_namespace: overrides
                .registry_namespace
                .unwrap_or_else(|| defaults.registry_namespace.clone()),
            base_registry: overrides
                .base_registry
                .unwrap_or_else(|| defaults.base_registry.clone()),
            signing_key_ids: overrides
                .signing_key_ids
                .unwrap_or_else(|| defaults.signing_key_ids.clone()),
            yum_repourls: overrides
                .yum_repourls
                .unwrap_or_else(|| defaults.yum_repourls.clone()),
            dest_tag: overrides
                .dest_tag
                .unwrap_or_else(|| defaults.dest_tag.clone()),
            arches: overrides.arches.unwrap_or_else(|| defaults.arches.clone()),
        }
    }

    /// Whether `namespace` holds container repositories we build.
    pub fn serves_namespace(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|known| known == namespace)
    }

    /// Whether `namespace/repo` may build (deny wins over allow; empty allow = all).
    pub fn repo_allowed(&self, namespace: &str, repo: &str) -> bool {
        let full = format!("{namespace}/{repo}");
        let matches = |glob: &Glob| {
            if glob.pattern().contains('/') {
                glob.matches(&full)
            } else {
                glob.matches(repo)
            }
        };
        !self.repos_deny.iter().any(matches)
            && (self.repos_allow.is_empty() || self.repos_allow.iter().any(matches))
    }

    /// Whether pushes to `branch` build automatically.
    pub fn branch_builds_automatically(&self, branch: &str) -> bool {
        self.auto_branches.iter().any(|glob| glob.matches(branch))
    }

    /// Clone URL of a pushed repository.
    pub fn clone_url(&self, namespace: &str, repo: &str) -> String {
        format!("{}/{namespace}/{repo}.git", self.git_clone_base)
    }

    pub(crate) fn allowed_git_urls(&self) -> &[String] {
        &self.allowed_git_urls
    }
}

/// Every name of `arches` is a Koji architecture name OSBS knows (`x86_64`, not `amd64`: the
/// job carries Koji's names), named once.
fn check_arches(key: &str, arches: &[String]) -> Result<(), String> {
    for (index, arch) in arches.iter().enumerate() {
        match osbs_proto::arch::lookup(arch) {
            None => {
                let known: Vec<&str> = osbs_proto::arch::KNOWN.iter().map(|a| a.koji).collect();
                return Err(format!(
                    "{key}: {arch:?} is not an architecture OSBS knows (one of {known:?})"
                ));
            }
            Some(known) if known.koji != arch => {
                return Err(format!(
                    "{key}: {arch:?} is the engine's name: write Koji's, {:?}",
                    known.koji
                ));
            }
            Some(_) if arches[..index].contains(arch) => {
                return Err(format!("{key}: {arch:?} is listed twice"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(edit: impl FnOnce(&mut DispatcherConfig)) -> Result<Routing, RoutingError> {
        let mut config = DispatcherConfig::default();
        edit(&mut config);
        Routing::new(&config)
    }

    #[test]
    fn the_runtime_has_one_thread_unless_told_otherwise() {
        for (configured, threads) in [(1, Some(1)), (4, Some(4)), (0, None)] {
            let config = DispatcherConfig {
                runtime_threads: configured,
                ..DispatcherConfig::default()
            };
            assert_eq!(config.threads(), threads, "runtime_threads = {configured}");
        }
        assert_eq!(DispatcherConfig::default().threads(), Some(1));
    }

    #[test]
    fn defaults_suit_the_quickstart() {
        let routing = routing(|_| {}).unwrap();
        let target = routing.target("f41-container-candidate");
        assert_eq!(target.registry, "127.0.0.1:5000");
        assert_eq!(target.base_registry, "127.0.0.1:5000");
        assert_eq!(
            routing.target_for_branch("container", "f41"),
            "f41-container-candidate"
        );
        assert_eq!(
            routing.clone_url("container", "httpd"),
            "file:///var/lib/osbs/dist-git/container/httpd.git"
        );
    }

    #[test]
    fn per_target_settings_override_defaults() {
        let routing = routing(|config| {
            config.targets.insert(
                "f41-container-candidate".into(),
                TargetOverrides {
                    registry: Some("registry.example.com".into()),
                    signing_key_ids: Some(vec!["a15b79cc".into()]),
                    ..Default::default()
                },
            );
            config
                .branch_targets
                .insert("main".into(), "rawhide-container-candidate".into());
        })
        .unwrap();
        let target = routing.target("f41-container-candidate");
        assert_eq!(target.registry, "registry.example.com");
        assert_eq!(target.base_registry, "127.0.0.1:5000");
        assert_eq!(target.signing_key_ids, vec!["a15b79cc".to_owned()]);
        assert_eq!(
            routing.target("other").registry,
            "127.0.0.1:5000",
            "a target without settings takes the defaults"
        );
        assert_eq!(
            routing.target_for_branch("container", "main"),
            "rawhide-container-candidate"
        );
    }

    #[test]
    fn arches_come_from_the_target_or_the_defaults() {
        let routing = routing(|config| {
            config.target_defaults.arches = vec!["x86_64".into(), "aarch64".into()];
            config.targets.insert(
                "f41-container-candidate".into(),
                TargetOverrides {
                    arches: Some(vec!["ppc64le".into()]),
                    ..Default::default()
                },
            );
            config.targets.insert(
                "inherits".into(),
                TargetOverrides {
                    dest_tag: Some("t".into()),
                    ..Default::default()
                },
            );
        })
        .unwrap();
        let table: [(&str, &[&str]); 3] = [
            ("f41-container-candidate", &["ppc64le"]),
            ("inherits", &["x86_64", "aarch64"]),
            ("unlisted", &["x86_64", "aarch64"]),
        ];
        for (target, arches) in table {
            assert_eq!(routing.target(target).arches, arches, "{target}");
        }
        let plain = super::Routing::new(&DispatcherConfig::default()).unwrap();
        assert!(
            plain.target("t").arches.is_empty(),
            "empty means the default arch, decided by the worker"
        );
    }

    #[test]
    fn repo_and_branch_filters() {
        let routing = routing(|config| {
            config.repos_allow = vec!["httpd".into(), "docker/*".into()];
            config.repos_deny = vec!["docker/old-*".into()];
        })
        .unwrap();
        let table = [
            ("container", "httpd", true),
            ("container", "nginx", false),
            ("docker", "cockpit", true),
            ("docker", "old-thing", false),
        ];
        for (namespace, repo, expected) in table {
            assert_eq!(
                routing.repo_allowed(namespace, repo),
                expected,
                "{namespace}/{repo}"
            );
        }
        assert!(routing.branch_builds_automatically("f41"));
        assert!(routing.branch_builds_automatically("epel9"));
        assert!(!routing.branch_builds_automatically("private-jdoe"));
    }

    #[test]
    fn mistakes_are_reported_with_their_key() {
        type Edit = fn(&mut DispatcherConfig);
        let table: [(Edit, &str); 9] = [
            (
                |c| c.target_defaults.arches = vec!["mips".into()],
                "target_defaults.arches: \"mips\" is not an architecture",
            ),
            (
                |c| c.target_defaults.arches = vec!["arm64".into()],
                "write Koji's, \"aarch64\"",
            ),
            (
                |c| c.target_defaults.arches = vec!["x86_64".into(), "x86_64".into()],
                "listed twice",
            ),
            (
                |c| {
                    c.targets.insert(
                        "t".into(),
                        TargetOverrides {
                            arches: Some(vec!["x86_64".into(), "sparc".into()]),
                            ..Default::default()
                        },
                    );
                },
                "targets.\"t\".arches: \"sparc\"",
            ),
            (|c| c.allowed_git_urls.clear(), "allowed_git_urls is empty"),
            (
                |c| c.git_clone_base = "https://elsewhere.example.com".into(),
                "git_clone_base",
            ),
            (|c| c.namespaces = vec!["../x".into()], "namespaces"),
            (|c| c.target_template = "candidate".into(), "{branch}"),
            (
                |c| c.allowed_git_urls = vec!["https://u:p@host".into()],
                "allowed_git_urls",
            ),
        ];
        for (edit, expected) in table {
            let error = routing(edit).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
