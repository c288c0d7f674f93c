//! Keep-alive connections to one node, for forwarded requests.
//!
//! Each [`Node`](crate::nodes::Node) owns one `ConnectionPool`: a stack of
//! idle TCP connections, each with nothing buffered (a connection goes back
//! only when its answer was read to its end). Taking the most recently used
//! connection first leaves the stale ones at the bottom, where the node's
//! own idle timeout closes them; one closed meanwhile is seen before use
//! (its readiness, then a one-byte peek) and skipped.
//!
//! **The cap** (`--max-conns-per-node`, [`PoolLimits`]): every open
//! connection (in use or idle) holds a permit; a request that needs a new
//! connection and finds none waits at most `queue_wait` (the connect
//! timeout), with at most [`QUEUE_LEN`] others, then fails
//! [`ForwardFailure::Busy`] (503 `server_busy`). A WebSocket tunnel keeps
//! its permit. Off by default: a held long-poll holds its connection for
//! the whole hold, so a cap on open connections would refuse the 1,025th
//! waiting CometD client of a node.
//!
//! **Dials** ([`MAX_DIALS`]): what overflows a node's listen backlog is
//! connects still pending, not connections already open; at most
//! [`MAX_DIALS`] connects to one node are in progress at once (the rest wait
//! their turn within the connect timeout), well under the node's default
//! backlog of 1024.
//!
//! What a broken connection means (resend or not, 502 or 503) is decided by
//! [`super::exchange`]; [`ConnectionPool::after_break`] is its question to
//! the node. Local errors (EMFILE, ENFILE, EADDRNOTAVAIL, ENOBUFS, ENOMEM)
//! are [`ForwardFailure::Local`]: they say nothing about the node.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use std::task::{Context, Poll, Waker};

use http::uri::Authority;
use nix::errno::Errno;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ForwardFailure;
use crate::config::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNS_PER_NODE};

/// Idle connections kept per node; more are closed when they come back.
const MAX_IDLE: usize = 512;

/// Requests that may wait for a free connection to one node at once; one
/// more is refused at once.
pub const QUEUE_LEN: usize = 128;

/// How many connections a pool may hold, and how long a request waits for
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// 0: no cap.
    pub max_conns: u32,
    pub queue_wait: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_conns: DEFAULT_MAX_CONNS_PER_NODE,
            queue_wait: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// One open connection and what it holds.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    _permit: Option<OwnedSemaphorePermit>,
    _open: OpenGuard,
}

impl Conn {
    /// Whether an idle connection can take a request: the node has not
    /// closed it nor sent anything unasked. Costs no system call while the
    /// socket has shown no readiness since its last read.
    fn is_usable(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut byte = [0u8; 1];
                matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

/// Counts a connection in [`ConnectionPool::open_connections`].
#[derive(Debug)]
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connects to one node in progress at once, at most.
pub const MAX_DIALS: usize = 256;

#[derive(Debug)]
pub struct ConnectionPool {
    /// `host:port` to connect to.
    address: Box<str>,
    idle: Mutex<Vec<Conn>>,
    permits: Option<Arc<Semaphore>>,
    /// Connects in progress to this node.
    dials: Semaphore,
    waiting: AtomicUsize,
    queue_wait: Duration,
    open: Arc<AtomicUsize>,
}

/// A connection on loan to one request; give it back when its response is
/// done. Dropped instead (a broken or unfinished exchange), the connection
/// closes and its permit is free.
#[derive(Debug)]
pub struct Lease {
    pub conn: Conn,
    pool: Arc<ConnectionPool>,
    /// It had served an earlier request (a break may be a keep-alive race).
    pub reused: bool,
}

impl Lease {
    /// Puts the connection back on its pool's stack — unless requests are
    /// waiting for a permit: then it closes, so that one of them gets its
    /// permit at once.
    pub fn give_back(self) {
        if self.pool.waiting.load(Ordering::Acquire) > 0 {
            return;
        }
        let mut idle = self
            .pool
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(self.conn);
        }
    }
}

/// Whether a failed connect (or socket creation) is the proxy's own trouble:
/// out of file descriptors, ports or buffers. Those never count against the
/// node.
pub fn is_local_error(error: &io::Error) -> bool {
    error.raw_os_error().is_some_and(|code| {
        matches!(
            Errno::from_raw(code),
            Errno::EMFILE
                | Errno::ENFILE
                | Errno::EADDRNOTAVAIL
                | Errno::EADDRINUSE
                | Errno::ENOBUFS
                | Errno::ENOMEM
        )
    })
}

/// What a failed connect means.
pub fn connect_failure(error: &io::Error) -> ForwardFailure {
    if is_local_error(error) {
        ForwardFailure::Local
    } else {
        ForwardFailure::Connect
    }
}

impl ConnectionPool {
    pub fn new(authority: &Authority, limits: PoolLimits) -> Arc<Self> {
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let permits = (limits.max_conns > 0).then(|| {
            let permits = usize::try_from(limits.max_conns).unwrap_or(usize::MAX);
            Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS)))
        });
        Arc::new(ConnectionPool {
            address: address.into_boxed_str(),
            idle: Mutex::new(Vec::new()),
            permits,
            dials: Semaphore::new(MAX_DIALS),
            waiting: AtomicUsize::new(0),
            queue_wait: limits.queue_wait,
            open: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Idle connections right now.
    pub fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Open connections (in use or idle; tunnels excluded).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn pop_idle(&self) -> Option<Conn> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// A permit for a new connection: at once, or after a short wait in
    /// the bounded queue, or [`ForwardFailure::Busy`].
    async fn permit(&self) -> Result<Option<OwnedSemaphorePermit>, ForwardFailure> {
        let Some(permits) = &self.permits else {
            return Ok(None);
        };
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            return Ok(Some(permit));
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= QUEUE_LEN {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(ForwardFailure::Busy);
        }
        let waited = tokio::time::timeout(self.queue_wait, permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(ForwardFailure::Busy),
        }
    }

    /// A connection for one request: an idle one, or a new one.
    pub async fn checkout(
        self: &Arc<Self>,
        connect_timeout: Duration,
    ) -> Result<Lease, ForwardFailure> {
        while let Some(conn) = self.pop_idle() {
            if conn.is_usable() {
                return Ok(self.lease(conn, true));
            }
        }
        let permit = self.permit().await?;
        let conn = self.connect(permit, connect_timeout).await?;
        Ok(self.lease(conn, false))
    }

    fn lease(self: &Arc<Self>, conn: Conn, reused: bool) -> Lease {
        Lease {
            conn,
            pool: Arc::clone(self),
            reused,
        }
    }

    /// A fresh connection in place of `broken` (whose permit it takes).
    pub async fn reconnect(
        self: &Arc<Self>,
        broken: Lease,
        connect_timeout: Duration,
    ) -> Result<Lease, ForwardFailure> {
        let Conn {
            stream,
            _permit: permit,
            _open: open,
        } = broken.conn;
        drop((stream, open));
        let conn = self.connect(permit, connect_timeout).await?;
        Ok(self.lease(conn, false))
    }

    async fn connect(
        &self,
        permit: Option<OwnedSemaphorePermit>,
        connect_timeout: Duration,
    ) -> Result<Conn, ForwardFailure> {
        let dial = async {
            // Never closed, so `acquire` cannot fail; an error would only
            // mean no limit.
            let _turn = self.dials.acquire().await.ok();
            TcpStream::connect(&*self.address).await
        };
        let stream = match tokio::time::timeout(connect_timeout, dial).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(address = %self.address, %error, "connect to node failed");
                return Err(connect_failure(&error));
            }
            Err(_) => {
                tracing::debug!(address = %self.address, "connect to node timed out");
                return Err(ForwardFailure::Connect);
            }
        };
        let _ = stream.set_nodelay(true);
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Conn {
            stream,
            _permit: permit,
            _open: OpenGuard(self.open.clone()),
        })
    }

    /// After a connection broke under a request that cannot be sent again:
    /// does the node still take connections, and answer on them? Refused,
    /// timed out or silent: it is gone ([`ForwardFailure::Connect`], 503).
    /// Answering: a 502 (a keep-alive race, or a node that closed early).
    pub async fn after_break(&self, connect_timeout: Duration) -> ForwardFailure {
        let permit = match &self.permits {
            Some(permits) => match permits.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                // Every permit in use: the node is evidently taking
                // connections.
                Err(_) => return ForwardFailure::Other,
            },
            None => None,
        };
        match self.connect(permit, connect_timeout).await {
            // Taken — but a node being killed still completes connects for
            // the last moments of its listening socket. One bodiless request
            // on the fresh connection tells the two apart: any answer at all
            // (`OPTIONS *` gets a 404) is a live node.
            Ok(mut conn) => {
                if self.answers(&mut conn, connect_timeout).await {
                    ForwardFailure::Other
                } else {
                    ForwardFailure::Connect
                }
            }
            Err(failure) => failure,
        }
    }

    /// Whether the node answers anything on `conn` within `timeout`.
    async fn answers(&self, conn: &mut Conn, timeout: Duration) -> bool {
        let probe = format!(
            "OPTIONS * HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            self.address
        );
        let asked = async {
            conn.stream.write_all(probe.as_bytes()).await?;
            let mut byte = [0u8; 1];
            conn.stream.read(&mut byte).await
        };
        matches!(tokio::time::timeout(timeout, asked).await, Ok(Ok(n)) if n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_errors_are_told_from_node_failures() {
        for local in [
            Errno::EMFILE,
            Errno::ENFILE,
            Errno::EADDRNOTAVAIL,
            Errno::ENOBUFS,
        ] {
            let error = io::Error::from_raw_os_error(local as i32);
            assert!(is_local_error(&error), "{local}");
            assert!(matches!(connect_failure(&error), ForwardFailure::Local));
        }
        for node in [Errno::ECONNREFUSED, Errno::ETIMEDOUT, Errno::EHOSTUNREACH] {
            let error = io::Error::from_raw_os_error(node as i32);
            assert!(!is_local_error(&error), "{node}");
            assert!(matches!(connect_failure(&error), ForwardFailure::Connect));
        }
        assert!(!is_local_error(&io::Error::other("no errno")));
    }

    #[tokio::test]
    async fn the_cap_queues_briefly_then_says_busy() {
        let authority: Authority = "127.0.0.1:1".parse().unwrap();
        let pool = ConnectionPool::new(
            &authority,
            PoolLimits {
                max_conns: 1,
                queue_wait: Duration::from_millis(20),
            },
        );
        let held = pool.permit().await.unwrap();
        assert!(held.is_some());
        assert!(matches!(pool.permit().await, Err(ForwardFailure::Busy)));
        drop(held);
        assert!(pool.permit().await.unwrap().is_some(), "free again");
        let unlimited = ConnectionPool::new(
            &authority,
            PoolLimits {
                max_conns: 0,
                queue_wait: Duration::ZERO,
            },
        );
        assert!(unlimited.permit().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_refused_connect_is_a_node_failure() {
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let pool = ConnectionPool::new(&authority, PoolLimits::default());
        assert!(matches!(
            pool.connect(None, Duration::from_secs(1)).await,
            Err(ForwardFailure::Connect)
        ));
        assert!(matches!(
            pool.after_break(Duration::from_secs(1)).await,
            ForwardFailure::Connect
        ));
        assert_eq!(pool.open_connections(), 0);
    }
}
