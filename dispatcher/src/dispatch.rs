//! The imperative shell around [`crate::decide`]: carries out one decision against Redis and
//! RabbitMQ, then acks, dead-letters or requeues the delivery.
//!
//! For a job (the order is what makes it safe to crash anywhere):
//! 1. a message the broker redelivers, seen before (by `message_id`), whose record is finished
//!    is a duplicate: ack (a republished message reaches the same build through step 2);
//! 2. `store.create_dispatched` with the plan's idempotency key: a new queued record, or the
//!    existing build of the same (repository, commit, target, options). An explicit request
//!    whose existing build ended `failed`, `canceled` or `superseded` makes a new build (keyed
//!    `<key>:after:<old id>`, so that asking again names that new build). A new record is
//!    written with its message id → build id key and, for a push, step 3's tip move, in the
//!    same atomic script (one Redis round trip);
//! 3. pushes: become the branch's newest build ([`Store::advance_tip`], already done by step 2
//!    for a new record) and supersede the queued build they replace (the state change
//!    `queued → superseded`, announced: a worker that started first wins);
//! 4. publish the job (if still queued) and announce the record's creation (`queued`), both
//!    confirmed;
//! 5. mark the record `enqueued=1`, remember the message id (unless step 2 did) and the
//!    request outcome (one round trip); ack.
//!
//! A crash before 5 leaves the message unacked: its redelivery finds the record without
//! `enqueued` and does 3–5 again, announcing again the changes it finds recorded
//! ([`Store::recorded_announcement`]). Transient failures requeue the delivery after a pause;
//! a record that cannot be read is dead-lettered with the reason.

use crate::acks::Acks;
use crate::build_id;
use crate::decide::{Decision, Plan};
use crate::distgit::{DistGit, DistGitError};
use crate::tip::{self, Resolution};
use osbs_common::bus::{self, Bus, BusError, Delivery};
use osbs_common::http::Metrics;
use osbs_common::state::{self, Announcement, ChangeError, Changed, StateChange};
use osbs_common::store::{
    BuildRecord, Created, DispatchedEvent, RequestOutcome, Store, StoreError, Tip, field,
};
use osbs_proto::names;
use osbs_proto::v1::{BuildJob, BuildState, Trigger};
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
    /// A state change recorded but not announced (the redelivery announces it).
    #[error(transparent)]
    NotAnnounced(ChangeError),
    #[error(
        "idempotency key {key} has been rebuilt {MAX_REBUILDS} times: inspect its builds with `osbs list`"
    )]
    TooManyRebuilds { key: String },
}

impl From<ChangeError> for DispatchError {
    fn from(error: ChangeError) -> DispatchError {
        match error {
            ChangeError::Store(error) => DispatchError::Store(error),
            not_announced => DispatchError::NotAnnounced(not_announced),
        }
    }
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
    metrics: Metrics,
    retry_delay: Duration,
    by: String,
    /// Where pushes are checked against their branch's head; `None`: trust the event.
    dist_git: Option<DistGit>,
    /// Acks runs of deliveries with one frame; `None`: each delivery acked alone.
    acks: Option<Acks>,
}

/// What a plan turned into once its branch was asked.
#[derive(Debug)]
enum Route {
    /// Build `plan`; `stale`: the pushed plan, whose commit is not the tip. Boxed: plans are
    /// large, the other variant a line of text.
    Build {
        plan: Box<Plan>,
        stale: Option<Box<Plan>>,
    },
    NoBranch {
        detail: String,
    },
}

impl Dispatcher {
    pub fn new(bus: Arc<Bus>, store: Store, metrics: Metrics, retry_delay: Duration) -> Dispatcher {
        Dispatcher {
            bus,
            store,
            metrics,
            retry_delay,
            by: format!("dispatcher@{}", osbs_common::telemetry::hostname()),
            dist_git: None,
            acks: None,
        }
    }

    /// Acks through `acks`, which must have registered every delivery handed to
    /// [`Dispatcher::handle`] ([`crate::acks`]).
    pub fn with_acks(mut self, acks: Acks) -> Dispatcher {
        self.acks = Some(acks);
        self
    }

    /// Acks a handled delivery.
    async fn ack(&self, delivery: &Delivery) {
        match &self.acks {
            Some(acks) => acks.ack(delivery).await,
            None => bus::ack(delivery).await,
        }
    }

    /// A delivery was settled by a frame of its own (requeued or dead-lettered).
    fn settled(&self, delivery: &Delivery) {
        if let Some(acks) = &self.acks {
            acks.settled(delivery);
        }
    }

    /// Checks pushes against dist-git before building ([`crate::tip`]).
    pub fn with_dist_git(mut self, dist_git: DistGit) -> Dispatcher {
        self.dist_git = Some(dist_git);
        self
    }

    /// Carries out `decision` for `delivery` and settles the delivery: acked when done,
    /// dead-lettered when refused, requeued (after a pause) when Redis, RabbitMQ or dist-git
    /// failed.
    pub async fn handle(&self, delivery: Delivery, decision: Decision) {
        self.metrics.in_flight.inc();
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map_or("", |id| id.as_str());
        let routing_key = delivery.routing_key.as_str();
        let request_id = decision.request_id().map(str::to_owned);
        match decision {
            Decision::Refuse(refused) => {
                tracing::warn!(message_id, routing_key, reason = %refused.reason, "event refused: dead-lettered to osbs.events.dead");
                self.note_request(request_id.as_deref(), "refused", None, &refused.reason)
                    .await;
                Box::pin(self.dead_letter(&delivery, &refused.reason)).await;
            }
            Decision::Ignore(ignored) => {
                tracing::info!(message_id, routing_key, reason = ignored.kind.label(), detail = %ignored.detail, "event ignored: not configured to build");
                self.note_request(request_id.as_deref(), "ignored", None, &ignored.detail)
                    .await;
                self.acked_as_ignored(&delivery, ignored.kind.label()).await;
            }
            Decision::Enqueue(plan) => self.handle_plan(&delivery, message_id, plan).await,
        }
        self.metrics.in_flight.dec();
    }

    async fn acked_as_ignored(&self, delivery: &Delivery, label: &str) {
        self.ack(delivery).await;
        self.metrics.count_ignored(label);
        self.metrics.count_event("ignored");
    }

    /// Requeues a delivery whose handling failed for a reason that may pass (after a pause).
    async fn retry_later(&self, delivery: &Delivery, reason: &str) {
        self.metrics.count_retry(reason);
        self.metrics.count_event("requeued");
        tokio::time::sleep(self.retry_delay).await;
        bus::requeue(delivery).await;
        self.settled(delivery);
    }

    /// A job to record: a push first resolved against its branch in dist-git.
    /// Plans stay boxed: kept across the awaits, they would size the handler's future.
    async fn handle_plan(&self, delivery: &Delivery, message_id: &str, plan: Box<Plan>) {
        let (mut plan, pushed) = match self.route(plan).await {
            Ok(Route::Build { plan, stale }) => (plan, stale),
            Ok(Route::NoBranch { detail }) => {
                tracing::info!(message_id, detail, "push ignored: not a branch of dist-git");
                self.acked_as_ignored(delivery, "not_a_branch").await;
                return;
            }
            Err(error) => {
                tracing::warn!(message_id, error = %error, delay = ?self.retry_delay, "dist-git did not answer; event requeued");
                self.retry_later(delivery, "dist_git").await;
                return;
            }
        };
        let event_id = (!message_id.is_empty()).then_some(message_id);
        match self
            .enqueue(&mut plan, event_id, delivery.redelivered, pushed.as_deref())
            .await
        {
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
                self.ack(delivery).await;
                self.metrics.count_event(outcome.label());
            }
            Err(error) if error.is_permanent() => {
                let reason = format!("cannot record the build: {error}");
                tracing::error!(message_id, error = %error, "event dead-lettered: its build record is unusable");
                Box::pin(self.dead_letter(delivery, &reason)).await;
            }
            Err(error) => {
                tracing::warn!(message_id, error = %error, delay = ?self.retry_delay, "event not handled; requeued");
                self.retry_later(delivery, "dispatch").await;
            }
        }
    }

    /// What a plan builds: itself, or for a push checked against dist-git, its branch's tip
    /// (with the pushed plan, to record superseded) or nothing.
    async fn route(&self, plan: Box<Plan>) -> Result<Route, DistGitError> {
        let is_push = plan.job.trigger == Trigger::Push as i32;
        match self.dist_git.as_ref().filter(|_| is_push) {
            // Boxed: only the dist-git check's future is large, and only it waits.
            Some(dist_git) => Box::pin(Self::route_push(dist_git, plan)).await,
            None => Ok(Route::Build { plan, stale: None }),
        }
    }

    /// [`Dispatcher::route`] of a push, against its branch's head in `dist_git`.
    async fn route_push(dist_git: &DistGit, mut plan: Box<Plan>) -> Result<Route, DistGitError> {
        let head = dist_git
            .branch_head(&plan.job.git_url, &plan.job.branch)
            .await?;
        Ok(match tip::resolve(&plan.job.commit, &head) {
            Resolution::Build => {
                plan.rebuild_superseded = true;
                Route::Build { plan, stale: None }
            }
            Resolution::Stale { tip } => Route::Build {
                plan: Box::new(tip::tip_plan(&plan, &tip)),
                stale: Some(plan),
            },
            Resolution::NoBranch => Route::NoBranch {
                detail: tip::no_branch_detail(&plan),
            },
        })
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) {
        match self
            .bus
            .dead_letter(delivery, names::QUEUE_EVENTS, reason)
            .await
        {
            Ok(()) => {
                self.settled(delivery);
                self.metrics.count_dead_letter(names::QUEUE_EVENTS);
                self.metrics.count_event("refused");
            }
            Err(error) => {
                tracing::warn!(error = %error, "dead-lettering failed; the event is requeued");
                self.metrics.count_event("requeued");
                tokio::time::sleep(self.retry_delay).await;
                bus::requeue(delivery).await;
                self.settled(delivery);
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
        if let Err(error) = self.store.record_request(request_id, &noted).await {
            tracing::warn!(request_id, error = %error, "cannot record the request's outcome");
        }
    }

    /// Steps 1–5 of the module documentation. `redelivered`: the broker's flag, when the
    /// message may have been handled before.
    /// `pushed`: the push whose commit is not its branch's tip (`plan` builds the tip), recorded
    /// superseded by the tip's build before the event counts as handled. A new build's id
    /// and time are written into `plan.job` (no copy of the job made for them).
    pub async fn enqueue(
        &self,
        plan: &mut Plan,
        message_id: Option<&str>,
        redelivered: bool,
        pushed: Option<&Plan>,
    ) -> Result<Outcome, DispatchError> {
        let outcome = self
            .record_and_publish(plan, message_id, redelivered)
            .await?;
        if let Some(pushed) = pushed {
            // Boxed: a stale push is rare, and its future would size every handler's.
            Box::pin(self.record_stale(pushed, &plan.job.commit, outcome.build_id())).await?;
        }
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
        // A new record's message id was written with it.
        let created = matches!(outcome, Outcome::Created { .. });
        self.store
            .settle_dispatch(
                outcome.build_id(),
                !matches!(outcome, Outcome::Duplicate { .. }),
                message_id.filter(|_| !created),
                noted.as_ref().map(|(id, outcome)| (*id, outcome)),
            )
            .await?;
        Ok(outcome)
    }

    /// Steps 1–4; `message_id` is looked up only for redeliveries.
    async fn record_and_publish(
        &self,
        plan: &mut Plan,
        message_id: Option<&str>,
        redelivered: bool,
    ) -> Result<Outcome, DispatchError> {
        if let Some(message_id) = message_id.filter(|_| redelivered)
            && let Some(id) = self.store.build_of_event(message_id).await?
            && let Some(record) = self.store.get(&id).await?
        {
            return Box::pin(self.resume(record, id)).await;
        }
        let coalesce = (plan.job.trigger == Trigger::Push as i32).then(|| coalesce_key(&plan.job));
        let job = &mut plan.job;
        job.build_id = build_id::new();
        let now_ms = osbs_common::telemetry::now_ms();
        job.requested_at_ms = now_ms;
        let mut extra = vec![(field::PRIORITY, plan.priority.to_string())];
        if let Some(request_id) = &plan.request_id {
            extra.push((field::REQUEST_ID, request_id.clone()));
        }
        let mut key = plan.idempotency_key.clone();
        for _ in 0..MAX_REBUILDS {
            let (created, tip) = self
                .store
                .create_dispatched(
                    job,
                    &key,
                    now_ms,
                    &self.by,
                    &extra,
                    DispatchedEvent {
                        message_id,
                        coalesce_key: coalesce.as_deref(),
                    },
                )
                .await?;
            match created {
                Created::New(recorded) => {
                    self.metrics.count_state(BuildState::Queued);
                    let superseded = self
                        .finish(job, BuildState::Queued, Some(recorded), tip)
                        .await?;
                    return Ok(Outcome::Created {
                        build_id: job.build_id.clone(),
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
                    let rebuild = (plan.rebuild_unsuccessful && unsuccessful)
                        || (plan.rebuild_superseded && record.state == BuildState::Superseded);
                    if rebuild && !same_event {
                        key = format!("{}:after:{id}", plan.idempotency_key);
                        continue;
                    }
                    return Box::pin(self.resume(record, id)).await;
                }
            }
        }
        Err(DispatchError::TooManyRebuilds {
            key: plan.idempotency_key.clone(),
        })
    }

    /// An existing build `id` answering an event: a duplicate once its job is out, otherwise
    /// its interrupted dispatch finished. Called boxed: the record is large, and kept across
    /// the publishes it would size every handler's future.
    async fn resume(&self, record: BuildRecord, id: String) -> Result<Outcome, DispatchError> {
        if record.field(field::ENQUEUED) == "1" {
            return Ok(Outcome::Duplicate { build_id: id });
        }
        self.finish(&record.job, record.state, None, None).await?;
        Ok(Outcome::Resumed { build_id: id })
    }

    /// Steps 3–4 for a recorded build, idempotently (the `enqueued` mark follows in
    /// [`Store::settle_dispatch`]). `created`: the announcement of a record just created;
    /// `None` when resuming one, whose announcement is read back. `tip`: where a push just
    /// created stands on its branch, when the creation moved the tip already
    /// ([`Store::create_dispatched`]); otherwise asked here. Returns the builds it superseded.
    async fn finish(
        &self,
        job: &BuildJob,
        mut state: BuildState,
        created: Option<Announcement>,
        tip: Option<Tip>,
    ) -> Result<Vec<String>, DispatchError> {
        let id = job.build_id.as_str();
        let mut superseded = Vec::new();
        let queued = match created {
            Some(created) => Some(created),
            None if state == BuildState::Queued => {
                self.store
                    .recorded_announcement(id, BuildState::Queued)
                    .await?
            }
            None => None,
        };
        let trigger = Trigger::try_from(job.trigger).unwrap_or(Trigger::Unspecified);
        if trigger == Trigger::Push && state == BuildState::Queued {
            let tip = match tip {
                Some(tip) => tip,
                None => self.store.advance_tip(&coalesce_key(job), id).await?,
            };
            match tip {
                Tip::Advanced { previous } | Tip::Current { previous } => {
                    // Boxed (here and below): a state change's future is large, and most
                    // pushes supersede nothing.
                    if let Some(previous) = previous
                        && Box::pin(self.supersede(&previous, job)).await?
                    {
                        superseded.push(previous);
                    }
                }
                Tip::Behind { newer } => {
                    // Handled after a newer push of its branch (a redelivery out of order):
                    // it is the one that must not build.
                    self.announce(id, queued.as_ref()).await?;
                    let reason = format!(
                        "superseded by build {newer}: a newer commit of {}/{} {} was pushed",
                        job.namespace, job.repo, job.branch
                    );
                    if Box::pin(self.supersede_by(id, &newer, &reason)).await? {
                        state = BuildState::Superseded;
                    }
                }
            }
        }
        if state == BuildState::Queued {
            let priority = crate::decide::priority(trigger);
            let (job_published, change_published) = tokio::join!(
                self.bus.publish_job(job, priority),
                self.announce(id, queued.as_ref()),
            );
            job_published?;
            change_published?;
        }
        Ok(superseded)
    }

    /// Supersedes the queued build `previous` by `newer` (a push of the same branch).
    async fn supersede(&self, previous: &str, newer: &BuildJob) -> Result<bool, DispatchError> {
        let reason = format!(
            "superseded by build {}: a newer commit of {}/{} {} was pushed",
            newer.build_id, newer.namespace, newer.repo, newer.branch
        );
        self.supersede_by(previous, &newer.build_id, &reason).await
    }

    /// Records a pushed commit that is not its branch's tip as `superseded` by the tip's
    /// build, without a job. Idempotent: a record of that commit that exists already stays as
    /// it is, unless an interrupted earlier attempt left it queued and unpublished.
    async fn record_stale(
        &self,
        pushed: &Plan,
        tip: &str,
        tip_build: &str,
    ) -> Result<(), DispatchError> {
        let mut job = pushed.job.clone();
        job.build_id = build_id::new();
        let now_ms = osbs_common::telemetry::now_ms();
        job.requested_at_ms = now_ms;
        let extra = [(field::PRIORITY, pushed.priority.to_string())];
        let created = self
            .store
            .create(&job, &pushed.idempotency_key, now_ms, &self.by, &extra)
            .await?;
        let (id, queued) = match created {
            Created::New(recorded) => {
                self.metrics.count_state(BuildState::Queued);
                (job.build_id, Some(recorded))
            }
            Created::Existing(id) => {
                let record = self.store.require(&id).await?;
                if record.state != BuildState::Queued || record.field(field::ENQUEUED) == "1" {
                    return Ok(());
                }
                let recorded = self
                    .store
                    .recorded_announcement(&id, BuildState::Queued)
                    .await?;
                (id, recorded)
            }
        };
        self.announce(&id, queued.as_ref()).await?;
        let reason = tip::stale_reason(pushed, tip, tip_build);
        if self.supersede_by(&id, tip_build, &reason).await? {
            tracing::info!(build_id = id, commit = %pushed.job.commit, tip, tip_build, "pushed commit is not the branch's tip: recorded superseded, not built");
        }
        Ok(())
    }

    /// `queued → superseded` for `id` with `superseded_by = newer_id`, announced. A build that
    /// already left `queued` stays as it is (a worker started it first). A build already
    /// superseded by `newer_id` (an interrupted earlier attempt) is announced again.
    async fn supersede_by(
        &self,
        id: &str,
        newer_id: &str,
        reason: &str,
    ) -> Result<bool, DispatchError> {
        let change = StateChange::new(id, BuildState::Superseded, reason, &self.by)
            .only_from(&[BuildState::Queued])
            .with_fields(vec![(field::SUPERSEDED_BY, newer_id.to_owned())]);
        match state::change(&self.store, &self.bus, change).await? {
            Changed::Done(_) => {
                self.metrics.count_state(BuildState::Superseded);
                Ok(true)
            }
            Changed::Refused(record)
                if record.state == BuildState::Superseded
                    && record.field(field::SUPERSEDED_BY) == newer_id =>
            {
                let recorded = self
                    .store
                    .recorded_announcement(id, BuildState::Superseded)
                    .await?;
                self.announce(id, recorded.as_ref()).await?;
                Ok(true)
            }
            Changed::Refused(record) => {
                if record.state != BuildState::Superseded {
                    tracing::info!(build_id = id, state = %record.state, newer = newer_id, "not superseded: it has started already");
                }
                Ok(false)
            }
            Changed::Missing => Ok(false),
        }
    }

    /// Announces a recorded change again; one whose record or history entry is gone cannot
    /// be (the record says what happened, and there is none).
    async fn announce(&self, id: &str, recorded: Option<&Announcement>) -> Result<(), BusError> {
        match recorded {
            Some(recorded) => self.bus.announce(recorded).await,
            None => {
                tracing::warn!(
                    build_id = id,
                    "a recorded state change to announce is gone from Redis"
                );
                Ok(())
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
