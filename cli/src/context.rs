//! What every verb gets: the configuration, the output mode, and connections made on demand.

use crate::config::Config;
use crate::error::{CliError, Result};
use crate::progress::Progress;
use osbs_common::config::AmqpConfig;
use osbs_common::store::BuildRecord;
use osbs_common::{Bus, Store};
use osbs_proto::v1::BuildState;
use std::io::Write;
use std::time::Duration;

/// The configuration and output mode of one invocation.
#[derive(Debug)]
pub struct Context {
    pub config: Config,
    /// `--json`: one JSON document (or JSON lines when following) on stdout.
    pub json: bool,
}

impl Context {
    pub async fn store(&self) -> Result<Store> {
        Ok(Store::connect(&self.config.redis).await?)
    }

    /// A bus connection with the topology declared, so that nothing published is dropped.
    pub async fn bus(&self) -> Result<Bus> {
        connect_bus(&self.config.amqp, "cli").await
    }

    pub fn progress(&self) -> Progress {
        Progress::for_output(self.json)
    }

    /// The acting user.
    pub fn user(&self) -> String {
        self.config.cli.user()
    }

    /// Prints `value` as pretty JSON on stdout.
    pub fn print_json(&self, value: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_string_pretty(value).expect("a JSON value always serializes");
        print_stdout(&format!("{text}\n"))
    }
}

/// Connects to RabbitMQ and declares the topology, giving up after the configured
/// `connect_timeout_secs`. The bound is enforced here because `Bus::connect` keeps retrying
/// an unreachable broker for ever (lapin retries the first TCP connect with the recovery
/// backoff), which a command line must not do.
pub async fn connect_bus(amqp: &AmqpConfig, who: &str) -> Result<Bus> {
    connect_declaring(amqp, who, Declare::Topology).await
}

/// What a connection declares before it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declare {
    /// The whole topology (every CLI verb but the hook).
    Topology,
    /// Only the events queue: the git hook publishes events and nothing else.
    EventsQueue,
}

/// [`connect_bus`], declaring `declare`.
pub async fn connect_declaring(amqp: &AmqpConfig, who: &str, declare: Declare) -> Result<Bus> {
    let limit = Duration::from_secs(amqp.connect_timeout_secs.max(1));
    let connected = tokio::time::timeout(limit, async {
        let bus = Bus::connect(amqp, who).await?;
        match declare {
            Declare::Topology => bus.declare_topology().await?,
            Declare::EventsQueue => bus.declare_events_queue().await?,
        }
        Ok::<_, CliError>(bus)
    })
    .await;
    connected.unwrap_or_else(|_| {
        Err(CliError::Tool(format!(
            "cannot reach RabbitMQ at {} within {}s: is it running? Start it with `rabbitmq-server -detached` (or set OSBS_AMQP__URL, or OSBS_AMQP__URLS for a cluster)",
            amqp.masked_urls(),
            limit.as_secs()
        )))
    })
}

/// Writes to stdout; a closed pipe (`osbs list | head`) is not an error worth a message.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(CliError::Tool(format!("cannot write to stdout: {error}"))),
    }
}

/// Whether a build that reached `record`'s state succeeded: `complete` or `imported`.
pub fn build_outcome(record: &BuildRecord) -> Result<()> {
    match record.state {
        BuildState::Complete | BuildState::Imported => Ok(()),
        state => {
            let superseded = record.field(osbs_common::store::field::SUPERSEDED_BY);
            let reason = match (record.error(), state) {
                ("", BuildState::Superseded) if !superseded.is_empty() => {
                    format!("a newer commit's build {superseded} replaced it")
                }
                ("", _) => "no reason recorded; see `osbs status` and the log".to_owned(),
                (error, _) => error.to_owned(),
            };
            Err(CliError::BuildFailed {
                id: record.id.clone(),
                state: state.name().to_owned(),
                reason,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_proto::v1::BuildJob;

    fn record(state: BuildState, fields: &[(&str, &str)]) -> BuildRecord {
        BuildRecord::new("b1", state, BuildJob::default(), fields)
    }

    #[test]
    fn only_complete_and_imported_succeed() {
        assert!(build_outcome(&record(BuildState::Complete, &[])).is_ok());
        assert!(build_outcome(&record(BuildState::Imported, &[])).is_ok());
        let failed = build_outcome(&record(
            BuildState::Failed,
            &[("error", "Dockerfile has no FROM")],
        ));
        assert_eq!(
            failed.unwrap_err().to_string(),
            "build b1 ended failed: Dockerfile has no FROM"
        );
        let superseded =
            build_outcome(&record(BuildState::Superseded, &[("superseded_by", "b2")])).unwrap_err();
        assert!(
            superseded.to_string().contains("build b2 replaced it"),
            "{superseded}"
        );
        assert_eq!(
            build_outcome(&record(BuildState::ImportFailed, &[]))
                .unwrap_err()
                .exit_code(),
            1
        );
    }
}
