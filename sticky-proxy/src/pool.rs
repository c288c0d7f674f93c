//! Keep-alive connections to one node, for forwarded requests.
//!
//! Each [`Node`](crate::nodes::Node) owns one `ConnectionPool`: a stack of
//! idle HTTP/1.1 connections (hyper's low-level client `SendRequest`s). The
//! general-purpose pooled client of hyper-util keys its pool by scheme and
//! authority with a SipHash map and spawns a task per request to take the
//! connection back; per node, neither is needed, and both showed in the
//! profile of the hot path (bench/RESULTS.md). Health checks and owner
//! lookups, which are rarer, still use that client.
//!
//! A connection goes back to the stack when the response body has been
//! relayed to its end ([`Lease`] in the response body); a response dropped
//! early (client gone) loses its connection, which hyper then closes. Taking
//! the most recently used connection first leaves the stale ones at the
//! bottom, where the node's own idle timeout closes them; a closed one is
//! skipped. A request that hyper hands back unsent (the node closed a kept
//! connection just before) is sent once more on a fresh connection.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::forward::{ForwardFailure, UpstreamBody};

/// Idle connections kept per node; more are closed when they come back.
const MAX_IDLE: usize = 512;

type Sender = SendRequest<UpstreamBody>;

#[derive(Debug)]
pub struct ConnectionPool {
    /// `host:port` to connect to.
    address: Box<str>,
    idle: Mutex<Vec<Sender>>,
}

/// A connection on loan to one request; give it back when its response is
/// done.
#[derive(Debug)]
pub struct Lease {
    sender: Sender,
    pool: Arc<ConnectionPool>,
}

impl Lease {
    /// Puts the connection back on its pool's stack.
    pub fn give_back(self) {
        let mut idle = self
            .pool
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(self.sender);
        }
    }
}

impl ConnectionPool {
    pub fn new(authority: &Authority) -> Arc<Self> {
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        Arc::new(ConnectionPool {
            address: address.into_boxed_str(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Idle connections right now.
    pub fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn pop_idle(&self) -> Option<Sender> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// A ready connection: an idle one, or a new one.
    async fn checkout(&self, connect_timeout: Duration) -> Result<(Sender, bool), ForwardFailure> {
        while let Some(mut sender) = self.pop_idle() {
            if sender.is_closed() {
                continue;
            }
            // Normally ready at once; a response body finished an instant
            // ago may need its connection task to run first.
            if sender.ready().await.is_ok() {
                return Ok((sender, true));
            }
        }
        Ok((self.connect(connect_timeout).await?, false))
    }

    async fn connect(&self, connect_timeout: Duration) -> Result<Sender, ForwardFailure> {
        let stream =
            match tokio::time::timeout(connect_timeout, TcpStream::connect(&*self.address)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(address = %self.address, %error, "connect to node failed");
                    return Err(ForwardFailure::Connect);
                }
                Err(_) => {
                    tracing::debug!(address = %self.address, "connect to node timed out");
                    return Err(ForwardFailure::Connect);
                }
            };
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ForwardFailure::Connect)?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "node connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Sends `request` (origin-form URI, `Host` as the client sent it) and
    /// waits at most `timeout` for the response head. The lease comes back
    /// with the response, to be given back when its body is done.
    pub async fn send(
        self: &Arc<Self>,
        request: Request<UpstreamBody>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<(Response<Incoming>, Lease), ForwardFailure> {
        let exchange = async {
            let (mut sender, reused) = self.checkout(connect_timeout).await?;
            let request = match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut error) => match error.take_message() {
                    // Not sent: a kept connection the node had just closed.
                    Some(request) if reused => request,
                    // Sent (at least partly) on a kept connection that then
                    // broke: that may be a keep-alive race rather than a dead
                    // node, so it says 502 and leaves the node's state to the
                    // health checks and to the next connect.
                    None if reused => {
                        classify(error.error());
                        return Err(ForwardFailure::Other);
                    }
                    _ => return Err(classify(error.error())),
                },
            };
            let mut sender = self.connect(connect_timeout).await?;
            match sender.try_send_request(request).await {
                Ok(response) => Ok((response, sender)),
                Err(error) => Err(classify(error.error())),
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(ForwardFailure::Timeout),
            Ok(Err(failure)) => Err(failure),
            Ok(Ok((response, sender))) => Ok((
                response,
                Lease {
                    sender,
                    pool: Arc::clone(self),
                },
            )),
        }
    }
}

/// How a request that was (at least partly) sent failed.
fn classify(error: &hyper::Error) -> ForwardFailure {
    tracing::debug!(error = %crate::forward::ErrorChain(error), "forward to node failed");
    if crate::forward::is_reset(error) {
        ForwardFailure::Reset
    } else {
        ForwardFailure::Other
    }
}
