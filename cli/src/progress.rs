//! The progress line shown on long waits — only when stdout is a terminal and the output is
//! for people: scripts and pipes see nothing of it.

use indicatif::{ProgressBar, ProgressStyle};
use osbs_common::store::BuildRecord;
use std::io::IsTerminal;
use std::time::Duration;

/// A spinner on stderr, or nothing.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A spinner when `json` is off and stdout is a terminal.
    pub fn for_output(json: bool) -> Progress {
        Progress::new(!json && std::io::stdout().is_terminal())
    }

    pub fn new(enabled: bool) -> Progress {
        let bar = enabled.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar }
    }

    pub fn message(&self, text: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.into());
        }
    }

    /// Says what a build waits for, from its record.
    pub fn waiting(&self, record: &BuildRecord) {
        self.message(waiting_text(record));
    }

    pub fn running(&self, record: &BuildRecord, lines: u64) {
        self.message(format!(
            "build {} {} ({lines} log lines)",
            record.id, record.state
        ));
    }

    /// Hides the spinner while `print` writes to the terminal.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The spinner's text for a build in `record`'s state.
pub fn waiting_text(record: &BuildRecord) -> String {
    use osbs_proto::v1::BuildState::*;
    let id = &record.id;
    match record.state {
        Queued => format!("build {id} queued: waiting for a free worker"),
        Running => format!("build {id} running"),
        Pushing => format!("build {id} pushing"),
        Complete => format!("build {id} complete: importing into Koji"),
        state => format!("build {id} {state}"),
    }
}
