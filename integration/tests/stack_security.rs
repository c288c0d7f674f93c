//! The security rules through the real proxy in front of real nodes: a
//! guesser is refused at the proxy after its budget and no one else is, a
//! forged X-Forwarded-For buys nothing, agents are budgeted per credential,
//! two nodes forced onto the same tokens are never guessed between, and a
//! handshake flood from one address leaves another's working.

use std::time::Duration;

use integration::{
    agent_token, client, default_agent_token, eventually, start_node, start_proxy, Process,
    TEST_ORIGIN,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn url(proxy: &Process, path: &str) -> String {
    format!("{}/cobrowse{path}", proxy.url())
}

async fn create(proxy: &Process) -> Value {
    let r = client()
        .post(url(proxy, "/rest/live/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Get Session through the proxy, as `from` (an X-Forwarded-For entry).
async fn get(
    proxy: &Process,
    token: &str,
    from: Option<&str>,
    bearer: Option<&str>,
) -> reqwest::Response {
    let mut r = client()
        .get(url(proxy, &format!("/rest/live/sessions/{token}")))
        .header("Origin", TEST_ORIGIN);
    if let Some(from) = from {
        r = r.header("X-Forwarded-For", from);
    }
    if let Some(bearer) = bearer {
        r = r.bearer_auth(bearer);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn a_guesser_is_refused_at_the_proxy_and_no_one_else_is() {
    let n1 = start_node("node-1", &["--token-partition", "1/2"]).await;
    let n2 = start_node("node-2", &["--token-partition", "2/2"]).await;
    let proxy = start_proxy(
        &[&n1, &n2],
        &["--probe-budget", "5/3s", "--trusted-proxies", "127.0.0.1"],
    )
    .await;
    let live = create(&proxy).await["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let guesser = Some("198.51.100.66");
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(
            get(&proxy, &format!("{:09}", 900_000_000 + i), guesser, None)
                .await
                .status(),
        );
    }
    assert_eq!(statuses[..5], [StatusCode::NOT_FOUND; 5], "{statuses:?}");
    assert_eq!(
        statuses[5..],
        [StatusCode::TOO_MANY_REQUESTS; 3],
        "{statuses:?}"
    );
    let refused = get(&proxy, &live, guesser, None).await;
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "hits are refused too"
    );
    assert!(refused.headers().contains_key("retry-after"));
    // A stop by a guessed user token is refused as well.
    let stop = client()
        .get(url(
            &proxy,
            &format!("/rest/live/users/{live}-{}/session/stop", "0".repeat(32)),
        ))
        .header("X-Forwarded-For", "198.51.100.66")
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another customer is not affected, nor is the agent with a credential
    // behind the guesser's address.
    assert_eq!(
        get(&proxy, &live, Some("198.51.100.67"), None)
            .await
            .status(),
        StatusCode::OK
    );
    // The proxy has no agent key here: a bearer changes nothing.
    assert_eq!(
        get(&proxy, &live, guesser, Some(default_agent_token()))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    eventually(Duration::from_secs(8), "the budget recovers", || async {
        (get(&proxy, &live, guesser, None).await.status() == StatusCode::OK).then_some(())
    })
    .await;
    let metrics = client()
        .get(format!("{}/metrics", proxy.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("proxy_rejected_total{reason=\"too_many_attempts\"}"),
        "{metrics}"
    );
    // The nodes never saw the refused guesses, and never budgeted the
    // proxy's own lookups.
    for node in [&n1, &n2] {
        assert!(!node.log().contains("probe budget spent"), "{}", node.log());
    }
}

#[tokio::test]
async fn forged_forwarding_buys_a_guesser_nothing() {
    let n1 = start_node("node-1", &[]).await;
    // This proxy trusts no one: X-Forwarded-For is the client's own claim.
    let proxy = start_proxy(&[&n1], &["--probe-budget", "3/10m"]).await;
    for i in 0..3 {
        let from = format!("10.0.0.{i}");
        let r = get(
            &proxy,
            &format!("{:09}", 800_000_000 + i),
            Some(&from),
            None,
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let r = get(&proxy, "800000009", Some("10.0.0.99"), None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn agents_with_a_credential_have_budgets_of_their_own() {
    let n1 = start_node("node-1", &[]).await;
    let key = integration::agent_key_file().display().to_string();
    let proxy = start_proxy(
        &[&n1],
        &["--probe-budget", "2/10m", "--agent-key-file", &key],
    )
    .await;
    let live = create(&proxy).await["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let careless = agent_token("careless", &[]);
    for i in 0..2 {
        get(
            &proxy,
            &format!("{:09}", 700_000_000 + i),
            None,
            Some(&careless),
        )
        .await;
    }
    assert_eq!(
        get(&proxy, &live, None, Some(&careless)).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Same address, another agent: unaffected; and the address itself too.
    assert_eq!(
        get(&proxy, &live, None, Some(&agent_token("careful", &[])))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&proxy, &live, None, None).await.status(),
        StatusCode::OK
    );
    // Joining with the credential through the proxy (found by lookup).
    let joined = client()
        .post(url(&proxy, &format!("/rest/live/sessions/{live}/users")))
        .bearer_auth(agent_token("careful", &[]))
        .json(&json!({"role": 2, "name": "Careful"}))
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), StatusCode::OK);
}

#[tokio::test]
async fn two_nodes_holding_one_token_are_never_guessed_between() {
    // The same seed and the same (whole) partition: both nodes draw the same
    // tokens, the one thing `--token-partition` exists to prevent.
    let same = ["--insecure-token-seed", "7"];
    let n1 = start_node("node-1", &same).await;
    let n2 = start_node("node-2", &same).await;
    let proxy = start_proxy(&[&n1, &n2], &[]).await;
    let mut tokens = Vec::new();
    for _ in 0..2 {
        // Round robin: one create on each node, the same first token.
        tokens.push(
            create(&proxy).await["sessionToken"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(tokens[0], tokens[1], "forced onto the same token");
    let r = get(&proxy, &tokens[0], None, None).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "session_ambiguous"
    );
    assert!(proxy.log().contains("node-1") && proxy.log().contains("node-2"));

    // With partitions, the same seed gives distinct tokens.
    let n3 = start_node(
        "node-3",
        &["--insecure-token-seed", "7", "--token-partition", "1/2"],
    )
    .await;
    let n4 = start_node(
        "node-4",
        &["--insecure-token-seed", "7", "--token-partition", "2/2"],
    )
    .await;
    let proxy = start_proxy(&[&n3, &n4], &[]).await;
    let a = create(&proxy).await;
    let b = create(&proxy).await;
    assert_ne!(a["sessionServerName"], b["sessionServerName"]);
    assert_ne!(a["sessionToken"], b["sessionToken"]);
    for created in [&a, &b] {
        let token = created["sessionToken"].as_str().unwrap();
        let found: Value = get(&proxy, token, None, None).await.json().await.unwrap();
        assert_eq!(found["sessionServerName"], created["sessionServerName"]);
    }
}

#[tokio::test]
async fn a_handshake_flood_from_one_address_leaves_another_working() {
    let n1 = start_node("node-1", &["--cometd-max-clients-per-address", "5"]).await;
    let proxy = start_proxy(&[&n1], &["--trusted-proxies", "127.0.0.1"]).await;
    let handshake = |from: &'static str| {
        let proxy_url = url(&proxy, "/cometd");
        async move {
            let r = client()
                .post(proxy_url)
                .header("X-Forwarded-For", from)
                .json(&json!([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}]))
                .send()
                .await
                .unwrap();
            let body: Value = r.json().await.unwrap();
            body[0].clone()
        }
    };
    for _ in 0..5 {
        assert_eq!(handshake("198.51.100.1").await["successful"], true);
    }
    let refused = handshake("198.51.100.1").await;
    assert_eq!(
        refused["error"], "429::too many clients from this address",
        "{refused}"
    );
    let other = handshake("198.51.100.2").await;
    assert_eq!(other["successful"], true, "{other}");
}
