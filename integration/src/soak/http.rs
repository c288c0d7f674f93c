//! One virtual user's HTTP side: it sends a request through the proxy the
//! way its route says (cookie, header, query parameter, or no hint), reads
//! the whole answer, and records both for the judge.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use reqwest::Method;
use serde_json::Value;
use shared_types::bayeux::node_of_client_id;
use shared_types::names::{SESSION_SERVER, SESSION_SERVER_HEADER};

use super::record::{Answer, Bayeux, Kind, Record, Route, Shared};
use super::timeline::short;

/// The Origin the soak's nodes allow (and the proxy's lookups send).
pub use integration::TEST_ORIGIN;

/// Longer than any answer may take (a held `/meta/connect` is at most the
/// nodes' `--cometd-timeout`, 1 s): a request still open after it is a
/// failure.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A request to make.
#[derive(Debug)]
pub struct Req {
    pub kind: Kind,
    pub route: Route,
    pub method: Method,
    /// Path below the proxy, e.g. `/cobrowse/rest/live/sessions`.
    pub path: String,
    pub session: Option<String>,
    pub client: Option<(String, Duration)>,
    pub json: Option<Value>,
    pub bearer: bool,
    pub origin: bool,
    /// For a CometD request: the channel whose reply matters.
    pub channel: Option<&'static str>,
}

impl Req {
    pub fn new(kind: Kind, route: Route, method: Method, path: impl Into<String>) -> Req {
        Req {
            kind,
            route,
            method,
            path: path.into(),
            session: None,
            client: None,
            json: None,
            bearer: false,
            origin: false,
            channel: None,
        }
    }
}

/// What a user gets back: the answer and the JSON body.
#[derive(Debug)]
pub struct Reply {
    pub answer: Answer,
    pub json: Value,
}

impl Reply {
    /// A 200 that is not a Bayeux failure.
    pub fn ok(&self) -> bool {
        match &self.answer {
            Answer::Http {
                status: 200,
                bayeux,
                ..
            } => bayeux.as_ref().is_none_or(|b| b.successful),
            _ => false,
        }
    }

    pub fn is_transport_error(&self) -> bool {
        matches!(self.answer, Answer::Transport { .. })
    }

    pub fn bayeux(&self) -> Option<&Bayeux> {
        match &self.answer {
            Answer::Http { bayeux, .. } => bayeux.as_ref(),
            Answer::Transport { .. } => None,
        }
    }
}

#[derive(Debug)]
pub struct User {
    pub name: String,
    pub shared: Arc<Shared>,
    pub rng: StdRng,
    client: reqwest::Client,
    prev: Option<usize>,
}

impl User {
    pub fn new(name: String, shared: Arc<Shared>, rng: StdRng) -> Result<User, String> {
        // Each user has its own connection pool (keep-alive, like a browser).
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(User {
            name,
            shared,
            rng,
            client,
            prev: None,
        })
    }

    /// Sleeps a random think time in `[lo, hi]` milliseconds.
    pub async fn think(&mut self, lo: u64, hi: u64) {
        let ms = self.rng.random_range(lo..=hi);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    pub async fn send(&mut self, req: Req) -> Reply {
        let mut path = req.path.clone();
        if let Route::Query(node) = &req.route {
            let sep = if path.contains('?') { '&' } else { '?' };
            path = format!("{path}{sep}{SESSION_SERVER}={node}");
        }
        let mut builder = self.client.request(
            req.method.clone(),
            format!("{}{path}", self.shared.proxy_url),
        );
        match &req.route {
            Route::Cookie(node) => {
                builder = builder.header("Cookie", format!("{SESSION_SERVER}={node}"));
            }
            Route::Header(node) => builder = builder.header(SESSION_SERVER, node.as_str()),
            _ => {}
        }
        if req.origin {
            builder = builder.header("Origin", TEST_ORIGIN);
        }
        if req.bearer {
            builder = builder.bearer_auth(&self.shared.agent_token);
        }
        if let Some(json) = &req.json {
            builder = builder.json(json);
        }
        let sent = self.shared.now();
        let (answer, json) = match builder.send().await {
            Ok(response) => read(response, req.channel).await,
            Err(error) => (transport(&error, None), Value::Null),
        };
        let answered = self.shared.now();
        let method = match req.method {
            Method::POST => "POST",
            Method::GET => "GET",
            _ => "OTHER",
        };
        let id = self.shared.record(Record {
            id: 0,
            user: self.name.clone(),
            kind: req.kind,
            route: req.route,
            method,
            path,
            session: req.session,
            client: req.client,
            sent,
            answered,
            answer: answer.clone(),
            prev: self.prev,
        });
        self.prev = Some(id);
        Reply { answer, json }
    }
}

async fn read(response: reqwest::Response, channel: Option<&str>) -> (Answer, Value) {
    let status = response.status().as_u16();
    let header = response
        .headers()
        .get(SESSION_SERVER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{SESSION_SERVER}=")))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned());
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => return (transport(&error, Some(status)), Value::Null),
    };
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut names: Vec<String> = Vec::new();
    let mut bayeux = None;
    if let Some(name) = json["sessionServerName"].as_str() {
        names.push(name.to_owned());
    }
    if let (Some(channel), Some(batch)) = (channel, json.as_array()) {
        let reply = reply_for(batch, channel);
        let b = Bayeux {
            successful: reply["successful"].as_bool().unwrap_or(false),
            error: reply["error"].as_str().map(str::to_owned),
            client_id: reply["clientId"].as_str().map(str::to_owned),
            data: reply.get("data").cloned(),
        };
        if channel == "/meta/handshake" && b.successful {
            if let Some(node) = b.client_id.as_deref().and_then(node_of_client_id) {
                names.push(node.to_owned());
            }
            if let Some(node) = reply["ext"][SESSION_SERVER].as_str() {
                names.push(node.to_owned());
            }
        }
        if let Some(node) = b
            .data
            .as_ref()
            .and_then(|d| d["sessionServerName"].as_str())
        {
            names.push(node.to_owned());
        }
        bayeux = Some(b);
    }
    names.extend(header);
    names.extend(cookie);
    let node = names.first().cloned();
    let mut distinct = names.clone();
    distinct.sort();
    distinct.dedup();
    let disagreement =
        (distinct.len() > 1).then(|| format!("the answer names several nodes: {names:?}"));
    let plain_success = status == 200 && bayeux.as_ref().is_none_or(|b| b.successful);
    let body = if plain_success && disagreement.is_none() {
        String::new()
    } else {
        short(&text, 300)
    };
    let answer = Answer::Http {
        status,
        code: json["error"].as_str().map(str::to_owned),
        message: json["message"].as_str().map(str::to_owned),
        node,
        disagreement,
        bayeux,
        body,
    };
    (answer, json)
}

/// The reply to `channel` in a Bayeux answer: the one with data or an error
/// if there is one (a service answers its result, then an acknowledgement),
/// else the first on that channel.
fn reply_for<'a>(batch: &'a [Value], channel: &str) -> &'a Value {
    let on_channel = || batch.iter().filter(|m| m["channel"] == channel);
    on_channel()
        .find(|m| m.get("data").is_some() || m["successful"] == false)
        .or_else(|| on_channel().next())
        .unwrap_or(&Value::Null)
}

/// Classifies a request that got no (complete) answer.
fn transport(error: &reqwest::Error, status: Option<u16>) -> Answer {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    let mut kind = None;
    while let Some(s) = source {
        detail.push_str(&format!(": {s}"));
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            kind = kind.or(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Some("refused"),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                    Some("reset")
                }
                std::io::ErrorKind::UnexpectedEof => Some("closed"),
                _ => None,
            });
        }
        source = s.source();
    }
    let kind = if error.is_timeout() {
        "timeout"
    } else if let Some(kind) = kind {
        kind
    } else if detail.contains("connection closed before message completed") {
        "closed"
    } else if error.is_connect() {
        "connect failed"
    } else {
        "broken"
    };
    if let Some(status) = status {
        detail = format!("body of a {status} answer not read: {detail}");
    }
    Answer::Transport { kind, detail }
}
