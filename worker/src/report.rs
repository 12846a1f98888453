//! Report step, pure: step timings, and the `BuildResult` assembled from what the steps
//! produced. (Its state event is made from the record by `osbs_common::state`.)

use osbs_proto::v1::{
    BuildJob, BuildResult, BuildState, BuildTool, ImageInfo, KojiReservation, LogFile, Nvr, Rpm,
    StepTiming,
};
use std::time::Duration;

/// The steps, in pipeline order (also the `step` label of the `step_seconds` metric).
pub mod step {
    pub const SOURCE: &str = "source";
    pub const DOCKERFILE: &str = "dockerfile";
    pub const BASE_IMAGE: &str = "base_image";
    pub const RELEASE: &str = "release";
    pub const BUILD: &str = "build";
    pub const INSPECT: &str = "inspect";
    /// Squash and push are one streamed step: the squashed layer goes straight to the
    /// registry.
    pub const SQUASH_PUSH: &str = "squash_push";
    /// A multi-arch build's last step, the only one in its result's timings (each arch's
    /// steps are in its part): from the last arch part recorded to the manifest list pushed
    /// under every tag.
    pub const ASSEMBLE: &str = "assemble";
}

/// Durations of the steps run so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timings {
    steps: Vec<(String, Duration)>,
}

impl Timings {
    pub fn record(&mut self, step: &str, took: Duration) {
        self.steps.push((step.to_owned(), took));
    }

    pub fn as_proto(&self) -> Vec<StepTiming> {
        self.steps
            .iter()
            .map(|(step, took)| StepTiming {
                step: step.clone(),
                millis: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
            })
            .collect()
    }

    /// `{"source":12,"build":830,...}` (milliseconds) for the build record.
    pub fn as_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .steps
            .iter()
            .map(|(step, took)| {
                (
                    step.clone(),
                    serde_json::Value::from(took.as_millis() as u64),
                )
            })
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// The slowest step, to name in the log's summary.
    pub fn slowest(&self) -> Option<(&str, Duration)> {
        self.steps
            .iter()
            .max_by_key(|(_, took)| *took)
            .map(|(step, took)| (step.as_str(), *took))
    }

    /// `source 0.02 s, build 0.81 s, ...`
    pub fn summary(&self) -> String {
        self.steps
            .iter()
            .map(|(step, took)| format!("{step} {:.2} s", took.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Everything a build produced, filled in as the steps run; a failed or canceled build
/// reports what it got to.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub nvr: Option<Nvr>,
    pub image: Option<ImageInfo>,
    pub components: Vec<Rpm>,
    pub logs: Vec<LogFile>,
    pub koji_reservation: Option<KojiReservation>,
    pub yum_repourls: Vec<String>,
}

/// Where a build ran: Koji's buildroot host and tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buildroot {
    /// The worker's host name.
    pub worker: String,
    /// The build host's OS and architecture (the engine's).
    pub os: String,
    pub arch: String,
    /// `(name, version)` of the tools that made the image.
    pub tools: Vec<(String, String)>,
}

/// How and when a build ended.
#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    pub state: BuildState,
    /// One line; empty when it succeeded.
    pub error: &'a str,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

impl<'a> Ended<'a> {
    /// An end without a run (the build never started, or its worker died): no duration.
    pub fn at_once(state: BuildState, error: &'a str, now_ms: i64) -> Ended<'a> {
        Ended {
            state,
            error,
            started_at_ms: now_ms,
            finished_at_ms: now_ms,
        }
    }
}

/// The `BuildResult` of a build that ended as `ended`.
pub fn build_result(
    job: &BuildJob,
    ended: Ended<'_>,
    outputs: &Outputs,
    timings: &Timings,
    buildroot: &Buildroot,
) -> BuildResult {
    let Ended {
        state,
        error,
        started_at_ms,
        finished_at_ms,
    } = ended;
    BuildResult {
        build_id: job.build_id.clone(),
        state: state as i32,
        error: error.to_owned(),
        job: Some(job.clone()),
        nvr: outputs.nvr.clone(),
        image: outputs.image.clone(),
        components: outputs.components.clone(),
        logs: outputs.logs.clone(),
        timings: timings.as_proto(),
        started_at_ms,
        finished_at_ms,
        koji_reservation: outputs.koji_reservation.clone(),
        worker: buildroot.worker.clone(),
        yum_repourls: outputs.yum_repourls.clone(),
        tools: buildroot
            .tools
            .iter()
            .map(|(name, version)| BuildTool {
                name: name.clone(),
                version: version.clone(),
            })
            .collect(),
        worker_os: buildroot.os.clone(),
        worker_arch: buildroot.arch.clone(),
        arches: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_report_the_slowest_step() {
        let mut timings = Timings::default();
        timings.record(step::SOURCE, Duration::from_millis(20));
        timings.record(step::BUILD, Duration::from_millis(810));
        timings.record(step::SQUASH_PUSH, Duration::from_millis(90));
        assert_eq!(
            timings.slowest(),
            Some(("build", Duration::from_millis(810)))
        );
        assert_eq!(
            timings.summary(),
            "source 0.02 s, build 0.81 s, squash_push 0.09 s"
        );
        assert_eq!(
            timings.as_json(),
            r#"{"build":810,"source":20,"squash_push":90}"#
        );
        assert_eq!(timings.as_proto()[1].millis, 810);
    }

    #[test]
    fn results_carry_the_job_and_outputs() {
        let job = BuildJob {
            build_id: "b1".into(),
            repo: "httpd".into(),
            submitter: "jdoe".into(),
            ..BuildJob::default()
        };
        let outputs = Outputs {
            nvr: Some(Nvr {
                name: "httpd".into(),
                version: "2.4".into(),
                release: "1".into(),
            }),
            image: Some(ImageInfo {
                pullspecs: vec!["r/httpd:2.4-1".into()],
                ..ImageInfo::default()
            }),
            ..Outputs::default()
        };
        let ended = Ended {
            state: BuildState::Complete,
            error: "",
            started_at_ms: 1,
            finished_at_ms: 2,
        };
        let result = build_result(
            &job,
            ended,
            &outputs,
            &Timings::default(),
            &Buildroot {
                worker: "host".into(),
                tools: vec![("docker".into(), "20.10".into())],
                ..Buildroot::default()
            },
        );
        assert_eq!(result.worker, "host");
        assert_eq!(result.tools[0].name, "docker");
        assert_eq!(result.state, BuildState::Complete as i32);
        assert_eq!(result.image.unwrap().pullspecs, vec!["r/httpd:2.4-1"]);
        assert_eq!(result.job.unwrap().submitter, "jdoe");
        assert_eq!((result.started_at_ms, result.finished_at_ms), (1, 2));
    }
}
