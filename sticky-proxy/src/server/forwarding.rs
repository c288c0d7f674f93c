//! Sending a routed request to its node and relaying the answer: bound
//! requests (never to another node), cached owners (looked up again when
//! stale), unbound requests (the next ready node when nothing was sent),
//! what each failure answers, and the proxy's own early answers.

use std::sync::Arc;

use http::{Request, Response, StatusCode, Version};
use http_body::Body;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::{Decision, Shared};
use crate::affinity::SessionToken;
use crate::balance::Selection;
use crate::body::{self, ClientBody};
use crate::errors::ProxyError;
use crate::forward::{
    self, is_websocket_upgrade, prepare_request, prepare_response, upstream_uri, BodySlot,
    ClientInfo, ForwardFailure, ProxyBody, UpstreamBody,
};
use crate::limits::{self, Reason};
use crate::lookup::Owner;
use crate::nodes::{FailureKind, InFlight, Node, NodeState};
use crate::pool::Lease;

/// 409 `session_ambiguous`: more than one node claims the session.
pub(super) async fn ambiguous(shared: &Shared, body: Option<ClientBody>) -> Response<ProxyBody> {
    shared.limits.reject(Reason::SessionAmbiguous);
    early(shared, body, ProxyError::SessionAmbiguous, None).await
}

pub(super) fn own_error(shared: &Shared, error: ProxyError) -> Response<ProxyBody> {
    shared.own_requests.count(error.status());
    error.to_response()
}

fn node_error(node: &Node, error: ProxyError) -> Response<ProxyBody> {
    node.count_response(error.status());
    error.to_response()
}

/// An answer the proxy makes without forwarding the request: a small body
/// is read and dropped first, so that the client's connection can stay
/// open (a body not read to its end makes the answer close it, see
/// [`crate::body`]). Counted against `node`, or as the proxy's own.
pub(super) async fn early(
    shared: &Shared,
    body: Option<ClientBody>,
    error: ProxyError,
    node: Option<&Node>,
) -> Response<ProxyBody> {
    body::drain(body).await;
    match node {
        Some(node) => node_error(node, error),
        None => own_error(shared, error),
    }
}

/// The request parts after rewriting, and the client's side of an upgrade.
pub(super) struct Prepared {
    parts: http::request::Parts,
    body: Option<ClientBody>,
    client_upgrade: Option<OnUpgrade>,
}

fn prepare(client: &ClientInfo, request: Request<ClientBody>) -> Prepared {
    let (mut parts, body) = request.into_parts();
    let upgrade = is_websocket_upgrade(&parts.headers);
    let client_upgrade = if upgrade {
        parts.extensions.remove::<OnUpgrade>()
    } else {
        None
    };
    prepare_request(&mut parts, client, client_upgrade.is_some());
    let body = (!body.is_end_stream()).then_some(body);
    Prepared {
        parts,
        body,
        client_upgrade,
    }
}

/// The session may be on a node that did not answer or is down: sending the
/// request anywhere else could only misroute it. Names those nodes as what
/// they are.
pub(super) async fn session_unreachable(
    shared: &Shared,
    body: ClientBody,
    silent: Vec<Arc<Node>>,
    down: Vec<Arc<Node>>,
) -> Response<ProxyBody> {
    shared.decide(Decision::Unavailable);
    let error = ProxyError::SessionNotOnLiveNodes {
        silent: silent.iter().map(|n| n.name_arc().clone()).collect(),
        down: down.iter().map(|n| n.name_arc().clone()).collect(),
    };
    let counted = silent.first().or(down.first()).cloned();
    let mut response = early(shared, Some(body), error, counted.as_deref()).await;
    // No live node has the token: to a guesser this is a miss like a 404,
    // whatever the down node might hold.
    response.extensions_mut().insert(limits::LookupMiss);
    response
}

/// Forwards a request bound to `node`; never to another node.
pub(super) async fn forward_bound(
    shared: &Shared,
    client: &ClientInfo,
    request: Request<ClientBody>,
    node: Arc<Node>,
    decision: Decision,
    token: Option<SessionToken>,
) -> Response<ProxyBody> {
    forward_prepared(shared, prepare(client, request), node, decision, token).await
}

/// Forwards a request whose owner came from the cache. A cached owner can be
/// stale: the session ended there (and may be forgotten), and a new session
/// now has the same nine digits on another node. If the cached owner answers
/// 404 or 410 and the request has no body (so it can be sent again as it was), the
/// owner is looked up afresh and, if another node owns the token now, the
/// request goes there.
pub(super) async fn forward_cached(
    shared: &Shared,
    client: &ClientInfo,
    request: Request<ClientBody>,
    node: Arc<Node>,
    token: SessionToken,
) -> Response<ProxyBody> {
    let prepared = prepare(client, request);
    let again = (prepared.body.is_none() && prepared.client_upgrade.is_none())
        .then(|| copy_head(&prepared.parts));
    let response = forward_prepared(
        shared,
        prepared,
        node.clone(),
        Decision::LookupHit,
        Some(token),
    )
    .await;
    let Some(parts) = again else {
        return response;
    };
    match response.status() {
        // (forward_prepared forgot the cache entry on that 404.)
        StatusCode::NOT_FOUND => {}
        // Ended there; a live session with the same digits may exist elsewhere.
        StatusCode::GONE => shared.lookup.forget(token).await,
        _ => return response,
    }
    let set = shared.membership.load_full();
    match shared.lookup.owner(token, &set).await {
        Owner::Found(owner) if !Arc::ptr_eq(&owner, &node) => {
            tracing::debug!(%token, stale = node.name(), owner = owner.name(), "cached owner was stale");
            let prepared = Prepared {
                parts,
                body: None,
                client_upgrade: None,
            };
            forward_prepared(shared, prepared, owner, Decision::LookupMiss, Some(token)).await
        }
        Owner::Ambiguous(_) => ambiguous(shared, None).await,
        _ => response,
    }
}

/// A copy of a prepared request head, for sending a bodiless request again.
fn copy_head(parts: &http::request::Parts) -> http::request::Parts {
    let (mut copy, ()) = Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

async fn forward_prepared(
    shared: &Shared,
    prepared: Prepared,
    node: Arc<Node>,
    decision: Decision,
    token: Option<SessionToken>,
) -> Response<ProxyBody> {
    if node.state() == NodeState::Down {
        shared.decide(Decision::Unavailable);
        let error = ProxyError::SessionServerUnavailable(node.name_arc().clone());
        return early(shared, prepared.body, error, Some(&node)).await;
    }
    let Prepared {
        mut parts,
        body,
        client_upgrade,
    } = prepared;
    let Some(uri) = upstream_uri(&parts.uri) else {
        shared.decide(decision);
        let error = ProxyError::BadRequest("the request target cannot be forwarded");
        return early(shared, body, error, Some(&node)).await;
    };
    parts.uri = uri;
    let body = body.map_or(UpstreamBody::Empty, UpstreamBody::Client);
    let in_flight = node.begin_request();
    let sent = shared.send(&node, Request::from_parts(parts, body)).await;
    match sent {
        Ok((response, lease)) => {
            node.passive().success();
            shared.decide(decision);
            if let Some(token) = token {
                if response.status() == StatusCode::NOT_FOUND {
                    shared.lookup.forget(token).await;
                }
            }
            relay(shared, response, lease, in_flight, client_upgrade)
        }
        Err(failure) => {
            let error = failure_error(shared, &node, failure);
            shared.decide(if error.status() == StatusCode::SERVICE_UNAVAILABLE {
                Decision::Unavailable
            } else {
                decision
            });
            node_error(&node, error)
        }
    }
}

/// Maps a failed forward to the answer, and tells passive detection.
fn failure_error(shared: &Shared, node: &Arc<Node>, failure: ForwardFailure) -> ProxyError {
    let name = node.name_arc().clone();
    match failure {
        // Refused or timed out: this request's session is not reachable
        // (503), and the node is probed — one such connect is no verdict.
        ForwardFailure::Connect => {
            node.count_failure(FailureKind::Connect);
            shared.strike(node);
            ProxyError::SessionServerUnavailable(name)
        }
        ForwardFailure::Local => {
            node.count_failure(FailureKind::Local);
            shared.limits.reject(Reason::ServerBusy);
            tracing::warn!(
                node = node.name(),
                "cannot open a connection to the node: the proxy is out of file descriptors or sockets"
            );
            ProxyError::ServerBusy {
                node: name,
                local: true,
            }
        }
        ForwardFailure::Busy => {
            node.count_failure(FailureKind::Busy);
            shared.limits.reject(Reason::ServerBusy);
            ProxyError::ServerBusy {
                node: name,
                local: false,
            }
        }
        ForwardFailure::Timeout => ProxyError::UpstreamTimeout(name),
        ForwardFailure::Other => ProxyError::BadGateway(name),
    }
}

/// Forwards an unbound request to a ready node, trying the next ready node
/// when nothing could be sent (the connect failed, or the node is at
/// `--max-conns-per-node`).
pub(super) async fn forward_unbound(
    shared: &Shared,
    client: &ClientInfo,
    request: Request<ClientBody>,
    decision: Decision,
) -> Response<ProxyBody> {
    let Prepared {
        parts,
        body,
        client_upgrade,
    } = prepare(client, request);
    let slot = body.map(BodySlot::new);
    let mut parts = Some(parts);
    // Nodes already tried by this request; each attempt goes to another.
    let mut tried: Vec<Arc<Node>> = Vec::new();
    let mut busy = None;
    let attempts = shared.membership.load().len().max(1);
    for _ in 0..attempts {
        let (node, more_candidates) = {
            let set = shared.membership.load();
            let untried = |node: &&Arc<Node>| !tried.iter().any(|t| Arc::ptr_eq(t, node));
            let picked = if tried.is_empty() {
                shared.balancer.select(set.as_slice()).cloned()
            } else {
                let rest: Vec<Arc<Node>> = set.iter().filter(untried).cloned().collect();
                shared.balancer.select(&rest).cloned()
            };
            let Some(node) = picked else {
                break;
            };
            let more = set
                .iter()
                .filter(untried)
                .any(|n| n.is_ready() && !Arc::ptr_eq(n, &node));
            (node, more)
        };
        let Some(head) = parts.as_ref() else {
            break;
        };
        let Some(uri) = upstream_uri(&head.uri) else {
            shared.decide(decision);
            let error = ProxyError::BadRequest("the request target cannot be forwarded");
            let body = slot.as_ref().and_then(BodySlot::take_unread);
            return early(shared, body, error, Some(&node)).await;
        };
        let body = slot.as_ref().map_or(UpstreamBody::Empty, BodySlot::body);
        // Keep a copy of the head only when another node could take a retry.
        let request = if more_candidates {
            let mut request = Request::new(body);
            *request.method_mut() = head.method.clone();
            *request.uri_mut() = uri;
            *request.version_mut() = Version::HTTP_11;
            *request.headers_mut() = head.headers.clone();
            request
        } else {
            let Some(mut head) = parts.take() else {
                break;
            };
            head.uri = uri;
            Request::from_parts(head, body)
        };
        let in_flight = node.begin_request();
        let sent = shared.send(&node, request).await;
        match sent {
            Ok((response, lease)) => {
                node.passive().success();
                shared.decide(decision);
                return relay(shared, response, lease, in_flight, client_upgrade);
            }
            Err(failure @ (ForwardFailure::Connect | ForwardFailure::Busy))
                if slot.as_ref().is_none_or(BodySlot::is_unread) =>
            {
                drop(in_flight);
                let error = failure_error(shared, &node, failure);
                if matches!(error, ProxyError::ServerBusy { .. }) {
                    busy = Some(error);
                }
                tried.push(node);
            }
            Err(failure) => {
                let error = match failure_error(shared, &node, failure) {
                    // Something was sent (or the body is gone): not retried, and
                    // not the unbound client's session that died.
                    ProxyError::SessionServerUnavailable(name) => ProxyError::BadGateway(name),
                    other => other,
                };
                shared.decide(if error.status() == StatusCode::SERVICE_UNAVAILABLE {
                    Decision::Unavailable
                } else {
                    decision
                });
                return node_error(&node, error);
            }
        }
    }
    shared.decide(Decision::Unavailable);
    let error = busy.unwrap_or(ProxyError::NoServerAvailable);
    early(
        shared,
        slot.as_ref().and_then(BodySlot::take_unread),
        error,
        None,
    )
    .await
}

/// Turns the node's response into the client's: streamed body, hop-by-hop
/// headers stripped, or on 101 the upgrade tunnel started.
fn relay(
    shared: &Shared,
    mut response: Response<Incoming>,
    lease: Lease,
    in_flight: InFlight,
    client_upgrade: Option<OnUpgrade>,
) -> Response<ProxyBody> {
    let node = in_flight.node().clone();
    let status = response.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            // The node switched protocols on a request that did not ask to.
            return node_error(&node, ProxyError::BadGateway(node.name_arc().clone()));
        };
        node.count_response(status);
        // The connection now belongs to the tunnel, not to the pool (nor
        // under `--max-conns-per-node`).
        drop(lease);
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
        prepare_response(&mut parts.headers, true);
        forward::spawn_tunnel(
            client_upgrade,
            upstream_upgrade,
            in_flight,
            shared.tunnel_stop.subscribe(),
        );
        return Response::from_parts(parts, ProxyBody::Empty);
    }
    node.count_response(status);
    let (mut parts, body) = response.into_parts();
    prepare_response(&mut parts.headers, false);
    let lease = if body.is_end_stream() {
        // Nothing more to read (no body, or a HEAD): the connection is free.
        lease.give_back();
        None
    } else {
        Some(lease)
    };
    Response::from_parts(
        parts,
        ProxyBody::Upstream {
            body,
            in_flight,
            lease,
        },
    )
}
