//! What a state change is and how it is announced: the [`StateChange`] a caller asks for and
//! the [`Announcement`] made from the record read back after it (its fedora-messaging JSON
//! event). Kept apart from [`crate::state`] so that the store and the bus, which
//! `state::change` drives, need not import it back.

use crate::store::record::{BuildRecord, HistoryEntry};
use osbs_proto::external::{StateEvent, iso8601};
use osbs_proto::v1::{BuildJob, BuildState};

/// One change of a build's state, and what to record with it.
#[derive(Debug, Clone)]
pub struct StateChange<'a> {
    pub build_id: &'a str,
    pub to: BuildState,
    /// Compare-and-set: the states the record must be in now. `None`: any state that can
    /// become `to`. Either way, only states that can become `to` are allowed.
    pub from: Option<&'a [BuildState]>,
    /// One line saying why, for the history and the event.
    pub reason: &'a str,
    /// Service instance or user making the change, for the history.
    pub by: &'a str,
    /// Record fields written along with the state (never `state` or `job`).
    pub fields: Vec<(&'a str, String)>,
}

impl<'a> StateChange<'a> {
    /// `build_id` becomes `to` from any state that can become it.
    pub fn new(build_id: &'a str, to: BuildState, reason: &'a str, by: &'a str) -> Self {
        StateChange {
            build_id,
            to,
            from: None,
            reason,
            by,
            fields: Vec::new(),
        }
    }

    /// Only if the record is now in one of `states`.
    pub fn only_from(mut self, states: &'a [BuildState]) -> Self {
        self.from = Some(states);
        self
    }

    pub fn with_fields(mut self, fields: Vec<(&'a str, String)>) -> Self {
        self.fields = fields;
        self
    }

    /// The states the change may start from, each with the history entry it appends.
    pub fn history_entries(&self, at_ms: i64) -> Vec<(BuildState, HistoryEntry)> {
        let sources = match self.from {
            Some(states) => states.to_vec(),
            None => BuildState::sources_of(self.to),
        };
        sources
            .into_iter()
            .filter(|source| source.can_become(self.to))
            .map(|source| {
                let entry = HistoryEntry::new(Some(source), self.to, self.reason, self.by, at_ms);
                (source, entry)
            })
            .collect()
    }
}

/// A recorded change, ready to announce. Made only from a record read back from Redis (by
/// a state change, a record's creation, or [`Store::recorded_announcement`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    event: Box<StateEvent>,
}

impl Announcement {
    pub(crate) fn new(record: &BuildRecord, entry: &HistoryEntry) -> Announcement {
        Announcement {
            event: Box::new(state_event(record, entry)),
        }
    }

    /// The announcement of a record just created from `job` (queued, with nothing built
    /// yet): what [`Announcement::new`] makes of that record read back, without reading it.
    pub(crate) fn created(job: &BuildJob, entry: &HistoryEntry) -> Announcement {
        Announcement {
            event: Box::new(event_of(&job.build_id, job, "", Vec::new(), None, entry)),
        }
    }

    pub fn event(&self) -> &StateEvent {
        &self.event
    }

    pub fn build_id(&self) -> &str {
        &self.event.build_id
    }
}

/// The event announcing `entry` of `record`: the change itself from the entry, the build's
/// identity and outputs from the record as it stands after the change.
pub fn state_event(record: &BuildRecord, entry: &HistoryEntry) -> StateEvent {
    event_of(
        &record.id,
        &record.job,
        record.nvr(),
        record.pullspecs(),
        record.koji_build_id(),
        entry,
    )
}

/// [`state_event`] from the parts of a record it reads.
fn event_of(
    id: &str,
    job: &BuildJob,
    nvr: &str,
    pullspecs: Vec<String>,
    koji_build_id: Option<i64>,
    entry: &HistoryEntry,
) -> StateEvent {
    StateEvent {
        build_id: id.to_owned(),
        nvr: nvr.to_owned(),
        old_state: entry.from_state(),
        new_state: BuildState::parse(&entry.to).unwrap_or(BuildState::Unspecified),
        reason: entry.reason.clone(),
        pullspecs,
        owner: job.submitter.clone(),
        repo: job.repo.clone(),
        namespace: Some(job.namespace.clone()).filter(|namespace| !namespace.is_empty()),
        component: component_of(nvr),
        url: (!job.git_url.is_empty() && !job.commit.is_empty())
            .then(|| format!("{}#{}", job.git_url, job.commit)),
        branch: job.branch.clone(),
        target: job
            .target
            .as_ref()
            .map(|target| target.name.clone())
            .unwrap_or_default(),
        koji_build_id,
        at: iso8601(entry.at_ms),
    }
}

/// The name of `name-version-release` (a name may hold `-`; version and release may not).
fn component_of(nvr: &str) -> Option<String> {
    let mut parts = nvr.rsplitn(3, '-');
    let (_release, _version, name) = (parts.next()?, parts.next()?, parts.next()?);
    Some(name.to_owned()).filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::field;
    use BuildState::*;
    use osbs_proto::names;
    use osbs_proto::v1::{BuildJob, Target};

    fn record(state: BuildState, fields: &[(&str, &str)]) -> BuildRecord {
        let job = BuildJob {
            build_id: "b1".into(),
            repo: "httpd".into(),
            branch: "f41".into(),
            submitter: "jdoe".into(),
            target: Some(Target {
                name: "f41-container-candidate".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        BuildRecord {
            created_ms: 1,
            updated_ms: 2,
            ..BuildRecord::new("b1", state, job, fields)
        }
    }

    #[test]
    fn a_created_record_is_announced_as_its_record_read_back_would_be() {
        let fields = [(field::PRIORITY, "0"), (field::ATTEMPTS, "0")];
        let record = record(Queued, &fields);
        let entry = HistoryEntry::new(None, Queued, "recorded", "dispatcher@h", 5);
        assert_eq!(
            Announcement::created(&record.job, &entry),
            Announcement::new(&record, &entry)
        );
    }

    #[test]
    fn a_change_may_start_only_where_the_state_machine_allows() {
        let sources = |change: StateChange<'_>| -> Vec<BuildState> {
            change
                .history_entries(7)
                .into_iter()
                .map(|(source, _)| source)
                .collect()
        };
        let cases: [(StateChange<'_>, Vec<BuildState>); 5] = [
            (
                StateChange::new("b1", Running, "", ""),
                vec![Queued, Running],
            ),
            (
                StateChange::new("b1", Imported, "", ""),
                vec![Complete, ImportFailed],
            ),
            (
                StateChange::new("b1", Running, "", "").only_from(&[Queued]),
                vec![Queued],
            ),
            (
                // A stale or illegal `from` is dropped, not trusted.
                StateChange::new("b1", Complete, "", "").only_from(&[Running, Pushing]),
                vec![Pushing],
            ),
            (
                StateChange::new("b1", Running, "", "").only_from(&[Imported]),
                vec![],
            ),
        ];
        for (change, expected) in cases {
            let to = change.to;
            assert_eq!(sources(change), expected, "to {to}");
        }
    }

    #[test]
    fn the_history_entry_names_source_target_reason_and_author() {
        let change =
            StateChange::new("b1", Canceled, "canceled by jdoe", "jdoe").only_from(&[Queued]);
        let entries = change.history_entries(1_736_936_523_120);
        assert_eq!(
            entries,
            vec![(
                Queued,
                HistoryEntry {
                    at_ms: 1_736_936_523_120,
                    from: "queued".into(),
                    to: "canceled".into(),
                    reason: "canceled by jdoe".into(),
                    by: "jdoe".into(),
                }
            )]
        );
        assert_eq!(
            entries[0].1.to_json(),
            r#"{"at_ms":1736936523120,"from":"queued","to":"canceled","reason":"canceled by jdoe","by":"jdoe"}"#
        );
        let created = HistoryEntry::new(None, Queued, "recorded", "dispatcher@h", 5);
        assert_eq!(
            (created.from.as_str(), created.from_state()),
            ("", Unspecified)
        );
    }

    #[test]
    fn the_event_takes_the_change_from_the_entry_and_the_build_from_the_record() {
        let at = 1_736_936_523_120;
        let cases = [
            (
                record(Queued, &[]),
                HistoryEntry::new(None, Queued, "recorded", "d", at),
                (Unspecified, Queued, "", vec![], None),
            ),
            (
                record(
                    Complete,
                    &[
                        (field::NVR, "httpd-2.4-1"),
                        (field::PULLSPECS, r#"["r/httpd:2.4-1"]"#),
                    ],
                ),
                HistoryEntry::new(Some(Pushing), Complete, "built and pushed", "w", at),
                (
                    Pushing,
                    Complete,
                    "httpd-2.4-1",
                    vec!["r/httpd:2.4-1".to_owned()],
                    None,
                ),
            ),
            (
                record(
                    Imported,
                    &[(field::NVR, "httpd-2.4-1"), (field::KOJI_BUILD_ID, "12")],
                ),
                HistoryEntry::new(Some(Complete), Imported, "imported", "k", at),
                (Complete, Imported, "httpd-2.4-1", vec![], Some(12)),
            ),
        ];
        for (record, entry, (old, new, nvr, pullspecs, koji)) in cases {
            let event = state_event(&record, &entry);
            assert_eq!(
                (
                    event.old_state,
                    event.new_state,
                    event.nvr.as_str(),
                    event.pullspecs,
                    event.koji_build_id
                ),
                (old, new, nvr, pullspecs, koji),
                "{entry:?}"
            );
            assert_eq!(event.reason, entry.reason);
            assert_eq!(
                (
                    event.build_id.as_str(),
                    event.owner.as_str(),
                    event.repo.as_str()
                ),
                ("b1", "jdoe", "httpd")
            );
            assert_eq!(
                (event.branch.as_str(), event.target.as_str()),
                ("f41", "f41-container-candidate")
            );
            assert_eq!(event.at, "2025-01-15T10:22:03.120+00:00");
            let component = (!nvr.is_empty()).then(|| "httpd".to_owned());
            assert_eq!(event.component, component, "the NVR's name, once known");
        }
    }

    #[test]
    fn the_component_is_the_name_of_the_nvr() {
        let cases = [
            ("httpd-2.4-1", Some("httpd")),
            (
                "python-flask-container-3.1-4.fc41",
                Some("python-flask-container"),
            ),
            ("", None),
            ("2.4-1", None),
        ];
        for (nvr, component) in cases {
            assert_eq!(component_of(nvr).as_deref(), component, "{nvr}");
        }
    }

    #[test]
    fn the_event_goes_to_the_fedora_messaging_topic() {
        assert_eq!(
            names::external_state_routing_key("org.fedoraproject.prod"),
            "org.fedoraproject.prod.osbs.build.state.change"
        );
        assert_eq!(names::EXCHANGE_TOPIC, "amq.topic");
    }
}
