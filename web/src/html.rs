//! The pages, rendered on the server from values: pure functions from records, a queue
//! snapshot and `now` to HTML. Every piece of data goes through [`escape`].

use crate::sampler::QueueSnapshot;
use crate::view::{self, encode_query, escape};
use osbs_common::store::{BuildRecord, HistoryEntry, ListPage, ListQuery, field};
use osbs_proto::v1::BuildState;
use std::fmt::Write;

/// Which top-level page a page belongs to, for the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Builds,
    Queues,
}

/// The links the build page makes when their base URLs are configured.
#[derive(Debug, Clone, Default)]
pub struct Links {
    pub git_web_url: String,
    pub koji_web_url: String,
}

/// The frame of every page: viewport for phones, the embedded style and script.
pub fn layout(title: &str, section: Section, body: &str) -> String {
    let here = |this: Section| {
        if this == section {
            " class=\"here\""
        } else {
            ""
        }
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · OSBS</title><link rel=\"stylesheet\" href=\"/static/osbs.css\"></head>\
<body><header><a class=\"brand\" href=\"/\">OSBS</a><a href=\"/builds\"{}>Builds</a>\
<a href=\"/queues\"{}>Queues</a></header><main>{body}</main>\
<script src=\"/static/osbs.js\"></script></body></html>\n",
        here(Section::Builds),
        here(Section::Queues),
        title = escape(title),
    )
}

/// The filters and offset of `query` as a query string (`repo=httpd&state=failed&offset=50`).
pub fn query_string(query: &ListQuery, offset: usize) -> String {
    let mut parts: Vec<String> = query
        .filters()
        .into_iter()
        .map(|(dimension, value)| format!("{}={}", dimension.field(), encode_query(&value)))
        .collect();
    if offset > 0 {
        parts.push(format!("offset={offset}"));
    }
    parts.join("&")
}

fn state_badge(state: BuildState, id: &str) -> String {
    format!(
        "<span class=\"state {}\"{}>{}</span>",
        view::state_class(state),
        if id.is_empty() {
            String::new()
        } else {
            format!(" id=\"{id}\"")
        },
        state.name()
    )
}

/// The rows of the builds table (the fragment the page refreshes).
pub fn builds_rows(records: &[BuildRecord], now_ms: i64) -> String {
    let mut out = String::new();
    if records.is_empty() {
        out.push_str("<tr><td colspan=\"8\" class=\"muted\">no build matches</td></tr>");
    }
    for record in records {
        let name = if record.nvr().is_empty() {
            format!(
                "{} <span class=\"muted\">{}</span>",
                escape(&record.job.repo),
                escape(&record.id)
            )
        } else {
            escape(record.nvr())
        };
        let _ = write!(
            out,
            "<tr data-id=\"{id}\"><td data-label=\"State\">{badge}</td>\
<td data-label=\"Build\"><a href=\"/builds/{id}\">{name}</a></td>\
<td data-label=\"Repository\">{repo}</td><td data-label=\"Branch\">{branch}</td>\
<td data-label=\"Target\" class=\"wide\">{target}</td><td data-label=\"Submitter\">{submitter}</td>\
<td data-label=\"Age\" title=\"{created}\">{age}</td><td data-label=\"Duration\" class=\"num\">{duration}</td></tr>",
            id = escape(&record.id),
            badge = state_badge(record.state, ""),
            repo = escape(&record.job.repo),
            branch = escape(&record.job.branch),
            target = escape(record.field(field::TARGET)),
            submitter = escape(&record.job.submitter),
            created = view::time_text(record.created_ms),
            age = view::age_text(record.created_ms, now_ms),
            duration = view::duration_text(view::build_duration(record, now_ms)),
        );
    }
    out
}

fn filter_input(label: &str, name: &str, value: Option<&str>) -> String {
    format!(
        "<label>{label}<input name=\"{name}\" value=\"{}\" size=\"12\"></label>",
        escape(value.unwrap_or(""))
    )
}

fn state_select(selected: Option<BuildState>) -> String {
    let mut out =
        String::from("<label>State<select name=\"state\"><option value=\"\">any</option>");
    for state in BuildState::ALL {
        let chosen = if Some(state) == selected {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option{chosen}>{}</option>", state.name());
    }
    out.push_str("</select></label>");
    out
}

/// The builds page: filters, the table (refreshed live on the first page), pagination.
pub fn builds_page(query: &ListQuery, page: &ListPage, now_ms: i64) -> String {
    let mut body =
        String::from("<h1>Builds</h1><form class=\"filters\" method=\"get\" action=\"/builds\">");
    body.push_str(&filter_input("Repository", "repo", query.repo.as_deref()));
    body.push_str(&filter_input("Branch", "branch", query.branch.as_deref()));
    body.push_str(&state_select(query.state));
    body.push_str(&filter_input(
        "Submitter",
        "submitter",
        query.submitter.as_deref(),
    ));
    body.push_str(&filter_input("Target", "target", query.target.as_deref()));
    body.push_str("<button type=\"submit\">Filter</button><a href=\"/builds\">clear</a></form>");
    let (number, pages) = view::page_of(query.offset, query.limit, page.total);
    let _ = write!(
        body,
        "<p class=\"count\"><span id=\"total\">{}</span> builds · page {number} of {pages}</p>",
        page.total
    );
    // Only the first page follows new builds: later pages would shift under the reader.
    let fragment = if query.offset == 0 {
        format!(
            " data-fragment=\"/builds/rows?{}\"",
            escape(&query_string(query, 0))
        )
    } else {
        String::new()
    };
    let _ = write!(
        body,
        "<table class=\"builds\"><thead><tr><th>State</th><th>Build</th><th>Repository</th>\
<th>Branch</th><th class=\"wide\">Target</th><th>Submitter</th><th>Age</th><th class=\"num\">Duration</th>\
</tr></thead><tbody id=\"rows\"{fragment}>{}</tbody></table><nav class=\"pages\">",
        builds_rows(&page.records, now_ms)
    );
    if query.offset > 0 {
        let newer = query.offset.saturating_sub(query.limit);
        let _ = write!(
            body,
            "<a rel=\"prev\" href=\"/builds?{}\">← newer</a>",
            escape(&query_string(query, newer))
        );
    }
    let older = query.offset + query.limit;
    if (older as u64) < page.total {
        let _ = write!(
            body,
            "<a rel=\"next\" href=\"/builds?{}\">older →</a>",
            escape(&query_string(query, older))
        );
    }
    body.push_str("</nav>");
    layout("Builds", Section::Builds, &body)
}

fn fact(out: &mut String, name: &str, value_html: &str) {
    if !value_html.is_empty() {
        let _ = write!(out, "<dt>{name}</dt><dd>{value_html}</dd>");
    }
}

fn link_or_text(link: Option<String>, text: &str) -> String {
    match link {
        Some(url) => format!("<a href=\"{}\">{}</a>", escape(&url), escape(text)),
        None => escape(text),
    }
}

/// The facts of a build: what the page replaces when the build ends.
fn build_details(
    record: &BuildRecord,
    history: &[HistoryEntry],
    links: &Links,
    now_ms: i64,
) -> String {
    let mut out = String::from("<section id=\"details\"><dl class=\"facts\">");
    fact(&mut out, "State", &state_badge(record.state, "state"));
    fact(&mut out, "NVR", &escape(record.nvr()));
    fact(&mut out, "Build id", &escape(&record.id));
    fact(
        &mut out,
        "Repository",
        &escape(&format!("{}/{}", record.job.namespace, record.job.repo)),
    );
    fact(&mut out, "Branch", &escape(&record.job.branch));
    fact(&mut out, "Target", &escape(record.field(field::TARGET)));
    fact(&mut out, "Submitter", &escape(&record.job.submitter));
    fact(
        &mut out,
        "Commit",
        &link_or_text(
            view::commit_link(&links.git_web_url, record),
            &record.job.commit,
        ),
    );
    fact(
        &mut out,
        "Created",
        &format!(
            "{} ({})",
            view::time_text(record.created_ms),
            view::age_text(record.created_ms, now_ms)
        ),
    );
    fact(
        &mut out,
        "Duration",
        &view::duration_text(view::build_duration(record, now_ms)),
    );
    fact(&mut out, "Digest", &escape(record.digest()));
    if let Some(koji) = record.koji_build_id() {
        fact(
            &mut out,
            "Koji build",
            &link_or_text(
                view::koji_link(&links.koji_web_url, koji),
                &koji.to_string(),
            ),
        );
    }
    fact(&mut out, "Worker", &escape(record.field(field::WORKER)));
    fact(&mut out, "Attempts", &record.attempts().to_string());
    out.push_str("</dl>");
    let pullspecs = record.pullspecs();
    if !pullspecs.is_empty() {
        out.push_str("<h2>Pullspecs</h2>");
        for (index, pullspec) in pullspecs.iter().enumerate() {
            let _ = write!(
                out,
                "<div class=\"copy\"><input id=\"pullspec{index}\" readonly value=\"{}\">\
<button type=\"button\" data-copy=\"pullspec{index}\">copy</button></div>",
                escape(pullspec)
            );
        }
    }
    if !record.error().is_empty() {
        let _ = write!(
            out,
            "<h2>Error</h2><div class=\"error\">{}</div><p>To act: {}</p>",
            escape(record.error()),
            escape(view::blame_text(record))
        );
    }
    let bars = view::timing_bars(record.field(field::TIMINGS));
    if !bars.is_empty() {
        out.push_str("<h2>Step timings</h2><div class=\"bars\">");
        for bar in bars {
            let _ = write!(
                out,
                "<span>{}</span><div><div class=\"bar\" style=\"width:{}%\"></div></div><span class=\"num\">{}</span>",
                escape(&bar.step),
                bar.percent,
                view::duration_text(bar.millis as i64)
            );
        }
        out.push_str("</div>");
    }
    out.push_str("<h2>History</h2><table><thead><tr><th>When</th><th>Change</th><th>Why</th><th class=\"wide\">By</th></tr></thead><tbody>");
    for entry in history {
        let change = if entry.from.is_empty() {
            escape(&entry.to)
        } else {
            format!("{} → {}", escape(&entry.from), escape(&entry.to))
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{change}</td><td>{}</td><td class=\"wide\">{}</td></tr>",
            view::time_text(entry.at_ms),
            escape(&entry.reason),
            escape(&entry.by)
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

/// A build's page: its facts, then its log, followed live until the build ends.
pub fn build_page(
    record: &BuildRecord,
    history: &[HistoryEntry],
    links: &Links,
    now_ms: i64,
) -> String {
    let title = if record.nvr().is_empty() {
        record.id.as_str()
    } else {
        record.nvr()
    };
    let id = escape(&record.id);
    let body = format!(
        "<h1>{}</h1>{}<h2>Log</h2><div class=\"logbar\"><span id=\"logstatus\">{}</span>\
<a href=\"/builds/{id}/log.txt\">raw log</a></div>\
<pre class=\"log\" id=\"log\" data-events=\"/builds/{id}/log/events\"></pre>",
        escape(title),
        build_details(record, history, links, now_ms),
        if record.state.is_final() {
            "build ended"
        } else {
            "connecting…"
        },
    );
    layout(title, Section::Builds, &body)
}

/// The queues table and the dead letters (the fragment the page refreshes).
pub fn queues_fragment(snapshot: &QueueSnapshot, now_ms: i64) -> String {
    let mut out = String::new();
    match &snapshot.read_at_ms {
        Some(at) => {
            let _ = write!(
                out,
                "<p class=\"count\">read {}</p>",
                view::age_text(*at, now_ms)
            );
        }
        None => out.push_str("<p class=\"count\">not read yet</p>"),
    }
    if let Some(error) = &snapshot.error {
        let _ = write!(out, "<div class=\"error\">{}</div>", escape(error));
    }
    out.push_str("<table><thead><tr><th>Queue</th><th class=\"num\">Messages</th><th class=\"num\">Consumers</th><th class=\"num\">Net rate</th></tr></thead><tbody>");
    for stat in &snapshot.queues {
        let rate = stat
            .net_per_second
            .map_or("–".to_owned(), |rate| format!("{rate:+.1}/s"));
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{rate}</td></tr>",
            escape(&stat.queue),
            stat.messages,
            stat.consumers
        );
    }
    out.push_str("</tbody></table><h2>Dead letters</h2>");
    if snapshot.dead.is_empty() {
        out.push_str("<p class=\"muted\">none</p>");
        return out;
    }
    out.push_str("<table class=\"builds\"><thead><tr><th>Queue</th><th>Build / message</th><th>Reason</th><th>Age</th></tr></thead><tbody>");
    for message in &snapshot.dead {
        let id = match &message.build_id {
            Some(build) => format!("<a href=\"/builds/{0}\">{0}</a>", escape(build)),
            None => escape(message.id()),
        };
        let age = view::parse_iso8601(&message.dead_at)
            .map_or("–".to_owned(), |at| view::age_text(at, now_ms));
        let _ = write!(
            out,
            "<tr><td data-label=\"Queue\">{}</td><td data-label=\"Id\">{id}</td><td data-label=\"Reason\">{}</td><td data-label=\"Age\">{age}</td></tr>",
            escape(&message.queue.dead()),
            escape(&message.reason)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The queues page.
pub fn queues_page(snapshot: &QueueSnapshot, now_ms: i64) -> String {
    let body = format!(
        "<h1>Queues</h1><div id=\"queues\" data-fragment=\"/queues/fragment\">{}</div>\
<p class=\"muted\">Replay dead letters with <code>osbs replay</code>; this view changes nothing.</p>",
        queues_fragment(snapshot, now_ms)
    );
    layout("Queues", Section::Queues, &body)
}

/// A page saying what was not found.
pub fn not_found(what: &str) -> String {
    layout(
        "Not found",
        Section::Builds,
        &format!("<h1>Not found</h1><p>{}</p>", escape(what)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_common::queues::{DeadMessage, DeadQueue, QueueStats};
    use osbs_proto::v1::BuildJob;

    fn record(id: &str, state: BuildState, fields: &[(&str, &str)]) -> BuildRecord {
        let job = BuildJob {
            repo: "<script>alert(1)</script>".into(),
            branch: "f41".into(),
            submitter: "jdoe".into(),
            ..Default::default()
        };
        BuildRecord {
            created_ms: 1_736_936_523_120,
            updated_ms: 1_736_936_583_120,
            ..BuildRecord::new(id, state, job, fields)
        }
    }

    #[test]
    fn what_records_hold_is_escaped() {
        let rows = builds_rows(&[record("b1", BuildState::Failed, &[])], 1_736_936_600_000);
        assert!(!rows.contains("<script>"), "{rows}");
        assert!(rows.contains("&lt;script&gt;"));
        assert!(
            rows.contains("class=\"state bad\">failed<"),
            "colour and text: {rows}"
        );
        assert!(rows.contains("1 min 00 s"), "duration: {rows}");
        assert!(builds_rows(&[], 0).contains("no build matches"));
    }

    #[test]
    fn filters_and_pages_make_links() {
        let query = ListQuery {
            repo: Some("my repo".into()),
            state: Some(BuildState::Running),
            offset: 50,
            limit: 50,
            ..Default::default()
        };
        assert_eq!(
            query_string(&query, 100),
            "repo=my%20repo&state=running&offset=100"
        );
        let page = ListPage {
            total: 120,
            records: vec![],
        };
        let html = builds_page(&query, &page, 0);
        assert!(
            html.contains("href=\"/builds?repo=my%20repo&amp;state=running\">← newer"),
            "{html}"
        );
        assert!(html.contains("offset=100\">older →"), "{html}");
        assert!(html.contains("page 2 of 3"));
        assert!(
            !html.contains("data-fragment"),
            "only the first page follows new builds"
        );
        assert!(html.contains("<option selected>running</option>"));
        let first = builds_page(
            &ListQuery {
                limit: 50,
                ..Default::default()
            },
            &page,
            0,
        );
        assert!(first.contains("data-fragment=\"/builds/rows?\""), "{first}");
        assert!(!first.contains("← newer"));
    }

    #[test]
    fn a_failed_build_says_why_and_who_acts() {
        let failed = record(
            "b1",
            BuildState::Failed,
            &[
                (field::ERROR, "registry refused the push"),
                (field::BLAME, "infrastructure"),
                (field::TIMINGS, r#"{"build":10}"#),
            ],
        );
        let html = build_page(&failed, &[], &Links::default(), 1_736_936_600_000);
        assert!(html.contains("registry refused the push"));
        assert!(html.contains("To act: the infrastructure"), "{html}");
        assert!(html.contains("data-events=\"/builds/b1/log/events\""));
        assert!(html.contains("width:100%"));
        assert!(
            html.contains("build ended"),
            "a final build's log is not awaited"
        );
        assert!(html.contains("name=\"viewport\""));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external asset"
        );
    }

    #[test]
    fn dead_letters_show_reason_and_age() {
        let snapshot = QueueSnapshot {
            read_at_ms: Some(1_736_936_523_120),
            queues: vec![QueueStats {
                queue: "osbs.jobs".into(),
                messages: 3,
                consumers: 2,
                net_per_second: Some(-0.5),
            }],
            dead: vec![DeadMessage {
                queue: DeadQueue::Jobs,
                build_id: Some("b9".into()),
                message_id: None,
                reason: "registry <down>".into(),
                dead_at: "2025-01-15T10:20:03.120+00:00".into(),
                exchange: None,
                routing_key: None,
            }],
            error: None,
        };
        let html = queues_fragment(&snapshot, 1_736_936_523_120);
        for shown in [
            "osbs.jobs.dead",
            "registry &lt;down&gt;",
            "2 min 00 s ago",
            "-0.5/s",
            "href=\"/builds/b9\"",
        ] {
            assert!(html.contains(shown), "{shown}: {html}");
        }
        assert!(queues_fragment(&QueueSnapshot::default(), 0).contains("not read yet"));
    }
}
