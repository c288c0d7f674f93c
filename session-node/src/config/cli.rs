//! The command line, and the TOML file with the same settings.
//!
//! Every setting is a flag, also read from a `COBROWSE_…` variable, and a
//! kebab-case key of the `--config` file; [`super::Config::load`] merges
//! them (flag > variable > file > default). Defaults are stated here in the
//! help and applied once, in the merge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use access::Budget;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use super::parse_duration;
use crate::sessions::tokens::TokenPartition;

/// Command line of the `session-node` binary.
#[derive(Debug, Parser, Default)]
#[command(name = "session-node", version, about = "A co-browse session node")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// TOML file with any of the settings below (kebab-case keys); flags and
    /// environment variables override it.
    #[arg(long, env = "COBROWSE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8701].
    #[arg(long, env = "COBROWSE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Connections the kernel queues before the node accepts them
    /// [default: 1024].
    #[arg(long, env = "COBROWSE_LISTEN_BACKLOG", value_name = "N")]
    pub listen_backlog: Option<u32>,
    /// This node's name: the `gcbSessionServer` cookie value and
    /// `sessionServerName` [default: node-1].
    #[arg(long, env = "COBROWSE_NAME")]
    pub name: Option<String>,
    /// This node's public URL, returned by Get Session as `sessionServerUrl`.
    #[arg(long, env = "COBROWSE_SERVER_URL", value_name = "URL")]
    pub server_url: Option<String>,
    /// Comma-separated origins allowed to call Get Session (`*` for all,
    /// without credentials; `https://*.example.com` for subdomains)
    /// [default: none].
    #[arg(long, env = "COBROWSE_ALLOWED_ORIGINS", value_name = "LIST")]
    pub allowed_origins: Option<String>,
    /// Context path of the application [default: /cobrowse].
    #[arg(long, env = "COBROWSE_CONTEXT_PATH", value_name = "PATH")]
    pub context_path: Option<String>,
    /// Set the cookie with `SameSite=None; Secure` (implied by an https
    /// `--server-url`).
    #[arg(long, env = "COBROWSE_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// A session with no request for this long ends [default: 30m].
    #[arg(long, env = "COBROWSE_SESSION_IDLE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub session_idle_timeout: Option<Duration>,
    /// An ended session answers 410 and repeats its Stop answer this long,
    /// then is forgotten (404) [default: 10m].
    #[arg(long, env = "COBROWSE_SESSION_RETENTION", value_name = "DURATION", value_parser = parse_duration)]
    pub session_retention: Option<Duration>,
    /// Live sessions this node may hold; Create answers 503 beyond it
    /// [default: 10000].
    #[arg(long, env = "COBROWSE_MAX_SESSIONS", value_name = "N")]
    pub max_sessions: Option<usize>,
    /// Users one session may hold; Join answers 409 beyond it [default: 32].
    #[arg(long, env = "COBROWSE_MAX_USERS_PER_SESSION", value_name = "N")]
    pub max_users_per_session: Option<usize>,
    /// On SIGTERM/SIGINT, wait at most this long for live sessions to end
    /// [default: 30s].
    #[arg(long, env = "COBROWSE_DRAIN_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub drain_timeout: Option<Duration>,
    /// How long the realtime channel holds a `/meta/connect` open when there
    /// is nothing to deliver [default: 30s].
    #[arg(long, env = "COBROWSE_COMETD_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub cometd_timeout: Option<Duration>,
    /// A realtime client silent (no connect) for this long is forgotten
    /// [default: 10s].
    #[arg(long, env = "COBROWSE_COMETD_MAX_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub cometd_max_interval: Option<Duration>,
    /// Realtime clients this node holds at most [default: 100000].
    #[arg(long, env = "COBROWSE_COMETD_MAX_CLIENTS", value_name = "N")]
    pub cometd_max_clients: Option<usize>,
    /// Realtime clients one address holds at most [default: 1000].
    #[arg(
        long,
        env = "COBROWSE_COMETD_MAX_CLIENTS_PER_ADDRESS",
        value_name = "N"
    )]
    pub cometd_max_clients_per_address: Option<usize>,
    /// A realtime client that handshook and never connected is forgotten
    /// after this [default: 5s].
    #[arg(long, env = "COBROWSE_COMETD_HANDSHAKE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub cometd_handshake_timeout: Option<Duration>,
    /// Bytes waiting for one realtime client at most; publishes beyond are
    /// refused to their sender [default: 2097152].
    #[arg(long, env = "COBROWSE_COMETD_MAX_QUEUE_BYTES", value_name = "BYTES")]
    pub cometd_max_queue_bytes: Option<usize>,
    /// `required`: agent and controller joins need a valid agent credential;
    /// `none`: anyone may join as agent (logged as a warning)
    /// [default: required].
    #[arg(long, env = "COBROWSE_AGENT_AUTH", value_name = "MODE")]
    pub agent_auth: Option<AgentAuthMode>,
    /// File holding the HS256 secret agent credentials are signed with (at
    /// least 32 bytes).
    #[arg(long, env = "COBROWSE_AGENT_KEY_FILE", value_name = "FILE")]
    pub agent_key_file: Option<PathBuf>,
    /// PEM file with the Ed25519 or RSA public keys agent credentials are
    /// signed with (several for rotation).
    #[arg(long, env = "COBROWSE_AGENT_PUBLIC_KEYS", value_name = "FILE")]
    pub agent_public_keys: Option<PathBuf>,
    /// Agent credentials valid for longer than this are refused
    /// [default: 12h].
    #[arg(long, env = "COBROWSE_AGENT_TOKEN_MAX_AGE", value_name = "DURATION", value_parser = parse_duration)]
    pub agent_token_max_age: Option<Duration>,
    /// Peers (addresses, CIDR blocks) whose `X-Forwarded-For` names the
    /// client, e.g. the sticky proxy [default: none].
    #[arg(long, env = "COBROWSE_TRUSTED_PROXIES", value_name = "LIST")]
    pub trusted_proxies: Option<String>,
    /// Misses (unknown or ended tokens, bad credentials or keys) a client
    /// may make per window, then 429 `too_many_attempts`; `off` to disable
    /// [default: 20/10m].
    #[arg(long, env = "COBROWSE_PROBE_BUDGET", value_name = "N/DURATION")]
    pub probe_budget: Option<Budget>,
    /// Sessions a client address may create per window, then 429
    /// `too_many_creates` [default: 60/1m].
    #[arg(long, env = "COBROWSE_CREATE_BUDGET", value_name = "N/DURATION")]
    pub create_budget: Option<Budget>,
    /// Clients each budget remembers at most (bounds its memory)
    /// [default: 1000000].
    #[arg(long, env = "COBROWSE_LIMITER_CAPACITY", value_name = "N")]
    pub limiter_capacity: Option<u64>,
    /// This node's share of the session tokens, `I/N` (node I of N): tokens
    /// unique across the N nodes [default: 1/1].
    #[arg(long, env = "COBROWSE_TOKEN_PARTITION", value_name = "I/N")]
    pub token_partition: Option<TokenPartition>,
    /// Tests only: draw session tokens from this seed, so that two nodes
    /// can be forced onto the same tokens. Makes tokens predictable.
    #[arg(long, hide = true, value_name = "SEED")]
    pub insecure_token_seed: Option<u64>,
    /// Address of a Prometheus `/metrics` listener; off when absent.
    #[arg(long, env = "COBROWSE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the widget and agent console from this built directory
    /// (`web/dist`, read once at start) instead of the copy embedded in the
    /// binary [default: embedded].
    #[arg(long, env = "COBROWSE_WEB_DIR", value_name = "DIR")]
    pub web_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentAuthMode {
    Required,
    None,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a signed agent credential (HS256) for `Authorization: Bearer`.
    AgentToken(AgentTokenArgs),
    /// Serve the demo shop page, which includes the widget (`make run`).
    DemoSite(DemoSiteArgs),
}

#[derive(Debug, clap::Args)]
pub struct DemoSiteArgs {
    /// Address to listen on (`:0` picks a free port; the log says
    /// `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:8710", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The widget the page includes: `<proxy>/<context>/widget.js`.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8700/cobrowse/widget.js",
        value_name = "URL"
    )]
    pub widget_url: String,
}

#[derive(Debug, clap::Args)]
pub struct AgentTokenArgs {
    /// The HS256 secret the nodes verify with (`--agent-key-file`).
    #[arg(long, value_name = "FILE")]
    pub key_file: PathBuf,
    /// The agent's id (`sub`), shown to the other parties.
    #[arg(long)]
    pub sub: String,
    /// Bind the credential to this one session token.
    #[arg(long, value_name = "TOKEN")]
    pub session: Option<String>,
    /// Roles it may join with, e.g. `2` or `2,3` [default: both].
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<u8>,
    /// How long it is valid.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
}

/// The same settings as the flags, from `--config FILE`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub listen_backlog: Option<u32>,
    pub name: Option<String>,
    pub server_url: Option<String>,
    pub allowed_origins: Option<StringList>,
    pub context_path: Option<String>,
    pub cookie_secure: Option<bool>,
    pub session_idle_timeout: Option<String>,
    pub session_retention: Option<String>,
    pub max_sessions: Option<usize>,
    pub max_users_per_session: Option<usize>,
    pub drain_timeout: Option<String>,
    pub cometd_timeout: Option<String>,
    pub cometd_max_interval: Option<String>,
    pub cometd_max_clients: Option<usize>,
    pub cometd_max_clients_per_address: Option<usize>,
    pub cometd_handshake_timeout: Option<String>,
    pub cometd_max_queue_bytes: Option<usize>,
    pub agent_auth: Option<AgentAuthMode>,
    pub agent_key_file: Option<PathBuf>,
    pub agent_public_keys: Option<PathBuf>,
    pub agent_token_max_age: Option<String>,
    pub trusted_proxies: Option<StringList>,
    pub probe_budget: Option<String>,
    pub create_budget: Option<String>,
    pub limiter_capacity: Option<u64>,
    pub token_partition: Option<String>,
    pub metrics_listen: Option<SocketAddr>,
    pub web_dir: Option<PathBuf>,
}

/// A list may be written as one comma-separated string or a TOML list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum StringList {
    One(String),
    Many(Vec<String>),
}

impl StringList {
    pub fn joined(self) -> String {
        match self {
            StringList::One(s) => s,
            StringList::Many(v) => v.join(","),
        }
    }
}
