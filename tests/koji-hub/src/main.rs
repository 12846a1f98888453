//! `koji-hub-double`: serves the Koji hub test double for the quickstart and other crates'
//! tests, keeping its state in `--state-dir` across restarts.

use anyhow::Context;
use clap::Parser;
use osbs_koji_hub::config::{HubConfig, TargetSpec, TlsFiles, UserSpec};
use std::path::PathBuf;

/// A Koji hub test double (XML-RPC on POST, as a real hub).
#[derive(Debug, Parser)]
#[command(name = "koji-hub-double", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: std::net::SocketAddr,
    /// Where the hub keeps its state and uploaded files (created when missing).
    #[arg(long)]
    state_dir: PathBuf,
    /// A user: `NAME:PASSWORD` (password login), `NAME` (certificate only), optionally
    /// followed by `:PERM,PERM`. Default: `osbs:osbs`.
    #[arg(long = "user")]
    users: Vec<String>,
    /// A content generator and its users: `CG:USER,USER`. Default: `osbs:osbs`.
    #[arg(long = "cg")]
    content_generators: Vec<String>,
    /// A build target: `NAME` (builds in NAME with -candidate → -build, lands in NAME) or
    /// `NAME:BUILD_TAG:DEST_TAG`.
    #[arg(long = "target")]
    targets: Vec<String>,
    /// A package on a tag's package list: `TAG:PACKAGE`.
    #[arg(long = "package")]
    packages: Vec<String>,
    /// TLS: the hub's certificate, key, and the CA of client certificates (all PEM).
    #[arg(long, requires_all = ["tls_key", "client_ca"])]
    tls_cert: Option<PathBuf>,
    #[arg(long)]
    tls_key: Option<PathBuf>,
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// Offer only the legacy `uploadFile` (no fast upload, no checkUpload).
    #[arg(long)]
    legacy_upload: bool,
    /// A file holding the hub's `tag` policy rules, in `hub.conf`'s syntax. Default: none
    /// (as a stock hub: every tagging passes the policy).
    #[arg(long)]
    tag_policy: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = config(&args)?;
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("cannot create {}", args.state_dir.display()))?;
    let mut hub = osbs_koji_hub::KojiHub::start(config)
        .await
        .context("cannot start the Koji hub double")?;
    println!("{}", hub.url);
    wait_for_signal().await;
    hub.stop().await;
    Ok(())
}

/// Waits for SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn config(args: &Args) -> anyhow::Result<HubConfig> {
    let mut config = HubConfig {
        listen: args.listen,
        state_dir: Some(args.state_dir.clone()),
        fast_upload: !args.legacy_upload,
        ..HubConfig::default()
    };
    if !args.users.is_empty() {
        config.users = args
            .users
            .iter()
            .map(|spec| parse_user(spec))
            .collect::<anyhow::Result<_>>()?;
    }
    if !args.content_generators.is_empty() {
        config.content_generators = args
            .content_generators
            .iter()
            .map(|spec| {
                let (cg, users) = spec
                    .split_once(':')
                    .with_context(|| format!("--cg {spec:?}: expected CG:USER[,USER]"))?;
                Ok((cg.to_owned(), users.split(',').map(str::to_owned).collect()))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    for spec in &args.targets {
        let parts: Vec<&str> = spec.split(':').collect();
        config.targets.push(match parts.as_slice() {
            [name] => TargetSpec::named(name, &[]),
            [name, build_tag, dest_tag] => TargetSpec {
                name: (*name).to_owned(),
                build_tag: (*build_tag).to_owned(),
                dest_tag: (*dest_tag).to_owned(),
                packages: Vec::new(),
            },
            _ => anyhow::bail!("--target {spec:?}: expected NAME or NAME:BUILD_TAG:DEST_TAG"),
        });
    }
    for spec in &args.packages {
        let (tag, package) = spec
            .split_once(':')
            .with_context(|| format!("--package {spec:?}: expected TAG:PACKAGE"))?;
        match config.tags.iter_mut().find(|existing| existing.name == tag) {
            Some(existing) => existing.packages.push(package.to_owned()),
            None => config
                .tags
                .push(osbs_koji_hub::TagSpec::new(tag, &[package])),
        }
    }
    if let Some(path) = &args.tag_policy {
        config.tag_policy = Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--tag-policy: cannot read {}", path.display()))?,
        );
    }
    if let (Some(cert), Some(key), Some(client_ca)) =
        (&args.tls_cert, &args.tls_key, &args.client_ca)
    {
        config.tls = Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: client_ca.clone(),
        });
    }
    Ok(config)
}

fn parse_user(spec: &str) -> anyhow::Result<UserSpec> {
    let mut parts = spec.splitn(3, ':');
    let name = parts
        .next()
        .filter(|name| !name.is_empty())
        .with_context(|| format!("--user {spec:?}: expected NAME[:PASSWORD[:PERM,PERM]]"))?;
    let password = parts.next().filter(|password| !password.is_empty());
    let perms: Vec<&str> = parts
        .next()
        .map(|perms| perms.split(',').filter(|perm| !perm.is_empty()).collect())
        .unwrap_or_default();
    Ok(UserSpec::new(name, password).with_perms(&perms))
}
