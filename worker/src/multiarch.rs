//! Multi-arch builds (DESIGN.md "Architectures"): the arch jobs an orchestrator publishes,
//! how an arch job is judged when it arrives, the part it records, and the assembly of the
//! manifest list by the arch job that completes the set.
//!
//! The decisions are pure ([`arch_job`], [`arch_tag`], [`owner`], [`look`],
//! [`orchestrated`]); [`arch_done`] and [`assemble`] carry them out.

use crate::finish::{self, Holding, Run};
use crate::pipeline::{HeldRelease, Progress, Worker};
use crate::plan::{self, BuildKind};
use osbs_common::bus;
use osbs_common::state::{Changed, StateChange};
use osbs_common::store::PartRecorded;
use osbs_proto::Message;
use osbs_proto::arch;
use osbs_proto::v1::{
    ArchBuild, BuildJob, BuildState, BuildTool, ImageDigest, ImageInfo, KojiReservation, LogFile,
    Nvr, Trigger,
};
use osbs_registry::ManifestFormat;
use sha2::{Digest, Sha256};

/// The arch job of `arch` for the build of `job`: the same job with its arch, every arch of
/// the build, and the release (and Koji reservation) reserved once for all of them.
pub fn arch_job(
    job: &BuildJob,
    arch: &str,
    arches: &[String],
    nvr: &osbs_dockerfile::ComponentNvr,
    release: &str,
    reservation: &Option<KojiReservation>,
) -> BuildJob {
    BuildJob {
        arch: arch.to_owned(),
        arches: arches.to_vec(),
        nvr: Some(Nvr {
            name: nvr.component.clone(),
            version: nvr.version.clone(),
            release: release.to_owned(),
        }),
        koji_reservation: reservation.clone(),
        ..job.clone()
    }
}

/// The AMQP priority of a build's arch jobs: an explicit request's go first, as its job did.
pub fn priority(job: &BuildJob) -> u8 {
    if job.trigger == Trigger::Request as i32 {
        bus::MAX_PRIORITY
    } else {
        0
    }
}

/// The build's unique tag, the same for every arch job and the assembly (not random: each
/// computes it): `<target>-<10 hex of the build id and release>-<requested at>`.
pub fn unique_tag(job: &BuildJob, release: &str) -> String {
    let hash = Sha256::digest(format!("{}\n{release}", job.build_id));
    let target = job
        .target
        .as_ref()
        .map_or("", |target| target.name.as_str());
    plan::unique_tag(target, &hex::encode(hash)[..10], job.requested_at_ms)
}

/// The one tag an arch job pushes its image with: `<unique tag>-<arch>`.
pub fn arch_tag(job: &BuildJob, release: &str) -> String {
    format!("{}-{}", unique_tag(job, release), job.arch)
}

/// Whose ownership a job claims: the build's (`<id>`) or one arch's (`<id>:<arch>`), so that
/// the arch jobs of one build run at once, each owned once.
pub fn owner(job: &BuildJob) -> String {
    osbs_common::store::log::stream(&job.build_id, &job.arch)
}

/// Whether the build's own job finds its build already handed to arch jobs (the arches are
/// recorded and the build runs): a redelivery or an old lease copy, acked.
pub fn orchestrated(state: BuildState, arches_field: &str) -> bool {
    !arches_field.is_empty() && matches!(state, BuildState::Running | BuildState::Pushing)
}

/// What an arriving arch job does, judged on the build's record and the arch's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchLook {
    /// Nothing to do: ack.
    Skip(&'static str),
    /// The parts are all in but the build is not complete: assemble it.
    Assemble,
    /// Build the arch (after claiming its ownership).
    Build,
}

/// `state`: the build's; `same_release`: the record's NVR is the job's (not an older
/// orchestration's); `part_recorded`, `complete`: this arch's part, every arch's.
pub fn look(
    state: BuildState,
    same_release: bool,
    part_recorded: bool,
    complete: bool,
) -> ArchLook {
    let running = matches!(state, BuildState::Running | BuildState::Pushing);
    match (running, same_release, part_recorded, complete) {
        (false, _, _, _) => ArchLook::Skip("the build is not running"),
        (true, false, _, _) => ArchLook::Skip("an arch job of an earlier orchestration"),
        (true, true, true, true) => ArchLook::Assemble,
        (true, true, true, false) => ArchLook::Skip("this arch is built already"),
        (true, true, false, _) => ArchLook::Build,
    }
}

/// `name-version-release` of a job's NVR, as the record's `nvr` field holds it.
pub fn nvr_text(job: &BuildJob) -> String {
    job.nvr.as_ref().map_or_else(String::new, |nvr| {
        format!("{}-{}-{}", nvr.name, nvr.version, nvr.release)
    })
}

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
            assemble(worker, job, holding).await;
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
pub(crate) async fn assemble(worker: &Worker, job: &BuildJob, holding: Holding) {
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
    let parts = read_parts(worker, job).await?;
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
    enter_pushing(worker, job, progress).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_proto::v1::Target;

    fn job() -> BuildJob {
        BuildJob {
            build_id: "b-1".into(),
            target: Some(Target {
                name: "f41-container-candidate".into(),
                ..Target::default()
            }),
            requested_at_ms: 1_700_000_000_000,
            attempt: 2,
            ..BuildJob::default()
        }
    }

    #[test]
    fn an_arch_job_is_the_build_s_job_with_its_arch_and_reservation() {
        let nvr = osbs_dockerfile::ComponentNvr {
            name: "hello".into(),
            component: "hello".into(),
            version: "1.0".into(),
            release: None,
        };
        let arches = vec!["x86_64".to_owned(), "aarch64".to_owned()];
        let reservation = Some(KojiReservation {
            build_id: 7,
            token: "t".into(),
        });
        let arm = arch_job(&job(), "aarch64", &arches, &nvr, "3", &reservation);
        assert_eq!(arm.arch, "aarch64");
        assert_eq!(arm.arches, arches);
        assert_eq!(arm.nvr.as_ref().unwrap().release, "3");
        assert_eq!(arm.koji_reservation, reservation);
        assert_eq!((arm.build_id.as_str(), arm.attempt), ("b-1", 2));
        assert_eq!(nvr_text(&arm), "hello-1.0-3");
        assert_eq!(owner(&arm), "b-1:aarch64");
        assert_eq!(owner(&job()), "b-1");
    }

    #[test]
    fn every_arch_job_computes_the_same_unique_tag() {
        let mut arm = job();
        arm.arch = "aarch64".into();
        let mut x86 = job();
        x86.arch = "x86_64".into();
        let unique = unique_tag(&job(), "3");
        assert!(unique.starts_with("f41-container-candidate-"), "{unique}");
        assert!(unique.ends_with("-20231114221320"), "{unique}");
        assert_eq!(arch_tag(&arm, "3"), format!("{unique}-aarch64"));
        assert_eq!(arch_tag(&x86, "3"), format!("{unique}-x86_64"));
        assert_ne!(unique_tag(&job(), "4"), unique, "a new release, a new tag");
        assert!(plan::check_tag(&arch_tag(&arm, "3")).is_ok());
    }

    #[test]
    fn an_arriving_arch_job_is_judged_on_the_record_and_the_parts() {
        use BuildState::*;
        let table = [
            (Running, true, false, false, ArchLook::Build),
            (Pushing, true, false, false, ArchLook::Build),
            (
                Running,
                true,
                true,
                false,
                ArchLook::Skip("this arch is built already"),
            ),
            (Running, true, true, true, ArchLook::Assemble),
            (Pushing, true, true, true, ArchLook::Assemble),
            (
                Running,
                false,
                false,
                false,
                ArchLook::Skip("an arch job of an earlier orchestration"),
            ),
            (
                Queued,
                true,
                false,
                false,
                ArchLook::Skip("the build is not running"),
            ),
            (
                Failed,
                true,
                false,
                false,
                ArchLook::Skip("the build is not running"),
            ),
        ];
        for (state, same, part, complete, expected) in table {
            assert_eq!(
                look(state, same, part, complete),
                expected,
                "{state:?} {same} {part} {complete}"
            );
        }
        assert!(orchestrated(Running, "x86_64,aarch64"));
        assert!(!orchestrated(Running, ""));
        assert!(
            !orchestrated(Queued, "x86_64,aarch64"),
            "a replay orchestrates again"
        );
    }
}
