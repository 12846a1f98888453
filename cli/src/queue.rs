//! `osbs queue`: messages waiting and consumers per queue, and the net rate of change
//! measured by sampling twice (the management API, which would give publish and deliver
//! rates, is not required).

use crate::error::Result;
use osbs_common::Bus;
use osbs_proto::names;
use serde::Serialize;
use std::time::Duration;

/// The queues OSBS declares, in the order a message travels.
pub fn queues() -> Vec<String> {
    let mut all: Vec<String> = [
        names::QUEUE_EVENTS,
        names::QUEUE_JOBS,
        names::QUEUE_JOB_LEASES,
        names::QUEUE_RESULTS,
    ]
    .map(str::to_owned)
    .to_vec();
    all.extend(
        [names::QUEUE_EVENTS, names::QUEUE_JOBS, names::QUEUE_RESULTS].map(names::dead_queue),
    );
    all
}

/// One queue's reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub messages: u32,
    pub consumers: u32,
    /// Net change in messages per second over the sampling interval (negative: draining);
    /// `None` without a second sample.
    pub net_per_second: Option<f64>,
}

/// Net messages per second between two depth readings `interval` apart.
pub fn net_rate(before: u32, after: u32, interval: Duration) -> Option<f64> {
    let seconds = interval.as_secs_f64();
    (seconds > 0.0).then(|| (f64::from(after) - f64::from(before)) / seconds)
}

/// Reads every queue, twice `interval` apart when `interval` is not zero.
pub async fn read(bus: &Bus, interval: Duration) -> Result<Vec<QueueStats>> {
    let names = queues();
    let mut first = Vec::with_capacity(names.len());
    for queue in &names {
        first.push(bus.queue_depth(queue).await?);
    }
    if interval.is_zero() {
        return Ok(names
            .into_iter()
            .zip(first)
            .map(|(queue, depth)| QueueStats {
                queue,
                messages: depth.messages,
                consumers: depth.consumers,
                net_per_second: None,
            })
            .collect());
    }
    tokio::time::sleep(interval).await;
    let mut stats = Vec::with_capacity(names.len());
    for (queue, before) in names.into_iter().zip(first) {
        let after = bus.queue_depth(&queue).await?;
        stats.push(QueueStats {
            net_per_second: net_rate(before.messages, after.messages, interval),
            queue,
            messages: after.messages,
            consumers: after.consumers,
        });
    }
    Ok(stats)
}

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

    #[test]
    fn rates() {
        assert_eq!(net_rate(10, 4, Duration::from_secs(2)), Some(-3.0));
        assert_eq!(net_rate(0, 5, Duration::from_millis(500)), Some(10.0));
        assert_eq!(net_rate(1, 1, Duration::ZERO), None);
    }

    #[test]
    fn every_declared_queue_is_listed() {
        let all = queues();
        assert_eq!(all.len(), 7);
        assert!(all.contains(&"osbs.jobs.dead".to_owned()));
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
