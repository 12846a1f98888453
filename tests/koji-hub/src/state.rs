//! What the hub knows: users, content generators, tags, targets, builds with their archives
//! and logs, reservations, sessions, tasks. Kept as one value behind a lock and written to
//! `state.json` after each change, so that a restarted hub (or `koji-hub-double` started
//! again on the same `--state-dir`) carries on where it stopped.

use crate::config::HubConfig;
use crate::fault::{Fault, py_repr};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Build states (`koji.BUILD_STATES`).
pub mod build_state {
    pub const BUILDING: i64 = 0;
    pub const COMPLETE: i64 = 1;
    pub const DELETED: i64 = 2;
    pub const FAILED: i64 = 3;
    pub const CANCELED: i64 = 4;

    pub fn name(state: i64) -> &'static str {
        match state {
            BUILDING => "BUILDING",
            COMPLETE => "COMPLETE",
            DELETED => "DELETED",
            FAILED => "FAILED",
            CANCELED => "CANCELED",
            _ => "UNKNOWN",
        }
    }
}

/// Task states (`koji.TASK_STATES`).
pub mod task_state {
    pub const FREE: i64 = 0;
    pub const OPEN: i64 = 1;
    pub const CLOSED: i64 = 2;
    pub const CANCELED: i64 = 3;
    pub const FAILED: i64 = 5;

    pub fn name(state: i64) -> &'static str {
        match state {
            FREE => "FREE",
            OPEN => "OPEN",
            CLOSED => "CLOSED",
            CANCELED => "CANCELED",
            4 => "ASSIGNED",
            FAILED => "FAILED",
            _ => "UNKNOWN",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    /// `None`: the user cannot log in with a password (certificate only).
    pub password: Option<String>,
    pub perms: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentGenerator {
    pub id: i64,
    pub name: String,
    pub users: BTreeSet<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub id: i64,
    pub name: String,
    /// Packages allowed in the tag (the tag's package list).
    pub packages: BTreeSet<String>,
    pub locked: bool,
    /// The permission needed to tag into it (`None`: anyone).
    #[serde(default)]
    pub perm: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub id: i64,
    pub name: String,
    pub build_tag: i64,
    pub dest_tag: i64,
}

/// An archive (non-log output) of an imported build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Archive {
    pub id: i64,
    pub filename: String,
    pub size: u64,
    pub checksum: String,
    /// `koji.CHECKSUM_TYPES` number.
    pub checksum_type: i64,
    /// Archive type name (`tar`, `json`...), from the file extension.
    pub type_name: String,
    pub btype: String,
    pub buildroot_id: i64,
    pub extra: Json,
    /// Number of components (rpms) listed for the archive.
    pub components: usize,
    /// Where the file lives now, under the state directory.
    pub path: PathBuf,
}

/// A log file of an imported build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogFile {
    pub filename: String,
    pub size: u64,
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub state: i64,
    pub owner_id: i64,
    pub cg_id: Option<i64>,
    pub source: Option<String>,
    pub extra: Json,
    pub task_id: Option<i64>,
    pub creation_ts: f64,
    pub start_ts: Option<f64>,
    pub completion_ts: Option<f64>,
    pub btypes: BTreeSet<String>,
    pub archives: Vec<Archive>,
    pub logs: Vec<LogFile>,
    /// The metadata the build was imported with, as the hub stored it (`metadata.json`).
    pub metadata: Option<String>,
    /// Buildroots created by the import (their hub ids and the metadata they came from).
    pub buildroots: Vec<Json>,
}

impl Build {
    pub fn nvr(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.release)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: i64,
    pub key: String,
    pub user_id: i64,
    /// Last call number that changed data (see koji's `RetryError`).
    pub callnum: Option<i64>,
    pub authtype: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: i64,
    pub method: String,
    pub state: i64,
    pub owner: i64,
    pub create_ts: f64,
    pub completion_ts: Option<f64>,
    /// When a "builder" picks it up (Unix seconds).
    pub due_ts: f64,
    pub request: Json,
    /// Result, or the fault `[code, text]` when it failed.
    pub result: Option<Json>,
}

/// Every fact the hub holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HubState {
    pub next_id: BTreeMap<String, i64>,
    pub users: BTreeMap<String, User>,
    pub content_generators: BTreeMap<String, ContentGenerator>,
    pub btypes: BTreeSet<String>,
    /// Package name → id (koji's `package` table): every name a build or a package list
    /// ever used.
    #[serde(default)]
    pub packages: BTreeMap<String, i64>,
    /// Archive type name → space-separated extensions (koji's `archivetypes`).
    pub archive_types: BTreeMap<String, String>,
    pub tags: BTreeMap<String, Tag>,
    pub targets: BTreeMap<String, Target>,
    pub builds: BTreeMap<i64, Build>,
    /// build id → reservation token (`build_reservations`).
    pub reservations: BTreeMap<i64, String>,
    /// (tag id, build id) pairs currently tagged.
    pub tag_listing: BTreeSet<(i64, i64)>,
    pub sessions: BTreeMap<i64, Session>,
    /// The key of every session the hub ever opened, logged out or not: what a test must
    /// never find in a log.
    #[serde(default)]
    pub issued_session_keys: Vec<String>,
    pub tasks: BTreeMap<i64, Task>,
    /// Upload directory → id of the user who wrote it first (koji's `.user` file).
    pub upload_owners: BTreeMap<String, i64>,
}

/// Archive types of a stock hub that a container content generator can meet.
const ARCHIVE_TYPES: &[(&str, &str)] = &[
    ("tar", "tar tar.gz tar.bz2 tar.xz tgz"),
    ("zip", "zip"),
    ("json", "json"),
    ("yaml", "yaml yml"),
    ("xml", "xml"),
    ("iso", "iso"),
    ("qcow2", "qcow2"),
    ("raw-xz", "raw.xz"),
];

impl HubState {
    /// A fresh hub seeded from `config`: its users, content generators, tags and targets.
    pub fn seeded(config: &HubConfig) -> HubState {
        let mut state = HubState {
            btypes: ["rpm", "maven", "win", "image"]
                .into_iter()
                .map(String::from)
                .collect(),
            archive_types: ARCHIVE_TYPES
                .iter()
                .map(|(name, extensions)| ((*name).to_owned(), (*extensions).to_owned()))
                .collect(),
            ..HubState::default()
        };
        for spec in &config.users {
            let id = state.next("user");
            state.users.insert(
                spec.name.clone(),
                User {
                    id,
                    name: spec.name.clone(),
                    password: spec.password.clone(),
                    perms: spec.perms.iter().cloned().collect(),
                },
            );
        }
        for (cg, users) in &config.content_generators {
            let id = state.next("content_generator");
            let users = users
                .iter()
                .filter_map(|name| state.users.get(name).map(|user| user.id))
                .collect();
            state.content_generators.insert(
                cg.clone(),
                ContentGenerator {
                    id,
                    name: cg.clone(),
                    users,
                },
            );
        }
        for spec in &config.tags {
            state.ensure_tag(&spec.name, &spec.packages);
            let tag = state.tags.get_mut(&spec.name).expect("just ensured");
            tag.locked |= spec.locked;
            if spec.perm.is_some() {
                tag.perm = spec.perm.clone();
            }
        }
        for spec in &config.targets {
            let build_tag = state.ensure_tag(&spec.build_tag, &[]);
            let dest_tag = state.ensure_tag(&spec.dest_tag, &spec.packages);
            let id = state.next("build_target");
            state.targets.insert(
                spec.name.clone(),
                Target {
                    id,
                    name: spec.name.clone(),
                    build_tag,
                    dest_tag,
                },
            );
        }
        state
    }

    fn ensure_tag(&mut self, name: &str, packages: &[String]) -> i64 {
        for package in packages {
            self.ensure_package(package);
        }
        if let Some(tag) = self.tags.get_mut(name) {
            tag.packages.extend(packages.iter().cloned());
            return tag.id;
        }
        let id = self.next("tag");
        self.tags.insert(
            name.to_owned(),
            Tag {
                id,
                name: name.to_owned(),
                packages: packages.iter().cloned().collect(),
                locked: false,
                perm: None,
            },
        );
        id
    }

    /// `new_package(name, strict=False)`: the package's id, made on first use.
    pub fn ensure_package(&mut self, name: &str) -> i64 {
        if let Some(id) = self.packages.get(name) {
            return *id;
        }
        let id = self.next("package");
        self.packages.insert(name.to_owned(), id);
        id
    }

    /// `check_tag_access(tag, user)`: whether `user` may tag into `tag` and, when not, why
    /// (and whether an admin's `force` overrides it, which `assert_tag_access` allows).
    pub fn assert_tag_access(&self, tag: &Tag, user_id: i64, force: bool) -> Result<(), Fault> {
        let perms = self
            .user_by_id(user_id)
            .map(|user| &user.perms)
            .ok_or_else(|| Fault::generic(format!("No such user: {user_id}")))?;
        let refusal = if tag.locked {
            Some("tag is locked".to_owned())
        } else {
            tag.perm
                .as_ref()
                .filter(|needed| !perms.contains(*needed))
                .map(|needed| format!("tag requires {needed} permission"))
        };
        match refusal {
            Some(reason) if !(force && perms.contains("admin")) => Err(Fault::not_allowed(reason)),
            _ => Ok(()),
        }
    }

    /// The next id of a sequence (`nextval('<name>_id_seq')`).
    pub fn next(&mut self, sequence: &str) -> i64 {
        let slot = self.next_id.entry(sequence.to_owned()).or_insert(0);
        *slot += 1;
        *slot
    }

    pub fn user_by_id(&self, id: i64) -> Option<&User> {
        self.users.values().find(|user| user.id == id)
    }

    pub fn cg_by_id(&self, id: i64) -> Option<&ContentGenerator> {
        self.content_generators.values().find(|cg| cg.id == id)
    }

    pub fn tag_by_id(&self, id: i64) -> Option<&Tag> {
        self.tags.values().find(|tag| tag.id == id)
    }

    /// `lookup_name('content_generator', name, strict=True)`.
    pub fn lookup_cg(&self, name: &Json) -> Result<&ContentGenerator, Fault> {
        let found = match name {
            Json::String(text) => self.content_generators.get(text),
            Json::Number(id) => id.as_i64().and_then(|id| self.cg_by_id(id)),
            Json::Null => {
                return Err(Fault::parameter("Invalid name or id value: None"));
            }
            _ => None,
        };
        found.ok_or_else(|| {
            Fault::generic(format!(
                "No such entry in table content_generator: {}",
                crate::fault::py_str(name)
            ))
        })
    }

    /// `assert_cg(cg)` for the session's user.
    pub fn assert_cg(&self, cg: &Json, user: Option<i64>) -> Result<i64, Fault> {
        let cg = self.lookup_cg(cg)?;
        let user = user.ok_or_else(|| Fault::auth("Not logged-in"))?;
        if !cg.users.contains(&user) {
            return Err(Fault::auth(format!(
                "Content generator access required ({})",
                cg.name
            )));
        }
        Ok(cg.id)
    }

    /// `find_build_id`: a build by id, NVR string, or `{name, version, release}` dict.
    pub fn find_build(&self, info: &Json) -> Result<Option<&Build>, Fault> {
        match info {
            Json::Number(id) => Ok(id.as_i64().and_then(|id| self.builds.get(&id))),
            Json::String(nvr) => {
                let (n, v, r) = crate::nvr::parse_nvr_strict(nvr)?;
                Ok(self
                    .builds
                    .values()
                    .find(|b| b.name == n && b.version == v && b.release == r))
            }
            Json::Object(map) => {
                let (Some(name), Some(version), Some(release)) =
                    (map.get("name"), map.get("version"), map.get("release"))
                else {
                    return Err(Fault::generic("did not provide name, version, and release"));
                };
                Ok(self.builds.values().find(|b| {
                    Some(b.name.as_str()) == name.as_str()
                        && Some(b.version.as_str()) == version.as_str()
                        && Some(b.release.as_str()) == release.as_str()
                }))
            }
            other => Err(Fault::generic(format!(
                "Invalid type for argument: <class '{}'>",
                python_type(other)
            ))),
        }
    }

    /// `get_build(info, strict=True)`: an unknown NVR is named with `%r`, an unknown id
    /// with `%s`, as the hub's two lookups do.
    pub fn require_build(&self, info: &Json) -> Result<&Build, Fault> {
        self.find_build(info)?.ok_or_else(|| {
            let named = match info {
                Json::Number(id) => id.to_string(),
                other => py_repr(other),
            };
            Fault::generic(format!("No such build: {named}"))
        })
    }

    /// `get_tag(info, strict=True)`.
    pub fn require_tag(&self, info: &Json) -> Result<&Tag, Fault> {
        let found = match info {
            Json::String(name) => self.tags.get(name),
            Json::Number(id) => id.as_i64().and_then(|id| self.tag_by_id(id)),
            _ => None,
        };
        found.ok_or_else(|| Fault::generic(format!("No such tagInfo: {}", py_repr(info))))
    }

    /// The getBuild dict of `build`.
    pub fn build_info(&self, build: &Build) -> Json {
        let owner = self.user_by_id(build.owner_id);
        let cg_name = build
            .cg_id
            .and_then(|id| self.cg_by_id(id))
            .map(|cg| cg.name.clone());
        json!({
            "id": build.id,
            "build_id": build.id,
            "package_id": self.packages.get(&build.name),
            "package_name": build.name,
            "name": build.name,
            "version": build.version,
            "release": build.release,
            "epoch": build.epoch,
            "nvr": build.nvr(),
            "state": build.state,
            "task_id": build.task_id,
            "owner_id": build.owner_id,
            "owner_name": owner.map(|user| user.name.clone()),
            "volume_id": 0,
            "volume_name": "DEFAULT",
            "creation_event_id": build.id,
            "creation_time": iso_time(build.creation_ts),
            "creation_ts": build.creation_ts,
            "start_time": build.start_ts.map(iso_time),
            "start_ts": build.start_ts,
            "completion_time": build.completion_ts.map(iso_time),
            "completion_ts": build.completion_ts,
            "source": build.source,
            "extra": if build.extra.is_null() { Json::Null } else { build.extra.clone() },
            "cg_id": build.cg_id,
            "cg_name": cg_name,
        })
    }

    /// The getBuildTarget dict of `target`.
    pub fn target_info(&self, target: &Target) -> Json {
        let tag_name = |id| self.tag_by_id(id).map(|tag| tag.name.clone());
        json!({
            "id": target.id,
            "name": target.name,
            "build_tag": target.build_tag,
            "build_tag_name": tag_name(target.build_tag),
            "dest_tag": target.dest_tag,
            "dest_tag_name": tag_name(target.dest_tag),
        })
    }

    /// The getTag / listTags dict of `tag`.
    pub fn tag_info(tag: &Tag) -> Json {
        json!({
            "id": tag.id,
            "name": tag.name,
            "arches": "",
            "locked": tag.locked,
            "perm": tag.perm,
            "perm_id": tag.perm.as_deref().and_then(permission_id),
            "maven_support": false,
            "maven_include_all": false,
            "extra": {},
        })
    }

    /// The getLoggedInUser dict of `user`.
    pub fn user_info(user: &User) -> Json {
        json!({
            "id": user.id,
            "name": user.name,
            "status": 0,
            "usertype": 0,
            "krb_principals": [],
        })
    }

    /// Loads `state.json` from `dir`, if there is one.
    pub fn load(dir: &Path) -> std::io::Result<Option<HubState>> {
        match std::fs::read(dir.join("state.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {error}", dir.join("state.json").display()),
                )
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes `state.json` atomically (temporary file, then rename).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let temporary = dir.join("state.json.tmp");
        std::fs::write(
            &temporary,
            serde_json::to_vec(self).expect("the hub state always serializes"),
        )?;
        std::fs::rename(temporary, dir.join("state.json"))
    }
}

/// Python's type name of a JSON value (for `Invalid type` messages).
pub fn python_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "NoneType",
        Json::Bool(_) => "bool",
        Json::Number(number) if number.is_f64() => "float",
        Json::Number(_) => "int",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    }
}

/// `datetime.isoformat(' ')` of a Unix time, as koji returns timestamps.
pub fn iso_time(unix_seconds: f64) -> String {
    let nanos = (unix_seconds * 1e9) as i128;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
    );
    at.format(&format).unwrap_or_default()
}

/// Seconds since the epoch, now (the hub is a server: it reads the clock).
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs_f64())
        .unwrap_or(0.0)
}

/// The id of a permission in a stock hub's `permissions` table (`schemas/schema.sql`).
pub fn permission_id(name: &str) -> Option<i64> {
    const PERMISSIONS: &[&str] = &[
        "admin",
        "appliance",
        "dist-repo",
        "host",
        "image",
        "image-import",
        "livecd",
        "maven-import",
        "repo",
        "sign",
        "tag",
        "target",
        "win-admin",
        "win-import",
        "draft-promoter",
    ];
    PERMISSIONS
        .iter()
        .position(|known| *known == name)
        .map(|index| index as i64 + 1)
}
