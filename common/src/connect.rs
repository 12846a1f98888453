//! The first connection to a service that may not be up yet (RabbitMQ, Redis: a service
//! started with them, or before them): tried again with growing pauses until the configured
//! time is over, each failure logged.

use backon::{ExponentialBuilder, Retryable};
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Calls `connect` until it succeeds or `timeout` has passed since the first call; the last
/// error is the answer. `service` names what is not reachable in the log line, `url` where
/// (masked: a `CredentialUrl`, or a list of them already masked).
pub(crate) async fn until_reachable<T, E, F, Fut>(
    service: &'static str,
    url: &(dyn Display + Sync),
    timeout: Duration,
    connect: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let deadline = tokio::time::Instant::now() + timeout;
    connect
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(3))
                .with_max_times(usize::MAX),
        )
        .when(|_| tokio::time::Instant::now() < deadline)
        .notify(|error, wait| {
            tracing::warn!(url = %url, error = %error, ?wait, "{service} not reachable yet; retrying");
        })
        .await
}
