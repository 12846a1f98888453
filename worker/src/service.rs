//! The worker service: consumes `osbs.jobs`, decides what each job needs (start, take over,
//! skip, republish, defer), supervises the running pipeline (cancel marks, time limit,
//! heartbeat, leases, drain), and ends every build with a record, a published result and only
//! then an ack (or a dead letter, for infrastructure failures).
//!
//! Concurrency: `[worker] concurrency` slots, each with its own consumer at prefetch 1. A slot
//! whose build swaps its delivery for a lease cancels its consumer first, so that no other
//! delivery waits unacked (and trips RabbitMQ's consumer timeout) behind a long build; it
//! consumes again when the build ends.

use crate::adapters::docker::Engine;
use crate::adapters::http::Http;
use crate::adapters::redis as keys;
use crate::buildlog::BuildLog;
use crate::config::ServiceConfig;
use crate::error::{Blame, WorkerError};
use crate::lease::{self, FirstLook, Pickup};
use crate::pipeline::{self, Attempt, Progress, Worker};
use crate::report;
use lapin::types::{AMQPValue, FieldTable, LongString};
use osbs_common::bus::{self, Bus, Delivery, Outgoing, Subscription};
use osbs_common::http::{Health, Metrics};
use osbs_common::retry::{self, Retry, RetryState};
use osbs_common::state::{self, ChangeError, Changed, StateChange};
use osbs_common::store::field;
use osbs_common::{BusError, Store, StoreError};
use osbs_proto::Message;
use osbs_proto::names;
use osbs_proto::v1::{BuildJob, BuildResult, BuildState};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

/// Starts the worker and runs until `shutdown`, then drains.
pub async fn run(config: ServiceConfig, shutdown: CancellationToken) -> Result<(), WorkerError> {
    start(config).await?.serve(shutdown).await
}

/// A started worker: engine reached, bus topology declared, Redis connected, `/healthz` and
/// `/metrics` served; not consuming yet.
#[derive(Debug)]
pub struct Started {
    pub worker: Worker,
    pub health: Health,
    /// Where `/healthz` and `/metrics` answer (`http_listen` may use port 0).
    pub http_addr: std::net::SocketAddr,
    http_stop: CancellationToken,
}

/// Connects to everything the worker needs; fails with how to fix what is missing.
pub async fn start(config: ServiceConfig) -> Result<Started, WorkerError> {
    tracing::info!(config = %osbs_common::config::effective(&config), "effective configuration");
    let layer_compression: osbs_squash::LayerCompression =
        config.worker.layer_compression.parse().map_err(|error| {
            WorkerError::Infrastructure(format!("invalid `[worker] layer_compression`: {error}"))
        })?;
    let squash_read_from: osbs_squash::ReadFrom =
        config.worker.squash_read_from.parse().map_err(|error| {
            WorkerError::Infrastructure(format!("invalid `[worker] squash_read_from`: {error}"))
        })?;
    let registries = osbs_registry::Registries::new(osbs_registry::Settings {
        insecure_registries: config.worker.insecure_registries.clone(),
        credentials: config.worker.registry_auth.clone(),
        attempts: config.worker.registry_attempts,
        user_agent: concat!("osbs-worker/", env!("CARGO_PKG_VERSION")),
    })?;
    let engine = Engine::connect(registries.all_credentials()).await?;
    let engine_info = engine.describe().await?;
    let bus = Arc::new(Bus::connect(&config.amqp, "worker").await?);
    bus.declare_topology().await?;
    let store = Store::connect(&config.redis).await?;
    let metrics = Metrics::new("worker");
    let health = Health::default();
    let http_stop = CancellationToken::new();
    let http_addr = osbs_common::http::serve(
        config.worker.http_listen,
        health.clone(),
        metrics.clone(),
        http_stop.clone(),
    )
    .await
    .map_err(WorkerError::io("serving /healthz and /metrics"))?;
    tracing::info!(http = %http_addr, "serving /healthz and /metrics");
    let host = osbs_common::telemetry::hostname();
    let worker = Worker {
        config: Arc::new(config.worker.clone()),
        artifacts_dir: config.storage.artifacts_dir.clone(),
        store,
        bus,
        engine,
        http: Http::new(config.worker.registry_attempts),
        registries,
        koji: crate::adapters::koji::Koji::new(&config.koji).map(Arc::new),
        layer_compression,
        squash_read_from,
        metrics,
        instance: format!("{host}/{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        host,
        engine_info,
    };
    Ok(Started {
        worker,
        health,
        http_addr,
        http_stop,
    })
}

impl Started {
    /// Consumes jobs until `shutdown`, drains, then closes the connection and the endpoint.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let outcome = serve(self.worker.clone(), self.health.clone(), shutdown).await;
        self.health.set_ready(false, "stopped");
        self.worker.bus.close().await;
        self.http_stop.cancel();
        tracing::info!(instance = %self.worker.instance, "worker stopped");
        outcome
    }
}

/// Consumes jobs with `[worker] concurrency` slots until `shutdown`; returns once every slot
/// has drained.
pub async fn serve(
    worker: Worker,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let slots = worker.config.concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for slot in 0..slots {
        let first = worker.bus.consume(names::QUEUE_JOBS, 1).await?;
        tasks.spawn(run_slot(worker.clone(), slot, first, shutdown.clone()));
    }
    health.set_ready(
        true,
        format!(
            "{} consuming {} ({slots} slots)",
            worker.instance,
            names::QUEUE_JOBS
        ),
    );
    tracing::info!(instance = %worker.instance, slots, "worker ready");
    shutdown.cancelled().await;
    health.set_ready(false, "draining");
    tracing::info!(grace = ?worker.config.drain_grace(), "draining: no new jobs; builds in hand finish or go back to the queue");
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// One build at a time, forever.
async fn run_slot(worker: Worker, slot: usize, first: Subscription, shutdown: CancellationToken) {
    let mut subscription = Some(first);
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let current = match subscription.as_mut() {
            Some(current) => current,
            None => match worker.bus.consume(names::QUEUE_JOBS, 1).await {
                Ok(new) => subscription.insert(new),
                Err(error) => {
                    tracing::error!(slot, error = %error, "cannot consume jobs; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = sleep(Duration::from_secs(2)) => continue,
                    }
                }
            },
        };
        let delivery = tokio::select! {
            // A delivery that races the shutdown stays unacked: closing the channel below
            // hands it back to the queue.
            biased;
            _ = shutdown.cancelled() => break,
            delivery = current.next() => delivery,
        };
        let Some(delivery) = delivery else {
            // The channel is gone for good: open a new one.
            current.close().await;
            subscription = None;
            continue;
        };
        let consumer_cancelled = handle(&worker, delivery, current, &shutdown).await;
        if consumer_cancelled {
            current.close().await;
            subscription = None;
        }
    }
    if let Some(current) = subscription {
        current.cancel().await;
        current.close().await;
    }
}

/// Whether the worker still holds the job's delivery or swapped it for a lease.
enum Holding {
    Delivery(Box<Delivery>),
    Leased,
}

/// How a supervised attempt ended.
enum End {
    Finished(Result<(), WorkerError>),
    TimedOut,
    Canceled,
    /// Another worker took the build over (this one stalled past the heartbeat).
    Lost,
    /// SIGTERM and the grace period is over.
    Drained,
    /// Failed on a passing outage: try again after `delay`.
    Retry {
        error: WorkerError,
        delay: Duration,
        next: RetryState,
    },
}

impl End {
    /// A failure that [`retry::decide`] says to retry becomes [`End::Retry`].
    fn or_retry(self, earlier: RetryState, window: Duration) -> End {
        let End::Finished(Err(error)) = self else {
            return self;
        };
        let now = osbs_common::telemetry::now_ms();
        match retry::decide(error.outage(), earlier, now, window) {
            Retry::After { delay, next } => End::Retry { error, delay, next },
            Retry::GiveUp => End::Finished(Err(error)),
        }
    }
}

/// Handles one delivery; returns whether the slot's consumer was cancelled (for a lease or
/// a drain) and must be reopened.
async fn handle(
    worker: &Worker,
    delivery: Delivery,
    subscription: &Subscription,
    shutdown: &CancellationToken,
) -> bool {
    worker.metrics.in_flight.inc();
    let outcome = handle_job(worker, delivery, subscription, shutdown).await;
    worker.metrics.in_flight.dec();
    outcome
}

async fn handle_job(
    worker: &Worker,
    delivery: Delivery,
    subscription: &Subscription,
    shutdown: &CancellationToken,
) -> bool {
    let mut job: BuildJob = match bus::decode(&delivery, names::TYPE_BUILD_JOB) {
        Ok(job) => job,
        Err(reason) => {
            dead_letter(worker, Holding::Delivery(Box::new(delivery)), &[], &reason).await;
            return false;
        }
    };
    if job.build_id.is_empty() {
        dead_letter(
            worker,
            Holding::Delivery(Box::new(delivery)),
            &[],
            "job without a build_id",
        )
        .await;
        return false;
    }
    let id = job.build_id.clone();
    let record = match read_or_restore(worker, &job).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            let reason = format!(
                "no build record for build {id}, and it could not be re-created from the job"
            );
            dead_letter(worker, Holding::Delivery(Box::new(delivery)), &[], &reason).await;
            return false;
        }
        Err(error) => {
            let reason = format!("cannot read build {id}'s record: {error}");
            dead_letter(worker, Holding::Delivery(Box::new(delivery)), &[], &reason).await;
            return false;
        }
    };
    let pending_result = record.field(field::RESULT_PUBLISHED) == "0";
    match lease::first_look(record.state, pending_result) {
        FirstLook::Skip(why) => {
            tracing::info!(build_id = %id, state = %record.state, why, "job skipped");
            worker.metrics.count_ignored(why);
            bus::ack(&delivery).await;
            return false;
        }
        FirstLook::Republish => {
            republish(worker, &record, delivery).await;
            return false;
        }
        FirstLook::Claim => {}
    }
    let claimed = match keys::claim(
        &worker.store,
        &id,
        &worker.instance,
        worker.config.heartbeat_stale(),
    )
    .await
    {
        Ok(claimed) => claimed,
        Err(error) => {
            let reason = format!("cannot claim build {id}: {error}");
            dead_letter(worker, Holding::Delivery(Box::new(delivery)), &[], &reason).await;
            return false;
        }
    };
    let is_lease = bus::header_string(&delivery.properties, lease::HEADER_LEASE).is_some();
    match lease::after_claim(record.state, claimed, is_lease) {
        Pickup::OwnedElsewhere => {
            tracing::debug!(build_id = %id, "old lease of a build its owner still runs");
            bus::ack(&delivery).await;
            false
        }
        Pickup::Defer => {
            defer(worker, delivery, &id).await;
            false
        }
        Pickup::DiedWhilePushing => {
            died_while_pushing(worker, &job, delivery).await;
            false
        }
        pickup @ (Pickup::Start | Pickup::TakeOver) => {
            job.attempt = record.attempts() + 1;
            let taken = Taken {
                retry: bus::retry_state(&delivery.properties),
                priority: delivery.properties.priority().unwrap_or(0),
                job,
                from: record.state,
                pickup,
                previous: record.field(field::WORKER).to_owned(),
            };
            run_attempt(worker, taken, delivery, subscription, shutdown).await
        }
    }
}

/// The job's record; one that Redis lost (the dispatcher records every build before
/// enqueuing it) is re-created from the job, as `queued`.
async fn read_or_restore(
    worker: &Worker,
    job: &BuildJob,
) -> Result<Option<osbs_common::store::BuildRecord>, StoreError> {
    let id = &job.build_id;
    if let Some(record) = read_record(&worker.store, id).await? {
        return Ok(Some(record));
    }
    let fields = [(field::ATTEMPTS, job.attempt.saturating_sub(1).to_string())];
    pipeline::restore(worker, job, BuildState::Queued, &fields).await?;
    worker.store.get(id).await
}

/// Redis may blink: a few tries before the job is dead-lettered.
async fn read_record(
    store: &Store,
    id: &str,
) -> Result<Option<osbs_common::store::BuildRecord>, StoreError> {
    let mut last = None;
    for attempt in 0..3 {
        match store.get(id).await {
            Ok(record) => return Ok(record),
            Err(error) => {
                tracing::warn!(build_id = %id, error = %error, attempt, "cannot read the build record");
                last = Some(error);
                sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Err(last.expect("three failed attempts"))
}

/// A job this worker took: what its record said and what its delivery carried.
struct Taken {
    job: BuildJob,
    /// The record's state when it was taken.
    from: BuildState,
    pickup: Pickup,
    /// The worker that ran it before (a takeover).
    previous: String,
    /// Earlier transient failures (the retry queue's headers).
    retry: RetryState,
    priority: u8,
}

async fn run_attempt(
    worker: &Worker,
    taken: Taken,
    delivery: Delivery,
    subscription: &Subscription,
    shutdown: &CancellationToken,
) -> bool {
    let Taken {
        job,
        from,
        pickup,
        previous,
        retry,
        priority,
    } = taken;
    let id = job.build_id.clone();
    let now = osbs_common::telemetry::now_ms();
    let reason = match pickup {
        Pickup::TakeOver => format!(
            "taken over by {} (worker {previous} stopped renewing its heartbeat)",
            worker.instance
        ),
        _ => format!("started by {}", worker.instance),
    };
    let sources = [from];
    let change = StateChange::new(&id, BuildState::Running, &reason, &worker.instance)
        .only_from(&sources)
        .with_fields(vec![
            (field::WORKER, worker.instance.clone()),
            (field::ATTEMPTS, job.attempt.to_string()),
            (field::HEARTBEAT_MS, now.to_string()),
            (field::ERROR, String::new()),
        ]);
    let not_started = match pipeline::change_state(worker, change).await {
        Ok(Changed::Done(_)) => None,
        Ok(Changed::Refused(record)) => Some(format!("the build is {}", record.state)),
        Ok(Changed::Missing) => Some("no build record".to_owned()),
        Err(error) => Some(error.to_string()),
    };
    if let Some(why) = not_started {
        // Canceled or changed between our read and now: nothing to run.
        tracing::info!(build_id = %id, why, "job not started");
        release_owner(worker, &id).await;
        bus::ack(&delivery).await;
        return false;
    }
    worker.metrics.count_state(BuildState::Running);
    if job.requested_at_ms > 0 {
        worker.metrics.observe_lag(
            names::QUEUE_JOBS,
            (now - job.requested_at_ms).max(0) as f64 / 1000.0,
        );
    }
    tracing::info!(build_id = %id, attempt = job.attempt, repo = %job.repo, commit = %job.commit, "build started");

    let artifacts = worker.artifacts_dir.join(&id);
    // A retried build keeps one log: the earlier attempts' lines, each retry said.
    let log = match BuildLog::open(&artifacts, &id, worker.store.clone(), retry.retries > 0) {
        Ok(log) => log,
        Err(error) => {
            let error = WorkerError::Io {
                what: format!("creating the build log in {}", artifacts.display()),
                source: error,
            };
            fail_without_log(worker, &job, delivery, &error).await;
            return false;
        }
    };
    let progress = Progress::default();
    *progress.state.lock().expect("progress lock") = Some(BuildState::Running);
    let work_dir = worker.config.work_dir.join(format!(
        "{id}-{}-{}",
        job.attempt,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    let attempt = Attempt {
        worker,
        job: &job,
        number: job.attempt,
        log: &log,
        progress: &progress,
        work_dir: work_dir.clone(),
        artifacts,
    };
    let mut holding = Holding::Delivery(Box::new(delivery));
    let mut consumer_cancelled = false;
    let end = supervise(
        worker,
        &attempt,
        &mut holding,
        &mut consumer_cancelled,
        subscription,
        shutdown,
    )
    .await;
    let finished_at = osbs_common::telemetry::now_ms();
    // Containers go at once (a canceled build's must stop now); images and the work
    // directory after the result is out, off the build's critical path.
    remove_containers(worker, &progress).await;
    let end = end.or_retry(retry, worker.config.retry_window());
    match end {
        End::Lost => {
            log.note("another worker took this build over; stopping here");
            tracing::warn!(build_id = %id, "ownership lost: another worker runs this build now");
            if let Holding::Delivery(delivery) = holding {
                bus::ack(&delivery).await;
            }
        }
        End::Drained => hand_back(worker, &job, &log, &progress, holding).await,
        End::Retry { error, delay, next } => {
            let later = Later {
                error: &error,
                delay,
                next,
                priority,
            };
            retry_later(worker, &job, &log, &progress, holding, later).await;
        }
        End::Finished(outcome) => {
            let (state, error, blame) = match outcome {
                Ok(()) => (BuildState::Complete, String::new(), Blame::Packager),
                Err(error) => (BuildState::Failed, error.reason(), error.blame()),
            };
            conclude(
                worker,
                &job,
                &log,
                &progress,
                holding,
                state,
                &error,
                blame,
                now,
                finished_at,
            )
            .await;
        }
        End::TimedOut => {
            let error = format!(
                "the build ran longer than its limit of {}; make it faster or raise `[worker] build_timeout_secs`",
                humane(worker.config.build_timeout())
            );
            conclude(
                worker,
                &job,
                &log,
                &progress,
                holding,
                BuildState::Failed,
                &error,
                Blame::Packager,
                now,
                finished_at,
            )
            .await;
        }
        End::Canceled => {
            conclude(
                worker,
                &job,
                &log,
                &progress,
                holding,
                BuildState::Canceled,
                "canceled on request",
                Blame::Packager,
                now,
                finished_at,
            )
            .await;
        }
    }
    remove_images_and_files(worker, &progress, &work_dir).await;
    consumer_cancelled
}

/// Runs the pipeline while watching the cancel mark, the time limit, the heartbeat, the
/// lease schedule and the drain.
async fn supervise(
    worker: &Worker,
    attempt: &Attempt<'_>,
    holding: &mut Holding,
    consumer_cancelled: &mut bool,
    subscription: &Subscription,
    shutdown: &CancellationToken,
) -> End {
    let id = &attempt.job.build_id;
    let config = &worker.config;
    let started = Instant::now();
    let pipeline = attempt.run();
    tokio::pin!(pipeline);
    let deadline = sleep_until(started + config.build_timeout());
    tokio::pin!(deadline);
    let mut cancel_poll = tokio::time::interval(config.cancel_poll());
    let mut heartbeat = tokio::time::interval(config.heartbeat());
    heartbeat.tick().await;
    let mut leases = 0u32;
    let lease_due =
        sleep_until(started + lease::next_lease_at(0, config.lease_after(), config.lease_ttl()));
    tokio::pin!(lease_due);
    let mut draining = false;
    let drain_deadline = sleep_until(started + Duration::from_secs(365 * 24 * 3600));
    tokio::pin!(drain_deadline);
    loop {
        tokio::select! {
            outcome = &mut pipeline => return End::Finished(outcome),
            _ = &mut deadline => return End::TimedOut,
            _ = &mut drain_deadline, if draining => return End::Drained,
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                if !*consumer_cancelled {
                    subscription.cancel().await;
                    *consumer_cancelled = true;
                }
                drain_deadline.as_mut().reset(Instant::now() + config.drain_grace());
                attempt.log.note(&format!("the worker is stopping: this build has {} to finish", humane(config.drain_grace())));
            }
            _ = cancel_poll.tick() => {
                match worker.store.is_cancel_requested(id).await {
                    Ok(true) => {
                        attempt.log.note("cancel requested: stopping the build");
                        return End::Canceled;
                    }
                    Ok(false) => {}
                    Err(error) => tracing::warn!(build_id = %id, error = %error, "cannot read the cancel mark"),
                }
            }
            _ = heartbeat.tick() => {
                match keys::renew(&worker.store, id, &worker.instance, config.heartbeat_stale()).await {
                    Ok(true) => {
                        let now = osbs_common::telemetry::now_ms().to_string();
                        if let Err(error) = worker.store.set_fields(id, &[(field::HEARTBEAT_MS, now)]).await {
                            tracing::warn!(build_id = %id, error = %error, "cannot record the heartbeat");
                        }
                    }
                    // Gone with a record Redis lost: brought back, and ours again.
                    Ok(false) => match attempt.restore_record().await {
                        Ok(true) if keys::claim(&worker.store, id, &worker.instance, config.heartbeat_stale()).await.unwrap_or(false) => {}
                        _ => return End::Lost,
                    },
                    Err(error) => tracing::warn!(build_id = %id, error = %error, "cannot renew the build's ownership"),
                }
            }
            _ = &mut lease_due => {
                let next = match publish_lease(worker, attempt.job).await {
                    Ok(()) => {
                        leases += 1;
                        if let Holding::Delivery(delivery) = &*holding {
                            // Stop new deliveries first: nothing may wait unacked behind
                            // this build once its own delivery is gone.
                            if !*consumer_cancelled {
                                subscription.cancel().await;
                                *consumer_cancelled = true;
                            }
                            bus::ack(delivery).await;
                            *holding = Holding::Leased;
                            attempt.log.note("long build: its job is now held by a lease");
                        }
                        started + lease::next_lease_at(leases, config.lease_after(), config.lease_ttl())
                    }
                    Err(error) => {
                        tracing::warn!(build_id = %id, error = %error, "cannot publish a lease; retrying");
                        Instant::now() + config.heartbeat()
                    }
                };
                lease_due.as_mut().reset(next);
            }
        }
    }
}

/// Publishes a lease copy of `job`: it expires back into `osbs.jobs` after `lease_ttl`.
async fn publish_lease(worker: &Worker, job: &BuildJob) -> Result<(), WorkerError> {
    publish_copy(
        worker,
        job,
        names::ROUTING_JOB_LEASE,
        worker.config.lease_ttl(),
        lease::HEADER_LEASE,
    )
    .await
}

async fn publish_copy(
    worker: &Worker,
    job: &BuildJob,
    routing_key: &str,
    expiration: Duration,
    marker: &str,
) -> Result<(), WorkerError> {
    let body = job.encode_to_vec();
    let mut headers = FieldTable::default();
    headers.insert(
        marker.into(),
        AMQPValue::LongString(LongString::from(worker.instance.as_bytes().to_vec())),
    );
    let properties = bus::protobuf_properties(names::TYPE_BUILD_JOB)
        .with_expiration(expiration.as_millis().to_string().into())
        .with_headers(headers);
    worker
        .bus
        .publish(Outgoing {
            exchange: names::EXCHANGE_INTERNAL,
            routing_key,
            body: &body,
            properties,
            mandatory: true,
        })
        .await?;
    Ok(())
}

/// A job whose build another worker seems to run, not from that worker's leases: set aside
/// until a dead owner's heartbeat would be stale, then looked at again.
async fn defer(worker: &Worker, delivery: Delivery, id: &str) {
    let job: BuildJob = bus::decode(&delivery, names::TYPE_BUILD_JOB).unwrap_or_default();
    let wait = lease::defer_for(worker.config.heartbeat_stale());
    match publish_copy(
        worker,
        &job,
        names::ROUTING_JOB_LEASE,
        wait,
        lease::HEADER_DEFERRED,
    )
    .await
    {
        Ok(()) => {
            tracing::info!(build_id = %id, ?wait, "another worker runs this build: job set aside");
            bus::ack(&delivery).await;
        }
        Err(error) => {
            tracing::warn!(build_id = %id, error = %error, "cannot set the job aside; requeued");
            sleep(Duration::from_secs(1)).await;
            bus::requeue(&delivery).await;
        }
    }
}

/// Ends a build: log summary, record, result published, then ack or dead letter.
#[allow(clippy::too_many_arguments)]
async fn conclude(
    worker: &Worker,
    job: &BuildJob,
    log: &BuildLog,
    progress: &Progress,
    holding: Holding,
    state: BuildState,
    error: &str,
    blame: Blame,
    started_at: i64,
    finished_at: i64,
) {
    let id = &job.build_id;
    let timings = progress.timings.lock().expect("progress lock").clone();
    log.note(&format!("timings: {}", timings.summary()));
    if let Some((step, took)) = timings.slowest() {
        log.note(&format!(
            "slowest step: {step} ({:.3} s)",
            took.as_secs_f64()
        ));
    }
    match state {
        BuildState::Complete => log.note("build complete"),
        BuildState::Canceled => log.note("build canceled"),
        _ => log.note(&format!("build failed: {error}")),
    }
    let held = progress.held_release.lock().expect("progress lock").take();
    pipeline::free_release(&worker.store, held).await;
    if let Err(error) = keys::forget_reservation(&worker.store, id).await {
        tracing::warn!(build_id = %id, error = %error, "cannot drop the kept reservation; it expires by itself");
    }
    match log.finish(Some(state)).await {
        Ok(file) => progress
            .outputs
            .lock()
            .expect("progress lock")
            .logs
            .insert(0, file),
        Err(error) => {
            tracing::error!(build_id = %id, error = %error, "cannot close the build log file")
        }
    }
    let from = progress.state();
    let result = {
        let outputs = progress.outputs.lock().expect("progress lock");
        report::build_result(
            job,
            state,
            error,
            &outputs,
            &timings,
            started_at,
            finished_at,
            &worker.buildroot(),
        )
    };
    let mut fields = pipeline::final_fields(progress, error, worker);
    fields.push((field::LOG_PATH, log.path().display().to_string()));
    fields.push((field::RESULT_PUBLISHED, "0".into()));
    let reason = if error.is_empty() {
        "built and pushed"
    } else {
        error
    };
    let recorded = match keys::keep_result(&worker.store, id, &result.encode_to_vec()).await {
        Ok(()) => {
            let sources = [from];
            let change = StateChange::new(id, state, reason, &worker.instance)
                .only_from(&sources)
                .with_fields(fields);
            change_or_restore(worker, job, change).await
        }
        Err(error) => Err(ChangeError::Store(error)),
    };
    let announced: Result<(), BusError> = match recorded {
        Ok(Changed::Done(_)) => Ok(()),
        Err(ChangeError::NotAnnounced { source, .. }) => Err(source),
        Ok(Changed::Refused(record)) => {
            // Someone else ended it (an operator, another worker): theirs stands.
            tracing::warn!(build_id = %id, current = %record.state, "the record was ended elsewhere; result not published");
            release_owner(worker, id).await;
            if let Holding::Delivery(delivery) = holding {
                bus::ack(&delivery).await;
            }
            return;
        }
        Ok(Changed::Missing) => {
            let reason = format!(
                "cannot record the end of build {id} ({state}): {}",
                StoreError::NotFound(id.clone())
            );
            dead_letter(worker, holding, &job.encode_to_vec(), &reason).await;
            return;
        }
        Err(ChangeError::Store(store_error)) => {
            let reason = format!("cannot record the end of build {id} ({state}): {store_error}");
            dead_letter(worker, holding, &job.encode_to_vec(), &reason).await;
            return;
        }
    };
    worker.metrics.count_state(state);
    tracing::info!(build_id = %id, %state, error, "build ended");
    // The state event first, then the result: the bridge's `imported` follows `complete`.
    let published = match announced {
        Ok(()) => worker.bus.publish_result(&result).await,
        Err(error) => Err(error),
    };
    if let Err(publish_error) = published {
        // The end and the result are stored: the job's next delivery publishes both
        // (first_look).
        tracing::error!(build_id = %id, error = %publish_error, "cannot announce the end or publish the result; the job goes back to the queue to publish them later");
        if let Holding::Delivery(delivery) = holding {
            bus::requeue(&delivery).await;
        }
        return;
    }
    mark_published(worker, id).await;
    release_owner(worker, id).await;
    if state == BuildState::Failed && blame == Blame::Infrastructure {
        dead_letter(worker, holding, &job.encode_to_vec(), error).await;
    } else if let Holding::Delivery(delivery) = holding {
        bus::ack(&delivery).await;
    }
}

/// A build's end: a record Redis lost meanwhile is re-created from the job (in the state
/// the change starts from) and the change made on it.
async fn change_or_restore(
    worker: &Worker,
    job: &BuildJob,
    change: StateChange<'_>,
) -> Result<Changed, ChangeError> {
    match state::change(&worker.store, &worker.bus, change.clone()).await? {
        Changed::Missing => {
            let from = change.from.and_then(|from| from.first().copied());
            let from = from.unwrap_or(BuildState::Running);
            pipeline::restore(worker, job, from, &change.fields).await?;
            state::change(&worker.store, &worker.bus, change).await
        }
        changed => Ok(changed),
    }
}

async fn mark_published(worker: &Worker, id: &str) {
    if let Err(error) = worker
        .store
        .set_fields(id, &[(field::RESULT_PUBLISHED, "1".into())])
        .await
    {
        tracing::warn!(build_id = %id, error = %error, "cannot mark the result published (a redelivery would publish it again; the bridge is idempotent)");
    }
}

/// Announces the end and publishes the stored result of a build whose worker died (or
/// failed to publish) between recording its end and publishing them.
async fn republish(worker: &Worker, record: &osbs_common::store::BuildRecord, delivery: Delivery) {
    let id = &record.id;
    let decoded = keys::kept_result(&worker.store, id)
        .await
        .ok()
        .flatten()
        .and_then(|bytes| BuildResult::decode(bytes.as_slice()).ok());
    let Some(result) = decoded else {
        dead_letter(
            worker,
            Holding::Delivery(Box::new(delivery)),
            &[],
            &format!("build {id}'s stored result is damaged"),
        )
        .await;
        return;
    };
    let announced = match worker.store.recorded_announcement(id, record.state).await {
        Ok(Some(recorded)) => worker
            .bus
            .announce(&recorded)
            .await
            .map_err(WorkerError::from),
        Ok(None) => Ok(()),
        Err(error) => Err(error.into()),
    };
    let published = match announced {
        Ok(()) => worker
            .bus
            .publish_result(&result)
            .await
            .map_err(WorkerError::from),
        Err(error) => Err(error),
    };
    match published {
        Ok(()) => {
            tracing::info!(build_id = %id, "published the stored result of a finished build");
            mark_published(worker, id).await;
            bus::ack(&delivery).await;
        }
        Err(error) => {
            tracing::error!(build_id = %id, error = %error, "cannot publish the stored result; requeued");
            sleep(Duration::from_secs(1)).await;
            bus::requeue(&delivery).await;
        }
    }
}

/// A transient failure and when to try again.
struct Later<'a> {
    error: &'a WorkerError,
    delay: Duration,
    next: RetryState,
    priority: u8,
}

/// A transient outage ended this attempt: the record goes back to `queued`, the job waits in
/// the retry queue of `later.delay` (and then comes back to `osbs.jobs`), and only then is
/// the delivery acked. The release and its Koji reservation stay held for the next attempt.
async fn retry_later(
    worker: &Worker,
    job: &BuildJob,
    log: &BuildLog,
    progress: &Progress,
    holding: Holding,
    later: Later<'_>,
) {
    let id = &job.build_id;
    let outage = later.error.outage().map_or("outside", retry::Outage::name);
    let until = osbs_proto::external::iso8601(retry::window_closes_at(
        later.next.failing_since_ms,
        worker.config.retry_window(),
    ));
    let reason = format!(
        "transient {outage} failure: retry {} in {} (retried until {until}): {}",
        later.next.retries,
        humane(later.delay),
        later.error.reason()
    );
    log.note(&reason);
    worker.metrics.count_retry(outage);
    tracing::warn!(build_id = %id, retry = later.next.retries, delay = ?later.delay, error = %later.error, "transient {outage} failure: the job waits in a retry queue");
    let _ = log.finish(None).await;
    let from = [progress.state()];
    let change =
        StateChange::new(id, BuildState::Queued, &reason, &worker.instance).only_from(&from);
    if let Err(error) = pipeline::change_state(worker, change).await {
        tracing::warn!(build_id = %id, error = %error, "cannot record the retry; the next attempt decides from the record");
    }
    release_owner(worker, id).await;
    let properties = bus::protobuf_properties(names::TYPE_BUILD_JOB).with_priority(later.priority);
    let parked = worker
        .bus
        .retry_later(
            names::QUEUE_JOBS,
            &job.encode_to_vec(),
            &properties,
            later.delay,
            later.next,
        )
        .await;
    match (parked, holding) {
        (Ok(()), Holding::Delivery(delivery)) => bus::ack(&delivery).await,
        (Ok(()), Holding::Leased) => {}
        (Err(error), Holding::Delivery(delivery)) => {
            tracing::error!(build_id = %id, error = %error, "cannot put the job in a retry queue; it goes back to osbs.jobs at once");
            bus::requeue(&delivery).await;
        }
        (Err(error), Holding::Leased) => {
            tracing::error!(build_id = %id, error = %error, "cannot put a leased job in a retry queue; its lease brings it back when it expires");
        }
    }
}

/// The grace period ended: the build goes back to the queue for another worker.
async fn hand_back(
    worker: &Worker,
    job: &BuildJob,
    log: &BuildLog,
    progress: &Progress,
    holding: Holding,
) {
    let id = &job.build_id;
    log.note("the worker stopped before the build ended: handed back to the queue");
    let held = progress.held_release.lock().expect("progress lock").take();
    pipeline::free_release(&worker.store, held).await;
    let _ = log.finish(None).await;
    let from = [progress.state()];
    let change = StateChange::new(
        id,
        BuildState::Queued,
        "worker stopping: handed back to the queue",
        &worker.instance,
    )
    .only_from(&from);
    let requeued = match pipeline::change_state(worker, change).await {
        Ok(Changed::Done(_)) => Ok(()),
        Ok(Changed::Refused(record)) => Err(format!("the build is {}", record.state)),
        Ok(Changed::Missing) => Err("no build record".to_owned()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(why) = requeued {
        tracing::warn!(build_id = %id, why, "cannot requeue the record; the next worker decides from its state");
    }
    release_owner(worker, id).await;
    match holding {
        Holding::Delivery(delivery) => bus::requeue(&delivery).await,
        Holding::Leased => {
            if let Err(error) = worker.bus.publish_job(job, 0).await {
                tracing::error!(build_id = %id, error = %error, "cannot requeue a leased job; its lease brings it back when it expires");
            }
        }
    }
    tracing::info!(build_id = %id, "build handed back to the queue");
}

/// A takeover of a build whose worker died while pushing: `pushing` cannot go back to
/// `running`, so the build fails and the job waits in `osbs.jobs.dead` for a replay.
async fn died_while_pushing(worker: &Worker, job: &BuildJob, delivery: Delivery) {
    let id = &job.build_id;
    let reason =
        "the worker running this build stopped while pushing; replay it with `osbs replay`";
    let now = osbs_common::telemetry::now_ms();
    let result = report::build_result(
        job,
        BuildState::Failed,
        reason,
        &report::Outputs::default(),
        &report::Timings::default(),
        now,
        now,
        &worker.buildroot(),
    );
    let fields = vec![
        (field::ERROR, reason.to_owned()),
        (field::RESULT_PUBLISHED, "0".to_owned()),
    ];
    let _ = keys::keep_result(&worker.store, id, &result.encode_to_vec()).await;
    let change = StateChange::new(id, BuildState::Failed, reason, &worker.instance)
        .only_from(&[BuildState::Pushing])
        .with_fields(fields);
    match state::change(&worker.store, &worker.bus, change).await {
        Ok(Changed::Done(_)) => {
            worker.metrics.count_state(BuildState::Failed);
            if worker.bus.publish_result(&result).await.is_ok() {
                mark_published(worker, id).await;
            }
        }
        // Recorded; `result_published` stays 0: the replayed job publishes both.
        Err(ChangeError::NotAnnounced { .. }) => worker.metrics.count_state(BuildState::Failed),
        Ok(Changed::Refused(_) | Changed::Missing) | Err(ChangeError::Store(_)) => {}
    }
    release_owner(worker, id).await;
    dead_letter(worker, Holding::Delivery(Box::new(delivery)), &[], reason).await;
}

/// The build log could not even be created: fail the record and dead-letter the job.
async fn fail_without_log(
    worker: &Worker,
    job: &BuildJob,
    delivery: Delivery,
    error: &WorkerError,
) {
    let id = &job.build_id;
    let reason = error.reason();
    let now = osbs_common::telemetry::now_ms();
    let result = report::build_result(
        job,
        BuildState::Failed,
        &reason,
        &report::Outputs::default(),
        &report::Timings::default(),
        now,
        now,
        &worker.buildroot(),
    );
    let change = StateChange::new(id, BuildState::Failed, &reason, &worker.instance)
        .only_from(&[BuildState::Running])
        .with_fields(vec![(field::ERROR, reason.clone())]);
    if matches!(
        state::change(&worker.store, &worker.bus, change).await,
        Ok(Changed::Done(_)) | Err(ChangeError::NotAnnounced { .. })
    ) {
        worker.metrics.count_state(BuildState::Failed);
        let _ = worker.bus.publish_result(&result).await;
    }
    release_owner(worker, id).await;
    dead_letter(worker, Holding::Delivery(Box::new(delivery)), &[], &reason).await;
}

/// Moves a job to `osbs.jobs.dead` with `reason`: the held delivery itself, or (leased) a
/// copy made from `body`.
async fn dead_letter(worker: &Worker, holding: Holding, body: &[u8], reason: &str) {
    worker.metrics.count_dead_letter(names::QUEUE_JOBS);
    tracing::error!(
        reason,
        "job dead-lettered to {}",
        names::dead_queue(names::QUEUE_JOBS)
    );
    match holding {
        Holding::Delivery(delivery) => {
            if let Err(error) = worker
                .bus
                .dead_letter(&delivery, names::QUEUE_JOBS, reason)
                .await
            {
                tracing::error!(error = %error, "cannot dead-letter the job; it goes back to the queue");
                bus::requeue(&delivery).await;
            }
        }
        Holding::Leased => {
            let mut headers = FieldTable::default();
            for (name, value) in [
                (names::HEADER_DEAD_REASON, bus::one_line(reason, 4000)),
                (names::HEADER_DEAD_QUEUE, names::QUEUE_JOBS.to_owned()),
                (
                    names::HEADER_DEAD_EXCHANGE,
                    names::EXCHANGE_INTERNAL.to_owned(),
                ),
                (
                    names::HEADER_DEAD_ROUTING_KEY,
                    names::ROUTING_JOB.to_owned(),
                ),
                (
                    names::HEADER_DEAD_AT,
                    osbs_proto::external::iso8601(osbs_common::telemetry::now_ms()),
                ),
            ] {
                headers.insert(
                    name.into(),
                    AMQPValue::LongString(LongString::from(value.into_bytes())),
                );
            }
            let published = worker
                .bus
                .publish(Outgoing {
                    exchange: names::EXCHANGE_DEAD,
                    routing_key: names::QUEUE_JOBS,
                    body,
                    properties: bus::protobuf_properties(names::TYPE_BUILD_JOB)
                        .with_headers(headers),
                    mandatory: true,
                })
                .await;
            if let Err(error) = published {
                tracing::error!(error = %error, "cannot dead-letter a leased job; its lease brings it back when it expires");
            }
        }
    }
}

async fn release_owner(worker: &Worker, id: &str) {
    if let Err(error) = keys::disown(&worker.store, id, &worker.instance).await {
        tracing::warn!(build_id = %id, error = %error, "cannot release the build's ownership; it expires by itself");
    }
}

/// Stops and removes the containers the build started (a canceled or abandoned build's
/// step container is still running).
async fn remove_containers(worker: &Worker, progress: &Progress) {
    let containers = std::mem::take(&mut *progress.containers.lock().expect("progress lock"));
    futures::future::join_all(
        containers
            .iter()
            .map(|container| worker.engine.remove_container(container)),
    )
    .await;
}

/// Removes the images the build made and its work directory.
async fn remove_images_and_files(worker: &Worker, progress: &Progress, work_dir: &std::path::Path) {
    let images = std::mem::take(&mut *progress.images.lock().expect("progress lock"));
    for image in images.iter().rev() {
        worker.engine.remove_image(image).await;
    }
    let dir = work_dir.to_owned();
    let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    })
    .await;
    if let Ok(Err(error)) = removed {
        tracing::warn!(dir = %work_dir.display(), error = %error, "cannot remove the build's work directory");
    }
}

/// `3 h`, `20 min`, `45 s`.
pub fn humane(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(humane(Duration::from_secs(10_800)), "3 h");
        assert_eq!(humane(Duration::from_secs(1200)), "20 min");
        assert_eq!(humane(Duration::from_secs(45)), "45 s");
    }
}
