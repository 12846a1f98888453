//! The Docker Engine adapter (bollard): connect, look up and pull images, build with the
//! output streamed into the build log, run a command in a container of an image, clean up.
//!
//! Cancel and timeouts: every call is a future; dropping a build's future closes its HTTP
//! connection, and the engine's classic builder then kills and removes the step's container
//! (it watches the request's context).

use crate::buildlog::BuildLog;
use crate::config::RegistryAuth;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig, ImageInspect};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, WaitContainerOptions,
};
use futures::StreamExt;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Longest wait for an engine's answer to start (a build's answer starts once the whole
/// context is uploaded).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker Engine at {host}: {detail}. Start dockerd (or point DOCKER_HOST at a running engine)"
    )]
    Unreachable { host: String, detail: String },
    #[error("docker build failed: {message}")]
    Build { message: String },
    #[error("base image {image} not found in its registry: {message}; check the FROM line")]
    PullNotFound { image: String, message: String },
    #[error("pulling {image} failed: {message}")]
    Pull { image: String, message: String },
    #[error("Docker Engine {operation} on {subject} failed: {message}")]
    Api {
        operation: &'static str,
        subject: String,
        message: String,
    },
}

impl DockerError {
    /// A fault of the packager's input (the build itself failed, a base image that does not
    /// exist) rather than of the engine or the registry.
    pub fn is_packager_error(&self) -> bool {
        matches!(
            self,
            DockerError::Build { .. } | DockerError::PullNotFound { .. }
        )
    }

    /// Worth retrying: the engine, the registry or the network hiccuped.
    pub fn is_transient(&self) -> bool {
        match self {
            DockerError::Pull { message, .. } => transient_registry_message(message),
            DockerError::Unreachable { .. } => true,
            _ => false,
        }
    }
}

/// Registry failures that a later attempt may not meet (from the engine's error texts).
pub fn transient_registry_message(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "connection refused",
        "connection reset",
        "i/o timeout",
        "timeout",
        "eof",
        "broken pipe",
        "503",
        "502",
        "504",
        "500 internal server error",
        "429",
        "too many requests",
        "no such host",
        "temporary failure",
        "tls handshake",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// The engine's version and host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineInfo {
    pub version: String,
    /// `Debian GNU/Linux 12 (bookworm)`.
    pub os: String,
    /// As the kernel names it (`x86_64`).
    pub architecture: String,
}

/// The container of a build step, from the classic builder's ` ---> Running in <id>` line.
pub fn step_container(output: &str) -> Option<&str> {
    let (_, rest) = output.split_once("---> Running in ")?;
    let id = rest.split_whitespace().next()?;
    (id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// What a command printed in a container, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// The engine connection.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
    registry_auth: BTreeMap<String, RegistryAuth>,
}

fn engine_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

impl Engine {
    /// Connects through `DOCKER_HOST` (else the local socket) and checks the engine answers.
    /// `registry_auth` is sent with pulls and pushes of the registries it names.
    pub async fn connect(
        registry_auth: BTreeMap<String, RegistryAuth>,
    ) -> Result<Engine, DockerError> {
        let host = engine_host();
        let unreachable = |detail: String| DockerError::Unreachable {
            host: host.clone(),
            detail,
        };
        let docker = Docker::connect_with_defaults()
            .map_err(|error| unreachable(error.to_string()))?
            .with_timeout(REQUEST_TIMEOUT);
        docker
            .ping()
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        Ok(Engine {
            docker,
            host,
            registry_auth,
        })
    }

    /// What the engine runs on and which version it is (image labels, Koji's buildroot).
    pub async fn describe(&self) -> Result<EngineInfo, DockerError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(self.api("info", "engine"))?;
        let version = self
            .docker
            .version()
            .await
            .map_err(self.api("version", "engine"))?;
        Ok(EngineInfo {
            version: version.version.unwrap_or_default(),
            os: info.operating_system.unwrap_or_else(|| "Linux".to_owned()),
            architecture: info
                .architecture
                .unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
        })
    }

    /// The credentials for the registry of `reference` (`registry/name...`), if configured.
    fn credentials(&self, reference: &str) -> Option<DockerCredentials> {
        let registry = reference.split('/').next()?;
        self.registry_auth
            .get(registry)
            .map(|auth| DockerCredentials {
                username: Some(auth.username.clone()),
                password: Some(auth.password.expose().to_owned()),
                serveraddress: Some(registry.to_owned()),
                ..DockerCredentials::default()
            })
    }

    /// The bollard client (the squash step reads and writes images through it).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    fn api(
        &self,
        operation: &'static str,
        subject: &str,
    ) -> impl FnOnce(BollardError) -> DockerError {
        let host = self.host.clone();
        let subject = subject.to_owned();
        move |error| {
            if is_connection_error(&error) {
                DockerError::Unreachable {
                    host,
                    detail: error.to_string(),
                }
            } else {
                DockerError::Api {
                    operation,
                    subject,
                    message: message_of(&error),
                }
            }
        }
    }

    /// The image `reference` if the engine has it.
    pub async fn inspect_image(
        &self,
        reference: &str,
    ) -> Result<Option<ImageInspect>, DockerError> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(Some(image)),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(error) => Err(self.api("image inspect", reference)(error)),
        }
    }

    /// Pulls `reference` (`registry/name@sha256:…`), logging the engine's progress lines.
    pub async fn pull(&self, reference: &str, log: &BuildLog) -> Result<(), DockerError> {
        self.pull_for_platform(reference, None, log).await
    }

    /// [`Engine::pull`] for `platform` (`linux/arm64`, [`osbs_proto::arch::Arch::platform`]):
    /// the engine picks that platform's entry when `reference` is a list (a reference pinned
    /// to one arch's manifest needs no pick, and is pulled whatever its arch). `None`: the
    /// engine's own platform.
    pub async fn pull_for_platform(
        &self,
        reference: &str,
        platform: Option<&str>,
        log: &BuildLog,
    ) -> Result<(), DockerError> {
        let mut options = CreateImageOptionsBuilder::default().from_image(reference);
        if let Some(platform) = platform {
            options = options.platform(platform);
        }
        let options = options.build();
        let mut stream = self
            .docker
            .create_image(Some(options), None, self.credentials(reference));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status
                        && info
                            .progress_detail
                            .as_ref()
                            .is_none_or(|p| p.total.is_none())
                    {
                        log.line(&match info.id {
                            Some(id) => format!("{id}: {status}"),
                            None => status,
                        });
                    }
                }
                Err(error) => {
                    let message = message_of(&error);
                    let lower = message.to_ascii_lowercase();
                    return Err(if is_connection_error(&error) {
                        DockerError::Unreachable {
                            host: self.host.clone(),
                            detail: message,
                        }
                    } else if lower.contains("not found") || lower.contains("manifest unknown") {
                        DockerError::PullNotFound {
                            image: reference.to_owned(),
                            message,
                        }
                    } else {
                        DockerError::Pull {
                            image: reference.to_owned(),
                            message,
                        }
                    });
                }
            }
        }
        Ok(())
    }

    /// Builds the context tar at `context` (streamed from disk; classic builder, no cache)
    /// as `tag`; every output line goes to `log`. Returns the image id. The step containers
    /// are left to the caller (`rm=false`): the engine removes them one by one before it
    /// answers with the image otherwise, 10–25 ms on this path (issue 13). `on_container`
    /// learns each one's id as it starts: the one before is committed then, and the last one
    /// can go once the result is out, or at once when the build is abandoned.
    pub async fn build(
        &self,
        context: &Path,
        tag: &str,
        log: &BuildLog,
        on_container: impl Fn(&str),
    ) -> Result<String, DockerError> {
        self.build_for_platform(context, tag, None, &BTreeMap::new(), log, on_container)
            .await
    }

    /// [`Engine::build`] for `platform` (`linux/arm64`: the engine's `platform` build
    /// parameter, which the classic builder honours from API 1.32 on: every `FROM` is
    /// resolved for it and every `RUN` runs as it, under qemu-user-static through
    /// binfmt_misc when it is not the engine's own). `None`: the engine's own platform (and
    /// the platform of the `FROM` image, which the classic builder inherits). `build_args`
    /// are passed as `--build-arg` would (the platform ARGs the Dockerfile declares).
    pub async fn build_for_platform(
        &self,
        context: &Path,
        tag: &str,
        platform: Option<&str>,
        build_args: &BTreeMap<String, String>,
        log: &BuildLog,
        on_container: impl Fn(&str),
    ) -> Result<String, DockerError> {
        let file = tokio::fs::File::open(context)
            .await
            .map_err(|error| DockerError::Api {
                operation: "build",
                subject: context.display().to_string(),
                message: format!("cannot read the build context: {error}"),
            })?;
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(tag)
            .nocache(true)
            .rm(false)
            .forcerm(false);
        if let Some(platform) = platform {
            options = options.platform(platform);
        }
        if !build_args.is_empty() {
            let build_args: std::collections::HashMap<&String, &String> =
                build_args.iter().collect();
            options = options.buildargs(&build_args);
        }
        let options = options.build();
        let mut stream = self.docker.build_image(
            options,
            None,
            Some(bollard::body_try_stream(tokio_util::io::ReaderStream::new(
                file,
            ))),
        );
        let mut image_id = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        if let Some(container) = step_container(&text) {
                            on_container(container);
                        }
                        log.chunk(&text);
                    }
                    if let Some(status) = info.status {
                        log.line(&status);
                    }
                    if let Some(id) = info.aux.and_then(|aux| aux.id) {
                        image_id = Some(id);
                    }
                }
                Err(BollardError::DockerStreamError { error }) => {
                    log.flush_partial();
                    log.line(&error);
                    return Err(DockerError::Build {
                        message: osbs_common::bus::one_line(&error, 2000),
                    });
                }
                Err(error) => {
                    log.flush_partial();
                    return Err(self.api("build", tag)(error));
                }
            }
        }
        log.flush_partial();
        match image_id {
            Some(id) => Ok(id),
            None => self
                .inspect_image(tag)
                .await?
                .and_then(|image| image.id)
                .ok_or_else(|| DockerError::Build {
                    message: "the engine ended the build without an image".into(),
                }),
        }
    }

    /// A new container of `image` that will run `command` (as root, no network), created
    /// but not started ([`Prepared::run`] starts it). `on_created` learns the container's
    /// id first, so that a caller whose future is dropped midway can still remove it; the
    /// container is removed when the [`Prepared`] is dropped.
    pub async fn prepare(
        &self,
        image: &str,
        command: &[String],
        on_created: impl FnOnce(&str),
    ) -> Result<Prepared, DockerError> {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(command[..1].to_vec()),
            cmd: Some(command[1..].to_vec()),
            user: Some("0".to_owned()),
            network_disabled: Some(true),
            labels: Some([("osbs.worker".to_owned(), "inspect".to_owned())].into()),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let created = self
            .docker
            .create_container(None, body)
            .await
            .map_err(self.api("container create", image))?;
        on_created(&created.id);
        Ok(Prepared {
            engine: self.clone(),
            id: created.id,
        })
    }

    async fn run_created(&self, id: &str) -> Result<RunOutput, DockerError> {
        // Attached before the start, so no output is missed and no `logs` call is needed.
        let options = bollard::query_parameters::AttachContainerOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .stream(true)
            .logs(true)
            .build();
        let mut attached = self
            .docker
            .attach_container(id, Some(options))
            .await
            .map_err(self.api("container attach", id))?;
        self.docker
            .start_container(id, None)
            .await
            .map_err(self.api("container start", id))?;
        let (mut stdout, mut stderr) = (String::new(), String::new());
        while let Some(item) = attached.output.next().await {
            match item.map_err(self.api("container attach", id))? {
                bollard::container::LogOutput::StdOut { message } => {
                    stdout.push_str(&String::from_utf8_lossy(&message));
                }
                bollard::container::LogOutput::StdErr { message } => {
                    stderr.push_str(&String::from_utf8_lossy(&message));
                }
                _ => {}
            }
        }
        let mut exit_code = 0;
        let mut waiting = self.docker.wait_container(id, None::<WaitContainerOptions>);
        while let Some(item) = waiting.next().await {
            match item {
                Ok(response) => exit_code = response.status_code,
                Err(BollardError::DockerContainerWaitError { code, .. }) => exit_code = code,
                Err(error) => return Err(self.api("container wait", id)(error)),
            }
        }
        Ok(RunOutput {
            exit_code,
            stdout,
            stderr,
        })
    }

    /// An image with no layer and no history, standing for `FROM scratch` where an image
    /// reference is needed (the squash's base: every layer of a scratch build collapses into
    /// one). Loaded into the engine once; idempotent.
    pub async fn empty_image(&self) -> Result<String, DockerError> {
        const TAG: &str = "osbs-worker/scratch:empty";
        if self.inspect_image(TAG).await?.is_some() {
            return Ok(TAG.to_owned());
        }
        let config = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]},"history":[]}"#;
        let config_name = format!("{}.json", hex::encode(sha2::Sha256::digest(config)));
        let manifest =
            format!(r#"[{{"Config":"{config_name}","RepoTags":["{TAG}"],"Layers":[]}}]"#);
        let mut archive = tar::Builder::new(Vec::new());
        for (name, content) in [
            (config_name.as_str(), &config[..]),
            ("manifest.json", manifest.as_bytes()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_size(content.len() as u64);
            archive
                .append_data(&mut header, name, content)
                .map_err(|error| DockerError::Api {
                    operation: "image load",
                    subject: TAG.to_owned(),
                    message: error.to_string(),
                })?;
        }
        let tar = archive.into_inner().map_err(|error| DockerError::Api {
            operation: "image load",
            subject: TAG.to_owned(),
            message: error.to_string(),
        })?;
        let options = bollard::query_parameters::ImportImageOptionsBuilder::default()
            .quiet(true)
            .build();
        let mut loading = self
            .docker
            .import_image(options, bollard::body_full(tar.into()), None);
        while let Some(item) = loading.next().await {
            item.map_err(self.api("image load", TAG))?;
        }
        Ok(TAG.to_owned())
    }

    /// Removes an image reference (a tag or an id) the build made; failures only logged.
    pub async fn remove_image(&self, reference: &str) {
        let options = RemoveImageOptionsBuilder::default()
            .force(true)
            .noprune(false)
            .build();
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_)
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(error) => {
                tracing::warn!(image = reference, error = %error, "cannot remove a build image")
            }
        }
    }

    /// Removes a container in the background (nobody waits for that). Outside a runtime (a
    /// panic unwinding) the worker's end-of-build cleanup removes it.
    pub fn remove_container_later(&self, id: String) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let engine = self.clone();
            runtime.spawn(async move { engine.remove_container(&id).await });
        }
    }

    /// Removes a container, running or not; failures only logged.
    pub async fn remove_container(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(error) => {
                tracing::warn!(container = id, error = %error, "cannot remove a container")
            }
        }
    }
}

/// A created container of [`Engine::prepare`]; removed when dropped (nobody waits for that).
#[derive(Debug)]
pub struct Prepared {
    engine: Engine,
    id: String,
}

impl Prepared {
    /// Starts the command and waits for its end: its output and exit code. Start failures
    /// come back as `Api` errors carrying the engine's message.
    pub async fn run(&self) -> Result<RunOutput, DockerError> {
        self.engine.run_created(&self.id).await
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        self.engine
            .remove_container_later(std::mem::take(&mut self.id));
    }
}

/// The engine was not reached at all (as opposed to answering with an error).
fn is_connection_error(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::HyperResponseError { .. }
            | BollardError::HyperLegacyError { .. }
            | BollardError::IOError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError
    )
}

/// The engine's own message, without bollard's wrapping.
fn message_of(error: &BollardError) -> String {
    match error {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        BollardError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_containers() {
        assert_eq!(
            step_container(" ---> Running in 2c17ce451e6f\n"),
            Some("2c17ce451e6f")
        );
        assert_eq!(step_container("Step 2/5 : RUN echo"), None);
        assert_eq!(step_container(" ---> Running in nothex"), None);
    }

    #[test]
    fn transient_messages() {
        let table = [
            (
                "Get \"http://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused",
                true,
            ),
            (
                "received unexpected HTTP status: 503 Service Unavailable",
                true,
            ),
            ("unauthorized: authentication required", false),
            ("denied: requested access to the resource is denied", false),
        ];
        for (message, transient) in table {
            assert_eq!(transient_registry_message(message), transient, "{message}");
        }
    }
}
