//! Issue 9 on the real binaries: the faults a real deployment meets on its
//! first day. A cookie-less long-polling client on the plain CometD URL; a
//! node removed by reload that keeps its sessions, then answers 503; early
//! answers to a POST on a kept-alive connection; a node killed under a held
//! long-poll; bursts, oversized bodies and a proxy out of file descriptors
//! that must not take a healthy node out of service; honest 503s.

use std::collections::HashMap;
use std::time::Duration;

use integration::{
    authorize_join, client, default_agent_token, eventually, proxy_node_states, remember_created,
    start_node, start_proxy, Process, TEST_ORIGIN,
};
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound for anything driven by health checks (every 100 ms).
const SETTLE: Duration = Duration::from_secs(10);

fn url(proxy: &Process, path: &str) -> String {
    format!("{}/cobrowse{path}", proxy.url())
}

/// A Bayeux long-polling client over plain HTTP with no cookie store, as a
/// browser that blocks third-party cookies.
struct LongPoll {
    http: reqwest::Client,
    /// `<proxy>/cobrowse/cometd`
    base: String,
    /// `""`, or `?gcbSessionServer=<node>` for a client that must reach a
    /// given node from its handshake on.
    query: String,
    client_id: String,
    next_id: u64,
    /// `402::…` answers seen.
    unknown_client: usize,
}

impl LongPoll {
    async fn handshake(http: &reqwest::Client, proxy: &Process, node: Option<&str>) -> LongPoll {
        let query = node.map_or_else(String::new, |n| format!("?gcbSessionServer={n}"));
        let mut poll = LongPoll {
            http: http.clone(),
            base: url(proxy, "/cometd"),
            query,
            client_id: String::new(),
            next_id: 0,
            unknown_client: 0,
        };
        let replies = poll
            .post(
                "/handshake",
                json!([{
                    "channel": "/meta/handshake",
                    "version": "1.0",
                    "supportedConnectionTypes": ["long-polling"],
                }]),
            )
            .await
            .expect("handshake answered");
        assert_eq!(replies[0]["successful"], true, "{replies:?}");
        poll.client_id = replies[0]["clientId"].as_str().unwrap().to_owned();
        poll
    }

    async fn post(&mut self, suffix: &str, messages: Value) -> Result<Vec<Value>, StatusCode> {
        let response = self
            .http
            .post(format!("{}{suffix}{}", self.base, self.query))
            .header("content-type", "application/json")
            .json(&messages)
            .send()
            .await
            .expect("CometD request");
        if response.status() != StatusCode::OK {
            return Err(response.status());
        }
        let replies: Vec<Value> = response.json().await.expect("a Bayeux answer");
        self.unknown_client += replies
            .iter()
            .filter(|m| m["error"].as_str().is_some_and(|e| e.starts_with("402")))
            .count();
        Ok(replies)
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// One `/meta/connect`; returns what it delivered.
    async fn connect(&mut self) -> Result<Vec<Value>, StatusCode> {
        let message = json!([{
            "channel": "/meta/connect",
            "clientId": self.client_id,
            "connectionType": "long-polling",
            "id": self.id(),
        }]);
        let replies = self.post("/connect", message).await?;
        let connect = replies.iter().find(|m| m["channel"] == "/meta/connect");
        assert_eq!(
            connect.map(|m| m["successful"].clone()),
            Some(Value::Bool(true)),
            "{replies:?}"
        );
        Ok(replies
            .into_iter()
            .filter(|m| m["channel"] != "/meta/connect")
            .collect())
    }

    /// A publish to a `/service/` channel: its `data` answer.
    async fn call(&mut self, channel: &str, data: Value) -> Value {
        let message = json!([{ "channel": channel, "clientId": self.client_id, "data": data, "id": self.id() }]);
        let replies = self.post("", message).await.expect("service answered");
        let answer = replies
            .iter()
            .find(|m| m["channel"] == channel && m.get("data").is_some())
            .unwrap_or_else(|| panic!("{channel}: {replies:?}"));
        answer["data"].clone()
    }

    async fn subscribe(&mut self, channel: &str) {
        let message = json!([{ "channel": "/meta/subscribe", "clientId": self.client_id, "subscription": channel, "id": self.id() }]);
        let replies = self.post("/subscribe", message).await.expect("subscribe");
        assert_eq!(replies[0]["successful"], true, "{replies:?}");
    }

    async fn publish(&mut self, channel: &str, data: Value) {
        let message = json!([{ "channel": channel, "clientId": self.client_id, "data": data, "id": self.id() }]);
        let replies = self.post("", message).await.expect("publish");
        assert_eq!(replies[0]["successful"], true, "{replies:?}");
    }
}

fn data_of(deliveries: &[Value], channel: &str) -> Vec<u64> {
    deliveries
        .iter()
        .filter(|m| m["channel"] == channel)
        .filter_map(|m| m["data"]["seq"].as_u64())
        .collect()
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

#[tokio::test]
async fn a_cookie_less_long_polling_client_on_the_plain_url_stays_on_its_node() {
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(start_node(&format!("node-{i}"), &["--cometd-timeout", "50ms"]).await);
    }
    let proxy = start_proxy(&nodes.iter().collect::<Vec<_>>(), &[]).await;
    let http = client();
    // The customer: the plain URL, no cookie, no header, no parameter.
    let mut customer = LongPoll::handshake(&http, &proxy, None).await;
    customer.connect().await.unwrap();
    let created = customer.call("/service/session/create", json!({})).await;
    let token = created["sessionToken"].as_str().unwrap().to_owned();
    let node = created["sessionServerName"].as_str().unwrap().to_owned();
    let channel = format!("/session/{token}/data");
    customer
        .call(
            "/service/session/join",
            json!({"sessionToken": token, "role": 1, "name": "Customer", "customerKey": created["customerKey"]}),
        )
        .await;
    customer.subscribe(&channel).await;

    // The agent joins an existing session: it learns the node from Get
    // Session and names it in the CometD URL (a WebSocket client would have
    // to do the same).
    let found: Value = client()
        .get(url(&proxy, &format!("/rest/live/sessions/{token}")))
        .header("Origin", TEST_ORIGIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["sessionServerName"], node.as_str());
    let mut agent = LongPoll::handshake(&http, &proxy, Some(&node)).await;
    agent.connect().await.unwrap();
    agent
        .call(
            "/service/session/join",
            json!({"sessionToken": token, "role": 2, "name": "Agent", "agentToken": default_agent_token()}),
        )
        .await;
    agent.subscribe(&channel).await;

    // Many connect cycles, the agent publishing now and then.
    let mut to_customer = Vec::new();
    let mut published = 0;
    let mut cycles = 0;
    while cycles < 120 || to_customer.len() < published {
        if cycles % 4 == 0 && published < 30 {
            agent.publish(&channel, json!({"seq": published})).await;
            published += 1;
        }
        let delivered = customer.connect().await.unwrap();
        to_customer.extend(data_of(&delivered, &channel));
        cycles += 1;
        assert!(cycles < 1000, "deliveries missing: {to_customer:?}");
    }
    assert_eq!(to_customer, (0..published as u64).collect::<Vec<_>>());
    // And back: the customer's content reaches the agent.
    for seq in 0..10 {
        customer.publish(&channel, json!({"seq": seq})).await;
    }
    let mut to_agent = Vec::new();
    for _ in 0..200 {
        to_agent.extend(data_of(&agent.connect().await.unwrap(), &channel));
        if to_agent.len() >= 10 {
            break;
        }
    }
    assert_eq!(to_agent, (0..10).collect::<Vec<_>>());
    assert_eq!(
        customer.unknown_client + agent.unknown_client,
        0,
        "no 402::Unknown client"
    );
    let text = metrics(&proxy).await;
    let routed: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("proxy_routing_decisions_total{kind=\"client_id\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(routed >= 120.0, "routed by clientId: {routed}");
}

/// Writes a proxy config file naming `nodes`.
fn write_config(file: &std::path::Path, nodes: &[&Process]) {
    let text: String = nodes
        .iter()
        .map(|n| format!("[[node]]\nname = \"{}\"\nurl = \"{}\"\n\n", n.name, n.url()))
        .collect();
    std::fs::write(file, text).unwrap();
}

async fn proxy_with_config(
    nodes: &[&Process],
    tag: &str,
    extra: &[&str],
) -> (Process, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("faults-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.toml");
    write_config(&file, nodes);
    let args: Vec<String> = [
        "--admin-listen",
        "127.0.0.1:0",
        "--lookup-origin",
        TEST_ORIGIN,
        "--health-interval",
        "100ms",
        "--config",
        file.to_str().unwrap(),
    ]
    .iter()
    .chain(extra)
    .map(|s| (*s).to_owned())
    .collect();
    let proxy = Process::start("sticky-proxy", "proxy", &args, true).await;
    for node in nodes {
        wait_state(&proxy, &node.name, Some("up")).await;
    }
    (proxy, file)
}

async fn wait_state(proxy: &Process, node: &str, state: Option<&str>) {
    let what = format!("{node} {state:?}");
    eventually(SETTLE, &what, || async {
        (proxy_node_states(proxy).await.get(node).map(String::as_str) == state).then_some(())
    })
    .await;
}

/// Creates sessions through the proxy until one lands on `node`.
async fn create_on(proxy: &Process, node: &str) -> String {
    for _ in 0..20 {
        let body: Value = client()
            .post(url(proxy, "/rest/live/sessions"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        remember_created(&body);
        if body["sessionServerName"] == node {
            return body["sessionToken"].as_str().unwrap().to_owned();
        }
    }
    panic!("no session on {node}");
}

async fn get_session(proxy: &Process, token: &str, cookie: Option<&str>) -> (StatusCode, Value) {
    let mut request = client()
        .get(url(proxy, &format!("/rest/live/sessions/{token}")))
        .header("Origin", TEST_ORIGIN);
    if let Some(node) = cookie {
        request = request.header("Cookie", format!("gcbSessionServer={node}"));
    }
    let response = request.send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_node_removed_by_reload_keeps_its_sessions_then_answers_503_never_404() {
    let n1 = start_node("node-1", &[]).await;
    let n2 = start_node("node-2", &[]).await;
    let (proxy, file) = proxy_with_config(&[&n1, &n2], "retire", &[]).await;
    let token = create_on(&proxy, "node-1").await;
    assert_eq!(get_session(&proxy, &token, None).await.0, StatusCode::OK);

    write_config(&file, &[&n2]);
    proxy.signal(Signal::SIGHUP);
    wait_state(&proxy, "node-1", Some("retiring")).await;
    assert!(metrics(&proxy)
        .await
        .contains("proxy_node_state{node=\"node-1\"} 0.25"));
    // Its session is served, by cookie and by lookup; new sessions go elsewhere.
    for cookie in [Some("node-1"), None] {
        let (status, body) = get_session(&proxy, &token, cookie).await;
        assert_eq!(
            (status, body["sessionServerName"].as_str()),
            (StatusCode::OK, Some("node-1"))
        );
    }
    let request = client().post(url(&proxy, &format!("/rest/live/sessions/{token}/users")));
    let controller: Value = authorize_join(request, &token, 3, json!({"name": "Controller"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for _ in 0..4 {
        assert_ne!(create_on(&proxy, "node-2").await, token);
    }

    // The session ends: no live session is left, the node is gone, and what
    // was bound to it is 503 naming it — not a 404 from node-2.
    let user = controller["userToken"].as_str().unwrap();
    let stopped = client()
        .get(url(
            &proxy,
            &format!("/rest/live/users/{user}/session/stop"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.status(), StatusCode::OK);
    wait_state(&proxy, "node-1", None).await;
    for cookie in [Some("node-1"), None] {
        let (status, body) = get_session(&proxy, &token, cookie).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{cookie:?}: {body}"
        );
        assert_eq!(body["error"], "session_server_unavailable");
        assert!(
            body["message"].as_str().unwrap().contains("node-1"),
            "{body}"
        );
    }

    // Configured again: a normal node (its ended session answers 410).
    write_config(&file, &[&n1, &n2]);
    proxy.signal(Signal::SIGHUP);
    wait_state(&proxy, "node-1", Some("up")).await;
    assert_eq!(
        get_session(&proxy, &token, Some("node-1")).await.0,
        StatusCode::GONE
    );
}

#[tokio::test]
async fn a_retiring_node_with_live_sessions_is_gone_at_the_retire_timeout() {
    let n1 = start_node("node-1", &[]).await;
    let n2 = start_node("node-2", &[]).await;
    let (proxy, file) =
        proxy_with_config(&[&n1, &n2], "retire-timeout", &["--retire-timeout", "2s"]).await;
    let token = create_on(&proxy, "node-1").await;
    assert_eq!(get_session(&proxy, &token, None).await.0, StatusCode::OK);
    write_config(&file, &[&n2]);
    proxy.signal(Signal::SIGHUP);
    wait_state(&proxy, "node-1", Some("retiring")).await;
    assert_eq!(
        get_session(&proxy, &token, Some("node-1")).await.0,
        StatusCode::OK
    );
    wait_state(&proxy, "node-1", None).await;
    for cookie in [Some("node-1"), None] {
        let (status, body) = get_session(&proxy, &token, cookie).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{cookie:?}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("node-1"),
            "{body}"
        );
    }
    assert!(proxy.log().contains("retire timeout reached"));
}

/// Reads one answer (head, Content-Length body) off `stream`.
async fn read_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(String, String)> {
    let read = async {
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap_or(0));
                if buffer.len() >= end + 4 + length {
                    let body =
                        String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned();
                    buffer.drain(..end + 4 + length);
                    return Some((head, body));
                }
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn a_post_answered_503_then_a_get_on_the_same_connection() {
    let n1 = start_node("node-1", &[]).await;
    let n2 = start_node("node-2", &[]).await;
    let proxy = start_proxy(&[&n1, &n2], &[]).await;
    let token = create_on(&proxy, "node-2").await;
    n2.signal(Signal::SIGKILL);
    drop(n2);
    wait_state(&proxy, "node-2", Some("down")).await;
    let body = br#"{"role":2,"name":"Agent"}"#;
    let head = format!(
        "POST /cobrowse/rest/live/sessions/{token}/users HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nCookie: gcbSessionServer=node-2\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // As Python's http.client sends: head and body in two writes.
    for round in 0..30 {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let mut buffer = Vec::new();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let (first, answer) = read_answer(&mut stream, &mut buffer)
            .await
            .expect("an answer");
        assert!(first.starts_with("http/1.1 503"), "{first}");
        assert!(answer.contains("session_server_unavailable"), "{answer}");
        if first.contains("connection: close") {
            continue;
        }
        let sent = stream
            .write_all(b"GET /cobrowse/health HTTP/1.1\r\nHost: proxy\r\n\r\n")
            .await;
        let second = match sent {
            Ok(()) => read_answer(&mut stream, &mut buffer).await,
            Err(_) => None,
        };
        let second = second.unwrap_or_else(|| {
            panic!("round {round}: kept alive without `Connection: close`, then closed: {first}")
        });
        assert!(second.0.starts_with("http/1.1 200"), "{second:?}");
    }
}

#[tokio::test]
async fn a_node_killed_under_a_held_long_poll_gives_503_not_502() {
    let n1 = start_node("node-1", &["--cometd-timeout", "30s"]).await;
    let n2 = start_node("node-2", &[]).await;
    let proxy = start_proxy(&[&n1, &n2], &[]).await;
    let http = client();
    // Routed by the query parameter throughout: this test is about the
    // failure, not the routing.
    let mut poll = LongPoll::handshake(&http, &proxy, Some("node-1")).await;
    poll.connect().await.unwrap();
    let held = tokio::spawn(async move { poll.connect().await.map(|_| ()) });
    eventually(SETTLE, "the long-poll is held", || async {
        let nodes: Value = client()
            .get(format!("{}/nodes", proxy.admin_url()))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let held = nodes
            .as_array()?
            .iter()
            .any(|n| n["name"] == "node-1" && n["inFlight"].as_u64() >= Some(1));
        held.then_some(())
    })
    .await;
    n1.signal(Signal::SIGKILL);
    let outcome = tokio::time::timeout(SETTLE, held).await.unwrap().unwrap();
    assert_eq!(outcome, Err(StatusCode::SERVICE_UNAVAILABLE));
    drop(n1);
}

/// A client bound to `node` by cookie, asking for its session `count` times.
async fn bound_client(proxy: &Process, token: &str, node: &str, count: usize) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(get_session(proxy, token, Some(node)).await.0);
    }
    statuses
}

fn never_marked_down(proxy: &Process, node: &str) {
    let log = proxy.log();
    let down = log
        .lines()
        .filter(|l| l.contains(node))
        .find(|l| l.contains("node marked down") || l.contains("to=down"));
    assert!(down.is_none(), "{node} was taken down: {down:?}");
}

/// `count` handshaken clients on `node`, each connected once (the first
/// connect is answered at once), ready to hold a long-poll.
async fn clients_on(
    http: &reqwest::Client,
    proxy: &Process,
    node: &str,
    count: usize,
) -> Vec<LongPoll> {
    let mut polls = Vec::with_capacity(count);
    for _ in 0..count {
        // Named in the URL: this is about the burst, not the routing.
        let mut poll = LongPoll::handshake(http, proxy, Some(node)).await;
        poll.connect().await.unwrap();
        polls.push(poll);
    }
    polls
}

#[tokio::test]
async fn a_burst_of_a_thousand_held_long_polls_leaves_the_node_up_for_everyone_else() {
    let n1 = start_node(
        "node-1",
        &[
            "--cometd-timeout",
            "3s",
            "--cometd-max-clients-per-address",
            "5000",
        ],
    )
    .await;
    let n2 = start_node("node-2", &[]).await;
    let proxy = start_proxy(&[&n1, &n2], &["--max-connections-per-client", "0"]).await;
    let token = create_on(&proxy, "node-1").await;
    let http = client();
    let polls = clients_on(&http, &proxy, "node-1", 1000).await;
    // Sent back to back: each on its own connection, all held at once.
    let held: Vec<_> = polls
        .into_iter()
        .map(|mut poll| tokio::spawn(async move { poll.connect().await.map(|_| ()) }))
        .collect();
    let statuses = bound_client(&proxy, &token, "node-1", 20).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let mut answered = 0;
    for poll in held {
        assert_eq!(poll.await.unwrap(), Ok(()));
        answered += 1;
    }
    assert_eq!(answered, 1000);
    assert_eq!(proxy_node_states(&proxy).await["node-1"], "up");
    never_marked_down(&proxy, "node-1");
}

#[tokio::test]
async fn a_burst_beyond_max_conns_per_node_gets_server_busy_and_the_node_stays_up() {
    let n1 = start_node(
        "node-1",
        &[
            "--cometd-timeout",
            "2s",
            "--listen-backlog",
            "128",
            "--cometd-max-clients-per-address",
            "5000",
        ],
    )
    .await;
    let n2 = start_node("node-2", &[]).await;
    let proxy = start_proxy(
        &[&n1, &n2],
        &[
            "--max-connections-per-client",
            "0",
            "--max-conns-per-node",
            "100",
        ],
    )
    .await;
    let token = create_on(&proxy, "node-1").await;
    let http = client();
    let polls = clients_on(&http, &proxy, "node-1", 400).await;
    let held: Vec<_> = polls
        .into_iter()
        .map(|mut poll| tokio::spawn(async move { poll.connect().await.map(|_| ()) }))
        .collect();
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for poll in held {
        let key = match poll.await.unwrap() {
            Ok(()) => "held".to_owned(),
            Err(status) => status.to_string(),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    assert!(
        outcomes.get("held").copied().unwrap_or(0) >= 100,
        "{outcomes:?}"
    );
    assert!(
        outcomes.keys().all(|k| k == "held" || k.starts_with("503")),
        "{outcomes:?}"
    );
    assert!(metrics(&proxy)
        .await
        .contains("proxy_rejected_total{reason=\"server_busy\"}"));
    let statuses = bound_client(&proxy, &token, "node-1", 10).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    never_marked_down(&proxy, "node-1");
}

#[tokio::test]
async fn a_few_oversized_bodies_leave_the_node_up_for_everyone_else() {
    let n1 = start_node("node-1", &[]).await;
    let n2 = start_node("node-2", &[]).await;
    let proxy = start_proxy(&[&n1, &n2], &[]).await;
    let token = create_on(&proxy, "node-1").await;
    let huge = vec![b'['; 20 * 1024 * 1024];
    let uploads: Vec<_> = (0..4)
        .map(|_| {
            let request = client()
                .post(url(&proxy, "/cometd"))
                .header("content-type", "application/json")
                .header("Cookie", "gcbSessionServer=node-1")
                .body(huge.clone());
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    let statuses = bound_client(&proxy, &token, "node-1", 30).await;
    for upload in uploads {
        // 413 from the node (relayed), or the connection closed under the
        // upload; never a 503 for the node.
        if let Ok(status) = upload.await.unwrap() {
            assert_ne!(status, StatusCode::SERVICE_UNAVAILABLE);
        }
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let statuses = bound_client(&proxy, &token, "node-1", 10).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    never_marked_down(&proxy, "node-1");
}

#[tokio::test]
async fn a_proxy_out_of_file_descriptors_does_not_take_a_node_down() {
    let n1 = start_node("node-1", &[]).await;
    let n2 = start_node("node-2", &[]).await;
    let mut args: Vec<String> = [
        "--admin-listen",
        "127.0.0.1:0",
        "--lookup-origin",
        TEST_ORIGIN,
        "--health-interval",
        "100ms",
        "--header-timeout",
        "60s",
        "--max-connections-per-client",
        "0",
        // Above what 48 descriptors carry (the default cap would keep the
        // proxy from ever running out): this test is about running out.
        "--max-connections",
        "1000",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for node in [&n1, &n2] {
        args.push("--node".into());
        args.push(format!("{}={}", node.name, node.url()));
    }
    let proxy = Process::start_wrapped(
        &["prlimit", "--nofile=48:48", "--"],
        "sticky-proxy",
        "proxy",
        &args,
        true,
    )
    .await;
    wait_state(&proxy, "node-1", Some("up")).await;
    wait_state(&proxy, "node-2", Some("up")).await;
    // Nothing is forwarded before: no connection to node-1 is pooled.
    let token = "123456789";
    // One kept-alive connection, accepted before the descriptors run out.
    let mut conn = TcpStream::connect(proxy.addr).await.unwrap();
    let mut buffer = Vec::new();
    conn.write_all(b"GET /cobrowse/health HTTP/1.1\r\nHost: proxy\r\n\r\n")
        .await
        .unwrap();
    assert!(read_answer(&mut conn, &mut buffer)
        .await
        .unwrap()
        .0
        .starts_with("http/1.1 200"));
    // Idle connections until the proxy cannot accept any more.
    let mut hogs = Vec::new();
    for _ in 0..120 {
        hogs.push(TcpStream::connect(proxy.addr).await.unwrap());
    }
    eventually(SETTLE, "the proxy runs out of descriptors", || async {
        proxy.log().contains("accept failed").then_some(())
    })
    .await;
    // Requests that need a new connection to node-1 (none is pooled yet).
    let request = format!(
        "GET /cobrowse/rest/live/sessions/{token} HTTP/1.1\r\nHost: proxy\r\nOrigin: {TEST_ORIGIN}\r\nCookie: gcbSessionServer=node-1\r\n\r\n"
    );
    for _ in 0..5 {
        conn.write_all(request.as_bytes()).await.unwrap();
        let (head, body) = read_answer(&mut conn, &mut buffer).await.expect("answered");
        assert!(head.starts_with("http/1.1 503"), "{head}");
        assert!(body.contains("server_busy"), "{body}");
    }
    drop(hogs);
    drop(conn);
    eventually(SETTLE, "the proxy accepts again", || async {
        let state = proxy_node_states(&proxy).await.get("node-1").cloned();
        (state.as_deref() == Some("up")).then_some(())
    })
    .await;
    never_marked_down(&proxy, "node-1");
    // node-1 answers for itself again (404: the session is on node-2).
    assert_eq!(
        get_session(&proxy, token, Some("node-1")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_503_for_a_lost_session_names_a_down_node_only_as_down() {
    let n1 = start_node("node-1", &[]).await;
    let n2 = start_node("node-2", &[]).await;
    let n3 = start_node("node-3", &[]).await;
    let proxy = start_proxy(&[&n1, &n2, &n3], &[]).await;
    n3.signal(Signal::SIGKILL);
    drop(n3);
    wait_state(&proxy, "node-3", Some("down")).await;
    // A session no live node holds (its owner lost it): the proxy cannot
    // know whether node-3 had it, and says only that.
    let (status, body) = get_session(&proxy, "123456789", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "session_server_unavailable");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("not found on the session servers that answered"),
        "{message}"
    );
    assert!(message.contains("node-3 is down"), "{message}");
    assert!(!message.contains("that holds this session"), "{message}");
}

#[tokio::test]
async fn a_first_connect_without_advice_is_answered_at_once_on_both_transports() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;

    let n1 = start_node("node-1", &["--cometd-timeout", "30s"]).await;
    let proxy = start_proxy(&[&n1], &[]).await;
    // Long-polling, as aiocometd and older clients do it: no `advice`.
    let mut poll = LongPoll::handshake(&client(), &proxy, None).await;
    let started = std::time::Instant::now();
    poll.connect().await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "first long-polling connect took {took:?}"
    );

    // WebSocket, the same.
    let ws_url = format!("ws://{}/cobrowse/cometd", proxy.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let hs = json!([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["websocket"]}]);
    socket.send(Frame::text(hs.to_string())).await.unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    let reply: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    let id = reply[0]["clientId"].as_str().unwrap().to_owned();
    let connect =
        json!([{"channel": "/meta/connect", "clientId": id, "connectionType": "websocket"}]);
    let started = std::time::Instant::now();
    socket.send(Frame::text(connect.to_string())).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("answered")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    let answer: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    assert_eq!(answer[0]["channel"], "/meta/connect", "{answer}");
    assert_eq!(answer[0]["successful"], true, "{answer}");
    assert!(
        took < Duration::from_secs(1),
        "first WebSocket connect took {took:?}"
    );
}
