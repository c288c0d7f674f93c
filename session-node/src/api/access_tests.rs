//! The access rules as a client of the HTTP layer sees them: statuses,
//! codes, `WWW-Authenticate`, `Retry-After`, client addresses behind a
//! trusted proxy, and CORS with `*`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::config::Config;
use crate::cors::AllowedOrigins;
use crate::test_support::{access_config, access_with, agent_jwt};
use access::{Budget, TrustedProxies};

const ORIGIN: &str = "https://shop.example.com";
const PROXY: &str = "127.0.0.1:40000";

fn config() -> Config {
    Config {
        allowed_origins: AllowedOrigins::parse(ORIGIN).unwrap(),
        access: access_config(),
        trusted_proxies: TrustedProxies::parse("127.0.0.1").unwrap(),
        ..Config::default()
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

/// Sends `request` as if from the socket peer `peer`.
async fn send_from(state: &AppState, peer: &str, mut request: Request<Body>) -> Answer {
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let raw = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
    }
}

async fn create(state: &AppState) -> (String, String) {
    let a = send_from(
        state,
        "192.0.2.1:1",
        Request::post("/cobrowse/rest/live/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    (
        a.body["sessionToken"].as_str().unwrap().to_owned(),
        a.body["customerKey"].as_str().unwrap().to_owned(),
    )
}

fn join_request(token: &str, body: Value, bearer: Option<&str>) -> Request<Body> {
    let mut r = Request::post(format!("/cobrowse/rest/live/sessions/{token}/users"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(bearer) = bearer {
        r = r.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
    }
    r.body(Body::from(body.to_string())).unwrap()
}

fn get_request(token: &str, forwarded_for: Option<&str>) -> Request<Body> {
    let mut r = Request::get(format!("/cobrowse/rest/live/sessions/{token}"))
        .header(header::ORIGIN, ORIGIN);
    if let Some(xff) = forwarded_for {
        r = r.header("x-forwarded-for", xff);
    }
    r.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn joins_answer_each_refusal_with_its_own_status() {
    let state = AppState::new(&config()).unwrap();
    let (token, key) = create(&state).await;
    let other = agent_jwt("ann", Some("000000000"), None);
    let agent_only = agent_jwt("ann", None, Some(vec![2]));
    let good = agent_jwt("ann", None, None);
    // (case, body, bearer, status, code)
    let cases: Vec<(&str, Value, Option<&str>, StatusCode, &str)> = vec![
        (
            "agent, no credential",
            json!({"role": 2}),
            None,
            StatusCode::UNAUTHORIZED,
            "agent_auth_required",
        ),
        (
            "agent, garbage",
            json!({"role": 2}),
            Some("nope"),
            StatusCode::UNAUTHORIZED,
            "agent_auth_invalid",
        ),
        (
            "agent, other session",
            json!({"role": 2}),
            Some(&other),
            StatusCode::UNAUTHORIZED,
            "agent_auth_invalid",
        ),
        (
            "controller, agent-only",
            json!({"role": 3}),
            Some(&agent_only),
            StatusCode::UNAUTHORIZED,
            "agent_auth_invalid",
        ),
        (
            "customer, no key",
            json!({"role": 1}),
            None,
            StatusCode::FORBIDDEN,
            "customer_key_invalid",
        ),
        (
            "customer, wrong key",
            json!({"role": 1, "customerKey": "0".repeat(32)}),
            None,
            StatusCode::FORBIDDEN,
            "customer_key_invalid",
        ),
        (
            "agent, good",
            json!({"role": 2}),
            Some(&good),
            StatusCode::OK,
            "",
        ),
        (
            "customer, good",
            json!({"role": 1, "customerKey": key}),
            None,
            StatusCode::OK,
            "",
        ),
        (
            "customer, again",
            json!({"role": 1, "customerKey": key}),
            None,
            StatusCode::CONFLICT,
            "customer_already_joined",
        ),
    ];
    for (case, body, bearer, status, code) in cases {
        let a = send_from(&state, "192.0.2.2:1", join_request(&token, body, bearer)).await;
        assert_eq!(a.status, status, "{case}: {:?}", a.body);
        if !code.is_empty() {
            assert_eq!(a.body["error"], code, "{case}");
        }
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                a.headers[header::WWW_AUTHENTICATE],
                "Bearer realm=\"cobrowse\"",
                "{case}"
            );
        }
    }
}

#[tokio::test]
async fn a_node_without_a_key_says_how_agents_get_in() {
    let state = AppState::new(&Config {
        access: crate::sessions::access::AccessConfig::default(),
        ..config()
    })
    .unwrap();
    let (token, _) = create(&state).await;
    let bearer = agent_jwt("ann", None, None);
    let a = send_from(
        &state,
        "192.0.2.2:1",
        join_request(&token, json!({"role": 3}), Some(&bearer)),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"], "agent_auth_required");
    assert!(a.body["message"].as_str().unwrap().contains("no agent key"));
}

#[tokio::test]
async fn guessers_get_429_by_address_and_forged_forwarding_is_ignored() {
    let state = AppState::new(&Config {
        access: access_with("3/10m".parse().unwrap(), Budget::OFF),
        ..config()
    })
    .unwrap();
    let (live, _) = create(&state).await;
    // Through the trusted proxy, as 198.51.100.7.
    for guess in ["000000001", "000000002", "000000003"] {
        let a = send_from(&state, PROXY, get_request(guess, Some("198.51.100.7"))).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
    }
    let refused = send_from(&state, PROXY, get_request(&live, Some("198.51.100.7"))).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["error"], "too_many_attempts");
    let retry: u64 = refused.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    // Another client of the same proxy is not affected.
    let other = send_from(&state, PROXY, get_request(&live, Some("198.51.100.8"))).await;
    assert_eq!(other.status, StatusCode::OK);
    // An untrusted peer's X-Forwarded-For is ignored: one budget per socket.
    for xff in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        send_from(&state, "203.0.113.5:1", get_request("000000009", Some(xff))).await;
    }
    let forged = send_from(
        &state,
        "203.0.113.5:1",
        get_request(&live, Some("10.0.0.4")),
    )
    .await;
    assert_eq!(forged.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn creates_beyond_the_budget_are_429() {
    let state = AppState::new(&Config {
        access: access_with(Budget::OFF, "2/1m".parse().unwrap()),
        ..config()
    })
    .unwrap();
    let create = || {
        Request::post("/cobrowse/rest/live/sessions")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send_from(&state, "192.0.2.9:1", create()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send_from(&state, "192.0.2.9:1", create()).await.status,
        StatusCode::OK
    );
    let refused = send_from(&state, "192.0.2.9:1", create()).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["error"], "too_many_creates");
    assert!(refused.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(
        send_from(&state, "192.0.2.10:1", create()).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn any_origin_gets_no_credentials() {
    let state = AppState::new(&Config {
        allowed_origins: AllowedOrigins::parse("*").unwrap(),
        ..config()
    })
    .unwrap();
    let (token, _) = create(&state).await;
    let a = send_from(&state, "192.0.2.1:1", get_request(&token, None)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(!a
        .headers
        .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    assert!(config_warns_about_any_origin());
}

fn config_warns_about_any_origin() -> bool {
    Config {
        allowed_origins: AllowedOrigins::parse("*").unwrap(),
        ..config()
    }
    .startup_warnings()
    .iter()
    .any(|w| w.contains("'*'"))
}

#[tokio::test]
async fn the_preflight_allows_the_authorization_header() {
    let state = AppState::new(&config()).unwrap();
    let a = send_from(
        &state,
        "192.0.2.1:1",
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/cobrowse/rest/live/sessions/000000001/users")
            .header(header::ORIGIN, ORIGIN)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let allowed = a.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap();
    assert!(allowed.contains("Authorization"), "{allowed}");
}

#[tokio::test]
async fn a_trusted_proxys_own_lookups_spend_no_budget() {
    let state = AppState::new(&Config {
        access: access_with("2/10m".parse().unwrap(), Budget::OFF),
        ..config()
    })
    .unwrap();
    let (live, _) = create(&state).await;
    // The proxy's owner lookups: from the trusted peer, no X-Forwarded-For.
    for guess in ["000000001", "000000002", "000000003", "000000004"] {
        let a = send_from(&state, PROXY, get_request(guess, None)).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        send_from(&state, PROXY, get_request(&live, None))
            .await
            .status,
        StatusCode::OK
    );
    // The same from an untrusted peer is budgeted.
    for guess in ["000000001", "000000002"] {
        send_from(&state, "203.0.113.9:1", get_request(guess, None)).await;
    }
    let refused = send_from(&state, "203.0.113.9:1", get_request(&live, None)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn percent_encoded_tokens_name_no_session() {
    let state = AppState::new(&config()).unwrap();
    let (live, _) = create(&state).await;
    let encoded: String = live.bytes().map(|b| format!("%{b:02X}")).collect();
    let a = send_from(&state, "192.0.2.1:1", get_request(&encoded, None)).await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "the proxy would not budget this path"
    );
    assert_eq!(
        send_from(&state, "192.0.2.1:1", get_request(&live, None))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn only_lookups_of_a_trusted_proxy_are_exempt() {
    let state = AppState::new(&Config {
        access: access_with("2/10m".parse().unwrap(), Budget::OFF),
        ..config()
    })
    .unwrap();
    let (live, _) = create(&state).await;
    // Joins from the trusted peer with no X-Forwarded-For are budgeted.
    for guess in ["000000001", "000000002"] {
        let r = send_from(&state, PROXY, join_request(guess, json!({"role": 2}), None)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = send_from(&state, PROXY, join_request(&live, json!({"role": 2}), None)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}
