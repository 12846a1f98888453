//! `osbs replay`: takes dead-lettered jobs, results and events back to where they came from,
//! once their cause is fixed. A replayed job keeps its build id and history (record
//! `failed → queued`, attempt + 1). Every selected message is republished with a confirm
//! and only then removed from its dead queue; the others go back untouched, by the closing
//! of the channel that held them, never by a nack (which a quorum queue counts as a failed
//! delivery): a dry run changes nothing.
//!
//! A dead arch job (`osbs.jobs.<arch>.dead`, DESIGN.md "Architectures") is replayed as its
//! build: the build's own job goes back to `osbs.jobs` and orchestrates every arch again,
//! once per build however many of its jobs are dead.

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
use std::collections::HashSet;

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
    /// `failed → queued`, attempt + 1; the job goes back (for an arch job: the build's own
    /// job, which orchestrates every arch again).
    Requeue,
    /// Already queued (dead-lettered before it was marked failed): republish only.
    Republish,
    /// This replay already sent the build back (another of its dead jobs): removed from its
    /// dead queue, nothing published, so that the build runs once.
    WithItsBuild,
    /// Leave it in the dead queue, saying why.
    Skip(String),
}

/// Decides whether a dead job may run again, from its build's record state, whether it is
/// an arch job, and whether this replay already sent its build back.
pub fn plan_job(state: Option<BuildState>, arch_job: bool, build_replayed: bool) -> JobPlan {
    if build_replayed {
        return JobPlan::WithItsBuild;
    }
    match state {
        None => {
            JobPlan::Skip("no build record (was Redis emptied?): left in the dead queue".into())
        }
        Some(BuildState::Failed) => JobPlan::Requeue,
        // A queued multi-arch build's own job runs again and publishes fresh arch jobs: an
        // old one sent back too could build its arch twice.
        Some(BuildState::Queued) if arch_job => JobPlan::Skip(
            "build is queued (its own job runs again and builds every arch): left in the dead queue"
                .into(),
        ),
        Some(BuildState::Queued) => JobPlan::Republish,
        Some(state @ (BuildState::Running | BuildState::Pushing)) if arch_job => {
            JobPlan::Skip(format!(
                "build is {state} (its other arch jobs run; replay it once it has failed): left in the dead queue"
            ))
        }
        Some(state @ (BuildState::Running | BuildState::Pushing)) => JobPlan::Skip(format!(
            "build is {state} (another copy runs): left in the dead queue"
        )),
        Some(state) => JobPlan::Skip(format!(
            "build is {state}, not failed: left in the dead queue"
        )),
    }
}

/// The build's own job from one of its arch jobs: the arch, the arch list and the
/// reservation the orchestrator made are its to make again.
pub fn build_job_of(arch_job: &BuildJob) -> BuildJob {
    BuildJob {
        arch: String::new(),
        arches: Vec::new(),
        nvr: None,
        koji_reservation: None,
        ..arch_job.clone()
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
        // Builds sent back by this replay: each runs once, whatever else of it is dead.
        let mut replayed = HashSet::new();
        for &queue in queues {
            let dead = queue.dead();
            // Held unacked until the end, so that basic.get never hands one back twice; the
            // count read first bounds the scan (messages dead-lettered meanwhile wait).
            let depth = match self.bus.queue_depth(&dead).await {
                Ok(depth) => depth.messages,
                // An arch nobody served or orchestrated has no queues: nothing dead there.
                Err(_) if queue.optional() => continue,
                Err(error) => return Err(error.into()),
            };
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
                    let note = match (&view.queue, &view.build_id) {
                        (DeadQueue::ArchJobs(_), Some(id)) => {
                            format!("as build {id}'s own job, once")
                        }
                        _ => String::new(),
                    };
                    outcomes.push(Outcome {
                        message: view,
                        action: "would replay",
                        note,
                    });
                    true
                } else {
                    match self.replay_one(&message, view, &mut replayed).await {
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
    /// `builds` holds the builds this replay sent back, and gets this one's.
    async fn replay_one(
        &self,
        message: &BasicGetMessage,
        view: DeadMessage,
        builds: &mut HashSet<String>,
    ) -> Result<Outcome> {
        let skip = |view: DeadMessage, note: String| Outcome {
            message: view,
            action: "skipped",
            note,
        };
        let (Some(mut exchange), Some(mut routing_key)) =
            (view.exchange.clone(), view.routing_key.clone())
        else {
            return Ok(skip(
                view,
                "its original exchange and routing key are unknown: left in the dead queue".into(),
            ));
        };
        let mut body = message.data.clone();
        let mut requeued: Option<BuildJob> = None;
        let mut sent_back = None;
        let mut note = String::new();
        match view.queue {
            DeadQueue::Jobs | DeadQueue::ArchJobs(_) => {
                let Ok(mut job) = BuildJob::decode(message.data.as_slice()) else {
                    return Ok(skip(view, "not a BuildJob: left in the dead queue".into()));
                };
                let arch_job = !job.arch.is_empty();
                let record = self.store.get(&job.build_id).await?;
                let plan = plan_job(
                    record.as_ref().map(|record| record.state),
                    arch_job,
                    builds.contains(&job.build_id),
                );
                let attempts = record
                    .as_ref()
                    .map_or(0, |record| record.attempts())
                    .max(job.attempt);
                if arch_job {
                    // Replay acts on the build: its own job orchestrates every arch again.
                    job = build_job_of(&job);
                    exchange = names::EXCHANGE_INTERNAL.to_owned();
                    routing_key = names::ROUTING_JOB.to_owned();
                }
                job.attempt = attempts + 1;
                match plan {
                    JobPlan::Skip(why) => return Ok(skip(view, why)),
                    JobPlan::WithItsBuild => {
                        return Ok(Outcome {
                            message: view,
                            action: "replayed",
                            note: "with its build, already sent back by this replay".into(),
                        });
                    }
                    JobPlan::Republish => {}
                    JobPlan::Requeue => {
                        self.requeue(&job.build_id).await?;
                        requeued = Some(job.clone());
                    }
                }
                note = if arch_job {
                    format!("attempt {}, as the build's own job", job.attempt)
                } else {
                    format!("attempt {}", job.attempt)
                };
                body = job.encode_to_vec();
                sent_back = Some(job.build_id.clone());
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
        builds.extend(sent_back);
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
    /// Dead-letter queues to look in (repeatable; `jobs.<arch>`: that arch's arch jobs)
    /// [default: all, and every arch's that exists]
    #[arg(long = "queue", value_name = "jobs|jobs.<arch>|results|events", value_parser = DeadQueue::parse)]
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
        DeadQueue::every()
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
    fn only_failed_or_queued_jobs_run_again_and_each_build_once() {
        use BuildState::*;
        let skip = |why: &str| JobPlan::Skip(why.to_owned());
        // (state, arch job, build already sent back by this replay) -> plan
        let table = [
            (Some(Failed), false, false, JobPlan::Requeue),
            (Some(Queued), false, false, JobPlan::Republish),
            (Some(Failed), true, false, JobPlan::Requeue),
            (Some(Queued), false, true, JobPlan::WithItsBuild),
            (Some(Queued), true, true, JobPlan::WithItsBuild),
            (
                Some(Queued),
                true,
                false,
                skip(
                    "build is queued (its own job runs again and builds every arch): left in the dead queue",
                ),
            ),
            (
                Some(Running),
                true,
                false,
                skip(
                    "build is running (its other arch jobs run; replay it once it has failed): left in the dead queue",
                ),
            ),
            (
                Some(Pushing),
                false,
                false,
                skip("build is pushing (another copy runs): left in the dead queue"),
            ),
            (
                None,
                true,
                false,
                skip("no build record (was Redis emptied?): left in the dead queue"),
            ),
        ];
        for (state, arch, replayed, expected) in table {
            assert_eq!(
                plan_job(state, arch, replayed),
                expected,
                "{state:?} {arch} {replayed}"
            );
        }
        for state in [Complete, Imported, Canceled, ImportFailed] {
            for arch in [false, true] {
                assert!(
                    matches!(plan_job(Some(state), arch, false), JobPlan::Skip(_)),
                    "{state:?} {arch}"
                );
            }
        }
    }

    #[test]
    fn an_arch_job_is_replayed_as_its_build_s_own_job() {
        let arm = BuildJob {
            build_id: "b1".into(),
            commit: "c".into(),
            attempt: 2,
            arch: "aarch64".into(),
            arches: vec!["x86_64".into(), "aarch64".into()],
            nvr: Some(osbs_proto::v1::Nvr {
                name: "n".into(),
                version: "1".into(),
                release: "3".into(),
            }),
            koji_reservation: Some(osbs_proto::v1::KojiReservation {
                build_id: 7,
                token: "t".into(),
            }),
            ..Default::default()
        };
        let own = build_job_of(&arm);
        assert_eq!(
            own,
            BuildJob {
                build_id: "b1".into(),
                commit: "c".into(),
                attempt: 2,
                ..Default::default()
            }
        );
        let view = DeadMessage::read(
            DeadQueue::ArchJobs("aarch64"),
            &headers(&[]),
            &arm.encode_to_vec(),
        );
        assert_eq!(view.id(), "b1", "selected by its build id");
    }
}
