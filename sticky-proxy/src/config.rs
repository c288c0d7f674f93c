//! Configuration: command-line flags (each also read from an environment
//! variable `STICKY_PROXY_<FLAG>`) merged over an optional TOML file, with the
//! defaults filled in, validated into one [`Config`].
//!
//! Precedence: flag (or its env var) > file > default. Nodes are the union of
//! the file's `[[node]]` entries and the `--node` flags; a `--node` with the
//! same name as a file node replaces it. On reload only the file is read
//! again (and the `--node` flags merged over it again); other settings need a
//! restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use access::{Budget, TrustedProxies};
use clap::Parser;
use http::uri::Authority;
use serde::{Deserialize, Deserializer};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_millis(500);
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 2;
pub const DEFAULT_LOOKUP_CACHE_TTL: Duration = Duration::from_secs(600);
pub const DEFAULT_LOOKUP_CACHE_SIZE: u64 = 100_000;
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(90);
pub const DEFAULT_MAX_HEAD_SIZE: usize = 64 * 1024;
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(75);
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_AGENT_TOKEN_MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// `--probe-budget`: misses (401, 403, 404, 410 to a token-revealing
/// request) per client before 429 `too_many_attempts`.
pub const DEFAULT_PROBE_BUDGET: Budget = Budget {
    limit: 20,
    window: Duration::from_secs(600),
};
/// `--create-budget`: Create Session requests per client.
pub const DEFAULT_CREATE_BUDGET: Budget = Budget {
    limit: 60,
    window: Duration::from_secs(60),
};
pub const DEFAULT_LIMITER_CAPACITY: u64 = 1_000_000;
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: u32 = 256;
/// `--retire-timeout`: how long a node removed by a reload keeps serving
/// its bound requests at most.
pub const DEFAULT_RETIRE_TIMEOUT: Duration = Duration::from_secs(600);
/// `--max-conns-per-node`: no cap on open connections by default (a held
/// long-poll holds one for its whole hold); the node's backlog is protected
/// by the limit on connects in progress (`pool::MAX_DIALS`).
pub const DEFAULT_MAX_CONNS_PER_NODE: u32 = 0;
/// `--cometd-peek-limit`: how much of a CometD POST body is read ahead for
/// its `clientId`. As much as a node accepts in one batch: the CometD JS
/// client writes `clientId` after `data`, so a cookie-less publish of a large
/// page snapshot has it near the end, and must still find its node. Only
/// what comes before the `clientId` is held, and only for CometD POSTs.
pub const DEFAULT_COMETD_PEEK_LIMIT: usize = 256 * 1024;
/// Smallest accepted `--max-head-size`: below this even ordinary browser
/// requests would be refused.
pub const MIN_MAX_HEAD_SIZE: usize = 1024;
/// Bounds of `--cometd-peek-limit`: below the smallest connect message, or
/// above the largest batch a node accepts (256 KiB), it makes no sense.
pub const MIN_COMETD_PEEK_LIMIT: usize = 256;
pub const MAX_COMETD_PEEK_LIMIT: usize = 256 * 1024;

/// The command line. Every flag is optional here so that the merge can tell
/// "given" from "default".
#[derive(Debug, Default, Parser)]
#[command(name = "sticky-proxy", version, about, args_override_self = true)]
pub struct Cli {
    /// Address to accept client connections on.
    #[arg(long, env = "STICKY_PROXY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// A session node, `NAME=http://host:port`; repeatable (comma-separated
    /// in the environment variable).
    #[arg(
        long = "node",
        env = "STICKY_PROXY_NODE",
        value_name = "NAME=URL",
        value_delimiter = ','
    )]
    pub nodes: Vec<String>,

    /// TOML file with `[[node]]` entries and any of the other settings
    /// (kebab-case keys, as the flags); re-read on SIGHUP.
    #[arg(long, env = "STICKY_PROXY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address of the admin listener (`/metrics`, `/nodes`); off when absent.
    #[arg(long, env = "STICKY_PROXY_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,

    /// `Origin` sent with owner lookups [default: http://<listen addr>].
    #[arg(long, env = "STICKY_PROXY_LOOKUP_ORIGIN", value_name = "URL")]
    pub lookup_origin: Option<String>,

    /// Context path of the co-browse application on the nodes [default: /cobrowse].
    #[arg(long, env = "STICKY_PROXY_CONTEXT_PATH", value_name = "PATH")]
    pub context_path: Option<String>,

    /// Time between two health checks of a node [default: 1s].
    #[arg(long, env = "STICKY_PROXY_HEALTH_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub health_interval: Option<Duration>,

    /// Time a health check may take, at most --health-interval [default: 500ms, or the interval if shorter].
    #[arg(long, env = "STICKY_PROXY_HEALTH_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub health_timeout: Option<Duration>,

    /// Consecutive good checks that bring a down node back [default: 2].
    #[arg(long, env = "STICKY_PROXY_RISE", value_name = "N")]
    pub rise: Option<u32>,

    /// Consecutive failed checks that take a node down [default: 2].
    #[arg(long, env = "STICKY_PROXY_FALL", value_name = "N")]
    pub fall: Option<u32>,

    /// How long a found session owner is remembered [default: 10m].
    #[arg(long, env = "STICKY_PROXY_LOOKUP_CACHE_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lookup_cache_ttl: Option<Duration>,

    /// How many session owners are remembered at most [default: 100000].
    #[arg(long, env = "STICKY_PROXY_LOOKUP_CACHE_SIZE", value_name = "N")]
    pub lookup_cache_size: Option<u64>,

    /// Time an owner lookup (all nodes asked in parallel) may take [default: 1s].
    #[arg(long, env = "STICKY_PROXY_LOOKUP_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lookup_timeout: Option<Duration>,

    /// Time to establish a TCP connection to a node [default: 1s].
    #[arg(long, env = "STICKY_PROXY_CONNECT_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub connect_timeout: Option<Duration>,

    /// Time to wait for a node's response head (not its body) [default: 90s].
    #[arg(long, env = "STICKY_PROXY_UPSTREAM_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Option<Duration>,

    /// Largest request head (request line and headers), e.g. `65536`, `64KiB` [default: 64KiB].
    #[arg(long, env = "STICKY_PROXY_MAX_HEAD_SIZE", value_name = "BYTES", value_parser = parse_byte_size)]
    pub max_head_size: Option<usize>,

    /// How long an idle keep-alive client connection may wait for its next
    /// request before it is closed, like nginx's `keepalive_timeout`; also
    /// the longest any request head may take [default: 75s].
    #[arg(long, env = "STICKY_PROXY_KEEP_ALIVE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub keep_alive_timeout: Option<Duration>,

    /// Time a request head may take, from its first byte (from the accept,
    /// for a connection's first request) to its blank line; a slower head
    /// closes the connection, like nginx's `client_header_timeout`
    /// [default: 10s].
    #[arg(long, env = "STICKY_PROXY_HEADER_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub header_timeout: Option<Duration>,

    /// Peers whose `X-Forwarded-For` is believed: comma-separated addresses
    /// and CIDR blocks (`10.0.0.0/8, ::1`). The client is then the rightmost
    /// entry no trusted hop vouches for; from any other peer the socket
    /// address is the client and the header is ignored [default: none].
    #[arg(long, env = "STICKY_PROXY_TRUSTED_PROXIES", value_name = "LIST", value_parser = TrustedProxies::parse)]
    pub trusted_proxies: Option<TrustedProxies>,

    /// HS256 secret (a file of at least 32 bytes) to verify agent
    /// credentials with, so that requests with a valid `Authorization:
    /// Bearer` JWT are budgeted per agent (`sub`) instead of per address.
    /// Without agent keys every budget is per address [default: none].
    #[arg(long, env = "STICKY_PROXY_AGENT_KEY_FILE", value_name = "FILE")]
    pub agent_key_file: Option<PathBuf>,

    /// PEM file of Ed25519 or RSA public keys (several for rotation) to
    /// verify agent credentials with, instead of --agent-key-file [default: none].
    #[arg(long, env = "STICKY_PROXY_AGENT_PUBLIC_KEYS", value_name = "FILE")]
    pub agent_public_keys: Option<PathBuf>,

    /// PEM certificate chain (leaf first): serve HTTPS on --listen, with
    /// --tls-key; re-read on SIGHUP [default: plain HTTP].
    #[arg(long, env = "STICKY_PROXY_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1); re-read on
    /// SIGHUP.
    #[arg(long, env = "STICKY_PROXY_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Longest accepted lifetime of an agent credential [default: 12h].
    #[arg(long, env = "STICKY_PROXY_AGENT_TOKEN_MAX_AGE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub agent_token_max_age: Option<Duration>,

    /// Misses (401, 403, 404 or 410 answers to token-revealing requests:
    /// `/sessions/{token}…`, `/users/{userToken}…`) allowed per client
    /// (address, or agent) in a window; then those requests get 429
    /// `too_many_attempts` until the window ends: `COUNT/DURATION`, or `off`
    /// [default: 20/10m].
    #[arg(long, env = "STICKY_PROXY_PROBE_BUDGET", value_name = "COUNT/DURATION", value_parser = parse_budget)]
    pub probe_budget: Option<Budget>,

    /// Create Session requests allowed per client in a window before 429
    /// `too_many_creates`: `COUNT/DURATION`, or `off` [default: 60/1m].
    #[arg(long, env = "STICKY_PROXY_CREATE_BUDGET", value_name = "COUNT/DURATION", value_parser = parse_budget)]
    pub create_budget: Option<Budget>,

    /// Clients remembered per budget at most (bounds the limiters' memory;
    /// beyond it the least used are forgotten) [default: 1000000].
    #[arg(long, env = "STICKY_PROXY_LIMITER_CAPACITY", value_name = "N")]
    pub limiter_capacity: Option<u64>,

    /// Open connections per client address (the socket's peer, IPv6 by
    /// /64; behind a load balancer that is the balancer); one more gets 429
    /// `too_many_connections` and is closed; 0 turns the cap off [default: 256].
    #[arg(
        long,
        env = "STICKY_PROXY_MAX_CONNECTIONS_PER_CLIENT",
        value_name = "N"
    )]
    pub max_connections_per_client: Option<u32>,

    /// How long a node removed from the configuration by a reload still
    /// serves the requests bound to it (it gets no new sessions), unless its
    /// health answers report no live session earlier; then its bound
    /// requests get 503 `session_server_unavailable` [default: 10m].
    #[arg(long, env = "STICKY_PROXY_RETIRE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub retire_timeout: Option<Duration>,

    /// Upstream HTTP connections the proxy holds to one node at most (in use
    /// or idle; WebSocket tunnels do not count); a request that finds none
    /// free waits briefly, then gets 503 `server_busy`. Keep it at most the
    /// node's `--listen-backlog`; 0 turns the cap off [default: 0: connects in
    /// progress are limited instead, which protects the backlog without
    /// refusing held long-polls].
    #[arg(long, env = "STICKY_PROXY_MAX_CONNS_PER_NODE", value_name = "N")]
    pub max_conns_per_node: Option<u32>,

    /// How much of a CometD long-polling POST body is read ahead to find
    /// the `clientId` that names the node (the rest is streamed on), e.g.
    /// `16KiB` [default: 256KiB, a node's largest batch].
    #[arg(long, env = "STICKY_PROXY_COMETD_PEEK_LIMIT", value_name = "BYTES", value_parser = parse_byte_size)]
    pub cometd_peek_limit: Option<usize>,

    /// Time in-flight requests get to finish on shutdown [default: 10s].
    #[arg(long, env = "STICKY_PROXY_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Option<Duration>,

    /// Runtime worker threads [default: number of cores].
    #[arg(long, env = "STICKY_PROXY_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
}

/// The TOML file. Keys are the flag names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<SocketAddr>,
    #[serde(default, rename = "node")]
    nodes: Vec<FileNode>,
    admin_listen: Option<SocketAddr>,
    lookup_origin: Option<String>,
    context_path: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    health_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    health_timeout: Option<Duration>,
    rise: Option<u32>,
    fall: Option<u32>,
    #[serde(default, deserialize_with = "duration")]
    lookup_cache_ttl: Option<Duration>,
    lookup_cache_size: Option<u64>,
    #[serde(default, deserialize_with = "duration")]
    lookup_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    upstream_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "byte_size")]
    max_head_size: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    keep_alive_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    header_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    shutdown_timeout: Option<Duration>,
    workers: Option<usize>,
    #[serde(default, deserialize_with = "trusted_proxies")]
    trusted_proxies: Option<TrustedProxies>,
    agent_key_file: Option<PathBuf>,
    agent_public_keys: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default, deserialize_with = "duration")]
    agent_token_max_age: Option<Duration>,
    #[serde(default, deserialize_with = "budget")]
    probe_budget: Option<Budget>,
    #[serde(default, deserialize_with = "budget")]
    create_budget: Option<Budget>,
    limiter_capacity: Option<u64>,
    max_connections_per_client: Option<u32>,
    #[serde(default, deserialize_with = "duration")]
    retire_timeout: Option<Duration>,
    max_conns_per_node: Option<u32>,
    #[serde(default, deserialize_with = "byte_size")]
    cometd_peek_limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNode {
    name: String,
    url: String,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn budget<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Budget>, D::Error> {
    let text = String::deserialize(d)?;
    parse_budget(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `trusted-proxies = "10.0.0.0/8, ::1"` or `["10.0.0.0/8", "::1"]`.
fn trusted_proxies<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TrustedProxies>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let list = match Raw::deserialize(d)? {
        Raw::One(text) => text,
        Raw::Many(items) => items.join(","),
    };
    TrustedProxies::parse(&list)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `20/10m`, `60/1m`, `off`.
pub fn parse_budget(text: &str) -> Result<Budget, String> {
    text.parse()
}

fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => usize::try_from(n)
            .map(Some)
            .map_err(serde::de::Error::custom),
        Raw::Text(text) => parse_byte_size(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// Parses `65536`, `64k`, `64KiB`, `1m`, `1MiB` (binary units).
pub fn parse_byte_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 65536 or 64KiB)"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("`{text}` has an unknown unit (use KiB or MiB)")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A configured node: its name (the value of the `gcbSessionServer` cookie)
/// and its base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    /// Normalised `http://host:port`.
    pub url: String,
    pub authority: Authority,
}

impl NodeSpec {
    /// Parses `NAME=http://host:port`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let (name, url) = text
            .split_once('=')
            .ok_or_else(|| ConfigError::Invalid(format!("--node `{text}` is not NAME=URL")))?;
        NodeSpec::new(name.trim(), url.trim())
    }

    /// Validates a name and a URL: the name must be usable as a cookie value
    /// and a query value without escaping; the URL must be `http://host:port`
    /// with no path, query or credentials.
    pub fn new(name: &str, url: &str) -> Result<Self, ConfigError> {
        let name_ok = !name.is_empty()
            && name.len() <= 128
            && name.bytes().all(|b| {
                b.is_ascii_graphic()
                    && !matches!(b, b'"' | b',' | b';' | b'\\' | b'&' | b'=' | b'%' | b'+')
            });
        if !name_ok {
            return Err(ConfigError::Invalid(format!(
                "node name `{name}` must be 1-128 visible ASCII characters without \" , ; \\ & = % +"
            )));
        }
        let bad = |why: &str| ConfigError::Invalid(format!("node {name}: url `{url}` {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(bad("must use http://"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("must not carry credentials"));
        }
        if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad(
                "must have no path, query or fragment (http://host:port)",
            ));
        }
        let host = parsed.host_str().ok_or_else(|| bad("has no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let authority_text = format!("{host}:{port}");
        let authority =
            Authority::try_from(authority_text.as_str()).map_err(|e| bad(&e.to_string()))?;
        Ok(NodeSpec {
            name: name.to_owned(),
            url: format!("http://{authority_text}"),
            authority,
        })
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// All nodes: the file's merged with the `--node` flags.
    pub nodes: Vec<NodeSpec>,
    /// Nodes given as flags; a reload merges them over the file again.
    pub node_flags: Vec<NodeSpec>,
    /// The file to re-read on reload.
    pub config_file: Option<PathBuf>,
    pub admin_listen: Option<SocketAddr>,
    /// `None`: `http://<address the listener is bound to>`.
    pub lookup_origin: Option<String>,
    /// Normalised: leading `/`, no trailing `/`, empty for the root.
    pub context_path: String,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub lookup_cache_ttl: Duration,
    pub lookup_cache_size: u64,
    pub lookup_timeout: Duration,
    pub connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub max_head_size: usize,
    pub keep_alive_timeout: Duration,
    pub header_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub workers: usize,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// HS256 secret for agent credentials (exclusive with `agent_public_keys`).
    pub agent_key_file: Option<PathBuf>,
    /// PEM public keys for agent credentials.
    pub agent_public_keys: Option<PathBuf>,
    /// TLS on the client listener: certificate chain and key files (both or
    /// neither).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub agent_token_max_age: Duration,
    pub probe_budget: Budget,
    pub create_budget: Budget,
    pub limiter_capacity: u64,
    /// 0: no cap.
    pub max_connections_per_client: u32,
    /// How long a node removed by a reload keeps serving its bound requests.
    pub retire_timeout: Duration,
    /// Upstream connections per node; 0: no cap.
    pub max_conns_per_node: u32,
    /// Bytes of a CometD POST body read ahead for its `clientId`.
    pub cometd_peek_limit: usize,
}

impl Config {
    /// Defaults around the given nodes (for embedding and tests).
    pub fn with_nodes(nodes: Vec<NodeSpec>) -> Self {
        Config {
            listen: default_listen(),
            node_flags: nodes.clone(),
            nodes,
            config_file: None,
            admin_listen: None,
            lookup_origin: None,
            context_path: shared_types::names::DEFAULT_CONTEXT_PATH.to_owned(),
            health_interval: DEFAULT_HEALTH_INTERVAL,
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            rise: DEFAULT_RISE,
            fall: DEFAULT_FALL,
            lookup_cache_ttl: DEFAULT_LOOKUP_CACHE_TTL,
            lookup_cache_size: DEFAULT_LOOKUP_CACHE_SIZE,
            lookup_timeout: DEFAULT_LOOKUP_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            max_head_size: DEFAULT_MAX_HEAD_SIZE,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            workers: default_workers(),
            trusted_proxies: TrustedProxies::default(),
            agent_key_file: None,
            agent_public_keys: None,
            tls_cert: None,
            tls_key: None,
            agent_token_max_age: DEFAULT_AGENT_TOKEN_MAX_AGE,
            probe_budget: DEFAULT_PROBE_BUDGET,
            create_budget: DEFAULT_CREATE_BUDGET,
            limiter_capacity: DEFAULT_LIMITER_CAPACITY,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            retire_timeout: DEFAULT_RETIRE_TIMEOUT,
            max_conns_per_node: DEFAULT_MAX_CONNS_PER_NODE,
            cometd_peek_limit: DEFAULT_COMETD_PEEK_LIMIT,
        }
    }

    /// Parses a command line (first item: the program name) and the
    /// environment, reads the file if one is named, and validates.
    pub fn from_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args).map_err(ConfigError::Cli)?;
        Config::from_cli(cli)
    }

    /// Merges parsed flags over the file named by `--config` (if any).
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Config::merge(cli, file)
    }

    /// Parses flags over a TOML text (as if it were the `--config` file).
    pub fn from_cli_and_toml(cli: Cli, toml_text: &str) -> Result<Self, ConfigError> {
        let file = parse_file(toml_text, Path::new("<inline>"))?;
        Config::merge(cli, file)
    }

    fn merge(cli: Cli, file: FileConfig) -> Result<Self, ConfigError> {
        let node_flags = cli
            .nodes
            .iter()
            .map(|text| NodeSpec::parse(text))
            .collect::<Result<Vec<_>, _>>()?;
        let file_nodes = file
            .nodes
            .iter()
            .map(|node| NodeSpec::new(node.name.trim(), node.url.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let nodes = merge_nodes(file_nodes, &node_flags)?;
        let health_interval = cli
            .health_interval
            .or(file.health_interval)
            .unwrap_or(DEFAULT_HEALTH_INTERVAL);
        let config = Config {
            listen: cli.listen.or(file.listen).unwrap_or_else(default_listen),
            nodes,
            node_flags,
            config_file: cli.config,
            admin_listen: cli.admin_listen.or(file.admin_listen),
            lookup_origin: cli.lookup_origin.or(file.lookup_origin),
            context_path: shared_types::names::normalize_context_path(
                cli.context_path
                    .or(file.context_path)
                    .as_deref()
                    .unwrap_or(shared_types::names::DEFAULT_CONTEXT_PATH),
            ),
            health_interval,
            // A short interval given alone shortens the default timeout too.
            health_timeout: cli
                .health_timeout
                .or(file.health_timeout)
                .unwrap_or(DEFAULT_HEALTH_TIMEOUT.min(health_interval)),
            rise: cli.rise.or(file.rise).unwrap_or(DEFAULT_RISE),
            fall: cli.fall.or(file.fall).unwrap_or(DEFAULT_FALL),
            lookup_cache_ttl: cli
                .lookup_cache_ttl
                .or(file.lookup_cache_ttl)
                .unwrap_or(DEFAULT_LOOKUP_CACHE_TTL),
            lookup_cache_size: cli
                .lookup_cache_size
                .or(file.lookup_cache_size)
                .unwrap_or(DEFAULT_LOOKUP_CACHE_SIZE),
            lookup_timeout: cli
                .lookup_timeout
                .or(file.lookup_timeout)
                .unwrap_or(DEFAULT_LOOKUP_TIMEOUT),
            connect_timeout: cli
                .connect_timeout
                .or(file.connect_timeout)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            upstream_timeout: cli
                .upstream_timeout
                .or(file.upstream_timeout)
                .unwrap_or(DEFAULT_UPSTREAM_TIMEOUT),
            max_head_size: cli
                .max_head_size
                .or(file.max_head_size)
                .unwrap_or(DEFAULT_MAX_HEAD_SIZE),
            keep_alive_timeout: cli
                .keep_alive_timeout
                .or(file.keep_alive_timeout)
                .unwrap_or(DEFAULT_KEEP_ALIVE_TIMEOUT),
            header_timeout: cli
                .header_timeout
                .or(file.header_timeout)
                .unwrap_or(DEFAULT_HEADER_TIMEOUT),
            shutdown_timeout: cli
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
            workers: cli.workers.or(file.workers).unwrap_or_else(default_workers),
            trusted_proxies: cli
                .trusted_proxies
                .or(file.trusted_proxies)
                .unwrap_or_default(),
            agent_key_file: cli.agent_key_file.or(file.agent_key_file),
            agent_public_keys: cli.agent_public_keys.or(file.agent_public_keys),
            tls_cert: cli.tls_cert.or(file.tls_cert),
            tls_key: cli.tls_key.or(file.tls_key),
            agent_token_max_age: cli
                .agent_token_max_age
                .or(file.agent_token_max_age)
                .unwrap_or(DEFAULT_AGENT_TOKEN_MAX_AGE),
            probe_budget: cli
                .probe_budget
                .or(file.probe_budget)
                .unwrap_or(DEFAULT_PROBE_BUDGET),
            create_budget: cli
                .create_budget
                .or(file.create_budget)
                .unwrap_or(DEFAULT_CREATE_BUDGET),
            limiter_capacity: cli
                .limiter_capacity
                .or(file.limiter_capacity)
                .unwrap_or(DEFAULT_LIMITER_CAPACITY),
            max_connections_per_client: cli
                .max_connections_per_client
                .or(file.max_connections_per_client)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_CLIENT),
            retire_timeout: cli
                .retire_timeout
                .or(file.retire_timeout)
                .unwrap_or(DEFAULT_RETIRE_TIMEOUT),
            max_conns_per_node: cli
                .max_conns_per_node
                .or(file.max_conns_per_node)
                .unwrap_or(DEFAULT_MAX_CONNS_PER_NODE),
            cometd_peek_limit: cli
                .cometd_peek_limit
                .or(file.cometd_peek_limit)
                .unwrap_or(DEFAULT_COMETD_PEEK_LIMIT),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values that would make the proxy misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |text: &str| Err(ConfigError::Invalid(text.to_owned()));
        if self.nodes.is_empty() {
            return invalid("no node configured: give --node NAME=URL or [[node]] in --config");
        }
        check_unique(&self.nodes)?;
        if self.health_interval.is_zero() {
            return invalid("--health-interval must be above zero");
        }
        if self.health_timeout.is_zero() || self.health_timeout > self.health_interval {
            return invalid("--health-timeout must be above zero and at most --health-interval");
        }
        if self.rise == 0 || self.fall == 0 {
            return invalid("--rise and --fall must be at least 1");
        }
        for (flag, value) in [
            ("--connect-timeout", self.connect_timeout),
            ("--upstream-timeout", self.upstream_timeout),
            ("--lookup-timeout", self.lookup_timeout),
            ("--header-timeout", self.header_timeout),
            ("--keep-alive-timeout", self.keep_alive_timeout),
            ("--agent-token-max-age", self.agent_token_max_age),
            ("--retire-timeout", self.retire_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid(format!("{flag} must be above zero")));
            }
        }
        if self.max_head_size < MIN_MAX_HEAD_SIZE {
            return Err(ConfigError::Invalid(format!(
                "--max-head-size must be at least {MIN_MAX_HEAD_SIZE} bytes"
            )));
        }
        if self.workers == 0 {
            return invalid("--workers must be at least 1");
        }
        if !(MIN_COMETD_PEEK_LIMIT..=MAX_COMETD_PEEK_LIMIT).contains(&self.cometd_peek_limit) {
            return Err(ConfigError::Invalid(format!(
                "--cometd-peek-limit must be between {MIN_COMETD_PEEK_LIMIT} and {MAX_COMETD_PEEK_LIMIT} bytes"
            )));
        }
        if self.limiter_capacity == 0 {
            return invalid("--limiter-capacity must be at least 1");
        }
        if self.agent_key_file.is_some() && self.agent_public_keys.is_some() {
            return invalid("give --agent-key-file or --agent-public-keys, not both");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return invalid("give --tls-cert and --tls-key together");
        }
        if let Some(origin) = &self.lookup_origin {
            if http::HeaderValue::from_str(origin).is_err() {
                return invalid("--lookup-origin is not a valid header value");
            }
        }
        Ok(())
    }

    /// The nodes a reload would install: the file read again, with the
    /// `--node` flags merged over it.
    pub fn reload_nodes(&self) -> Result<Vec<NodeSpec>, ConfigError> {
        let file_nodes = match &self.config_file {
            Some(path) => read_file(path)?
                .nodes
                .iter()
                .map(|node| NodeSpec::new(node.name.trim(), node.url.trim()))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let nodes = merge_nodes(file_nodes, &self.node_flags)?;
        if nodes.is_empty() {
            return Err(ConfigError::Invalid(
                "the reloaded configuration has no node; keeping the current nodes".to_owned(),
            ));
        }
        Ok(nodes)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8700))
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(&text, path)
}

fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        message: source.to_string(),
    })
}

/// File nodes in file order, then flag nodes; a flag node replaces the file
/// node of the same name.
fn merge_nodes(
    file_nodes: Vec<NodeSpec>,
    flags: &[NodeSpec],
) -> Result<Vec<NodeSpec>, ConfigError> {
    check_unique(&file_nodes)?;
    check_unique(flags)?;
    let mut nodes: Vec<NodeSpec> = file_nodes
        .into_iter()
        .filter(|node| !flags.iter().any(|flag| flag.name == node.name))
        .collect();
    nodes.extend(flags.iter().cloned());
    Ok(nodes)
}

fn check_unique(nodes: &[NodeSpec]) -> Result<(), ConfigError> {
    for (i, node) in nodes.iter().enumerate() {
        if nodes[..i].iter().any(|other| other.name == node.name) {
            return Err(ConfigError::Invalid(format!(
                "node name `{}` is configured twice",
                node.name
            )));
        }
    }
    Ok(())
}

/// Why a configuration was refused.
#[derive(Debug)]
pub enum ConfigError {
    /// The command line did not parse (also `--help` and `--version`).
    Cli(clap::Error),
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Parse {
        path: PathBuf,
        message: String,
    },
    Invalid(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Cli(e) => write!(f, "{e}"),
            ConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Parse { path, message } => {
                write!(f, "cannot parse {}: {message}", path.display())
            }
            ConfigError::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Cli(e) => Some(e),
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["sticky-proxy"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn flags_with_defaults() {
        let config = Config::from_args([
            "sticky-proxy",
            "--node",
            "node-1=http://127.0.0.1:8701",
            "--node",
            "node-2=http://10.0.0.5:8702/",
            "--health-interval",
            "2s",
            "--health-timeout",
            "300ms",
            "--context-path",
            "cobrowse/",
        ])
        .unwrap();
        assert_eq!(config.nodes.len(), 2);
        assert_eq!(config.nodes[1].name, "node-2");
        assert_eq!(config.nodes[1].url, "http://10.0.0.5:8702");
        assert_eq!(config.nodes[1].authority.as_str(), "10.0.0.5:8702");
        assert_eq!(config.listen, "127.0.0.1:8700".parse().unwrap());
        assert_eq!(config.health_interval, Duration::from_secs(2));
        assert_eq!(config.health_timeout, Duration::from_millis(300));
        assert_eq!(config.context_path, "/cobrowse");
        assert_eq!(config.rise, 2);
        assert_eq!(config.fall, 2);
        assert_eq!(config.lookup_cache_ttl, Duration::from_secs(600));
        assert_eq!(config.lookup_cache_size, 100_000);
        assert_eq!(config.connect_timeout, Duration::from_secs(1));
        assert_eq!(config.upstream_timeout, Duration::from_secs(90));
        assert_eq!(config.max_head_size, 65536);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(10));
        assert!(config.admin_listen.is_none());
        assert!(config.lookup_origin.is_none());
        assert!(config.workers >= 1);
    }

    #[test]
    fn toml_file_with_flags_overriding() {
        let text = r#"
            listen = "127.0.0.1:9000"
            admin-listen = "127.0.0.1:9001"
            health-interval = "3s"
            rise = 5
            max-head-size = "32KiB"
            lookup-origin = "https://agent.example"

            [[node]]
            name = "node-1"
            url = "http://10.0.0.5:8701"

            [[node]]
            name = "node-2"
            url = "http://10.0.0.6:8701"
        "#;
        let config = Config::from_cli_and_toml(
            cli(&[
                "--rise",
                "3",
                "--node",
                "node-2=http://127.0.0.1:1",
                "--node",
                "node-3=http://127.0.0.1:2",
            ]),
            text,
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.admin_listen, Some("127.0.0.1:9001".parse().unwrap()));
        assert_eq!(config.health_interval, Duration::from_secs(3));
        assert_eq!(config.rise, 3, "the flag wins over the file");
        assert_eq!(config.max_head_size, 32 * 1024);
        assert_eq!(
            config.lookup_origin.as_deref(),
            Some("https://agent.example")
        );
        let names: Vec<_> = config
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.url.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("node-1", "http://10.0.0.5:8701"),
                ("node-2", "http://127.0.0.1:1"),
                ("node-3", "http://127.0.0.1:2"),
            ]
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let top = Config::from_cli_and_toml(cli(&["--node", "a=http://h:1"]), "colour = \"blue\"");
        assert!(matches!(top, Err(ConfigError::Parse { .. })), "{top:?}");
        let node = Config::from_cli_and_toml(
            cli(&[]),
            "[[node]]\nname = \"a\"\nurl = \"http://h:1\"\nweight = 3\n",
        );
        assert!(matches!(node, Err(ConfigError::Parse { .. })), "{node:?}");
        let typo =
            Config::from_cli_and_toml(cli(&["--node", "a=http://h:1"]), "health_interval = \"1s\"");
        assert!(typo.is_err());
    }

    #[test]
    fn bad_values_are_rejected() {
        let args = |extra: &[&str]| {
            let mut all = vec!["sticky-proxy", "--node", "a=http://h:1"];
            all.extend_from_slice(extra);
            Config::from_args(all)
        };
        assert!(Config::from_args(["sticky-proxy"]).is_err(), "no node");
        assert!(args(&["--node", "b=https://h:1"]).is_err(), "https");
        assert!(args(&["--node", "b=http://h:1/cobrowse"]).is_err(), "path");
        assert!(
            args(&["--node", "b=http://u:p@h:1"]).is_err(),
            "credentials"
        );
        assert!(args(&["--node", "a=http://h:2"]).is_err(), "duplicate name");
        assert!(
            args(&["--node", "b c=http://h:2"]).is_err(),
            "space in name"
        );
        assert!(args(&["--node", "bhttp://h:2"]).is_err(), "no =");
        assert!(args(&["--health-interval", "soon"]).is_err());
        assert!(
            args(&["--health-timeout", "2s"]).is_err(),
            "timeout above interval"
        );
        let short = args(&["--health-interval", "100ms"]).unwrap();
        assert_eq!(
            short.health_timeout,
            Duration::from_millis(100),
            "the default follows a short interval"
        );
        assert!(args(&["--rise", "0"]).is_err());
        assert!(args(&["--max-head-size", "10"]).is_err());
        assert!(args(&["--workers", "0"]).is_err());
        assert!(args(&["--bogus"]).is_err());
    }

    #[test]
    fn limits_defaults_flags_and_file() {
        let defaults = Config::from_args(["sticky-proxy", "--node", "a=http://h:1"]).unwrap();
        assert_eq!(defaults.header_timeout, Duration::from_secs(10));
        assert_eq!(defaults.keep_alive_timeout, Duration::from_secs(75));
        assert_eq!(defaults.probe_budget, "20/10m".parse().unwrap());
        assert_eq!(defaults.create_budget, "60/1m".parse().unwrap());
        assert_eq!(defaults.limiter_capacity, 1_000_000);
        assert_eq!(defaults.max_connections_per_client, 256);
        assert!(defaults.trusted_proxies.is_empty());
        assert!(defaults.agent_key_file.is_none() && defaults.agent_public_keys.is_none());
        assert_eq!(defaults.agent_token_max_age, Duration::from_secs(12 * 3600));
        assert_eq!(defaults.retire_timeout, Duration::from_secs(600));
        assert_eq!(defaults.max_conns_per_node, 0);
        assert_eq!(defaults.cometd_peek_limit, 256 * 1024);

        let flags = Config::from_args([
            "sticky-proxy",
            "--node",
            "a=http://h:1",
            "--trusted-proxies",
            "127.0.0.1, 10.0.0.0/8",
            "--probe-budget",
            "off",
            "--create-budget",
            "5/30s",
            "--limiter-capacity",
            "1000",
            "--max-connections-per-client",
            "0",
            "--header-timeout",
            "2s",
            "--agent-key-file",
            "/k",
            "--agent-token-max-age",
            "1h",
        ])
        .unwrap();
        assert!(flags.trusted_proxies.trusts("10.1.2.3".parse().unwrap()));
        assert!(!flags.trusted_proxies.trusts("11.1.2.3".parse().unwrap()));
        assert!(flags.probe_budget.is_off());
        assert_eq!(flags.create_budget.limit, 5);
        assert_eq!(flags.create_budget.window, Duration::from_secs(30));
        assert_eq!(flags.limiter_capacity, 1000);
        assert_eq!(flags.max_connections_per_client, 0);
        assert_eq!(flags.header_timeout, Duration::from_secs(2));
        assert_eq!(flags.agent_key_file.as_deref(), Some(Path::new("/k")));
        assert_eq!(flags.agent_token_max_age, Duration::from_secs(3600));

        // The file, as a list or one string; flags still win.
        for trusted in ["[\"127.0.0.1\", \"::1\"]", "\"127.0.0.1, ::1\""] {
            let text = format!(
                "trusted-proxies = {trusted}\nprobe-budget = \"3/1s\"\ncreate-budget = \"off\"\n\
                 header-timeout = \"500ms\"\nmax-connections-per-client = 8\nlimiter-capacity = 10\n\
                 agent-public-keys = \"/keys.pem\"\nagent-token-max-age = \"30m\"\n"
            );
            let config = Config::from_cli_and_toml(
                cli(&["--node", "a=http://h:1", "--header-timeout", "1s"]),
                &text,
            )
            .unwrap();
            assert!(
                config.trusted_proxies.trusts("::1".parse().unwrap()),
                "{trusted}"
            );
            assert_eq!(config.probe_budget.limit, 3);
            assert!(config.create_budget.is_off());
            assert_eq!(
                config.header_timeout,
                Duration::from_secs(1),
                "the flag wins"
            );
            assert_eq!(config.max_connections_per_client, 8);
            assert_eq!(config.limiter_capacity, 10);
            assert_eq!(
                config.agent_public_keys.as_deref(),
                Some(Path::new("/keys.pem"))
            );
            assert_eq!(config.agent_token_max_age, Duration::from_secs(1800));
        }

        let args = |extra: &[&str]| {
            let mut all = vec!["sticky-proxy", "--node", "a=http://h:1"];
            all.extend_from_slice(extra);
            Config::from_args(all)
        };
        for bad in [
            &["--probe-budget", "0/1m"][..],
            &["--create-budget", "60"],
            &["--trusted-proxies", "nope"],
            &["--trusted-proxies", "10.0.0.0/33"],
            &["--limiter-capacity", "0"],
            &["--header-timeout", "0s"],
            &["--keep-alive-timeout", "0s"],
            &["--agent-token-max-age", "0s"],
            &["--max-connections-per-client", "-1"],
            &["--agent-key-file", "/a", "--agent-public-keys", "/b"],
            &["--tls-cert", "/c.pem"],
            &["--tls-key", "/k.pem"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
        let file =
            Config::from_cli_and_toml(cli(&["--node", "a=http://h:1"]), "probe-budget = \"lots\"");
        assert!(matches!(file, Err(ConfigError::Parse { .. })), "{file:?}");
    }

    #[test]
    fn tls_files_from_flags_or_file() {
        let flags = Config::from_args([
            "sticky-proxy",
            "--node",
            "a=http://h:1",
            "--tls-cert",
            "/c.pem",
            "--tls-key",
            "/k.pem",
        ])
        .unwrap();
        assert_eq!(flags.tls_cert.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(flags.tls_key.as_deref(), Some(Path::new("/k.pem")));
        let file = Config::from_cli_and_toml(
            cli(&["--node", "a=http://h:1"]),
            "tls-cert = \"/f.pem\"\ntls-key = \"/f.key\"\n",
        )
        .unwrap();
        assert_eq!(file.tls_cert.as_deref(), Some(Path::new("/f.pem")));
        assert_eq!(file.tls_key.as_deref(), Some(Path::new("/f.key")));
        assert!(Config::with_nodes(vec![]).tls_cert.is_none());
    }

    #[test]
    fn retire_connection_cap_and_peek_flags() {
        let flags = Config::from_args([
            "sticky-proxy",
            "--node",
            "a=http://h:1",
            "--retire-timeout",
            "30s",
            "--max-conns-per-node",
            "0",
            "--cometd-peek-limit",
            "4KiB",
        ])
        .unwrap();
        assert_eq!(flags.retire_timeout, Duration::from_secs(30));
        assert_eq!(flags.max_conns_per_node, 0);
        assert_eq!(flags.cometd_peek_limit, 4096);
        let file = Config::from_cli_and_toml(
            cli(&["--node", "a=http://h:1", "--max-conns-per-node", "7"]),
            "retire-timeout = \"1m\"\nmax-conns-per-node = 64\ncometd-peek-limit = 2048\n",
        )
        .unwrap();
        assert_eq!(file.retire_timeout, Duration::from_secs(60));
        assert_eq!(file.max_conns_per_node, 7, "the flag wins");
        assert_eq!(file.cometd_peek_limit, 2048);
        for bad in [
            &["--retire-timeout", "0s"][..],
            &["--cometd-peek-limit", "10"],
            &["--cometd-peek-limit", "1MiB"],
            &["--max-conns-per-node", "-1"],
        ] {
            let mut args = vec!["sticky-proxy", "--node", "a=http://h:1"];
            args.extend_from_slice(bad);
            assert!(Config::from_args(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_port_is_filled_in() {
        let spec = NodeSpec::parse("n=http://example.com").unwrap();
        assert_eq!(spec.url, "http://example.com:80");
        let v6 = NodeSpec::parse("n=http://[::1]:8701").unwrap();
        assert_eq!(v6.authority.as_str(), "[::1]:8701");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("65536"), Ok(65536));
        assert_eq!(parse_byte_size("64KiB"), Ok(65536));
        assert_eq!(parse_byte_size("64k"), Ok(65536));
        assert_eq!(parse_byte_size("1MiB"), Ok(1 << 20));
        assert!(parse_byte_size("64 parsecs").is_err());
        assert!(parse_byte_size("").is_err());
    }

    #[test]
    fn reload_reads_the_file_again() {
        let dir = std::env::temp_dir().join(format!("sticky-proxy-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.toml");
        std::fs::write(&path, "[[node]]\nname = \"a\"\nurl = \"http://h:1\"\n").unwrap();
        let config =
            Config::from_args(["sticky-proxy", "--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(config.nodes.len(), 1);
        std::fs::write(
            &path,
            "[[node]]\nname = \"a\"\nurl = \"http://h:1\"\n[[node]]\nname = \"b\"\nurl = \"http://h:2\"\n",
        )
        .unwrap();
        let nodes = config.reload_nodes().unwrap();
        assert_eq!(nodes.len(), 2);
        std::fs::write(&path, "").unwrap();
        assert!(
            config.reload_nodes().is_err(),
            "a reload to no node is refused"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
