//! The imperative shell around [`crate::decide`]: carries out one decision against Redis and
//! RabbitMQ, then acks, dead-letters or requeues the delivery.
//!
//! For a job (the order is what makes it safe to crash anywhere):
//! 1. a message the broker redelivers, seen before (by `message_id`), whose record is finished
//!    is a duplicate: ack (a republished message reaches the same build through step 2);
//! 2. `store.create` with the plan's idempotency key: a new queued record, or the existing
//!    build of the same (repository, commit, target, options). An explicit request whose
//!    existing build ended `failed`, `canceled` or `superseded` makes a new build (keyed
//!    `<key>:after:<old id>`, so that asking again names that new build);
//! 3. pushes: become the branch's newest build ([`Records::advance_tip`]) and supersede the
//!    queued build they replace (CAS `queued → superseded`: a worker that started first wins);
//! 4. publish the job (if still queued) and the `queued` state change, both confirmed;
//! 5. mark the record `enqueued=1`, remember the message id and the request outcome (one
//!    atomic round trip); ack.
//!
//! A crash before 5 leaves the message unacked: its redelivery finds the record without
//! `enqueued` and does 3–5 again. Transient failures requeue the delivery after a pause;
//! a record that cannot be read is dead-lettered with the reason.

use crate::build_id;
use crate::decide::{Decision, Plan};
use crate::records::{Records, Tip, field};
use osbs_common::bus::{self, Bus, BusError, Delivery};
use osbs_common::http::Metrics;
use osbs_common::request::RequestOutcome;
use osbs_common::store::{self, Change, Created, Store, StoreError};
use osbs_proto::names;
use osbs_proto::v1::{BuildJob, BuildState, BuildStateChange, Trigger};
use std::sync::Arc;
use std::time::Duration;

/// How many failed builds of one request key are rebuilt before the chain is considered
/// broken (each explicit request after a failure adds one).
const MAX_REBUILDS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(
        "idempotency key {key} has been rebuilt {MAX_REBUILDS} times: inspect its builds with `osbs list`"
    )]
    TooManyRebuilds { key: String },
}

impl DispatchError {
    /// Whether retrying cannot help (the delivery is dead-lettered instead of requeued).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            DispatchError::Store(StoreError::Corrupt { .. } | StoreError::NotFound(_))
                | DispatchError::TooManyRebuilds { .. }
        )
    }
}

/// What happened to an event that asked for a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new build, and the queued builds it superseded.
    Created {
        build_id: String,
        superseded: Vec<String>,
    },
    /// An existing build answers the event; nothing new was published.
    Duplicate { build_id: String },
    /// An existing build whose dispatch had been interrupted (crash) was finished.
    Resumed { build_id: String },
}

impl Outcome {
    pub fn build_id(&self) -> &str {
        match self {
            Outcome::Created { build_id, .. }
            | Outcome::Duplicate { build_id }
            | Outcome::Resumed { build_id } => build_id,
        }
    }

    /// Label of the `events` metric and of request outcomes.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Created { .. } => "enqueued",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Resumed { .. } => "resumed",
        }
    }
}

/// Everything a handler needs; shared by every handler in flight.
#[derive(Debug)]
pub struct Dispatcher {
    bus: Arc<Bus>,
    store: Store,
    records: Records,
    metrics: Metrics,
    retry_delay: Duration,
    by: String,
}

impl Dispatcher {
    pub fn new(bus: Arc<Bus>, store: Store, metrics: Metrics, retry_delay: Duration) -> Dispatcher {
        Dispatcher {
            records: Records::new(store.clone()),
            bus,
            store,
            metrics,
            retry_delay,
            by: format!("dispatcher@{}", osbs_common::telemetry::hostname()),
        }
    }

    /// Carries out `decision` for `delivery` and settles the delivery: acked when done,
    /// dead-lettered when refused, requeued (after a pause) when Redis or RabbitMQ failed.
    pub async fn handle(&self, delivery: Delivery, decision: Decision) {
        self.metrics.in_flight.inc();
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default();
        let routing_key = delivery.routing_key.as_str().to_owned();
        let request_id = decision.request_id().map(str::to_owned);
        match decision {
            Decision::Refuse(refused) => {
                tracing::warn!(message_id, routing_key, reason = %refused.reason, "event refused: dead-lettered to osbs.events.dead");
                self.note_request(request_id.as_deref(), "refused", None, &refused.reason)
                    .await;
                self.dead_letter(&delivery, &refused.reason).await;
            }
            Decision::Ignore(ignored) => {
                tracing::info!(message_id, routing_key, reason = ignored.kind.label(), detail = %ignored.detail, "event ignored: not configured to build");
                self.note_request(request_id.as_deref(), "ignored", None, &ignored.detail)
                    .await;
                bus::ack(&delivery).await;
                self.metrics.count_ignored(ignored.kind.label());
                self.metrics.count_event("ignored");
            }
            Decision::Enqueue(plan) => {
                let event_id = (!message_id.is_empty()).then_some(message_id.as_str());
                match self.enqueue(&plan, event_id, delivery.redelivered).await {
                    Ok(outcome) => {
                        let job = &plan.job;
                        match &outcome {
                            Outcome::Duplicate { build_id } => {
                                tracing::info!(message_id, build_id, repo = %job.repo, commit = %job.commit, "duplicate event: the build exists already; nothing new published");
                                self.metrics.count_ignored("duplicate");
                            }
                            Outcome::Created {
                                build_id,
                                superseded,
                            } => {
                                tracing::info!(message_id, build_id, repo = %job.repo, branch = %job.branch, commit = %job.commit, priority = plan.priority, ?superseded, "build queued");
                            }
                            Outcome::Resumed { build_id } => {
                                tracing::info!(
                                    message_id,
                                    build_id,
                                    "interrupted dispatch finished: job enqueued"
                                );
                            }
                        }
                        bus::ack(&delivery).await;
                        self.metrics.count_event(outcome.label());
                    }
                    Err(error) if error.is_permanent() => {
                        let reason = format!("cannot record the build: {error}");
                        tracing::error!(message_id, error = %error, "event dead-lettered: its build record is unusable");
                        self.dead_letter(&delivery, &reason).await;
                    }
                    Err(error) => {
                        tracing::warn!(message_id, error = %error, delay = ?self.retry_delay, "event not handled; requeued");
                        self.metrics.count_retry("dispatch");
                        self.metrics.count_event("requeued");
                        tokio::time::sleep(self.retry_delay).await;
                        bus::requeue(&delivery).await;
                    }
                }
            }
        }
        self.metrics.in_flight.dec();
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) {
        match self
            .bus
            .dead_letter(delivery, names::QUEUE_EVENTS, reason)
            .await
        {
            Ok(()) => {
                self.metrics.count_dead_letter(names::QUEUE_EVENTS);
                self.metrics.count_event("refused");
            }
            Err(error) => {
                tracing::warn!(error = %error, "dead-lettering failed; the event is requeued");
                self.metrics.count_event("requeued");
                tokio::time::sleep(self.retry_delay).await;
                bus::requeue(delivery).await;
            }
        }
    }

    /// Records what became of a request; best effort for refusals and ignores (the event
    /// itself is dead-lettered or acked either way).
    async fn note_request(
        &self,
        request_id: Option<&str>,
        outcome: &str,
        build_id: Option<&str>,
        reason: &str,
    ) {
        let Some(request_id) = request_id else {
            return;
        };
        let noted = RequestOutcome {
            outcome: outcome.to_owned(),
            build_id: build_id.map(str::to_owned),
            reason: reason.to_owned(),
            at_ms: osbs_common::telemetry::now_ms(),
        };
        if let Err(error) = self.records.record_request(request_id, &noted).await {
            tracing::warn!(request_id, error = %error, "cannot record the request's outcome");
        }
    }

    /// Steps 1–5 of the module documentation. `redelivered`: the broker's flag, when the
    /// message may have been handled before.
    pub async fn enqueue(
        &self,
        plan: &Plan,
        message_id: Option<&str>,
        redelivered: bool,
    ) -> Result<Outcome, DispatchError> {
        let outcome = self
            .record_and_publish(plan, message_id.filter(|_| redelivered))
            .await?;
        let noted = plan.request_id.as_deref().map(|request_id| {
            (
                request_id,
                RequestOutcome {
                    outcome: outcome.label().replace("resumed", "enqueued"),
                    build_id: Some(outcome.build_id().to_owned()),
                    reason: String::new(),
                    at_ms: osbs_common::telemetry::now_ms(),
                },
            )
        });
        self.records
            .settle(
                outcome.build_id(),
                !matches!(outcome, Outcome::Duplicate { .. }),
                message_id,
                noted.as_ref().map(|(id, outcome)| (*id, outcome)),
            )
            .await?;
        Ok(outcome)
    }

    /// Steps 1–4; `seen_message_id` is looked up only for redeliveries.
    async fn record_and_publish(
        &self,
        plan: &Plan,
        seen_message_id: Option<&str>,
    ) -> Result<Outcome, DispatchError> {
        if let Some(message_id) = seen_message_id
            && let Some(id) = self.records.build_of_event(message_id).await?
            && let Some(record) = self.store.get(&id).await?
        {
            if record.field(field::ENQUEUED) == "1" {
                return Ok(Outcome::Duplicate { build_id: id });
            }
            self.finish(&record.job, record.state).await?;
            return Ok(Outcome::Resumed { build_id: id });
        }
        let mut job = plan.job.clone();
        job.build_id = build_id::new();
        let now_ms = osbs_common::telemetry::now_ms();
        job.requested_at_ms = now_ms;
        let mut extra = vec![(field::PRIORITY, plan.priority.to_string())];
        if let Some(request_id) = &plan.request_id {
            extra.push((field::REQUEST_ID, request_id.clone()));
        }
        let mut key = plan.idempotency_key.clone();
        for _ in 0..MAX_REBUILDS {
            match self
                .store
                .create(&job, &key, now_ms, &self.by, &extra)
                .await?
            {
                Created::New(id) => {
                    self.metrics.count_state(BuildState::Queued);
                    let superseded = self.finish(&job, BuildState::Queued).await?;
                    return Ok(Outcome::Created {
                        build_id: id,
                        superseded,
                    });
                }
                Created::Existing(id) => {
                    let record = self.store.require(&id).await?;
                    let same_event =
                        !job.event_id.is_empty() && record.job.event_id == job.event_id;
                    let unsuccessful = matches!(
                        record.state,
                        BuildState::Failed | BuildState::Canceled | BuildState::Superseded
                    );
                    if plan.rebuild_unsuccessful && unsuccessful && !same_event {
                        key = format!("{}:after:{id}", plan.idempotency_key);
                        continue;
                    }
                    if record.field(field::ENQUEUED) == "1" {
                        return Ok(Outcome::Duplicate { build_id: id });
                    }
                    self.finish(&record.job, record.state).await?;
                    return Ok(Outcome::Resumed { build_id: id });
                }
            }
        }
        Err(DispatchError::TooManyRebuilds {
            key: plan.idempotency_key.clone(),
        })
    }

    /// Steps 3–4 for a recorded build, idempotently (the `enqueued` mark follows in
    /// [`Records::settle`]). Returns the builds it superseded.
    async fn finish(
        &self,
        job: &BuildJob,
        mut state: BuildState,
    ) -> Result<Vec<String>, DispatchError> {
        let id = job.build_id.as_str();
        let mut superseded = Vec::new();
        let trigger = Trigger::try_from(job.trigger).unwrap_or(Trigger::Unspecified);
        if trigger == Trigger::Push && state == BuildState::Queued {
            match self.records.advance_tip(&coalesce_key(job), id).await? {
                Tip::Advanced { previous } | Tip::Current { previous } => {
                    if let Some(previous) = previous
                        && self.supersede(&previous, job).await?
                    {
                        superseded.push(previous);
                    }
                }
                Tip::Behind { newer } => {
                    // Handled after a newer push of its branch (a redelivery out of order):
                    // it is the one that must not build.
                    self.publish_change(
                        job,
                        BuildState::Unspecified,
                        BuildState::Queued,
                        "recorded",
                    )
                    .await?;
                    if self.supersede_by(id, &newer, job).await? {
                        state = BuildState::Superseded;
                    }
                }
            }
        }
        if state == BuildState::Queued {
            let priority = crate::decide::priority(trigger);
            let (job_published, change_published) = tokio::join!(
                self.bus.publish_job(job, priority),
                self.publish_change(job, BuildState::Unspecified, BuildState::Queued, "recorded"),
            );
            job_published?;
            change_published?;
        }
        Ok(superseded)
    }

    /// Supersedes the queued build `previous` by `newer` (a push of the same branch).
    async fn supersede(&self, previous: &str, newer: &BuildJob) -> Result<bool, DispatchError> {
        self.supersede_by(previous, &newer.build_id, newer).await
    }

    /// `queued → superseded` for `id` with `superseded_by = newer_id`, and its state change.
    /// A build that already left `queued` stays as it is (a worker started it first). A build
    /// already superseded by `newer_id` (an interrupted earlier attempt) gets its event again.
    async fn supersede_by(
        &self,
        id: &str,
        newer_id: &str,
        newer: &BuildJob,
    ) -> Result<bool, DispatchError> {
        let reason = format!(
            "superseded by build {newer_id}: a newer commit of {}/{} {} was pushed",
            newer.namespace, newer.repo, newer.branch
        );
        let transition = self
            .store
            .transition_from(
                id,
                &[BuildState::Queued],
                BuildState::Superseded,
                Change {
                    reason: &reason,
                    by: &self.by,
                    fields: vec![(store::field::SUPERSEDED_BY, newer_id.to_owned())],
                },
            )
            .await;
        let redo = match transition {
            Ok(_) => false,
            Err(StoreError::Refused {
                current: BuildState::Superseded,
                ..
            }) => true,
            Err(StoreError::Refused { current, .. }) => {
                tracing::info!(build_id = id, state = %current, newer = newer_id, "not superseded: it has started already");
                return Ok(false);
            }
            Err(StoreError::NotFound(_)) => return Ok(false),
            Err(error) => return Err(error.into()),
        };
        let Some(record) = self.store.get(id).await? else {
            return Ok(false);
        };
        if redo && record.field(store::field::SUPERSEDED_BY) != newer_id {
            return Ok(false);
        }
        if !redo {
            self.metrics.count_state(BuildState::Superseded);
        }
        self.publish_change(
            &record.job,
            BuildState::Queued,
            BuildState::Superseded,
            &reason,
        )
        .await?;
        Ok(true)
    }

    async fn publish_change(
        &self,
        job: &BuildJob,
        from: BuildState,
        to: BuildState,
        reason: &str,
    ) -> Result<(), BusError> {
        self.bus
            .publish_state_change(&state_change(
                job,
                from,
                to,
                reason,
                osbs_common::telemetry::now_ms(),
            ))
            .await
    }
}

/// The coalescing key of a push build: its repository, branch and target.
pub fn coalesce_key(job: &BuildJob) -> String {
    let target = job
        .target
        .as_ref()
        .map(|target| target.name.as_str())
        .unwrap_or_default();
    format!("{}/{}:{}:{target}", job.namespace, job.repo, job.branch)
}

/// The state change of `job` from `from` to `to`.
pub fn state_change(
    job: &BuildJob,
    from: BuildState,
    to: BuildState,
    reason: &str,
    at_ms: i64,
) -> BuildStateChange {
    BuildStateChange {
        build_id: job.build_id.clone(),
        old_state: from as i32,
        new_state: to as i32,
        reason: reason.to_owned(),
        nvr: None,
        pullspecs: Vec::new(),
        owner: job.submitter.clone(),
        at_ms,
        repo: job.repo.clone(),
        branch: job.branch.clone(),
        target: job
            .target
            .as_ref()
            .map(|target| target.name.clone())
            .unwrap_or_default(),
        koji_build_id: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_proto::v1::Target;

    #[test]
    fn coalesce_key_matches_the_plan() {
        let routing = crate::config::Routing::new(&Default::default()).unwrap();
        let fixture = crate::testing::fixture("git-receive-v1.json");
        let Decision::Enqueue(plan) = crate::decide::decide(
            &crate::decide::Incoming {
                routing_key: &fixture.routing_key,
                content_encoding: None,
                message_id: None,
                headers: &fixture.headers,
                body: &fixture.body,
            },
            &routing,
            0,
        ) else {
            panic!("the fixture is a job");
        };
        assert_eq!(
            plan.coalesce_key.as_deref(),
            Some(coalesce_key(&plan.job).as_str())
        );
    }

    #[test]
    fn state_changes_name_the_build_and_its_owner() {
        let job = BuildJob {
            build_id: "b1".into(),
            repo: "httpd".into(),
            branch: "f41".into(),
            submitter: "jdoe".into(),
            target: Some(Target {
                name: "f41-container-candidate".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let change = state_change(&job, BuildState::Queued, BuildState::Superseded, "newer", 7);
        assert_eq!(change.old_state, BuildState::Queued as i32);
        assert_eq!(change.new_state, BuildState::Superseded as i32);
        assert_eq!(change.owner, "jdoe");
        assert_eq!(change.target, "f41-container-candidate");
        assert_eq!(change.at_ms, 7);
    }

    #[test]
    fn only_unreadable_records_are_permanent() {
        assert!(DispatchError::Store(StoreError::NotFound("x".into())).is_permanent());
        assert!(
            !DispatchError::Bus(BusError::Unroutable {
                exchange: "osbs".into(),
                routing_key: "job".into()
            })
            .is_permanent()
        );
        assert_eq!(
            Outcome::Resumed {
                build_id: "b".into()
            }
            .label(),
            "resumed"
        );
    }
}
