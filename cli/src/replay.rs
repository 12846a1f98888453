//! `osbs replay`: takes dead-lettered jobs, results and events back to where they came from,
//! once their cause is fixed. A replayed job keeps its build id and history (record
//! `failed → queued`, attempt + 1). Every selected message is republished with a confirm
//! and only then removed from its dead queue; the others go back untouched, by the closing
//! of the channel that held them, never by a nack (which a quorum queue counts as a failed
//! delivery): a dry run changes nothing.

use crate::error::{CliError, Result};
use lapin::BasicProperties;
use lapin::message::BasicGetMessage;
use lapin::options::BasicAckOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use osbs_common::bus::Outgoing;
pub use osbs_common::queues::{DeadMessage, DeadQueue};
use osbs_common::state::{self, ChangeError, Changed, StateChange};
use osbs_common::store::field;
use osbs_common::{Bus, Store};
use osbs_proto::v1::{BuildJob, BuildState};
use osbs_proto::{Message, names};
use serde::Serialize;

/// Which dead messages to replay.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Build ids (jobs, results) or message ids (any queue); empty = any.
    pub ids: Vec<String>,
    /// Only messages whose reason contains this (case-insensitive).
    pub reason_contains: Option<String>,
    /// Everything in the scanned queues.
    pub all: bool,
}

impl Selection {
    /// Refuses a selection that names nothing (replaying everything must be asked for).
    pub fn check(&self) -> Result<()> {
        if self.ids.is_empty() && self.reason_contains.is_none() && !self.all {
            return Err(CliError::Refused(
                "say what to replay: build ids, --reason-contains TEXT or --all (see it first with --dry-run --all)".into(),
            ));
        }
        Ok(())
    }

    /// Whether `message` is selected: it matches every criterion given.
    pub fn selects(&self, message: &DeadMessage) -> bool {
        let id_matches = self.ids.is_empty()
            || self.ids.iter().any(|id| {
                message.build_id.as_deref() == Some(id) || message.message_id.as_deref() == Some(id)
            });
        let reason_matches = self
            .reason_contains
            .as_ref()
            .is_none_or(|text| message.reason.to_lowercase().contains(&text.to_lowercase()));
        id_matches && reason_matches
    }
}

/// What replay did (or, in a dry run, would do) with one selected message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub message: DeadMessage,
    /// `would replay`, `replayed`, or `skipped`.
    pub action: &'static str,
    /// Why it was skipped, or the attempt number a job was replayed as.
    pub note: String,
}

/// What to do with a job's record before its job goes back to `osbs.jobs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPlan {
    /// `failed → queued`, attempt + 1.
    Requeue,
    /// Already queued (dead-lettered before it was marked failed): republish only.
    Republish,
    /// Leave it in the dead queue, saying why.
    Skip(String),
}

/// Decides from the record's state whether a dead job may run again.
pub fn plan_job(state: Option<BuildState>) -> JobPlan {
    match state {
        None => {
            JobPlan::Skip("no build record (was Redis emptied?): left in the dead queue".into())
        }
        Some(BuildState::Failed) => JobPlan::Requeue,
        Some(BuildState::Queued) => JobPlan::Republish,
        Some(state @ (BuildState::Running | BuildState::Pushing)) => JobPlan::Skip(format!(
            "build is {state} (another copy runs): left in the dead queue"
        )),
        Some(state) => JobPlan::Skip(format!(
            "build is {state}, not failed: left in the dead queue"
        )),
    }
}

/// Headers of a republished message: without the dead-letter ones, with who replayed it.
fn replay_headers(properties: &BasicProperties, user: &str) -> FieldTable {
    const DROPPED: [&str; 12] = [
        names::HEADER_DEAD_REASON,
        names::HEADER_DEAD_QUEUE,
        names::HEADER_DEAD_EXCHANGE,
        names::HEADER_DEAD_ROUTING_KEY,
        names::HEADER_DEAD_AT,
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    ];
    let mut kept = properties
        .headers()
        .as_ref()
        .map(|headers| headers.inner().clone())
        .unwrap_or_default();
    kept.retain(|name, _| !DROPPED.contains(&name.as_str()));
    let mut headers = FieldTable::from(kept);
    headers.insert(
        "x-osbs-replayed-by".into(),
        AMQPValue::LongString(LongString::from(user.as_bytes().to_vec())),
    );
    headers
}

/// Everything replay talks to.
#[derive(Debug)]
pub struct Replayer<'a> {
    pub bus: &'a Bus,
    pub store: &'a Store,
    pub user: &'a str,
    pub dry_run: bool,
}

impl Replayer<'_> {
    /// Scans `queues`' dead queues and replays what `selection` picks.
    pub async fn run(&self, queues: &[DeadQueue], selection: &Selection) -> Result<Vec<Outcome>> {
        selection.check()?;
        let channel = self.bus.channel().await?;
        let mut outcomes = Vec::new();
        let mut failure = None;
        for &queue in queues {
            let dead = queue.dead();
            // Held unacked until the end, so that basic.get never hands one back twice; the
            // count read first bounds the scan (messages dead-lettered meanwhile wait).
            let depth = self.bus.queue_depth(&dead).await?.messages;
            let mut held = Vec::new();
            for _ in 0..depth {
                match self.bus.get_one(&channel, &dead).await? {
                    Some(message) => held.push(message),
                    None => break,
                }
            }
            for message in held {
                let view = DeadMessage::read(queue, &message.properties, &message.data);
                let keep = if !selection.selects(&view) || failure.is_some() {
                    true
                } else if self.dry_run {
                    outcomes.push(Outcome {
                        message: view,
                        action: "would replay",
                        note: String::new(),
                    });
                    true
                } else {
                    match self.replay_one(&message, view).await {
                        Ok(outcome) => {
                            let keep = outcome.action != "replayed";
                            outcomes.push(outcome);
                            keep
                        }
                        Err(error) => {
                            failure = Some(error);
                            true
                        }
                    }
                };
                if keep {
                    // Left unacked: closing the channel below returns it to its place. Not a
                    // nack: on a quorum queue every nack-requeue counts towards the delivery
                    // limit, and a dead queue has nowhere to send a message past it, so dry
                    // runs would drop dead letters (see `osbs_common::queues::peek_dead`).
                    continue;
                }
                if let Err(error) = message.ack(BasicAckOptions::default()).await {
                    // The channel is gone: every unsettled message goes back to its queue.
                    return Err(CliError::Tool(format!(
                        "lost the channel to {dead} while removing a replayed message: {error}; it may be replayed twice (every handler is idempotent), run the replay again"
                    )));
                }
            }
        }
        // Returns every message not replayed (held unacked) to its dead queue, in place.
        let _ = channel
            .close(200, "replay done: returning the others".into())
            .await;
        match failure {
            Some(error) => Err(error),
            None => Ok(outcomes),
        }
    }

    /// `failed → queued` for a replayed job, announced. The job is published next: an
    /// announcement that did not go out is only a warning, so that the record saying
    /// `queued` gets its job.
    async fn requeue(&self, build_id: &str) -> Result<()> {
        let reason = format!("replayed by {}", self.user);
        let change = StateChange::new(build_id, BuildState::Queued, &reason, self.user)
            .only_from(&[BuildState::Failed])
            // The record's attempt count is the worker's to bump when it starts the job;
            // the job carries the next one.
            .with_fields(vec![(field::ERROR, String::new())]);
        match state::change(self.store, self.bus, change).await {
            Ok(Changed::Done(_)) => Ok(()),
            Ok(Changed::Refused(record)) => Err(CliError::Refused(format!(
                "build {build_id} is {} now; it cannot be replayed",
                record.state
            ))),
            Ok(Changed::Missing) => Err(CliError::Refused(format!(
                "build {build_id} has no record (was Redis emptied?)"
            ))),
            Err(error @ ChangeError::NotAnnounced { .. }) => {
                eprintln!("warning: {error}");
                Ok(())
            }
            Err(ChangeError::Store(error)) => Err(error.into()),
        }
    }

    /// Republishes one selected message; `replayed` means it may leave its dead queue.
    async fn replay_one(&self, message: &BasicGetMessage, view: DeadMessage) -> Result<Outcome> {
        let skip = |view: DeadMessage, note: String| Outcome {
            message: view,
            action: "skipped",
            note,
        };
        let (Some(exchange), Some(routing_key)) = (view.exchange.clone(), view.routing_key.clone())
        else {
            return Ok(skip(
                view,
                "its original exchange and routing key are unknown: left in the dead queue".into(),
            ));
        };
        let mut body = message.data.clone();
        let mut requeued: Option<BuildJob> = None;
        let mut note = String::new();
        match view.queue {
            DeadQueue::Jobs => {
                let Ok(mut job) = BuildJob::decode(message.data.as_slice()) else {
                    return Ok(skip(view, "not a BuildJob: left in the dead queue".into()));
                };
                let record = self.store.get(&job.build_id).await?;
                let plan = plan_job(record.as_ref().map(|record| record.state));
                let attempts = record
                    .as_ref()
                    .map_or(0, |record| record.attempts())
                    .max(job.attempt);
                job.attempt = attempts + 1;
                match plan {
                    JobPlan::Skip(why) => return Ok(skip(view, why)),
                    JobPlan::Republish => {}
                    JobPlan::Requeue => {
                        self.requeue(&job.build_id).await?;
                        requeued = Some(job.clone());
                    }
                }
                note = format!("attempt {}", job.attempt);
                body = job.encode_to_vec();
            }
            DeadQueue::Results => {
                if let Some(id) = &view.build_id
                    && let Some(record) = self.store.get(id).await?
                    && record.state == BuildState::Imported
                {
                    return Ok(skip(
                        view,
                        "build is already imported: left in the dead queue".into(),
                    ));
                }
            }
            DeadQueue::Events => {}
        }
        let properties = message
            .properties
            .clone()
            .with_headers(replay_headers(&message.properties, self.user));
        let published = self
            .bus
            .publish(Outgoing {
                exchange: &exchange,
                routing_key: &routing_key,
                body: &body,
                properties,
                // amq.topic fans out to outside listeners too; internal exchanges must route.
                mandatory: exchange != names::EXCHANGE_TOPIC,
            })
            .await;
        if let Err(error) = published {
            if let Some(job) = &requeued {
                // Undo the requeue: the job is still only in the dead queue.
                let reason = format!("replay by {} failed: {error}", self.user);
                let undo = StateChange::new(&job.build_id, BuildState::Failed, &reason, self.user)
                    .only_from(&[BuildState::Queued])
                    .with_fields(vec![(field::ERROR, view.reason.clone())]);
                let _ = state::change(self.store, self.bus, undo).await;
            }
            return Err(error.into());
        }
        Ok(Outcome {
            message: view,
            action: "replayed",
            note,
        })
    }
}

/// `osbs replay` options.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("what").multiple(true).required(true).args(["ids", "reason_contains", "all"])))]
pub struct ReplayArgs {
    /// Build ids (dead jobs and results) or AMQP message ids (any dead message)
    pub ids: Vec<String>,
    /// Dead-letter queues to look in (repeatable) [default: all three]
    #[arg(long = "queue", value_name = "jobs|results|events", value_parser = DeadQueue::parse)]
    pub queues: Vec<DeadQueue>,
    /// Only messages whose dead-letter reason contains this text (case-insensitive)
    #[arg(long, value_name = "TEXT")]
    pub reason_contains: Option<String>,
    /// Every message of the chosen queues
    #[arg(long)]
    pub all: bool,
    /// List what would be replayed (queue, id, reason, dead-at) and touch nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// The outcomes as a table for people.
pub fn text(outcomes: &[Outcome], dry_run: bool) -> String {
    if outcomes.is_empty() {
        return "no dead-lettered message matches\n".into();
    }
    let rows: Vec<[String; 6]> = outcomes
        .iter()
        .map(|outcome| {
            [
                outcome.action.to_owned(),
                outcome.message.queue.dead(),
                outcome.message.id().to_owned(),
                outcome.message.dead_at.clone(),
                outcome.message.reason.clone(),
                outcome.note.clone(),
            ]
        })
        .collect();
    let mut out = crate::render::table(
        &["ACTION", "QUEUE", "ID", "DEAD-AT", "REASON", "NOTE"],
        &rows,
    );
    if dry_run {
        out.push_str("(dry run: nothing was replayed)\n");
    }
    out
}

pub async fn run(context: &crate::context::Context, args: &ReplayArgs) -> Result<()> {
    let selection = Selection {
        ids: args.ids.clone(),
        reason_contains: args.reason_contains.clone(),
        all: args.all,
    };
    selection.check()?;
    let queues = if args.queues.is_empty() {
        DeadQueue::ALL.to_vec()
    } else {
        args.queues.clone()
    };
    let store = context.store().await?;
    let bus = context.bus().await?;
    let user = context.user();
    let replayer = Replayer {
        bus: &bus,
        store: &store,
        user: &user,
        dry_run: args.dry_run,
    };
    let outcomes = replayer.run(&queues, &selection).await;
    bus.close().await;
    let outcomes = outcomes?;
    if context.json {
        context.print_json(&serde_json::to_value(&outcomes).expect("outcomes serialize"))?;
    } else {
        crate::context::print_stdout(&text(&outcomes, args.dry_run))?;
    }
    let skipped = outcomes
        .iter()
        .filter(|outcome| outcome.action == "skipped")
        .count();
    if skipped > 0 && !args.dry_run {
        return Err(CliError::Refused(format!(
            "{skipped} selected message(s) were not replayed (see NOTE) and stay in their dead queue"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_proto::v1::BuildResult;

    fn headers(pairs: &[(&str, &str)]) -> BasicProperties {
        let mut table = FieldTable::default();
        for (name, value) in pairs {
            table.insert(
                (*name).into(),
                AMQPValue::LongString(LongString::from(value.as_bytes().to_vec())),
            );
        }
        BasicProperties::default()
            .with_headers(table)
            .with_message_id("m-1".into())
    }

    fn job(id: &str) -> Vec<u8> {
        BuildJob {
            build_id: id.into(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn reads_what_the_bus_wrote() {
        let properties = headers(&[
            ("x-osbs-reason", "registry 127.0.0.1:5999 refused the push"),
            ("x-osbs-original-exchange", "osbs"),
            ("x-osbs-original-routing-key", "job"),
            ("x-osbs-dead-at", "2025-01-15T10:22:03.000+00:00"),
        ]);
        let view = DeadMessage::read(DeadQueue::Jobs, &properties, &job("b1"));
        assert_eq!(view.build_id.as_deref(), Some("b1"));
        assert_eq!(view.id(), "b1");
        assert_eq!(view.exchange.as_deref(), Some("osbs"));
        assert_eq!(view.routing_key.as_deref(), Some("job"));
        assert_eq!(view.dead_at, "2025-01-15T10:22:03.000+00:00");

        let event = DeadMessage::read(DeadQueue::Events, &headers(&[]), b"{not json");
        assert_eq!(event.build_id, None);
        assert_eq!(event.id(), "m-1");
        assert_eq!(event.exchange, None);
        assert!(event.reason.contains("no reason"));

        let result = BuildResult {
            build_id: "b2".into(),
            state: BuildState::Complete as i32,
            ..Default::default()
        };
        let view = DeadMessage::read(DeadQueue::Results, &headers(&[]), &result.encode_to_vec());
        assert_eq!(view.routing_key.as_deref(), Some("build.complete"));
        assert_eq!(view.exchange.as_deref(), Some("osbs"));
    }

    #[test]
    fn broker_dead_letters_are_read_from_x_death() {
        let mut death = FieldTable::default();
        death.insert(
            "exchange".into(),
            AMQPValue::LongString(LongString::from(b"amq.topic".to_vec())),
        );
        death.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(
                vec![AMQPValue::LongString(LongString::from(
                    b"org.example.git.receive".to_vec(),
                ))]
                .into(),
            ),
        );
        let mut table = FieldTable::default();
        table.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        );
        let properties = BasicProperties::default().with_headers(table);
        let view = DeadMessage::read(DeadQueue::Events, &properties, b"{}");
        assert_eq!(view.exchange.as_deref(), Some("amq.topic"));
        assert_eq!(view.routing_key.as_deref(), Some("org.example.git.receive"));
        let cleaned = replay_headers(&properties, "jdoe");
        assert!(!cleaned.inner().contains_key("x-death"));
        assert!(cleaned.inner().contains_key("x-osbs-replayed-by"));
    }

    #[test]
    fn selection_table() {
        let message = DeadMessage {
            queue: DeadQueue::Jobs,
            build_id: Some("b1".into()),
            message_id: Some("m1".into()),
            reason: "Registry unreachable".into(),
            dead_at: String::new(),
            exchange: None,
            routing_key: None,
        };
        let cases = [
            (vec![], None, true, true),
            (vec!["b1"], None, false, true),
            (vec!["m1"], None, false, true),
            (vec!["b2"], None, false, false),
            (vec![], Some("registry"), false, true),
            (vec![], Some("koji"), false, false),
            (vec!["b1"], Some("koji"), false, false),
        ];
        for (ids, reason, all, expected) in cases {
            let selection = Selection {
                ids: ids.iter().map(|id| id.to_string()).collect(),
                reason_contains: reason.map(str::to_owned),
                all,
            };
            assert_eq!(selection.selects(&message), expected, "{selection:?}");
        }
        assert!(Selection::default().check().is_err());
    }

    #[test]
    fn only_failed_or_queued_jobs_run_again() {
        assert_eq!(plan_job(Some(BuildState::Failed)), JobPlan::Requeue);
        assert_eq!(plan_job(Some(BuildState::Queued)), JobPlan::Republish);
        for state in [
            None,
            Some(BuildState::Running),
            Some(BuildState::Complete),
            Some(BuildState::Imported),
            Some(BuildState::Canceled),
        ] {
            assert!(matches!(plan_job(state), JobPlan::Skip(_)), "{state:?}");
        }
    }
}
