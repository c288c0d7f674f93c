//! What every request handler shares, built once from the [`Config`].

use std::sync::Arc;

use access::TrustedProxies;

use crate::cometd::Bayeux;
use crate::config::Config;
use crate::cors::AllowedOrigins;
use crate::readiness::Readiness;
use crate::sessions::Sessions;
use crate::stickiness::Stickiness;
use crate::web::WebAssets;

/// The node's shared state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub name: String,
    pub server_url: Option<String>,
    pub context_path: String,
    pub origins: AllowedOrigins,
    pub stickiness: Stickiness,
    pub sessions: Arc<Sessions>,
    pub readiness: Readiness,
    pub bayeux: Arc<Bayeux>,
    pub max_body_bytes: usize,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// The widget and agent console bundle (embedded, or `--web-dir`).
    pub web: WebAssets,
}

impl AppState {
    pub fn new(config: &Config) -> Result<Self, String> {
        Self::with_sessions(config, Sessions::new(config.limits.clone(), &config.access))
    }

    /// Tests: a state around a prepared session core.
    pub fn with_sessions(config: &Config, sessions: Sessions) -> Result<Self, String> {
        let web = match &config.web_dir {
            Some(dir) => WebAssets::from_dir(dir)?,
            None => WebAssets::embedded(),
        };
        let sessions = Arc::new(sessions);
        let readiness = Readiness::default();
        let bayeux = Arc::new(Bayeux::new(
            Arc::clone(&sessions),
            readiness.clone(),
            config.name.clone(),
            config.bayeux.clone(),
        ));
        Ok(AppState(Arc::new(Shared {
            name: config.name.clone(),
            server_url: config.server_url.clone(),
            context_path: config.context_path.clone(),
            origins: config.allowed_origins.clone(),
            stickiness: Stickiness::new(
                &config.name,
                &config.context_path,
                config.cookie_cross_site,
            )?,
            sessions,
            readiness,
            bayeux,
            max_body_bytes: config.max_body_bytes,
            trusted_proxies: config.trusted_proxies.clone(),
            web,
        })))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
