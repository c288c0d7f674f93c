//! Wire types of the co-browse live REST API.
//!
//! This crate is the only place that defines what travels on the wire between
//! clients, the `session-node` and the `sticky-proxy`:
//!
//! - [`names`]: the `gcbSessionServer` cookie/header/query name and the path
//!   constants (context path, `/rest/live`, `/health`).
//! - [`api`]: every JSON body of the live REST resources (create, get, join,
//!   stop) and the [`api::Role`] of a joined user.
//! - [`error`]: the one error body every failure answers with
//!   (`{"error":"<code>","message":"<text>"}`) and its stable codes.
//! - [`bayeux`]: the Bayeux (CometD) message and the channel names of the
//!   realtime side.
//! - [`token`]: the shapes of session tokens and user tokens, so that both
//!   the node and the proxy agree on what a well-formed token is and on how a
//!   user token names its session.

pub mod api;
pub mod bayeux;
pub mod error;
pub mod names;
pub mod token;
