//! Names on the bus: exchanges, queues, routing keys and message types (DESIGN.md "Events").

use crate::v1::BuildState;

/// Where fedora-messaging publishes, and where our JSON state events go (the only place a
/// state change is announced).
pub const EXCHANGE_TOPIC: &str = "amq.topic";
/// Internal topic exchange for protobuf messages: jobs and results only.
pub const EXCHANGE_INTERNAL: &str = "osbs";
/// Dead letters: routing key = the queue the message was refused on.
pub const EXCHANGE_DEAD: &str = "osbs.dlx";

/// Incoming fedora-messaging events (bound to `amq.topic`), consumed by the dispatcher.
pub const QUEUE_EVENTS: &str = "osbs.events";
/// `BuildJob`s, consumed by workers.
pub const QUEUE_JOBS: &str = "osbs.jobs";
/// Leases of long-running jobs: each message expires back into `osbs.jobs` (see the worker).
pub const QUEUE_JOB_LEASES: &str = "osbs.jobs.lease";
/// `BuildResult`s, consumed by the koji-bridge.
pub const QUEUE_RESULTS: &str = "osbs.results";

/// Routing key of `BuildJob`s on the internal exchange.
pub const ROUTING_JOB: &str = "job";
/// Routing key of lease copies of running jobs.
pub const ROUTING_JOB_LEASE: &str = "job.lease";

/// fedora-messaging topics (after the `<prefix>.`) the dispatcher listens to.
pub const TOPIC_GIT_RECEIVE: &str = "git.receive";
pub const TOPIC_BUILD_REQUEST: &str = "osbs.build.request";
/// Topic of our external JSON state events.
pub const TOPIC_STATE_CHANGE: &str = "osbs.build.state.change";

/// fedora-messaging schema names (the `fedora_messaging_schema` header).
pub const SCHEMA_GIT_RECEIVE: &str = "fedora_messaging_git_hook.commit.v1";
pub const SCHEMA_BUILD_REQUEST: &str = "osbs.build.request.v1";
pub const SCHEMA_STATE_CHANGE: &str = "osbs.build.state.change.v1";

/// AMQP `type` property of each protobuf message.
pub const TYPE_BUILD_JOB: &str = "BuildJob";
pub const TYPE_BUILD_RESULT: &str = "BuildResult";
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Headers we add to a dead-lettered message.
pub const HEADER_DEAD_REASON: &str = "x-osbs-reason";
pub const HEADER_DEAD_QUEUE: &str = "x-osbs-queue";
pub const HEADER_DEAD_EXCHANGE: &str = "x-osbs-original-exchange";
pub const HEADER_DEAD_ROUTING_KEY: &str = "x-osbs-original-routing-key";
pub const HEADER_DEAD_AT: &str = "x-osbs-dead-at";

/// Headers of a copy waiting in a retry queue after a transient failure (see
/// [`retry_queue`]): how many retries came before it, and since when (Unix ms) the message
/// has been failing. Removed again when the message is dead-lettered, so that a replay
/// starts a fresh retry window.
pub const HEADER_RETRIES: &str = "x-osbs-retries";
pub const HEADER_FAILING_SINCE: &str = "x-osbs-failing-since";

/// The delays of the retry queues, shortest first: a message retried after a transient
/// failure waits in the queue of one of these delays (its queue-wide `x-message-ttl`), then
/// dead-letters back into the queue it came from. One queue per delay, because RabbitMQ
/// expires messages only at the head of a queue: mixed delays in one queue would hold the
/// short ones behind the long.
pub const RETRY_DELAYS_SECS: [u64; 7] = [5, 10, 20, 40, 80, 160, 300];

/// The retry queue of `queue` for `delay_secs` (one of [`RETRY_DELAYS_SECS`]):
/// `osbs.jobs.retry.20s`.
pub fn retry_queue(queue: &str, delay_secs: u64) -> String {
    format!("{queue}.retry.{delay_secs}s")
}

/// The dead-letter queue of `queue`.
pub fn dead_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// Routing key of a result of a build that ended in `state`: `build.<state>`.
pub fn state_routing_key(state: BuildState) -> String {
    format!("build.{}", state.name())
}

/// Routing key of a JSON state event: `<prefix>.osbs.build.state.change`.
pub fn external_state_routing_key(topic_prefix: &str) -> String {
    format!("{topic_prefix}.{TOPIC_STATE_CHANGE}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys() {
        assert_eq!(state_routing_key(BuildState::Complete), "build.complete");
        assert_eq!(
            state_routing_key(BuildState::ImportFailed),
            "build.import_failed"
        );
        assert_eq!(dead_queue(QUEUE_EVENTS), "osbs.events.dead");
        assert_eq!(
            external_state_routing_key("org.fedoraproject.prod"),
            "org.fedoraproject.prod.osbs.build.state.change"
        );
    }
}
