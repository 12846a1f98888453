//! Base image step: reading the image references of `FROM` lines and holding them to the
//! target's base registry (pure), and the digest each is pinned to for the arch built
//! ([`pin_digest`]: one registry read through osbs-registry, the decision in
//! [`pin_reference`]).

use osbs_proto::arch::Arch;
use osbs_registry::{Reference, Registries, RegistryError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParentError {
    #[error(
        "FROM {reference} names registry {registry}, but this target builds only from {allowed}; use `FROM {allowed}/{repository}...`"
    )]
    OtherRegistry {
        reference: String,
        registry: String,
        allowed: String,
        repository: String,
    },
    #[error("FROM {reference} is not a valid image reference ({reason}); fix the FROM line")]
    Invalid { reference: String, reason: String },
    #[error(
        "the job's target has no base registry to pull from; fix the dispatcher's target settings"
    )]
    NoBaseRegistry,
}

/// `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// The tag or digest to resolve (`latest` when neither is given, as Docker does).
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `registry/repository@digest`.
    pub fn pinned(&self, digest: &str) -> String {
        match &self.registry {
            Some(registry) => format!("{registry}/{}@{digest}", self.repository),
            None => format!("{}@{digest}", self.repository),
        }
    }
}

/// Parses a Docker image reference.
pub fn parse_reference(reference: &str) -> Result<ImageRef, ParentError> {
    let invalid = |reason: &str| ParentError::Invalid {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    };
    if reference.is_empty() || reference.chars().any(|c| c.is_whitespace() || c == '$') {
        return Err(invalid("empty, blank or an unexpanded variable"));
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => {
            let hex = digest
                .strip_prefix("sha256:")
                .ok_or_else(|| invalid("only sha256 digests are supported"))?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid("the digest is not sha256:<64 hex>"));
            }
            (rest, Some(digest.to_owned()))
        }
        None => (reference, None),
    };
    let (registry, path) = match rest.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first.to_owned()), path)
        }
        _ => (None, rest),
    };
    // A `:` after the last `/` starts the tag.
    let (repository, tag) = match path.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag.to_owned())),
        _ => (path, None),
    };
    crate::plan::check_name(repository).map_err(|_| invalid("bad repository name"))?;
    if let Some(tag) = &tag {
        crate::plan::check_tag(tag).map_err(|_| invalid("bad tag"))?;
    }
    Ok(ImageRef {
        registry,
        repository: repository.to_owned(),
        tag,
        digest,
    })
}

/// A base reference pinned: the digest its `FROM` is rewritten to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The manifest digest the `FROM` names (`registry/name@<digest>`): for an arch build
    /// from a list, the digest of that arch's image manifest.
    pub digest: String,
    /// The list's digest when the reference named a list and an arch was asked.
    pub list_digest: Option<String>,
}

/// What to read in the registry to pin `reference`: its digest when it names one (a
/// single-arch build then needs no read), else its tag (`latest` when none).
pub fn pin_reference(reference: &ImageRef) -> Result<Reference, RegistryError> {
    Ok(Reference::parse(reference.reference())?)
}

/// The digest to pin `reference` (on its registry, as [`resolve`] made it) to.
///
/// - `arch` `None` (a single-arch build): the digest the reference names, list or not, as
///   always (the engine then picks its own platform from a list); `None` when the registry
///   does not have it.
/// - `arch` given (an arch job): the digest of that arch's image manifest when the
///   reference names a list ([`RegistryError::NoArch`], naming the base and the arch, when
///   the list has none), else the image's own digest.
pub async fn pin_digest(
    registries: &Registries,
    reference: &ImageRef,
    arch: Option<&Arch>,
) -> Result<Option<Pin>, RegistryError> {
    let registry = registries.get(reference.registry.as_deref().unwrap_or_default())?;
    let at = pin_reference(reference)?;
    let Some(arch) = arch else {
        return Ok(match &reference.digest {
            Some(digest) => Some(digest.clone()),
            None => registry.manifest_digest(&reference.repository, &at).await?,
        }
        .map(|digest| Pin {
            digest,
            list_digest: None,
        }));
    };
    match registry
        .arch_manifest(&reference.repository, &at, arch)
        .await
    {
        Ok(found) => Ok(Some(Pin {
            digest: found.digest,
            list_digest: found.list_digest,
        })),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// The reference to pull for `reference`: on `base_registry` (a FROM without a registry
/// means the target's base registry), refused when it names another one.
pub fn resolve(reference: &str, base_registry: &str) -> Result<ImageRef, ParentError> {
    if base_registry.is_empty() {
        return Err(ParentError::NoBaseRegistry);
    }
    let mut parsed = parse_reference(reference)?;
    match &parsed.registry {
        Some(registry) if registry != base_registry => Err(ParentError::OtherRegistry {
            reference: reference.to_owned(),
            registry: registry.clone(),
            allowed: base_registry.to_owned(),
            repository: parsed.repository.clone(),
        }),
        Some(_) => Ok(parsed),
        None => {
            parsed.registry = Some(base_registry.to_owned());
            Ok(parsed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "127.0.0.1:5000";

    #[test]
    fn references() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let table = [
            ("fedora", None, "fedora", None, None),
            ("fedora:41", None, "fedora", Some("41"), None),
            (
                "127.0.0.1:5000/f41/base:1.0",
                Some(BASE),
                "f41/base",
                Some("1.0"),
                None,
            ),
            ("localhost/x", Some("localhost"), "x", None, None),
            (
                "registry.example.org/x",
                Some("registry.example.org"),
                "x",
                None,
                None,
            ),
        ];
        for (text, registry, repository, tag, digest_part) in table {
            let parsed = parse_reference(text).unwrap();
            assert_eq!(parsed.registry.as_deref(), registry, "{text}");
            assert_eq!(parsed.repository, repository, "{text}");
            assert_eq!(parsed.tag.as_deref(), tag, "{text}");
            assert_eq!(parsed.digest.as_deref(), digest_part, "{text}");
        }
        let pinned = parse_reference(&format!("{BASE}/base:1@{digest}")).unwrap();
        assert_eq!(pinned.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(pinned.reference(), digest);
        assert_eq!(pinned.pinned(&digest), format!("{BASE}/base@{digest}"));
        for bad in ["", "Fedora", "x@sha256:12", "x@md5:00", "$BASE", "a b"] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_registry_only() {
        assert_eq!(
            resolve("fedora:41", BASE).unwrap().registry.as_deref(),
            Some(BASE)
        );
        assert!(resolve(&format!("{BASE}/fedora:41"), BASE).is_ok());
        let error = resolve("quay.io/fedora/fedora:41", BASE).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("FROM quay.io/fedora/fedora:41 names registry quay.io"),
            "{error}"
        );
        assert_eq!(resolve("x", "").unwrap_err(), ParentError::NoBaseRegistry);
    }
}
