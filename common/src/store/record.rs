//! A build record as read back from Redis, the names of all its fields (every service's, in
//! one place), and the entries of its history.

use super::StoreError;
use osbs_proto::Message;
use osbs_proto::v1::{BuildJob, BuildState, ImageInfo, Nvr};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A build record, as read back from Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildRecord {
    pub id: String,
    pub state: BuildState,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The job as enqueued (request, target, options).
    pub job: BuildJob,
    /// Every other field ([`field`]), as strings.
    pub fields: HashMap<String, String>,
}

impl BuildRecord {
    /// A record made in memory, not read back from Redis (tests, benches): `fields` as
    /// name–value pairs, times at zero.
    pub fn new(id: &str, state: BuildState, job: BuildJob, fields: &[(&str, &str)]) -> BuildRecord {
        BuildRecord {
            id: id.to_owned(),
            state,
            created_ms: 0,
            updated_ms: 0,
            job,
            fields: fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }
    pub fn error(&self) -> &str {
        self.field(field::ERROR)
    }
    pub fn nvr(&self) -> &str {
        self.field(field::NVR)
    }
    pub fn digest(&self) -> &str {
        self.field(field::DIGEST)
    }
    pub fn attempts(&self) -> u32 {
        self.field(field::ATTEMPTS).parse().unwrap_or(0)
    }
    /// Pullspecs, stored as a JSON array.
    pub fn pullspecs(&self) -> Vec<String> {
        serde_json::from_str(self.field(field::PULLSPECS)).unwrap_or_default()
    }
    /// The Koji build, once imported.
    pub fn koji_build_id(&self) -> Option<i64> {
        self.field(field::KOJI_BUILD_ID)
            .parse()
            .ok()
            .filter(|id| *id != 0)
    }
    pub fn cancel_requested(&self) -> bool {
        self.field(field::CANCEL_REQUESTED) == "1"
    }

    /// The record from HGETALL's answer.
    pub(crate) fn from_hash(
        id: &str,
        mut hash: HashMap<String, Vec<u8>>,
    ) -> Result<BuildRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            id: id.to_owned(),
            reason,
        };
        let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
        let state = hash
            .remove(field::STATE)
            .map(text)
            .ok_or_else(|| corrupt("no state".into()))?;
        let state = BuildState::parse(&state).map_err(|error| corrupt(error.to_string()))?;
        let job = hash
            .remove(field::JOB)
            .ok_or_else(|| corrupt("no job".into()))
            .and_then(|bytes| {
                BuildJob::decode(bytes.as_slice()).map_err(|error| corrupt(error.to_string()))
            })?;
        let number =
            |value: Option<Vec<u8>>| value.map(text).and_then(|v| v.parse().ok()).unwrap_or(0);
        let created_ms = number(hash.remove(field::CREATED_MS));
        let updated_ms = number(hash.remove(field::UPDATED_MS));
        Ok(BuildRecord {
            id: id.to_owned(),
            state,
            created_ms,
            updated_ms,
            job,
            fields: hash
                .into_iter()
                .map(|(key, value)| (key, text(value)))
                .collect(),
        })
    }

    /// The record from a script's flat `HGETALL` reply (`[name, value, name, value...]`).
    pub(crate) fn from_flat(id: &str, flat: Vec<Vec<u8>>) -> Result<BuildRecord, StoreError> {
        let mut hash = HashMap::with_capacity(flat.len() / 2);
        let mut items = flat.into_iter();
        while let (Some(name), Some(value)) = (items.next(), items.next()) {
            hash.insert(String::from_utf8_lossy(&name).into_owned(), value);
        }
        BuildRecord::from_hash(id, hash)
    }
}

/// Names of the record's fields, whichever service writes them.
pub mod field {
    /// Written only by the state change (`common::state`) and by record creation.
    pub const STATE: &str = "state";
    pub const JOB: &str = "job";
    pub const CREATED_MS: &str = "created_ms";
    pub const UPDATED_MS: &str = "updated_ms";

    // Copied from the job at creation, for listing.
    pub const REPO: &str = "repo";
    pub const BRANCH: &str = "branch";
    pub const TARGET: &str = "target";
    pub const SUBMITTER: &str = "submitter";

    /// The dispatcher: `1` once its work for the record is done (job confirmed on
    /// `osbs.jobs`, or none needed because it was superseded at once, and its state events
    /// confirmed). A record without it after a crash is finished by the redelivered event.
    pub const ENQUEUED: &str = "enqueued";
    /// The dispatcher: the push build this one superseded when it became the branch's newest
    /// (may be empty).
    pub const SUPERSEDES: &str = "supersedes";
    /// The dispatcher: the newer push build that superseded this one.
    pub const SUPERSEDED_BY: &str = "superseded_by";
    pub const REQUEST_ID: &str = "request_id";
    /// The dispatcher: AMQP priority the job was published with.
    pub const PRIORITY: &str = "priority";

    /// The CLI's `osbs cancel`: `1` asks the worker to stop the build.
    pub const CANCEL_REQUESTED: &str = "cancel_requested";

    /// The worker.
    pub const WORKER: &str = "worker";
    pub const ATTEMPTS: &str = "attempts";
    pub const HEARTBEAT_MS: &str = "heartbeat_ms";
    pub const NVR: &str = "nvr";
    /// The worker's orchestrator of a multi-arch build: the build's arches (Koji names,
    /// comma-separated), written when its arch jobs are published (DESIGN.md
    /// "Architectures"). Empty for a single-arch build.
    pub const ARCHES: &str = "arches";
    /// JSON array.
    pub const PULLSPECS: &str = "pullspecs";
    pub const DIGEST: &str = "digest";
    pub const ERROR: &str = "error";
    /// The worker, with `error`: whose fault a failure is, `packager` (fix the repository or
    /// the request) or `infrastructure` (an operator fixes the service; the job is
    /// dead-lettered for replay).
    pub const BLAME: &str = "blame";
    pub const LOG_PATH: &str = "log_path";
    /// The worker: step timings (JSON object, milliseconds).
    pub const TIMINGS: &str = "timings";
    /// The worker: `0` while the build's final result (kept under `<prefix>:result:<id>`) and
    /// its state event are not confirmed published, `1` once they are.
    pub const RESULT_PUBLISHED: &str = "result_published";

    /// The koji-bridge.
    pub const KOJI_BUILD_ID: &str = "koji_build_id";
    /// The koji-bridge: `hub` or `bundle`.
    pub const KOJI_IMPORT: &str = "koji_import";
    pub const KOJI_TAG: &str = "koji_tag";
    pub const KOJI_BUNDLE: &str = "koji_bundle";
    /// The koji-bridge: why a build was not imported (scratch).
    pub const KOJI_NOTE: &str = "koji_note";
}

/// The record fields of what a build produced (its NVR, pullspecs and digest), from the
/// outputs a worker holds or a result carries: one spelling for both.
pub fn output_fields(nvr: Option<&Nvr>, image: Option<&ImageInfo>) -> Vec<(&'static str, String)> {
    let mut fields = Vec::new();
    if let Some(nvr) = nvr {
        fields.push((
            field::NVR,
            format!("{}-{}-{}", nvr.name, nvr.version, nvr.release),
        ));
    }
    if let Some(image) = image {
        fields.push((
            field::PULLSPECS,
            serde_json::to_string(&image.pullspecs).unwrap_or_default(),
        ));
        if let Some(digest) = image.digests.first() {
            fields.push((field::DIGEST, digest.digest.clone()));
        }
    }
    fields
}

/// The record fields that name a build's job (for listing and filtering).
pub(crate) fn job_fields(job: &BuildJob) -> [(&'static str, &str); 4] {
    let target = job
        .target
        .as_ref()
        .map_or("", |target| target.name.as_str());
    [
        (field::REPO, job.repo.as_str()),
        (field::BRANCH, job.branch.as_str()),
        (field::TARGET, target),
        (field::SUBMITTER, job.submitter.as_str()),
    ]
}

/// One entry of a record's history: a state change, or the record's creation (`from` empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at_ms: i64,
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub by: String,
}

impl HistoryEntry {
    /// The entry of a change from `from` (`None`: the record is created) to `to`, at `at_ms`.
    pub fn new(
        from: Option<BuildState>,
        to: BuildState,
        reason: &str,
        by: &str,
        at_ms: i64,
    ) -> HistoryEntry {
        HistoryEntry {
            at_ms,
            from: from.map(BuildState::name).unwrap_or_default().to_owned(),
            to: to.name().to_owned(),
            reason: reason.to_owned(),
            by: by.to_owned(),
        }
    }

    /// The state it left (`Unspecified` for the record's creation).
    pub fn from_state(&self) -> BuildState {
        BuildState::parse(&self.from).unwrap_or(BuildState::Unspecified)
    }

    /// As stored in the history list.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a plain struct serializes")
    }
}
