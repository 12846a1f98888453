//! # osbs-registry
//!
//! The OCI distribution client of OSBS, and the only code in the workspace that speaks the
//! distribution API: the worker resolves base images and lists tags with it, the squash
//! pushes with it, the koji-bridge reads images back with it. One plain-http rule, one
//! authentication flow, one error type, one retry policy for all three.
//!
//! ## Layout
//!
//! Pure (no I/O, table-tested):
//!
//! - [`reference`]: pull specs (`REGISTRY/REPOSITORY:TAG`, `…@sha256:…`), repository and
//!   tag grammars, RepoDigests, push targets.
//! - [`digest`]: the `sha256:` grammar; hashing bytes as they pass.
//! - [`transport`]: the plain-http rule — loopback in every spelling (`127.0.0.0/8`,
//!   `localhost`, `[::1]`) or an `insecure_registries` entry; https otherwise.
//! - [`media`]: media types; the format a manifest is written in.
//! - [`manifest`]: reading manifests and lists (a platform's or an arch's entry), writing
//!   them (a list of per-arch images: [`manifest::arch_list`]).
//! - [`credentials`]: `username` + `password` or `password_env`, as configured.
//!
//! I/O:
//!
//! - [`client`]: [`Registries`] (a service's registries) and [`Registry`] (one host):
//!   every read and the plain pushes, through oci-client, retried and classified.
//! - [`upload`]: the hand-written part — the streamed upload that hashes while it sends,
//!   and the cross-repository mount.
//! - [`error`]: [`RegistryError`], whose variant says whose fault it is.
//!
//! ## What oci-client does, and what is hand-written, and why
//!
//! [oci-client](https://docs.rs/oci-client) (0.18, on the workspace's reqwest 0.13 and
//! rustls with aws-lc-rs) does the protocol: the authentication flow (Basic, or a Bearer
//! token from the registry's token service, anonymous or with the credentials; the
//! `WWW-Authenticate` challenge parsed case-insensitively; tokens cached per repository
//! and operation), manifest reads with their digest checked against the registry's and
//! the reference's, blob reads as streams whose digest is checked as they end, digests by
//! `HEAD`, tag pages, blob existence, a blob pushed in one request, manifests and lists
//! pushed by tag or by digest. Its data model serves for lists ([`manifest::List`]).
//!
//! Hand-written, because oci-client cannot do it:
//!
//! - the streamed upload ([`Registry::upload_stream`]): the squash produces a layer while it
//!   is sent, in one PATCH, hashing on the producer's thread or not at all when the digest is
//!   known; oci-client sends a stream as one PATCH request per 4 MiB piece and always hashes;
//! - the mount ([`Registry::mount_blob`]): oci-client takes the spec's "mount refused, upload
//!   opened instead" (202) for an error and leaves the upload open;
//! - references ([`reference`]): oci-spec's grammar has no `[::1]:5000` and sends a name
//!   without registry to Docker Hub;
//! - the plain-http rule ([`transport`]): oci-client only knows an exact list of hosts;
//! - retries and the classification of errors ([`error`]).
//!
//! The hand-written requests authenticate with what oci-client's flow gives (its token for
//! a push to the repository, or the Basic credentials), so there is one flow. Known limit
//! of that flow: a token covers one repository, so a registry with token authentication
//! refuses to mount from another repository (rust-oci-client issue 235) and the blob is
//! copied through the client instead ([`Arrival::Copied`]); registries with Basic
//! authentication (htpasswd) and anonymous ones mount.
//!
//! ## Invariants
//!
//! - No credential or token is in an error, a log line or a `Debug` output: passwords are
//!   [`Secret`]s, `Authorization` values are marked sensitive, and a request to a
//!   `Location` on another origin carries no credentials.
//! - Every registry, repository, tag and digest is checked against its grammar before it
//!   goes into a URL.
//! - Nothing here depends on osbs-common: the squash tool stays free of the services'
//!   runtime (AMQP, Redis, HTTP server).

pub mod client;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod media;
pub mod reference;
pub mod transport;
pub mod upload;

pub use client::{ArchManifest, Blob, DEFAULT_ATTEMPTS, Registries, Registry, Settings};
pub use credentials::{Credentials, CredentialsError};
pub use error::RegistryError;
pub use manifest::{
    Descriptor, Document, ImageManifest, Layer, ListMember, Platform, RawManifest, arch_list,
};
pub use media::ManifestFormat;
/// Architecture names (Koji's and OCI's), re-exported for the crates that reach the
/// registry through this one alone (the squash).
pub use osbs_proto::arch;
pub use osbs_proto::arch::Arch;
pub use osbs_proto::secret::Secret;
pub use reference::{ImageRef, Reference, ReferenceError, parse_pullspec};
pub use transport::{Scheme, is_loopback, scheme_for};
pub use upload::{Arrival, Producer, UploadError};
