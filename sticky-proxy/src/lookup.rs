//! Which node owns a session, for requests that carry no node name but a
//! session (or user) token in their path: typically the agent side, whose
//! browser never got the customer's cookie.
//!
//! Every node that is not down is asked `GET <ctx>/rest/live/sessions/{token}`
//! in parallel, with the configured `Origin` (the endpoint is under CORS
//! control), and every answer is waited for (or `--lookup-timeout`). The one
//! node that answers 200 is the owner; failing that, a node that answers 410
//! (ended but retained: the node still answers for it). **Two or more 200s
//! are never resolved by picking one**: the answer is [`Owner::Ambiguous`]
//! (the proxy answers 409 `session_ambiguous`), logged at error level with
//! the nodes, and not cached — joining the wrong one of two sessions with
//! the same digits would show one customer's screen to another's agent.
//! Owners are cached (moka, TTL and size bound); concurrent lookups of one
//! token share one round of requests. "Not found" is not cached: a session
//! being created right now must be found a moment later. When no node claims
//! the session but some did not answer, or are down and were not asked, the
//! answer is [`Owner::Unanswered`] naming them as what they are (not as the
//! owner: the proxy does not know that): the caller must not guess.
//! Retiring nodes are asked like any other; gone ones are not, and are not
//! named.
//!
//! Entries are dropped when the owner answers 404 for a forwarded request of
//! the session, when the owner goes down, and when its name is configured
//! again for a new node. They are kept while the owner retires and after it
//! is gone ([`crate::retire`]), so that a request of one of its sessions gets
//! 503 naming it rather than a 404 from another node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use http::{header, HeaderValue, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use moka::future::Cache;

use crate::affinity::SessionToken;
use crate::control::{UpstreamBody, UpstreamClient};
use crate::nodes::{Node, NodeSet, NodeState};

/// How an owner was found.
#[derive(Debug, Clone)]
pub enum Owner {
    /// From the cache.
    Cached(Arc<Node>),
    /// Asked of the nodes just now.
    Found(Arc<Node>),
    /// Every node asked answered 404: the session exists nowhere.
    NotFound,
    /// No node claimed the session, but `silent` did not answer (in time)
    /// and `down` are down and were not asked: the session may well be on
    /// one of them, so the request must not go elsewhere.
    Unanswered {
        silent: Vec<Arc<Node>>,
        down: Vec<Arc<Node>>,
    },
    /// Several nodes answered 200: the request must go to none of them.
    Ambiguous(Vec<Arc<Node>>),
}

/// The owner cache and the lookup that fills it.
#[derive(Debug)]
pub struct OwnerLookup {
    cache: Cache<SessionToken, Arc<Node>>,
    client: UpstreamClient,
    origin: HeaderValue,
    sessions_path: Arc<str>,
    timeout: Duration,
}

/// The lookup round found no one owner (not cached).
#[derive(Debug, Clone)]
enum NoOwner {
    /// Every node asked said 404, and none is down.
    Absent,
    /// No node claimed it; these did not answer, these are down.
    Silent {
        silent: Vec<Arc<Node>>,
        down: Vec<Arc<Node>>,
    },
    /// These nodes all answered 200.
    Ambiguous(Vec<Arc<Node>>),
}

impl OwnerLookup {
    /// `sessions_path` is `<ctx>/rest/live/sessions`; `origin` the `Origin`
    /// header value sent with lookups.
    pub fn new(
        client: UpstreamClient,
        sessions_path: &str,
        origin: HeaderValue,
        ttl: Duration,
        capacity: u64,
        timeout: Duration,
    ) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .support_invalidation_closures()
            .build();
        OwnerLookup {
            cache,
            client,
            origin,
            sessions_path: Arc::from(sessions_path),
            timeout,
        }
    }

    /// The owner of `token`, from the cache or by asking `nodes`.
    pub async fn owner(&self, token: SessionToken, nodes: &NodeSet) -> Owner {
        if let Some(node) = self.cache.get(&token).await {
            return Owner::Cached(node);
        }
        let found = self
            .cache
            .try_get_with(token, async {
                let started = Instant::now();
                let owner = self.ask(token, nodes).await;
                metrics::histogram!("proxy_lookup_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                owner
            })
            .await;
        match found {
            Ok(node) => Owner::Found(node),
            Err(no_owner) => match &*no_owner {
                NoOwner::Silent { silent, down } => Owner::Unanswered {
                    silent: silent.clone(),
                    down: down.clone(),
                },
                NoOwner::Absent => Owner::NotFound,
                NoOwner::Ambiguous(nodes) => Owner::Ambiguous(nodes.clone()),
            },
        }
    }

    /// Forgets the owner of `token` (it answered 404).
    pub async fn forget(&self, token: SessionToken) {
        self.cache.invalidate(&token).await;
    }

    /// Forgets every session of `node` (down or removed).
    pub fn forget_node(&self, node: &Arc<Node>) {
        let node = node.clone();
        if let Err(error) = self
            .cache
            .invalidate_entries_if(move |_, owner| Arc::ptr_eq(owner, &node))
        {
            // Only possible when invalidation closures are not enabled,
            // which `new` always does; fall back to a full flush.
            tracing::warn!(%error, "cannot invalidate by node; flushing the owner cache");
            self.cache.invalidate_all();
        }
    }

    /// Number of cached owners (approximate: moka applies writes lazily).
    pub fn cached_len(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Asks every node that is not down, in parallel, and waits for every
    /// answer (or the lookup timeout): one 200 is the owner, several 200s are
    /// ambiguous, a 410 is the owner only when no node answers 200. After a
    /// timeout the answers still missing are read to the end in the
    /// background: dropping a request in flight would close its pooled
    /// connection, and every cold lookup would then pay for new connections.
    async fn ask(&self, token: SessionToken, nodes: &NodeSet) -> Result<Arc<Node>, NoOwner> {
        let mut asks: FuturesUnordered<_> = nodes
            .iter()
            .filter(|node| node.state() != NodeState::Down)
            .filter_map(|node| {
                let uri = Uri::try_from(format!("{}{}/{}", node.url(), self.sessions_path, token))
                    .ok()?;
                Some(ask_one(
                    self.client.clone(),
                    self.origin.clone(),
                    uri,
                    Arc::clone(node),
                    token,
                ))
            })
            .collect();
        let mut pending: Vec<Arc<Node>> = nodes
            .iter()
            .filter(|node| node.state() != NodeState::Down)
            .cloned()
            .collect();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut silent: Vec<Arc<Node>> = Vec::new();
        // Every node that answered 200: one is the owner, two are a conflict.
        let mut live: Vec<Arc<Node>> = Vec::new();
        // A node that only retains the session as ended (410) is the owner
        // unless another node has a live session with the same nine digits.
        let mut ended = None;
        loop {
            match tokio::time::timeout_at(deadline, asks.next()).await {
                Ok(Some(Answer::Owner(node))) => {
                    pending.retain(|n| !Arc::ptr_eq(n, &node));
                    live.push(node);
                }
                Ok(Some(Answer::Ended(node))) => {
                    pending.retain(|n| !Arc::ptr_eq(n, &node));
                    ended.get_or_insert(node);
                }
                Ok(Some(Answer::NotHere(node))) => pending.retain(|n| !Arc::ptr_eq(n, &node)),
                Ok(Some(Answer::Silent(node))) => {
                    pending.retain(|n| !Arc::ptr_eq(n, &node));
                    silent.push(node);
                }
                Ok(None) => break,
                Err(_) => {
                    silent.append(&mut pending);
                    if live.is_empty() && ended.is_none() {
                        tracing::warn!(%token, "owner lookup timed out: answering 503 rather than guessing");
                    }
                    break;
                }
            }
        }
        if !asks.is_empty() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout_at(deadline, async {
                    while asks.next().await.is_some() {}
                })
                .await;
            });
        }
        if live.len() > 1 {
            let names: Vec<&str> = live.iter().map(|node| node.name()).collect();
            tracing::error!(
                %token,
                nodes = ?names,
                "several session servers claim one session token; answering 409 session_ambiguous and routing to none"
            );
            return Err(NoOwner::Ambiguous(live));
        }
        // One 200 is the owner even when another node did not answer (in
        // time) or is down and was not asked: that node could, rarely, hold
        // the same digits too, but refusing (or waiting longer) here would
        // make every session unreachable while any node is slow or down.
        // The nodes' cluster-unique tokens are what rules the case out.
        if let Some(owner) = live.pop().or(ended) {
            return Ok(owner);
        }
        // A node that is down was not asked, and its sessions may be the
        // one: say so rather than send the request elsewhere. (A gone node's
        // sessions are given up: it is not named.)
        let down: Vec<Arc<Node>> = nodes
            .present()
            .filter(|node| node.state() == NodeState::Down)
            .cloned()
            .collect();
        if silent.is_empty() && down.is_empty() {
            return Err(NoOwner::Absent);
        }
        Err(NoOwner::Silent { silent, down })
    }
}

/// One node's answer to "is this session yours?".
#[derive(Debug)]
enum Answer {
    /// 200: a live session.
    Owner(Arc<Node>),
    /// 410: an ended session the node still retains.
    Ended(Arc<Node>),
    /// 404.
    NotHere(Arc<Node>),
    /// No answer, or one that says nothing (an error, a 5xx).
    Silent(Arc<Node>),
}

/// Asks one node whether it owns `token`.
async fn ask_one(
    client: UpstreamClient,
    origin: HeaderValue,
    uri: Uri,
    node: Arc<Node>,
    token: SessionToken,
) -> Answer {
    let Ok(request) = Request::get(uri)
        .header(header::ORIGIN, origin)
        .body(UpstreamBody::new())
    else {
        return Answer::Silent(node);
    };
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(node = node.name(), error = %crate::control::ErrorChain(&error), "owner lookup request failed");
            return Answer::Silent(node);
        }
    };
    let status = response.status();
    // Read the small body so the connection returns to the pool.
    let _ = response.into_body().collect().await;
    match status {
        StatusCode::OK => Answer::Owner(node),
        StatusCode::GONE => Answer::Ended(node),
        StatusCode::NOT_FOUND => Answer::NotHere(node),
        // The node keeps a probe budget too, and the lookups come from the
        // proxy's own address: the node must not budget them (the proxy
        // checked the client's budget before asking).
        StatusCode::TOO_MANY_REQUESTS => {
            tracing::warn!(node = node.name(), %token, "the node refused an owner lookup with 429: its probe budget must not apply to the proxy's own lookups");
            Answer::Silent(node)
        }
        other => {
            tracing::warn!(node = node.name(), status = %other, %token, "unexpected owner lookup answer");
            Answer::Silent(node)
        }
    }
}
