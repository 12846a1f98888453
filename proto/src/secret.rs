//! Credentials as data: [`Secret`] and [`CredentialUrl`] print, debug and serialize masked,
//! so that a configuration dump, a log line or an error built from them never shows them.
//! Pure: the crates that must not pull in the services' runtime (the registry client, the
//! squash tool) take their credentials as these types too.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A credential. Serializes and prints as `***`; read it with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// A URL that may carry a password (`amqp://user:pass@host`, `redis://:pass@host`).
/// Displays, debugs and serializes with the password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialUrl(String);

impl CredentialUrl {
    pub fn new(value: impl Into<String>) -> Self {
        CredentialUrl(value.into())
    }
    /// The real URL, for the one call that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The URL with any password masked: safe for logs and errors.
    pub fn masked(&self) -> String {
        mask_url_password(&self.0)
    }
}

/// Replaces the password of `url` by `***`; leaves a URL without one untouched.
pub fn mask_url_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password only fails for cannot-be-a-base URLs, which carry no password.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // Not parseable: still never print what could follow a `user:` part.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}***{}", &url[..scheme_end + 3], &url[at..])
            }
            _ => url.to_owned(),
        },
    }
}

impl std::fmt::Debug for CredentialUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl std::fmt::Display for CredentialUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for CredentialUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.masked())
    }
}

impl<'de> Deserialize<'de> for CredentialUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(CredentialUrl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let url = CredentialUrl::new("amqp://osbs:s3cret@rabbit:5672/%2f");
        assert_eq!(url.masked(), "amqp://osbs:***@rabbit:5672/%2f");
        assert!(!format!("{url} {url:?}").contains("s3cret"));
        assert!(!serde_json::to_string(&url).unwrap().contains("s3cret"));
        assert_eq!(url.expose(), "amqp://osbs:s3cret@rabbit:5672/%2f");
        for (url, masked) in [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            (
                "redis://:pw@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            ("weird://u:p@@host", "weird://u:***@host"),
            ("no scheme", "no scheme"),
        ] {
            assert_eq!(mask_url_password(url), masked, "{url}");
        }

        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
        let read: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(read.expose(), "hunter2");
    }
}
