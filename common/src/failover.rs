//! The nodes of a RabbitMQ cluster behind one connection: which node a new connection tries
//! first, and what may differ between their URLs.
//!
//! A cluster's nodes all serve every queue (a quorum queue's leader may be on any of them;
//! a client on another node is proxied), so a service whose node died needs only a
//! connection to any node still up. The bus ([`crate::Bus::connect`]) hands lapin a dialer
//! that walks [`attempt_order`]: lapin calls it for the first connection and for every
//! reconnection of its auto-recovery, then redoes the AMQP handshake and the channels,
//! qos and consumers on whatever node answered. The login and vhost of that handshake are
//! the first URL's, which is why the URLs may differ only in scheme, host and port.
//!
//! A lost node must be noticed within seconds, whatever the connection was doing: a node
//! killed or cut off does not always leave a socket that says so (no RST through a network
//! cut; an end of stream lapin can miss while busy), and RabbitMQ's own 60 s heartbeat lets
//! such a connection look alive for up to two minutes, its consumers idle and its unacked
//! deliveries held. So a URL that sets no `heartbeat` gets [`HEARTBEAT_SECS`] (the lower of
//! client's and server's wins), and one that sets no `connection_timeout` gets
//! [`DIAL_TIMEOUT_MS`], so that a node that hangs cannot hold a dial past the next node.

use crate::config::CredentialUrl;
use lapin::uri::AMQPUri;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodesError {
    #[error("[amqp] names no broker URL")]
    Empty,
    #[error("[amqp] URL {url} is not an AMQP URL: {reason}")]
    Invalid { url: String, reason: String },
    #[error(
        "[amqp] urls must differ only in scheme, host and port (one login and one vhost for the whole cluster): {url} has a {what} of its own"
    )]
    Mixed { url: String, what: &'static str },
}

/// AMQP heartbeat asked for when a URL names none: a dead connection is noticed after two
/// silent intervals, a heartbeat being sent every half interval.
pub const HEARTBEAT_SECS: u16 = 10;
/// Longest TCP dial of one node when a URL names no `connection_timeout`.
pub const DIAL_TIMEOUT_MS: u64 = 5_000;
/// Largest AMQP frame asked for when a URL names no `frame_max`. RabbitMQ's default (128 KiB)
/// makes lapin zero ~8 MiB of frame buffers per connection; OSBS's messages are a few KiB
/// (a larger body is split into frames, as AMQP does for any body).
pub const FRAME_MAX: u32 = 8_192;

/// Parses the URLs and checks that they name one login and one vhost; a URL without a
/// `heartbeat`, `connection_timeout` or `frame_max` gets this module's defaults. Pure.
pub fn parse(urls: &[&CredentialUrl]) -> Result<Vec<AMQPUri>, NodesError> {
    let mut parsed: Vec<AMQPUri> = Vec::with_capacity(urls.len());
    for url in urls {
        let mut uri: AMQPUri = url.expose().parse().map_err(|reason| NodesError::Invalid {
            url: url.masked(),
            reason,
        })?;
        uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
        uri.query.connection_timeout.get_or_insert(DIAL_TIMEOUT_MS);
        uri.query.frame_max.get_or_insert(FRAME_MAX);
        if let Some(first) = parsed.first() {
            let what = if first.authority.userinfo != uri.authority.userinfo {
                Some("login")
            } else if first.vhost != uri.vhost {
                Some("vhost")
            } else {
                None
            };
            if let Some(what) = what {
                return Err(NodesError::Mixed {
                    url: url.masked(),
                    what,
                });
            }
        }
        parsed.push(uri);
    }
    if parsed.is_empty() {
        return Err(NodesError::Empty);
    }
    Ok(parsed)
}

/// The nodes a new connection tries, in order, among `count`, when the last connection was
/// made to node `last` (`None`: there was none yet). The first connection tries them in the
/// configured order; a reconnection starts with the node after the one it lost and tries
/// that one last: it has just failed, and a dead node's port refusing the connection is
/// cheap, but a node that hangs is not. Pure.
pub fn attempt_order(count: usize, last: Option<usize>) -> Vec<usize> {
    let start = last.map_or(0, |last| (last + 1) % count.max(1));
    (0..count).map(|step| (start + step) % count).collect()
}

/// The parsed nodes and the one the connection was last made to, shared by every
/// (re)connection attempt of one [`crate::Bus`].
#[derive(Debug)]
pub struct Nodes {
    uris: Vec<AMQPUri>,
    shown: Vec<String>,
    /// Index + 1 of the node last connected to; 0 before the first connection.
    last: AtomicUsize,
}

impl Nodes {
    pub fn new(urls: &[&CredentialUrl]) -> Result<Nodes, NodesError> {
        Ok(Nodes {
            uris: parse(urls)?,
            shown: urls.iter().map(|url| url.masked()).collect(),
            last: AtomicUsize::new(0),
        })
    }

    /// The first node's URL: its login and vhost are the handshake's.
    pub fn first(&self) -> &AMQPUri {
        &self.uris[0]
    }

    /// The nodes to try for the next connection, in order.
    pub fn order(&self) -> Vec<usize> {
        let last = self.last.load(Ordering::SeqCst).checked_sub(1);
        attempt_order(self.uris.len(), last)
    }

    pub fn uri(&self, index: usize) -> &AMQPUri {
        &self.uris[index]
    }

    /// Node `index`'s URL, masked, for logs.
    pub fn shown(&self, index: usize) -> &str {
        &self.shown[index]
    }

    /// Records that the connection now goes to node `index`.
    pub fn connected(&self, index: usize) {
        self.last.store(index + 1, Ordering::SeqCst);
    }

    pub fn len(&self) -> usize {
        self.uris.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uris.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_starts_after_the_node_lost_and_ends_with_it() {
        let cases: [(usize, Option<usize>, &[usize]); 7] = [
            (1, None, &[0]),
            (1, Some(0), &[0]),
            (3, None, &[0, 1, 2]),
            (3, Some(0), &[1, 2, 0]),
            (3, Some(1), &[2, 0, 1]),
            (3, Some(2), &[0, 1, 2]),
            (0, None, &[]),
        ];
        for (count, last, expected) in cases {
            assert_eq!(
                attempt_order(count, last),
                expected,
                "{count} nodes, last {last:?}"
            );
        }
    }

    #[test]
    fn every_node_is_tried_once_per_round() {
        for count in 1..6 {
            for last in (0..count).map(Some).chain([None]) {
                let mut order = attempt_order(count, last);
                order.sort_unstable();
                assert_eq!(order, (0..count).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn a_lost_connection_moves_to_the_next_node() {
        let urls = [
            CredentialUrl::new("amqp://u:p@127.0.0.1:5701/%2f"),
            CredentialUrl::new("amqp://u:p@127.0.0.1:5702/%2f"),
            CredentialUrl::new("amqps://u:p@node3.example:5671/%2f"),
        ];
        let nodes = Nodes::new(&urls.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(nodes.order(), [0, 1, 2]);
        nodes.connected(0);
        assert_eq!(nodes.order(), [1, 2, 0]);
        nodes.connected(2);
        assert_eq!(nodes.order(), [0, 1, 2]);
        assert_eq!(nodes.uri(2).authority.port, 5671);
        assert_eq!(nodes.shown(1), "amqp://u:***@127.0.0.1:5702/%2f");
    }

    #[test]
    fn a_url_without_heartbeat_dial_timeout_or_frame_size_gets_the_defaults() {
        let cases: [(&str, u16, u64, u32); 5] = [
            (
                "amqp://u:p@a:1/v",
                HEARTBEAT_SECS,
                DIAL_TIMEOUT_MS,
                FRAME_MAX,
            ),
            (
                "amqp://u:p@a:1/v?heartbeat=30",
                30,
                DIAL_TIMEOUT_MS,
                FRAME_MAX,
            ),
            (
                "amqp://u:p@a:1/v?connection_timeout=800",
                HEARTBEAT_SECS,
                800,
                FRAME_MAX,
            ),
            (
                "amqp://u:p@a:1/v?heartbeat=0&connection_timeout=1",
                0,
                1,
                FRAME_MAX,
            ),
            (
                "amqp://u:p@a:1/v?frame_max=131072",
                HEARTBEAT_SECS,
                DIAL_TIMEOUT_MS,
                131_072,
            ),
        ];
        for (url, heartbeat, dial, frame_max) in cases {
            let url = CredentialUrl::new(url);
            let uri = &parse(&[&url]).unwrap()[0];
            assert_eq!(
                (
                    uri.query.heartbeat,
                    uri.query.connection_timeout,
                    uri.query.frame_max
                ),
                (Some(heartbeat), Some(dial), Some(frame_max)),
                "{url:?}"
            );
        }
    }

    #[test]
    fn the_urls_share_one_login_and_vhost() {
        let check = |urls: &[&str]| {
            let urls: Vec<CredentialUrl> = urls.iter().map(|u| CredentialUrl::new(*u)).collect();
            parse(&urls.iter().collect::<Vec<_>>()).map(|uris| uris.len())
        };
        assert_eq!(check(&["amqp://u:p@a:1/v", "amqp://u:p@b:2/v"]), Ok(2));
        assert_eq!(check(&[]), Err(NodesError::Empty));
        let mixed = check(&["amqp://u:p@a:1/v", "amqp://u:other@b:2/v"]).unwrap_err();
        assert_eq!(
            mixed,
            NodesError::Mixed {
                url: "amqp://u:***@b:2/v".into(),
                what: "login"
            }
        );
        assert!(!mixed.to_string().contains("other"), "{mixed}");
        assert!(matches!(
            check(&["amqp://u:p@a:1/v", "amqp://u:p@b:2/w"]),
            Err(NodesError::Mixed { what: "vhost", .. })
        ));
        assert!(matches!(
            check(&["http://a"]),
            Err(NodesError::Invalid { .. })
        ));
    }
}
