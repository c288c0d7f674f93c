//! One session and its users, as the core keeps them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shared_types::api::{Role, StopResponse, UserInfo};
use tokio::time::Instant;

pub(super) struct User {
    pub(super) id: u32,
    pub(super) role: Role,
    pub(super) name: Option<String>,
    /// The credential's `sub`, for agent-side users.
    pub(super) agent_id: Option<String>,
    /// The whole user token (`<session>-<secret>`).
    pub(super) token: String,
}

pub(super) struct Session {
    /// Only the creator knows it; the customer joins with it.
    pub(super) customer_key: String,
    /// Failed agent or customer joins against this session.
    pub(super) auth_failures: u32,
    pub(super) activation_ms: Option<u64>,
    /// Set when the session ended; from then on it is only retained.
    pub(super) ended: Option<Ended>,
    pub(super) users: Vec<User>,
    pub(super) next_user_id: u32,
    pub(super) last_seen: Instant,
}

// No secret in a log: the user token and the customer key are left out.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("users", &self.users)
            .field("activation_ms", &self.activation_ms)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Ended {
    pub(super) deactivation_ms: u64,
    pub(super) at: Instant,
}

impl User {
    pub(super) fn info(&self) -> UserInfo {
        UserInfo {
            user_id: self.id,
            role: self.role,
            name: self.name.clone(),
            agent_id: self.agent_id.clone(),
        }
    }
}

impl Session {
    pub(super) fn users_info(&self) -> Vec<UserInfo> {
        self.users.iter().map(User::info).collect()
    }

    pub(super) fn stop_response(&self, ended: Ended) -> StopResponse {
        StopResponse {
            activation_time: self.activation_ms,
            deactivation_time: ended.deactivation_ms,
        }
    }

    /// Ends the session if it has been idle too long; returns whether it was
    /// live before and is ended now.
    pub(super) fn expire_if_idle(&mut self, now: Instant, idle_timeout: Duration) -> bool {
        if self.ended.is_none() && now.duration_since(self.last_seen) >= idle_timeout {
            self.ended = Some(Ended {
                deactivation_ms: now_ms(),
                at: now,
            });
            return true;
        }
        false
    }
}

/// Wall-clock UTC milliseconds since the epoch.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
