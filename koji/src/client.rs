//! One Koji hub session: an XML-RPC client (reqwest + [`crate::xmlrpc`]) with koji's session
//! headers, call numbers, keyword arguments, faults as typed errors carrying the hub's code
//! and text, password and SSL-certificate logins, and the calls the worker and the
//! koji-bridge make.
//!
//! One [`KojiClient`] is one hub session: its calls go one at a time (the hub refuses call
//! numbers out of order), so concurrent imports use one client each. Read-only calls are
//! retried on transient failures; calls that change the hub are not (a lost answer may hide a
//! success: the caller checks, see the koji-bridge's `import`).

use crate::config::{AuthMethod, KojiConfig};
use crate::fault;
use crate::xmlrpc::{self, Answer};
use backon::{ExponentialBuilder, Retryable};
use osbs_proto::text::one_line;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::time::Duration;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum KojiError {
    /// The hub answered with a fault: the code and text are the hub's, verbatim.
    #[error("Koji hub refused {method}: Fault {code}: {text}")]
    Fault {
        method: String,
        code: i32,
        text: String,
    },
    #[error("cannot reach the Koji hub at {url} ({method}): {reason}")]
    Transport {
        method: String,
        url: String,
        reason: String,
    },
    #[error("the Koji hub at {url} answered {method} with HTTP {status}: {body}")]
    Http {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("the Koji hub at {url} answered {method} with something that is not XML-RPC: {body}")]
    Protocol {
        method: String,
        url: String,
        body: String,
    },
    #[error("unexpected answer to {method}: {reason}")]
    Unexpected { method: String, reason: String },
    #[error("invalid Koji client setup: {0}")]
    Setup(String),
    #[error("upload of {path} failed: {reason}")]
    Upload { path: String, reason: String },
}

impl KojiError {
    /// Worth trying again later: the hub is down, offline, locked, or the network failed.
    pub fn is_transient(&self) -> bool {
        match self {
            KojiError::Transport { .. } => true,
            KojiError::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            KojiError::Fault { code, .. } => fault::is_transient(*code),
            KojiError::Protocol { .. } => true,
            KojiError::Unexpected { .. } | KojiError::Setup(_) => false,
            KojiError::Upload { .. } => true,
        }
    }

    /// The hub's fault, if this is one.
    pub fn fault(&self) -> Option<(i32, &str)> {
        match self {
            KojiError::Fault { code, text, .. } => Some((*code, text.as_str())),
            _ => None,
        }
    }

    /// The hub's fault text, if it is one `check` (a [`fault`] classifier) recognises.
    pub fn fault_that(&self, check: fn(&str) -> bool) -> Option<&str> {
        self.fault()
            .map(|(_, text)| text)
            .filter(|text| check(text))
    }

    /// The session is gone (hub restarted without its sessions, session expired).
    fn session_lost(&self) -> bool {
        self.fault()
            .is_some_and(|(code, text)| fault::means_session_lost(code, text))
    }
}

/// A build as `getBuild` returns it (the fields the bridge uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KojiBuild {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub release: String,
    pub nvr: String,
    pub state: i64,
    #[serde(default)]
    pub cg_name: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub extra: Option<Json>,
}

/// Koji build states (`koji.BUILD_STATES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KojiBuildState {
    Building,
    Complete,
    Deleted,
    Failed,
    Canceled,
    Other(i64),
}

impl KojiBuild {
    pub fn state(&self) -> KojiBuildState {
        match self.state {
            0 => KojiBuildState::Building,
            1 => KojiBuildState::Complete,
            2 => KojiBuildState::Deleted,
            3 => KojiBuildState::Failed,
            4 => KojiBuildState::Canceled,
            other => KojiBuildState::Other(other),
        }
    }

    /// The OSBS build id the bridge recorded in `extra.osbs_build_id` on import.
    pub fn osbs_build_id(&self) -> Option<&str> {
        self.extra
            .as_ref()?
            .get("osbs_build_id")
            .and_then(Json::as_str)
    }
}

/// An NVR reserved with `CGInitBuild`. The token authorizes the import: it never prints.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Reservation {
    pub build_id: i64,
    pub token: String,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("build_id", &self.build_id)
            .field("token", &"***")
            .finish()
    }
}

/// What a refunded reservation becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundState {
    Failed,
    Canceled,
}

impl RefundState {
    fn koji_state(self) -> i64 {
        match self {
            RefundState::Failed => 3,
            RefundState::Canceled => 4,
        }
    }
}

/// A build target (`getBuildTarget`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BuildTarget {
    pub id: i64,
    pub name: String,
    pub build_tag_name: String,
    pub dest_tag_name: String,
}

/// A task's state (`getTaskInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskInfo {
    pub id: i64,
    pub state: i64,
}

impl TaskInfo {
    pub const CLOSED: i64 = 2;
    pub const CANCELED: i64 = 3;
    pub const FAILED: i64 = 5;

    pub fn is_done(&self) -> bool {
        matches!(self.state, Self::CLOSED | Self::CANCELED | Self::FAILED)
    }
}

/// An uploaded file as the hub sees it (`checkUpload`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadCheck {
    pub size: u64,
    pub hexdigest: Option<String>,
}

/// A hub session. Its key is a credential: it never prints.
#[derive(Default)]
struct Session {
    id: i64,
    key: String,
    callnum: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("key", &"***")
            .field("callnum", &self.callnum)
            .finish()
    }
}

/// One session on a Koji hub.
#[derive(Debug)]
pub struct KojiClient {
    http: reqwest::Client,
    url: String,
    config: KojiConfig,
    /// Held for the whole of each request, so call numbers reach the hub in order.
    session: Mutex<Option<Session>>,
}

impl KojiClient {
    /// Connects to `config.hub_url` and logs in (password or SSL certificate).
    pub async fn connect(config: &KojiConfig) -> Result<KojiClient, KojiError> {
        if !config.has_hub() {
            return Err(KojiError::Setup(
                "no Koji hub configured: set [koji] hub_url (OSBS_KOJI__HUB_URL)".into(),
            ));
        }
        let client = KojiClient {
            http: http_client(config)?,
            url: config.hub_url.trim().to_owned(),
            config: config.clone(),
            session: Mutex::new(None),
        };
        client.login().await?;
        Ok(client)
    }

    pub fn config(&self) -> &KojiConfig {
        &self.config
    }

    /// The hub URL, password masked.
    pub fn url(&self) -> String {
        self.config.hub_url_masked()
    }

    async fn login(&self) -> Result<(), KojiError> {
        let mut session = self.session.lock().await;
        *session = None;
        let info = match self.config.auth.method {
            AuthMethod::Password => {
                let args = [
                    json!(self.config.auth.user),
                    json!(self.config.auth.password.expose()),
                ];
                self.send(&mut session, "login", &args, &[]).await?
            }
            AuthMethod::Ssl => self.send(&mut session, "sslLogin", &[], &[]).await?,
        };
        let id = info.get("session-id").and_then(Json::as_i64);
        let key = info.get("session-key").and_then(Json::as_str);
        match (id, key) {
            (Some(id), Some(key)) => {
                *session = Some(Session {
                    id,
                    key: key.to_owned(),
                    callnum: 0,
                });
                Ok(())
            }
            _ => Err(KojiError::Unexpected {
                method: "login".into(),
                reason: "no session-id/session-key in the answer".into(),
            }),
        }
    }

    /// One request with the session headers, under the session lock.
    async fn send(
        &self,
        session: &mut Option<Session>,
        method: &str,
        args: &[Json],
        kwargs: &[(&str, Json)],
    ) -> Result<Json, KojiError> {
        let body = xmlrpc::encode_call(method, args, kwargs);
        let mut request = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "text/xml")
            .timeout(self.config.call_timeout())
            .body(body);
        if let Some(session) = session.as_mut() {
            request = session_headers(request, session);
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.transport(method, &error))?;
        self.read_answer(method, response).await
    }

    async fn read_answer(
        &self,
        method: &str,
        response: reqwest::Response,
    ) -> Result<Json, KojiError> {
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| self.transport(method, &error))?;
        if !status.is_success() {
            return Err(KojiError::Http {
                method: method.into(),
                url: self.url(),
                status: status.as_u16(),
                body: one_line(&text, 300),
            });
        }
        match xmlrpc::decode_answer(&text) {
            Some(Answer::Value(value)) => Ok(value),
            Some(Answer::Fault { code, text }) => Err(KojiError::Fault {
                method: method.into(),
                code,
                text,
            }),
            None => Err(KojiError::Protocol {
                method: method.into(),
                url: self.url(),
                body: one_line(&text, 300),
            }),
        }
    }

    fn transport(&self, method: &str, error: &reqwest::Error) -> KojiError {
        // reqwest errors name the URL; ours carries no credentials in its path, but the
        // host part may, so the URL is masked and the error's own text kept without it.
        let mut reason = error.to_string();
        if let Some(url) = error.url() {
            reason = reason.replace(url.as_str(), "");
        }
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        KojiError::Transport {
            method: method.into(),
            url: self.url(),
            reason: reason.trim().to_owned(),
        }
    }

    /// Calls `method` once; logs in again (once) when the hub lost the session.
    pub async fn call(
        &self,
        method: &str,
        args: &[Json],
        kwargs: &[(&str, Json)],
    ) -> Result<Json, KojiError> {
        self.again_if_session_lost(method, || async move {
            let mut session = self.session.lock().await;
            self.send(&mut session, method, args, kwargs).await
        })
        .await
    }

    /// Runs `attempt`; when the hub lost the session, logs in and runs it once more.
    async fn again_if_session_lost<F, Fut>(
        &self,
        method: &str,
        attempt: F,
    ) -> Result<Json, KojiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Json, KojiError>>,
    {
        match attempt().await {
            Err(error) if error.session_lost() => {
                tracing::info!(hub = %self.url(), method, "Koji session lost; logging in again");
                self.login().await?;
                attempt().await
            }
            other => other,
        }
    }

    /// Calls a read-only `method`, retrying transient failures for `[koji] retry_secs`.
    pub async fn query(
        &self,
        method: &str,
        args: &[Json],
        kwargs: &[(&str, Json)],
    ) -> Result<Json, KojiError> {
        let deadline = tokio::time::Instant::now() + self.config.retry_budget();
        (|| self.call(method, args, kwargs))
            .retry(retry_policy())
            .when(|error| error.is_transient() && tokio::time::Instant::now() < deadline)
            .notify(|error, wait| {
                tracing::warn!(hub = %self.url(), method, error = %error, ?wait, "Koji hub call failed; retrying");
            })
            .await
    }

    /// `getNextRelease({name, version})`: the release after the newest build of `name-version`.
    pub async fn get_next_release(&self, name: &str, version: &str) -> Result<String, KojiError> {
        let answer = self
            .query(
                "getNextRelease",
                &[json!({"name": name, "version": version})],
                &[],
            )
            .await?;
        answer
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| unexpected("getNextRelease", &answer))
    }

    /// `getBuild(nvr)`: the build, or `None`.
    pub async fn get_build(&self, nvr: &str) -> Result<Option<KojiBuild>, KojiError> {
        let answer = self.query("getBuild", &[json!(nvr)], &[]).await?;
        decode_optional("getBuild", answer)
    }

    /// `getBuild(build_id)`.
    pub async fn get_build_by_id(&self, build_id: i64) -> Result<Option<KojiBuild>, KojiError> {
        let answer = self.query("getBuild", &[json!(build_id)], &[]).await?;
        decode_optional("getBuild", answer)
    }

    /// `CGInitBuild(cg, {name, version, release})`: reserves the NVR for this content
    /// generator. Not retried: a lost answer may have reserved it ("Build is already
    /// reserved" then) — pick another release in that case.
    pub async fn cg_init_build(
        &self,
        name: &str,
        version: &str,
        release: &str,
    ) -> Result<Reservation, KojiError> {
        let answer = self
            .call(
                "CGInitBuild",
                &[
                    json!(self.config.cg_name),
                    json!({"name": name, "version": version, "release": release}),
                ],
                &[],
            )
            .await?;
        serde_json::from_value(answer.clone()).map_err(|_| unexpected("CGInitBuild", &answer))
    }

    /// `CGRefundBuild(cg, build_id, token, state)`: releases a reservation, marking the
    /// build FAILED or CANCELED (its NVR can be reserved again).
    pub async fn cg_refund_build(
        &self,
        build_id: i64,
        token: &str,
        state: RefundState,
    ) -> Result<(), KojiError> {
        self.call(
            "CGRefundBuild",
            &[
                json!(self.config.cg_name),
                json!(build_id),
                json!(token),
                json!(state.koji_state()),
            ],
            &[],
        )
        .await
        .map(drop)
    }

    /// `CGImport(metadata, directory, token)` — metadata as a dict, a JSON string or the
    /// name of an uploaded `.json` file. Returns the imported build.
    pub async fn cg_import(
        &self,
        metadata: Json,
        directory: &str,
        token: Option<&str>,
    ) -> Result<KojiBuild, KojiError> {
        let kwargs: Vec<(&str, Json)> = token
            .map(|token| vec![("token", json!(token))])
            .unwrap_or_default();
        let answer = self
            .call("CGImport", &[metadata, json!(directory)], &kwargs)
            .await?;
        serde_json::from_value(answer.clone()).map_err(|_| unexpected("CGImport", &answer))
    }

    /// `getBuildTarget(name)`: the target, or `None`.
    pub async fn get_build_target(&self, name: &str) -> Result<Option<BuildTarget>, KojiError> {
        let answer = self.query("getBuildTarget", &[json!(name)], &[]).await?;
        decode_optional("getBuildTarget", answer)
    }

    /// `listTags(build)`: names of the tags `nvr` is in.
    pub async fn list_tags(&self, nvr: &str) -> Result<Vec<String>, KojiError> {
        let answer = self
            .query("listTags", &[], &[("build", json!(nvr))])
            .await?;
        let tags = answer
            .as_array()
            .ok_or_else(|| unexpected("listTags", &answer))?;
        Ok(tags
            .iter()
            .filter_map(|tag| tag.get("name").and_then(Json::as_str))
            .map(str::to_owned)
            .collect())
    }

    /// `tagBuild(tag, build)`: the id of the task that will tag it.
    pub async fn tag_build(&self, tag: &str, nvr: &str) -> Result<i64, KojiError> {
        let answer = self
            .call("tagBuild", &[json!(tag), json!(nvr)], &[])
            .await?;
        answer
            .as_i64()
            .ok_or_else(|| unexpected("tagBuild", &answer))
    }

    /// `tagBuildBypass(tag, build)`: tags at once (needs the `tag` permission).
    pub async fn tag_build_bypass(&self, tag: &str, nvr: &str) -> Result<(), KojiError> {
        self.call("tagBuildBypass", &[json!(tag), json!(nvr)], &[])
            .await
            .map(drop)
    }

    /// `getTaskInfo(task_id)`.
    pub async fn get_task_info(&self, task_id: i64) -> Result<TaskInfo, KojiError> {
        let answer = self.query("getTaskInfo", &[json!(task_id)], &[]).await?;
        serde_json::from_value(answer.clone()).map_err(|_| unexpected("getTaskInfo", &answer))
    }

    /// `getTaskResult(task_id)`: a failed task's fault comes back as [`KojiError::Fault`].
    pub async fn get_task_result(&self, task_id: i64) -> Result<Json, KojiError> {
        self.call("getTaskResult", &[json!(task_id)], &[]).await
    }

    /// `checkUpload(path, name, verify)`: size and digest of an uploaded file, or `None`.
    pub async fn check_upload(
        &self,
        dir: &str,
        name: &str,
        verify: Option<&str>,
    ) -> Result<Option<UploadCheck>, KojiError> {
        let kwargs: Vec<(&str, Json)> = verify
            .map(|verify| vec![("verify", json!(verify))])
            .unwrap_or_default();
        let answer = self
            .query("checkUpload", &[json!(dir), json!(name)], &kwargs)
            .await?;
        if answer.is_null() {
            return Ok(None);
        }
        let size = answer
            .get("size")
            .and_then(|size| size.as_u64().or_else(|| size.as_str()?.parse().ok()))
            .ok_or_else(|| unexpected("checkUpload", &answer))?;
        Ok(Some(UploadCheck {
            size,
            hexdigest: answer
                .get("hexdigest")
                .and_then(Json::as_str)
                .map(str::to_owned),
        }))
    }

    /// `logout()`; errors are not worth reporting (the session expires anyway).
    pub async fn logout(&self) {
        let mut session = self.session.lock().await;
        if session.is_some() {
            let _ = self.send(&mut session, "logout", &[], &[]).await;
            *session = None;
        }
    }

    /// One fast-upload POST (`<hub>?filename=&filepath=&fileverify=adler32&offset=`):
    /// the hub's answer `{size, hexdigest, ...}`. Logs in again (once) if the session is gone.
    pub(crate) async fn raw_upload(
        &self,
        dir: &str,
        name: &str,
        offset: u64,
        overwrite: bool,
        chunk: bytes::Bytes,
    ) -> Result<Json, KojiError> {
        let mut query = vec![
            ("filename", name.to_owned()),
            ("filepath", dir.to_owned()),
            ("fileverify", "adler32".to_owned()),
            ("offset", offset.to_string()),
        ];
        if overwrite {
            query.push(("overwrite", "1".to_owned()));
        }
        self.again_if_session_lost("upload", || self.post_chunk(&query, chunk.clone()))
            .await
    }

    /// One upload POST with the session headers, under the session lock.
    async fn post_chunk(
        &self,
        query: &[(&str, String)],
        chunk: bytes::Bytes,
    ) -> Result<Json, KojiError> {
        let mut session = self.session.lock().await;
        let mut request = self
            .http
            .post(&self.url)
            .query(query)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(self.config.call_timeout())
            .body(chunk);
        if let Some(session) = session.as_mut() {
            request = session_headers(request, session);
        }
        match request.send().await {
            Ok(response) => self.read_answer("upload", response).await,
            Err(error) => Err(self.transport("upload", &error)),
        }
    }
}

fn session_headers(
    request: reqwest::RequestBuilder,
    session: &mut Session,
) -> reqwest::RequestBuilder {
    session.callnum += 1;
    // The hub reads `Koji-Callnum` (koji's client sends it); DESIGN.md names it
    // `Koji-Session-Callnum`. Both carry the same number, so either hub reading works.
    request
        .header("Koji-Session-Id", session.id.to_string())
        .header("Koji-Session-Key", session.key.as_str())
        .header("Koji-Callnum", session.callnum.to_string())
        .header("Koji-Session-Callnum", session.callnum.to_string())
}

fn unexpected(method: &str, answer: &Json) -> KojiError {
    KojiError::Unexpected {
        method: method.into(),
        reason: one_line(&answer.to_string(), 300),
    }
}

fn decode_optional<T: serde::de::DeserializeOwned>(
    method: &str,
    answer: Json,
) -> Result<Option<T>, KojiError> {
    if answer.is_null() {
        return Ok(None);
    }
    serde_json::from_value(answer.clone())
        .map(Some)
        .map_err(|_| unexpected(method, &answer))
}

/// Backoff for transient hub failures: 0.5 s doubling to 10 s.
pub fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(usize::MAX)
        .with_jitter()
}

/// The HTTP client: timeouts, the hub's CA, and the client certificate for `sslLogin`.
fn http_client(config: &KojiConfig) -> Result<reqwest::Client, KojiError> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|error| {
            KojiError::Setup(format!(
                "cannot read the {what} {}: {error} (set [koji] in the configuration)",
                path.display()
            ))
        })
    };
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("osbs-koji/", env!("CARGO_PKG_VERSION")));
    if !config.server_ca.as_os_str().is_empty() {
        let pem = read(&config.server_ca, "hub CA file ([koji] server_ca)")?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
            KojiError::Setup(format!(
                "{} holds no usable PEM certificate: {error}",
                config.server_ca.display()
            ))
        })?;
        builder = builder.tls_certs_only(certs);
    }
    if config.auth.method == AuthMethod::Ssl {
        let mut pem = read(&config.auth.cert, "client certificate ([koji.auth] cert)")?;
        if !config.auth.key.as_os_str().is_empty() {
            pem.push(b'\n');
            pem.extend(read(&config.auth.key, "client key ([koji.auth] key)")?);
        }
        let identity = reqwest::Identity::from_pem(&pem).map_err(|error| {
            KojiError::Setup(format!(
                "{} (+ key) is not a usable PEM certificate and key: {error}",
                config.auth.cert.display()
            ))
        })?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|error| KojiError::Setup(format!("cannot build the HTTP client: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_failures_are_worth_a_retry() {
        let fault = |code: i32, text: &str| KojiError::Fault {
            method: "CGImport".into(),
            code,
            text: text.into(),
        };
        assert!(fault(1014, "server is offline").is_transient());
        assert!(!fault(1000, "Build already exists").is_transient());
        assert!(!fault(1002, "Content generator access required (osbs)").is_transient());
        assert!(fault(1002, "Invalid session or bad credentials").session_lost());
        assert!(fault(1007, "session \"3\" has expired").session_lost());
        let http = |status| KojiError::Http {
            method: "x".into(),
            url: "u".into(),
            status,
            body: String::new(),
        };
        assert!(http(503).is_transient());
        assert!(!http(403).is_transient());
        assert_eq!(
            fault(1000, "Build is already reserved").to_string(),
            "Koji hub refused CGImport: Fault 1000: Build is already reserved"
        );
    }

    #[test]
    fn tokens_and_session_keys_never_print() {
        let reservation = Reservation {
            build_id: 7,
            token: "s3cret-token".into(),
        };
        assert!(!format!("{reservation:?}").contains("s3cret"));
        let session = Session {
            id: 1,
            key: "1-s3cretkey".into(),
            callnum: 3,
        };
        assert!(!format!("{session:?}").contains("s3cret"));
    }
}
