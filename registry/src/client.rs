//! The registry client: [`Registries`] (one per service, from its configuration) hands out
//! a [`Registry`] per host — scheme by the plain-http rule, credentials resolved, one
//! oci-client `Client` (and its token cache) kept for the host. Reads (manifests, lists,
//! digests, tags, blobs as verified streams) and the plain pushes (a blob in one request,
//! manifests and lists by tag or by digest) go through oci-client; every operation is
//! retried on transient failures (backon) and its error classified (`error`).

use crate::credentials::{self, Credentials};
use crate::digest::{is_digest, sha256_digest};
use crate::error::{Context, RegistryError};
use crate::manifest::{
    Document, ImageManifest, ListMember, Platform, RawManifest, arch_list, parse_document,
};
use crate::media::{ACCEPT_MANIFESTS, MANIFEST_LIMIT, ManifestFormat};
use crate::reference::{
    ImageRef, Reference, ReferenceError, valid_registry, valid_repository, valid_tag,
};
use crate::transport::{Scheme, scheme_for};
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use osbs_proto::arch::Arch;
use reqwest::header::HeaderValue;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Attempts at each operation when the configuration does not say.
pub const DEFAULT_ATTEMPTS: usize = 5;

/// Tags asked for per page of a tag list.
const TAG_PAGE: usize = 1000;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence while reading an answer (a big blob's body keeps arriving).
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// How a service reaches registries.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Registries spoken to over plain http besides loopback ones (`HOST:PORT` as written).
    pub insecure_registries: Vec<String>,
    /// Credentials per registry (`HOST[:PORT]`).
    pub credentials: BTreeMap<String, Credentials>,
    /// Attempts at each operation before a transient failure is given up (at least 1).
    pub attempts: usize,
    /// The `User-Agent` of every request.
    pub user_agent: &'static str,
}

impl Settings {
    /// No insecure registry, no credentials, [`DEFAULT_ATTEMPTS`].
    pub fn new(user_agent: &'static str) -> Settings {
        Settings {
            insecure_registries: Vec::new(),
            credentials: BTreeMap::new(),
            attempts: DEFAULT_ATTEMPTS,
            user_agent,
        }
    }
}

/// The registries one service speaks to: a [`Registry`] per host, made once and kept.
#[derive(Debug, Clone)]
pub struct Registries {
    settings: Arc<Settings>,
    made: Arc<Mutex<HashMap<String, Registry>>>,
}

impl Registries {
    /// Reads every password named by `password_env` now, so that a missing one stops the
    /// service at start rather than its first push.
    pub fn new(mut settings: Settings) -> Result<Registries, RegistryError> {
        settings.credentials =
            credentials::resolve_all(&settings.credentials, |name| std::env::var(name).ok())
                .map_err(|(registry, source)| RegistryError::Credentials { registry, source })?;
        Ok(Registries {
            settings: Arc::new(settings),
            made: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The credentials configured for `registry`, password read.
    pub fn credentials(&self, registry: &str) -> Option<Credentials> {
        find_credentials(&self.settings.credentials, registry).cloned()
    }

    /// Every registry's credentials, passwords read (for the engine's own pulls).
    pub fn all_credentials(&self) -> BTreeMap<String, Credentials> {
        self.settings.credentials.clone()
    }

    /// The client of `registry` (`HOST[:PORT]`).
    pub fn get(&self, registry: &str) -> Result<Registry, RegistryError> {
        let mut made = self.made.lock().expect("registries lock");
        if let Some(found) = made.get(registry) {
            return Ok(found.clone());
        }
        let made_now = Registry::new(registry, &self.settings)?;
        made.insert(registry.to_owned(), made_now.clone());
        Ok(made_now)
    }

    /// The digest `image`'s tag or digest names, `None` when the registry does not have it.
    pub async fn manifest_digest(&self, image: &ImageRef) -> Result<Option<String>, RegistryError> {
        self.get(&image.registry)?
            .manifest_digest(&image.repository, &image.reference)
            .await
    }

    /// Every tag of `registry/repository` (none when the repository does not exist).
    pub async fn tags(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Vec<String>, RegistryError> {
        self.get(registry)?.tags(repository).await
    }

    /// The single-platform manifest of `image` (a list resolved to `platform`'s entry).
    pub async fn image_manifest(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<(ImageManifest, String), RegistryError> {
        self.get(&image.registry)?
            .image_manifest(&image.repository, &image.reference, platform)
            .await
    }

    /// The image manifest of `arch` that `image` names (see [`Registry::arch_manifest`]).
    pub async fn arch_manifest(
        &self,
        image: &ImageRef,
        arch: &Arch,
    ) -> Result<ArchManifest, RegistryError> {
        self.get(&image.registry)?
            .arch_manifest(&image.repository, &image.reference, arch)
            .await
    }

    /// The image config (labels, rootfs, history) of `image` for `platform`.
    pub async fn image_config(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<serde_json::Value, RegistryError> {
        self.get(&image.registry)?
            .image_config(&image.repository, &image.reference, platform)
            .await
    }
}

/// oci-client for `scheme` with OSBS's timeouts, pushing a blob in one request.
fn oci_client(
    scheme: Scheme,
    user_agent: &'static str,
) -> Result<oci_client::Client, oci_client::errors::OciDistributionError> {
    oci_client::Client::try_from(ClientConfig {
        protocol: match scheme {
            Scheme::Http => ClientProtocol::Http,
            Scheme::Https => ClientProtocol::Https,
        },
        use_monolithic_push: true,
        platform_resolver: None,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        user_agent,
        ..ClientConfig::default()
    })
}

/// The credentials of `registry`: its own key, else one spelled in another case.
fn find_credentials<'a>(
    credentials: &'a BTreeMap<String, Credentials>,
    registry: &str,
) -> Option<&'a Credentials> {
    credentials.get(registry).or_else(|| {
        credentials
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(registry))
            .map(|(_, credentials)| credentials)
    })
}

/// One arch's image manifest, as [`Registry::arch_manifest`] found it.
#[derive(Debug, Clone)]
pub struct ArchManifest {
    pub manifest: ImageManifest,
    /// The digest of the arch's image manifest: what a `FROM` is pinned to.
    pub digest: String,
    /// The list's digest when the reference named a list; `None` for a single image.
    pub list_digest: Option<String>,
}

/// `:tag` or `@digest`, as a reference is written after its repository.
fn at(reference: &Reference) -> String {
    match reference {
        Reference::Digest(digest) => format!("@{digest}"),
        Reference::Tag(tag) => format!(":{tag}"),
    }
}

/// A blob that is in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
}

/// One registry host. Cheap to clone (clones share the connection pool and tokens).
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
    retried: Arc<Mutex<Vec<String>>>,
}

pub(crate) struct Inner {
    pub name: String,
    pub scheme: Scheme,
    /// `scheme://name/`: hand-written requests' base, and the only origin they authenticate to.
    pub base: url::Url,
    pub credentials: Option<Credentials>,
    pub oci: oci_client::Client,
    pub http: reqwest::Client,
    pub attempts: usize,
    /// The `Authorization` of hand-written requests, per repository pushed to.
    pub authorizations: tokio::sync::Mutex<HashMap<String, Option<HeaderValue>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("name", &self.inner.name)
            .field("scheme", &self.inner.scheme)
            .field("credentials", &self.inner.credentials)
            .field("attempts", &self.inner.attempts)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// The client of `registry` under `settings` (a `password_env` is read now).
    pub fn new(registry: &str, settings: &Settings) -> Result<Registry, RegistryError> {
        if !valid_registry(registry) {
            return Err(ReferenceError::Registry(registry.to_owned()).into());
        }
        let scheme = scheme_for(registry, &settings.insecure_registries);
        let credentials = find_credentials(&settings.credentials, registry)
            .map(|credentials| credentials.resolve(|name| std::env::var(name).ok()))
            .transpose()
            .map_err(|source| RegistryError::Credentials {
                registry: registry.to_owned(),
                source,
            })?;
        let context = Context {
            registry,
            action: "set up its client",
            has_credentials: credentials.is_some(),
        };
        let base = url::Url::parse(&format!("{}://{registry}/", scheme.as_str()))
            .map_err(|error| context.protocol(error.to_string()))?;
        let oci = oci_client(scheme, settings.user_agent).map_err(|error| context.oci(error))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(settings.user_agent)
            .build()
            .map_err(|error| context.request(&error))?;
        Ok(Registry {
            inner: Arc::new(Inner {
                name: registry.to_owned(),
                scheme,
                base,
                credentials,
                oci,
                http,
                attempts: settings.attempts.max(1),
                authorizations: tokio::sync::Mutex::new(HashMap::new()),
            }),
            retried: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// `HOST[:PORT]`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// http or https, by the plain-http rule.
    pub fn scheme(&self) -> Scheme {
        self.inner.scheme
    }

    /// The failures this client retried, oldest first (the squash, which makes a client per
    /// push, reports them in the build log).
    pub fn retried(&self) -> Vec<String> {
        self.retried.lock().expect("retried lock").clone()
    }

    pub(crate) fn context<'a>(&'a self, action: &'a str) -> Context<'a> {
        Context {
            registry: &self.inner.name,
            action,
            has_credentials: self.inner.credentials.is_some(),
        }
    }

    fn oci_auth(&self) -> RegistryAuth {
        match &self.inner.credentials {
            Some(credentials) => RegistryAuth::Basic(
                credentials.username.clone(),
                credentials.password.expose().to_owned(),
            ),
            None => RegistryAuth::Anonymous,
        }
    }

    /// oci-client with this registry's credentials stored (the calls that take no
    /// credentials read them from its store).
    async fn oci(&self) -> &oci_client::Client {
        self.inner
            .oci
            .store_auth_if_needed(&self.inner.name, &self.oci_auth())
            .await;
        &self.inner.oci
    }

    /// oci-client's reference to `repository` (checked) at `reference`.
    pub(crate) fn reference(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<oci_client::Reference, ReferenceError> {
        ImageRef::new(&self.inner.name, repository, reference.clone()).map(|image| image.to_oci())
    }

    /// oci-client's reference for blob operations on `repository` (the tag is not used).
    pub(crate) fn repository(
        &self,
        repository: &str,
    ) -> Result<oci_client::Reference, ReferenceError> {
        if !valid_repository(repository) {
            return Err(ReferenceError::Repository(repository.to_owned()));
        }
        Ok(oci_client::Reference::with_tag(
            self.inner.name.clone(),
            repository.to_owned(),
            "latest".to_owned(),
        ))
    }

    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(self.inner.attempts - 1)
            .with_jitter()
    }

    /// Runs `operation` again while it fails transiently, noting each retry.
    pub(crate) async fn retry<T, E, F, Fut>(
        &self,
        action: &str,
        transient: impl Fn(&E) -> bool,
        operation: F,
    ) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        operation
            .retry(self.backoff())
            .when(transient)
            .notify(|error, wait| {
                tracing::warn!(registry = %self.inner.name, %error, ?wait, "{action} failed; retrying");
                self.retried
                    .lock()
                    .expect("retried lock")
                    .push(format!("{action} failed ({error}); retried after {wait:?}"));
            })
            .await
    }

    /// [`Registry::retry`] for operations failing with a [`RegistryError`].
    async fn retried_call<T, F, Fut>(&self, action: &str, operation: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        self.retry(action, RegistryError::is_transient, operation)
            .await
    }

    /// The manifest or list `repository` has at `reference`, as bytes, and its digest
    /// (checked against the registry's and against `reference` when it is one).
    pub async fn manifest_bytes(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<(Bytes, String), RegistryError> {
        let image = self.reference(repository, reference)?;
        let action = format!("read the manifest {repository}:{reference}");
        self.retried_call(&action, || async {
            let context = self.context(&action);
            let (bytes, digest) = self
                .oci()
                .await
                .pull_manifest_raw(&image, &self.oci_auth(), ACCEPT_MANIFESTS)
                .await
                .map_err(|error| context.oci(error))?;
            if bytes.len() > MANIFEST_LIMIT {
                return Err(context.protocol(format!("it is {} bytes", bytes.len())));
            }
            Ok((bytes, digest))
        })
        .await
    }

    /// The document `repository` has at `reference` and its digest.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<(Document, String), RegistryError> {
        let (bytes, digest) = self.manifest_bytes(repository, reference).await?;
        let document = parse_document(None, &bytes).map_err(|reason| {
            self.context(&format!("read the manifest {repository}:{reference}"))
                .protocol(reason)
        })?;
        Ok((document, digest))
    }

    /// The single-platform manifest at `reference` (a list resolved to `platform`'s entry)
    /// and its digest.
    pub async fn image_manifest(
        &self,
        repository: &str,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(ImageManifest, String), RegistryError> {
        let (document, digest) = self.manifest(repository, reference).await?;
        let list = match document {
            Document::Image(image) => return Ok((image, digest)),
            Document::List(list) => list,
        };
        let action = format!("read the manifest {repository}:{reference}");
        let entry = list.pick(platform).ok_or_else(|| {
            self.context(&action)
                .not_found(format!("the manifest list has no {platform} image"))
        })?;
        let entry = Reference::digest(&entry.digest)?;
        match self.manifest(repository, &entry).await? {
            (Document::Image(image), digest) => Ok((image, digest)),
            (Document::List(_), _) => Err(self
                .context(&action)
                .protocol("its manifest list points at another list")),
        }
    }

    /// The image manifest of `arch` at `reference`: the reference's own manifest when it
    /// names one image (whatever its architecture: the caller decides), else the list's
    /// entry for `arch` ([`crate::manifest::List::pick_arch`]). A list without `arch` is
    /// [`RegistryError::NoArch`], naming the image and the arch.
    pub async fn arch_manifest(
        &self,
        repository: &str,
        reference: &Reference,
        arch: &Arch,
    ) -> Result<ArchManifest, RegistryError> {
        let (document, digest) = self.manifest(repository, reference).await?;
        let list = match document {
            Document::Image(manifest) => {
                return Ok(ArchManifest {
                    manifest,
                    digest,
                    list_digest: None,
                });
            }
            Document::List(list) => list,
        };
        let Some(entry) = list.pick_arch(arch) else {
            let has = list.platforms();
            return Err(RegistryError::NoArch {
                image: format!("{}/{repository}{}", self.name(), at(reference)),
                arch: arch.koji.to_owned(),
                platform: Platform::of_arch(arch).to_string(),
                has: if has.is_empty() {
                    "none".to_owned()
                } else {
                    has.join(", ")
                },
            });
        };
        let entry = Reference::digest(&entry.digest)?;
        match self.manifest(repository, &entry).await? {
            (Document::Image(manifest), entry_digest) => Ok(ArchManifest {
                manifest,
                digest: entry_digest,
                list_digest: Some(digest),
            }),
            (Document::List(_), _) => Err(self
                .context(&format!("read the manifest {repository}:{reference}"))
                .protocol("its manifest list points at another list")),
        }
    }

    /// Pushes a manifest list (a Docker list for [`ManifestFormat::DockerV2`], an OCI index
    /// otherwise) naming one image manifest per arch, each already in `repository` by
    /// digest, under every one of `tags`; returns the list's digest. Each member's media
    /// type and size are read from the registry (so a member that is missing, or is itself
    /// a list, fails before anything is tagged). The members are read at once, as the tags
    /// are pushed: the assembly is the multi-arch build's last serial step (issue 12).
    pub async fn push_list(
        &self,
        repository: &str,
        members: &[(Arch, String)],
        tags: &[String],
        format: ManifestFormat,
    ) -> Result<String, RegistryError> {
        let entries = futures::future::try_join_all(
            members
                .iter()
                .map(|(arch, digest)| self.list_member(repository, *arch, digest)),
        )
        .await?;
        let list = arch_list(format, &entries);
        self.push_manifest(repository, &list, tags).await
    }

    /// The list entry of the image manifest `digest` of `repository`: its media type and
    /// size as the registry holds it.
    async fn list_member(
        &self,
        repository: &str,
        arch: Arch,
        digest: &str,
    ) -> Result<ListMember, RegistryError> {
        let reference = Reference::digest(digest)?;
        let (bytes, _) = self.manifest_bytes(repository, &reference).await?;
        let action = format!("read the manifest {repository}@{digest}");
        let media_type = match parse_document(None, &bytes) {
            Ok(Document::Image(image)) => image.format.manifest_type().to_owned(),
            Ok(Document::List(_)) => {
                return Err(self
                    .context(&action)
                    .protocol("it is a list, not the image of one arch"));
            }
            Err(reason) => return Err(self.context(&action).protocol(reason)),
        };
        Ok(ListMember {
            arch,
            media_type,
            digest: digest.to_owned(),
            size: bytes.len() as u64,
        })
    }

    /// The digest `repository` has at `reference`; `None` when it has none.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<Option<String>, RegistryError> {
        let image = self.reference(repository, reference)?;
        let action = format!("look up the manifest digest of {repository}:{reference}");
        let found = self
            .retried_call(&action, || async {
                self.oci()
                    .await
                    .fetch_manifest_digest(&image, &self.oci_auth())
                    .await
                    .map_err(|error| self.context(&action).oci(error))
            })
            .await;
        match found {
            Ok(digest) if is_digest(&digest) => Ok(Some(digest)),
            Ok(digest) => Err(self
                .context(&action)
                .protocol(format!("it gave the digest '{digest}'"))),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every tag of `repository`, page by page (none when the repository does not exist).
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        self.tags_in_pages(repository, TAG_PAGE).await
    }

    /// [`Registry::tags`], asking `page_size` tags at a time: each page starts after the
    /// last tag of the one before, until a page brings nothing new.
    async fn tags_in_pages(
        &self,
        repository: &str,
        page_size: usize,
    ) -> Result<Vec<String>, RegistryError> {
        let image = self.repository(repository)?;
        let action = format!("list the tags of {repository}");
        let mut tags: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let last = tags.last().cloned();
            let page = self
                .retried_call(&action, || async {
                    self.oci()
                        .await
                        .list_tags(&image, &self.oci_auth(), Some(page_size), last.as_deref())
                        .await
                        .map_err(|error| self.context(&action).oci(error))
                })
                .await;
            let page = match page {
                Ok(page) => page.tags,
                Err(error) if error.is_not_found() && tags.is_empty() => return Ok(tags),
                Err(error) => return Err(error),
            };
            // A registry that ignores `n` or `last` sends the same tags again: stop there.
            let before = tags.len();
            for tag in page {
                if seen.insert(tag.clone()) {
                    tags.push(tag);
                }
            }
            if tags.len() == before {
                return Ok(tags);
            }
        }
    }

    /// A blob as a stream, its digest checked as it ends (a mismatch ends it with an error).
    pub async fn blob_stream(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, RegistryError>>, RegistryError> {
        let image = self.repository(repository)?;
        Reference::digest(digest)?;
        let action = format!("read blob {digest} of {repository}");
        let stream = self
            .retried_call(&action, || async {
                self.oci()
                    .await
                    .pull_blob_stream(&image, digest)
                    .await
                    .map_err(|error| self.context(&action).oci(error))
            })
            .await?;
        let registry = self.clone();
        // oci-client's stream repeats its digest error when polled again: end at the first.
        Ok(stream
            .stream
            .scan(false, |failed, piece| {
                let next = (!*failed).then_some(piece);
                *failed = next.as_ref().is_some_and(Result::is_err);
                futures::future::ready(next)
            })
            .map_err(move |error| registry.context(&action).io(&error))
            .boxed())
    }

    /// A small blob (a config) in full; more than `limit` bytes is refused.
    pub async fn blob(
        &self,
        repository: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Bytes, RegistryError> {
        let mut stream = self.blob_stream(repository, digest).await?;
        let mut bytes = Vec::new();
        while let Some(piece) = stream.next().await {
            bytes.extend_from_slice(&piece?);
            if bytes.len() > limit {
                return Err(self
                    .context(&format!("read blob {digest} of {repository}"))
                    .protocol(format!("it is larger than {limit} bytes")));
            }
        }
        Ok(Bytes::from(bytes))
    }

    /// The image config (labels, rootfs, history) at `reference` for `platform`.
    pub async fn image_config(
        &self,
        repository: &str,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<serde_json::Value, RegistryError> {
        let (manifest, _) = self.image_manifest(repository, reference, platform).await?;
        let bytes = self
            .blob(repository, &manifest.config.digest, MANIFEST_LIMIT)
            .await?;
        serde_json::from_slice(&bytes).map_err(|error| {
            self.context(&format!("read the config of {repository}:{reference}"))
                .protocol(format!("it is not JSON: {error}"))
        })
    }

    /// Whether `repository` has the blob.
    pub async fn blob_exists(&self, repository: &str, digest: &str) -> Result<bool, RegistryError> {
        let image = self.repository(repository)?;
        Reference::digest(digest)?;
        let action = format!("look for blob {digest} in {repository}");
        self.retried_call(&action, || async {
            self.oci()
                .await
                .blob_exists(&image, digest)
                .await
                .map_err(|error| self.context(&action).oci(error))
        })
        .await
    }

    /// Uploads `bytes` in one request unless the repository has them already.
    pub async fn push_blob(&self, repository: &str, bytes: Bytes) -> Result<Blob, RegistryError> {
        let image = self.repository(repository)?;
        let blob = Blob {
            digest: sha256_digest(&bytes),
            size: bytes.len() as u64,
        };
        if self.blob_exists(repository, &blob.digest).await? {
            return Ok(blob);
        }
        let action = format!("upload blob {} to {repository}", blob.digest);
        self.retried_call(&action, || async {
            self.oci()
                .await
                .push_blob(&image, bytes.clone(), &blob.digest)
                .await
                .map_err(|error| self.context(&action).oci(error))
        })
        .await?;
        Ok(blob)
    }

    /// PUTs `manifest` (an image manifest or a list) under each of `tags`, all at once (each
    /// PUT is a round trip that waits on none of the others); returns its digest, the same
    /// under every tag.
    pub async fn push_manifest(
        &self,
        repository: &str,
        manifest: &RawManifest,
        tags: &[String],
    ) -> Result<String, RegistryError> {
        if tags.is_empty() {
            return Err(ReferenceError::Tag(String::new()).into());
        }
        if let Some(bad) = tags.iter().find(|tag| !valid_tag(tag)) {
            return Err(ReferenceError::Tag(bad.clone()).into());
        }
        futures::future::try_join_all(
            tags.iter()
                .map(|tag| self.put_manifest(repository, manifest, Reference::Tag(tag.clone()))),
        )
        .await?;
        Ok(manifest.digest())
    }

    /// PUTs `manifest` under its own digest (untagged: what a list refers to, or an image
    /// kept only by digest); returns the digest.
    pub async fn push_manifest_by_digest(
        &self,
        repository: &str,
        manifest: &RawManifest,
    ) -> Result<String, RegistryError> {
        let digest = manifest.digest();
        self.put_manifest(repository, manifest, Reference::Digest(digest.clone()))
            .await?;
        Ok(digest)
    }

    async fn put_manifest(
        &self,
        repository: &str,
        manifest: &RawManifest,
        at: Reference,
    ) -> Result<(), RegistryError> {
        let image = self.reference(repository, &at)?;
        let action = format!("put the manifest {repository}:{at}");
        let content_type = HeaderValue::from_str(&manifest.media_type).map_err(|_| {
            self.context(&action)
                .protocol(format!("'{}' is not a media type", manifest.media_type))
        })?;
        let location = self
            .retried_call(&action, || async {
                self.oci()
                    .await
                    .push_manifest_raw(&image, manifest.bytes.clone(), content_type.clone())
                    .await
                    .map_err(|error| self.context(&action).oci(error))
            })
            .await?;
        // The registry names what it stored by digest: it must be what we sent.
        let stored = location.rsplit('/').next().unwrap_or_default();
        let sent = manifest.digest();
        if is_digest(stored) && stored != sent {
            return Err(self
                .context(&action)
                .protocol(format!("it stored digest {stored}, we sent {sent}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image of one layer whose config says `architecture`, pushed by digest into
    /// `repository`; its manifest digest.
    async fn push_arch_image(registry: &Registry, repository: &str, architecture: &str) -> String {
        let config = registry
            .push_blob(
                repository,
                Bytes::from(format!(
                    r#"{{"architecture":"{architecture}","os":"linux"}}"#
                )),
            )
            .await
            .unwrap();
        let layer = registry
            .push_blob(repository, Bytes::from(architecture.to_owned()))
            .await
            .unwrap();
        let format = crate::ManifestFormat::DockerV2;
        let manifest = crate::manifest::image_manifest(
            format,
            &crate::Descriptor {
                media_type: format.config_type().into(),
                size: config.size,
                digest: config.digest,
            },
            &[],
            &crate::Descriptor {
                media_type: format.layer_type(false).into(),
                size: layer.size,
                digest: layer.digest,
            },
        );
        registry
            .push_manifest_by_digest(repository, &manifest)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_list_is_pushed_in_one_call_and_resolved_per_arch_on_the_real_registry() {
        osbs_testkit::require_registry();
        let registry =
            Registry::new(osbs_testkit::REGISTRY, &Settings::new("osbs-registry-test")).unwrap();
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let repository = format!(
            "osbs-registry-test/arch-list-{}-{unique}",
            std::process::id()
        );
        let x86 = osbs_proto::arch::lookup("x86_64").unwrap();
        let arm64 = osbs_proto::arch::lookup("aarch64").unwrap();
        let amd64_digest = push_arch_image(&registry, &repository, "amd64").await;
        let arm64_digest = push_arch_image(&registry, &repository, "arm64").await;
        let tags = vec!["1.0-1".to_owned(), "latest".to_owned()];
        for format in [crate::ManifestFormat::DockerV2, crate::ManifestFormat::Oci] {
            let list_digest = registry
                .push_list(
                    &repository,
                    &[(x86, amd64_digest.clone()), (arm64, arm64_digest.clone())],
                    &tags,
                    format,
                )
                .await
                .unwrap();
            for tag in &tags {
                let at = Reference::tag(tag).unwrap();
                assert_eq!(
                    registry.manifest_digest(&repository, &at).await.unwrap(),
                    Some(list_digest.clone()),
                    "{tag} names the list ({format:?})"
                );
                let found = registry
                    .arch_manifest(&repository, &at, &arm64)
                    .await
                    .unwrap();
                assert_eq!(found.digest, arm64_digest);
                assert_eq!(found.list_digest.as_deref(), Some(list_digest.as_str()));
                let found = registry
                    .arch_manifest(&repository, &at, &x86)
                    .await
                    .unwrap();
                assert_eq!(found.digest, amd64_digest);
            }
        }
        // A single image is its own manifest, whatever the arch asked.
        let single = Reference::digest(&amd64_digest).unwrap();
        let found = registry
            .arch_manifest(&repository, &single, &arm64)
            .await
            .unwrap();
        assert_eq!(
            (found.digest, found.list_digest),
            (amd64_digest.clone(), None)
        );
        // A list without the arch names the image and the arch.
        registry
            .push_list(
                &repository,
                &[(x86, amd64_digest.clone())],
                &["amd64-only".to_owned()],
                crate::ManifestFormat::DockerV2,
            )
            .await
            .unwrap();
        let error = registry
            .arch_manifest(&repository, &Reference::tag("amd64-only").unwrap(), &arm64)
            .await
            .unwrap_err();
        assert!(matches!(error, RegistryError::NoArch { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "127.0.0.1:5000/{repository}:amd64-only is a manifest list with no aarch64 image (linux/arm64/v8); it has linux/amd64"
            )),
            "{text}"
        );
        // A member that is a list, or is missing, fails before anything is tagged.
        let list_digest = registry
            .manifest_digest(&repository, &Reference::tag("amd64-only").unwrap())
            .await
            .unwrap()
            .unwrap();
        let error = registry
            .push_list(
                &repository,
                &[(x86, list_digest)],
                &["never".to_owned()],
                crate::ManifestFormat::DockerV2,
            )
            .await
            .unwrap_err();
        assert!(error.to_string().contains("it is a list"), "{error}");
        assert_eq!(
            registry
                .manifest_digest(&repository, &Reference::tag("never").unwrap())
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn tags_come_page_by_page_from_the_real_registry() {
        osbs_testkit::require_registry();
        let registry =
            Registry::new(osbs_testkit::REGISTRY, &Settings::new("osbs-registry-test")).unwrap();
        let repository = format!("osbs-registry-test/pages-{}", std::process::id());
        let config = registry
            .push_blob(&repository, Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let manifest = crate::manifest::image_manifest(
            crate::ManifestFormat::Oci,
            &crate::Descriptor {
                media_type: crate::ManifestFormat::Oci.config_type().into(),
                size: config.size,
                digest: config.digest,
            },
            &[],
            &crate::Descriptor {
                media_type: crate::ManifestFormat::Oci.layer_type(false).into(),
                size: 2,
                digest: sha256_digest(b"{}"),
            },
        );
        let written: Vec<String> = (1..=5).map(|n| format!("t{n}")).collect();
        registry
            .push_manifest(&repository, &manifest, &written)
            .await
            .unwrap();
        let mut read = registry.tags_in_pages(&repository, 2).await.unwrap();
        read.sort();
        assert_eq!(read, written);
        assert_eq!(registry.tags(&repository).await.unwrap().len(), 5);
        assert_eq!(
            registry
                .tags("osbs-registry-test/never-pushed")
                .await
                .unwrap(),
            Vec::<String>::new()
        );
    }
}
