//! `osbs watch-logs ID`: a build's log from its first line, followed live until the build
//! ends; after the end, what is kept (the stream, or the complete file when it was trimmed).

use crate::context::{Context, build_outcome, print_stdout};
use crate::error::Result;
use crate::logs::{self, LogSource};
use osbs_common::Store;
use osbs_common::store::BuildRecord;
use serde_json::json;

#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Build id (see `osbs list`)
    pub id: String,
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

/// Prints the whole log of build `id`: followed live when it runs, the kept one when it is
/// over. Returns the final record.
pub async fn print_log(context: &Context, store: &Store, id: &str) -> Result<BuildRecord> {
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
    let record = print_log(context, &store, &args.id).await?;
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
