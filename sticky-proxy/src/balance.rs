//! The choice of a node for unbound requests (new sessions and anything with
//! nothing to stick to).
//!
//! Only ready nodes (up, not draining) are candidates: a draining node keeps
//! its sessions but takes no new ones. The policy is behind the small
//! [`Selection`] trait so another one (least in-flight, weighted) can be
//! dropped in without touching the request path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::nodes::Node;

/// Picks a node for an unbound request.
pub trait Selection: Send + Sync + std::fmt::Debug {
    /// A ready node of `nodes`, or `None` when none is ready.
    fn select<'a>(&self, nodes: &'a [Arc<Node>]) -> Option<&'a Arc<Node>>;
}

/// Round-robin over the nodes that are ready at the time of the request.
///
/// A shared counter picks the k-th ready node (k = counter mod number of ready
/// nodes), so requests spread evenly over the ready nodes whatever the state
/// of the others, rather than the successor of a down node taking its turn
/// as well. Lock-free: one atomic increment and a scan of the node list.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Selection for RoundRobin {
    fn select<'a>(&self, nodes: &'a [Arc<Node>]) -> Option<&'a Arc<Node>> {
        let ready = nodes.iter().filter(|node| node.is_ready()).count();
        if ready == 0 {
            return None;
        }
        let k = self.next.fetch_add(1, Ordering::Relaxed) % ready;
        nodes.iter().filter(|node| node.is_ready()).nth(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeSpec;
    use crate::nodes::NodeState;

    fn nodes(states: &[NodeState]) -> Vec<Arc<Node>> {
        states
            .iter()
            .enumerate()
            .map(|(i, state)| {
                let node = Node::new(
                    &NodeSpec::parse(&format!("node-{}=http://127.0.0.1:{}", i + 1, i + 1))
                        .unwrap(),
                );
                node.set_state(*state);
                Arc::new(node)
            })
            .collect()
    }

    fn picks(rr: &RoundRobin, nodes: &[Arc<Node>], n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                rr.select(nodes)
                    .map(|node| node.name().to_owned())
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn rotates_over_ready_nodes() {
        let nodes = nodes(&[NodeState::Up, NodeState::Up, NodeState::Up]);
        let rr = RoundRobin::new();
        assert_eq!(
            picks(&rr, &nodes, 6),
            ["node-1", "node-2", "node-3", "node-1", "node-2", "node-3"]
        );
    }

    #[test]
    fn skips_down_and_draining_nodes() {
        let nodes = nodes(&[
            NodeState::Up,
            NodeState::Down,
            NodeState::Draining,
            NodeState::Up,
        ]);
        let rr = RoundRobin::new();
        assert_eq!(
            picks(&rr, &nodes, 4),
            ["node-1", "node-4", "node-1", "node-4"]
        );
    }

    #[test]
    fn follows_state_changes() {
        let nodes = nodes(&[NodeState::Up, NodeState::Up]);
        let rr = RoundRobin::new();
        nodes[0].set_state(NodeState::Down);
        assert_eq!(picks(&rr, &nodes, 3), ["node-2", "node-2", "node-2"]);
        nodes[0].set_state(NodeState::Up);
        let spread = picks(&rr, &nodes, 4);
        assert_eq!(spread.iter().filter(|n| *n == "node-1").count(), 2);
    }

    #[test]
    fn none_when_nothing_is_ready() {
        let rr = RoundRobin::new();
        assert!(rr
            .select(&nodes(&[NodeState::Down, NodeState::Draining]))
            .is_none());
        assert!(rr.select(&[]).is_none());
    }
}
