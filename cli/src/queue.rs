//! `osbs queue`: messages waiting and consumers per queue, and the net rate of change
//! measured by sampling twice (the management API, which would give publish and deliver
//! rates, is not required).

use crate::error::Result;
pub use osbs_common::queues::{QueueStats, net_rate, queues, read};
use std::time::Duration;

/// The readings as a table for people.
pub fn text(stats: &[QueueStats]) -> String {
    let rows: Vec<[String; 4]> = stats
        .iter()
        .map(|stat| {
            [
                stat.queue.clone(),
                stat.messages.to_string(),
                stat.consumers.to_string(),
                stat.net_per_second
                    .map_or("-".to_owned(), |rate| format!("{rate:+.1}/s")),
            ]
        })
        .collect();
    crate::render::table(&["QUEUE", "MESSAGES", "CONSUMERS", "NET"], &rows)
}

/// `osbs queue` options.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueArgs {
    /// Seconds between the two readings the net rate is measured over (0: one reading, no rate)
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
}

pub async fn run(context: &crate::context::Context, args: &QueueArgs) -> Result<()> {
    let interval = Duration::try_from_secs_f64(args.interval.max(0.0)).map_err(|_| {
        crate::error::CliError::Refused(format!(
            "--interval {} is not a number of seconds",
            args.interval
        ))
    })?;
    let bus = context.bus().await?;
    let progress = context.progress();
    if !interval.is_zero() {
        progress.message(format!("sampling queues for {}s", args.interval));
    }
    let stats = read(&bus, interval).await;
    progress.finish();
    bus.close().await;
    let stats = stats?;
    if context.json {
        context.print_json(&serde_json::to_value(&stats).expect("stats serialize"))
    } else {
        crate::context::print_stdout(&text(&stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The readings and rates themselves are osbs_common::queues's, tested there.
    #[test]
    fn readings_show_as_a_table() {
        let shown = text(&[QueueStats {
            queue: "osbs.jobs".into(),
            messages: 30,
            consumers: 3,
            net_per_second: Some(-1.5),
        }]);
        assert_eq!(
            shown,
            "QUEUE      MESSAGES  CONSUMERS  NET\nosbs.jobs  30        3          -1.5/s\n"
        );
    }
}
