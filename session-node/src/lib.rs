//! A co-browse session node: hosts live sessions in memory and serves the live
//! REST API of the contract (`../shared/seed`), under a context path
//! (`/cobrowse` by default), and the CometD realtime channel.
//!
//! Where a request goes, in order:
//!
//! - [`server`]: [`serve`] takes a bound listener, a [`Config`] and a shutdown
//!   future; it owns the sweeper task, the metrics listener and the drain.
//! - [`api`]: the HTTP layer: the router ([`api::app`]), one handler per REST
//!   resource, the two CometD transports ([`api::cometd`]) and who is asking
//!   ([`api::caller`]: address, agent credential).
//! - [`cometd`]: the Bayeux engine (clients, queues, channels) and the
//!   `/service/session/*` channels, on the same session core.
//! - [`sessions`]: the session core: tokens, users, roles, activation, stop,
//!   idle expiry, retention — and every join rule ([`sessions::access`]:
//!   credentials, customer key, probe and create budgets). No HTTP in here.
//! - [`state`]: what every handler shares, built once from the [`Config`].
//! - [`cors`]: which origins may call the API (`--allowed-origins`), the
//!   check Get Session must pass, and the CORS headers on every answer.
//! - [`stickiness`]: the `gcbSessionServer` cookie and header that tell a
//!   load balancer which node owns a session.
//! - [`readiness`]: ready or draining, and waiting for the last live session.
//! - [`error`]: the one error enum; every client mistake becomes a JSON
//!   [`shared_types::error::ErrorBody`] with its status.
//! - [`web`]: the browser side: the customer widget and agent console
//!   bundle (embedded at build time from `web/dist`, or `--web-dir`) and the
//!   demo shop (`session-node demo-site`); [`api::web`] serves them.
//! - [`metrics`]: the optional Prometheus listener (`--metrics-listen`).
//! - [`config`]: flags, `COBROWSE_…` environment variables and the TOML file.
//!
//! Imports run one way: `api` → `state` → {`cometd` → `sessions`}, with
//! `config` feeding `state`; `sessions` knows nothing of HTTP or Bayeux.

pub mod api;
pub mod cometd;
pub mod config;
pub mod cors;
pub mod error;
pub mod metrics;
pub mod readiness;
pub mod server;
pub mod sessions;
pub mod state;
pub mod stickiness;
pub mod web;

#[cfg(test)]
mod test_support;

pub use config::Config;
pub use server::serve;
