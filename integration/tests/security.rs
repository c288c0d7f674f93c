//! Who may join, and how fast anyone may probe, on the real `session-node`
//! binary: credentials minted by `session-node agent-token`, the refusal of
//! a node without a key, the explicit opt-out, the probe budget, and the
//! metrics that count refusals.

use std::process::Stdio;
use std::time::Duration;

use integration::{
    agent_key_file, agent_token, binary, client, eventually, start_node, Process, TEST_ORIGIN,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn create(node: &Process) -> Value {
    let r = client()
        .post(format!("{}/cobrowse/rest/live/sessions", node.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn join(
    node: &Process,
    token: &str,
    body: Value,
    bearer: Option<&str>,
) -> (StatusCode, Value) {
    let mut r = client().post(format!(
        "{}/cobrowse/rest/live/sessions/{token}/users",
        node.url()
    ));
    if let Some(bearer) = bearer {
        r = r.bearer_auth(bearer);
    }
    let r = r.json(&body).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
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

#[tokio::test]
async fn agents_join_with_minted_credentials_only() {
    let node = start_node("sec-a", &[]).await;
    let created = create(&node).await;
    let token = created["sessionToken"].as_str().unwrap();
    let bound_elsewhere = agent_token("ann", &["--session", "000000000"]);
    let agent_only = agent_token("ann", &["--roles", "2"]);
    let ann = agent_token("ann", &[]);
    // (case, body, bearer, status, code)
    let cases: Vec<(&str, Value, Option<&str>, StatusCode, &str)> = vec![
        (
            "no credential",
            json!({"role": 2}),
            None,
            StatusCode::UNAUTHORIZED,
            "agent_auth_required",
        ),
        (
            "not a JWT",
            json!({"role": 3}),
            Some("abc"),
            StatusCode::UNAUTHORIZED,
            "agent_auth_invalid",
        ),
        (
            "another session's",
            json!({"role": 2}),
            Some(&bound_elsewhere),
            StatusCode::UNAUTHORIZED,
            "agent_auth_invalid",
        ),
        (
            "agent-only as controller",
            json!({"role": 3}),
            Some(&agent_only),
            StatusCode::UNAUTHORIZED,
            "agent_auth_invalid",
        ),
        (
            "customer without key",
            json!({"role": 1}),
            None,
            StatusCode::FORBIDDEN,
            "customer_key_invalid",
        ),
        (
            "valid agent",
            json!({"role": 2, "name": "Ann"}),
            Some(&ann),
            StatusCode::OK,
            "",
        ),
    ];
    for (case, body, bearer, status, code) in cases {
        let (got, answer) = join(&node, token, body, bearer).await;
        assert_eq!(got, status, "{case}: {answer}");
        if !code.is_empty() {
            assert_eq!(answer["error"], code, "{case}");
        }
    }
    let (status, answer) = join(
        &node,
        token,
        json!({"role": 1, "customerKey": created["customerKey"]}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["users"][0]["agentId"], "ann", "{answer}");
    assert!(
        !node.log().contains(&ann),
        "the credential never reaches the log"
    );
}

#[tokio::test]
async fn credentials_valid_for_longer_than_the_max_age_are_refused() {
    let node = start_node("sec-b", &["--agent-token-max-age", "1m"]).await;
    let token = create(&node).await["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let too_long = agent_token("ann", &["--ttl", "2h"]);
    let (status, body) = join(&node, &token, json!({"role": 2}), Some(&too_long)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("agent_auth_invalid"))
    );
}

#[tokio::test]
async fn a_node_without_a_key_refuses_agents_and_says_how_to_configure_one() {
    let node = Process::start(
        "session-node",
        "sec-c",
        &["--allowed-origins".into(), TEST_ORIGIN.into()],
        false,
    )
    .await;
    assert!(node.log().contains("--agent-key-file"), "{}", node.log());
    let token = create(&node).await["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = join(
        &node,
        &token,
        json!({"role": 3}),
        Some(&agent_token("ann", &[])),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("agent_auth_required"))
    );
}

#[tokio::test]
async fn opting_out_is_loud_and_contradictions_are_refused() {
    let node = Process::start(
        "session-node",
        "sec-d",
        &["--agent-auth".into(), "none".into()],
        false,
    )
    .await;
    assert!(node.log().contains("ANYONE"), "{}", node.log());
    let token = create(&node).await["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        join(&node, &token, json!({"role": 3}), None).await.0,
        StatusCode::OK
    );

    let status = std::process::Command::new(binary("session-node"))
        .args(["--agent-auth", "none", "--agent-key-file"])
        .arg(agent_key_file())
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}

#[tokio::test]
async fn a_guesser_is_refused_after_its_budget_and_it_recovers() {
    // Reached directly (no trusted proxy in front): budgeted by the socket's
    // address, whatever X-Forwarded-For says.
    let args: Vec<String> = [
        "--allowed-origins",
        TEST_ORIGIN,
        "--agent-key-file",
        &agent_key_file().display().to_string(),
        "--probe-budget",
        "3/2s",
        "--metrics-listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let node = Process::start("session-node", "sec-e", &args, false).await;
    let live = create(&node).await["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    for guess in ["000000001", "000000002", "000000003"] {
        assert_eq!(
            get_session(&node, guess).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    let refused = get_session(&node, &live).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "too_many_attempts"
    );
    // The node trusts no proxy: a forged X-Forwarded-For changes nothing.
    let forged = client()
        .get(format!("{}/cobrowse/rest/live/sessions/{live}", node.url()))
        .header("Origin", TEST_ORIGIN)
        .header("X-Forwarded-For", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);
    eventually(Duration::from_secs(5), "the budget recovers", || async {
        (get_session(&node, &live).await.status() == StatusCode::OK).then_some(())
    })
    .await;
    let metrics_addr = node
        .log()
        .lines()
        .find_map(|l| {
            l.split_once("metrics on http://")
                .map(|(_, r)| r.trim_end_matches("/metrics").to_owned())
        })
        .expect("metrics address logged");
    let metrics = client()
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("node_rejected_total{reason=\"too_many_attempts\"}"),
        "{metrics}"
    );
}
