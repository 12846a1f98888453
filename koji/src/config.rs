//! The connection to a Koji hub, as `[koji]` of the shared configuration file says: where
//! the hub is, how to log in, the content generator's name, and how calls and uploads behave.
//!
//! `[koji]` also holds the koji-bridge's own settings (bundle directory, tagging, its
//! consumer), so [`KojiConfig`] does not refuse keys it does not know: the worker reads the
//! section through it and ignores the bridge's keys; the bridge reads the whole section and
//! refuses typos there (`osbs_koji_bridge::config`). `[koji.auth]` is the hub's alone and
//! refuses unknown keys.

use osbs_proto::secret::{Secret, mask_url_password};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How the client logs in to the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// `sslLogin` with a client certificate (production: the CN names the CG user).
    #[default]
    Ssl,
    /// `login(user, password)` (test hubs).
    Password,
}

/// `[koji.auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KojiAuth {
    pub method: AuthMethod,
    /// For `password`.
    pub user: String,
    pub password: Secret,
    /// For `ssl`: the client certificate (PEM); it may hold the key too.
    pub cert: PathBuf,
    /// The client key (PEM); empty when `cert` holds it.
    pub key: PathBuf,
}

impl Default for KojiAuth {
    fn default() -> Self {
        KojiAuth {
            method: AuthMethod::Ssl,
            user: String::new(),
            password: Secret::default(),
            cert: PathBuf::from("/etc/osbs-koji/client.crt"),
            key: PathBuf::from("/etc/osbs-koji/client.key"),
        }
    }
}

/// Which upload API the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UploadMode {
    /// Fast upload when the hub has `checkUpload`, else the legacy `uploadFile`.
    #[default]
    Auto,
    Fast,
    Legacy,
}

/// `[koji]`, the hub part: what a [`crate::KojiClient`] needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KojiConfig {
    /// The hub's XML-RPC URL (`https://koji.fedoraproject.org/kojihub`). Empty: no hub (the
    /// worker takes releases from the registry's tags; the bridge writes import bundles).
    pub hub_url: String,
    pub auth: KojiAuth,
    /// CA certificates (PEM) the hub's certificate must chain to; empty = the system's.
    pub server_ca: PathBuf,
    /// Content generator name registered on the hub (`koji grant-cg-access USER osbs`).
    pub cg_name: String,
    pub upload_mode: UploadMode,
    /// Bytes per upload request.
    pub upload_chunk_bytes: usize,
    /// Longest one XML-RPC call or upload request may take.
    pub call_timeout_secs: u64,
    /// How long a transient hub failure is retried (read-only calls, upload chunks; the
    /// bridge also gives its registry reads this long) before the caller hears of it.
    pub retry_secs: u64,
}

impl Default for KojiConfig {
    fn default() -> Self {
        KojiConfig {
            hub_url: String::new(),
            auth: KojiAuth::default(),
            server_ca: PathBuf::new(),
            cg_name: "osbs".into(),
            upload_mode: UploadMode::Auto,
            upload_chunk_bytes: 8 << 20,
            call_timeout_secs: 600,
            retry_secs: 300,
        }
    }
}

impl KojiConfig {
    /// The keys of `[koji]` this type reads: a reader of the whole section hands these to
    /// [`KojiConfig`] and checks the rest itself.
    pub const FIELDS: &[&str] = &[
        "hub_url",
        "auth",
        "server_ca",
        "cg_name",
        "upload_mode",
        "upload_chunk_bytes",
        "call_timeout_secs",
        "retry_secs",
    ];

    /// Whether a hub is configured.
    pub fn has_hub(&self) -> bool {
        !self.hub_url.trim().is_empty()
    }
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_secs.max(1))
    }
    pub fn retry_budget(&self) -> Duration {
        Duration::from_secs(self.retry_secs)
    }
    pub fn chunk_bytes(&self) -> usize {
        self.upload_chunk_bytes.clamp(64 << 10, 256 << 20)
    }
    /// The hub URL with any password masked, for logs.
    pub fn hub_url_masked(&self) -> String {
        mask_url_password(self.hub_url.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_every_key() {
        let shown = serde_json::to_value(KojiConfig::default()).unwrap();
        let keys: Vec<&str> = shown
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut fields = KojiConfig::FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(keys, fields);
    }

    #[test]
    fn the_bridges_keys_are_ignored_and_secrets_masked() {
        let config: KojiConfig = toml::from_str(
            "hub_url = \"http://127.0.0.1:8081/kojihub\"\ntag_mode = \"bypass\"\n\
             upload_chunk_bytes = 1\n[auth]\nmethod = \"password\"\npassword = \"hunter2\"\n",
        )
        .unwrap();
        assert!(config.has_hub());
        assert_eq!(config.auth.method, AuthMethod::Password);
        assert_eq!(config.auth.password.expose(), "hunter2");
        assert_eq!(config.chunk_bytes(), 64 << 10);
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&config).unwrap().contains("hunter2"));
        let with_password = KojiConfig {
            hub_url: "http://osbs:hunter2@127.0.0.1:8081/kojihub".into(),
            ..KojiConfig::default()
        };
        assert_eq!(
            with_password.hub_url_masked(),
            "http://osbs:***@127.0.0.1:8081/kojihub"
        );

        let typo = toml::from_str::<KojiConfig>("[auth]\nmetod = \"ssl\"\n").unwrap_err();
        assert!(typo.to_string().contains("metod"), "{typo}");
        assert!(!KojiConfig::default().has_hub());
    }
}
