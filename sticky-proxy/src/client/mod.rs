//! One client connection, from the accept to the close.
//!
//! ```text
//! idle ──readable──▶ head ──parsed──▶ route::handle ──▶ answered ─┐
//!   ▲  (no buffer)   (--header-timeout)  (budgets, route, send)   │
//!   └──────────────── keep-alive, body read to its end ───────────┘
//! ```
//!
//! While idle the connection holds no buffer: it waits for readability
//! (at most `--keep-alive-timeout`), then reads into a pooled buffer
//! ([`crate::wire::buffers`]). The head must be complete within
//! `--header-timeout` of its first byte; a head the strict parser refuses
//! ([`http1`]: the request-smuggling shapes, obs-fold, two `Host`s…) is
//! answered 400 (431 for a head over `--max-head-size` or
//! `--max-headers`) and the connection closes; so does a body announced
//! over `--max-body-size` (413, before any node is contacted). Pipelined
//! requests are answered in order. A connection closes after an answer that
//! says so, after an answer given before the body was read to its end, and
//! once the proxy drains; before closing, what the client still sends is
//! read and dropped for a moment so that it reads the answer, not a reset.

mod handshake;

pub use crate::wire::stream::ClientStream;
pub use handshake::{tls_handshake, TlsRefusal};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http1::{HeadError, RequestBody, RequestHead};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::context::Shared;
use crate::errors::ProxyError;
use crate::limits::{ConnSlot, Reason};
use crate::route::{self, Exchange, Outcome};
use crate::wire::answer;
use crate::wire::buffers::Inbound;
use crate::wire::rewrite::ClientFacts;

/// How long a closing connection is read from after its last answer.
const LINGER: Duration = Duration::from_secs(1);
/// What is read and dropped then, at most.
const LINGER_BYTES: usize = 64 * 1024;

/// Facts about one client connection, and what it holds while open.
#[derive(Debug)]
pub struct ClientConn {
    pub peer: IpAddr,
    pub facts: ClientFacts,
    /// Its place under `--max-connections-per-client`.
    _slot: Option<ConnSlot>,
    /// Its place under `--max-connections`.
    _permit: Option<OwnedSemaphorePermit>,
}

impl ClientConn {
    pub fn new(
        peer: SocketAddr,
        trusted: bool,
        tls: bool,
        slot: Option<ConnSlot>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        ClientConn {
            peer: peer.ip(),
            facts: ClientFacts {
                ip: peer.ip().to_string().into_boxed_str(),
                trusted,
                tls,
            },
            _slot: slot,
            _permit: permit,
        }
    }
}

/// Why no head could be read.
enum NoHead {
    /// The client closed (cleanly between requests, or mid-head) or broke
    /// the connection.
    Closed,
    Invalid(HeadError),
}

/// Serves one client connection until it closes, or `drain` is raised
/// while it is idle.
pub async fn serve<S: ClientStream>(
    shared: Arc<Shared>,
    mut stream: S,
    conn: ClientConn,
    mut drain: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut inbound = Inbound::new();
    loop {
        if inbound.is_empty() {
            // Idle: no buffer held while waiting.
            tokio::select! {
                biased;
                () = crate::raised(&mut drain) => return,
                ready = tokio::time::timeout(config.keep_alive_timeout, stream.ready()) => {
                    if !matches!(ready, Ok(Ok(()))) {
                        return;
                    }
                }
            }
        }
        let head = match tokio::time::timeout(
            config.header_timeout,
            read_head(&mut stream, &mut inbound, &shared.wire_limits),
        )
        .await
        {
            Ok(Ok(head)) => head,
            Ok(Err(NoHead::Closed)) => return,
            Ok(Err(NoHead::Invalid(error))) => {
                refuse_head(&shared, &mut stream, &conn, error).await;
                linger(&mut stream, &mut inbound).await;
                return;
            }
            Err(_) => {
                shared.limits.reject(Reason::HeaderTimeout);
                tracing::debug!(peer = %conn.peer, "request head not complete within --header-timeout; closing");
                return;
            }
        };
        if let RequestBody::Length(n) = head.body {
            if n > config.max_body_size as u64 {
                shared.limits.reject(Reason::BodyTooLarge);
                let error = ProxyError::BodyTooLarge(config.max_body_size);
                shared.own_requests.count(error.status());
                let mut out = Vec::new();
                answer::error(&mut out, &error, true);
                if stream.write_all(&out).await.is_ok() {
                    linger(&mut stream, &mut inbound).await;
                }
                return;
            }
        }
        let draining = *drain.borrow();
        let mut exchange = Exchange::new(
            &mut stream,
            &mut inbound,
            head,
            &conn.facts,
            conn.peer,
            draining,
            &shared,
        );
        // Boxed: a task is as large as the largest state of its future, and
        // an idle connection should not carry the routing's (a few KiB)
        // while it waits for its next request. One allocation per request.
        let outcome = Box::pin(route::handle(&shared, &mut exchange)).await;
        exchange.release_head();
        let body_done = exchange.body_done();
        drop(exchange);
        match outcome {
            Outcome::Answered { close: false, .. } if body_done && !*drain.borrow() => {}
            Outcome::Answered { .. } => {
                linger(&mut stream, &mut inbound).await;
                return;
            }
            Outcome::Tunnelled | Outcome::Closed => return,
        }
    }
}

/// Reads until a request head is complete.
async fn read_head<S: ClientStream>(
    stream: &mut S,
    inbound: &mut Inbound,
    limits: &http1::Limits,
) -> Result<RequestHead, NoHead> {
    loop {
        if !inbound.is_empty() {
            match RequestHead::parse(inbound.data(), limits) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(error) => return Err(NoHead::Invalid(error)),
            }
        }
        match inbound
            .read_from(stream, limits.max_head_bytes.saturating_add(1))
            .await
        {
            Ok(n) if n > 0 => {}
            _ => return Err(NoHead::Closed),
        }
    }
}

/// Answers a head the parser refused, and counts it.
async fn refuse_head<S: ClientStream>(
    shared: &Shared,
    stream: &mut S,
    conn: &ClientConn,
    error: HeadError,
) {
    let mut out = Vec::new();
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    if status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
        shared.limits.reject(Reason::HeadTooLarge);
        answer::empty(&mut out, status, true);
    } else {
        shared.limits.reject(Reason::Malformed);
        tracing::debug!(peer = %conn.peer, ?error, "request head refused");
        answer::error(&mut out, &ProxyError::Malformed(error.reason()), true);
    }
    shared.own_requests.count(status);
    let _ = stream.write_all(&out).await;
}

/// Closes a connection after its last answer: shuts the write side, then
/// reads and drops what the client still sends for a moment, so that it
/// reads the answer rather than a reset.
async fn linger<S: ClientStream>(stream: &mut S, inbound: &mut Inbound) {
    inbound.release();
    let _ = tokio::time::timeout(LINGER, async {
        stream.shutdown().await?;
        // On the heap: an array here would be part of every connection
        // task's size, idle or not.
        let mut sink = vec![0u8; 2048];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Answers a connection over `--max-connections-per-client`: a raw 429,
/// then the close (no request is read).
pub async fn refuse(stream: tokio::net::TcpStream) {
    answer_and_close(stream, crate::errors::too_many_connections_answer()).await;
}

/// Writes `answer`, half-closes, reads what the client sent until it closes
/// too (bounded in time and bytes), drops.
async fn answer_and_close(mut stream: tokio::net::TcpStream, answer: &[u8]) {
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}
