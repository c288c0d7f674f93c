//! The real proxy on 127.0.0.1:0 in front of fake nodes.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USER_SECRET: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn cookie_header_and_query_route_to_the_named_node() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--node", &n2.flag()]).await;
    let http = client();
    for _ in 0..4 {
        let by_cookie = http
            .get(proxy.url("/cobrowse/cometd"))
            .header("cookie", "theme=dark; gcbSessionServer=node-2; x=1")
            .send()
            .await
            .unwrap();
        assert_eq!(node_of(by_cookie).await, "node-2");
        let by_header = http
            .get(proxy.url("/cobrowse/anything"))
            .header("gcbSessionServer", "node-1")
            .send()
            .await
            .unwrap();
        assert_eq!(node_of(by_header).await, "node-1");
        let by_query = http
            .get(proxy.url("/cobrowse/anything?a=b&gcbSessionServer=node-2"))
            .send()
            .await
            .unwrap();
        assert_eq!(node_of(by_query).await, "node-2");
    }
    // A name that is no configured node is ignored: the request is balanced.
    let mut seen = HashMap::new();
    for _ in 0..4 {
        let response = http
            .get(proxy.url("/cobrowse/x"))
            .header("cookie", "gcbSessionServer=127.0.0.1:22")
            .send()
            .await
            .unwrap();
        *seen.entry(node_of(response).await).or_insert(0) += 1;
    }
    assert_eq!(seen.get("node-1"), Some(&2));
    assert_eq!(seen.get("node-2"), Some(&2));
}

#[tokio::test]
async fn unbound_requests_are_spread_and_create_is_never_bound() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let n3 = FakeNode::start("node-3").await;
    let proxy = TestProxy::start(&[
        "--node",
        &n1.flag(),
        "--node",
        &n2.flag(),
        "--node",
        &n3.flag(),
    ])
    .await;
    let http = client();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..9 {
        let response = http
            .get(proxy.url("/cobrowse/cometd"))
            .send()
            .await
            .unwrap();
        *seen.entry(node_of(response).await).or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.values().all(|count| *count == 3), "{seen:?}");

    // Create Session with a stale cookie is still balanced, and the new
    // cookie names the node that took it.
    let mut creators = HashMap::new();
    for _ in 0..3 {
        let response = http
            .post(proxy.url("/cobrowse/rest/live/sessions"))
            .header("cookie", "gcbSessionServer=node-1")
            .header("gcbSessionServer", "node-1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: shared_types::api::CreateSessionResponse = response.json().await.unwrap();
        assert!(cookie.starts_with(&format!("gcbSessionServer={}", body.session_server_name)));
        *creators.entry(body.session_server_name).or_insert(0) += 1;
    }
    assert_eq!(creators.len(), 3, "{creators:?}");
}

#[tokio::test]
async fn draining_node_keeps_bound_requests_but_gets_no_new_ones() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--node", &n2.flag()]).await;
    proxy.wait_state("node-1", "up").await;
    n1.state.health.store(503, Ordering::SeqCst);
    proxy.wait_state("node-1", "draining").await;
    let http = client();
    for _ in 0..4 {
        let response = http
            .post(proxy.url("/cobrowse/rest/live/sessions"))
            .send()
            .await
            .unwrap();
        let body: shared_types::api::CreateSessionResponse = response.json().await.unwrap();
        assert_eq!(body.session_server_name, "node-2");
    }
    let bound = http
        .get(proxy.url("/cobrowse/x"))
        .header("cookie", "gcbSessionServer=node-1")
        .send()
        .await
        .unwrap();
    assert_eq!(node_of(bound).await, "node-1");
    // The proxy's own health: ready while node-2 is up.
    let health = http
        .get(proxy.url("/cobrowse/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.bytes().await.unwrap().len(), 0);
    n2.state.health.store(503, Ordering::SeqCst);
    proxy.wait_state("node-2", "draining").await;
    let health = http
        .get(proxy.url("/cobrowse/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let none = http.get(proxy.url("/cobrowse/x")).send().await.unwrap();
    assert_eq!(none.status(), 503);
    assert_eq!(error_body(none).await.error, "no_server_available");
}

#[tokio::test]
async fn session_paths_are_routed_to_the_owner_found_by_lookup() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&[
        "--node",
        &n1.flag(),
        "--node",
        &n2.flag(),
        "--lookup-origin",
        "https://agent.example",
    ])
    .await;
    let token = n2.add_session();
    let http = client();
    for _ in 0..5 {
        let response = http
            .get(proxy.url(&format!("/cobrowse/rest/live/sessions/{token}")))
            .header("origin", "https://agent.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: shared_types::api::GetSessionResponse = response.json().await.unwrap();
        assert_eq!(body.session_server_name, "node-2");
    }
    // One lookup round (each node asked once), then the cache.
    assert_eq!((n1.lookups(), n2.lookups()), (1, 1));
    assert_eq!(n2.lookup_origins(), ["https://agent.example"]);

    // Sub-resources and user-token paths go to the same owner, from the cache.
    let join = http
        .post(proxy.url(&format!("/cobrowse/rest/live/sessions/{token}/users")))
        .send()
        .await
        .unwrap();
    assert_eq!(node_of(join).await, "node-2");
    let stop = http
        .get(proxy.url(&format!(
            "/cobrowse/rest/live/users/{token}-{USER_SECRET}/session/stop"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(node_of(stop).await, "node-2");
    assert_eq!((n1.lookups(), n2.lookups()), (1, 1));

    // The owner forgets the session: its 404 drops the cache entry…
    n2.state.sessions.lock().unwrap().remove(&token);
    let gone = http
        .get(proxy.url(&format!("/cobrowse/rest/live/sessions/{token}/users")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    // …and, the request having no body, the proxy looked again at once (no
    // owner: the 404 stands). The next request looks up again, finds no
    // owner and is balanced; whichever node gets it answers 404.
    let unknown = http
        .get(proxy.url(&format!("/cobrowse/rest/live/sessions/{token}")))
        .header("origin", "https://agent.example")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!((n1.lookups(), n2.lookups()), (3, 3));
}

#[tokio::test]
async fn a_lookup_a_node_could_not_answer_is_503_not_a_guess() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--node", &n2.flag()]).await;
    // node-2 passes its health checks but fails the lookup: the session may
    // be there, so the request must not be balanced to node-1.
    n2.state.lookup_failure.store(500, Ordering::SeqCst);
    let token = n2.add_session();
    let response = client()
        .get(proxy.url(&format!("/cobrowse/rest/live/sessions/{token}")))
        .header("origin", "http://a")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body = error_body(response).await;
    assert_eq!(body.error, "session_server_unavailable");
    assert!(body.message.contains("node-2"), "{}", body.message);
    assert_eq!(n1.state.forwarded.load(Ordering::SeqCst), 0);

    // Once node-2 answers again, the owner is found (nothing was cached).
    n2.state.lookup_failure.store(0, Ordering::SeqCst);
    let response = client()
        .get(proxy.url(&format!("/cobrowse/rest/live/sessions/{token}")))
        .header("origin", "http://a")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: shared_types::api::GetSessionResponse = response.json().await.unwrap();
    assert_eq!(body.session_server_name, "node-2");
}

#[tokio::test]
async fn a_stale_cached_owner_is_looked_up_again_for_a_bodiless_request() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--node", &n2.flag()]).await;
    let token = n1.add_session();
    let get = || {
        client()
            .get(proxy.url(&format!("/cobrowse/rest/live/sessions/{token}")))
            .header("origin", "http://a")
            .send()
    };
    let first: shared_types::api::GetSessionResponse = get().await.unwrap().json().await.unwrap();
    assert_eq!(first.session_server_name, "node-1");
    // The session is forgotten on node-1 and the same nine digits now name
    // a new session on node-2, while the proxy still caches node-1.
    n1.state.sessions.lock().unwrap().remove(&token);
    n2.state.sessions.lock().unwrap().insert(token.clone());
    let response = get().await.unwrap();
    assert_eq!(response.status(), 200);
    let second: shared_types::api::GetSessionResponse = response.json().await.unwrap();
    assert_eq!(second.session_server_name, "node-2");
}

#[tokio::test]
async fn a_lookup_while_a_node_is_down_is_503_naming_it() {
    let n1 = FakeNode::start("node-1").await;
    let mut n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--node", &n2.flag()]).await;
    n2.stop().await;
    proxy.wait_state("node-2", "down").await;
    // The session may have lived on node-2: node-1 must not get the request.
    let response = client()
        .get(proxy.url(&format!("/cobrowse/rest/live/sessions/{}", new_token())))
        .header("origin", "http://a")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body = error_body(response).await;
    assert_eq!(body.error, "session_server_unavailable");
    assert!(body.message.contains("node-2"), "{}", body.message);
    assert_eq!(n1.state.forwarded.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_tokens_are_not_looked_up() {
    let n1 = FakeNode::start("node-1").await;
    let proxy = TestProxy::start(&["--node", &n1.flag()]).await;
    let http = client();
    for path in [
        "/cobrowse/rest/live/sessions/12345",
        "/cobrowse/rest/live/sessions/abcdefghi",
        "/cobrowse/rest/live/users/123456789-XYZ/session/stop",
    ] {
        let response = http
            .get(proxy.url(path))
            .header("origin", "http://a")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(n1.lookups(), 0);
}

#[tokio::test]
async fn concurrent_lookups_of_one_session_coalesce() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--node", &n2.flag()]).await;
    let token = n1.add_session();
    let http = client();
    let requests = (0..8).map(|_| {
        let http = http.clone();
        let url = proxy.url(&format!("/cobrowse/rest/live/sessions/{token}/users"));
        async move { node_of(http.post(url).send().await.unwrap()).await }
    });
    let owners = futures_util::future::join_all(requests).await;
    assert!(owners.iter().all(|owner| owner == "node-1"), "{owners:?}");
    assert_eq!((n1.lookups(), n2.lookups()), (1, 1));
    // Without --lookup-origin the proxy's own origin is sent.
    assert_eq!(n1.lookup_origins(), [format!("http://{}", proxy.addr)]);
}

#[tokio::test]
async fn bound_request_to_a_stopped_node_gets_503_quickly() {
    let n1 = FakeNode::start("node-1").await;
    let mut n2 = FakeNode::start("node-2").await;
    // Slow health checks: the failure must be found by forwarding itself.
    let proxy = TestProxy::start(&[
        "--node",
        &n1.flag(),
        "--node",
        &n2.flag(),
        "--health-interval",
        "1h",
        "--health-timeout",
        "1s",
    ])
    .await;
    let token = n2.add_session();
    let http = client();
    let warm = http
        .get(proxy.url("/cobrowse/x"))
        .header("cookie", "gcbSessionServer=node-2")
        .send()
        .await
        .unwrap();
    assert_eq!(node_of(warm).await, "node-2");
    let owner = http
        .post(proxy.url(&format!("/cobrowse/rest/live/sessions/{token}/users")))
        .send()
        .await
        .unwrap();
    assert_eq!(node_of(owner).await, "node-2");

    n2.stop().await;
    let started = Instant::now();
    let response = http
        .get(proxy.url("/cobrowse/x"))
        .header("cookie", "gcbSessionServer=node-2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body = error_body(response).await;
    assert_eq!(body.error, "session_server_unavailable");
    assert!(body.message.contains("node-2"), "{}", body.message);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    proxy.wait_state("node-2", "down").await;

    // Known down now: answered at once, never sent to node-1.
    let forwarded_before = n1.state.forwarded.load(Ordering::SeqCst);
    let started = Instant::now();
    let response = http
        .get(proxy.url("/cobrowse/x?gcbSessionServer=node-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        error_body(response).await.error,
        "session_server_unavailable"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(n1.state.forwarded.load(Ordering::SeqCst), forwarded_before);

    // Unbound requests go to the node that is left.
    let unbound = http.get(proxy.url("/cobrowse/x")).send().await.unwrap();
    assert_eq!(node_of(unbound).await, "node-1");
}

#[tokio::test]
async fn unbound_request_is_retried_when_the_connect_fails() {
    let n1 = FakeNode::start("node-1").await;
    let mut n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&[
        "--node",
        &n1.flag(),
        "--node",
        &n2.flag(),
        "--health-interval",
        "1h",
        "--health-timeout",
        "1s",
    ])
    .await;
    proxy.wait_state("node-2", "up").await;
    n2.stop().await;
    let http = client();
    for _ in 0..4 {
        let response = http
            .post(proxy.url("/cobrowse/rest/live/sessions"))
            .body("{}")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: shared_types::api::CreateSessionResponse = response.json().await.unwrap();
        assert_eq!(body.session_server_name, "node-1");
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_forwarded_headers_added() {
    let n1 = FakeNode::start("node-1").await;
    // The test client is a trusted front: its X-Forwarded-For is passed on
    // (an untrusted client's is replaced; see forward.rs's unit tests).
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--trusted-proxies", "127.0.0.1"]).await;
    let request = "GET /cobrowse/echo?q=1 HTTP/1.1\r\n\
        Host: cobrowse.example:8443\r\n\
        Connection: close, X-Secret\r\n\
        X-Secret: 1\r\n\
        Keep-Alive: timeout=5\r\n\
        Proxy-Authorization: Basic eDp5\r\n\
        TE: trailers\r\n\
        Upgrade: h2c\r\n\
        X-Forwarded-For: 203.0.113.9\r\n\
        Origin: https://site.example\r\n\
        Referer: https://site.example/page\r\n\
        Cookie: a=b; gcbSessionServer=node-1\r\n\
        \r\n";
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head_lower = head.to_ascii_lowercase();
    assert!(
        !head_lower.contains("x-internal"),
        "response hop-by-hop kept: {head}"
    );
    assert!(!head_lower.contains("keep-alive"), "{head}");
    assert!(head_lower.contains("x-node: node-1"));
    let echo: serde_json::Value = serde_json::from_str(body).unwrap();
    let headers = echo["headers"].as_object().unwrap();
    for stripped in [
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
        "upgrade",
    ] {
        assert!(
            !headers.contains_key(stripped),
            "{stripped} forwarded: {headers:?}"
        );
    }
    assert_eq!(headers["host"], "cobrowse.example:8443");
    assert_eq!(headers["x-forwarded-host"], "cobrowse.example:8443");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(headers["origin"], "https://site.example");
    assert_eq!(headers["referer"], "https://site.example/page");
    assert_eq!(headers["cookie"], "a=b; gcbSessionServer=node-1");
    assert_eq!(echo["path"], "/cobrowse/echo?q=1");
}

#[tokio::test]
async fn request_bodies_stream_through() {
    let n1 = FakeNode::start("node-1").await;
    let proxy = TestProxy::start(&["--node", &n1.flag()]).await;
    // A chunked upload (unknown length) is forwarded as it comes.
    let request = "POST /cobrowse/upload HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\
        Connection: close\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n";
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    let echo: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(echo["method"], "POST");
    assert!(
        echo["headers"].get("transfer-encoding").is_some(),
        "re-framed chunked by the proxy"
    );
}

#[tokio::test]
async fn oversize_request_head_gets_431() {
    let n1 = FakeNode::start("node-1").await;
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--max-head-size", "16KiB"]).await;
    let big = "x".repeat(20 * 1024);
    let request =
        format!("GET /cobrowse/x HTTP/1.1\r\nHost: p\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer}"
    );
    // hyper's own answer: no body, and the connection is closed.
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("content-length: 0\r\n"), "{answer}");
    assert!(lower.contains("connection: close\r\n"), "{answer}");
    // Just under the limit is fine.
    let ok = "x".repeat(15 * 1024);
    let request =
        format!("GET /cobrowse/x HTTP/1.1\r\nHost: p\r\nX-Big: {ok}\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn slow_response_head_gets_504_but_slow_bodies_are_not_cut() {
    let n1 = FakeNode::start("node-1").await;
    n1.state.slow_ms.store(2_000, Ordering::SeqCst);
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--upstream-timeout", "200ms"]).await;
    let http = client();
    let started = Instant::now();
    let response = http.get(proxy.url("/cobrowse/slow")).send().await.unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(error_body(response).await.error, "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The node is not taken down for being slow.
    assert_eq!(proxy.handle.nodes()[0].state, "up");
    n1.state.slow_ms.store(100, Ordering::SeqCst);
    let response = http.get(proxy.url("/cobrowse/slow")).send().await.unwrap();
    assert_eq!(node_of(response).await, "node-1");
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled_to_the_bound_node() {
    let ws = RawUpgradeNode::start().await;
    let n1 = FakeNode::start("node-1").await;
    let ws_flag = format!("ws-node=http://{}", ws.addr);
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--node", &ws_flag]).await;
    proxy.wait_state("ws-node", "up").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let request = "GET /cobrowse/cometd HTTP/1.1\r\n\
        Host: proxy\r\n\
        Connection: keep-alive, Upgrade\r\n\
        Upgrade: websocket\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Cookie: gcbSessionServer=ws-node\r\n\
        \r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = Vec::new();
    let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream, &mut buffer))
        .await
        .unwrap()
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(lower.contains("connection: upgrade"), "{head}");
    for message in [&b"hello"[..], b"\x81\x05frame", &[0u8; 3000]] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message);
    }
    let in_flight = proxy
        .handle
        .nodes()
        .iter()
        .find(|n| n.name == "ws-node")
        .unwrap()
        .in_flight;
    assert_eq!(in_flight, 1, "the open tunnel counts in flight");
    drop(stream);
    let handle = proxy.handle.clone();
    eventually(Duration::from_secs(5), || {
        let handle = handle.clone();
        async move { handle.nodes().iter().all(|n| n.in_flight == 0) }
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let n1 = FakeNode::start("node-1").await;
    n1.state.slow_ms.store(300, Ordering::SeqCst);
    let mut proxy = TestProxy::start(&["--node", &n1.flag()]).await;
    let http = client();
    let url = proxy.url("/cobrowse/slow");
    let in_flight = tokio::spawn(async move { http.get(url).send().await.unwrap().status() });
    let handle = proxy.handle.clone();
    eventually(Duration::from_secs(5), || {
        let handle = handle.clone();
        async move { handle.nodes()[0].in_flight == 1 }
    })
    .await;
    let serving = proxy.begin_shutdown();
    assert_eq!(in_flight.await.unwrap(), 200);
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(proxy.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn reload_adds_and_removes_nodes() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let dir = std::env::temp_dir().join(format!("sticky-proxy-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.toml");
    let write = |nodes: &[&FakeNode]| {
        let text: String = nodes
            .iter()
            .map(|n| format!("[[node]]\nname = \"{}\"\nurl = \"{}\"\n", n.name(), n.url()))
            .collect();
        std::fs::write(&file, text).unwrap();
    };
    write(&[&n1]);
    let proxy = TestProxy::start(&["--config", file.to_str().unwrap()]).await;
    let http = client();
    let ignored = http
        .get(proxy.url("/cobrowse/x"))
        .header("cookie", "gcbSessionServer=node-2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        node_of(ignored).await,
        "node-1",
        "node-2 is not configured yet"
    );

    write(&[&n1, &n2]);
    let summary = proxy.handle.reload().unwrap();
    assert_eq!(summary.added, ["node-2"]);
    assert_eq!(summary.kept, 1);
    proxy.wait_state("node-2", "up").await;
    let routed = http
        .get(proxy.url("/cobrowse/x"))
        .header("cookie", "gcbSessionServer=node-2")
        .send()
        .await
        .unwrap();
    assert_eq!(node_of(routed).await, "node-2");

    // Removed while it holds no session: retiring, then gone at its next
    // health answer; its name is then answered 503, never re-routed.
    write(&[&n2]);
    let summary = proxy.handle.reload().unwrap();
    assert_eq!(summary.removed, ["node-1"]);
    let handle = proxy.handle.clone();
    eventually(Duration::from_secs(5), || {
        let handle = handle.clone();
        async move { handle.nodes().iter().all(|n| n.name != "node-1") }
    })
    .await;
    let gone = http
        .get(proxy.url("/cobrowse/x"))
        .header("cookie", "gcbSessionServer=node-1")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 503, "a retired node's name is not re-routed");
    let body = error_body(gone).await;
    assert_eq!(body.error, "session_server_unavailable");
    assert!(body.message.contains("node-1"), "{}", body.message);

    std::fs::write(&file, "not toml [").unwrap();
    assert!(proxy.handle.reload().is_err());
    assert_eq!(proxy.handle.nodes().len(), 1, "a bad file changes nothing");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn admin_serves_metrics_and_nodes() {
    // The recorder is process-wide: a node name no other test uses.
    let n1 = FakeNode::start("admin-node").await;
    let proxy = TestProxy::start_with_admin(&["--node", &n1.flag()], true).await;
    let admin = proxy.handle.admin_addr().unwrap();
    let http = client();
    let token = n1.add_session();
    for path in [
        "/cobrowse/x".to_owned(),
        format!("/cobrowse/rest/live/sessions/{token}/users"),
        format!("/cobrowse/rest/live/sessions/{token}/users"),
    ] {
        let response = http
            .get(proxy.url(&path))
            .header("gcbSessionServer", "other")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let nodes: serde_json::Value = http
        .get(format!("http://{admin}/nodes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(nodes[0]["name"], "admin-node");
    assert_eq!(nodes[0]["url"], n1.url());
    assert_eq!(nodes[0]["state"], "up");
    assert_eq!(nodes[0]["inFlight"], 0);
    let metrics = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "proxy_requests_total{node=\"admin-node\",status=\"200\"}",
        "proxy_routing_decisions_total{kind=\"balanced\"}",
        "proxy_routing_decisions_total{kind=\"lookup_miss\"}",
        "proxy_routing_decisions_total{kind=\"lookup_hit\"}",
        "proxy_node_state{node=\"admin-node\"} 1",
        "proxy_lookup_duration_seconds_bucket",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn shutdown_timeout_cuts_what_is_left() {
    let n1 = FakeNode::start("node-1").await;
    n1.state.slow_ms.store(10_000, Ordering::SeqCst);
    let mut proxy = TestProxy::start(&["--node", &n1.flag(), "--shutdown-timeout", "200ms"]).await;
    let url = proxy.url("/cobrowse/slow");
    let stuck = tokio::spawn(async move { client().get(url).send().await });
    let handle = proxy.handle.clone();
    eventually(Duration::from_secs(5), || {
        let handle = handle.clone();
        async move { handle.nodes()[0].in_flight == 1 }
    })
    .await;
    let started = Instant::now();
    proxy.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let outcome = tokio::time::timeout(Duration::from_secs(5), stuck)
        .await
        .unwrap()
        .unwrap();
    assert!(outcome.is_err(), "the cut request fails rather than hangs");
}
