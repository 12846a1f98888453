//! The HTTP adapter (reqwest): lookaside downloads (streamed to disk, hashed on the way),
//! yum repo files, and the registry's distribution API (manifest digests and tags; the push
//! itself is osbs-squash's). Transient failures are retried with backoff (backon).

use crate::config::RegistryAuth;
use crate::source::{self, Hasher, SourceEntry, SourceError};
use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// Manifest types we accept, newest first (a manifest list pins a multi-arch base too).
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{what} not found at {url} (HTTP 404){hint}")]
    NotFound {
        what: &'static str,
        url: String,
        hint: &'static str,
    },
    #[error("{what} unreachable at {url}: {detail}")]
    Unreachable {
        what: &'static str,
        url: String,
        detail: String,
    },
    #[error("{what} at {url} answered HTTP {status}: {detail}")]
    Status {
        what: &'static str,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("cannot write {path}: {detail}")]
    Write { path: String, detail: String },
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl HttpError {
    fn is_transient(&self) -> bool {
        match self {
            HttpError::Unreachable { .. } => true,
            HttpError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// The HTTP client with the retry policy.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    attempts: usize,
    insecure_registries: Vec<String>,
    registry_auth: BTreeMap<String, RegistryAuth>,
}

impl Http {
    pub fn new(
        attempts: usize,
        insecure_registries: Vec<String>,
        registry_auth: BTreeMap<String, RegistryAuth>,
    ) -> Http {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("osbs-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with static settings builds");
        Http {
            client,
            attempts: attempts.max(1),
            insecure_registries,
            registry_auth,
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(self.attempts - 1)
    }

    /// Downloads a `sources` entry into `dest` (emptied before each attempt), verifying its
    /// hash. `dest` is an open file: the adapter never opens a path of the checkout.
    pub async fn download_source(
        &self,
        url: &str,
        entry: &SourceEntry,
        dest: &std::fs::File,
    ) -> Result<u64, HttpError> {
        let size = (|| self.download_once(url, entry, dest))
            .retry(self.backoff())
            .when(HttpError::is_transient)
            .await?;
        Ok(size)
    }

    async fn download_once(
        &self,
        url: &str,
        entry: &SourceEntry,
        dest: &std::fs::File,
    ) -> Result<u64, HttpError> {
        const WHAT: &str = "lookaside cache file";
        let response = self.get(WHAT, url, HeaderMap::new()).await?;
        let response = check_status(
            WHAT,
            url,
            response,
            ": upload it with `fedpkg new-sources` or fix the sources file",
        )
        .await?;
        let write_error = |error: std::io::Error| HttpError::Write {
            path: entry.name.clone(),
            detail: error.to_string(),
        };
        let file = dest.try_clone().map_err(write_error)?;
        file.set_len(0).map_err(write_error)?;
        let mut file = tokio::fs::File::from_std(file);
        file.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(write_error)?;
        let mut hasher = Hasher::new(entry.hashtype);
        let mut size = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| unreachable(WHAT, url, &error))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(write_error)?;
        }
        file.flush().await.map_err(write_error)?;
        source::verify(entry, &hasher.finish())?;
        Ok(size)
    }

    /// Fetches a yum `.repo` file.
    pub async fn fetch_repo_file(&self, url: &str) -> Result<Vec<u8>, HttpError> {
        const WHAT: &str = "yum repo file";
        (|| async {
            let response = self.get(WHAT, url, HeaderMap::new()).await?;
            let response = check_status(WHAT, url, response, ": fix the repo URL").await?;
            let bytes = response
                .bytes()
                .await
                .map_err(|error| unreachable(WHAT, url, &error))?;
            Ok(bytes.to_vec())
        })
        .retry(self.backoff())
        .when(HttpError::is_transient)
        .await
    }

    fn registry_base(&self, registry: &str) -> String {
        let host = registry.split(':').next().unwrap_or(registry);
        let plain = host == "localhost"
            || host.starts_with("127.")
            || host == "[::1]"
            || self.insecure_registries.iter().any(|r| r == registry);
        format!("{}://{registry}", if plain { "http" } else { "https" })
    }

    /// The manifest digest `repository:reference` has in `registry`, `None` if it has none.
    pub async fn manifest_digest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, HttpError> {
        let url = format!(
            "{}/v2/{repository}/manifests/{reference}",
            self.registry_base(registry)
        );
        match self.registry_get(&url, MANIFEST_TYPES).await {
            Ok((headers, body)) => Ok(Some(
                headers
                    .get("docker-content-digest")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        use sha2::Digest;
                        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)))
                    }),
            )),
            Err(HttpError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every tag of `repository` in `registry` (none when the repository does not exist).
    pub async fn tags(&self, registry: &str, repository: &str) -> Result<Vec<String>, HttpError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let base = self.registry_base(registry);
        let mut url = format!("{base}/v2/{repository}/tags/list");
        let mut tags = Vec::new();
        loop {
            let (headers, body) = match self.registry_get(&url, "application/json").await {
                Ok(found) => found,
                Err(HttpError::NotFound { .. }) => return Ok(tags),
                Err(error) => return Err(error),
            };
            let page: TagList =
                serde_json::from_slice(&body).map_err(|error| HttpError::Status {
                    what: "registry",
                    url: url.clone(),
                    status: 200,
                    detail: format!("not a tag list: {error}"),
                })?;
            tags.extend(page.tags.unwrap_or_default());
            match headers
                .get("link")
                .and_then(|value| value.to_str().ok())
                .and_then(next_link)
            {
                Some(next) => url = format!("{base}{next}"),
                None => return Ok(tags),
            }
        }
    }

    /// GET with the registry's token dance: a bearer token (anonymous, or with the
    /// registry's credentials) or Basic credentials, as the registry asks.
    async fn registry_get(
        &self,
        url: &str,
        accept: &str,
    ) -> Result<(HeaderMap, Vec<u8>), HttpError> {
        const WHAT: &str = "registry";
        (|| async {
            let mut headers = HeaderMap::new();
            headers.insert(
                ACCEPT,
                accept.parse().map_err(|_| HttpError::Status {
                    what: WHAT,
                    url: url.to_owned(),
                    status: 0,
                    detail: format!("{accept:?} is not a valid Accept header"),
                })?,
            );
            let send = |headers: HeaderMap| self.get(WHAT, url, headers);
            let mut response = send(headers.clone()).await?;
            if response.status() == StatusCode::UNAUTHORIZED {
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let credentials = self.credentials_for(url);
                let authorization = if let Some(challenge) = parse_bearer_challenge(&challenge) {
                    Some(format!(
                        "Bearer {}",
                        self.bearer_token(&challenge, credentials).await?
                    ))
                } else {
                    credentials.map(|auth| {
                        use base64::Engine as _;
                        let pair = format!("{}:{}", auth.username, auth.password.expose());
                        format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(pair)
                        )
                    })
                };
                if let Some(authorization) = authorization {
                    headers.insert(
                        AUTHORIZATION,
                        authorization.parse().map_err(|_| HttpError::Status {
                            what: WHAT,
                            url: url.to_owned(),
                            status: 401,
                            detail: "the registry's token is not a valid header value".into(),
                        })?,
                    );
                    response = send(headers).await?;
                }
            }
            let response = check_status(WHAT, url, response, "").await?;
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|error| unreachable(WHAT, url, &error))?;
            Ok((headers, body.to_vec()))
        })
        .retry(self.backoff())
        .when(HttpError::is_transient)
        .await
    }

    /// The configured credentials of the registry `url` points at.
    fn credentials_for(&self, url: &str) -> Option<&RegistryAuth> {
        let parsed = url::Url::parse(url).ok()?;
        let host = match parsed.port() {
            Some(port) => format!("{}:{port}", parsed.host_str()?),
            None => parsed.host_str()?.to_owned(),
        };
        self.registry_auth.get(&host)
    }

    /// A token from the registry's token service (with the registry's credentials, if
    /// configured; anonymous otherwise).
    async fn bearer_token(
        &self,
        challenge: &BearerChallenge,
        credentials: Option<&RegistryAuth>,
    ) -> Result<String, HttpError> {
        #[derive(serde::Deserialize)]
        struct Token {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let mut url = url::Url::parse(&challenge.realm).map_err(|error| HttpError::Status {
            what: "registry token service",
            url: challenge.realm.clone(),
            status: 401,
            detail: error.to_string(),
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &challenge.service {
                query.append_pair("service", service);
            }
            if let Some(scope) = &challenge.scope {
                query.append_pair("scope", scope);
            }
        }
        let url = url.to_string();
        let mut request = self.client.get(&url);
        if let Some(auth) = credentials {
            request = request.basic_auth(&auth.username, Some(auth.password.expose()));
        }
        let response = request
            .send()
            .await
            .map_err(|error| unreachable("registry token service", &url, &error))?;
        let response = check_status("registry token service", &url, response, "").await?;
        let token: Token = response
            .json()
            .await
            .map_err(|error| unreachable("registry token service", &url, &error))?;
        Ok(if token.token.is_empty() {
            token.access_token
        } else {
            token.token
        })
    }

    async fn get(
        &self,
        what: &'static str,
        url: &str,
        headers: HeaderMap,
    ) -> Result<reqwest::Response, HttpError> {
        self.client
            .get(url)
            .headers(headers)
            .send()
            .await
            .map_err(|error| unreachable(what, url, &error))
    }
}

fn unreachable(what: &'static str, url: &str, error: &reqwest::Error) -> HttpError {
    // reqwest's Display stops at the outermost layer; the cause says "connection refused".
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail = format!("{detail}: {cause}");
        source = cause.source();
    }
    HttpError::Unreachable {
        what,
        url: osbs_common::config::mask_url_password(url),
        detail,
    }
}

async fn check_status(
    what: &'static str,
    url: &str,
    response: reqwest::Response,
    not_found_hint: &'static str,
) -> Result<reqwest::Response, HttpError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let url = osbs_common::config::mask_url_password(url);
    if status == StatusCode::NOT_FOUND {
        return Err(HttpError::NotFound {
            what,
            url,
            hint: not_found_hint,
        });
    }
    let body = response.text().await.unwrap_or_default();
    Err(HttpError::Status {
        what,
        url,
        status: status.as_u16(),
        detail: osbs_common::bus::one_line(&body, 300),
    })
}

/// A `WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

/// Parses a bearer challenge; `None` for other schemes.
pub fn parse_bearer_challenge(header: &str) -> Option<BearerChallenge> {
    let rest = header.trim().strip_prefix("Bearer ")?;
    let mut realm = None;
    let mut service = None;
    let mut scope = None;
    // Values are quoted and may hold commas (scopes do): split on `,` outside quotes.
    let mut parts = Vec::new();
    let (mut current, mut quoted) = (String::new(), false);
    for c in rest.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    for part in parts {
        if let Some((key, value)) = part.trim().split_once('=') {
            let value = value.trim().to_owned();
            match key.trim() {
                "realm" => realm = Some(value),
                "service" => service = Some(value),
                "scope" => scope = Some(value),
                _ => {}
            }
        }
    }
    Some(BearerChallenge {
        realm: realm?,
        service,
        scope,
    })
}

/// The path of a `Link: </v2/...>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    let (target, params) = header.split_once(';')?;
    params.contains("rel=\"next\"").then(|| {
        target
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges() {
        let parsed = parse_bearer_challenge(
            r#"Bearer realm="https://auth.example.org/token",service="registry.example.org",scope="repository:f41/httpd:pull,push""#,
        )
        .unwrap();
        assert_eq!(parsed.realm, "https://auth.example.org/token");
        assert_eq!(parsed.service.as_deref(), Some("registry.example.org"));
        assert_eq!(
            parsed.scope.as_deref(),
            Some("repository:f41/httpd:pull,push")
        );
        assert!(parse_bearer_challenge("Basic realm=\"x\"").is_none());
        assert!(parse_bearer_challenge("Bearer service=\"x\"").is_none());
    }

    #[test]
    fn pagination_links() {
        assert_eq!(
            next_link(r#"</v2/app/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        let http = Http::new(1, vec!["registry.internal:5000".into()], BTreeMap::new());
        assert_eq!(
            http.registry_base("127.0.0.1:5000"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            http.registry_base("localhost:5000"),
            "http://localhost:5000"
        );
        assert_eq!(
            http.registry_base("registry.internal:5000"),
            "http://registry.internal:5000"
        );
        assert_eq!(http.registry_base("quay.io"), "https://quay.io");
    }
}
