//! What the virtual users sent and what came back, kept for the judge, and
//! the state every part of the soak shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::timeline::{Event, What};

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Create,
    JoinCustomer,
    JoinAgent,
    JoinController,
    Get,
    Stop,
    GetAfterStop,
    Revisit,
    Handshake,
    CometCreate,
    CometJoin,
    Connect,
    Disconnect,
    FinalGet,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::JoinCustomer => "join customer",
            Kind::JoinAgent => "join agent",
            Kind::JoinController => "join controller",
            Kind::Get => "get session",
            Kind::Stop => "stop session",
            Kind::GetAfterStop => "get after stop",
            Kind::Revisit => "revisit (old tab)",
            Kind::Handshake => "cometd handshake",
            Kind::CometCreate => "cometd create",
            Kind::CometJoin => "cometd join",
            Kind::Connect => "cometd connect",
            Kind::Disconnect => "cometd disconnect",
            Kind::FinalGet => "final check",
        }
    }

    /// A POST whose body reached the node: never safe to send twice.
    pub fn is_unrepeatable_post(self) -> bool {
        matches!(
            self,
            Kind::Create
                | Kind::JoinCustomer
                | Kind::JoinAgent
                | Kind::JoinController
                | Kind::Revisit
                | Kind::Handshake
                | Kind::CometCreate
                | Kind::CometJoin
        )
    }
}

/// How a request named its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No hint at all, and nothing in the path (creates, plain handshakes).
    Unbound,
    Cookie(String),
    Header(String),
    Query(String),
    /// No hint: the proxy must find the owner from the token in the path.
    Lookup,
    /// No hint: only the Bayeux `clientId` in the body names the node.
    ClientId,
}

impl Route {
    pub fn describe(&self) -> String {
        match self {
            Route::Unbound => "unbound".into(),
            Route::Cookie(n) => format!("cookie {n}"),
            Route::Header(n) => format!("header {n}"),
            Route::Query(n) => format!("query {n}"),
            Route::Lookup => "cookieless (owner lookup)".into(),
            Route::ClientId => "cookieless (clientId only)".into(),
        }
    }
}

/// The Bayeux reply to the message a CometD request was about.
#[derive(Debug, Clone, Default)]
pub struct Bayeux {
    pub successful: bool,
    pub error: Option<String>,
    pub client_id: Option<String>,
    pub data: Option<Value>,
}

#[derive(Debug, Clone)]
pub enum Answer {
    Http {
        status: u16,
        /// `error` of a JSON error body.
        code: Option<String>,
        message: Option<String>,
        /// The node the answer names (`sessionServerName`, the
        /// `gcbSessionServer` header, the node of a new `clientId`).
        node: Option<String>,
        /// Set when the body, header and cookie name different nodes.
        disagreement: Option<String>,
        bayeux: Option<Bayeux>,
        /// The body (shortened), for the report.
        body: String,
    },
    /// No HTTP answer: `kind` is refused, reset, closed, timeout or other.
    Transport { kind: &'static str, detail: String },
}

impl Answer {
    pub fn describe(&self) -> String {
        match self {
            Answer::Http {
                status,
                node,
                bayeux,
                body,
                disagreement,
                ..
            } => {
                let mut text = format!("HTTP {status}");
                if let Some(n) = node {
                    text.push_str(&format!(" from {n}"));
                }
                if let Some(b) = bayeux {
                    match &b.error {
                        Some(e) => text.push_str(&format!(", bayeux error {e:?}")),
                        None if b.successful => text.push_str(", bayeux successful"),
                        None => text.push_str(", bayeux unsuccessful"),
                    }
                }
                if let Some(d) = disagreement {
                    text.push_str(&format!(", {d}"));
                }
                if !body.is_empty() {
                    text.push_str(&format!(", body {body}"));
                }
                text
            }
            Answer::Transport { kind, detail } => format!("no answer: connection {kind}: {detail}"),
        }
    }
}

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: usize,
    pub user: String,
    pub kind: Kind,
    pub route: Route,
    pub method: &'static str,
    pub path: String,
    /// The session the request is about.
    pub session: Option<String>,
    /// The Bayeux client it speaks for, and when its handshake was answered.
    pub client: Option<(String, Duration)>,
    pub sent: Duration,
    pub answered: Duration,
    pub answer: Answer,
    /// The same user's previous request.
    pub prev: Option<usize>,
}

/// A session the soak created, as far as the soak knows.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub owner: String,
    /// When its create was answered (which process of the owner made it).
    pub created: Duration,
    pub via: &'static str,
    /// When a stop of it was answered 200.
    pub stopped: Option<Duration>,
    /// A stop got no answer: whether it ended is unknown.
    pub stop_uncertain: bool,
}

/// Everything the users, the driver and the judge share.
#[derive(Debug)]
pub struct Shared {
    pub t0: Instant,
    pub proxy_url: String,
    pub node_names: Vec<String>,
    pub agent_token: String,
    events: Mutex<Vec<Event>>,
    records: Mutex<Vec<Record>>,
    sessions: Mutex<HashMap<String, SessionInfo>>,
    admin_url: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(proxy_url: String, node_names: Vec<String>, agent_token: String) -> Arc<Shared> {
        Arc::new(Shared {
            t0: Instant::now(),
            proxy_url,
            node_names,
            agent_token,
            events: Mutex::default(),
            records: Mutex::default(),
            sessions: Mutex::default(),
            admin_url: Mutex::default(),
        })
    }

    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    pub fn event(&self, what: What) -> Duration {
        let at = self.now();
        if std::env::var_os("SOAK_VERBOSE").is_some() {
            eprintln!("[soak {:>8.3}] {}", at.as_secs_f64(), what.describe());
        }
        lock(&self.events).push(Event { at, what });
        at
    }

    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// Stores a record, giving it its id.
    pub fn record(&self, mut record: Record) -> usize {
        let mut records = lock(&self.records);
        record.id = records.len();
        records.push(record);
        records.len() - 1
    }

    pub fn records(&self) -> Vec<Record> {
        lock(&self.records).clone()
    }

    pub fn add_session(&self, token: &str, info: SessionInfo) {
        lock(&self.sessions).insert(token.to_owned(), info);
    }

    pub fn update_session(&self, token: &str, f: impl FnOnce(&mut SessionInfo)) {
        if let Some(info) = lock(&self.sessions).get_mut(token) {
            f(info);
        }
    }

    pub fn sessions(&self) -> HashMap<String, SessionInfo> {
        lock(&self.sessions).clone()
    }

    pub fn set_admin_url(&self, url: Option<String>) {
        *lock(&self.admin_url) = url;
    }

    pub fn admin_url(&self) -> Option<String> {
        lock(&self.admin_url).clone()
    }
}
