//! One request–answer exchange with a node, up to the answer's head.
//!
//! The rewritten head (with the body bytes already read behind it) leaves in
//! one write; the rest of the client's body streams on while the answer's
//! head is awaited, so an early answer (a node's 413 to a body it will not
//! read) is read and relayed, and the body stops there, as nginx does.
//! Interim answers (1xx other than 101) are dropped: the proxy answers
//! `Expect: 100-continue` itself and does not pass `Expect` on.
//!
//! **When a connection breaks before any byte of the answer:**
//! - a kept-alive connection under a request safe to send again (GET, HEAD
//!   or OPTIONS without a body): sent once more on a fresh connection to the
//!   **same** node; if that breaks too, the node is going (killed while the
//!   kernel still took the connect): [`ForwardFailure::Connect`], an honest
//!   503, not a 502;
//! - otherwise the node is asked for a fresh connection
//!   ([`ConnectionPool::after_break`]): refused, timed out or silent, it is
//!   gone ([`ForwardFailure::Connect`], 503: a killed node under a held
//!   long-poll); answering, it was a keep-alive race or a node that closed
//!   early ([`ForwardFailure::Other`], 502).
//!
//! The whole exchange, connect included, is bounded by `--upstream-timeout`
//! ([`ForwardFailure::Timeout`], 504).

use std::sync::Arc;
use std::time::Duration;

use http1::ResponseHead;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::tcp::ReadHalf;

use super::pool::{ConnectionPool, Lease};
use super::{ClientFault, ForwardFailure, Incident};
use crate::wire::body::{BodyCopy, CopyError};
use crate::wire::buffers::Inbound;

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The rewritten head, then the body bytes already read.
    pub head: &'a [u8],
    /// A GET, HEAD or OPTIONS without a body: may be sent again.
    pub resendable: bool,
    pub connect_timeout: Duration,
    /// For the answer's head, from the start.
    pub timeout: Duration,
    pub limits: &'a http1::Limits,
}

/// A node's answer, its head read, its body not yet.
#[derive(Debug)]
pub struct Answer {
    pub lease: Lease,
    pub head: ResponseHead,
    /// What was read from the node: the head (its spans point here), then
    /// the start of the body.
    pub inbound: Inbound,
    /// The request's body went out to its end (false: the node answered
    /// early, and the connection cannot be reused).
    pub request_done: bool,
}

impl Answer {
    /// The bytes the head's spans point into.
    pub fn buf(&self) -> &[u8] {
        self.inbound.data()
    }
}

/// How one attempt on one connection ended, short of an answer.
#[derive(Debug)]
enum Broke {
    /// Nothing of an answer arrived: the connection closed or broke.
    BeforeAnswer,
    /// An answer began and broke, or is not HTTP.
    BadAnswer,
    Client(ClientFault),
}

/// Sends one request over `pool` and waits for the answer's head.
/// `client`/`client_in` are where the rest of the body comes from. A
/// failure says whether anything was sent (false: no connection could be
/// had, the request may go elsewhere as it is).
pub async fn exchange<C>(
    pool: &Arc<ConnectionPool>,
    out: Outgoing<'_>,
    body: &mut BodyCopy,
    client: &mut C,
    client_in: &mut Inbound,
    incident: impl Fn(Incident),
) -> Result<Answer, (ForwardFailure, bool)>
where
    C: AsyncRead + Unpin + ?Sized,
{
    let run = async {
        let mut lease = pool
            .checkout(out.connect_timeout)
            .await
            .map_err(|failure| (failure, false))?;
        let broke = match attempt(&mut lease, out, body, client, client_in).await {
            Ok((head, inbound, request_done)) => {
                return Ok(Answer {
                    lease,
                    head,
                    inbound,
                    request_done,
                })
            }
            Err(broke) => broke,
        };
        let result = match broke {
            Broke::Client(fault) => Err(ForwardFailure::Client(fault)),
            Broke::BadAnswer => Err(ForwardFailure::Other),
            Broke::BeforeAnswer if lease.reused && out.resendable => {
                tracing::debug!(
                    "a kept-alive node connection broke before the answer; sending again"
                );
                incident(Incident::Resent);
                let mut fresh = match pool.reconnect(lease, out.connect_timeout).await {
                    Ok(fresh) => fresh,
                    Err(failure) => return Err((failure, true)),
                };
                match attempt(&mut fresh, out, body, client, client_in).await {
                    Ok((head, inbound, request_done)) => Ok(Answer {
                        lease: fresh,
                        head,
                        inbound,
                        request_done,
                    }),
                    // Two connections in a row broke before any answer: the
                    // node is going. An honest 503 and a strike.
                    Err(Broke::BeforeAnswer) => {
                        tracing::debug!("a fresh node connection broke before the answer");
                        incident(Incident::Broken);
                        Err(ForwardFailure::Connect)
                    }
                    Err(Broke::BadAnswer) => Err(ForwardFailure::Other),
                    Err(Broke::Client(fault)) => Err(ForwardFailure::Client(fault)),
                }
            }
            Broke::BeforeAnswer => {
                tracing::debug!(
                    reused = lease.reused,
                    "node connection broke before the answer"
                );
                drop(lease);
                let failure = pool.after_break(out.connect_timeout).await;
                if matches!(failure, ForwardFailure::Other) {
                    incident(Incident::Broken);
                }
                Err(failure)
            }
        };
        result.map_err(|failure| (failure, true))
    };
    match tokio::time::timeout(out.timeout, run).await {
        Ok(result) => result,
        Err(_) => Err((ForwardFailure::Timeout, true)),
    }
}

/// Writes the request on `lease` and reads the answer's head, streaming the
/// client's body meanwhile.
async fn attempt<C>(
    lease: &mut Lease,
    out: Outgoing<'_>,
    body: &mut BodyCopy,
    client: &mut C,
    client_in: &mut Inbound,
) -> Result<(ResponseHead, Inbound, bool), Broke>
where
    C: AsyncRead + Unpin + ?Sized,
{
    let (mut rd, mut wr) = lease.conn.stream.split();
    if wr.write_all(out.head).await.is_err() {
        return Err(Broke::BeforeAnswer);
    }
    let mut inbound = Inbound::new();
    let mut body_pending = !body.is_done();
    let mut write_failed = false;
    let head = {
        let read_head = read_head(&mut rd, &mut inbound, out.limits);
        tokio::pin!(read_head);
        let send_body = body.copy_rest(client, client_in, &mut wr);
        tokio::pin!(send_body);
        loop {
            tokio::select! {
                biased;
                head = &mut read_head => break head,
                sent = &mut send_body, if body_pending => {
                    body_pending = false;
                    match sent {
                        Ok(()) => {}
                        // The node stopped reading: its answer may be on the
                        // way (an early 413); read it.
                        Err(CopyError::Write(_)) => write_failed = true,
                        Err(CopyError::Chunk(_)) => return Err(Broke::Client(ClientFault::Malformed)),
                        Err(CopyError::TooLarge) => return Err(Broke::Client(ClientFault::TooLarge)),
                        Err(CopyError::Read(_) | CopyError::Truncated) => {
                            return Err(Broke::Client(ClientFault::Gone))
                        }
                    }
                }
            }
        }
    }?;
    let request_done = body.is_done() && !write_failed;
    Ok((head, inbound, request_done))
}

/// Reads until a final answer head is complete; interim answers (1xx but
/// 101) are dropped.
async fn read_head(
    rd: &mut ReadHalf<'_>,
    inbound: &mut Inbound,
    limits: &http1::Limits,
) -> Result<ResponseHead, Broke> {
    let mut answered = false;
    loop {
        if !inbound.is_empty() {
            answered = true;
            match ResponseHead::parse(inbound.data(), limits) {
                Ok(Some(head)) if (100..200).contains(&head.status) && head.status != 101 => {
                    inbound.consume(head.len);
                    continue;
                }
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(?error, "the node's answer head is not valid HTTP/1.1");
                    return Err(Broke::BadAnswer);
                }
            }
        }
        match inbound
            .read_from(rd, limits.max_head_bytes.saturating_add(1))
            .await
        {
            Ok(n) if n > 0 => {}
            _ if answered => return Err(Broke::BadAnswer),
            _ => return Err(Broke::BeforeAnswer),
        }
    }
}
