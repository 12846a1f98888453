//! How the worker ends what it took: a build's end (record, result, then ack or dead
//! letter), a retry through a retry queue, a hand-back, a stored result published again.
//! Which of them happens is decided by [`crate::ending`] (pure); this carries it out, in the
//! order that loses nothing: kept result, recorded end, announcement, result, ack.

use crate::adapters::redis as keys;
use crate::buildlog::BuildLog;
use crate::ending::{Ending, humane};
use crate::error::{Blame, WorkerError};
use crate::pipeline::{self, Progress, Worker};
use crate::report::{self, Ended};
use osbs_common::bus::{self, Dead, Delivery};
use osbs_common::retry::{self, Outage, RetryState};
use osbs_common::state::{self, ChangeError, Changed, StateChange};
use osbs_common::store::field;
use osbs_common::{BusError, StoreError};
use osbs_proto::Message;
use osbs_proto::names;
use osbs_proto::v1::{ArchBuild, BuildJob, BuildResult, BuildState};
use std::time::Duration;
use tokio::time::sleep;

/// Whether the worker still holds the job's delivery or swapped it for a lease.
pub(crate) enum Holding {
    Delivery(Box<Delivery>),
    Leased,
}

/// One attempt that ran: what its ending needs.
pub(crate) struct Run<'a> {
    pub worker: &'a Worker,
    pub job: &'a BuildJob,
    pub log: &'a BuildLog,
    pub progress: &'a Progress,
    pub started_at: i64,
    pub finished_at: i64,
    /// The job's AMQP priority, kept when it goes to a retry queue.
    pub priority: u8,
}

/// Carries out `ending` for `run`.
pub(crate) async fn end(run: &Run<'_>, holding: Holding, ending: Ending) {
    match ending {
        Ending::LetGo => {
            run.log
                .note("another worker took this build over; stopping here");
            tracing::warn!(build_id = %run.job.build_id, "ownership lost: another worker runs this build now");
            if let Holding::Delivery(delivery) = holding {
                bus::ack(&delivery).await;
            }
        }
        Ending::HandBack => hand_back(run, holding).await,
        Ending::Orchestrated => handed_to_arches(run, holding).await,
        Ending::End {
            state,
            reason,
            dead_letter,
        } if !run.job.arch.is_empty() => {
            let reason = crate::archjob::build_reason(&run.job.arch, state, &reason);
            conclude(run, holding, state, &reason, dead_letter, Vec::new()).await
        }
        Ending::Retry {
            outage,
            reason,
            delay,
            next,
        } => {
            retry_later(
                run,
                holding,
                Later {
                    outage,
                    reason,
                    delay,
                    next,
                },
            )
            .await
        }
        Ending::End {
            state,
            reason,
            dead_letter,
        } => conclude(run, holding, state, &reason, dead_letter, Vec::new()).await,
    }
}

/// The orchestrator's attempt ends once its arch jobs are out: its log stops (the build's
/// log goes on: the assembly and the end are written to it), its release stays held for the
/// arch jobs, the job is acked.
async fn handed_to_arches(run: &Run<'_>, holding: Holding) {
    let id = &run.job.build_id;
    run.log
        .note("the arch jobs build the images; the last one in pushes the manifest list");
    let _ = run.log.finish(None).await;
    tracing::info!(build_id = %id, "build handed to its arch jobs");
    release_owner(run.worker, run.job).await;
    if let Holding::Delivery(delivery) = holding {
        bus::ack(&delivery).await;
    }
}

/// An arch job failed the build, whose failure is recorded: the build's cancel mark stops
/// its other arch jobs (ending without a result of their own: the build is already failed
/// when they try). Only once the failure is recorded: a mark set before would let another
/// arch job, stopping on it, record the build `canceled` ("canceled on request") first.
async fn stop_other_arches(run: &Run<'_>, state: BuildState) {
    let (worker, job) = (run.worker, run.job);
    if !crate::archjob::stops_other_arches(&job.arch, state) {
        return;
    }
    if let Err(error) = worker.store.request_cancel(&job.build_id).await {
        tracing::warn!(build_id = %job.build_id, error = %error, "cannot mark the build canceled; its other arch jobs run to their end");
    }
}

/// A multi-arch build assembled: complete, its result holding every part.
pub(crate) async fn conclude_multiarch(run: &Run<'_>, holding: Holding, parts: Vec<ArchBuild>) {
    conclude(run, holding, BuildState::Complete, "", false, parts).await
}

/// A multi-arch build whose assembly failed: failed (dead-lettered when `dead`).
pub(crate) async fn conclude_failed(run: &Run<'_>, holding: Holding, reason: &str, dead: bool) {
    conclude(run, holding, BuildState::Failed, reason, dead, Vec::new()).await
}

/// Ends a build: log summary, record, result published, then ack or dead letter.
async fn conclude(
    run: &Run<'_>,
    holding: Holding,
    state: BuildState,
    error: &str,
    dead: bool,
    parts: Vec<ArchBuild>,
) {
    let (worker, id) = (run.worker, &run.job.build_id);
    summarize(run, state, error);
    let mut result = close_log_and_assemble(run, state, error).await;
    result.arches = parts;
    let reason = if error.is_empty() {
        "built and pushed"
    } else {
        error
    };
    let recorded = record_end(run, &result, state, reason, dead).await;
    // After the end is recorded, not before: the hold only keeps a concurrent build of the
    // same name-version off this release, and the end is what the packager waits for.
    let_go_of_release(run).await;
    let announced = match recorded {
        Recorded::Yes(announced) => announced,
        Recorded::EndedElsewhere => {
            release_owner(worker, run.job).await;
            if let Holding::Delivery(delivery) = holding {
                bus::ack(&delivery).await;
            }
            return;
        }
        Recorded::No(why) => {
            dead_letter(worker, holding, &run.job.encode_to_vec(), &why).await;
            return;
        }
    };
    stop_other_arches(run, state).await;
    worker.metrics.count_state(state);
    tracing::info!(build_id = %id, %state, error, "build ended");
    if !run.job.arch.is_empty() {
        // The build's own log ends with the build (an arch job's log ended above).
        if let Err(error) = worker.store.end_log(id, state).await {
            tracing::warn!(build_id = %id, error = %error, "cannot close the build's live log");
        }
    }
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
    release_owner(worker, run.job).await;
    if dead {
        dead_letter(worker, holding, &run.job.encode_to_vec(), error).await;
    } else if let Holding::Delivery(delivery) = holding {
        bus::ack(&delivery).await;
    }
}

/// The build log's last lines: timings, the slowest step, the outcome.
fn summarize(run: &Run<'_>, state: BuildState, error: &str) {
    let log = run.log;
    let timings = run.progress.timings.lock().expect("progress lock").clone();
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
}

/// The build ended: its release hold and kept reservation go (the NVR is in the registry
/// or never will be).
async fn let_go_of_release(run: &Run<'_>) {
    let (worker, id) = (run.worker, &run.job.build_id);
    free_hold(run).await;
    if let Err(error) = keys::forget_reservation(&worker.store, id).await {
        tracing::warn!(build_id = %id, error = %error, "cannot drop the kept reservation; it expires by itself");
    }
}

/// Closes the build log (its file joins the outputs) and makes the `BuildResult`.
async fn close_log_and_assemble(run: &Run<'_>, state: BuildState, error: &str) -> BuildResult {
    let progress = run.progress;
    match run.log.finish(Some(state)).await {
        Ok(file) => progress
            .outputs
            .lock()
            .expect("progress lock")
            .logs
            .insert(0, file),
        Err(error) => {
            tracing::error!(build_id = %run.job.build_id, error = %error, "cannot close the build log file")
        }
    }
    let timings = progress.timings.lock().expect("progress lock").clone();
    let outputs = progress.outputs.lock().expect("progress lock");
    let ended = Ended {
        state,
        error,
        started_at_ms: run.started_at,
        finished_at_ms: run.finished_at,
    };
    report::build_result(run.job, ended, &outputs, &timings, &run.worker.buildroot())
}

/// Lets go of the release this attempt holds in the in-flight set.
async fn free_hold(run: &Run<'_>) {
    let held = run
        .progress
        .held_release
        .lock()
        .expect("progress lock")
        .take();
    pipeline::free_release(&run.worker.store, held).await;
}

/// What recording a build's end did.
enum Recorded {
    /// Recorded; whether its announcement went out.
    Yes(Result<(), BusError>),
    /// Someone else ended it (an operator, another worker): theirs stands.
    EndedElsewhere,
    /// Not recorded, for this reason: the job is dead-lettered.
    No(String),
}

/// Keeps the result, then records the end with `result_published=0`.
async fn record_end(
    run: &Run<'_>,
    result: &BuildResult,
    state: BuildState,
    reason: &str,
    dead: bool,
) -> Recorded {
    let (worker, id) = (run.worker, &run.job.build_id);
    let mut fields = pipeline::final_fields(run.progress, &result.error, worker);
    fields.push((field::LOG_PATH, run.log.path().display().to_string()));
    fields.push((field::RESULT_PUBLISHED, "0".into()));
    if state == BuildState::Failed {
        // Whose fault, for the people reading the record: a dead-lettered job is the
        // infrastructure's (an operator replays it), any other failure the packager's.
        let blame = if dead {
            Blame::Infrastructure
        } else {
            Blame::Packager
        };
        fields.push((field::BLAME, blame.name().to_owned()));
    }
    let recorded = match keys::keep_result(&worker.store, id, &result.encode_to_vec()).await {
        Ok(()) => {
            // An arch job does not move the build's state: the build may be `pushing`
            // (another arch job assembling) when this one ends.
            let sources = if run.job.arch.is_empty() {
                vec![run.progress.state()]
            } else {
                vec![BuildState::Running, BuildState::Pushing]
            };
            let change = StateChange::new(id, state, reason, &worker.instance)
                .only_from(&sources)
                .with_fields(fields);
            change_or_restore(worker, run.job, change).await
        }
        Err(error) => Err(ChangeError::Store(error)),
    };
    match recorded {
        Ok(Changed::Done(_)) => Recorded::Yes(Ok(())),
        Err(ChangeError::NotAnnounced { source, .. }) => Recorded::Yes(Err(source)),
        Ok(Changed::Refused(record)) => {
            tracing::warn!(build_id = %id, current = %record.state, "the record was ended elsewhere; result not published");
            Recorded::EndedElsewhere
        }
        Ok(Changed::Missing) => Recorded::No(format!(
            "cannot record the end of build {id} ({state}): {}",
            StoreError::NotFound(id.clone())
        )),
        Err(ChangeError::Store(error)) => Recorded::No(format!(
            "cannot record the end of build {id} ({state}): {error}"
        )),
    }
}

/// A build's end: a record Redis lost meanwhile is re-created from the job (in the state
/// the change starts from) and the change made on it.
pub(crate) async fn change_or_restore(
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

pub(crate) async fn mark_published(worker: &Worker, id: &str) {
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
pub(crate) async fn republish(
    worker: &Worker,
    record: &osbs_common::store::BuildRecord,
    delivery: Delivery,
) {
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
struct Later {
    outage: Outage,
    reason: String,
    delay: Duration,
    next: RetryState,
}

/// A transient outage ended this attempt: the record goes back to `queued`, the job waits in
/// the retry queue of `later.delay` (and then comes back to `osbs.jobs`), and only then is
/// the delivery acked. The release and its Koji reservation stay held for the next attempt.
async fn retry_later(run: &Run<'_>, holding: Holding, later: Later) {
    let (worker, id) = (run.worker, &run.job.build_id);
    let outage = later.outage.name();
    let until = osbs_proto::external::iso8601(retry::window_closes_at(
        later.next.failing_since_ms,
        worker.config.retry_window(),
    ));
    let reason = format!(
        "transient {outage} failure: retry {} in {} (retried until {until}): {}",
        later.next.retries,
        humane(later.delay),
        later.reason
    );
    run.log.note(&reason);
    worker.metrics.count_retry(outage);
    tracing::warn!(build_id = %id, retry = later.next.retries, delay = ?later.delay, error = %later.reason, "transient {outage} failure: the job waits in a retry queue");
    back_to_queued(run, &reason).await;
    let properties = bus::protobuf_properties(names::TYPE_BUILD_JOB).with_priority(run.priority);
    let body = run.job.encode_to_vec();
    // An arch job waits in its arch's retry queue and comes back to its arch's queue.
    let queue = names::jobs_queue(&run.job.arch);
    let parked = worker
        .bus
        .retry_later(&queue, &body, &properties, later.delay, later.next)
        .await;
    match (parked, holding) {
        (Ok(()), Holding::Delivery(delivery)) => bus::ack(&delivery).await,
        (Ok(()), Holding::Leased) => {}
        (Err(error), Holding::Delivery(delivery)) => {
            tracing::error!(build_id = %id, error = %error, "cannot put the job in a retry queue; it goes back to its queue at once");
            bus::requeue(&delivery).await;
        }
        (Err(error), Holding::Leased) => {
            tracing::error!(build_id = %id, error = %error, "cannot put a leased job in a retry queue; its lease brings it back when it expires");
        }
    }
}

/// The attempt stops without an end: the log stops (no end marker), the record goes back to
/// `queued` with `reason`, the ownership is let go.
async fn back_to_queued(run: &Run<'_>, reason: &str) {
    let (worker, id) = (run.worker, &run.job.build_id);
    let _ = run.log.finish(None).await;
    if !run.job.arch.is_empty() {
        // The build runs on in its other arch jobs: only this arch goes back.
        release_owner(worker, run.job).await;
        return;
    }
    let from = [run.progress.state()];
    let change =
        StateChange::new(id, BuildState::Queued, reason, &worker.instance).only_from(&from);
    let requeued = match pipeline::change_state(worker, change).await {
        Ok(Changed::Done(_)) => Ok(()),
        Ok(Changed::Refused(record)) => Err(format!("the build is {}", record.state)),
        Ok(Changed::Missing) => Err("no build record".to_owned()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(why) = requeued {
        tracing::warn!(build_id = %id, why, "cannot requeue the record; the next worker decides from its state");
    }
    release_owner(worker, run.job).await;
}

/// The grace period ended: the build goes back to the queue for another worker.
async fn hand_back(run: &Run<'_>, holding: Holding) {
    let (worker, id) = (run.worker, &run.job.build_id);
    run.log
        .note("the worker stopped before the build ended: handed back to the queue");
    free_hold(run).await;
    back_to_queued(run, "worker stopping: handed back to the queue").await;
    match holding {
        Holding::Delivery(delivery) => bus::requeue(&delivery).await,
        Holding::Leased => {
            if let Err(error) = worker.bus.publish_job(run.job, 0).await {
                tracing::error!(build_id = %id, error = %error, "cannot requeue a leased job; its lease brings it back when it expires");
            }
        }
    }
    tracing::info!(build_id = %id, "build handed back to the queue");
}

/// A build that fails without a run: its worker died while pushing (`pushing` cannot go
/// back to `running`), or its build log could not be created. The result is kept and
/// published, the record fails from `from`, the job waits in `osbs.jobs.dead` for a replay.
pub(crate) async fn fail_at_once(
    worker: &Worker,
    job: &BuildJob,
    delivery: Delivery,
    from: BuildState,
    reason: &str,
) {
    let id = &job.build_id;
    let now = osbs_common::telemetry::now_ms();
    let result = report::build_result(
        job,
        Ended::at_once(BuildState::Failed, reason, now),
        &report::Outputs::default(),
        &report::Timings::default(),
        &worker.buildroot(),
    );
    let fields = vec![
        (field::ERROR, reason.to_owned()),
        (field::RESULT_PUBLISHED, "0".to_owned()),
    ];
    let _ = keys::keep_result(&worker.store, id, &result.encode_to_vec()).await;
    let sources = [from];
    let change = StateChange::new(id, BuildState::Failed, reason, &worker.instance)
        .only_from(&sources)
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
    release_owner(worker, job).await;
    dead_letter(worker, Holding::Delivery(Box::new(delivery)), &[], reason).await;
}

/// Moves a job to `osbs.jobs.dead` with `reason`: the held delivery itself, or (leased) a
/// copy made from `body`.
pub(crate) async fn dead_letter(worker: &Worker, holding: Holding, body: &[u8], reason: &str) {
    // The job's own queue: `osbs.jobs`, or an arch job's `osbs.jobs.<arch>`.
    let arch = match &holding {
        Holding::Delivery(delivery) => arch_of(&delivery.data),
        Holding::Leased => arch_of(body),
    };
    let queue = names::jobs_queue(&arch);
    worker.metrics.count_dead_letter(&queue);
    tracing::error!(reason, "job dead-lettered to {}", names::dead_queue(&queue));
    match holding {
        Holding::Delivery(delivery) => {
            if let Err(error) = worker.bus.dead_letter(&delivery, &queue, reason).await {
                tracing::error!(error = %error, "cannot dead-letter the job; it goes back to the queue");
                bus::requeue(&delivery).await;
            }
        }
        Holding::Leased => {
            let routing_key = names::job_routing_key(&arch);
            let dead = Dead {
                queue: &queue,
                original_exchange: names::EXCHANGE_INTERNAL,
                original_routing_key: &routing_key,
                reason,
            };
            let properties = bus::protobuf_properties(names::TYPE_BUILD_JOB);
            let published = worker.bus.dead_letter_copy(body, &properties, dead).await;
            if let Err(error) = published {
                tracing::error!(error = %error, "cannot dead-letter a leased job; its lease brings it back when it expires");
            }
        }
    }
}

/// The arch of a job's bytes (empty: the build's own job, or bytes that are no job).
fn arch_of(body: &[u8]) -> String {
    BuildJob::decode(body)
        .map(|job| job.arch)
        .unwrap_or_default()
}

pub(crate) async fn release_owner(worker: &Worker, job: &BuildJob) {
    let owner = crate::archjob::owner(job);
    if let Err(error) = keys::disown(&worker.store, &owner, &worker.instance).await {
        tracing::warn!(build_id = %job.build_id, error = %error, "cannot release the build's ownership; it expires by itself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_dead_lettered_to_its_own_queue() {
        let arm = BuildJob {
            build_id: "b".into(),
            arch: "aarch64".into(),
            ..BuildJob::default()
        };
        let table: [(Vec<u8>, &str); 3] = [
            (arm.encode_to_vec(), "osbs.jobs.aarch64.dead"),
            (BuildJob::default().encode_to_vec(), "osbs.jobs.dead"),
            (b"\xff not a job".to_vec(), "osbs.jobs.dead"),
        ];
        for (body, dead) in table {
            assert_eq!(names::dead_queue(&names::jobs_queue(&arch_of(&body))), dead);
        }
    }
}
