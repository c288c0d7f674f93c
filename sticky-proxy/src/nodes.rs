//! Membership: the configured session nodes, their state and in-flight
//! counts, and the snapshot the request path reads.
//!
//! The set of nodes is an immutable [`NodeSet`] behind an [`ArcSwap`]: the hot
//! path loads it without a lock, and a reload swaps in a new set while
//! requests already under way keep the `Arc<Node>` they were routed to.
//! A node's state and in-flight count are atomics on the node itself, so a
//! health transition never rebuilds the set.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

use crate::pool::ConnectionPool;
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

    /// Value of the `proxy_node_state` gauge: 1 up, 0.5 draining, 0 down.
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

/// One session node.
#[derive(Debug)]
pub struct Node {
    name: Arc<str>,
    url: Box<str>,
    authority: Authority,
    state: AtomicU8,
    in_flight: AtomicUsize,
    requests: RequestCounters,
    state_gauge: Gauge,
    /// Keep-alive connections for requests forwarded to this node.
    pool: Arc<ConnectionPool>,
}

impl Node {
    /// A node starts `Down`: it takes no traffic until its first health check
    /// answers (the server runs that check before it accepts connections).
    pub fn new(spec: &NodeSpec) -> Self {
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let state_gauge = metrics::gauge!("proxy_node_state", "node" => name.clone());
        state_gauge.set(NodeState::Down.gauge_value());
        Node {
            requests: RequestCounters::new(name.clone()),
            name,
            url: spec.url.clone().into_boxed_str(),
            pool: ConnectionPool::new(&spec.authority),
            authority: spec.authority.clone(),
            state: AtomicU8::new(NodeState::Down.to_u8()),
            in_flight: AtomicUsize::new(0),
            state_gauge,
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

    /// Up, not draining: may take new sessions.
    pub fn is_ready(&self) -> bool {
        self.state() == NodeState::Up
    }

    /// Sets the state and returns the previous one.
    pub fn set_state(&self, state: NodeState) -> NodeState {
        let previous = NodeState::from_u8(self.state.swap(state.to_u8(), Ordering::AcqRel));
        if previous != state {
            self.state_gauge.set(state.gauge_value());
        }
        previous
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

    /// Called when a reload removes the node: its gauge reads 0 (it takes no
    /// traffic any more), while requests already forwarded to it finish.
    pub fn retire(&self) {
        // Down, so that nothing still holding it (a lookup that finished
        // after the reload and cached it) can send it a request.
        self.set_state(NodeState::Down);
        self.state_gauge.set(0.0);
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

    /// At least one node is up and not draining.
    pub fn any_ready(&self) -> bool {
        self.nodes.iter().any(|node| node.is_ready())
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
