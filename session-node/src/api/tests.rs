//! The router driven in-process with `tower::ServiceExt::oneshot`.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::config::Config;
use crate::cors::AllowedOrigins;
use crate::sessions::MAX_NAME_CHARS;
use crate::test_support::{access_config, agent_jwt};

const ORIGIN: &str = "https://shop.example.com";

/// Customer keys of the sessions `create` made, so `join` can present them.
static CUSTOMER_KEYS: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

fn config() -> Config {
    Config {
        name: "node-7".into(),
        allowed_origins: AllowedOrigins::parse(
            "https://shop.example.com, https://*.agents.example",
        )
        .unwrap(),
        access: access_config(),
        ..Config::default()
    }
}

fn state_with(config: &Config) -> AppState {
    AppState::new(config).unwrap()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    raw: Bytes,
}

async fn send(state: &AppState, request: Request<Body>) -> Answer {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let raw = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        raw,
    }
}

fn req(method: Method, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri)
}

async fn create(state: &AppState) -> String {
    let a = send(
        state,
        req(Method::POST, "/cobrowse/rest/live/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let token = a.body["sessionToken"].as_str().unwrap().to_owned();
    let key = a.body["customerKey"].as_str().unwrap().to_owned();
    CUSTOMER_KEYS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(token.clone(), key);
    token
}

fn customer_key(token: &str) -> Option<String> {
    CUSTOMER_KEYS.lock().unwrap().as_ref()?.get(token).cloned()
}

/// Joins as the role's rightful party: the customer with the session's key,
/// agents with a credential.
async fn join(state: &AppState, token: &str, role: u8) -> Answer {
    let mut body = json!({"role": role, "name": "Ann"});
    let mut request = req(
        Method::POST,
        &format!("/cobrowse/rest/live/sessions/{token}/users"),
    )
    .header(header::CONTENT_TYPE, "application/json");
    if role == 1 {
        if let Some(key) = customer_key(token) {
            body["customerKey"] = json!(key);
        }
    } else {
        request = request.header(
            header::AUTHORIZATION,
            format!("Bearer {}", agent_jwt("ann", None, None)),
        );
    }
    send(state, request.body(Body::from(body.to_string())).unwrap()).await
}

async fn get_session(state: &AppState, token: &str) -> Answer {
    send(
        state,
        req(
            Method::GET,
            &format!("/cobrowse/rest/live/sessions/{token}"),
        )
        .header(header::ORIGIN, ORIGIN)
        .body(Body::empty())
        .unwrap(),
    )
    .await
}

async fn stop(state: &AppState, user_token: &str) -> Answer {
    send(
        state,
        req(
            Method::GET,
            &format!("/cobrowse/rest/live/users/{user_token}/session/stop"),
        )
        .body(Body::empty())
        .unwrap(),
    )
    .await
}

fn assert_error(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert_eq!(a.body["error"], code, "{:?}", a.body);
    assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn create_answers_token_name_cookie_and_header() {
    let state = state_with(&config());
    let a = send(
        &state,
        req(Method::POST, "/cobrowse/rest/live/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let token = a.body["sessionToken"].as_str().unwrap();
    assert!(token::is_session_token(token), "{token}");
    assert_eq!(a.body["sessionServerName"], "node-7");
    let key = a.body["customerKey"].as_str().unwrap();
    assert!(
        key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "{key}"
    );
    assert_eq!(
        a.body.as_object().unwrap().len(),
        3,
        "the contract's two fields and the key"
    );
    assert_eq!(
        a.headers[header::SET_COOKIE],
        "gcbSessionServer=node-7; HttpOnly; SameSite=Lax; Path=/cobrowse"
    );
    assert_eq!(a.headers["gcbSessionServer"], "node-7");
}

#[tokio::test]
async fn cookie_is_cross_site_with_cookie_secure() {
    let state = state_with(&Config {
        cookie_cross_site: true,
        ..config()
    });
    let a = send(
        &state,
        req(Method::POST, "/cobrowse/rest/live/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let cookie = a.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("SameSite=None") && cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn get_session_with_allowed_origin() {
    let state = state_with(&config());
    let token = create(&state).await;
    let a = get_session(&state, &token).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.body,
        json!({"sessionToken": token, "sessionServerName": "node-7"})
    );
    assert_eq!(a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
    assert_eq!(a.headers[header::VARY], "Origin");
    assert_eq!(a.headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert_eq!(
        a.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS],
        "gcbSessionServer"
    );
}

#[tokio::test]
async fn get_session_reports_server_url_when_configured() {
    let state = state_with(&Config {
        server_url: Some("https://n7.example.com/cobrowse".into()),
        ..config()
    });
    let token = create(&state).await;
    let a = get_session(&state, &token).await;
    assert_eq!(
        a.body["sessionServerUrl"],
        "https://n7.example.com/cobrowse"
    );
}

#[tokio::test]
async fn get_session_accepts_referer_when_origin_is_absent() {
    let state = state_with(&config());
    let token = create(&state).await;
    let a = send(
        &state,
        req(
            Method::GET,
            &format!("/cobrowse/rest/live/sessions/{token}"),
        )
        .header(header::REFERER, "https://shop.example.com/checkout?step=2")
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
}

#[tokio::test]
async fn get_session_with_wildcard_origin() {
    let state = state_with(&config());
    let token = create(&state).await;
    for (origin, status) in [
        ("https://desk.agents.example", StatusCode::OK),
        ("https://agents.example", StatusCode::FORBIDDEN),
        ("https://agents.example.evil.net", StatusCode::FORBIDDEN),
    ] {
        let a = send(
            &state,
            req(
                Method::GET,
                &format!("/cobrowse/rest/live/sessions/{token}"),
            )
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap(),
        )
        .await;
        assert_eq!(a.status, status, "{origin}");
    }
}

#[tokio::test]
async fn get_session_without_or_with_foreign_origin_is_forbidden_before_lookup() {
    let state = state_with(&config());
    let token = create(&state).await;
    for (uri, origin) in [
        (format!("/cobrowse/rest/live/sessions/{token}"), None),
        (
            format!("/cobrowse/rest/live/sessions/{token}"),
            Some("https://evil.example"),
        ),
        // An unknown token answers 403 too: no enumeration from foreign pages.
        (
            "/cobrowse/rest/live/sessions/000000000".to_owned(),
            Some("https://evil.example"),
        ),
    ] {
        let mut r = req(Method::GET, &uri);
        if let Some(origin) = origin {
            r = r.header(header::ORIGIN, origin);
        }
        let a = send(&state, r.body(Body::empty()).unwrap()).await;
        assert_error(&a, StatusCode::FORBIDDEN, "origin_not_allowed");
        assert!(a.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
}

#[tokio::test]
async fn get_session_unknown_and_malformed_tokens_are_404() {
    let state = state_with(&config());
    for token in ["123456789", "12345", "abcdefghi", "%FF%FE", "1234567890"] {
        let a = get_session(&state, token).await;
        assert_error(&a, StatusCode::NOT_FOUND, "session_not_found");
    }
}

#[tokio::test]
async fn preflight_allows_the_session_server_header() {
    let state = state_with(&config());
    let a = send(
        &state,
        req(Method::OPTIONS, "/cobrowse/rest/live/sessions/123456789")
            .header(header::ORIGIN, ORIGIN)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "gcbsessionserver")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
    let allowed = a.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap();
    assert!(allowed.contains("gcbSessionServer"), "{allowed}");
    assert!(a.headers[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap()
        .contains("POST"));

    let foreign = send(
        &state,
        req(Method::OPTIONS, "/cobrowse/rest/live/sessions")
            .header(header::ORIGIN, "https://evil.example")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "origin_not_allowed");
}

#[tokio::test]
async fn create_from_allowed_origin_carries_cors_headers() {
    let state = state_with(&config());
    let a = send(
        &state,
        req(Method::POST, "/cobrowse/rest/live/sessions")
            .header(header::ORIGIN, ORIGIN)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
    assert_eq!(
        a.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS],
        "gcbSessionServer"
    );
}

#[tokio::test]
async fn join_lists_users_and_sets_the_cookie() {
    let state = state_with(&config());
    let token = create(&state).await;
    let customer = join(&state, &token, 1).await;
    assert_eq!(customer.status, StatusCode::OK);
    assert_eq!(customer.body["userId"], 1);
    assert_eq!(customer.headers["gcbSessionServer"], "node-7");
    assert!(customer.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .starts_with("gcbSessionServer=node-7"));
    let agent = join(&state, &token, 2).await;
    assert_eq!(agent.body["userId"], 2);
    assert_eq!(
        agent.body["users"],
        json!([{"userId":1,"role":1,"name":"Ann"},{"userId":2,"role":2,"name":"Ann","agentId":"ann"}])
    );
    let user_token = agent.body["userToken"].as_str().unwrap();
    assert_eq!(
        token::session_of_user_token(user_token),
        Some(token.as_str())
    );
}

#[tokio::test]
async fn join_refuses_bad_bodies_with_their_own_status() {
    let state = state_with(&config());
    let token = create(&state).await;
    let uri = format!("/cobrowse/rest/live/sessions/{token}/users");
    let cases: Vec<(Option<&str>, Body, StatusCode, &str)> = vec![
        (
            None,
            Body::from(r#"{"role":1}"#),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Some("text/plain"),
            Body::from(r#"{"role":1}"#),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Some("application/json"),
            Body::from("{not json"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Some("application/json"),
            Body::from(r#"{"role":9}"#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Some("application/json"),
            Body::from(r#"{}"#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Some("application/json"),
            Body::from(vec![b' '; 16 * 1024 + 1]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Some("application/json; charset=utf-8"),
            Body::from(json!({"role": 1, "name": "x".repeat(MAX_NAME_CHARS + 1)}).to_string()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let mut r = req(Method::POST, &uri);
        if let Some(ct) = content_type {
            r = r.header(header::CONTENT_TYPE, ct);
        }
        let a = send(&state, r.body(body).unwrap()).await;
        assert_error(&a, status, code);
    }
}

#[tokio::test]
async fn join_unknown_is_404_and_full_is_409() {
    let state = state_with(&Config {
        limits: crate::sessions::SessionLimits {
            max_users_per_session: 1,
            ..Default::default()
        },
        ..config()
    });
    assert_error(
        &join(&state, "000000000", 1).await,
        StatusCode::NOT_FOUND,
        "session_not_found",
    );
    assert_error(
        &join(&state, "nope", 1).await,
        StatusCode::NOT_FOUND,
        "session_not_found",
    );
    let token = create(&state).await;
    assert_eq!(join(&state, &token, 1).await.status, StatusCode::OK);
    assert_error(
        &join(&state, &token, 2).await,
        StatusCode::CONFLICT,
        "session_full",
    );
}

#[tokio::test]
async fn stop_by_controller_then_ended_everywhere() {
    let state = state_with(&config());
    let token = create(&state).await;
    let customer = join(&state, &token, 1).await;
    let controller = join(&state, &token, 3).await;
    let customer_token = customer.body["userToken"].as_str().unwrap();
    let controller_token = controller.body["userToken"].as_str().unwrap();

    assert_error(
        &stop(&state, customer_token).await,
        StatusCode::FORBIDDEN,
        "not_controller",
    );
    assert_error(
        &stop(&state, &token::user_token(&token, 7)).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    assert_error(
        &stop(&state, "garbage").await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );

    let first = stop(&state, controller_token).await;
    assert_eq!(first.status, StatusCode::OK);
    let activation = first.body["activationTime"].as_u64().unwrap();
    let deactivation = first.body["deactivationTime"].as_u64().unwrap();
    assert!(activation <= deactivation && activation > 1_600_000_000_000);
    let again = stop(&state, controller_token).await;
    assert_eq!(
        again.raw, first.raw,
        "a repeated stop answers the same body"
    );

    assert_error(
        &get_session(&state, &token).await,
        StatusCode::GONE,
        "session_ended",
    );
    assert_error(
        &join(&state, &token, 2).await,
        StatusCode::GONE,
        "session_ended",
    );
}

#[tokio::test(start_paused = true)]
async fn ended_sessions_are_forgotten_after_retention() {
    let state = state_with(&config());
    let token = create(&state).await;
    let controller = join(&state, &token, 3).await;
    let controller_token = controller.body["userToken"].as_str().unwrap();
    assert_eq!(stop(&state, controller_token).await.status, StatusCode::OK);
    tokio::time::advance(state.sessions.limits().retention).await;
    assert_error(
        &stop(&state, controller_token).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    assert_error(
        &get_session(&state, &token).await,
        StatusCode::NOT_FOUND,
        "session_not_found",
    );
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_expire() {
    let state = state_with(&config());
    let token = create(&state).await;
    tokio::time::advance(state.sessions.limits().idle_timeout).await;
    assert_error(
        &get_session(&state, &token).await,
        StatusCode::GONE,
        "session_ended",
    );
}

#[tokio::test]
async fn full_node_answers_503_with_retry_after() {
    let state = state_with(&Config {
        limits: crate::sessions::SessionLimits {
            max_sessions: 1,
            ..Default::default()
        },
        ..config()
    });
    create(&state).await;
    let a = send(
        &state,
        req(Method::POST, "/cobrowse/rest/live/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_error(&a, StatusCode::SERVICE_UNAVAILABLE, "capacity_exhausted");
    assert!(a.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn health_is_empty_200_then_503_while_draining_and_create_refused() {
    let state = state_with(&config());
    let token = create(&state).await;
    let a = send(
        &state,
        req(Method::GET, "/cobrowse/health")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.raw.is_empty());
    assert_eq!(a.headers["cobrowse-live-sessions"], "1");

    state.readiness.start_draining();
    let a = send(
        &state,
        req(Method::GET, "/cobrowse/health")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.raw.is_empty());
    let a = send(
        &state,
        req(Method::POST, "/cobrowse/rest/live/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_error(&a, StatusCode::SERVICE_UNAVAILABLE, "draining");
    // Existing sessions are still served.
    assert_eq!(get_session(&state, &token).await.status, StatusCode::OK);
    assert_eq!(join(&state, &token, 2).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_paths_are_json_404_and_wrong_methods_json_405() {
    let state = state_with(&config());
    for uri in [
        "/",
        "/cobrowse",
        "/cobrowse/rest/live",
        "/cobrowse/rest/live/sessions/1/2/3",
        "/other/health",
    ] {
        let a = send(&state, req(Method::GET, uri).body(Body::empty()).unwrap()).await;
        assert_error(&a, StatusCode::NOT_FOUND, "not_found");
    }
    for (method, uri) in [
        (Method::GET, "/cobrowse/rest/live/sessions"),
        (Method::DELETE, "/cobrowse/rest/live/sessions/123456789"),
        (Method::POST, "/cobrowse/health"),
        (Method::PUT, "/cobrowse/rest/live/users/x/session/stop"),
    ] {
        let a = send(
            &state,
            req(method.clone(), uri).body(Body::empty()).unwrap(),
        )
        .await;
        assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

#[tokio::test]
async fn another_context_path_moves_every_resource() {
    let state = state_with(&Config {
        context_path: "/cb".into(),
        ..config()
    });
    let a = send(
        &state,
        req(Method::GET, "/cb/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(
        &state,
        req(Method::POST, "/cobrowse/rest/live/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = send(
        &state,
        req(Method::POST, "/cb/rest/live/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(a.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Path=/cb"));
}
