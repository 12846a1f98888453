//! Multi-arch builds (DESIGN.md "Architectures"), carried out: the part an arch job records
//! and the assembly of the manifest list by the arch job that completes the set. The
//! decisions are pure, in `archjob`.

use crate::archjob::{priority, unique_tag};
use crate::finish::{self, Holding, Run};
use crate::pipeline::{HeldRelease, Progress, Worker};
use crate::plan::{self, BuildKind};
use osbs_common::bus;
use osbs_common::state::{Changed, StateChange};
use osbs_common::store::PartRecorded;
use osbs_proto::Message;
use osbs_proto::arch;
use osbs_proto::v1::{ArchBuild, BuildJob, BuildState, BuildTool, ImageDigest, ImageInfo, LogFile};
use osbs_registry::ManifestFormat;
use std::time::Instant;

/// An arch job succeeded: its part is recorded and marked done; the one that completes the
/// set assembles, the others are acked.
pub(crate) async fn arch_done(run: &Run<'_>, holding: Holding) {
    let (worker, job) = (run.worker, run.job);
    let id = &job.build_id;
    run.log.note(&format!(
        "{}: built and pushed; recording its part",
        job.arch
    ));
    let mut logs = Vec::new();
    match run.log.finish(Some(BuildState::Complete)).await {
        Ok(file) => logs.push(file),
        Err(error) => {
            tracing::error!(build_id = %id, error = %error, "cannot close the arch log file")
        }
    }
    let part = part_of(run, logs);
    let recorded = worker
        .store
        .record_arch_part(id, &job.arch, &part.encode_to_vec(), &job.arches)
        .await;
    match recorded {
        Ok(PartRecorded::Completed | PartRecorded::AlreadyRecorded { complete: true }) => {
            tracing::info!(build_id = %id, arch = %job.arch, "last arch in: assembling");
            assemble(worker, job, holding, Instant::now()).await;
        }
        Ok(PartRecorded::Waiting | PartRecorded::AlreadyRecorded { complete: false }) => {
            tracing::info!(build_id = %id, arch = %job.arch, "arch part recorded; other arches to come");
            finish::release_owner(worker, job).await;
            ack(holding).await;
        }
        Err(error) => {
            // Not recorded: the job comes back and builds the arch again.
            tracing::error!(build_id = %id, arch = %job.arch, error = %error, "cannot record the arch part; requeued");
            finish::release_owner(worker, job).await;
            if let Holding::Delivery(delivery) = holding {
                bus::requeue(&delivery).await;
            }
        }
    }
}

/// The part an arch job recorded, from what its attempt produced.
fn part_of(run: &Run<'_>, mut logs: Vec<LogFile>) -> ArchBuild {
    let outputs = run.progress.outputs.lock().expect("progress lock");
    let timings = run.progress.timings.lock().expect("progress lock");
    logs.extend(outputs.logs.iter().cloned());
    let buildroot = run.worker.buildroot();
    ArchBuild {
        arch: run.job.arch.clone(),
        image: outputs.image.clone(),
        components: outputs.components.clone(),
        logs,
        timings: timings.as_proto(),
        worker: buildroot.worker.clone(),
        worker_os: buildroot.os.clone(),
        worker_arch: buildroot.arch.clone(),
        tools: buildroot
            .tools
            .into_iter()
            .map(|(name, version)| BuildTool { name, version })
            .collect(),
        started_at_ms: run.started_at,
        finished_at_ms: run.finished_at,
    }
}

async fn ack(holding: Holding) {
    if let Holding::Delivery(delivery) = holding {
        bus::ack(&delivery).await;
    }
}

/// Every arch is in: the manifest list is pushed under every tag of the build, the build
/// moves `pushing → complete` and one `BuildResult` goes out with every part. Idempotent: a
/// redelivered arch job that finds the set complete runs it again (same list, same digest).
/// `since`: when the last part was found recorded, where the `assemble` step's clock starts.
pub(crate) async fn assemble(worker: &Worker, job: &BuildJob, holding: Holding, since: Instant) {
    let id = &job.build_id;
    let started_at = osbs_common::telemetry::now_ms();
    let log = match crate::buildlog::BuildLog::open(
        &worker.artifacts_dir.join(id),
        id,
        worker.store.clone(),
        true,
    ) {
        Ok(log) => log,
        Err(error) => {
            tracing::error!(build_id = %id, error = %error, "cannot open the build log to assemble; requeued");
            finish::release_owner(worker, job).await;
            if let Holding::Delivery(delivery) = holding {
                bus::requeue(&delivery).await;
            }
            return;
        }
    };
    let progress = Progress::default();
    let build_job = BuildJob {
        arch: String::new(),
        ..job.clone()
    };
    if let Some(nvr) = &job.nvr
        && kind(job) != BuildKind::Scratch
    {
        *progress.held_release.lock().expect("progress lock") = Some(HeldRelease {
            name: nvr.name.clone(),
            version: nvr.version.clone(),
            release: nvr.release.clone(),
        });
    }
    *progress.state.lock().expect("progress lock") = Some(BuildState::Running);
    let assembled = list_and_push(worker, job, &log, &progress).await;
    // Timed as a pipeline step is: the record's and the result's timings, the log, the
    // `step_seconds` metric (issue 12's goal: under 0.1 s).
    let took = since.elapsed();
    progress
        .timings
        .lock()
        .expect("progress lock")
        .record(crate::report::step::ASSEMBLE, took);
    worker
        .metrics
        .observe_step(crate::report::step::ASSEMBLE, took.as_secs_f64());
    log.note(&format!(
        "step {} {} in {:.3} s",
        crate::report::step::ASSEMBLE,
        if assembled.is_ok() { "done" } else { "failed" },
        took.as_secs_f64()
    ));
    let run = Run {
        worker,
        job: &build_job,
        log: &log,
        progress: &progress,
        started_at,
        finished_at: osbs_common::telemetry::now_ms(),
        priority: priority(job),
    };
    match assembled {
        Ok(parts) => finish::conclude_multiarch(&run, holding, parts).await,
        Err(error) => {
            let reason = format!("assembling the manifest list: {}", error.reason());
            log.note(&reason);
            let dead = error.blame() == crate::error::Blame::Infrastructure;
            finish::conclude_failed(&run, holding, &reason, dead).await;
        }
    }
}

fn kind(job: &BuildJob) -> BuildKind {
    BuildKind::of(job.options.as_ref())
}

/// The parts read back, the list pushed under the build's tags, the build `pushing`; the
/// list's image info and the NVR go into `progress` for the record and the result.
async fn list_and_push(
    worker: &Worker,
    job: &BuildJob,
    log: &crate::buildlog::BuildLog,
    progress: &Progress,
) -> Result<Vec<ArchBuild>, crate::error::WorkerError> {
    use crate::error::WorkerError;
    // Both are round trips to wait on, neither needs the other: at once (a build whose
    // parts cannot be read fails from `pushing` as it would from `running`).
    let (parts, ()) = tokio::try_join!(
        read_parts(worker, job),
        enter_pushing(worker, job, progress)
    )?;
    let nvr = job.nvr.clone().unwrap_or_default();
    let target = job.target.clone().unwrap_or_default();
    // The repository is the `name` label's, as every arch pushed to it.
    let first = parts[0].image.clone().unwrap_or_default();
    let repository = first.repositories.first().cloned().ok_or_else(|| {
        WorkerError::Infrastructure(format!("the part of {} names no repository", parts[0].arch))
    })?;
    let path = repository
        .strip_prefix(&format!("{}/", target.registry))
        .unwrap_or(&repository)
        .to_owned();
    let registry = worker.registries.get(&target.registry)?;
    let mut members = Vec::new();
    for part in &parts {
        let image = part.image.clone().unwrap_or_default();
        let digest = image.digests.first().cloned().unwrap_or_default().digest;
        let known = arch::lookup(&part.arch).ok_or_else(|| {
            WorkerError::Infrastructure(format!("unknown arch {:?} in a part", part.arch))
        })?;
        members.push((known, digest));
    }
    let format = if worker.oci_index {
        ManifestFormat::Oci
    } else {
        ManifestFormat::DockerV2
    };
    let tags = plan::tags(
        kind(job),
        &nvr.version,
        &nvr.release,
        &unique_tag(job, &nvr.release),
    )?;
    let digest = registry.push_list(&path, &members, &tags, format).await?;
    log.note(&format!(
        "pushed the manifest list of {} to {repository} as {} ({digest})",
        job.arches.join(", "),
        tags.join(", ")
    ));
    if worker.koji.is_none() && kind(job) != BuildKind::Scratch {
        worker
            .store
            .record_release(&nvr.name, &nvr.version, &nvr.release)
            .await?;
    }
    let mut outputs = progress.outputs.lock().expect("progress lock");
    outputs.nvr = Some(nvr);
    outputs.koji_reservation = job.koji_reservation.clone();
    outputs.image = Some(ImageInfo {
        digests: vec![ImageDigest {
            media_type: format.list_type().to_owned(),
            digest: digest.clone(),
        }],
        pullspecs: plan::pullspecs(&repository, &tags, &digest),
        tags,
        repositories: vec![repository],
        parent_pullspecs: first.parent_pullspecs,
        os: first.os,
        ..ImageInfo::default()
    });
    Ok(parts)
}

/// Every arch's recorded part, in the build's order.
async fn read_parts(
    worker: &Worker,
    job: &BuildJob,
) -> Result<Vec<ArchBuild>, crate::error::WorkerError> {
    use crate::error::WorkerError;
    let id = &job.build_id;
    let mut parts = Vec::new();
    if job.arches.is_empty() {
        return Err(WorkerError::Infrastructure(
            "an arch job without the build's arches".into(),
        ));
    }
    for arch in &job.arches {
        let bytes = worker.store.arch_part(id, arch).await?.ok_or_else(|| {
            WorkerError::Infrastructure(format!("the part of {arch} is not recorded"))
        })?;
        let part = ArchBuild::decode(bytes.as_slice()).map_err(|error| {
            WorkerError::Infrastructure(format!("the part of {arch} is damaged: {error}"))
        })?;
        parts.push(part);
    }
    Ok(parts)
}

/// `running → pushing` for the list (an arch job does not change the build's state).
async fn enter_pushing(
    worker: &Worker,
    job: &BuildJob,
    progress: &Progress,
) -> Result<(), crate::error::WorkerError> {
    let id = &job.build_id;
    let change = StateChange::new(
        id,
        BuildState::Pushing,
        "pushing the manifest list",
        &worker.instance,
    )
    .only_from(&[BuildState::Running, BuildState::Pushing]);
    match crate::pipeline::change_state(worker, change).await? {
        Changed::Done(_) => {}
        Changed::Refused(record) => {
            return Err(crate::error::WorkerError::Infrastructure(format!(
                "build {id} is {} (changed by another service); its list is not pushed",
                record.state
            )));
        }
        Changed::Missing => {
            return Err(osbs_common::StoreError::NotFound(id.clone()).into());
        }
    }
    *progress.state.lock().expect("progress lock") = Some(BuildState::Pushing);
    Ok(())
}
