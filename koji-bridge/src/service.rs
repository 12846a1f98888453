//! The `osbs-koji-bridge` service: consumes `osbs.results`, imports complete builds (or
//! writes bundles), refunds the reservations of failed and canceled ones, records the
//! outcome (`imported` / `import_failed`, the latter with Koji's build id and NVR when only
//! the tagging failed) and publishes it, exactly once per build.
//!
//! A delivery is acknowledged only once its outcome is recorded and announced (one state
//! change, `osbs_common::state::change`); a refusal is recorded, announced, then
//! dead-lettered with its reason; a hub that stays down past the quick retries sends the
//! result to a retry queue of growing delay (`osbs_common::retry`) for `[koji]
//! retry_window_secs`, after which the import ends `import_failed`; other transient failures
//! (Redis) hand the delivery back to the queue after a pause. The next attempt resumes. A
//! record Redis lost is re-created from the result.

use crate::config::BridgeConfig;
use crate::error::BridgeError;
use crate::guard::{Guard, ImportLock, Marker};
use crate::import::{ImportError, Imported, Importer, Refunded};
use osbs_common::bus::{self, Bus, Delivery};
use osbs_common::http::{Health, Metrics};
use osbs_common::retry::{self, Outage, Retry, RetryState};
use osbs_common::state::{self, ChangeError, Changed, StateChange};
use osbs_common::store::{Store, StoreError, field, output_fields};
use osbs_common::telemetry::{hostname, now_ms};
use osbs_koji::{KojiClient, RefundState, retry_policy};
use osbs_proto::names;
use osbs_proto::v1::{BuildResult, BuildState};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What to do with a result (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Import,
    /// A scratch build: never imported; its reservation (if any) is released.
    SkipScratch,
    Refund(RefundState),
    /// Not a result the bridge acts on: dead-lettered with this reason.
    Reject(String),
}

/// The action for `result`.
pub fn decide(result: &BuildResult) -> Action {
    let state = BuildState::try_from(result.state).unwrap_or(BuildState::Unspecified);
    let scratch = result
        .job
        .as_ref()
        .and_then(|job| job.options.as_ref())
        .is_some_and(|options| options.scratch);
    match state {
        BuildState::Complete if scratch => Action::SkipScratch,
        BuildState::Complete => Action::Import,
        BuildState::Failed => Action::Refund(RefundState::Failed),
        BuildState::Canceled => Action::Refund(RefundState::Canceled),
        other => Action::Reject(format!(
            "a BuildResult for build {:?} in state {other}: only complete, failed and canceled results are handled",
            result.build_id
        )),
    }
}

/// The record fields and state change of an import's outcome (pure).
pub fn imported_fields(imported: &Imported) -> (Vec<(&'static str, String)>, String) {
    match imported {
        Imported::Hub {
            koji_build_id,
            nvr,
            tag,
            recovered,
        } => {
            let mut reason = format!("imported into Koji as {nvr} (build {koji_build_id})");
            if let Some(tag) = tag {
                reason.push_str(&format!(", tagged into {tag}"));
            }
            if *recovered {
                reason.push_str(" (found imported by an earlier attempt)");
            }
            (
                vec![
                    (field::KOJI_BUILD_ID, koji_build_id.to_string()),
                    (field::KOJI_IMPORT, "hub".into()),
                    (field::KOJI_TAG, tag.clone().unwrap_or_default()),
                    (field::ERROR, String::new()),
                ],
                reason,
            )
        }
        Imported::Bundle { dir, nvr, .. } => (
            vec![
                (field::KOJI_IMPORT, "bundle".into()),
                (field::KOJI_BUNDLE, dir.display().to_string()),
                (field::ERROR, String::new()),
            ],
            format!(
                "no Koji hub configured: import bundle of {nvr} written to {}",
                dir.display()
            ),
        ),
    }
}

/// The record fields and reason of an import whose tagging was refused (pure): what Koji
/// holds, so that the record is true to it.
pub fn untagged_fields(error: &ImportError) -> (Vec<(&'static str, String)>, String) {
    let reason = format!("{error}; once fixed, `osbs replay` tags it (no second import)");
    let mut fields = vec![(field::ERROR, reason.clone())];
    if let ImportError::Untagged {
        koji_build_id, nvr, ..
    } = error
    {
        fields.extend([
            (field::KOJI_BUILD_ID, koji_build_id.to_string()),
            (field::KOJI_IMPORT, "hub".to_owned()),
            (field::KOJI_TAG, String::new()),
            (field::NVR, nvr.clone()),
        ]);
    }
    (fields, reason)
}

/// The history's reason of a record brought back from a result.
pub const RESTORED: &str = "re-created from its result: Redis had lost the record";

/// The record fields a result carries, for a record Redis lost (pure).
pub fn restored_fields(result: &BuildResult) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        (field::ERROR, result.error.clone()),
        (field::WORKER, result.worker.clone()),
        (field::RESULT_PUBLISHED, "1".to_owned()),
    ];
    if let Some(job) = &result.job {
        fields.push((field::ATTEMPTS, job.attempt.to_string()));
    }
    fields.extend(output_fields(result.nvr.as_ref(), result.image.as_ref()));
    if let Some(log) = result.logs.iter().find(|log| log.name == "build.log") {
        fields.push((field::LOG_PATH, log.path.clone()));
    }
    if !result.arches.is_empty() {
        let arches: Vec<&str> = result
            .arches
            .iter()
            .map(|part| part.arch.as_str())
            .collect();
        // The worker's form (`field::ARCHES`: comma-separated), which every reader splits.
        fields.push((field::ARCHES, arches.join(",")));
    }
    fields
}

fn marker_of(imported: &Imported) -> Marker {
    match imported {
        Imported::Hub {
            koji_build_id,
            nvr,
            tag,
            ..
        } => Marker {
            kind: "hub".into(),
            koji_build_id: *koji_build_id,
            nvr: nvr.clone(),
            tag: tag.clone().unwrap_or_default(),
            dir: String::new(),
            published: false,
        },
        Imported::Bundle { dir, nvr, .. } => Marker {
            kind: "bundle".into(),
            koji_build_id: 0,
            nvr: nvr.clone(),
            tag: String::new(),
            dir: dir.display().to_string(),
            published: false,
        },
    }
}

fn imported_of(marker: &Marker) -> Imported {
    if marker.kind == "bundle" {
        Imported::Bundle {
            dir: marker.dir.clone().into(),
            nvr: marker.nvr.clone(),
            recovered: true,
        }
    } else {
        Imported::Hub {
            koji_build_id: marker.koji_build_id,
            nvr: marker.nvr.clone(),
            tag: (!marker.tag.is_empty()).then(|| marker.tag.clone()),
            recovered: true,
        }
    }
}

/// How a delivery ended.
enum Done {
    Ack,
    Requeue,
    DeadLetter(String),
    /// The hub is down: retried later, if the retry window allows ([`Handler::outcome`]).
    Unavailable(String),
    /// Put in the retry queue of `delay`, with `next` in its headers.
    RetryLater {
        delay: Duration,
        next: RetryState,
    },
}

/// Handles deliveries of `osbs.results`.
#[derive(Debug)]
pub struct Handler {
    bus: Arc<Bus>,
    store: Store,
    guard: Guard,
    importer: Importer,
    metrics: Metrics,
    shutdown: CancellationToken,
    by: String,
}

impl Handler {
    pub fn new(
        bus: Arc<Bus>,
        store: Store,
        config: &BridgeConfig,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Result<Handler, BridgeError> {
        Ok(Handler {
            guard: Guard::new(store.clone(), config.koji.lock_ttl()),
            importer: Importer::new(&config.koji, &config.storage.artifacts_dir)?,
            bus,
            store,
            metrics,
            shutdown,
            by: format!("koji-bridge@{}", hostname()),
        })
    }

    /// Handles one delivery to the end (ack, requeue or dead letter).
    pub async fn handle(&self, delivery: Delivery) {
        self.metrics.in_flight.inc();
        let started = std::time::Instant::now();
        if let Some(sent) = delivery.properties.timestamp() {
            let lag = (now_ms() / 1000).saturating_sub(*sent as i64).max(0);
            self.metrics.observe_lag(names::QUEUE_RESULTS, lag as f64);
        }
        let done = self.outcome(&delivery).await;
        match done {
            Done::Ack => bus::ack(&delivery).await,
            Done::Requeue => {
                tokio::select! {
                    _ = self.shutdown.cancelled() => {}
                    _ = tokio::time::sleep(self.importer.config().requeue_delay()) => {}
                }
                bus::requeue(&delivery).await;
            }
            Done::RetryLater { delay, next } => {
                self.metrics.count_retry(Outage::Koji.name());
                match self
                    .bus
                    .retry_later(
                        names::QUEUE_RESULTS,
                        &delivery.data,
                        &delivery.properties,
                        delay,
                        next,
                    )
                    .await
                {
                    Ok(()) => bus::ack(&delivery).await,
                    Err(error) => {
                        tracing::error!(error = %error, "cannot put a result in a retry queue; it goes back to the queue");
                        bus::requeue(&delivery).await;
                    }
                }
            }
            // Decided in `outcome`; kept for completeness: back to the queue.
            Done::Unavailable(_) => bus::requeue(&delivery).await,
            Done::DeadLetter(reason) => {
                match self
                    .bus
                    .dead_letter(&delivery, names::QUEUE_RESULTS, &reason)
                    .await
                {
                    Ok(()) => self.metrics.count_dead_letter(names::QUEUE_RESULTS),
                    Err(error) => {
                        tracing::error!(error = %error, "cannot dead-letter a result; it goes back to the queue");
                        bus::requeue(&delivery).await;
                    }
                }
            }
        }
        self.metrics
            .observe_step("koji_bridge_delivery", started.elapsed().as_secs_f64());
        self.metrics.in_flight.dec();
    }

    async fn outcome(&self, delivery: &Delivery) -> Done {
        if let Some(kind) = bus::kind_of(delivery)
            && kind != names::TYPE_BUILD_RESULT
        {
            self.metrics.count_ignored("not a BuildResult");
            return Done::Ack;
        }
        let result: BuildResult = match bus::decode(delivery, names::TYPE_BUILD_RESULT) {
            Ok(result) => result,
            Err(reason) => {
                tracing::error!(reason = %reason, "undecodable result; dead-lettering it");
                return Done::DeadLetter(reason);
            }
        };
        let action = decide(&result);
        let done = match &action {
            Action::Import => self.import(&result).await,
            Action::SkipScratch => self.skip_scratch(&result).await,
            Action::Refund(state) => self.refund(&result, *state).await,
            Action::Reject(reason) => {
                tracing::error!(build_id = %result.build_id, reason = %reason, "result dead-lettered");
                Done::DeadLetter(reason.clone())
            }
        };
        let Done::Unavailable(reason) = done else {
            return done;
        };
        let earlier = bus::retry_state(&delivery.properties);
        let window = self.importer.config().retry_window();
        match retry::decide(Some(Outage::Koji), earlier, now_ms(), window) {
            Retry::After { delay, next } => {
                tracing::warn!(build_id = %result.build_id, error = %reason, retry = next.retries, ?delay, "the Koji hub is unavailable; the result waits in a retry queue");
                Done::RetryLater { delay, next }
            }
            Retry::GiveUp => {
                let reason = format!(
                    "the Koji hub stayed unavailable for the retry window (`[koji] retry_window_secs`): {reason}"
                );
                match action {
                    Action::Import => self.refused(&result, reason).await,
                    _ => Done::DeadLetter(reason),
                }
            }
        }
    }

    /// Runs `attempt` until it succeeds, is refused, or transient failures outlast the retry
    /// budget (or shutdown comes).
    async fn with_retries<T, F, Fut>(
        &self,
        build_id: &str,
        what: &str,
        attempt: F,
    ) -> Result<T, ImportError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ImportError>>,
    {
        use backon::BackoffBuilder;
        let deadline = tokio::time::Instant::now() + self.importer.config().hub.retry_budget();
        let mut backoff = retry_policy().build();
        loop {
            match attempt().await {
                Err(ImportError::Transient(reason)) => {
                    self.metrics.count_retry(what);
                    let wait = backoff.next().unwrap_or(Duration::from_secs(10));
                    if tokio::time::Instant::now() + wait >= deadline
                        || self.shutdown.is_cancelled()
                    {
                        return Err(ImportError::Transient(reason));
                    }
                    tracing::warn!(build_id, error = %reason, ?wait, "{what} failed; resuming soon");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return Err(ImportError::Transient(reason)),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                other => return other,
            }
        }
    }

    async fn import(&self, result: &BuildResult) -> Done {
        let id = result.build_id.as_str();
        match self.guard.marker(id).await {
            Ok(Some(marker)) if marker.published => {
                tracing::info!(build_id = id, nvr = %marker.nvr, "result delivered again; already imported");
                self.metrics.count_ignored("already imported");
                return Done::Ack;
            }
            Ok(_) => {}
            Err(error) => return self.store_unavailable(id, &error),
        }
        let lock = match self.guard.acquire(id, &self.shutdown).await {
            Ok(Some(lock)) => lock,
            Ok(None) => return Done::Requeue,
            Err(error) => return self.store_unavailable(id, &error),
        };
        let done = self.import_locked(result, &lock).await;
        lock.release().await;
        done
    }

    async fn import_locked(&self, result: &BuildResult, _lock: &ImportLock) -> Done {
        let id = result.build_id.as_str();
        let imported = match self.guard.marker(id).await {
            Ok(Some(marker)) if marker.published => {
                tracing::info!(build_id = id, nvr = %marker.nvr, "another bridge imported this build meanwhile");
                self.metrics.count_ignored("already imported");
                return Done::Ack;
            }
            // Imported, but the state change may not be out: publish it now.
            Ok(Some(marker)) => imported_of(&marker),
            Ok(None) => {
                let started = std::time::Instant::now();
                let outcome = self
                    .with_retries(id, "koji import", || self.importer.import(result, now_ms()))
                    .await;
                self.metrics
                    .observe_step("koji_import", started.elapsed().as_secs_f64());
                match outcome {
                    Ok(imported) => {
                        if let Err(error) = self.guard.mark(id, &marker_of(&imported)).await {
                            return self.store_unavailable(id, &error);
                        }
                        imported
                    }
                    Err(ImportError::Refused(reason)) => return self.refused(result, reason).await,
                    Err(error @ ImportError::Untagged { .. }) => {
                        return self.untagged(result, error).await;
                    }
                    Err(ImportError::Transient(reason)) => {
                        tracing::warn!(build_id = id, error = %reason, "import not finished; the result is retried later and resumes");
                        return Done::Unavailable(reason);
                    }
                }
            }
            Err(error) => return self.store_unavailable(id, &error),
        };
        let (fields, reason) = imported_fields(&imported);
        if let Err(done) = self
            .record(result, BuildState::Imported, &reason, fields)
            .await
        {
            return done;
        }
        let mut marker = marker_of(&imported);
        marker.published = true;
        if let Err(error) = self.guard.mark(id, &marker).await {
            tracing::warn!(build_id = id, error = %error, "cannot record that the state change is out; a redelivery may publish it again");
        }
        self.metrics.count_state(BuildState::Imported);
        tracing::info!(build_id = id, reason = %reason, "import done");
        Done::Ack
    }

    /// Koji refused: the record says `import_failed` with the reason (the hub's fault text,
    /// verbatim), the state change goes out, the result is dead-lettered with the reason.
    async fn refused(&self, result: &BuildResult, reason: String) -> Done {
        let id = result.build_id.as_str();
        tracing::error!(build_id = id, reason = %reason, "import refused");
        let fields = vec![(field::ERROR, reason.clone())];
        self.import_failed(result, reason, fields).await
    }

    /// Koji holds the build but tagging was refused: the record says `import_failed` and
    /// what Koji holds (its build id and NVR), the result is dead-lettered; once the cause is
    /// fixed, `osbs replay` brings it back and the bridge only tags.
    async fn untagged(&self, result: &BuildResult, error: ImportError) -> Done {
        let id = result.build_id.as_str();
        let (fields, reason) = untagged_fields(&error);
        tracing::error!(build_id = id, reason = %reason, "imported but not tagged");
        self.import_failed(result, reason, fields).await
    }

    /// Records `import_failed` with `fields` and announces it; the result is dead-lettered
    /// with `reason`.
    async fn import_failed(
        &self,
        result: &BuildResult,
        reason: String,
        fields: Vec<(&str, String)>,
    ) -> Done {
        if let Err(done) = self
            .record(result, BuildState::ImportFailed, &reason, fields)
            .await
        {
            return done;
        }
        self.metrics.count_state(BuildState::ImportFailed);
        Done::DeadLetter(reason)
    }

    /// Records the outcome `to` and announces it; `Err` says how the delivery ends instead.
    /// A record not yet `complete` (the worker's last change still on its way) goes back to
    /// the queue: the outcome is recorded on a later attempt. A record already `to` (an
    /// earlier attempt recorded it, and may not have announced it) is announced again. A
    /// record in another final state keeps it (its fields are updated; nothing changed, so
    /// nothing is announced). A missing record (Redis was emptied) is re-created from the
    /// result, in the state the result reports, and the outcome recorded on it.
    async fn record(
        &self,
        result: &BuildResult,
        to: BuildState,
        reason: &str,
        fields: Vec<(&str, String)>,
    ) -> Result<(), Done> {
        let id = result.build_id.as_str();
        let change = StateChange::new(id, to, reason, &self.by).with_fields(fields.clone());
        let mut changed = state::change(&self.store, &self.bus, change.clone()).await;
        if matches!(changed, Ok(Changed::Missing)) {
            changed = match self.restore(result).await {
                Ok(()) => state::change(&self.store, &self.bus, change).await,
                Err(error) => Err(ChangeError::Store(error)),
            };
        }
        let record = match changed {
            Ok(Changed::Done(_)) => return Ok(()),
            Ok(Changed::Refused(record)) => record,
            Ok(Changed::Missing) => {
                tracing::warn!(
                    build_id = id,
                    state = %to,
                    "no record of this build in Redis and none could be re-created: the Koji outcome stands, nothing is recorded or announced"
                );
                return Ok(());
            }
            Err(ChangeError::Store(error)) => return Err(self.store_unavailable(id, &error)),
            Err(error @ ChangeError::NotAnnounced { .. }) => {
                tracing::warn!(build_id = id, error = %error, "the outcome is recorded but not announced; the result goes back to the queue");
                return Err(Done::Requeue);
            }
        };
        match record.state {
            BuildState::Queued | BuildState::Running | BuildState::Pushing => {
                tracing::warn!(build_id = id, current = %record.state, "the record is not complete yet; the result goes back to the queue");
                self.metrics.count_retry("record behind");
                Err(Done::Requeue)
            }
            current if current == to => {
                let announced = match self.store.recorded_announcement(id, to).await {
                    Ok(Some(recorded)) => self.bus.announce(&recorded).await,
                    Ok(None) => Ok(()),
                    Err(error) => return Err(self.store_unavailable(id, &error)),
                };
                announced.map_err(|error| {
                    tracing::warn!(build_id = id, error = %error, "cannot announce the recorded outcome; the result goes back to the queue");
                    Done::Requeue
                })
            }
            current => {
                tracing::warn!(build_id = id, current = %current, to = %to, "the record cannot move to the import outcome; its fields are updated, its state kept");
                self.store
                    .set_fields(id, &fields)
                    .await
                    .map_err(|error| self.store_unavailable(id, &error))
            }
        }
    }

    /// Brings back the record Redis lost from what the result carries (its job, outputs and
    /// state). A result without its job leaves the record missing.
    async fn restore(&self, result: &BuildResult) -> Result<(), StoreError> {
        let Some(job) = &result.job else {
            return Ok(());
        };
        let state = BuildState::try_from(result.state).unwrap_or(BuildState::Complete);
        let fields = restored_fields(result);
        let restored = self
            .store
            .recreate(job, state, RESTORED, &self.by, now_ms(), &fields)
            .await?;
        if restored {
            tracing::warn!(build_id = %result.build_id, %state, "Redis had lost the build's record: re-created from the result");
        }
        Ok(())
    }

    fn store_unavailable(&self, id: &str, error: &StoreError) -> Done {
        tracing::warn!(build_id = id, error = %error, "cannot record the outcome yet; the result goes back to the queue");
        self.metrics.count_retry("redis");
        Done::Requeue
    }

    async fn skip_scratch(&self, result: &BuildResult) -> Done {
        let id = result.build_id.as_str();
        let note = "scratch build: never imported into Koji";
        match self
            .refund_with_retries(result, RefundState::Canceled)
            .await
        {
            Ok(_) => {}
            Err(ImportError::Transient(reason)) => return Done::Unavailable(reason),
            Err(refused) => {
                tracing::warn!(build_id = id, reason = %refused, "cannot release the reservation of a scratch build")
            }
        }
        match self
            .store
            .set_fields(id, &[(field::KOJI_NOTE, note.to_owned())])
            .await
        {
            Ok(()) => {}
            Err(error) => return self.store_unavailable(id, &error),
        }
        self.metrics.count_ignored("scratch build");
        tracing::info!(build_id = id, "{note}");
        Done::Ack
    }

    async fn refund_with_retries(
        &self,
        result: &BuildResult,
        state: RefundState,
    ) -> Result<Refunded, ImportError> {
        self.with_retries(&result.build_id, "koji refund", || {
            self.importer.refund(result, state)
        })
        .await
    }

    async fn refund(&self, result: &BuildResult, state: RefundState) -> Done {
        let id = result.build_id.as_str();
        match self.refund_with_retries(result, state).await {
            Ok(Refunded::Released(koji_build_id)) => {
                tracing::info!(
                    build_id = id,
                    koji_build_id,
                    ?state,
                    "Koji reservation released"
                );
                Done::Ack
            }
            Ok(Refunded::Nothing) => Done::Ack,
            Err(ImportError::Transient(reason)) => {
                tracing::warn!(build_id = id, error = %reason, "cannot release the Koji reservation yet; the result is retried later");
                Done::Unavailable(reason)
            }
            Err(refused) => {
                tracing::error!(build_id = id, reason = %refused, "Koji refused to release the reservation");
                Done::DeadLetter(format!("CGRefundBuild refused: {refused}"))
            }
        }
    }
}

/// Runs the service until `shutdown`.
pub async fn run(config: BridgeConfig, shutdown: CancellationToken) -> Result<(), BridgeError> {
    tracing::info!(config = %osbs_common::config::effective(&config), "osbs-koji-bridge starting");
    let metrics = Metrics::new("koji-bridge");
    let health = Health::default();
    let listen = osbs_common::http::serve(
        config.koji.http_listen,
        health.clone(),
        metrics.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(BridgeError::Http)?;
    let bus = Arc::new(Bus::connect(&config.amqp, "koji-bridge").await?);
    bus.declare_topology().await?;
    let store = Store::connect(&config.redis).await?;
    if config.koji.has_hub() {
        // A bridge that cannot log in (no certificate, wrong password) would refuse every
        // build: it stops here instead. A hub that is only down is waited for, build by build.
        match KojiClient::connect(&config.koji.hub).await {
            Ok(client) => client.logout().await,
            Err(error) if error.is_transient() => {
                tracing::warn!(hub = %config.koji.hub.hub_url_masked(), error = %error, "the Koji hub is not reachable yet; imports wait for it");
            }
            Err(error) => return Err(BridgeError::Koji(error)),
        }
        tracing::info!(hub = %config.koji.hub.hub_url_masked(), cg = %config.koji.hub.cg_name, "importing into the Koji hub");
    } else {
        tracing::info!(bundle_dir = %config.koji.bundle_dir.display(), "no Koji hub configured: writing import bundles");
    }
    let subscription = bus
        .consume(names::QUEUE_RESULTS, config.koji.prefetch.max(1))
        .await?;
    let handler = Arc::new(Handler::new(
        bus.clone(),
        store,
        &config,
        metrics,
        shutdown.clone(),
    )?);
    health.set_ready(true, "consuming osbs.results");
    tracing::info!(http = %listen, queue = names::QUEUE_RESULTS, concurrency = config.koji.concurrency, "osbs-koji-bridge ready");
    bus::serve(
        subscription,
        config.koji.concurrency.max(1),
        shutdown.clone(),
        config.koji.drain_grace(),
        move |delivery| {
            let handler = handler.clone();
            async move { handler.handle(delivery).await }
        },
    )
    .await;
    health.set_ready(false, "stopped");
    bus.close().await;
    tracing::info!("osbs-koji-bridge stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_proto::v1::{BuildJob, BuildOptions};

    fn result(state: BuildState, scratch: bool) -> BuildResult {
        BuildResult {
            build_id: "b1".into(),
            state: state as i32,
            job: Some(BuildJob {
                options: Some(BuildOptions {
                    scratch,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let cases = [
            (BuildState::Complete, false, Action::Import),
            (BuildState::Complete, true, Action::SkipScratch),
            (
                BuildState::Failed,
                false,
                Action::Refund(RefundState::Failed),
            ),
            (
                BuildState::Canceled,
                true,
                Action::Refund(RefundState::Canceled),
            ),
        ];
        for (state, scratch, expected) in cases {
            assert_eq!(
                decide(&result(state, scratch)),
                expected,
                "{state} scratch={scratch}"
            );
        }
        assert!(matches!(
            decide(&result(BuildState::Running, false)),
            Action::Reject(_)
        ));
    }

    #[test]
    fn a_result_carries_what_a_lost_record_needs() {
        let mut full = result(BuildState::Complete, false);
        full.worker = "w1".into();
        full.job.as_mut().unwrap().attempt = 2;
        full.nvr = Some(osbs_proto::v1::Nvr {
            name: "httpd".into(),
            version: "2.4".into(),
            release: "3".into(),
        });
        full.image = Some(osbs_proto::v1::ImageInfo {
            pullspecs: vec!["r/httpd:2.4-3".into()],
            digests: vec![osbs_proto::v1::ImageDigest {
                media_type: "m".into(),
                digest: "sha256:ab".into(),
            }],
            ..Default::default()
        });
        full.logs = vec![osbs_proto::v1::LogFile {
            name: "build.log".into(),
            path: "/a/b1/build.log".into(),
            ..Default::default()
        }];
        let fields = restored_fields(&full);
        for expected in [
            (field::NVR, "httpd-2.4-3".to_owned()),
            (field::PULLSPECS, r#"["r/httpd:2.4-3"]"#.to_owned()),
            (field::DIGEST, "sha256:ab".to_owned()),
            (field::WORKER, "w1".to_owned()),
            (field::ATTEMPTS, "2".to_owned()),
            (field::LOG_PATH, "/a/b1/build.log".to_owned()),
            (field::RESULT_PUBLISHED, "1".to_owned()),
        ] {
            assert!(fields.contains(&expected), "{expected:?} in {fields:?}");
        }
        assert!(!fields.iter().any(|(name, _)| *name == field::ARCHES));
        let bare = restored_fields(&result(BuildState::Failed, false));
        assert!(!bare.iter().any(|(name, _)| *name == field::NVR));
        // A multi-arch build's record lists its arches again.
        full.arches = ["x86_64", "aarch64"]
            .into_iter()
            .map(|arch| osbs_proto::v1::ArchBuild {
                arch: arch.into(),
                ..Default::default()
            })
            .collect();
        assert!(restored_fields(&full).contains(&(field::ARCHES, "x86_64,aarch64".into())));
    }

    #[test]
    fn outcomes_become_record_fields() {
        let (fields, reason) = imported_fields(&Imported::Hub {
            koji_build_id: 12,
            nvr: "httpd-2.4-3".into(),
            tag: Some("f41-container-candidate".into()),
            recovered: false,
        });
        assert!(fields.contains(&(field::KOJI_BUILD_ID, "12".into())));
        assert!(fields.contains(&(field::KOJI_IMPORT, "hub".into())));
        assert_eq!(
            reason,
            "imported into Koji as httpd-2.4-3 (build 12), tagged into f41-container-candidate"
        );
        let (fields, reason) = imported_fields(&Imported::Bundle {
            dir: "/b/httpd-2.4-3".into(),
            nvr: "httpd-2.4-3".into(),
            recovered: false,
        });
        assert!(fields.contains(&(field::KOJI_IMPORT, "bundle".into())));
        assert!(reason.contains("import bundle"));
        let (fields, reason) = untagged_fields(&ImportError::Untagged {
            koji_build_id: 7,
            nvr: "httpd-2.4-3".into(),
            reason: "tag permission required (logged in as osbs)".into(),
        });
        assert!(fields.contains(&(field::KOJI_BUILD_ID, "7".into())));
        assert!(fields.contains(&(field::NVR, "httpd-2.4-3".into())));
        assert!(
            reason.starts_with(
                "imported into Koji as httpd-2.4-3 (build 7) but not tagged: tag permission required"
            ),
            "{reason}"
        );
        let marker = marker_of(&Imported::Bundle {
            dir: "/b/x".into(),
            nvr: "x-1-1".into(),
            recovered: false,
        });
        assert_eq!(
            imported_of(&marker),
            Imported::Bundle {
                dir: "/b/x".into(),
                nvr: "x-1-1".into(),
                recovered: true
            }
        );
    }
}
