//! `sticky-proxy`: a reverse proxy in front of the co-browse session nodes
//! that sends every request of a live session to the one node that holds it.
//!
//! A live session exists in one node's memory only, so unlike the usual
//! sticky balancers this proxy never re-routes a bound request to another node:
//! when the owner cannot serve, the client is told (503 naming the node).
//!
//! Modules, in the order a request meets them:
//!
//! - [`config`]: flags, environment and TOML file merged into one [`Config`].
//! - [`server`]: the accept loop with graceful drain, the per-request routing
//!   and the [`ProxyHandle`] (reload, node listing).
//! - [`tls`]: TLS termination (`--tls-cert`/`--tls-key`): the rustls
//!   server configuration, swapped on SIGHUP for new connections.
//! - [`conn`]: one client connection: the request-head timeout and the
//!   refusal of a connection over the per-address cap.
//! - [`body`]: the client's request body: read-ahead, end tracking (an
//!   answer before its end says `Connection: close`), draining.
//! - [`cometd_route`]: the node a CometD long-polling body's `clientId`
//!   names.
//! - [`affinity`]: pure functions that read what a request is bound to
//!   (cookie, header, query parameter, session or user path) and which
//!   budget it is under.
//! - [`limits`]: who a client is (address behind trusted proxies, or a
//!   verified agent), its probe and create budgets, connections per address.
//! - [`lookup`]: which node owns a session, asked of the nodes and cached.
//! - [`balance`]: the choice of a ready node for unbound requests.
//! - [`forward`]: header rewriting, the pooled upstream client, streamed
//!   bodies and the WebSocket upgrade tunnel.
//! - [`pool`]: the keep-alive connections to each node that forwarded
//!   requests use, capped per node; the resend of a request whose kept-alive
//!   connection broke before the answer.
//! - [`nodes`]: membership — nodes, their state, phase and in-flight
//!   counts — and the atomically swapped snapshot the hot path reads.
//! - [`health`]: active health checks with rise/fall thresholds.
//! - [`passive`]: what forwarding failures say about a node (strikes,
//!   immediate probes), so no client can take a healthy node down.
//! - [`retire`]: nodes a reload removed keep serving their sessions until
//!   they have none left or `--retire-timeout`.
//! - [`errors`]: the errors the proxy answers itself, as JSON bodies.
//! - [`admin`]: the optional admin listener (`/metrics`, `/nodes`).

pub mod admin;
pub mod affinity;
pub mod balance;
pub mod body;
pub mod cometd_route;
pub mod config;
pub mod conn;
pub mod errors;
pub mod forward;
pub mod health;
pub mod limits;
pub mod lookup;
pub mod nodes;
pub mod passive;
pub mod pool;
pub mod retire;
pub mod server;
pub mod tls;

pub use config::{Config, ConfigError, NodeSpec};
pub use server::{serve, Proxy, ProxyHandle, ReloadSummary, ServeError};

/// Resolves once the flag behind `flag` is (or was) set to `true`, or its
/// sender is gone. Used for the drain and stop signals; holds no borrow of
/// the channel across the caller's later awaits.
pub(crate) async fn raised(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}
