//! Pure decisions of the pages: how a time, an age, a duration, a state, a link and a page
//! of builds are shown. No I/O; `now` is passed in.

use osbs_common::store::{BuildRecord, field};
use osbs_proto::v1::BuildState;

/// Text made safe inside HTML elements and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// A query-string value, percent-encoded.
pub fn encode_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A duration for people: `850 ms`, `42 s`, `3 min 05 s`, `2 h 10 min`, `3 d 4 h`.
pub fn duration_text(millis: i64) -> String {
    let millis = millis.max(0);
    let seconds = millis / 1000;
    match seconds {
        0 => format!("{millis} ms"),
        1..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {:02} s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{} h {:02} min", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{} d {} h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

/// How long ago `at_ms` was, from `now_ms`: `just now`, `5 min ago`...
pub fn age_text(at_ms: i64, now_ms: i64) -> String {
    let ago = now_ms - at_ms;
    if ago < 1000 {
        "just now".into()
    } else {
        format!("{} ago", duration_text(ago))
    }
}

/// A Unix time in UTC, to the second: `2025-01-15 10:22:03 UTC`.
pub fn time_text(at_ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.format(&format).unwrap_or_default()
}

/// An ISO 8601 time (as the bus writes `x-osbs-dead-at`) as Unix milliseconds.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// How long the build took (final) or has been going (not final): from creation, queueing
/// included, to its last change or `now`.
pub fn build_duration(record: &BuildRecord, now_ms: i64) -> i64 {
    let end = if record.state.is_final() {
        record.updated_ms
    } else {
        now_ms
    };
    end - record.created_ms
}

/// The CSS class of a state's colour: waiting, active, good, bad or neutral. The state's name
/// is always written next to it, so colour is never the only signal.
pub fn state_class(state: BuildState) -> &'static str {
    match state {
        BuildState::Queued => "waiting",
        BuildState::Running | BuildState::Pushing => "active",
        BuildState::Complete | BuildState::Imported => "good",
        BuildState::Failed | BuildState::ImportFailed => "bad",
        _ => "neutral",
    }
}

/// The link to a commit in dist-git's web view (Pagure's `/<namespace>/<repo>/c/<commit>`),
/// when one is configured and the job names a commit.
pub fn commit_link(git_web_url: &str, record: &BuildRecord) -> Option<String> {
    let job = &record.job;
    if git_web_url.is_empty() || job.commit.is_empty() || job.repo.is_empty() {
        return None;
    }
    let base = git_web_url.trim_end_matches('/');
    Some(if job.namespace.is_empty() {
        format!("{base}/{}/c/{}", job.repo, job.commit)
    } else {
        format!("{base}/{}/{}/c/{}", job.namespace, job.repo, job.commit)
    })
}

/// The link to the Koji build in Koji's web view, when one is configured.
pub fn koji_link(koji_web_url: &str, koji_build_id: i64) -> Option<String> {
    (!koji_web_url.is_empty()).then(|| {
        format!(
            "{}/buildinfo?buildID={koji_build_id}",
            koji_web_url.trim_end_matches('/')
        )
    })
}

/// Whose fault a failure is, for people; empty when the build did not fail.
pub fn blame_text(record: &BuildRecord) -> &'static str {
    match (record.state, record.field(field::BLAME)) {
        (BuildState::Failed, "packager") => {
            "the packager: fix the repository or the request and build again"
        }
        (BuildState::Failed, "infrastructure") => {
            "the infrastructure: an operator fixes the service and replays the job (`osbs replay`)"
        }
        (BuildState::Failed, _) => "not recorded",
        (BuildState::ImportFailed, _) => {
            "the Koji import: the image is built and pushed; an operator replays the result"
        }
        _ => "",
    }
}

/// One bar of the step timings chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub step: String,
    pub millis: u64,
    /// Width relative to the slowest step, in percent (at least 1 so every bar shows).
    pub percent: u64,
}

/// The step timings (`timings` field: JSON object of milliseconds, in step order) as bars.
pub fn timing_bars(timings_json: &str) -> Vec<Bar> {
    let Ok(serde_json::Value::Object(steps)) = serde_json::from_str(timings_json) else {
        return Vec::new();
    };
    let steps: Vec<(String, u64)> = steps
        .into_iter()
        .filter_map(|(step, millis)| Some((step, millis.as_u64()?)))
        .collect();
    let longest = steps
        .iter()
        .map(|(_, millis)| *millis)
        .max()
        .unwrap_or(0)
        .max(1);
    steps
        .into_iter()
        .map(|(step, millis)| Bar {
            percent: (millis * 100 / longest).max(1),
            step,
            millis,
        })
        .collect()
}

/// Which page of how many (1-based) an offset is on.
pub fn page_of(offset: usize, page_size: usize, total: u64) -> (u64, u64) {
    let size = page_size.max(1) as u64;
    let pages = total.div_ceil(size).max(1);
    (offset as u64 / size + 1, pages)
}

/// A build id as it may appear in a key or a path: letters, digits, `-`, `_`, `.`.
pub fn valid_build_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_proto::v1::BuildJob;

    fn record(state: BuildState, fields: &[(&str, &str)]) -> BuildRecord {
        let job = BuildJob {
            repo: "httpd".into(),
            namespace: "container".into(),
            commit: "abc123".into(),
            ..Default::default()
        };
        BuildRecord {
            created_ms: 1_000,
            updated_ms: 61_000,
            ..BuildRecord::new("b1", state, job, fields)
        }
    }

    #[test]
    fn text_is_escaped_and_queries_encoded() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(encode_query("f41 & co/x"), "f41%20%26%20co%2Fx");
    }

    #[test]
    fn durations_and_ages() {
        let cases = [
            (850, "850 ms"),
            (42_000, "42 s"),
            (185_000, "3 min 05 s"),
            (7_800_000, "2 h 10 min"),
            (273_600_000, "3 d 4 h"),
            (-5, "0 ms"),
        ];
        for (millis, text) in cases {
            assert_eq!(duration_text(millis), text, "{millis}");
        }
        assert_eq!(age_text(10_000, 10_500), "just now");
        assert_eq!(age_text(0, 300_000), "5 min 00 s ago");
        assert_eq!(time_text(1_736_936_523_120), "2025-01-15 10:22:03 UTC");
        assert_eq!(
            parse_iso8601("2025-01-15T10:22:03.120+00:00"),
            Some(1_736_936_523_120)
        );
        assert_eq!(parse_iso8601(""), None);
    }

    #[test]
    fn duration_runs_until_now_while_the_build_is_not_over() {
        assert_eq!(
            build_duration(&record(BuildState::Complete, &[]), 999_999),
            60_000
        );
        assert_eq!(
            build_duration(&record(BuildState::Running, &[]), 31_000),
            30_000
        );
    }

    #[test]
    fn links_only_when_configured() {
        let built = record(BuildState::Complete, &[]);
        assert_eq!(commit_link("", &built), None);
        assert_eq!(
            commit_link("https://src.fedoraproject.org/", &built).as_deref(),
            Some("https://src.fedoraproject.org/container/httpd/c/abc123")
        );
        assert_eq!(koji_link("", 12), None);
        assert_eq!(
            koji_link("https://koji.fedoraproject.org/koji", 12).as_deref(),
            Some("https://koji.fedoraproject.org/koji/buildinfo?buildID=12")
        );
    }

    #[test]
    fn blame_says_who_acts() {
        let cases = [
            (BuildState::Failed, "packager", "the packager"),
            (BuildState::Failed, "infrastructure", "the infrastructure"),
            (BuildState::Failed, "", "not recorded"),
            (BuildState::ImportFailed, "", "the Koji import"),
            (BuildState::Complete, "", ""),
        ];
        for (state, blame, expected) in cases {
            let text = blame_text(&record(state, &[(field::BLAME, blame)]));
            assert!(text.starts_with(expected), "{state} {blame}: {text}");
        }
        assert_eq!(state_class(BuildState::ImportFailed), "bad");
        assert_eq!(state_class(BuildState::Pushing), "active");
    }

    #[test]
    fn timings_become_bars_relative_to_the_slowest() {
        let bars = timing_bars(r#"{"clone":100,"build":4000,"push":0}"#);
        let shown: Vec<(&str, u64)> = bars.iter().map(|b| (b.step.as_str(), b.percent)).collect();
        assert_eq!(shown, [("build", 100), ("clone", 2), ("push", 1)]);
        assert!(timing_bars("").is_empty());
        assert!(timing_bars("[1]").is_empty());
    }

    #[test]
    fn pages_and_ids() {
        assert_eq!(page_of(0, 50, 0), (1, 1));
        assert_eq!(page_of(50, 50, 101), (2, 3));
        assert!(valid_build_id("20250115-abc_1.2"));
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(!valid_build_id(bad), "{bad}");
        }
    }
}
