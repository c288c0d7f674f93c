//! Why a session operation was refused.

use ::access::RetryAfter;

/// Why a session operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    SessionNotFound,
    UserNotFound,
    Ended,
    NotController,
    SessionFull {
        max_users: usize,
    },
    Draining,
    CapacityExhausted,
    NameTooLong,
    /// Agent or controller join without a credential.
    AgentAuthRequired,
    /// A credential that is not valid, or not for this session or role.
    AgentAuthInvalid,
    /// This node has no agent key, so no one may join agent-side.
    AgentAuthUnconfigured,
    /// Customer join without the session's customer key, or a wrong one.
    CustomerKeyInvalid,
    CustomerAlreadyJoined,
    /// The caller's probe budget is spent.
    TooManyAttempts(RetryAfter),
    /// The caller's create budget is spent.
    TooManyCreates(RetryAfter),
}

impl SessionError {
    /// A miss: the answer a guesser gets, which spends its probe budget.
    pub(super) fn is_miss(&self) -> bool {
        use SessionError::*;
        matches!(
            self,
            SessionNotFound
                | UserNotFound
                | Ended
                | AgentAuthRequired
                | AgentAuthInvalid
                | CustomerKeyInvalid
        )
    }

    /// The `reason` label of `node_rejected_total`, for refusals that guard
    /// access (not ordinary not-found answers).
    pub fn rejection_reason(&self) -> Option<&'static str> {
        use SessionError::*;
        Some(match self {
            AgentAuthRequired | AgentAuthUnconfigured => "agent_auth_required",
            AgentAuthInvalid => "agent_auth_invalid",
            CustomerKeyInvalid => "customer_key_invalid",
            CustomerAlreadyJoined => "customer_already_joined",
            TooManyAttempts(_) => "too_many_attempts",
            TooManyCreates(_) => "too_many_creates",
            _ => return None,
        })
    }
}
