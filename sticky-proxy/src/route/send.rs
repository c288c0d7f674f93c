//! Sending a routed request and answering for it: bound requests (never to
//! another node), cached owners (looked up again when stale), unbound
//! requests (the next ready node when nothing could be sent), what each
//! failure answers, and the proxy's own answers.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::io::AsyncWriteExt;

use super::exchange::{Exchange, Outcome};
use crate::affinity::SessionToken;
use crate::balance::Selection;
use crate::context::{Decision, Shared};
use crate::errors::ProxyError;
use crate::limits::Reason;
use crate::lookup::Owner;
use crate::nodes::{FailureKind, InFlight, Node, NodeState};
use crate::upstream::exchange::{exchange, Answer, Outgoing};
use crate::upstream::relay::{self, ClientSide, Relayed};
use crate::upstream::{ClientFault, ForwardFailure, Incident};
use crate::wire::answer;
use crate::wire::buffers::Inbound;
use crate::wire::stream::ClientStream;

/// A body up to this size is read and dropped before an answer the proxy
/// makes itself, so that the connection can stay open.
pub const DRAIN_LIMIT: u64 = 64 * 1024;
/// How long that may take.
pub const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// A request sent to a node: its answer's head, or what was answered
/// instead.
enum Forwarded {
    Answer(Answer, InFlight),
    Done(Outcome),
}

async fn write_answer<C>(
    ex: &mut Exchange<'_, C>,
    status: StatusCode,
    bytes: &[u8],
    close: bool,
    miss: bool,
) -> Outcome
where
    C: ClientStream + ?Sized,
{
    match ex.client.write_all(bytes).await {
        Ok(()) => Outcome::Answered {
            status,
            close,
            miss,
        },
        Err(_) => Outcome::Closed,
    }
}

/// Writes `error` as the answer, closing after it when the body was not
/// read to its end.
async fn answer_error<C>(ex: &mut Exchange<'_, C>, error: &ProxyError, miss: bool) -> Outcome
where
    C: ClientStream + ?Sized,
{
    let close = ex.closing || !ex.body_done();
    let mut bytes = Vec::new();
    answer::error(&mut bytes, error, close);
    write_answer(ex, error.status(), &bytes, close, miss).await
}

/// A bare status of the proxy's own (`/health`).
pub(super) async fn own_status<C>(ex: &mut Exchange<'_, C>, status: StatusCode) -> Outcome
where
    C: ClientStream + ?Sized,
{
    let drained = ex.drain_body(DRAIN_LIMIT, DRAIN_WAIT).await;
    let close = ex.closing || !drained;
    let mut bytes = Vec::new();
    answer::empty(&mut bytes, status, close);
    write_answer(ex, status, &bytes, close, false).await
}

/// An answer the proxy makes without forwarding the request: a small body
/// is read and dropped first, so that the client's connection can stay
/// open. Counted against `node`, or as the proxy's own.
pub(super) async fn early<C>(
    shared: &Shared,
    ex: &mut Exchange<'_, C>,
    error: ProxyError,
    node: Option<&Node>,
) -> Outcome
where
    C: ClientStream + ?Sized,
{
    ex.drain_body(DRAIN_LIMIT, DRAIN_WAIT).await;
    count(shared, node, error.status());
    answer_error(ex, &error, false).await
}

fn count(shared: &Shared, node: Option<&Node>, status: StatusCode) {
    match node {
        Some(node) => node.count_response(status),
        None => shared.own_requests.count(status),
    }
}

/// 409 `session_ambiguous`: more than one node claims the session.
pub(super) async fn ambiguous<C>(shared: &Shared, ex: &mut Exchange<'_, C>) -> Outcome
where
    C: ClientStream + ?Sized,
{
    shared.limits.reject(Reason::SessionAmbiguous);
    early(shared, ex, ProxyError::SessionAmbiguous, None).await
}

/// The session may be on a node that did not answer or is down: sending the
/// request anywhere else could only misroute it. Names those nodes as what
/// they are.
pub(super) async fn session_unreachable<C>(
    shared: &Shared,
    ex: &mut Exchange<'_, C>,
    silent: Vec<Arc<Node>>,
    down: Vec<Arc<Node>>,
) -> Outcome
where
    C: ClientStream + ?Sized,
{
    shared.decide(Decision::Unavailable);
    let error = ProxyError::SessionNotOnLiveNodes {
        silent: silent.iter().map(|n| n.name_arc().clone()).collect(),
        down: down.iter().map(|n| n.name_arc().clone()).collect(),
    };
    let counted = silent.first().or(down.first()).cloned();
    ex.drain_body(DRAIN_LIMIT, DRAIN_WAIT).await;
    count(shared, counted.as_deref(), error.status());
    // No live node has the token: to a guesser this is a miss like a 404,
    // whatever the down node might hold.
    answer_error(ex, &error, true).await
}

/// Forwards a request bound to `node`; never to another node.
pub(super) async fn bound<C>(
    shared: &Shared,
    ex: &mut Exchange<'_, C>,
    node: Arc<Node>,
    decision: Decision,
    token: Option<SessionToken>,
) -> Outcome
where
    C: ClientStream + ?Sized,
{
    match forward(shared, ex, node, decision, token).await {
        Forwarded::Answer(answer, in_flight) => finish(shared, ex, answer, in_flight).await,
        Forwarded::Done(outcome) => outcome,
    }
}

/// Forwards a request whose owner came from the cache. A cached owner can be
/// stale: the session ended there (and may be forgotten), and a new session
/// now has the same nine digits on another node. If the cached owner answers
/// 404 or 410 and the request has no body (so it can be sent again as it
/// was), the owner is looked up afresh and, if another node owns the token
/// now, the request goes there.
pub(super) async fn cached<C>(
    shared: &Shared,
    ex: &mut Exchange<'_, C>,
    node: Arc<Node>,
    token: SessionToken,
) -> Outcome
where
    C: ClientStream + ?Sized,
{
    let again = !ex.has_body() && !ex.websocket;
    let (answer, in_flight) =
        match forward(shared, ex, node.clone(), Decision::LookupHit, Some(token)).await {
            Forwarded::Answer(answer, in_flight) => (answer, in_flight),
            Forwarded::Done(outcome) => return outcome,
        };
    if !again {
        return finish(shared, ex, answer, in_flight).await;
    }
    match answer.head.status {
        // (forward forgot the cache entry on that 404.)
        404 => {}
        // Ended there; a live session with the same digits may exist elsewhere.
        410 => shared.lookup.forget(token).await,
        _ => return finish(shared, ex, answer, in_flight).await,
    }
    let set = shared.membership.load_full();
    match shared.lookup.owner(token, &set).await {
        Owner::Found(owner) if !Arc::ptr_eq(&owner, &node) => {
            tracing::debug!(%token, stale = node.name(), owner = owner.name(), "cached owner was stale");
            discard(shared, answer, ex.is_head_request()).await;
            drop(in_flight);
            bound(shared, ex, owner, Decision::LookupMiss, Some(token)).await
        }
        Owner::Ambiguous(_) => {
            discard(shared, answer, ex.is_head_request()).await;
            drop(in_flight);
            ambiguous(shared, ex).await
        }
        _ => finish(shared, ex, answer, in_flight).await,
    }
}

/// Reads an answer that will not be relayed to its end, so its connection
/// can serve again.
async fn discard(shared: &Shared, mut answer: Answer, head_request: bool) {
    let Some(framing) = relay::framing(&answer, head_request) else {
        return;
    };
    let head_len = answer.head.len;
    answer.inbound.consume(head_len);
    let mut body = crate::wire::body::BodyCopy::new(framing, &shared.wire_limits, u64::MAX);
    let mut sink = Vec::new();
    if body.take_buffered(&mut answer.inbound, &mut sink).is_err() {
        return;
    }
    let read = body.discard(&mut answer.lease.conn.stream, &mut answer.inbound);
    if matches!(tokio::time::timeout(DRAIN_WAIT, read).await, Ok(Ok(())))
        && framing != crate::wire::body::Framing::UntilClose
        && answer.head.keep_alive
        && answer.inbound.is_empty()
    {
        answer.lease.give_back();
    }
}

/// Sends the request to `node` and waits for its answer's head; a failure
/// is answered here.
async fn forward<C>(
    shared: &Shared,
    ex: &mut Exchange<'_, C>,
    node: Arc<Node>,
    decision: Decision,
    token: Option<SessionToken>,
) -> Forwarded
where
    C: ClientStream + ?Sized,
{
    if node.state() == NodeState::Down {
        shared.decide(Decision::Unavailable);
        let error = ProxyError::SessionServerUnavailable(node.name_arc().clone());
        return Forwarded::Done(early(shared, ex, error, Some(&node)).await);
    }
    match send_once(shared, ex, &node).await {
        Ok((answer, in_flight)) => {
            node.passive().success();
            shared.decide(decision);
            if let Some(token) = token {
                if answer.head.status == 404 {
                    shared.lookup.forget(token).await;
                }
            }
            Forwarded::Answer(answer, in_flight)
        }
        Err((failure, _sent)) => {
            Forwarded::Done(failed(shared, ex, &node, failure, decision, true).await)
        }
    }
}

/// Prepares the request for `node` and runs one exchange.
async fn send_once<C>(
    shared: &Shared,
    ex: &mut Exchange<'_, C>,
    node: &Arc<Node>,
) -> Result<(Answer, InFlight), (ForwardFailure, bool)>
where
    C: ClientStream + ?Sized,
{
    ex.prepare(node.authority().as_str())
        .map_err(|fault| (ForwardFailure::Client(fault), false))?;
    if ex.continue_if_expected().await.is_err() {
        return Err((ForwardFailure::Client(ClientFault::Gone), false));
    }
    let in_flight = node.begin_request();
    let out = Outgoing {
        head: &ex.out,
        resendable: ex.resendable(),
        connect_timeout: shared.config.connect_timeout,
        timeout: shared.config.upstream_timeout,
        limits: &shared.wire_limits,
    };
    let client_in: &mut Inbound = ex.client_in;
    let answer = exchange(
        node.pool(),
        out,
        &mut ex.body,
        &mut *ex.client,
        client_in,
        |incident| {
            node.count_failure(match incident {
                Incident::Resent => FailureKind::Resent,
                Incident::Broken => FailureKind::Broken,
            })
        },
    )
    .await?;
    Ok((answer, in_flight))
}

/// Answers a failed forward, tells passive detection, counts it.
async fn failed<C>(
    shared: &Shared,
    ex: &mut Exchange<'_, C>,
    node: &Arc<Node>,
    failure: ForwardFailure,
    decision: Decision,
    bound: bool,
) -> Outcome
where
    C: ClientStream + ?Sized,
{
    let error = match failure_error(shared, node, failure) {
        Ok(error) => error,
        Err(fault) => return client_fault(shared, ex, fault).await,
    };
    let error = match error {
        // Something was sent (or the body is gone): not the unbound
        // client's session that died.
        ProxyError::SessionServerUnavailable(name) if !bound => ProxyError::BadGateway(name),
        other => other,
    };
    shared.decide(if error.status() == StatusCode::SERVICE_UNAVAILABLE {
        Decision::Unavailable
    } else {
        decision
    });
    node.count_response(error.status());
    answer_error(ex, &error, false).await
}

/// The client broke its own request: 400 or 413, counted as the proxy's,
/// then the connection closes.
async fn client_fault<C>(shared: &Shared, ex: &mut Exchange<'_, C>, fault: ClientFault) -> Outcome
where
    C: ClientStream + ?Sized,
{
    let error = match fault {
        ClientFault::Gone => return Outcome::Closed,
        ClientFault::Malformed => {
            shared.limits.reject(Reason::Malformed);
            ProxyError::Malformed("invalid chunked body")
        }
        ClientFault::TooLarge => {
            shared.limits.reject(Reason::BodyTooLarge);
            ProxyError::BodyTooLarge(shared.config.max_body_size)
        }
    };
    shared.own_requests.count(error.status());
    ex.closing = true;
    answer_error(ex, &error, false).await
}

/// Maps a failed forward to the answer (or the client's fault).
fn failure_error(
    shared: &Shared,
    node: &Arc<Node>,
    failure: ForwardFailure,
) -> Result<ProxyError, ClientFault> {
    let name = node.name_arc().clone();
    Ok(match failure {
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
        ForwardFailure::Client(fault) => return Err(fault),
    })
}

/// Forwards an unbound request to a ready node, trying the next ready node
/// when nothing could be sent (the connect failed, or the node is at
/// `--max-conns-per-node`).
pub(super) async fn unbound<C>(
    shared: &Shared,
    ex: &mut Exchange<'_, C>,
    decision: Decision,
) -> Outcome
where
    C: ClientStream + ?Sized,
{
    // Nodes already tried by this request; each attempt goes to another.
    let mut tried: Vec<Arc<Node>> = Vec::new();
    let mut busy = None;
    let attempts = shared.membership.load().len().max(1);
    for _ in 0..attempts {
        let node = {
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
            node
        };
        match send_once(shared, ex, &node).await {
            Ok((answer, in_flight)) => {
                node.passive().success();
                shared.decide(decision);
                return finish(shared, ex, answer, in_flight).await;
            }
            Err((failure @ (ForwardFailure::Connect | ForwardFailure::Busy), sent))
                if !sent || !ex.has_body() =>
            {
                if let Ok(error) = failure_error(shared, &node, failure) {
                    if matches!(error, ProxyError::ServerBusy { .. }) {
                        busy = Some(error);
                    }
                }
                tried.push(node);
            }
            Err((failure, _)) => return failed(shared, ex, &node, failure, decision, false).await,
        }
    }
    shared.decide(Decision::Unavailable);
    let error = busy.unwrap_or(ProxyError::NoServerAvailable);
    early(shared, ex, error, None).await
}

/// Relays the node's answer to the client, or on 101 runs the tunnel.
async fn finish<C>(
    shared: &Shared,
    ex: &mut Exchange<'_, C>,
    answer: Answer,
    in_flight: InFlight,
) -> Outcome
where
    C: ClientStream + ?Sized,
{
    let node = in_flight.node().clone();
    let status = StatusCode::from_u16(answer.head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if status == StatusCode::SWITCHING_PROTOCOLS {
        if !ex.websocket || !answer.request_done {
            // The node switched protocols on a request that did not ask to.
            node.count_response(StatusCode::BAD_GATEWAY);
            ex.closing = true;
            return answer_error(ex, &ProxyError::BadGateway(node.name_arc().clone()), false).await;
        }
        node.count_response(status);
        relay::tunnel(
            answer,
            &mut *ex.client,
            ex.client_in,
            shared.tunnel_stop.subscribe(),
            &mut ex.out,
        )
        .await;
        drop(in_flight);
        return Outcome::Tunnelled;
    }
    let Some(framing) = relay::framing(&answer, ex.is_head_request()) else {
        node.count_response(StatusCode::BAD_GATEWAY);
        ex.closing = true;
        return answer_error(ex, &ProxyError::BadGateway(node.name_arc().clone()), false).await;
    };
    node.count_response(status);
    let side = ClientSide {
        head_request: ex.is_head_request(),
        close: ex.closing,
        keep_alive_10: ex.http10 && ex.head.keep_alive,
        http10: ex.http10,
    };
    let relayed = relay::relay(
        answer,
        framing,
        &mut *ex.client,
        side,
        &shared.wire_limits,
        &mut ex.out,
    )
    .await;
    drop(in_flight);
    match relayed {
        Relayed::Done { close } => Outcome::Answered {
            status,
            close: close || !ex.body_done(),
            miss: false,
        },
        Relayed::NodeBroke | Relayed::ClientGone => Outcome::Closed,
    }
}
