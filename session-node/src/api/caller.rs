//! Who a request comes from, as the session core needs it: the client's
//! address (the socket's peer, or `X-Forwarded-For` from a trusted proxy)
//! and the agent credential of `Authorization: Bearer …`.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::sessions::access::{Caller, Credential};
use crate::state::AppState;

static X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let forwarded = parts
            .headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .map(|v| v.as_bytes());
        Ok(ClientIp(
            state.trusted_proxies.client_ip_of(peer(parts), forwarded),
        ))
    }
}

/// The socket's peer. Served by `serve`, every connection has one; a router
/// driven without one (unit tests) is an unspecified peer.
fn peer(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// A trusted proxy asking on its own behalf: its owner lookups come with no
/// `X-Forwarded-For` (everything it forwards carries one), and it has
/// already budgeted the client it looks up for. Only Get Session (the
/// lookup) is exempted, never a join or a stop; and a trusted peer is one
/// the operator trusts to name clients anyway (it could send any
/// `X-Forwarded-For`).
fn is_proxy_itself(parts: &Parts, state: &AppState) -> bool {
    state.trusted_proxies.trusts(peer(parts)) && !parts.headers.contains_key(X_FORWARDED_FOR)
}

/// The caller: address and verified agent credential.
#[derive(Debug, Clone)]
pub struct RequestCaller(pub Caller);

impl FromRequestParts<AppState> for RequestCaller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let credential = bearer(&parts.headers);
        Ok(RequestCaller(
            state.sessions.caller(ip, credential.as_ref()),
        ))
    }
}

/// The caller of Get Session: as [`RequestCaller`], except that a trusted
/// proxy's own owner lookup is not budgeted (see [`is_proxy_itself`]).
#[derive(Debug, Clone)]
pub struct LookupCaller(pub Caller);

impl FromRequestParts<AppState> for LookupCaller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let RequestCaller(caller) = RequestCaller::from_request_parts(parts, state).await?;
        Ok(LookupCaller(if is_proxy_itself(parts, state) {
            caller.as_infrastructure()
        } else {
            caller
        }))
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<Credential> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Credential::new(token.trim()))
}
