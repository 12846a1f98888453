//! How records, histories and lists look: as JSON for scripts and as text for people. Pure.

use osbs_common::store::{BuildRecord, HistoryEntry, field};
use osbs_proto::v1::Trigger;
use serde_json::{Map, Value, json};

/// `2025-01-15 10:22:03Z`: UTC to the second, for people.
pub fn time(unix_ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    at.format(&format).unwrap_or_default()
}

/// `1h02m`, `3m07s`, `12s`: a duration for people.
pub fn duration(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    match (seconds / 3600, seconds % 3600 / 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// Fields shown on their own in [`record_json`]; the rest go under `fields`.
const NAMED_FIELDS: &[&str] = &[
    field::NVR,
    field::PULLSPECS,
    field::DIGEST,
    field::ERROR,
    field::WORKER,
    field::ATTEMPTS,
    field::KOJI_BUILD_ID,
    field::LOG_PATH,
    field::CANCEL_REQUESTED,
    field::SUPERSEDED_BY,
    field::REPO,
    field::BRANCH,
    field::TARGET,
    field::SUBMITTER,
];

fn trigger_name(raw: i32) -> &'static str {
    match Trigger::try_from(raw).unwrap_or(Trigger::Unspecified) {
        Trigger::Push => "push",
        Trigger::Request => "request",
        Trigger::Unspecified => "unspecified",
    }
}

/// A record (and its history, when given) as one JSON object.
pub fn record_json(record: &BuildRecord, history: Option<&[HistoryEntry]>) -> Value {
    let job = &record.job;
    let options = job.options.clone().unwrap_or_default();
    let extra: Map<String, Value> = record
        .fields
        .iter()
        .filter(|(name, _)| !NAMED_FIELDS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), json!(value)))
        .collect();
    let empty_null = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    let mut value = json!({
        "id": record.id,
        "state": record.state.name(),
        "created": osbs_proto::external::iso8601(record.created_ms),
        "updated": osbs_proto::external::iso8601(record.updated_ms),
        "repo": job.repo,
        "namespace": job.namespace,
        "branch": job.branch,
        "commit": job.commit,
        "git_url": job.git_url,
        "target": job.target.as_ref().map(|target| target.name.clone()).unwrap_or_default(),
        "submitter": job.submitter,
        "trigger": trigger_name(job.trigger),
        "options": {
            "scratch": options.scratch,
            "isolated": options.isolated,
            "release": empty_null(&options.release),
            "yum_repourls": options.yum_repourls,
            "arch_override": options.arch_override,
            "koji_parent_build": empty_null(&options.koji_parent_build),
        },
        "nvr": empty_null(record.nvr()),
        "pullspecs": record.pullspecs(),
        "digest": empty_null(record.digest()),
        "error": empty_null(record.error()),
        "worker": empty_null(record.field(field::WORKER)),
        "attempts": record.attempts(),
        "koji_build_id": record.field(field::KOJI_BUILD_ID).parse::<i64>().ok(),
        "log_path": empty_null(record.field(field::LOG_PATH)),
        "cancel_requested": record.cancel_requested(),
        "superseded_by": empty_null(record.field(field::SUPERSEDED_BY)),
        "fields": extra,
    });
    if let Some(history) = history {
        value["history"] = history
            .iter()
            .map(|entry| {
                json!({
                    "at": osbs_proto::external::iso8601(entry.at_ms),
                    "from": entry.from,
                    "to": entry.to,
                    "reason": entry.reason,
                    "by": entry.by,
                })
            })
            .collect();
    }
    value
}

/// `osbs status`: the record and its history, for people.
pub fn status_text(record: &BuildRecord, history: &[HistoryEntry]) -> String {
    let job = &record.job;
    let mut out = format!("build {}  {}\n", record.id, record.state);
    let mut row = |label: &str, value: String| {
        if !value.is_empty() {
            out.push_str(&format!("  {label:<10} {value}\n"));
        }
    };
    let project = if job.namespace.is_empty() {
        job.repo.clone()
    } else {
        format!("{}/{}", job.namespace, job.repo)
    };
    let short_commit: String = job.commit.chars().take(12).collect();
    row(
        "repo",
        format!("{project}  branch {}  commit {short_commit}", job.branch),
    );
    let options = job.options.clone().unwrap_or_default();
    let mut kinds = Vec::new();
    if options.scratch {
        kinds.push("scratch".to_owned());
    }
    if options.isolated {
        kinds.push(format!("isolated, release {}", options.release));
    }
    let target = job.target.as_ref().map(|t| t.name.as_str()).unwrap_or("");
    row(
        "target",
        if kinds.is_empty() {
            target.to_owned()
        } else {
            format!("{target}  ({})", kinds.join("; "))
        },
    );
    row(
        "submitter",
        format!("{}  ({})", job.submitter, trigger_name(job.trigger)),
    );
    row("created", time(record.created_ms));
    row("nvr", record.nvr().to_owned());
    for (index, pullspec) in record.pullspecs().into_iter().enumerate() {
        row(if index == 0 { "pullspecs" } else { "" }, pullspec);
    }
    row("digest", record.digest().to_owned());
    let worker = record.field(field::WORKER);
    if !worker.is_empty() || record.attempts() > 0 {
        let attempt = format!("attempt {}", record.attempts().max(1));
        row(
            "worker",
            if worker.is_empty() {
                attempt
            } else {
                format!("{worker}  ({attempt})")
            },
        );
    }
    // A multi-arch build: `osbs watch-logs ID --arch A` follows one of these.
    let arches = crate::logs::record_arches(record);
    row("arches", arches.join(" "));
    row("koji", koji_row(record));
    row("log", record.field(field::LOG_PATH).to_owned());
    row("error", record.error().to_owned());
    row("superseded", record.field(field::SUPERSEDED_BY).to_owned());
    if record.cancel_requested() && !record.state.is_final() {
        row("cancel", "requested".to_owned());
    }
    if !history.is_empty() {
        out.push_str("history\n");
        let mut previous: Option<i64> = None;
        for entry in history {
            let after = previous
                .map(|at| format!("+{}", duration(entry.at_ms - at)))
                .unwrap_or_default();
            previous = Some(entry.at_ms);
            let transition = if entry.from.is_empty() {
                format!("→ {}", entry.to)
            } else {
                format!("{} → {}", entry.from, entry.to)
            };
            let mut line = format!("  {} {after:>7}  {transition:<24}", time(entry.at_ms));
            if !entry.reason.is_empty() {
                line.push_str(&format!(" {}", entry.reason));
            }
            if !entry.by.is_empty() {
                line.push_str(&format!("  ({})", entry.by));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

/// `osbs list`: one line per build, newest first, under a header.
pub fn list_text(records: &[BuildRecord]) -> String {
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|record| {
            [
                record.id.clone(),
                record.state.name().to_owned(),
                record.job.repo.clone(),
                record.job.branch.clone(),
                record.nvr().to_owned(),
                record.job.submitter.clone(),
                time(record.created_ms),
            ]
        })
        .collect();
    table(
        &["ID", "STATE", "REPO", "BRANCH", "NVR", "USER", "CREATED"],
        &rows,
    )
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
pub fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[index]));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The `koji` row: Koji's build id, and whether Koji holds the build although the import
/// is recorded as failed (imported, then tagging refused: a replay only tags).
fn koji_row(record: &BuildRecord) -> String {
    let id = record.field(field::KOJI_BUILD_ID);
    if id.is_empty() || record.state != osbs_proto::v1::BuildState::ImportFailed {
        return id.to_owned();
    }
    let tag = record
        .job
        .target
        .as_ref()
        .map(|target| target.name.as_str())
        .unwrap_or_default();
    format!(
        "{id}  (in Koji as {}, not tagged through target {tag}: `osbs replay {}` tags it once fixed)",
        record.nvr(),
        record.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_proto::v1::{BuildJob, BuildOptions, BuildState, Target};
    use std::collections::HashMap;

    fn record() -> BuildRecord {
        BuildRecord {
            id: "b1".into(),
            state: BuildState::Complete,
            created_ms: 1_736_936_523_000,
            updated_ms: 1_736_936_583_000,
            job: BuildJob {
                build_id: "b1".into(),
                repo: "httpd".into(),
                namespace: "container".into(),
                commit: "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce".into(),
                branch: "f41".into(),
                target: Some(Target {
                    name: "f41-container-candidate".into(),
                    ..Default::default()
                }),
                options: Some(BuildOptions {
                    scratch: true,
                    ..Default::default()
                }),
                trigger: Trigger::Request as i32,
                submitter: "jdoe".into(),
                ..Default::default()
            },
            fields: HashMap::from([
                (field::NVR.to_owned(), "httpd-2.4-1".to_owned()),
                (
                    field::PULLSPECS.to_owned(),
                    r#"["r/httpd:2.4-1","r/httpd@sha256:ab"]"#.to_owned(),
                ),
                (field::ATTEMPTS.to_owned(), "1".to_owned()),
                ("heartbeat_ms".to_owned(), "5".to_owned()),
            ]),
        }
    }

    fn history() -> Vec<HistoryEntry> {
        vec![
            HistoryEntry {
                at_ms: 1_736_936_523_000,
                from: String::new(),
                to: "queued".into(),
                reason: "recorded".into(),
                by: "dispatcher".into(),
            },
            HistoryEntry {
                at_ms: 1_736_936_583_000,
                from: "queued".into(),
                to: "running".into(),
                reason: String::new(),
                by: "w1".into(),
            },
        ]
    }

    #[test]
    fn json_names_every_field() {
        let value = record_json(&record(), Some(&history()));
        assert_eq!(value["state"], "complete");
        assert_eq!(value["nvr"], "httpd-2.4-1");
        assert_eq!(value["pullspecs"][1], "r/httpd@sha256:ab");
        assert_eq!(value["digest"], Value::Null);
        assert_eq!(value["options"]["scratch"], true);
        assert_eq!(value["trigger"], "request");
        assert_eq!(value["fields"]["heartbeat_ms"], "5");
        assert_eq!(value["history"][1]["to"], "running");
        assert_eq!(value["created"], "2025-01-15T10:22:03.000+00:00");
        assert!(record_json(&record(), None).get("history").is_none());
    }

    #[test]
    fn status_for_people() {
        let text = status_text(&record(), &history());
        for expected in [
            "build b1  complete",
            "container/httpd  branch f41  commit 3aa6642b0990",
            "f41-container-candidate  (scratch)",
            "pullspecs  r/httpd:2.4-1\n             r/httpd@sha256:ab",
            "  2025-01-15 10:22:03Z          → queued                 recorded  (dispatcher)\n",
            "  2025-01-15 10:23:03Z  +1m00s  queued → running          (w1)\n",
            "  worker     attempt 1\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        assert!(!text.contains("error"), "{text}");
        assert!(!text.contains("arches"), "a single-arch build lists none");
        let mut multi = record();
        multi
            .fields
            .insert("arches".to_owned(), "x86_64 aarch64".to_owned());
        let text = status_text(&multi, &[]);
        assert!(text.contains("  arches     x86_64 aarch64\n"), "{text}");
    }

    #[test]
    fn an_import_refused_only_at_tagging_says_what_koji_holds() {
        let mut record = record();
        record.state = BuildState::ImportFailed;
        record
            .fields
            .insert(field::KOJI_BUILD_ID.to_owned(), "42".to_owned());
        let text = status_text(&record, &[]);
        assert!(
            text.contains(
                "42  (in Koji as httpd-2.4-1, not tagged through target f41-container-candidate: `osbs replay b1` tags it once fixed)"
            ),
            "{text}"
        );
        record.state = BuildState::Imported;
        assert!(!status_text(&record, &[]).contains("not tagged"));
    }

    #[test]
    fn tables_and_durations() {
        let text = table(
            &["A", "BB"],
            &[["x".into(), "y".into()], ["long".into(), "".into()]],
        );
        assert_eq!(text, "A     BB\nx     y\nlong\n");
        assert_eq!(duration(12_400), "12s");
        assert_eq!(duration(187_000), "3m07s");
        assert_eq!(duration(3_720_000), "1h02m");
        assert!(list_text(&[record()]).contains("b1  complete  httpd  f41     httpd-2.4-1"));
    }
}
