//! Load generators for `make bench` that wrk cannot do.
//!
//! Binaries (`src/bin/`), each printing one JSON line on stdout and its
//! progress on stderr:
//!
//! - `cometd-load`: the realtime scale benchmark. N sessions, each a customer
//!   and an agent on their own Bayeux-over-WebSocket connection; customers
//!   publish numbered messages at a fixed rate, agents measure the delivery
//!   latency and check that nothing is lost or reordered.
//! - `idle-conns`: N keep-alive HTTP/1.1 connections, one GET each, then held
//!   idle (the front's memory per idle connection).
//! - `ws-tunnels`: N WebSocket connections, one Bayeux handshake each, then
//!   held idle (the front's memory per WebSocket tunnel).
//!
//! Shared modules:
//!
//! - [`bayeux`]: a minimal Bayeux client over WebSocket (URL, frames,
//!   handshake, request/reply by id) speaking `shared_types::bayeux::Message`.
//! - [`seq`]: the per-session order check (lost, reordered, duplicates).
//! - [`latency`]: the latency histogram and its summary in milliseconds.
//! - [`http1`]: reading one HTTP/1.1 response (head, then a sized or chunked
//!   body) off a stream.
//! - [`run`]: what every binary needs around the load: the error type, the
//!   runtime, the open-files limit, the hold (timer, stdin, signals), the
//!   error tally and the JSON line.

pub mod bayeux;
pub mod http1;
pub mod latency;
pub mod run;
pub mod seq;

pub use run::{Context, Error, Result};
