//! A raw session-node stand-in for the conformance suite: it records the
//! exact bytes of every forwarded request (head, then the body read by its
//! own framing) and answers with scripted raw bytes, so a test controls
//! every byte on the node's side of the proxy.
//!
//! `GET /cobrowse/health` (the proxy's health checks) is answered 200 and
//! not recorded; every other request takes the next [`Reply`] of the script
//! (or [`DEFAULT_REPLY`] when the script is spent).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The answer to a request past the script's end (the follow-up request
/// that shows a connection is still usable).
pub const DEFAULT_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// How the node answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Written once the whole request is read; the connection stays open.
    Send(Vec<u8>),
    /// Written once the whole request is read; then the node closes.
    SendClose(Vec<u8>),
    /// Written as soon as the head is read, the body left unread (a node's
    /// early 413); then the write side closes, what still comes is read and
    /// dropped (as a well-behaved server lingers), and the node closes.
    Early(Vec<u8>),
}

pub fn send(bytes: &str) -> Reply {
    Reply::Send(bytes.as_bytes().to_vec())
}

/// One request as the node received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The node connection it came on (0, 1, … in accept order, health
    /// check connections included).
    pub conn: usize,
    pub bytes: Vec<u8>,
    /// The body was read to its end by its framing (false: the request was
    /// cut, or answered early).
    pub complete: bool,
}

#[derive(Debug, Default)]
struct State {
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
    conns: AtomicUsize,
}

pub struct RawNode {
    pub addr: SocketAddr,
    pub name: String,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl RawNode {
    pub async fn start(name: &str, replies: Vec<Reply>) -> RawNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            replies: Mutex::new(replies.into()),
            ..State::default()
        });
        let task_state = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let id = task_state.conns.fetch_add(1, Ordering::SeqCst);
                conns.spawn(serve(task_state.clone(), stream, id));
                while conns.try_join_next().is_some() {}
            }
        });
        RawNode {
            addr,
            name: name.to_owned(),
            state,
            task,
        }
    }

    /// The proxy's `--node` value.
    pub fn flag(&self) -> String {
        format!("{}=http://{}", self.name, self.addr)
    }

    /// Every forwarded request so far, in arrival order (the last may still
    /// be arriving).
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) until the node has received at least `n` bytes of
    /// forwarded requests.
    pub async fn wait_bytes(&self, n: usize) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let got: usize = self.seen().iter().map(|s| s.bytes.len()).sum();
            if got >= n {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(5) {
                return Err(format!(
                    "the node got {got} bytes, not {n}, within 5s: {:?}",
                    self.seen()
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for RawNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a request's body is framed, as the node reads it.
enum Body {
    None,
    Length(usize),
    Chunked,
}

fn framing(head: &[u8]) -> Body {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let mut body = Body::None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name {
            "content-length" => {
                body = value.trim().parse().map(Body::Length).unwrap_or(Body::None);
            }
            "transfer-encoding" if value.trim() == "chunked" => return Body::Chunked,
            _ => {}
        }
    }
    body
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads more; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Takes `n` bytes off the front, reading as needed.
    async fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// Takes bytes up to and including the first CRLF.
    async fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Some(self.buf.drain(..end + 2).collect());
            }
            if !self.fill().await {
                return None;
            }
        }
    }
}

async fn serve(state: Arc<State>, stream: TcpStream, id: usize) {
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    loop {
        // The head.
        let head = loop {
            if let Some(end) = conn.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break conn.buf.drain(..end + 4).collect::<Vec<u8>>();
            }
            if !conn.fill().await {
                if !conn.buf.is_empty() {
                    state.seen.lock().unwrap().push(Seen {
                        conn: id,
                        bytes: std::mem::take(&mut conn.buf),
                        complete: false,
                    });
                }
                return;
            }
        };
        if head.starts_with(b"GET /cobrowse/health ") {
            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            if conn.stream.write_all(ok).await.is_err() {
                return;
            }
            continue;
        }
        let index = {
            let mut seen = state.seen.lock().unwrap();
            seen.push(Seen {
                conn: id,
                bytes: head.clone(),
                complete: false,
            });
            seen.len() - 1
        };
        let reply = state
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Reply::Send(DEFAULT_REPLY.to_vec()));
        if let Reply::Early(bytes) = &reply {
            let _ = conn.stream.write_all(bytes).await;
            let _ = conn.stream.shutdown().await;
            let _ = tokio::time::timeout(Duration::from_secs(3), async {
                conn.buf.clear();
                while conn.fill().await {
                    conn.buf.clear();
                }
            })
            .await;
            return;
        }
        let record = |bytes: &[u8]| {
            state.seen.lock().unwrap()[index]
                .bytes
                .extend_from_slice(bytes);
        };
        let complete = match framing(&head) {
            Body::None => true,
            Body::Length(n) => {
                // Recorded as it comes, so a test can wait for part of it.
                let mut left = n;
                while left > 0 {
                    if conn.buf.is_empty() && !conn.fill().await {
                        break;
                    }
                    let take = left.min(conn.buf.len());
                    let part: Vec<u8> = conn.buf.drain(..take).collect();
                    record(&part);
                    left -= take;
                }
                left == 0
            }
            Body::Chunked => read_chunks(&mut conn, &record).await,
        };
        state.seen.lock().unwrap()[index].complete = complete;
        if !complete {
            return;
        }
        let (bytes, close) = match reply {
            Reply::Send(bytes) => (bytes, false),
            Reply::SendClose(bytes) => (bytes, true),
            Reply::Early(_) => unreachable!("answered above"),
        };
        if conn.stream.write_all(&bytes).await.is_err() || close {
            return;
        }
    }
}

/// Reads a chunked body line by line, recording each piece as it comes;
/// true when the last chunk and the trailers' blank line arrived.
async fn read_chunks(conn: &mut Conn, record: &impl Fn(&[u8])) -> bool {
    loop {
        let Some(size_line) = conn.line().await else {
            return false;
        };
        record(&size_line);
        let digits = String::from_utf8_lossy(&size_line);
        let digits = digits.trim_end().split(';').next().unwrap_or("");
        let Ok(size) = usize::from_str_radix(digits, 16) else {
            return false;
        };
        if size == 0 {
            // Trailer lines up to the blank one.
            loop {
                let Some(line) = conn.line().await else {
                    return false;
                };
                record(&line);
                if line == b"\r\n" {
                    return true;
                }
            }
        }
        let Some(data) = conn.take(size + 2).await else {
            return false;
        };
        record(&data);
    }
}
