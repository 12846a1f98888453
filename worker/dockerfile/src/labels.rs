//! Label rules of an OSBS build: the old label aliases, the required labels and their checks,
//! the labels OSBS injects (and the ones it must not overwrite), and Dockerfile quoting of
//! label values.

use crate::error::MissingLabels;
use std::collections::BTreeMap;

/// Old label names (still found in Dockerfiles) and the names that replaced them.
pub const LABEL_ALIASES: [(&str, &str); 8] = [
    ("BZComponent", "com.redhat.component"),
    ("Name", "name"),
    ("Version", "version"),
    ("Release", "release"),
    ("Architecture", "architecture"),
    ("Vendor", "vendor"),
    ("Authoritative_Registry", "authoritative-source-url"),
    ("Build_Host", "com.redhat.build-host"),
];

/// Reads labels by their current name, falling back to the old alias; the current name wins
/// when both are set.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    labels: &'a BTreeMap<String, String>,
}

impl<'a> Labels<'a> {
    pub fn new(labels: &'a BTreeMap<String, String>) -> Labels<'a> {
        Labels { labels }
    }

    /// The value of `name` (a current name such as `com.redhat.component`), or of its alias.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.labels.get(name).map(String::as_str).or_else(|| {
            LABEL_ALIASES
                .iter()
                .find(|(_, new)| *new == name)
                .and_then(|(old, _)| self.labels.get(*old))
                .map(String::as_str)
        })
    }

    /// The name `name` is set under: itself, its alias, or neither.
    pub fn set_as(&self, name: &str) -> Option<&'a str> {
        if let Some((key, _)) = self.labels.get_key_value(name) {
            return Some(key.as_str());
        }
        LABEL_ALIASES
            .iter()
            .find(|(_, new)| *new == name)
            .and_then(|(old, _)| self.labels.get_key_value(*old))
            .map(|(key, _)| key.as_str())
    }
}

/// The Koji NVR and the registry name an image is built and pushed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentNvr {
    /// `com.redhat.component`: the Koji build (package) name.
    pub component: String,
    /// `name`: the registry repository.
    pub name: String,
    pub version: String,
    /// `release` when the Dockerfile sets it; otherwise OSBS picks the next free one.
    pub release: Option<String>,
}

/// Koji's default `RegexNameInternal` and `MaxNameLengthInternal`.
fn koji_name_problem(value: &str) -> Option<String> {
    if value.len() > 256 {
        return Some("is longer than the 256 characters Koji accepts".to_owned());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_.+-".contains(c))
    {
        return Some(
            "holds characters Koji refuses in a name (allowed: letters, digits, `/`, `_`, `.`, `+`, `-`)"
                .to_owned(),
        );
    }
    None
}

/// The distribution spec's repository name: lower-case components `[a-z0-9]+` joined by `.`,
/// `_`, `__` or `-`s, separated by `/`.
fn repository_problem(value: &str) -> Option<String> {
    let component_ok = |component: &str| {
        let bytes = component.as_bytes();
        if bytes.is_empty()
            || !bytes[0].is_ascii_alphanumeric()
            || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut separator = String::new();
        for &b in bytes {
            if b.is_ascii_lowercase() || b.is_ascii_digit() {
                if !(separator.is_empty()
                    || separator == "."
                    || separator == "_"
                    || separator == "__"
                    || separator.bytes().all(|s| s == b'-'))
                {
                    return false;
                }
                separator.clear();
            } else if b == b'.' || b == b'_' || b == b'-' {
                separator.push(b as char);
            } else {
                return false;
            }
        }
        true
    };
    if value.len() > 255 || !value.split('/').all(component_ok) {
        return Some(
            "is not a valid registry repository name (lower-case letters and digits, separated by `.`, `_`, `-` or `/`)"
                .to_owned(),
        );
    }
    None
}

/// Version and release: Koji refuses `-` in them, and `<version>-<release>` must be a
/// registry tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
fn version_problem(value: &str) -> Option<String> {
    if value.contains('-') {
        return Some("holds a `-`, which Koji refuses in a version or release".to_owned());
    }
    let first_ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.".contains(c))
    {
        return Some(
            "cannot be part of a registry tag (use letters, digits, `_` and `.`, starting with a letter or digit)"
                .to_owned(),
        );
    }
    None
}

/// Checks the labels an OSBS build needs (aliases accepted) and returns its NVR.
pub fn required(labels: &BTreeMap<String, String>) -> Result<ComponentNvr, MissingLabels> {
    let view = Labels::new(labels);
    let required = ["com.redhat.component", "name", "version"];
    let missing: Vec<String> = required
        .iter()
        .filter(|name| view.get(name).is_none_or(str::is_empty))
        .map(|name| (*name).to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(MissingLabels::Missing { missing });
    }
    let get = |name: &str| view.get(name).unwrap_or_default().to_owned();
    let nvr = ComponentNvr {
        component: get("com.redhat.component"),
        name: get("name"),
        version: get("version"),
        release: view.get("release").map(str::to_owned),
    };
    let mut checks = vec![
        (
            "com.redhat.component",
            nvr.component.as_str(),
            koji_name_problem(&nvr.component),
        ),
        ("name", nvr.name.as_str(), repository_problem(&nvr.name)),
        (
            "version",
            nvr.version.as_str(),
            version_problem(&nvr.version),
        ),
    ];
    if let Some(release) = &nvr.release {
        checks.push(("release", release.as_str(), version_problem(release)));
    }
    for (label, value, problem) in checks {
        if let Some(reason) = problem {
            return Err(MissingLabels::Invalid {
                label: view.set_as(label).unwrap_or(label).to_owned(),
                value: value.to_owned(),
                reason,
            });
        }
    }
    if (nvr.version.len() + 1 + nvr.release.as_deref().map_or(0, str::len)) > 128 {
        return Err(MissingLabels::Invalid {
            label: "version".to_owned(),
            value: nvr.version.clone(),
            reason: "with the release makes a registry tag longer than 128 characters".to_owned(),
        });
    }
    Ok(nvr)
}

/// What the build knows that goes into the injected labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InjectInputs {
    /// ISO-8601 UTC, e.g. `2024-05-01T12:00:00Z` (the caller formats its clock).
    pub build_date: String,
    /// The architecture built for, in Koji's naming (`x86_64`, `aarch64`): an arch job's
    /// arch (`osbs_proto::arch`), a single-arch build's the engine's.
    pub architecture: String,
    /// The dist-git commit.
    pub vcs_ref: String,
    /// The worker's host name.
    pub build_host: String,
    /// The release OSBS picked; used only when the Dockerfile sets none.
    pub release: String,
    pub vendor: Option<String>,
    pub authoritative_source_url: Option<String>,
    pub distribution_scope: Option<String>,
}

/// The labels to append in the final stage, in this order: `build-date`, `architecture`
/// (unless the parent image sets it and the Dockerfile does not), `vcs-type=git`, `vcs-ref`,
/// `com.redhat.build-host`, `release` (unless the Dockerfile sets it), the configured
/// `vendor`, `authoritative-source-url` and `distribution-scope` (the last unless the
/// Dockerfile sets it), then the current name of every label the Dockerfile sets only under
/// its old alias (`Name=x` gains `name=x`), so the image carries the names tools read.
pub fn labels_to_inject(
    dockerfile_labels: &BTreeMap<String, String>,
    parent_labels: &BTreeMap<String, String>,
    inputs: &InjectInputs,
) -> Vec<(String, String)> {
    let dockerfile = Labels::new(dockerfile_labels);
    let parent = Labels::new(parent_labels);
    let mut out: Vec<(String, String)> = Vec::new();
    let push = |out: &mut Vec<(String, String)>, name: &str, value: &str| {
        out.retain(|(existing, _)| existing != name);
        out.push((name.to_owned(), value.to_owned()));
    };
    push(&mut out, "build-date", &inputs.build_date);
    if parent.get("architecture").is_none() || dockerfile.get("architecture").is_some() {
        push(&mut out, "architecture", &inputs.architecture);
    }
    push(&mut out, "vcs-type", "git");
    push(&mut out, "vcs-ref", &inputs.vcs_ref);
    push(&mut out, "com.redhat.build-host", &inputs.build_host);
    if dockerfile.get("release").is_none() {
        push(&mut out, "release", &inputs.release);
    }
    if let Some(vendor) = &inputs.vendor {
        push(&mut out, "vendor", vendor);
    }
    if let Some(url) = &inputs.authoritative_source_url {
        push(&mut out, "authoritative-source-url", url);
    }
    if let Some(scope) = &inputs.distribution_scope
        && dockerfile.get("distribution-scope").is_none()
    {
        push(&mut out, "distribution-scope", scope);
    }
    let injected: Vec<String> = out.iter().map(|(name, _)| name.clone()).collect();
    for (old, new) in LABEL_ALIASES {
        if let Some(value) = dockerfile_labels.get(old)
            && !dockerfile_labels.contains_key(new)
            && !injected.iter().any(|name| name == new)
        {
            push(&mut out, new, value);
        }
    }
    out
}

/// How a label value reads back after [`quote_label_value`]: identical, except that a line
/// break (which no Dockerfile instruction can hold) becomes the two characters `\n`.
pub fn label_value_as_stored(value: &str) -> String {
    value.replace('\n', "\\n")
}

/// A Dockerfile double-quoted word for `value`, for the default escape character `\`.
pub fn quote_label_value(value: &str) -> String {
    quote_label_value_with_escape(value, '\\')
}

/// A Dockerfile double-quoted word that reads back as `value` (see
/// [`label_value_as_stored`]) under the escape character `escape` (`\` or `` ` ``): `"`,
/// `$` and the escape character are escaped, so nothing can end the quotes, substitute a
/// variable, or continue the line; a line break is written as `\n`, since a real one would
/// end the instruction. Everything else, `\r`, NUL and tabs included, is kept as it is
/// (checked against the Docker Engine).
pub fn quote_label_value_with_escape(value: &str, escape: char) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in label_value_as_stored(value).chars() {
        if c == '"' || c == '$' || c == escape {
            out.push(escape);
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn aliases_read_and_new_name_wins() {
        let labels = map(&[("Name", "old"), ("Version", "1"), ("version", "2")]);
        let view = Labels::new(&labels);
        assert_eq!(view.get("name"), Some("old"));
        assert_eq!(view.get("version"), Some("2"));
        assert_eq!(view.get("release"), None);
        assert_eq!(view.set_as("name"), Some("Name"));
        assert_eq!(view.set_as("version"), Some("version"));
    }

    #[test]
    fn required_table() {
        let ok = |component: &str, name: &str, version: &str, release: Option<&str>| {
            Ok(ComponentNvr {
                component: component.into(),
                name: name.into(),
                version: version.into(),
                release: release.map(Into::into),
            })
        };
        type Case<'a> = (Vec<(&'a str, &'a str)>, Result<ComponentNvr, String>);
        let cases: Vec<Case> = vec![
            (
                vec![("com.redhat.component", "httpd-container"), ("name", "fedora/httpd"), ("version", "2.4")],
                ok("httpd-container", "fedora/httpd", "2.4", None),
            ),
            (
                vec![("BZComponent", "c"), ("Name", "n"), ("Version", "1"), ("Release", "3.fc41")],
                ok("c", "n", "1", Some("3.fc41")),
            ),
            (
                vec![("name", "n")],
                Err("the Dockerfile's final stage lacks the required label(s) com.redhat.component, version; add `LABEL name=... version=... com.redhat.component=...` to it".into()),
            ),
            (
                vec![],
                Err("the Dockerfile's final stage lacks the required label(s) com.redhat.component, name, version; add `LABEL name=... version=... com.redhat.component=...` to it".into()),
            ),
            (
                vec![("com.redhat.component", ""), ("name", "n"), ("version", "1")],
                Err("the Dockerfile's final stage lacks the required label(s) com.redhat.component; add `LABEL name=... version=... com.redhat.component=...` to it".into()),
            ),
            (
                vec![("com.redhat.component", "c"), ("name", "n"), ("version", "1-2")],
                Err("label `version` is \"1-2\", which holds a `-`, which Koji refuses in a version or release; change the LABEL in the Dockerfile".into()),
            ),
            (
                vec![("com.redhat.component", "c"), ("name", "n"), ("version", "1"), ("Release", "2-1")],
                Err("label `Release` is \"2-1\", which holds a `-`, which Koji refuses in a version or release; change the LABEL in the Dockerfile".into()),
            ),
            (
                vec![("com.redhat.component", "c d"), ("name", "n"), ("version", "1")],
                Err("label `com.redhat.component` is \"c d\", which holds characters Koji refuses in a name (allowed: letters, digits, `/`, `_`, `.`, `+`, `-`); change the LABEL in the Dockerfile".into()),
            ),
            (
                vec![("com.redhat.component", "c"), ("name", "Fedora/Httpd"), ("version", "1")],
                Err("label `name` is \"Fedora/Httpd\", which is not a valid registry repository name (lower-case letters and digits, separated by `.`, `_`, `-` or `/`); change the LABEL in the Dockerfile".into()),
            ),
            (
                vec![("com.redhat.component", "c"), ("name", "a//b"), ("version", "1")],
                Err("label `name` is \"a//b\", which is not a valid registry repository name (lower-case letters and digits, separated by `.`, `_`, `-` or `/`); change the LABEL in the Dockerfile".into()),
            ),
            (
                vec![("com.redhat.component", "c"), ("name", "n"), ("version", "1 0")],
                Err("label `version` is \"1 0\", which cannot be part of a registry tag (use letters, digits, `_` and `.`, starting with a letter or digit); change the LABEL in the Dockerfile".into()),
            ),
        ];
        for (labels, expect) in cases {
            let got = required(&map(&labels)).map_err(|e| e.to_string());
            assert_eq!(got, expect, "{labels:?}");
        }
    }

    fn inputs() -> InjectInputs {
        InjectInputs {
            build_date: "2024-05-01T12:00:00Z".into(),
            architecture: "x86_64".into(),
            vcs_ref: "abc123".into(),
            build_host: "worker-1".into(),
            release: "7".into(),
            vendor: Some("Fedora Project".into()),
            authoritative_source_url: Some("registry.fedoraproject.org".into()),
            distribution_scope: Some("public".into()),
        }
    }

    #[test]
    fn inject_table() {
        type Pairs<'a> = Vec<(&'a str, &'a str)>;
        type Case<'a> = (&'a str, Pairs<'a>, Pairs<'a>, InjectInputs, Pairs<'a>);
        let cases: Vec<Case> = vec![
            (
                "nothing set anywhere",
                vec![],
                vec![],
                inputs(),
                vec![
                    ("build-date", "2024-05-01T12:00:00Z"),
                    ("architecture", "x86_64"),
                    ("vcs-type", "git"),
                    ("vcs-ref", "abc123"),
                    ("com.redhat.build-host", "worker-1"),
                    ("release", "7"),
                    ("vendor", "Fedora Project"),
                    ("authoritative-source-url", "registry.fedoraproject.org"),
                    ("distribution-scope", "public"),
                ],
            ),
            (
                "parent architecture stays; Dockerfile release and distribution-scope stay",
                vec![
                    ("release", "3"),
                    ("distribution-scope", "private"),
                    ("vcs-ref", "old"),
                ],
                vec![("architecture", "aarch64")],
                inputs(),
                vec![
                    ("build-date", "2024-05-01T12:00:00Z"),
                    ("vcs-type", "git"),
                    ("vcs-ref", "abc123"),
                    ("com.redhat.build-host", "worker-1"),
                    ("vendor", "Fedora Project"),
                    ("authoritative-source-url", "registry.fedoraproject.org"),
                ],
            ),
            (
                "parent's old Architecture alias counts; a Dockerfile architecture is replaced",
                vec![("architecture", "i386")],
                vec![("Architecture", "aarch64")],
                InjectInputs {
                    vendor: None,
                    authoritative_source_url: None,
                    distribution_scope: None,
                    ..inputs()
                },
                vec![
                    ("build-date", "2024-05-01T12:00:00Z"),
                    ("architecture", "x86_64"),
                    ("vcs-type", "git"),
                    ("vcs-ref", "abc123"),
                    ("com.redhat.build-host", "worker-1"),
                    ("release", "7"),
                ],
            ),
            (
                "old aliases in the Dockerfile gain their current names",
                vec![
                    ("BZComponent", "c"),
                    ("Name", "n"),
                    ("Version", "1"),
                    ("Release", "4"),
                    ("Vendor", "Me"),
                    ("version", "1"),
                ],
                vec![("Architecture", "x86_64")],
                InjectInputs {
                    vendor: None,
                    authoritative_source_url: None,
                    distribution_scope: None,
                    ..inputs()
                },
                vec![
                    ("build-date", "2024-05-01T12:00:00Z"),
                    ("vcs-type", "git"),
                    ("vcs-ref", "abc123"),
                    ("com.redhat.build-host", "worker-1"),
                    ("com.redhat.component", "c"),
                    ("name", "n"),
                    ("release", "4"),
                    ("vendor", "Me"),
                ],
            ),
        ];
        for (what, dockerfile, parent, inputs, expect) in cases {
            let got = labels_to_inject(&map(&dockerfile), &map(&parent), &inputs);
            let expect: Vec<(String, String)> = expect
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, expect, "{what}");
        }
    }

    #[test]
    fn quoting_table() {
        let cases: &[(&str, char, &str)] = &[
            ("plain", '\\', "\"plain\""),
            ("", '\\', "\"\""),
            ("a\"b", '\\', "\"a\\\"b\""),
            ("$HOME ${X}", '\\', "\"\\$HOME \\${X}\""),
            ("back\\slash\\", '\\', "\"back\\\\slash\\\\\""),
            ("line\nbreak", '\\', "\"line\\\\nbreak\""),
            ("tick`", '\\', "\"tick`\""),
            ("a\"b", '`', "\"a`\"b\""),
            ("back\\slash", '`', "\"back\\slash\""),
            ("tick`$", '`', "\"tick```$\""),
            ("line\nbreak", '`', "\"line\\nbreak\""),
            ("it's", '\\', "\"it's\""),
        ];
        for (value, escape, expect) in cases {
            assert_eq!(
                quote_label_value_with_escape(value, *escape),
                *expect,
                "{value:?} {escape}"
            );
        }
        assert_eq!(quote_label_value("x\"y"), "\"x\\\"y\"");
    }
}
