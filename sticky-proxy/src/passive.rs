//! Passive detection: what forwarding failures say about a node, so that no
//! client can take a healthy node out of service for everyone else.
//!
//! - A connect that is **refused or times out** is a *strike*. The request
//!   that met it gets its 503, and the node is probed at once with its
//!   ordinary health check (one probe at a time per node): a failed probe
//!   marks the node down, a good one leaves it as it is.
//! - [`STRIKES`] consecutive strikes from different requests within
//!   [`STRIKE_WINDOW`] (counted from the first of them), with no successful
//!   exchange with the node in between, mark the node down whatever the
//!   probes said: a node that answers its health checks on a kept
//!   connection but refuses new ones is not serving.
//! - Nothing else is a strike. A local error (the proxy out of file
//!   descriptors, sockets or ports: EMFILE, ENFILE, EADDRNOTAVAIL…) says
//!   nothing about the node. A connection that breaks after the request went
//!   out — a node that answered and closed, a node that refused an oversized
//!   body, a keep-alive race — is checked with a fresh connect by the pool
//!   ([`crate::upstream`]); only a refused or timed-out one is a strike.
//!
//! Each forwarded request reports at most one strike per node, so "from
//! different requests" holds by construction.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Consecutive strikes that mark a node down without a failed probe.
pub const STRIKES: u32 = 3;
/// The strikes must fall within this window, from the first one.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(10);

/// What to do about a strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// [`STRIKES`] in a row: mark the node down now.
    Down,
    /// Probe the node now (no probe of it was running).
    Probe,
    /// A probe is already running; its result will decide.
    Wait,
}

/// One node's strike count and probe flag. Lock-free; the hot path (a
/// successful exchange) only reads one atomic.
#[derive(Debug)]
pub struct Passive {
    base: Instant,
    strikes: AtomicU32,
    /// Milliseconds after `base` of the first strike of the current run.
    first_strike_ms: AtomicU64,
    probing: AtomicBool,
}

impl Default for Passive {
    fn default() -> Self {
        Passive {
            base: Instant::now(),
            strikes: AtomicU32::new(0),
            first_strike_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }
}

impl Passive {
    /// A connect to the node was refused or timed out.
    pub fn strike(&self) -> Verdict {
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        let window = u64::try_from(STRIKE_WINDOW.as_millis()).unwrap_or(u64::MAX);
        let first = self.first_strike_ms.load(Ordering::Acquire);
        let count =
            if self.strikes.load(Ordering::Acquire) == 0 || now.saturating_sub(first) > window {
                // A new run (two racing strikes may both start one: harmless).
                self.first_strike_ms.store(now, Ordering::Release);
                self.strikes.store(1, Ordering::Release);
                1
            } else {
                self.strikes
                    .fetch_add(1, Ordering::AcqRel)
                    .saturating_add(1)
            };
        if count >= STRIKES {
            self.strikes.store(0, Ordering::Release);
            return Verdict::Down;
        }
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Verdict::Probe
        } else {
            Verdict::Wait
        }
    }

    /// The node answered a forwarded request: the run of strikes is over.
    pub fn success(&self) {
        if self.strikes.load(Ordering::Relaxed) != 0 {
            self.strikes.store(0, Ordering::Release);
        }
    }

    /// The probe started by [`Verdict::Probe`] is done.
    pub fn probe_done(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// Strikes in the current run (for tests and logs).
    pub fn strikes(&self) -> u32 {
        self.strikes.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_strike_probes_and_k_strikes_mark_down() {
        let passive = Passive::default();
        assert_eq!(passive.strike(), Verdict::Probe);
        assert_eq!(passive.strike(), Verdict::Wait, "one probe at a time");
        assert_eq!(passive.strike(), Verdict::Down);
        assert_eq!(passive.strikes(), 0, "a verdict ends the run");
        passive.probe_done();
        assert_eq!(passive.strike(), Verdict::Probe);
    }

    #[test]
    fn a_success_ends_the_run() {
        let passive = Passive::default();
        assert_eq!(passive.strike(), Verdict::Probe);
        passive.probe_done();
        assert_eq!(passive.strike(), Verdict::Probe);
        passive.success();
        passive.probe_done();
        assert_eq!(passive.strike(), Verdict::Probe);
        passive.probe_done();
        assert_eq!(passive.strike(), Verdict::Probe, "only two in this run");
        assert_eq!(passive.strikes(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn strikes_outside_the_window_start_a_new_run() {
        let passive = Passive::default();
        passive.strike();
        passive.probe_done();
        passive.strike();
        passive.probe_done();
        tokio::time::advance(STRIKE_WINDOW + Duration::from_millis(1)).await;
        assert_eq!(passive.strike(), Verdict::Probe);
        assert_eq!(passive.strikes(), 1);
    }
}
