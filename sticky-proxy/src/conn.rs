//! One client connection: what its requests share, the socket wrapper that
//! enforces `--header-timeout`, and the refusal of a connection over
//! `--max-connections-per-client`.
//!
//! Two clocks close a client connection that does not send its request:
//!
//! - hyper's `header_read_timeout`, set to `--keep-alive-timeout` (75 s):
//!   hyper starts it whenever the connection is ready for a request head —
//!   at the start, and each time a kept-alive connection goes idle — and
//!   stops it when a head is complete. It bounds the idle wait and the head
//!   together, so it is the idle timeout.
//! - [`ClientIo`]'s head clock, `--header-timeout` (10 s): started by the
//!   first byte of a request head on an idle connection (or at the accept,
//!   for a connection's first request: a connection that sends nothing is
//!   not idle, it is slow), stopped when the head is complete. A head sent
//!   byte by byte is cut after it whatever the keep-alive timeout.
//!
//! hyper's one timer cannot be both (it runs from the moment the connection
//! is idle, so set to 10 s it would close every idle keep-alive connection
//! after 10 s). The head clock needs to know when a connection is idle:
//! [`ClientConn`] counts heads received (the service is called) and answers
//! finished (their body dropped by hyper once written); equal counts mean
//! idle. After a `101` the socket belongs to a tunnel and the clock is off.
//!
//! With `--tls-cert`, [`tls_handshake`] runs first, in the connection's own
//! task (the accept loop never waits for a client), bounded by
//! `--header-timeout` too; [`ClientIo`] then wraps the TLS stream, and its
//! head clock starts once the handshake is done.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use metrics::Counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::forward::{ClientInfo, ProxyBody};
use crate::limits::ConnSlot;

/// What the requests of one client connection share.
#[derive(Debug)]
pub struct ClientConn {
    /// The socket's peer address.
    pub peer: IpAddr,
    /// Its `X-Forwarded-For` value.
    pub info: ClientInfo,
    heads: AtomicU64,
    answered: AtomicU64,
    upgraded: AtomicBool,
    /// The current request has a body not yet read from the client to its
    /// end (see [`crate::body`]).
    body_pending: AtomicBool,
    /// The connection's place under `--max-connections-per-client`, given
    /// back when the last holder (the socket, in a tunnel too) is dropped.
    _slot: Option<ConnSlot>,
}

impl ClientConn {
    /// `tls`: the connection is (to be) served over TLS.
    pub fn new(peer: SocketAddr, trusted: bool, tls: bool, slot: Option<ConnSlot>) -> Self {
        let info = ClientInfo::new(peer, trusted);
        ClientConn {
            peer: peer.ip(),
            info: if tls { info.over_tls() } else { info },
            heads: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            body_pending: AtomicBool::new(false),
            _slot: slot,
        }
    }

    /// A request head is complete (hyper calls the service).
    pub fn head_received(&self) {
        self.heads.fetch_add(1, Ordering::AcqRel);
    }

    /// A request begins: whether it has a body to read.
    pub fn body_begins(&self, pending: bool) {
        self.body_pending.store(pending, Ordering::Release);
    }

    /// The request's body has been read to its end.
    pub fn body_read(&self) {
        self.body_pending.store(false, Ordering::Release);
    }

    /// Whether the current request's body is not yet read to its end: an
    /// answer now must close the connection.
    pub fn body_pending(&self) -> bool {
        self.body_pending.load(Ordering::Acquire)
    }

    /// The connection switched protocols: no more request heads.
    pub fn upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
    }

    fn heads(&self) -> u64 {
        self.heads.load(Ordering::Acquire)
    }

    /// `Some(heads so far)` when every request has been answered.
    fn idle_at(&self) -> Option<u64> {
        let heads = self.heads();
        (self.answered.load(Ordering::Acquire) >= heads).then_some(heads)
    }

    fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }
}

/// A response body that marks its request answered when hyper is done
/// with it (dropped after the last frame is written, or with the
/// connection).
#[derive(Debug)]
pub struct AnsweredBody {
    inner: ProxyBody,
    conn: Arc<ClientConn>,
}

impl AnsweredBody {
    pub fn new(inner: ProxyBody, conn: Arc<ClientConn>) -> Self {
        AnsweredBody { inner, conn }
    }
}

impl Drop for AnsweredBody {
    fn drop(&mut self) {
        self.conn.answered.fetch_add(1, Ordering::AcqRel);
    }
}

impl Body for AnsweredBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client socket (a `TcpStream`, or the TLS stream over it), with the
/// head clock.
#[derive(Debug)]
pub struct ClientIo<S = TcpStream> {
    stream: S,
    conn: Arc<ClientConn>,
    timeout: Duration,
    /// `Some(n)`: timing the head that follows the `n` heads received so far.
    timing: Option<u64>,
    deadline: Instant,
    /// Made on the first wait, then reset: one allocation per connection.
    sleep: Option<Pin<Box<Sleep>>>,
    timeouts: Counter,
}

impl<S> ClientIo<S> {
    /// Starts the clock for the connection's first head at once.
    pub fn new(stream: S, conn: Arc<ClientConn>, timeout: Duration, timeouts: Counter) -> Self {
        ClientIo {
            stream,
            conn,
            timeout,
            timing: Some(0),
            deadline: Instant::now() + timeout,
            sleep: None,
            timeouts,
        }
    }

    /// Bytes arrived: on an idle connection they begin a head.
    fn on_bytes(&mut self) {
        match self.conn.idle_at() {
            Some(heads) if self.timing != Some(heads) => {
                self.timing = Some(heads);
                self.deadline = Instant::now() + self.timeout;
            }
            Some(_) => {}
            // A request is being served: these bytes are its body (or a
            // pipelined head, timed from its next read once idle).
            None => self.timing = None,
        }
    }

    /// The read is pending: fails it if the head being timed is late.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(heads) = self.timing else {
            return Poll::Pending;
        };
        if self.conn.heads() != heads {
            // That head arrived.
            self.timing = None;
            return Poll::Pending;
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.timing = None;
        self.timeouts.increment(1);
        tracing::debug!(peer = %self.conn.peer, "request head not complete within --header-timeout; closing");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request head not complete within --header-timeout",
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if this.conn.is_upgraded() {
            this.timing = None;
            return polled;
        }
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.on_bytes();
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.poll_deadline(cx),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// How long a refused connection is given to take its answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// How much of a refused connection's request is read (and dropped) so that
/// closing does not reset the answer away.
const REFUSAL_DRAIN_BYTES: usize = 64 * 1024;

/// Answers a connection over `--max-connections-per-client` with a minimal
/// 429 and closes it: write, half-close, read what the client sent until it
/// closes too (bounded in time and bytes), drop.
pub async fn refuse(stream: TcpStream) {
    answer_and_close(stream, crate::errors::too_many_connections_answer()).await;
}

/// Writes `answer`, half-closes, reads what the client sent until it closes
/// too (bounded in time and bytes), drops.
async fn answer_and_close(mut stream: TcpStream, answer: &[u8]) {
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < REFUSAL_DRAIN_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

/// Why a TLS connection was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRefusal {
    /// Closed before sending a byte.
    Closed,
    /// Plain HTTP (or anything but a TLS handshake) on the TLS port:
    /// answered a plain 400.
    NotTls,
    /// Not complete within `--header-timeout`.
    Timeout,
    /// The handshake failed (no common version or cipher, an `h2`-only
    /// ALPN offer, a bad record…).
    Failed,
}

impl TlsRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsRefusal::Closed => "closed before the handshake",
            TlsRefusal::NotTls => "plain HTTP on the TLS port; answered 400",
            TlsRefusal::Timeout => "TLS handshake not complete within --header-timeout",
            TlsRefusal::Failed => "TLS handshake failed",
        }
    }
}

/// The server side of a TLS handshake on a new connection, bounded by
/// `timeout`. A first byte that cannot begin a handshake (a plain HTTP
/// request line) is answered with a plain 400 rather than a TLS alert the
/// client could not read.
pub async fn tls_handshake(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, (TlsRefusal, Option<io::Error>)> {
    let deadline = Instant::now() + timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Err(_) => return Err((TlsRefusal::Timeout, None)),
        Ok(Err(error)) => return Err((TlsRefusal::Failed, Some(error))),
        Ok(Ok(0)) => return Err((TlsRefusal::Closed, None)),
        Ok(Ok(_)) => {}
    }
    if !crate::tls::starts_handshake(first[0]) {
        answer_and_close(stream, crate::tls::plain_http_answer()).await;
        return Err((TlsRefusal::NotTls, None));
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Err(_) => Err((TlsRefusal::Timeout, None)),
        Ok(Err(error)) => Err((TlsRefusal::Failed, Some(error))),
        Ok(Ok(stream)) => Ok(stream),
    }
}
