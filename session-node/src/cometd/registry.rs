//! The client registry: every Bayeux client of the node, its delivery
//! queue (bounded by count and bytes), its subscriptions and session, and
//! the per-address counts the handshake cap reads. Always used under the
//! engine's one lock ([`super::Bayeux::lock`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use access::ClientKey;
use shared_types::bayeux::Message;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::BayeuxConfig;
use crate::sessions::access::Credential;

/// Server events (joined, activated, deactivated) a full queue still takes
/// before its client is dropped: they are few and small, and a client that
/// lets this many more pile up has gone.
const EVENT_HEADROOM: usize = 64;

/// A joined user, as a Bayeux client.
#[derive(Debug, Clone)]
pub(crate) struct Participant {
    pub session: String,
    pub user_id: u32,
}

#[derive(Debug)]
pub(super) struct Client {
    pub(super) queue: Vec<Message>,
    /// Bytes of JSON in `queue`.
    pub(super) queued_bytes: usize,
    /// The address it handshook from (counted against its per-address cap).
    pub(super) addr: ClientKey,
    /// The agent credential of the handshake's `ext.agentToken`, if any.
    pub(super) agent_token: Option<Credential>,
    /// Sent a `/meta/connect` at least once.
    pub(super) connected: bool,
    pub(super) created: Instant,
    pub(super) notify: Arc<Notify>,
    pub(super) subscriptions: HashSet<String>,
    pub(super) participant: Option<Participant>,
    pub(super) last_seen: Instant,
    /// A `/meta/connect` is being held (or a WebSocket is open).
    pub(super) held: bool,
    /// Bumped by each `/meta/connect`, so an older held one returns at once.
    pub(super) connect_generation: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(super) clients: HashMap<String, Client>,
    /// Session token → clients that joined it.
    pub(super) by_session: HashMap<String, HashSet<String>>,
    /// Clients per address.
    pub(super) per_addr: HashMap<ClientKey, usize>,
}

/// Size of a message on the wire, for the byte bounds of queues.
pub(super) fn wire_size(message: &Message) -> usize {
    serde_json::to_vec(message).map_or(0, |v| v.len())
}

impl Registry {
    /// Queues a server event for a client. Events may go past the count
    /// bound by [`EVENT_HEADROOM`]; a client that lets more pile up is
    /// dropped (it gets `402::Unknown client` and handshakes again).
    pub(crate) fn enqueue_event(&mut self, client_id: &str, message: Message, max_queue: usize) {
        let Some(client) = self.clients.get_mut(client_id) else {
            return;
        };
        if client.queue.len() >= max_queue + EVENT_HEADROOM {
            tracing::warn!(
                client = client_id,
                "delivery queue full: dropping the client"
            );
            metrics::counter!("node_cometd_clients_dropped_total").increment(1);
            self.remove(client_id);
            return;
        }
        client.queued_bytes += wire_size(&message);
        client.queue.push(message);
        client.notify.notify_waiters();
    }

    /// Whether `client_id` can take `bytes` more within the bounds.
    pub(super) fn has_room(&self, client_id: &str, bytes: usize, config: &BayeuxConfig) -> bool {
        self.clients.get(client_id).is_none_or(|c| {
            c.queue.len() < config.max_queue && c.queued_bytes + bytes <= config.max_queue_bytes
        })
    }

    pub(super) fn push(&mut self, client_id: &str, message: Message, bytes: usize) {
        if let Some(client) = self.clients.get_mut(client_id) {
            client.queued_bytes += bytes;
            client.queue.push(message);
            client.notify.notify_waiters();
        }
    }

    pub(super) fn take_queue(client: &mut Client) -> Vec<Message> {
        client.queued_bytes = 0;
        std::mem::take(&mut client.queue)
    }

    pub(super) fn remove(&mut self, client_id: &str) {
        if let Some(client) = self.clients.remove(client_id) {
            if let Some(p) = client.participant {
                self.leave(&p.session, client_id);
            }
            if let Some(count) = self.per_addr.get_mut(&client.addr) {
                *count -= 1;
                if *count == 0 {
                    self.per_addr.remove(&client.addr);
                }
            }
            client.notify.notify_waiters();
        }
    }

    pub(super) fn leave(&mut self, session: &str, client_id: &str) {
        if let Some(members) = self.by_session.get_mut(session) {
            members.remove(client_id);
            if members.is_empty() {
                self.by_session.remove(session);
            }
        }
    }

    /// Makes `client_id` a participant of `participant.session`.
    pub(crate) fn join(&mut self, client_id: &str, participant: Participant) {
        let Some(client) = self.clients.get_mut(client_id) else {
            return;
        };
        let previous = client.participant.replace(participant.clone());
        if let Some(previous) = previous {
            self.leave(&previous.session, client_id);
        }
        self.by_session
            .entry(participant.session)
            .or_default()
            .insert(client_id.to_owned());
    }

    pub(super) fn participant(&self, client_id: &str) -> Option<&Participant> {
        self.clients.get(client_id)?.participant.as_ref()
    }

    /// The address and handshake credential a client spoke with.
    pub(crate) fn origin(&self, client_id: &str) -> Option<(ClientKey, Option<Credential>)> {
        let client = self.clients.get(client_id)?;
        Some((client.addr.clone(), client.agent_token.clone()))
    }
}
