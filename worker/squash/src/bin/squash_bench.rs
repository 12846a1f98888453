//! Squash benchmark (not a test): builds the two images of issue 5 locally (20 layers of
//! ~26 MB; 10 layers of 10,000 small files each) on a busybox base pushed to the local
//! registry, then in one run measures `docker save IMAGE > /dev/null`, our squash into the
//! engine, our squash pushed straight to the registry (layers read from the engine's layer
//! store or from its export; uncompressed and gzip:1 layer),
//! `docker push` of the unsquashed and of the engine-squashed image (the push the registry
//! path replaces), and docker-squash 1.2.2 (from a venv, `--docker-squash PATH`): medians
//! of warm runs, peak RSS from `/usr/bin/time`, load average before and after each image.
//! Before every push run the blobs of the previous run are unlinked from the target
//! repository (`DELETE /v2/<repo>/blobs/<digest>`), so each run really uploads (and
//! mounts the base). Also checks the directory-replaced-by-a-file case with both tools.
//!
//! `cargo run --release -p osbs-squash --bin squash-bench -- [--runs N] [--docker-squash PATH]
//! [--docker-squash-runs N]`

use anyhow::{Context, bail};
use clap::Parser;
use std::process::{Command, Stdio};

#[derive(Debug, Parser)]
struct Args {
    /// Timed runs per tool and image (after one warm-up run).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// docker-squash executable (pip install docker-squash==1.2.2 into a venv).
    #[arg(long, default_value = "/tmp/dsq/bin/docker-squash")]
    docker_squash: String,
    /// Timed docker-squash runs per image (1: one cold run, no warm-up; 0: skipped).
    #[arg(long, default_value_t = 3)]
    docker_squash_runs: usize,
    /// Only this image (big or many).
    #[arg(long)]
    only: Option<String>,
    /// Internal: squash once (the child whose time and RSS are measured).
    #[arg(long, num_args = 3, value_names = ["IMAGE", "BASE", "TAG"], hide = true)]
    once: Option<Vec<String>>,
    /// Internal: squash once to the registry.
    #[arg(long, num_args = 5, value_names = ["IMAGE", "BASE", "REPOSITORY", "COMPRESSION", "READ_FROM"], hide = true)]
    once_push: Option<Vec<String>>,
}

const BASE: &str = "osbs-squash-bench-base:1";
const REGISTRY: &str = "127.0.0.1:5000";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(once) = args.once {
        return squash_once(&once[0], &once[1], &once[2], "auto");
    }
    if let Some(once) = args.once_push {
        return push_once(&once[0], &once[1], &once[2], &once[3], &once[4]);
    }
    ensure_base()?;
    let big = ensure_image("osbs-squash-bench-big:1", &big_dockerfile())?;
    let many = ensure_image("osbs-squash-bench-many:1", &many_dockerfile())?;
    let exe = std::env::current_exe()?.display().to_string();
    println!("| image | tool | median s | runs s | x docker save | peak RSS MiB |");
    println!("|---|---|---|---|---|---|");
    for (short, image) in [("big", &big), ("many", &many)] {
        if args.only.as_deref().is_some_and(|only| only != short) {
            continue;
        }
        eprintln!("{short}: load average before: {}", load_average());
        // The image id the image was really built on (both tools are given it), pushed
        // so that it has a RepoDigest, as a base the worker pulled has.
        let base = base_of(image)?;
        let registry_base = format!("{REGISTRY}/osbs-squash-bench/base:{short}");
        run(&["docker", "tag", &base, &registry_base])?;
        run(&["docker", "push", &registry_base])?;
        let save = measure(
            args.runs,
            true,
            || shell(&format!("docker save {image} > /dev/null")),
            || Ok(()),
        )?;
        row(image, "docker save > /dev/null", &save, save.median)?;

        for (compression, read_from) in [("none", "auto"), ("none", "export"), ("gzip:1", "auto")] {
            let repository = format!("osbs-squash-bench/{short}-squashed");
            let pushed = measure(
                args.runs,
                true,
                || {
                    timed(&[
                        &exe,
                        "--once-push",
                        image,
                        &registry_base,
                        &repository,
                        compression,
                        read_from,
                    ])
                },
                || unlink(&repository, "bench"),
            )?;
            row(
                image,
                &format!("osbs squash --push (read {read_from}, layer {compression})"),
                &pushed,
                save.median,
            )?;
        }

        let tag = "osbs-squash-bench-out:ours";
        let ours = measure(
            args.runs,
            true,
            || timed(&[&exe, "--once", image, &base, tag]),
            || remove(tag),
        )?;
        row(image, "osbs squash (engine)", &ours, save.median)?;

        for (what, source) in [("unsquashed", image.as_str()), ("engine-squashed", tag)] {
            let repository = format!("osbs-squash-bench/{short}-{what}");
            let reference = format!("{REGISTRY}/{repository}:bench");
            run(&["docker", "tag", source, &reference])?;
            let pushed = measure(
                args.runs,
                true,
                || shell(&format!("docker push -q {reference} > /dev/null")),
                || unlink(&repository, "bench"),
            )?;
            row(
                image,
                &format!("docker push ({what} image)"),
                &pushed,
                save.median,
            )?;
        }
        remove(tag)?;

        if args.docker_squash_runs > 0 {
            let tag = "osbs-squash-bench-out:docker-squash";
            let theirs = measure(
                args.docker_squash_runs,
                args.docker_squash_runs > 1,
                || timed(&[&args.docker_squash, "-f", &base, "-t", tag, image]),
                || remove(tag),
            )?;
            row(image, "docker-squash 1.2.2", &theirs, save.median)?;
        }
        eprintln!("{short}: load average after: {}", load_average());
    }
    dir_to_file_check(&args.docker_squash)
}

/// The bottom of `image`'s parent chain (the legacy builder records one parent per step).
fn base_of(image: &str) -> anyhow::Result<String> {
    let mut id = run(&["docker", "image", "inspect", "--format", "{{.Id}}", image])?
        .trim()
        .to_owned();
    loop {
        let parent = run(&["docker", "image", "inspect", "--format", "{{.Parent}}", &id])?
            .trim()
            .to_owned();
        if parent.is_empty() {
            return Ok(id);
        }
        id = parent;
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Times and peak RSS (KiB) of the runs after a warm-up.
#[derive(Debug)]
struct Measured {
    seconds: Vec<f64>,
    rss_kib: Vec<u64>,
    median: f64,
}

fn measure(
    runs: usize,
    warm_up: bool,
    mut once: impl FnMut() -> anyhow::Result<(f64, u64)>,
    mut before: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Measured> {
    let (mut seconds, mut rss_kib) = (Vec::new(), Vec::new());
    let first = usize::from(!warm_up);
    for run in first..=runs {
        before()?;
        let (s, rss) = once()?;
        if run > 0 {
            seconds.push(s);
            rss_kib.push(rss);
        }
    }
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Measured {
        median: sorted[sorted.len() / 2],
        seconds,
        rss_kib,
    })
}

fn row(image: &str, tool: &str, m: &Measured, save: f64) -> anyhow::Result<()> {
    let runs: Vec<String> = m.seconds.iter().map(|s| format!("{s:.2}")).collect();
    let rss = m.rss_kib.iter().max().copied().unwrap_or(0) as f64 / 1024.0;
    let rss = if rss > 0.0 {
        format!("{rss:.1}")
    } else {
        "-".into()
    };
    println!(
        "| {image} | {tool} | {:.2} | {} | {:.2} | {rss} |",
        m.median,
        runs.join(" "),
        m.median / save
    );
    Ok(())
}

/// Runs a command under `/usr/bin/time`, returning wall seconds and peak RSS in KiB.
fn timed(command: &[&str]) -> anyhow::Result<(f64, u64)> {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "TIME %e %M"])
        .args(command)
        .stdout(Stdio::null())
        .output()
        .context("run /usr/bin/time (apt-get install -y time)")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("{command:?} failed: {stderr}");
    }
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("TIME "))
        .context("no time output")?;
    let mut fields = line.split_whitespace().skip(1);
    let seconds = fields.next().context("no seconds")?.parse()?;
    let rss = fields.next().context("no rss")?.parse()?;
    Ok((seconds, rss))
}

fn shell(script: &str) -> anyhow::Result<(f64, u64)> {
    let start = std::time::Instant::now();
    let status = Command::new("sh").args(["-c", script]).status()?;
    if !status.success() {
        bail!("{script} failed");
    }
    Ok((start.elapsed().as_secs_f64(), 0))
}

fn run(command: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(command[0]).args(&command[1..]).output()?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Removes a squashed image under every name it has, so the next run really loads its
/// layer (the engine skips applying a layer that any image still holds).
fn remove(tag: &str) -> anyhow::Result<()> {
    let id = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()?;
    if id.status.success() {
        let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
        let _ = Command::new("docker").args(["rmi", "-f", &id]).output()?;
    }
    Ok(())
}

/// Fails when `auto` did not read the layer store: the row would measure the wrong path.
fn check_read(read_from: &str, read: &osbs_squash::LayerRead) -> anyhow::Result<()> {
    if read_from == "auto" && !matches!(read, osbs_squash::LayerRead::LayerStore { .. }) {
        bail!("asked for the layer store, but read from {read}");
    }
    Ok(())
}

/// Runs `work` on a two-thread runtime, with a connection to the engine.
fn with_engine(
    work: impl AsyncFnOnce(bollard::Docker) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let docker = bollard::Docker::connect_with_defaults()?
            .negotiate_version()
            .await?;
        work(docker).await
    })
}

fn squash_once(image: &str, base: &str, tag: &str, read_from: &str) -> anyhow::Result<()> {
    with_engine(async |docker| {
        let from = read_from.parse().map_err(anyhow::Error::msg)?;
        let squashed = osbs_squash::squash_in_engine(&docker, image, base, tag, from).await?;
        check_read(read_from, &squashed.read)?;
        println!("{squashed:?}");
        anyhow::Ok(())
    })
}

fn push_once(
    image: &str,
    base: &str,
    repository: &str,
    compression: &str,
    read_from: &str,
) -> anyhow::Result<()> {
    with_engine(async |docker| {
        let mut target =
            osbs_squash::RegistryTarget::new(REGISTRY, repository, vec!["bench".into()]);
        target.layer_compression = compression.parse().map_err(anyhow::Error::msg)?;
        target.read_from = read_from.parse().map_err(anyhow::Error::msg)?;
        let pushed = osbs_squash::squash_to_registry(&docker, image, base, &target).await?;
        check_read(read_from, &pushed.squashed.read)?;
        println!("{pushed:?}");
        anyhow::Ok(())
    })
}

/// Unlinks `repository:tag`'s manifest and blobs from the repository, so the next push
/// really uploads them (the registry keeps the data; a repository without the link
/// answers 404 and takes a full upload or a mount).
fn unlink(repository: &str, tag: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let base = format!("http://{REGISTRY}/v2/{repository}");
        let response = client
            .get(format!("{base}/manifests/{tag}"))
            .header(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
            )
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        let digest = response
            .headers()
            .get("docker-content-digest")
            .context("no manifest digest")?
            .to_str()?
            .to_owned();
        let manifest: serde_json::Value = response.json().await?;
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        for layer in layers {
            let blob = layer["digest"].as_str().context("a layer without digest")?;
            client.delete(format!("{base}/blobs/{blob}")).send().await?;
        }
        client.delete(format!("{base}/manifests/{digest}")).send().await?;
        anyhow::Ok(())
    })
}

/// A busybox base imported from the host's busybox-static (kept when it exists: every
/// import has a new id, and the benchmark images are built on the one they found).
fn ensure_base() -> anyhow::Result<()> {
    if run(&["docker", "image", "inspect", BASE]).is_ok() {
        return Ok(());
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for dir in ["bin", "etc", "tmp", "root"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        builder.append_data(&mut header, dir, std::io::empty())?;
    }
    builder
        .append_path_with_name("/bin/busybox", "bin/busybox")
        .context("/bin/busybox (apt-get install -y busybox-static)")?;
    for applet in [
        "sh", "mkdir", "rm", "head", "base64", "dd", "echo", "cat", "ln", "chmod", "cd", "ls",
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        builder.append_link(&mut header, format!("bin/{applet}"), "busybox")?;
    }
    let rootfs = builder.into_inner()?;
    let mut child = Command::new("docker")
        .args(["import", "--change", "CMD [\"/bin/sh\"]", "-", BASE])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    std::io::Write::write_all(&mut child.stdin.take().context("stdin")?, &rootfs)?;
    if !child.wait()?.success() {
        bail!("docker import of the busybox base failed");
    }
    Ok(())
}

fn big_dockerfile() -> String {
    let mut dockerfile = format!("FROM {BASE}\n");
    for layer in 1..=20 {
        dockerfile.push_str(&format!(
            "RUN mkdir -p /data && dd if=/dev/urandom of=/data/r{layer} bs=1M count=13 2>/dev/null \
             && head -c 10000000 /dev/urandom | base64 > /data/t{layer}\n"
        ));
    }
    dockerfile
}

fn many_dockerfile() -> String {
    let mut dockerfile = format!("FROM {BASE}\n");
    for layer in 1..=10 {
        dockerfile.push_str(&format!(
            "RUN mkdir -p /m/{layer} && cd /m/{layer} && i=0; while [ $i -lt 10000 ]; do echo \"file $i of layer {layer}\" > f$i; i=$((i+1)); done\n"
        ));
    }
    dockerfile
}

/// Builds `tag` from `dockerfile` unless an image built from this very Dockerfile exists.
fn ensure_image(tag: &str, dockerfile: &str) -> anyhow::Result<String> {
    let digest = format!("{:x}", md5_like(dockerfile));
    let label = run(&[
        "docker",
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"bench\"}}",
        tag,
    ])
    .unwrap_or_default();
    if label.trim() == digest {
        return Ok(tag.to_owned());
    }
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("{dockerfile}LABEL bench={digest}\n"),
    )?;
    eprintln!("building {tag}...");
    let status = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("docker build of {tag} failed");
    }
    Ok(tag.to_owned())
}

/// A stable fingerprint of the Dockerfile (so a changed benchmark rebuilds its image).
fn md5_like(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3)
    })
}

/// The directory-replaced-by-a-file case: does each tool's image load and match?
fn dir_to_file_check(docker_squash: &str) -> anyhow::Result<()> {
    let tag = ensure_image(
        "osbs-squash-bench-dirfile:1",
        &format!(
            "FROM {BASE}\nRUN mkdir -p /p/sub && echo x > /p/sub/x && echo y > /p/y\nRUN rm -rf /p && echo file > /p\n"
        ),
    )?;
    println!("\ndirectory replaced by a file ({tag}):");
    let base = base_of(&tag)?;
    let out = tempfile::tempdir()?;
    let archive = out.path().join("docker-squash.tar");
    let squashed = Command::new(docker_squash)
        .args([
            "-f",
            &base,
            "-t",
            "osbs-squash-bench-dirfile:docker-squash",
            "--load-image",
            "false",
            "--output-path",
        ])
        .arg(&archive)
        .arg(&tag)
        .output()?;
    println!("- docker-squash 1.2.2 exit status: {}", squashed.status);
    let load = Command::new("docker")
        .args(["load", "-i"])
        .arg(&archive)
        .output()?;
    println!(
        "- docker load of its output: {} {}",
        load.status,
        String::from_utf8_lossy(&load.stderr).trim()
    );
    let exe = std::env::current_exe()?.display().to_string();
    run(&[
        &exe,
        "--once",
        &tag,
        &base,
        "osbs-squash-bench-dirfile:ours",
    ])?;
    let content = run(&[
        "docker",
        "run",
        "--rm",
        "osbs-squash-bench-dirfile:ours",
        "cat",
        "/p",
    ])?;
    println!("- osbs squash: loaded, /p in a container holds {content:?}");
    Ok(())
}
