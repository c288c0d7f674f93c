//! Retiring a node a reload removed, instead of forgetting it at once.
//!
//! A node removed from the configuration may still hold live sessions:
//! forgetting its name would turn its cookies into "unknown", send its
//! sessions' lookups to the other nodes, and answer 404 for sessions that
//! are alive. So a removed node becomes **retiring**
//! ([`Phase::Retiring`](crate::nodes::Phase)):
//!
//! - it gets no new sessions and no unbound request (it is not ready);
//! - requests bound to it — cookie, header, query parameter, `clientId`, or
//!   a lookup (retiring nodes are still asked) — still reach it while it
//!   answers; its health is still checked (a retiring node that is down
//!   gets 503 like any down node);
//! - it is **gone** as soon as a health answer from after the removal
//!   reports `cobrowse-live-sessions: 0` (while it answers), or when
//!   `--retire-timeout` (10 min) has passed since the removal. Gone, it is
//!   down for good: requests bound to it get 503 `session_server_unavailable`
//!   naming it — never a 404 from another node — and lookups neither ask nor
//!   name it.
//!
//! A node that a later reload configures again (same name and URL) is normal
//! again, retiring or gone. This module only watches; the server applies
//! the outcome (under its reload lock, so a reload and a retirement's end
//! never cross).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::nodes::{Node, NodeState};

/// Why a retirement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireEnd {
    /// The node reported no live session.
    NoSessions,
    /// `--retire-timeout` passed.
    TimedOut,
}

impl RetireEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            RetireEnd::NoSessions => "no live session left",
            RetireEnd::TimedOut => "retire timeout reached",
        }
    }
}

/// Whether a retiring node is done now.
pub fn retired(node: &Node, started: Instant, timeout: Duration) -> Option<RetireEnd> {
    if node.live_sessions() == Some(0) && node.state() != NodeState::Down {
        return Some(RetireEnd::NoSessions);
    }
    (started.elapsed() >= timeout).then_some(RetireEnd::TimedOut)
}

/// The watcher of one retiring node; dropping it stops the watch (the node
/// was configured again, or the proxy stops).
#[derive(Debug)]
pub struct RetireTask(JoinHandle<()>);

impl Drop for RetireTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches `node` every `every` (the health interval, after each probe has
/// had its chance to update the count) until it is retired, then calls
/// `on_end` once.
pub fn spawn_retire(
    node: Arc<Node>,
    timeout: Duration,
    every: Duration,
    on_end: impl FnOnce(&Arc<Node>, RetireEnd) + Send + 'static,
) -> RetireTask {
    let started = Instant::now();
    RetireTask(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick is immediate: skip it, the count was just reset.
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = tokio::time::sleep_until(started + timeout) => {}
            }
            if let Some(end) = retired(&node, started, timeout) {
                on_end(&node, end);
                return;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeSpec;
    use std::sync::Mutex;

    fn node() -> Arc<Node> {
        let node = Node::new(&NodeSpec::parse("n=http://127.0.0.1:1").unwrap());
        node.set_state(NodeState::Up);
        node.begin_retire();
        Arc::new(node)
    }

    #[tokio::test(start_paused = true)]
    async fn ends_when_the_node_reports_no_session() {
        let node = node();
        let ended = Arc::new(Mutex::new(None));
        let seen = ended.clone();
        let _task = spawn_retire(
            node.clone(),
            Duration::from_secs(600),
            Duration::from_secs(1),
            move |_, end| *seen.lock().unwrap() = Some(end),
        );
        node.set_live_sessions(Some(2));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(*ended.lock().unwrap(), None);
        // A down node's last count does not end it: it does not answer.
        node.set_live_sessions(Some(0));
        node.set_state(NodeState::Down);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(*ended.lock().unwrap(), None);
        node.set_state(NodeState::Draining);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*ended.lock().unwrap(), Some(RetireEnd::NoSessions));
    }

    #[tokio::test(start_paused = true)]
    async fn ends_at_the_timeout_whatever_the_count() {
        let node = node();
        let ended = Arc::new(Mutex::new(None));
        let seen = ended.clone();
        let _task = spawn_retire(
            node.clone(),
            Duration::from_secs(30),
            Duration::from_secs(1),
            move |_, end| *seen.lock().unwrap() = Some(end),
        );
        node.set_live_sessions(Some(5));
        tokio::time::sleep(Duration::from_millis(29_500)).await;
        assert_eq!(*ended.lock().unwrap(), None);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*ended.lock().unwrap(), Some(RetireEnd::TimedOut));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_count_waits_for_the_timeout() {
        let node = node();
        assert_eq!(node.live_sessions(), None);
        let started = Instant::now();
        assert_eq!(retired(&node, started, Duration::from_secs(5)), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            retired(&node, started, Duration::from_secs(5)),
            Some(RetireEnd::TimedOut)
        );
    }
}
