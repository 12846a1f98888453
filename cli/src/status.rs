//! `osbs status ID`: a build's record (state, NVR, pullspecs, digest, error...) and its
//! history with times.

use crate::context::{Context, print_stdout};
use crate::error::Result;
use crate::render;

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Build id (see `osbs list`)
    pub id: String,
}

pub async fn run(context: &Context, args: &StatusArgs) -> Result<()> {
    let store = context.store().await?;
    let record = store.require(&args.id).await?;
    let history = store.history(&args.id).await?;
    if context.json {
        context.print_json(&render::record_json(&record, Some(&history)))
    } else {
        print_stdout(&render::status_text(&record, &history))
    }
}
