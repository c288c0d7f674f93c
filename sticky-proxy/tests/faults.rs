//! Issue 9 against fake nodes: routing by CometD `clientId`, retiring nodes
//! a reload removed, early answers that keep the connection usable, resends
//! on a fresh connection, the per-node connection cap, and passive marking
//! that one client cannot turn into a verdict.
// Test helpers: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn client_id(node: &str) -> String {
    format!("{node}.0123456789abcdef0123456789abcdef")
}

fn connect_body(node: &str) -> String {
    format!(
        r#"[{{"channel":"/meta/connect","clientId":"{}","connectionType":"long-polling"}}]"#,
        client_id(node)
    )
}

async fn echo_of(response: reqwest::Response) -> serde_json::Value {
    assert_eq!(response.status(), 200, "expected an echo");
    response.json().await.unwrap()
}

#[tokio::test]
async fn cometd_posts_go_to_the_node_their_client_id_names() {
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
    for path in ["/cobrowse/cometd", "/cobrowse/cometd/connect"] {
        for _ in 0..6 {
            let body = connect_body("node-2");
            let echo = echo_of(
                http.post(proxy.url(path))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(echo["node"], "node-2", "{path}");
            assert_eq!(echo["body"], body.as_str(), "the body arrives unchanged");
        }
    }
    // The clientId wins over a (stale) cookie.
    let echo = echo_of(
        http.post(proxy.url("/cobrowse/cometd/connect"))
            .header("cookie", "gcbSessionServer=node-1")
            .body(connect_body("node-3"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["node"], "node-3");

    // Unknown or malformed clientIds are ignored: balanced (or the cookie).
    for id in [
        "evil.example.0123456789abcdef0123456789abcdef",
        "127.0.0.1:22",
        "node-1",
    ] {
        let mut seen = HashMap::new();
        for _ in 0..3 {
            let body = format!(r#"[{{"channel":"/meta/connect","clientId":"{id}"}}]"#);
            let echo = echo_of(
                http.post(proxy.url("/cobrowse/cometd"))
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            *seen
                .entry(echo["node"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 3, "{id}: balanced {seen:?}");
    }
    // A handshake has no clientId: its cookie routes it, else it is balanced.
    let handshake = r#"[{"channel":"/meta/handshake","version":"1.0"}]"#;
    for _ in 0..3 {
        let echo = echo_of(
            http.post(proxy.url("/cobrowse/cometd/handshake"))
                .header("cookie", "gcbSessionServer=node-1")
                .body(handshake)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(echo["node"], "node-1");
    }
    let mut seen = HashMap::new();
    for _ in 0..3 {
        let echo = echo_of(
            http.post(proxy.url("/cobrowse/cometd/handshake"))
                .body(handshake)
                .send()
                .await
                .unwrap(),
        )
        .await;
        *seen
            .entry(echo["node"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[tokio::test]
async fn the_client_id_is_found_across_chunks_and_large_bodies_stream_through() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--node", &n2.flag()]).await;
    // A chunked body, the clientId split over several small chunks.
    let body = connect_body("node-2");
    let mut chunked = String::new();
    for piece in body.as_bytes().chunks(7) {
        chunked.push_str(&format!(
            "{:x}\r\n{}\r\n",
            piece.len(),
            String::from_utf8_lossy(piece)
        ));
    }
    chunked.push_str("0\r\n\r\n");
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let head = "POST /cobrowse/cometd/connect HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    for piece in chunked.as_bytes().chunks(16) {
        stream.write_all(piece).await.unwrap();
        stream.flush().await.unwrap();
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let (_, json) = answer.split_once("\r\n\r\n").unwrap();
    let echo: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(echo["node"], "node-2", "{answer}");
    assert_eq!(echo["body"], body.as_str());

    // An ordinary answer to a POST whose body was read stays keep-alive.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let mut buffer = Vec::new();
    for _ in 0..3 {
        let request = format!(
            "POST /cobrowse/cometd/connect HTTP/1.1\r\nHost: p\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let (head, answer) = read_answer(&mut stream, &mut buffer).await.unwrap();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        assert!(answer.contains("node-2"), "{answer}");
    }

    // A clientId after a large `data` (the CometD client writes it last) is
    // still found within the peek limit (256 KiB: a node's largest batch), and
    // the body arrives whole. (Beyond the limit the read-ahead stops at the
    // first frame past it, whose size is hyper's: not asserted here.)
    let big = format!(
        r#"[{{"channel":"/x","data":"{}","clientId":"{}"}}]"#,
        "x".repeat(100_000),
        client_id("node-2")
    );
    for _ in 0..2 {
        let echo = echo_of(
            client()
                .post(proxy.url("/cobrowse/cometd"))
                .body(big.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(echo["bodyLength"], big.len());
        assert_eq!(echo["node"], "node-2", "routed by the clientId");
    }
}

/// Writes a proxy config file naming `nodes`.
fn write_config(file: &std::path::Path, nodes: &[&FakeNode]) {
    let text: String = nodes
        .iter()
        .map(|n| format!("[[node]]\nname = \"{}\"\nurl = \"{}\"\n", n.name(), n.url()))
        .collect();
    std::fs::write(file, text).unwrap();
}

fn temp_config(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sticky-proxy-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("proxy.toml")
}

async fn state_of(proxy: &TestProxy, node: &str) -> Option<String> {
    proxy
        .handle
        .nodes()
        .into_iter()
        .find(|n| n.name == node)
        .map(|n| n.state.to_owned())
}

#[tokio::test]
async fn a_removed_node_retires_serves_its_sessions_then_answers_503() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let file = temp_config("retire");
    write_config(&file, &[&n1, &n2]);
    let proxy = TestProxy::start(&["--config", file.to_str().unwrap()]).await;
    let http = client();
    let cached = n1.add_session();
    let get = |token: String| {
        let url = proxy.url(&format!("/cobrowse/rest/live/sessions/{token}"));
        async move {
            client()
                .get(url)
                .header("origin", "http://a")
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(get(cached.clone()).await.status(), 200, "owner now cached");

    write_config(&file, &[&n2]);
    let summary = proxy.handle.reload().unwrap();
    assert_eq!(summary.removed, ["node-1"]);
    proxy.wait_state("node-1", "retiring").await;
    let view = proxy
        .handle
        .nodes()
        .into_iter()
        .find(|n| n.name == "node-1")
        .unwrap();
    assert!(view.retiring);

    // Every kind of binding still reaches it.
    let fresh = n1.add_session();
    for response in [
        http.get(proxy.url("/cobrowse/x"))
            .header("cookie", "gcbSessionServer=node-1")
            .send()
            .await
            .unwrap(),
        http.get(proxy.url("/cobrowse/x"))
            .header("gcbSessionServer", "node-1")
            .send()
            .await
            .unwrap(),
        http.get(proxy.url("/cobrowse/x?gcbSessionServer=node-1"))
            .send()
            .await
            .unwrap(),
        http.post(proxy.url("/cobrowse/cometd/connect"))
            .body(connect_body("node-1"))
            .send()
            .await
            .unwrap(),
        http.post(proxy.url(&format!("/cobrowse/rest/live/sessions/{fresh}/users")))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(node_of(response).await, "node-1");
    }
    let found: shared_types::api::GetSessionResponse =
        get(cached.clone()).await.json().await.unwrap();
    assert_eq!(found.session_server_name, "node-1");
    // No new sessions.
    for _ in 0..4 {
        let created: shared_types::api::CreateSessionResponse = http
            .post(proxy.url("/cobrowse/rest/live/sessions"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(created.session_server_name, "node-2");
    }

    // Its last sessions end: it is gone, and what was bound to it is 503
    // naming it — never a 404 from node-2.
    n1.state.sessions.lock().unwrap().clear();
    let handle = proxy.handle.clone();
    eventually(Duration::from_secs(5), || {
        let handle = handle.clone();
        async move { handle.nodes().iter().all(|n| n.name != "node-1") }
    })
    .await;
    let forwarded_to_n2 = n2.state.forwarded.load(Ordering::SeqCst);
    for response in [
        http.get(proxy.url("/cobrowse/x"))
            .header("cookie", "gcbSessionServer=node-1")
            .send()
            .await
            .unwrap(),
        http.post(proxy.url("/cobrowse/cometd/connect"))
            .body(connect_body("node-1"))
            .send()
            .await
            .unwrap(),
        get(cached.clone()).await,
    ] {
        assert_eq!(response.status(), 503);
        let body = error_body(response).await;
        assert_eq!(body.error, "session_server_unavailable");
        assert!(body.message.contains("node-1"), "{}", body.message);
    }
    assert_eq!(n2.state.forwarded.load(Ordering::SeqCst), forwarded_to_n2);

    // Configured again: a normal node.
    write_config(&file, &[&n1, &n2]);
    let summary = proxy.handle.reload().unwrap();
    assert_eq!(summary.added, ["node-1"]);
    proxy.wait_state("node-1", "up").await;
    let back = http
        .get(proxy.url("/cobrowse/x"))
        .header("cookie", "gcbSessionServer=node-1")
        .send()
        .await
        .unwrap();
    assert_eq!(node_of(back).await, "node-1");
    std::fs::remove_file(&file).unwrap();
}

#[tokio::test]
async fn retiring_ends_at_the_timeout_and_a_readded_node_is_normal_again() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let file = temp_config("retire-timeout");
    write_config(&file, &[&n1, &n2]);
    let proxy = TestProxy::start(&[
        "--config",
        file.to_str().unwrap(),
        "--retire-timeout",
        "400ms",
    ])
    .await;
    n1.add_session();
    // Removed and configured again before it ends: normal again.
    write_config(&file, &[&n2]);
    proxy.handle.reload().unwrap();
    proxy.wait_state("node-1", "retiring").await;
    write_config(&file, &[&n1, &n2]);
    let summary = proxy.handle.reload().unwrap();
    assert_eq!(summary.restored, ["node-1"]);
    proxy.wait_state("node-1", "up").await;
    let mut creators = HashMap::new();
    for _ in 0..4 {
        let created: shared_types::api::CreateSessionResponse = client()
            .post(proxy.url("/cobrowse/rest/live/sessions"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        *creators.entry(created.session_server_name).or_insert(0) += 1;
    }
    assert_eq!(creators.len(), 2, "takes new sessions again: {creators:?}");

    // Removed for good: its sessions are still live, so it retires until
    // the timeout.
    write_config(&file, &[&n2]);
    proxy.handle.reload().unwrap();
    proxy.wait_state("node-1", "retiring").await;
    let handle = proxy.handle.clone();
    eventually(Duration::from_secs(5), || {
        let handle = handle.clone();
        async move { handle.nodes().iter().all(|n| n.name != "node-1") }
    })
    .await;
    let response = client()
        .get(proxy.url("/cobrowse/x"))
        .header("cookie", "gcbSessionServer=node-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(state_of(&proxy, "node-2").await.as_deref(), Some("up"));
    std::fs::remove_file(&file).unwrap();
}

/// Reads one HTTP/1.1 answer (head and a Content-Length body) from
/// `stream`; returns the head (lower-cased) and the body.
async fn read_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(String, String)> {
    let head = tokio::time::timeout(Duration::from_secs(5), read_head(stream, buffer))
        .await
        .ok()??;
    let lower = head.to_ascii_lowercase();
    let length: usize = lower
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buffer.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body: Vec<u8> = buffer.drain(..length).collect();
    Some((lower, String::from_utf8_lossy(&body).into_owned()))
}

/// A POST the proxy answers itself, with head and body in two writes (as
/// Python's http.client sends them), then a GET on the same connection: the
/// GET must be answered, unless the first answer said `Connection: close`.
async fn early_answer_then_get(
    proxy: &TestProxy,
    post: &str,
    body: &[u8],
    body_first: bool,
) -> (String, String) {
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST {post} HTTP/1.1\r\nHost: p\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        "Cookie: gcbSessionServer=node-2\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buffer = Vec::new();
    let first = if body_first {
        stream.write_all(body).await.unwrap();
        read_answer(&mut stream, &mut buffer).await.unwrap()
    } else {
        // The body only after the answer (a client that waits for it).
        let first = read_answer(&mut stream, &mut buffer).await.unwrap();
        let _ = stream.write_all(body).await;
        first
    };
    if first.0.contains("connection: close") {
        return first;
    }
    let sent = stream
        .write_all(b"GET /cobrowse/health HTTP/1.1\r\nHost: p\r\n\r\n")
        .await;
    let second = match sent {
        Ok(()) => read_answer(&mut stream, &mut buffer).await,
        Err(_) => None,
    };
    assert!(
        second.is_some(),
        "kept alive without `Connection: close`, then closed: {first:?}"
    );
    first
}

#[tokio::test]
async fn early_answers_to_a_post_never_keep_alive_and_then_close() {
    let n1 = FakeNode::start("node-1").await;
    let mut n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&[
        "--node",
        &n1.flag(),
        "--node",
        &n2.flag(),
        "--create-budget",
        "1/1h",
    ])
    .await;
    n2.stop().await;
    proxy.wait_state("node-2", "down").await;
    let small = br#"{"role":2,"name":"Agent"}"#;
    for _ in 0..20 {
        let (head, body) = early_answer_then_get(&proxy, "/cobrowse/x", small, true).await;
        assert!(head.starts_with("http/1.1 503"), "{head}");
        assert!(body.contains("session_server_unavailable"));
        assert!(
            !head.contains("connection: close"),
            "a small body is drained: {head}"
        );
    }
    // The body held back until the answer: closed, and said so.
    let (head, _) = early_answer_then_get(&proxy, "/cobrowse/x", small, false).await;
    assert!(head.contains("connection: close"), "{head}");
    // A body too large to drain: closed, and said so.
    let big = vec![b'x'; 100 * 1024];
    let (head, _) = early_answer_then_get(&proxy, "/cobrowse/x", &big, true).await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // A 429 too.
    let create = "/cobrowse/rest/live/sessions";
    let _ = early_answer_then_get(&proxy, create, b"{}", true).await;
    let (head, _) = early_answer_then_get(&proxy, create, b"{}", true).await;
    assert!(head.starts_with("http/1.1 429"), "{head}");
}

/// A raw node that answers the first request of each connection and, when
/// `drop_second` holds, closes the connection on the second one (after its
/// head arrived, before answering): a keep-alive race made deterministic.
async fn flaky_node() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut served = 0;
                while let Some(head) = read_head(&mut stream, &mut buffer).await {
                    let length: usize = head
                        .to_ascii_lowercase()
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buffer.len() < length {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buffer.drain(..length);
                    let health = head.contains("/cobrowse/health");
                    if !health && served >= 1 {
                        return;
                    }
                    if !health {
                        served += 1;
                    }
                    let body = if health { "" } else { "{\"node\":\"flaky\"}" };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncobrowse-live-sessions: 1\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_kept_alive_connection_that_breaks_is_resent_once_to_the_same_node() {
    let (flaky, _task) = flaky_node().await;
    let n1 = FakeNode::start("node-1").await;
    let flag = format!("flaky=http://{flaky}");
    let proxy = TestProxy::start(&["--node", &flag, "--node", &n1.flag()]).await;
    let http = client();
    for round in 0..4 {
        let response = http
            .get(proxy.url("/cobrowse/x"))
            .header("cookie", "gcbSessionServer=flaky")
            .send()
            .await
            .unwrap();
        assert_eq!(node_of(response).await, "flaky", "round {round}");
    }
    // A POST whose body went out (on the kept connection the last GET was
    // answered on) is not sent twice: 502, and the node, which still accepts
    // connections, stays up.
    let broken = http
        .post(proxy.url("/cobrowse/x"))
        .header("cookie", "gcbSessionServer=flaky")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 502);
    assert_eq!(error_body(broken).await.error, "bad_gateway");
    assert_eq!(state_of(&proxy, "flaky").await.as_deref(), Some("up"));
    assert_eq!(
        n1.state.forwarded.load(Ordering::SeqCst),
        0,
        "never another node"
    );
}

#[tokio::test]
async fn a_node_killed_under_a_held_request_is_503_not_502() {
    let mut n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--node", &n2.flag()]).await;
    let http = client();
    // Warm a kept-alive connection, then hold a POST on it.
    let warm = http
        .post(proxy.url("/cobrowse/cometd/connect"))
        .body(connect_body("node-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(node_of(warm).await, "node-1");
    n1.state.slow_ms.store(30_000, Ordering::SeqCst);
    let url = proxy.url("/cobrowse/slow");
    let held = tokio::spawn(async move {
        client()
            .post(url)
            .header("cookie", "gcbSessionServer=node-1")
            .body("[{}]")
            .send()
            .await
            .unwrap()
    });
    let handle = proxy.handle.clone();
    eventually(Duration::from_secs(5), || {
        let handle = handle.clone();
        async move {
            handle
                .nodes()
                .iter()
                .any(|n| n.name == "node-1" && n.in_flight == 1)
        }
    })
    .await;
    n1.stop().await;
    let response = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 503);
    let body = error_body(response).await;
    assert_eq!(body.error, "session_server_unavailable");
    assert!(body.message.contains("node-1"));
}

#[tokio::test]
async fn beyond_max_conns_per_node_requests_get_server_busy_and_the_node_stays_up() {
    let n1 = FakeNode::start("node-1").await;
    n1.state.slow_ms.store(1_500, Ordering::SeqCst);
    let proxy = TestProxy::start(&[
        "--node",
        &n1.flag(),
        "--max-conns-per-node",
        "2",
        "--connect-timeout",
        "200ms",
    ])
    .await;
    let slow = (0..2).map(|_| {
        let url = proxy.url("/cobrowse/slow");
        tokio::spawn(async move { client().get(url).send().await.unwrap().status() })
    });
    let slow: Vec<_> = slow.collect();
    let handle = proxy.handle.clone();
    eventually(Duration::from_secs(5), || {
        let handle = handle.clone();
        async move { handle.nodes()[0].in_flight == 2 }
    })
    .await;
    let response = client()
        .get(proxy.url("/cobrowse/x"))
        .header("cookie", "gcbSessionServer=node-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = error_body(response).await;
    assert_eq!(body.error, "server_busy");
    assert!(body.message.contains("node-1"), "{}", body.message);
    assert_eq!(proxy.handle.nodes()[0].connections, 2);
    for task in slow {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(state_of(&proxy, "node-1").await.as_deref(), Some("up"));
    let response = client()
        .get(proxy.url("/cobrowse/x"))
        .header("cookie", "gcbSessionServer=node-1")
        .send()
        .await
        .unwrap();
    assert_eq!(node_of(response).await, "node-1");
}

#[tokio::test]
async fn one_refused_connect_probes_the_node_and_only_repeated_ones_take_it_down() {
    let mut n1 = FakeNode::start("strike-node").await;
    let n2 = FakeNode::start("other-node").await;
    // Slow health checks: only the probe a failed connect starts (over the
    // health checker's kept connection) checks the node meanwhile.
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
    // New connections are refused; the open one (the health checker's)
    // still gets answers.
    n1.close_listener();
    let bound = || {
        client()
            .get(proxy.url("/cobrowse/x"))
            .header("cookie", "gcbSessionServer=strike-node")
            .send()
    };
    let checks = n1.health_checks();
    let response = bound().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        error_body(response).await.error,
        "session_server_unavailable"
    );
    // The probe it started answers: no verdict.
    eventually(Duration::from_secs(5), || {
        let probed = n1.health_checks() > checks;
        async move { probed }
    })
    .await;
    assert_eq!(state_of(&proxy, "strike-node").await.as_deref(), Some("up"));
    let response = bound().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        state_of(&proxy, "strike-node").await.as_deref(),
        Some("up"),
        "two strikes are no verdict either"
    );
    let response = bound().await.unwrap();
    assert_eq!(response.status(), 503);
    proxy.wait_state("strike-node", "down").await;
    assert_eq!(state_of(&proxy, "other-node").await.as_deref(), Some("up"));
}
