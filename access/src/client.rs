//! Who a request comes from.
//!
//! The address is the socket's peer, unless that peer is a trusted proxy
//! (`--trusted-proxies`): then `X-Forwarded-For` is read from the right, each
//! trusted hop vouching for the entry to its left, and the first address not
//! vouched for by a trusted hop is the client. Entries left of it are
//! whatever the client wrote and are ignored, so a forged header from an
//! untrusted peer changes nothing.
//!
//! Budgets key IPv4 addresses whole and IPv6 addresses by their /64: one
//! host usually holds a whole /64, so keying by address would let it change
//! its address at will.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

/// What a budget is kept for: an address (IPv6 by /64), or an agent whose
/// credential verified (so agents sharing one NAT address do not share one
/// budget).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Addr(IpAddr),
    Agent(Arc<str>),
}

impl ClientKey {
    /// The key of a client address.
    pub fn addr(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let masked = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(masked.into())
                }
            },
            v4 => v4,
        };
        ClientKey::Addr(ip)
    }

    pub fn agent(sub: &str) -> Self {
        ClientKey::Agent(Arc::from(sub))
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::Addr(IpAddr::V6(v6)) => write!(f, "{v6}/64"),
            ClientKey::Addr(ip) => write!(f, "{ip}"),
            ClientKey::Agent(sub) => write!(f, "agent {sub}"),
        }
    }
}

/// The peers whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR blocks
    /// (`127.0.0.1, 10.0.0.0/8, ::1`).
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("not an address or CIDR block: {entry}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer`, or the `X-Forwarded-For` entry the
    /// trusted hops vouch for. `forwarded` are the header's values in order.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let entries: Vec<&str> = forwarded
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match parse_forwarded_ip(entry) {
                Some(ip) => client = ip,
                None => break,
            }
        }
        client
    }
}

impl TrustedProxies {
    /// [`TrustedProxies::client_ip`] over raw header values: a value that is
    /// not ASCII is read with its bad bytes replaced (that entry then parses
    /// as no address, and the walk stops there), rather than dropped whole —
    /// dropping it would make the client its own trusted front.
    pub fn client_ip_of<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let values: Vec<std::borrow::Cow<'a, str>> =
            forwarded.into_iter().map(String::from_utf8_lossy).collect();
        self.client_ip(peer, values.iter().map(|v| v.as_ref()))
    }
}

/// An `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    entry.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        // (peer, X-Forwarded-For values, the client)
        let cases: &[(&str, &[&str], &str)] = &[
            ("203.0.113.9", &["1.2.3.4"], "203.0.113.9"),
            ("127.0.0.1", &[], "127.0.0.1"),
            ("127.0.0.1", &["198.51.100.7"], "198.51.100.7"),
            ("127.0.0.1", &["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
            ("127.0.0.1", &["6.6.6.6", "198.51.100.7"], "198.51.100.7"),
            (
                "127.0.0.1",
                &["6.6.6.6, 198.51.100.7, 10.1.1.1"],
                "198.51.100.7",
            ),
            ("127.0.0.1", &["garbage, 198.51.100.7"], "198.51.100.7"),
            ("127.0.0.1", &["198.51.100.7, garbage"], "127.0.0.1"),
            ("127.0.0.1", &["198.51.100.7:5555"], "198.51.100.7"),
            ("127.0.0.1", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("::ffff:127.0.0.1", &["198.51.100.7"], "198.51.100.7"),
        ];
        for (peer, xff, want) in cases {
            let got = trusted.client_ip(ip(peer), xff.iter().copied());
            assert_eq!(got, ip(want), "peer {peer}, xff {xff:?}");
        }
        // A non-ASCII entry is a boundary, not a reason to drop the header.
        let raw: [&[u8]; 1] = ["\u{e9}, 198.51.100.7".as_bytes()];
        assert_eq!(
            trusted.client_ip_of(ip("127.0.0.1"), raw),
            ip("198.51.100.7")
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("127.0.0.1"), ["1.2.3.4"]),
            ip("127.0.0.1")
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("nope").is_err());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(
            ClientKey::addr(ip("2001:db8:1:2:aaaa::1")),
            ClientKey::addr(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            ClientKey::addr(ip("2001:db8:1:2::1")),
            ClientKey::addr(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::addr(ip("::ffff:1.2.3.4")),
            ClientKey::addr(ip("1.2.3.4"))
        );
    }
}
