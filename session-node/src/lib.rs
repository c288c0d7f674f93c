//! A co-browse session node: hosts live sessions in memory and serves the live
//! REST API of the contract (`../shared/seed`), under a context path
//! (`/cobrowse` by default).
//!
//! Where a request goes, in order:
//!
//! - [`server`]: [`serve`] takes a bound listener, a [`Config`] and a shutdown
//!   future; it owns the sweeper task and the drain on shutdown.
//! - [`api`]: the router ([`api::app`]) and one handler per resource: create,
//!   get, join, stop, health, the CORS preflight, and the JSON 404/405.
//! - [`cometd`]: the realtime channel, Bayeux (CometD) over WebSocket and
//!   long-polling at `<ctx>/cometd`, on the same session core.
//! - [`cors`]: which origins may call the API (`--allowed-origins`), the
//!   check Get Session must pass, and the CORS headers on every answer.
//! - [`stickiness`]: the `gcbSessionServer` cookie and header that tell a
//!   load balancer which node owns a session.
//! - [`sessions`]: the session core: tokens, users, roles, activation, stop,
//!   idle expiry and retention of ended sessions. No HTTP in here, so a second
//!   transport (CometD) can share the same rules.
//! - [`readiness`]: ready or draining, and waiting for the last live session.
//! - [`error`]: the one error enum; every client mistake becomes a JSON
//!   [`shared_types::error::ErrorBody`] with its status.
//! - [`config`]: flags, `COBROWSE_…` environment variables and the TOML file.

pub mod api;
pub mod cometd;
pub mod config;
pub mod cors;
pub mod error;
pub mod readiness;
pub mod server;
pub mod sessions;
pub mod stickiness;

pub use config::Config;
pub use server::serve;
