//! The admin listener (`--admin-listen`, off by default): `GET /metrics` in
//! the Prometheus text format and `GET /nodes` as JSON.
//!
//! Metrics:
//! - `proxy_requests_total{node,status}`: answered requests by node and
//!   status; `node="-"` for answers no node was involved in (the proxy's own
//!   `/health`, `no_server_available`).
//! - `proxy_routing_decisions_total{kind}`: one per request, `kind` in
//!   `cookie`, `header`, `query`, `lookup_hit` (owner from the cache),
//!   `lookup_miss` (owner asked of the nodes; when none owns the session the
//!   request is then balanced), `balanced`, `unavailable` (answered 503 by the
//!   proxy: bound node down, or no ready node).
//! - `proxy_lookup_duration_seconds`: histogram of owner lookup rounds.
//! - `proxy_node_state{node}`: 1 up, 0.5 draining, 0 down.
//! - `proxy_rejected_total{reason}`: what the proxy refused itself, `reason`
//!   in `too_many_attempts`, `too_many_creates` (429s), `too_many_connections`
//!   (connections refused at the accept), `session_ambiguous` (409) and
//!   `header_timeout` (connections closed for a slow request head).
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

use crate::errors::{empty_response, json_response};
use crate::forward::ProxyBody;
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
        "How each request was routed: cookie, header, query, lookup_hit, lookup_miss, balanced, unavailable."
    );
    metrics::describe_histogram!(
        "proxy_lookup_duration_seconds",
        metrics::Unit::Seconds,
        "Time to ask the nodes which one owns a session."
    );
    metrics::describe_gauge!(
        "proxy_node_state",
        "Node state: 1 up, 0.5 draining, 0 down."
    );
    metrics::describe_counter!(
        "proxy_rejected_total",
        "Refused by the proxy itself: too_many_attempts, too_many_creates, too_many_connections, session_ambiguous, header_timeout."
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
    pub state: &'static str,
    pub in_flight: usize,
}

impl NodeView {
    pub fn of(node: &Node) -> Self {
        NodeView {
            name: node.name().to_owned(),
            url: node.url().to_owned(),
            state: node.state().as_str(),
            in_flight: node.in_flight(),
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
                let mut response = Response::new(ProxyBody::full(Bytes::from(handle.render())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                response
            }
            None => empty_response(StatusCode::SERVICE_UNAVAILABLE),
        },
        "/nodes" => {
            let nodes: Vec<NodeView> = membership.load().iter().map(|n| NodeView::of(n)).collect();
            json_response(StatusCode::OK, &nodes)
        }
        _ => empty_response(StatusCode::NOT_FOUND),
    }
}
