//! The hub on the network (axum): XML-RPC POSTs, fast-upload POSTs
//! (`application/octet-stream`), GET answered 405, optional TLS with client certificates,
//! and the faults a test can inject (offline, a connection cut mid-upload, a lost response,
//! a stop and a restart that keep the state).

use crate::config::HubConfig;
use crate::digest::Verifier;
use crate::fault::Fault;
use crate::methods::{Caller, Hub};
use crate::rpc::{fault_xml, parse_call, response_xml};
use crate::state::{Build, HubState, Tag};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value as Json, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use hub state directory {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("the hub's tag policy: {0}")]
    Policy(#[from] crate::policy::PolicyError),
}

/// Faults a test injects.
#[derive(Debug, Default)]
pub(crate) struct Control {
    offline: AtomicBool,
    /// Cut the next fast upload that reaches this file offset, after writing up to it.
    drop_upload_at: Mutex<Option<u64>>,
    /// Methods whose next call is carried out, but whose response never arrives.
    lose_response: Mutex<Vec<String>>,
    /// Methods whose next call fails with a fault, doing nothing.
    fail_next: Mutex<VecDeque<(String, Fault)>>,
    /// Every method called (`upload` for a fast-upload POST), in order.
    calls: Mutex<Vec<String>>,
}

fn take_first<T>(list: &Mutex<Vec<T>>, matches: impl Fn(&T) -> bool) -> Option<T> {
    let mut list = list.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let index = list.iter().position(matches)?;
    Some(list.remove(index))
}

#[derive(Clone)]
struct AppState {
    hub: Arc<Hub>,
    control: Arc<Control>,
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    addr: SocketAddr,
    client_cn: Option<String>,
    tls: bool,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// TCP, with a TLS handshake first when configured.
struct HubListener {
    tcp: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl axum::serve::Listener for HubListener {
    type Io = Box<dyn Stream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, addr) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(acceptor) = &self.tls else {
                let peer = Peer {
                    addr,
                    client_cn: None,
                    tls: false,
                };
                return (Box::new(tcp), peer);
            };
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let client_cn = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(|cert| crate::tls::common_name(cert));
                    let peer = Peer {
                        addr,
                        client_cn,
                        tls: true,
                    };
                    return (Box::new(stream), peer);
                }
                Ok(Err(error)) => tracing::info!(error = %error, %addr, "TLS handshake failed"),
                Err(_) => tracing::info!(%addr, "TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.tcp.local_addr()?,
            client_cn: None,
            tls: self.tls.is_some(),
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, HubListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, HubListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Session headers (`Koji-Session-Id`, `-Key`, `Koji-Callnum` or `Koji-Session-Callnum`),
/// or the older query-string form (`session-id=&session-key=&callnum=`).
fn caller(headers: &HeaderMap, query: &str, peer: &Peer) -> Caller {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let id = header("koji-session-id").or_else(|| param("session-id"));
    let key = header("koji-session-key").or_else(|| param("session-key"));
    let callnum = header("koji-callnum")
        .or_else(|| header("koji-session-callnum"))
        .or_else(|| param("callnum"));
    Caller {
        session: match (id.and_then(|id| id.parse().ok()), key) {
            (Some(id), Some(key)) => Some((id, key)),
            _ => None,
        },
        callnum: callnum.and_then(|number| number.parse().ok()),
        client_cn: peer.client_cn.clone(),
        tls: peer.tls,
    }
}

fn xml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// A response whose body fails: the client sees the connection drop mid-answer.
fn cut_connection() -> Response {
    let body = Body::from_stream(futures::stream::once(async {
        Err::<bytes::Bytes, _>(std::io::Error::other("connection cut by the test"))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/xml")
        .body(body)
        .expect("a valid response")
}

async fn handle(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [
                (header::ALLOW, "POST"),
                (header::CONTENT_TYPE, "text/plain"),
            ],
            "Method Not Allowed\nThis is an XML-RPC server. Only POST requests are accepted.\n",
        )
            .into_response();
    }
    if app.control.offline.load(Ordering::SeqCst) {
        return xml_response(fault_xml(&Fault::offline()));
    }
    let caller = caller(&headers, uri.query().unwrap_or(""), &peer);
    tracing::debug!(peer = %peer.addr, tls = peer.tls, "request");
    let octet_stream = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == b"application/octet-stream");
    if octet_stream && app.hub.config.fast_upload {
        return fast_upload(&app, caller, uri.query().unwrap_or(""), body).await;
    }
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response();
        }
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let call = match parse_call(&text) {
        Ok(call) => call,
        Err(fault) => return xml_response(fault_xml(&fault)),
    };
    app.control
        .calls
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(call.method.clone());
    let injected = {
        let mut faults = app
            .control
            .fail_next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        faults
            .iter()
            .position(|(name, _)| *name == call.method)
            .and_then(|index| faults.remove(index))
    };
    if let Some((_, fault)) = injected {
        return xml_response(fault_xml(&fault));
    }
    let hub = app.hub.clone();
    let method_name = call.method.clone();
    let outcome = tokio::task::spawn_blocking(move || hub.call(&caller, &call))
        .await
        .unwrap_or_else(|error| Err(Fault::python("RuntimeError", error)));
    if take_first(&app.control.lose_response, |name| *name == method_name).is_some() {
        return cut_connection();
    }
    match outcome {
        Ok(value) => xml_response(response_xml(&value)),
        Err(fault) => xml_response(fault_xml(&fault)),
    }
}

/// koji's `handle_upload`: the raw chunk of a file at `offset`, verified as it streams in.
async fn fast_upload(app: &AppState, caller: Caller, query: &str, body: Body) -> Response {
    app.control
        .calls
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push("upload".into());
    match receive_upload(app, caller, query, body).await {
        Ok(Some(value)) => xml_response(response_xml(&value)),
        Ok(None) => cut_connection(),
        Err(fault) => xml_response(fault_xml(&fault)),
    }
}

async fn receive_upload(
    app: &AppState,
    caller: Caller,
    query: &str,
    body: Body,
) -> Result<Option<Json>, Fault> {
    let hub = app.hub.clone();
    let login = tokio::task::spawn_blocking({
        let hub = hub.clone();
        move || {
            hub.call(
                &caller,
                &crate::rpc::Call {
                    method: "getLoggedInUser".into(),
                    args: Vec::new(),
                    kwargs: Default::default(),
                },
            )
        }
    })
    .await
    .unwrap_or_else(|error| Err(Fault::python("RuntimeError", error)))?;
    let user = login
        .get("id")
        .and_then(Json::as_i64)
        .ok_or_else(|| Fault::not_allowed("you must be logged-in to upload a file"))?;
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let arg = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let name = arg("filename").ok_or_else(|| Fault::key_error("filename"))?;
    let path = arg("filepath").unwrap_or_default();
    let verify = arg("fileverify").unwrap_or_default();
    let overwrite = arg("overwrite").is_some_and(|value| !value.is_empty());
    let offset_text = arg("offset").unwrap_or_else(|| "0".into());
    let offset: i64 = offset_text.parse().map_err(|_| {
        Fault::python(
            "ValueError",
            format!("invalid literal for int() with base 10: '{offset_text}'"),
        )
    })?;
    let file = tokio::task::spawn_blocking({
        let hub = hub.clone();
        move || hub.upload_path(user, &path, &name, true)
    })
    .await
    .unwrap_or_else(|error| Err(Fault::python("RuntimeError", error)))?;
    if let Ok(meta) = tokio::fs::metadata(&file).await {
        if !meta.is_file() {
            return Err(Fault::generic(format!(
                "destination not a file: {}",
                file.display()
            )));
        }
        if offset == 0 && !overwrite {
            return Err(Fault::generic(format!(
                "upload path exists: {}",
                file.display()
            )));
        }
    }
    let mut verifier = Verifier::for_name(&verify)?
        .ok_or_else(|| Fault::python("TypeError", "'NoneType' object is not callable"))?;
    let io = |error: std::io::Error| Fault::python("OSError", error);
    let mut file_handle = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&file)
        .await
        .map_err(io)?;
    let start = if offset == -1 {
        file_handle
            .seek(std::io::SeekFrom::End(0))
            .await
            .map_err(io)?
    } else {
        let start = offset.max(0) as u64;
        file_handle.set_len(start).await.map_err(io)?;
        file_handle
            .seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(io)?
    };
    // Body frames are small: writing each one through the blocking pool would cost more
    // than the write itself (koji's hub reads 64 KiB at a time).
    let mut handle = tokio::io::BufWriter::with_capacity(1 << 20, file_handle);
    let drop_at = *app
        .control
        .drop_upload_at
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                // The client went away: what arrived stays written, as on a real hub.
                handle.flush().await.map_err(io)?;
                return Err(Fault::python("OSError", error));
            }
        };
        let mut piece = &chunk[..];
        let mut cut = false;
        if let Some(limit) = drop_at
            && start + size + piece.len() as u64 >= limit
            && limit >= start
        {
            piece = &piece[..(limit - start - size) as usize];
            cut = true;
        }
        verifier.update(piece);
        handle.write_all(piece).await.map_err(io)?;
        size += piece.len() as u64;
        if cut {
            handle.flush().await.map_err(io)?;
            *app.control
                .drop_upload_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
            return Ok(None);
        }
    }
    handle.flush().await.map_err(io)?;
    Ok(Some(json!({
        "size": size,
        "fileverify": verify,
        "offset": start,
        "hexdigest": verifier.hexdigest(),
    })))
}

struct Server {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// A hub double serving on a port of its own. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningHub {
    /// The hub's XML-RPC URL (`http://127.0.0.1:PORT/kojihub`, `https://` with TLS).
    pub url: String,
    addr: SocketAddr,
    config: HubConfig,
    dir: PathBuf,
    hub: Arc<Hub>,
    control: Arc<Control>,
    tls: Option<Arc<rustls::ServerConfig>>,
    server: Option<Server>,
    _temporary: Option<Arc<tempfile::TempDir>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Server")
    }
}

/// Entry point of the crate.
#[derive(Debug)]
pub struct KojiHub;

impl KojiHub {
    /// Starts a hub double as `config` says.
    pub async fn start(config: HubConfig) -> Result<RunningHub, HubError> {
        let (dir, temporary) = match &config.state_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temporary = tempfile::tempdir().map_err(|source| HubError::State {
                    path: std::env::temp_dir(),
                    source,
                })?;
                (temporary.path().to_owned(), Some(Arc::new(temporary)))
            }
        };
        let hub = Arc::new(open_hub(&dir, &config)?);
        let tls = config
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        let mut running = RunningHub {
            url: String::new(),
            addr: config.listen,
            dir,
            hub,
            control: Arc::new(Control::default()),
            tls,
            server: None,
            config,
            _temporary: temporary,
        };
        running.serve().await?;
        Ok(running)
    }
}

fn open_hub(dir: &Path, config: &HubConfig) -> Result<Hub, HubError> {
    let tag_policy = config
        .tag_policy
        .as_deref()
        .map(crate::policy::Policy::parse)
        .transpose()?;
    Hub::open(dir, config.clone(), tag_policy).map_err(|source| HubError::State {
        path: dir.to_owned(),
        source,
    })
}

impl RunningHub {
    async fn serve(&mut self) -> Result<(), HubError> {
        let tcp = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|source| HubError::Listen {
                addr: self.addr,
                source,
            })?;
        self.addr = tcp.local_addr().map_err(|source| HubError::Listen {
            addr: self.addr,
            source,
        })?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.url = format!("{scheme}://{}/kojihub", self.addr);
        let listener = HubListener {
            tcp,
            tls: self.tls.clone().map(tokio_rustls::TlsAcceptor::from),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(AppState {
                hub: self.hub.clone(),
                control: self.control.clone(),
            })
            .into_make_service_with_connect_info::<Peer>();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let hub = self.hub.clone();
        let ticker_stop = shutdown.clone();
        // The builder daemon: runs tagBuild tasks when their time comes.
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = ticker_stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {
                        let hub = hub.clone();
                        let _ = tokio::task::spawn_blocking(move || hub.run_due_tasks()).await;
                    }
                }
            }
        });
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(error = %error, "hub double stopped");
            }
        });
        self.server = Some(Server { shutdown, task });
        tracing::info!(url = %self.url, state_dir = %self.dir.display(), "Koji hub double listening");
        Ok(())
    }

    /// Stops listening (connections are refused) until [`RunningHub::start`].
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown.cancel();
            let mut task = server.task;
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Listens again on the same address, with the state found on disk.
    pub async fn start(&mut self) -> Result<(), HubError> {
        if self.server.is_some() {
            return Ok(());
        }
        self.hub = Arc::new(open_hub(&self.dir, &self.config)?);
        self.serve().await
    }

    /// A hub restart: stop, then start again from the state on disk.
    pub async fn restart(&mut self) -> Result<(), HubError> {
        self.stop().await;
        self.start().await
    }

    /// Answers every call with `ServerOffline` while `offline`.
    pub fn set_offline(&self, offline: bool) {
        self.control.offline.store(offline, Ordering::SeqCst);
    }

    /// Cuts the connection of the next fast upload that reaches `offset` in its file, after
    /// writing the bytes before it.
    pub fn drop_upload_at(&self, offset: u64) {
        *self
            .control
            .drop_upload_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(offset);
    }

    /// Carries out the next call of `method`, then cuts the connection before answering.
    pub fn lose_next_response(&self, method: &str) {
        self.control
            .lose_response
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(method.to_owned());
    }

    /// Answers the next call of `method` with `fault`, without carrying it out.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        self.control
            .fail_next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push_back((method.to_owned(), fault));
    }

    /// Every method called so far (`upload` for a fast-upload POST), in order.
    pub fn calls(&self) -> Vec<String> {
        self.control
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many times `method` was called.
    pub fn call_count(&self, method: &str) -> usize {
        self.calls().iter().filter(|name| *name == method).count()
    }

    /// Every build the hub holds, in id order.
    pub fn builds(&self) -> Vec<Build> {
        self.hub.lock().builds.values().cloned().collect()
    }

    /// The build `name-version-release`, if any.
    pub fn build(&self, nvr: &str) -> Option<Build> {
        self.hub
            .lock()
            .builds
            .values()
            .find(|build| build.nvr() == nvr)
            .cloned()
    }

    /// Sets the state of the build `nvr` as an admin's SQL would, leaving its reservation
    /// (no call leaves a reserved build outside BUILDING with its token still valid; this
    /// reaches that state). False: no such build.
    pub fn set_build_state(&self, nvr: &str, state: i64) -> bool {
        self.hub.edit_state(|hub| {
            let build = hub.builds.values_mut().find(|build| build.nvr() == nvr);
            build.map(|build| build.state = state).is_some()
        })
    }

    /// Changes the tag `name` as an admin's `editTag2` or `packageListRemove` would (which
    /// the double does not offer). False: no such tag.
    pub fn edit_tag(&self, name: &str, edit: impl FnOnce(&mut Tag)) -> bool {
        self.hub
            .edit_state(|hub| hub.tags.get_mut(name).map(edit).is_some())
    }

    /// NVRs of the builds tagged into `tag`.
    pub fn tagged(&self, tag: &str) -> Vec<String> {
        let state = self.hub.lock();
        let Some(tag) = state.tags.get(tag) else {
            return Vec::new();
        };
        state
            .tag_listing
            .iter()
            .filter(|(tag_id, _)| *tag_id == tag.id)
            .filter_map(|(_, build_id)| state.builds.get(build_id))
            .map(Build::nvr)
            .collect()
    }

    /// Files in the upload area now (`work/<dir>/<name>`), with their sizes.
    pub fn uploaded_files(&self) -> Vec<(String, u64)> {
        let root = self.hub.work_dir();
        let mut found = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.metadata() {
                    Ok(meta) if meta.is_dir() => pending.push(path),
                    Ok(meta) => found.push((
                        path.strip_prefix(&root)
                            .unwrap_or(&path)
                            .display()
                            .to_string(),
                        meta.len(),
                    )),
                    Err(_) => {}
                }
            }
        }
        found.sort();
        found
    }

    /// The key of every session the hub opened so far, including the ones logged out.
    pub fn issued_session_keys(&self) -> Vec<String> {
        self.hub.lock().issued_session_keys.clone()
    }

    /// A copy of the whole state (reservations, sessions, tasks...).
    pub fn state(&self) -> HubState {
        self.hub.lock().clone()
    }

    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown.cancel();
            server.task.abort();
        }
    }
}
