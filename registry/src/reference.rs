//! Image references as OSBS writes them, pure: `REGISTRY/REPOSITORY:TAG` or
//! `REGISTRY/REPOSITORY@sha256:…`, the registry always named; the distribution spec's
//! repository and tag grammars; engine RepoDigests and `--push` targets.
//!
//! Parsed here rather than with oci-client's `Reference` (oci-spec's grammar) because that
//! grammar has no bracketed IPv6 host (`[::1]:5000`) and sends a name without a registry to
//! Docker Hub, where OSBS must refuse it. Every part is checked before it goes into a URL.

use crate::digest::is_digest;

/// Why a text is not a usable reference (the text is the caller's own input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error(
        "'{0}' is not an image pull spec: give REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:… (lowercase repository, registry named)"
    )]
    Pullspec(String),
    #[error("'{0}' is not a registry: give HOST, HOST:PORT or [IPv6]:PORT")]
    Registry(String),
    #[error("'{0}' is not a repository name: give lowercase NAME or NS/NAME")]
    Repository(String),
    #[error(
        "'{0}' is not a tag: use letters, digits, _ . - (128 at most, not starting with . or -)"
    )]
    Tag(String),
    #[error("'{0}' is not a digest: give sha256: and 64 hex digits")]
    Digest(String),
}

/// A tag or a digest: what follows the repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(String),
    Digest(String),
}

impl Reference {
    /// A checked tag.
    pub fn tag(tag: &str) -> Result<Reference, ReferenceError> {
        if valid_tag(tag) {
            Ok(Reference::Tag(tag.to_owned()))
        } else {
            Err(ReferenceError::Tag(tag.to_owned()))
        }
    }

    /// A checked digest.
    pub fn digest(digest: &str) -> Result<Reference, ReferenceError> {
        if is_digest(digest) {
            Ok(Reference::Digest(digest.to_owned()))
        } else {
            Err(ReferenceError::Digest(digest.to_owned()))
        }
    }

    /// A tag or a digest, told apart by the `:` only a digest has.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        if text.contains(':') {
            Reference::digest(text)
        } else {
            Reference::tag(text)
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Reference::Tag(text) | Reference::Digest(text) => text,
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `registry/repository` and a tag or digest, each part checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub reference: Reference,
}

impl ImageRef {
    /// Checks each part.
    pub fn new(
        registry: &str,
        repository: &str,
        reference: Reference,
    ) -> Result<ImageRef, ReferenceError> {
        if !valid_registry(registry) {
            return Err(ReferenceError::Registry(registry.to_owned()));
        }
        if !valid_repository(repository) {
            return Err(ReferenceError::Repository(repository.to_owned()));
        }
        Ok(ImageRef {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            reference,
        })
    }

    /// The same repository at another tag or digest.
    pub fn with_reference(&self, reference: Reference) -> ImageRef {
        ImageRef {
            reference,
            ..self.clone()
        }
    }

    /// oci-client's reference for the same image (the parts are already checked).
    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        let (registry, repository) = (self.registry.clone(), self.repository.clone());
        match &self.reference {
            Reference::Tag(tag) => {
                oci_client::Reference::with_tag(registry, repository, tag.clone())
            }
            Reference::Digest(digest) => {
                oci_client::Reference::with_digest(registry, repository, digest.clone())
            }
        }
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let separator = match self.reference {
            Reference::Tag(_) => ':',
            Reference::Digest(_) => '@',
        };
        write!(
            f,
            "{}/{}{separator}{}",
            self.registry, self.repository, self.reference
        )
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<ImageRef, ReferenceError> {
        parse_pullspec(text)
    }
}

/// Parses `REGISTRY/REPOSITORY@DIGEST`, `REGISTRY/REPOSITORY:TAG` or `REGISTRY/REPOSITORY`
/// (tag `latest`). A digest wins over a tag given with it (`name:tag@sha256:…`). The
/// registry part is required: OSBS always names it.
pub fn parse_pullspec(pullspec: &str) -> Result<ImageRef, ReferenceError> {
    let invalid = || ReferenceError::Pullspec(pullspec.to_owned());
    let (registry, rest) = split_registry(pullspec).ok_or_else(invalid)?;
    let (name, reference) = match rest.split_once('@') {
        Some((name, digest)) => {
            let name = name.split_once(':').map_or(name, |(name, _)| name);
            (name, Reference::digest(digest)?)
        }
        None => match rest.rsplit_once(':') {
            Some((name, tag)) => (name, Reference::tag(tag)?),
            None => (rest, Reference::Tag("latest".to_owned())),
        },
    };
    ImageRef::new(registry, name, reference).map_err(|error| match error {
        ReferenceError::Registry(_) => invalid(),
        other => other,
    })
}

/// Splits off the registry: the first path component when it looks like a host (a dot, a
/// port, `localhost` or an IPv6 literal), as the engine decides it.
fn split_registry(text: &str) -> Option<(&str, &str)> {
    let (first, rest) = text.split_once('/')?;
    let is_host = first.contains('.')
        || first.contains(':')
        || first.starts_with('[')
        || first == "localhost";
    (is_host && valid_registry(first)).then_some((first, rest))
}

/// `HOST`, `HOST:PORT`, `[IPv6]` or `[IPv6]:PORT`; a host is DNS labels or an IPv4 address.
pub fn valid_registry(registry: &str) -> bool {
    let (host, port) = split_host_port(registry);
    let port_ok = port.is_none_or(|port| {
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
    });
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inside) => inside.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    let bytes = label.as_bytes();
                    !bytes.is_empty()
                        && bytes.len() <= 63
                        && bytes[0].is_ascii_alphanumeric()
                        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                })
        }
    };
    port_ok && host_ok
}

/// `(host, port)` of `HOST[:PORT]` or `[IPv6][:PORT]`; the host keeps its brackets.
pub(crate) fn split_host_port(registry: &str) -> (&str, Option<&str>) {
    if registry.starts_with('[') {
        return match registry.find(']') {
            Some(end) => {
                let (host, rest) = registry.split_at(end + 1);
                (host, rest.strip_prefix(':'))
            }
            None => (registry, None),
        };
    }
    match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    }
}

/// `NAME` or `NS/NAME`: the distribution spec's repository grammar (lowercase components
/// separated by `/`, each `[a-z0-9]+` joined by `.`, `_`, `__` or dashes).
pub fn valid_repository(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.split('/').all(valid_component)
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        if !(separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-'))
        {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|b| word(*b) || *b == b'.' || *b == b'-')
}

/// Splits `REGISTRY/REPOSITORY@DIGEST` (an engine RepoDigest). Names without a registry
/// part (Docker Hub's) give `None`: they cannot be on a registry OSBS names.
pub fn parse_repo_digest(text: &str) -> Option<(&str, &str, &str)> {
    let (name, digest) = text.split_once('@')?;
    let (registry, repository) = split_registry(name)?;
    (valid_repository(repository) && is_digest(digest)).then_some((registry, repository, digest))
}

/// Splits `REGISTRY/REPOSITORY` (the `--push` argument).
pub fn parse_push_target(text: &str) -> Option<(&str, &str)> {
    let (registry, repository) = split_registry(text)?;
    valid_repository(repository).then_some((registry, repository))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    /// A pull spec's parts, or the start of its error.
    type Parsed<'a> = Result<(&'a str, &'a str, Reference), &'a str>;

    #[test]
    fn pullspecs() {
        let tag = |t: &str| Reference::Tag(t.to_owned());
        let digest = Reference::Digest(D1.to_owned());
        let cases: Vec<(String, Parsed)> = vec![
            (
                format!("127.0.0.1:5000/httpd@{D1}"),
                Ok(("127.0.0.1:5000", "httpd", digest.clone())),
            ),
            (
                "registry.example.org/ns/httpd:2.4-1".into(),
                Ok(("registry.example.org", "ns/httpd", tag("2.4-1"))),
            ),
            (
                "localhost/a/b".into(),
                Ok(("localhost", "a/b", tag("latest"))),
            ),
            (
                "[::1]:5000/app:v1".into(),
                Ok(("[::1]:5000", "app", tag("v1"))),
            ),
            (
                format!("quay.io/ns/app:1.0@{D1}"),
                Ok(("quay.io", "ns/app", digest.clone())),
            ),
            (
                "localhost:5000/x".into(),
                Ok(("localhost:5000", "x", tag("latest"))),
            ),
            ("httpd:2.4".into(), Err("not an image pull spec")),
            ("ns/httpd".into(), Err("not an image pull spec")),
            ("docker.io/".into(), Err("not a repository name")),
            ("quay.io/NS/app".into(), Err("not a repository name")),
            ("quay.io/app:-x".into(), Err("not a tag")),
            ("quay.io/app@sha256:abc".into(), Err("not a digest")),
            (
                "quay.io/app/../../v2:x".into(),
                Err("not a repository name"),
            ),
            ("bad_host.io/app".into(), Err("not an image pull spec")),
            ("[::1/app".into(), Err("not an image pull spec")),
            ("[zz]:5000/app".into(), Err("not an image pull spec")),
        ];
        for (text, expected) in cases {
            let got = parse_pullspec(&text);
            match expected {
                Ok((registry, repository, reference)) => {
                    let image = got.unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert_eq!(
                        (
                            image.registry.as_str(),
                            image.repository.as_str(),
                            &image.reference
                        ),
                        (registry, repository, &reference),
                        "{text}"
                    );
                }
                Err(message) => {
                    let error = got.expect_err(&text).to_string();
                    assert!(error.contains(message), "{text}: {error}");
                }
            }
        }
    }

    #[test]
    fn references_print_back_as_pullspecs() {
        for text in [
            format!("127.0.0.1:5000/httpd@{D1}"),
            "[::1]:5000/ns/app:v1".to_owned(),
            "quay.io/app:latest".to_owned(),
        ] {
            let image: ImageRef = text.parse().unwrap();
            assert_eq!(image.to_string(), text);
            let oci = image.to_oci();
            assert_eq!(
                (oci.registry(), oci.repository()),
                (image.registry.as_str(), image.repository.as_str())
            );
            assert_eq!(oci.digest().or(oci.tag()), Some(image.reference.as_str()));
        }
        assert_eq!(Reference::parse(D1), Ok(Reference::Digest(D1.into())));
        assert_eq!(Reference::parse("v1"), Ok(Reference::Tag("v1".into())));
        assert!(Reference::parse("a:b").is_err());
    }

    #[test]
    fn registries() {
        for (registry, ok) in [
            ("127.0.0.1:5000", true),
            ("localhost", true),
            ("[::1]:5000", true),
            ("[::1]", true),
            ("registry.example.org", true),
            ("a-b.example:443", true),
            ("", false),
            ("host:", false),
            ("host:99999x", false),
            ("-a.example", false),
            ("a..b", false),
            ("[::1", false),
            ("[::g]:1", false),
            ("user@host", false),
            ("host/path", false),
        ] {
            assert_eq!(valid_registry(registry), ok, "{registry}");
        }
    }

    #[test]
    fn names_follow_the_distribution_grammar() {
        for (name, ok) in [
            ("a", true),
            ("ns/name", true),
            ("a.b_c__d---e/f0", true),
            ("", false),
            ("Upper", false),
            ("a//b", false),
            ("-a", false),
            ("a-", false),
            ("a..b", false),
            ("a___b", false),
            ("a b", false),
            ("..", false),
        ] {
            assert_eq!(valid_repository(name), ok, "{name}");
        }
        let long = "x".repeat(129);
        for (tag, ok) in [
            ("latest", true),
            ("1.0-3", true),
            ("_x", true),
            ("", false),
            (".x", false),
            ("-x", false),
            ("a:b", false),
            ("a/b", false),
            (long.as_str(), false),
        ] {
            assert_eq!(valid_tag(tag), ok, "{tag}");
        }
    }

    #[test]
    fn repo_digests_and_push_targets_split() {
        for (text, expected) in [
            (
                format!("127.0.0.1:5000/ns/base@{D1}"),
                Some(("127.0.0.1:5000", "ns/base")),
            ),
            (
                format!("registry.example.com/base@{D1}"),
                Some(("registry.example.com", "base")),
            ),
            (
                format!("[::1]:5000/base@{D1}"),
                Some(("[::1]:5000", "base")),
            ),
            (format!("library/busybox@{D1}"), None),
            ("127.0.0.1:5000/base@sha256:short".to_owned(), None),
            ("127.0.0.1:5000/base:1".to_owned(), None),
        ] {
            assert_eq!(
                parse_repo_digest(&text).map(|(r, p, _)| (r, p)),
                expected,
                "{text}"
            );
        }
        for (text, expected) in [
            (
                "127.0.0.1:5000/ns/name",
                Some(("127.0.0.1:5000", "ns/name")),
            ),
            ("localhost/name", Some(("localhost", "name"))),
            ("ns/name", None),
            ("127.0.0.1:5000/Name", None),
            ("127.0.0.1:5000", None),
        ] {
            assert_eq!(parse_push_target(text), expected, "{text}");
        }
    }
}
