//! The session core: every rule about live sessions, and nothing about HTTP.
//!
//! A session is born idle (customer side only), becomes active when the first
//! agent or controller joins, and ends when the controller stops it or when it
//! sees no request for the idle timeout. An ended session is *retained* for a
//! while so that a repeated Stop answers the same times and Get/Join answer
//! 410 (gone) rather than 404 (never existed); then it is forgotten.
//!
//! The REST handlers and the CometD service channels both call into
//! [`Sessions`]; keeping the rules here means a second transport cannot
//! disagree with the first. Who may join with which role, and the probe and
//! create budgets, are in [`access`]; where tokens come from in [`tokens`].
//!
//! Time: idle and retention deadlines use [`tokio::time::Instant`] so tests can
//! pause and advance the clock; activation and deactivation stamps are wall
//! clock UTC milliseconds, as the contract reports them.

pub mod access;
mod error;
mod join;
mod record;
pub mod tokens;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use shared_types::api::{Role, StopResponse, UserInfo};
use shared_types::token;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use self::access::{same_secret, Access, AccessConfig, Caller};
pub use self::error::SessionError;
use self::record::{now_ms, Ended, Session};
use self::tokens::{TokenPartition, TokenSource};

/// Longest display name a user may join with, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// Draws of a taken token before Create gives up (with `max_sessions` far
/// below a partition's size this only happens with a forced draw).
const MAX_TOKEN_DRAWS: usize = 64;

/// Events buffered for a slow realtime dispatcher before it misses some.
const EVENT_BUFFER: usize = 65_536;

/// Limits and timings of the session core.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Live sessions a node may hold; Create answers 503 beyond it.
    pub max_sessions: usize,
    /// Users one session may hold; Join answers 409 beyond it.
    pub max_users_per_session: usize,
    /// A live session with no request for this long ends.
    pub idle_timeout: Duration,
    /// An ended session is remembered this long, then forgotten.
    pub retention: Duration,
    /// This node's share of the token space.
    pub token_partition: TokenPartition,
    /// Tests only: draw tokens from this seed (predictable!).
    pub insecure_token_seed: Option<u64>,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            max_users_per_session: 32,
            idle_timeout: Duration::from_secs(30 * 60),
            retention: Duration::from_secs(10 * 60),
            token_partition: TokenPartition::WHOLE,
            insecure_token_seed: None,
        }
    }
}

/// Something that happened to a session, for the realtime transports to tell
/// the session's participants, whichever transport caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// `user` joined; everyone already in the session should hear of it.
    Joined { session: String, user: UserInfo },
    /// The first agent-side user joined.
    Activated {
        session: String,
        activation_time: u64,
    },
    /// The session ended (stopped, a party exited, or idle).
    Deactivated {
        session: String,
        times: StopResponse,
    },
}

/// A new session: its token, and the key its customer joins with.
#[derive(Clone, PartialEq, Eq)]
pub struct Created {
    pub token: String,
    pub customer_key: String,
}

/// All sessions of this node.
#[derive(Debug)]
pub struct Sessions {
    limits: SessionLimits,
    access: Access,
    inner: Mutex<Inner>,
    /// Count of live (not ended) sessions, watched by the drain.
    live_tx: watch::Sender<usize>,
    /// What happened to sessions, for the realtime channel.
    events: broadcast::Sender<SessionEvent>,
}

#[derive(Debug)]
struct Inner {
    sessions: HashMap<String, Session>,
    live: usize,
    tokens: TokenSource,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    pub fn new(limits: SessionLimits, access: &AccessConfig) -> Self {
        let tokens = match limits.insecure_token_seed {
            Some(seed) => TokenSource::seeded(limits.token_partition, seed),
            None => TokenSource::random(limits.token_partition),
        };
        Self::with_tokens(limits, access, tokens)
    }

    /// Tests: a chosen token source.
    pub fn with_tokens(limits: SessionLimits, access: &AccessConfig, tokens: TokenSource) -> Self {
        let (live_tx, _) = watch::channel(0);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self {
            limits,
            access: Access::new(access),
            inner: Mutex::new(Inner {
                sessions: HashMap::new(),
                live: 0,
                tokens,
            }),
            live_tx,
            events,
        }
    }

    /// The caller of a request: its address and the agent credential it
    /// presented, verified once here.
    pub fn caller(&self, ip: std::net::IpAddr, credential: Option<&access::Credential>) -> Caller {
        self.access.caller(ip, credential)
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Runs `op` (which could tell whether a token exists) if the caller's
    /// probe budget allows, and spends from it when the answer is a miss.
    fn probing<T>(
        &self,
        caller: &Caller,
        op: impl FnOnce() -> Result<T, SessionError>,
    ) -> Result<T, SessionError> {
        if caller.is_infrastructure() {
            return op();
        }
        let key = caller.budget_key();
        self.access
            .check_probes(&key)
            .map_err(SessionError::TooManyAttempts)?;
        let result = op();
        if let Err(error) = &result {
            if error.is_miss() {
                self.access.miss(&key);
            }
        }
        result
    }

    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// A receiver of the live session count, for the drain to wait on.
    pub fn watch_live(&self) -> watch::Receiver<usize> {
        self.live_tx.subscribe()
    }

    /// Subscribes to what happens to sessions from now on.
    pub fn subscribe_events(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: SessionEvent) {
        // No subscriber (no realtime transport running) is fine.
        let _ = self.events.send(event);
    }

    /// Emits `Deactivated` for a session that just ended, unless no one ever
    /// joined it: then there is no one to tell, and a mass expiry of such
    /// sessions would only flood the realtime dispatcher.
    fn emit_ended(&self, token: &str, session: &Session) {
        if session.users.is_empty() {
            return;
        }
        if let Some(ended) = session.ended {
            self.emit(SessionEvent::Deactivated {
                session: token.to_owned(),
                times: session.stop_response(ended),
            });
        }
    }

    pub fn live_count(&self) -> usize {
        self.lock().live
    }

    /// Creates an idle session: its token and customer key. `accepting` is
    /// false while the node drains.
    pub fn create(&self, caller: &Caller, accepting: bool) -> Result<Created, SessionError> {
        if !accepting {
            return Err(SessionError::Draining);
        }
        self.access
            .take_create(caller.addr_key())
            .map_err(SessionError::TooManyCreates)?;
        let mut inner = self.lock();
        if inner.live >= self.limits.max_sessions {
            return Err(SessionError::CapacityExhausted);
        }
        // With at most `max_sessions` taken out of a partition a collision is
        // rare; the loop retries only on one, and gives up rather than spin.
        let Inner {
            sessions, tokens, ..
        } = &mut *inner;
        let token = (0..MAX_TOKEN_DRAWS)
            .map(|_| tokens.next_candidate())
            .find(|candidate| !sessions.contains_key(candidate));
        let Some(token) = token else {
            tracing::warn!("no free session token after {MAX_TOKEN_DRAWS} draws");
            return Err(SessionError::CapacityExhausted);
        };
        let customer_key = format!("{:032x}", rand::rng().random::<u128>());
        inner.sessions.insert(
            token.clone(),
            Session {
                customer_key: customer_key.clone(),
                auth_failures: 0,
                activation_ms: None,
                ended: None,
                users: Vec::new(),
                next_user_id: 1,
                last_seen: Instant::now(),
            },
        );
        inner.live += 1;
        self.publish_live(&inner);
        Ok(Created {
            token,
            customer_key,
        })
    }

    /// Get Session: whether the session is live (counted as activity).
    pub fn get(&self, caller: &Caller, session_token: &str) -> Result<(), SessionError> {
        self.probing(caller, || self.touch(session_token))
    }

    /// Checks that a session is live, and counts the request as activity.
    /// For a participant's own traffic (no budget: it already joined).
    pub fn touch(&self, session_token: &str) -> Result<(), SessionError> {
        let mut inner = self.lock();
        let session = self.live_session(&mut inner, session_token)?;
        session.last_seen = Instant::now();
        Ok(())
    }

    /// Stops the session of a controller's user token. Stopping an ended (and
    /// still retained) session answers the times it ended with.
    pub fn stop(&self, caller: &Caller, user_token: &str) -> Result<StopResponse, SessionError> {
        self.probing(caller, || self.end_by(user_token, true))
    }

    /// A party leaves, which ends the session for everyone (the vendor's
    /// rule: a session ends when the controller stops it or a party exits).
    pub fn exit(&self, caller: &Caller, user_token: &str) -> Result<StopResponse, SessionError> {
        self.probing(caller, || self.end_by(user_token, false))
    }

    /// When a live or retained session became active, if it did.
    pub fn activation_time(&self, session_token: &str) -> Option<u64> {
        self.lock().sessions.get(session_token)?.activation_ms
    }

    /// The user a token names: its session token, id and role.
    pub fn user(&self, user_token: &str) -> Result<(String, u32, Role), SessionError> {
        let session_token =
            token::session_of_user_token(user_token).ok_or(SessionError::UserNotFound)?;
        let inner = self.lock();
        let user = inner
            .sessions
            .get(session_token)
            .and_then(|s| s.users.iter().find(|u| same_secret(&u.token, user_token)))
            .ok_or(SessionError::UserNotFound)?;
        Ok((session_token.to_owned(), user.id, user.role))
    }

    fn end_by(
        &self,
        user_token: &str,
        controller_only: bool,
    ) -> Result<StopResponse, SessionError> {
        let session_token =
            token::session_of_user_token(user_token).ok_or(SessionError::UserNotFound)?;
        let mut inner = self.lock();
        let Inner { sessions, live, .. } = &mut *inner;
        let session = sessions
            .get_mut(session_token)
            .ok_or(SessionError::UserNotFound)?;
        let user = session
            .users
            .iter()
            .find(|u| same_secret(&u.token, user_token))
            .ok_or(SessionError::UserNotFound)?;
        if controller_only && user.role != Role::Controller {
            return Err(SessionError::NotController);
        }
        let now = Instant::now();
        if session.expire_if_idle(now, self.limits.idle_timeout) {
            *live -= 1;
            self.emit_ended(session_token, session);
        }
        let response = match session.ended {
            Some(ended) if now.duration_since(ended.at) >= self.limits.retention => {
                Err(SessionError::UserNotFound)
            }
            Some(ended) => Ok(session.stop_response(ended)),
            None => {
                session.ended = Some(Ended {
                    deactivation_ms: now_ms(),
                    at: now,
                });
                *live -= 1;
                self.emit_ended(session_token, session);
                session
                    .ended
                    .map(|ended| session.stop_response(ended))
                    .ok_or(SessionError::UserNotFound)
            }
        };
        self.publish_live(&inner);
        response
    }

    /// Ends idle sessions and forgets ended ones past their retention.
    /// Returns how many sessions are still held (live or retained).
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let SessionLimits {
            idle_timeout,
            retention,
            ..
        } = self.limits;
        let mut inner = self.lock();
        let Inner { sessions, live, .. } = &mut *inner;
        sessions.retain(|token, session| {
            if session.expire_if_idle(now, idle_timeout) {
                *live -= 1;
                self.emit_ended(token, session);
            }
            match session.ended {
                Some(ended) => now.duration_since(ended.at) < retention,
                None => true,
            }
        });
        let held = sessions.len();
        self.publish_live(&inner);
        held
    }

    /// The session if it is live. Ended (or idle-expired) sessions still
    /// retained answer [`SessionError::Ended`].
    fn live_session<'a>(
        &self,
        inner: &'a mut Inner,
        session_token: &str,
    ) -> Result<&'a mut Session, SessionError> {
        let Inner { sessions, live, .. } = inner;
        let session = sessions
            .get_mut(session_token)
            .ok_or(SessionError::SessionNotFound)?;
        let now = Instant::now();
        if session.expire_if_idle(now, self.limits.idle_timeout) {
            *live -= 1;
            self.live_tx.send_replace(*live);
            self.emit_ended(session_token, session);
        }
        match session.ended {
            Some(ended) if now.duration_since(ended.at) >= self.limits.retention => {
                Err(SessionError::SessionNotFound)
            }
            Some(_) => Err(SessionError::Ended),
            None => Ok(session),
        }
    }

    fn publish_live(&self, inner: &Inner) {
        self.live_tx.send_if_modified(|current| {
            let changed = *current != inner.live;
            *current = inner.live;
            changed
        });
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a session half-updated in
        // a way later requests could not cope with, so a poisoned lock is used
        // as it is rather than turning every later request into a 500.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests;
