//! Ready or draining: a first-class state of the node (in the spirit of
//! linkerd2-proxy's admin `readiness`).
//!
//! A draining node answers its health check with 503 so load balancers stop
//! sending it new sessions, refuses Create Session, and keeps serving the
//! sessions it already holds until they end or the drain timeout passes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn is_ready(&self) -> bool {
        !self.0.load(Ordering::Acquire)
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Starts draining; there is no way back (a drained node exits).
    pub fn start_draining(&self) {
        self.0.store(true, Ordering::Release);
    }
}
