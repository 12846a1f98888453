//! The registry adapter: the distribution API over reqwest (manifests, blob existence,
//! cross-repository mounts, chunked streamed uploads whose digest is computed while the
//! bytes go out), with Basic and Bearer-token authentication and retries (backon) on
//! transient failures. Credentials and tokens only ever travel in `Authorization`
//! headers marked sensitive: no error or log line built here contains them.

use crate::SquashError;
use crate::auth::{self, Challenge};
use crate::engine::ChannelWriter;
use crate::manifest::{ACCEPT, MANIFEST_LIMIT};
use backon::{ExponentialBuilder, Retryable};
use base64::Engine as _;
use bytes::Bytes;
use osbs_common::config::Secret;
use reqwest::header::{
    ACCEPT as ACCEPT_HEADER, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What went wrong talking to the registry (never with a credential in it).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "registry {registry} is unreachable (while trying to {action}): {detail}; check that it runs and that --insecure/https is right"
    )]
    Unreachable {
        registry: String,
        action: String,
        detail: String,
    },
    #[error("registry {registry} answered HTTP {status} to {action}: {detail}")]
    Status {
        registry: String,
        action: String,
        status: u16,
        detail: String,
    },
    #[error(
        "registry {registry} refused access (while trying to {action}): {detail}; check the registry credentials and the user's push rights"
    )]
    Denied {
        registry: String,
        action: String,
        detail: String,
    },
    #[error("registry {registry} gave an unusable answer to {action}: {detail}")]
    Protocol {
        registry: String,
        action: String,
        detail: String,
    },
}

impl RegistryError {
    /// Worth another attempt: the network, the registry's 5xx, 408 and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            _ => false,
        }
    }
}

/// Whether a squash error is a registry error worth another attempt.
pub(crate) fn transient(error: &SquashError) -> bool {
    matches!(error, SquashError::Registry(error) if error.is_transient())
}

/// A blob that is in the target repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blob {
    pub digest: String,
    pub size: u64,
}

/// How a blob got into the target repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    AlreadyThere,
    Mounted,
    Copied,
}

/// Writes the bytes of one blob; returns its value and, when it knows it, the bytes' digest
/// (`sha256:…`), which spares hashing them twice. Called again on a retried upload.
pub(crate) type Producer<T> =
    Arc<dyn Fn(&mut dyn Write) -> Result<(T, Option<String>), SquashError> + Send + Sync>;

/// One registry, with the credentials and scopes of one squash.
#[derive(Debug)]
pub(crate) struct Registry {
    client: reqwest::Client,
    base: url::Url,
    name: String,
    credentials: Option<(String, Secret)>,
    scopes: Vec<String>,
    authorization: Mutex<Option<HeaderValue>>,
    attempts: usize,
    /// Each failure that was retried, for the caller's build log (the service log gets
    /// them at once through tracing).
    retried: std::sync::Mutex<Vec<String>>,
}

impl Registry {
    /// `repositories`: the target first, then those blobs are mounted from.
    pub(crate) fn new(
        registry: &str,
        insecure: bool,
        credentials: Option<(String, Secret)>,
        repositories: &[&str],
        attempts: usize,
    ) -> Result<Registry, RegistryError> {
        let protocol = |detail: String| RegistryError::Protocol {
            registry: registry.to_owned(),
            action: "connect".into(),
            detail,
        };
        let base = url::Url::parse(&format!(
            "{}://{registry}/",
            if insecure { "http" } else { "https" }
        ))
        .map_err(|e| protocol(format!("'{registry}' is not a registry address: {e}")))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(300))
            .user_agent(concat!("osbs-squash/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| protocol(e.to_string()))?;
        Ok(Registry {
            client,
            base,
            name: registry.to_owned(),
            credentials,
            scopes: auth::scopes(repositories[0], &repositories[1..], None),
            authorization: Mutex::new(None),
            attempts: attempts.max(1),
            retried: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The failures retried so far, oldest first.
    pub(crate) fn retried(&self) -> Vec<String> {
        self.retried.lock().expect("retried lock").clone()
    }

    fn url(&self, path: &str) -> url::Url {
        self.base
            .join(path)
            .expect("registry paths are relative URLs")
    }

    fn unreachable(&self, action: &str, error: reqwest::Error) -> RegistryError {
        RegistryError::Unreachable {
            registry: self.name.clone(),
            action: action.to_owned(),
            detail: error.without_url().to_string(),
        }
    }

    fn protocol(&self, action: &str, detail: impl Into<String>) -> RegistryError {
        RegistryError::Protocol {
            registry: self.name.clone(),
            action: action.to_owned(),
            detail: detail.into(),
        }
    }

    /// The error for an unexpected answer, with the registry's own error text.
    async fn status_error(&self, action: &str, response: Response) -> RegistryError {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let detail = error_summary(&body);
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            RegistryError::Denied {
                registry: self.name.clone(),
                action: action.to_owned(),
                detail: format!("HTTP {}: {detail}", status.as_u16()),
            }
        } else {
            RegistryError::Status {
                registry: self.name.clone(),
                action: action.to_owned(),
                status: status.as_u16(),
                detail,
            }
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(self.attempts - 1)
            .with_jitter()
    }

    /// Runs `operation` again on transient failures.
    pub(crate) async fn retry<T, F, Fut>(
        &self,
        action: &str,
        operation: F,
    ) -> Result<T, SquashError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SquashError>>,
    {
        operation
            .retry(self.backoff())
            .when(transient)
            .notify(|error, wait| {
                tracing::warn!(registry = %self.name, %error, ?wait, "{action} failed; retrying");
                self.retried
                    .lock()
                    .expect("retried lock")
                    .push(format!("{action} failed ({error}); retried after {wait:?}"));
            })
            .await
    }

    /// Sends a request built by `build`, answering one authentication challenge. A request
    /// with a streamed body is sent once (`replayable: false`): authentication is settled
    /// by the requests before it.
    async fn send(
        &self,
        action: &str,
        replayable: bool,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        for round in 0..2 {
            let mut request = build(&self.client);
            let current = self.authorization.lock().expect("auth lock").clone();
            if let Some(value) = current {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.unreachable(action, e))?;
            if response.status() != StatusCode::UNAUTHORIZED || round == 1 || !replayable {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|value| value.to_str().ok())
                .and_then(auth::parse_challenge);
            let Some(challenge) = challenge else {
                return Ok(response);
            };
            self.authorize(action, challenge).await?;
        }
        unreachable!("the loop returns in its second round")
    }

    /// Answers a challenge: Basic with the credentials, Bearer with a token from the realm.
    async fn authorize(&self, action: &str, challenge: Challenge) -> Result<(), RegistryError> {
        let denied = |detail: &str| RegistryError::Denied {
            registry: self.name.clone(),
            action: action.to_owned(),
            detail: detail.to_owned(),
        };
        let basic = self.credentials.as_ref().map(|(user, password)| {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", password.expose()));
            sensitive(&format!("Basic {encoded}"))
        });
        let value = match challenge {
            Challenge::Basic => {
                basic.ok_or_else(|| denied("it wants a user and password and none was given"))?
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let mut scopes = self.scopes.clone();
                if let Some(scope) = scope
                    && !scopes.contains(&scope)
                {
                    scopes.push(scope);
                }
                let url = auth::token_url(&realm, service.as_deref(), &scopes)
                    .map_err(|e| self.protocol(action, format!("its token realm: {e}")))?;
                let mut request = self.client.get(url);
                if let Some(basic) = basic {
                    request = request.header(AUTHORIZATION, basic);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| self.unreachable("get a token", e))?;
                if !response.status().is_success() {
                    return Err(denied(&format!(
                        "its token service answered HTTP {}",
                        response.status().as_u16()
                    )));
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    #[serde(default)]
                    token: String,
                    #[serde(default)]
                    access_token: String,
                }
                let token: Token = response
                    .json()
                    .await
                    .map_err(|_| self.protocol(action, "its token answer is not JSON"))?;
                let token = if token.token.is_empty() {
                    token.access_token
                } else {
                    token.token
                };
                if token.is_empty() {
                    return Err(self.protocol(action, "its token answer holds no token"));
                }
                sensitive(&format!("Bearer {token}"))
            }
        };
        *self.authorization.lock().expect("auth lock") = Some(value);
        Ok(())
    }

    /// Fetches a manifest or index: its Content-Type and bytes.
    pub(crate) async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(String, Vec<u8>), SquashError> {
        let action = format!("read the manifest {repository}:{reference}");
        self.retry(&action, || async {
            let url = self.url(&format!("v2/{repository}/manifests/{reference}"));
            let response = self
                .send(&action, true, |c| {
                    c.get(url.clone()).header(ACCEPT_HEADER, ACCEPT)
                })
                .await?;
            if !response.status().is_success() {
                return Err(self.status_error(&action, response).await.into());
            }
            let media_type = header(&response, CONTENT_TYPE).unwrap_or_default();
            let body = response
                .bytes()
                .await
                .map_err(|e| self.unreachable(&action, e))?;
            if body.len() > MANIFEST_LIMIT {
                return Err(self
                    .protocol(&action, format!("it is {} bytes", body.len()))
                    .into());
            }
            Ok((media_type, body.to_vec()))
        })
        .await
    }

    /// Whether `repository` has the blob.
    pub(crate) async fn has_blob(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<bool, SquashError> {
        let action = format!("look for blob {digest} in {repository}");
        self.retry(&action, || async {
            let url = self.url(&format!("v2/{repository}/blobs/{digest}"));
            let response = self.send(&action, true, |c| c.head(url.clone())).await?;
            match response.status() {
                status if status.is_success() => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(self.status_error(&action, response).await.into()),
            }
        })
        .await
    }

    /// Puts `digest` into `repository`: already there, mounted from `from`, or (when the
    /// registry does not mount) copied from `from` through us, streamed.
    pub(crate) async fn ensure_blob(
        &self,
        repository: &str,
        digest: &str,
        from: &str,
    ) -> Result<Arrival, SquashError> {
        if self.has_blob(repository, digest).await? {
            return Ok(Arrival::AlreadyThere);
        }
        let action = format!("mount blob {digest} from {from} into {repository}");
        let mounted = self
            .retry(&action, || async {
                let mut url = self.url(&format!("v2/{repository}/blobs/uploads/"));
                url.query_pairs_mut()
                    .append_pair("mount", digest)
                    .append_pair("from", from);
                let response = self
                    .send(&action, true, |c| {
                        c.post(url.clone()).header(CONTENT_LENGTH, "0")
                    })
                    .await?;
                match response.status() {
                    StatusCode::CREATED => Ok(true),
                    StatusCode::ACCEPTED => {
                        // An upload was opened instead of a mount: close it, copy below.
                        if let Ok(location) = self.location(&action, &response) {
                            let _ = self
                                .send(&action, true, |c| c.delete(location.clone()))
                                .await;
                        }
                        Ok(false)
                    }
                    _ => Err(self.status_error(&action, response).await.into()),
                }
            })
            .await?;
        if mounted {
            return Ok(Arrival::Mounted);
        }
        let action = format!("copy blob {digest} from {from} into {repository}");
        self.retry(&action, || async {
            let url = self.url(&format!("v2/{from}/blobs/{digest}"));
            let response = self.send(&action, true, |c| c.get(url.clone())).await?;
            if !response.status().is_success() {
                return Err(self.status_error(&action, response).await.into());
            }
            let location = self.start_upload(repository).await?;
            let body = reqwest::Body::wrap_stream(response.bytes_stream());
            let location = self.patch(&action, location, body).await?;
            self.commit(&action, location, digest, None).await?;
            Ok(Arrival::Copied)
        })
        .await
    }

    /// Uploads `bytes` unless the repository has them already.
    pub(crate) async fn put_blob(
        &self,
        repository: &str,
        bytes: Bytes,
    ) -> Result<Blob, SquashError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let blob = Blob {
            digest: digest.clone(),
            size: bytes.len() as u64,
        };
        if self.has_blob(repository, &digest).await? {
            return Ok(blob);
        }
        let action = format!("upload blob {digest} to {repository}");
        self.retry(&action, || async {
            let location = self.start_upload(repository).await?;
            self.commit(&action, location, &digest, Some(bytes.clone()))
                .await
        })
        .await?;
        Ok(blob)
    }

    /// Streams the bytes `produce` writes into a new blob of `repository`: POST, one
    /// chunked PATCH fed through a bounded channel, PUT with the digest computed on the way
    /// (or given by the producer). A transient failure starts the whole upload again.
    pub(crate) async fn upload_stream<T: Send + 'static>(
        &self,
        repository: &str,
        what: &str,
        hash_here: bool,
        produce: Producer<T>,
    ) -> Result<(T, Blob), SquashError> {
        let action = format!("upload {what} to {repository}");
        self.retry(&action, || {
            let produce = Arc::clone(&produce);
            let action = action.clone();
            async move {
                let location = self.start_upload(repository).await?;
                let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
                let producer = tokio::task::spawn_blocking(move || {
                    let mut out = crate::merge::HashingWriter {
                        inner: ChannelWriter { sender },
                        hasher: hash_here.then(Sha256::new),
                        count: 0,
                    };
                    match produce(&mut out) {
                        Ok((value, known)) => {
                            let digest = match (out.hasher.take(), known) {
                                (Some(hasher), _) => {
                                    format!("sha256:{}", hex::encode(hasher.finalize()))
                                }
                                (None, Some(known)) => known,
                                (None, None) => {
                                    unreachable!("a producer that does not hash gives its digest")
                                }
                            };
                            Ok((value, digest, out.count))
                        }
                        Err(error) => {
                            // Cut the request so the registry never sees a short blob end well.
                            let _ = out.inner.sender.blocking_send(Err(io::Error::other(
                                "the squash failed while streaming",
                            )));
                            Err(error)
                        }
                    }
                });
                let body = futures::stream::unfold(receiver, |mut receiver| async move {
                    receiver.recv().await.map(|item| (item, receiver))
                });
                let patched = self
                    .patch(&action, location, reqwest::Body::wrap_stream(body))
                    .await;
                let produced = producer
                    .await
                    .map_err(|e| SquashError::Io(io::Error::other(e)))?;
                let (value, digest, size) = match (produced, patched) {
                    (Err(error), _) if !is_broken_pipe(&error) => return Err(error),
                    (_, Err(error)) => return Err(error),
                    (Err(error), Ok(_)) => return Err(error),
                    (Ok(produced), Ok(location)) => {
                        let (value, digest, size) = produced;
                        self.commit(&action, location, &digest, None).await?;
                        (value, digest, size)
                    }
                };
                Ok((value, Blob { digest, size }))
            }
        })
        .await
    }

    /// PUTs a manifest under `reference`; returns the digest the registry gave it.
    pub(crate) async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Option<String>, SquashError> {
        let action = format!("put the manifest {repository}:{reference}");
        self.retry(&action, || async {
            let url = self.url(&format!("v2/{repository}/manifests/{reference}"));
            let response = self
                .send(&action, true, |c| {
                    c.put(url.clone())
                        .header(CONTENT_TYPE, media_type)
                        .body(bytes.clone())
                })
                .await?;
            if response.status() != StatusCode::CREATED && !response.status().is_success() {
                return Err(self.status_error(&action, response).await.into());
            }
            Ok(header(
                &response,
                "docker-content-digest".parse().expect("header name"),
            ))
        })
        .await
    }

    async fn start_upload(&self, repository: &str) -> Result<url::Url, SquashError> {
        let action = format!("start an upload to {repository}");
        let url = self.url(&format!("v2/{repository}/blobs/uploads/"));
        let response = self
            .send(&action, true, |c| {
                c.post(url.clone()).header(CONTENT_LENGTH, "0")
            })
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(&action, response).await.into());
        }
        Ok(self.location(&action, &response)?)
    }

    async fn patch(
        &self,
        action: &str,
        location: url::Url,
        body: reqwest::Body,
    ) -> Result<url::Url, SquashError> {
        let body = Mutex::new(Some(body));
        let response = self
            .send(action, false, |c| {
                let mut request = c
                    .request(Method::PATCH, location.clone())
                    .header(CONTENT_TYPE, "application/octet-stream");
                if let Some(body) = body.lock().expect("body lock").take() {
                    request = request.body(body);
                }
                request
            })
            .await?;
        if response.status() != StatusCode::ACCEPTED && response.status() != StatusCode::NO_CONTENT
        {
            return Err(self.status_error(action, response).await.into());
        }
        Ok(self.location(action, &response).unwrap_or(location))
    }

    async fn commit(
        &self,
        action: &str,
        mut location: url::Url,
        digest: &str,
        body: Option<Bytes>,
    ) -> Result<(), SquashError> {
        location.query_pairs_mut().append_pair("digest", digest);
        let response = self
            .send(action, true, |c| {
                let request = c
                    .put(location.clone())
                    .header(CONTENT_TYPE, "application/octet-stream");
                match &body {
                    Some(body) => request.body(body.clone()),
                    None => request.header(CONTENT_LENGTH, "0"),
                }
            })
            .await?;
        if response.status() != StatusCode::CREATED && !response.status().is_success() {
            return Err(self.status_error(action, response).await.into());
        }
        Ok(())
    }

    fn location(&self, action: &str, response: &Response) -> Result<url::Url, RegistryError> {
        let location = header(response, LOCATION)
            .ok_or_else(|| self.protocol(action, "its answer has no Location"))?;
        self.base
            .join(&location)
            .map_err(|e| self.protocol(action, format!("its Location is not a URL: {e}")))
    }
}

fn header(response: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn sensitive(text: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

fn is_broken_pipe(error: &SquashError) -> bool {
    matches!(error, SquashError::Io(error) if error.kind() == io::ErrorKind::BrokenPipe)
}

/// The registry's `{"errors": [{"code", "message"}]}` as one short line.
pub(crate) fn error_summary(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let text = match serde_json::from_str::<Errors>(body) {
        Ok(errors) if !errors.errors.is_empty() => errors
            .errors
            .iter()
            .map(|e| format!("{} ({})", e.message, e.code))
            .collect::<Vec<_>>()
            .join("; "),
        _ if body.trim().is_empty() => "no details".to_owned(),
        _ => body.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    let mut short: String = text.chars().take(300).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// Drains a response body (used by tests of the adapter through the real registry).
#[cfg(test)]
async fn drain(response: Response) -> usize {
    use futures::StreamExt;
    let mut stream = response.bytes_stream();
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        n += chunk.map(|c| c.len()).unwrap_or(0);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_read_as_one_line() {
        for (body, expected) in [
            (
                r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"x"}]}"#,
                "blob unknown to registry (BLOB_UNKNOWN)",
            ),
            ("", "no details"),
            ("<html>\n bad\n gateway</html>", "<html> bad gateway</html>"),
        ] {
            assert_eq!(error_summary(body), expected);
        }
        assert_eq!(error_summary(&"x".repeat(1000)).chars().count(), 301);
    }

    #[test]
    fn only_network_and_server_failures_are_transient() {
        let status = |status| RegistryError::Status {
            registry: "r".into(),
            action: "a".into(),
            status,
            detail: String::new(),
        };
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(400).is_transient());
        assert!(!status(404).is_transient());
        let denied = RegistryError::Denied {
            registry: "r".into(),
            action: "a".into(),
            detail: String::new(),
        };
        assert!(!denied.is_transient());
    }

    #[tokio::test]
    async fn blobs_go_up_and_come_back_through_the_real_registry() {
        osbs_testkit::require_registry();
        let registry = Registry::new(
            osbs_testkit::REGISTRY,
            true,
            None,
            &["osbs-squash-test/adapter"],
            3,
        )
        .unwrap();
        let data = Bytes::from(format!("adapter test {:?}", std::time::SystemTime::now()));
        let blob = registry
            .put_blob("osbs-squash-test/adapter", data.clone())
            .await
            .unwrap();
        assert!(
            registry
                .has_blob("osbs-squash-test/adapter", &blob.digest)
                .await
                .unwrap()
        );
        let url = registry.url(&format!(
            "v2/osbs-squash-test/adapter/blobs/{}",
            blob.digest
        ));
        let response = registry
            .send("get", true, |c| c.get(url.clone()))
            .await
            .unwrap();
        assert_eq!(drain(response).await, data.len());
        let missing = format!("sha256:{}", "0".repeat(64));
        assert!(
            !registry
                .has_blob("osbs-squash-test/adapter", &missing)
                .await
                .unwrap()
        );
    }
}
