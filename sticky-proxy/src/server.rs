//! The proxy itself: the accept loop with graceful drain, request routing,
//! and the [`ProxyHandle`] that reloads the membership.
//!
//! Routing of one request (see [`crate::affinity`] for how it is read):
//! the proxy's own `/health`; for a CometD long-polling POST the node its
//! body's `clientId` names ([`crate::cometd_route`]); a named node (cookie,
//! header, query); the owner of the session in the path (cache, else asked of
//! the nodes); otherwise a ready node by round-robin. A bound request is
//! never sent to another node: if its node is down or refuses the connection
//! the client gets 503 `session_server_unavailable`. An unbound request whose
//! connection could not be established (nothing sent) is tried on the next
//! ready node. Forwarding and its failures are in `server/forwarding.rs`,
//! the reload and retiring of removed nodes in `server/reload.rs`.
//!
//! An answer given before the request's body was read to its end says
//! `Connection: close` ([`crate::body`]).
//!
//! Before routing, the limits of [`crate::limits`]: a connection over
//! `--max-connections-per-client` is refused at the accept; a token-revealing
//! request of a client whose probe budget is spent, or a create over the
//! create budget, is answered 429 without a lookup or a forward; a miss
//! (401/403/404/410) to a token-revealing request spends the budget. A
//! request head slower than `--header-timeout` closes its connection
//! ([`crate::conn`]).

mod forwarding;
mod reload;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::Counter;
use shared_types::bayeux::node_of_client_id;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use self::forwarding::{
    ambiguous, early, forward_bound, forward_cached, forward_unbound, session_unreachable,
};
use self::reload::Member;
use crate::admin::{self, NodeView};
use crate::affinity::{self, Guard, Paths, Target, Via};
use crate::balance::RoundRobin;
use crate::body::ClientBody;
use crate::cometd_route;
use crate::config::{Config, ConfigError};
use crate::conn::{AnsweredBody, ClientConn, ClientIo};
use crate::errors::{empty_response, ProxyError};
use crate::forward::{self, ClientInfo, ForwardFailure, ProxyBody, UpstreamBody};
use crate::health::{
    spawn_health_loop, HealthCheck, HealthTask, HealthTracker, HttpHealthCheck, OnTransition, Probe,
};
use crate::limits::{self, Limits, Reason};
use crate::lookup::{Owner, OwnerLookup};
use crate::nodes::{Membership, Node, NodeSet, NodeState, RequestCounters};
use crate::passive::Verdict;
use crate::pool::{Lease, PoolLimits};
use crate::tls::{Tls, TlsError};

/// hyper's default read buffer limit (8 KiB + 100 × 4 KiB); `--max-head-size`
/// above it raises the buffer too.
const HYPER_DEFAULT_MAX_BUF: usize = 8192 + 4096 * 100;

/// How a request was routed, for `proxy_routing_decisions_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    ClientId,
    Cookie,
    Header,
    Query,
    LookupHit,
    LookupMiss,
    Balanced,
    Unavailable,
}

impl Decision {
    const ALL: [Decision; 8] = [
        Decision::ClientId,
        Decision::Cookie,
        Decision::Header,
        Decision::Query,
        Decision::LookupHit,
        Decision::LookupMiss,
        Decision::Balanced,
        Decision::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::ClientId => "client_id",
            Decision::Cookie => "cookie",
            Decision::Header => "header",
            Decision::Query => "query",
            Decision::LookupHit => "lookup_hit",
            Decision::LookupMiss => "lookup_miss",
            Decision::Balanced => "balanced",
            Decision::Unavailable => "unavailable",
        }
    }

    fn index(self) -> usize {
        match self {
            Decision::ClientId => 0,
            Decision::Cookie => 1,
            Decision::Header => 2,
            Decision::Query => 3,
            Decision::LookupHit => 4,
            Decision::LookupMiss => 5,
            Decision::Balanced => 6,
            Decision::Unavailable => 7,
        }
    }

    fn of(via: Via) -> Self {
        match via {
            Via::ClientId => Decision::ClientId,
            Via::Cookie => Decision::Cookie,
            Via::Header => Decision::Header,
            Via::Query => Decision::Query,
        }
    }
}

/// What every connection task shares.
#[derive(Debug)]
struct Shared {
    config: Config,
    paths: Paths,
    membership: Arc<Membership>,
    balancer: RoundRobin,
    lookup: Arc<OwnerLookup>,
    health_check: Arc<HttpHealthCheck>,
    /// The tasks of every node (health loop, retirement watcher); also
    /// serialises reloads and the ends of retirements.
    members: Mutex<Vec<Member>>,
    decisions: [Counter; 8],
    /// `proxy_requests_total{node="-"}`: answers no node took part in.
    own_requests: RequestCounters,
    /// Budgets and the connection cap.
    limits: Arc<Limits>,
    /// Turned true at the shutdown deadline: cuts the remaining tunnels.
    /// Its receivers are the live tunnels.
    tunnel_stop: watch::Sender<bool>,
    runtime: tokio::runtime::Handle,
    /// `--tls-cert`/`--tls-key`: the listener serves HTTPS.
    tls: Option<Tls>,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
}

impl Shared {
    fn decide(&self, decision: Decision) {
        if let Some(counter) = self.decisions.get(decision.index()) {
            counter.increment(1);
        }
    }

    /// Sends a prepared request over `node`'s connection pool, with the
    /// configured connect and response-head timeouts.
    async fn send(
        &self,
        node: &Node,
        request: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Lease), ForwardFailure> {
        forward::send(
            node,
            request,
            self.config.connect_timeout,
            self.config.upstream_timeout,
        )
        .await
    }

    /// A connect to `node` was refused or timed out ([`crate::passive`]):
    /// probe it now, or mark it down after enough strikes.
    fn strike(&self, node: &Arc<Node>) {
        match node.passive().strike() {
            Verdict::Down => mark_down(
                &self.lookup,
                node,
                "several connects in a row were refused or timed out",
            ),
            Verdict::Probe => {
                let node = node.clone();
                let check = self.health_check.clone();
                let lookup = self.lookup.clone();
                self.runtime.spawn(async move {
                    let probe = check.check(&node).await;
                    node.passive().probe_done();
                    if probe == Probe::Failed {
                        mark_down(&lookup, &node, "a connect failed and so did a health probe");
                    } else {
                        tracing::debug!(
                            node = node.name(),
                            ?probe,
                            "a connect failed but the node answers its health check"
                        );
                    }
                });
            }
            Verdict::Wait => {}
        }
    }

    /// The limits of every node's connection pool.
    fn pool_limits(&self) -> PoolLimits {
        PoolLimits {
            max_conns: self.config.max_conns_per_node,
            queue_wait: self.config.connect_timeout,
        }
    }

    fn spawn_health(&self, node: &Arc<Node>) -> HealthTask {
        let lookup = self.lookup.clone();
        let on_transition: OnTransition = Arc::new(move |node, from, to| {
            tracing::info!(node = node.name(), %from, %to, "node state changed");
            if to == NodeState::Down {
                lookup.forget_node(node);
            }
        });
        let _runtime = self.runtime.enter();
        spawn_health_loop(
            node.clone(),
            self.health_check.clone(),
            self.config.health_interval,
            HealthTracker::new(self.config.rise, self.config.fall),
            on_transition,
        )
    }
}

/// Passive verdict: the node is down (until its health checks say otherwise).
fn mark_down(lookup: &OwnerLookup, node: &Arc<Node>, why: &str) {
    if node.set_state(NodeState::Down) != NodeState::Down {
        tracing::warn!(node = node.name(), why, "node marked down");
        lookup.forget_node(node);
    }
}

/// Why the proxy could not start or serve.
#[derive(Debug)]
pub enum ServeError {
    Config(ConfigError),
    Io(std::io::Error),
    Tls(TlsError),
    /// [`Proxy::new`] was called outside a Tokio runtime.
    NoRuntime,
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
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(Tls::load(cert, key).map_err(ServeError::Tls)?),
            _ => None,
        };
        let paths = Paths::new(&config.context_path);
        let client = forward::upstream_client(config.connect_timeout);
        let origin = match &config.lookup_origin {
            Some(origin) => HeaderValue::from_str(origin).map_err(|_| {
                ConfigError::Invalid("--lookup-origin is not a valid header value".to_owned())
            })?,
            None => HeaderValue::from_str(&format!("http://{local_addr}")).map_err(|_| {
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
        let shared = Arc::new(Shared {
            paths,
            membership,
            balancer: RoundRobin::new(),
            lookup,
            health_check,
            members: Mutex::new(Vec::new()),
            decisions,
            own_requests: RequestCounters::new(Arc::from("-")),
            limits,
            tunnel_stop,
            runtime,
            tls,
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

        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .keep_alive(true)
            // hyper's header read timeout runs from the moment a connection
            // is ready for a head, idle time included: it is the keep-alive
            // idle timeout. The head itself is timed by `ClientIo`
            // (`--header-timeout`), see `crate::conn`.
            .header_read_timeout(config.keep_alive_timeout)
            .max_header_size(config.max_head_size);
        let head_timeouts = shared.limits.rejected(Reason::HeaderTimeout);
        if config.max_head_size > HYPER_DEFAULT_MAX_BUF {
            http.max_buf_size(config.max_head_size.saturating_add(8192));
        }

        // Shared by the connection tasks, which each need it for as long as
        // they serve.
        let http = Arc::new(http);
        let tls_refusals = shared.limits.rejected(Reason::TlsHandshake);
        match &shared.tls {
            Some(tls) => tracing::info!(
                cert = %tls.cert_path().display(),
                "listening on {} (https)",
                shared.local_addr
            ),
            None => tracing::info!("listening on {}", shared.local_addr),
        }
        let (drain, drain_rx) = watch::channel(false);
        // Connection tasks, so that the ones still open at the deadline can
        // be cut (finished ones are reaped as new ones come).
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
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
                    connections.spawn(crate::conn::refuse(stream));
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let trusted = shared.limits.trusts(peer.ip());
            let client = Arc::new(ClientConn::new(peer, trusted, shared.tls.is_some(), slot));
            let conn_client = client.clone();
            let conn_shared = shared.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let shared = conn_shared.clone();
                let client = conn_client.clone();
                client.head_received();
                // Boxed: hyper keeps a slot the size of the service's future
                // for every connection, busy or idle; a box costs one
                // allocation per request instead of ~2.5 KiB per connection.
                Box::pin(async move {
                    let response = handle(&shared, &client, request).await;
                    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                        client.upgraded();
                    }
                    Ok::<_, Infallible>(response.map(|body| AnsweredBody::new(body, client)))
                })
            });
            let drain = drain_rx.clone();
            let header_timeout = config.header_timeout;
            let head_timeouts = head_timeouts.clone();
            match shared.tls.as_ref().map(Tls::acceptor) {
                None => {
                    let io = ClientIo::new(stream, client, header_timeout, head_timeouts);
                    connections.spawn(serve_client(http.clone(), io, service, drain, peer));
                }
                // The handshake runs in the connection's task: the accept
                // loop never waits for a client.
                Some(acceptor) => {
                    let http = http.clone();
                    let tls_refusals = tls_refusals.clone();
                    connections.spawn(async move {
                        match crate::conn::tls_handshake(stream, acceptor, header_timeout).await {
                            Ok(stream) => {
                                let io =
                                    ClientIo::new(stream, client, header_timeout, head_timeouts);
                                serve_client(http, io, service, drain, peer).await;
                            }
                            Err((why, error)) => {
                                tls_refusals.increment(1);
                                tracing::debug!(%peer, why = why.as_str(), error = ?error, "TLS connection not served");
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

/// Serves one client connection (plain or TLS) with hyper until it closes,
/// or gracefully once the drain begins.
async fn serve_client<S, Svc>(
    http: Arc<hyper::server::conn::http1::Builder>,
    io: ClientIo<S>,
    service: Svc,
    mut drain: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::Service<
            Request<Incoming>,
            Response = Response<AnsweredBody>,
            Error = Infallible,
        > + Send
        + 'static,
    Svc::Future: Send + 'static,
{
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = crate::raised(&mut drain) => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "client connection error");
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

/// Answers one request: the budgets it is under, then the routing. An
/// answer given while the request's body has not been read to its end (the
/// proxy's own early answer to a large body, a node's early 413) says
/// `Connection: close`: hyper closes such a connection after the answer, and
/// a client must not send its next request on it.
async fn handle(
    shared: &Shared,
    client: &Arc<ClientConn>,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let request = request.map(|body| ClientBody::new(body, client.clone()));
    let mut response = guarded(shared, client, request).await;
    if client.body_pending() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn guarded(
    shared: &Shared,
    client: &ClientConn,
    request: Request<ClientBody>,
) -> Response<ProxyBody> {
    if request.method() == Method::CONNECT {
        let error = ProxyError::BadRequest("CONNECT is not supported");
        return early(shared, Some(request.into_body()), error, None).await;
    }
    match affinity::guard_of(&shared.paths, request.method(), request.uri().path()) {
        Guard::None => route(shared, &client.info, request).await,
        Guard::Create => {
            let key = shared.limits.client_key(client.peer, request.headers());
            if let Err(retry) = shared.limits.take_create(&key) {
                shared.limits.reject(Reason::TooManyCreates);
                let error = ProxyError::TooManyCreates(retry.secs());
                return early(shared, Some(request.into_body()), error, None).await;
            }
            route(shared, &client.info, request).await
        }
        Guard::Probe => {
            let key = shared.limits.client_key(client.peer, request.headers());
            if let Err(retry) = shared.limits.check_probe(&key) {
                shared.limits.reject(Reason::TooManyAttempts);
                let error = ProxyError::TooManyAttempts(retry.secs());
                return early(shared, Some(request.into_body()), error, None).await;
            }
            let response = route(shared, &client.info, request).await;
            if limits::is_miss(&response) {
                shared.limits.miss(&key);
            }
            response
        }
    }
}

/// Routes and answers one request.
async fn route(
    shared: &Shared,
    client: &ClientInfo,
    mut request: Request<ClientBody>,
) -> Response<ProxyBody> {
    // A CometD long-polling POST names its node in its body's clientId.
    let client_id =
        if cometd_route::is_cometd_post(&shared.paths, request.method(), request.uri().path()) {
            cometd_route::peek_client_id(
                request.body_mut(),
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
            None => affinity::classify(
                &shared.paths,
                request.method(),
                request.uri(),
                request.headers(),
                |name| set.get(name),
            ),
        };
        match target {
            Target::ProxyHealth => {
                let status = if set.any_ready() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                shared.own_requests.count(status);
                return empty_response(status);
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
        Target::Named { node, via } => {
            forward_bound(shared, client, request, node, Decision::of(via), None).await
        }
        Target::Session(token) => {
            let set = shared.membership.load_full();
            match shared.lookup.owner(token, &set).await {
                Owner::Cached(node) => forward_cached(shared, client, request, node, token).await,
                Owner::Found(node) => {
                    forward_bound(
                        shared,
                        client,
                        request,
                        node,
                        Decision::LookupMiss,
                        Some(token),
                    )
                    .await
                }
                Owner::NotFound => {
                    forward_unbound(shared, client, request, Decision::LookupMiss).await
                }
                Owner::Unanswered { silent, down } => {
                    session_unreachable(shared, request.into_body(), silent, down).await
                }
                // Two sessions with these digits: either could be the wrong
                // customer's. Sent nowhere (the lookup logged the nodes).
                Owner::Ambiguous(_) => ambiguous(shared, Some(request.into_body())).await,
            }
        }
        Target::Unbound | Target::ProxyHealth => {
            forward_unbound(shared, client, request, Decision::Balanced).await
        }
    }
}
