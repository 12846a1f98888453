//! The HTTP adapter: routes, handlers reading the store and the queue snapshot, the live log
//! over Server-Sent Events, `/healthz` and `/metrics`. Nothing here changes state: every
//! route is a GET.

use crate::config::Config;
use crate::html::{self, Links};
use crate::sampler::Shared;
use crate::view;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use futures::Stream;
use osbs_common::Store;
use osbs_common::http::{Health, Metrics};
use osbs_common::store::{BuildRecord, ListQuery, LogEntry};
use osbs_common::telemetry::now_ms;
use osbs_proto::v1::BuildState;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every handler reads.
#[derive(Debug, Clone)]
pub struct App {
    pub store: Store,
    pub queues: Shared,
    pub links: Links,
    pub page_size: usize,
    pub log_poll: Duration,
    pub artifacts_dir: PathBuf,
    pub health: Health,
    pub metrics: Metrics,
}

impl App {
    pub fn new(
        config: &Config,
        store: Store,
        queues: Shared,
        health: Health,
        metrics: Metrics,
    ) -> App {
        App {
            store,
            queues,
            links: Links {
                git_web_url: config.web.git_web_url.clone(),
                koji_web_url: config.web.koji_web_url.clone(),
            },
            page_size: config.web.page_size.clamp(1, 500),
            log_poll: config.web.log_poll(),
            artifacts_dir: config.storage.artifacts_dir.clone(),
            health,
            metrics,
        }
    }

    /// Seconds spent rendering `page`, in the `step_seconds` family (`step="page:<name>"`).
    fn observe(&self, page: &str, started: Instant) {
        self.metrics
            .observe_step(&format!("page:{page}"), started.elapsed().as_secs_f64());
    }
}

/// Every route.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/builds") }))
        .route("/builds", get(builds))
        .route("/builds/rows", get(builds_rows))
        .route("/builds/{id}", get(build))
        .route("/builds/{id}/log/events", get(log_events))
        .route("/builds/{id}/log.txt", get(raw_log))
        .route("/queues", get(queues))
        .route("/queues/fragment", get(queues_fragment))
        .route(
            "/static/osbs.css",
            get(|| async { asset("text/css; charset=utf-8", crate::assets::CSS) }),
        )
        .route(
            "/static/osbs.js",
            get(|| async { asset("text/javascript; charset=utf-8", crate::assets::JS) }),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        text,
    )
        .into_response()
}

/// A failure shown to people: what failed, never a secret (store errors mask URLs).
fn failure(status: StatusCode, text: String) -> Response {
    tracing::warn!(status = %status, error = %text, "page not served");
    (
        status,
        Html(html::layout(
            "Error",
            html::Section::Builds,
            &format!(
                "<h1>Error</h1><div class=\"error\">{}</div>",
                view::escape(&text)
            ),
        )),
    )
        .into_response()
}

/// The query of the builds page from its URL parameters.
pub fn list_query(params: &HashMap<String, String>, page_size: usize) -> Result<ListQuery, String> {
    let text = |name: &str| {
        params
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let state = match text("state") {
        Some(name) => Some(BuildState::parse(&name).map_err(|error| error.to_string())?),
        None => None,
    };
    let offset = match text("offset") {
        Some(number) => number
            .parse()
            .map_err(|_| format!("offset {number:?} is not a number"))?,
        None => 0,
    };
    Ok(ListQuery {
        repo: text("repo"),
        branch: text("branch"),
        target: text("target"),
        submitter: text("submitter"),
        state,
        offset,
        limit: page_size,
    })
}

async fn builds(
    State(app): State<Arc<App>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let started = Instant::now();
    let query = match list_query(&params, app.page_size) {
        Ok(query) => query,
        Err(error) => return failure(StatusCode::BAD_REQUEST, error),
    };
    match app.store.list_page(&query).await {
        Ok(page) => {
            let page = html::builds_page(&query, &page, now_ms());
            app.observe("builds", started);
            Html(page).into_response()
        }
        Err(error) => failure(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}

async fn builds_rows(
    State(app): State<Arc<App>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = match list_query(&params, app.page_size) {
        Ok(query) => query,
        Err(error) => return (StatusCode::BAD_REQUEST, error).into_response(),
    };
    match app.store.list_page(&query).await {
        Ok(page) => (
            [
                ("x-total", page.total.to_string()),
                (header::CACHE_CONTROL.as_str(), "no-store".to_owned()),
            ],
            Html(html::builds_rows(&page.records, now_ms())),
        )
            .into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response(),
    }
}

async fn record_of(app: &App, id: &str) -> Result<BuildRecord, Response> {
    if !view::valid_build_id(id) {
        return Err((
            StatusCode::NOT_FOUND,
            Html(html::not_found("no such build")),
        )
            .into_response());
    }
    match app.store.get(id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err((
            StatusCode::NOT_FOUND,
            Html(html::not_found(&format!("no build with id {id}"))),
        )
            .into_response()),
        Err(error) => Err(failure(StatusCode::SERVICE_UNAVAILABLE, error.to_string())),
    }
}

async fn build(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let started = Instant::now();
    let record = match record_of(&app, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let history = match app.store.history(&id).await {
        Ok(history) => history,
        Err(error) => return failure(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    };
    let page = html::build_page(&record, &history, &app.links, now_ms());
    app.observe("build", started);
    ([(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

async fn queues(State(app): State<Arc<App>>) -> Response {
    let snapshot = app.queues.read().expect("queue snapshot lock").clone();
    Html(html::queues_page(&snapshot, now_ms())).into_response()
}

async fn queues_fragment(State(app): State<Arc<App>>) -> Response {
    let snapshot = app.queues.read().expect("queue snapshot lock").clone();
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(html::queues_fragment(&snapshot, now_ms())),
    )
        .into_response()
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    if app.health.is_ready() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

/// The whole log as text: the complete file when it is under `[storage] artifacts_dir`,
/// else what the live stream keeps.
async fn raw_log(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let record = match record_of(&app, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let text_plain = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    // Only the path made from the (checked) id: the recorded path is another host's.
    let file = app.artifacts_dir.join(&record.id).join("build.log");
    if let Ok(opened) = tokio::fs::File::open(&file).await {
        let body = Body::from_stream(tokio_util::io::ReaderStream::new(opened));
        return (text_plain, body).into_response();
    }
    let mut text = String::new();
    let mut cursor = "0".to_owned();
    loop {
        let entries = match app.store.read_log(&record.id, &cursor, 1000, None).await {
            Ok(entries) => entries,
            Err(error) => return failure(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
        };
        let Some(last) = entries.last() else { break };
        cursor = entry_id(last).to_owned();
        for entry in entries {
            if let LogEntry::Line { text: line, .. } = entry {
                text.push_str(&line);
                text.push('\n');
            }
        }
    }
    (text_plain, text).into_response()
}

fn entry_id(entry: &LogEntry) -> &str {
    match entry {
        LogEntry::Line { id, .. } | LogEntry::End { id, .. } => id,
    }
}

/// A log line as SSE data: carriage returns (progress bars) become line breaks, which SSE
/// carries as several `data:` lines the browser joins again.
pub fn sse_text(line: &str) -> String {
    line.replace("\r\n", "\n").replace('\r', "\n")
}

/// Counts a live follower in the `in_flight` gauge for as long as it lives.
#[derive(Debug)]
struct Follower(Metrics);

impl Follower {
    fn new(metrics: &Metrics) -> Follower {
        metrics.in_flight.inc();
        Follower(metrics.clone())
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// One follower's position in a live log.
struct Following {
    app: Arc<App>,
    id: String,
    cursor: String,
    pending: VecDeque<Event>,
    ended: bool,
    polls: u32,
    _follower: Follower,
}

/// The live log of a build as Server-Sent Events: every line from the start (or after the
/// `Last-Event-ID` a reconnecting browser sends), then each new line as the worker writes
/// it, then `end` with the final state. Each follower polls the stream every `log_poll`
/// without blocking: a blocking XREAD would hold the store's one shared connection.
async fn log_events(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = record_of(&app, &id).await {
        return response;
    }
    let cursor = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| value.chars().all(|c| c.is_ascii_digit() || c == '-') && !value.is_empty())
        .unwrap_or("0")
        .to_owned();
    let following = Following {
        _follower: Follower::new(&app.metrics),
        app,
        id,
        cursor,
        pending: VecDeque::new(),
        ended: false,
        polls: 0,
    };
    Sse::new(events(following))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn events(following: Following) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    futures::stream::unfold(following, |mut following| async move {
        loop {
            if let Some(event) = following.pending.pop_front() {
                return Some((Ok(event), following));
            }
            if following.ended {
                return None;
            }
            following.poll().await;
        }
    })
}

impl Following {
    /// Reads what is new; waits `log_poll` first when nothing was.
    async fn poll(&mut self) {
        let store = &self.app.store;
        match store.read_log(&self.id, &self.cursor, 500, None).await {
            Ok(entries) if !entries.is_empty() => {
                for entry in entries {
                    self.cursor = entry_id(&entry).to_owned();
                    match entry {
                        LogEntry::Line { id, text } => self
                            .pending
                            .push_back(Event::default().event("line").id(id).data(sse_text(&text))),
                        LogEntry::End { state, .. } => {
                            self.await_final_record().await;
                            self.end(&state);
                            return;
                        }
                    }
                }
                return;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(build_id = %self.id, error = %error, "live log read failed; retrying")
            }
        }
        // A build that ended without closing its log (canceled while queued, a crash) ends
        // the follow once its record says so; checked every ~second.
        self.polls += 1;
        if self.polls.is_multiple_of(10)
            && let Ok(Some(record)) = store.get(&self.id).await
            && record.state.is_final()
            && matches!(store.read_log(&self.id, &self.cursor, 1, None).await, Ok(entries) if entries.is_empty())
        {
            self.end(record.state.name());
            return;
        }
        tokio::time::sleep(self.app.log_poll).await;
    }

    /// The worker closes the log just before it records the end: the page that reloads its
    /// facts on `end` should find them final, so the event waits (a few seconds at most).
    async fn await_final_record(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.app.store.get(&self.id).await {
                Ok(Some(record)) if !record.state.is_final() => {}
                _ => return,
            }
            tokio::time::sleep(self.app.log_poll).await;
        }
    }

    fn end(&mut self, state: &str) {
        self.pending
            .push_back(Event::default().event("end").data(state));
        self.ended = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_comes_from_the_url() {
        let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let query = list_query(
            &params(&[
                ("repo", " httpd "),
                ("state", "failed"),
                ("branch", ""),
                ("offset", "50"),
            ]),
            50,
        )
        .unwrap();
        assert_eq!(query.repo.as_deref(), Some("httpd"));
        assert_eq!(query.branch, None);
        assert_eq!(query.state, Some(BuildState::Failed));
        assert_eq!((query.offset, query.limit), (50, 50));
        assert!(list_query(&params(&[("state", "done")]), 50).is_err());
        assert!(
            list_query(&params(&[("offset", "x")]), 50)
                .unwrap_err()
                .contains("\"x\"")
        );
    }

    #[test]
    fn carriage_returns_never_reach_an_event() {
        assert_eq!(sse_text("a\r\nb\rc"), "a\nb\nc");
    }
}
