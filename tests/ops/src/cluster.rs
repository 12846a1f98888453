//! A private RabbitMQ cluster on loopback: three [`PrivateRabbit`] nodes (each its own
//! ports, data, logs and pid file under its temporary directory, no plugin, so nothing near
//! the shared node's 5672 or 15672) joined into one cluster, for quorum queues and the loss
//! of a node. The nodes share the Erlang cookie of the rabbitmq user, as the shared node
//! does: `rabbitmqctl` reaches them as it reaches that one.
//!
//! Dropping the cluster stops every node still up (`rabbitmqctl shutdown`, then `kill -9`
//! if that failed) and removes its directories, also when the test panics.

use crate::{PrivateRabbit, wait_for};
use osbs_common::config::{AmqpConfig, CredentialUrl, QueueType};
use std::time::Duration;

/// The nodes of a private cluster; the first is the one the others joined.
#[derive(Debug)]
pub struct PrivateCluster {
    pub nodes: Vec<PrivateRabbit>,
}

impl PrivateCluster {
    /// Starts three nodes on free ports and joins the second and third to the first.
    pub async fn start() -> PrivateCluster {
        let (first, second, third) = tokio::join!(
            PrivateRabbit::start(),
            PrivateRabbit::start(),
            PrivateRabbit::start()
        );
        let cluster = PrivateCluster {
            nodes: vec![first, second, third],
        };
        let seed = cluster.nodes[0].node.clone();
        for node in &cluster.nodes[1..] {
            node.ctl(&["stop_app"]).await;
            node.ctl(&["join_cluster", &seed]).await;
            node.ctl(&["start_app"]).await;
        }
        let count = cluster.nodes.len().to_string();
        cluster.nodes[0]
            .ctl(&["await_online_nodes", &count, "--timeout", "60"])
            .await;
        cluster
    }

    /// `[amqp]` for the whole cluster: every node's URL, quorum queues.
    pub fn amqp(&self) -> AmqpConfig {
        let urls: Vec<CredentialUrl> = self.nodes.iter().map(|node| node.amqp().url).collect();
        AmqpConfig {
            url: urls[0].clone(),
            urls,
            queue_type: QueueType::Quorum,
            connect_timeout_secs: 20,
            ..AmqpConfig::default()
        }
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> &PrivateRabbit {
        self.nodes
            .iter()
            .find(|node| node.node == name)
            .unwrap_or_else(|| panic!("{name} is not a node of this cluster"))
    }

    /// A node still running, to ask.
    fn live(&self) -> &PrivateRabbit {
        self.nodes
            .iter()
            .find(|node| node.beam_pid().is_some())
            .expect("a node of the cluster runs")
    }

    /// The node leading quorum queue `queue` of vhost `/` (waits for an election to end).
    pub async fn leader(&self, queue: &str) -> String {
        let live = self.live();
        wait_for(
            Duration::from_secs(60),
            &format!("a leader of {queue}"),
            || async move {
                let listing = live
                    .ctl(&[
                        "list_queues",
                        "-p",
                        "/",
                        "--no-table-headers",
                        "--quiet",
                        "name",
                        "leader",
                    ])
                    .await;
                leader_in(&listing, queue)
                    .filter(|leader| self.nodes.iter().any(|node| &node.node == leader))
                    .map(str::to_owned)
            },
        )
        .await
    }

    /// Waits until every one of `queues` (vhost `/`) holds nothing, ready or unacked.
    pub async fn wait_settled(&self, queues: &[&str]) {
        crate::wait_settled(Some(&self.live().node), "/", queues).await;
    }
}

/// The leader of `queue` in a `list_queues name leader` listing (tab-separated).
fn leader_in<'a>(listing: &'a str, queue: &str) -> Option<&'a str> {
    listing.lines().find_map(|line| {
        let mut columns = line.split('\t');
        (columns.next()?.trim() == queue).then_some(())?;
        Some(columns.next()?.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_read_from_the_listing() {
        let listing = "osbs.jobs.dead\tosbs-ops-b@localhost\nosbs.jobs\tosbs-ops-a@localhost\n";
        assert_eq!(
            leader_in(listing, "osbs.jobs"),
            Some("osbs-ops-a@localhost")
        );
        assert_eq!(leader_in(listing, "osbs.results"), None);
    }
}
