//! One request in passage, from its parsed head to its answer.

use std::net::IpAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use http1::{RequestBody, RequestHead};
use tokio::io::AsyncWriteExt;

use crate::upstream::ClientFault;
use crate::wire::body::{BodyCopy, Framing};
use crate::wire::buffers::{Inbound, BUF_SIZE};
use crate::wire::rewrite::{self, ClientFacts};
use crate::wire::stream::ClientStream;

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer went out whole. `close`: the client connection must close
    /// now. `miss`: the proxy's own 503 for a token no live node claims
    /// (a miss for the probe budget).
    Answered {
        status: StatusCode,
        close: bool,
        miss: bool,
    },
    /// The connection became a WebSocket tunnel, now closed.
    Tunnelled,
    /// The client is gone, or its answer broke: close without a word.
    Closed,
}

/// A request from one client connection.
#[derive(Debug)]
pub struct Exchange<'a, C: ?Sized> {
    pub client: &'a mut C,
    /// The client's read buffer: the head (until prepared), then the body.
    pub client_in: &'a mut Inbound,
    pub head: RequestHead,
    pub facts: &'a ClientFacts,
    pub peer: IpAddr,
    pub method: Method,
    /// A WebSocket upgrade request.
    pub websocket: bool,
    /// The proxy closes the connection after this exchange (the client
    /// asked, or the proxy is draining).
    pub closing: bool,
    pub http10: bool,
    /// The head for the node and the body bytes already read; then scratch
    /// space for answers.
    pub out: Vec<u8>,
    pub body: BodyCopy,
    prepared: bool,
}

impl<'a, C> Exchange<'a, C>
where
    C: ClientStream + ?Sized,
{
    pub fn new(
        client: &'a mut C,
        client_in: &'a mut Inbound,
        head: RequestHead,
        facts: &'a ClientFacts,
        peer: IpAddr,
        draining: bool,
        shared: &crate::context::Shared,
    ) -> Self {
        let limits = &shared.wire_limits;
        let max_body = shared.config.max_body_size as u64;
        let buf = client_in.data();
        let method = Method::from_bytes(head.method.of(buf)).unwrap_or(Method::GET);
        let websocket = head.upgrade && rewrite::is_websocket_upgrade(buf, &head);
        let body = match head.body {
            RequestBody::None => BodyCopy::none(),
            RequestBody::Length(n) => BodyCopy::new(Framing::Length(n), limits, max_body),
            RequestBody::Chunked => BodyCopy::new(Framing::Chunked, limits, max_body),
        };
        let http10 = rewrite::is_http10(head.version);
        Exchange {
            closing: draining || !head.keep_alive,
            client,
            client_in,
            facts,
            peer,
            method,
            websocket,
            http10,
            out: Vec::new(),
            body,
            prepared: false,
            head,
        }
    }

    /// The bytes the head's spans point into; meaningful until
    /// [`prepare`](Self::prepare).
    pub fn buf(&self) -> &[u8] {
        self.client_in.data()
    }

    /// The target's path and query as text; a target that is not UTF-8 is
    /// empty here (it routes as unbound, and the node answers for it).
    pub fn path(&self) -> &str {
        let head = crate::wire::headers::Head::new(self.buf(), &self.head);
        std::str::from_utf8(head.path_and_query()).unwrap_or_default()
    }

    pub fn has_body(&self) -> bool {
        !matches!(self.head.body, RequestBody::None)
    }

    /// A GET, HEAD or OPTIONS without a body: safe to send again.
    pub fn resendable(&self) -> bool {
        !self.has_body() && matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    pub fn is_head_request(&self) -> bool {
        self.method == Method::HEAD
    }

    pub fn is_prepared(&self) -> bool {
        self.prepared
    }

    /// Writes the head for the node (`authority`: the node's, for a request
    /// that names no host) and moves the body bytes already read behind it.
    /// Once prepared, the same bytes can go to another node as they are.
    pub fn prepare(&mut self, authority: &str) -> Result<(), ClientFault> {
        if self.prepared {
            return Ok(());
        }
        self.out.clear();
        let buf = self.client_in.data();
        rewrite::request_to_node(
            &mut self.out,
            buf,
            &self.head,
            self.facts,
            self.websocket,
            authority,
        );
        let head_len = self.head.len;
        self.client_in.consume(head_len);
        self.prepared = true;
        self.body
            .take_buffered(self.client_in, &mut self.out)
            .map_err(|error| match error {
                crate::wire::body::CopyError::TooLarge => ClientFault::TooLarge,
                _ => ClientFault::Malformed,
            })
    }

    /// Done with the head without sending it anywhere (an answer of the
    /// proxy's own): its bytes leave the read buffer, and the body bytes
    /// already read are dropped. The next request starts after the body.
    pub fn release_head(&mut self) {
        if self.prepared {
            return;
        }
        let head_len = self.head.len;
        self.client_in.consume(head_len);
        self.prepared = true;
        let mut sink = Vec::new();
        let _ = self.body.take_buffered(self.client_in, &mut sink);
    }

    /// Says `100 Continue` to a client waiting for it, before its body is
    /// read. Answered here rather than passed on (`Expect` is not
    /// forwarded), so the node never sends an interim answer the proxy
    /// would have to interleave with the body.
    pub async fn continue_if_expected(&mut self) -> std::io::Result<()> {
        if self.head.expect_continue && !self.body.is_done() && self.client_in.is_empty() {
            self.client
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        Ok(())
    }

    /// The body has been read to its end (or there is none).
    pub fn body_done(&self) -> bool {
        self.body.is_done()
    }

    /// Reads and drops what is left of a small body (at most `limit` bytes,
    /// within `wait`), so that an answer the proxy makes itself can leave
    /// the connection open. False when the body is still not read.
    pub async fn drain_body(&mut self, limit: u64, wait: Duration) -> bool {
        self.release_head();
        if self.body.is_done() {
            return true;
        }
        if let RequestBody::Length(n) = self.head.body {
            if n > limit {
                return false;
            }
        }
        if self.body.is_done() {
            return true;
        }
        if self.continue_if_expected().await.is_err() {
            return false;
        }
        let discard = self.body.discard(self.client, self.client_in);
        matches!(tokio::time::timeout(wait, discard).await, Ok(Ok(())))
            && self.body.passed() <= limit.saturating_add(BUF_SIZE as u64)
    }

    /// Reads ahead of the body until its first message's `clientId` is
    /// known: at most `limit` bytes and until `deadline`. The bytes stay in
    /// the read buffer, to be sent first. A chunked body is read through
    /// its chunks (for the scan only; its framing is checked when it is
    /// passed on).
    pub async fn peek_client_id(&mut self, limit: usize, deadline: Duration) -> Option<String> {
        let (want, chunked) = match self.head.body {
            RequestBody::None => return None,
            RequestBody::Length(len) => {
                (usize::try_from(len).unwrap_or(usize::MAX).min(limit), false)
            }
            RequestBody::Chunked => (limit, true),
        };
        let head_len = self.head.len;
        let read = async {
            let mut scanned = 0usize;
            loop {
                let have = self.client_in.len().saturating_sub(head_len).min(want);
                let raw = &self.client_in.data()[head_len..head_len + have];
                let (data, ended) = if chunked {
                    let (data, ended) = dechunk_prefix(raw);
                    (std::borrow::Cow::Owned(data), ended)
                } else {
                    (std::borrow::Cow::Borrowed(raw), false)
                };
                let at_end = have >= want || ended;
                // Scan again only once the read-ahead has doubled (linear
                // work in all).
                if at_end || have >= scanned.saturating_mul(2).max(1024) {
                    scanned = have;
                    match crate::cometd_route::scan(&data) {
                        crate::cometd_route::Scan::Found(id) => return Some(id),
                        crate::cometd_route::Scan::Absent => return None,
                        crate::cometd_route::Scan::NeedMore if at_end => return None,
                        crate::cometd_route::Scan::NeedMore => {}
                    }
                }
                let max = head_len.saturating_add(want);
                match self.client_in.read_from(self.client, max).await {
                    Ok(n) if n > 0 => {}
                    _ => return None,
                }
            }
        };
        tokio::time::timeout(deadline, read).await.ok().flatten()
    }
}

/// The data of the complete chunks at the start of `raw`, and whether the
/// last chunk was among them. Lenient: it stops at anything it cannot read.
fn dechunk_prefix(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    loop {
        let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (data, false);
        };
        let line = &raw[..line_end];
        let digits = line.split(|b| *b == b';').next().unwrap_or_default();
        let Some(size) = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| usize::from_str_radix(d.trim(), 16).ok())
        else {
            return (data, false);
        };
        if size == 0 {
            return (data, true);
        }
        let start = line_end + 2;
        let Some(chunk) = raw.get(start..start.saturating_add(size)) else {
            return (data, false);
        };
        data.extend_from_slice(chunk);
        raw = raw.get(start + size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::dechunk_prefix;

    #[test]
    fn a_chunked_prefix_is_read_as_far_as_it_goes() {
        assert_eq!(
            dechunk_prefix(b"3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n"),
            (b"abcde".to_vec(), true)
        );
        assert_eq!(
            dechunk_prefix(b"3\r\nabc\r\n5\r\nde"),
            (b"abc".to_vec(), false)
        );
        assert_eq!(dechunk_prefix(b"zz\r\n"), (Vec::new(), false));
    }
}
