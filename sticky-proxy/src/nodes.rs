//! Membership: the configured session nodes, their state and in-flight
//! counts, and the snapshot the request path reads.
//!
//! The set of nodes is an immutable [`NodeSet`] behind an [`ArcSwap`]: the hot
//! path loads it without a lock, and a reload swaps in a new set while
//! requests already under way keep the `Arc<Node>` they were routed to.
//! A node's state and in-flight count are atomics on the node itself, so a
//! health transition never rebuilds the set.
//!
//! Besides its health state (up, draining, down) a node has a [`Phase`]: a
//! configured node is `Active`; a node a reload removed is `Retiring` (it
//! gets no new work, but the requests bound to it still reach it while it
//! answers, see [`crate::retire`]); a retired node is `Gone` (down for good:
//! its bound requests get 503 naming it, and no lookup asks it). Retiring
//! and gone nodes stay in the [`NodeSet`] so that a cookie, header, query
//! or `clientId` naming them still resolves.

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

use crate::passive::Passive;
use crate::upstream::pool::{ConnectionPool, PoolLimits};
use http::uri::Authority;
use http::StatusCode;
use metrics::{Counter, Gauge};

use crate::config::NodeSpec;

/// What the proxy knows of a node.
///
/// `Up` nodes take everything; `Draining` nodes (their `/health` answers 503)
/// still get the requests bound to them but no new sessions; `Down` nodes get
/// nothing, and requests bound to them are answered 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Up,
    Draining,
    Down,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Draining => "draining",
            NodeState::Down => "down",
        }
    }

    /// Value of the `proxy_node_state` gauge: 1 up, 0.5 draining, 0 down
    /// (0.25 retiring: see [`Node::gauge_value`]).
    pub fn gauge_value(self) -> f64 {
        match self {
            NodeState::Up => 1.0,
            NodeState::Draining => 0.5,
            NodeState::Down => 0.0,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            NodeState::Up => 0,
            NodeState::Draining => 1,
            NodeState::Down => 2,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => NodeState::Up,
            1 => NodeState::Draining,
            _ => NodeState::Down,
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a node is in the configuration's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Configured: takes new sessions when up.
    Active,
    /// Removed by a reload, still serving what is bound to it.
    Retiring,
    /// Retired: down for good.
    Gone,
}

impl Phase {
    fn to_u8(self) -> u8 {
        match self {
            Phase::Active => 0,
            Phase::Retiring => 1,
            Phase::Gone => 2,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => Phase::Active,
            1 => Phase::Retiring,
            _ => Phase::Gone,
        }
    }
}

/// Value of `proxy_node_state` for a retiring node that still answers.
pub const RETIRING_GAUGE: f64 = 0.25;

/// Why a forward to a node failed, for `proxy_upstream_failures_total{node,kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A connect refused or timed out (a strike, see [`crate::passive`]).
    Connect,
    /// The proxy's own resources ran out (EMFILE, ENFILE, EADDRNOTAVAIL…).
    Local,
    /// `--max-conns-per-node` reached and the queue full or timed out.
    Busy,
    /// The connection broke before an answer (the node still accepted a
    /// fresh one): 502.
    Broken,
    /// Sent again once on a fresh connection after a kept-alive one broke
    /// before any answer.
    Resent,
}

impl FailureKind {
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Connect,
        FailureKind::Local,
        FailureKind::Busy,
        FailureKind::Broken,
        FailureKind::Resent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Local => "local",
            FailureKind::Busy => "busy",
            FailureKind::Broken => "broken",
            FailureKind::Resent => "resent",
        }
    }

    fn index(self) -> usize {
        match self {
            FailureKind::Connect => 0,
            FailureKind::Local => 1,
            FailureKind::Busy => 2,
            FailureKind::Broken => 3,
            FailureKind::Resent => 4,
        }
    }
}

/// One session node.
#[derive(Debug)]
pub struct Node {
    name: Arc<str>,
    url: Box<str>,
    authority: Authority,
    state: AtomicU8,
    phase: AtomicU8,
    /// Live sessions its last health answer reported; -1: unknown.
    live_sessions: AtomicI64,
    in_flight: AtomicUsize,
    requests: RequestCounters,
    state_gauge: Gauge,
    failures: [Counter; 5],
    /// Keep-alive connections for requests forwarded to this node.
    pool: Arc<ConnectionPool>,
    /// Strikes of passive detection.
    passive: Passive,
}

impl Node {
    /// A node starts `Down`: it takes no traffic until its first health check
    /// answers (the server runs that check before it accepts connections).
    /// Its pool has the default limits.
    pub fn new(spec: &NodeSpec) -> Self {
        Node::with_limits(spec, PoolLimits::default())
    }

    /// A node whose connection pool has `limits`.
    pub fn with_limits(spec: &NodeSpec, limits: PoolLimits) -> Self {
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let state_gauge = metrics::gauge!("proxy_node_state", "node" => name.clone());
        state_gauge.set(NodeState::Down.gauge_value());
        let failures = FailureKind::ALL.map(|kind| {
            metrics::counter!(
                "proxy_upstream_failures_total",
                "node" => name.clone(),
                "kind" => kind.as_str()
            )
        });
        Node {
            requests: RequestCounters::new(name.clone()),
            url: spec.url.clone().into_boxed_str(),
            pool: ConnectionPool::new(&spec.authority, limits),
            authority: spec.authority.clone(),
            state: AtomicU8::new(NodeState::Down.to_u8()),
            phase: AtomicU8::new(Phase::Active.to_u8()),
            live_sessions: AtomicI64::new(-1),
            in_flight: AtomicUsize::new(0),
            state_gauge,
            failures,
            passive: Passive::default(),
            name,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as a shared string, for error bodies and metric labels.
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// `http://host:port` as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    pub fn pool(&self) -> &Arc<ConnectionPool> {
        &self.pool
    }

    pub fn state(&self) -> NodeState {
        NodeState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Up, not draining, not retiring: may take new sessions.
    pub fn is_ready(&self) -> bool {
        self.state() == NodeState::Up && self.phase() == Phase::Active
    }

    /// Sets the state and returns the previous one. A gone node stays down.
    pub fn set_state(&self, state: NodeState) -> NodeState {
        let state = if self.is_gone() {
            NodeState::Down
        } else {
            state
        };
        let previous = NodeState::from_u8(self.state.swap(state.to_u8(), Ordering::AcqRel));
        // `set_gone` may have run between the check and the swap: a gone
        // node must never be left up.
        if self.is_gone() {
            self.state.store(NodeState::Down.to_u8(), Ordering::Release);
        }
        if previous != state {
            self.refresh_gauge();
        }
        previous
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    pub fn is_retiring(&self) -> bool {
        self.phase() == Phase::Retiring
    }

    pub fn is_gone(&self) -> bool {
        self.phase() == Phase::Gone
    }

    /// A reload removed the node: no new work, bound requests still come.
    /// The live-session count is forgotten so that only a health answer
    /// from after the removal can end the retirement.
    pub fn begin_retire(&self) {
        self.live_sessions.store(-1, Ordering::Release);
        let _ = self.phase.compare_exchange(
            Phase::Active.to_u8(),
            Phase::Retiring.to_u8(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.refresh_gauge();
    }

    /// A later reload configured the node again: it is normal again.
    pub fn cancel_retire(&self) {
        let _ = self.phase.compare_exchange(
            Phase::Retiring.to_u8(),
            Phase::Active.to_u8(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.refresh_gauge();
    }

    /// Retired (or replaced): down for good, so that nothing still holding
    /// it — a lookup that finished after the reload, a cookie — can send it
    /// a request.
    pub fn set_gone(&self) {
        self.phase.store(Phase::Gone.to_u8(), Ordering::Release);
        self.state.store(NodeState::Down.to_u8(), Ordering::Release);
        self.refresh_gauge();
    }

    /// The state `/nodes` shows: `retiring` for a retiring node that still
    /// answers, else the health state.
    pub fn view_state(&self) -> &'static str {
        let state = self.state();
        if self.is_retiring() && state != NodeState::Down {
            "retiring"
        } else {
            state.as_str()
        }
    }

    /// `proxy_node_state`: 1 up, 0.5 draining, [`RETIRING_GAUGE`] retiring
    /// (and answering), 0 down or gone.
    pub fn gauge_value(&self) -> f64 {
        let state = self.state();
        match self.phase() {
            Phase::Active => state.gauge_value(),
            Phase::Retiring if state != NodeState::Down => RETIRING_GAUGE,
            Phase::Retiring | Phase::Gone => 0.0,
        }
    }

    fn refresh_gauge(&self) {
        self.state_gauge.set(self.gauge_value());
    }

    /// The live sessions the node's last health answer reported.
    pub fn live_sessions(&self) -> Option<u64> {
        u64::try_from(self.live_sessions.load(Ordering::Acquire)).ok()
    }

    /// Records a health answer's `cobrowse-live-sessions` (`None`: absent).
    pub fn set_live_sessions(&self, live: Option<u64>) {
        let value = live.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        self.live_sessions.store(value, Ordering::Release);
    }

    pub fn passive(&self) -> &Passive {
        &self.passive
    }

    /// Counts one forwarding failure (or resend).
    pub fn count_failure(&self, kind: FailureKind) {
        if let Some(counter) = self.failures.get(kind.index()) {
            counter.increment(1);
        }
    }

    /// Requests (and tunnels) currently forwarded to this node.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Counts one answered request in `proxy_requests_total`.
    pub fn count_response(&self, status: StatusCode) {
        self.requests.count(status);
    }

    /// Whether this is the same configured node (same name, same URL).
    pub fn matches(&self, spec: &NodeSpec) -> bool {
        *self.name == *spec.name && *self.url == *spec.url
    }
}

/// Keeps a request counted in its node's in-flight count, and the node alive
/// (a reload may remove it from the set meanwhile).
#[derive(Debug)]
pub struct InFlight(Arc<Node>);

impl InFlight {
    pub fn node(&self) -> &Arc<Node> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The `proxy_requests_total{node,status}` counters of one label, registered
/// lazily per status code so that the request path does not build a metric
/// key (and its label vector) for every request.
#[derive(Debug)]
pub struct RequestCounters {
    node: Arc<str>,
    by_status: Box<[OnceLock<Counter>]>,
}

const FIRST_STATUS: u16 = 100;
const LAST_STATUS: u16 = 599;

impl RequestCounters {
    pub fn new(node: Arc<str>) -> Self {
        let slots = usize::from(LAST_STATUS - FIRST_STATUS + 1);
        RequestCounters {
            node,
            by_status: (0..slots).map(|_| OnceLock::new()).collect(),
        }
    }

    pub fn count(&self, status: StatusCode) {
        let code = status.as_u16();
        let register = || {
            metrics::counter!(
                "proxy_requests_total",
                "node" => self.node.clone(),
                "status" => status.as_str().to_owned()
            )
        };
        match code
            .checked_sub(FIRST_STATUS)
            .and_then(|i| self.by_status.get(usize::from(i)))
        {
            Some(slot) => slot.get_or_init(register).increment(1),
            None => register().increment(1),
        }
    }
}

/// An immutable snapshot of the configured nodes, in configuration order.
///
/// Lookups by name scan the list: clusters have a handful of nodes, and a
/// scan of a few short strings beats hashing the name.
#[derive(Debug, Default)]
pub struct NodeSet {
    nodes: Vec<Arc<Node>>,
}

impl NodeSet {
    pub fn new(nodes: Vec<Arc<Node>>) -> Self {
        NodeSet { nodes }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Node>> {
        self.nodes.iter().find(|node| node.name() == name)
    }

    pub fn as_slice(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes.iter()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// At least one node is up, not draining and not retiring.
    pub fn any_ready(&self) -> bool {
        self.nodes.iter().any(|node| node.is_ready())
    }

    /// The nodes that are not gone (what `/nodes` shows, what lookups
    /// consider).
    pub fn present(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes.iter().filter(|node| !node.is_gone())
    }
}

/// The current [`NodeSet`], swapped whole on reload.
pub type Membership = ArcSwap<NodeSet>;

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(name: &str, port: u16) -> NodeSpec {
        NodeSpec::parse(&format!("{name}=http://127.0.0.1:{port}")).unwrap()
    }

    #[test]
    fn nodes_start_down_and_track_state() {
        let node = Node::new(&spec("node-1", 1));
        assert_eq!(node.state(), NodeState::Down);
        assert!(!node.is_ready());
        assert_eq!(node.set_state(NodeState::Up), NodeState::Down);
        assert!(node.is_ready());
        node.set_state(NodeState::Draining);
        assert!(!node.is_ready());
        assert_eq!(node.state().as_str(), "draining");
    }

    #[test]
    fn retiring_nodes_take_no_new_work_and_gone_ones_stay_down() {
        let node = Node::new(&spec("node-1", 1));
        node.set_state(NodeState::Up);
        node.set_live_sessions(Some(3));
        node.begin_retire();
        assert!(!node.is_ready());
        assert_eq!(node.view_state(), "retiring");
        assert_eq!(node.gauge_value(), RETIRING_GAUGE);
        assert_eq!(node.live_sessions(), None, "only a fresh count counts");
        node.set_state(NodeState::Down);
        assert_eq!(node.view_state(), "down");
        assert_eq!(node.gauge_value(), 0.0);
        node.set_state(NodeState::Draining);
        node.cancel_retire();
        assert_eq!(node.view_state(), "draining");
        node.set_state(NodeState::Up);
        assert!(node.is_ready(), "re-added: normal again");
        node.begin_retire();
        node.set_gone();
        node.set_state(NodeState::Up);
        assert_eq!(node.state(), NodeState::Down, "gone is down for good");
        node.cancel_retire();
        assert!(node.is_gone());
    }

    #[test]
    fn in_flight_guard_counts() {
        let node = Arc::new(Node::new(&spec("node-1", 1)));
        let a = node.begin_request();
        let b = node.begin_request();
        assert_eq!(node.in_flight(), 2);
        drop(a);
        assert_eq!(node.in_flight(), 1);
        drop(b);
        assert_eq!(node.in_flight(), 0);
    }

    #[test]
    fn set_finds_by_name() {
        let set = NodeSet::new(vec![
            Arc::new(Node::new(&spec("node-1", 1))),
            Arc::new(Node::new(&spec("node-2", 2))),
        ]);
        assert_eq!(
            set.get("node-2").map(|n| n.url()),
            Some("http://127.0.0.1:2")
        );
        assert!(set.get("node-3").is_none());
        assert!(!set.any_ready());
    }

    #[test]
    fn counters_accept_any_status() {
        let counters = RequestCounters::new("x".into());
        counters.count(StatusCode::OK);
        counters.count(StatusCode::from_u16(999).unwrap());
    }
}
