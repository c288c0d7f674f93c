//! The real `session-node` binary over HTTP: the contract, configuration, and
//! SIGTERM draining.

use std::time::Duration;

use integration::{
    authorize_join, client, eventually, remember_created, start_node, Process, TEST_ORIGIN,
};
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn create(node: &Process) -> Value {
    let r = client()
        .post(format!("{}/cobrowse/rest/live/sessions", node.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.json().await.unwrap();
    remember_created(&body);
    body
}

async fn join(node: &Process, token: &str, role: u8) -> reqwest::Response {
    let url = format!("{}/cobrowse/rest/live/sessions/{token}/users", node.url());
    authorize_join(
        client().post(url),
        token,
        role,
        json!({"name": format!("user-{role}")}),
    )
    .send()
    .await
    .unwrap()
}

async fn get_session(node: &Process, token: &str) -> reqwest::Response {
    client()
        .get(format!(
            "{}/cobrowse/rest/live/sessions/{token}",
            node.url()
        ))
        .header("Origin", TEST_ORIGIN)
        .send()
        .await
        .unwrap()
}

async fn health(node: &Process) -> StatusCode {
    client()
        .get(format!("{}/cobrowse/health", node.url()))
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

#[tokio::test]
async fn a_session_lives_and_ends_over_http() {
    let node = start_node("node-a", &[]).await;
    let created = create(&node).await;
    let token = created["sessionToken"].as_str().unwrap();
    assert_eq!(created["sessionServerName"], "node-a");

    let got = get_session(&node, token).await;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.headers()["access-control-allow-origin"], TEST_ORIGIN);

    let customer = join(&node, token, 1).await;
    assert_eq!(customer.status(), StatusCode::OK);
    assert_eq!(customer.headers()["gcbsessionserver"], "node-a");
    let controller: Value = join(&node, token, 3).await.json().await.unwrap();
    let stop_url = format!(
        "{}/cobrowse/rest/live/users/{}/session/stop",
        node.url(),
        controller["userToken"].as_str().unwrap()
    );
    let stopped = client().get(&stop_url).send().await.unwrap();
    assert_eq!(stopped.status(), StatusCode::OK);
    let times: Value = stopped.json().await.unwrap();
    assert!(
        times["deactivationTime"].as_u64().unwrap() >= times["activationTime"].as_u64().unwrap()
    );

    assert_eq!(get_session(&node, token).await.status(), StatusCode::GONE);
    assert_eq!(join(&node, token, 2).await.status(), StatusCode::GONE);
    let again: Value = client()
        .get(&stop_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, times);
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let node = start_node("node-b", &[]).await;
    let token = create(&node).await["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = client();
    let url = format!("{}/cobrowse/rest/live/sessions/{token}/users", node.url());
    let cases = [
        (
            c.post(&url).body("{\"role\":1}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            c.post(&url)
                .header("content-type", "application/json")
                .body("{"),
            StatusCode::BAD_REQUEST,
        ),
        (
            c.post(&url)
                .header("content-type", "application/json")
                .body(vec![b' '; 20_000]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            c.get(format!("{}/nothing/here", node.url())),
            StatusCode::NOT_FOUND,
        ),
        (
            c.delete(format!("{}/cobrowse/rest/live/sessions", node.url())),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            c.get(format!(
                "{}/cobrowse/rest/live/sessions/{token}",
                node.url()
            )),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (request, status) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), status);
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }
}

#[tokio::test]
async fn flags_come_from_the_config_file_and_environment() {
    let dir = std::env::temp_dir().join(format!("node-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("node.toml");
    std::fs::write(
        &file,
        "name = \"from-file\"\ncontext-path = \"/cb\"\nserver-url = \"https://n.example.com/cb\"\n",
    )
    .unwrap();
    let node = Process::start(
        "session-node",
        "from-file",
        &[
            "--config".into(),
            file.display().to_string(),
            "--allowed-origins".into(),
            "*".into(),
        ],
        false,
    )
    .await;
    let r = client()
        .post(format!("{}/cb/rest/live/sessions", node.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("SameSite=None")
            && cookie.contains("Secure")
            && cookie.contains("Path=/cb"),
        "{cookie}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["sessionServerName"], "from-file");
}

#[tokio::test]
async fn sigterm_drains_then_exits_when_the_last_session_ends() {
    let mut node = start_node("node-c", &["--drain-timeout", "60s"]).await;
    let token = create(&node).await["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let controller: Value = join(&node, &token, 3).await.json().await.unwrap();
    assert_eq!(health(&node).await, StatusCode::OK);

    node.signal(Signal::SIGTERM);
    eventually(Duration::from_secs(10), "health turns 503", || async {
        (health(&node).await == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;

    // Draining: no new session, the existing one fully served.
    let refused = client()
        .post(format!("{}/cobrowse/rest/live/sessions", node.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "draining");
    assert_eq!(get_session(&node, &token).await.status(), StatusCode::OK);
    assert_eq!(join(&node, &token, 1).await.status(), StatusCode::OK);
    assert!(
        node.exited_within(Duration::from_millis(300))
            .await
            .is_none(),
        "still serving"
    );

    let stop_url = format!(
        "{}/cobrowse/rest/live/users/{}/session/stop",
        node.url(),
        controller["userToken"].as_str().unwrap()
    );
    assert_eq!(
        client().get(&stop_url).send().await.unwrap().status(),
        StatusCode::OK
    );
    let status = node.exited_within(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after the last session: {status:?}\n{}",
        node.log()
    );
}

#[tokio::test]
async fn sigterm_exits_after_the_drain_timeout_with_sessions_left() {
    let mut node = start_node("node-d", &["--drain-timeout", "300ms"]).await;
    create(&node).await;
    node.signal(Signal::SIGTERM);
    let status = node.exited_within(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        node.log()
    );
    assert!(node.log().contains("drain timeout"), "{}", node.log());
}

#[tokio::test]
async fn sigterm_with_no_sessions_exits_at_once() {
    let mut node = start_node("node-e", &["--drain-timeout", "60s"]).await;
    node.signal(Signal::SIGINT);
    let status = node.exited_within(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
