//! The workspace's dependency rules (docs/ARCHITECTURE.md, "Invariants"), read from
//! `cargo metadata`: no service depends on another service (they meet in osbs-proto and
//! osbs-common), and Koji's XML-RPC (dxr) is spoken by osbs-koji alone, besides the Koji hub
//! test double, which is a server.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::OnceLock;

/// The service crates: binaries that run on their own.
const SERVICES: [&str; 5] = [
    "osbs-dispatcher",
    "osbs-worker",
    "osbs-koji-bridge",
    "osbs-cli",
    "osbs-web",
];

/// The crates that may depend on dxr: the client, and the hub double (a server).
const XMLRPC_SPEAKERS: [&str; 2] = ["osbs-koji", "osbs-koji-hub"];

/// The resolved dependency graph: package names by id, and each package's dependencies with
/// whether they are normal or build dependencies (`true`) or only dev-dependencies.
#[derive(Debug)]
struct Graph {
    names: BTreeMap<String, String>,
    edges: BTreeMap<String, Vec<(String, bool)>>,
    members: BTreeSet<String>,
}

impl Graph {
    /// The workspace's graph, read once per test binary.
    fn workspace() -> &'static Graph {
        static GRAPH: OnceLock<Graph> = OnceLock::new();
        GRAPH.get_or_init(Graph::read)
    }

    fn read() -> Graph {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").into());
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
        let output = Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--locked"])
            .arg("--manifest-path")
            .arg(manifest)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {cargo} metadata: {error}"));
        assert!(
            output.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Graph::parse(&serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON"))
    }

    fn parse(metadata: &Value) -> Graph {
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        let names = metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|package| (text(&package["id"]), text(&package["name"])))
            .collect();
        let edges = metadata["resolve"]["nodes"]
            .as_array()
            .expect("resolve.nodes")
            .iter()
            .map(|node| {
                let deps = node["deps"].as_array().into_iter().flatten();
                let deps = deps.map(|dep| {
                    let kinds = dep["dep_kinds"].as_array().into_iter().flatten();
                    // `kind` is null for a normal dependency, "build" or "dev" otherwise.
                    let not_dev = kinds
                        .map(|kind| kind["kind"].as_str())
                        .any(|kind| kind != Some("dev"));
                    (text(&dep["pkg"]), not_dev)
                });
                (text(&node["id"]), deps.collect())
            })
            .collect();
        let members = metadata["workspace_members"]
            .as_array()
            .expect("workspace_members")
            .iter()
            .map(text)
            .collect();
        Graph {
            names,
            edges,
            members,
        }
    }

    fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.names.get(id).map_or(id, String::as_str)
    }

    fn id(&self, name: &str) -> &str {
        self.members
            .iter()
            .find(|id| self.name(id) == name)
            .unwrap_or_else(|| panic!("{name} is not a workspace member"))
    }

    /// What `from` reaches through normal and build dependencies (`dev`: through its own
    /// dev-dependencies too), without going through the crates named in `avoid`; with the
    /// path that reaches each.
    fn reachable(&self, from: &str, dev: bool, avoid: &[&str]) -> BTreeMap<String, Vec<String>> {
        let mut paths = BTreeMap::new();
        let mut todo = vec![(from.to_owned(), vec![self.name(from).to_owned()])];
        while let Some((id, path)) = todo.pop() {
            for (dep, not_dev) in self.edges.get(&id).into_iter().flatten() {
                let counts = *not_dev || (dev && id == from);
                if counts && !avoid.contains(&self.name(dep)) && !paths.contains_key(dep) {
                    let mut longer = path.clone();
                    longer.push(self.name(dep).to_owned());
                    paths.insert(dep.clone(), longer.clone());
                    todo.push((dep.clone(), longer));
                }
            }
        }
        paths
    }
}

#[test]
fn no_service_depends_on_another_service() {
    let graph = Graph::workspace();
    let mut found = Vec::new();
    for service in SERVICES {
        for (dep, path) in graph.reachable(graph.id(service), false, &[]) {
            if SERVICES.contains(&graph.name(&dep)) {
                found.push(path.join(" -> "));
            }
        }
    }
    assert!(
        found.is_empty(),
        "services meet only in osbs-proto, osbs-common and the protocol crates; move what they \
         share there: {found:#?}"
    );
}

#[test]
fn only_osbs_koji_speaks_koji_xmlrpc() {
    let graph = Graph::workspace();
    let mut found = Vec::new();
    for member in &graph.members {
        if XMLRPC_SPEAKERS.contains(&graph.name(member)) {
            continue;
        }
        for (dep, path) in graph.reachable(member, true, &XMLRPC_SPEAKERS) {
            if graph.name(&dep) == "dxr" {
                found.push(path.join(" -> "));
            }
        }
    }
    assert!(
        found.is_empty(),
        "Koji's XML-RPC goes through osbs-koji's client: {found:#?}"
    );
    let koji = graph.reachable(graph.id("osbs-koji"), false, &[]);
    assert!(
        koji.keys().any(|dep| graph.name(dep) == "dxr"),
        "osbs-koji speaks XML-RPC with dxr (did the check lose its subject?)"
    );
}

#[test]
fn the_rules_catch_what_they_are_about() {
    // A made-up workspace: the CLI on the dispatcher through a library, a service on dxr.
    let metadata = serde_json::json!({
        "packages": [
            {"id": "cli", "name": "osbs-cli"},
            {"id": "lib", "name": "osbs-lib"},
            {"id": "dispatcher", "name": "osbs-dispatcher"},
            {"id": "dxr", "name": "dxr"},
        ],
        "workspace_members": ["cli", "lib", "dispatcher"],
        "resolve": {"nodes": [
            {"id": "cli", "deps": [{"pkg": "lib", "dep_kinds": [{"kind": null}]}]},
            {"id": "lib", "deps": [{"pkg": "dispatcher", "dep_kinds": [{"kind": "build"}]}]},
            {"id": "dispatcher", "deps": [{"pkg": "dxr", "dep_kinds": [{"kind": "dev"}]}]},
            {"id": "dxr", "deps": []},
        ]},
    });
    let graph = Graph::parse(&metadata);
    let from_cli = graph.reachable("cli", false, &[]);
    assert_eq!(
        from_cli["dispatcher"],
        ["osbs-cli", "osbs-lib", "osbs-dispatcher"]
    );
    assert!(
        !from_cli.contains_key("dxr"),
        "dev-dependencies of deps do not count"
    );
    assert!(graph.reachable("dispatcher", true, &[]).contains_key("dxr"));
    assert!(
        !graph
            .reachable("dispatcher", false, &[])
            .contains_key("dxr")
    );
    let around = graph.reachable("cli", false, &["osbs-lib"]);
    assert!(
        around.is_empty(),
        "what is avoided is not gone through: {around:?}"
    );
}
