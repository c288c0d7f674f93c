//! What every connection task shares: the configuration, the membership and
//! its health machinery, the owner lookup, the limits and the routing
//! counters. Built once by [`crate::server`]; read by the client
//! connections ([`crate::client`]) and the router ([`crate::route`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use metrics::Counter;
use tokio::sync::watch;

use crate::affinity::{Paths, Via};
use crate::balance::RoundRobin;
use crate::config::Config;
use crate::health::{
    spawn_health_loop, HealthCheck, HealthTask, HealthTracker, HttpHealthCheck, OnTransition, Probe,
};
use crate::limits::Limits;
use crate::lookup::OwnerLookup;
use crate::nodes::{Membership, Node, NodeState, RequestCounters};
use crate::passive::Verdict;
use crate::upstream::pool::PoolLimits;

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
    pub const ALL: [Decision; 8] = [
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

    pub fn of(via: Via) -> Self {
        match via {
            Via::ClientId => Decision::ClientId,
            Via::Cookie => Decision::Cookie,
            Via::Header => Decision::Header,
            Via::Query => Decision::Query,
        }
    }
}

/// A node the proxy runs tasks for.
#[derive(Debug)]
pub struct Member {
    pub node: Arc<Node>,
    /// Held: dropping it stops the health loop.
    pub _health: HealthTask,
    /// Set while the node is retiring (a reload removed it).
    pub retire: Option<crate::retire::RetireTask>,
}

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub paths: Paths,
    /// The parser's limits, from the configuration.
    pub wire_limits: http1::Limits,
    pub membership: Arc<Membership>,
    pub balancer: RoundRobin,
    pub lookup: Arc<OwnerLookup>,
    pub health_check: Arc<HttpHealthCheck>,
    /// The tasks of every node (health loop, retirement watcher); also
    /// serialises reloads and the ends of retirements.
    pub members: Mutex<Vec<Member>>,
    pub decisions: [Counter; 8],
    /// `proxy_requests_total{node="-"}`: answers no node took part in.
    pub own_requests: RequestCounters,
    /// Budgets and the connection caps.
    pub limits: Arc<Limits>,
    /// Turned true at the shutdown deadline: cuts the remaining tunnels.
    /// Its receivers are the live tunnels.
    pub tunnel_stop: watch::Sender<bool>,
    /// `--tls-cert`/`--tls-key`: the listener serves https.
    pub tls: Option<crate::tls::Tls>,
    pub runtime: tokio::runtime::Handle,
    pub local_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
}

impl Shared {
    pub fn decide(&self, decision: Decision) {
        if let Some(counter) = self.decisions.get(decision.index()) {
            counter.increment(1);
        }
    }

    /// A connect to `node` was refused or timed out ([`crate::passive`]):
    /// probe it now, or mark it down after enough strikes.
    pub fn strike(&self, node: &Arc<Node>) {
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
    pub fn pool_limits(&self) -> PoolLimits {
        PoolLimits {
            max_conns: self.config.max_conns_per_node,
            queue_wait: self.config.connect_timeout,
        }
    }

    pub fn spawn_health(&self, node: &Arc<Node>) -> HealthTask {
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
