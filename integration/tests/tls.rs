//! TLS termination on the real binaries: an https client through the proxy
//! to three real nodes (create, cookie-routed Get Session, CometD over wss),
//! a certificate rotated by SIGHUP while a kept-alive connection and a
//! WebSocket stay open, what the node is told (`X-Forwarded-Proto`), and
//! the clients that do not speak TLS or speak it too slowly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use integration::tls::{self, CertFiles, TestCa};
use integration::{client, eventually, proxy_args, start_node, start_proxy, Process, TEST_ORIGIN};
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const SETTLE: Duration = Duration::from_secs(5);
const NAMES: &[&str] = &["localhost", "127.0.0.1"];

/// A fresh directory for one test's certificates.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cobrowse-tls-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The flags that make the proxy serve `served` over TLS.
fn tls_flags(served: &CertFiles) -> Vec<String> {
    vec![
        "--tls-cert".into(),
        served.cert.display().to_string(),
        "--tls-key".into(),
        served.key.display().to_string(),
    ]
}

fn https(proxy: &Process, path: &str) -> String {
    format!("https://{}/cobrowse{path}", proxy.addr)
}

fn cookie_node(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("gcbSessionServer="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

fn copy_over(from: &CertFiles, to: &CertFiles) {
    std::fs::copy(&from.cert, &to.cert).unwrap();
    std::fs::copy(&from.key, &to.key).unwrap();
}

/// A CometD message batch over the WebSocket, and its answer.
async fn bayeux<S>(socket: &mut tokio_tungstenite::WebSocketStream<S>, batch: Value) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    socket.send(Message::text(batch.to_string())).await.unwrap();
    let frame = tokio::time::timeout(SETTLE, socket.next())
        .await
        .expect("an answer in time")
        .expect("socket open")
        .expect("a frame");
    serde_json::from_str(frame.to_text().unwrap()).unwrap()
}

async fn metrics(proxy: &Process) -> String {
    client()
        .get(format!("{}/metrics", proxy.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn https_to_three_nodes_and_a_certificate_rotated_by_sighup() {
    let dir = scratch("rotate");
    let ca = TestCa::new("cobrowse test CA").unwrap();
    let first = ca.issue(&dir, "first", NAMES, "proxy one").unwrap();
    let second = ca.issue(&dir, "second", NAMES, "proxy two").unwrap();
    let served = ca.issue(&dir, "served", NAMES, "placeholder").unwrap();
    copy_over(&first, &served);

    let nodes = [
        start_node("node-1", &[]).await,
        start_node("node-2", &[]).await,
        start_node("node-3", &[]).await,
    ];
    let refs: Vec<&Process> = nodes.iter().collect();
    let flags = tls_flags(&served);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let proxy = start_proxy(&refs, &flags).await;

    // Create over https, then Get Session routed by the cookie, on one
    // kept-alive client.
    let kept = tls::https_client(&ca);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let r = kept
            .post(https(&proxy, "/rest/live/sessions"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(tls::served_certificate(&r), Some(first.der.clone()));
        let owner = cookie_node(&r).expect("the cookie names the owner");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["sessionServerName"], owner.as_str());
        sessions.push((body["sessionToken"].as_str().unwrap().to_owned(), owner));
    }
    let owners: std::collections::HashSet<_> = sessions.iter().map(|(_, o)| o).collect();
    assert_eq!(owners.len(), 3, "spread over the three nodes: {sessions:?}");
    for (token, owner) in &sessions {
        let r = kept
            .get(https(&proxy, &format!("/rest/live/sessions/{token}")))
            .header("Cookie", format!("gcbSessionServer={owner}"))
            .header("Origin", TEST_ORIGIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["sessionServerName"], owner.as_str());
    }

    // CometD over wss, routed by the cookie to the first session's node.
    let (_, owner) = &sessions[0];
    let stream = tls::connect(
        proxy.addr,
        tls::client_config(&ca, &[&rustls::version::TLS13], &[b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(
        stream.get_ref().1.peer_certificates().unwrap()[0].as_ref(),
        first.der.as_slice()
    );
    let mut request = format!("wss://{}/cobrowse/cometd", proxy.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "cookie",
        format!("gcbSessionServer={owner}").parse().unwrap(),
    );
    let (mut socket, _) =
        tokio::time::timeout(SETTLE, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("upgrade in time")
            .expect("upgrade through the proxy");
    let shake = bayeux(
        &mut socket,
        json!([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["websocket"]}]),
    )
    .await;
    assert_eq!(shake[0]["successful"], true, "{shake}");
    let client_id = shake[0]["clientId"].as_str().unwrap().to_owned();

    // Rotate: the same files now hold the second certificate.
    copy_over(&second, &served);
    proxy.signal(Signal::SIGHUP);
    eventually(SETTLE, "the proxy reloads its certificate", || async {
        proxy
            .log()
            .contains("TLS certificate reloaded")
            .then_some(())
    })
    .await;

    // New connections see the new certificate.
    let fresh = tls::https_client(&ca)
        .post(https(&proxy, "/rest/live/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    assert_eq!(tls::served_certificate(&fresh), Some(second.der.clone()));

    // The kept-alive connection goes on, still under the first one (a new
    // connection would have shown the second).
    let (token, owner) = &sessions[1];
    let r = kept
        .get(https(&proxy, &format!("/rest/live/sessions/{token}")))
        .header("Cookie", format!("gcbSessionServer={owner}"))
        .header("Origin", TEST_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(tls::served_certificate(&r), Some(first.der.clone()));

    // So does the WebSocket: its first connect is answered at once.
    let connect = bayeux(
        &mut socket,
        json!([{"channel": "/meta/connect", "clientId": client_id, "connectionType": "websocket"}]),
    )
    .await;
    assert_eq!(connect[0]["channel"], "/meta/connect", "{connect}");
    assert_eq!(connect[0]["successful"], true, "{connect}");
    socket.close(None).await.unwrap();

    // A broken certificate file on the next SIGHUP: logged, and the second
    // certificate stays.
    std::fs::write(&served.cert, "not a certificate").unwrap();
    proxy.signal(Signal::SIGHUP);
    let log = eventually(SETTLE, "the failed reload is logged", || async {
        let log = proxy.log();
        log.contains("TLS reload failed").then_some(log)
    })
    .await;
    assert!(log.contains(&served.cert.display().to_string()), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    let after = tls::https_client(&ca)
        .get(https(&proxy, "/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::OK);
    assert_eq!(tls::served_certificate(&after), Some(second.der.clone()));
}

/// A stand-in node that answers its health check and echoes the
/// `X-Forwarded-*` headers it was sent (the real node exposes none).
async fn start_header_echo() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::HeaderMap;
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/cobrowse/health", get(|| async { "" }))
        .route(
            "/cobrowse/echo",
            get(|headers: HeaderMap| async move {
                let all = |name: &str| -> Vec<String> {
                    headers
                        .get_all(name)
                        .iter()
                        .map(|v| v.to_str().unwrap_or("?").to_owned())
                        .collect()
                };
                axum::Json(json!({
                    "proto": all("x-forwarded-proto"),
                    "host": all("x-forwarded-host"),
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// A proxy serving `served` over TLS in front of the header echo, with
/// `--header-timeout 1s`.
async fn proxy_before_echo(served: &CertFiles, echo: &str) -> Process {
    let mut args = proxy_args(&[]);
    args.extend(["--node".to_owned(), format!("echo={echo}")]);
    args.extend(tls_flags(served));
    args.extend(["--header-timeout".to_owned(), "1s".to_owned()]);
    let proxy = Process::start("sticky-proxy", "proxy", &args, true).await;
    eventually(SETTLE, "the echo node is up", || async {
        let states = integration::proxy_node_states(&proxy).await;
        (states.get("echo").map(String::as_str) == Some("up")).then_some(())
    })
    .await;
    proxy
}

fn certificate(dir: &Path, ca: &TestCa) -> CertFiles {
    ca.issue(dir, "served", NAMES, "proxy").unwrap()
}

#[tokio::test]
async fn the_node_is_told_https_and_only_http11_is_offered() {
    let dir = scratch("proto");
    let ca = TestCa::new("cobrowse test CA").unwrap();
    let served = certificate(&dir, &ca);
    let (echo, _task) = start_header_echo().await;
    let proxy = proxy_before_echo(&served, &echo).await;

    // Whatever the client claims, the node hears https.
    let r = tls::https_client(&ca)
        .get(https(&proxy, "/echo"))
        .header("X-Forwarded-Proto", "http")
        .header("gcbSessionServer", "echo")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["proto"], json!(["https"]), "{seen}");
    assert_eq!(seen["host"], json!([proxy.addr.to_string()]), "{seen}");

    // TLS 1.3 and 1.2, ALPN http/1.1; an h2-only client is refused.
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let stream = tls::connect(
            proxy.addr,
            tls::client_config(&ca, &[version], &[b"h2", b"http/1.1"]),
        )
        .await
        .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    }
    let h2_only = tls::connect(
        proxy.addr,
        tls::client_config(&ca, &[&rustls::version::TLS13], &[b"h2"]),
    )
    .await;
    assert!(h2_only.is_err(), "an h2-only client must be refused");
}

#[tokio::test]
async fn plain_http_and_slow_handshakes_on_the_tls_port_are_cut() {
    let dir = scratch("cut");
    let ca = TestCa::new("cobrowse test CA").unwrap();
    let served = certificate(&dir, &ca);
    let (echo, _task) = start_header_echo().await;
    let proxy = proxy_before_echo(&served, &echo).await;
    let series = "proxy_rejected_total{reason=\"tls_handshake\"}";
    let before = counter(&metrics(&proxy).await, series);

    // Plain HTTP: a plain 400 with the JSON error, then the close.
    let mut plain = TcpStream::connect(proxy.addr).await.unwrap();
    plain
        .write_all(b"GET /cobrowse/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(SETTLE, plain.read_to_end(&mut answer))
        .await
        .expect("answered and closed, no hang")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error"], "bad_request", "{body}");

    // A handshake begun and never finished, and a connection that sends
    // nothing: both closed after --header-timeout (1 s).
    for (case, sent) in [
        ("half a record", &[0x16u8, 0x03, 0x01][..]),
        ("silent", &[]),
    ] {
        let mut slow = TcpStream::connect(proxy.addr).await.unwrap();
        slow.write_all(sent).await.unwrap();
        let started = Instant::now();
        let mut sink = [0u8; 64];
        let end = tokio::time::timeout(SETTLE, slow.read(&mut sink))
            .await
            .unwrap_or_else(|_| panic!("{case}: not cut"));
        assert!(matches!(end, Ok(0) | Err(_)), "{case}: {end:?}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(800),
            "{case}: cut after {took:?}"
        );
    }

    // Each of the three counted; the listener still serves.
    eventually(SETTLE, "three TLS refusals counted", || async {
        (counter(&metrics(&proxy).await, series) >= before + 3).then_some(())
    })
    .await;
    let r = tls::https_client(&ca)
        .get(https(&proxy, "/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
