//! Configuration: command-line flags, each also read from a `COBROWSE_…`
//! environment variable, over an optional TOML file (`--config`), over the
//! defaults. The flag names are an interface others script against; they
//! are declared in [`cli`], merged and checked here.

pub mod cli;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use access::{AgentKeys, Budget, TrustedProxies, Verifier};
use shared_types::names::{normalize_context_path, DEFAULT_CONTEXT_PATH};
use url::Url;

use self::cli::FileConfig;
pub use self::cli::{AgentAuthMode, Cli, Command};
use crate::cometd::BayeuxConfig;
use crate::cors::AllowedOrigins;
use crate::sessions::access::{AccessConfig, AgentAuth};
use crate::sessions::tokens::TokenPartition;
use crate::sessions::SessionLimits;

/// Default `--agent-token-max-age`.
pub const DEFAULT_AGENT_TOKEN_MAX_AGE: Duration = Duration::from_secs(12 * 3600);

/// The node's settled configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The listen socket's backlog.
    pub listen_backlog: u32,
    pub name: String,
    pub server_url: Option<String>,
    pub allowed_origins: AllowedOrigins,
    /// Normalised: leading `/`, no trailing `/`, empty for the root.
    pub context_path: String,
    /// Cookie `SameSite=None; Secure`.
    pub cookie_cross_site: bool,
    pub limits: SessionLimits,
    pub drain_timeout: Duration,
    pub bayeux: BayeuxConfig,
    /// Largest request body accepted (Join), in bytes.
    pub max_body_bytes: usize,
    /// Who may join agent-side, and the probe and create budgets.
    pub access: AccessConfig,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the web bundle from this directory instead of the embedded one.
    pub web_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8701)),
            listen_backlog: 1024,
            name: "node-1".into(),
            server_url: None,
            allowed_origins: AllowedOrigins::default(),
            context_path: DEFAULT_CONTEXT_PATH.into(),
            cookie_cross_site: false,
            limits: SessionLimits::default(),
            drain_timeout: Duration::from_secs(30),
            bayeux: BayeuxConfig::default(),
            max_body_bytes: 16 * 1024,
            access: AccessConfig::default(),
            trusted_proxies: TrustedProxies::default(),
            metrics_listen: None,
            web_dir: None,
        }
    }
}

impl Config {
    /// Settles the configuration from parsed flags and the file they name.
    pub fn load(cli: Cli) -> Result<Config, String> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::merge(cli, file)
    }

    fn merge(cli: Cli, file: FileConfig) -> Result<Config, String> {
        let defaults = Config::default();
        // A flag's duration, else the file's (parsed, naming its key), else
        // the default.
        let duration = |flag: Option<Duration>,
                        raw: Option<String>,
                        key: &str,
                        default: Duration| match (flag, raw) {
            (Some(d), _) => Ok(d),
            (None, Some(raw)) => parse_duration(&raw).map_err(|e| format!("{key}: {e}")),
            (None, None) => Ok(default),
        };
        let budget = |flag: Option<Budget>, raw: Option<String>, key: &str, default: Budget| match (
            flag, raw,
        ) {
            (Some(b), _) => Ok(b),
            (None, Some(raw)) => raw.parse().map_err(|e| format!("{key}: {e}")),
            (None, None) => Ok(default),
        };
        let server_url = cli.server_url.or(file.server_url);
        let https_url = match &server_url {
            Some(raw) => {
                let url = Url::parse(raw).map_err(|e| format!("--server-url {raw}: {e}"))?;
                url.scheme() == "https"
            }
            None => false,
        };
        let allowed_origins = match cli
            .allowed_origins
            .or(file.allowed_origins.map(cli::StringList::joined))
        {
            Some(list) => AllowedOrigins::parse(&list)?,
            None => AllowedOrigins::default(),
        };
        let name = cli.name.or(file.name).unwrap_or(defaults.name);
        if name.is_empty() {
            return Err("--name must not be empty".into());
        }
        let token_partition = match (cli.token_partition, file.token_partition) {
            (Some(p), _) => p,
            (None, Some(raw)) => raw
                .parse::<TokenPartition>()
                .map_err(|e| format!("token-partition: {e}"))?,
            (None, None) => defaults.limits.token_partition,
        };
        let limits = SessionLimits {
            max_sessions: cli
                .max_sessions
                .or(file.max_sessions)
                .unwrap_or(defaults.limits.max_sessions),
            max_users_per_session: cli
                .max_users_per_session
                .or(file.max_users_per_session)
                .unwrap_or(defaults.limits.max_users_per_session),
            idle_timeout: duration(
                cli.session_idle_timeout,
                file.session_idle_timeout,
                "session-idle-timeout",
                defaults.limits.idle_timeout,
            )?,
            retention: duration(
                cli.session_retention,
                file.session_retention,
                "session-retention",
                defaults.limits.retention,
            )?,
            token_partition,
            insecure_token_seed: cli.insecure_token_seed,
        };
        let drain_timeout = duration(
            cli.drain_timeout,
            file.drain_timeout,
            "drain-timeout",
            defaults.drain_timeout,
        )?;
        let bayeux = BayeuxConfig {
            timeout: duration(
                cli.cometd_timeout,
                file.cometd_timeout,
                "cometd-timeout",
                defaults.bayeux.timeout,
            )?,
            max_interval: duration(
                cli.cometd_max_interval,
                file.cometd_max_interval,
                "cometd-max-interval",
                defaults.bayeux.max_interval,
            )?,
            handshake_timeout: duration(
                cli.cometd_handshake_timeout,
                file.cometd_handshake_timeout,
                "cometd-handshake-timeout",
                defaults.bayeux.handshake_timeout,
            )?,
            max_clients: cli
                .cometd_max_clients
                .or(file.cometd_max_clients)
                .unwrap_or(defaults.bayeux.max_clients),
            max_clients_per_address: cli
                .cometd_max_clients_per_address
                .or(file.cometd_max_clients_per_address)
                .unwrap_or(defaults.bayeux.max_clients_per_address),
            max_queue_bytes: cli
                .cometd_max_queue_bytes
                .or(file.cometd_max_queue_bytes)
                .unwrap_or(defaults.bayeux.max_queue_bytes),
            ..defaults.bayeux
        };
        let agent_auth = agent_auth(
            cli.agent_auth
                .or(file.agent_auth)
                .unwrap_or(AgentAuthMode::Required),
            cli.agent_key_file.or(file.agent_key_file).as_deref(),
            cli.agent_public_keys.or(file.agent_public_keys).as_deref(),
            duration(
                cli.agent_token_max_age,
                file.agent_token_max_age,
                "agent-token-max-age",
                DEFAULT_AGENT_TOKEN_MAX_AGE,
            )?,
        )?;
        let access = AccessConfig {
            agent_auth,
            probe_budget: budget(
                cli.probe_budget,
                file.probe_budget,
                "probe-budget",
                defaults.access.probe_budget,
            )?,
            create_budget: budget(
                cli.create_budget,
                file.create_budget,
                "create-budget",
                defaults.access.create_budget,
            )?,
            limiter_capacity: cli
                .limiter_capacity
                .or(file.limiter_capacity)
                .unwrap_or(defaults.access.limiter_capacity),
        };
        let trusted_proxies = match cli
            .trusted_proxies
            .or(file.trusted_proxies.map(cli::StringList::joined))
        {
            Some(list) => TrustedProxies::parse(&list)?,
            None => TrustedProxies::default(),
        };
        Ok(Config {
            listen: cli.listen.or(file.listen).unwrap_or(defaults.listen),
            listen_backlog: cli
                .listen_backlog
                .or(file.listen_backlog)
                .unwrap_or(defaults.listen_backlog),
            name,
            server_url,
            allowed_origins,
            context_path: normalize_context_path(
                &cli.context_path
                    .or(file.context_path)
                    .unwrap_or(defaults.context_path),
            ),
            cookie_cross_site: cli.cookie_secure
                || file.cookie_secure.unwrap_or(false)
                || https_url,
            limits,
            drain_timeout,
            bayeux,
            max_body_bytes: defaults.max_body_bytes,
            access,
            trusted_proxies,
            metrics_listen: cli.metrics_listen.or(file.metrics_listen),
            web_dir: cli.web_dir.or(file.web_dir),
        })
    }

    /// What an operator must hear at start: security defaults turned off,
    /// and how to turn on what is missing. Logged once by `serve`.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        match &self.access.agent_auth {
            AgentAuth::Disabled => warnings.push(
                "--agent-auth none: ANYONE who knows or guesses a session token can join it as agent or controller and see the customer's page".to_owned(),
            ),
            AgentAuth::Unconfigured => warnings.push(
                "no agent key configured: agent and controller joins are refused; give --agent-key-file FILE (HS256 secret, >= 32 bytes) or --agent-public-keys FILE (PEM), and mint credentials with `session-node agent-token`".to_owned(),
            ),
            AgentAuth::Required(_) => {}
        }
        if self.access.probe_budget.is_off() {
            warnings.push("--probe-budget off: token guessing is not rate-limited".to_owned());
        }
        if self.access.create_budget.is_off() {
            warnings.push(
                "--create-budget off: one client may fill this node with sessions".to_owned(),
            );
        }
        if self.allowed_origins.is_any() {
            warnings.push("--allowed-origins '*': any web page may call Get Session; answers carry no Access-Control-Allow-Credentials".to_owned());
        }
        let own_host = self
            .server_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_owned));
        if !self.cookie_cross_site && self.allowed_origins.may_be_cross_site(own_host.as_deref()) {
            warnings.push("--allowed-origins lets other sites call this node, but without --cookie-secure (or an https --server-url) its gcbSessionServer cookie is SameSite=Lax, which browsers drop on cross-site requests: clients must name the node in the gcbSessionServer header or query parameter".to_owned());
        }
        if self.web_dir.is_none() && crate::web::EMBEDDED.is_empty() {
            warnings.push("built without the web bundle: widget.js and /agent/ answer 503 web_assets_missing; run `make web` and build again, or give --web-dir web/dist".to_owned());
        }
        if self.limits.insecure_token_seed.is_some() {
            warnings.push(
                "--insecure-token-seed: session tokens are PREDICTABLE; for tests only".to_owned(),
            );
        }
        if self.limits.token_partition.is_whole() {
            warnings.push("--token-partition 1/1: session tokens are unique on this node only; in a cluster of N nodes give node I --token-partition I/N".to_owned());
        }
        warnings
    }
}

/// The agent credential check the flags ask for.
fn agent_auth(
    mode: AgentAuthMode,
    key_file: Option<&Path>,
    public_keys: Option<&Path>,
    max_age: Duration,
) -> Result<AgentAuth, String> {
    let keys = AgentKeys::load(key_file, public_keys)?;
    Ok(match (mode, keys) {
        (AgentAuthMode::None, Some(_)) => {
            return Err("--agent-auth none cannot be combined with an agent key".into())
        }
        (AgentAuthMode::None, None) => AgentAuth::Disabled,
        (AgentAuthMode::Required, Some(keys)) => {
            AgentAuth::Required(Arc::new(Verifier::new(keys, max_age)))
        }
        (AgentAuthMode::Required, None) => AgentAuth::Unconfigured,
    })
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Durations are written like `500ms`, `30s`, `10m`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw.trim()).map_err(|e| format!("{raw:?} is not a duration: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("session-node").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_match_the_docs() {
        let c = Config::merge(cli(&[]), FileConfig::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8701");
        assert_eq!(c.context_path, "/cobrowse");
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.limits.retention, Duration::from_secs(600));
        assert_eq!(c.limits.max_sessions, 10_000);
        assert_eq!(c.drain_timeout, Duration::from_secs(30));
        assert!(!c.cookie_cross_site);
    }

    #[test]
    fn flags_override_the_file() {
        let file: FileConfig = toml::from_str(
            r#"
            name = "from-file"
            max-sessions = 5
            drain-timeout = "2s"
            allowed-origins = ["https://a.example", "https://*.b.example"]
            "#,
        )
        .unwrap();
        let c = Config::merge(
            cli(&["--name", "from-flag", "--session-idle-timeout", "500ms"]),
            file,
        )
        .unwrap();
        assert_eq!(c.name, "from-flag");
        assert_eq!(c.limits.max_sessions, 5);
        assert_eq!(c.drain_timeout, Duration::from_secs(2));
        assert_eq!(c.limits.idle_timeout, Duration::from_millis(500));
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        assert!(toml::from_str::<FileConfig>("nmae = \"typo\"").is_err());
    }

    #[test]
    fn https_server_url_implies_cross_site_cookie() {
        let c = Config::merge(
            cli(&["--server-url", "https://n1.example.com/cobrowse"]),
            FileConfig::default(),
        )
        .unwrap();
        assert!(c.cookie_cross_site);
    }

    #[test]
    fn bad_values_are_reported() {
        assert!(Cli::try_parse_from(["x", "--drain-timeout", "soon"]).is_err());
        assert!(Config::merge(cli(&["--allowed-origins", "nope"]), FileConfig::default()).is_err());
        assert!(Config::merge(cli(&["--server-url", "::"]), FileConfig::default()).is_err());
    }
}
