//! The web pages a node serves (see [`crate::web`]):
//!
//! | path (below the context path) | what                                   | cache                     |
//! |-------------------------------|----------------------------------------|---------------------------|
//! | `/widget.js`                  | the customer widget, the one tag's src | `max-age=300` + ETag      |
//! | `/widget/origin`              | whether the caller's origin is allowed | `no-store`                |
//! | `/agent/`                     | the agent console (`/agent` redirects) | `no-cache` + ETag         |
//! | `/agent/console.js`, `.css`   | its script and styles                  | `no-cache` + ETag         |
//!
//! `/widget/origin` answers every origin (`Access-Control-Allow-Origin: *`,
//! no credentials), so a widget on a page the nodes do not accept can say so
//! instead of failing on an unreadable CORS error. It tells only whether the
//! caller's own origin is allowed.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use shared_types::error::ErrorBody;

use crate::cors::Origin;
use crate::state::AppState;

/// 503: this node was built without the web bundle.
pub const WEB_ASSETS_MISSING: &str = "web_assets_missing";

/// Who may frame, script or fetch from the console. The mirror shows the
/// customer's page in an iframe with no scripts (`sandbox` without
/// `allow-scripts`, and `script-src 'self'` here, which the mirror inherits);
/// its images, fonts and styles still load from the customer's site.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'self' 'unsafe-inline' http: https:; img-src http: https: data: blob:; \
     font-src http: https: data:; media-src http: https: data: blob:; frame-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The web routes, to merge into the node's router.
pub fn routes(ctx: &str) -> Router<AppState> {
    let agent_home = format!("{ctx}/agent/");
    Router::new()
        .route(&format!("{ctx}/widget.js"), get(widget))
        .route(&format!("{ctx}/widget/origin"), get(origin_check))
        .route(
            &format!("{ctx}/agent"),
            get(move || async move { Redirect::permanent(&agent_home) }),
        )
        .route(&format!("{ctx}/agent/"), get(console_page))
        .route(&format!("{ctx}/agent/console.js"), get(console_js))
        .route(&format!("{ctx}/agent/console.css"), get(console_css))
}

async fn widget(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut response = serve(&state, "widget.js", &headers, "public, max-age=300");
    // Pages that require CORP (COEP: require-corp) may still include it.
    response.headers_mut().insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    response
}

async fn console_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut response = serve(&state, "agent/index.html", &headers, "no-cache");
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Get Session reads the console's origin from the Referer of its own
    // (same-origin) request; the customer's site, whose images the mirror
    // loads, learns nothing of the console.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn console_js(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, "agent/console.js", &headers, "no-cache")
}

async fn console_css(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, "agent/console.css", &headers, "no-cache")
}

/// `GET <ctx>/widget/origin`: `{"origin": "<the caller's>"|null, "allowed": bool}`.
async fn origin_check(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let origin = Origin::of_request(&headers);
    let allowed = origin.as_ref().is_some_and(|o| state.origins.allows(o));
    let mut response = Json(json!({
        "origin": origin.as_ref().map(Origin::as_str),
        "allowed": allowed,
    }))
    .into_response();
    let h = response.headers_mut();
    // The CORS layer replaces this with the origin itself (and credentials)
    // for an allowed origin.
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// One bundle file: 304 when the client's copy is current, 503 when the
/// node has no bundle.
fn serve(state: &AppState, name: &str, request: &HeaderMap, cache: &'static str) -> Response {
    let Some(asset) = state.web.get(name) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ErrorBody::new(
                WEB_ASSETS_MISSING,
                "this session-node was built without the web bundle: run `make web` and build it again, or start it with --web-dir web/dist",
            )),
        )
            .into_response();
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == "*" || t.trim().as_bytes() == asset.etag.as_bytes())
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body.clone(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, asset.etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
