//! `osbs cancel`: a queued build becomes `canceled` at once; a running one gets the cancel
//! mark its worker polls; a finished one cannot be canceled.

use crate::error::{CliError, Result};
use crate::progress::Progress;
use osbs_common::state::{self, Changed, StateChange};
use osbs_common::store::{BuildRecord, field};
use osbs_common::{Bus, Store, StoreError};
use osbs_proto::v1::BuildState;
use std::time::Duration;

/// What a cancel does to a build in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelPlan {
    /// Not started: `queued → canceled` now; the worker that gets its job skips it.
    CancelNow,
    /// Running: set the mark the worker polls.
    Request,
    /// Over: nothing to cancel.
    Refuse,
}

pub fn plan_cancel(state: BuildState) -> CancelPlan {
    match state {
        BuildState::Queued => CancelPlan::CancelNow,
        state if state.is_final() => CancelPlan::Refuse,
        _ => CancelPlan::Request,
    }
}

/// How a cancel ended.
#[derive(Debug)]
pub enum Canceled {
    /// The build is `canceled` (at once, or after its worker stopped it).
    Done(BuildRecord),
    /// The mark is set; the worker stops the build within seconds (`--nowait`).
    Requested(BuildRecord),
}

/// Cancels build `id` for `user`; with `wait`, waits that long for a running build to stop.
pub async fn cancel(
    store: &Store,
    bus: &Bus,
    id: &str,
    user: &str,
    wait: Option<Duration>,
    progress: &Progress,
) -> Result<Canceled> {
    let record = store.require(id).await?;
    let reason = format!("canceled by {user}");
    match plan_cancel(record.state) {
        CancelPlan::Refuse => return Err(already_over(&record)),
        CancelPlan::CancelNow => {
            let change = StateChange::new(id, BuildState::Canceled, &reason, user)
                .only_from(&[BuildState::Queued])
                .with_fields(vec![(field::CANCEL_REQUESTED, "1".into())]);
            match state::change(store, bus, change).await? {
                Changed::Done(_) => {
                    // Whoever follows the (empty) log stops now.
                    store.end_log(id, BuildState::Canceled).await?;
                    return Ok(Canceled::Done(store.require(id).await?));
                }
                // A worker took it meanwhile: cancel it as a running build.
                Changed::Refused(_) => {}
                Changed::Missing => return Err(StoreError::NotFound(id.into()).into()),
            }
        }
        CancelPlan::Request => {}
    }
    store.request_cancel(id).await?;
    let Some(wait) = wait else {
        return Ok(Canceled::Requested(store.require(id).await?));
    };
    progress.message(format!(
        "build {id}: cancel requested, waiting for its worker to stop it"
    ));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let record = store.require(id).await?;
        if record.state.is_final() {
            progress.finish();
            return if record.state == BuildState::Canceled {
                Ok(Canceled::Done(record))
            } else {
                Err(already_over(&record))
            };
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CliError::Timeout(format!(
                "build {id} is still {} {}s after the cancel request: is its worker ({}) alive? Check `osbs status {id}`",
                record.state,
                wait.as_secs(),
                record.field(field::WORKER)
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn already_over(record: &BuildRecord) -> CliError {
    CliError::Refused(format!(
        "build {} is already {}; there is nothing to cancel",
        record.id, record.state
    ))
}

/// `osbs cancel` options.
#[derive(Debug, Clone, clap::Args)]
pub struct CancelArgs {
    /// Build id (see `osbs list`)
    pub id: String,
    /// Return once the cancel is requested, without waiting for a running build to stop
    #[arg(long)]
    pub nowait: bool,
}

pub async fn run(context: &crate::context::Context, args: &CancelArgs) -> Result<()> {
    let store = context.store().await?;
    let bus = context.bus().await?;
    let progress = context.progress();
    let wait = (!args.nowait).then(|| {
        context
            .config
            .cli
            .build_timeout()
            .min(Duration::from_secs(300))
    });
    let outcome = cancel(&store, &bus, &args.id, &context.user(), wait, &progress).await;
    bus.close().await;
    let (record, text) = match outcome? {
        Canceled::Done(record) => {
            let text = format!("build {} canceled\n", record.id);
            (record, text)
        }
        Canceled::Requested(record) => {
            let text = format!(
                "build {} is {}: cancel requested, its worker stops it within seconds (`osbs status {}`)\n",
                record.id, record.state, record.id
            );
            (record, text)
        }
    };
    if context.json {
        context.print_json(&crate::render::record_json(&record, None))
    } else {
        crate::context::print_stdout(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        use BuildState::*;
        let cases = [
            (Queued, CancelPlan::CancelNow),
            (Running, CancelPlan::Request),
            (Pushing, CancelPlan::Request),
            (Complete, CancelPlan::Refuse),
            (Imported, CancelPlan::Refuse),
            (Failed, CancelPlan::Refuse),
            (Canceled, CancelPlan::Refuse),
            (Superseded, CancelPlan::Refuse),
            (ImportFailed, CancelPlan::Refuse),
        ];
        for (state, plan) in cases {
            assert_eq!(plan_cancel(state), plan, "{state}");
        }
    }
}
