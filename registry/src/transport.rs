//! The plain-http rule, pure, the one place it is decided: a registry is spoken to over plain
//! http when it is on loopback — `127.0.0.0/8`, `localhost`, `[::1]`, with or without a
//! port — or when the configuration lists it in `insecure_registries`; over https otherwise.
//! Loopback traffic never leaves the host, which is also why Docker itself trusts it.

use crate::reference::split_host_port;
use std::net::{IpAddr, Ipv6Addr};

/// How a registry is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Whether `registry` (`HOST`, `HOST:PORT`, `[IPv6]:PORT`) is on this host's loopback.
pub fn is_loopback(registry: &str) -> bool {
    let (host, _) = split_host_port(registry);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let address = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inside) => inside.parse::<Ipv6Addr>().map(IpAddr::V6),
        None => host.parse::<IpAddr>(),
    };
    // to_canonical: `[::ffff:127.0.0.1]` is IPv4 loopback written as IPv6.
    address.is_ok_and(|address| address.to_canonical().is_loopback())
}

/// The scheme for `registry`: http for loopback and for an exact entry of `insecure`
/// (`HOST[:PORT]` as the registry is written, host case-insensitive), https otherwise.
pub fn scheme_for(registry: &str, insecure: &[String]) -> Scheme {
    if is_loopback(registry)
        || insecure
            .iter()
            .any(|entry| entry.eq_ignore_ascii_case(registry))
    {
        Scheme::Http
    } else {
        Scheme::Https
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_in_every_spelling_is_plain_http() {
        let insecure = vec!["registry.internal:5000".to_owned()];
        for (registry, scheme) in [
            ("127.0.0.1:5000", Scheme::Http),
            ("127.0.0.2:5000", Scheme::Http),
            ("127.255.255.254", Scheme::Http),
            ("localhost:5000", Scheme::Http),
            ("LOCALHOST", Scheme::Http),
            ("localhost", Scheme::Http),
            ("[::1]:5000", Scheme::Http),
            ("[::1]", Scheme::Http),
            ("[0:0:0:0:0:0:0:1]:5000", Scheme::Http),
            ("[::ffff:127.0.0.1]:5000", Scheme::Http),
            ("registry.internal:5000", Scheme::Http),
            ("REGISTRY.internal:5000", Scheme::Http),
            // Listed with its port only: the bare host (port 443) is another registry.
            ("registry.internal", Scheme::Https),
            ("quay.io", Scheme::Https),
            ("128.0.0.1:5000", Scheme::Https),
            ("10.0.0.1:5000", Scheme::Https),
            ("[::2]:5000", Scheme::Https),
            ("localhost.example.org:5000", Scheme::Https),
            ("127.0.0.1.nip.io:5000", Scheme::Https),
            ("127.example:5000", Scheme::Https),
            ("::1", Scheme::Https),
        ] {
            assert_eq!(scheme_for(registry, &insecure), scheme, "{registry}");
        }
    }
}
