//! Where one request goes, read top to bottom.
//!
//! 1. **Budgets** ([`crate::limits`]): a token-revealing request of a client
//!    whose probe budget is spent, or a create over the create budget, is
//!    answered 429 without a lookup or a forward; a miss (401/403/404/410, or
//!    the proxy's own 503 for a token no live node claims) spends the budget.
//! 2. **Classification** ([`crate::affinity`]): the proxy's own `/health`;
//!    for a CometD long-polling POST the node its body's `clientId` names
//!    ([`crate::cometd_route`]); a named node (cookie, header, query); the
//!    owner of the session in the path (cache, else asked of the nodes);
//!    otherwise unbound.
//! 3. **Sending** ([`send`]): a bound request never goes to another node —
//!    a down or unreachable node is an honest 503 naming it; a cached owner
//!    that answers 404/410 to a bodiless request is looked up again; an
//!    unbound request whose connection could not be had goes to the next
//!    ready node.
//!
//! [`Exchange`] is the request in passage: its parsed head (spans into the
//! client's read buffer) until it is [prepared](Exchange::prepare) for a
//! node, then the rewritten head and what is left of its body.

mod exchange;
mod send;

pub use exchange::{Exchange, Outcome};

use http::{Method, StatusCode};
use shared_types::bayeux::node_of_client_id;

use crate::affinity::{self, Guard, Target, Via};
use crate::cometd_route;
use crate::context::{Decision, Shared};
use crate::errors::ProxyError;
use crate::limits::{self, Reason};
use crate::lookup::Owner;
use crate::wire::headers::Head;

/// Answers one request: its budget, then its route.
pub async fn handle<C>(shared: &Shared, ex: &mut Exchange<'_, C>) -> Outcome
where
    C: crate::wire::stream::ClientStream + ?Sized,
{
    if ex.method == Method::CONNECT {
        let error = ProxyError::BadRequest("CONNECT is not supported");
        return send::early(shared, ex, error, None).await;
    }
    let guard = {
        let path = ex.path();
        affinity::guard_of(&shared.paths, &ex.method, affinity::split_target(path).0)
    };
    match guard {
        Guard::None => route(shared, ex).await,
        Guard::Create => {
            let key = shared
                .limits
                .client_key(ex.peer, &Head::new(ex.buf(), &ex.head));
            if let Err(retry) = shared.limits.take_create(&key) {
                shared.limits.reject(Reason::TooManyCreates);
                let error = ProxyError::TooManyCreates(retry.secs());
                return send::early(shared, ex, error, None).await;
            }
            route(shared, ex).await
        }
        Guard::Probe => {
            let key = shared
                .limits
                .client_key(ex.peer, &Head::new(ex.buf(), &ex.head));
            if let Err(retry) = shared.limits.check_probe(&key) {
                shared.limits.reject(Reason::TooManyAttempts);
                let error = ProxyError::TooManyAttempts(retry.secs());
                return send::early(shared, ex, error, None).await;
            }
            let outcome = route(shared, ex).await;
            if let Outcome::Answered { status, miss, .. } = outcome {
                if miss || limits::is_miss(status) {
                    shared.limits.miss(&key);
                }
            }
            outcome
        }
    }
}

/// Routes and answers one request.
async fn route<C>(shared: &Shared, ex: &mut Exchange<'_, C>) -> Outcome
where
    C: crate::wire::stream::ClientStream + ?Sized,
{
    // A CometD long-polling POST names its node in its body's clientId.
    let client_id = {
        let path = ex.path();
        let path = affinity::split_target(path).0;
        cometd_route::is_cometd_post(&shared.paths, &ex.method, path)
    };
    let client_id = if client_id {
        ex.peek_client_id(
            shared.config.cometd_peek_limit,
            shared.config.header_timeout,
        )
        .await
    } else {
        None
    };
    let target = {
        let set = shared.membership.load();
        let by_client_id = client_id
            .as_deref()
            .and_then(node_of_client_id)
            .and_then(|name| set.get(name));
        let target = match by_client_id {
            Some(node) => Target::Named {
                node,
                via: Via::ClientId,
            },
            None => {
                let path = ex.path();
                affinity::classify(
                    &shared.paths,
                    &ex.method,
                    path,
                    &Head::new(ex.buf(), &ex.head),
                    |name| set.get(name),
                )
            }
        };
        match target {
            Target::ProxyHealth => {
                let status = if set.any_ready() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                shared.own_requests.count(status);
                return send::own_status(ex, status).await;
            }
            Target::Named { node, via } => Target::Named {
                node: node.clone(),
                via,
            },
            Target::Session(token) => Target::Session(token),
            Target::Unbound => Target::Unbound,
        }
    };
    match target {
        Target::Named { node, via } => send::bound(shared, ex, node, Decision::of(via), None).await,
        Target::Session(token) => {
            let set = shared.membership.load_full();
            match shared.lookup.owner(token, &set).await {
                Owner::Cached(node) => send::cached(shared, ex, node, token).await,
                Owner::Found(node) => {
                    send::bound(shared, ex, node, Decision::LookupMiss, Some(token)).await
                }
                Owner::NotFound => send::unbound(shared, ex, Decision::LookupMiss).await,
                Owner::Unanswered { silent, down } => {
                    send::session_unreachable(shared, ex, silent, down).await
                }
                // Two sessions with these digits: either could be the wrong
                // customer's. Sent nowhere (the lookup logged the nodes).
                Owner::Ambiguous(_) => send::ambiguous(shared, ex).await,
            }
        }
        Target::Unbound | Target::ProxyHealth => {
            send::unbound(shared, ex, Decision::Balanced).await
        }
    }
}
