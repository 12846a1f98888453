//! `osbs watch-logs ID`: a build's log from its first line, followed live until the build
//! ends; after the end, what is kept (the stream, or the complete file when it was trimmed).
//! A multi-arch build's own log and every arch job's are followed together, an arch's lines
//! shown as `<arch>: <line>`; `--arch A` follows A's alone.

use crate::context::{Context, build_outcome, print_stdout};
use crate::error::{CliError, Result};
use crate::logs::{self, LogSource};
use osbs_common::Store;
use osbs_common::store::BuildRecord;
use serde_json::json;

#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Build id (see `osbs list`)
    pub id: String,
    /// Follow only this architecture's log of a multi-arch build (Koji's name: x86_64,
    /// aarch64...)
    #[arg(long)]
    pub arch: Option<String>,
}

/// The line printer of a verb: plain lines, or JSON lines `{"line": ...}` with `--json`.
pub fn line_printer(json: bool) -> impl FnMut(&str) {
    move |line: &str| {
        let text = if json {
            format!("{}\n", json!({ "line": line }))
        } else {
            format!("{line}\n")
        };
        // A closed pipe stops nothing here: the build's end decides the exit code.
        let _ = print_stdout(&text);
    }
}

/// The line printer of several logs: an arch's lines as `<arch>: <line>`, or with `--json`
/// `{"line": ..., "arch": ...}`.
pub fn arch_line_printer(json: bool) -> impl FnMut(Option<&str>, &str) {
    move |arch: Option<&str>, line: &str| {
        let text = match (json, arch) {
            (true, Some(arch)) => format!("{}\n", json!({ "line": line, "arch": arch })),
            (true, None) => format!("{}\n", json!({ "line": line })),
            (false, arch) => format!("{}\n", logs::prefixed(arch, line)),
        };
        let _ = print_stdout(&text);
    }
}

/// Prints the whole log of build `id`: followed live when it runs, the kept one when it is
/// over; a multi-arch build's logs together (its own and every arch's), or `arch`'s alone.
/// Returns the final record.
pub async fn print_logs(
    context: &Context,
    store: &Store,
    id: &str,
    arch: Option<&str>,
) -> Result<BuildRecord> {
    let record = store.require(id).await?;
    if let Some(reason) = arch.and_then(|only| {
        logs::unknown_arch(only, &logs::record_arches(&record), record.state.is_final())
    }) {
        return Err(CliError::Refused(format!("build {id}: {reason}")));
    }
    // A finished single-arch build's kept log may be the file; a running build may still
    // become multi-arch (the orchestrator lists the arches once it decided them), so it is
    // followed as several logs from the start.
    if arch.is_none() && logs::record_arches(&record).is_empty() && record.state.is_final() {
        return print_log(context, store, id).await;
    }
    let lost = logs::lost_lines(store, id).await?;
    if arch.is_none() && lost > 0 {
        eprintln!(
            "note: the live log kept only its last lines ({lost} dropped); the complete log is {} once the build ends",
            logs::log_file_path(&record, &context.config.storage.artifacts_dir).display()
        );
    }
    let progress = context.progress();
    let mut sink = arch_line_printer(context.json);
    let followed = logs::follow_many(
        store,
        id,
        arch,
        context.config.cli.build_timeout(),
        &progress,
        &mut sink,
    )
    .await?;
    Ok(followed.record)
}

/// Prints the whole log of build `id`: followed live when it runs, the kept one when it is
/// over. Returns the final record.
async fn print_log(context: &Context, store: &Store, id: &str) -> Result<BuildRecord> {
    let artifacts = &context.config.storage.artifacts_dir;
    let record = store.require(id).await?;
    let mut sink = line_printer(context.json);
    if record.state.is_final() {
        if let LogSource::TrimmedStream { lost } =
            logs::print_finished(store, &record, artifacts, &mut sink).await?
        {
            eprintln!(
                "note: the live log lost its first {lost} lines and the complete log {} is not readable here (run where [storage] artifacts_dir is mounted)",
                logs::log_file_path(&record, artifacts).display()
            );
        }
        return Ok(record);
    }
    let lost = logs::lost_lines(store, id).await?;
    if lost > 0 {
        eprintln!(
            "note: the live log kept only its last lines ({lost} dropped); the complete log is {} once the build ends",
            logs::log_file_path(&record, artifacts).display()
        );
    }
    let progress = context.progress();
    let followed = logs::follow(
        store,
        id,
        context.config.cli.build_timeout(),
        &progress,
        &mut sink,
    )
    .await?;
    Ok(followed.record)
}

/// What a finished build produced, for people: state, NVR, pullspecs, log file.
pub fn summary(record: &BuildRecord, log_file: &std::path::Path) -> String {
    let mut text = format!("build {} {}", record.id, record.state);
    if !record.nvr().is_empty() {
        text.push_str(&format!(": {}", record.nvr()));
    }
    text.push('\n');
    for pullspec in record.pullspecs() {
        text.push_str(&format!("  pullspec  {pullspec}\n"));
    }
    text.push_str(&format!("  log       {}\n", log_file.display()));
    text
}

pub async fn run(context: &Context, args: &WatchArgs) -> Result<()> {
    let store = context.store().await?;
    let record = print_logs(context, &store, &args.id, args.arch.as_deref()).await?;
    let log_file = logs::log_file_path(&record, &context.config.storage.artifacts_dir);
    if context.json {
        let mut end = crate::render::record_json(&record, None);
        end["log_file"] = json!(log_file);
        print_stdout(&format!("{}\n", json!({ "end": end })))?;
    } else {
        print_stdout(&summary(&record, &log_file))?;
    }
    build_outcome(&record)
}
