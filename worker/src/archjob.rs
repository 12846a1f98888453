//! Multi-arch builds (DESIGN.md "Architectures"), the decisions, pure: the arch jobs an
//! orchestrator publishes, the tags and owner of an arch job, and how an arch job is judged
//! when it arrives. `multiarch` carries them out.

use crate::plan;
use osbs_common::bus;
use osbs_proto::v1::{BuildJob, BuildState, KojiReservation, Nvr, Trigger};
use sha2::{Digest, Sha256};
use std::time::Duration;

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

/// The build's reason when an arch job ends it in `state`: a failure names the arch
/// (`aarch64: <reason>`); a cancel says only why.
pub fn build_reason(arch: &str, state: BuildState, reason: &str) -> String {
    if state == BuildState::Failed {
        format!("{arch}: {reason}")
    } else {
        reason.to_owned()
    }
}

/// Whether an arch job that ended its build in `state` stops the build's other arch jobs
/// (by the build's cancel mark, once the end is recorded): a failure does; a cancel has its
/// mark already; the build's own job and the assembly have no other arch jobs to stop.
pub fn stops_other_arches(arch: &str, state: BuildState) -> bool {
    !arch.is_empty() && state == BuildState::Failed
}

/// Whether the orchestrator may publish its arch jobs, judged on each arch's consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchWorkers {
    /// Every arch's queue has a consumer: publish.
    Served,
    /// These arches have none yet: look again (a worker restarting is a blip).
    Wait(Vec<String>),
    /// Waited `[worker] arch_consumer_wait_secs` in vain: the build fails with this reason
    /// (one line naming each arch and what to do), nothing published.
    Unserved(String),
}

/// `consumers`: each arch with the consumer count of its `osbs.jobs.<arch>`; `waited`
/// since the first look, `limit` the longest wait.
pub fn arch_workers(consumers: &[(String, u32)], waited: Duration, limit: Duration) -> ArchWorkers {
    let missing: Vec<String> = consumers
        .iter()
        .filter(|(_, count)| *count == 0)
        .map(|(arch, _)| arch.clone())
        .collect();
    if missing.is_empty() {
        return ArchWorkers::Served;
    }
    if waited < limit {
        return ArchWorkers::Wait(missing);
    }
    let mut reason: Vec<String> = missing
        .iter()
        .map(|arch| {
            format!(
                "{arch}: no worker serves this arch ({} has no consumer)",
                osbs_proto::names::jobs_queue(arch)
            )
        })
        .collect();
    reason.push(format!(
        "start a worker with arches including {} and replay the build",
        missing.join(", ")
    ));
    ArchWorkers::Unserved(reason.join("; "))
}

/// `name-version-release` of a job's NVR, as the record's `nvr` field holds it.
pub fn nvr_text(job: &BuildJob) -> String {
    job.nvr.as_ref().map_or_else(String::new, |nvr| {
        format!("{}-{}-{}", nvr.name, nvr.version, nvr.release)
    })
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
    fn a_failing_arch_job_names_its_arch_and_stops_the_others() {
        use BuildState::*;
        let table = [
            ("aarch64", Failed, "aarch64: boom", true),
            ("aarch64", Canceled, "boom", false),
            ("", Failed, "boom", false),
        ];
        for (arch, state, reason, stops) in table {
            if !arch.is_empty() {
                assert_eq!(build_reason(arch, state, "boom"), reason, "{arch} {state}");
            }
            assert_eq!(stops_other_arches(arch, state), stops, "{arch:?} {state}");
        }
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
    fn arch_jobs_go_out_only_when_every_arch_has_a_worker() {
        let minute = Duration::from_secs(60);
        let arches = |pairs: &[(&str, u32)]| -> Vec<(String, u32)> {
            pairs
                .iter()
                .map(|(arch, count)| ((*arch).to_owned(), *count))
                .collect()
        };
        let table = [
            (
                arches(&[("x86_64", 1), ("aarch64", 2)]),
                Duration::ZERO,
                ArchWorkers::Served,
            ),
            (
                arches(&[("x86_64", 1), ("aarch64", 2)]),
                2 * minute,
                ArchWorkers::Served,
            ),
            (
                arches(&[("x86_64", 1), ("aarch64", 0)]),
                Duration::from_secs(59),
                ArchWorkers::Wait(vec!["aarch64".into()]),
            ),
            (
                arches(&[("x86_64", 1), ("aarch64", 0)]),
                minute,
                ArchWorkers::Unserved(
                    "aarch64: no worker serves this arch (osbs.jobs.aarch64 has no consumer); start a worker with arches including aarch64 and replay the build".into(),
                ),
            ),
            (
                arches(&[("x86_64", 0), ("s390x", 0), ("aarch64", 3)]),
                2 * minute,
                ArchWorkers::Unserved(
                    "x86_64: no worker serves this arch (osbs.jobs.x86_64 has no consumer); s390x: no worker serves this arch (osbs.jobs.s390x has no consumer); start a worker with arches including x86_64, s390x and replay the build".into(),
                ),
            ),
        ];
        for (consumers, waited, expected) in table {
            assert_eq!(
                arch_workers(&consumers, waited, minute),
                expected,
                "{consumers:?} after {waited:?}"
            );
        }
        // No wait configured: one look decides.
        assert!(matches!(
            arch_workers(&arches(&[("aarch64", 0)]), Duration::ZERO, Duration::ZERO),
            ArchWorkers::Unserved(_)
        ));
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
