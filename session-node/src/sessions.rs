//! The session core: every rule about live sessions, and nothing about HTTP.
//!
//! A session is born idle (customer side only), becomes active when the first
//! agent or controller joins, and ends when the controller stops it or when it
//! sees no request for the idle timeout. An ended session is *retained* for a
//! while so that a repeated Stop answers the same times and Get/Join answer
//! 410 (gone) rather than 404 (never existed); then it is forgotten.
//!
//! The REST handlers (and later the CometD service channels) call into
//! [`Sessions`]; keeping the rules here means a second transport cannot
//! disagree with the first.
//!
//! Time: idle and retention deadlines use [`tokio::time::Instant`] so tests can
//! pause and advance the clock; activation and deactivation stamps are wall
//! clock UTC milliseconds, as the contract reports them.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use shared_types::api::{JoinResponse, Role, StopResponse, UserInfo};
use shared_types::token;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

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
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            max_users_per_session: 32,
            idle_timeout: Duration::from_secs(30 * 60),
            retention: Duration::from_secs(10 * 60),
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

/// Why a session operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    SessionNotFound,
    UserNotFound,
    Ended,
    NotController,
    SessionFull { max_users: usize },
    Draining,
    CapacityExhausted,
}

#[derive(Debug)]
struct User {
    id: u32,
    role: Role,
    name: Option<String>,
    /// The whole user token (`<session>-<secret>`).
    token: String,
}

#[derive(Debug)]
struct Session {
    activation_ms: Option<u64>,
    /// Set when the session ended; from then on it is only retained.
    ended: Option<Ended>,
    users: Vec<User>,
    next_user_id: u32,
    last_seen: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Ended {
    deactivation_ms: u64,
    at: Instant,
}

impl Session {
    fn users_info(&self) -> Vec<UserInfo> {
        self.users
            .iter()
            .map(|u| UserInfo {
                user_id: u.id,
                role: u.role,
                name: u.name.clone(),
            })
            .collect()
    }

    fn stop_response(&self, ended: Ended) -> StopResponse {
        StopResponse {
            activation_time: self.activation_ms,
            deactivation_time: ended.deactivation_ms,
        }
    }

    /// Ends the session if it has been idle too long; returns whether it was
    /// live before and is ended now.
    fn expire_if_idle(&mut self, now: Instant, idle_timeout: Duration) -> bool {
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

/// All sessions of this node.
#[derive(Debug)]
pub struct Sessions {
    limits: SessionLimits,
    inner: Mutex<Inner>,
    /// Count of live (not ended) sessions, watched by the drain.
    live_tx: watch::Sender<usize>,
    /// What happened to sessions, for the realtime channel.
    events: broadcast::Sender<SessionEvent>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    live: usize,
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        let (live_tx, _) = watch::channel(0);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self {
            limits,
            inner: Mutex::new(Inner::default()),
            live_tx,
            events,
        }
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

    /// Creates an idle session and returns its token. `accepting` is false
    /// while the node drains.
    pub fn create(&self, accepting: bool) -> Result<String, SessionError> {
        if !accepting {
            return Err(SessionError::Draining);
        }
        let mut inner = self.lock();
        if inner.live >= self.limits.max_sessions {
            return Err(SessionError::CapacityExhausted);
        }
        // Nine random digits from the thread-local CSPRNG (ChaCha, seeded from
        // the OS). With at most `max_sessions` taken out of 10^9 a collision is
        // rare, and the loop only retries on one.
        let mut rng = rand::rng();
        let token = loop {
            let candidate = format!("{:09}", rng.random_range(0..1_000_000_000u32));
            if !inner.sessions.contains_key(&candidate) {
                break candidate;
            }
        };
        inner.sessions.insert(
            token.clone(),
            Session {
                activation_ms: None,
                ended: None,
                users: Vec::new(),
                next_user_id: 1,
                last_seen: Instant::now(),
            },
        );
        inner.live += 1;
        self.publish_live(&inner);
        Ok(token)
    }

    /// Checks that a session is live, and counts the request as activity.
    pub fn touch(&self, session_token: &str) -> Result<(), SessionError> {
        let mut inner = self.lock();
        let session = self.live_session(&mut inner, session_token)?;
        session.last_seen = Instant::now();
        Ok(())
    }

    /// Adds a user to a live session. The first agent-side user activates it.
    pub fn join(
        &self,
        session_token: &str,
        role: Role,
        name: Option<String>,
    ) -> Result<JoinResponse, SessionError> {
        let mut inner = self.lock();
        let max_users = self.limits.max_users_per_session;
        let session = self.live_session(&mut inner, session_token)?;
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
        session.users.push(User {
            id,
            role,
            name: name.clone(),
            token: user_token.clone(),
        });
        let response = JoinResponse {
            user_token,
            user_id: id,
            users: session.users_info(),
        };
        self.emit(SessionEvent::Joined {
            session: session_token.to_owned(),
            user: UserInfo {
                user_id: id,
                role,
                name,
            },
        });
        if let Some(activation_time) = activated {
            self.emit(SessionEvent::Activated {
                session: session_token.to_owned(),
                activation_time,
            });
        }
        Ok(response)
    }

    /// Stops the session of a controller's user token. Stopping an ended (and
    /// still retained) session answers the times it ended with.
    pub fn stop(&self, user_token: &str) -> Result<StopResponse, SessionError> {
        self.end_by(user_token, true)
    }

    /// A party leaves, which ends the session for everyone (the vendor's
    /// rule: a session ends when the controller stops it or a party exits).
    pub fn exit(&self, user_token: &str) -> Result<StopResponse, SessionError> {
        self.end_by(user_token, false)
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
            .and_then(|s| s.users.iter().find(|u| u.token == user_token))
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
        let Inner { sessions, live } = &mut *inner;
        let session = sessions
            .get_mut(session_token)
            .ok_or(SessionError::UserNotFound)?;
        let user = session
            .users
            .iter()
            .find(|u| u.token == user_token)
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
        let Inner { sessions, live } = &mut *inner;
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
        let Inner { sessions, live } = inner;
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

/// Wall-clock UTC milliseconds since the epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(SessionLimits {
            max_sessions: 3,
            max_users_per_session: 2,
            idle_timeout: Duration::from_secs(60),
            retention: Duration::from_secs(600),
        })
    }

    #[test]
    fn tokens_are_nine_digits_and_unique() {
        let s = Sessions::new(SessionLimits::default());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let t = s.create(true).unwrap();
            assert!(token::is_session_token(&t), "{t}");
            assert!(seen.insert(t));
        }
        assert_eq!(s.live_count(), 1000);
    }

    #[test]
    fn first_agent_side_join_activates() {
        let s = sessions();
        let t = s.create(true).unwrap();
        let customer = s.join(&t, Role::Customer, None).unwrap();
        assert_eq!(customer.user_id, 1);
        let controller = s.join(&t, Role::Controller, Some("C".into())).unwrap();
        assert_eq!(controller.users.len(), 2);
        let stopped = s.stop(&controller.user_token).unwrap();
        assert!(stopped.activation_time.is_some());
        assert!(stopped.deactivation_time >= stopped.activation_time.unwrap());
        assert_eq!(s.stop(&controller.user_token).unwrap(), stopped);
        assert_eq!(s.touch(&t), Err(SessionError::Ended));
        assert_eq!(
            s.join(&t, Role::Agent, None).unwrap_err(),
            SessionError::Ended
        );
        assert_eq!(
            s.stop(&customer.user_token).unwrap_err(),
            SessionError::NotController
        );
    }

    #[test]
    fn limits_are_enforced() {
        let s = sessions();
        let t = s.create(true).unwrap();
        s.create(true).unwrap();
        s.create(true).unwrap();
        assert_eq!(s.create(true), Err(SessionError::CapacityExhausted));
        assert_eq!(s.create(false), Err(SessionError::Draining));
        s.join(&t, Role::Customer, None).unwrap();
        s.join(&t, Role::Agent, None).unwrap();
        assert_eq!(
            s.join(&t, Role::Agent, None).unwrap_err(),
            SessionError::SessionFull { max_users: 2 }
        );
    }

    #[test]
    fn forged_user_tokens_are_unknown() {
        let s = sessions();
        let t = s.create(true).unwrap();
        let real = s.join(&t, Role::Controller, None).unwrap().user_token;
        let forged = token::user_token(&t, 42);
        assert_ne!(real, forged);
        assert_eq!(s.stop(&forged), Err(SessionError::UserNotFound));
        assert_eq!(s.stop("garbage"), Err(SessionError::UserNotFound));
    }

    #[test]
    fn events_tell_joined_activated_deactivated() {
        let s = sessions();
        let mut events = s.subscribe_events();
        let t = s.create(true).unwrap();
        s.join(&t, Role::Customer, None).unwrap();
        let controller = s.join(&t, Role::Controller, None).unwrap();
        s.join(&t, Role::Agent, None).unwrap_err(); // full: no event
        let stopped = s.exit(&controller.user_token).unwrap();
        let got: Vec<SessionEvent> = std::iter::from_fn(|| events.try_recv().ok()).collect();
        assert!(
            matches!(&got[0], SessionEvent::Joined { user, .. } if user.role == Role::Customer)
        );
        assert!(
            matches!(&got[1], SessionEvent::Joined { user, .. } if user.role == Role::Controller)
        );
        assert!(matches!(&got[2], SessionEvent::Activated { .. }));
        assert_eq!(
            got[3],
            SessionEvent::Deactivated {
                session: t.clone(),
                times: stopped
            }
        );
        assert_eq!(got.len(), 4);
        assert_eq!(
            s.user(&controller.user_token).unwrap(),
            (t, 2, Role::Controller)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_expire_then_are_forgotten() {
        let s = sessions();
        let t = s.create(true).unwrap();
        let mut live = s.watch_live();
        tokio::time::advance(Duration::from_secs(59)).await;
        s.touch(&t).unwrap();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(s.sweep(), 1);
        assert_eq!(s.live_count(), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(s.sweep(), 1, "ended but retained");
        assert_eq!(s.live_count(), 0);
        assert_eq!(*live.borrow_and_update(), 0);
        assert_eq!(s.touch(&t), Err(SessionError::Ended));
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(s.touch(&t), Err(SessionError::SessionNotFound));
        assert_eq!(s.sweep(), 0);
    }
}
