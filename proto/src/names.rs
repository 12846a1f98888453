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

/// The queue of the arch jobs of `arch` (a Koji name): `osbs.jobs.aarch64` (DESIGN.md
/// "Architectures"). `arch` empty: the builds' own queue, `osbs.jobs`.
pub fn jobs_queue(arch: &str) -> String {
    if arch.is_empty() {
        QUEUE_JOBS.to_owned()
    } else {
        format!("{QUEUE_JOBS}.{arch}")
    }
}

/// The routing key of `arch`'s jobs: `job.aarch64` (`job` for an empty `arch`).
pub fn job_routing_key(arch: &str) -> String {
    if arch.is_empty() {
        ROUTING_JOB.to_owned()
    } else {
        format!("{ROUTING_JOB}.{arch}")
    }
}

/// Where lease copies of `arch`'s running jobs wait: `osbs.jobs.aarch64.lease`
/// (`osbs.jobs.lease` for an empty `arch`).
pub fn job_lease_queue(arch: &str) -> String {
    format!("{}.lease", jobs_queue(arch))
}

/// The routing key of lease copies of `arch`'s jobs: `job.aarch64.lease` (`job.lease`).
pub fn job_lease_routing_key(arch: &str) -> String {
    format!("{}.lease", job_routing_key(arch))
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
        let table = [
            ("", "osbs.jobs", "job", "osbs.jobs.lease", "job.lease"),
            (
                "aarch64",
                "osbs.jobs.aarch64",
                "job.aarch64",
                "osbs.jobs.aarch64.lease",
                "job.aarch64.lease",
            ),
        ];
        for (arch, queue, key, lease, lease_key) in table {
            assert_eq!(jobs_queue(arch), queue);
            assert_eq!(job_routing_key(arch), key);
            assert_eq!(job_lease_queue(arch), lease);
            assert_eq!(job_lease_routing_key(arch), lease_key);
        }
        assert_eq!(jobs_queue(""), QUEUE_JOBS);
        assert_eq!(job_lease_queue(""), QUEUE_JOB_LEASES);
        assert_eq!(job_lease_routing_key(""), ROUTING_JOB_LEASE);
        assert_eq!(
            external_state_routing_key("org.fedoraproject.prod"),
            "org.fedoraproject.prod.osbs.build.state.change"
        );
    }
}
