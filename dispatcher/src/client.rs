//! For publishers of explicit build requests (the CLI): publish a [`BuildRequest`] as
//! fedora-messaging does, and find out what became of it.

use crate::events::BuildRequest;
use osbs_common::bus::{Bus, BusError, Outgoing};
use osbs_common::store::{RequestOutcome, Store, StoreError};
use osbs_proto::names;

/// Publishes `request` on `amq.topic` (routing key `<topic_prefix>.osbs.build.request`) and
/// waits for the broker's confirm. Returns the message id. Fails with
/// [`BusError::Unroutable`] when no dispatcher has declared `osbs.events` yet. Follow the
/// request with [`crate::request_outcome`] using its `request_id`.
pub async fn publish_build_request(bus: &Bus, request: &BuildRequest) -> Result<String, BusError> {
    let message_id = uuid::Uuid::new_v4().to_string();
    let message = request.message(
        &bus.config().topic_prefix,
        osbs_common::telemetry::now_ms(),
        &message_id,
    );
    bus.publish(Outgoing {
        exchange: names::EXCHANGE_TOPIC,
        routing_key: &message.routing_key,
        body: &message.body,
        properties: message.properties,
        mandatory: true,
    })
    .await?;
    Ok(message_id)
}

/// What became of the build request with `request_id` ([`BuildRequest::request_id`]), once
/// the dispatcher has handled it; `None` before (or when its body was unreadable).
pub async fn request_outcome(
    store: &Store,
    request_id: &str,
) -> Result<Option<RequestOutcome>, StoreError> {
    store.request_outcome(request_id).await
}
