//! The HTTP adapter (reqwest): lookaside downloads (streamed to disk, hashed on the way) and
//! yum repo files. Transient failures are retried with backoff (backon). Registry traffic
//! is not here: it is osbs-registry's.

use crate::source::{self, Hasher, SourceEntry, SourceError};
use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use std::time::Duration;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

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
}

impl Http {
    pub fn new(attempts: usize) -> Http {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("osbs-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with static settings builds");
        Http {
            client,
            attempts: attempts.max(1),
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
