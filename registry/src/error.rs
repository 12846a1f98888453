//! The crate's one error type, and how oci-client's errors and raw HTTP answers map onto it:
//! whose fault (the network, the registry, the credentials, the input) decides whether a
//! caller tries again and whom its message sends to work. No variant ever holds a
//! credential or a token; details are one line, cut to 300 characters.

use crate::credentials::CredentialsError;
use crate::reference::ReferenceError;
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("registry credentials for {registry}: {source}; fix registry_auth")]
    Credentials {
        registry: String,
        source: CredentialsError,
    },
    #[error(
        "registry {registry} is unreachable (while trying to {action}): {detail}; check that it runs and that http/https is right (insecure_registries)"
    )]
    Unreachable {
        registry: String,
        action: String,
        detail: String,
    },
    #[error("registry {registry} does not have it (while trying to {action}): {detail}")]
    NotFound {
        registry: String,
        action: String,
        detail: String,
    },
    #[error(
        "registry {registry} refused access (while trying to {action}): {detail}; check the registry credentials (registry_auth) and the user's rights"
    )]
    Denied {
        registry: String,
        action: String,
        detail: String,
    },
    #[error("registry {registry} answered HTTP {status} to {action}: {detail}")]
    Status {
        registry: String,
        action: String,
        status: u16,
        detail: String,
    },
    #[error("registry {registry} refused to {action}: {detail}")]
    Rejected {
        registry: String,
        action: String,
        detail: String,
    },
    /// A manifest list that has no image for the architecture asked for: the packager's
    /// base (or the target's arches) to fix, not the registry's fault.
    #[error(
        "{image} is a manifest list with no {arch} image ({platform}); it has {has}: use a base built for every arch of the build, or narrow the arches (container.yaml platforms)"
    )]
    NoArch {
        /// `REGISTRY/REPOSITORY:TAG` as asked.
        image: String,
        /// Koji's name (`aarch64`).
        arch: String,
        /// The platform looked for (`linux/arm64/v8`).
        platform: String,
        /// The platforms the list names, comma-separated (`linux/amd64`), or `none`.
        has: String,
    },
    #[error("registry {registry} gave an unusable answer to {action}: {detail}")]
    Protocol {
        registry: String,
        action: String,
        detail: String,
    },
}

impl RegistryError {
    /// Worth another attempt: the network, the registry's 5xx, 408 and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            _ => false,
        }
    }

    /// The registry does not have the manifest, blob or repository.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }
}

/// Where an error happened: the registry and what we were doing.
#[derive(Debug, Clone)]
pub(crate) struct Context<'a> {
    pub registry: &'a str,
    pub action: &'a str,
    /// Whether credentials were configured: a 401 without them says so.
    pub has_credentials: bool,
}

impl Context<'_> {
    pub fn unreachable(&self, detail: impl Into<String>) -> RegistryError {
        RegistryError::Unreachable {
            registry: self.registry.to_owned(),
            action: self.action.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn protocol(&self, detail: impl Into<String>) -> RegistryError {
        RegistryError::Protocol {
            registry: self.registry.to_owned(),
            action: self.action.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn not_found(&self, detail: impl Into<String>) -> RegistryError {
        RegistryError::NotFound {
            registry: self.registry.to_owned(),
            action: self.action.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn denied(&self, detail: impl Into<String>) -> RegistryError {
        RegistryError::Denied {
            registry: self.registry.to_owned(),
            action: self.action.to_owned(),
            detail: detail.into(),
        }
    }

    fn unauthorized(&self, status: u16, body: &str) -> RegistryError {
        if self.has_credentials {
            self.denied(format!("HTTP {status}: {}", error_summary(body)))
        } else {
            self.denied(format!(
                "HTTP {status}: it wants a user and password and none was given"
            ))
        }
    }

    /// The error for an HTTP answer that is not the one expected.
    pub fn status(&self, status: u16, body: &str) -> RegistryError {
        match status {
            401 | 403 => self.unauthorized(status, body),
            404 => self.not_found(error_summary(body)),
            _ => RegistryError::Status {
                registry: self.registry.to_owned(),
                action: self.action.to_owned(),
                status,
                detail: error_summary(body),
            },
        }
    }

    /// A reqwest failure: no answer at all (or a body cut short).
    pub fn request(&self, error: &reqwest::Error) -> RegistryError {
        if let Some(status) = error.status() {
            return self.status(status.as_u16(), "");
        }
        self.unreachable(causes(error))
    }

    /// A read that failed mid-stream: the bytes did not match their digest (the registry's
    /// fault), or the connection broke.
    pub fn io(&self, error: &std::io::Error) -> RegistryError {
        let mismatch = error
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<DigestError>().is_some());
        if mismatch {
            self.protocol(one_line(&error.to_string()))
        } else {
            self.unreachable(one_line(&error.to_string()))
        }
    }

    /// oci-client's error, classified.
    pub fn oci(&self, error: OciDistributionError) -> RegistryError {
        use OciDistributionError as E;
        match error {
            E::RequestError(error) => self.request(&error),
            E::IoError(error) => self.io(&error),
            E::UnauthorizedError { .. } => self.unauthorized(401, ""),
            E::AuthenticationFailure(reason) if self.has_credentials => {
                self.denied(format!("its token service refused: {}", error_summary(&reason)))
            }
            E::AuthenticationFailure(_) => self.denied(
                "its token service refused an anonymous token: it wants a user and password and none was given",
            ),
            E::ServerError { code, message, .. } => self.status(code, &message),
            E::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let detail = one_line(
                    &envelope
                        .errors
                        .iter()
                        .map(|e| format!("{} ({:?})", e.message, e.code))
                        .collect::<Vec<_>>()
                        .join("; "),
                );
                let any = |wanted: &[OciErrorCode]| codes.iter().any(|c| wanted.contains(c));
                if any(&[
                    OciErrorCode::BlobUnknown,
                    OciErrorCode::ManifestUnknown,
                    OciErrorCode::NameUnknown,
                    OciErrorCode::NotFound,
                ]) {
                    self.not_found(detail)
                } else if any(&[OciErrorCode::Denied, OciErrorCode::Unauthorized]) {
                    self.denied(detail)
                } else if any(&[OciErrorCode::Toomanyrequests]) {
                    RegistryError::Status {
                        registry: self.registry.to_owned(),
                        action: self.action.to_owned(),
                        status: 429,
                        detail,
                    }
                } else {
                    RegistryError::Rejected {
                        registry: self.registry.to_owned(),
                        action: self.action.to_owned(),
                        detail,
                    }
                }
            }
            other => self.protocol(one_line(&other.to_string())),
        }
    }
}

/// A reqwest error with its causes ("connection refused" is two levels down), without the
/// URL (which names nothing secret, but makes the line long).
fn causes(error: &reqwest::Error) -> String {
    let mut detail = match error.url() {
        Some(_) => {
            let text = error.to_string();
            text.split(" for url (").next().unwrap_or(&text).to_owned()
        }
        None => error.to_string(),
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail = format!("{detail}: {cause}");
        source = cause.source();
    }
    one_line(&detail)
}

/// `text` on one line, at most 300 characters.
pub(crate) fn one_line(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = text.chars().take(300).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// The registry's `{"errors": [{"code", "message"}]}` as one short line.
pub(crate) fn error_summary(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_str::<Errors>(body) {
        Ok(errors) if !errors.errors.is_empty() => one_line(
            &errors
                .errors
                .iter()
                .map(|e| format!("{} ({})", e.message, e.code))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ if body.trim().is_empty() => "no details".to_owned(),
        _ => one_line(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn context(has_credentials: bool) -> Context<'static> {
        Context {
            registry: "r",
            action: "a",
            has_credentials,
        }
    }

    #[test]
    fn registry_errors_read_as_one_line() {
        for (body, expected) in [
            (
                r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"x"}]}"#,
                "blob unknown to registry (BLOB_UNKNOWN)",
            ),
            ("", "no details"),
            ("<html>\n bad\n gateway</html>", "<html> bad gateway</html>"),
        ] {
            assert_eq!(error_summary(body), expected);
        }
        assert_eq!(error_summary(&"x".repeat(1000)).chars().count(), 301);
    }

    #[test]
    fn answers_are_classified_by_whose_fault() {
        let envelope = |code: OciErrorCode| OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: "m".into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "u".into(),
        };
        let server = |code: u16| OciDistributionError::ServerError {
            code,
            url: "u".into(),
            message: String::new(),
        };
        let kind = |error: &RegistryError| match error {
            RegistryError::NotFound { .. } => "not found",
            RegistryError::Denied { .. } => "denied",
            RegistryError::Status { status, .. } if error.is_transient() => {
                if *status == 429 {
                    "transient 429"
                } else {
                    "transient"
                }
            }
            RegistryError::Status { .. } => "status",
            RegistryError::Rejected { .. } => "rejected",
            RegistryError::Protocol { .. } => "protocol",
            RegistryError::Unreachable { .. } => "unreachable",
            _ => "other",
        };
        let cases: Vec<(OciDistributionError, &str)> = vec![
            (envelope(OciErrorCode::ManifestUnknown), "not found"),
            (envelope(OciErrorCode::NameUnknown), "not found"),
            (envelope(OciErrorCode::BlobUnknown), "not found"),
            (envelope(OciErrorCode::Denied), "denied"),
            (envelope(OciErrorCode::Toomanyrequests), "transient 429"),
            (envelope(OciErrorCode::ManifestInvalid), "rejected"),
            (server(503), "transient"),
            (server(500), "transient"),
            (server(408), "transient"),
            (server(404), "not found"),
            (server(403), "denied"),
            (server(400), "status"),
            (
                OciDistributionError::UnauthorizedError { url: "u".into() },
                "denied",
            ),
            (
                OciDistributionError::AuthenticationFailure("no".into()),
                "denied",
            ),
            (OciDistributionError::RegistryNoLocationError, "protocol"),
            (
                OciDistributionError::IoError(std::io::Error::other("reset by peer")),
                "unreachable",
            ),
        ];
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(kind(&context(true).oci(error)), expected, "{shown}");
        }
        let anonymous =
            context(false).oci(OciDistributionError::UnauthorizedError { url: "u".into() });
        assert!(
            anonymous
                .to_string()
                .contains("it wants a user and password"),
            "{anonymous}"
        );
        assert!(!anonymous.is_transient());
    }
}
