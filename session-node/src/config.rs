//! Configuration: command-line flags, each also read from a `COBROWSE_…`
//! environment variable, over an optional TOML file (`--config`), over the
//! defaults. The flag names are an interface others script against.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use shared_types::names::{normalize_context_path, DEFAULT_CONTEXT_PATH};
use url::Url;

use crate::cometd::BayeuxConfig;
use crate::cors::AllowedOrigins;
use crate::sessions::SessionLimits;

/// Command line of the `session-node` binary.
#[derive(Debug, Parser, Default)]
#[command(name = "session-node", version, about = "A co-browse session node")]
pub struct Cli {
    /// TOML file with any of the settings below (kebab-case keys); flags and
    /// environment variables override it.
    #[arg(long, env = "COBROWSE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8701].
    #[arg(long, env = "COBROWSE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// This node's name: the `gcbSessionServer` cookie value and
    /// `sessionServerName` [default: node-1].
    #[arg(long, env = "COBROWSE_NAME")]
    pub name: Option<String>,
    /// This node's public URL, returned by Get Session as `sessionServerUrl`.
    #[arg(long, env = "COBROWSE_SERVER_URL", value_name = "URL")]
    pub server_url: Option<String>,
    /// Comma-separated origins allowed to call Get Session (`*` for all,
    /// `https://*.example.com` for subdomains) [default: none].
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
}

/// The same settings as the flags, from `--config FILE`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<SocketAddr>,
    name: Option<String>,
    server_url: Option<String>,
    allowed_origins: Option<OriginList>,
    context_path: Option<String>,
    cookie_secure: Option<bool>,
    session_idle_timeout: Option<String>,
    session_retention: Option<String>,
    max_sessions: Option<usize>,
    max_users_per_session: Option<usize>,
    drain_timeout: Option<String>,
    cometd_timeout: Option<String>,
    cometd_max_interval: Option<String>,
}

/// `allowed-origins` may be written as one comma-separated string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OriginList {
    One(String),
    Many(Vec<String>),
}

impl OriginList {
    fn joined(self) -> String {
        match self {
            OriginList::One(s) => s,
            OriginList::Many(v) => v.join(","),
        }
    }
}

/// The node's settled configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8701)),
            name: "node-1".into(),
            server_url: None,
            allowed_origins: AllowedOrigins::default(),
            context_path: DEFAULT_CONTEXT_PATH.into(),
            cookie_cross_site: false,
            limits: SessionLimits::default(),
            drain_timeout: Duration::from_secs(30),
            bayeux: BayeuxConfig::default(),
            max_body_bytes: 16 * 1024,
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
        let file_duration = |raw: Option<String>, key: &str| {
            raw.map(|s| parse_duration(&s).map_err(|e| format!("{key}: {e}")))
                .transpose()
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
            .or(file.allowed_origins.map(OriginList::joined))
        {
            Some(list) => AllowedOrigins::parse(&list)?,
            None => AllowedOrigins::default(),
        };
        let name = cli.name.or(file.name).unwrap_or(defaults.name);
        if name.is_empty() {
            return Err("--name must not be empty".into());
        }
        let limits = SessionLimits {
            max_sessions: cli
                .max_sessions
                .or(file.max_sessions)
                .unwrap_or(defaults.limits.max_sessions),
            max_users_per_session: cli
                .max_users_per_session
                .or(file.max_users_per_session)
                .unwrap_or(defaults.limits.max_users_per_session),
            idle_timeout: match cli.session_idle_timeout {
                Some(d) => d,
                None => file_duration(file.session_idle_timeout, "session-idle-timeout")?
                    .unwrap_or(defaults.limits.idle_timeout),
            },
            retention: match cli.session_retention {
                Some(d) => d,
                None => file_duration(file.session_retention, "session-retention")?
                    .unwrap_or(defaults.limits.retention),
            },
        };
        let drain_timeout = match cli.drain_timeout {
            Some(d) => d,
            None => file_duration(file.drain_timeout, "drain-timeout")?
                .unwrap_or(defaults.drain_timeout),
        };
        let bayeux = BayeuxConfig {
            timeout: match cli.cometd_timeout {
                Some(d) => d,
                None => file_duration(file.cometd_timeout, "cometd-timeout")?
                    .unwrap_or(defaults.bayeux.timeout),
            },
            max_interval: match cli.cometd_max_interval {
                Some(d) => d,
                None => file_duration(file.cometd_max_interval, "cometd-max-interval")?
                    .unwrap_or(defaults.bayeux.max_interval),
            },
            ..defaults.bayeux
        };
        Ok(Config {
            listen: cli.listen.or(file.listen).unwrap_or(defaults.listen),
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
        })
    }
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
