//! How a hub double is set up: where it listens, where it keeps its state, who may log in,
//! which content generators, tags and targets exist, TLS, which upload API it offers, and
//! its `tag` policy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A user of the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub name: String,
    /// Password for `login`; `None` = certificate (`sslLogin`) only.
    pub password: Option<String>,
    /// Permissions (`admin`, `tag`...).
    pub perms: Vec<String>,
}

impl UserSpec {
    pub fn new(name: &str, password: Option<&str>) -> UserSpec {
        UserSpec {
            name: name.to_owned(),
            password: password.map(str::to_owned),
            perms: Vec::new(),
        }
    }

    pub fn with_perms(mut self, perms: &[&str]) -> UserSpec {
        self.perms = perms.iter().map(|perm| (*perm).to_owned()).collect();
        self
    }
}

/// A tag and the packages on its package list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSpec {
    pub name: String,
    pub packages: Vec<String>,
    /// Nobody tags into it (an admin with `force` still may).
    pub locked: bool,
    /// The permission a user needs to tag into it (koji's tag `perm`).
    pub perm: Option<String>,
}

impl TagSpec {
    pub fn new(name: &str, packages: &[&str]) -> TagSpec {
        TagSpec {
            name: name.to_owned(),
            packages: packages.iter().map(|p| (*p).to_owned()).collect(),
            locked: false,
            perm: None,
        }
    }

    pub fn locked(mut self) -> TagSpec {
        self.locked = true;
        self
    }

    pub fn with_perm(mut self, perm: &str) -> TagSpec {
        self.perm = Some(perm.to_owned());
        self
    }
}

/// A build target; its destination tag gets `packages` on its package list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub name: String,
    pub build_tag: String,
    pub dest_tag: String,
    pub packages: Vec<String>,
}

impl TargetSpec {
    /// Koji's naming: target `f41-container-candidate` builds in `f41-container-build` and
    /// lands in `f41-container-candidate`.
    pub fn named(name: &str, packages: &[&str]) -> TargetSpec {
        let build_tag = match name.strip_suffix("-candidate") {
            Some(stem) => format!("{stem}-build"),
            None => format!("{name}-build"),
        };
        TargetSpec {
            name: name.to_owned(),
            build_tag,
            dest_tag: name.to_owned(),
            packages: packages.iter().map(|p| (*p).to_owned()).collect(),
        }
    }
}

/// PEM files of the hub's TLS: its certificate and key, and the CA that signs client
/// certificates (`sslLogin` takes the user name from the client certificate's CN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

/// Everything a hub double starts from. The users, content generators, tags and targets
/// seed a fresh state directory only: a state directory that already holds a hub keeps it.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Port 0 picks a free one.
    pub listen: SocketAddr,
    /// `None`: a temporary directory removed with the hub.
    pub state_dir: Option<PathBuf>,
    pub users: Vec<UserSpec>,
    /// Content generator name → users allowed to import with it.
    pub content_generators: Vec<(String, Vec<String>)>,
    pub tags: Vec<TagSpec>,
    pub targets: Vec<TargetSpec>,
    pub tls: Option<TlsFiles>,
    /// Offer the fast upload POST and `checkUpload` (koji ≥ 1.15). Off: an older hub with
    /// only `uploadFile`.
    pub fast_upload: bool,
    /// How long a `tagBuild` task waits for its (simulated) builder daemon.
    pub tag_task_delay: Duration,
    /// The hub's `tag` policy, in koji's `hub.conf` syntax (`has_perm tag :: allow` ...).
    /// `None`, the hub's default: no `tag` policy, so every tagging passes it.
    pub tag_policy: Option<String>,
}

impl Default for HubConfig {
    /// A hub for the quickstart: user `osbs` (password `osbs`) may import as content
    /// generator `osbs`.
    fn default() -> Self {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            users: vec![UserSpec::new("osbs", Some("osbs"))],
            content_generators: vec![("osbs".into(), vec!["osbs".into()])],
            tags: Vec::new(),
            targets: Vec::new(),
            tls: None,
            fast_upload: true,
            tag_task_delay: Duration::from_millis(200),
            tag_policy: None,
        }
    }
}
