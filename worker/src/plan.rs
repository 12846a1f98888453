//! Push step, pure part: the repository an image goes to, the tags of DESIGN.md for normal,
//! scratch and isolated builds, the pullspecs recorded for them, and what the squash adds
//! in place of the builder steps the rewrite leaves out.

use osbs_dockerfile::Rewritten;
use osbs_proto::v1::{BuildOptions, Target};
use osbs_squash::{AddedFile, Additions};

/// What the squash writes instead of the buildinfo COPY and the injected LABEL the engine
/// no longer builds: the whole rewritten Dockerfile (`rewritten.stored`) as
/// `/root/buildinfo/<buildinfo>` (0644 root:root, as COPY of the context made it) and the
/// labels as the builder read that LABEL.
pub fn squash_additions(rewritten: &Rewritten, buildinfo: &str) -> Additions {
    let files = rewritten
        .buildinfo_instruction
        .iter()
        .map(|copy| AddedFile {
            path: format!("/root/buildinfo/{buildinfo}"),
            contents: rewritten.stored.clone().into_bytes(),
            mode: 0o644,
            created_by: copy.clone(),
        })
        .collect();
    Additions {
        labels: rewritten.labels.clone(),
        labels_created_by: rewritten.label_instruction.clone().unwrap_or_default(),
        earlier_labels_created_by: rewritten.own_label_instructions.clone(),
        files,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "tag {tag:?} is not a valid image tag (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-'); fix the `version` or `release` label"
    )]
    BadTag { tag: String },
    #[error(
        "image name {name:?} is not a valid repository name (lowercase letters, digits, '.', '_', '-' and '/'); fix the `name` label"
    )]
    BadName { name: String },
    #[error("the job's target has no registry to push to; fix the dispatcher's target settings")]
    NoRegistry,
}

/// The kind of build, which decides the tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildKind {
    Normal,
    Scratch,
    Isolated,
}

impl BuildKind {
    pub fn of(options: Option<&BuildOptions>) -> BuildKind {
        match options {
            Some(options) if options.scratch => BuildKind::Scratch,
            Some(options) if options.isolated => BuildKind::Isolated,
            _ => BuildKind::Normal,
        }
    }
}

/// `registry/namespace/name` (no namespace: `registry/name`).
pub fn repository(target: &Target, name: &str) -> Result<String, PlanError> {
    check_name(name)?;
    if target.registry.is_empty() {
        return Err(PlanError::NoRegistry);
    }
    let namespace = target.registry_namespace.trim_matches('/');
    Ok(if namespace.is_empty() {
        format!("{}/{name}", target.registry)
    } else {
        format!("{}/{namespace}/{name}", target.registry)
    })
}

/// The unique tag: `<target>-<random>-<YYYYmmddHHMMSS>` (UTC at `now_ms`).
pub fn unique_tag(target: &str, random: &str, now_ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let stamp = at
        .format(time::macros::format_description!(
            "[year][month][day][hour][minute][second]"
        ))
        .unwrap_or_default();
    let target = if target.is_empty() { "build" } else { target };
    format!("{target}-{random}-{stamp}")
}

/// The tags to push, first the one that names the build best.
pub fn tags(
    kind: BuildKind,
    version: &str,
    release: &str,
    unique: &str,
) -> Result<Vec<String>, PlanError> {
    let tags = match kind {
        BuildKind::Normal => vec![
            format!("{version}-{release}"),
            version.to_owned(),
            "latest".to_owned(),
            unique.to_owned(),
        ],
        BuildKind::Scratch => vec![unique.to_owned()],
        BuildKind::Isolated => vec![format!("{version}-{release}"), unique.to_owned()],
    };
    for tag in &tags {
        check_tag(tag)?;
    }
    Ok(tags)
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), PlanError> {
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && tag.len() <= 128 {
        Ok(())
    } else {
        Err(PlanError::BadTag {
            tag: tag.to_owned(),
        })
    }
}

/// Docker's repository path grammar: lowercase components separated by `/`, each made of
/// alphanumerics joined by `.`, `_`, `__` or `-`s.
pub fn check_name(name: &str) -> Result<(), PlanError> {
    let component_ok = |component: &str| {
        let bytes = component.as_bytes();
        let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        edge(bytes.first())
            && edge(bytes.last())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
            && !component.contains("..")
            && !component.contains("___")
    };
    if !name.is_empty() && name.len() <= 255 && name.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(PlanError::BadName {
            name: name.to_owned(),
        })
    }
}

/// `repo:tag` for each tag and `repo@digest`.
pub fn pullspecs(repository: &str, tags: &[String], digest: &str) -> Vec<String> {
    let mut specs: Vec<String> = tags
        .iter()
        .map(|tag| format!("{repository}:{tag}"))
        .collect();
    if !digest.is_empty() {
        specs.push(format!("{repository}@{digest}"));
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn target(namespace: &str) -> Target {
        Target {
            name: "f41-container-candidate".into(),
            registry: "127.0.0.1:5000".into(),
            registry_namespace: namespace.into(),
            ..Target::default()
        }
    }

    /// (rewrite plan) → the file and labels the squash adds, from the stored rewrite.
    #[test]
    fn squash_additions_per_rewrite() {
        use osbs_dockerfile::{Dockerfile, RewritePlan, rewrite_for_squash};
        let dockerfile = Dockerfile::parse("FROM r.io/b:1\nRUN x\n").unwrap();
        let pins = [("r.io/b:1".to_owned(), "r.io/b@sha256:00".to_owned())].into();
        let labels = vec![("vendor".to_owned(), "A \"B\"\n$C".to_owned())];
        // (buildinfo name, labels, files added, labels added)
        type Labels = Vec<(String, String)>;
        let cases: Vec<(Option<&str>, Labels, usize, usize)> = vec![
            (Some("Dockerfile-n-1-1"), labels.clone(), 1, 1),
            (None, labels.clone(), 0, 1),
            (Some("Dockerfile-n-1-1"), Vec::new(), 1, 0),
            (None, Vec::new(), 0, 0),
        ];
        for (buildinfo, labels, files, label_count) in cases {
            let plan = RewritePlan {
                pins: BTreeMap::clone(&pins),
                labels,
                repo_files: Vec::new(),
                buildinfo_dockerfile: buildinfo.map(str::to_owned),
            };
            let rewritten = rewrite_for_squash(&dockerfile, &plan, &BTreeMap::new(), &[]).unwrap();
            let added = squash_additions(&rewritten, buildinfo.unwrap_or("unused"));
            assert_eq!(added.files.len(), files, "{buildinfo:?}");
            assert_eq!(added.labels.len(), label_count, "{buildinfo:?}");
            for file in &added.files {
                assert_eq!(file.path, "/root/buildinfo/Dockerfile-n-1-1");
                assert_eq!(file.contents, rewritten.stored.as_bytes());
                assert_eq!(file.mode, 0o644);
                assert_eq!(
                    file.created_by,
                    "COPY Dockerfile-n-1-1 /root/buildinfo/Dockerfile-n-1-1"
                );
            }
            if label_count > 0 {
                assert_eq!(added.labels[0].1, "A \"B\"\\n$C", "the builder's reading");
                assert_eq!(
                    added.labels_created_by,
                    "LABEL vendor=\"A \\\"B\\\"\\\\n\\$C\""
                );
            }
        }
    }

    #[test]
    fn tags_per_kind() {
        let unique = unique_tag("f41-container-candidate", "0a1b2c3d4e", 1_736_936_523_120);
        assert_eq!(unique, "f41-container-candidate-0a1b2c3d4e-20250115102203");
        let table = [
            (
                BuildKind::Normal,
                vec!["2.4-3", "2.4", "latest", unique.as_str()],
            ),
            (BuildKind::Scratch, vec![unique.as_str()]),
            (BuildKind::Isolated, vec!["2.4-3", unique.as_str()]),
        ];
        for (kind, expected) in table {
            assert_eq!(
                tags(kind, "2.4", "3", &unique).unwrap(),
                expected,
                "{kind:?}"
            );
        }
        assert!(tags(BuildKind::Normal, "2.4+git", "3", &unique).is_err());
    }

    #[test]
    fn kinds() {
        let scratch = BuildOptions {
            scratch: true,
            ..BuildOptions::default()
        };
        let isolated = BuildOptions {
            isolated: true,
            release: "1.1".into(),
            ..BuildOptions::default()
        };
        assert_eq!(BuildKind::of(None), BuildKind::Normal);
        assert_eq!(BuildKind::of(Some(&scratch)), BuildKind::Scratch);
        assert_eq!(BuildKind::of(Some(&isolated)), BuildKind::Isolated);
    }

    #[test]
    fn repositories() {
        assert_eq!(
            repository(&target(""), "httpd").unwrap(),
            "127.0.0.1:5000/httpd"
        );
        assert_eq!(
            repository(&target("/fedora/"), "f41/httpd").unwrap(),
            "127.0.0.1:5000/fedora/f41/httpd"
        );
        for bad in ["Httpd", "a//b", "-a", "a..b", ""] {
            assert!(repository(&target(""), bad).is_err(), "{bad}");
        }
        assert_eq!(
            repository(&Target::default(), "x").unwrap_err(),
            PlanError::NoRegistry
        );
    }

    #[test]
    fn tag_grammar() {
        for good in ["latest", "1.0-3", "_x", &"a".repeat(128)] {
            assert!(check_tag(good).is_ok(), "{good}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pullspecs_name_tags_and_digest() {
        let specs = pullspecs("r/app", &["1-2".into(), "latest".into()], "sha256:ab");
        assert_eq!(specs, vec!["r/app:1-2", "r/app:latest", "r/app@sha256:ab"]);
    }
}
