//! How much a client may ask: the budgets of token-revealing requests and
//! creates, and the cap on open connections per address.
//!
//! **Who a client is.** Its address: the socket's peer, or, when the peer is
//! in `--trusted-proxies`, the `X-Forwarded-For` entry the trusted hops vouch
//! for ([`access::TrustedProxies::client_ip`]); IPv6 by /64. When agent keys
//! are configured (`--agent-key-file` or `--agent-public-keys`) a request
//! whose `Authorization: Bearer` JWT verifies is the agent instead
//! ([`ClientKey::agent`] of its `sub`), so the agents of one contact centre
//! behind one NAT address do not share one budget. Without keys, or with a
//! credential that does not verify, it is the address. The credential is
//! never logged.
//!
//! **Probe budget** (`--probe-budget`, default 20 misses per 10 minutes): a
//! token-revealing request ([`Guard::Probe`]: its path names a session or a
//! user, whatever routes it: cookie, header, query or lookup) is
//! [`Budgets::check`]ed before anything else is done for it (no lookup,
//! nothing forwarded); a client whose budget is spent gets 429
//! `too_many_attempts` with `Retry-After`, hits included, until the window
//! ends. An answer of 401, 403, 404 or 410 to such a request is a miss and
//! spends one unit.
//!
//! [`Guard::Probe`]: crate::affinity::Guard::Probe
//!
//! **Create budget** (`--create-budget`, default 60 per minute): each Create
//! Session spends one unit before it is forwarded; when none is left, 429
//! `too_many_creates` with `Retry-After`.
//!
//! **Connections** (`--max-connections-per-client`, default 256): live
//! connections per socket peer address (IPv6 by /64), counted in a sharded
//! map whose entries go when their last connection closes. Behind a trusted
//! load balancer this counts the balancer's connections, not the clients'.
//!
//! Everything here is only touched by requests under a budget and by the
//! accept loop: the other requests pay nothing.

use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use access::{AgentKeys, Budgets, ClientKey, RetryAfter, TrustedProxies, Verifier};
use http::StatusCode;
#[cfg(test)]
use http::{header, HeaderMap, HeaderName};
use metrics::{Counter, Gauge};

use crate::config::{Config, ConfigError};
use crate::wire::headers::Headers;

/// Why the proxy refused something itself, for `proxy_rejected_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    TooManyAttempts,
    TooManyCreates,
    TooManyConnections,
    SessionAmbiguous,
    HeaderTimeout,
    /// A TLS handshake failed, was too slow (`--header-timeout`), or the
    /// client sent plain HTTP to the TLS port.
    TlsHandshake,
    /// 503 `server_busy`: no connection to the node could be had.
    ServerBusy,
    /// 400: a request head or chunked framing the proxy will not forward
    /// (the smuggling shapes of [`http1`]).
    Malformed,
    /// 431: a head over `--max-head-size` or `--max-headers`.
    HeadTooLarge,
    /// 413: a body over `--max-body-size`.
    BodyTooLarge,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::TooManyAttempts,
        Reason::TooManyCreates,
        Reason::TooManyConnections,
        Reason::SessionAmbiguous,
        Reason::HeaderTimeout,
        Reason::ServerBusy,
        Reason::Malformed,
        Reason::HeadTooLarge,
        Reason::BodyTooLarge,
        Reason::TlsHandshake,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooManyAttempts => "too_many_attempts",
            Reason::TooManyCreates => "too_many_creates",
            Reason::TooManyConnections => "too_many_connections",
            Reason::SessionAmbiguous => "session_ambiguous",
            Reason::HeaderTimeout => "header_timeout",
            Reason::ServerBusy => "server_busy",
            Reason::Malformed => "malformed",
            Reason::HeadTooLarge => "head_too_large",
            Reason::BodyTooLarge => "body_too_large",
            Reason::TlsHandshake => "tls_handshake",
        }
    }

    fn index(self) -> usize {
        match self {
            Reason::TooManyAttempts => 0,
            Reason::TooManyCreates => 1,
            Reason::TooManyConnections => 2,
            Reason::SessionAmbiguous => 3,
            Reason::HeaderTimeout => 4,
            Reason::ServerBusy => 5,
            Reason::Malformed => 6,
            Reason::HeadTooLarge => 7,
            Reason::BodyTooLarge => 8,
            Reason::TlsHandshake => 9,
        }
    }
}

/// Whether an answer to a token-revealing request is a miss: the token is
/// unknown or ended, or a credential or key was refused. (The proxy's own
/// 503 for a token no live node claims is a miss too: the router says so,
/// or a guesser could probe at will while any node is down.)
pub fn is_miss(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::GONE
    )
}

/// The budgets, the connection cap and their metrics.
#[derive(Debug)]
pub struct Limits {
    trusted: TrustedProxies,
    verifier: Option<Verifier>,
    probe: Budgets,
    create: Budgets,
    connections: Arc<ConnectionLimit>,
    rejected: [Counter; 10],
    probe_keys: Gauge,
    create_keys: Gauge,
}

impl Limits {
    /// Reads the agent keys, if any, and says at start what is configured;
    /// a budget turned `off` is warned about (it opts out of a security
    /// default).
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let keys = AgentKeys::load(
            config.agent_key_file.as_deref(),
            config.agent_public_keys.as_deref(),
        )
        .map_err(ConfigError::Invalid)?;
        let verifier = keys.map(|keys| Verifier::new(keys, config.agent_token_max_age));
        tracing::info!(
            probe_budget = %config.probe_budget,
            create_budget = %config.create_budget,
            max_connections_per_client = config.max_connections_per_client,
            header_timeout = ?config.header_timeout,
            trusted_proxies = !config.trusted_proxies.is_empty(),
            // Without keys every budget is per address, bearer or not.
            budgets_per_agent = verifier.is_some(),
            "client limits"
        );
        if config.probe_budget.is_off() {
            tracing::warn!("--probe-budget off: token guessing through the proxy is not limited");
        }
        if config.create_budget.is_off() {
            tracing::warn!("--create-budget off: any client may create sessions without limit");
        }
        if config.max_connections_per_client == 0 {
            tracing::warn!(
                "--max-connections-per-client 0: a client may hold any number of connections"
            );
        }
        let rejected = Reason::ALL
            .map(|reason| metrics::counter!("proxy_rejected_total", "reason" => reason.as_str()));
        Ok(Limits {
            trusted: config.trusted_proxies.clone(),
            verifier,
            probe: Budgets::new(config.probe_budget, config.limiter_capacity),
            create: Budgets::new(config.create_budget, config.limiter_capacity),
            connections: ConnectionLimit::new(config.max_connections_per_client),
            rejected,
            probe_keys: metrics::gauge!("proxy_limiter_keys", "budget" => "probe"),
            create_keys: metrics::gauge!("proxy_limiter_keys", "budget" => "create"),
        })
    }

    /// Whether `peer` is a `--trusted-proxies` hop.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted.trusts(peer)
    }

    /// Who a request under a budget comes from: the agent of a bearer token
    /// that verifies, else the client address.
    pub fn client_key(&self, peer: IpAddr, headers: &impl Headers) -> ClientKey {
        if let Some(verifier) = &self.verifier {
            if let Some(token) = bearer(headers) {
                if let Ok(claims) = verifier.verify(Some(token)) {
                    return ClientKey::agent(&claims.sub);
                }
            }
        }
        let forwarded = headers.values("x-forwarded-for");
        ClientKey::addr(self.trusted.client_ip_of(peer, forwarded))
    }

    /// Refuses a token-revealing request of a client whose budget is spent.
    pub fn check_probe(&self, key: &ClientKey) -> Result<(), RetryAfter> {
        self.probe.check(key)
    }

    /// Spends one unit of the probe budget (the answer was a miss); logs
    /// once when this spends the budget.
    pub fn miss(&self, key: &ClientKey) {
        let was_open = self.probe.check(key).is_ok();
        if let Err(retry) = self.probe.spend(key) {
            if was_open {
                tracing::info!(client = %key, retry_after_secs = retry.secs(), "probe budget spent: token-revealing requests refused (429)");
            }
        }
    }

    /// Takes one unit of the create budget, or refuses when none is left
    /// (then nothing is spent); logs once when this takes the last unit.
    pub fn take_create(&self, key: &ClientKey) -> Result<(), RetryAfter> {
        self.create.take(key)?;
        if let Err(retry) = self.create.check(key) {
            tracing::info!(client = %key, retry_after_secs = retry.secs(), "create budget spent: creates refused (429)");
        }
        Ok(())
    }

    /// Counts one refusal.
    pub fn reject(&self, reason: Reason) {
        if let Some(counter) = self.rejected.get(reason.index()) {
            counter.increment(1);
        }
    }

    /// The counter of one reason (for the connection I/O).
    pub fn rejected(&self, reason: Reason) -> Counter {
        self.rejected
            .get(reason.index())
            .cloned()
            .unwrap_or_else(Counter::noop)
    }

    pub fn connections(&self) -> &Arc<ConnectionLimit> {
        &self.connections
    }

    /// Updates `proxy_limiter_keys{budget}` (on a `/metrics` scrape).
    pub fn refresh_gauges(&self) {
        self.probe_keys.set(self.probe.len() as f64);
        self.create_keys.set(self.create.len() as f64);
    }
}

/// The credential of `Authorization: Bearer <token>` (the first
/// `Authorization` header; the scheme is case-insensitive).
fn bearer(headers: &impl Headers) -> Option<&str> {
    let value = std::str::from_utf8(headers.first("authorization")?)
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Shards of the connection map: accepts (one task) and closes (any
/// connection task) rarely meet on one lock.
const SHARDS: usize = 16;

/// Live connections per client address.
#[derive(Debug)]
pub struct ConnectionLimit {
    /// 0: no cap (nothing is counted).
    max: u32,
    hasher: RandomState,
    shards: [Mutex<HashMap<ClientKey, u32>>; SHARDS],
}

/// One counted connection; dropping it (the connection closed, tunnel
/// included) gives the slot back.
#[derive(Debug)]
pub struct ConnSlot {
    limit: Arc<ConnectionLimit>,
    key: ClientKey,
}

impl ConnectionLimit {
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(ConnectionLimit {
            max,
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        })
    }

    fn shard(&self, key: &ClientKey) -> &Mutex<HashMap<ClientKey, u32>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        &self.shards[index]
    }

    /// Counts a new connection of `key`: `Ok(None)` when there is no cap,
    /// `Err(())` when `key` already holds the maximum.
    #[allow(clippy::result_unit_err)]
    pub fn acquire(self: &Arc<Self>, key: ClientKey) -> Result<Option<ConnSlot>, ()> {
        if self.max == 0 {
            return Ok(None);
        }
        {
            let mut map = self
                .shard(&key)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match map.entry(key.clone()) {
                Entry::Occupied(mut entry) => {
                    if *entry.get() >= self.max {
                        return Err(());
                    }
                    *entry.get_mut() += 1;
                }
                Entry::Vacant(entry) => {
                    entry.insert(1);
                }
            }
        }
        Ok(Some(ConnSlot {
            limit: self.clone(),
            key,
        }))
    }

    /// Live connections of `key`.
    pub fn live(&self, key: &ClientKey) -> u32 {
        let map = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(key).copied().unwrap_or(0)
    }

    /// Addresses with at least one live connection.
    pub fn clients(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    fn release(&self, key: &ClientKey) {
        let mut map = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Entry::Occupied(mut entry) = map.entry(key.clone()) {
            if *entry.get() <= 1 {
                entry.remove();
            } else {
                *entry.get_mut() -= 1;
            }
        }
        // A flood of addresses grew the table; give the memory back once
        // they are gone.
        if map.capacity() > 1024 && map.len() < map.capacity() / 8 {
            let len = map.len();
            map.shrink_to(len.saturating_mul(2));
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.limit.release(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> ClientKey {
        ClientKey::addr(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn connections_are_capped_per_address_and_freed_on_drop() {
        let limit = ConnectionLimit::new(2);
        let a1 = limit.acquire(key(1)).unwrap();
        let a2 = limit.acquire(key(1)).unwrap();
        assert!(limit.acquire(key(1)).is_err(), "the third is refused");
        let b1 = limit.acquire(key(2)).unwrap();
        assert_eq!((limit.live(&key(1)), limit.live(&key(2))), (2, 1));
        drop(a1);
        let a3 = limit.acquire(key(1)).unwrap();
        assert_eq!(limit.clients(), 2);
        drop((a2, a3, b1));
        assert_eq!(limit.clients(), 0, "no entry is left behind");
        // IPv6 addresses of one /64 share a count.
        let v6 = |s: &str| ClientKey::addr(s.parse().unwrap());
        let _x = limit.acquire(v6("2001:db8::1")).unwrap();
        let _y = limit.acquire(v6("2001:db8::2")).unwrap();
        assert!(limit.acquire(v6("2001:db8::3")).is_err());
    }

    #[test]
    fn zero_means_no_cap() {
        let limit = ConnectionLimit::new(0);
        for _ in 0..1000 {
            assert!(matches!(limit.acquire(key(1)), Ok(None)));
        }
        assert_eq!(limit.clients(), 0);
    }

    #[test]
    fn many_addresses_leave_nothing_behind() {
        let limit = ConnectionLimit::new(1);
        let slots: Vec<_> = (0..5000u32)
            .map(|n| limit.acquire(ClientKey::addr(IpAddr::from(n.to_be_bytes()))))
            .collect();
        assert_eq!(limit.clients(), 5000);
        drop(slots);
        assert_eq!(limit.clients(), 0);
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn config(extra: &[&str]) -> Config {
        let mut args = vec!["sticky-proxy", "--node", "a=http://h:1"];
        args.extend_from_slice(extra);
        Config::from_args(args).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn who_a_client_is() {
        let dir = std::env::temp_dir().join(format!("sticky-proxy-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("agent.key");
        std::fs::write(&key_file, SECRET).unwrap();
        let with_keys = Limits::new(&config(&[
            "--trusted-proxies",
            "10.0.0.0/8",
            "--agent-key-file",
            key_file.to_str().unwrap(),
        ]))
        .unwrap();
        let without_keys = Limits::new(&config(&["--trusted-proxies", "10.0.0.0/8"])).unwrap();
        let ann = access::agent::mint(
            SECRET,
            &access::agent::MintRequest {
                sub: "ann",
                ttl: std::time::Duration::from_secs(60),
                session_token: None,
                roles: None,
            },
        )
        .unwrap();
        let bearer = format!("Bearer {ann}");
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        // (limits, peer, headers, key)
        type Case<'a> = (&'a Limits, &'a str, Vec<(&'a str, &'a str)>, ClientKey);
        let cases: Vec<Case> = vec![
            (
                &with_keys,
                "10.0.0.1",
                vec![],
                ClientKey::addr(ip("10.0.0.1")),
            ),
            (
                &with_keys,
                "10.0.0.1",
                vec![("x-forwarded-for", "6.6.6.6, 198.51.100.7")],
                ClientKey::addr(ip("198.51.100.7")),
            ),
            (
                &with_keys,
                "203.0.113.9",
                vec![("x-forwarded-for", "198.51.100.7")],
                ClientKey::addr(ip("203.0.113.9")),
            ),
            (
                &with_keys,
                "10.0.0.1",
                vec![
                    ("x-forwarded-for", "198.51.100.7"),
                    ("authorization", &bearer),
                ],
                ClientKey::agent("ann"),
            ),
            (
                &with_keys,
                "10.0.0.1",
                vec![
                    ("x-forwarded-for", "198.51.100.7"),
                    ("authorization", "Bearer not.a.jwt"),
                ],
                ClientKey::addr(ip("198.51.100.7")),
            ),
            (
                &without_keys,
                "10.0.0.1",
                vec![
                    ("x-forwarded-for", "198.51.100.7"),
                    ("authorization", &bearer),
                ],
                ClientKey::addr(ip("198.51.100.7")),
            ),
            (
                &with_keys,
                "2001:db8::1",
                vec![],
                ClientKey::addr(ip("2001:db8::ffff")),
            ),
        ];
        for (limits, peer, pairs, want) in cases {
            let got = limits.client_key(ip(peer), &headers(&pairs));
            assert_eq!(got, want, "{peer} {pairs:?}");
        }
        // A secret is no PEM file.
        let not_pem = Limits::new(&Config {
            agent_public_keys: Some(key_file.clone()),
            ..config(&[])
        });
        assert!(matches!(not_pem, Err(ConfigError::Invalid(_))));
        let missing = Limits::new(&config(&["--agent-key-file", "/nonexistent/key"]));
        assert!(matches!(missing, Err(ConfigError::Invalid(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn misses_spend_the_probe_budget_until_the_window_ends() {
        let limits = Limits::new(&config(&[
            "--probe-budget",
            "2/10m",
            "--create-budget",
            "1/1m",
        ]))
        .unwrap();
        let guesser = key(1);
        limits.miss(&guesser);
        assert_eq!(limits.check_probe(&guesser), Ok(()));
        limits.miss(&guesser);
        let refused = limits.check_probe(&guesser).unwrap_err();
        assert_eq!(refused.secs(), 600);
        assert_eq!(limits.check_probe(&key(2)), Ok(()), "others are unaffected");
        tokio::time::advance(std::time::Duration::from_secs(600)).await;
        assert_eq!(limits.check_probe(&guesser), Ok(()), "recovered");

        assert_eq!(limits.take_create(&guesser), Ok(()));
        assert_eq!(limits.take_create(&guesser).unwrap_err().secs(), 60);
        tokio::time::advance(std::time::Duration::from_secs(60)).await;
        assert_eq!(limits.take_create(&guesser), Ok(()));
    }

    #[test]
    fn bearer_tokens() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["Bearer abc.def.ghi"], Some("abc.def.ghi")),
            (&["bearer  abc "], Some("abc")),
            (&["Basic eDp5"], None),
            (&["Bearer"], None),
            (&["Bearer   "], None),
            (&[], None),
        ];
        for (values, want) in cases {
            let mut headers = HeaderMap::new();
            for value in *values {
                headers.append(header::AUTHORIZATION, value.parse().unwrap());
            }
            assert_eq!(bearer(&headers), *want, "{values:?}");
        }
    }

    #[test]
    fn misses() {
        for (status, miss) in [
            (200, false),
            (401, true),
            (403, true),
            (404, true),
            (409, false),
            (410, true),
            (429, false),
            (503, false),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(is_miss(status), miss, "{status}");
        }
        // (The proxy's own "no live node has it, another is down" is a miss
        // too: see route's `session_unreachable`.)
    }
}
