//! Every setting, defined once: the table at the bottom of this file.
//!
//! An entry is a doc comment (the `--help` text and the [`Config`] field's
//! doc), an ordinary clap `#[arg(…)]` (env var, value name, parser; `long` is
//! added), an optional ordinary serde `#[serde(…)]` (how the TOML file spells
//! the value, when it is not the type's own form), then
//! `name: Type = default;`. An entry without `= default` is optional: its
//! [`Config`] field is `Option<Type>`. A default may name the settings above
//! it (they are resolved in table order).
//!
//! From the table, `settings!` writes the three things that used to be
//! kept in step by hand:
//!
//! - [`Settings`]: the flags (`clap::Args`), every field an `Option`, so a
//!   merge can tell "given" from "default";
//! - `FileConfig`: the TOML file (kebab-case keys as the flags, unknown keys
//!   refused), the same fields plus the `[[node]]` entries;
//! - [`Config`]: the resolved values, with [`Settings::or`] (per field: this
//!   layer if given, else the lower one) and [`Settings::resolve`] (the
//!   defaults filled in).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use access::{Budget, TrustedProxies};

use super::defaults::*;
use super::nodes::{FileNode, NodeSpec};
use super::nofile::{connection_cap, nofile_soft_limit};
use super::values::*;

/// The resolved type of an entry: `Type`, or `Option<Type>` without a default.
macro_rules! resolved_type {
    ($ty:ty) => { Option<$ty> };
    ($ty:ty, $default:expr) => { $ty };
}

/// The resolved value of an entry: the given one, else the default.
macro_rules! resolved_value {
    ($given:expr) => {
        $given
    };
    ($given:expr, $default:expr) => {
        match $given {
            Some(value) => value,
            None => $default,
        }
    };
}

macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        #[arg($($arg:tt)*)]
        $(#[serde($($serde:tt)*)])?
        $name:ident: $ty:ty $(= $default:expr)?;
    )*) => {
        /// Every setting as given on one layer (the flags with their
        /// `STICKY_PROXY_*` variables, or the file); `None` where not given.
        #[derive(Debug, Default, Clone, clap::Args)]
        pub struct Settings {
            $(
                $(#[doc = $doc])*
                #[arg(long, $($arg)*)]
                pub $name: Option<$ty>,
            )*
        }

        /// The TOML file: the settings, and the `[[node]]` entries.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
        pub(super) struct FileConfig {
            #[serde(rename = "node")]
            pub(super) nodes: Vec<FileNode>,
            $(
                $(#[serde($($serde)*)])?
                $name: Option<$ty>,
            )*
        }

        /// The resolved configuration.
        #[derive(Debug, Clone)]
        pub struct Config {
            /// All nodes: the file's merged with the `--node` flags.
            pub nodes: Vec<NodeSpec>,
            /// Nodes given as flags; a reload merges them over the file again.
            pub node_flags: Vec<NodeSpec>,
            /// The file to re-read on reload.
            pub config_file: Option<PathBuf>,
            $(
                $(#[doc = $doc])*
                pub $name: resolved_type!($ty $(, $default)?),
            )*
        }

        impl Settings {
            /// The settings' names (their flags and keys in kebab-case).
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// Each setting from `self` if given there, else from `lower`.
            pub fn or(self, lower: Settings) -> Settings {
                Settings {
                    $($name: self.$name.or(lower.$name),)*
                }
            }

            /// The defaults filled in, around the given nodes.
            pub(super) fn resolve(
                self,
                nodes: Vec<NodeSpec>,
                node_flags: Vec<NodeSpec>,
                config_file: Option<PathBuf>,
            ) -> Config {
                $(let $name = resolved_value!(self.$name $(, $default)?);)*
                Config {
                    nodes,
                    node_flags,
                    config_file,
                    $($name,)*
                }
            }
        }

        impl FileConfig {
            pub(super) fn into_parts(self) -> (Vec<FileNode>, Settings) {
                (self.nodes, Settings { $($name: self.$name,)* })
            }
        }
    };
}

settings! {
    /// Address to accept client connections on [default: 127.0.0.1:8700].
    #[arg(env = "STICKY_PROXY_LISTEN", value_name = "ADDR")]
    listen: SocketAddr = default_listen();

    /// Address of the admin listener (`/metrics`, `/nodes`); off when absent.
    #[arg(env = "STICKY_PROXY_ADMIN_LISTEN", value_name = "ADDR")]
    admin_listen: SocketAddr;

    /// `Origin` sent with owner lookups [default: http://<listen addr>].
    #[arg(env = "STICKY_PROXY_LOOKUP_ORIGIN", value_name = "URL")]
    lookup_origin: String;

    /// Context path of the co-browse application on the nodes [default: /cobrowse].
    #[arg(env = "STICKY_PROXY_CONTEXT_PATH", value_name = "PATH", value_parser = parse_context_path)]
    #[serde(deserialize_with = "de_context_path")]
    context_path: String = shared_types::names::DEFAULT_CONTEXT_PATH.to_owned();

    /// Time between two health checks of a node [default: 1s].
    #[arg(env = "STICKY_PROXY_HEALTH_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    health_interval: Duration = DEFAULT_HEALTH_INTERVAL;

    /// Time a health check may take, at most --health-interval [default: 500ms, or the interval if shorter].
    #[arg(env = "STICKY_PROXY_HEALTH_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    // A short interval given alone shortens the default timeout too.
    health_timeout: Duration = DEFAULT_HEALTH_TIMEOUT.min(health_interval);

    /// Consecutive good checks that bring a down node back [default: 2].
    #[arg(env = "STICKY_PROXY_RISE", value_name = "N")]
    rise: u32 = DEFAULT_RISE;

    /// Consecutive failed checks that take a node down [default: 2].
    #[arg(env = "STICKY_PROXY_FALL", value_name = "N")]
    fall: u32 = DEFAULT_FALL;

    /// How long a found session owner is remembered [default: 10m].
    #[arg(env = "STICKY_PROXY_LOOKUP_CACHE_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    lookup_cache_ttl: Duration = DEFAULT_LOOKUP_CACHE_TTL;

    /// How many session owners are remembered at most [default: 100000].
    #[arg(env = "STICKY_PROXY_LOOKUP_CACHE_SIZE", value_name = "N")]
    lookup_cache_size: u64 = DEFAULT_LOOKUP_CACHE_SIZE;

    /// Time an owner lookup (all nodes asked in parallel) may take [default: 1s].
    #[arg(env = "STICKY_PROXY_LOOKUP_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    lookup_timeout: Duration = DEFAULT_LOOKUP_TIMEOUT;

    /// Time to establish a TCP connection to a node [default: 1s].
    #[arg(env = "STICKY_PROXY_CONNECT_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    connect_timeout: Duration = DEFAULT_CONNECT_TIMEOUT;

    /// Time to wait for a node's response head (not its body) [default: 90s].
    #[arg(env = "STICKY_PROXY_UPSTREAM_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    upstream_timeout: Duration = DEFAULT_UPSTREAM_TIMEOUT;

    /// Largest request head (request line and headers), e.g. `65536`, `64KiB` [default: 64KiB].
    #[arg(env = "STICKY_PROXY_MAX_HEAD_SIZE", value_name = "BYTES", value_parser = parse_byte_size)]
    #[serde(deserialize_with = "de_byte_size")]
    max_head_size: usize = DEFAULT_MAX_HEAD_SIZE;

    /// Largest request body the proxy forwards, e.g. `1MiB`; a larger one
    /// is answered 413 by the proxy itself, before any node is contacted
    /// [default: 1MiB].
    #[arg(env = "STICKY_PROXY_MAX_BODY_SIZE", value_name = "BYTES", value_parser = parse_byte_size)]
    #[serde(deserialize_with = "de_byte_size")]
    max_body_size: usize = DEFAULT_MAX_BODY_SIZE;

    /// Most header lines in a request head, 1 to 1000; more is answered 431
    /// [default: 100].
    #[arg(env = "STICKY_PROXY_MAX_HEADERS", value_name = "N")]
    max_headers: usize = DEFAULT_MAX_HEADERS;

    /// Client connections the proxy holds at once; at the cap the accept
    /// loop pauses (new clients wait in the listen backlog) until one
    /// closes. At most what the open-file limit allows: each client
    /// connection may hold an upstream one, and 256 descriptors are kept for
    /// health checks, lookups and listeners [default: (RLIMIT_NOFILE soft
    /// limit − 256) / 2].
    #[arg(env = "STICKY_PROXY_MAX_CONNECTIONS", value_name = "N")]
    max_connections: usize = connection_cap(nofile_soft_limit());

    /// How long an idle keep-alive client connection may wait for its next
    /// request before it is closed, like nginx's `keepalive_timeout`; also
    /// the longest any request head may take [default: 75s].
    #[arg(env = "STICKY_PROXY_KEEP_ALIVE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    keep_alive_timeout: Duration = DEFAULT_KEEP_ALIVE_TIMEOUT;

    /// Time a request head may take, from its first byte (from the accept,
    /// for a connection's first request) to its blank line; a slower head
    /// closes the connection, like nginx's `client_header_timeout`
    /// [default: 10s].
    #[arg(env = "STICKY_PROXY_HEADER_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    header_timeout: Duration = DEFAULT_HEADER_TIMEOUT;

    /// PEM file with the certificate chain to serve https with (leaf
    /// first); needs --tls-key; re-read on SIGHUP [default: none: plain http].
    #[arg(env = "STICKY_PROXY_TLS_CERT", value_name = "FILE")]
    tls_cert: PathBuf;

    /// PEM file with the private key of --tls-cert; re-read on SIGHUP
    /// [default: none].
    #[arg(env = "STICKY_PROXY_TLS_KEY", value_name = "FILE")]
    tls_key: PathBuf;

    /// Peers whose `X-Forwarded-For` is believed: comma-separated addresses
    /// and CIDR blocks (`10.0.0.0/8, ::1`). The client is then the rightmost
    /// entry no trusted hop vouches for; from any other peer the socket
    /// address is the client and the header is ignored [default: none].
    #[arg(env = "STICKY_PROXY_TRUSTED_PROXIES", value_name = "LIST", value_parser = TrustedProxies::parse)]
    #[serde(deserialize_with = "de_trusted_proxies")]
    trusted_proxies: TrustedProxies = TrustedProxies::default();

    /// HS256 secret (a file of at least 32 bytes) to verify agent
    /// credentials with, so that requests with a valid `Authorization:
    /// Bearer` JWT are budgeted per agent (`sub`) instead of per address.
    /// Without agent keys every budget is per address [default: none].
    #[arg(env = "STICKY_PROXY_AGENT_KEY_FILE", value_name = "FILE")]
    agent_key_file: PathBuf;

    /// PEM file of Ed25519 or RSA public keys (several for rotation) to
    /// verify agent credentials with, instead of --agent-key-file [default: none].
    #[arg(env = "STICKY_PROXY_AGENT_PUBLIC_KEYS", value_name = "FILE")]
    agent_public_keys: PathBuf;

    /// Longest accepted lifetime of an agent credential [default: 12h].
    #[arg(env = "STICKY_PROXY_AGENT_TOKEN_MAX_AGE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    agent_token_max_age: Duration = DEFAULT_AGENT_TOKEN_MAX_AGE;

    /// Misses (401, 403, 404 or 410 answers to token-revealing requests:
    /// `/sessions/{token}…`, `/users/{userToken}…`) allowed per client
    /// (address, or agent) in a window; then those requests get 429
    /// `too_many_attempts` until the window ends: `COUNT/DURATION`, or `off`
    /// [default: 20/10m].
    #[arg(env = "STICKY_PROXY_PROBE_BUDGET", value_name = "COUNT/DURATION", value_parser = parse_budget)]
    #[serde(deserialize_with = "de_budget")]
    probe_budget: Budget = DEFAULT_PROBE_BUDGET;

    /// Create Session requests allowed per client in a window before 429
    /// `too_many_creates`: `COUNT/DURATION`, or `off` [default: 60/1m].
    #[arg(env = "STICKY_PROXY_CREATE_BUDGET", value_name = "COUNT/DURATION", value_parser = parse_budget)]
    #[serde(deserialize_with = "de_budget")]
    create_budget: Budget = DEFAULT_CREATE_BUDGET;

    /// Clients remembered per budget at most (bounds the limiters' memory;
    /// beyond it the least used are forgotten) [default: 1000000].
    #[arg(env = "STICKY_PROXY_LIMITER_CAPACITY", value_name = "N")]
    limiter_capacity: u64 = DEFAULT_LIMITER_CAPACITY;

    /// Open connections per client address (the socket's peer, IPv6 by
    /// /64; behind a load balancer that is the balancer); one more gets 429
    /// `too_many_connections` and is closed; 0 turns the cap off [default: 256].
    #[arg(env = "STICKY_PROXY_MAX_CONNECTIONS_PER_CLIENT", value_name = "N")]
    max_connections_per_client: u32 = DEFAULT_MAX_CONNECTIONS_PER_CLIENT;

    /// How long a node removed from the configuration by a reload still
    /// serves the requests bound to it (it gets no new sessions), unless its
    /// health answers report no live session earlier; then its bound
    /// requests get 503 `session_server_unavailable` [default: 10m].
    #[arg(env = "STICKY_PROXY_RETIRE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    retire_timeout: Duration = DEFAULT_RETIRE_TIMEOUT;

    /// Upstream HTTP connections the proxy holds to one node at most (in use
    /// or idle; WebSocket tunnels do not count); a request that finds none
    /// free waits briefly, then gets 503 `server_busy`. Keep it at most the
    /// node's `--listen-backlog`; 0 turns the cap off [default: 0: connects in
    /// progress are limited instead, which protects the backlog without
    /// refusing held long-polls].
    #[arg(env = "STICKY_PROXY_MAX_CONNS_PER_NODE", value_name = "N")]
    max_conns_per_node: u32 = DEFAULT_MAX_CONNS_PER_NODE;

    /// How much of a CometD long-polling POST body is read ahead to find
    /// the `clientId` that names the node (the rest is streamed on), e.g.
    /// `16KiB` [default: 256KiB, a node's largest batch].
    #[arg(env = "STICKY_PROXY_COMETD_PEEK_LIMIT", value_name = "BYTES", value_parser = parse_byte_size)]
    #[serde(deserialize_with = "de_byte_size")]
    cometd_peek_limit: usize = DEFAULT_COMETD_PEEK_LIMIT;

    /// Time in-flight requests get to finish on shutdown [default: 10s].
    #[arg(env = "STICKY_PROXY_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    shutdown_timeout: Duration = DEFAULT_SHUTDOWN_TIMEOUT;

    /// Runtime worker threads [default: number of cores].
    #[arg(env = "STICKY_PROXY_WORKERS", value_name = "N")]
    workers: usize = default_workers();
}
