//! The whole stack end to end: the real `sticky-proxy` in front of real
//! `session-node`s, with assertions on which node answered.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use integration::{
    authorize_join, client, eventually, proxy_args, remember_created, start_node, Process,
    TEST_ORIGIN,
};
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Generous bound for anything driven by health checks (interval 100 ms).
const SETTLE: Duration = Duration::from_secs(5);

struct Stack {
    proxy: Process,
    nodes: Vec<Process>,
}

impl Stack {
    async fn start(count: usize, node_args: &[&str]) -> Stack {
        let mut nodes = Vec::new();
        for i in 1..=count {
            nodes.push(start_node(&format!("node-{i}"), node_args).await);
        }
        let refs: Vec<&Process> = nodes.iter().collect();
        let proxy = Process::start("sticky-proxy", "proxy", &proxy_args(&refs), true).await;
        let stack = Stack { proxy, nodes };
        stack.wait_states(&[("node-1", "up")]).await;
        for node in &stack.nodes {
            stack.wait_states(&[(&node.name, "up")]).await;
        }
        stack
    }

    fn url(&self, path: &str) -> String {
        format!("{}/cobrowse{path}", self.proxy.url())
    }

    async fn node_states(&self) -> HashMap<String, String> {
        let nodes: Value = match client()
            .get(format!("{}/nodes", self.proxy.admin_url()))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        nodes
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n["name"].as_str().unwrap_or_default().to_owned(),
                    n["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    async fn wait_states(&self, want: &[(&str, &str)]) {
        let what = format!("node states {want:?}");
        eventually(SETTLE, &what, || async {
            let states = self.node_states().await;
            want.iter()
                .all(|(name, state)| states.get(*name).map(String::as_str) == Some(*state))
                .then_some(())
        })
        .await;
    }

    /// Creates a session through the proxy with no cookie; returns (token, node).
    async fn create(&self) -> (String, String) {
        let r = client()
            .post(self.url("/rest/live/sessions"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let cookie_node = cookie_value(&r);
        let body: Value = r.json().await.unwrap();
        remember_created(&body);
        let node = body["sessionServerName"].as_str().unwrap().to_owned();
        assert_eq!(
            cookie_node.as_deref(),
            Some(node.as_str()),
            "cookie names the owner"
        );
        (body["sessionToken"].as_str().unwrap().to_owned(), node)
    }
}

fn cookie_value(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("gcbSessionServer="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

/// How a follow-up request names its node.
#[derive(Debug, Clone, Copy)]
enum Affinity<'a> {
    Cookie(&'a str),
    Header(&'a str),
    None,
}

fn with_affinity(
    request: reqwest::RequestBuilder,
    affinity: Affinity<'_>,
) -> reqwest::RequestBuilder {
    match affinity {
        Affinity::Cookie(node) => {
            request.header("Cookie", format!("other=1; gcbSessionServer={node}"))
        }
        Affinity::Header(node) => request.header("gcbSessionServer", node),
        Affinity::None => request,
    }
}

async fn get_session(stack: &Stack, token: &str, affinity: Affinity<'_>) -> reqwest::Response {
    with_affinity(
        client().get(stack.url(&format!("/rest/live/sessions/{token}"))),
        affinity,
    )
    .header("Origin", TEST_ORIGIN)
    .send()
    .await
    .unwrap()
}

async fn join(stack: &Stack, token: &str, role: u8, affinity: Affinity<'_>) -> reqwest::Response {
    let request = with_affinity(
        client().post(stack.url(&format!("/rest/live/sessions/{token}/users"))),
        affinity,
    );
    authorize_join(request, token, role, json!({}))
        .send()
        .await
        .unwrap()
}

async fn stop(stack: &Stack, user_token: &str, affinity: Affinity<'_>) -> reqwest::Response {
    with_affinity(
        client().get(stack.url(&format!("/rest/live/users/{user_token}/session/stop"))),
        affinity,
    )
    .send()
    .await
    .unwrap()
}

async fn error_code(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn new_sessions_spread_over_every_node() {
    let stack = Stack::start(3, &[]).await;
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for _ in 0..9 {
        let (_, node) = stack.create().await;
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert!(per_node.values().all(|&n| n >= 2), "evenly: {per_node:?}");
}

#[tokio::test]
async fn follow_ups_reach_the_owner_by_cookie_header_or_lookup() {
    let stack = Stack::start(3, &[]).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(stack.create().await);
    }
    for (token, owner) in &sessions {
        for affinity in [
            Affinity::Cookie(owner),
            Affinity::Header(owner),
            Affinity::None,
        ] {
            let got = get_session(&stack, token, affinity).await;
            assert_eq!(got.status(), StatusCode::OK, "{affinity:?}");
            let body: Value = got.json().await.unwrap();
            assert_eq!(body["sessionServerName"], owner.as_str(), "{affinity:?}");
        }
        for affinity in [
            Affinity::Cookie(owner),
            Affinity::Header(owner),
            Affinity::None,
        ] {
            let joined = join(&stack, token, 2, affinity).await;
            assert_eq!(joined.status(), StatusCode::OK, "{affinity:?}");
            assert_eq!(
                joined.headers()["gcbsessionserver"],
                owner.as_str(),
                "{affinity:?}"
            );
        }
    }
    // Stop Session by user token, with each kind of affinity.
    for (i, (token, owner)) in sessions.iter().enumerate() {
        let controller: Value = join(&stack, token, 3, Affinity::None)
            .await
            .json()
            .await
            .unwrap();
        let user_token = controller["userToken"].as_str().unwrap();
        let affinity = [
            Affinity::Cookie(owner),
            Affinity::Header(owner),
            Affinity::None,
        ][i];
        let stopped = stop(&stack, user_token, affinity).await;
        assert_eq!(stopped.status(), StatusCode::OK, "{affinity:?}");
        // Ended sessions are still found (410) on their owner.
        let (status, body) = error_code(get_session(&stack, token, Affinity::None).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::GONE, Some("session_ended"))
        );
    }
}

#[tokio::test]
async fn unknown_cookie_values_are_ignored() {
    let stack = Stack::start(3, &[]).await;
    let (token, owner) = stack.create().await;
    for bogus in ["node-9", "127.0.0.1:22", "../../etc"] {
        let got = get_session(&stack, &token, Affinity::Cookie(bogus)).await;
        assert_eq!(got.status(), StatusCode::OK, "{bogus}");
        let body: Value = got.json().await.unwrap();
        assert_eq!(body["sessionServerName"], owner.as_str());
        let created = with_affinity(
            client().post(stack.url("/rest/live/sessions")),
            Affinity::Cookie(bogus),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(created.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn create_with_a_stale_cookie_is_balanced_and_replaces_it() {
    let stack = Stack::start(3, &[]).await;
    let mut owners = std::collections::HashSet::new();
    for _ in 0..6 {
        let r = with_affinity(
            client().post(stack.url("/rest/live/sessions")),
            Affinity::Cookie("node-1"),
        )
        .send()
        .await
        .unwrap();
        let cookie = cookie_value(&r).unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["sessionServerName"], cookie.as_str());
        owners.insert(cookie);
    }
    assert_eq!(owners.len(), 3, "create is never bound: {owners:?}");
}

#[tokio::test]
async fn a_killed_node_turns_its_sessions_into_503_and_no_one_else_notices() {
    let mut stack = Stack::start(3, &[]).await;
    let mut sessions = Vec::new();
    for _ in 0..6 {
        sessions.push(stack.create().await);
    }
    let victim = stack.nodes.remove(1);
    assert_eq!(victim.name, "node-2");
    victim.signal(Signal::SIGKILL);
    drop(victim);
    stack.wait_states(&[("node-2", "down")]).await;

    for (token, owner) in &sessions {
        for affinity in [Affinity::Cookie(owner), Affinity::Header(owner)] {
            let r = get_session(&stack, token, affinity).await;
            if owner == "node-2" {
                let (status, body) = error_code(r).await;
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(body["error"], "session_server_unavailable");
                assert!(
                    body["message"].as_str().unwrap().contains("node-2"),
                    "{body}"
                );
            } else {
                assert_eq!(r.status(), StatusCode::OK, "{owner} unaffected");
            }
        }
    }
    for _ in 0..6 {
        let (_, node) = stack.create().await;
        assert_ne!(node, "node-2", "new sessions avoid the dead node");
    }
    let health = client().get(stack.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_bound_request_to_a_node_that_just_died_is_503_at_once() {
    let mut stack = Stack::start(2, &[]).await;
    let (token, owner) = loop {
        let (token, owner) = stack.create().await;
        if owner == "node-1" {
            break (token, owner);
        }
    };
    let victim = stack.nodes.remove(0);
    victim.signal(Signal::SIGKILL);
    let mut victim = victim;
    victim.exited_within(Duration::from_secs(5)).await;
    // No waiting for health checks: the refused connection answers now.
    let (status, body) =
        error_code(get_session(&stack, &token, Affinity::Cookie(&owner)).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "session_server_unavailable");
}

#[tokio::test]
async fn a_draining_node_keeps_its_sessions_and_gets_no_new_ones() {
    let stack = Stack::start(3, &["--drain-timeout", "60s"]).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(stack.create().await);
    }
    let draining = stack.nodes.iter().find(|n| n.name == "node-3").unwrap();
    draining.signal(Signal::SIGTERM);
    stack.wait_states(&[("node-3", "draining")]).await;

    let (token, owner) = sessions.iter().find(|(_, o)| o == "node-3").unwrap();
    for affinity in [
        Affinity::Cookie(owner),
        Affinity::Header(owner),
        Affinity::None,
    ] {
        let r = get_session(&stack, token, affinity).await;
        assert_eq!(r.status(), StatusCode::OK, "{affinity:?}");
    }
    assert_eq!(
        join(&stack, token, 2, Affinity::Cookie(owner))
            .await
            .status(),
        StatusCode::OK
    );
    for _ in 0..6 {
        let (_, node) = stack.create().await;
        assert_ne!(node, "node-3");
    }
}

#[tokio::test]
async fn a_node_added_by_sighup_receives_new_sessions() {
    let node1 = start_node("node-1", &[]).await;
    let node2 = start_node("node-2", &[]).await;
    let dir = std::env::temp_dir().join(format!("proxy-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.toml");
    let write = |nodes: &[&Process]| {
        let text: String = nodes
            .iter()
            .map(|n| format!("[[node]]\nname = \"{}\"\nurl = \"{}\"\n\n", n.name, n.url()))
            .collect();
        std::fs::write(&file, text).unwrap();
    };
    write(&[&node1]);
    let mut args = proxy_args(&[]);
    args.extend(["--config".to_owned(), file.display().to_string()]);
    let proxy = Process::start("sticky-proxy", "proxy", &args, true).await;
    let stack = Stack {
        proxy,
        nodes: vec![node1],
    };
    stack.wait_states(&[("node-1", "up")]).await;
    assert_eq!(stack.create().await.1, "node-1");

    write(&[&stack.nodes[0], &node2]);
    stack.proxy.signal(Signal::SIGHUP);
    stack
        .wait_states(&[("node-1", "up"), ("node-2", "up")])
        .await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        seen.insert(stack.create().await.1);
    }
    assert!(seen.contains("node-2"), "{seen:?}");

    // And removed again: it still holds the sessions it just took, so it
    // retires — no new sessions, while what is bound to it still reaches it.
    write(&[&stack.nodes[0]]);
    stack.proxy.signal(Signal::SIGHUP);
    stack.wait_states(&[("node-2", "retiring")]).await;
    for _ in 0..4 {
        assert_eq!(stack.create().await.1, "node-1");
    }
}

#[tokio::test]
async fn cors_answers_pass_through_unchanged() {
    let stack = Stack::start(1, &[]).await;
    let (token, _) = stack.create().await;
    let direct = client()
        .get(format!(
            "{}/cobrowse/rest/live/sessions/{token}",
            stack.nodes[0].url()
        ))
        .header("Origin", TEST_ORIGIN)
        .send()
        .await
        .unwrap();
    let proxied = get_session(&stack, &token, Affinity::None).await;
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
        "vary",
    ] {
        assert_eq!(
            proxied.headers().get(name),
            direct.headers().get(name),
            "{name}"
        );
    }
    let forbidden = client()
        .get(stack.url(&format!("/rest/live/sessions/{token}")))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    let (status, body) = error_code(forbidden).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("origin_not_allowed"))
    );

    let preflight = client()
        .request(reqwest::Method::OPTIONS, stack.url("/rest/live/sessions"))
        .header("Origin", TEST_ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "gcbsessionserver")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert!(preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("gcbSessionServer"));
}

#[tokio::test]
async fn proxy_health_follows_the_nodes() {
    let mut stack = Stack::start(1, &[]).await;
    let health = client().get(stack.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health.bytes().await.unwrap().is_empty());
    let node = stack.nodes.remove(0);
    node.signal(Signal::SIGKILL);
    drop(node);
    eventually(SETTLE, "proxy health 503", || async {
        let r = client().get(stack.url("/health")).send().await.ok()?;
        (r.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    let (status, body) = error_code(
        client()
            .post(stack.url("/rest/live/sessions"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "no_server_available");
}

/// A test-only node with a WebSocket echo endpoint and a health resource,
/// until the real nodes have their realtime endpoint.
async fn start_echo_node(name: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/cobrowse/health", get(|| async { "" }))
        .route(
            "/cobrowse/echo",
            get(move |ws: WebSocketUpgrade| async move {
                ws.on_upgrade(move |mut socket| async move {
                    while let Some(Ok(WsMessage::Text(text))) = socket.recv().await {
                        let reply = format!("{name}: {}", text.as_str());
                        if socket.send(WsMessage::Text(reply.into())).await.is_err() {
                            break;
                        }
                    }
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[tokio::test]
async fn websocket_upgrades_are_routed_and_tunnelled() {
    let (echo_a, _a) = start_echo_node("echo-a").await;
    let (echo_b, _b) = start_echo_node("echo-b").await;
    let mut args = proxy_args(&[]);
    args.extend([
        "--node".to_owned(),
        format!("echo-a={echo_a}"),
        "--node".to_owned(),
        format!("echo-b={echo_b}"),
    ]);
    let proxy = Process::start("sticky-proxy", "proxy", &args, true).await;
    let stack = Stack {
        proxy,
        nodes: vec![],
    };
    stack
        .wait_states(&[("echo-a", "up"), ("echo-b", "up")])
        .await;

    for (target, how) in [
        ("echo-a", "cookie"),
        ("echo-b", "cookie"),
        ("echo-b", "header"),
        ("echo-a", "header"),
    ] {
        let url = format!("ws://{}/cobrowse/echo", stack.proxy.addr);
        let mut request = url.into_client_request().unwrap();
        match how {
            "cookie" => request.headers_mut().insert(
                "cookie",
                format!("gcbSessionServer={target}").parse().unwrap(),
            ),
            _ => request
                .headers_mut()
                .insert("gcbSessionServer", target.parse().unwrap()),
        };
        let (mut socket, _) =
            tokio::time::timeout(SETTLE, tokio_tungstenite::connect_async(request))
                .await
                .expect("upgrade in time")
                .expect("upgrade through the proxy");
        for i in 0..3 {
            socket
                .send(Message::text(format!("hello {i}")))
                .await
                .unwrap();
            let reply = tokio::time::timeout(SETTLE, socket.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(
                reply.into_text().unwrap().as_str(),
                format!("{target}: hello {i}"),
                "{how}"
            );
        }
        socket.close(None).await.unwrap();
    }
}
