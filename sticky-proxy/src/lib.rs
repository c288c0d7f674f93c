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
//! - [`server`]: the accept loop (connection caps) with graceful drain, and
//!   the [`ProxyHandle`] (reload, node listing).
//! - [`client`]: one client connection: idle without a buffer, the head
//!   read and checked within `--header-timeout`, keep-alive and pipelining.
//! - [`route`]: one request: its budget ([`limits`]), where it goes
//!   ([`affinity`], [`cometd_route`], [`lookup`], [`balance`]), and sending
//!   it with the retry rules of its kind.
//! - [`upstream`]: the node side: per-node connection pools, one exchange
//!   with its resend rules, the answer relayed back or a WebSocket tunnel.
//! - [`wire`]: the bytes: pooled buffers, head edits, framed bodies, the
//!   proxy's own answers; parsing is the strict [`http1`] crate's.
//!
//! Beside the request path, the membership: [`nodes`] (nodes, their state,
//! phase and in-flight counts, the snapshot the hot path reads), [`health`]
//! (active checks with rise/fall), [`passive`] (what forwarding failures say
//! about a node), [`retire`] (nodes a reload removed keep serving their
//! sessions for a while); [`control`] is the hyper client of health checks
//! and lookups; [`context`] what every connection shares; [`errors`] the
//! proxy's own JSON errors; [`admin`] the optional admin listener.
//!
//! Imports run one way: server → client → route → upstream → wire; route
//! and server read the membership; the membership never imports the
//! request path (a node owns its [`upstream::pool`], which knows nothing of
//! nodes).

pub mod admin;
pub mod affinity;
pub mod balance;
pub mod client;
pub mod cometd_route;
pub mod config;
pub mod context;
pub mod control;
pub mod errors;
pub mod health;
pub mod limits;
pub mod lookup;
pub mod nodes;
pub mod passive;
pub mod retire;
pub mod route;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod wire;

pub use config::{Config, ConfigError, NodeSpec};
pub use server::{serve, Proxy, ProxyHandle, ReloadSummary, ServeError};

/// Resolves once the flag behind `flag` is (or was) set to `true`, or its
/// sender is gone. Used for the drain and stop signals; holds no borrow of
/// the channel across the caller's later awaits.
pub(crate) async fn raised(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}
