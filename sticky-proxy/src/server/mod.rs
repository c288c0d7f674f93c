//! The proxy's lifecycle: [`Proxy::new`] builds the shared state and starts
//! the health checks, [`Proxy::serve`] runs the accept loop and the drain,
//! and the [`ProxyHandle`] reloads the membership (`server/reload.rs`) and
//! shows it.
//!
//! The accept loop pauses (it does not fail) while `--max-connections`
//! client connections are open, so the proxy keeps descriptors for its
//! upstream, health and lookup connections; a connection over
//! `--max-connections-per-client` from one address gets a raw 429 and is
//! closed. Every accepted connection is served by [`crate::client::serve`].
//!
//! **Drain** (`shutdown` resolved): no new connections; idle keep-alive
//! connections close at once, busy ones after their current answer;
//! WebSocket tunnels run until `--shutdown-timeout`, when everything left
//! is cut.

mod reload;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;

use crate::admin::{self, NodeView};
use crate::affinity::Paths;
use crate::balance::RoundRobin;
use crate::client::{self, ClientConn};
use crate::config::{Config, ConfigError};
use crate::context::{Decision, Member, Shared};
use crate::control;
use crate::health::HttpHealthCheck;
use crate::limits::{Limits, Reason};
use crate::lookup::OwnerLookup;
use crate::nodes::{Membership, Node, NodeSet, RequestCounters};
use crate::tls::{Tls, TlsError};
use crate::upstream::pool::PoolLimits;

/// Why the proxy could not start or serve.
#[derive(Debug)]
pub enum ServeError {
    Config(ConfigError),
    Io(std::io::Error),
    /// [`Proxy::new`] was called outside a Tokio runtime.
    NoRuntime,
    Tls(TlsError),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Config(e) => write!(f, "configuration: {e}"),
            ServeError::Io(e) => write!(f, "{e}"),
            ServeError::Tls(e) => write!(f, "TLS: {e}"),
            ServeError::NoRuntime => {
                f.write_str("the proxy must be created inside a Tokio runtime")
            }
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Config(e) => Some(e),
            ServeError::Io(e) => Some(e),
            ServeError::Tls(e) => Some(e),
            ServeError::NoRuntime => None,
        }
    }
}

impl From<ConfigError> for ServeError {
    fn from(e: ConfigError) -> Self {
        ServeError::Config(e)
    }
}

impl From<std::io::Error> for ServeError {
    fn from(e: std::io::Error) -> Self {
        ServeError::Io(e)
    }
}

/// Runs the proxy on `listener` (and the admin endpoints on
/// `admin_listener`) until `shutdown` completes, then drains: stops
/// accepting, lets in-flight requests finish for at most
/// `config.shutdown_timeout`.
pub async fn serve(
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    Proxy::new(config, listener, admin_listener)?
        .serve(shutdown)
        .await
}

/// A proxy ready to serve. Create it, take a [`ProxyHandle`] if you need to
/// reload or inspect it, then [`serve`](Proxy::serve).
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    first_probes: Vec<oneshot::Receiver<()>>,
}

impl Proxy {
    /// Validates the configuration and starts the health checks (the first
    /// probe of every node runs at once). Must run inside a Tokio runtime.
    pub fn new(
        config: Config,
        listener: TcpListener,
        admin_listener: Option<TcpListener>,
    ) -> Result<Self, ServeError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ServeError::NoRuntime)?;
        let local_addr = listener.local_addr()?;
        let admin_addr = admin_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        if admin_listener.is_some() {
            // Before any metric handle is registered, so they are all live.
            admin::prometheus();
        }
        let limits = Arc::new(Limits::new(&config)?);
        let paths = Paths::new(&config.context_path);
        let client = control::upstream_client(config.connect_timeout);
        let origin = match &config.lookup_origin {
            Some(origin) => http::HeaderValue::from_str(origin).map_err(|_| {
                ConfigError::Invalid("--lookup-origin is not a valid header value".to_owned())
            })?,
            None => http::HeaderValue::from_str(&format!("http://{local_addr}")).map_err(|_| {
                ConfigError::Invalid("listen address is not a valid origin".to_owned())
            })?,
        };
        let lookup = Arc::new(OwnerLookup::new(
            client.clone(),
            paths.sessions(),
            origin,
            config.lookup_cache_ttl,
            config.lookup_cache_size,
            config.lookup_timeout,
        ));
        let health_check = Arc::new(HttpHealthCheck::new(
            client.clone(),
            paths.health(),
            config.health_timeout,
        ));
        let pool_limits = PoolLimits {
            max_conns: config.max_conns_per_node,
            queue_wait: config.connect_timeout,
        };
        let nodes: Vec<Arc<Node>> = config
            .nodes
            .iter()
            .map(|spec| Arc::new(Node::with_limits(spec, pool_limits)))
            .collect();
        let membership = Arc::new(Membership::from_pointee(NodeSet::new(nodes.clone())));
        let decisions = Decision::ALL.map(|decision| {
            metrics::counter!("proxy_routing_decisions_total", "kind" => decision.as_str())
        });
        let (tunnel_stop, _) = watch::channel(false);
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(Tls::load(cert, key).map_err(ServeError::Tls)?),
            _ => None,
        };
        let wire_limits = http1::Limits {
            max_head_bytes: config.max_head_size,
            max_headers: config.max_headers,
            ..http1::Limits::default()
        };
        let shared = Arc::new(Shared {
            paths,
            wire_limits,
            membership,
            balancer: RoundRobin::new(),
            lookup,
            health_check,
            members: Mutex::new(Vec::new()),
            decisions,
            own_requests: RequestCounters::new(Arc::from("-")),
            limits,
            tunnel_stop,
            tls,
            runtime,
            local_addr,
            admin_addr,
            config,
        });
        let mut first_probes = Vec::with_capacity(nodes.len());
        {
            let mut members = shared
                .members
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for node in nodes {
                let mut health = shared.spawn_health(&node);
                first_probes.extend(health.take_first_probe());
                members.push(Member {
                    node,
                    _health: health,
                    retire: None,
                });
            }
        }
        Ok(Proxy {
            shared,
            listener,
            admin_listener,
            first_probes,
        })
    }

    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            shared: self.shared.clone(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let Proxy {
            shared,
            listener,
            admin_listener,
            first_probes,
        } = self;
        let config = &shared.config;

        // Know the nodes before taking traffic (connections queue meanwhile).
        let first_round = futures_util::future::join_all(first_probes);
        let _ = tokio::time::timeout(
            config.health_timeout + Duration::from_millis(250),
            first_round,
        )
        .await;

        let (admin_stop, admin_stop_rx) = watch::channel(false);
        if let Some(admin_listener) = admin_listener {
            tracing::info!("admin listening on {}", admin_listener.local_addr()?);
            tokio::spawn(admin::serve_admin(
                admin_listener,
                shared.membership.clone(),
                shared.limits.clone(),
                admin_stop_rx,
            ));
        }

        tracing::info!(
            "listening on {} ({}; at most {} client connections)",
            shared.local_addr,
            if shared.tls.is_some() {
                "https"
            } else {
                "http"
            },
            config.max_connections
        );
        let tls_refusals = shared.limits.rejected(Reason::TlsHandshake);
        let (drain, drain_rx) = watch::channel(false);
        let capacity = (config.max_connections > 0).then(|| {
            Arc::new(Semaphore::new(
                config.max_connections.min(Semaphore::MAX_PERMITS),
            ))
        });
        // Connection tasks, so that the ones still open at the deadline can
        // be cut (finished ones are reaped as new ones come).
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            // At the cap, wait for a connection to close before accepting:
            // the backlog holds the rest, and no descriptor is spent.
            let permit = match &capacity {
                Some(capacity) => tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    permit = capacity.clone().acquire_owned() => permit.ok(),
                },
                None => None,
            };
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            let slot = match shared
                .limits
                .connections()
                .acquire(access::ClientKey::addr(peer.ip()))
            {
                Ok(slot) => slot,
                Err(()) => {
                    shared.limits.reject(Reason::TooManyConnections);
                    shared.own_requests.count(StatusCode::TOO_MANY_REQUESTS);
                    tracing::debug!(%peer, "too many connections from this address; refused");
                    connections.spawn(client::refuse(stream));
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let trusted = shared.limits.trusts(peer.ip());
            let conn = ClientConn::new(peer, trusted, shared.tls.is_some(), slot, permit);
            let drain = drain_rx.clone();
            match shared.tls.as_ref().map(Tls::acceptor) {
                None => {
                    connections.spawn(client::serve(shared.clone(), stream, conn, drain));
                }
                // The handshake runs in the connection's task: the accept
                // loop never waits for a client.
                Some(acceptor) => {
                    let shared = shared.clone();
                    let tls_refusals = tls_refusals.clone();
                    let timeout = config.header_timeout;
                    connections.spawn(async move {
                        match client::tls_handshake(stream, acceptor, timeout).await {
                            Ok(stream) => client::serve(shared, stream, conn, drain).await,
                            Err((why, error)) => {
                                tls_refusals.increment(1);
                                tracing::debug!(%peer, why = why.as_str(), ?error, "TLS connection not served");
                            }
                        }
                    });
                }
            }
        }

        // Drain: no new connections; idle keep-alive connections close, busy
        // ones after their current request; tunnels run until the deadline.
        drop(listener);
        drop(drain_rx);
        let _ = drain.send(true);
        tracing::info!(connections = connections.len(), "shutting down");
        let drained = async {
            while connections.join_next().await.is_some() {}
            shared.tunnel_stop.closed().await;
        };
        if tokio::time::timeout(config.shutdown_timeout, drained)
            .await
            .is_err()
        {
            tracing::warn!(
                connections = connections.len(),
                tunnels = shared.tunnel_stop.receiver_count(),
                "shutdown timeout reached; closing what is left"
            );
        }
        connections.abort_all();
        let _ = shared.tunnel_stop.send(true);
        let _ = admin_stop.send(true);
        shared
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }
}

/// A handle on a running (or about to run) proxy.
#[derive(Debug, Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    /// Removed by this reload: now retiring.
    pub removed: Vec<String>,
    /// Retiring nodes this reload configured again.
    pub restored: Vec<String>,
    pub kept: usize,
}

impl ProxyHandle {
    /// Re-reads the config file and applies its nodes (merged with the
    /// `--node` flags). Kept nodes keep their state, health loop and
    /// connections; added nodes start down and are probed at once; removed
    /// nodes retire ([`crate::retire`]): no new sessions, their bound
    /// requests still reach them until they report no live session or
    /// `--retire-timeout` passes; a retiring node configured again is normal
    /// again. On error nothing changes.
    pub fn reload(&self) -> Result<ReloadSummary, ConfigError> {
        reload::reload(&self.shared)
    }

    /// Re-reads `--tls-cert` and `--tls-key` (SIGHUP): new connections get
    /// the new certificate, open ones keep theirs. `Ok(false)`: no TLS
    /// configured. On error the current certificate stays.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        reload::reload_tls(&self.shared)
    }

    /// The nodes as `/nodes` shows them (retiring ones too; gone ones not).
    pub fn nodes(&self) -> Vec<NodeView> {
        self.shared
            .membership
            .load()
            .present()
            .map(|node| NodeView::of(node))
            .collect()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.shared.admin_addr
    }

    /// Owners currently cached (approximate).
    pub fn cached_owners(&self) -> u64 {
        self.shared.lookup.cached_len()
    }

    /// Live client connections from `ip` (its /64 for IPv6), as counted for
    /// `--max-connections-per-client` (0 when the cap is off).
    pub fn client_connections(&self, ip: IpAddr) -> u32 {
        self.shared
            .limits
            .connections()
            .live(&access::ClientKey::addr(ip))
    }

    /// Client addresses holding at least one counted connection.
    pub fn connected_clients(&self) -> usize {
        self.shared.limits.connections().clients()
    }
}
