//! The realtime channel: a Bayeux 1.0 (CometD) server.
//!
//! - this module: [`Bayeux`], the engine both transports share: the client
//!   registry, meta channels (handshake, connect, subscribe, unsubscribe,
//!   disconnect), per-client delivery queues, the session data channels, and
//!   fan-out of session events (joined, activated, deactivated).
//! - [`services`]: the `/service/session/*` channels, which call the same
//!   session core as the REST resources ([`crate::sessions`]).
//! - the transports (long-polling and WebSocket) are HTTP and live in
//!   [`crate::api::cometd`]; they hand batches to [`Bayeux::handle`].
//!
//! Delivery order: every message for a client goes through that client's one
//! queue, under one lock, so a participant sees messages in the order the
//! node accepted them. Long-polling delivers only on `/meta/connect` answers
//! (two concurrent HTTP answers could otherwise overtake each other);
//! WebSocket delivers as soon as a message is queued.
//!
//! Bounds, each with its Bayeux error and its `node_rejected_total` reason:
//! clients per node (`503::too many clients`), clients per address
//! (`429::too many clients from this address`), handshakes never followed by
//! a connect (swept after `handshake_timeout`), and each client's queue by
//! count and bytes. A publish that would overfill a receiver's queue is
//! refused to its sender (`429::…`); receivers are never dropped for what
//! someone else sent.

mod registry;
pub mod services;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use access::ClientKey;

use rand::Rng;
use serde_json::{json, Value};
use shared_types::bayeux::{
    self, Message, LONG_POLLING, META_CONNECT, META_DISCONNECT, META_HANDSHAKE, META_SUBSCRIBE,
    META_UNSUBSCRIBE, WEBSOCKET,
};
use shared_types::names::SESSION_SERVER;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::readiness::Readiness;
use crate::sessions::access::Credential;
use crate::sessions::{SessionEvent, Sessions};

pub(crate) use self::registry::Participant;
use self::registry::{wire_size, Client, Registry};

/// Timings and bounds of the Bayeux server.
#[derive(Debug, Clone)]
pub struct BayeuxConfig {
    /// How long a `/meta/connect` is held when nothing is to be delivered.
    pub timeout: Duration,
    /// How long a client may go without a `/meta/connect` before it is
    /// swept (a vanished browser tab).
    pub max_interval: Duration,
    /// Clients one node holds at most; more handshakes are refused.
    pub max_clients: usize,
    /// Clients one address holds at most.
    pub max_clients_per_address: usize,
    /// A client that handshook and sent no `/meta/connect` within this is
    /// forgotten.
    pub handshake_timeout: Duration,
    /// Messages waiting for one client at most; publishes that would go
    /// beyond are refused to their sender.
    pub max_queue: usize,
    /// Bytes (of JSON) waiting for one client at most, likewise.
    pub max_queue_bytes: usize,
}

impl Default for BayeuxConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_interval: Duration::from_secs(10),
            max_clients: 100_000,
            max_clients_per_address: 1_000,
            handshake_timeout: Duration::from_secs(5),
            max_queue: 1_000,
            max_queue_bytes: 2 * 1024 * 1024,
        }
    }
}

/// Which transport a batch came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    LongPolling,
    WebSocket,
}

/// What handling a batch produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Replies to send now.
    pub replies: Vec<Message>,
    /// A `/meta/connect` to answer later (held), if the batch had one.
    pub connect: Option<HeldConnect>,
    /// The batch handshook, created or joined a session: the answer should
    /// carry the `gcbSessionServer` cookie.
    pub stick: bool,
    /// The client the batch spoke for, once known.
    pub client_id: Option<String>,
}

/// A `/meta/connect` waiting for something to deliver or its timeout.
#[derive(Debug)]
pub struct HeldConnect {
    pub client_id: String,
    reply: Message,
    generation: u64,
    pub deadline: Instant,
}

/// Marks a held long-poll as no longer held when its waiting is dropped
/// (abandoned or finished); `finish_connect` does the same, so running both
/// is harmless.
struct ReleaseOnDrop<'a> {
    bayeux: &'a Bayeux,
    client_id: String,
    generation: u64,
}

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.bayeux.lock().clients.get_mut(&self.client_id) {
            if client.connect_generation == self.generation && client.held {
                client.held = false;
                client.last_seen = Instant::now();
            }
        }
    }
}

/// The Bayeux server of this node.
#[derive(Debug)]
pub struct Bayeux {
    config: BayeuxConfig,
    registry: Mutex<Registry>,
    /// Recent `402::Unknown client` answers to connects, per address: the
    /// advised re-handshake interval grows with them.
    unknown_streaks: moka::sync::Cache<ClientKey, u32>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) readiness: Readiness,
    pub(crate) node_name: String,
}

fn error_reply(message: &Message, error: &str) -> Message {
    Message {
        error: Some(error.to_owned()),
        client_id: message.client_id.clone(),
        ..message.reply(false)
    }
}

/// How long a run of `402`s to one address is remembered.
const UNKNOWN_STREAK_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose `402` runs are remembered at most.
const UNKNOWN_STREAK_CAPACITY: u64 = 100_000;
/// The advised re-handshake interval after the second `402` in a row, doubled
/// with each further one up to [`MAX_REHANDSHAKE_INTERVAL`].
const FIRST_REHANDSHAKE_INTERVAL: Duration = Duration::from_millis(500);
const MAX_REHANDSHAKE_INTERVAL: Duration = Duration::from_secs(30);

/// The advised interval after `streak` `402`s in a row: 0 for the first (a
/// node restart, say: handshake again at once), then 0.5 s, 1 s, 2 s … 30 s,
/// so a client that keeps landing on the wrong node does not storm it.
fn rehandshake_interval(streak: u32) -> Duration {
    match streak {
        0 | 1 => Duration::ZERO,
        n => FIRST_REHANDSHAKE_INTERVAL
            .saturating_mul(1 << (n - 2).min(16))
            .min(MAX_REHANDSHAKE_INTERVAL),
    }
}

fn unknown_client(message: &Message) -> Message {
    Message {
        advice: Some(json!({"reconnect": "handshake", "interval": 0})),
        ..error_reply(message, "402::Unknown client")
    }
}

impl Bayeux {
    pub fn new(
        sessions: Arc<Sessions>,
        readiness: Readiness,
        node_name: String,
        config: BayeuxConfig,
    ) -> Self {
        Self {
            config,
            registry: Mutex::new(Registry::default()),
            unknown_streaks: moka::sync::Cache::builder()
                .max_capacity(UNKNOWN_STREAK_CAPACITY)
                .time_to_idle(UNKNOWN_STREAK_WINDOW)
                .build(),
            sessions,
            readiness,
            node_name,
        }
    }

    /// `402::Unknown client` to a connect from `peer`, with an interval that
    /// grows while that address keeps getting them.
    fn unknown_on_connect(&self, message: &Message, peer: IpAddr) -> Message {
        let key = ClientKey::addr(peer);
        let streak = self
            .unknown_streaks
            .get(&key)
            .unwrap_or(0)
            .saturating_add(1);
        self.unknown_streaks.insert(key, streak);
        let interval = rehandshake_interval(streak).as_millis() as u64;
        Message {
            advice: Some(json!({"reconnect": "handshake", "interval": interval})),
            ..unknown_client(message)
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Registry> {
        // See `Sessions::lock`: a poisoned registry is still usable.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn advice(&self) -> Value {
        json!({
            "reconnect": "retry",
            "interval": 0,
            "timeout": self.config.timeout.as_millis() as u64,
        })
    }

    pub fn client_count(&self) -> usize {
        self.lock().clients.len()
    }

    /// Handles every message of a batch that came from address `peer`. A
    /// `/meta/connect` is not answered here but handed back to be held by
    /// the transport.
    pub fn handle(&self, batch: Vec<Message>, transport: Transport, peer: IpAddr) -> Outcome {
        let mut outcome = Outcome::default();
        let mut handshakes = 0;
        for message in batch {
            if let Some(id) = &message.client_id {
                outcome.client_id.get_or_insert_with(|| id.clone());
            }
            let reply = match message.channel.as_str() {
                // A client handshakes once; a batch of thousands of
                // handshakes is a flood, not a client.
                META_HANDSHAKE if handshakes > 0 => {
                    Some(error_reply(&message, "400::one handshake per batch"))
                }
                META_HANDSHAKE => {
                    handshakes += 1;
                    let reply = self.handshake(&message, peer);
                    if reply.successful == Some(true) {
                        outcome.stick = true;
                        outcome.client_id = reply.client_id.clone();
                    }
                    Some(reply)
                }
                META_CONNECT => match self.connect(&message, transport, peer) {
                    Ok(held) => {
                        outcome.connect = Some(held);
                        None
                    }
                    Err(reply) => Some(*reply),
                },
                META_SUBSCRIBE => Some(self.subscribe(&message, true)),
                META_UNSUBSCRIBE => Some(self.subscribe(&message, false)),
                META_DISCONNECT => Some(self.disconnect(&message)),
                "" => Some(error_reply(&message, "400::channel missing")),
                channel if channel.starts_with("/meta/") => {
                    Some(error_reply(&message, "400::unknown meta channel"))
                }
                channel if channel.starts_with("/service/") => {
                    let (replies, stick) = services::handle(self, &message, peer);
                    outcome.stick |= stick;
                    outcome.replies.extend(replies);
                    None
                }
                _ => Some(self.publish(&message)),
            };
            outcome.replies.extend(reply);
        }
        outcome
    }

    fn handshake(&self, message: &Message, peer: IpAddr) -> Message {
        if message
            .version
            .as_deref()
            .is_some_and(|v| !v.starts_with('1'))
        {
            return error_reply(message, "400::unsupported version");
        }
        let offered = message.supported_connection_types.as_deref().unwrap_or(&[]);
        if !offered.iter().any(|t| t == WEBSOCKET || t == LONG_POLLING) {
            return Message {
                supported_connection_types: Some(vec![WEBSOCKET.into(), LONG_POLLING.into()]),
                ..error_reply(message, "400::no supported connection type")
            };
        }
        let addr = ClientKey::addr(peer);
        let agent_token = message
            .ext
            .as_ref()
            .and_then(|ext| ext.get(services::AGENT_TOKEN_FIELD))
            .and_then(Value::as_str)
            .map(Credential::new);
        let mut registry = self.lock();
        if registry.clients.len() >= self.config.max_clients {
            metrics::counter!("node_rejected_total", "reason" => "cometd_too_many_clients")
                .increment(1);
            return error_reply(message, "503::too many clients");
        }
        let from_addr = registry.per_addr.get(&addr).copied().unwrap_or(0);
        if from_addr >= self.config.max_clients_per_address {
            metrics::counter!("node_rejected_total", "reason" => "cometd_clients_per_address")
                .increment(1);
            return error_reply(message, "429::too many clients from this address");
        }
        *registry.per_addr.entry(addr.clone()).or_insert(0) += 1;
        let client_id = bayeux::client_id(&self.node_name, rand::rng().random::<u128>());
        let now = Instant::now();
        registry.clients.insert(
            client_id.clone(),
            Client {
                queue: Vec::new(),
                queued_bytes: 0,
                addr,
                agent_token,
                connected: false,
                created: now,
                notify: Arc::new(Notify::new()),
                subscriptions: HashSet::new(),
                participant: None,
                last_seen: now,
                held: false,
                connect_generation: 0,
            },
        );
        Message {
            client_id: Some(client_id),
            version: Some("1.0".into()),
            supported_connection_types: Some(vec![WEBSOCKET.into(), LONG_POLLING.into()]),
            advice: Some(self.advice()),
            ext: Some(json!({ SESSION_SERVER: self.node_name })),
            ..message.reply(true)
        }
    }

    fn connect(
        &self,
        message: &Message,
        transport: Transport,
        peer: IpAddr,
    ) -> Result<HeldConnect, Box<Message>> {
        let Some(client_id) = message.client_id.as_deref() else {
            return Err(Box::new(self.unknown_on_connect(message, peer)));
        };
        let expected = match transport {
            Transport::LongPolling => LONG_POLLING,
            Transport::WebSocket => WEBSOCKET,
        };
        if message
            .connection_type
            .as_deref()
            .is_some_and(|t| t != expected)
        {
            return Err(Box::new(error_reply(
                message,
                "400::connection type does not match the transport",
            )));
        }
        let mut registry = self.lock();
        let Some(client) = registry.clients.get_mut(client_id) else {
            drop(registry);
            return Err(Box::new(self.unknown_on_connect(message, peer)));
        };
        self.unknown_streaks.invalidate(&ClientKey::addr(peer));
        // The first connect is answered at once, whatever its advice says:
        // clients that do not send `advice: {timeout: 0}` on it (older ones,
        // aiocometd) would otherwise wait the whole timeout to complete their
        // handshake (cometd-java's `AbstractHttpTransport` does the same).
        let first = !client.connected;
        client.held = true;
        client.connected = true;
        client.last_seen = Instant::now();
        client.connect_generation += 1;
        // Release an older connect of the same client still being held.
        client.notify.notify_waiters();
        let touch = client.participant.as_ref().map(|p| p.session.clone());
        let generation = client.connect_generation;
        drop(registry);
        if let Some(session) = touch {
            // A connected participant keeps its session from idling out.
            let _ = self.sessions.touch(&session);
        }
        let wants_wait = if first {
            Duration::ZERO
        } else {
            message
                .advice
                .as_ref()
                .and_then(|a| a.get("timeout"))
                .and_then(Value::as_u64)
                .map(Duration::from_millis)
                .unwrap_or(self.config.timeout)
                .min(self.config.timeout)
        };
        Ok(HeldConnect {
            client_id: client_id.to_owned(),
            reply: Message {
                client_id: Some(client_id.to_owned()),
                advice: Some(self.advice()),
                ..message.reply(true)
            },
            generation,
            deadline: Instant::now() + wants_wait,
        })
    }

    /// Long-polling: waits until something can be delivered to the client, a
    /// newer connect replaces this one, or the deadline; then answers with the
    /// queued messages followed by the connect reply.
    pub async fn hold(&self, held: HeldConnect) -> Vec<Message> {
        let Some(notify) = self
            .lock()
            .clients
            .get(&held.client_id)
            .map(|c| Arc::clone(&c.notify))
        else {
            return vec![unknown_client(&held.reply)];
        };
        // If the long-poll is abandoned while waiting (the browser tab
        // closed, the proxy dropped the request), the client must not stay
        // "held" for ever: the sweeper would never forget it.
        let release = ReleaseOnDrop {
            bayeux: self,
            client_id: held.client_id.clone(),
            generation: held.generation,
        };
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let registry = self.lock();
                match registry.clients.get(&held.client_id) {
                    None => break,
                    Some(c) if !c.queue.is_empty() || c.connect_generation != held.generation => {
                        break
                    }
                    Some(_) => {}
                }
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(held.deadline) => break,
            }
        }
        drop(release);
        self.finish_connect(held)
    }

    /// Answers a held connect now: the queued messages, then the reply.
    pub fn finish_connect(&self, held: HeldConnect) -> Vec<Message> {
        let mut registry = self.lock();
        let Some(client) = registry.clients.get_mut(&held.client_id) else {
            return vec![unknown_client(&held.reply)];
        };
        let mut out = Vec::new();
        if client.connect_generation == held.generation {
            out = Registry::take_queue(client);
            client.held = false;
            client.last_seen = Instant::now();
        }
        out.push(held.reply);
        out
    }

    /// Takes whatever is queued for a client (WebSocket delivers at once).
    pub fn drain_queue(&self, client_id: &str) -> Vec<Message> {
        self.lock()
            .clients
            .get_mut(client_id)
            .map(Registry::take_queue)
            .unwrap_or_default()
    }

    /// The client's wake-up handle, if it exists.
    pub fn notifier(&self, client_id: &str) -> Option<Arc<Notify>> {
        self.lock()
            .clients
            .get(client_id)
            .map(|c| Arc::clone(&c.notify))
    }

    /// A WebSocket carrying this client opened or closed: an open socket
    /// counts as a held connect for the sweeper.
    pub fn set_attached(&self, client_id: &str, attached: bool) {
        if let Some(client) = self.lock().clients.get_mut(client_id) {
            client.held = attached;
            client.last_seen = Instant::now();
        }
    }

    fn subscribe(&self, message: &Message, subscribe: bool) -> Message {
        let Some(client_id) = message.client_id.as_deref() else {
            return unknown_client(message);
        };
        let channels: Vec<String> = match &message.subscription {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => return error_reply(message, "400::subscription missing"),
        };
        let mut registry = self.lock();
        let participant = registry.participant(client_id).cloned();
        let Some(client) = registry.clients.get_mut(client_id) else {
            return unknown_client(message);
        };
        for channel in &channels {
            if channel.starts_with("/service/") {
                continue; // service channels are delivered without subscribing
            }
            let allowed = bayeux::session_of_data_channel(channel)
                .is_some_and(|s| participant.as_ref().is_some_and(|p| p.session == s));
            if subscribe && !allowed {
                tracing::warn!(client = client_id, channel, "subscription denied");
                return Message {
                    subscription: message.subscription.clone(),
                    ..error_reply(
                        message,
                        "403::subscription denied: not a participant of this session",
                    )
                };
            }
            if subscribe {
                client.subscriptions.insert(channel.clone());
            } else {
                client.subscriptions.remove(channel);
            }
        }
        Message {
            client_id: Some(client_id.to_owned()),
            subscription: message.subscription.clone(),
            ..message.reply(true)
        }
    }

    fn disconnect(&self, message: &Message) -> Message {
        let Some(client_id) = message.client_id.as_deref() else {
            return unknown_client(message);
        };
        let mut registry = self.lock();
        if !registry.clients.contains_key(client_id) {
            return unknown_client(message);
        }
        registry.remove(client_id);
        Message {
            client_id: Some(client_id.to_owned()),
            ..message.reply(true)
        }
    }

    /// A publish to a broadcast channel: only a session's data channel, only
    /// by its participants, delivered to every other subscribed participant.
    fn publish(&self, message: &Message) -> Message {
        let Some(client_id) = message.client_id.as_deref() else {
            return unknown_client(message);
        };
        let mut registry = self.lock();
        if !registry.clients.contains_key(client_id) {
            return unknown_client(message);
        }
        let Some(session) = bayeux::session_of_data_channel(&message.channel) else {
            tracing::warn!(client = client_id, channel = %message.channel, "publish denied: unknown channel");
            return error_reply(message, "403::publish denied: unknown channel");
        };
        if registry
            .participant(client_id)
            .is_none_or(|p| p.session != session)
        {
            tracing::warn!(client = client_id, channel = %message.channel, "publish denied: not a participant");
            return error_reply(
                message,
                "403::publish denied: not a participant of this session",
            );
        }
        if let Err(e) = self.sessions.touch(session) {
            return error_reply(message, &services::error_string(e));
        }
        let delivery = Message::delivery(
            message.channel.clone(),
            message.data.clone().unwrap_or(Value::Null),
        );
        let bytes = wire_size(&delivery);
        let recipients: Vec<String> = registry
            .by_session
            .get(session)
            .into_iter()
            .flatten()
            .filter(|id| id.as_str() != client_id)
            .filter(|id| {
                registry
                    .clients
                    .get(id.as_str())
                    .is_some_and(|c| c.subscriptions.contains(&message.channel))
            })
            .cloned()
            .collect();
        // All or nothing: a receiver that cannot take more refuses the
        // publish to its sender, and no one's queue or client is touched.
        if !recipients
            .iter()
            .all(|id| registry.has_room(id, bytes, &self.config))
        {
            metrics::counter!("node_rejected_total", "reason" => "cometd_receiver_queue_full")
                .increment(1);
            tracing::debug!(client = client_id, channel = %message.channel, "publish refused: a receiver's queue is full");
            return Message {
                client_id: Some(client_id.to_owned()),
                ..error_reply(
                    message,
                    "429::a receiver has too many messages waiting; publish more slowly",
                )
            };
        }
        for id in recipients {
            registry.push(&id, delivery.clone(), bytes);
        }
        Message {
            client_id: Some(client_id.to_owned()),
            ..message.reply(true)
        }
    }

    /// Tells a session's participants what happened to it.
    pub fn on_event(&self, event: &SessionEvent) {
        let (session, channel, data, skip_user) = match event {
            SessionEvent::Joined { session, user } => (
                session,
                bayeux::SERVICE_JOINED,
                json!(user),
                Some(user.user_id),
            ),
            SessionEvent::Activated {
                session,
                activation_time,
            } => (
                session,
                bayeux::SERVICE_ACTIVATED,
                json!({ "activationTime": activation_time }),
                None,
            ),
            SessionEvent::Deactivated { session, times } => {
                (session, bayeux::SERVICE_DEACTIVATED, json!(times), None)
            }
        };
        let mut registry = self.lock();
        let recipients: Vec<String> = registry
            .by_session
            .get(session)
            .into_iter()
            .flatten()
            .filter(|id| {
                registry
                    .participant(id)
                    .is_some_and(|p| Some(p.user_id) != skip_user)
            })
            .cloned()
            .collect();
        let delivery = Message::delivery(channel, data);
        for id in recipients {
            registry.enqueue_event(&id, delivery.clone(), self.config.max_queue);
        }
    }

    pub(crate) fn max_queue(&self) -> usize {
        self.config.max_queue
    }

    /// Forgets clients that have not connected for `max_interval`, and
    /// handshakes never followed by a connect after `handshake_timeout`.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut registry = self.lock();
        let config = &self.config;
        let gone: Vec<String> = registry
            .clients
            .iter()
            .filter(|(_, c)| {
                let vanished = !c.held && now.duration_since(c.last_seen) > config.max_interval;
                let never_connected =
                    !c.connected && now.duration_since(c.created) > config.handshake_timeout;
                vanished || never_connected
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            tracing::debug!(client = %id, "sweeping a vanished client");
            registry.remove(id);
        }
        gone.len()
    }
}

#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod tests;
