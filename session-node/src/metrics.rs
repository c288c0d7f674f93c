//! The node's metrics, in the Prometheus text format on `--metrics-listen`
//! (off by default; it is an operator's port, never the public one).
//!
//! - `node_rejected_total{reason}`: refusals that guard access:
//!   `too_many_attempts`, `too_many_creates`, `agent_auth_required`,
//!   `agent_auth_invalid`, `customer_key_invalid`, `customer_already_joined`,
//!   `cometd_too_many_clients`, `cometd_clients_per_address`,
//!   `cometd_receiver_queue_full`.
//! - `node_budget_exhausted_total{budget}`: a caller ran out of its probe
//!   budget (one per window and caller).
//! - `node_sessions_probed_total`: live sessions that saw
//!   [`crate::sessions::access::PROBE_ALERT_THRESHOLD`] failed joins.
//! - `node_cometd_clients_dropped_total`, `node_cometd_swept_total`.
//! - gauges, set on each scrape: `node_live_sessions`, `node_cometd_clients`,
//!   `node_limiter_keys{budget}`.

use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::state::AppState;

/// Installs the process-wide recorder and serves `/metrics` on `addr`.
pub async fn spawn(addr: SocketAddr, state: AppState) -> std::io::Result<SocketAddr> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| std::io::Error::other(format!("metrics recorder: {e}")))?;
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state((handle, state));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "metrics listener stopped");
        }
    });
    Ok(bound)
}

async fn render(State((handle, state)): State<(PrometheusHandle, AppState)>) -> String {
    ::metrics::gauge!("node_live_sessions").set(state.sessions.live_count() as f64);
    ::metrics::gauge!("node_cometd_clients").set(state.bayeux.client_count() as f64);
    let (probe, create) = state.sessions.access().limiter_keys();
    ::metrics::gauge!("node_limiter_keys", "budget" => "probe").set(probe as f64);
    ::metrics::gauge!("node_limiter_keys", "budget" => "create").set(create as f64);
    handle.render()
}
