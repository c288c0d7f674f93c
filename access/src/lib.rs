//! Who may join a co-browse session, and how fast anyone may probe for one.
//! Shared by `session-node` (which enforces every join rule) and
//! `sticky-proxy` (which sees a guesser's misses first).
//!
//! - [`agent`]: agent credentials: short-lived JWTs (HS256 with a shared
//!   secret, or EdDSA/RS256 with public keys), verified with `jsonwebtoken`,
//!   and minted for `session-node agent-token`.
//! - [`client`]: who a request comes from: the socket's address, or the
//!   `X-Forwarded-For` entry a trusted proxy vouches for; IPv6 by /64.
//! - [`budget`]: keyed budgets ("20 misses per 10 minutes"): bounded
//!   memory, a check that does not spend, and the wait a refusal tells.

pub mod agent;
pub mod budget;
pub mod client;

pub use agent::{AgentClaims, AgentKeys, AuthError, Verifier};
pub use budget::{Budget, Budgets, RetryAfter};
pub use client::{ClientKey, TrustedProxies};
