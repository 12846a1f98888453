//! What became of an explicit build request, in Redis beside the build records: the
//! dispatcher writes it when it has handled the request ([`RequestOutcome::fields`] under
//! [`key`]), the CLI waits for it ([`request_outcome`]) to learn which build answers it.
//!
//! `<prefix>:request:<request_id>` hash `{outcome, build_id, reason, at_ms}`, expiring with
//! the dispatcher's other keys.

use crate::store::{Store, StoreError};
use redis::AsyncCommands;
use std::collections::HashMap;

/// What became of an explicit build request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOutcome {
    /// `enqueued` (a new build), `duplicate` (an existing build answers it), `ignored` (the
    /// routing does not build that repository) or `refused` (invalid; `reason` says why).
    pub outcome: String,
    /// The build answering the request: new or existing.
    pub build_id: Option<String>,
    pub reason: String,
    pub at_ms: i64,
}

impl RequestOutcome {
    /// The hash fields it is stored as.
    pub fn fields(&self) -> [(&'static str, String); 4] {
        [
            ("outcome", self.outcome.clone()),
            ("build_id", self.build_id.clone().unwrap_or_default()),
            ("reason", self.reason.clone()),
            ("at_ms", self.at_ms.to_string()),
        ]
    }

    /// Read back from its hash fields.
    fn from_fields(mut hash: HashMap<String, String>) -> RequestOutcome {
        let mut take = |name: &str| hash.remove(name).unwrap_or_default();
        RequestOutcome {
            outcome: take("outcome"),
            build_id: Some(take("build_id")).filter(|id| !id.is_empty()),
            reason: take("reason"),
            at_ms: take("at_ms").parse().unwrap_or(0),
        }
    }
}

/// The key of the outcome of `request_id`.
pub fn key(store: &Store, request_id: &str) -> String {
    store.key(&["request", request_id])
}

/// What became of the build request with `request_id` (its `request_id` field), once the
/// dispatcher has handled it; `None` before (or when its body was unreadable).
pub async fn request_outcome(
    store: &Store,
    request_id: &str,
) -> Result<Option<RequestOutcome>, StoreError> {
    let hash: HashMap<String, String> = store
        .connection()
        .hgetall(key(store, request_id))
        .await
        .map_err(|source| StoreError::Redis {
            operation: "hgetall",
            source,
        })?;
    Ok((!hash.is_empty()).then(|| RequestOutcome::from_fields(hash)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let table = [
            RequestOutcome {
                outcome: "enqueued".into(),
                build_id: Some("b-1".into()),
                reason: String::new(),
                at_ms: 1_736_936_523_000,
            },
            RequestOutcome {
                outcome: "refused".into(),
                build_id: None,
                reason: "unknown target".into(),
                at_ms: 7,
            },
        ];
        for outcome in table {
            let hash = outcome
                .fields()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect();
            assert_eq!(RequestOutcome::from_fields(hash), outcome);
        }
    }
}
