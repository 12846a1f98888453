//! Which architectures a build is for (DESIGN.md "Architectures"), pure: the target's
//! arches, narrowed by the commit's `container.yaml` `platforms: {only, not}`, then, for a
//! scratch build, by the request's `arch_override`. Names are Koji's; an engine name
//! (`amd64`) written anywhere is read as its Koji name (`x86_64`). And the platform build
//! arguments each build passes ([`platform_build_args`]).

use osbs_proto::arch::{self, Arch};
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};

/// `container.yaml`'s `platforms`: each a string or a list, as atomic-reactor reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platforms {
    /// `platforms.only`: when set, nothing else is built.
    pub only: Option<Vec<String>>,
    /// `platforms.not`: never built.
    pub not: Vec<String>,
}

/// Why a build has no architecture to build, or what in `container.yaml` is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchesError {
    #[error("container.yaml: {0}")]
    ContainerYaml(String),
    #[error("no architecture left to build: {0}")]
    Empty(String),
}

/// Reads `platforms` from the text of `container.yaml` (other keys are not the worker's).
pub fn read_platforms(text: &str) -> Result<Platforms, ArchesError> {
    let bad = |why: String| ArchesError::ContainerYaml(why);
    let document: Value =
        serde_yaml_ng::from_str(text).map_err(|error| bad(format!("not valid YAML: {error}")))?;
    let platforms = match &document {
        Value::Null => return Ok(Platforms::default()),
        Value::Mapping(map) => map.get("platforms"),
        _ => return Err(bad("the document is not a mapping".into())),
    };
    let platforms = match platforms {
        None | Some(Value::Null) => return Ok(Platforms::default()),
        Some(Value::Mapping(map)) => map,
        Some(_) => {
            return Err(bad(
                "platforms must be a mapping with `only` and/or `not`".into()
            ));
        }
    };
    for key in platforms.keys() {
        if !matches!(key.as_str(), Some("only" | "not")) {
            return Err(bad(format!(
                "platforms has an unknown key {key:?}: only `only` and `not` are read"
            )));
        }
    }
    let names = |key: &str| -> Result<Option<Vec<String>>, ArchesError> {
        match platforms.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(name)) => Ok(Some(vec![arch::koji_name(name)])),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(name) => Ok(arch::koji_name(name)),
                    other => Err(bad(format!(
                        "platforms.{key} holds {other:?}: write architecture names"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(bad(format!(
                "platforms.{key} is {other:?}: write a name or a list of names"
            ))),
        }
    };
    Ok(Platforms {
        only: names("only")?,
        not: names("not")?.unwrap_or_default(),
    })
}

/// The arches of a build, in the target's order: `target` (empty: the default arch),
/// narrowed by `platforms`, then by `arch_override` when `scratch`. An empty result names
/// what emptied it.
pub fn decide(
    target: &[String],
    platforms: &Platforms,
    arch_override: &[String],
    scratch: bool,
) -> Result<Vec<String>, ArchesError> {
    let mut arches: Vec<String> = if target.is_empty() {
        vec![arch::DEFAULT_ARCH.to_owned()]
    } else {
        target.iter().map(|name| arch::koji_name(name)).collect()
    };
    let start = arches.clone();
    if let Some(only) = &platforms.only {
        arches.retain(|arch| only.contains(arch));
        if arches.is_empty() {
            return Err(ArchesError::Empty(format!(
                "the target builds for {start:?} and container.yaml platforms.only is {only:?}"
            )));
        }
    }
    let before_not = arches.clone();
    arches.retain(|arch| !platforms.not.contains(arch));
    if arches.is_empty() {
        return Err(ArchesError::Empty(format!(
            "container.yaml platforms.not {:?} removes all of {before_not:?}",
            platforms.not
        )));
    }
    if scratch && !arch_override.is_empty() {
        let wanted: Vec<String> = arch_override
            .iter()
            .map(|name| arch::koji_name(name))
            .collect();
        let before_override = arches.clone();
        arches.retain(|arch| wanted.contains(arch));
        if arches.is_empty() {
            return Err(ArchesError::Empty(format!(
                "arch_override {wanted:?} names none of the build's arches {before_override:?}"
            )));
        }
    }
    Ok(arches)
}

/// The platform build arguments BuildKit defines by itself and the classic builder (the one
/// OSBS drives) does not, for a build of `target` on an engine of `build`: `TARGETPLATFORM`
/// (`linux/arm64/v8`, `linux/amd64`), `TARGETOS`, `TARGETARCH` (Go's name: `arm64`),
/// `TARGETVARIANT` (`v8` for arm64, empty where no variant applies), and the same four
/// `BUILD*` for the engine's own. Only the names in `declared` (the Dockerfile's `ARG`s)
/// are passed: the classic builder warns about any other ("build-args were not consumed").
pub fn platform_build_args(
    target: &Arch,
    build: &Arch,
    declared: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut args = BTreeMap::new();
    for (prefix, arch) in [("TARGET", target), ("BUILD", build)] {
        let variant = arch.variant.unwrap_or_default();
        let platform = match arch.variant {
            Some(variant) => format!("linux/{}/{variant}", arch.oci),
            None => format!("linux/{}", arch.oci),
        };
        for (name, value) in [
            ("PLATFORM", platform.as_str()),
            ("OS", "linux"),
            ("ARCH", arch.oci),
            ("VARIANT", variant),
        ] {
            let name = format!("{prefix}{name}");
            if declared.contains(&name) {
                args.insert(name, value.to_owned());
            }
        }
    }
    args
}

/// The engine's `platform` build parameter for a build of `arch` (`None`: the engine's
/// own). `None` too when the Dockerfile has a `FROM scratch` stage: the classic builder
/// (Docker 20.10) labels every image it commits on `scratch` with the engine's own arch,
/// then refuses the next `ADD`/`COPY` of that stage ("image ... was found but does not match
/// the specified platform: wanted linux/arm64, actual: linux/amd64"). Without the parameter
/// nothing is lost: every image the build names is pinned by the digest of the arch's own
/// manifest before the build, `RUN` runs the arch's binaries through binfmt_misc whatever
/// the parameter, and the squash sets the image config's architecture.
pub fn build_platform(arch: Option<&Arch>, has_scratch_stage: bool) -> Option<String> {
    arch.filter(|_| !has_scratch_stage).map(Arch::platform)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_platform_parameter_for_a_dockerfile_with_a_scratch_stage() {
        let arm = arch::lookup("aarch64").unwrap();
        let table = [
            (None, false, None),
            (None, true, None),
            (Some(&arm), false, Some("linux/arm64")),
            (Some(&arm), true, None),
        ];
        for (arch, scratch, expected) in table {
            assert_eq!(
                build_platform(arch, scratch).as_deref(),
                expected,
                "{arch:?} {scratch}"
            );
        }
    }

    #[test]
    fn platform_build_args_only_those_declared() {
        let arch = |name| arch::lookup(name).unwrap();
        let every: BTreeSet<String> = [
            "TARGETPLATFORM",
            "TARGETOS",
            "TARGETARCH",
            "TARGETVARIANT",
            "BUILDPLATFORM",
            "BUILDOS",
            "BUILDARCH",
            "BUILDVARIANT",
        ]
        .map(String::from)
        .into();
        let names = |names: &[&str]| -> BTreeSet<String> {
            names.iter().map(|name| (*name).to_owned()).collect()
        };
        /// (target arch, engine arch, the Dockerfile's ARG names, the build args)
        type Case<'a> = (&'a str, &'a str, BTreeSet<String>, &'a [(&'a str, &'a str)]);
        let table: &[Case] = &[
            // An arm64 build on an amd64 engine, every name declared.
            (
                "aarch64",
                "x86_64",
                every.clone(),
                &[
                    ("BUILDARCH", "amd64"),
                    ("BUILDOS", "linux"),
                    ("BUILDPLATFORM", "linux/amd64"),
                    ("BUILDVARIANT", ""),
                    ("TARGETARCH", "arm64"),
                    ("TARGETOS", "linux"),
                    ("TARGETPLATFORM", "linux/arm64/v8"),
                    ("TARGETVARIANT", "v8"),
                ],
            ),
            // A single-arch build: the target is the engine's own.
            (
                "x86_64",
                "x86_64",
                names(&["TARGETARCH"]),
                &[("TARGETARCH", "amd64")],
            ),
            (
                "ppc64le",
                "x86_64",
                names(&["TARGETARCH", "TARGETVARIANT"]),
                &[("TARGETARCH", "ppc64le"), ("TARGETVARIANT", "")],
            ),
            (
                "s390x",
                "aarch64",
                names(&["TARGETPLATFORM", "BUILDPLATFORM"]),
                &[
                    ("BUILDPLATFORM", "linux/arm64/v8"),
                    ("TARGETPLATFORM", "linux/s390x"),
                ],
            ),
            // Nothing declared, or only other names (not ours to pass): no build argument.
            ("aarch64", "x86_64", names(&[]), &[]),
            ("aarch64", "x86_64", names(&["VERSION", "targetarch"]), &[]),
        ];
        for (target, build, declared, expected) in table {
            let args = platform_build_args(&arch(target), &arch(build), declared);
            let expected: BTreeMap<String, String> = expected
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect();
            assert_eq!(args, expected, "{target} on {build}, {declared:?}");
        }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn platforms_are_read_as_atomic_reactor_reads_them() {
        type Row<'a> = (&'a str, Option<&'a [&'a str]>, &'a [&'a str]);
        let table: [Row; 7] = [
            ("", None, &[]),
            ("compose:\n  packages: [a]\n", None, &[]),
            ("platforms:\n  only: aarch64\n", Some(&["aarch64"]), &[]),
            (
                "platforms:\n  only: [x86_64, arm64]\n  not: ppc64le\n",
                Some(&["x86_64", "aarch64"]),
                &["ppc64le"],
            ),
            (
                "platforms:\n  not: [s390x, amd64]\n",
                None,
                &["s390x", "x86_64"],
            ),
            ("platforms:\n", None, &[]),
            ("platforms:\n  only: null\n  not: null\n", None, &[]),
        ];
        for (text, only, not) in table {
            let platforms = read_platforms(text).unwrap();
            assert_eq!(platforms.only, only.map(strings), "{text}");
            assert_eq!(platforms.not, strings(not), "{text}");
        }
    }

    #[test]
    fn a_bad_container_yaml_says_what_is_wrong() {
        let table = [
            ("platforms: [x86_64]\n", "platforms must be a mapping"),
            ("platforms:\n  exclude: x86_64\n", "unknown key"),
            ("platforms:\n  only: 3\n", "platforms.only is"),
            ("platforms:\n  not: [[x]]\n", "platforms.not holds"),
            ("platforms: {only: [x86_64\n", "not valid YAML"),
            ("- a\n", "not a mapping"),
        ];
        for (text, expected) in table {
            let error = read_platforms(text).unwrap_err().to_string();
            assert!(error.starts_with("container.yaml: "), "{error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn target_narrowed_by_platforms_then_by_the_scratch_override() {
        let both = strings(&["x86_64", "aarch64"]);
        let only_arm = Platforms {
            only: Some(strings(&["aarch64"])),
            not: Vec::new(),
        };
        let not_arm = Platforms {
            only: None,
            not: strings(&["aarch64"]),
        };
        let none = Platforms::default();
        let arm = strings(&["aarch64"]);
        type Row<'a> = (
            &'a [String],
            &'a Platforms,
            &'a [String],
            bool,
            &'a [&'a str],
        );
        let table: [Row; 8] = [
            (&[], &none, &[], false, &["x86_64"]),
            (&both, &none, &[], false, &["x86_64", "aarch64"]),
            (&both, &only_arm, &[], false, &["aarch64"]),
            (&both, &not_arm, &[], false, &["x86_64"]),
            (&both, &none, &arm, true, &["aarch64"]),
            // Not scratch: the dispatcher refuses an override; one that got here is ignored.
            (&both, &none, &arm, false, &["x86_64", "aarch64"]),
            (&strings(&["amd64"]), &none, &[], false, &["x86_64"]),
            (&both, &none, &strings(&["arm64"]), true, &["aarch64"]),
        ];
        for (target, platforms, arch_override, scratch, expected) in table {
            assert_eq!(
                decide(target, platforms, arch_override, scratch).unwrap(),
                strings(expected),
                "{target:?} {platforms:?} {arch_override:?} {scratch}"
            );
        }
    }

    #[test]
    fn an_empty_result_names_what_emptied_it() {
        let x86 = strings(&["x86_64"]);
        let table: [(&[String], Platforms, &[String], &str); 3] = [
            (
                &x86,
                Platforms {
                    only: Some(strings(&["aarch64"])),
                    not: Vec::new(),
                },
                &[],
                "container.yaml platforms.only is [\"aarch64\"]",
            ),
            (
                &[],
                Platforms {
                    only: None,
                    not: strings(&["x86_64"]),
                },
                &[],
                "container.yaml platforms.not [\"x86_64\"] removes all of [\"x86_64\"]",
            ),
            (
                &x86,
                Platforms::default(),
                &strings(&["s390x"]),
                "arch_override [\"s390x\"] names none",
            ),
        ];
        for (target, platforms, arch_override, expected) in table {
            let error = decide(target, &platforms, arch_override, true)
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("no architecture left to build: "));
            assert!(error.contains(expected), "{error}");
        }
    }
}
