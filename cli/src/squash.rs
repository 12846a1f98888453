//! `osbs squash IMAGE --from-layer BASE --tag TAG [--push REGISTRY/REPOSITORY]`: squashes
//! the layers of IMAGE above BASE into one, loaded into the Docker Engine or pushed
//! straight to a registry.

use anyhow::{Context, bail};
use osbs_common::config::Secret;
use osbs_squash::{Credentials, LayerCompression, ReadFrom, RegistryTarget};

/// Environment variable holding the registry password (never a flag: flags show in `ps`).
const PASSWORD_ENV: &str = "OSBS_REGISTRY_PASSWORD";

/// Squash every layer of IMAGE above the layers of BASE into one layer; tag the result in
/// the engine, or push it to a registry with --push.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to squash (reference or id), in the Docker Engine.
    image: String,
    /// The image IMAGE was built from (reference or id); its layers stay unchanged.
    #[arg(long = "from-layer", value_name = "BASE")]
    from_layer: String,
    /// Without --push: the engine tag NAME[:TAG] (once). With --push: a tag in the
    /// registry (repeat for several).
    #[arg(long, value_name = "TAG", required = true)]
    tag: Vec<String>,
    /// Push the squashed image straight to REGISTRY/REPOSITORY (base blobs mounted there)
    /// instead of loading it into the engine.
    #[arg(long, value_name = "REGISTRY/REPOSITORY")]
    push: Option<String>,
    /// Talk plain http to the registry (the default for 127.0.0.0/8 and localhost).
    #[arg(long, requires = "push")]
    insecure: bool,
    /// Repository of the registry holding the base's blobs (default: the base's RepoDigest).
    #[arg(long, value_name = "REPOSITORY", requires = "push")]
    base_repository: Option<String>,
    /// Encoding of the squashed layer in the registry: none, gzip or gzip:1..9.
    #[arg(
        long,
        default_value = "none",
        value_name = "ENCODING",
        requires = "push"
    )]
    layer_compression: LayerCompression,
    /// Where IMAGE's layers are read: auto (the engine's layer store when it is on this host
    /// and readable, else its export) or export (always `docker save`).
    #[arg(long, default_value = "auto", value_name = "auto|export")]
    read_from: ReadFrom,
    /// Registry user (its password comes from $OSBS_REGISTRY_PASSWORD).
    #[arg(long, env = "OSBS_REGISTRY_USER", value_name = "USER")]
    registry_user: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let docker = bollard::Docker::connect_with_defaults()
        .context("cannot reach the Docker Engine (set DOCKER_HOST or start dockerd)")?
        .negotiate_version()
        .await
        .context("cannot reach the Docker Engine (set DOCKER_HOST or start dockerd)")?;
    let Some(push) = &args.push else {
        let [tag] = args.tag.as_slice() else {
            bail!("give one --tag without --push (several tags need --push)");
        };
        let squashed = osbs_squash::squash_in_engine(
            &docker,
            &args.image,
            &args.from_layer,
            tag,
            args.read_from,
        )
        .await?;
        eprintln!("layers read from {}", squashed.read);
        println!(
            "{tag} {} ({} layers: {} from the base + 1 of {} bytes, {})",
            squashed.image_id,
            squashed.layer_count,
            squashed.base_layer_count,
            squashed.layer_size,
            squashed.layer_diff_id
        );
        return Ok(());
    };
    let Some((registry, repository)) = osbs_squash::parse_push_target(push) else {
        bail!(
            "--push '{push}' is not REGISTRY/REPOSITORY (e.g. 127.0.0.1:5000/ns/name, lowercase)"
        );
    };
    let mut target = RegistryTarget::new(registry, repository, args.tag.clone());
    target.insecure |= args.insecure;
    target.base_repository = args.base_repository.clone();
    target.layer_compression = args.layer_compression;
    target.read_from = args.read_from;
    if let Some(user) = &args.registry_user {
        let password = std::env::var(PASSWORD_ENV)
            .with_context(|| format!("--registry-user needs the password in ${PASSWORD_ENV}"))?;
        target.auth = Some(Credentials::new(user, Secret::new(password)));
    }
    let pushed =
        osbs_squash::squash_to_registry(&docker, &args.image, &args.from_layer, &target).await?;
    eprintln!("layers read from {}", pushed.squashed.read);
    for tag in &target.tags {
        println!("{registry}/{repository}:{tag}");
    }
    println!(
        "{registry}/{repository}@{} ({}; image {}, {} layers: {} from the base + 1 of {} bytes)",
        pushed.manifest_digest,
        pushed.manifest_media_type,
        pushed.config_digest,
        pushed.squashed.layer_count,
        pushed.squashed.base_layer_count,
        pushed.squashed.layer_size
    );
    Ok(())
}
