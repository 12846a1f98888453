//! # osbs-squash
//!
//! Squashes the layers of an image above its base into one layer, streaming, in bounded
//! memory, never unpacking anything to the host filesystem.
//!
//! ## Layout
//!
//! - [`tarfmt`]: tar header reading (capped, parsed like the engine's Go reader) and writing.
//! - `path`: path normalisation and whiteout recognition (pure).
//! - `index`: the first pass over a layer: names, kinds, hard-link targets, dir metadata.
//! - `plan`: the merge decision, a pure function of the indexes.
//! - `files`: which paths exist in the merged filesystem, and as what ([`Files`],
//!   [`ImageFiles`]), from the indexes: symlinks followed inside the image root.
//! - [`merge`]: the public core ([`LayerStack`], [`squash_tars`]): index, plan, write.
//! - `archive`: reads a `docker save` stream, spooling layer tars (not files) to one temp file.
//! - `layerstore`: reads the layers in place from the engine's overlay2 layer store (tar-split
//!   metadata + the layers' `diff` directories), the same bytes without waiting for the export.
//! - `saved`: the image indexed for the data pass, its layers in the spool or in the store
//!   (what `archive` and `layerstore` produce; neither imports the other).
//! - `add`: what the squash adds besides the merge ([`Additions`]: labels into the config,
//!   files into the new layer, standing in for builder steps).
//! - `config`: the squashed image's config (pure).
//! - [`engine`]: the Docker Engine adapter and [`squash_in_engine`].
//! - `compress`: the squashed layer's encoding in the registry ([`LayerCompression`]).
//! - `push`: [`squash_to_registry`], the squash that pushes instead of loading. The
//!   registry itself (documents, names, auth, uploads) is osbs-registry's.
//!
//! Invariants: no function here creates a file from layer contents; an output entry's path
//! is always normalized (no `..`, no leading `/`) and every one of its ancestors is a
//! directory in the squashed filesystem, so nothing a layer holds can make a consumer write
//! outside its root.

mod add;
mod archive;
mod compress;
mod config;
pub mod engine;
mod files;
mod index;
mod layerstore;
pub mod merge;
mod path;
mod plan;
mod push;
mod saved;
pub mod tarfmt;

pub use crate::add::{AddedFile, Additions};
pub use crate::compress::LayerCompression;
pub use crate::engine::{LayerRead, ReadFrom, Squashed, squash_in_engine};
pub use crate::files::{FileKind, Files, ImageFiles, MAX_SYMLINK_HOPS};
pub use crate::push::{
    BaseBlobs, Pushed, PushedLayer, RegistryTarget, squash_to_registry, squash_to_registry_when,
};
pub use index::IndexError;
pub use merge::{LayerStack, MergePlan, MergedLayer, decompress, squash_tars, squash_tars_adding};
pub use osbs_registry::reference::parse_push_target;
pub use osbs_registry::{Credentials, RegistryError, Secret};
pub use path::PathError;
pub use plan::PlanError;
pub use tarfmt::{Sequential, Source, TarError};

/// Why one layer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Tar(#[from] TarError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("it read differently the second time; was it changed during the squash?")]
    Changed,
}

/// Everything that can go wrong in a squash.
#[derive(Debug, thiserror::Error)]
pub enum SquashError {
    #[error("layer {layer}: {source}")]
    Layer { layer: String, source: LayerError },
    #[error("cannot squash: {0}")]
    Plan(#[from] PlanError),
    #[error("i/o failed while squashing: {0}")]
    Io(#[from] std::io::Error),
    #[error("{role} '{image}' is not in the Docker Engine; build or pull it first")]
    NotFound { role: &'static str, image: String },
    #[error(
        "'{base}' is not a base of '{image}': its layers are not the bottom layers of '{image}'; pass the image it was built FROM"
    )]
    NotAncestor { image: String, base: String },
    #[error("'{0}' is not a usable image tag; give NAME or NAME:TAG")]
    BadTag(String),
    #[error("the Docker Engine failed to {action}: {detail}")]
    Engine { action: String, detail: String },
    #[error("the image archive from the Docker Engine is unusable: {0}")]
    Archive(String),
    #[error("cannot write the squashed image config: {0}")]
    Config(String),
    #[error("{what} '{value}' cannot be used: {rule}")]
    Target {
        what: String,
        value: String,
        rule: String,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The check the push waited for said no: no manifest was pushed.
    #[error("the image was not published: the check it waited for refused it")]
    Withheld,
}

impl From<osbs_registry::UploadError<SquashError>> for SquashError {
    fn from(error: osbs_registry::UploadError<SquashError>) -> Self {
        match error {
            osbs_registry::UploadError::Registry(error) => SquashError::Registry(error),
            osbs_registry::UploadError::Producer(error) => error,
        }
    }
}
