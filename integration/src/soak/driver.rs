//! The chaos driver: every 2.5–4.5 s (seeded), one fault, drawn from a
//! shuffled deck of the enabled kinds so that each kind comes up early:
//!
//! - `kill`: SIGKILL a node, restart it (same name, same port) 1–4 s later;
//! - `drain`: SIGTERM a node; it keeps serving its sessions, refuses
//!   creates, and exits when it has none left or at its `--drain-timeout`;
//!   it is restarted 0.5–2 s after it exited;
//! - `remove`: rewrite the proxy's config without the node and SIGHUP; the
//!   node keeps running; re-added (rewrite, SIGHUP) 3–8 s later;
//! - `proxy`: SIGTERM the proxy, wait for its exit, start it again on the
//!   same port 0–1 s later.
//!
//! Only a node that has been in its normal state long enough for the proxy
//! to know it (1.5 s) is disturbed, and only while another such node
//! remains, so new sessions always have somewhere to go.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::cluster::{Cluster, NodeState};
use super::timeline::TOL_HEALTH;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chaos {
    Kill,
    Drain,
    Remove,
    Proxy,
}

impl Chaos {
    pub fn parse(list: &str) -> Result<Vec<Chaos>, String> {
        if list == "none" {
            return Ok(Vec::new());
        }
        list.split(',')
            .map(|k| match k.trim() {
                "kill" => Ok(Chaos::Kill),
                "drain" => Ok(Chaos::Drain),
                "remove" => Ok(Chaos::Remove),
                "proxy" => Ok(Chaos::Proxy),
                other => Err(format!(
                    "unknown event kind {other:?} (kill, drain, remove, proxy, or none)"
                )),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum FollowUp {
    Restart(usize),
    Readd(usize),
}

fn between(rng: &mut StdRng, lo_ms: u64, hi_ms: u64) -> Duration {
    Duration::from_millis(rng.random_range(lo_ms..=hi_ms))
}

/// A normal node to disturb, if another one stays normal and known.
fn victim(cluster: &Cluster, rng: &mut StdRng) -> Option<usize> {
    let now = cluster.shared.now();
    let settled = |i: usize| {
        cluster.nodes[i].state == NodeState::Normal && cluster.nodes[i].since + TOL_HEALTH < now
    };
    // The victim too has been normal long enough for the proxy to know it,
    // so that two faults of one node never blur into each other.
    let candidates: Vec<usize> = (0..cluster.nodes.len())
        .filter(|&i| settled(i) && (0..cluster.nodes.len()).any(|j| j != i && settled(j)))
        .collect();
    candidates
        .get(rng.random_range(0..candidates.len().max(1)))
        .copied()
}

pub struct Driver {
    rng: StdRng,
    kinds: Vec<Chaos>,
    deck: Vec<Chaos>,
    pending: Vec<(Duration, FollowUp)>,
}

impl Driver {
    pub fn new(rng: StdRng, kinds: Vec<Chaos>) -> Driver {
        Driver {
            rng,
            kinds,
            deck: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn draw(&mut self) -> Option<Chaos> {
        if self.kinds.is_empty() {
            return None;
        }
        if self.deck.is_empty() {
            self.deck = self.kinds.clone();
            self.deck.shuffle(&mut self.rng);
        }
        self.deck.pop()
    }

    /// Applies one fault; false when it did not apply to the cluster now.
    async fn apply(&mut self, cluster: &mut Cluster, chaos: Chaos) -> bool {
        let now = cluster.shared.now();
        if chaos == Chaos::Proxy {
            let gap = between(&mut self.rng, 0, 1000);
            // A failed start is recorded as trouble; try a few times more.
            if cluster.restart_proxy(gap).await.is_err() {
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if cluster.spawn_proxy().await.is_ok() {
                        break;
                    }
                }
            }
            return true;
        }
        let Some(i) = victim(cluster, &mut self.rng) else {
            return false;
        };
        match chaos {
            Chaos::Kill => {
                cluster.kill_node(i).await;
                let at = now + between(&mut self.rng, 1000, 4000);
                self.pending.push((at, FollowUp::Restart(i)));
            }
            Chaos::Drain => cluster.drain_node(i),
            Chaos::Remove => {
                if cluster.remove_node(i).is_err() {
                    return false;
                }
                let at = now + between(&mut self.rng, 3000, 8000);
                self.pending.push((at, FollowUp::Readd(i)));
            }
            Chaos::Proxy => {}
        }
        true
    }

    async fn follow_up(cluster: &mut Cluster, what: FollowUp) {
        match what {
            FollowUp::Restart(i) => {
                // A failed restart is recorded as trouble; try again later.
                if cluster.spawn_node(i).await.is_err() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = cluster.spawn_node(i).await;
                }
            }
            FollowUp::Readd(i) => {
                let _ = cluster.readd_node(i);
            }
        }
    }

    async fn reap(&mut self, cluster: &mut Cluster) {
        for i in cluster.reap_drained().await {
            let at = cluster.shared.now() + between(&mut self.rng, 500, 2000);
            self.pending.push((at, FollowUp::Restart(i)));
        }
    }

    /// Runs faults until `until` (time since the soak started).
    pub async fn run(&mut self, cluster: &mut Cluster, first: Duration, until: Duration) {
        let mut next = first;
        loop {
            let now = cluster.shared.now();
            if now >= until {
                return;
            }
            self.reap(cluster).await;
            if let Some(pos) = self.pending.iter().position(|(at, _)| *at <= now) {
                let (_, what) = self.pending.remove(pos);
                Self::follow_up(cluster, what).await;
                continue;
            }
            if now >= next {
                for _ in 0..self.kinds.len().max(1) {
                    let Some(chaos) = self.draw() else { break };
                    if self.apply(cluster, chaos).await {
                        break;
                    }
                }
                next = cluster.shared.now() + between(&mut self.rng, 2500, 4500);
                continue;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Undoes every fault still in force: waits for draining nodes to exit,
    /// restarts dead ones, re-adds removed ones. Then the proxy should see
    /// every node up.
    pub async fn settle(&mut self, cluster: &mut Cluster) {
        let limit = cluster.shared.now() + cluster.config.drain_timeout + Duration::from_secs(12);
        while cluster.nodes.iter().any(|n| n.state == NodeState::Draining)
            && cluster.shared.now() < limit
        {
            self.reap(cluster).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.pending.clear();
        for i in 0..cluster.nodes.len() {
            match cluster.nodes[i].state {
                NodeState::Dead | NodeState::Exited => {
                    Self::follow_up(cluster, FollowUp::Restart(i)).await
                }
                NodeState::Removed => Self::follow_up(cluster, FollowUp::Readd(i)).await,
                NodeState::Normal | NodeState::Draining => {}
            }
        }
    }
}
