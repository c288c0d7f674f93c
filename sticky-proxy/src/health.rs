//! Active health checks.
//!
//! In the spirit of Pingora's `health_check.rs`: a small [`HealthCheck`]
//! trait (one probe of one node), the HTTP implementation that asks
//! `GET <ctx>/health`, and a per-node loop that turns probes into state
//! transitions with consecutive rise/fall thresholds ([`HealthTracker`], a
//! pure state machine).
//!
//! - 200 → the node is up; 503 → draining (alive, keeps its sessions, takes
//!   no new ones); anything else, a timeout or a connection error → failure;
//!   a probe the proxy could not even make (out of file descriptors or
//!   sockets: a local error) → unknown, which changes nothing.
//! - Every answer's `cobrowse-live-sessions` header is recorded on the node
//!   (a retiring node is gone once it reports 0, see [`crate::retire`]).
//! - The very first probe of a node sets its state directly, so the proxy
//!   knows its nodes a moment after start. After that a down node needs `rise`
//!   good probes in a row to come back and a live node `fall` failures in a
//!   row to go down. A live node switching between up and draining is taken
//!   at its word at once: it announced it.
//! - Passive detection ([`crate::passive`]) marks a node down outside the
//!   loop; the tracker notices and counts `rise` from zero.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode, Uri};
use http_body_util::BodyExt;
use shared_types::names::LIVE_SESSIONS_HEADER;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::control::{UpstreamBody, UpstreamClient};
use crate::nodes::{Node, NodeState};

/// Outcome of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Alive and ready (200).
    Ready,
    /// Alive, draining (503).
    Draining,
    /// Anything else.
    Failed,
    /// The proxy could not make the probe (a local error): no verdict.
    Unknown,
}

/// One probe of one node.
pub trait HealthCheck: Send + Sync + 'static {
    fn check(&self, node: &Node) -> impl Future<Output = Probe> + Send;
}

/// `GET <ctx>/health` over the shared upstream client, bounded by a timeout.
#[derive(Debug, Clone)]
pub struct HttpHealthCheck {
    client: UpstreamClient,
    path: Arc<str>,
    timeout: Duration,
}

impl HttpHealthCheck {
    /// `health_path` is `<ctx>/health`.
    pub fn new(client: UpstreamClient, health_path: &str, timeout: Duration) -> Self {
        HttpHealthCheck {
            client,
            path: Arc::from(health_path),
            timeout,
        }
    }

    async fn probe(&self, node: &Node) -> Probe {
        let Ok(uri) = Uri::try_from(format!("{}{}", node.url(), self.path)) else {
            return Probe::Failed;
        };
        let Ok(request) = Request::get(uri).body(UpstreamBody::new()) else {
            return Probe::Failed;
        };
        let response = match self.client.request(request).await {
            Ok(response) => response,
            Err(error) if crate::control::is_local(&error) => {
                tracing::warn!(node = node.name(), error = %crate::control::ErrorChain(&error), "cannot probe the node: out of local resources; not counted against it");
                return Probe::Unknown;
            }
            Err(_) => return Probe::Failed,
        };
        let status = response.status();
        let live = response
            .headers()
            .get(LIVE_SESSIONS_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        // Read the (empty) body so the connection goes back to the pool.
        if response.into_body().collect().await.is_err() {
            return Probe::Failed;
        }
        let probe = match status {
            StatusCode::OK => Probe::Ready,
            StatusCode::SERVICE_UNAVAILABLE => Probe::Draining,
            _ => Probe::Failed,
        };
        if probe != Probe::Failed {
            node.set_live_sessions(live);
        }
        probe
    }
}

impl HealthCheck for HttpHealthCheck {
    async fn check(&self, node: &Node) -> Probe {
        tokio::time::timeout(self.timeout, self.probe(node))
            .await
            .unwrap_or(Probe::Failed)
    }
}

/// Consecutive-result bookkeeping for one node. Pure: feed it the node's
/// current state and a probe, it says which state to set, if any.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    rise: u32,
    fall: u32,
    successes: u32,
    failures: u32,
    /// The state this tracker last set; `None` before the first probe.
    last_set: Option<NodeState>,
}

impl HealthTracker {
    pub fn new(rise: u32, fall: u32) -> Self {
        HealthTracker {
            rise: rise.max(1),
            fall: fall.max(1),
            successes: 0,
            failures: 0,
            last_set: None,
        }
    }

    /// The state to set after `probe`, given the node's `current` state.
    pub fn observe(&mut self, current: NodeState, probe: Probe) -> Option<NodeState> {
        let announced = match probe {
            Probe::Ready => NodeState::Up,
            Probe::Draining => NodeState::Draining,
            Probe::Failed => NodeState::Down,
            // Neither good nor bad: nothing changes, nothing is counted.
            Probe::Unknown => return None,
        };
        if self.last_set.is_none() {
            return self.set(current, announced);
        }
        if self.last_set != Some(current) {
            // Changed behind our back (passive detection): count afresh.
            self.successes = 0;
            self.failures = 0;
            self.last_set = Some(current);
        }
        match probe {
            Probe::Ready | Probe::Draining => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                let due = match current {
                    NodeState::Down => self.successes >= self.rise,
                    NodeState::Up | NodeState::Draining => announced != current,
                };
                if due {
                    return self.set(current, announced);
                }
            }
            Probe::Unknown => {}
            Probe::Failed => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                if current != NodeState::Down && self.failures >= self.fall {
                    return self.set(current, NodeState::Down);
                }
            }
        }
        None
    }

    fn set(&mut self, current: NodeState, next: NodeState) -> Option<NodeState> {
        self.successes = 0;
        self.failures = 0;
        self.last_set = Some(next);
        (next != current).then_some(next)
    }
}

/// Called on every state transition a health loop makes:
/// `(node, previous, next)`.
pub type OnTransition = Arc<dyn Fn(&Arc<Node>, NodeState, NodeState) + Send + Sync>;

/// A running health loop.
#[derive(Debug)]
pub struct HealthTask {
    handle: JoinHandle<()>,
    first: Option<oneshot::Receiver<()>>,
}

impl HealthTask {
    /// Waits until the first probe has been applied (or the loop ended).
    pub async fn first_probe_done(&mut self) {
        if let Some(first) = self.first.take() {
            let _ = first.await;
        }
    }

    /// The signal of the first probe, for a caller that waits elsewhere.
    pub fn take_first_probe(&mut self) -> Option<oneshot::Receiver<()>> {
        self.first.take()
    }

    /// Stops the loop (node removed, proxy shut down).
    pub fn stop(&self) {
        self.handle.abort();
    }
}

impl Drop for HealthTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Probes `node` now and then every `interval` until stopped.
pub fn spawn_health_loop<C: HealthCheck>(
    node: Arc<Node>,
    check: Arc<C>,
    interval: Duration,
    tracker: HealthTracker,
    on_transition: OnTransition,
) -> HealthTask {
    let (first_tx, first_rx) = oneshot::channel();
    let handle = tokio::spawn(run_health_loop(
        node,
        check,
        interval,
        tracker,
        on_transition,
        first_tx,
    ));
    HealthTask {
        handle,
        first: Some(first_rx),
    }
}

async fn run_health_loop<C: HealthCheck>(
    node: Arc<Node>,
    check: Arc<C>,
    interval: Duration,
    mut tracker: HealthTracker,
    on_transition: OnTransition,
    first: oneshot::Sender<()>,
) {
    let mut first = Some(first);
    let mut ticker = tokio::time::interval(interval);
    // A slow probe delays the next one rather than causing a burst.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let probe = check.check(&node).await;
        let current = node.state();
        if let Some(next) = tracker.observe(current, probe) {
            let previous = node.set_state(next);
            if previous != next {
                on_transition(&node, previous, next);
            }
        }
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeSpec;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use NodeState::{Down, Draining, Up};
    use Probe::{Failed, Ready};

    fn run(tracker: &mut HealthTracker, start: NodeState, probes: &[Probe]) -> Vec<NodeState> {
        let mut state = start;
        probes
            .iter()
            .map(|probe| {
                if let Some(next) = tracker.observe(state, *probe) {
                    state = next;
                }
                state
            })
            .collect()
    }

    #[test]
    fn first_probe_sets_the_state_directly() {
        assert_eq!(run(&mut HealthTracker::new(3, 3), Down, &[Ready]), [Up]);
        assert_eq!(
            run(&mut HealthTracker::new(3, 3), Down, &[Probe::Draining]),
            [Draining]
        );
        assert_eq!(run(&mut HealthTracker::new(3, 3), Up, &[Failed]), [Down]);
    }

    #[test]
    fn fall_needs_consecutive_failures() {
        let mut tracker = HealthTracker::new(2, 3);
        let states = run(
            &mut tracker,
            Down,
            &[Ready, Failed, Failed, Ready, Failed, Failed, Failed],
        );
        assert_eq!(states, [Up, Up, Up, Up, Up, Up, Down]);
    }

    #[test]
    fn rise_needs_consecutive_successes() {
        let mut tracker = HealthTracker::new(3, 1);
        let states = run(
            &mut tracker,
            Down,
            &[Failed, Ready, Ready, Failed, Ready, Ready, Ready],
        );
        assert_eq!(states, [Down, Down, Down, Down, Down, Down, Up]);
    }

    #[test]
    fn draining_is_alive_and_taken_at_once() {
        let mut tracker = HealthTracker::new(2, 2);
        let states = run(
            &mut tracker,
            Down,
            &[
                Ready,
                Probe::Draining,
                Probe::Draining,
                Failed,
                Probe::Draining,
                Ready,
            ],
        );
        assert_eq!(states, [Up, Draining, Draining, Draining, Draining, Up]);
        // A down node that comes back draining needs `rise` like any other.
        let mut tracker = HealthTracker::new(2, 1);
        let states = run(
            &mut tracker,
            Down,
            &[Failed, Probe::Draining, Probe::Draining],
        );
        assert_eq!(states, [Down, Down, Draining]);
    }

    #[test]
    fn unknown_probes_change_nothing() {
        let mut tracker = HealthTracker::new(1, 2);
        assert_eq!(tracker.observe(Down, Probe::Unknown), None);
        assert_eq!(tracker.observe(Down, Ready), Some(Up));
        let states = run(
            &mut tracker,
            Up,
            &[Failed, Probe::Unknown, Probe::Unknown, Ready, Failed],
        );
        assert_eq!(states, [Up, Up, Up, Up, Up]);
    }

    #[test]
    fn passive_down_restarts_the_rise_count() {
        let mut tracker = HealthTracker::new(2, 2);
        assert_eq!(tracker.observe(Down, Ready), Some(Up));
        assert_eq!(tracker.observe(Up, Ready), None);
        // Forwarding found the node dead and marked it down.
        assert_eq!(tracker.observe(Down, Ready), None);
        assert_eq!(tracker.observe(Down, Ready), Some(Up));
    }

    /// Answers scripted probes, then `Ready` forever.
    #[derive(Debug)]
    struct Scripted(Mutex<VecDeque<Probe>>);

    impl HealthCheck for Scripted {
        async fn check(&self, _node: &Node) -> Probe {
            self.0.lock().unwrap().pop_front().unwrap_or(Ready)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn loop_applies_thresholds_over_time() {
        let node = Arc::new(Node::new(&NodeSpec::parse("n=http://127.0.0.1:1").unwrap()));
        let script = [Ready, Failed, Failed, Failed, Ready, Ready];
        let check = Arc::new(Scripted(Mutex::new(script.into_iter().collect())));
        let transitions = Arc::new(Mutex::new(Vec::new()));
        let seen = transitions.clone();
        let on_transition: OnTransition =
            Arc::new(move |_node, from, to| seen.lock().unwrap().push((from, to)));
        let interval = Duration::from_secs(1);
        let mut task = spawn_health_loop(
            node.clone(),
            check,
            interval,
            HealthTracker::new(2, 3),
            on_transition,
        );
        task.first_probe_done().await;
        assert_eq!(node.state(), Up, "first probe at once");

        // Sample half-way between probes so no sample races a probe.
        tokio::time::sleep(interval / 2).await;
        let mut states = Vec::new();
        for _ in 0..6 {
            states.push(node.state());
            tokio::time::sleep(interval).await;
        }
        // After probes 1..6: Ready, Failed, Failed, Failed (down at the
        // third failure), Ready, Ready (up at the second success).
        assert_eq!(states, [Up, Up, Up, Down, Down, Up]);
        assert_eq!(
            *transitions.lock().unwrap(),
            [(Down, Up), (Up, Down), (Down, Up)]
        );
        task.stop();
    }
}
