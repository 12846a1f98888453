//! The build pipeline of DESIGN.md, wired: each step decides with the pure modules and does
//! its I/O through one adapter. `run` returns when the image is pushed; the supervisor
//! (`service`) owns the record's start and end, the result, the ack, cancel and timeouts.
//!
//! The pipeline future may be dropped at any await (cancel, time limit, drain): everything
//! the supervisor needs afterwards (outputs, timings, what to clean up) lives in
//! [`Progress`], outside the future.

use crate::adapters::docker::{DockerError, Engine, EngineInfo};
use crate::adapters::git;
use crate::adapters::http::Http;
use crate::adapters::koji::{Koji, Reserve};
use crate::adapters::redis as keys;
use crate::buildlog::{self, BuildLog};
use crate::checkout::{Checkout, TEXT_LIMIT};
use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::inspect;
use crate::parent;
use crate::plan::{self, BuildKind};
use crate::reach;
use crate::release;
use crate::report::{Outputs, Timings, step};
use crate::source;
use backon::{ExponentialBuilder, Retryable};
use bollard::models::ImageInspect;
use osbs_common::Store;
use osbs_common::bus::Bus;
use osbs_common::http::Metrics;
use osbs_common::state::{self, ChangeError, Changed, StateChange};
use osbs_common::store::{StoreError, field, output_fields};
use osbs_dockerfile::{
    ComponentNvr, Dockerfile, InjectInputs, RewritePlan, buildinfo_name, labels_to_inject,
    required, rewrite_for_squash, yum_repo_file_name,
};
use osbs_proto::v1::{
    BuildJob, BuildState, ImageDigest, ImageInfo, KojiReservation, LayerSize, Nvr, Target,
};
use osbs_squash::{Additions, ImageFiles, LayerCompression, RegistryTarget};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What every build of this worker shares: configuration and adapters.
#[derive(Debug, Clone)]
pub struct Worker {
    pub config: Arc<WorkerConfig>,
    pub artifacts_dir: PathBuf,
    pub store: Store,
    pub bus: Arc<Bus>,
    pub engine: Engine,
    pub http: Http,
    /// Every registry the worker speaks to (base images, tags, the push).
    pub registries: osbs_registry::Registries,
    /// The Koji hub, when one is configured.
    pub koji: Option<Arc<Koji>>,
    /// How the squashed layer is stored in the registry (`[worker] layer_compression`).
    pub layer_compression: LayerCompression,
    /// Where the squash reads the image's layers (`[worker] squash_read_from`).
    pub squash_read_from: osbs_squash::ReadFrom,
    pub metrics: Metrics,
    /// This host's name (records, labels, Koji's buildroot).
    pub host: String,
    /// This worker process (`<host>/<uuid>`): the owner of the builds it runs.
    pub instance: String,
    /// The engine's version and host (the `architecture` label, Koji's buildroot).
    pub engine_info: EngineInfo,
    /// The arches (Koji names) this worker builds for: `[worker] arches` or the engine's.
    pub arches: Vec<String>,
    /// `[worker] manifest_list = "oci"`: a multi-arch build's list is an OCI index.
    pub oci_index: bool,
}

impl Worker {
    /// Koji's buildroot for the builds of this worker.
    pub fn buildroot(&self) -> crate::report::Buildroot {
        crate::report::Buildroot {
            worker: self.host.clone(),
            os: self.engine_info.os.clone(),
            arch: self.engine_info.architecture.clone(),
            tools: vec![
                ("docker".to_owned(), self.engine_info.version.clone()),
                (
                    "osbs-worker".to_owned(),
                    env!("CARGO_PKG_VERSION").to_owned(),
                ),
            ],
        }
    }
}

/// A release held in the in-flight set, to free when the build ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRelease {
    pub name: String,
    pub version: String,
    pub release: String,
}

/// What a build has produced and holds so far, readable after its future is dropped.
#[derive(Debug, Default)]
pub struct Progress {
    pub outputs: Mutex<Outputs>,
    pub timings: Mutex<Timings>,
    /// Images (tags or ids) and containers the build made in the engine.
    pub images: Mutex<Vec<String>>,
    pub containers: Mutex<Vec<String>>,
    /// Where they are also written down for the next worker, should this one die.
    pub ledger: Option<crate::leftovers::Ledger>,
    pub held_release: Mutex<Option<HeldRelease>>,
    /// The record's state as this attempt last set it.
    pub state: Mutex<Option<BuildState>>,
    /// The build's arch jobs are published: this attempt (the orchestrator's) ends without
    /// ending the build.
    pub orchestrated: Mutex<bool>,
}

impl Progress {
    /// Keeps a container the build made, to remove when it ends.
    pub fn track_container(&self, id: &str) {
        if let Some(ledger) = &self.ledger {
            ledger.container(id);
        }
        self.containers
            .lock()
            .expect("progress lock")
            .push(id.to_owned());
    }

    /// Keeps a step container of the build (they come one after another); returns the one
    /// before it, whose step is committed by now: only disk until it is removed.
    pub fn track_step_container(&self, id: &str) -> Option<String> {
        let before = self
            .containers
            .lock()
            .expect("progress lock")
            .last()
            .cloned();
        self.track_container(id);
        before
    }

    /// Keeps an image reference the build made, to remove when it ends.
    pub fn track_image(&self, reference: &str) {
        if let Some(ledger) = &self.ledger {
            ledger.image(reference);
        }
        self.images
            .lock()
            .expect("progress lock")
            .push(reference.to_owned());
    }

    pub fn state(&self) -> BuildState {
        self.state
            .lock()
            .expect("progress lock")
            .unwrap_or(BuildState::Running)
    }
}

/// One attempt at one build.
#[derive(Debug)]
pub struct Attempt<'a> {
    pub worker: &'a Worker,
    pub job: &'a BuildJob,
    pub number: u32,
    pub log: &'a BuildLog,
    pub progress: &'a Progress,
    /// Scratch directory of this attempt (removed by the supervisor).
    pub work_dir: PathBuf,
    /// `<artifacts_dir>/<build_id>` (an arch job's: `<artifacts_dir>/<build_id>/<arch>`).
    pub artifacts: PathBuf,
    /// The arch this attempt builds for when it is not the engine's own (an arch job, or a
    /// single-arch build of an emulated arch): the parent pins, the engine's `platform`,
    /// the `architecture` label and the squashed config follow it. Unset: the engine's own,
    /// as before multi-arch.
    pub arch: std::sync::OnceLock<osbs_proto::arch::Arch>,
}

/// What the base-image step found.
#[derive(Debug, Default)]
struct Parents {
    /// FROM reference as written → pinned reference.
    pins: BTreeMap<String, String>,
    /// FROM reference as written → `User` of that image, when not root/empty.
    users: BTreeMap<String, String>,
    /// FROM reference as written → `Env` of that image.
    envs: BTreeMap<String, Vec<String>>,
    /// The image the final stage is built on (none for `FROM scratch`).
    final_base: Option<FinalBase>,
}

#[derive(Debug)]
struct FinalBase {
    pinned: String,
    image_id: String,
    labels: BTreeMap<String, String>,
    env: Vec<String>,
}

/// What the build takes from the commit: the checkout (the files of the build context) and
/// the files the worker itself reads, all read before anything is fetched.
#[derive(Debug)]
struct Commit {
    checkout: Checkout,
    dockerfile: String,
    dockerignore: Option<String>,
    /// `container.yaml`, when the commit has one (its `platforms` narrow the arches).
    container_yaml: Option<String>,
}

/// An image the build names, held to the base registry, still to pin.
#[derive(Debug)]
struct Wanted {
    /// As written in the Dockerfile: the key of the pins.
    written: String,
    reference: parent::ImageRef,
    /// How log lines and errors name it (`base image x (FROM on line 3)`).
    shown: String,
    /// The FROM, for a parent image (not for an image a flag names).
    from: Option<osbs_dockerfile::ParentImage>,
}

fn packager(message: impl Into<String>) -> WorkerError {
    WorkerError::Packager(message.into())
}

/// `build-date` in ISO-8601 UTC (`2025-01-15T10:22:03Z`).
pub fn build_date(now_ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

/// The repositories of the build's own temporary tags: never anyone else's.
pub const TEMPORARY_NAMESPACE: &str = "osbs-worker/";

/// A name Docker accepts for the build's own temporary tags.
pub fn temporary_repository(kind: &str, build_id: &str) -> String {
    let id: String = build_id
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    format!("{TEMPORARY_NAMESPACE}{kind}-{}", id.trim_matches('-'))
}

impl Attempt<'_> {
    fn target(&self) -> &Target {
        static NONE: std::sync::OnceLock<Target> = std::sync::OnceLock::new();
        self.job
            .target
            .as_ref()
            .unwrap_or_else(|| NONE.get_or_init(Target::default))
    }

    fn kind(&self) -> BuildKind {
        BuildKind::of(self.job.options.as_ref())
    }

    /// Runs one step, timing it into the log, the progress and the metrics.
    async fn step<T>(
        &self,
        name: &str,
        work: impl Future<Output = Result<T, WorkerError>>,
    ) -> Result<T, WorkerError> {
        let started = Instant::now();
        let outcome = work.await;
        let took = started.elapsed();
        self.progress
            .timings
            .lock()
            .expect("progress lock")
            .record(name, took);
        self.worker.metrics.observe_step(name, took.as_secs_f64());
        self.log.note(&format!(
            "step {name} {} in {:.3} s",
            if outcome.is_ok() { "done" } else { "failed" },
            took.as_secs_f64()
        ));
        outcome
    }

    /// The whole pipeline, up to a pushed image.
    pub async fn run(&self) -> Result<(), WorkerError> {
        let job = self.job;
        self.log.note(&format!(
            "build {} attempt {} of {} at {} (target {}) on {}",
            job.build_id,
            self.number,
            job.git_url,
            job.commit,
            self.target().name,
            self.worker.host
        ));
        if job.arch.is_empty() {
            self.check_target().await?;
        }
        let commit = self.step(step::SOURCE, self.source()).await?;
        // The build's own job decides its arches (one this worker serves: built here, as
        // before multi-arch); an arch job builds the one it names.
        let many = match job.arch.as_str() {
            "" => self.decide_arches(&commit)?,
            arch => {
                self.set_arch(arch)?;
                None
            }
        };
        if let Some(arches) = &many {
            // Before anything is reserved or published: an arch no worker serves would
            // leave the build `running` for ever.
            self.await_arch_workers(arches).await?;
        }
        let dockerfile = self.parse_dockerfile(&commit.dockerfile, many.is_none())?;
        let parents = self
            .step(step::BASE_IMAGE, self.base_images(&dockerfile))
            .await?;
        let env = parents
            .final_base
            .as_ref()
            .map(|base| base.env.clone())
            .unwrap_or_default();
        let labels = dockerfile.final_stage_labels_with_env(&env);
        let nvr = required(&labels).map_err(|error| packager(error.to_string()))?;
        let repository = plan::repository(self.target(), &nvr.name)?;
        plan::check_tag(&nvr.version).map_err(|_| {
            packager(format!(
                "label version={:?} cannot be an image tag (letters, digits, '_', '.', '-'); change the version label",
                nvr.version
            ))
        })?;
        let release = match &job.nvr {
            Some(reserved) if !job.arch.is_empty() => self.reserved_release(&nvr, reserved)?,
            _ => {
                self.step(step::RELEASE, self.release(&nvr, &repository))
                    .await?
            }
        };
        if let Some(arches) = many {
            return self.orchestrate(&arches, &nvr, &release).await;
        }
        self.log.note(&format!(
            "building {}-{}-{release}",
            nvr.component, nvr.version
        ));
        let (context, additions) = self
            .step(
                step::DOCKERFILE,
                self.dockerfile(&commit, &dockerfile, &labels, &parents, &nvr, &release),
            )
            .await?;
        let built = self
            .step(step::BUILD, self.build(&context, &dockerfile))
            .await?;
        // The signing policy is decided before the image is published: the squash and its
        // blob uploads run beside the inspection (the unsquashed image has the same
        // filesystem as the squashed one), and the manifest waits for its verdict. The
        // inspection looks at the image through the squash's index of it.
        let (files_sent, files) = tokio::sync::oneshot::channel();
        let (inspected, allowed) = with_verdict(async {
            match files.await {
                Ok(files) => self.step(step::INSPECT, self.inspect(&built, files)).await,
                // The squash failed before it indexed the image (it calls `allowed` once it
                // has): there is nothing to inspect, and the squash's error says why.
                Err(_) => Ok(()),
            }
        });
        let allowed = move |files| {
            let _ = files_sent.send(files);
            allowed
        };
        let pushed = self.step(
            step::SQUASH_PUSH,
            self.squash_and_push(
                &built,
                &parents,
                Publish {
                    repository: &repository,
                    nvr: &nvr,
                    release: &release,
                },
                additions,
                allowed,
            ),
        );
        let (inspected, pushed) = tokio::join!(inspected, pushed);
        // A refused inspection is why the push stopped: its reason comes first.
        inspected?;
        pushed?;
        if !job.arch.is_empty() {
            // Recorded once for the build, by the arch job that assembles it.
            return Ok(());
        }
        self.record_pushed_release(&nvr, &release).await
    }

    /// The build's arches (DESIGN.md "Architectures"): `None` when they are one arch this
    /// worker serves (built in place; an arch other than the engine's own is set as the
    /// attempt's), else every arch, for [`Attempt::orchestrate`].
    fn decide_arches(&self, commit: &Commit) -> Result<Option<Vec<String>>, WorkerError> {
        let platforms = match &commit.container_yaml {
            Some(text) => {
                crate::arches::read_platforms(text).map_err(|error| packager(error.to_string()))?
            }
            None => crate::arches::Platforms::default(),
        };
        let options = self.job.options.clone().unwrap_or_default();
        let arches = crate::arches::decide(
            &self.target().arches,
            &platforms,
            &options.arch_override,
            options.scratch,
        )
        .map_err(|error| packager(error.to_string()))?;
        match arches.as_slice() {
            [one] if self.worker.arches.contains(one) => {
                let native = osbs_proto::arch::koji_name(&self.worker.engine_info.architecture);
                if *one != native {
                    self.set_arch(one)?;
                }
                Ok(None)
            }
            _ => {
                self.log.note(&format!("arches: {}", arches.join(", ")));
                Ok(Some(arches))
            }
        }
    }

    /// Builds for `arch` (a Koji name) from now on.
    fn set_arch(&self, arch: &str) -> Result<(), WorkerError> {
        let known = osbs_proto::arch::lookup(arch).ok_or_else(|| {
            WorkerError::Infrastructure(format!("the job names an unknown arch {arch:?}"))
        })?;
        let _ = self.arch.set(known);
        self.log.note(&format!(
            "building for {} ({})",
            known.koji,
            known.platform()
        ));
        Ok(())
    }

    /// The commit's Dockerfile, read with the platform build arguments it declares (the
    /// build passes the same ones, so that what is checked and pinned before the build is
    /// what the builder reads). An orchestrator (not `building`) reads it as its own engine
    /// would build it, for the labels and the base images it checks.
    fn parse_dockerfile(&self, text: &str, building: bool) -> Result<Dockerfile, WorkerError> {
        let parse = |args: &BTreeMap<String, String>| {
            Dockerfile::parse_with_build_args(text, args)
                .map_err(|error| packager(error.to_string()))
        };
        let plain = parse(&BTreeMap::new())?;
        let engine = osbs_proto::arch::lookup(&self.worker.engine_info.architecture);
        let Some(build) = engine else {
            // An engine of an arch OSBS cannot name: no platform to tell the Dockerfile.
            return Ok(plain);
        };
        let target = self.arch.get().copied().unwrap_or(build);
        let args = crate::arches::platform_build_args(&target, &build, &plain.declared_args());
        if args.is_empty() {
            return Ok(plain);
        }
        if building {
            let shown: Vec<String> = args
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            self.log
                .note(&format!("build arguments: {}", shown.join(" ")));
        }
        parse(&args)
    }

    /// The engine's platform of this attempt's arch (`None`: the engine's own).
    pub fn platform(&self) -> Option<String> {
        self.arch.get().map(osbs_proto::arch::Arch::platform)
    }

    /// An arch job's release: the one its orchestrator reserved for every arch, kept in the
    /// outputs (and held, so that a failure frees it) as an attempt that reserved it would.
    fn reserved_release(&self, nvr: &ComponentNvr, reserved: &Nvr) -> Result<String, WorkerError> {
        if reserved.name != nvr.component || reserved.version != nvr.version {
            return Err(packager(format!(
                "the commit labels {}-{} but the build reserved {}-{}",
                nvr.component, nvr.version, reserved.name, reserved.version
            )));
        }
        self.hold(nvr, &reserved.release);
        let mut outputs = self.progress.outputs.lock().expect("progress lock");
        outputs.nvr = Some(reserved.clone());
        outputs.koji_reservation = self.job.koji_reservation.clone();
        Ok(reserved.release.clone())
    }

    /// Waits (`[worker] arch_consumer_wait_secs` at most) until each arch's queue has a
    /// consumer; past that, fails the attempt naming the arches without one
    /// ([`crate::archjob::arch_workers`]). The queues are declared first, so that a passive
    /// declare can read them.
    async fn await_arch_workers(&self, arches: &[String]) -> Result<(), WorkerError> {
        use crate::archjob::ArchWorkers;
        let bus = &self.worker.bus;
        for arch in arches {
            bus.declare_arch_queues(arch).await?;
        }
        let limit = self.worker.config.arch_consumer_wait();
        let started = Instant::now();
        let mut said = false;
        loop {
            let mut consumers = Vec::new();
            for arch in arches {
                let queue = osbs_proto::names::jobs_queue(arch);
                consumers.push((arch.clone(), bus.queue_depth(&queue).await?.consumers));
            }
            match crate::archjob::arch_workers(&consumers, started.elapsed(), limit) {
                ArchWorkers::Served => {
                    if said {
                        self.log.note("every arch has a worker now");
                    }
                    return Ok(());
                }
                ArchWorkers::Wait(missing) => {
                    if !said {
                        self.log.note(&format!(
                            "no worker serves {} yet: waiting up to {} s for one",
                            missing.join(", "),
                            limit.as_secs()
                        ));
                        said = true;
                    }
                    let left = limit.saturating_sub(started.elapsed());
                    tokio::time::sleep(left.min(Duration::from_secs(1))).await;
                }
                ArchWorkers::Unserved(reason) => {
                    return Err(WorkerError::Infrastructure(reason));
                }
            }
        }
    }

    /// Publishes one arch job per arch (confirmed, on `osbs.jobs.<arch>`), then records the
    /// arches on the build: this attempt then ends without ending the build.
    async fn orchestrate(
        &self,
        arches: &[String],
        nvr: &ComponentNvr,
        release: &str,
    ) -> Result<(), WorkerError> {
        let (worker, job) = (self.worker, self.job);
        let id = &job.build_id;
        // A build orchestrated again (a replay) builds every arch again, with its release.
        worker.store.clear_arch_parts(id, arches).await?;
        let reservation = self
            .progress
            .outputs
            .lock()
            .expect("progress lock")
            .koji_reservation
            .clone();
        for arch in arches {
            let arch_job = crate::archjob::arch_job(job, arch, arches, nvr, release, &reservation);
            worker.bus.declare_arch_queues(arch).await?;
            worker
                .bus
                .publish_job(&arch_job, crate::archjob::priority(job))
                .await?;
            self.log.note(&format!(
                "{arch}: arch job published on {}",
                osbs_proto::names::jobs_queue(arch)
            ));
        }
        worker
            .store
            .set_fields(id, &[(field::ARCHES, arches.join(","))])
            .await?;
        *self.progress.orchestrated.lock().expect("progress lock") = true;
        self.log.note(&format!(
            "building {}-{}-{release} for {}: each arch job logs on its own (osbs watch-logs --arch)",
            nvr.component,
            nvr.version,
            arches.join(", ")
        ));
        Ok(())
    }

    /// The Koji build target is looked up before anything is spent (koji-containerbuild
    /// does the same): a build whose target the hub lacks would otherwise be reserved,
    /// built, pushed and imported, then never tagged.
    async fn check_target(&self) -> Result<(), WorkerError> {
        let target = self.target();
        let Some(koji) = &self.worker.koji else {
            return Ok(());
        };
        let scratch = self.kind() == BuildKind::Scratch;
        let Some(name) = release::target_to_check(&target.name, &target.dest_tag, true, scratch)
        else {
            return Ok(());
        };
        if koji.has_target(name).await? {
            return Ok(());
        }
        Err(packager(release::missing_target(
            name,
            &self.job.branch,
            &self.job.namespace,
        )))
    }

    /// Without a hub, the pushed release is recorded for its name-version, so that a build of
    /// the same component and version pushed to another repository takes the next one.
    async fn record_pushed_release(
        &self,
        nvr: &ComponentNvr,
        release: &str,
    ) -> Result<(), WorkerError> {
        if self.worker.koji.is_some() || self.kind() == BuildKind::Scratch {
            return Ok(());
        }
        self.worker
            .store
            .record_release(&nvr.component, &nvr.version, release)
            .await?;
        Ok(())
    }

    /// Clone at the commit; read the files the worker reads itself (Dockerfile,
    /// `.dockerignore`, `sources`); then the lookaside sources into the checkout: every entry
    /// checked before the first download, each download written to a fresh file and moved
    /// to its name only once its checksum is verified.
    async fn source(&self) -> Result<Commit, WorkerError> {
        let config = &self.worker.config;
        let job = self.job;
        source::check_git_url(&job.git_url, &config.allowed_git_urls)?;
        source::check_commit(&job.commit)?;
        let git_dir = self.work_dir.join("git");
        let checkout_path = self.work_dir.join("src");
        git::fetch_commit(&job.git_url, &job.commit, &git_dir, &checkout_path).await?;
        let checkout = Checkout::open(&checkout_path)?;
        self.log
            .note(&format!("checked out {} at {}", job.git_url, job.commit));
        let dockerfile = checkout
            .read_text("Dockerfile", TEXT_LIMIT)?
            .ok_or_else(|| {
                packager(format!(
                    "the repository has no Dockerfile at commit {}; add one",
                    job.commit
                ))
            })?;
        let dockerignore = checkout.read_text(".dockerignore", TEXT_LIMIT)?;
        let container_yaml = checkout.read_text("container.yaml", TEXT_LIMIT)?;
        let sources = checkout.read_text("sources", TEXT_LIMIT)?;
        let entries = source::parse_sources(sources.as_deref().unwrap_or_default())?;
        if !entries.is_empty() {
            let tracked = git::top_level_names(&git_dir, &job.commit, &job.git_url).await?;
            source::check_not_tracked(&entries, &tracked)?;
        }
        for entry in entries {
            let url =
                source::lookaside_url(&config.lookaside_url, &job.namespace, &job.repo, &entry)?;
            let download = checkout.create_download()?;
            let size = match self
                .worker
                .http
                .download_source(&url, &entry, &download.file)
                .await
            {
                Ok(size) => size,
                Err(error) => {
                    checkout.discard(download);
                    return Err(error.into());
                }
            };
            checkout.install(download, &entry.name)?;
            self.log.note(&format!(
                "downloaded {} ({size} bytes, {} verified) from {url}",
                entry.name,
                entry.hashtype.name()
            ));
        }
        Ok(Commit {
            checkout,
            dockerfile,
            dockerignore,
            container_yaml,
        })
    }

    /// Every image the build names (FROM, `COPY --from`, `RUN --mount from=`): all held to
    /// the base registry before the engine is asked for any, then pinned and present in the
    /// engine; the final stage's base inspected for its labels, environment and id. Then the
    /// parents' ONBUILD triggers and the remote `ADD` sources (which may use a parent's
    /// environment) are held to the same rules, before the build.
    async fn base_images(&self, dockerfile: &Dockerfile) -> Result<Parents, WorkerError> {
        let worker = self.worker;
        let base_registry = &self.target().base_registry;
        let allowed_sources = &worker.config.allowed_source_urls;
        let final_root = dockerfile.root_stage(dockerfile.stages().len() - 1);
        let mut parents = Parents::default();
        let mut pinned_already: HashMap<String, (String, ImageInspect)> = HashMap::new();
        for wanted in wanted_images(dockerfile, base_registry)? {
            let key = wanted.reference.pinned(wanted.reference.reference());
            let (pinned, inspect) = match pinned_already.get(&key) {
                Some(found) => found.clone(),
                None => {
                    let found = self.pin(&wanted).await?;
                    pinned_already.insert(key, found.clone());
                    found
                }
            };
            parents.pins.insert(wanted.written.clone(), pinned.clone());
            let Some(image) = wanted.from else { continue };
            let config = inspect.config.clone().unwrap_or_default();
            if let Some(user) = config.user.filter(|user| !user.is_empty()) {
                parents.users.insert(wanted.written.clone(), user);
            }
            let env = config.env.unwrap_or_default();
            let triggers = config.on_build.unwrap_or_default();
            reach::check_triggers(
                dockerfile,
                &image,
                &triggers,
                &env,
                base_registry,
                allowed_sources,
            )?;
            parents.envs.insert(wanted.written, env.clone());
            if image.stage == final_root {
                parents.final_base = Some(FinalBase {
                    pinned,
                    image_id: inspect.id.clone().unwrap_or_default(),
                    labels: config.labels.unwrap_or_default().into_iter().collect(),
                    env,
                });
            }
        }
        let sources = dockerfile.remote_sources(&parents.envs);
        reach::check_remote_sources(&sources, allowed_sources)?;
        Ok(parents)
    }

    /// `wanted` resolved to a digest in its registry and present in the engine.
    async fn pin(&self, wanted: &Wanted) -> Result<(String, ImageInspect), WorkerError> {
        let reference = &wanted.reference;
        let registry = reference.registry.clone().unwrap_or_default();
        // An arch build pins to that arch's image of a list (a list without it fails the
        // build naming base and arch: `RegistryError::NoArch`, the packager's).
        let pin = parent::pin_digest(&self.worker.registries, reference, self.arch.get())
            .await
            .map_err(|error| match error {
                error @ osbs_registry::RegistryError::NoArch { .. } => {
                    packager(format!("{}: {error}", wanted.shown))
                }
                error => error.into(),
            })?
            .ok_or_else(|| {
                packager(format!(
                    "{} not found in registry {registry}; check that line",
                    wanted.shown
                ))
            })?;
        let pinned = reference.pinned(&pin.digest);
        let inspect = self.pulled(&pinned).await?;
        match &pin.list_digest {
            Some(list) => self.log.note(&format!(
                "{} pinned to {pinned} (its {} image of the list {list})",
                wanted.shown,
                self.arch.get().map_or("", |arch| arch.koji)
            )),
            None => self
                .log
                .note(&format!("{} pinned to {pinned}", wanted.shown)),
        }
        Ok((pinned, inspect))
    }

    /// The engine's view of `pinned` (`registry/name@sha256:…`), pulled first if it lacks it.
    async fn pulled(&self, pinned: &str) -> Result<ImageInspect, WorkerError> {
        let worker = self.worker;
        if let Some(found) = worker.engine.inspect_image(pinned).await? {
            return Ok(found);
        }
        let platform = self.platform();
        (|| {
            worker
                .engine
                .pull_for_platform(pinned, platform.as_deref(), self.log)
        })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(worker.config.registry_attempts.max(1) - 1),
        )
        .when(DockerError::is_transient)
        .notify(|error, wait| {
            worker.metrics.count_retry("pull");
            self.log.note(&format!(
                "pulling {pinned} failed ({error}); retrying in {wait:?}"
            ));
        })
        .await?;
        worker.engine.inspect_image(pinned).await?.ok_or_else(|| {
            WorkerError::Infrastructure(format!("the engine pulled {pinned} but does not list it"))
        })
    }

    /// The release: the Dockerfile's or the request's, else the next free one above what
    /// Koji (or, without a hub, the registry) has and unique among builds in flight; then
    /// reserved in Koji. Scratch builds reserve nothing. An attempt that continues a build
    /// (takeover, drain) reuses the release and reservation of the attempt before.
    async fn release(&self, nvr: &ComponentNvr, repository: &str) -> Result<String, WorkerError> {
        let keep_for = self.worker.config.build_timeout() + Duration::from_secs(3600);
        let kind = self.kind();
        let requested = self
            .job
            .options
            .as_ref()
            .map(|options| options.release.clone())
            .filter(|release| !release.is_empty());
        let fixed = nvr.release.clone().or(requested);
        if let Some(fixed) = &fixed {
            release::check(fixed)?;
        }
        let previous = match kind {
            BuildKind::Scratch => None,
            _ => self.kept(nvr, fixed.as_deref()).await?,
        };
        let (release, reservation) = if let Some(kept) = previous {
            self.continue_with(nvr, kept, keep_for).await?
        } else if kind == BuildKind::Scratch {
            let release = match fixed {
                Some(fixed) => fixed,
                None => self.next_release(nvr, repository).await?,
            };
            (release, None)
        } else if let Some(fixed) = fixed {
            self.reserve_fixed(nvr, fixed, keep_for).await?
        } else {
            self.reserve_next(nvr, repository, keep_for).await?
        };
        self.remember(nvr, &release, reservation, keep_for).await?;
        Ok(release)
    }

    /// The release an earlier attempt of this build held, if it is still the one wanted.
    async fn kept(
        &self,
        nvr: &ComponentNvr,
        fixed: Option<&str>,
    ) -> Result<Option<keys::KeptReservation>, WorkerError> {
        let kept = keys::kept_reservation(&self.worker.store, &self.job.build_id).await?;
        Ok(kept.filter(|kept| {
            kept.name == nvr.component
                && kept.version == nvr.version
                && fixed.is_none_or(|fixed| fixed == kept.release)
        }))
    }

    /// Goes on with the release (and Koji reservation) of an earlier attempt.
    async fn continue_with(
        &self,
        nvr: &ComponentNvr,
        kept: keys::KeptReservation,
        keep_for: Duration,
    ) -> Result<(String, Option<KojiReservation>), WorkerError> {
        let store = &self.worker.store;
        keys::hold_release(store, &nvr.component, &nvr.version, &kept.release, keep_for).await?;
        self.log.note(&format!(
            "continuing with release {} held by the previous attempt",
            kept.release
        ));
        let reservation = (kept.koji_build_id != 0).then(|| KojiReservation {
            build_id: kept.koji_build_id,
            token: kept.koji_token.clone(),
        });
        Ok((kept.release, reservation))
    }

    /// Holds and reserves exactly `fixed` (a release label or a requested release).
    async fn reserve_fixed(
        &self,
        nvr: &ComponentNvr,
        fixed: String,
        keep_for: Duration,
    ) -> Result<(String, Option<KojiReservation>), WorkerError> {
        let worker = self.worker;
        if !keys::hold_release(
            &worker.store,
            &nvr.component,
            &nvr.version,
            &fixed,
            keep_for,
        )
        .await?
        {
            return Err(packager(format!(
                "release {fixed} of {}-{} is being built right now by another build; wait for it to end or change the release",
                nvr.component, nvr.version
            )));
        }
        self.hold(nvr, &fixed);
        let Some(koji) = &worker.koji else {
            self.check_not_pushed(nvr, &fixed).await?;
            return Ok((fixed, None));
        };
        match koji.reserve(&nvr.component, &nvr.version, &fixed).await? {
            Reserve::Reserved(reservation) => {
                let reservation = KojiReservation {
                    build_id: reservation.build_id,
                    token: reservation.token,
                };
                Ok((fixed, Some(reservation)))
            }
            Reserve::Taken(fault) => Err(packager(format!(
                "{}-{}-{fixed} cannot be built: Koji says \"{fault}\"; change the release label",
                nvr.component, nvr.version
            ))),
        }
    }

    /// Keeps the release and its reservation for a later attempt of this build, and records
    /// the NVR.
    async fn remember(
        &self,
        nvr: &ComponentNvr,
        release: &str,
        reservation: Option<KojiReservation>,
        keep_for: Duration,
    ) -> Result<(), WorkerError> {
        let store = &self.worker.store;
        let id = &self.job.build_id;
        if self.kind() != BuildKind::Scratch {
            self.hold(nvr, release);
            let kept = keys::KeptReservation {
                name: nvr.component.clone(),
                version: nvr.version.clone(),
                release: release.to_owned(),
                koji_build_id: reservation.as_ref().map_or(0, |r| r.build_id),
                koji_token: reservation
                    .as_ref()
                    .map(|r| r.token.clone())
                    .unwrap_or_default(),
            };
            keys::keep_reservation(store, id, &kept, keep_for).await?;
        }
        if let Some(reservation) = &reservation {
            self.log.note(&format!(
                "reserved {}-{}-{release} in Koji (build id {})",
                nvr.component, nvr.version, reservation.build_id
            ));
        }
        {
            let mut outputs = self.progress.outputs.lock().expect("progress lock");
            outputs.koji_reservation = reservation;
            outputs.nvr = Some(Nvr {
                name: nvr.component.clone(),
                version: nvr.version.clone(),
                release: release.to_owned(),
            });
        }
        let nvr_text = format!("{}-{}-{release}", nvr.component, nvr.version);
        store.set_fields(id, &[(field::NVR, nvr_text)]).await?;
        Ok(())
    }

    /// Without a hub, a release set by the Dockerfile or the request that a build of the same
    /// name-version pushed before (from any repository) is refused now, as the hub's
    /// `CGInitBuild` would refuse it, rather than at import.
    async fn check_not_pushed(&self, nvr: &ComponentNvr, fixed: &str) -> Result<(), WorkerError> {
        let recorded = self
            .worker
            .store
            .recorded_releases(&nvr.component, &nvr.version)
            .await?;
        if release::already_pushed(fixed, &recorded) {
            return Err(packager(format!(
                "{}-{}-{fixed} was pushed by an earlier build (of this or another repository with the same component and version); change the release label",
                nvr.component, nvr.version
            )));
        }
        Ok(())
    }

    /// Remembers the release held in the in-flight set, to free when the build ends.
    fn hold(&self, nvr: &ComponentNvr, release: &str) {
        *self.progress.held_release.lock().expect("progress lock") = Some(HeldRelease {
            name: nvr.component.clone(),
            version: nvr.version.clone(),
            release: release.to_owned(),
        });
    }

    /// The first release after what Koji has, patched as atomic-reactor does (without a hub:
    /// after what the repository's tags and the name-version's recorded releases say).
    async fn next_release(
        &self,
        nvr: &ComponentNvr,
        repository: &str,
    ) -> Result<String, WorkerError> {
        let worker = self.worker;
        match &worker.koji {
            Some(koji) => {
                let answer = koji.next_release(&nvr.component, &nvr.version).await?;
                let patched = release::patch(&answer);
                if patched != answer {
                    self.log.note(&format!(
                        "Koji's next release for {}-{} is {answer}; building {patched} (a numeric second part is dropped, as atomic-reactor does)",
                        nvr.component, nvr.version
                    ));
                }
                Ok(patched)
            }
            None => {
                let registry = &self.target().registry;
                let path = repository
                    .strip_prefix(&format!("{registry}/"))
                    .unwrap_or(repository);
                let tags = worker.registries.tags(registry, path).await?;
                let recorded = worker
                    .store
                    .recorded_releases(&nvr.component, &nvr.version)
                    .await?;
                Ok(release::next_without_hub(
                    &nvr.component,
                    &nvr.version,
                    &tags,
                    &recorded,
                )?)
            }
        }
    }

    /// The first release free both among builds in flight and in Koji, held and reserved.
    async fn reserve_next(
        &self,
        nvr: &ComponentNvr,
        repository: &str,
        keep_for: Duration,
    ) -> Result<(String, Option<KojiReservation>), WorkerError> {
        const KOJI_TRIES: usize = 20;
        let store = &self.worker.store;
        let mut first = self.next_release(nvr, repository).await?;
        for _ in 0..KOJI_TRIES {
            let release =
                keys::reserve_release(store, &nvr.component, &nvr.version, &first, keep_for)
                    .await?
                    .ok_or_else(|| {
                        packager(format!(
                            "no free release for {}-{} after {first}; set a release label",
                            nvr.component, nvr.version
                        ))
                    })?;
            self.hold(nvr, &release);
            let Some(koji) = &self.worker.koji else {
                return Ok((release, None));
            };
            match koji.reserve(&nvr.component, &nvr.version, &release).await? {
                Reserve::Reserved(reservation) => {
                    return Ok((
                        release,
                        Some(KojiReservation {
                            build_id: reservation.build_id,
                            token: reservation.token,
                        }),
                    ));
                }
                Reserve::Taken(fault) => {
                    self.log.note(&format!(
                        "Koji has {}-{}-{release} already ({fault}); trying the next release",
                        nvr.component, nvr.version
                    ));
                    let held = self
                        .progress
                        .held_release
                        .lock()
                        .expect("progress lock")
                        .take();
                    free_release(store, held).await;
                    first = release::next(&release).ok_or_else(|| {
                        packager(format!(
                            "cannot compute the release after {release} for {}-{}; set a release label",
                            nvr.component, nvr.version
                        ))
                    })?;
                }
            }
        }
        Err(WorkerError::Infrastructure(format!(
            "Koji refused {KOJI_TRIES} releases in a row for {}-{}; check the hub",
            nvr.component, nvr.version
        )))
    }

    /// Yum repo files fetched, the Dockerfile rewritten, the context tar written; what the
    /// squash adds instead of the builder (the buildinfo file, the injected labels).
    async fn dockerfile(
        &self,
        commit: &Commit,
        dockerfile: &Dockerfile,
        labels: &BTreeMap<String, String>,
        parents: &Parents,
        nvr: &ComponentNvr,
        release: &str,
    ) -> Result<(PathBuf, Additions), WorkerError> {
        let (mut extra, repo_files) = self.yum_repos().await?;
        let buildinfo = buildinfo_name(&nvr.name, &nvr.version, release);
        let rewrite_plan = RewritePlan {
            pins: parents.pins.clone(),
            labels: self.labels(labels, parents, release),
            repo_files: repo_files.clone(),
            buildinfo_dockerfile: Some(buildinfo.clone()),
        };
        let final_env = parents
            .final_base
            .as_ref()
            .map(|base| base.env.as_slice())
            .unwrap_or_default();
        let rewritten = rewrite_for_squash(dockerfile, &rewrite_plan, &parents.users, final_env)
            .map_err(|error| packager(error.to_string()))?;
        // The Dockerfile kept (log, Koji, the image) is the whole rewrite; the engine builds
        // it without the buildinfo COPY and the LABELs, which the squash writes.
        self.keep_dockerfile(&rewritten.stored)?;
        self.log.note(&format!(
            "the buildinfo COPY and the LABEL are written by the squash, not built as steps{}",
            match rewritten.own_label_instructions.len() {
                0 => String::new(),
                own => format!(", and the Dockerfile's own {own} LABEL(s) of the final stage"),
            }
        ));
        // A .dockerignore must not hide the files the rewrite COPYs.
        if let Some(mut ignore) = commit.dockerignore.clone() {
            for name in &repo_files {
                ignore.push_str(&format!("\n!{name}"));
            }
            ignore.push('\n');
            extra.insert(".dockerignore".into(), ignore.into_bytes());
        }
        extra.insert(
            "Dockerfile".into(),
            rewritten.for_engine.clone().into_bytes(),
        );
        let additions = plan::squash_additions(&rewritten, &buildinfo);
        Ok((self.write_context(commit, extra).await?, additions))
    }

    /// The yum repo files of the request and the target, fetched: the files to add to the
    /// context and their names.
    async fn yum_repos(&self) -> Result<(BTreeMap<String, Vec<u8>>, Vec<String>), WorkerError> {
        let worker = self.worker;
        let requested: Vec<String> = self
            .job
            .options
            .as_ref()
            .map(|options| options.yum_repourls.clone())
            .unwrap_or_default();
        let urls = yum_repo_urls(&requested, &self.target().yum_repourls);
        let mut extra: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut repo_files = Vec::new();
        for (url, from_request) in &urls {
            source::check_repo_url(url, &worker.config.allowed_yum_repo_urls)?;
            let content = match worker.http.fetch_repo_file(url).await {
                Ok(content) => content,
                // A repo the packager asked for is the packager's to fix; the target's are
                // the operator's.
                Err(error) if *from_request => {
                    return Err(packager(format!("--repo-url {url}: {error}")));
                }
                Err(error) => return Err(error.into()),
            };
            let name = yum_repo_file_name(url);
            self.log
                .note(&format!("yum repo {url} as /etc/yum.repos.d/{name}"));
            extra.insert(name.clone(), content);
            repo_files.push(name);
        }
        self.progress
            .outputs
            .lock()
            .expect("progress lock")
            .yum_repourls = urls.into_iter().map(|(url, _)| url).collect();
        Ok((extra, repo_files))
    }

    /// The labels the rewrite injects.
    fn labels(
        &self,
        labels: &BTreeMap<String, String>,
        parents: &Parents,
        release: &str,
    ) -> Vec<(String, String)> {
        let (worker, config) = (self.worker, &self.worker.config);
        let parent_labels = parents
            .final_base
            .as_ref()
            .map(|base| base.labels.clone())
            .unwrap_or_default();
        let optional = |value: &str| (!value.is_empty()).then(|| value.to_owned());
        let inputs = InjectInputs {
            build_date: build_date(osbs_common::telemetry::now_ms()),
            architecture: self.arch.get().map_or_else(
                || worker.engine_info.architecture.clone(),
                |arch| arch.koji.to_owned(),
            ),
            vcs_ref: self.job.commit.clone(),
            build_host: worker.host.clone(),
            release: release.to_owned(),
            vendor: optional(&config.vendor),
            authoritative_source_url: optional(&config.authoritative_source_url),
            distribution_scope: optional(&config.distribution_scope),
        };
        labels_to_inject(labels, &parent_labels, &inputs)
    }

    /// The final Dockerfile: into the build log and, as a file Koji keeps, the artifacts.
    fn keep_dockerfile(&self, text: &str) -> Result<(), WorkerError> {
        for line in text.lines() {
            self.log.line(&format!("  | {line}"));
        }
        std::fs::create_dir_all(&self.artifacts).map_err(WorkerError::io(format!(
            "creating {}",
            self.artifacts.display()
        )))?;
        let dockerfile_artifact =
            buildlog::write_artifact(&self.artifacts, "Dockerfile", text.as_bytes())
                .map_err(WorkerError::io("writing the final Dockerfile"))?;
        self.progress
            .outputs
            .lock()
            .expect("progress lock")
            .logs
            .push(dockerfile_artifact);
        Ok(())
    }

    /// The build context tar: the checkout and `extra` (which wins over its files).
    async fn write_context(
        &self,
        commit: &Commit,
        extra: BTreeMap<String, Vec<u8>>,
    ) -> Result<PathBuf, WorkerError> {
        let context = self.work_dir.join("context.tar");
        let (checkout, output) = (commit.checkout.clone(), context.clone());
        tokio::task::spawn_blocking(move || {
            crate::adapters::context::write_context(&checkout, &extra, &output)
        })
        .await
        .map_err(|error| WorkerError::Infrastructure(format!("context writer panicked: {error}")))?
        .map_err(WorkerError::io("writing the build context"))?;
        Ok(context)
    }

    /// The image built from the context with the Dockerfile's build args; returns its id.
    async fn build(&self, context: &Path, dockerfile: &Dockerfile) -> Result<String, WorkerError> {
        let tag = format!(
            "{}:{}",
            // Per arch: the arch jobs of one build run at once on one engine.
            temporary_repository("build", &crate::archjob::owner(self.job)),
            self.number
        );
        self.progress.track_image(&tag);
        let has_scratch = dockerfile.stages().iter().any(|stage| stage.is_scratch);
        let platform = crate::arches::build_platform(self.arch.get(), has_scratch);
        if self.arch.get().is_some() && platform.is_none() {
            self.log.note(
                "built without the engine's platform parameter: the classic builder refuses ADD/COPY in a FROM scratch stage built for another platform; every image named is pinned to this arch",
            );
        }
        let image_id = self
            .worker
            .engine
            .build_for_platform(
                context,
                &tag,
                platform.as_deref(),
                dockerfile.build_args(),
                self.log,
                |container| {
                    // A committed step's container would hold a copy of its layer until the
                    // end: it goes now, beside the build, and only the last one after.
                    if let Some(before) = self.progress.track_step_container(container) {
                        self.worker.engine.remove_container_later(before);
                    }
                },
            )
            .await?;
        self.log.note(&format!("built {image_id}"));
        Ok(image_id)
    }

    /// rpm components of the built image (same filesystem as the squashed one), by the rule
    /// of [`inspect`], checked against the target's signing policy. `files` (the squash's
    /// index of the image) says whether it has an rpm database: only then is a container of
    /// it created, to run its rpm.
    async fn inspect(&self, image: &str, files: ImageFiles) -> Result<(), WorkerError> {
        let found = tokio::task::spawn_blocking(move || {
            let probed: Vec<&str> = [inspect::RPM_DATABASES, inspect::RPM_BINARIES].concat();
            files.files().existing(&probed)
        })
        .await
        .map_err(|error| {
            WorkerError::Infrastructure(format!("the image lookup failed: {error}"))
        })?;
        let (rpm, database) = match inspect::plan_rpm_query(&found)? {
            inspect::RpmPlan::Query { rpm, database } => (rpm, database),
            no_database => {
                self.log.note(&no_database.note().unwrap_or_default());
                return Ok(());
            }
        };
        let prepared = self
            .worker
            .engine
            .prepare(image, &inspect::rpm_command(), |id| {
                self.progress.track_container(id)
            })
            .await?;
        let output = match prepared.run().await {
            Ok(output) => output,
            Err(DockerError::Api { message, .. }) if inspect::cannot_exec(&message) => {
                return Err(inspect::InspectError::RpmCannotRun {
                    rpm,
                    database,
                    detail: osbs_common::bus::one_line(&message, 300),
                }
                .into());
            }
            Err(error) => return Err(error.into()),
        };
        let rpms = inspect::read_rpm_query(
            &rpm,
            &database,
            output.exit_code,
            &output.stdout,
            &output.stderr,
        )?;
        self.log.note(&format!(
            "{} rpm package(s) in the image's rpm database ({database})",
            rpms.len()
        ));
        let target = self.target();
        let verdict = inspect::check_signatures(&target.name, &target.signing_key_ids, &rpms);
        self.progress
            .outputs
            .lock()
            .expect("progress lock")
            .components = rpms;
        verdict?;
        Ok(())
    }

    /// `pushing`, then the build's layers squashed into one above the base image's and
    /// pushed straight to the registry under every tag (osbs-squash: the base layers are the
    /// registry's own blobs, mounted; transient registry errors are retried there); the
    /// config read back for the result.
    async fn squash_and_push<V: Future<Output = bool>>(
        &self,
        image: &str,
        parents: &Parents,
        publish: Publish<'_>,
        additions: Additions,
        allowed: impl FnOnce(ImageFiles) -> V,
    ) -> Result<(), WorkerError> {
        let Publish {
            repository,
            nvr,
            release,
        } = publish;
        let worker = self.worker;
        let target = self.target();
        let arch_job = !self.job.arch.is_empty();
        let tags = if !arch_job {
            let unique = plan::unique_tag(
                &target.name,
                &uuid::Uuid::new_v4().simple().to_string()[..10],
                osbs_common::telemetry::now_ms(),
            );
            plan::tags(self.kind(), &nvr.version, release, &unique)?
        } else {
            // An arch job pushes its image by digest with one tag of its own; the build's
            // tags go on the list, once every arch is in (`multiarch::assemble`). The build
            // stays `running` until then.
            vec![crate::archjob::arch_tag(self.job, release)]
        };
        let base = match &parents.final_base {
            Some(base) => base.pinned.clone(),
            None => worker.engine.empty_image().await?,
        };
        let mut push_target = self.push_target(repository, tags.clone())?;
        push_target.additions = additions;
        // `pushing` is recorded and announced while the squash reads and uploads; the
        // manifest waits for it too (a build canceled meanwhile publishes nothing).
        let (entered, pushing) = with_verdict(async {
            if arch_job {
                Ok(())
            } else {
                self.enter_pushing().await
            }
        });
        let allowed = move |files| {
            let inspected = allowed(files);
            async move { inspected.await && pushing.await }
        };
        let (entered, pushed) = tokio::join!(
            entered,
            osbs_squash::squash_to_registry_when(
                worker.engine.client(),
                image,
                &base,
                &push_target,
                allowed,
            )
        );
        entered?;
        let pushed = pushed.map_err(|source| WorkerError::Squash {
            image: image.to_owned(),
            repository: repository.to_owned(),
            source: Box::new(source),
        })?;
        for retried in &pushed.retries {
            worker.metrics.count_retry("push");
            self.log.note(retried);
        }
        let squashed = &pushed.squashed;
        self.log
            .note(&format!("layers read from {}", squashed.read));
        self.log.note(&format!(
            "squashed into one layer of {} bytes ({}) above {} base layer(s)",
            squashed.layer_size, squashed.layer_diff_id, squashed.base_layer_count
        ));
        self.log.note(&format!(
            "pushed {repository} as {} ({})",
            tags.join(", "),
            pushed.manifest_digest
        ));
        let image = image_info(&pushed, repository, tags, parents);
        self.progress.outputs.lock().expect("progress lock").image = Some(image);
        Ok(())
    }

    /// Where and how the squash pushes: the target's registry, its scheme and credentials,
    /// the worker's layer settings.
    fn push_target(
        &self,
        repository: &str,
        tags: Vec<String>,
    ) -> Result<RegistryTarget, WorkerError> {
        let (worker, target) = (self.worker, self.target());
        let path = repository
            .strip_prefix(&format!("{}/", target.registry))
            .unwrap_or(repository);
        let mut push_target = RegistryTarget::new(&target.registry, path, tags);
        push_target.insecure =
            worker.registries.get(&target.registry)?.scheme() == osbs_registry::Scheme::Http;
        push_target.auth = worker.registries.credentials(&target.registry);
        push_target.layer_compression = worker.layer_compression;
        push_target.read_from = worker.squash_read_from;
        push_target.attempts = worker.config.registry_attempts.max(1);
        // An arch build's config says its arch, whatever the builder wrote.
        push_target.platform = self.arch.get().map(osbs_registry::Platform::of_arch);
        Ok(push_target)
    }

    /// `running → pushing`, announced.
    async fn enter_pushing(&self) -> Result<(), WorkerError> {
        let worker = self.worker;
        let id = self.job.build_id.as_str();
        let change = StateChange::new(
            id,
            BuildState::Pushing,
            "pushing to the registry",
            &worker.instance,
        )
        .only_from(&[BuildState::Running]);
        let mut changed = change_state(worker, change.clone()).await?;
        if matches!(changed, Changed::Missing) && self.restore_record().await? {
            changed = change_state(worker, change).await?;
        }
        match changed {
            Changed::Done(_) => {}
            Changed::Refused(record) => {
                return Err(WorkerError::Infrastructure(format!(
                    "build {id} is {} (changed by another service); it cannot become pushing",
                    record.state
                )));
            }
            Changed::Missing => return Err(StoreError::NotFound(id.to_owned()).into()),
        }
        *self.progress.state.lock().expect("progress lock") = Some(BuildState::Pushing);
        worker.metrics.count_state(BuildState::Pushing);
        Ok(())
    }
}

/// `work`, and a future that tells, once `work` has ended, whether it succeeded: what the
/// squash's manifest waits for while `work` runs beside it.
fn with_verdict<T, E>(
    work: impl Future<Output = Result<T, E>>,
) -> (
    impl Future<Output = Result<T, E>>,
    impl Future<Output = bool>,
) {
    let (verdict, told) = tokio::sync::oneshot::channel();
    let work = async move {
        let outcome = work.await;
        let _ = verdict.send(outcome.is_ok());
        outcome
    };
    (work, async move { told.await.unwrap_or(false) })
}

/// Where a built image is published: its repository and the name-version-release its tags
/// are made of.
#[derive(Debug, Clone, Copy)]
struct Publish<'a> {
    repository: &'a str,
    nvr: &'a ComponentNvr,
    release: &'a str,
}

/// What the result says of the pushed image (the config as pushed: no need to read it back
/// from the registry).
fn image_info(
    pushed: &osbs_squash::Pushed,
    repository: &str,
    tags: Vec<String>,
    parents: &Parents,
) -> ImageInfo {
    let image_config: serde_json::Value =
        serde_json::from_str(&pushed.config_json).unwrap_or_default();
    ImageInfo {
        image_id: pushed.config_digest.clone(),
        parent_id: parents
            .final_base
            .as_ref()
            .map(|base| base.image_id.clone())
            .unwrap_or_default(),
        config_json: pushed.config_json.clone(),
        digests: vec![ImageDigest {
            media_type: pushed.manifest_media_type.clone(),
            digest: pushed.manifest_digest.clone(),
        }],
        layer_sizes: pushed
            .layers
            .iter()
            .map(|layer| LayerSize {
                diff_id: layer.diff_id.clone(),
                size: i64::try_from(layer.size).unwrap_or(i64::MAX),
            })
            .collect(),
        pullspecs: plan::pullspecs(repository, &tags, &pushed.manifest_digest),
        tags,
        repositories: vec![repository.to_owned()],
        parent_pullspecs: parents.pins.values().cloned().collect(),
        architecture: image_config["architecture"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        os: image_config["os"].as_str().unwrap_or_default().to_owned(),
    }
}

/// The yum repo URLs of a build, each once: the request's first (`true`: the packager's),
/// then the target's.
pub fn yum_repo_urls(requested: &[String], target: &[String]) -> Vec<(String, bool)> {
    let mut urls: Vec<(String, bool)> = Vec::new();
    let all = requested
        .iter()
        .map(|url| (url, true))
        .chain(target.iter().map(|url| (url, false)));
    for (url, from_request) in all {
        if !urls.iter().any(|(seen, _)| seen == url) {
            urls.push((url.clone(), from_request));
        }
    }
    urls
}

/// The history's reason of a record brought back from the job.
pub const RESTORED: &str = "re-created from its job: Redis had lost the record";

impl Attempt<'_> {
    /// Brings back the record Redis lost, from the job this attempt holds, in the state the
    /// attempt is in, with what the attempt knows so far. `false` when the record exists.
    pub async fn restore_record(&self) -> Result<bool, StoreError> {
        let worker = self.worker;
        let mut fields = final_fields(self.progress, "", worker);
        fields.push((field::ATTEMPTS, self.number.to_string()));
        fields.push((
            field::HEARTBEAT_MS,
            osbs_common::telemetry::now_ms().to_string(),
        ));
        let restored = restore(worker, self.job, self.progress.state(), &fields).await?;
        if restored {
            self.log
                .note("Redis had lost this build's record: re-created from its job");
        }
        Ok(restored)
    }
}

/// Re-creates the record of `job`'s build in `state` ([`Store::recreate`]), logged.
pub async fn restore(
    worker: &Worker,
    job: &BuildJob,
    state: BuildState,
    fields: &[(&str, String)],
) -> Result<bool, StoreError> {
    let now = osbs_common::telemetry::now_ms();
    let restored = worker
        .store
        .recreate(job, state, RESTORED, &worker.instance, now, fields)
        .await?;
    if restored {
        tracing::warn!(build_id = %job.build_id, %state, "Redis had lost the build's record: re-created from the job");
    }
    Ok(restored)
}

/// Every image the build names, each held to the base registry (FROMs first, then the images
/// of `COPY --from` and `RUN --mount from=`): nothing reaches the engine unless all pass.
fn wanted_images(dockerfile: &Dockerfile, base_registry: &str) -> Result<Vec<Wanted>, WorkerError> {
    let mut wanted = Vec::new();
    for image in dockerfile.parent_images() {
        let reference = parent::resolve(&image.resolved, base_registry)
            .map_err(|error| packager(error.to_string()))?;
        wanted.push(Wanted {
            written: image.written.clone(),
            reference,
            shown: format!(
                "base image {} (FROM on line {})",
                image.resolved, image.line
            ),
            from: Some(image),
        });
    }
    for (image, reference) in reach::check_flag_images(dockerfile, base_registry)? {
        wanted.push(Wanted {
            shown: format!(
                "image {} ({} on line {})",
                image.resolved, image.flag, image.line
            ),
            written: image.written,
            reference,
            from: None,
        });
    }
    Ok(wanted)
}

/// The record's fields describing a finished attempt.
pub fn final_fields(
    progress: &Progress,
    error: &str,
    worker: &Worker,
) -> Vec<(&'static str, String)> {
    let outputs = progress.outputs.lock().expect("progress lock");
    let mut fields = vec![
        (field::ERROR, error.to_owned()),
        (field::WORKER, worker.instance.clone()),
        (
            field::TIMINGS,
            progress.timings.lock().expect("progress lock").as_json(),
        ),
    ];
    fields.extend(output_fields(outputs.nvr.as_ref(), outputs.image.as_ref()));
    fields
}

/// Frees a held release (the build ended; its NVR is in the registry or never will be).
pub async fn free_release(store: &Store, held: Option<HeldRelease>) {
    if let Some(held) = held
        && let Err(error) =
            keys::free_release(store, &held.name, &held.version, &held.release).await
    {
        tracing::warn!(error = %error, release = %held.release, "cannot free the release hold; it expires by itself");
    }
}

/// Changes the state of one of the worker's builds whose announcement is informational
/// (`running`, `pushing`, handed back to `queued`): recorded but not announced, the change
/// stands and the lost event is logged. A build's end is announced with its result instead,
/// and resumed by the job's next delivery when it did not go out.
pub async fn change_state(worker: &Worker, change: StateChange<'_>) -> Result<Changed, StoreError> {
    match state::change(&worker.store, &worker.bus, change).await {
        Ok(changed) => Ok(changed),
        Err(ChangeError::NotAnnounced {
            transition, source, ..
        }) => {
            tracing::warn!(build_id = %transition.record.id, state = %transition.to, error = %source, "state change recorded but not announced");
            Ok(Changed::Done(*transition))
        }
        Err(ChangeError::Store(error)) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yum_repos_once_each_the_request_first() {
        let urls = |list: &[&str]| list.iter().map(|url| url.to_string()).collect::<Vec<_>>();
        let table = [
            (vec![], vec![], vec![]),
            (
                vec!["http://r/a.repo"],
                vec!["http://t/b.repo"],
                vec![("http://r/a.repo", true), ("http://t/b.repo", false)],
            ),
            (
                vec!["http://t/b.repo"],
                vec!["http://t/b.repo", "http://t/c.repo"],
                vec![("http://t/b.repo", true), ("http://t/c.repo", false)],
            ),
        ];
        for (requested, target, expected) in table {
            let expected: Vec<(String, bool)> = expected
                .into_iter()
                .map(|(url, mine)| (url.to_owned(), mine))
                .collect();
            assert_eq!(yum_repo_urls(&urls(&requested), &urls(&target)), expected);
        }
    }
}
