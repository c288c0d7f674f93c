//! Issue 8 at the proxy: budgets for guessers and creators, per address (or
//! per verified agent), two owners of one token, connections per address
//! and slow request heads. The real proxy on 127.0.0.1:0 in front of fake
//! nodes; two client addresses are simulated with `--trusted-proxies
//! 127.0.0.1` and `X-Forwarded-For`.
// Test helpers: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use access::agent::{mint, MintRequest};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USER_SECRET: &str = "0123456789abcdef0123456789abcdef";
const GUESSER: &str = "198.51.100.7";
const OTHER: &str = "203.0.113.9";
const AGENT_SECRET: &[u8] = b"a-test-secret-of-more-than-32-bytes!";
const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn session_path(token: &str) -> String {
    format!("/cobrowse/rest/live/sessions/{token}")
}

fn user_stop_path(token: &str) -> String {
    format!("/cobrowse/rest/live/users/{token}-{USER_SECRET}/session/stop")
}

/// One request through the proxy as some client.
#[derive(Debug, Clone, Default)]
struct Ask<'a> {
    path: String,
    /// `X-Forwarded-For` (believed only from a trusted peer).
    xff: Option<&'a str>,
    bearer: Option<String>,
    cookie: bool,
}

/// What came back: status, error code (if JSON error), `Retry-After`.
#[derive(Debug, PartialEq)]
struct Got {
    status: u16,
    code: Option<String>,
    retry_after: Option<u64>,
}

async fn ask(proxy: &TestProxy, ask: &Ask<'_>) -> Got {
    let mut request = client()
        .get(proxy.url(&ask.path))
        .header("origin", "http://a");
    if let Some(xff) = ask.xff {
        request = request.header("x-forwarded-for", xff);
    }
    if let Some(bearer) = &ask.bearer {
        request = request.header("authorization", format!("Bearer {bearer}"));
    }
    if ask.cookie {
        request = request.header("cookie", "gcbSessionServer=node-1");
    }
    read_got(request.send().await.unwrap()).await
}

async fn read_got(response: reqwest::Response) -> Got {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    Got {
        status,
        code: body["error"].as_str().map(str::to_owned),
        retry_after,
    }
}

async fn create(proxy: &TestProxy, xff: Option<&str>) -> Got {
    let mut request = client().post(proxy.url("/cobrowse/rest/live/sessions"));
    if let Some(xff) = xff {
        request = request.header("x-forwarded-for", xff);
    }
    read_got(request.send().await.unwrap()).await
}

fn agent_token(sub: &str) -> String {
    mint(
        AGENT_SECRET,
        &MintRequest {
            sub,
            ttl: Duration::from_secs(3600),
            session_token: None,
            roles: None,
        },
    )
    .unwrap()
}

fn key_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sticky-proxy-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("agent.key");
    std::fs::write(&path, AGENT_SECRET).unwrap();
    path
}

fn assert_refused(got: &Got, code: &str, window_secs: u64, what: &str) {
    assert_eq!(got.status, 429, "{what}: {got:?}");
    assert_eq!(got.code.as_deref(), Some(code), "{what}");
    let retry = got.retry_after.unwrap_or(0);
    assert!(
        (1..=window_secs).contains(&retry),
        "{what}: Retry-After {retry}"
    );
}

#[tokio::test]
async fn a_guesser_is_refused_after_its_budget_and_no_one_else_is() {
    let n1 = FakeNode::start("node-1").await;
    let proxy = TestProxy::start(&[
        "--node",
        &n1.flag(),
        "--trusted-proxies",
        "127.0.0.1",
        "--probe-budget",
        "3/10m",
    ])
    .await;
    let live = n1.add_session();
    let from = |xff, path: String| Ask {
        path,
        xff: Some(xff),
        ..Ask::default()
    };
    // (request, status): in order, each row sees the rows above it.
    let steps: Vec<(Ask, u16)> = vec![
        (from(GUESSER, session_path(&new_token())), 404),
        // A hit spends nothing.
        (from(GUESSER, session_path(&live)), 200),
        // User-token paths reveal tokens too.
        (from(GUESSER, user_stop_path(&new_token())), 404),
        // So does a token path routed by cookie rather than by lookup.
        (
            Ask {
                cookie: true,
                ..from(GUESSER, session_path(&new_token()))
            },
            404,
        ),
        // Three misses: the guesser is refused, even for a live token.
        (from(GUESSER, session_path(&live)), 429),
        (from(GUESSER, session_path(&new_token())), 429),
        (from(GUESSER, user_stop_path(&new_token())), 429),
        // Another address has a budget of its own.
        (from(OTHER, session_path(&new_token())), 404),
        (from(OTHER, session_path(&live)), 200),
    ];
    for (i, (request, want)) in steps.iter().enumerate() {
        let before = (n1.lookups(), n1.state.forwarded.load(Ordering::SeqCst));
        let got = ask(&proxy, request).await;
        assert_eq!(got.status, *want, "step {i}: {request:?} → {got:?}");
        if *want == 429 {
            assert_refused(&got, "too_many_attempts", 600, &format!("step {i}"));
            let after = (n1.lookups(), n1.state.forwarded.load(Ordering::SeqCst));
            assert_eq!(
                before, after,
                "step {i}: a refused probe is neither looked up nor forwarded"
            );
        }
    }
    // Creating a session reveals no token: the guesser may still create.
    assert_eq!(create(&proxy, Some(GUESSER)).await.status, 200);
}

#[tokio::test]
async fn forged_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let n1 = FakeNode::start("node-1").await;
    // The peer (127.0.0.1) is not trusted: no list, or a list without it.
    for trusted in [None, Some("10.0.0.0/8")] {
        let flag = n1.flag();
        let mut args = vec!["--node", flag.as_str(), "--probe-budget", "2/10m"];
        if let Some(list) = trusted {
            args.extend(["--trusted-proxies", list]);
        }
        let proxy = TestProxy::start(&args).await;
        // Every request claims another address: all share the peer's budget.
        let steps = [
            (Some("1.1.1.1"), 404),
            (Some("2.2.2.2"), 404),
            (Some("3.3.3.3"), 429),
            (None, 429),
            (Some("1.1.1.1, 4.4.4.4"), 429),
        ];
        for (xff, want) in steps {
            let got = ask(
                &proxy,
                &Ask {
                    path: session_path(&new_token()),
                    xff,
                    ..Ask::default()
                },
            )
            .await;
            assert_eq!(
                got.status, want,
                "trusted {trusted:?}, xff {xff:?}: {got:?}"
            );
        }
    }
}

#[tokio::test]
async fn agents_with_a_valid_credential_are_budgeted_per_agent() {
    let n1 = FakeNode::start("node-1").await;
    let key = key_file("agents");
    let proxy = TestProxy::start(&[
        "--node",
        &n1.flag(),
        "--trusted-proxies",
        "127.0.0.1",
        "--probe-budget",
        "2/10m",
        "--agent-key-file",
        key.to_str().unwrap(),
    ])
    .await;
    let ann = agent_token("ann");
    let bob = agent_token("bob");
    let forged = mint(
        b"another-secret-another-secret-xx",
        &MintRequest {
            sub: "bob",
            ttl: Duration::from_secs(3600),
            session_token: None,
            roles: None,
        },
    )
    .unwrap();
    // (bearer, status): every request from the one address GUESSER.
    let steps: Vec<(Option<&str>, u16)> = vec![
        (Some(&ann), 404),
        (Some(&ann), 404),
        // Ann's typos spent Ann's budget…
        (Some(&ann), 429),
        // …not Bob's, behind the same NAT address…
        (Some(&bob), 404),
        // …nor the address's: an invalid credential is the address.
        (Some("not.a.jwt"), 404),
        (Some(&forged), 404),
        (None, 429),
        (Some("not.a.jwt"), 429),
        // Bob still has his own.
        (Some(&bob), 404),
        (Some(&bob), 429),
    ];
    for (i, (bearer, want)) in steps.iter().enumerate() {
        let got = ask(
            &proxy,
            &Ask {
                path: session_path(&new_token()),
                xff: Some(GUESSER),
                bearer: bearer.map(str::to_owned),
                cookie: false,
            },
        )
        .await;
        assert_eq!(got.status, *want, "step {i}: {got:?}");
    }

    // Without agent keys every budget is per address, bearer or not.
    let plain = TestProxy::start(&["--node", &n1.flag(), "--probe-budget", "2/10m"]).await;
    for (bearer, want) in [(&ann, 404), (&bob, 404), (&ann, 429), (&bob, 429)] {
        let got = ask(
            &plain,
            &Ask {
                path: session_path(&new_token()),
                bearer: Some(bearer.clone()),
                ..Ask::default()
            },
        )
        .await;
        assert_eq!(got.status, want, "{got:?}");
    }
    let _ = std::fs::remove_dir_all(key.parent().unwrap());
}

#[tokio::test]
async fn the_probe_budget_recovers_after_its_window() {
    let n1 = FakeNode::start("node-1").await;
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--probe-budget", "2/1s"]).await;
    let miss = || Ask {
        path: session_path(&new_token()),
        ..Ask::default()
    };
    assert_eq!(ask(&proxy, &miss()).await.status, 404);
    assert_eq!(ask(&proxy, &miss()).await.status, 404);
    let refused = ask(&proxy, &miss()).await;
    assert_refused(&refused, "too_many_attempts", 1, "spent");
    let proxy = &proxy;
    eventually(Duration::from_secs(5), || async move {
        ask(proxy, &miss()).await.status == 404
    })
    .await;
}

#[tokio::test]
async fn creates_beyond_the_create_budget_are_429() {
    let n1 = FakeNode::start("node-1").await;
    let proxy = TestProxy::start(&[
        "--node",
        &n1.flag(),
        "--trusted-proxies",
        "127.0.0.1",
        "--create-budget",
        "2/10m",
    ])
    .await;
    let steps = [
        (GUESSER, 200),
        (GUESSER, 200),
        (GUESSER, 429),
        (GUESSER, 429),
        (OTHER, 200),
    ];
    for (i, (xff, want)) in steps.iter().enumerate() {
        let got = create(&proxy, Some(xff)).await;
        assert_eq!(got.status, *want, "step {i}: {got:?}");
        if *want == 429 {
            assert_refused(&got, "too_many_creates", 600, &format!("step {i}"));
        }
    }
    assert_eq!(
        n1.state.sessions.lock().unwrap().len(),
        3,
        "refused creates never reach a node"
    );
}

#[tokio::test]
async fn lookups_never_pick_between_two_owners() {
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start(&["--node", &n1.flag(), "--node", &n2.flag()]).await;
    // (on node-1, on node-2, node-2's lookups fail) → (status, code or node)
    let rows: &[(bool, bool, bool, u16, &str)] = &[
        (true, true, false, 409, "session_ambiguous"),
        (true, false, false, 200, "node-1"),
        // One 200, and a node that did not answer: the 200 is the owner.
        (true, false, true, 200, "node-1"),
        (false, true, false, 200, "node-2"),
        (false, false, true, 503, "session_server_unavailable"),
        (false, false, false, 404, "session_not_found"),
    ];
    for &(on1, on2, fails2, status, what) in rows {
        let token = new_token();
        for (node, on) in [(&n1, on1), (&n2, on2)] {
            if on {
                node.state.sessions.lock().unwrap().insert(token.clone());
            }
        }
        n2.state
            .lookup_failure
            .store(if fails2 { 500 } else { 0 }, Ordering::SeqCst);
        let forwarded_before =
            n1.state.forwarded.load(Ordering::SeqCst) + n2.state.forwarded.load(Ordering::SeqCst);
        let response = client()
            .get(proxy.url(&session_path(&token)))
            .header("origin", "http://a")
            .send()
            .await
            .unwrap();
        let row = (on1, on2, fails2);
        assert_eq!(response.status(), status, "{row:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        let got = body["sessionServerName"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap();
        assert_eq!(got, what, "{row:?}: {body}");
        if status == 409 {
            let forwarded = n1.state.forwarded.load(Ordering::SeqCst)
                + n2.state.forwarded.load(Ordering::SeqCst);
            assert_eq!(forwarded, forwarded_before, "sent to neither owner");
            // Not cached: asked again, and any request of the session is 409.
            let lookups = (n1.lookups(), n2.lookups());
            let join = client()
                .post(proxy.url(&format!("{}/users", session_path(&token))))
                .send()
                .await
                .unwrap();
            assert_eq!(join.status(), 409);
            assert_eq!(error_body(join).await.error, "session_ambiguous");
            assert_eq!((n1.lookups(), n2.lookups()), (lookups.0 + 1, lookups.1 + 1));
            // Once one of them no longer has it, the other is the owner.
            n2.state.sessions.lock().unwrap().remove(&token);
            let response = client()
                .get(proxy.url(&session_path(&token)))
                .header("origin", "http://a")
                .send()
                .await
                .unwrap();
            let body: shared_types::api::GetSessionResponse = response.json().await.unwrap();
            assert_eq!(body.session_server_name, "node-1");
        }
    }
}

/// Sends one request on a kept-alive connection and reads its answer
/// (content-length framed): (status line, body).
async fn exchange(stream: &mut TcpStream, path: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: proxy\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = Vec::new();
    let head = tokio::time::timeout(Duration::from_secs(5), read_head(stream, &mut buffer))
        .await
        .unwrap()
        .expect("an answer");
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buffer.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed mid-body");
        buffer.extend_from_slice(&chunk[..n]);
    }
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, String::from_utf8_lossy(&buffer).into_owned())
}

/// Connects and proves the proxy serves the connection.
async fn served(proxy: &TestProxy) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (status, _) = exchange(&mut stream, "/cobrowse/x").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    stream
}

async fn wait_connections(proxy: &TestProxy, want: u32) {
    let handle = proxy.handle.clone();
    eventually(Duration::from_secs(5), || {
        let handle = handle.clone();
        async move { handle.client_connections(LOCALHOST) == want }
    })
    .await;
}

#[tokio::test]
async fn connections_beyond_the_cap_get_429_and_closed_ones_free_their_slot() {
    let n1 = FakeNode::start("node-1").await;
    let ws = RawUpgradeNode::start().await;
    let ws_flag = format!("ws-node=http://{}", ws.addr);
    let proxy = TestProxy::start(&[
        "--node",
        &n1.flag(),
        "--node",
        &ws_flag,
        "--max-connections-per-client",
        "2",
    ])
    .await;
    proxy.wait_state("ws-node", "up").await;
    // Requests name the echo node (unbound ones could go to the ws node).
    let mut first = TcpStream::connect(proxy.addr).await.unwrap();
    first
        .write_all(
            b"GET /cobrowse/x HTTP/1.1\r\nHost: p\r\nCookie: gcbSessionServer=node-1\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let head = read_head(&mut first, &mut buffer).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // A WebSocket tunnel holds its connection too.
    let mut tunnel = TcpStream::connect(proxy.addr).await.unwrap();
    tunnel
        .write_all(
            b"GET /cobrowse/cometd HTTP/1.1\r\nHost: p\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              Cookie: gcbSessionServer=ws-node\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let head = read_head(&mut tunnel, &mut buffer).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    wait_connections(&proxy, 2).await;

    // The third is answered 429 and closed, whatever it sends.
    for request in [&b"GET /cobrowse/x HTTP/1.1\r\nHost: p\r\n\r\n"[..], b""] {
        let mut third = TcpStream::connect(proxy.addr).await.unwrap();
        third.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        let body: shared_types::error::ErrorBody = serde_json::from_str(body).unwrap();
        assert_eq!(body.error, "too_many_connections");
    }
    assert_eq!(proxy.handle.client_connections(LOCALHOST), 2);

    // Closing the tunnel frees its slot; a new connection is served.
    drop(tunnel);
    wait_connections(&proxy, 1).await;
    let replacement = {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream
            .write_all(
                b"GET /cobrowse/x HTTP/1.1\r\nHost: p\r\nCookie: gcbSessionServer=node-1\r\n\r\n",
            )
            .await
            .unwrap();
        let mut buffer = Vec::new();
        let head = read_head(&mut stream, &mut buffer).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        stream
    };
    wait_connections(&proxy, 2).await;
    drop((first, replacement));
    // Nothing leaks: the address leaves the map with its last connection.
    let handle = proxy.handle.clone();
    eventually(Duration::from_secs(5), || {
        let handle = handle.clone();
        async move { handle.connected_clients() == 0 }
    })
    .await;

    // Many short connections in a row leave nothing behind either.
    for _ in 0..20 {
        let _ = raw_exchange(
            proxy.addr,
            b"GET /cobrowse/x HTTP/1.1\r\nHost: p\r\nCookie: gcbSessionServer=node-1\r\nConnection: close\r\n\r\n",
        )
        .await;
    }
    eventually(Duration::from_secs(5), || {
        let handle = handle.clone();
        async move { handle.connected_clients() == 0 }
    })
    .await;
}

#[tokio::test]
async fn a_slow_request_head_is_cut_but_an_idle_keep_alive_connection_is_not() {
    let n1 = FakeNode::start("node-1").await;
    let timeout = Duration::from_millis(300);
    let proxy = TestProxy::start(&[
        "--node",
        &n1.flag(),
        "--header-timeout",
        "300ms",
        "--keep-alive-timeout",
        "60s",
    ])
    .await;
    // Kept alive and idle from here on.
    let mut idle = served(&proxy).await;

    // (what, a request to complete first, the bytes of the slow head)
    let rows: &[(&str, bool, &[u8])] = &[
        ("a connection that sends nothing", false, b""),
        (
            "half a first head",
            false,
            b"GET /cobrowse/x HTTP/1.1\r\nHost: p\r\n",
        ),
        ("one byte", false, b"G"),
        (
            "half a second head",
            true,
            b"GET /cobrowse/x HTTP/1.1\r\nHo",
        ),
    ];
    for (what, warm, bytes) in rows {
        let started = Instant::now();
        let mut stream = if *warm {
            served(&proxy).await
        } else {
            TcpStream::connect(proxy.addr).await.unwrap()
        };
        let head_started = Instant::now();
        stream.write_all(bytes).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{what}: not closed"));
        // Closed (EOF or reset), without an answer.
        let _ = read;
        assert!(
            answer.is_empty(),
            "{what}: {}",
            String::from_utf8_lossy(&answer)
        );
        let waited = if *warm { head_started } else { started }.elapsed();
        assert!(waited >= timeout, "{what}: closed after {waited:?}");
    }
    // The idle connection outlived every slow head above: it is bounded by
    // --keep-alive-timeout, not by --header-timeout.
    let (status, _) = exchange(&mut idle, "/cobrowse/x").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let (status, _) = exchange(&mut idle, "/cobrowse/x").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}

#[tokio::test]
async fn refusals_are_counted_in_metrics() {
    // The only test of this binary with an admin listener: the recorder is
    // process-wide.
    let n1 = FakeNode::start("node-1").await;
    let n2 = FakeNode::start("node-2").await;
    let proxy = TestProxy::start_with_admin(
        &[
            "--node",
            &n1.flag(),
            "--node",
            &n2.flag(),
            "--probe-budget",
            "1/10m",
            "--create-budget",
            "1/10m",
            "--max-connections-per-client",
            "3",
            "--header-timeout",
            "200ms",
        ],
        true,
    )
    .await;
    let admin = proxy.handle.admin_addr().unwrap();
    // session_ambiguous
    let token = new_token();
    n1.state.sessions.lock().unwrap().insert(token.clone());
    n2.state.sessions.lock().unwrap().insert(token.clone());
    let got = ask(
        &proxy,
        &Ask {
            path: session_path(&token),
            ..Ask::default()
        },
    )
    .await;
    assert_eq!(got.status, 409);
    // too_many_attempts
    let miss = || Ask {
        path: session_path(&new_token()),
        ..Ask::default()
    };
    assert_eq!(ask(&proxy, &miss()).await.status, 404);
    assert_eq!(ask(&proxy, &miss()).await.status, 429);
    // too_many_creates
    assert_eq!(create(&proxy, None).await.status, 200);
    assert_eq!(create(&proxy, None).await.status, 429);
    // header_timeout
    let mut slow = TcpStream::connect(proxy.addr).await.unwrap();
    slow.write_all(b"GET /cobrowse/x HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut sink)).await;
    // too_many_connections (reqwest's pool may hold some connections too)
    let mut held = Vec::new();
    loop {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream
            .write_all(b"GET /cobrowse/x HTTP/1.1\r\nHost: p\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = Vec::new();
        let head = read_head(&mut stream, &mut buffer).await.unwrap();
        if head.starts_with("HTTP/1.1 429") {
            break;
        }
        held.push(stream);
        assert!(held.len() <= 3, "the cap holds");
    }

    let metrics = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |needle: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(needle))
            .unwrap_or_else(|| panic!("{needle} missing from:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    for reason in [
        "too_many_attempts",
        "too_many_creates",
        "too_many_connections",
        "session_ambiguous",
        "header_timeout",
    ] {
        let needle = format!("proxy_rejected_total{{reason=\"{reason}\"}}");
        assert!(value(&needle) >= 1.0, "{needle}");
    }
    assert!(value("proxy_limiter_keys{budget=\"probe\"}") >= 1.0);
    assert!(value("proxy_limiter_keys{budget=\"create\"}") >= 1.0);
}
