//! The hand-written part of the client: what oci-client cannot do.
//!
//! - [`Registry::upload_stream`]: a blob whose bytes are produced while they are sent and
//!   whose digest is known only at the end — POST, one PATCH with a chunked body fed from
//!   a bounded channel, PUT `?digest=`. oci-client's streamed push cuts the stream into
//!   separate PATCH requests of at most 4 MiB each (a round trip per piece) and always
//!   hashes; the squash's producer hashes on its own thread, or not at all when the digest
//!   is already known (an uncompressed layer's digest is its diff_id).
//! - [`Registry::mount_blob`]: oci-client's mount takes the spec's fallback answer (202, an
//!   upload opened instead of a mount) for an error and leaves that upload open; here it
//!   is closed and reported as "not mounted". And oci-client's tokens name one repository,
//!   which a token-auth registry will not mount from: the mount asks the registry's token
//!   service for one token naming both (`repository:<into>:pull,push` and
//!   `repository:<from>:pull`).
//!
//! Both authenticate as oci-client does — the same token, fetched by its flow for a push to
//! the repository (or the Basic credentials when the registry asks for those), the mount's
//! from the same token service — and send it to the registry's own origin only, never to a
//! `Location` on another host.

use crate::client::{Blob, Registry};
use crate::digest::HashingWriter;
use crate::error::{Context, RegistryError};
use crate::reference::Reference;
use base64::Engine as _;
use bytes::Bytes;
use oci_client::RegistryOperation;
use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Writes the bytes of one blob; returns its value and, when it knows it, the bytes' digest
/// (`sha256:…`, sparing a second hash). Called again when a transient failure restarts the
/// upload. A producer that is not asked to hash (`hash_here: false`) must give the digest.
pub type Producer<T, E> =
    Arc<dyn Fn(&mut dyn Write) -> Result<(T, Option<String>), E> + Send + Sync>;

/// Why a streamed upload failed: the registry, or the producer of the bytes.
#[derive(Debug)]
pub enum UploadError<E> {
    Registry(RegistryError),
    Producer(E),
}

impl<E: std::fmt::Display> std::fmt::Display for UploadError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadError::Registry(error) => error.fmt(f),
            UploadError::Producer(error) => error.fmt(f),
        }
    }
}

impl<E> From<RegistryError> for UploadError<E> {
    fn from(error: RegistryError) -> Self {
        UploadError::Registry(error)
    }
}

/// How a blob got into a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    AlreadyThere,
    Mounted,
    /// Read from the other repository and uploaded (the registry would not mount).
    Copied,
}

/// A `Write` that hands what it is given to the request body, in order, through a bounded
/// channel (the producer waits when the network is slower). Notes when the body's reader
/// went away, so that a producer failing on it is told apart from a producer failing.
struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    closed: Arc<AtomicBool>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sender
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                self.closed.store(true, Ordering::SeqCst);
                io::Error::new(io::ErrorKind::BrokenPipe, "the registry stopped reading")
            })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a request's `Authorization` must allow.
#[derive(Debug, Clone, Copy)]
enum Access<'a> {
    /// A push to (and reads of) one repository.
    Push(&'a str),
    /// A mount into `into` of a blob of `from`.
    Mount { into: &'a str, from: &'a str },
}

impl Access<'_> {
    /// Where its authorization is kept (a repository name holds no space).
    fn key(&self) -> String {
        match self {
            Access::Push(repository) => (*repository).to_owned(),
            Access::Mount { into, from } => format!("{into} from {from}"),
        }
    }
}

/// The token service a registry names in its `Bearer` challenge.
#[derive(Debug, PartialEq, Eq)]
struct TokenService {
    realm: String,
    service: Option<String>,
}

/// The `Bearer` challenge of a `WWW-Authenticate` value, if it has one (the scheme and the
/// parameter names in any case).
fn token_service(challenge: &str) -> Option<TokenService> {
    http_auth::ChallengeParser::new(challenge)
        .filter_map(Result::ok)
        .find(|challenge| challenge.scheme.eq_ignore_ascii_case("bearer"))
        .and_then(|challenge| {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.to_unescaped())
            };
            Some(TokenService {
                realm: param("realm")?,
                service: param("service"),
            })
        })
}

fn sensitive(text: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

impl Registry {
    /// The `Authorization` that allows `access`: for a push, oci-client's token, or the
    /// Basic credentials, or nothing; for a mount, a token naming both repositories when the
    /// registry's token service gives one, else the push's. Kept until the registry refuses
    /// it (`refresh`).
    async fn authorization(
        &self,
        context: &Context<'_>,
        access: Access<'_>,
        refresh: bool,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let mut kept = self.inner.authorizations.lock().await;
        if !refresh && let Some(value) = kept.get(&access.key()) {
            return Ok(value.clone());
        }
        let value = match access {
            Access::Mount { into, from } => match self.mount_token(context, into, from).await {
                Some(token) => Some(token),
                None => self.push_authorization(context, into).await?,
            },
            Access::Push(repository) => self.push_authorization(context, repository).await?,
        };
        kept.insert(access.key(), value.clone());
        Ok(value)
    }

    /// A token for a mount into `into` from `from`, from the token service of the registry's
    /// `Bearer` challenge; `None` when it challenges otherwise (Basic, or no authentication)
    /// or its token service gives none (the push's authorization is used then, and the
    /// registry copies or refuses the mount as it would have).
    async fn mount_token(
        &self,
        context: &Context<'_>,
        into: &str,
        from: &str,
    ) -> Option<HeaderValue> {
        let probe = self.inner.base.join("v2/").expect("a constant path");
        let answer = self.inner.http.get(probe).send().await.ok()?;
        let challenge = answer.headers().get(WWW_AUTHENTICATE)?.to_str().ok()?;
        let TokenService { realm, service } = token_service(challenge)?;
        let scopes = [
            format!("repository:{into}:pull,push"),
            format!("repository:{from}:pull"),
        ];
        let mut request = self.inner.http.get(&realm);
        for scope in &scopes {
            request = request.query(&[("scope", scope)]);
        }
        if let Some(service) = &service {
            request = request.query(&[("service", service)]);
        }
        if let Some(credentials) = &self.inner.credentials {
            request =
                request.basic_auth(&credentials.username, Some(credentials.password.expose()));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer = request.send().await.ok()?.error_for_status().ok()?;
        let token: Token = answer.json().await.ok()?;
        let token = token.token.or(token.access_token)?;
        tracing::debug!(registry = %self.inner.name, action = context.action, "a token for both repositories of a mount");
        sensitive(&format!("Bearer {token}"))
    }

    /// The `Authorization` of a push to `repository`: oci-client's token for it, or the Basic
    /// credentials, or nothing.
    async fn push_authorization(
        &self,
        context: &Context<'_>,
        repository: &str,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let image = self.repository(repository)?;
        let auth = match &self.inner.credentials {
            Some(c) => oci_client::secrets::RegistryAuth::Basic(
                c.username.clone(),
                c.password.expose().to_owned(),
            ),
            None => oci_client::secrets::RegistryAuth::Anonymous,
        };
        let token = self
            .inner
            .oci
            .auth(&image, &auth, RegistryOperation::Push)
            .await
            .map_err(|error| context.oci(error))?;
        let value = match (token, &self.inner.credentials) {
            (Some(token), _) => sensitive(&format!("Bearer {token}")),
            (None, Some(credentials)) => {
                let pair = format!("{}:{}", credentials.username, credentials.password.expose());
                sensitive(&format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            (None, None) => None,
        };
        Ok(value)
    }

    /// Whether `url` is this registry's origin (the only one credentials go to).
    fn is_own_origin(&self, url: &url::Url) -> bool {
        let base = &self.inner.base;
        url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
    }

    /// Sends `method url`, decorated by `decorate`, authenticated for `access`. On a 401 the
    /// authorization is fetched again and, if `replayable`, the request sent once more (a
    /// token may have expired).
    async fn send(
        &self,
        context: &Context<'_>,
        access: Access<'_>,
        replayable: bool,
        (method, url): (Method, url::Url),
        decorate: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut refresh = false;
        loop {
            let mut request = decorate(self.inner.http.request(method.clone(), url.clone()));
            if self.is_own_origin(&url)
                && let Some(value) = self.authorization(context, access, refresh).await?
            {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request.send().await.map_err(|e| context.request(&e))?;
            if response.status() != StatusCode::UNAUTHORIZED || refresh || !replayable {
                return Ok(response);
            }
            refresh = true;
        }
    }

    async fn fail(&self, context: &Context<'_>, response: Response) -> RegistryError {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        context.status(status, &body)
    }

    fn upload_url(&self, repository: &str) -> url::Url {
        self.inner
            .base
            .join(&format!("v2/{repository}/blobs/uploads/"))
            .expect("a checked repository makes a relative URL")
    }

    fn location(
        &self,
        context: &Context<'_>,
        response: &Response,
    ) -> Result<url::Url, RegistryError> {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| context.protocol("its answer has no Location"))?;
        self.inner
            .base
            .join(location)
            .map_err(|e| context.protocol(format!("its Location is not a URL: {e}")))
    }

    /// Mounts `digest` from the repository `from` into `repository`; `false` when the
    /// registry would not (it opened an upload instead, which is closed again).
    pub async fn mount_blob(
        &self,
        repository: &str,
        digest: &str,
        from: &str,
    ) -> Result<bool, RegistryError> {
        self.repository(repository)?;
        self.repository(from)?;
        Reference::digest(digest)?;
        let action = format!("mount blob {digest} from {from} into {repository}");
        self.retry(&action, RegistryError::is_transient, || async {
            let context = self.context(&action);
            let mut url = self.upload_url(repository);
            url.query_pairs_mut()
                .append_pair("mount", digest)
                .append_pair("from", from);
            let access = Access::Mount {
                into: repository,
                from,
            };
            let response = self
                .send(&context, access, true, (Method::POST, url), |r| {
                    r.header(CONTENT_LENGTH, "0")
                })
                .await?;
            match response.status() {
                StatusCode::CREATED => Ok(true),
                StatusCode::ACCEPTED => {
                    if let Ok(location) = self.location(&context, &response) {
                        let _ = self
                            .send(&context, access, true, (Method::DELETE, location), |r| r)
                            .await;
                    }
                    Ok(false)
                }
                _ => Err(self.fail(&context, response).await),
            }
        })
        .await
    }

    /// Puts `digest` into `repository`: already there, mounted from `from`, or (when the
    /// registry does not mount) read from `from` and uploaded, streamed through us.
    pub async fn ensure_blob(
        &self,
        repository: &str,
        digest: &str,
        from: &str,
    ) -> Result<Arrival, RegistryError> {
        if self.blob_exists(repository, digest).await? {
            return Ok(Arrival::AlreadyThere);
        }
        if self.mount_blob(repository, digest, from).await? {
            return Ok(Arrival::Mounted);
        }
        let action = format!("copy blob {digest} from {from} into {repository}");
        self.retry(&action, RegistryError::is_transient, || async {
            let context = self.context(&action);
            let source = self.blob_stream(from, digest).await?;
            let location = self.start_upload(&context, repository).await?;
            let body = reqwest::Body::wrap_stream(source);
            let location = self.patch(&context, repository, location, body).await?;
            self.commit(&context, repository, location, digest).await?;
            Ok(Arrival::Copied)
        })
        .await
    }

    /// Streams the bytes `produce` writes into a new blob of `repository` (`what` names it
    /// in errors): POST, one chunked PATCH fed through a bounded channel, PUT with the
    /// digest computed on the way (`hash_here`) or given by the producer. A transient
    /// registry failure starts the whole upload again, the producer included.
    pub async fn upload_stream<T, E>(
        &self,
        repository: &str,
        what: &str,
        hash_here: bool,
        produce: Producer<T, E>,
    ) -> Result<(T, Blob), UploadError<E>>
    where
        T: Send + 'static,
        E: From<io::Error> + std::fmt::Display + Send + 'static,
    {
        self.repository(repository).map_err(RegistryError::from)?;
        let action = format!("upload {what} to {repository}");
        let transient = |error: &UploadError<E>| matches!(error, UploadError::Registry(error) if error.is_transient());
        self.retry(&action, transient, || {
            self.upload_once(&action, repository, hash_here, Arc::clone(&produce))
        })
        .await
    }

    async fn upload_once<T, E>(
        &self,
        action: &str,
        repository: &str,
        hash_here: bool,
        produce: Producer<T, E>,
    ) -> Result<(T, Blob), UploadError<E>>
    where
        T: Send + 'static,
        E: From<io::Error> + Send + 'static,
    {
        let context = self.context(action);
        let location = self.start_upload(&context, repository).await?;
        let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let closed = Arc::new(AtomicBool::new(false));
        let writer = ChannelWriter {
            sender,
            closed: Arc::clone(&closed),
        };
        let producer = tokio::task::spawn_blocking(move || {
            let mut out = HashingWriter::new(writer, hash_here);
            match produce(&mut out) {
                Ok((value, known)) => {
                    let digest = out
                        .digest()
                        .or(known)
                        .expect("a producer that does not hash gives its digest");
                    Ok((value, digest, out.count))
                }
                Err(error) => {
                    // Cut the request so the registry never sees a short blob end well.
                    let _ = out.inner.sender.blocking_send(Err(io::Error::other(
                        "the producer of the blob failed while streaming",
                    )));
                    Err(error)
                }
            }
        });
        let body = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        let patched = self
            .patch(
                &context,
                repository,
                location,
                reqwest::Body::wrap_stream(body),
            )
            .await;
        let produced = producer
            .await
            .map_err(|error| UploadError::Producer(E::from(io::Error::other(error))))?;
        match (produced, patched) {
            // The producer failed on its own (and cut the body): its error says why.
            (Err(error), _) if !closed.load(Ordering::SeqCst) => Err(UploadError::Producer(error)),
            // The registry stopped reading: its error says why.
            (_, Err(error)) => Err(UploadError::Registry(error)),
            (Err(error), Ok(_)) => Err(UploadError::Producer(error)),
            (Ok((value, digest, size)), Ok(location)) => {
                self.commit(&context, repository, location, &digest).await?;
                Ok((value, Blob { digest, size }))
            }
        }
    }

    async fn start_upload(
        &self,
        context: &Context<'_>,
        repository: &str,
    ) -> Result<url::Url, RegistryError> {
        let url = self.upload_url(repository);
        let response = self
            .send(
                context,
                Access::Push(repository),
                true,
                (Method::POST, url),
                |r| r.header(CONTENT_LENGTH, "0"),
            )
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.fail(context, response).await);
        }
        self.location(context, &response)
    }

    /// Sends the whole blob as one PATCH with a streamed body (sent once: a body cannot be
    /// replayed; authentication was settled by the POST before it).
    async fn patch(
        &self,
        context: &Context<'_>,
        repository: &str,
        location: url::Url,
        body: reqwest::Body,
    ) -> Result<url::Url, RegistryError> {
        let body = Mutex::new(Some(body));
        let response = self
            .send(
                context,
                Access::Push(repository),
                false,
                (Method::PATCH, location.clone()),
                |r| {
                    let r = r.header(CONTENT_TYPE, "application/octet-stream");
                    match body.lock().expect("body lock").take() {
                        Some(body) => r.body(body),
                        None => r,
                    }
                },
            )
            .await?;
        if response.status() != StatusCode::ACCEPTED && response.status() != StatusCode::NO_CONTENT
        {
            return Err(self.fail(context, response).await);
        }
        Ok(self.location(context, &response).unwrap_or(location))
    }

    async fn commit(
        &self,
        context: &Context<'_>,
        repository: &str,
        mut location: url::Url,
        digest: &str,
    ) -> Result<(), RegistryError> {
        location.query_pairs_mut().append_pair("digest", digest);
        let response = self
            .send(
                context,
                Access::Push(repository),
                true,
                (Method::PUT, location),
                |r| {
                    r.header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, "0")
                },
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.fail(context, response).await);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_service_is_read_from_a_bearer_challenge() {
        let service = |realm: &str, service: Option<&str>| {
            Some(TokenService {
                realm: realm.to_owned(),
                service: service.map(str::to_owned),
            })
        };
        let table = [
            (
                r#"Bearer realm="https://auth.example/token",service="registry.example""#,
                service("https://auth.example/token", Some("registry.example")),
            ),
            (
                r#"bearer Service="r", REALM="https://a/t", scope="repository:x:pull""#,
                service("https://a/t", Some("r")),
            ),
            (
                r#"Bearer realm="https://a/t""#,
                service("https://a/t", None),
            ),
            (r#"Basic realm="registry""#, None),
            (r#"Bearer service="r""#, None),
            ("", None),
        ];
        for (challenge, expected) in table {
            assert_eq!(token_service(challenge), expected, "{challenge}");
        }
    }
}
