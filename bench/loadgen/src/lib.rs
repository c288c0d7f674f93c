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
//! - `guesser`: random nine-digit tokens tried at full speed (Get Session
//!   and agent joins without a credential) over keep-alive connections,
//!   counting what answered, what was refused (429) and what was found.
//! - `access-cost`: what issue 8's checks cost: `verify` (µs per agent
//!   credential verification, HS256/EdDSA/RS256), `limiter` (RSS of the
//!   probe budget holding many addresses), `join` (a REST join on real
//!   nodes with and without a credential).
//!
//! Shared modules:
//!
//! - [`bayeux`]: a minimal Bayeux client over WebSocket (URL, frames,
//!   handshake, request/reply by id) speaking `shared_types::bayeux::Message`.
//! - [`seq`]: the per-session order check (lost, reordered, duplicates).
//! - [`latency`]: the latency histogram and its summary in milliseconds.
//! - [`http1`]: building a request, and reading one HTTP/1.1 response (head,
//!   then a sized or chunked body, kept if asked) off a stream.
//! - [`run`]: what every binary needs around the load: the error type, the
//!   runtime, the open-files limit, the hold (timer, stdin, signals), the
//!   error tally and the JSON line.

pub mod bayeux;
pub mod http1;
pub mod latency;
pub mod run;
pub mod seq;

pub use run::{Context, Error, Result};
