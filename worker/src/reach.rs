//! What a build may fetch besides its context, pure part: the images `COPY --from` and
//! `RUN --mount from=` name are held to the target's base registry like FROM (and pinned the
//! same way), remote `ADD` sources to `[worker] allowed_source_urls` (none by default: files
//! enter a build through the lookaside cache, with their checksums), and the ONBUILD
//! triggers of each parent image to both rules — decided before the build is sent to the
//! engine, which would otherwise fetch whatever they name.

use crate::parent::{self, ImageRef, ParentError};
use osbs_dockerfile::{Dockerfile, FlagImage, ImageFlag, ParentImage, RemoteSource};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReachError {
    #[error(
        "{flag}={reference} on line {line} names registry {registry}, but this target builds only from {allowed}; use `{flag}={allowed}/{repository}...` or an earlier build stage"
    )]
    OtherRegistry {
        flag: ImageFlag,
        reference: String,
        line: usize,
        registry: String,
        allowed: String,
        repository: String,
    },
    #[error(
        "{flag}={reference} on line {line} is not a valid image reference ({reason}); name an image of the base registry or an earlier build stage"
    )]
    Invalid {
        flag: ImageFlag,
        reference: String,
        line: usize,
        reason: String,
    },
    #[error(
        "ADD {url} on line {line} downloads from the network, which this worker does not allow; upload the file to the lookaside cache (`fedpkg new-sources`) and ADD it from the build context"
    )]
    RemoteSource { url: String, line: usize },
    #[error(
        "ADD {url} on line {line} is not allowed ({reason}); upload the file to the lookaside cache (`fedpkg new-sources`) and ADD it from the build context"
    )]
    SourceNotAllowed {
        url: String,
        line: usize,
        reason: String,
    },
    #[error(
        "the parent image {parent} (FROM on line {line}) has the ONBUILD trigger `{trigger}`, which {reason}; build on a parent image without it"
    )]
    Trigger {
        parent: String,
        line: usize,
        trigger: String,
        reason: String,
    },
    #[error(
        "the ONBUILD triggers of the parent image {parent} (FROM on line {line}) cannot be read ({reason}); build on a parent image without them"
    )]
    UnreadableTriggers {
        parent: String,
        line: usize,
        reason: String,
    },
    #[error(transparent)]
    Parent(ParentError),
}

/// Every image a flag names, held to `base_registry` as a FROM is (a name without a
/// registry means the base registry; the rewrite pins it there), in order.
pub fn check_flag_images(
    dockerfile: &Dockerfile,
    base_registry: &str,
) -> Result<Vec<(FlagImage, ImageRef)>, ReachError> {
    dockerfile
        .flag_images()
        .into_iter()
        .map(|image| {
            let reference = parent::resolve(&image.resolved, base_registry)
                .map_err(|error| flag_error(&image, error))?;
            Ok((image, reference))
        })
        .collect()
}

fn flag_error(image: &FlagImage, error: ParentError) -> ReachError {
    match error {
        ParentError::OtherRegistry {
            registry,
            allowed,
            repository,
            ..
        } => ReachError::OtherRegistry {
            flag: image.flag,
            reference: image.resolved.clone(),
            line: image.line,
            registry,
            allowed,
            repository,
        },
        ParentError::Invalid { reason, .. } => ReachError::Invalid {
            flag: image.flag,
            reference: image.resolved.clone(),
            line: image.line,
            reason,
        },
        error @ ParentError::NoBaseRegistry => ReachError::Parent(error),
    }
}

/// Every remote `ADD` source of the Dockerfile, held to `allowed`.
pub fn check_remote_sources(
    sources: &[RemoteSource],
    allowed: &[String],
) -> Result<(), ReachError> {
    for source in sources {
        check_source_url(&source.resolved, allowed).map_err(|refusal| match refusal {
            None => ReachError::RemoteSource {
                url: source.resolved.clone(),
                line: source.line,
            },
            Some(reason) => ReachError::SourceNotAllowed {
                url: source.resolved.clone(),
                line: source.line,
                reason,
            },
        })?;
    }
    Ok(())
}

/// The ONBUILD `triggers` of `parent` (whose config `Env` is `env`): the engine runs them
/// as they are, so every image they name must be written with the base registry (a name
/// without one would come from docker.io), and every remote `ADD` source must be allowed.
pub fn check_triggers(
    dockerfile: &Dockerfile,
    parent: &ParentImage,
    triggers: &[String],
    env: &[String],
    base_registry: &str,
    allowed_sources: &[String],
) -> Result<(), ReachError> {
    if triggers.is_empty() {
        return Ok(());
    }
    let refuse = |trigger: &str, reason: String| ReachError::Trigger {
        parent: parent.resolved.clone(),
        line: parent.line,
        trigger: osbs_common::bus::one_line(trigger, 200),
        reason,
    };
    let reach = dockerfile
        .trigger_reach(parent.stage, triggers, env)
        .map_err(|error| ReachError::UnreadableTriggers {
            parent: parent.resolved.clone(),
            line: parent.line,
            reason: error.kind.to_string(),
        })?;
    for image in &reach.images {
        let reason = match parent::parse_reference(&image.resolved) {
            Err(ParentError::Invalid { reason, .. }) => {
                Some(format!("names {} as an image ({reason})", image.resolved))
            }
            Err(other) => Some(other.to_string()),
            Ok(reference) => match reference.registry.as_deref() {
                None => Some(format!(
                    "names {} without a registry, so the engine would pull it from docker.io; this target builds only from {base_registry}",
                    image.resolved
                )),
                Some(registry) if registry != base_registry => Some(format!(
                    "names registry {registry}, but this target builds only from {base_registry}"
                )),
                Some(_) => None,
            },
        };
        if let Some(reason) = reason {
            return Err(refuse(&image.instruction, reason));
        }
    }
    for source in &reach.sources {
        if let Err(refusal) = check_source_url(&source.resolved, allowed_sources) {
            let reason = match refusal {
                None => format!(
                    "downloads {} from the network, which this worker does not allow",
                    source.resolved
                ),
                Some(reason) => format!(
                    "downloads {}, which is not allowed ({reason})",
                    source.resolved
                ),
            };
            return Err(refuse(&source.instruction, reason));
        }
    }
    Ok(())
}

/// Whether the engine may download `url`: an http(s) URL, without credentials or dot
/// segments, under one of `allowed` (a prefix that ends at a `/`). `Err(None)` when nothing
/// is allowed at all; `Err(Some(reason))` otherwise.
pub fn check_source_url(url: &str, allowed: &[String]) -> Result<(), Option<String>> {
    if allowed.is_empty() {
        return Err(None);
    }
    let refuse = |reason: &str| Err(Some(reason.to_owned()));
    let Ok(parsed) = url::Url::parse(url) else {
        return refuse("not a URL the worker can read");
    };
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return refuse("only http and https URLs are allowed");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return refuse("a URL may not carry credentials");
    }
    let dot_segment = url.split(['/', '\\', '?', '#']).any(|segment| {
        let lower = segment.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".."
    });
    if dot_segment || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return refuse("a URL may not hold `.` or `..` segments or blanks");
    }
    let under = |base: &String| {
        !base.is_empty()
            && url.starts_with(base.as_str())
            && (base.ends_with('/')
                || url[base.len()..].starts_with(['/', '?'])
                || url.len() == base.len())
    };
    if allowed.iter().any(under) {
        Ok(())
    } else {
        Err(Some(format!("allowed: {}", allowed.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "127.0.0.1:5000";

    fn parse(text: &str) -> Dockerfile {
        Dockerfile::parse(text).unwrap()
    }

    #[test]
    fn flag_images_on_the_base_registry_only() {
        let good = parse(&format!(
            "FROM {BASE}/base:1 AS build\nFROM {BASE}/base:1\nCOPY --from=build /a /b\nCOPY --from={BASE}/tools:2 /a /b\nCOPY --from=tools /a /b\n"
        ));
        let checked = check_flag_images(&good, BASE).unwrap();
        let resolved: Vec<String> = checked
            .iter()
            .map(|(_, reference)| reference.pinned("sha256:x"))
            .collect();
        assert_eq!(
            resolved,
            [
                format!("{BASE}/tools@sha256:x"),
                format!("{BASE}/tools@sha256:x")
            ]
        );
        let table = [
            (
                "FROM b\nCOPY --from=evil.example.net/tools:1 /a /b\n",
                "COPY --from=evil.example.net/tools:1 on line 2 names registry evil.example.net, but this target builds only from 127.0.0.1:5000; use `COPY --from=127.0.0.1:5000/tools...` or an earlier build stage",
            ),
            (
                "FROM b\nRUN --mount=type=bind,from=quay.io/x/y,target=/y true\n",
                "RUN --mount from=quay.io/x/y on line 2 names registry quay.io, but this target builds only from 127.0.0.1:5000; use `RUN --mount from=127.0.0.1:5000/x/y...` or an earlier build stage",
            ),
            (
                "ARG T=evil.example.net/t:1\nFROM b\nCOPY --from=${T} /a /b\n",
                "COPY --from=evil.example.net/t:1 on line 3 names registry evil.example.net",
            ),
            (
                "FROM b\nCOPY --from=$UNSET/x /a /b\n",
                "COPY --from=/x on line 2 is not a valid image reference",
            ),
        ];
        for (text, expect) in table {
            let error = check_flag_images(&parse(text), BASE)
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(expect), "{text:?}: {error}");
            assert!(!error.contains('\n'));
        }
        assert_eq!(
            check_flag_images(&parse("FROM b\nCOPY --from=x /a /b\n"), "").unwrap_err(),
            ReachError::Parent(ParentError::NoBaseRegistry)
        );
    }

    #[test]
    fn remote_sources_need_an_allowed_site() {
        let dockerfile = parse("FROM b\nADD https://sources.example.org/pub/a.tgz /a\n");
        let sources = dockerfile.remote_sources(&Default::default());
        let error = check_remote_sources(&sources, &[]).unwrap_err().to_string();
        assert_eq!(
            error,
            "ADD https://sources.example.org/pub/a.tgz on line 2 downloads from the network, which this worker does not allow; upload the file to the lookaside cache (`fedpkg new-sources`) and ADD it from the build context"
        );
        let allowed = ["https://sources.example.org/pub/".to_owned()];
        assert!(check_remote_sources(&sources, &allowed).is_ok());
        let other = ["https://sources.example.org/private".to_owned()];
        let error = check_remote_sources(&sources, &other)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("is not allowed (allowed: https://sources.example.org/private)"),
            "{error}"
        );
    }

    #[test]
    fn source_urls() {
        let allowed = [
            "https://sources.example.org/pub".to_owned(),
            "http://mirror.example.org/".to_owned(),
        ];
        let table = [
            ("https://sources.example.org/pub/a.tgz", true),
            ("https://sources.example.org/pub", true),
            ("https://sources.example.org/pub?x=1", true),
            ("http://mirror.example.org/x/y", true),
            ("https://sources.example.org/public/a.tgz", false),
            ("https://sources.example.org.evil.net/pub/a", false),
            ("https://sources.example.org/pub/../private/a", false),
            ("https://sources.example.org/pub/%2e%2E/private/a", false),
            ("https://user:pw@sources.example.org/pub/a", false),
            ("ftp://sources.example.org/pub/a", false),
            ("git@sources.example.org:pub/a", false),
            ("https://sources.example.org/pub/a b", false),
            ("http://mirror.example.org", false),
        ];
        for (url, ok) in table {
            assert_eq!(check_source_url(url, &allowed).is_ok(), ok, "{url}");
        }
        assert_eq!(check_source_url("https://x/", &[]), Err(None));
    }

    #[test]
    fn triggers_of_a_parent() {
        let dockerfile = parse(&format!(
            "FROM {BASE}/tools:1 AS tools\nFROM {BASE}/parent:1\n"
        ));
        let parent = dockerfile.parent_images()[1].clone();
        let check = |triggers: &[&str], allowed: &[String]| {
            let triggers: Vec<String> = triggers.iter().map(|t| t.to_string()).collect();
            check_triggers(
                &dockerfile,
                &parent,
                &triggers,
                &["SRC=http://e.io".into()],
                BASE,
                allowed,
            )
        };
        assert!(check(&[], &[]).is_ok());
        assert!(check(&["RUN echo hi", "COPY --from=tools /a /b"], &[]).is_ok());
        assert!(check(&[&format!("COPY --from={BASE}/x:1 /a /b")], &[]).is_ok());
        let table: [(&[&str], &str); 5] = [
            (
                &["RUN true", "COPY --from=evil.example.net/x:1 /a /b"],
                "the parent image 127.0.0.1:5000/parent:1 (FROM on line 2) has the ONBUILD trigger `COPY --from=evil.example.net/x:1 /a /b`, which names registry evil.example.net, but this target builds only from 127.0.0.1:5000; build on a parent image without it",
            ),
            (
                &["COPY --from=busybox /a /b"],
                "names busybox without a registry, so the engine would pull it from docker.io",
            ),
            (&["COPY --from=$T /a /b"], "names $T as an image"),
            (
                &["ADD $SRC/a /a"],
                "`ADD $SRC/a /a`, which downloads http://e.io/a from the network, which this worker does not allow",
            ),
            (
                &["RUN --mount=type=bind,from=quay.io/x,target=/x true"],
                "names registry quay.io",
            ),
        ];
        for (triggers, expect) in table {
            let error = check(triggers, &[]).unwrap_err().to_string();
            assert!(error.contains(expect), "{triggers:?}: {error}");
            assert!(!error.contains('\n'));
        }
        assert!(check(&["ADD $SRC/a /a"], &["http://e.io/".into()]).is_ok());
        assert!(matches!(
            check(&["NOT AN INSTRUCTION"], &[]).unwrap_err(),
            ReachError::UnreadableTriggers { .. }
        ));
    }
}
