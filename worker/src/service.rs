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
use crate::ending::{self, Failure, Stop, humane};
use crate::error::WorkerError;
use crate::finish::{self, Holding, Run, dead_letter, release_owner};
use crate::lease::{self, FirstLook, Pickup};
use crate::pipeline::{self, Attempt, Progress, Worker};
use lapin::types::{AMQPValue, FieldTable, LongString};
use osbs_common::bus::{self, Bus, Delivery, Outgoing, Subscription};
use osbs_common::http::{Health, Metrics};
use osbs_common::retry::RetryState;
use osbs_common::state::{Changed, StateChange};
use osbs_common::store::field;
use osbs_common::{Store, StoreError};
use osbs_proto::Message;
use osbs_proto::names;
use osbs_proto::v1::{BuildJob, BuildState};
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
    let arches = config
        .worker
        .served_arches(&engine_info.architecture)
        .map_err(WorkerError::Infrastructure)?;
    let oci_index = config
        .worker
        .oci_index()
        .map_err(WorkerError::Infrastructure)?;
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
        arches,
        oci_index,
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
    // Beside the slots: a live attempt's ledger is never taken.
    let sweeper = worker.clone();
    tokio::spawn(async move { remove_leftovers(&sweeper).await });
    // `osbs.jobs` and the queue of each arch served, each with its own slots: an arch job
    // never waits behind the build's own jobs (nor the other way round).
    let mut queues = vec![names::QUEUE_JOBS.to_owned()];
    for arch in &worker.arches {
        worker.bus.declare_arch_queues(arch).await?;
        queues.push(names::jobs_queue(arch));
    }
    for queue in &queues {
        for slot in 0..slots {
            let first = worker.bus.consume(queue, 1).await?;
            tasks.spawn(run_slot(
                worker.clone(),
                Slot {
                    queue: queue.clone(),
                    number: slot,
                },
                first,
                shutdown.clone(),
            ));
        }
    }
    health.set_ready(
        true,
        format!(
            "{} consuming {} ({slots} slots each)",
            worker.instance,
            queues.join(", ")
        ),
    );
    tracing::info!(instance = %worker.instance, slots, queues = %queues.join(", "), "worker ready");
    shutdown.cancelled().await;
    health.set_ready(false, "draining");
    tracing::info!(grace = ?worker.config.drain_grace(), "draining: no new jobs; builds in hand finish or go back to the queue");
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// A slot: one build at a time from one queue.
struct Slot {
    queue: String,
    number: usize,
}

/// One build at a time, forever.
async fn run_slot(worker: Worker, slot: Slot, first: Subscription, shutdown: CancellationToken) {
    let Slot {
        queue,
        number: slot,
    } = slot;
    let mut subscription = Some(first);
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let current = match subscription.as_mut() {
            Some(current) => current,
            None => match worker.bus.consume(&queue, 1).await {
                Ok(new) => subscription.insert(new),
                Err(error) => {
                    tracing::error!(slot, queue, error = %error, "cannot consume jobs; retrying");
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
    let (mut job, record) = match look(worker, &delivery).await {
        Ok(found) => found,
        Err(reason) => {
            dead_letter(worker, Holding::Delivery(Box::new(delivery)), &[], &reason).await;
            return false;
        }
    };
    let id = job.build_id.clone();
    let pending_result = record.field(field::RESULT_PUBLISHED) == "0";
    if !job.arch.is_empty() {
        return handle_arch_job(worker, job, &record, delivery, subscription, shutdown).await;
    }
    if crate::archjob::orchestrated(record.state, record.field(field::ARCHES)) {
        skip_orchestrated(worker, &record, &delivery).await;
        return false;
    }
    match lease::first_look(record.state, pending_result) {
        FirstLook::Skip(why) => {
            tracing::info!(build_id = %id, state = %record.state, why, "job skipped");
            worker.metrics.count_ignored(why);
            bus::ack(&delivery).await;
            return false;
        }
        FirstLook::Republish => {
            finish::republish(worker, &record, delivery).await;
            return false;
        }
        FirstLook::Claim => {}
    }
    let Some((claimed, delivery)) = claim(worker, &id, delivery).await else {
        return false;
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
            let reason =
                "the worker running this build stopped while pushing; replay it with `osbs replay`";
            finish::fail_at_once(worker, &job, delivery, BuildState::Pushing, reason).await;
            false
        }
        pickup @ (Pickup::Start | Pickup::TakeOver) => {
            job.attempt = record.attempts() + 1;
            let rearm = !record.field(field::ARCHES).is_empty();
            let taken = Taken::new(job, &record, &delivery, pickup, rearm);
            run_attempt(worker, taken, delivery, subscription, shutdown).await
        }
    }
}

/// Claims build `id` for this worker: whether it is now this worker's, with the delivery
/// back; `None` when Redis could not be asked (the job is then dead-lettered).
async fn claim(worker: &Worker, id: &str, delivery: Delivery) -> Option<(bool, Delivery)> {
    let stale = worker.config.heartbeat_stale();
    match keys::claim(&worker.store, id, &worker.instance, stale).await {
        Ok(claimed) => Some((claimed, delivery)),
        Err(error) => {
            let reason = format!("cannot claim build {id}: {error}");
            dead_letter(worker, Holding::Delivery(Box::new(delivery)), &[], &reason).await;
            None
        }
    }
}

/// The build's own job of a build its arch jobs run now (a redelivery, an old lease): acked.
async fn skip_orchestrated(
    worker: &Worker,
    record: &osbs_common::store::BuildRecord,
    delivery: &Delivery,
) {
    tracing::info!(build_id = %record.id, state = %record.state, "job skipped: its arch jobs build it");
    worker.metrics.count_ignored("handed to arch jobs");
    bus::ack(delivery).await;
}

/// An arch job (DESIGN.md "Architectures"): judged on the build's record and its arch's
/// part (built already: acked, or the assembly the set still lacks), then run as a build
/// attempt whose ownership is the arch's (`<id>:<arch>`).
async fn handle_arch_job(
    worker: &Worker,
    job: BuildJob,
    record: &osbs_common::store::BuildRecord,
    delivery: Delivery,
    subscription: &Subscription,
    shutdown: &CancellationToken,
) -> bool {
    let id = job.build_id.clone();
    if record.field(field::RESULT_PUBLISHED) == "0" && record.state.is_final() {
        finish::republish(worker, record, delivery).await;
        return false;
    }
    let store = &worker.store;
    let part = store
        .arch_part(&id, &job.arch)
        .await
        .map(|part| part.is_some());
    let complete = store.arches_complete(&id, &job.arches).await;
    let (part, complete) = match (part, complete) {
        (Ok(part), Ok(complete)) => (part, complete),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(build_id = %id, error = %error, "cannot read the arch parts; requeued");
            sleep(Duration::from_secs(1)).await;
            bus::requeue(&delivery).await;
            return false;
        }
    };
    let same_release = record.field(field::NVR) == crate::archjob::nvr_text(&job);
    match crate::archjob::look(record.state, same_release, part, complete) {
        crate::archjob::ArchLook::Skip(why) => {
            tracing::info!(build_id = %id, arch = %job.arch, state = %record.state, why, "arch job skipped");
            worker.metrics.count_ignored(why);
            bus::ack(&delivery).await;
            return false;
        }
        crate::archjob::ArchLook::Assemble => {
            let since = std::time::Instant::now();
            crate::multiarch::assemble(worker, &job, Holding::Delivery(Box::new(delivery)), since)
                .await;
            return false;
        }
        crate::archjob::ArchLook::Build => {}
    }
    let owner = crate::archjob::owner(&job);
    let stale = worker.config.heartbeat_stale();
    let claimed = match keys::claim(store, &owner, &worker.instance, stale).await {
        Ok(claimed) => claimed,
        Err(error) => {
            let reason = format!("cannot claim {owner}: {error}");
            dead_letter(worker, Holding::Delivery(Box::new(delivery)), &[], &reason).await;
            return false;
        }
    };
    let is_lease = bus::header_string(&delivery.properties, lease::HEADER_LEASE).is_some();
    // The build's state says nothing of one arch: a claimed arch job starts (or takes over).
    match lease::after_claim(BuildState::Queued, claimed, is_lease) {
        Pickup::OwnedElsewhere => {
            bus::ack(&delivery).await;
            false
        }
        Pickup::Defer => {
            defer(worker, delivery, &id).await;
            false
        }
        pickup => {
            let taken = Taken::new(job, record, &delivery, pickup, false);
            run_attempt(worker, taken, delivery, subscription, shutdown).await
        }
    }
}

/// The job a delivery carries and its build's record; `Err` says why the job is refused.
async fn look(
    worker: &Worker,
    delivery: &Delivery,
) -> Result<(BuildJob, osbs_common::store::BuildRecord), String> {
    let job: BuildJob = bus::decode(delivery, names::TYPE_BUILD_JOB)?;
    if job.build_id.is_empty() {
        return Err("job without a build_id".to_owned());
    }
    let id = &job.build_id;
    match read_or_restore(worker, &job).await {
        Ok(Some(record)) => Ok((job, record)),
        Ok(None) => Err(format!(
            "no build record for build {id}, and it could not be re-created from the job"
        )),
        Err(error) => Err(format!("cannot read build {id}'s record: {error}")),
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
    /// The record names the arches of an earlier orchestration (a replay of a multi-arch
    /// build): they and the cancel mark that stopped its arch jobs are cleared as it starts.
    rearm: bool,
}

impl Taken {
    fn new(
        job: BuildJob,
        record: &osbs_common::store::BuildRecord,
        delivery: &Delivery,
        pickup: Pickup,
        rearm: bool,
    ) -> Taken {
        Taken {
            retry: bus::retry_state(&delivery.properties),
            priority: delivery.properties.priority().unwrap_or(0),
            job,
            from: record.state,
            pickup,
            previous: record.field(field::WORKER).to_owned(),
            rearm,
        }
    }
}

async fn run_attempt(
    worker: &Worker,
    taken: Taken,
    delivery: Delivery,
    subscription: &Subscription,
    shutdown: &CancellationToken,
) -> bool {
    let Some(started_at) = begin(worker, &taken).await else {
        // Canceled or changed between our read and now: nothing to run.
        release_owner(worker, &taken.job).await;
        bus::ack(&delivery).await;
        return false;
    };
    let job = &taken.job;
    let id = &job.build_id;
    let artifacts = match job.arch.as_str() {
        "" => worker.artifacts_dir.join(id),
        arch => worker.artifacts_dir.join(id).join(arch),
    };
    // A retried build keeps one log: the earlier attempts' lines, each retry said.
    let resume = taken.retry.retries > 0;
    let log = match BuildLog::open_for(&artifacts, id, &job.arch, worker.store.clone(), resume) {
        Ok(log) => log,
        Err(error) => {
            let error = WorkerError::io(format!(
                "creating the build log in {}",
                artifacts.display()
            ))(error);
            let reason = error.reason();
            finish::fail_at_once(worker, job, delivery, BuildState::Running, &reason).await;
            return false;
        }
    };
    let work_dir = worker.config.work_dir.join(format!(
        "{id}-{}-{}",
        job.attempt,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    let mut progress = Progress {
        ledger: open_ledger(&work_dir),
        ..Progress::default()
    };
    *progress.state.lock().expect("progress lock") = Some(BuildState::Running);
    let attempt = Attempt {
        worker,
        job,
        number: job.attempt,
        log: &log,
        progress: &progress,
        work_dir: work_dir.clone(),
        artifacts,
        arch: std::sync::OnceLock::new(),
    };
    let mut holding = Holding::Delivery(Box::new(delivery));
    let mut watch = Watch {
        subscription,
        shutdown,
        consumer_cancelled: false,
    };
    let stop = supervise(&attempt, &mut holding, &mut watch).await;
    let run = Run {
        worker,
        job,
        log: &log,
        progress: &progress,
        started_at,
        finished_at: osbs_common::telemetry::now_ms(),
        priority: taken.priority,
    };
    // A build that ran to its end left only stopped step containers (the engine keeps them,
    // `rm=false`): they go after the result is out, with the images and the work directory,
    // off the build's path. Any other stop may leave one running: it goes now.
    let succeeded = matches!(stop, Stop::Succeeded);
    if !succeeded {
        remove_containers(worker, &progress).await;
    }
    let now = osbs_common::telemetry::now_ms();
    let ending = ending::ending(stop, taken.retry, now, worker.config.retry_window());
    match ending {
        // An arch job's success is its part, recorded (and the list, by the last one).
        crate::ending::Ending::End {
            state: BuildState::Complete,
            ..
        } if !run.job.arch.is_empty() => crate::multiarch::arch_done(&run, holding).await,
        ending => finish::end(&run, holding, ending).await,
    }
    if succeeded {
        remove_containers(worker, &progress).await;
    }
    remove_images_and_files(worker, &progress, &work_dir).await;
    if let Some(ledger) = progress.ledger.take() {
        ledger.close();
    }
    watch.consumer_cancelled
}

/// The attempt's ledger (and its work directory); without one a crash now would leave its
/// containers and images behind, which is no reason not to build.
fn open_ledger(work_dir: &std::path::Path) -> Option<crate::leftovers::Ledger> {
    crate::leftovers::Ledger::open(work_dir)
        .inspect_err(|error| {
            tracing::warn!(dir = %work_dir.display(), error = %error, "cannot keep a ledger of what the build makes")
        })
        .ok()
}

/// Removes what the attempts of a killed worker on this host left (their ledgers no live
/// process holds): step containers, images, work directories.
pub async fn remove_leftovers(worker: &Worker) {
    let work_dir = worker.config.work_dir.clone();
    let dead = tokio::task::spawn_blocking(move || crate::leftovers::dead_attempts(&work_dir))
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))
        .and_then(|found| found);
    let dead = match dead {
        Ok(dead) => dead,
        Err(error) => {
            tracing::warn!(dir = %worker.config.work_dir.display(), error = %error, "cannot look for what stopped builds left");
            return;
        }
    };
    for attempt in dead {
        remove_these_containers(worker, &attempt.left.containers).await;
        remove_these_images_and_files(worker, &attempt.left.images, &attempt.attempt_dir).await;
        tracing::info!(
            dir = %attempt.attempt_dir.display(),
            containers = attempt.left.containers.len(),
            images = attempt.left.images.len(),
            "removed what a stopped worker's build left"
        );
        attempt.close();
    }
}

/// `queued → running` (or a takeover's `running → running`), announced; the start time,
/// or `None` when the record may not start (canceled or changed since it was read).
async fn begin(worker: &Worker, taken: &Taken) -> Option<i64> {
    let job = &taken.job;
    let id = &job.build_id;
    let now = osbs_common::telemetry::now_ms();
    if !job.arch.is_empty() {
        // An arch job runs inside its build's `running`: no state of its own.
        tracing::info!(build_id = %id, arch = %job.arch, attempt = job.attempt, "arch job started");
        return Some(now);
    }
    let reason = match taken.pickup {
        Pickup::TakeOver => format!(
            "taken over by {} (worker {} stopped renewing its heartbeat)",
            worker.instance, taken.previous
        ),
        _ => format!("started by {}", worker.instance),
    };
    let sources = [taken.from];
    let mut fields = vec![
        (field::WORKER, worker.instance.clone()),
        (field::ATTEMPTS, job.attempt.to_string()),
        (field::HEARTBEAT_MS, now.to_string()),
        (field::ERROR, String::new()),
    ];
    if taken.rearm && taken.from == BuildState::Queued {
        fields.push((field::ARCHES, String::new()));
        fields.push((field::CANCEL_REQUESTED, String::new()));
    }
    let change = StateChange::new(id, BuildState::Running, &reason, &worker.instance)
        .only_from(&sources)
        .with_fields(fields);
    let not_started = match pipeline::change_state(worker, change).await {
        Ok(Changed::Done(_)) => None,
        Ok(Changed::Refused(record)) => Some(format!("the build is {}", record.state)),
        Ok(Changed::Missing) => Some("no build record".to_owned()),
        Err(error) => Some(error.to_string()),
    };
    if let Some(why) = not_started {
        tracing::info!(build_id = %id, why, "job not started");
        return None;
    }
    worker.metrics.count_state(BuildState::Running);
    if job.requested_at_ms > 0 {
        worker.metrics.observe_lag(
            names::QUEUE_JOBS,
            (now - job.requested_at_ms).max(0) as f64 / 1000.0,
        );
    }
    tracing::info!(build_id = %id, attempt = job.attempt, repo = %job.repo, commit = %job.commit, "build started");
    Some(now)
}

/// The slot's consumer and the shutdown, watched while a build runs.
struct Watch<'a> {
    subscription: &'a Subscription,
    shutdown: &'a CancellationToken,
    /// Whether the consumer was cancelled (a lease, a drain) and must be reopened.
    consumer_cancelled: bool,
}

impl Watch<'_> {
    /// Stops new deliveries on this slot (once).
    async fn cancel_consumer(&mut self) {
        if !self.consumer_cancelled {
            self.subscription.cancel().await;
            self.consumer_cancelled = true;
        }
    }
}

/// Runs the pipeline while watching the cancel mark, the time limit, the heartbeat, the
/// lease schedule and the drain; says how it stopped.
async fn supervise(attempt: &Attempt<'_>, holding: &mut Holding, watch: &mut Watch<'_>) -> Stop {
    let (worker, id) = (attempt.worker, &attempt.job.build_id);
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
            outcome = &mut pipeline => {
                if outcome.is_ok() && *attempt.progress.orchestrated.lock().expect("progress lock") {
                    return Stop::Orchestrated;
                }
                return stop_of(outcome);
            }
            _ = &mut deadline => return Stop::TimedOut(config.build_timeout()),
            _ = &mut drain_deadline, if draining => return Stop::Drained,
            _ = watch.shutdown.cancelled(), if !draining => {
                draining = true;
                watch.cancel_consumer().await;
                drain_deadline.as_mut().reset(Instant::now() + config.drain_grace());
                attempt.log.note(&format!("the worker is stopping: this build has {} to finish", humane(config.drain_grace())));
            }
            _ = cancel_poll.tick() => {
                if cancel_requested(attempt).await {
                    return Stop::Canceled;
                }
            }
            _ = heartbeat.tick() => {
                if !beat(attempt).await {
                    return Stop::Lost;
                }
            }
            _ = &mut lease_due => {
                let next = match lease(attempt, holding, watch).await {
                    Ok(()) => {
                        leases += 1;
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

/// The pipeline's outcome as values.
fn stop_of(outcome: Result<(), WorkerError>) -> Stop {
    match outcome {
        Ok(()) => Stop::Succeeded,
        Err(error) => Stop::Failed(Failure {
            reason: error.reason(),
            blame: error.blame(),
            outage: error.outage(),
        }),
    }
}

/// Whether someone asked to cancel the build (logged when so).
async fn cancel_requested(attempt: &Attempt<'_>) -> bool {
    let id = &attempt.job.build_id;
    match attempt.worker.store.is_cancel_requested(id).await {
        Ok(true) => {
            attempt.log.note("cancel requested: stopping the build");
            true
        }
        Ok(false) => false,
        Err(error) => {
            tracing::warn!(build_id = %id, error = %error, "cannot read the cancel mark");
            false
        }
    }
}

/// Renews the build's ownership and its heartbeat; `false` when another worker owns it now.
async fn beat(attempt: &Attempt<'_>) -> bool {
    let (worker, id) = (attempt.worker, &attempt.job.build_id);
    let owner = crate::archjob::owner(attempt.job);
    let stale = worker.config.heartbeat_stale();
    match keys::renew(&worker.store, &owner, &worker.instance, stale).await {
        Ok(true) => {
            let now = osbs_common::telemetry::now_ms().to_string();
            if let Err(error) = worker
                .store
                .set_fields(id, &[(field::HEARTBEAT_MS, now)])
                .await
            {
                tracing::warn!(build_id = %id, error = %error, "cannot record the heartbeat");
            }
            true
        }
        // Expired, taken over, or gone with a Redis that lost everything. The record comes
        // back if it is missing (the pipeline may have brought it back already), and the
        // build stays ours only if no other worker holds it now.
        Ok(false) => {
            if let Err(error) = attempt.restore_record().await {
                tracing::warn!(build_id = %id, error = %error, "cannot re-create the build's record");
            }
            keys::claim(&worker.store, &owner, &worker.instance, stale)
                .await
                .unwrap_or(false)
        }
        Err(error) => {
            tracing::warn!(build_id = %id, error = %error, "cannot renew the build's ownership");
            true
        }
    }
}

/// Publishes the next lease; the first one takes the place of the delivery (acked).
async fn lease(
    attempt: &Attempt<'_>,
    holding: &mut Holding,
    watch: &mut Watch<'_>,
) -> Result<(), WorkerError> {
    publish_lease(attempt.worker, attempt.job).await?;
    if let Holding::Delivery(delivery) = &*holding {
        // Stop new deliveries first: nothing may wait unacked behind this build once its
        // own delivery is gone.
        watch.cancel_consumer().await;
        bus::ack(delivery).await;
        *holding = Holding::Leased;
        attempt
            .log
            .note("long build: its job is now held by a lease");
    }
    Ok(())
}

/// Publishes a lease copy of `job`: it expires back into its queue (`osbs.jobs`, an arch
/// job's `osbs.jobs.<arch>`) after `lease_ttl`.
async fn publish_lease(worker: &Worker, job: &BuildJob) -> Result<(), WorkerError> {
    publish_copy(
        worker,
        job,
        &names::job_lease_routing_key(&job.arch),
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
        &names::job_lease_routing_key(&job.arch),
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

/// Stops and removes the containers the build started (a canceled or abandoned build's
/// step container is still running).
async fn remove_containers(worker: &Worker, progress: &Progress) {
    let containers = std::mem::take(&mut *progress.containers.lock().expect("progress lock"));
    remove_these_containers(worker, &containers).await;
}

async fn remove_these_containers(worker: &Worker, containers: &[String]) {
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
    remove_these_images_and_files(worker, &images, work_dir).await;
}

async fn remove_these_images_and_files(
    worker: &Worker,
    images: &[String],
    work_dir: &std::path::Path,
) {
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
