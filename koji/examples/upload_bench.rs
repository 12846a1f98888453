//! Upload throughput benchmark (not a test): the Koji client's fast upload against one plain HTTP
//! POST of the same bytes to the same hub (the hub double, in this process), same run.
//!
//! `cargo run --release -p osbs-koji --example upload_bench -- [MiB] [rounds] [chunk MiB]`
//!
//! Method: a file of MiB pseudo-random bytes, in memory; the hub keeps its files on tmpfs
//! when there is one (the disk's writeback would add the same noise to both). Each round
//! uploads the file, into fresh names, three ways, in an order that rotates by round:
//! - plain: one POST of the whole body to the hub's upload endpoint (the hub still writes it
//!   and runs its adler32 over it);
//! - fast: `KojiClient::upload` of a source whose sha256 is known (as the logs, which the
//!   worker hashed): chunks POSTed at their offsets, each verified by adler32, the next one
//!   read while the current one is sent, `checkUpload` at the end;
//! - fast+sha256: the same, computing the sha256 the metadata needs while uploading (as the
//!   image archive, whose bytes are made on the fly).
//!
//! Reports the median throughput of each way, and the median over rounds of each fast way's
//! share of that round's plain POST (robust to the machine's load drifting); the legacy
//! `uploadFile` once, for scale.

use bytes::Bytes;
use osbs_koji::upload::{BytesSource, KnownSha256, UploadApi, UploadSource};
use osbs_koji::xmlrpc::{Answer, decode_answer, encode_call};
use osbs_koji::{AuthMethod, KojiAuth, KojiConfig};
use osbs_koji_hub::{HubConfig, KojiHub, UserSpec};
use sha2::Digest;
use std::time::Instant;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(256);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(9);
    let chunk_mib: Option<usize> = args.next().map(|a| a.parse()).transpose()?;

    let state = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm")?,
        false => tempfile::tempdir()?,
    };
    let hub = KojiHub::start(HubConfig {
        users: vec![UserSpec::new("osbs", Some("bench"))],
        state_dir: Some(state.path().to_owned()),
        ..HubConfig::default()
    })
    .await?;
    let work = state.path().join("work/bench");

    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let sha256 = hex::encode(sha2::Sha256::digest(&data));
    let data = Bytes::from(data);

    let config = KojiConfig {
        hub_url: hub.url.clone(),
        auth: KojiAuth {
            method: AuthMethod::Password,
            user: "osbs".into(),
            password: osbs_proto::secret::Secret::new("bench"),
            ..KojiAuth::default()
        },
        upload_chunk_bytes: chunk_mib
            .map_or(KojiConfig::default().upload_chunk_bytes, |mib| mib << 20),
        ..KojiConfig::default()
    };
    let client = osbs_koji::KojiClient::connect(&config).await?;

    // A session of its own for the plain POSTs.
    let http = reqwest::Client::new();
    let login = http
        .post(&hub.url)
        .body(encode_call(
            "login",
            &[serde_json::json!("osbs"), serde_json::json!("bench")],
            &[],
        ))
        .send()
        .await?
        .text()
        .await?;
    let Some(Answer::Value(session)) = decode_answer(&login) else {
        anyhow::bail!("login failed: {login}");
    };
    let mut callnum = 0;

    let mut results: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        for turn in 0..3 {
            let way = (round + turn) % 3;
            let name = format!("{way}-{round}.bin");
            let started = Instant::now();
            match way {
                0 => {
                    callnum += 1;
                    let answer = http
                        .post(&hub.url)
                        .query(&[
                            ("filename", name.as_str()),
                            ("filepath", "bench"),
                            ("fileverify", "adler32"),
                            ("offset", "0"),
                        ])
                        .header("Content-Type", "application/octet-stream")
                        .header("Koji-Session-Id", session["session-id"].to_string())
                        .header(
                            "Koji-Session-Key",
                            session["session-key"].as_str().unwrap_or_default(),
                        )
                        .header("Koji-Callnum", callnum.to_string())
                        .body(data.clone())
                        .send()
                        .await?
                        .text()
                        .await?;
                    anyhow::ensure!(answer.contains("hexdigest"), "plain POST failed: {answer}");
                }
                1 => {
                    let source = KnownSha256(BytesSource(data.clone()), sha256.clone());
                    client
                        .upload(UploadApi::Fast, "bench", &name, &source)
                        .await?;
                }
                _ => {
                    let source = BytesSource(data.clone());
                    let uploaded = client
                        .upload(UploadApi::Fast, "bench", &name, &source)
                        .await?;
                    anyhow::ensure!(uploaded.sha256 == sha256, "wrong sha256");
                }
            }
            results[way].push(mib as f64 / started.elapsed().as_secs_f64());
        }
        for entry in std::fs::read_dir(&work)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "bin") {
                std::fs::remove_file(path)?;
            }
        }
        println!(
            "round {round}: plain {:.0} MiB/s, fast {:.0} MiB/s, fast+sha256 {:.0} MiB/s",
            results[0][round], results[1][round], results[2][round]
        );
    }

    let legacy_mib = mib.min(64);
    let started = Instant::now();
    let legacy_source: &dyn UploadSource = &BytesSource(data.slice(..legacy_mib << 20));
    client
        .upload(UploadApi::Legacy, "bench", "legacy.bin", legacy_source)
        .await?;
    let legacy = legacy_mib as f64 / started.elapsed().as_secs_f64();

    // Each round ran the three ways back to back: its ratios are immune to the load of the
    // machine drifting between rounds.
    let ratio = |way: usize| {
        median(
            (0..rounds)
                .map(|round| results[way][round] / results[0][round])
                .collect(),
        )
    };
    let (fast_ratio, hashed_ratio) = (ratio(1), ratio(2));
    let [plain, fast, hashed] = results.map(median);
    println!(
        "file {mib} MiB, chunks of {} MiB, {rounds} rounds (medians), {} CPUs",
        config.upload_chunk_bytes >> 20,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("plain POST:          {plain:.0} MiB/s");
    println!(
        "fast upload:         {fast:.0} MiB/s (median round: {:.0}% of plain)",
        100.0 * fast_ratio
    );
    println!(
        "fast upload+sha256:  {hashed:.0} MiB/s (median round: {:.0}% of plain)",
        100.0 * hashed_ratio
    );
    println!("legacy uploadFile ({legacy_mib} MiB): {legacy:.0} MiB/s");
    client.logout().await;
    Ok(())
}
