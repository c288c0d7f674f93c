//! The web routes, driven with `oneshot` on a node serving a bundle from
//! `--web-dir` (made here, so the tests do not depend on `make web`).

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::app;
use crate::config::Config;
use crate::cors::AllowedOrigins;
use crate::state::AppState;
use crate::web::FILES;

fn state() -> AppState {
    let dir = std::env::temp_dir().join(format!(
        "web-routes-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(dir.join("agent")).unwrap();
    for f in FILES {
        std::fs::write(dir.join(f), format!("/* {f} */")).unwrap();
    }
    let config = Config {
        allowed_origins: AllowedOrigins::parse("https://shop.example.com").unwrap(),
        web_dir: Some(dir.clone()),
        ..Config::default()
    };
    let state = AppState::new(&config).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    state
}

async fn get(
    state: &AppState,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app(state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body.to_vec())
}

#[tokio::test]
async fn each_file_is_served_with_its_type_and_cache_policy() {
    let state = state();
    // (path, file, content type, cache-control)
    let cases = [
        (
            "/cobrowse/widget.js",
            "widget.js",
            "text/javascript; charset=utf-8",
            "public, max-age=300",
        ),
        (
            "/cobrowse/agent/",
            "agent/index.html",
            "text/html; charset=utf-8",
            "no-cache",
        ),
        (
            "/cobrowse/agent/console.js",
            "agent/console.js",
            "text/javascript; charset=utf-8",
            "no-cache",
        ),
        (
            "/cobrowse/agent/console.css",
            "agent/console.css",
            "text/css; charset=utf-8",
            "no-cache",
        ),
    ];
    for (path, file, content_type, cache) in cases {
        let (status, headers, body) = get(&state, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, format!("/* {file} */").into_bytes(), "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
        assert_eq!(headers[header::CACHE_CONTROL], cache, "{path}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        let etag = headers[header::ETAG].to_str().unwrap().to_owned();
        let (again, headers, body) = get(&state, path, &[("if-none-match", &etag)]).await;
        assert_eq!(again, StatusCode::NOT_MODIFIED, "{path}");
        assert!(body.is_empty());
        assert_eq!(headers[header::ETAG], etag.as_str());
        let (stale, _, _) = get(&state, path, &[("if-none-match", "\"other\"")]).await;
        assert_eq!(stale, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn the_console_forbids_scripts_but_its_own_and_being_framed() {
    let (_, headers, _) = get(&state(), "/cobrowse/agent/", &[]).await;
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    let (status, headers, _) = get(&state(), "/cobrowse/agent", &[]).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "/cobrowse/agent/");
}

#[tokio::test]
async fn only_the_bundle_files_are_served() {
    let state = state();
    for path in [
        "/cobrowse/agent/index.html",
        "/cobrowse/agent/../widget.js",
        "/cobrowse/agent/%2e%2e/Cargo.toml",
        "/cobrowse/web/widget.js",
        "/widget.js",
    ] {
        let (status, _, body) = get(&state, path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn the_origin_check_answers_every_origin_and_tells_only_its_own() {
    let state = state();
    // (Origin, allowed, Access-Control-Allow-Origin)
    let cases = [
        (
            Some("https://shop.example.com"),
            true,
            "https://shop.example.com",
        ),
        (Some("https://evil.example"), false, "*"),
        (None, false, "*"),
    ];
    for (origin, allowed, acao) in cases {
        let headers: Vec<(&str, &str)> = origin.iter().map(|o| ("origin", *o)).collect();
        let (status, h, body) = get(&state, "/cobrowse/widget/origin", &headers).await;
        assert_eq!(status, StatusCode::OK);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["allowed"], allowed, "{origin:?}");
        assert_eq!(body["origin"], origin.map_or(Value::Null, Value::from));
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], acao, "{origin:?}");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }
}
