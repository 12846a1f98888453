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
//! - [`merge`]: the public core ([`LayerStack`], [`squash_tars`]): index, plan, write.
//!
//! Invariants: no function here creates a file from layer contents; an output entry's path
//! is always normalized (no `..`, no leading `/`) and every one of its ancestors is a
//! directory in the squashed filesystem, so nothing a layer holds can make a consumer write
//! outside its root.

mod index;
pub mod merge;
mod path;
mod plan;
pub mod tarfmt;

pub use index::IndexError;
pub use merge::{LayerStack, MergePlan, MergedLayer, decompress, squash_tars};
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
}
