//! The proxy itself: the accept loop with graceful drain, request routing,
//! and the [`ProxyHandle`] that reloads the membership.
//!
//! Routing of one request (see [`crate::affinity`] for how it is read):
//! the proxy's own `/health`; a named node (cookie, header, query); the owner
//! of the session in the path (cache, else asked of the nodes); otherwise a
//! ready node by round-robin. A bound request is never sent to another node:
//! if its node is down or refuses the connection the client gets 503
//! `session_server_unavailable`. An unbound request whose connection could
//! not be established (nothing sent) is tried on the next ready node.
//!
//! Before routing, the limits of [`crate::limits`]: a connection over
//! `--max-connections-per-client` is refused at the accept; a token-revealing
//! request of a client whose probe budget is spent, or a create over the
//! create budget, is answered 429 without a lookup or a forward; a miss
//! (401/403/404/410) to a token-revealing request spends the budget. A
//! request head slower than `--header-timeout` closes its connection
//! ([`crate::conn`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::Body;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::Counter;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::admin::{self, NodeView};
use crate::affinity::{self, Guard, Paths, SessionToken, Target, Via};
use crate::balance::{RoundRobin, Selection};
use crate::config::{Config, ConfigError};
use crate::conn::{AnsweredBody, ClientConn, ClientIo};
use crate::errors::{empty_response, ProxyError};
use crate::forward::{
    self, is_websocket_upgrade, prepare_request, prepare_response, upstream_uri, BodySlot,
    ClientInfo, ForwardFailure, ProxyBody, UpstreamBody,
};
use crate::health::{spawn_health_loop, HealthTask, HealthTracker, HttpHealthCheck, OnTransition};
use crate::limits::{self, Limits, Reason};
use crate::lookup::{Owner, OwnerLookup};
use crate::nodes::{InFlight, Membership, Node, NodeSet, NodeState, RequestCounters};
use crate::pool::Lease;

/// hyper's default read buffer limit (8 KiB + 100 × 4 KiB); `--max-head-size`
/// above it raises the buffer too.
const HYPER_DEFAULT_MAX_BUF: usize = 8192 + 4096 * 100;

/// How a request was routed, for `proxy_routing_decisions_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Cookie,
    Header,
    Query,
    LookupHit,
    LookupMiss,
    Balanced,
    Unavailable,
}

impl Decision {
    const ALL: [Decision; 7] = [
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
            Decision::Cookie => 0,
            Decision::Header => 1,
            Decision::Query => 2,
            Decision::LookupHit => 3,
            Decision::LookupMiss => 4,
            Decision::Balanced => 5,
            Decision::Unavailable => 6,
        }
    }

    fn of(via: Via) -> Self {
        match via {
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
    /// Health loops by node; also serialises reloads.
    health_tasks: Mutex<Vec<(Arc<Node>, HealthTask)>>,
    decisions: [Counter; 7],
    /// `proxy_requests_total{node="-"}`: answers no node took part in.
    own_requests: RequestCounters,
    /// Budgets and the connection cap.
    limits: Arc<Limits>,
    /// Turned true at the shutdown deadline: cuts the remaining tunnels.
    /// Its receivers are the live tunnels.
    tunnel_stop: watch::Sender<bool>,
    runtime: tokio::runtime::Handle,
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

    /// Passive detection: the node refused or reset a connection.
    fn mark_down(&self, node: &Arc<Node>, why: &str) {
        if node.set_state(NodeState::Down) != NodeState::Down {
            tracing::warn!(node = node.name(), why, "node marked down");
            self.lookup.forget_node(node);
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

/// Why the proxy could not start or serve.
#[derive(Debug)]
pub enum ServeError {
    Config(ConfigError),
    Io(std::io::Error),
    /// [`Proxy::new`] was called outside a Tokio runtime.
    NoRuntime,
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Config(e) => write!(f, "configuration: {e}"),
            ServeError::Io(e) => write!(f, "{e}"),
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
        let nodes: Vec<Arc<Node>> = config
            .nodes
            .iter()
            .map(|spec| Arc::new(Node::new(spec)))
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
            health_tasks: Mutex::new(Vec::new()),
            decisions,
            own_requests: RequestCounters::new(Arc::from("-")),
            limits,
            tunnel_stop,
            runtime,
            local_addr,
            admin_addr,
            config,
        });
        let mut first_probes = Vec::with_capacity(nodes.len());
        {
            let mut tasks = shared
                .health_tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for node in nodes {
                let mut task = shared.spawn_health(&node);
                first_probes.extend(task.take_first_probe());
                tasks.push((node, task));
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

        tracing::info!("listening on {}", shared.local_addr);
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
            let client = Arc::new(ClientConn::new(peer, trusted, slot));
            let io = ClientIo::new(
                stream,
                client.clone(),
                config.header_timeout,
                head_timeouts.clone(),
            );
            let conn_shared = shared.clone();
            let service = service_fn(move |request| {
                let shared = conn_shared.clone();
                let client = client.clone();
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
            let conn = http
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            let mut drain = drain_rx.clone();
            connections.spawn(async move {
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
            });
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
            .health_tasks
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
    pub removed: Vec<String>,
    pub kept: usize,
}

impl ProxyHandle {
    /// Re-reads the config file and applies its nodes (merged with the
    /// `--node` flags). Kept nodes keep their state, health loop and
    /// connections; added nodes start down and are probed at once; removed
    /// nodes stop being checked and routed to, while requests already
    /// forwarded to them finish. On error nothing changes.
    pub fn reload(&self) -> Result<ReloadSummary, ConfigError> {
        let shared = &self.shared;
        let specs = shared.config.reload_nodes()?;
        let mut tasks = shared
            .health_tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = shared.membership.load_full();
        let mut summary = ReloadSummary::default();
        let mut next: Vec<Arc<Node>> = Vec::with_capacity(specs.len());
        for spec in &specs {
            match current.iter().find(|node| node.matches(spec)) {
                Some(node) => {
                    summary.kept += 1;
                    next.push(node.clone());
                }
                None => {
                    let node = Arc::new(Node::new(spec));
                    let task = shared.spawn_health(&node);
                    tasks.push((node.clone(), task));
                    summary.added.push(spec.name.clone());
                    next.push(node);
                }
            }
        }
        shared
            .membership
            .store(Arc::new(NodeSet::new(next.clone())));
        tasks.retain(|(node, _)| {
            let kept = next.iter().any(|n| Arc::ptr_eq(n, node));
            if !kept {
                summary.removed.push(node.name().to_owned());
                shared.lookup.forget_node(node);
                node.retire();
            }
            kept
        });
        drop(tasks);
        tracing::info!(
            added = ?summary.added,
            removed = ?summary.removed,
            kept = summary.kept,
            "configuration reloaded"
        );
        Ok(summary)
    }

    /// The nodes as `/nodes` shows them.
    pub fn nodes(&self) -> Vec<NodeView> {
        self.shared
            .membership
            .load()
            .iter()
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

/// Answers one request: the budgets it is under, then the routing.
async fn handle(
    shared: &Shared,
    client: &ClientConn,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    if request.method() == Method::CONNECT {
        return own_error(shared, ProxyError::BadRequest("CONNECT is not supported"));
    }
    match affinity::guard_of(&shared.paths, request.method(), request.uri().path()) {
        Guard::None => route(shared, &client.info, request).await,
        Guard::Create => {
            let key = shared.limits.client_key(client.peer, request.headers());
            if let Err(retry) = shared.limits.take_create(&key) {
                shared.limits.reject(Reason::TooManyCreates);
                return own_error(shared, ProxyError::TooManyCreates(retry.secs()));
            }
            route(shared, &client.info, request).await
        }
        Guard::Probe => {
            let key = shared.limits.client_key(client.peer, request.headers());
            if let Err(retry) = shared.limits.check_probe(&key) {
                shared.limits.reject(Reason::TooManyAttempts);
                return own_error(shared, ProxyError::TooManyAttempts(retry.secs()));
            }
            let response = route(shared, &client.info, request).await;
            if limits::is_miss(response.status()) {
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
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let target = {
        let set = shared.membership.load();
        match affinity::classify(
            &shared.paths,
            request.method(),
            request.uri(),
            request.headers(),
            |name| set.get(name),
        ) {
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
                // The session may be on the node that did not answer: sending
                // the request anywhere else could only misroute it.
                Owner::Unanswered(node) => {
                    shared.decide(Decision::Unavailable);
                    node_error(
                        &node,
                        ProxyError::SessionServerUnavailable(node.name_arc().clone()),
                    )
                }
                // Two sessions with these digits: either could be the wrong
                // customer's. Sent nowhere (the lookup logged the nodes).
                Owner::Ambiguous(_) => ambiguous(shared),
            }
        }
        Target::Unbound | Target::ProxyHealth => {
            forward_unbound(shared, client, request, Decision::Balanced).await
        }
    }
}

/// 409 `session_ambiguous`: more than one node claims the session.
fn ambiguous(shared: &Shared) -> Response<ProxyBody> {
    shared.limits.reject(Reason::SessionAmbiguous);
    own_error(shared, ProxyError::SessionAmbiguous)
}

fn own_error(shared: &Shared, error: ProxyError) -> Response<ProxyBody> {
    shared.own_requests.count(error.status());
    error.to_response()
}

fn node_error(node: &Node, error: ProxyError) -> Response<ProxyBody> {
    node.count_response(error.status());
    error.to_response()
}

/// The request parts after rewriting, and the client's side of an upgrade.
struct Prepared {
    parts: http::request::Parts,
    body: Option<Incoming>,
    client_upgrade: Option<OnUpgrade>,
}

fn prepare(client: &ClientInfo, request: Request<Incoming>) -> Prepared {
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

/// Forwards a request bound to `node`; never to another node.
async fn forward_bound(
    shared: &Shared,
    client: &ClientInfo,
    request: Request<Incoming>,
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
async fn forward_cached(
    shared: &Shared,
    client: &ClientInfo,
    request: Request<Incoming>,
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
        Owner::Ambiguous(_) => ambiguous(shared),
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
        return node_error(
            &node,
            ProxyError::SessionServerUnavailable(node.name_arc().clone()),
        );
    }
    let Prepared {
        mut parts,
        body,
        client_upgrade,
    } = prepared;
    let Some(uri) = upstream_uri(&parts.uri) else {
        shared.decide(decision);
        return node_error(
            &node,
            ProxyError::BadRequest("the request target cannot be forwarded"),
        );
    };
    parts.uri = uri;
    let body = body.map_or(UpstreamBody::Empty, UpstreamBody::Client);
    let in_flight = node.begin_request();
    let sent = shared.send(&node, Request::from_parts(parts, body)).await;
    match sent {
        Ok((response, lease)) => {
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

/// Maps a failed forward to the answer, marking the node down when it is
/// evidently gone.
fn failure_error(shared: &Shared, node: &Arc<Node>, failure: ForwardFailure) -> ProxyError {
    let name = node.name_arc().clone();
    match failure {
        ForwardFailure::Connect => {
            shared.mark_down(node, "connect failed");
            ProxyError::SessionServerUnavailable(name)
        }
        // The node died under the request: its sessions died with it, so the
        // client is told as for a down node (the caller of an unbound
        // request turns this into a 502, as something was sent).
        ForwardFailure::Reset => {
            shared.mark_down(node, "connection reset");
            ProxyError::SessionServerUnavailable(name)
        }
        ForwardFailure::Timeout => ProxyError::UpstreamTimeout(name),
        ForwardFailure::Other => ProxyError::BadGateway(name),
    }
}

/// Forwards an unbound request to a ready node, trying the next ready node
/// when a connection cannot be established (nothing was sent).
async fn forward_unbound(
    shared: &Shared,
    client: &ClientInfo,
    request: Request<Incoming>,
    decision: Decision,
) -> Response<ProxyBody> {
    let Prepared {
        parts,
        body,
        client_upgrade,
    } = prepare(client, request);
    let slot = body.map(BodySlot::new);
    let mut parts = Some(parts);
    // Every failed connect marks its node down, so each attempt goes to a
    // different node; the bound is a safety net.
    let attempts = shared.membership.load().len().max(1);
    for _ in 0..attempts {
        let (node, more_candidates) = {
            let set = shared.membership.load();
            let Some(node) = shared.balancer.select(set.as_slice()).cloned() else {
                break;
            };
            let more = set.iter().filter(|n| n.is_ready()).nth(1).is_some();
            (node, more)
        };
        let Some(head) = parts.as_ref() else {
            break;
        };
        let Some(uri) = upstream_uri(&head.uri) else {
            shared.decide(decision);
            return node_error(
                &node,
                ProxyError::BadRequest("the request target cannot be forwarded"),
            );
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
                shared.decide(decision);
                return relay(shared, response, lease, in_flight, client_upgrade);
            }
            Err(ForwardFailure::Connect) if slot.as_ref().is_none_or(BodySlot::is_unread) => {
                drop(in_flight);
                shared.mark_down(&node, "connect failed");
                continue;
            }
            Err(failure) => {
                let error = match failure_error(shared, &node, failure) {
                    // Something was sent (or the body is gone): not retried, and
                    // not the unbound client's session that died.
                    ProxyError::SessionServerUnavailable(name) => ProxyError::BadGateway(name),
                    other => other,
                };
                shared.decide(decision);
                return node_error(&node, error);
            }
        }
    }
    shared.decide(Decision::Unavailable);
    own_error(shared, ProxyError::NoServerAvailable)
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
        // The connection now belongs to the tunnel, not to the pool.
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
