//! Forwarding a request to a node: the pooled upstream client, header
//! rewriting, the body types that stream both ways without buffering, and
//! the tunnel for WebSocket upgrades.

use std::error::Error as StdError;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;

use crate::body::ClientBody;
use crate::nodes::{InFlight, Node};
use crate::pool::Lease;

/// The client for the proxy's own requests to nodes (health checks, owner
/// lookups). Forwarded requests use each node's [`crate::pool`].
pub type UpstreamClient = Client<HttpConnector, UpstreamBody>;

/// Builds the upstream client: TCP_NODELAY (small request/response
/// exchanges must not wait for Nagle) and a short connect timeout so a dead
/// node is noticed in about a second, not after the OS's minutes.
pub fn upstream_client(connect_timeout: Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// Body of a request sent to a node.
#[derive(Debug)]
pub enum UpstreamBody {
    /// No body (health checks, lookups, bodiless client requests).
    Empty,
    /// The client's body, streamed as it arrives.
    Client(ClientBody),
    /// The client's body behind a slot the caller keeps, so that a request
    /// whose connection could not be established (nothing was sent) can be
    /// sent again to another node with the same, still unread, body.
    Retryable(RetryableBody),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Client(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Retryable(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Client(body) => body.is_end_stream(),
            UpstreamBody::Retryable(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Client(body) => body.size_hint(),
            UpstreamBody::Retryable(body) => body.size_hint(),
        }
    }
}

/// A client body that stays in a shared slot until first polled.
///
/// The upstream client polls a request body only once the connection is
/// established; if the connect fails the body is still in the slot and the
/// caller can take it back for another node. The lock is only taken for the
/// first poll and for size queries before it, never across an await.
#[derive(Debug)]
pub struct RetryableBody {
    slot: Arc<Mutex<Option<ClientBody>>>,
    taken: Option<ClientBody>,
}

/// The caller's side of a [`RetryableBody`].
#[derive(Debug, Clone)]
pub struct BodySlot(Arc<Mutex<Option<ClientBody>>>);

impl BodySlot {
    pub fn new(body: ClientBody) -> Self {
        BodySlot(Arc::new(Mutex::new(Some(body))))
    }

    /// A body reading from this slot.
    pub fn body(&self) -> UpstreamBody {
        UpstreamBody::Retryable(RetryableBody {
            slot: self.0.clone(),
            taken: None,
        })
    }

    /// Whether the body is still unread (it can be sent again).
    pub fn is_unread(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Takes the body back if it was never sent (to drain it before an
    /// answer the proxy makes itself).
    pub fn take_unread(&self) -> Option<ClientBody> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl RetryableBody {
    fn with_slot<T>(&self, f: impl FnOnce(Option<&ClientBody>) -> T) -> T {
        match &self.taken {
            Some(body) => f(Some(body)),
            None => f(self
                .slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()),
        }
    }
}

impl Body for RetryableBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.taken.is_none() {
            this.taken = this
                .slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
        match &mut this.taken {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.with_slot(|body| body.is_none_or(Body::is_end_stream))
    }

    fn size_hint(&self) -> SizeHint {
        self.with_slot(|body| body.map_or_else(|| SizeHint::with_exact(0), Body::size_hint))
    }
}

/// Body of a response to the client.
#[derive(Debug)]
pub enum ProxyBody {
    Empty,
    /// A body the proxy made (JSON errors, admin pages).
    Full(Option<Bytes>),
    /// The node's body, streamed; the guard keeps the request counted in
    /// flight until the last byte is sent (long-polling included).
    Upstream {
        body: Incoming,
        in_flight: InFlight,
        /// The node connection, back to its pool once the body is done.
        lease: Option<Lease>,
    },
}

impl ProxyBody {
    pub fn full(bytes: Bytes) -> Self {
        ProxyBody::Full(Some(bytes))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Upstream { body, lease, .. } => {
                let frame = Pin::new(&mut *body).poll_frame(cx);
                let done = match &frame {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
                    Poll::Ready(Some(Err(_))) => {
                        // A broken body: its connection is not reusable.
                        lease.take();
                        false
                    }
                    Poll::Pending => false,
                };
                if done {
                    if let Some(lease) = lease.take() {
                        lease.give_back();
                    }
                }
                frame
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(bytes) => bytes.is_none(),
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ProxyBody::Upstream { body, .. } => body.size_hint(),
        }
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Whether the request asks for a WebSocket upgrade (`Upgrade: websocket`
/// and `Connection: upgrade`). Other upgrades are not tunnelled: their
/// `Upgrade` header is stripped like any hop-by-hop header.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|value| has_token(value, "websocket"));
    upgrade
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|value| has_token(value, "upgrade"))
}

fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .as_bytes()
        .split(|b| *b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Removes the hop-by-hop headers: `Connection` and every header it names,
/// `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding` and
/// `Upgrade`. When `upgrade` is set, `Connection: upgrade` and `Upgrade` are
/// kept so the node sees the upgrade request (or the client the 101).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most heads carry none of them: one pass over the names (cheap enum
    // compares for the standard ones) saves a hash-and-probe per header
    // removed below.
    if !upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let mut connection = headers.get_all(header::CONNECTION).iter();
    let first = connection.next().cloned();
    if connection.next().is_some() {
        // Several `Connection` headers: rare enough to allocate.
        let values: Vec<HeaderValue> = headers
            .get_all(header::CONNECTION)
            .iter()
            .cloned()
            .collect();
        headers.remove(header::CONNECTION);
        for value in &values {
            remove_listed(headers, value, upgrade);
        }
    } else if let Some(value) = first {
        headers.remove(header::CONNECTION);
        remove_listed(headers, &value, upgrade);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(header::TE);
    headers.remove(header::TRAILER);
    headers.remove(header::TRANSFER_ENCODING);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
    if headers
        .keys()
        .any(|name| name.as_str().starts_with("proxy-"))
    {
        let proxy_headers: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for name in proxy_headers {
            headers.remove(name);
        }
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == KEEP_ALIVE
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name.as_str().starts_with("proxy-")
}

/// Removes the headers a `Connection` value lists.
fn remove_listed(headers: &mut HeaderMap, connection: &HeaderValue, upgrade: bool) {
    for name in connection.as_bytes().split(|b| *b == b',') {
        let name = name.trim_ascii();
        if name.is_empty() || (upgrade && name.eq_ignore_ascii_case(b"upgrade")) {
            continue;
        }
        if let Ok(name) = std::str::from_utf8(name) {
            // A `&str` key is parsed on the stack: no allocation. `remove`
            // drops every value of the name.
            headers.remove(name);
        }
    }
}

/// Facts about the client connection a request came on, computed once per
/// connection.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client's IP as a header value, appended to `X-Forwarded-For`.
    pub ip: HeaderValue,
    /// The peer is a `--trusted-proxies` hop: the `X-Forwarded-For` it sent
    /// is passed on (with the peer appended). From anyone else it is
    /// dropped, so the nodes never see entries a client wrote itself.
    pub trusted: bool,
    /// The connection came over TLS: `X-Forwarded-Proto: https`.
    pub tls: bool,
}

impl ClientInfo {
    pub fn new(peer: std::net::SocketAddr, trusted: bool) -> Self {
        let ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ClientInfo {
            ip,
            trusted,
            tls: false,
        }
    }

    /// The same client, on a TLS connection.
    pub fn over_tls(mut self) -> Self {
        self.tls = true;
        self
    }
}

/// Rewrites a client request's head for the node: hop-by-hop headers out,
/// `X-Forwarded-For` (client IP appended to a trusted peer's, replacing an
/// untrusted one's), `X-Forwarded-Proto` (`http`, or `https` over TLS) and
/// `X-Forwarded-Host` (the client's `Host`) in. `Host`, `Origin`, `Referer`
/// and `Cookie` pass untouched. The request goes to the node as HTTP/1.1 so
/// that the node connection can be kept alive whatever the client spoke.
pub fn prepare_request(parts: &mut Parts, client: &ClientInfo, upgrade: bool) {
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers, upgrade);
    match headers.entry(&X_FORWARDED_FOR) {
        header::Entry::Occupied(mut entry) if client.trusted => {
            let mut joined = Vec::with_capacity(64);
            for value in entry.iter() {
                if !joined.is_empty() {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(value.as_bytes());
            }
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(client.ip.as_bytes());
            if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(joined)) {
                entry.insert(value);
            }
        }
        // Absent, or written by an untrusted client: the peer alone.
        header::Entry::Occupied(mut entry) => {
            entry.insert(client.ip.clone());
        }
        header::Entry::Vacant(entry) => {
            entry.insert(client.ip.clone());
        }
    }
    let proto = if client.tls { "https" } else { "http" };
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    match headers.get(header::HOST).cloned() {
        Some(host) => {
            headers.insert(&X_FORWARDED_HOST, host);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
    parts.version = Version::HTTP_11;
}

/// Rewrites a node's response head for the client: hop-by-hop headers out,
/// except on a 101 where `Connection`/`Upgrade` complete the handshake.
pub fn prepare_response(headers: &mut HeaderMap, upgrade: bool) {
    strip_hop_by_hop(headers, upgrade);
}

/// The request's target as the node gets it: origin form (path and query),
/// without re-formatting any string. The connection already goes to the node.
pub fn upstream_uri(uri: &Uri) -> Option<Uri> {
    let path_and_query = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    if !path_and_query.as_str().starts_with('/') {
        return None;
    }
    Some(Uri::from(path_and_query))
}

/// How a forward failed (see [`crate::pool`] for how each is decided).
#[derive(Debug)]
pub enum ForwardFailure {
    /// The node refused a connection or did not accept one within
    /// `--connect-timeout` (also: a connection broke under a request that
    /// went out, and the node then refused a fresh one). A strike against
    /// the node ([`crate::passive`]).
    Connect,
    /// The proxy's own resources ran out (file descriptors, ports): nothing
    /// was sent, and it says nothing about the node.
    Local,
    /// `--max-conns-per-node` connections are open and the short queue is
    /// full or timed out: nothing was sent.
    Busy,
    /// The response head did not arrive in time.
    Timeout,
    /// Any other failure before a response head (a connection that broke
    /// though the node still accepts new ones, a malformed answer…).
    Other,
}

/// Sends a prepared request to `node` over its connection pool, waiting at
/// most `timeout` for the response head. A request without `Host` (HTTP/1.0)
/// gets the node's authority.
pub async fn send(
    node: &Node,
    mut request: Request<UpstreamBody>,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<(Response<Incoming>, Lease), ForwardFailure> {
    if !request.headers().contains_key(header::HOST) {
        if let Ok(host) = HeaderValue::from_str(node.authority().as_str()) {
            request.headers_mut().insert(header::HOST, host);
        }
    }
    node.pool()
        .send(request, connect_timeout, timeout, |kind| {
            node.count_failure(kind)
        })
        .await
}

/// Whether an error chain holds a local resource error (the proxy out of
/// file descriptors or sockets), as opposed to anything about the peer.
pub(crate) fn is_local(error: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(io_error) = error.downcast_ref::<io::Error>() {
            if crate::pool::is_local_error(io_error) {
                return true;
            }
        }
        current = error.source();
    }
    false
}

/// Displays an error with its sources.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn StdError + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

/// Joins the client's upgraded connection and the node's, copying both ways
/// until either side closes or `stop` turns true (the shutdown deadline).
/// `in_flight` keeps the tunnel counted against its node.
pub fn spawn_tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    in_flight: InFlight,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let node = in_flight.node().name_arc().clone();
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%error, %node, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(error) = result {
                    tracing::debug!(%error, %node, "tunnel closed with an error");
                }
            }
            () = crate::raised(&mut stop) => {
                tracing::debug!(%node, "tunnel cut at shutdown");
            }
        }
        drop(in_flight);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("cookie", "gcbSessionServer=node-1"),
            ("origin", "http://a"),
            ("host", "proxy:8700"),
        ]);
        strip_hop_by_hop(&mut map, false);
        let mut names: Vec<_> = map.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["cookie", "host", "origin"]);
    }

    #[test]
    fn upgrade_keeps_its_headers() {
        let mut map = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "abc"),
        ]);
        assert!(is_websocket_upgrade(&map));
        strip_hop_by_hop(&mut map, true);
        assert_eq!(map["connection"], "upgrade");
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["sec-websocket-key"], "abc");
    }

    #[test]
    fn websocket_needs_both_headers() {
        assert!(!is_websocket_upgrade(&headers(&[("upgrade", "websocket")])));
        assert!(!is_websocket_upgrade(&headers(&[
            ("connection", "upgrade"),
            ("upgrade", "h2c")
        ])));
        assert!(is_websocket_upgrade(&headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "WebSocket")
        ])));
    }

    #[test]
    fn forwarded_proto_is_the_client_connection_s() {
        let peer = "10.1.2.3:5555".parse().unwrap();
        for (client, sent, want) in [
            (ClientInfo::new(peer, true), "https", "http"),
            (ClientInfo::new(peer, false).over_tls(), "http", "https"),
            (ClientInfo::new(peer, true).over_tls(), "http", "https"),
        ] {
            let (mut parts, ()) = Request::builder()
                .uri("/")
                .header("x-forwarded-proto", sent)
                .body(())
                .unwrap()
                .into_parts();
            prepare_request(&mut parts, &client, false);
            let got: Vec<_> = parts.headers.get_all("x-forwarded-proto").iter().collect();
            assert_eq!(got, [want], "{client:?} sent {sent}");
        }
    }

    #[test]
    fn forwarded_headers_are_added() {
        let client = ClientInfo::new("10.1.2.3:5555".parse().unwrap(), true);
        let (mut parts, ()) = Request::builder()
            .uri("/cobrowse/x")
            .header("host", "cobrowse.example")
            .header("x-forwarded-for", "1.1.1.1")
            .header("x-forwarded-for", "2.2.2.2")
            .header("x-forwarded-proto", "https")
            .body(())
            .unwrap()
            .into_parts();
        prepare_request(&mut parts, &client, false);
        assert_eq!(
            parts.headers["x-forwarded-for"],
            "1.1.1.1, 2.2.2.2, 10.1.2.3"
        );
        assert_eq!(parts.headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(parts.headers["x-forwarded-proto"], "http");
        assert_eq!(parts.headers["x-forwarded-host"], "cobrowse.example");
        assert_eq!(parts.headers["host"], "cobrowse.example");

        let (mut parts, ()) = Request::builder().uri("/").body(()).unwrap().into_parts();
        prepare_request(&mut parts, &client, false);
        assert_eq!(parts.headers["x-forwarded-for"], "10.1.2.3");
        assert!(parts.headers.get("x-forwarded-host").is_none());

        // From an untrusted peer, what the client wrote is not passed on.
        let untrusted = ClientInfo::new("10.1.2.3:5555".parse().unwrap(), false);
        let (mut parts, ()) = Request::builder()
            .uri("/")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-for", "7.7.7.7")
            .body(())
            .unwrap()
            .into_parts();
        prepare_request(&mut parts, &untrusted, false);
        assert_eq!(parts.headers["x-forwarded-for"], "10.1.2.3");
        assert_eq!(parts.headers.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn upstream_uri_keeps_path_and_query() {
        let uri: Uri = "/cobrowse/rest?a=1&b=2".parse().unwrap();
        assert_eq!(
            upstream_uri(&uri).unwrap().to_string(),
            "/cobrowse/rest?a=1&b=2"
        );
        // An absolute-form target never names where the proxy connects.
        let absolute: Uri = "http://elsewhere:1/p?q".parse().unwrap();
        assert_eq!(upstream_uri(&absolute).unwrap().to_string(), "/p?q");
        let star: Uri = "*".parse().unwrap();
        assert!(upstream_uri(&star).is_none());
    }
}
