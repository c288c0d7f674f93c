//! The client's request body as the proxy handles it.
//!
//! [`ClientBody`] wraps hyper's `Incoming` with two things:
//!
//! - **read-ahead**: frames read before the request is routed (the first
//!   bytes of a CometD POST, for its `clientId`: [`crate::cometd_route`]) are
//!   kept and sent first, so the node gets the body unchanged and the rest
//!   still streams;
//! - **end tracking**: the connection ([`ClientConn`]) is told when the body
//!   has been read from the client to its end. An answer given while it has
//!   not — the proxy's own 503/429/409 without reading it, or a node's early
//!   413 — carries `Connection: close` (see [`crate::server`]): hyper closes
//!   such a connection after the answer, and the client must know before it
//!   sends the next request on it.
//!
//! [`drain`] reads and drops a small body before an early answer (as nginx
//! does), so that the connection can stay open.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::conn::ClientConn;

/// Largest body read and dropped so that an early answer can keep the
/// connection open; a larger one gets `Connection: close` instead.
pub const DRAIN_LIMIT: u64 = 64 * 1024;
/// How long an early answer waits for the rest of a small body.
pub const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// A client's request body; see the module docs.
#[derive(Debug)]
pub struct ClientBody {
    read_ahead: VecDeque<Result<Frame<Bytes>, hyper::Error>>,
    read_ahead_bytes: u64,
    inner: Incoming,
    conn: Arc<ClientConn>,
    ended: bool,
}

impl ClientBody {
    /// Starts tracking a request's body on its connection.
    pub fn new(inner: Incoming, conn: Arc<ClientConn>) -> Self {
        let ended = inner.is_end_stream();
        conn.body_begins(!ended);
        ClientBody {
            read_ahead: VecDeque::new(),
            read_ahead_bytes: 0,
            inner,
            conn,
            ended,
        }
    }

    fn note_end(&mut self) {
        if !self.ended && self.inner.is_end_stream() {
            self.ended = true;
            self.conn.body_read();
        }
    }

    /// Whether the client has sent all of it (read ahead or not).
    pub fn client_done(&self) -> bool {
        self.ended
    }

    /// Reads the next frame from the client and keeps it for sending;
    /// returns its data (empty for trailers), or `None` at the end of the
    /// body (or after an error, which is kept for sending too).
    pub async fn read_ahead(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        let frame = self.inner.frame().await;
        match frame {
            None => {
                self.ended = true;
                self.conn.body_read();
                None
            }
            Some(Ok(frame)) => {
                let data = frame.data_ref().cloned().unwrap_or_default();
                self.read_ahead_bytes = self.read_ahead_bytes.saturating_add(data.len() as u64);
                self.read_ahead.push_back(Ok(frame));
                self.note_end();
                Some(data)
            }
            Some(Err(error)) => {
                self.read_ahead.push_back(Err(error));
                None
            }
        }
    }

    /// The data read ahead, in one piece (a copy only when it came in
    /// several frames).
    pub fn read_ahead_data(&self) -> std::borrow::Cow<'_, [u8]> {
        let mut data = self
            .read_ahead
            .iter()
            .filter_map(|frame| frame.as_ref().ok().and_then(Frame::data_ref));
        match (data.next(), data.next()) {
            (None, _) => std::borrow::Cow::Borrowed(&[]),
            (Some(one), None) => std::borrow::Cow::Borrowed(one),
            (Some(first), Some(second)) => {
                let mut all = Vec::with_capacity(self.read_ahead_bytes as usize);
                all.extend_from_slice(first);
                all.extend_from_slice(second);
                for chunk in data {
                    all.extend_from_slice(chunk);
                }
                std::borrow::Cow::Owned(all)
            }
        }
    }

    /// Bytes read ahead so far.
    pub fn read_ahead_len(&self) -> u64 {
        self.read_ahead_bytes
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.read_ahead.pop_front() {
            if let Ok(data) = frame.as_ref().map(Frame::data_ref) {
                let len = data.map_or(0, |d| d.len() as u64);
                this.read_ahead_bytes = this.read_ahead_bytes.saturating_sub(len);
            }
            return Poll::Ready(Some(frame));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                this.ended = true;
                this.conn.body_read();
            }
            Poll::Ready(Some(Ok(_))) => this.note_end(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.read_ahead.is_empty() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let rest = if self.ended {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        };
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(self.read_ahead_bytes));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(self.read_ahead_bytes));
        }
        hint
    }
}

/// Reads and drops what is left of a body the proxy answers without
/// forwarding, so the client's connection can stay open: at most
/// [`DRAIN_LIMIT`] bytes for at most [`DRAIN_WAIT`]. A body declared larger
/// is not read at all. Whether the body then was read to its end shows on
/// the connection (and decides `Connection: close`).
pub async fn drain(body: Option<ClientBody>) {
    let Some(mut body) = body else {
        return;
    };
    if body.client_done() {
        return;
    }
    if body.inner.size_hint().lower() > DRAIN_LIMIT {
        return;
    }
    let _ = tokio::time::timeout(DRAIN_WAIT, async {
        let mut read: u64 = 0;
        while read <= DRAIN_LIMIT {
            match body.inner.frame().await {
                Some(Ok(frame)) => {
                    read = read.saturating_add(frame.data_ref().map_or(0, |d| d.len() as u64));
                    body.note_end();
                    if body.client_done() {
                        return;
                    }
                }
                Some(Err(_)) => return,
                None => {
                    body.ended = true;
                    body.conn.body_read();
                    return;
                }
            }
        }
    })
    .await;
}
