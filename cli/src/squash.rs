//! `osbs squash IMAGE --from-layer BASE --tag TAG`: squashes the layers of IMAGE above BASE
//! into one, in the Docker Engine.

use anyhow::Context;

/// Squash every layer of IMAGE above the layers of BASE into one layer and tag the result.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to squash (reference or id), in the Docker Engine.
    image: String,
    /// The image IMAGE was built from (reference or id); its layers stay unchanged.
    #[arg(long = "from-layer", value_name = "BASE")]
    from_layer: String,
    /// Tag for the squashed image.
    #[arg(long, value_name = "TAG")]
    tag: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let docker = bollard::Docker::connect_with_defaults()
        .context("cannot reach the Docker Engine (set DOCKER_HOST or start dockerd)")?
        .negotiate_version()
        .await
        .context("cannot reach the Docker Engine (set DOCKER_HOST or start dockerd)")?;
    let squashed =
        osbs_squash::squash_in_engine(&docker, &args.image, &args.from_layer, &args.tag).await?;
    println!(
        "{} {} ({} layers: {} from the base + 1 of {} bytes, {})",
        args.tag,
        squashed.image_id,
        squashed.layer_count,
        squashed.base_layer_count,
        squashed.layer_size,
        squashed.layer_diff_id
    );
    Ok(())
}
