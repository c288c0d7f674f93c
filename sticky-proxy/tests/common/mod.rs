//! Test support: fake session nodes, a raw TCP WebSocket-ish node, and a
//! proxy started on 127.0.0.1:0 in front of them.
#![allow(dead_code)]
// Test support: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use shared_types::api::{CreateSessionResponse, GetSessionResponse};
use shared_types::error::ErrorBody;
use sticky_proxy::{Config, Proxy, ProxyHandle, ServeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// Session tokens unique across every fake node of the test process.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(100_000_000);

pub fn new_token() -> String {
    format!("{:09}", NEXT_TOKEN.fetch_add(1, Ordering::Relaxed))
}

/// What a fake node knows and counts.
#[derive(Debug)]
pub struct FakeState {
    pub name: String,
    /// Status of `/cobrowse/health` (200 ready, 503 draining).
    pub health: AtomicU16,
    pub sessions: Mutex<HashSet<String>>,
    /// `GET …/sessions/{token}` that came without `X-Forwarded-For`, i.e.
    /// from the proxy's owner lookup rather than a forwarded client request.
    pub lookups: AtomicUsize,
    /// The `Origin` of every lookup.
    pub lookup_origins: Mutex<Vec<String>>,
    /// Forwarded requests (with `X-Forwarded-For`).
    pub forwarded: AtomicUsize,
    /// Delay before the response head of `/cobrowse/slow`.
    pub slow_ms: AtomicU64,
    /// When set, owner lookups get this status instead of an answer (a node
    /// in trouble that still passes its health check).
    pub lookup_failure: AtomicU16,
    /// Health checks answered.
    pub health_checks: AtomicUsize,
}

/// A session node stand-in: answers with its own name and emulates
/// `/health` and the session resources.
pub struct FakeNode {
    pub state: Arc<FakeState>,
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    close_listener: Option<oneshot::Sender<()>>,
}

impl FakeNode {
    pub async fn start(name: &str) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(name, listener)
    }

    pub fn start_on(name: &str, listener: TcpListener) -> FakeNode {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeState {
            name: name.to_owned(),
            health: AtomicU16::new(200),
            sessions: Mutex::new(HashSet::new()),
            lookups: AtomicUsize::new(0),
            lookup_origins: Mutex::new(Vec::new()),
            forwarded: AtomicUsize::new(0),
            slow_ms: AtomicU64::new(0),
            lookup_failure: AtomicU16::new(0),
            health_checks: AtomicUsize::new(0),
        });
        let task_state = state.clone();
        let (close_tx, mut close_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Dropping this set (when the task is aborted) kills every
            // connection, as a dying process would.
            let mut conns = JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = &mut close_rx => {
                        // Stop listening (new connects are refused) but keep
                        // serving the connections already open.
                        drop(listener);
                        while conns.join_next().await.is_some() {}
                        std::future::pending::<()>().await;
                        return;
                    }
                };
                let Ok((stream, _)) = accepted else {
                    continue;
                };
                let state = task_state.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        FakeNode {
            state,
            addr,
            task: Some(task),
            close_listener: Some(close_tx),
        }
    }

    /// Closes the listening socket (new connects are refused) while the
    /// connections already open keep being served.
    pub fn close_listener(&mut self) {
        if let Some(close) = self.close_listener.take() {
            let _ = close.send(());
        }
    }

    pub fn health_checks(&self) -> usize {
        self.state.health_checks.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn flag(&self) -> String {
        format!("{}={}", self.state.name, self.url())
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Stops the node: listener closed, every connection dropped (awaited,
    /// so the sockets are closed when this returns).
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    pub fn add_session(&self) -> String {
        let token = new_token();
        self.state.sessions.lock().unwrap().insert(token.clone());
        token
    }

    pub fn lookups(&self) -> usize {
        self.state.lookups.load(Ordering::SeqCst)
    }

    pub fn lookup_origins(&self) -> Vec<String> {
        self.state.lookup_origins.lock().unwrap().clone()
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(value).unwrap())))
        .unwrap()
}

async fn answer(state: &FakeState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let forwarded = req.headers().contains_key("x-forwarded-for");
    if forwarded {
        state.forwarded.fetch_add(1, Ordering::SeqCst);
    }
    if path == "/cobrowse/health" {
        state.health_checks.fetch_add(1, Ordering::SeqCst);
        let status = StatusCode::from_u16(state.health.load(Ordering::SeqCst)).unwrap();
        let live = state.sessions.lock().unwrap().len();
        return Response::builder()
            .status(status)
            .header(shared_types::names::LIVE_SESSIONS_HEADER, live.to_string())
            .body(Full::default())
            .unwrap();
    }
    if path == "/cobrowse/slow" {
        let delay = state.slow_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if req.method() == http::Method::POST && path == "/cobrowse/rest/live/sessions" {
        let token = new_token();
        state.sessions.lock().unwrap().insert(token.clone());
        let mut response = json(
            StatusCode::OK,
            &CreateSessionResponse {
                session_token: token,
                session_server_name: state.name.clone(),
            },
        );
        response.headers_mut().insert(
            "set-cookie",
            format!("gcbSessionServer={}; Path=/", state.name)
                .parse()
                .unwrap(),
        );
        return response;
    }
    let session = path
        .strip_prefix("/cobrowse/rest/live/sessions/")
        .map(|rest| rest.split('/').next().unwrap_or("").to_owned())
        .or_else(|| {
            path.strip_prefix("/cobrowse/rest/live/users/")
                .and_then(|rest| rest.split('/').next())
                .and_then(|user| user.split_once('-'))
                .map(|(session, _)| session.to_owned())
        });
    if let Some(token) = session {
        let is_get_session = req.method() == http::Method::GET
            && path == format!("/cobrowse/rest/live/sessions/{token}");
        if is_get_session && !forwarded {
            state.lookups.fetch_add(1, Ordering::SeqCst);
            let failure = state.lookup_failure.load(Ordering::SeqCst);
            if failure != 0 {
                return json(
                    StatusCode::from_u16(failure).unwrap(),
                    &ErrorBody::new("internal_error", "failing on purpose"),
                );
            }
            let origin = req
                .headers()
                .get("origin")
                .map(|o| o.to_str().unwrap().to_owned());
            state
                .lookup_origins
                .lock()
                .unwrap()
                .push(origin.unwrap_or_default());
        }
        if is_get_session
            && !req.headers().contains_key("origin")
            && !req.headers().contains_key("referer")
        {
            return json(
                StatusCode::FORBIDDEN,
                &ErrorBody::new("origin_not_allowed", "no origin"),
            );
        }
        if !state.sessions.lock().unwrap().contains(&token) {
            return json(
                StatusCode::NOT_FOUND,
                &ErrorBody::new("session_not_found", "unknown"),
            );
        }
        if is_get_session {
            return json(
                StatusCode::OK,
                &GetSessionResponse {
                    session_token: token,
                    session_server_name: state.name.clone(),
                    session_server_url: None,
                },
            );
        }
    }
    let (parts, body) = req.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    echo(state, &parts, &body)
}

/// `{"node": …, "method": …, "path": …, "headers": {name: value}, "body":
/// …, "bodyLength": …}`, with hop-by-hop headers of its own the proxy must
/// strip.
fn echo(state: &FakeState, req: &http::request::Parts, body: &[u8]) -> Response<Full<Bytes>> {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                serde_json::Value::String(value.to_str().unwrap_or("?").to_owned()),
            )
        })
        .collect();
    let mut response = json(
        StatusCode::OK,
        &serde_json::json!({
            "node": state.name,
            "method": req.method.as_str(),
            "path": req.uri.to_string(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body[..body.len().min(4096)]),
            "bodyLength": body.len(),
        }),
    );
    let h = response.headers_mut();
    h.insert("x-node", state.name.parse().unwrap());
    h.insert("x-internal", "secret".parse().unwrap());
    h.insert("connection", "x-internal".parse().unwrap());
    h.insert("keep-alive", "timeout=5".parse().unwrap());
    response
}

/// A raw TCP node: answers `/cobrowse/health` with 200 (keep-alive), and an
/// upgrade request with 101 then echoes every byte back.
pub struct RawUpgradeNode {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RawUpgradeNode {
    pub async fn start() -> RawUpgradeNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(raw_conn(stream));
                while conns.try_join_next().is_some() {}
            }
        });
        RawUpgradeNode { addr, task }
    }
}

impl Drop for RawUpgradeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_conn(mut stream: TcpStream) {
    let mut buffer = Vec::new();
    loop {
        let Some(head) = read_head(&mut stream, &mut buffer).await else {
            return;
        };
        let lower = head.to_ascii_lowercase();
        if lower.contains("upgrade: websocket") {
            let reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: fake\r\n\r\n";
            if stream.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
            if !buffer.is_empty() && stream.write_all(&buffer).await.is_err() {
                return;
            }
            let (mut read, mut write) = stream.split();
            let _ = tokio::io::copy(&mut read, &mut write).await;
            return;
        }
        let reply = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one request head (up to the blank line); leftover bytes stay in
/// `buffer`.
pub async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end + 4]).into_owned();
            buffer.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// A proxy on 127.0.0.1:0 with fast health checks.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub handle: ProxyHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

/// Fast checks so tests see state changes within a few hundred ms; `fall`
/// of 3 so a check slowed down by a loaded machine does not flap a node.
pub const FAST: &[&str] = &[
    "--health-interval",
    "100ms",
    "--health-timeout",
    "100ms",
    "--rise",
    "1",
    "--fall",
    "3",
];

impl TestProxy {
    pub async fn start(args: &[&str]) -> TestProxy {
        Self::start_with_admin(args, false).await
    }

    pub async fn start_with_admin(args: &[&str], admin: bool) -> TestProxy {
        let mut all = vec!["sticky-proxy"];
        all.extend_from_slice(FAST);
        all.extend_from_slice(args);
        let config = Config::from_args(all).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = if admin {
            Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
        } else {
            None
        };
        let proxy = Proxy::new(config, listener, admin_listener).unwrap();
        let addr = proxy.local_addr();
        let handle = proxy.handle();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.serve(async move {
            let _ = rx.await;
        }));
        let proxy = TestProxy {
            addr,
            handle,
            shutdown: Some(tx),
            task: Some(task),
        };
        // Every test starts with all its nodes up.
        let handle = proxy.handle.clone();
        eventually(Duration::from_secs(10), || {
            let handle = handle.clone();
            async move { handle.nodes().iter().all(|n| n.state == "up") }
        })
        .await;
        proxy
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Triggers the graceful shutdown and waits for `serve` to return.
    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Starts the graceful shutdown without waiting.
    pub fn begin_shutdown(&mut self) -> JoinHandle<Result<(), ServeError>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap()
    }

    /// Waits until the proxy reports `node` in `state`.
    pub async fn wait_state(&self, node: &str, state: &str) {
        let handle = self.handle.clone();
        eventually(Duration::from_secs(5), || {
            let handle = handle.clone();
            async move {
                handle
                    .nodes()
                    .iter()
                    .any(|n| n.name == node && n.state == state)
            }
        })
        .await;
        let _ = (node, state);
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Polls `condition` until true or panics after `deadline`.
pub async fn eventually<F, Fut>(deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `node` field of an echo answer.
pub async fn node_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200, "expected an echo");
    let body: serde_json::Value = response.json().await.unwrap();
    body["node"].as_str().unwrap().to_owned()
}

/// Sends raw bytes, reads the whole answer (the request should say
/// `Connection: close`).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

pub async fn error_body(response: reqwest::Response) -> ErrorBody {
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "proxy errors are JSON"
    );
    response.json().await.unwrap()
}
