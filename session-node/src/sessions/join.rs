//! Joining a session: the rules of [`super::access`] applied in order —
//! name, credential (before the session is looked up, so a caller without
//! one learns nothing about tokens), session, customer key, one customer,
//! capacity — and the report of a session being guessed at.

use rand::Rng;
use shared_types::api::{JoinRequest, JoinResponse, Role};
use shared_types::token;
use tokio::time::Instant;

use super::access::{same_secret, Caller, PROBE_ALERT_THRESHOLD};
use super::record::{now_ms, User};
use super::{SessionError, SessionEvent, Sessions, MAX_NAME_CHARS};

impl Sessions {
    /// Adds a user to a live session, if the rules of [`access`] allow.
    /// The first agent-side user activates it.
    pub fn join(
        &self,
        caller: &Caller,
        session_token: &str,
        request: JoinRequest,
    ) -> Result<JoinResponse, SessionError> {
        if request
            .name
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS)
        {
            return Err(SessionError::NameTooLong);
        }
        self.probing(caller, || {
            let result = self.join_checked(caller, session_token, request);
            if matches!(
                result,
                Err(SessionError::AgentAuthRequired
                    | SessionError::AgentAuthInvalid
                    | SessionError::CustomerKeyInvalid)
            ) {
                self.note_auth_failure(session_token);
            }
            result
        })
    }

    fn join_checked(
        &self,
        caller: &Caller,
        session_token: &str,
        request: JoinRequest,
    ) -> Result<JoinResponse, SessionError> {
        let JoinRequest {
            role,
            name,
            customer_key,
        } = request;
        // The credential first: without one, every token answers the same.
        let agent_id = if role.is_agent_side() {
            self.access
                .agent_join(caller, session_token, u8::from(role))?
        } else {
            None
        };
        let mut inner = self.lock();
        let max_users = self.limits.max_users_per_session;
        let session = self.live_session(&mut inner, session_token)?;
        if role == Role::Customer {
            let key_ok = customer_key
                .as_deref()
                .is_some_and(|key| same_secret(key, &session.customer_key));
            if !key_ok {
                return Err(SessionError::CustomerKeyInvalid);
            }
            if session.users.iter().any(|u| u.role == Role::Customer) {
                return Err(SessionError::CustomerAlreadyJoined);
            }
        }
        if session.users.len() >= max_users {
            return Err(SessionError::SessionFull { max_users });
        }
        let now = Instant::now();
        session.last_seen = now;
        let activated = (role.is_agent_side() && session.activation_ms.is_none()).then(now_ms);
        if activated.is_some() {
            session.activation_ms = activated;
        }
        let id = session.next_user_id;
        session.next_user_id += 1;
        let user_token = token::user_token(session_token, rand::rng().random::<u128>());
        let user = User {
            id,
            role,
            name,
            agent_id,
            token: user_token.clone(),
        };
        let info = user.info();
        session.users.push(user);
        if let Some(agent) = &info.agent_id {
            tracing::info!(
                session = session_token,
                agent,
                role = u8::from(role),
                "agent joined"
            );
        }
        let response = JoinResponse {
            user_token,
            user_id: id,
            users: session.users_info(),
        };
        self.emit(SessionEvent::Joined {
            session: session_token.to_owned(),
            user: info,
        });
        if let Some(activation_time) = activated {
            self.emit(SessionEvent::Activated {
                session: session_token.to_owned(),
                activation_time,
            });
        }
        Ok(response)
    }

    /// Counts a failed join against a live session; reports the session
    /// once it has seen [`PROBE_ALERT_THRESHOLD`] of them.
    fn note_auth_failure(&self, session_token: &str) {
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get_mut(session_token) else {
            return;
        };
        if session.ended.is_some() {
            return;
        }
        session.auth_failures = session.auth_failures.saturating_add(1);
        if session.auth_failures == PROBE_ALERT_THRESHOLD {
            metrics::counter!("node_sessions_probed_total").increment(1);
            tracing::warn!(
                session = session_token,
                failures = PROBE_ALERT_THRESHOLD,
                "a live session is being guessed at: failed agent or customer joins"
            );
        }
    }
}
