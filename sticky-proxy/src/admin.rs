//! The admin listener (`--admin-listen`, off by default): `GET /metrics` in
//! the Prometheus text format and `GET /nodes` as JSON.
//!
//! Metrics:
//! - `proxy_requests_total{node,status}`: answered requests by node and
//!   status; `node="-"` for answers no node was involved in (the proxy's own
//!   `/health`, `no_server_available`).
//! - `proxy_routing_decisions_total{kind}`: one per request, `kind` in
//!   `client_id` (a CometD long-polling body's `clientId`), `cookie`,
//!   `header`, `query`, `lookup_hit` (owner from the cache),
//!   `lookup_miss` (owner asked of the nodes; when none owns the session the
//!   request is then balanced), `balanced`, `unavailable` (answered 503 by the
//!   proxy: bound node down, or no ready node).
//! - `proxy_lookup_duration_seconds`: histogram of owner lookup rounds.
//! - `proxy_node_state{node}`: 1 up, 0.5 draining, 0.25 retiring (removed
//!   by a reload, still answering), 0 down (or gone).
//! - `proxy_rejected_total{reason}`: what the proxy refused itself, `reason`
//!   in `too_many_attempts`, `too_many_creates` (429s), `too_many_connections`
//!   (connections refused at the accept), `session_ambiguous` (409),
//!   `header_timeout` (connections closed for a slow request head) and
//!   `server_busy` (503: no connection to the node could be had).
//! - `proxy_upstream_failures_total{node,kind}`: forwards that failed before
//!   an answer, `kind` in `connect` (refused or timed out: a strike),
//!   `local` (the proxy out of descriptors or sockets), `busy`
//!   (`--max-conns-per-node`), `broken` (the connection broke, the node
//!   still accepts: 502), and `resent` (sent again on a fresh connection).
//! - `proxy_upstream_connections{node}`: open pooled connections to the node
//!   (in use or idle; tunnels excluded), updated on each scrape.
//! - `proxy_limiter_keys{budget="probe|create"}`: clients held by each
//!   budget, updated on each scrape.
//!
//! The Prometheus recorder is process-global: it is installed once (the
//! first proxy with an admin listener) and shared by every proxy of the
//! process, which matters only to tests running several proxies.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::errors::ProxyBody;
use crate::errors::{empty_response, json_response};
use crate::limits::Limits;
use crate::nodes::{Membership, Node};

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Buckets of `proxy_lookup_duration_seconds`, from a same-host answer to
/// the lookup timeout.
const LOOKUP_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Installs the Prometheus recorder on first call; `None` when another
/// recorder was installed first (then `/metrics` answers 503).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("proxy_lookup_duration_seconds".to_owned()),
                    LOOKUP_BUCKETS,
                )
                .and_then(|builder| builder.install_recorder());
            match builder {
                Ok(handle) => {
                    describe_metrics();
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot install the Prometheus recorder");
                    None
                }
            }
        })
        .as_ref()
}

fn describe_metrics() {
    metrics::describe_counter!(
        "proxy_requests_total",
        "Requests answered, by node and status."
    );
    metrics::describe_counter!(
        "proxy_routing_decisions_total",
        "How each request was routed: client_id, cookie, header, query, lookup_hit, lookup_miss, balanced, unavailable."
    );
    metrics::describe_histogram!(
        "proxy_lookup_duration_seconds",
        metrics::Unit::Seconds,
        "Time to ask the nodes which one owns a session."
    );
    metrics::describe_gauge!(
        "proxy_node_state",
        "Node state: 1 up, 0.5 draining, 0.25 retiring, 0 down or gone."
    );
    metrics::describe_counter!(
        "proxy_rejected_total",
        "Refused by the proxy itself: too_many_attempts, too_many_creates, too_many_connections, session_ambiguous, header_timeout, server_busy."
    );
    metrics::describe_counter!(
        "proxy_upstream_failures_total",
        "Forwards that failed before an answer, by node and kind: connect, local, busy, broken, resent."
    );
    metrics::describe_gauge!(
        "proxy_upstream_connections",
        "Open pooled connections to a node (in use or idle), as of the last scrape."
    );
    metrics::describe_gauge!(
        "proxy_limiter_keys",
        "Clients held by a budget (probe, create), as of the last scrape."
    );
}

/// A node as `/nodes` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub name: String,
    pub url: String,
    /// `up`, `draining`, `retiring` (removed by a reload, still answering)
    /// or `down`.
    pub state: &'static str,
    /// Removed by a reload and not gone yet (also when down).
    pub retiring: bool,
    /// What the node's last health answer said (`null`: unknown).
    pub live_sessions: Option<u64>,
    pub in_flight: usize,
    /// Open pooled connections (in use or idle).
    pub connections: usize,
}

impl NodeView {
    pub fn of(node: &Node) -> Self {
        NodeView {
            name: node.name().to_owned(),
            url: node.url().to_owned(),
            state: node.view_state(),
            retiring: node.is_retiring(),
            live_sessions: node.live_sessions(),
            in_flight: node.in_flight(),
            connections: node.pool().open_connections(),
        }
    }
}

/// Serves the admin listener until `stop` turns true.
pub async fn serve_admin(
    listener: TcpListener,
    membership: Arc<Membership>,
    limits: Arc<Limits>,
    mut stop: watch::Receiver<bool>,
) {
    let handle = prometheus();
    if let Some(handle) = handle {
        // `install_recorder` leaves histogram upkeep to the caller.
        let handle = handle.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = ticker.tick() => handle.run_upkeep(),
                    () = crate::raised(&mut stop) => break,
                }
            }
        });
    }
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = crate::raised(&mut stop) => break,
        };
        let (stream, _) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let membership = membership.clone();
        let limits = limits.clone();
        let mut conn_stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let membership = membership.clone();
                let limits = limits.clone();
                async move {
                    Ok::<_, Infallible>(admin_response(&request, &membership, &limits, handle))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "admin connection error");
                    }
                }
                () = crate::raised(&mut conn_stop) => {}
            }
        });
    }
}

fn admin_response(
    request: &Request<Incoming>,
    membership: &Membership,
    limits: &Limits,
    prometheus: Option<&PrometheusHandle>,
) -> Response<ProxyBody> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return empty_response(StatusCode::METHOD_NOT_ALLOWED);
    }
    match request.uri().path() {
        "/metrics" => match prometheus {
            Some(handle) => {
                limits.refresh_gauges();
                for node in membership.load().present() {
                    metrics::gauge!("proxy_upstream_connections", "node" => node.name_arc().clone())
                        .set(node.pool().open_connections() as f64);
                }
                let mut response = Response::new(ProxyBody::new(Bytes::from(handle.render())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                response
            }
            None => empty_response(StatusCode::SERVICE_UNAVAILABLE),
        },
        "/nodes" => {
            let nodes: Vec<NodeView> = membership
                .load()
                .present()
                .map(|n| NodeView::of(n))
                .collect();
            json_response(StatusCode::OK, &nodes)
        }
        _ => empty_response(StatusCode::NOT_FOUND),
    }
}
