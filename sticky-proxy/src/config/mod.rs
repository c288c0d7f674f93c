//! Configuration: command-line flags (each also read from an environment
//! variable `STICKY_PROXY_<FLAG>`) merged over an optional TOML file, with the
//! defaults filled in, validated into one [`Config`].
//!
//! Precedence: flag (or its env var) > file > default. Nodes are the union of
//! the file's `[[node]]` entries and the `--node` flags; a `--node` with the
//! same name as a file node replaces it. On reload only the file is read
//! again (and the `--node` flags merged over it again); other settings need a
//! restart.
//!
//! - `settings.rs`: every setting, once (flag, env var, key, parser,
//!   default, help), and from it [`Settings`], the file's struct and
//!   [`Config`];
//! - `defaults.rs`: the named defaults and bounds; `values.rs`: the value
//!   syntaxes (sizes, budgets, durations in the file);
//! - `nodes.rs`: [`NodeSpec`] and the node merge; `nofile.rs`: the open-file
//!   limit and the `--max-connections` it allows.

mod defaults;
mod nodes;
mod nofile;
mod settings;
mod values;

use std::path::{Path, PathBuf};

use clap::Parser;

pub use defaults::*;
pub use nodes::NodeSpec;
pub use nofile::{connection_cap, nofile_soft_limit, raise_nofile_limit, NOFILE_RESERVE};
pub use settings::{Config, Settings};
pub use values::{parse_budget, parse_byte_size};

use nodes::{check_unique, merge_nodes, parse_file_nodes, parse_flags};
use settings::FileConfig;

/// The command line: the nodes, the file, and every [`Settings`] flag.
#[derive(Debug, Default, Parser)]
#[command(name = "sticky-proxy", version, about, args_override_self = true)]
pub struct Cli {
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

    #[command(flatten)]
    pub settings: Settings,
}

impl Config {
    /// Defaults around the given nodes (for embedding and tests).
    pub fn with_nodes(nodes: Vec<NodeSpec>) -> Self {
        Settings::default().resolve(nodes.clone(), nodes, None)
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
        let (file_nodes, file_settings) = file.into_parts();
        let node_flags = parse_flags(&cli.nodes)?;
        let nodes = merge_nodes(parse_file_nodes(&file_nodes)?, &node_flags)?;
        let config = cli
            .settings
            .or(file_settings)
            .resolve(nodes, node_flags, cli.config);
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
        if self.max_body_size == 0 {
            return invalid("--max-body-size must be at least 1 byte");
        }
        if !(MIN_MAX_HEADERS..=MAX_MAX_HEADERS).contains(&self.max_headers) {
            return Err(ConfigError::Invalid(format!(
                "--max-headers must be between {MIN_MAX_HEADERS} and {MAX_MAX_HEADERS}"
            )));
        }
        self.validate_max_connections()?;
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
            return invalid("give both --tls-cert and --tls-key, or neither");
        }
        if let Some(origin) = &self.lookup_origin {
            if http::HeaderValue::from_str(origin).is_err() {
                return invalid("--lookup-origin is not a valid header value");
            }
        }
        Ok(())
    }

    /// A cap the descriptors cannot carry turns into `EMFILE` on upstream
    /// connects in mid-request (answered 503 `server_busy`, never counted
    /// against a node): allowed, as an explicit opt-out, with a warning.
    fn validate_max_connections(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "--max-connections must be at least 1".to_owned(),
            ));
        }
        let nofile = nofile_soft_limit();
        let allowed = connection_cap(nofile);
        if self.max_connections > allowed {
            tracing::warn!(
                "--max-connections {} is above what the open-file limit allows: {nofile} \
                 descriptors (RLIMIT_NOFILE) leave room for {allowed} client connections \
                 ((limit - {NOFILE_RESERVE} reserved) / 2, each with its upstream); \
                 raise the limit (ulimit -n) or lower --max-connections",
                self.max_connections
            );
        }
        Ok(())
    }

    /// The nodes a reload would install: the file read again, with the
    /// `--node` flags merged over it.
    pub fn reload_nodes(&self) -> Result<Vec<NodeSpec>, ConfigError> {
        let file_nodes = match &self.config_file {
            Some(path) => parse_file_nodes(&read_file(path)?.into_parts().0)?,
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
mod tests;
