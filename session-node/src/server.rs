//! Running a node: the listener, the idle sweeper and the drain.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::api;
use crate::config::Config;
use crate::state::AppState;

/// Binds `addr` with a listen backlog of `backlog` (the default of std and
/// tokio, 128, overflows under a burst of connects: the kernel then drops
/// them, and a proxy in front takes the node for dead).
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serves the API on `listener` until `shutdown` completes, then drains:
/// health turns 503 and Create Session is refused at once, the node goes on
/// serving its live sessions, and returns when none is left or after
/// `config.drain_timeout`, once in-flight requests are answered.
///
/// Taking a bound listener (rather than an address) lets tests bind
/// `127.0.0.1:0` and know the port before the node starts.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let state =
        AppState::new(&config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    for warning in config.startup_warnings() {
        tracing::warn!("{warning}");
    }
    if let Some(addr) = config.metrics_listen {
        let bound = crate::metrics::spawn(addr, state.clone()).await?;
        tracing::info!("metrics on http://{bound}/metrics");
    }
    tracing::info!(name = %config.name, "listening on {}", listener.local_addr()?);

    let sweeper = tokio::spawn(sweep_forever(state.clone(), sweep_period(&config)));
    let dispatcher = tokio::spawn(dispatch_events(state.clone()));
    let drained = drain(state.clone(), shutdown, config.drain_timeout);
    // Small request/response exchanges and realtime messages must not wait
    // for Nagle's algorithm.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::trace!(%error, "cannot set TCP_NODELAY");
        }
    });
    // Each request knows its peer: budgets and caps are per client address.
    let app = api::app(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(drained)
        .await;
    sweeper.abort();
    dispatcher.abort();
    served
}

/// Waits for `shutdown`, then for the last live session to end (or the
/// timeout). The server keeps accepting meanwhile: clients of existing
/// sessions may open new connections while the node drains.
async fn drain(state: AppState, shutdown: impl Future<Output = ()>, timeout: Duration) {
    shutdown.await;
    state.readiness.start_draining();
    let mut live = state.sessions.watch_live();
    tracing::info!(
        live_sessions = *live.borrow(),
        "draining: no new sessions, waiting up to {timeout:?} for live ones to end"
    );
    let drained = tokio::time::timeout(timeout, live.wait_for(|n| *n == 0))
        .await
        .is_ok();
    if drained {
        tracing::info!("drained: no live session left");
    } else {
        tracing::warn!(
            live_sessions = state.sessions.live_count(),
            "drain timeout: exiting with live sessions"
        );
    }
}

/// Ends idle sessions and forgets expired ones, forever. Lookups check idle
/// deadlines themselves, so the sweep only bounds memory and lets the drain
/// see idle sessions end.
async fn sweep_forever(state: AppState, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        state.sessions.sweep();
        let swept = state.bayeux.sweep();
        if swept > 0 {
            metrics::counter!("node_cometd_swept_total").increment(swept as u64);
        }
    }
}

/// Tells realtime participants what happened to their sessions, whichever
/// transport (REST or CometD) caused it.
async fn dispatch_events(state: AppState) {
    let mut events = state.sessions.subscribe_events();
    loop {
        match events.recv().await {
            Ok(event) => state.bayeux.on_event(&event),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "realtime dispatcher fell behind; events were dropped"
                );
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
}

fn sweep_period(config: &Config) -> Duration {
    let shortest = config
        .limits
        .idle_timeout
        .min(config.limits.retention)
        .min(config.bayeux.max_interval)
        .min(config.bayeux.handshake_timeout);
    (shortest / 10).clamp(Duration::from_millis(10), Duration::from_secs(10))
}
